//! The workflow model of SPEC §2 as Rust types.
//!
//! These types are both what the loader produces (through serde) and the source of the JSON
//! Schema (through schemars), so the schema cannot drift from the parser. Field doc comments
//! become the schema's descriptions, which editors show on hover.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A workflow file: parameters, triggers and a DAG of jobs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "CoreFlow workflow")]
pub struct Workflow {
    /// The workflow's name; defaults to the file name without its extension.
    #[serde(default)]
    pub name: Option<String>,
    /// What the workflow does.
    #[serde(default)]
    pub description: Option<String>,
    /// Typed parameters, overridden with `-p NAME=VALUE`.
    #[serde(default)]
    pub params: IndexMap<String, Param>,
    /// Environment variables for every step.
    #[serde(default)]
    pub env: IndexMap<String, Text>,
    /// What creates runs besides `coreflow run`.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// How many runs may be active at once, and what to do with one more.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// Which missed schedule fires to run after downtime.
    #[serde(default)]
    pub catchup: Option<Catchup>,
    /// Keys inherited by every job; a job's own keys win.
    #[serde(default)]
    pub defaults: Defaults,
    /// The jobs, by name.
    pub jobs: IndexMap<String, Job>,
    /// Notifiers run when a run ends with one of their results: a webhook, a shell command or
    /// an e-mail.
    #[serde(default)]
    pub notify: Vec<Notify>,
    /// Secrets, read when a job starts, given to steps through `${{ secrets.NAME }}` in
    /// `env` values, never stored, and masked (`***`) in output.
    #[serde(default)]
    pub secrets: IndexMap<String, SecretSource>,
    /// What a job calling this workflow (`workflow:`) reads as `needs.<job>.outputs.*`:
    /// templates over `jobs.<name>.outputs.*`.
    #[serde(default)]
    pub outputs: IndexMap<String, Text>,
}

/// A typed workflow parameter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// The parameter's type (default `string`).
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// The value used when none is given.
    #[serde(default)]
    pub default: Option<Text>,
    /// Whether a value must be given (when there is no default).
    #[serde(default)]
    pub required: bool,
    /// The only values allowed.
    #[serde(default)]
    pub choices: Option<Vec<Text>>,
    /// What the parameter means.
    #[serde(default)]
    pub description: Option<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Int,
    Float,
    Bool,
    /// A DataBlock name, optionally `name@version`.
    Datablock,
}

impl ParamType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Datablock => "datablock",
        }
    }
}

/// One JobTrigger: exactly one of `schedule`, `every`, `at`, `file`, `datablock`, `after`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A cron expression: 5 fields, or 6 with seconds first.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The IANA time zone of `schedule` (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fire at this interval of real time.
    #[serde(default)]
    pub every: Option<DurationSpec>,
    /// Fire once, at this RFC 3339 instant.
    #[serde(default)]
    pub at: Option<String>,
    /// Fire once per new or changed file matching a glob.
    #[serde(default)]
    pub file: Option<FileTrigger>,
    /// Fire on each new version of this DataBlock.
    #[serde(default)]
    pub datablock: Option<String>,
    /// Fire when another workflow's run ends.
    #[serde(default)]
    pub after: Option<AfterTrigger>,
    /// Parameter values for runs this trigger creates.
    #[serde(default)]
    pub params: IndexMap<String, Text>,
}

/// A file-arrival trigger.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTrigger {
    /// A glob, relative to the workflow file's folder.
    pub path: String,
    /// How long a file must stay unchanged before it fires.
    #[serde(default)]
    pub settle: Option<DurationSpec>,
}

/// A trigger on another workflow's run ending.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterTrigger {
    /// The other workflow's name.
    pub workflow: String,
    /// Which endings fire (default `success`).
    #[serde(default)]
    pub status: AfterStatus,
}

/// Which run endings an `after` trigger reacts to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AfterStatus {
    #[default]
    Success,
    Failure,
    Any,
}

