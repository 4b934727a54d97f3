//! The DataBlock registry: the [`BlockStore`] trait, the records it reads and writes, and the
//! content hash they name (the bytes and the hashing are `crate::blocks`'s).
//!
//! The registry knows names, versions, content hashes, who published what and which blocks
//! each job attempt read; the bytes live in the content store (`crate::blocks::Cas`). Like
//! [`crate::store::RunStore`] the trait speaks in verbs (publish, record what was consumed,
//! resolve a reference), so that a PostgreSQL registry can later sit beside SQLite's.
//!
//! Versions count from 1 per name. A version is never renumbered or reused: `blocks gc`
//! marks it removed (and frees its content), so lineage that mentions it stays readable.
//! Every version row also carries a sequence number that only grows across all names —
//! the hook the daemon's `datablock:` trigger polls ([`BlockStore::block_versions_since`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::state::{JobId, RunId};
use crate::store::Error as StoreError;
use crate::store::rfc3339;

/// A SHA-256 content hash, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    /// The hash of a finished digest.
    #[must_use]
    pub fn from_digest(digest: &[u8]) -> ContentHash {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(digest.len() * 2);
        for byte in digest {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        ContentHash(text)
    }

    /// Parses 64 lowercase hex digits; anything else is `None`.
    #[must_use]
    pub fn parse(text: &str) -> Option<ContentHash> {
        let valid = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| ContentHash(text.to_owned()))
    }

    /// The hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for tables.
    #[must_use]
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    /// The first two digits: the folder an object is stored in, so that no folder of the
    /// content store grows past a few thousand entries.
    #[must_use]
    pub fn shard(&self) -> &str {
        &self.0[..2]
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where DataBlock content lives (`--blocks`, `COREFLOW_BLOCKS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlocksLocation {
    /// A folder: the environment's own (SQLite), or a shared mount every host reaches.
    Folder(PathBuf),
    /// An S3-compatible object store, `s3://bucket/prefix` (credentials, region and
    /// endpoint from the standard `AWS_*` variables); each host keeps what it wrote or read
    /// in a cache folder of its own.
    ObjectStore(String),
}

impl BlocksLocation {
    /// The folder of the content store on this host: the folder itself, or for an object
    /// store the cache inside `private` (the environment's folder, or this host's folder
    /// of a PostgreSQL environment).
    #[must_use]
    pub fn local_dir(&self, private: &std::path::Path) -> PathBuf {
        match self {
            BlocksLocation::Folder(dir) => dir.clone(),
            BlocksLocation::ObjectStore(_) => private.join("blocks-cache"),
        }
    }

    /// The object store's URL, if content lives in one.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        match self {
            BlocksLocation::Folder(_) => None,
            BlocksLocation::ObjectStore(url) => Some(url),
        }
    }
}

impl FromStr for BlocksLocation {
    type Err = String;

    /// `s3://bucket[/prefix]` is an object store; another `SCHEME://` is refused; anything
    /// else is a folder.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("s3://") {
            if rest.split('/').next().is_none_or(str::is_empty) {
                return Err(format!(
                    "`{text}` names no bucket: expected s3://BUCKET[/PREFIX]"
                ));
            }
            return Ok(BlocksLocation::ObjectStore(
                text.trim_end_matches('/').to_owned(),
            ));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(format!(
                "`{text}`: DataBlock content goes in a folder or an S3-compatible store \
                 (s3://BUCKET[/PREFIX]); `{scheme}://` is not supported"
            ));
        }
        Ok(BlocksLocation::Folder(PathBuf::from(text)))
    }
}

impl fmt::Display for BlocksLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlocksLocation::Folder(dir) => write!(f, "{}", dir.display()),
            BlocksLocation::ObjectStore(url) => f.write_str(url),
        }
    }
}

/// The registry of DataBlocks in one environment.
pub trait BlockStore: Send + Sync {
    /// The folder of this environment's content store on this host: the `--blocks` folder
    /// when one was given, the cache folder of an object store, else `<env>/blocks` for
    /// SQLite. A PostgreSQL environment has no folder of its own that every host reaches,
    /// so without `--blocks` this is [`StoreError::NoBlocksLocation`].
    fn blocks_dir(&self) -> Result<PathBuf, StoreError>;

