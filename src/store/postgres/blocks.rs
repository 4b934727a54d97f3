//! [`BlockStore`] for [`PgStore`]: the DataBlock registry in the tables `block_versions`,
//! `block_productions` and `block_consumptions`, with the records, errors and ordering of the
//! SQLite store.
//!
//! Publishing runs in one write transaction under the environment's write lock, so two jobs
//! publishing the same name at once, on any host, get consecutive versions; reads take one
//! snapshot each. The current attempt of a job (`jobs.attempts`) decides which of its
//! publications and consumptions count for a run: after `retry`, a re-run job's old attempts
//! no longer speak for it.
//!
//! Text is ordered bytewise (`COLLATE "C"`), as SQLite's `BINARY` collation orders it,
//! whatever the database's default collation.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use postgres::Row;
use postgres::types::{FromSql, ToSql, Type};

use super::tx::Tx;

use crate::spec::model::ParamType;
use crate::spec::params::{ParamValue, parse_value};
use crate::state::{JobId, RunId};
use crate::store::error::Error;
use crate::store::{
    BlockKey, BlockKind, BlockStore, BlockSummary, BlockVersion, BlockVersionId, ContentHash,
    JobAttempt, JobBlocks, Lineage, LineageLink, NewBlock, Published,
};

use super::{PgStore, to_ms, to_sql_u64};

/// A version with the attempt that created it (`p`, absent for a version whose creating
/// publication row is gone).
const VERSION_SELECT: &str = "SELECT v.id, v.name, v.version, v.hash, v.kind, v.size, v.files, \
     v.file_name, v.executable, v.created_at, v.removed_at, \
     p.run_id, p.workflow, p.job_id, p.job_name, p.job_base, p.attempt \
     FROM block_versions v \
     LEFT JOIN block_productions p ON p.version_id = v.id AND p.new = 1";

/// The block and attempt columns of a lineage link; `x` is the production or consumption.
/// The name carries its bytewise collation so that `SELECT DISTINCT` may order by it.
const LINK_COLUMNS: &str = "v.name COLLATE \"C\", v.version, v.hash, v.removed_at, \
     x.run_id, x.workflow, x.job_id, x.job_name, x.job_base, x.attempt";

/// The columns after [`LINK_COLUMNS`] of a consumption: its input name and time.
const CONSUMED: &str = "x.input COLLATE \"C\", x.consumed_at";

/// The columns after [`LINK_COLUMNS`] of a publication: whether it was new, and its time.
const PRODUCED: &str = "x.new, x.created_at";

type ConversionError = Box<dyn std::error::Error + Sync + Send>;

/// A BIGINT column read as a figure that must fit `T` (a size, a version, an attempt).
struct Fits<T>(T);