/// Run concurrency of a workflow.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Most runs active at once (at least 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_runs: Option<u32>,
    /// What a trigger fire does when `max_runs` are active (default `queue`).
    #[serde(default)]
    pub on_overlap: OnOverlap,
    /// With `on_overlap: queue`, the most fires waiting for a run slot (default 100); a fire
    /// beyond it is recorded as a `skipped` run with its reason.
    #[serde(default)]
    pub max_queued: Option<u32>,
}

impl Concurrency {
    /// How many fires may wait for a run slot when none is given.
    pub const DEFAULT_MAX_QUEUED: u32 = 100;

    /// The most fires that may wait for a run slot.
    #[must_use]
    pub fn max_queued(&self) -> usize {
        usize::try_from(self.max_queued.unwrap_or(Self::DEFAULT_MAX_QUEUED)).unwrap_or(usize::MAX)
    }
}

/// The overlap policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnOverlap {
    #[default]
    Queue,
    Skip,
    CancelRunning,
}

/// Which missed schedule fires run after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Catchup {
    None,
    #[default]
    Latest,
    All,
}

/// Keys every job inherits unless it sets its own.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Job timeout.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Retry policy.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// JobQueue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Priority within the queue (higher first).
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Worker labels required.
    #[serde(default)]
    pub runs_on: Option<OneOrMany<Text>>,
    /// Working directory, relative to the workflow file's folder.
    #[serde(default)]
    pub workdir: Option<Text>,
    /// Delay between SIGTERM and SIGKILL when a step is stopped (default 10s).
    #[serde(default)]
    pub cancel_grace: Option<DurationSpec>,
    /// CPUs and memory a job needs where it runs.
    #[serde(default)]
    pub resources: Option<Resources>,
}

/// What a job asks of the host it runs on: it starts only where this fits beside the jobs
/// running there, and `memory` is also a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs (may be fractional: `0.5`).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cpus: Option<f64>,
    /// Memory: `512MiB`, `4GiB`, `300MB`, or bytes. A job whose processes use more is
    /// stopped and fails with reason `memory_limit`.
    #[serde(default)]
    pub memory: Option<MemorySize>,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// Any worker of the pool (the default).
    #[default]
    Shared,
    /// A fresh worker process started for this job alone and ended after it.
    Dedicated,
}

/// A size in bytes, written with a unit: `512MiB`, `4GiB`, `300MB`, `64KiB`, or a number of
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MemorySize(pub u64);