    /// The object store block content lives in (`--blocks s3://…`), whose cache
    /// [`BlockStore::blocks_dir`] is; `None` when content lives in a folder.
    fn blocks_remote(&self) -> Option<String>;

    /// One version of a block: `version`, or the newest one not removed when `None`. A
    /// removed version is returned (its `removed_at` set) when asked for by number.
    fn block_version(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<BlockVersion>, StoreError>;

    /// Every version of `name`, newest first, removed ones included.
    fn block_versions(&self, name: &str) -> Result<Vec<BlockVersion>, StoreError>;

    /// Every name with its newest version not removed (names whose versions are all
    /// removed are left out), by name.
    fn block_names(&self) -> Result<Vec<BlockSummary>, StoreError>;

    /// The version a job of `run` published as `block` in its current attempt: what
    /// `inputs: { x: job.block }` reads. `job_base` is the job's name in the workflow; when
    /// it fans out over a matrix, the newest of its publications wins.
    fn published_in_run(
        &self,
        run: RunId,
        job_base: &str,
        block: &str,
    ) -> Result<Option<BlockVersion>, StoreError>;

    /// Records the blocks one attempt of a job read, as `(input name, version)`.
    fn record_consumption(
        &self,
        consumer: &JobAttempt,
        inputs: &[(String, BlockVersionId)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Publishes what a succeeded attempt produced, all in one transaction: each block gets a
    /// new version when its content differs from its newest version, and the publication is
    /// recorded either way.
    fn publish_blocks(
        &self,
        producer: &JobAttempt,
        blocks: &[NewBlock],
        at: DateTime<Utc>,
    ) -> Result<Vec<Published>, StoreError>;

    /// Lineage of one version, both ways.
    fn block_lineage(&self, version: BlockVersionId) -> Result<Lineage, StoreError>;

    /// The blocks each job of `run` consumed and produced in its current attempt.
    fn run_blocks(&self, run: RunId) -> Result<Vec<JobBlocks>, StoreError>;

    /// Versions created after sequence number `after` (0 for all), oldest first, at most
    /// `limit`: the daemon's `datablock:` trigger remembers the last `seq` it saw and asks
    /// again.
    fn block_versions_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<BlockVersion>, StoreError>;

    /// The highest sequence number so far (0 when nothing was ever published): where a
    /// trigger seen for the first time starts, so that existing versions do not fire it.
    fn block_seq(&self) -> Result<i64, StoreError>;

    /// Marks removed every version `blocks gc --keep N` may drop (see `blocks::gc`) and
    /// returns them.
    fn remove_block_versions(
        &self,
        keep: usize,
        at: DateTime<Utc>,
    ) -> Result<Vec<BlockVersion>, StoreError>;

    /// The content of every version not removed: what the content store must keep.
    fn live_block_content(&self) -> Result<Vec<(ContentHash, BlockKind)>, StoreError>;
}

/// A version's row id, which is also its publish sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BlockVersionId(pub i64);

/// Whether a block is one file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    File,
    Folder,
}

impl BlockKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::File => "file",
            BlockKind::Folder => "folder",
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown kind name read back from the registry.
#[derive(Debug, thiserror::Error)]
#[error("unknown DataBlock kind `{0}`")]
pub struct UnknownKind(String);

impl FromStr for BlockKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<BlockKind, UnknownKind> {
        match text {
            "file" => Ok(BlockKind::File),
            "folder" => Ok(BlockKind::Folder),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

/// One job attempt, as producer or consumer of blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobAttempt {
    pub run_id: RunId,
    pub workflow: String,
    pub job_id: JobId,
    /// Full name: `extract`, `report[format=csv]`.
    pub job: String,
    /// The job's name in the workflow: `report`.
    #[serde(skip)]
    pub job_base: String,
    pub attempt: u32,
}

/// A version of a block: the object of `blocks list --json` and `blocks show --json`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BlockVersion {
    #[serde(skip)]
    pub id: BlockVersionId,
    /// Publish sequence number: grows with every new version of any name.
    pub seq: i64,
    pub name: String,
    pub version: u64,
    pub hash: ContentHash,
    pub kind: BlockKind,
    /// Content bytes (all files, for a folder).
    pub size: u64,
    /// Regular files (1 for a file block).
    pub files: u64,
    /// The file or folder name when it was published: what consumers see.
    pub file_name: String,
    /// A file block whose execute bit was set.
    pub executable: bool,
    #[serde(serialize_with = "rfc3339::required")]
    pub created_at: DateTime<Utc>,
    /// When `blocks gc` removed it.
    #[serde(serialize_with = "rfc3339::optional")]
    pub removed_at: Option<DateTime<Utc>>,
    /// The attempt whose publication created this version.
    pub produced_by: Option<JobAttempt>,
}

impl BlockVersion {
    /// `name@version`.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.removed_at.is_some()
    }
}

/// A name and its newest version: a row of `blocks list`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BlockSummary {
    /// How many versions are not removed.
    pub versions: u64,
    #[serde(flatten)]
    pub latest: BlockVersion,
}

