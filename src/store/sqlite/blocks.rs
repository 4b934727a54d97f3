//! [`BlockStore`] for [`SqliteStore`]: the DataBlock registry in the tables of migration 3.
//!
//! Publishing runs in one `BEGIN IMMEDIATE` transaction, so two jobs publishing the same name
//! at once get consecutive versions; reads take one snapshot each. The current attempt of a
//! job (`jobs.attempts`) decides which of its publications and consumptions count for a run:
//! after `retry`, a re-run job's old attempts no longer speak for it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::spec::model::ParamType;
use crate::spec::params::{ParamValue, parse_value};
use crate::state::{JobId, RunId};
use crate::store::error::Error;
use crate::store::{
    BlockKey, BlockKind, BlockStore, BlockSummary, BlockVersion, BlockVersionId, ContentHash,
    JobAttempt, JobBlocks, Lineage, LineageLink, NewBlock, Published,
};

use super::{SqliteStore, to_ms, to_sql_u64};

/// The folder of block content inside the environment folder.
const BLOCKS_DIR: &str = "blocks";

/// A version with the attempt that created it (`p`, absent for a version whose creating
/// publication row is gone).
const VERSION_SELECT: &str = "SELECT v.id, v.name, v.version, v.hash, v.kind, v.size, v.files, \
     v.file_name, v.executable, v.created_at, v.removed_at, \
     p.run_id, p.workflow, p.job_id, p.job_name, p.job_base, p.attempt \
     FROM block_versions v \
     LEFT JOIN block_productions p ON p.version_id = v.id AND p.new = 1";

/// The block and attempt columns of a lineage link; `x` is the production or consumption.
const LINK_COLUMNS: &str = "v.name, v.version, v.hash, v.removed_at, \
     x.run_id, x.workflow, x.job_id, x.job_name, x.job_base, x.attempt";

fn conversion(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

fn get_time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(index)?;
    DateTime::from_timestamp_millis(ms).ok_or(rusqlite::Error::IntegralValueOutOfRange(index, ms))
}

fn get_opt_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(_) => get_time(row, index).map(Some),
    }
}