impl MemorySize {
    /// Parses `512MiB`, `4GiB`, `300MB`, `1.5GiB`, `4096`.
    ///
    /// # Errors
    /// Text that is not a number followed by a known unit.
    pub fn parse(text: &str) -> Result<MemorySize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size such as `512MiB` or `4GiB`"))?;
        let factor: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}`: use B, KB, MB, GB, KiB, MiB or GiB"
                ));
            }
        };
        let bytes = number * factor;
        if !bytes.is_finite() || !(1.0..=1e18).contains(&bytes) {
            return Err(format!("`{text}` is not a size between 1 byte and 1 EB"));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked to be within 1 and 1e18 just above"
        )]
        Ok(MemorySize(bytes.round() as u64))
    }
}

impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1024 * 1024;
        const GIB: u64 = 1024 * MIB;
        match self.0 {
            b if b >= GIB && b % GIB == 0 => write!(f, "{}GiB", b / GIB),
            b if b >= MIB && b % MIB == 0 => write!(f, "{}MiB", b / MIB),
            b => write!(f, "{b}B"),
        }
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        MemorySize::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for MemorySize {
    fn schema_name() -> Cow<'static, str> {
        "MemorySize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), or bytes: `512MiB`, `4GiB`.",
            "type": ["string", "integer"],
            "format": "memory",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\\s*$"
        })
    }
}

/// A job: an ordered list of steps run by one worker.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Jobs that must finish first.
    #[serde(default)]
    pub needs: OneOrMany<String>,
    /// The JobQueue this job waits in (default `default`).
    #[serde(default)]
    pub queue: Option<String>,
    /// Priority within the queue (higher first); may be a template.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Worker labels required.
    #[serde(default)]
    pub runs_on: Option<OneOrMany<Text>>,
    /// Values computed when the job is queued; shown in queue listings.
    #[serde(default)]
    pub metadata: IndexMap<String, Text>,
    /// Job-level overrides of workflow parameters.
    #[serde(default)]
    pub params: IndexMap<String, Text>,
    /// Environment variables for this job's steps.
    #[serde(default)]
    pub env: IndexMap<String, Text>,
    /// Working directory, relative to the workflow file's folder (created when missing).
    #[serde(default)]
    pub workdir: Option<Text>,
    /// The steps, run in order (none for a `workflow:` job).
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Run another workflow as this job: a path ending in `.yaml`/`.yml`, relative to this
    /// file's folder, or the name of a workflow the environment knows.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The called workflow's parameters (templates).
    #[serde(default)]
    pub with: IndexMap<String, Text>,
    /// DataBlocks published when the job succeeds.
    #[serde(default)]
    pub datablocks: IndexMap<String, DataBlockDecl>,
    /// DataBlocks of upstream jobs to materialise: `name: job.block`.
    #[serde(default)]
    pub inputs: IndexMap<String, String>,
    /// Run the job only when this expression is true.
    #[serde(rename = "if", default)]
    pub condition: Option<Text>,
    /// Which results of `needs` let the job run (default `all_success`).
    #[serde(default)]
    pub run_if: Option<RunIf>,
    /// Axes to fan the job out over: `job[key=value]` per combination; `include` and
    /// `exclude` work as in GitHub Actions.
    #[serde(default)]
    pub matrix: Matrix,
    /// With a `matrix`: a leg that fails cancels its siblings still queued or running.
    #[serde(default)]
    pub fail_fast: bool,
    /// A failure of this job does not fail the run, and counts as success for its
    /// dependents' `run_if`.
    #[serde(default)]
    pub continue_on_error: bool,
    /// CPUs and memory the job needs where it runs (replaces `defaults.resources`).
    #[serde(default)]
    pub resources: Option<Resources>,
    /// `shared` (default): any worker of the pool; `dedicated`: a fresh worker for this job.
    #[serde(default)]
    pub compute: Compute,
    /// Fan the job out over a list known when its needs end: one job per item, `job[0]`,
    /// `job[1]`, …, the item in `${{ each.value }}`, its position in `${{ each.index }}`.
    #[serde(default)]
    pub for_each: Option<ForEach>,
    /// Most of this job's matrix combinations or `for_each` items running (or queued) at
    /// once.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// Job timeout.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Retry policy.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Delay between SIGTERM and SIGKILL when a step is stopped.
    #[serde(default)]
    pub cancel_grace: Option<DurationSpec>,
}

/// A DataBlock a job produces.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataBlockDecl {
    /// A file or folder, relative to the job's working directory.
    pub path: Text,
}

/// When a job runs, given the results of its needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunIf {
    #[default]
    AllSuccess,
    AllDone,
    NoneFailed,
    AnyFailed,
}

/// One step: a `run:` script, a `command:` argv, or a `sql:` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A name shown in progress and logs (default: `step-N`).
    #[serde(default)]
    pub name: Option<String>,
    /// An id later steps read this step's results by: `steps.<id>.outputs.<key>`,
    /// `steps.<id>.outcome`.
    #[serde(default)]
    pub id: Option<String>,
    /// Working directory of this step, relative to the job's (created when missing).
    #[serde(default)]
    pub workdir: Option<Text>,
    /// A script for the shell.
    #[serde(default)]
    pub run: Option<Text>,
    /// A program and its arguments, run without a shell.
    #[serde(default)]
    pub command: Option<Vec<Text>>,
    /// SQL run in one transaction against SQLite or PostgreSQL, arguments bound.
    #[serde(default)]
    pub sql: Option<SqlStep>,
    /// `sh` (default, `sh -e`), `bash` (`-eo pipefail`), `python3`, or `"CMD {0}"`.
    #[serde(default)]
    pub shell: Option<String>,
    /// Environment variables for this step.
    #[serde(default)]
    pub env: IndexMap<String, Text>,
    /// Step timeout.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// A failure of this step does not fail the job.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Delay between SIGTERM and SIGKILL when this step is stopped.
    #[serde(default)]
    pub cancel_grace: Option<DurationSpec>,
}

/// A `sql:` step: statements run in one transaction; the last one's rows are printed as a
/// table, and the columns of its first row become the job's outputs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlStep {
    /// `sqlite:PATH` (relative to the job's working directory) or `postgres://…`.
    pub url: Text,
    /// The statements. Not a template: values go in `args`, bound as `?1…` (SQLite) or
    /// `$1…` (PostgreSQL), never spliced into the text.
    #[serde(default)]
    pub query: Option<String>,
    /// A file holding the statements instead of `query` (relative to the job's working
    /// directory).
    #[serde(default)]
    pub file: Option<Text>,
    /// Values bound to the statements' parameters, in order.
    #[serde(default)]
    pub args: Vec<Text>,
}

