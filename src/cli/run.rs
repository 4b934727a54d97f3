//! `coreflow run FILE`: validate (printing any warnings), create a run, execute it on local
//! workers with live progress, and exit with the run's outcome.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use crate::cli::args::{GlobalArgs, RunArgs};
use crate::cli::env;
use crate::engine::admission::{Request, admit};
use crate::engine::job::scratch_dir;
use crate::engine::setup::{create_run, prepare, runtime_jobs};
use crate::engine::shared::QueueLoadsFn;
use crate::engine::{Control, JobRt, RunShared, Slots, execute};
use crate::error::Error;
use crate::scheduler::QueueLoad;
use crate::spec::params::{self, Overrides, Values};
use crate::spec::{Loaded, load};
use crate::state::{RunId, RunState};
use crate::store::Env;
use crate::store::Owner;
use crate::ui::{self, JUnitWriter, Multi, ProgressMode, Reporter, UiOptions};

pub(super) fn run(global: &GlobalArgs, args: &RunArgs) -> Result<(), Error> {
    let loaded = load(&args.file).map_err(|e| Error::Invalid(Box::new(e)))?;
    // Warnings do not stop a run; they are shown once, before it starts.
    std::io::stderr().write_all(loaded.render_warnings().as_bytes())?;
    let mut overrides = Overrides::parse(&args.params).map_err(|e| Error::Params(vec![e]))?;
    let mut values =
        params::resolve(&loaded.workflow, &IndexMap::new(), &overrides).map_err(Error::Params)?;
    if args.detach {
        let store = env::open(global)?;
        // A missing DataBlock is exit 2 with the usual message, before anything is queued.
        super::blocks::pin(&*store, &loaded, &mut values, &mut overrides)?;
        let source = std::fs::canonicalize(&args.file).ok();
        let request = Request {
            loaded: &loaded,
            params: &args.params,
            trigger: serde_json::json!({ "type": "manual" }),
            source: source.as_deref().and_then(|p| p.to_str()),
            now: store.clock().now(),
            fire: None,
        };
        let admission = admit(&store, &request)?;
        return super::queue::print_admission(global, &admission);
    }
    let prepared = prepare(&loaded, &values, &args.only, true)?;
    // A request no local worker can ever meet stops the run before anything starts.
    let offer = crate::scheduler::resources::Offer::of_host(args.offer.cpus, args.offer.memory);
    for job in &prepared {
        if let Some(why) = offer.never_fits(job.new.request) {
            return Err(crate::engine::EngineError::Resources(format!(
                "job `{}` {why}",
                job.plan.name
            ))
            .into());
        }
    }
    // Every secret must be readable before anything starts; jobs read them again as they
    // start, and never record them.
    let process_env: BTreeMap<String, String> = std::env::vars().collect();
    crate::engine::secrets::resolve(&loaded.workflow, &process_env)
        .map_err(crate::engine::EngineError::from)?;
    // A report that cannot be written (a folder, no permission) stops the run before it is
    // created: a CI job must not pass green without its report.
    let junit = junit_writer(args.junit.as_deref())?;
    let store = env::open(global)?;
    super::blocks::pin(&*store, &loaded, &mut values, &mut overrides)?;
    let source = std::fs::canonicalize(&args.file).ok();
    let (run_id, ids) = create_run(
        &*store,
        &loaded,
        &values,
        &overrides,
        &prepared,
        source.as_deref().and_then(|p| p.to_str()),
        crate::engine::setup::Origin {
            trigger: serde_json::json!({ "type": "manual" }),
            fire: None,
            owner: Some(Owner::current()),
            parent: None,
        },
    )
    .map_err(Error::Store)?;
    let mut trigger = serde_json::json!({ "type": "manual" });
    crate::engine::setup::record_job_params(&mut trigger, &overrides);
    tracing::debug!(run = run_id.0, workflow = %loaded.name, jobs = ids.len(), "run created");
    let jobs = runtime_jobs(&prepared, &ids);
    let foreground = Foreground {
        progress: args.progress,
        junit,
        workers: args.workers,
        offer,
    };
    foreground.execute(
        global, &store, &loaded, values, overrides, trigger, run_id, jobs,
    )
}