fn get_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn get_u32(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    let value: i64 = row.get(index)?;
    u32::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn get_hash(row: &Row<'_>, index: usize) -> rusqlite::Result<ContentHash> {
    let text: String = row.get(index)?;
    ContentHash::parse(&text).ok_or_else(|| {
        conversion(
            index,
            std::io::Error::other(format!("`{text}` is not a SHA-256 hash")),
        )
    })
}

/// The attempt of columns `from..from + 6`: run, workflow, job id, name, base, attempt.
fn get_attempt(row: &Row<'_>, from: usize) -> rusqlite::Result<JobAttempt> {
    Ok(JobAttempt {
        run_id: RunId(row.get(from)?),
        workflow: row.get(from + 1)?,
        job_id: JobId(row.get(from + 2)?),
        job: row.get(from + 3)?,
        job_base: row.get(from + 4)?,
        attempt: get_u32(row, from + 5)?,
    })
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<BlockVersion> {
    let kind: String = row.get(4)?;
    let producer: Option<i64> = row.get(11)?;
    Ok(BlockVersion {
        id: BlockVersionId(row.get(0)?),
        seq: row.get(0)?,
        name: row.get(1)?,
        version: get_u64(row, 2)?,
        hash: get_hash(row, 3)?,
        kind: kind.parse().map_err(|error| conversion(4, error))?,
        size: get_u64(row, 5)?,
        files: get_u64(row, 6)?,
        file_name: row.get(7)?,
        executable: row.get(8)?,
        created_at: get_time(row, 9)?,
        removed_at: get_opt_time(row, 10)?,
        produced_by: match producer {
            Some(_) => Some(get_attempt(row, 11)?),
            None => None,
        },
    })
}

/// A link from [`LINK_COLUMNS`] followed by `input`/`new` (column 10) and a time (11).
fn link_from_row(row: &Row<'_>, consumption: bool) -> rusqlite::Result<LineageLink> {
    let (input, new) = if consumption {
        (Some(row.get::<_, String>(10)?), None)
    } else {
        (None, Some(row.get::<_, bool>(10)?))
    };
    Ok(LineageLink {
        block: BlockKey {
            name: row.get(0)?,
            version: get_u64(row, 1)?,
            hash: get_hash(row, 2)?,
            removed: row.get::<_, Option<i64>>(3)?.is_some(),
        },
        job: get_attempt(row, 4)?,
        input,
        new,
        at: get_time(row, 11)?,
    })
}

fn versions(
    conn: &Connection,
    clause: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<BlockVersion>, Error> {
    let sql = format!("{VERSION_SELECT} {clause}");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(args, version_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn version_by_id(conn: &Connection, id: i64) -> Result<Option<BlockVersion>, Error> {
    Ok(versions(conn, "WHERE v.id = ?1", [id])?.pop())
}

fn links(
    conn: &Connection,
    sql: &str,
    id: i64,
    consumption: bool,
) -> Result<Vec<LineageLink>, Error> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map([id], |row| link_from_row(row, consumption))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl BlockStore for SqliteStore {
    fn blocks_dir(&self) -> Result<PathBuf, Error> {
        Ok(self.blocks.as_ref().map_or_else(
            || self.dir.join(BLOCKS_DIR),
            |blocks| blocks.local_dir(&self.dir),
        ))
    }

    fn blocks_remote(&self) -> Option<String> {
        self.blocks
            .as_ref()
            .and_then(|b| b.url().map(str::to_owned))
    }

    fn block_version(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<BlockVersion>, Error> {
        let conn = self.conn();
        let found = match version {
            Some(version) => versions(
                &conn,
                "WHERE v.name = ?1 AND v.version = ?2",
                params![name, to_sql_u64(version)],
            )?,
            None => versions(
                &conn,
                "WHERE v.name = ?1 AND v.removed_at IS NULL ORDER BY v.version DESC LIMIT 1",
                [name],
            )?,
        };
        Ok(found.into_iter().next())
    }

    fn block_versions(&self, name: &str) -> Result<Vec<BlockVersion>, Error> {
        versions(
            &self.conn(),
            "WHERE v.name = ?1 ORDER BY v.version DESC",
            [name],
        )
    }

    fn block_names(&self) -> Result<Vec<BlockSummary>, Error> {
        self.read(|tx| {
            let newest = versions(
                tx,
                "WHERE v.removed_at IS NULL AND v.version = (SELECT max(m.version) \
                 FROM block_versions m WHERE m.name = v.name AND m.removed_at IS NULL) \
                 ORDER BY v.name",
                [],
            )?;
            let mut count = tx.prepare_cached(
                "SELECT count(*) FROM block_versions WHERE name = ?1 AND removed_at IS NULL",
            )?;
            let mut out = Vec::with_capacity(newest.len());
            for latest in newest {
                let versions: i64 = count.query_row([&latest.name], |row| row.get(0))?;
                out.push(BlockSummary {
                    versions: u64::try_from(versions).unwrap_or(0),
                    latest,
                });
            }
            Ok(out)
        })
    }

    fn published_in_run(
        &self,
        run: RunId,
        job_base: &str,
        block: &str,
    ) -> Result<Option<BlockVersion>, Error> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .prepare_cached(
                "SELECT q.version_id FROM block_productions q \
                 JOIN jobs j ON j.id = q.job_id AND j.attempts = q.attempt \
                 JOIN block_versions v ON v.id = q.version_id \
                 WHERE q.run_id = ?1 AND q.job_base = ?2 AND v.name = ?3 \
                 ORDER BY q.id DESC LIMIT 1",
            )?
            .query_row(params![run.0, job_base, block], |row| row.get(0))
            .optional()?;
        match id {
            Some(id) => version_by_id(&conn, id),
            None => Ok(None),
        }
    }

    fn record_consumption(
        &self,
        consumer: &JobAttempt,
        inputs: &[(String, BlockVersionId)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        if inputs.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO block_consumptions (job_id, attempt, input, version_id, \
                 run_id, workflow, job_name, job_base, consumed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (input, version) in inputs {
                insert.execute(params![
                    consumer.job_id.0,
                    consumer.attempt,
                    input,
                    version.0,
                    consumer.run_id.0,
                    consumer.workflow,
                    consumer.job,
                    consumer.job_base,
                    to_ms(at),
                ])?;
            }
            Ok(())
        })
    }

    fn publish_blocks(
        &self,
        producer: &JobAttempt,
        blocks: &[NewBlock],
        at: DateTime<Utc>,
    ) -> Result<Vec<Published>, Error> {
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut made = Vec::with_capacity(blocks.len());
            for block in blocks {
                let newest: Option<(i64, i64, String, String, Option<i64>)> = tx
                    .prepare_cached(
                        "SELECT id, version, hash, kind, removed_at FROM block_versions \
                         WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                    )?
                    .query_row([&block.name], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })
                    .optional()?;
                let unchanged = newest.as_ref().and_then(|(id, _, hash, kind, removed)| {
                    (removed.is_none()
                        && hash == block.hash.as_str()
                        && kind == block.kind.as_str())
                    .then_some(*id)
                });
                let (id, new) = match unchanged {
                    Some(id) => (id, false),
                    None => {
                        let version = newest.map_or(1, |(_, version, ..)| version + 1);
                        tx.prepare_cached(
                            "INSERT INTO block_versions (name, version, hash, kind, size, files, \
                             file_name, executable, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        )?
                        .execute(params![
                            block.name,
                            version,
                            block.hash.as_str(),
                            block.kind.as_str(),
                            to_sql_u64(block.size),
                            to_sql_u64(block.files),
                            block.file_name,
                            block.executable,
                            to_ms(at),
                        ])?;
                        (tx.last_insert_rowid(), true)
                    }
                };
                tx.prepare_cached(
                    "INSERT INTO block_productions (version_id, run_id, workflow, job_id, \
                     job_name, job_base, attempt, new, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    id,
                    producer.run_id.0,
                    producer.workflow,
                    producer.job_id.0,
                    producer.job,
                    producer.job_base,
                    producer.attempt,
                    new,
                    to_ms(at),
                ])?;
                made.push((id, new));
            }
            let mut published = Vec::with_capacity(made.len());
            for (id, new) in made {
                let block = version_by_id(tx, id)?
                    .ok_or_else(|| Error::Sqlite(rusqlite::Error::QueryReturnedNoRows))?;
                published.push(Published { block, new });
            }
            Ok(published)
        })
    }

    fn block_lineage(&self, version: BlockVersionId) -> Result<Lineage, Error> {
        self.read(|tx| {
            let id = version.0;
            let produced_by = links(
                tx,
                &format!(
                    "SELECT {LINK_COLUMNS}, x.new, x.created_at FROM block_productions x \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.version_id = ?1 ORDER BY x.id"
                ),
                id,
                false,
            )?;
            let made_from = links(
                tx,
                &format!(
                    "SELECT DISTINCT {LINK_COLUMNS}, x.input, x.consumed_at \
                     FROM block_productions p \
                     JOIN block_consumptions x ON x.job_id = p.job_id AND x.attempt = p.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE p.version_id = ?1 ORDER BY x.run_id, x.job_id, x.input"
                ),
                id,
                true,
            )?;
            let consumed_by = links(
                tx,
                &format!(
                    "SELECT {LINK_COLUMNS}, x.input, x.consumed_at FROM block_consumptions x \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.version_id = ?1 ORDER BY x.consumed_at, x.job_id, x.input"
                ),
                id,
                true,
            )?;
            let used_for = links(
                tx,
                &format!(
                    "SELECT DISTINCT {LINK_COLUMNS}, x.new, x.created_at \
                     FROM block_consumptions c \
                     JOIN block_productions x ON x.job_id = c.job_id AND x.attempt = c.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE c.version_id = ?1 ORDER BY x.created_at, x.job_id, v.name"
                ),
                id,
                false,
            )?;
            Ok(Lineage {
                produced_by,
                made_from,
                consumed_by,
                used_for,
            })
        })
    }

    fn run_blocks(&self, run: RunId) -> Result<Vec<JobBlocks>, Error> {
        self.read(|tx| {
            let mut by_job: BTreeMap<i64, JobBlocks> = BTreeMap::new();
            for (table, extra, consumption) in [
                ("block_consumptions", "x.input, x.consumed_at", true),
                ("block_productions", "x.new, x.created_at", false),
            ] {
                let order = if consumption { "x.input" } else { "x.id" };
                let sql = format!(
                    "SELECT {LINK_COLUMNS}, {extra} FROM {table} x \
                     JOIN jobs j ON j.id = x.job_id AND j.attempts = x.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.run_id = ?1 ORDER BY x.job_id, {order}"
                );
                for link in links(tx, &sql, run.0, consumption)? {
                    let entry = by_job
                        .entry(link.job.job_id.0)
                        .or_insert_with(|| JobBlocks {
                            job_id: link.job.job_id,
                            consumed: Vec::new(),
                            produced: Vec::new(),
                        });
                    if consumption {
                        entry.consumed.push(link);
                    } else {
                        entry.produced.push(link);
                    }
                }
            }
            Ok(by_job.into_values().collect())
        })
    }

    fn block_versions_since(&self, after: i64, limit: usize) -> Result<Vec<BlockVersion>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        versions(
            &self.conn(),
            "WHERE v.id > ?1 ORDER BY v.id LIMIT ?2",
            params![after, limit],
        )
    }

    fn block_seq(&self) -> Result<i64, Error> {
        let seq: Option<i64> =
            self.conn()
                .query_row("SELECT max(id) FROM block_versions", [], |row| row.get(0))?;
        Ok(seq.unwrap_or(0))
    }

    fn remove_block_versions(
        &self,
        keep: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<BlockVersion>, Error> {
        self.write(|tx| {
            let kept = versions_to_keep(tx, keep)?;
            let live: Vec<i64> = tx
                .prepare("SELECT id FROM block_versions WHERE removed_at IS NULL ORDER BY id")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut removed = Vec::new();
            let mut mark =
                tx.prepare_cached("UPDATE block_versions SET removed_at = ?2 WHERE id = ?1")?;
            for id in live.into_iter().filter(|id| !kept.contains(id)) {
                mark.execute(params![id, to_ms(at)])?;
                removed.extend(version_by_id(tx, id)?);
            }
            Ok(removed)
        })
    }

    fn live_block_content(&self) -> Result<Vec<(ContentHash, BlockKind)>, Error> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT DISTINCT hash, kind FROM block_versions WHERE removed_at IS NULL")?;
        let rows = statement.query_map([], |row| {
            let kind: String = row.get(1)?;
            Ok((
                get_hash(row, 0)?,
                kind.parse::<BlockKind>()
                    .map_err(|error| conversion(1, error))?,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The versions `blocks gc --keep N` must keep: the newest `keep` of each name; every
/// version a queued or running run consumed, produced or names in its parameters; and,
/// transitively, whatever the attempts that produced a kept version consumed, so that the
/// lineage of everything kept can still be materialised.
fn versions_to_keep(tx: &Connection, keep: usize) -> Result<HashSet<i64>, Error> {
    let mut kept: HashSet<i64> = HashSet::new();
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let newest = tx
        .prepare(
            "SELECT id FROM (SELECT id, row_number() OVER \
             (PARTITION BY name ORDER BY version DESC) AS rank \
             FROM block_versions WHERE removed_at IS NULL) WHERE rank <= ?1",
        )?
        .query_map([keep], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    kept.extend(newest);

    let active = "SELECT id FROM runs WHERE status IN ('queued', 'running')";
    let used = tx
        .prepare(&format!(
            "SELECT version_id FROM block_consumptions WHERE run_id IN ({active}) \
             UNION SELECT version_id FROM block_productions WHERE run_id IN ({active})"
        ))?
        .query_map([], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    kept.extend(used);

    // Parameters of active runs: a datablock parameter is stored as `name@version`.
    let params: Vec<String> = tx
        .prepare(&format!("SELECT params FROM runs WHERE id IN ({active})"))?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut find = tx.prepare_cached(
        "SELECT id FROM block_versions WHERE name = ?1 AND removed_at IS NULL \
         AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1",
    )?;
    for text in params {
        let Ok(serde_json::Value::Object(values)) = serde_json::from_str(&text) else {
            continue;
        };
        for value in values.values() {
            let Some(Ok(ParamValue::DataBlock { name, version })) = value
                .as_str()
                .map(|text| parse_value(ParamType::Datablock, text))
            else {
                continue;
            };
            let version = version.map(to_sql_u64);
            if let Some(id) = find
                .query_row(params![name, version], |row| row.get::<_, i64>(0))
                .optional()?
            {
                kept.insert(id);
            }
        }
    }

    let mut inputs = tx.prepare_cached(
        "SELECT DISTINCT c.version_id FROM block_productions p \
         JOIN block_consumptions c ON c.job_id = p.job_id AND c.attempt = p.attempt \
         WHERE p.version_id = ?1",
    )?;
    let mut pending: Vec<i64> = kept.iter().copied().collect();
    while let Some(id) = pending.pop() {
        let upstream = inputs
            .query_map([id], |row| row.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for input in upstream {
            if kept.insert(input) {
                pending.push(input);
            }
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::test_support::{job, run, store};
    use crate::store::{BlockKind, BlockStore, BlockVersion, ContentHash, JobAttempt, NewBlock};

    /// A content hash for test content (the hashing itself is `crate::blocks`'s).
    fn hash_bytes(bytes: &[u8]) -> ContentHash {
        use sha2::Digest;
        ContentHash::from_digest(&sha2::Sha256::digest(bytes))
    }
    use crate::state::{JobState, RunId, RunState};
    use crate::store::{Change, RunStore, RunTransition, Transition};

    fn block(name: &str, content: &str) -> NewBlock {
        NewBlock {
            name: name.to_owned(),
            hash: hash_bytes(content.as_bytes()),
            kind: BlockKind::File,
            size: content.len() as u64,
            files: 1,
            file_name: format!("{name}.csv"),
            executable: false,
        }
    }

    /// A run with jobs `names`, each started once (attempt 1), so that its publications and
    /// consumptions count as the current attempt's.
    fn started_run(store: &impl RunStore, names: &[&str]) -> (RunId, Vec<JobAttempt>) {
        let jobs = names
            .iter()
            .map(|n| job(n, &[], JobState::Queued))
            .collect();
        let (run_id, ids) = store.create_run(&run("wf", jobs)).unwrap();
        let attempts = names
            .iter()
            .zip(&ids)
            .map(|(name, &id)| {
                let t = Transition::new(id, JobState::Running, Utc::now());
                store.apply(&[t.into()]).unwrap();
                JobAttempt {
                    run_id,
                    workflow: "wf".into(),
                    job_id: id,
                    job: (*name).to_owned(),
                    job_base: (*name).to_owned(),
                    attempt: 1,
                }
            })
            .collect();
        (run_id, attempts)
    }

    #[test]
    fn a_new_version_only_when_the_content_changes() {
        let (_dir, store) = store();
        let (run_id, jobs) = started_run(&store, &["extract"]);
        let now = Utc::now();
        let first = store
            .publish_blocks(&jobs[0], &[block("orders", "a")], now)
            .unwrap();
        assert_eq!((first[0].block.version, first[0].new), (1, true));
        let same = store
            .publish_blocks(&jobs[0], &[block("orders", "a")], now)
            .unwrap();
        assert_eq!((same[0].block.version, same[0].new), (1, false));
        let changed = store
            .publish_blocks(&jobs[0], &[block("orders", "b")], now)
            .unwrap();
        assert_eq!((changed[0].block.version, changed[0].new), (2, true));
        // Back to the first content: still a change from the newest.
        let back = store
            .publish_blocks(&jobs[0], &[block("orders", "a")], now)
            .unwrap();
        assert_eq!(back[0].block.version, 3);

        let newest = store.block_version("orders", None).unwrap().unwrap();
        assert_eq!(newest.version, 3);
        assert_eq!(newest.produced_by.as_ref().unwrap().job, "extract");
        assert_eq!(
            store
                .block_version("orders", Some(2))
                .unwrap()
                .unwrap()
                .hash,
            hash_bytes(b"b")
        );
        assert!(store.block_version("orders", Some(9)).unwrap().is_none());
        assert!(store.block_version("nope", None).unwrap().is_none());
        let versions: Vec<u64> = store
            .block_versions("orders")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, [3, 2, 1]);
        let names = store.block_names().unwrap();
        assert_eq!(
            (names.len(), names[0].versions, names[0].latest.version),
            (1, 3, 3)
        );

        // Both publications of version 1 are in its lineage.
        let lineage = store.block_lineage(first[0].block.id).unwrap();
        assert_eq!(lineage.produced_by.len(), 2);
        assert_eq!(
            lineage
                .produced_by
                .iter()
                .map(|l| l.new)
                .collect::<Vec<_>>(),
            [Some(true), Some(false)]
        );
        let found = store
            .published_in_run(run_id, "extract", "orders")
            .unwrap()
            .unwrap();
        assert_eq!(found.version, 3);
    }

    #[test]
    fn lineage_is_walkable_both_ways_and_show_sees_it() {
        let (_dir, store) = store();
        let (run_id, jobs) = started_run(&store, &["extract", "transform"]);
        let now = Utc::now();
        let orders = store
            .publish_blocks(&jobs[0], &[block("orders", "o")], now)
            .unwrap();
        let input = vec![("orders".to_owned(), orders[0].block.id)];
        store.record_consumption(&jobs[1], &input, now).unwrap();
        let summary = store
            .publish_blocks(&jobs[1], &[block("summary", "s")], now)
            .unwrap();

        let up = store.block_lineage(summary[0].block.id).unwrap();
        assert_eq!(up.made_from.len(), 1);
        assert_eq!(up.made_from[0].block.label(), "orders@1");
        assert_eq!(up.made_from[0].input.as_deref(), Some("orders"));
        let down = store.block_lineage(orders[0].block.id).unwrap();
        assert_eq!(down.consumed_by[0].job.job, "transform");
        assert_eq!(down.used_for[0].block.label(), "summary@1");

        let shown = store.run_blocks(run_id).unwrap();
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].produced[0].block.label(), "orders@1");
        assert_eq!(shown[1].consumed[0].block.label(), "orders@1");
        assert_eq!(shown[1].produced[0].block.label(), "summary@1");
    }

    #[test]
    fn a_job_reset_for_retry_no_longer_speaks_for_its_run() {
        let (_dir, store) = store();
        let (run_id, jobs) = started_run(&store, &["extract"]);
        store
            .publish_blocks(&jobs[0], &[block("orders", "o")], Utc::now())
            .unwrap();
        let now = Utc::now();
        store
            .apply(&[
                Transition::new(jobs[0].job_id, JobState::Failed, now).into(),
                Change::Run(RunTransition {
                    run: run_id,
                    to: RunState::Failed,
                    at: now,
                    reason: None,
                }),
            ])
            .unwrap();
        assert!(
            store
                .published_in_run(run_id, "extract", "orders")
                .unwrap()
                .is_some()
        );
        store
            .reset_for_retry(run_id, &[jobs[0].job_id], None)
            .unwrap();
        store
            .apply(&[
                Transition::new(jobs[0].job_id, JobState::Queued, now).into(),
                Transition::new(jobs[0].job_id, JobState::Running, now).into(),
            ])
            .unwrap();
        assert!(
            store
                .published_in_run(run_id, "extract", "orders")
                .unwrap()
                .is_none()
        );
        assert!(store.run_blocks(run_id).unwrap().is_empty());
    }

    #[test]
    fn versions_since_is_the_trigger_hook() {
        let (_dir, store) = store();
        let (_, jobs) = started_run(&store, &["p"]);
        let now = Utc::now();
        assert_eq!(store.block_seq().unwrap(), 0);
        store
            .publish_blocks(&jobs[0], &[block("a", "1"), block("b", "1")], now)
            .unwrap();
        let all = store.block_versions_since(0, 100).unwrap();
        assert_eq!(
            all.iter().map(BlockVersion::label).collect::<Vec<_>>(),
            ["a@1", "b@1"]
        );
        let last = all.last().unwrap().seq;
        assert_eq!(store.block_seq().unwrap(), last);
        assert!(store.block_versions_since(last, 100).unwrap().is_empty());
        // Republishing unchanged content is no new version, so no event.
        store
            .publish_blocks(&jobs[0], &[block("a", "1")], now)
            .unwrap();
        assert!(store.block_versions_since(last, 100).unwrap().is_empty());
        store
            .publish_blocks(&jobs[0], &[block("a", "2")], now)
            .unwrap();
        let new = store.block_versions_since(last, 100).unwrap();
        assert_eq!(
            new.iter().map(BlockVersion::label).collect::<Vec<_>>(),
            ["a@2"]
        );
    }

    #[test]
    fn gc_keeps_the_newest_active_references_and_their_lineage() {
        let (_dir, store) = store();
        let (_, jobs) = started_run(&store, &["p", "q"]);
        let now = Utc::now();
        let mut ids = Vec::new();
        for content in ["1", "2", "3", "4"] {
            ids.push(
                store
                    .publish_blocks(&jobs[0], &[block("raw", content)], now)
                    .unwrap()[0]
                    .block
                    .id,
            );
        }
        // q (in the same, still running run) read raw@1 to make report@1.
        store
            .record_consumption(&jobs[1], &[("raw".to_owned(), ids[0])], now)
            .unwrap();
        store
            .publish_blocks(&jobs[1], &[block("report", "r")], now)
            .unwrap();

        // The run is active: everything it touched stays.
        assert!(store.remove_block_versions(1, now).unwrap().is_empty());

        let done = now + Duration::seconds(1);
        store
            .apply(&[
                Transition::new(jobs[0].job_id, JobState::Succeeded, done).into(),
                Transition::new(jobs[1].job_id, JobState::Succeeded, done).into(),
                Change::Run(RunTransition {
                    run: jobs[0].run_id,
                    to: RunState::Succeeded,
                    at: done,
                    reason: None,
                }),
            ])
            .unwrap();
        // raw@4 is the newest, raw@1 made the kept report@1: raw@2 and raw@3 go.
        let removed = store.remove_block_versions(1, done).unwrap();
        assert_eq!(
            removed.iter().map(BlockVersion::label).collect::<Vec<_>>(),
            ["raw@2", "raw@3"]
        );
        assert!(removed.iter().all(BlockVersion::is_removed));
        // Removed versions stay readable by number; the newest skips them.
        assert!(
            store
                .block_version("raw", Some(2))
                .unwrap()
                .unwrap()
                .is_removed()
        );
        assert_eq!(
            store.block_version("raw", None).unwrap().unwrap().version,
            4
        );
        let live = store.live_block_content().unwrap();
        assert_eq!(live.len(), 3);
        // Numbering goes on after removed versions.
        let next = store
            .publish_blocks(&jobs[0], &[block("raw", "5")], done)
            .unwrap();
        assert_eq!(next[0].block.version, 5);
    }
}