/// A retry policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, including the first (at least 1).
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Delay before the second attempt (default 1s).
    #[serde(default)]
    pub delay: Option<DurationSpec>,
    /// How the delay grows (default `exponential`, factor 2).
    #[serde(default)]
    pub backoff: Backoff,
    /// Upper bound of the delay (default 5m).
    #[serde(default)]
    pub max_delay: Option<DurationSpec>,
    /// Add up to 10% of random delay.
    #[serde(default)]
    pub jitter: bool,
}

/// How retry delays grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Constant,
    Linear,
    #[default]
    Exponential,
}

impl Retry {
    /// The delay before attempt `next` (2 for the first retry), before jitter.
    #[must_use]
    pub fn delay_before(&self, next: u32) -> Duration {
        let base = self
            .delay
            .as_ref()
            .map_or(Duration::from_secs(1), DurationSpec::get);
        let cap = self
            .max_delay
            .as_ref()
            .map_or(Duration::from_secs(300), DurationSpec::get);
        let n = next.saturating_sub(1).max(1);
        let delay = match self.backoff {
            Backoff::Constant => base,
            Backoff::Linear => base.saturating_mul(n),
            Backoff::Exponential => base.saturating_mul(2u32.saturating_pow(n - 1)),
        };
        delay.min(cap)
    }
}

/// Text where YAML may have written a number or a bool: `PORT: 8080` is the text `8080`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl Workflow {
    /// Adds to each job's `needs` the jobs whose DataBlocks it reads (`inputs: { x: job.block }`
    /// implies `needs: [job]`, as in GitHub Actions a job's outputs do).
    pub fn imply_needs(&mut self) {
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for job in self.jobs.values_mut() {
            for source in job.inputs.values() {
                let Some((producer, _)) = source.split_once('.') else {
                    continue;
                };
                if names.iter().any(|name| name == producer)
                    && !job.needs.iter().any(|need| need == producer)
                {
                    job.needs.0.push(producer.to_owned());
                }
            }
        }
    }
}

/// A notifier: give exactly one of `webhook`, `run` and `email`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The run results that send it (default `[failure]`).
    #[serde(default = "Notify::default_on")]
    pub on: Vec<NotifyOn>,
    /// POST a JSON description of the ended run to a URL.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// A shell script, run in the workflow's folder with `COREFLOW_RUN_ID`,
    /// `COREFLOW_RUN_STATUS` and `COREFLOW_WORKFLOW`.
    #[serde(default)]
    pub run: Option<String>,
    /// An e-mail through the SMTP server of `COREFLOW_SMTP_URL`.
    #[serde(default)]
    pub email: Option<Email>,
}