/// The `--junit` report's writer, created before anything runs.
///
/// # Errors
/// The report cannot be created at `path` (exit 2).
pub(super) fn junit_writer(path: Option<&Path>) -> Result<Option<JUnitWriter>, Error> {
    path.map(|path| JUnitWriter::create(path).map_err(|e| Error::Usage(e.to_string())))
        .transpose()
}

/// How a run executes in the foreground: shared by `run` and `retry`.
pub(super) struct Foreground {
    pub(super) progress: ProgressMode,
    pub(super) junit: Option<JUnitWriter>,
    pub(super) workers: Option<u16>,
    /// What the host offers jobs' `resources`.
    pub(super) offer: crate::scheduler::resources::Offer,
}

impl Foreground {
    /// Executes `jobs` of run `run_id` with live progress and returns its exit.
    #[expect(
        clippy::too_many_arguments,
        reason = "the pieces of a run, gathered once"
    )]
    pub(super) fn execute(
        self,
        global: &GlobalArgs,
        store: &Env,
        loaded: &Loaded,
        values: Values,
        overrides: Overrides,
        trigger: serde_json::Value,
        run_id: RunId,
        jobs: Vec<JobRt>,
    ) -> Result<(), Error> {
        let options = UiOptions::from_env(self.progress, global.color, global.quiet);
        let mut reporter: Box<dyn Reporter> = ui::reporter(&options);
        if let Some(junit) = self.junit {
            reporter = Box::new(Multi(vec![reporter, Box::new(junit)]));
        }
        let workers = self.workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, usize::from),
            usize::from,
        );
        let shared = Arc::new(RunShared {
            run_id,
            workflow: loaded.workflow.clone(),
            workflow_name: loaded.name.clone(),
            dir: loaded.dir.clone(),
            tmp: scratch_dir(store.dir(), run_id)?,
            store: Arc::clone(store),
            reporter: Mutex::new(reporter),
            params: values,
            overrides,
            trigger,
            process_env: std::env::vars().collect::<BTreeMap<_, _>>(),
            queue_loads: Some(queue_loads(Arc::clone(store))),
            dir_resolved: std::sync::OnceLock::new(),
            depth: 0,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Only a workflow with notifiers needs the environment afterwards (and a write to
        // take its notifications): the others end without either.
        let process_env = (!loaded.workflow.notify.is_empty()).then(|| shared.process_env.clone());
        let slots = Slots::new(workers, self.offer);
        let end = runtime.block_on(execute(shared, jobs, slots, Control::Signals));
        // The run has ended and is recorded: its notifiers go out before the exit.
        if let Some(env) = process_env {
            runtime.block_on(crate::engine::notify::send(&**store, run_id, &env));
        }
        finish(run_id.0, end)
    }
}

/// Reads queue limits and load from the environment, for the coordinator.
fn queue_loads(store: Env) -> QueueLoadsFn {
    Arc::new(move || {
        let queues = store.queues().map_err(|e| e.to_string())?;
        Ok(queues
            .into_iter()
            .map(|q| {
                (
                    q.name,
                    QueueLoad {
                        concurrency: q.concurrency,
                        paused: q.paused,
                        running: q.running,
                    },
                )
            })
            .collect())
    })
}

/// The exit of a foreground run: 0, 1, or 130 when a signal stopped it.
pub(super) fn finish(run: i64, end: crate::engine::RunEnd) -> Result<(), Error> {
    if end.interrupted {
        return Err(Error::Interrupted);
    }
    match end.state {
        RunState::Succeeded => Ok(()),
        state => Err(Error::RunFailed {
            run,
            status: state.as_str().to_owned(),
        }),
    }
}