/// Content a job publishes under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlock {
    pub name: String,
    pub hash: ContentHash,
    pub kind: BlockKind,
    pub size: u64,
    pub files: u64,
    pub file_name: String,
    pub executable: bool,
}

/// What publishing one block did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    #[serde(flatten)]
    pub block: BlockVersion,
    /// Whether this publication created the version (else the content was unchanged).
    pub new: bool,
}

/// A block version as lineage and `show` mention it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlockKey {
    pub name: String,
    pub version: u64,
    pub hash: ContentHash,
    /// Whether `blocks gc` removed it.
    pub removed: bool,
}

impl BlockKey {
    /// `name@version`.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One edge of the lineage graph: a job attempt that consumed or produced a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineageLink {
    pub block: BlockKey,
    pub job: JobAttempt,
    /// The input name it was read as (`COREFLOW_INPUT_<NAME>`), for a consumption.
    pub input: Option<String>,
    /// For a publication: whether it created the version.
    pub new: Option<bool>,
    #[serde(serialize_with = "rfc3339::required")]
    pub at: DateTime<Utc>,
}

/// Lineage of one version, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Lineage {
    /// Every publication of this version (the first created it; later ones republished
    /// unchanged content).
    pub produced_by: Vec<LineageLink>,
    /// Up: the blocks the producing attempts consumed.
    pub made_from: Vec<LineageLink>,
    /// The job attempts that consumed this version.
    pub consumed_by: Vec<LineageLink>,
    /// Down: the blocks those consuming attempts published.
    pub used_for: Vec<LineageLink>,
}

/// The blocks one job of a run consumed and produced (its current attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobBlocks {
    pub job_id: JobId,
    pub consumed: Vec<LineageLink>,
    pub produced: Vec<LineageLink>,
}

#[cfg(test)]
mod tests {
    use super::BlocksLocation;
    use std::path::PathBuf;

    #[test]
    fn a_blocks_location_is_a_folder_or_an_s3_url() {
        let folder: BlocksLocation = "/mnt/blocks".parse().unwrap();
        assert_eq!(folder, BlocksLocation::Folder(PathBuf::from("/mnt/blocks")));
        let s3: BlocksLocation = "s3://flows/prod/blocks/".parse().unwrap();
        assert_eq!(s3.url(), Some("s3://flows/prod/blocks"));
        assert_eq!(s3.to_string(), "s3://flows/prod/blocks");
        let bare: BlocksLocation = "s3://flows".parse().unwrap();
        assert_eq!(bare.url(), Some("s3://flows"));
        let none = "s3://".parse::<BlocksLocation>().unwrap_err();
        assert!(none.contains("names no bucket"), "{none}");
        let gcs = "gs://bucket/x".parse::<BlocksLocation>().unwrap_err();
        assert!(gcs.contains("`gs://` is not supported"), "{gcs}");
        // A relative folder with a colon stays a folder.
        let odd: BlocksLocation = "data:blocks".parse().unwrap();
        assert_eq!(odd, BlocksLocation::Folder(PathBuf::from("data:blocks")));
    }
}