impl Notify {
    fn default_on() -> Vec<NotifyOn> {
        vec![NotifyOn::Failure]
    }
}

/// A run result a notifier is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Success,
    /// Failed (a job failed or timed out).
    Failure,
    Cancelled,
    /// Any of the three.
    Any,
}

/// A webhook notifier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// An environment variable holding the key of the `X-CoreFlow-Signature` HMAC-SHA256.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// An e-mail notifier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// Recipients.
    pub to: Vec<String>,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable of the process that starts the job.
    Env {
        /// The variable's name.
        env: String,
    },
    /// A file (its trailing line break is not part of the value).
    File {
        /// The file's path.
        file: String,
    },
}

/// A job's matrix: axes whose values are multiplied out, and GitHub Actions' `include` and
/// `exclude`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Matrix {
    /// The axes, in the order written.
    #[serde(flatten)]
    pub axes: IndexMap<String, Axis>,
    /// Combinations extended, or added when they extend none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<IndexMap<String, Text>>,
    /// Combinations dropped: each entry drops every combination it matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<IndexMap<String, Text>>,
}

/// A matrix axis's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Axis {
    /// Written out.
    Values(Vec<Text>),
    /// A template rendering to a JSON array when the run is created (`${{ params.systems }}`).
    Template(Text),
}

impl Matrix {
    /// Whether the job has no matrix at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty() && self.include.is_empty()
    }

    /// Every key a combination may hold: the axes, then keys that only `include` adds.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let mut keys: Vec<&str> = self.axes.keys().map(String::as_str).collect();
        for entry in &self.include {
            for key in entry.keys() {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
        keys.into_iter()
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MatrixVisitor;
        impl<'de> Visitor<'de> for MatrixVisitor {
            type Value = Matrix;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of axes, `include` and `exclude`")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Matrix, A::Error> {
                let mut matrix = Matrix::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "include" => matrix.include = map.next_value()?,
                        "exclude" => matrix.exclude = map.next_value()?,
                        _ => {
                            let axis = map.next_value()?;
                            matrix.axes.insert(key, axis);
                        }
                    }
                }
                Ok(matrix)
            }
        }
        deserializer.deserialize_map(MatrixVisitor)
    }
}

impl<'de> Deserialize<'de> for Axis {
    // By hand rather than `untagged`: an untagged enum buffers scalars as numbers, and an
    // axis value `3.10` must stay the text `3.10`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AxisVisitor;
        impl<'de> Visitor<'de> for AxisVisitor {
            type Value = Axis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of values, or a template rendering to a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Axis, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Text>()? {
                    values.push(value);
                }
                Ok(Axis::Values(values))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Axis, E> {
                Ok(Axis::Template(Text(text.to_owned())))
            }
        }
        deserializer.deserialize_any(AxisVisitor)
    }
}

impl JsonSchema for Matrix {
    fn schema_name() -> Cow<'static, str> {
        "Matrix".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let text = generator.subschema_for::<Text>();
        json_schema!({
            "description": "Axes (a list of values, or a template rendering to a JSON array when the run is created), and GitHub Actions' `include` and `exclude`.",
            "type": "object",
            "properties": {
                "include": {
                    "description": "Each entry extends the combinations whose axis values it matches (without overwriting them), or is added as a combination of its own when it matches none.",
                    "type": "array",
                    "items": { "type": "object", "additionalProperties": text }
                },
                "exclude": {
                    "description": "Each entry drops every combination that matches all of its keys.",
                    "type": "array",
                    "items": { "type": "object", "additionalProperties": text }
                }
            },
            "additionalProperties": {
                "anyOf": [
                    { "type": "array", "items": text },
                    { "type": "string" }
                ]
            }
        })
    }
}