impl<'a, T: TryFrom<i64>> FromSql<'a> for Fits<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let value = i64::from_sql(ty, raw)?;
        T::try_from(value)
            .map(Fits)
            .map_err(|_| format!("{value} is out of range").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// A BIGINT column of milliseconds since the epoch.
struct Millis(DateTime<Utc>);

impl<'a> FromSql<'a> for Millis {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let ms = i64::from_sql(ty, raw)?;
        DateTime::from_timestamp_millis(ms)
            .map(Millis)
            .ok_or_else(|| format!("{ms} ms since the epoch is out of range").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// A TEXT column holding a content hash.
struct Hash(ContentHash);

impl<'a> FromSql<'a> for Hash {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        ContentHash::parse(text)
            .map(Hash)
            .ok_or_else(|| format!("`{text}` is not a SHA-256 hash").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A TEXT column holding a block kind.
struct Kind(BlockKind);

impl<'a> FromSql<'a> for Kind {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Kind(text.parse()?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

fn get_time(row: &Row, index: usize) -> Result<DateTime<Utc>, postgres::Error> {
    Ok(row.try_get::<_, Millis>(index)?.0)
}

fn get_opt_time(row: &Row, index: usize) -> Result<Option<DateTime<Utc>>, postgres::Error> {
    Ok(row.try_get::<_, Option<Millis>>(index)?.map(|time| time.0))
}

fn get_u64(row: &Row, index: usize) -> Result<u64, postgres::Error> {
    Ok(row.try_get::<_, Fits<u64>>(index)?.0)
}

fn get_u32(row: &Row, index: usize) -> Result<u32, postgres::Error> {
    Ok(row.try_get::<_, Fits<u32>>(index)?.0)
}

fn get_flag(row: &Row, index: usize) -> Result<bool, postgres::Error> {
    Ok(row.try_get::<_, i64>(index)? != 0)
}

fn get_hash(row: &Row, index: usize) -> Result<ContentHash, postgres::Error> {
    Ok(row.try_get::<_, Hash>(index)?.0)
}

fn get_kind(row: &Row, index: usize) -> Result<BlockKind, postgres::Error> {
    Ok(row.try_get::<_, Kind>(index)?.0)
}

/// The attempt of columns `from..from + 6`: run, workflow, job id, name, base, attempt.
fn get_attempt(row: &Row, from: usize) -> Result<JobAttempt, postgres::Error> {
    Ok(JobAttempt {
        run_id: RunId(row.try_get(from)?),
        workflow: row.try_get(from + 1)?,
        job_id: JobId(row.try_get(from + 2)?),
        job: row.try_get(from + 3)?,
        job_base: row.try_get(from + 4)?,
        attempt: get_u32(row, from + 5)?,
    })
}

/// A version from the columns of [`VERSION_SELECT`].
fn version_from_row(row: &Row) -> Result<BlockVersion, postgres::Error> {
    let id: i64 = row.try_get(0)?;
    let producer: Option<i64> = row.try_get(11)?;
    Ok(BlockVersion {
        id: BlockVersionId(id),
        seq: id,
        name: row.try_get(1)?,
        version: get_u64(row, 2)?,
        hash: get_hash(row, 3)?,
        kind: get_kind(row, 4)?,
        size: get_u64(row, 5)?,
        files: get_u64(row, 6)?,
        file_name: row.try_get(7)?,
        executable: get_flag(row, 8)?,
        created_at: get_time(row, 9)?,
        removed_at: get_opt_time(row, 10)?,
        produced_by: match producer {
            Some(_) => Some(get_attempt(row, 11)?),
            None => None,
        },
    })
}

/// A link from [`LINK_COLUMNS`] followed by `input`/`new` (column 10) and a time (11).
fn link_from_row(row: &Row, consumption: bool) -> Result<LineageLink, postgres::Error> {
    let (input, new) = if consumption {
        (Some(row.try_get::<_, String>(10)?), None)
    } else {
        (None, Some(get_flag(row, 10)?))
    };
    Ok(LineageLink {
        block: BlockKey {
            name: row.try_get(0)?,
            version: get_u64(row, 1)?,
            hash: get_hash(row, 2)?,
            removed: row.try_get::<_, Option<i64>>(3)?.is_some(),
        },
        job: get_attempt(row, 4)?,
        input,
        new,
        at: get_time(row, 11)?,
    })
}

/// The versions [`VERSION_SELECT`] followed by `clause` finds.
fn versions(
    tx: &mut Tx<'_>,
    clause: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<BlockVersion>, Error> {
    let rows = tx.query(&format!("{VERSION_SELECT} {clause}"), args)?;
    Ok(rows
        .iter()
        .map(version_from_row)
        .collect::<Result<_, _>>()?)
}

fn version_by_id(tx: &mut Tx<'_>, id: i64) -> Result<Option<BlockVersion>, Error> {
    Ok(versions(tx, "WHERE v.id = $1", &[&id])?.pop())
}

/// The version `id`, which this transaction wrote: its absence is a database error.
fn written_version(tx: &mut Tx<'_>, id: i64) -> Result<BlockVersion, Error> {
    let row = tx.query_one(&format!("{VERSION_SELECT} WHERE v.id = $1"), &[&id])?;
    Ok(version_from_row(&row)?)
}

/// The lineage links `sql` finds for its one parameter `id`.
fn links(
    tx: &mut Tx<'_>,
    sql: &str,
    id: i64,
    consumption: bool,
) -> Result<Vec<LineageLink>, Error> {
    let rows = tx.query(sql, &[&id])?;
    Ok(rows
        .iter()
        .map(|row| link_from_row(row, consumption))
        .collect::<Result<_, _>>()?)
}

impl BlockStore for PgStore {
    /// The `--blocks` folder, or this host's cache of the `--blocks` object store: a
    /// PostgreSQL environment has no folder of its own that every host reaches.
    fn blocks_dir(&self) -> Result<PathBuf, Error> {
        self.blocks
            .as_ref()
            .map(|blocks| blocks.local_dir(&self.dir))
            .ok_or(Error::NoBlocksLocation)
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
        self.read(|tx| {
            let found = match version {
                Some(version) => versions(
                    tx,
                    "WHERE v.name = $1 AND v.version = $2",
                    &[&name, &to_sql_u64(version)],
                )?,
                None => versions(
                    tx,
                    "WHERE v.name = $1 AND v.removed_at IS NULL ORDER BY v.version DESC LIMIT 1",
                    &[&name],
                )?,
            };
            Ok(found.into_iter().next())
        })
    }

    fn block_versions(&self, name: &str) -> Result<Vec<BlockVersion>, Error> {
        self.read(|tx| versions(tx, "WHERE v.name = $1 ORDER BY v.version DESC", &[&name]))
    }

    fn block_names(&self) -> Result<Vec<BlockSummary>, Error> {
        self.read(|tx| {
            let newest = versions(
                tx,
                "WHERE v.removed_at IS NULL AND v.version = (SELECT max(m.version) \
                 FROM block_versions m WHERE m.name = v.name AND m.removed_at IS NULL) \
                 ORDER BY v.name COLLATE \"C\"",
                &[],
            )?;
            let count = tx.prepare(
                "SELECT count(*) FROM block_versions WHERE name = $1 AND removed_at IS NULL",
            )?;
            let mut out = Vec::with_capacity(newest.len());
            for latest in newest {
                let versions: i64 = tx.query_one(&count, &[&latest.name])?.try_get(0)?;
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
        self.read(|tx| {
            let id: Option<i64> = tx
                .query_opt(
                    "SELECT q.version_id FROM block_productions q \
                     JOIN jobs j ON j.id = q.job_id AND j.attempts = q.attempt \
                     JOIN block_versions v ON v.id = q.version_id \
                     WHERE q.run_id = $1 AND q.job_base = $2 AND v.name = $3 \
                     ORDER BY q.id DESC LIMIT 1",
                    &[&run.0, &job_base, &block],
                )?
                .map(|row| row.try_get(0))
                .transpose()?;
            match id {
                Some(id) => version_by_id(tx, id),
                None => Ok(None),
            }
        })
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
        let (attempt, at) = (i64::from(consumer.attempt), to_ms(at));
        self.write(|tx| {
            // A second record of one input of one attempt replaces the first, as SQLite's
            // `INSERT OR REPLACE` does.
            let insert = tx.prepare(
                "INSERT INTO block_consumptions (job_id, attempt, input, version_id, \
                 run_id, workflow, job_name, job_base, consumed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (job_id, attempt, input) DO UPDATE SET \
                 version_id = EXCLUDED.version_id, run_id = EXCLUDED.run_id, \
                 workflow = EXCLUDED.workflow, job_name = EXCLUDED.job_name, \
                 job_base = EXCLUDED.job_base, consumed_at = EXCLUDED.consumed_at",
            )?;
            for (input, version) in inputs {
                tx.execute(
                    &insert,
                    &[
                        &consumer.job_id.0,
                        &attempt,
                        input,
                        &version.0,
                        &consumer.run_id.0,
                        &consumer.workflow,
                        &consumer.job,
                        &consumer.job_base,
                        &at,
                    ],
                )?;
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
        let (attempt, at) = (i64::from(producer.attempt), to_ms(at));
        self.write(|tx| {
            let newest_of = tx.prepare(
                "SELECT id, version, hash, kind, removed_at FROM block_versions \
                 WHERE name = $1 ORDER BY version DESC LIMIT 1",
            )?;
            let insert_version = tx.prepare(
                "INSERT INTO block_versions (name, version, hash, kind, size, files, \
                 file_name, executable, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )?;
            let insert_production = tx.prepare(
                "INSERT INTO block_productions (version_id, run_id, workflow, job_id, \
                 job_name, job_base, attempt, new, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?;
            let mut made = Vec::with_capacity(blocks.len());
            for block in blocks {
                let newest: Option<(i64, i64, String, String, Option<i64>)> = tx
                    .query_opt(&newest_of, &[&block.name])?
                    .map(|row| {
                        Ok::<_, postgres::Error>((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                        ))
                    })
                    .transpose()?;
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
                        let id: i64 = tx
                            .query_one(
                                &insert_version,
                                &[
                                    &block.name,
                                    &version,
                                    &block.hash.as_str(),
                                    &block.kind.as_str(),
                                    &to_sql_u64(block.size),
                                    &to_sql_u64(block.files),
                                    &block.file_name,
                                    &i64::from(block.executable),
                                    &at,
                                ],
                            )?
                            .try_get(0)?;
                        (id, true)
                    }
                };
                tx.execute(
                    &insert_production,
                    &[
                        &id,
                        &producer.run_id.0,
                        &producer.workflow,
                        &producer.job_id.0,
                        &producer.job,
                        &producer.job_base,
                        &attempt,
                        &i64::from(new),
                        &at,
                    ],
                )?;
                made.push((id, new));
            }
            let mut published = Vec::with_capacity(made.len());
            for (id, new) in made {
                let block = written_version(tx, id)?;
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
                    "SELECT {LINK_COLUMNS}, {PRODUCED} FROM block_productions x \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.version_id = $1 ORDER BY x.id"
                ),
                id,
                false,
            )?;
            // The attempt (and, below, the version) only break ties SQLite leaves open.
            let made_from = links(
                tx,
                &format!(
                    "SELECT DISTINCT {LINK_COLUMNS}, {CONSUMED} \
                     FROM block_productions p \
                     JOIN block_consumptions x ON x.job_id = p.job_id AND x.attempt = p.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE p.version_id = $1 \
                     ORDER BY x.run_id, x.job_id, x.input COLLATE \"C\", x.attempt"
                ),
                id,
                true,
            )?;
            let consumed_by = links(
                tx,
                &format!(
                    "SELECT {LINK_COLUMNS}, {CONSUMED} FROM block_consumptions x \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.version_id = $1 \
                     ORDER BY x.consumed_at, x.job_id, x.input COLLATE \"C\", x.attempt"
                ),
                id,
                true,
            )?;
            let used_for = links(
                tx,
                &format!(
                    "SELECT DISTINCT {LINK_COLUMNS}, {PRODUCED} \
                     FROM block_consumptions c \
                     JOIN block_productions x ON x.job_id = c.job_id AND x.attempt = c.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE c.version_id = $1 \
                     ORDER BY x.created_at, x.job_id, v.name COLLATE \"C\", x.attempt, v.version"
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
            for (table, extra, order, consumption) in [
                (
                    "block_consumptions",
                    CONSUMED,
                    "x.input COLLATE \"C\"",
                    true,
                ),
                ("block_productions", PRODUCED, "x.id", false),
            ] {
                let sql = format!(
                    "SELECT {LINK_COLUMNS}, {extra} FROM {table} x \
                     JOIN jobs j ON j.id = x.job_id AND j.attempts = x.attempt \
                     JOIN block_versions v ON v.id = x.version_id \
                     WHERE x.run_id = $1 ORDER BY x.job_id, {order}"
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
        self.read(|tx| {
            versions(
                tx,
                "WHERE v.id > $1 ORDER BY v.id LIMIT $2",
                &[&after, &limit],
            )
        })
    }

    fn block_seq(&self) -> Result<i64, Error> {
        self.read(|tx| {
            let seq: Option<i64> = tx
                .query_one("SELECT max(id) FROM block_versions", &[])?
                .try_get(0)?;
            Ok(seq.unwrap_or(0))
        })
    }

    fn remove_block_versions(
        &self,
        keep: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<BlockVersion>, Error> {
        let at = to_ms(at);
        self.write(|tx| {
            let kept = versions_to_keep(tx, keep)?;
            let live: Vec<i64> = tx
                .query(
                    "SELECT id FROM block_versions WHERE removed_at IS NULL ORDER BY id",
                    &[],
                )?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let mark = tx.prepare("UPDATE block_versions SET removed_at = $2 WHERE id = $1")?;
            let mut removed = Vec::new();
            for id in live.into_iter().filter(|id| !kept.contains(id)) {
                tx.execute(&mark, &[&id, &at])?;
                removed.extend(version_by_id(tx, id)?);
            }
            Ok(removed)
        })
    }

    /// Each content once, in the order of its first version (the order SQLite's `DISTINCT`
    /// scan gives).
    fn live_block_content(&self) -> Result<Vec<(ContentHash, BlockKind)>, Error> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT hash, kind FROM block_versions WHERE removed_at IS NULL \
                 GROUP BY hash, kind ORDER BY min(id)",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|row| Ok::<_, postgres::Error>((get_hash(row, 0)?, get_kind(row, 1)?)))
                .collect::<Result<_, _>>()?)
        })
    }
}

/// The versions `blocks gc --keep N` must keep: the newest `keep` of each name; every
/// version a queued or running run consumed, produced or names in its parameters; and,
/// transitively, whatever the attempts that produced a kept version consumed, so that the
/// lineage of everything kept can still be materialised.
fn versions_to_keep(tx: &mut Tx<'_>, keep: usize) -> Result<HashSet<i64>, Error> {
    let mut kept: HashSet<i64> = HashSet::new();
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    for row in tx.query(
        "SELECT id FROM (SELECT id, row_number() OVER \
         (PARTITION BY name ORDER BY version DESC) AS place \
         FROM block_versions WHERE removed_at IS NULL) AS ranked WHERE place <= $1",
        &[&keep],
    )? {
        kept.insert(row.try_get(0)?);
    }

    let active = "SELECT id FROM runs WHERE status IN ('queued', 'running')";
    for row in tx.query(
        &format!(
            "SELECT version_id FROM block_consumptions WHERE run_id IN ({active}) \
             UNION SELECT version_id FROM block_productions WHERE run_id IN ({active})"
        ),
        &[],
    )? {
        kept.insert(row.try_get(0)?);
    }

    // Parameters of active runs: a datablock parameter is stored as `name@version`.
    let params: Vec<String> = tx
        .query(
            &format!("SELECT params FROM runs WHERE id IN ({active})"),
            &[],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let find = tx.prepare(
        "SELECT id FROM block_versions WHERE name = $1 AND removed_at IS NULL \
         AND ($2::BIGINT IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
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
            if let Some(row) = tx.query_opt(&find, &[&name, &version])? {
                kept.insert(row.try_get(0)?);
            }
        }
    }

    let inputs = tx.prepare(
        "SELECT DISTINCT c.version_id FROM block_productions p \
         JOIN block_consumptions c ON c.job_id = p.job_id AND c.attempt = p.attempt \
         WHERE p.version_id = $1",
    )?;
    let mut pending: Vec<i64> = kept.iter().copied().collect();
    while let Some(id) = pending.pop() {
        for row in tx.query(&inputs, &[&id])? {
            let input: i64 = row.try_get(0)?;
            if kept.insert(input) {
                pending.push(input);
            }
        }
    }
    Ok(kept)
}

/// The SQLite store's tests (but the retry one, in `tests_with_runs` below) and what this
/// store must match besides (bytewise order, a damaged record), with the runs and jobs they
/// need written as rows directly (running, each job in its first attempt), so that they
/// depend on this file alone.
#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::PgStore;
    use super::super::test_support::store;
    use crate::state::RunId;
    use crate::store::{BlockKind, BlockStore, BlockVersion, ContentHash, JobAttempt, NewBlock};

    /// A content hash for test content (the hashing itself is `crate::blocks`'s).
    fn hash_bytes(bytes: &[u8]) -> ContentHash {
        use sha2::Digest;
        ContentHash::from_digest(&sha2::Sha256::digest(bytes))
    }

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

    /// A running run of `wf` with `params` and jobs `names`, each in its first attempt, so
    /// that its publications and consumptions count as the current attempt's.
    fn run_with(store: &PgStore, params: &str, names: &[&str]) -> (RunId, Vec<JobAttempt>) {
        let params = params.to_owned();
        store
            .write(|tx| {
                let run: i64 = tx
                    .query_one(
                        "INSERT INTO runs (workflow, def_hash, status, params, trigger, created_at)
                         VALUES ('wf', 'hash', 'running', $1, '{\"kind\":\"manual\"}', 0)
                         RETURNING id",
                        &[&params],
                    )?
                    .get(0);
                let mut attempts = Vec::new();
                for name in names {
                    let base = name.split('[').next().unwrap_or(name);
                    let job: i64 = tx
                        .query_one(
                            "INSERT INTO jobs (run_id, name, base_name, queue, metadata, needs,
                                               status, attempts, started_at)
                             VALUES ($1, $2, $3, 'default', '{}', '[]', 'running', 1, 0)
                             RETURNING id",
                            &[&run, name, &base],
                        )?
                        .get(0);
                    attempts.push(JobAttempt {
                        run_id: RunId(run),
                        workflow: "wf".into(),
                        job_id: crate::state::JobId(job),
                        job: (*name).to_owned(),
                        job_base: base.to_owned(),
                        attempt: 1,
                    });
                }
                Ok((RunId(run), attempts))
            })
            .unwrap()
    }

    fn started_run(store: &PgStore, names: &[&str]) -> (RunId, Vec<JobAttempt>) {
        run_with(store, "{\"date\": \"2026-01-01\"}", names)
    }

    /// Ends `run` and its jobs as succeeded.
    fn succeed(store: &PgStore, run: RunId) {
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE jobs SET status = 'succeeded' WHERE run_id = $1",
                    &[&run.0],
                )?;
                tx.execute(
                    "UPDATE runs SET status = 'succeeded' WHERE id = $1",
                    &[&run.0],
                )?;
                Ok(())
            })
            .unwrap();
    }

    fn labels(versions: &[BlockVersion]) -> Vec<String> {
        versions.iter().map(BlockVersion::label).collect()
    }

    #[test]
    fn a_new_version_only_when_the_content_changes() {
        let store = store();
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
        let store = store();
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
    fn versions_since_is_the_trigger_hook() {
        let store = store();
        let (_, jobs) = started_run(&store, &["p"]);
        let now = Utc::now();
        assert_eq!(store.block_seq().unwrap(), 0);
        store
            .publish_blocks(&jobs[0], &[block("a", "1"), block("b", "1")], now)
            .unwrap();
        let all = store.block_versions_since(0, 100).unwrap();
        assert_eq!(labels(&all), ["a@1", "b@1"]);
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
        assert_eq!(labels(&new), ["a@2"]);
        // At most `limit`, oldest first.
        assert_eq!(
            labels(&store.block_versions_since(0, 2).unwrap()),
            ["a@1", "b@1"]
        );
    }

    #[test]
    fn gc_keeps_the_newest_active_references_and_their_lineage() {
        let store = store();
        let (run_id, jobs) = started_run(&store, &["p", "q"]);
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
        succeed(&store, run_id);
        // raw@4 is the newest, raw@1 made the kept report@1: raw@2 and raw@3 go.
        let removed = store.remove_block_versions(1, done).unwrap();
        assert_eq!(labels(&removed), ["raw@2", "raw@3"]);
        assert!(removed.iter().all(BlockVersion::is_removed));
        assert_eq!(
            removed[0].removed_at.map(|t| t.timestamp_millis()),
            Some(done.timestamp_millis())
        );
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

    #[test]
    fn gc_keeps_what_an_active_run_names_in_its_parameters() {
        let store = store();
        let (run_id, jobs) = started_run(&store, &["p"]);
        let now = Utc::now();
        for content in ["1", "2", "3", "4"] {
            store
                .publish_blocks(&jobs[0], &[block("raw", content)], now)
                .unwrap();
        }
        store
            .publish_blocks(&jobs[0], &[block("other", "1"), block("other", "2")], now)
            .unwrap();
        succeed(&store, run_id);
        // A queued run names raw@2, and `other` without a version (its newest).
        let (waiting, _) = run_with(
            &store,
            "{\"input\": \"raw@2\", \"extra\": \"other\", \"n\": \"7\", \"bad\": 3}",
            &[],
        );
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE runs SET status = 'queued' WHERE id = $1",
                    &[&waiting.0],
                )?;
                Ok(())
            })
            .unwrap();
        let removed = store.remove_block_versions(1, now).unwrap();
        assert_eq!(labels(&removed), ["raw@1", "raw@3", "other@1"]);
        // Asked again, nothing more goes.
        assert!(store.remove_block_versions(1, now).unwrap().is_empty());
        let names = store.block_names().unwrap();
        assert_eq!(
            names
                .iter()
                .map(|n| (n.latest.label(), n.versions))
                .collect::<Vec<_>>(),
            [("other@2".to_owned(), 1), ("raw@4".to_owned(), 2)]
        );
    }

    #[test]
    fn names_and_inputs_are_ordered_bytewise() {
        let store = store();
        let (run_id, jobs) = started_run(&store, &["p", "q"]);
        let now = Utc::now();
        let names = ["b", "a_x", "B", "a-x", "a.x"];
        let published = store
            .publish_blocks(&jobs[0], &names.map(|name| block(name, name)), now)
            .unwrap();
        let listed: Vec<String> = store
            .block_names()
            .unwrap()
            .into_iter()
            .map(|n| n.latest.name)
            .collect();
        assert_eq!(listed, ["B", "a-x", "a.x", "a_x", "b"]);

        let inputs: Vec<(String, _)> = published
            .iter()
            .map(|p| (format!("{}_in", p.block.name), p.block.id))
            .collect();
        store.record_consumption(&jobs[1], &inputs, now).unwrap();
        let shown = store.run_blocks(run_id).unwrap();
        assert_eq!(
            shown[1]
                .consumed
                .iter()
                .map(|l| l.input.clone().unwrap())
                .collect::<Vec<_>>(),
            ["B_in", "a-x_in", "a.x_in", "a_x_in", "b_in"]
        );
        // Consumed by q, which published nothing: each version's lineage down is q alone.
        let down = store.block_lineage(published[2].block.id).unwrap();
        assert_eq!(down.consumed_by.len(), 1);
        assert_eq!(down.consumed_by[0].input.as_deref(), Some("B_in"));
        assert!(down.used_for.is_empty());
    }

    #[test]
    fn a_consumption_recorded_again_replaces_the_first() {
        let store = store();
        let (run_id, jobs) = started_run(&store, &["p", "q"]);
        let now = Utc::now();
        let one = store
            .publish_blocks(&jobs[0], &[block("raw", "1")], now)
            .unwrap();
        let two = store
            .publish_blocks(&jobs[0], &[block("raw", "2")], now)
            .unwrap();
        store.record_consumption(&jobs[1], &[], now).unwrap();
        store
            .record_consumption(&jobs[1], &[("raw".to_owned(), one[0].block.id)], now)
            .unwrap();
        store
            .record_consumption(&jobs[1], &[("raw".to_owned(), two[0].block.id)], now)
            .unwrap();
        let shown = store.run_blocks(run_id).unwrap();
        assert_eq!(shown[1].consumed.len(), 1);
        assert_eq!(shown[1].consumed[0].block.label(), "raw@2");
        assert!(
            store
                .block_lineage(one[0].block.id)
                .unwrap()
                .consumed_by
                .is_empty()
        );
        assert!(store.publish_blocks(&jobs[0], &[], now).unwrap().is_empty());
    }

    #[test]
    fn the_newest_publication_of_a_fanned_out_job_wins() {
        let store = store();
        let (run_id, jobs) = started_run(&store, &["report[a]", "report[b]"]);
        let now = Utc::now();
        store
            .publish_blocks(&jobs[0], &[block("out", "a")], now)
            .unwrap();
        store
            .publish_blocks(&jobs[1], &[block("out", "b")], now)
            .unwrap();
        let found = store
            .published_in_run(run_id, "report", "out")
            .unwrap()
            .unwrap();
        assert_eq!((found.version, found.hash), (2, hash_bytes(b"b")));
        assert_eq!(found.produced_by.unwrap().job, "report[b]");
        assert!(
            store
                .published_in_run(run_id, "report", "in")
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .published_in_run(run_id, "other", "out")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn live_content_is_listed_once_in_order_of_first_version() {
        let store = store();
        let (_, jobs) = started_run(&store, &["p"]);
        let now = Utc::now();
        let mut folder = block("z", "f");
        folder.kind = BlockKind::Folder;
        store
            .publish_blocks(
                &jobs[0],
                &[block("z", "2"), block("a", "1"), block("c", "2"), folder],
                now,
            )
            .unwrap();
        assert_eq!(
            store.live_block_content().unwrap(),
            [
                (hash_bytes(b"2"), BlockKind::File),
                (hash_bytes(b"1"), BlockKind::File),
                (hash_bytes(b"f"), BlockKind::Folder),
            ]
        );
    }

    #[test]
    fn a_damaged_record_is_an_environment_error() {
        let store = store();
        let (_, jobs) = started_run(&store, &["p"]);
        store
            .publish_blocks(&jobs[0], &[block("raw", "1")], Utc::now())
            .unwrap();
        store
            .write(|tx| {
                tx.execute("UPDATE block_versions SET hash = 'not a hash'", &[])?;
                Ok(())
            })
            .unwrap();
        let error = store.block_version("raw", None).unwrap_err();
        assert!(error.is_environment(), "{error}");
        // The detail is in the error's sources, as SQLite's conversion failure carries it.
        let mut chain = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(&error);
        while let Some(cause) = next {
            chain.push(cause.to_string());
            next = cause.source();
        }
        assert!(
            chain
                .iter()
                .any(|text| text.contains("`not a hash` is not a SHA-256 hash")),
            "{chain:?}"
        );
    }

    #[test]
    fn block_content_lives_only_in_a_folder_given_with_blocks() {
        let store = store();
        let error = store.blocks_dir().expect_err("no folder of its own");
        assert!(error.to_string().contains("--blocks DIR"), "{error}");
        assert!(
            !error.is_environment(),
            "a usage problem, not a broken environment"
        );
        let shared = std::path::PathBuf::from("/mnt/shared/blocks");
        let store = store.with_blocks(Some(crate::store::BlocksLocation::Folder(shared.clone())));
        assert_eq!(store.blocks_dir().expect("given"), shared);
        assert_eq!(store.blocks_remote(), None);
        let remote: crate::store::BlocksLocation = "s3://bucket/flows/".parse().expect("s3");
        let store = store.with_blocks(Some(remote));
        assert_eq!(store.blocks_remote().as_deref(), Some("s3://bucket/flows"));
        assert_eq!(
            store.blocks_dir().expect("a cache"),
            store.dir().join("blocks-cache"),
            "each host caches an object store's content in its own folder"
        );
    }
}

/// The SQLite store's tests that need the run store: a job reset for a retry.
#[cfg(test)]
mod tests_with_runs {
    use chrono::Utc;

    use super::super::test_support::store;
    use crate::state::{JobState, RunId, RunState};
    use crate::store::test_support::{job, run};
    use crate::store::{
        BlockKind, BlockStore, Change, ContentHash, JobAttempt, NewBlock, RunStore, RunTransition,
        Transition,
    };

    fn hash_bytes(bytes: &[u8]) -> ContentHash {
        use sha2::Digest;
        ContentHash::from_digest(&sha2::Sha256::digest(bytes))
    }

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
    fn a_job_reset_for_retry_no_longer_speaks_for_its_run() {
        let store = store();
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
}