/// The most items a `for_each` job fans out over: more fail the job.
pub const MAX_FOR_EACH_ITEMS: usize = 10_000;

/// What a `for_each` job fans out over.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ForEach {
    /// The items, written out.
    Items(Vec<serde_json::Value>),
    /// A template rendering to a JSON array (`${{ needs.plan.outputs.shards }}`).
    Template(Text),
}

impl Text {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A priority: an integer, or a template that renders to one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Priority(pub String);

impl JsonSchema for Priority {
    fn schema_name() -> Cow<'static, str> {
        "Priority".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer" },
                { "type": "string", "pattern": "\\$\\{\\{" }
            ],
            "format": "priority"
        })
    }
}

/// A duration such as `500ms`, `10s`, `5m` or `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DurationSpec {
    #[serde(skip)]
    value: Duration,
    text: String,
}

impl DurationSpec {
    /// Parses a duration as the workflow format writes it.
    ///
    /// # Errors
    /// What was expected.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        parse_duration(text).map(|value| DurationSpec {
            value,
            text: text.to_owned(),
        })
    }

    #[must_use]
    pub fn get(&self) -> Duration {
        self.value
    }
}

/// The longest duration accepted: 100 years. Longer ones (up to 584 billion years parse)
/// would overflow the clock arithmetic of timeouts, retries and triggers.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration that does not parse; the text is shown shortened when long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "`{0}` is not a duration: expected a number and a unit, like `500ms`, `10s`, `5m` or `1h30m`"
    )]
    NotADuration(String),
    #[error("`{0}` is too long: a duration is at most 100 years")]
    TooLong(String),
}

/// Parses `500ms`, `10s`, `5m`, `1h30m`, `2d` (units may be combined, largest first or not).
///
/// # Errors
/// What was expected, or that the duration is longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let shown = crate::spec::diag::shown(text);
    let expected = || DurationError::NotADuration(shown.to_string());
    let too_long = || DurationError::TooLong(shown.to_string());
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    match humantime::parse_duration(trimmed) {
        Ok(duration) if duration > MAX_DURATION => Err(too_long()),
        Ok(duration) => Ok(duration),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(_) => Err(expected()),
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DurationSpec::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number and a unit (ms, s, m, h, d), combinable: `500ms`, `10s`, `1h30m`.",
            "type": "string",
            "format": "duration",
            "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*(ns|us|ms|msec|s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)\\s*)+$"
        })
    }
}

/// One value or a list of them: `needs: build` is `needs: [build]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a list of names")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let one = T::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(OneOrMany(vec![one]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "anyOf": [ one.clone(), { "type": "array", "items": one } ]
        })
    }
}

/// The JSON Schema of the workflow format.
#[must_use]
pub fn json_schema() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let schema = settings.into_generator().into_root_schema_for::<Workflow>();
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_spec_forms() {
        for (text, ms) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        for bad in ["", "10", "ten seconds", "s", "-1s", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        for huge in ["36501d", "18446744073709551615s", "99999999999999999999h"] {
            assert_eq!(
                parse_duration(huge).unwrap_err().to_string(),
                format!("`{huge}` is too long: a duration is at most 100 years")
            );
        }
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let retry = Retry {
            max_attempts: 5,
            delay: Some(DurationSpec::parse("1s").unwrap()),
            backoff: Backoff::Exponential,
            max_delay: Some(DurationSpec::parse("3s").unwrap()),
            jitter: false,
        };
        let delays: Vec<u64> = (2..=5).map(|n| retry.delay_before(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 3, 3]);
        let linear = Retry {
            backoff: Backoff::Linear,
            max_delay: None,
            ..retry
        };
        let delays: Vec<u64> = (2..=5).map(|n| linear.delay_before(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 3, 4]);
    }
}
