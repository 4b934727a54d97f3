//! One attempt of one job: render its steps, run them in order as child processes, capture
//! their output, collect `$COREFLOW_OUTPUT`, and report how the attempt ended.
//!
//! The attempt knows nothing of scheduling: the coordinator decides when it starts and what
//! its ending means for the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::engine::JobFailure;
pub use crate::engine::attempt::{AttemptInput, AttemptOutcome};
use crate::engine::context::{LazyValue, StepView, TemplateContext};
use crate::engine::secrets::Masker;
use crate::engine::shared::RunShared;
use crate::scheduler::resources::Request;
use crate::spec::env_key;
use crate::state::{JobId, JobState};
use crate::step::cgroup::Cgroup;
use crate::step::{self, CancelMode, Program, Shell, StepCommand, StepEnd, Stream};
use crate::store::{LogWriter, StepRecord};
use crate::ui::Event;

/// How often the attempt's process tree is sampled when nothing limits its memory: for the
/// live figures of `show` and `jobs`.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often it is sampled when the job has a `memory` limit, so that a tree that went over
/// it is stopped well within a second.
const LIMIT_SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The reason of a job stopped for going over its `memory`.
const MEMORY_LIMIT: &str = "memory_limit";

/// Runs every step of one attempt.
pub async fn run_attempt(
    shared: Arc<RunShared>,
    mut input: AttemptInput,
    cancel: watch::Receiver<Option<CancelMode>>,
) -> AttemptOutcome {
    let started = Instant::now();
    let mut outcome = AttemptOutcome::new(JobState::Succeeded);
    let job_def = &shared.workflow.jobs[input.base.as_str()];
    // Made again after a step with an `id` ends, for `steps.<id>.*`.
    let mut value = LazyValue::default();
    let fail = |outcome: &mut AttemptOutcome, reason: JobFailure| {
        outcome.state = JobState::Failed;
        outcome.reason = Some(reason.0);
    };

    // The working directory: the job's, else the defaults', relative to the workflow file.
    let workdir_text = job_def
        .workdir
        .as_ref()
        .or(shared.workflow.defaults.workdir.as_ref());
    let workdir = match workdir_text {
        Some(text) => match input.context.render(&value, text.as_str(), "`workdir`") {
            Ok(rendered) => {
                let workdir = shared.dir.join(rendered);
                if let Err(err) = std::fs::create_dir_all(&workdir) {
                    fail(
                        &mut outcome,
                        JobFailure(format!(
                            "cannot create the working directory {}: {err}",
                            workdir.display()
                        )),
                    );
                    return finish(outcome, started);
                }
                std::fs::canonicalize(&workdir).unwrap_or(workdir)
            }
            Err(reason) => {
                fail(&mut outcome, reason);
                return finish(outcome, started);
            }
        },
        // The workflow's folder exists; should it vanish, the spawn says so.
        None => shared.default_workdir().to_owned(),
    };

    // Environment shared by every step: workflow env, job env, identity, params, matrix.
    let mut base_env: Vec<(String, String)> = Vec::new();
    for (key, text) in shared.workflow.env.iter().chain(job_def.env.iter()) {
        match input
            .context
            .render(&value, text.as_str(), &format!("`env.{key}`"))
        {
            Ok(rendered) => base_env.push((key.clone(), rendered)),
            Err(reason) => {
                fail(&mut outcome, reason);
                return finish(outcome, started);
            }
        }
    }
    base_env.push(("COREFLOW_RUN_ID".into(), shared.run_id.to_string()));
    base_env.push(("COREFLOW_WORKFLOW".into(), shared.workflow_name.clone()));
    base_env.push(("COREFLOW_JOB".into(), input.name.clone()));
    base_env.push(("COREFLOW_ATTEMPT".into(), input.attempt.to_string()));
    base_env.push(("COREFLOW_WORKSPACE".into(), workdir.display().to_string()));
    for (name, param) in &input.context.params {
        base_env.push((
            format!("COREFLOW_PARAM_{}", env_key(name)),
            param.to_string(),
        ));
    }
    for (key, value) in &input.context.matrix {
        base_env.push((format!("COREFLOW_MATRIX_{}", env_key(key)), value.clone()));
    }
    if let Some(each) = &input.context.each {
        base_env.push(("COREFLOW_EACH_INDEX".into(), each.index.to_string()));
        let value = each
            .value
            .as_str()
            .map_or_else(|| each.value.to_string(), str::to_owned);
        base_env.push(("COREFLOW_EACH_VALUE".into(), value));
    }

    // DataBlocks the job reads, materialised before the first step (SPEC §2 `inputs`).
    let inputs = match crate::engine::blocks::materialise_inputs(&shared, &input, &workdir).await {
        Ok(inputs) => inputs,
        Err(reason) => {
            fail(&mut outcome, reason);
            return finish(outcome, started);
        }
    };
    base_env.extend_from_slice(inputs.env());

    let deadline = input.timeout.map(|t| started + t);
    // `resources:`: the attempt's own cgroup where the host allows one, and for `memory`
    // a closer watch by the sampler, which stops the steps through their cancel channel.
    let request = Request::of(&shared.workflow, &input.base);
    let cgroup = if request.is_empty() {
        None
    } else {
        let token = input.kill_token.clone();
        tokio::task::spawn_blocking(move || Cgroup::create(&token, request.memory, request.cpus))
            .await
            .ok()
            .flatten()
            .map(Arc::new)
    };
    let (memory, cancel, forwarder) = if request.memory > 0 {
        let (stop, steps_cancel) = watch::channel(*cancel.borrow());
        let watch = Arc::new(MemoryWatch {
            limit: request.memory,
            used: AtomicU64::new(0),
            by_kernel: AtomicBool::new(false),
            cgroup: cgroup.clone(),
            stop,
            cancel: cancel.clone(),
        });
        let forwarder = forward_cancel(cancel, Arc::clone(&watch));
        (Some(watch), steps_cancel, Some(forwarder))
    } else {
        (None, cancel, None)
    };
    let sampler = spawn_sampler(&shared, input.job, &input.kill_token, memory.clone());
    let mut log: Option<LogWriter> = None;
    let mut outputs: Vec<(String, String)> = Vec::new();
    let masker = Masker::new(input.context.secrets.values());
    // Variables earlier steps wrote to `$COREFLOW_EXPORT`, for the later ones.
    let mut exported: Vec<(String, String)> = Vec::new();
    let mut groups: Vec<u32> = Vec::new();

    for (index, step) in job_def.steps.iter().enumerate() {
        // What an earlier step left running went over the limit between two steps.
        if let Some(last) = outcome.steps.last()
            && let Some(watch) = memory.as_deref()
            && watch.is_over()
        {
            let (name, at) = (last.name.clone(), last.index);
            watch.fail(&mut outcome, &name);
            sink_state_line(
                &shared,
                &mut log,
                &input,
                &name,
                at,
                watch.line().as_bytes(),
            );
            break;
        }
        let step_name = step
            .name
            .clone()
            .unwrap_or_else(|| format!("step-{}", index + 1));
        let step_started = shared.now();
        shared.report(&Event::StepStarted {
            ts: step_started,
            job: input.name.clone(),
            step: step_name.clone(),
            index,
        });
        let mut record = StepRecord {
            job: input.job,
            attempt: input.attempt,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            name: step_name.clone(),
            status: JobState::Running,
            exit_code: None,
            started_at: Some(step_started),
            finished_at: None,
        };
        let what = format!("step `{step_name}`");
        let built = step_workdir(&input.context, &value, step, &what, &workdir).and_then(|dir| {
            build_program(&input.context, &value, step, &what, &dir)
                .map(|(program, env)| (dir, program, env))
        });
        let (step_dir, program, step_env) = match built {
            Ok(built) => built,
            Err(reason) => {
                record.status = JobState::Failed;
                record.finished_at = Some(shared.now());
                outcome.steps.push(record);
                outcome.step = Some(step_name);
                fail(&mut outcome, reason);
                break;
            }
        };
        let mut env = base_env.clone();
        env.extend(exported.iter().cloned());
        env.extend(step_env);
        for (key, text) in &step.env {
            match input
                .context
                .render(&value, text.as_str(), &format!("`env.{key}` of {what}"))
            {
                Ok(rendered) => env.push((key.clone(), rendered)),
                Err(reason) => {
                    fail(&mut outcome, reason);
                    break;
                }
            }
        }
        if outcome.state != JobState::Succeeded {
            outcome.step = Some(step_name);
            break;
        }
        let output_file = shared
            .tmp
            .join(format!("{}-{}-{index}.out", input.job, input.attempt));
        let export_file = shared
            .tmp
            .join(format!("{}-{}-{index}.env", input.job, input.attempt));
        env.push(("COREFLOW_STEP".into(), step_name.clone()));
        env.push(("COREFLOW_OUTPUT".into(), output_file.display().to_string()));
        env.push(("COREFLOW_EXPORT".into(), export_file.display().to_string()));

        let step_timeout = step
            .timeout
            .as_ref()
            .map(crate::spec::model::DurationSpec::get);
        let job_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let (timeout, job_limited) = match (step_timeout, job_left) {
            (Some(s), Some(j)) if j < s => (Some(j), true),
            (Some(s), _) => (Some(s), false),
            (None, Some(j)) => (Some(j), true),
            (None, None) => (None, false),
        };
        let grace = step
            .cancel_grace
            .as_ref()
            .map_or(input.grace, crate::spec::model::DurationSpec::get);
        let command = StepCommand {
            program,
            cwd: step_dir,
            env,
            timeout,
            grace,
            kill_token: input.kill_token.clone(),
        };

        let mut sink_state = SinkState {
            shared: &shared,
            log: &mut log,
            job: &input,
            step: &step_name,
            index: record.index,
            masker: &masker,
        };
        let span = tracing::debug_span!("step", job = %input.name, step = %step_name);
        let result =
            step::run_step_in(&command, cgroup.as_deref(), cancel.clone(), &mut sink_state)
                .instrument(span)
                .await;
        record.finished_at = Some(shared.now());
        let step_outputs = collect_outputs(&output_file, &masker, &mut outputs, &mut outcome);
        for (key, value) in read_pairs(&export_file, "$COREFLOW_EXPORT", &mut outcome) {
            if key.starts_with("COREFLOW_") {
                let line = format!("coreflow: $COREFLOW_EXPORT cannot set {key}; ignored");
                sink_state_line(
                    &shared,
                    &mut log,
                    &input,
                    &step_name,
                    record.index,
                    line.as_bytes(),
                );
                continue;
            }
            exported.retain(|(k, _)| *k != key);
            exported.push((key, value));
        }
        let end = match result {
            Ok(report) => {
                outcome.peak_rss_bytes = outcome.peak_rss_bytes.max(report.peak_rss_bytes);
                outcome.cpu_ms += report.cpu_ms;
                if report.pid != 0 {
                    groups.push(report.pid);
                }
                report.end
            }
            Err(err) => {
                let message = format!("coreflow: {err}");
                sink_state_line(
                    &shared,
                    &mut log,
                    &input,
                    &step_name,
                    record.index,
                    message.as_bytes(),
                );
                StepEnd::Exited(err.exit_code())
            }
        };
        let (step_state, code) = match end {
            StepEnd::Exited(0) => (JobState::Succeeded, Some(0)),
            StepEnd::Exited(code) => (JobState::Failed, Some(code)),
            StepEnd::Signaled(signal) => (JobState::Failed, Some(128 + signal)),
            StepEnd::TimedOut => (JobState::TimedOut, None),
            StepEnd::Cancelled => (JobState::Cancelled, None),
        };
        // Over its `memory`: stopped by the sampler (the step then reads as cancelled) or
        // by the kernel in the attempt's cgroup (killed by a signal, or failed for it).
        let over_memory = memory.as_deref().filter(|watch| watch.is_over_after_step());
        let step_state = if over_memory.is_some() {
            JobState::Failed
        } else {
            step_state
        };
        record.status = step_state;
        record.exit_code = code;
        outcome.steps.push(record);
        if let Some(watch) = over_memory {
            watch.fail(&mut outcome, &step_name);
            let at = outcome.steps.last().map_or(0, |record| record.index);
            sink_state_line(
                &shared,
                &mut log,
                &input,
                &step_name,
                at,
                watch.line().as_bytes(),
            );
            break;
        }
        if let Some(id) = &step.id {
            let view = StepView {
                outputs: step_outputs.into_iter().collect(),
                outcome: if step_state == JobState::Succeeded {
                    "success"
                } else {
                    "failure"
                }
                .to_owned(),
            };
            input.context.steps.insert(id.clone(), view);
            value = LazyValue::default();
        }
        match step_state {
            JobState::Succeeded => {}
            JobState::Cancelled => {
                outcome.state = JobState::Cancelled;
                outcome.step = Some(step_name);
                outcome.reason = Some("cancelled".into());
                break;
            }
            JobState::TimedOut if job_limited => {
                outcome.state = JobState::TimedOut;
                outcome.step = Some(step_name);
                outcome.reason = Some(format!(
                    "job timeout of {} reached",
                    humantime::format_duration(input.timeout.unwrap_or_default())
                ));
                break;
            }
            _ if step.continue_on_error => {}
            JobState::TimedOut => {
                outcome.state = JobState::TimedOut;
                outcome.step = Some(step_name);
                outcome.reason = Some(format!(
                    "step timeout of {} reached",
                    humantime::format_duration(timeout.unwrap_or_default())
                ));
                break;
            }
            _ => {
                outcome.state = JobState::Failed;
                outcome.exit_code = code;
                outcome.step = Some(step_name);
                break;
            }
        }
    }
    sampler.abort();
    if let Some(forwarder) = forwarder {
        forwarder.abort();
    }
    if let Some(writer) = log.take() {
        let _ = writer.finish();
    }
    // A step may leave background processes behind; a job's end is theirs too. Checking
    // each step's process group is a cheap signal-0 probe; the full token search (a /proc
    // scan) runs only when something is left.
    let leftovers = groups.iter().any(|&pgid| group_is_alive(pgid));
    let over_memory = memory.as_deref().is_some_and(MemoryWatch::is_over);
    if leftovers || over_memory || matches!(outcome.state, JobState::TimedOut | JobState::Cancelled)
    {
        let token = input.kill_token.clone();
        let grace = input.grace.min(Duration::from_secs(2));
        let _ =
            tokio::task::spawn_blocking(move || step::kill_token_processes(&token, grace)).await;
    }
    // What is left in the attempt's cgroup (a process that shed its token) ends too.
    if let Some(cgroup) = cgroup {
        let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
    }
    // Publishes the declared DataBlocks if the attempt succeeded; removes its inputs.
    crate::engine::blocks::finish_attempt(&shared, &input, &workdir, inputs, &mut outcome).await;
    outcome.outputs = outputs;
    finish(outcome, started)
}

/// Samples the attempt's process tree (every process carrying its kill token) while it runs
/// and stores the peak memory and CPU time so far, every second, so `show` and `jobs` see a
/// long job's figures live. Jobs shorter than a second cost nothing. For a job with a
/// `memory` limit (its watch in `memory`) it samples five times a second and tells the
/// watch what it saw; the store still gets the figures once a second.
fn spawn_sampler(
    shared: &Arc<RunShared>,
    job: JobId,
    token: &str,
    memory: Option<Arc<MemoryWatch>>,
) -> tokio::task::JoinHandle<()> {
    let shared = Arc::clone(shared);
    let token = token.to_owned();
    tokio::spawn(async move {
        let mut peak = 0;
        let every = if memory.is_some() {
            LIMIT_SAMPLE_EVERY
        } else {
            SAMPLE_EVERY
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stored: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            let token = token.clone();
            let memory = memory.clone();
            let Ok(sample) = tokio::task::spawn_blocking(move || {
                let sample = step::sample_tree(0, &token);
                if let Some(watch) = memory {
                    watch.observe(sample.rss_bytes);
                    watch.check_kernel();
                }
                sample
            })
            .await
            else {
                return;
            };
            if sample.processes == 0 {
                continue;
            }
            peak = peak.max(sample.rss_bytes);
            // The store sees the figures once a second, however often the tree is sampled.
            let now = tokio::time::Instant::now();
            if stored.is_some_and(|at| now.duration_since(at) + every / 2 < SAMPLE_EVERY) {
                continue;
            }
            stored = Some(now);
            let change = crate::store::Change::Usage {
                job,
                peak_rss_bytes: peak,
                cpu_ms: sample.cpu_ms,
            };
            let _ = shared.store.apply(&[change]);
        }
    })
}

/// An attempt's `memory` limit as the sampler and the attempt's loop see it: whether the
/// tree went over it, by how much, and the channel that stops the running step.
struct MemoryWatch {
    /// The limit, in bytes.
    limit: u64,
    /// The resident memory seen when the tree went over the limit; 0 until it did.
    used: AtomicU64,
    /// Whether the kernel found it over, in the attempt's cgroup.
    by_kernel: AtomicBool,
    cgroup: Option<Arc<Cgroup>>,
    /// The steps' cancel channel: the job's own, forwarded, and the stop for the limit.
    stop: watch::Sender<Option<CancelMode>>,
    /// The job's cancel channel: a cancel that came first is the reason, not the limit.
    cancel: watch::Receiver<Option<CancelMode>>,
}

impl MemoryWatch {
    /// Notes a sample of the tree's resident memory; over the limit, stops the running
    /// step as a timeout does (SIGTERM, the grace, SIGKILL).
    fn observe(&self, rss_bytes: u64) {
        if rss_bytes > self.limit {
            self.go_over(rss_bytes);
        }
    }

    /// Whether the kernel killed a process of the attempt's cgroup for its memory; if so
    /// (and no cancel came first) the attempt is over its limit, and what is left of the
    /// step is stopped.
    fn check_kernel(&self) -> bool {
        let Some(cgroup) = &self.cgroup else {
            return false;
        };
        if cgroup.oom_kills() == 0 {
            return false;
        }
        if self.used.load(Ordering::SeqCst) == 0 {
            self.by_kernel.store(true, Ordering::SeqCst);
        }
        self.go_over(cgroup.peak().unwrap_or(self.limit).max(self.limit));
        self.is_over()
    }

    fn go_over(&self, used: u64) {
        if self.cancel.borrow().is_some() {
            return;
        }
        if self
            .used
            .compare_exchange(0, used.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::debug!(used, limit = self.limit, "over the memory limit");
            self.stop.send_if_modified(|mode| {
                let stopping = mode.is_none();
                if stopping {
                    *mode = Some(CancelMode::Graceful);
                }
                stopping
            });
        }
    }

    /// Whether the tree went over the limit.
    fn is_over(&self) -> bool {
        self.used.load(Ordering::SeqCst) > 0
    }

    /// Whether the tree went over the limit, by the time a step ended: the kernel's kill
    /// ends the step before the sampler's next look, so the cgroup is read now too.
    fn is_over_after_step(&self) -> bool {
        self.is_over() || self.check_kernel()
    }

    /// Ends the attempt `failed` with reason `memory_limit`, in `step`.
    fn fail(&self, outcome: &mut AttemptOutcome, step: &str) {
        outcome.state = JobState::Failed;
        outcome.exit_code = None;
        outcome.step = Some(step.to_owned());
        outcome.reason = Some(MEMORY_LIMIT.to_owned());
    }

    /// The line the job's log gets: the figures.
    fn line(&self) -> String {
        let used = mebibytes(self.used.load(Ordering::SeqCst));
        let limit = mebibytes(self.limit);
        if self.by_kernel.load(Ordering::SeqCst) {
            format!(
                "coreflow: {MEMORY_LIMIT}: {used} used, {limit} allowed (stopped by the kernel)"
            )
        } else {
            format!("coreflow: {MEMORY_LIMIT}: {used} used, {limit} allowed")
        }
    }
}

/// Passes the job's cancels on to the steps' channel, which the memory watch also sends to.
fn forward_cancel(
    mut cancel: watch::Receiver<Option<CancelMode>>,
    watch: Arc<MemoryWatch>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while cancel.changed().await.is_ok() {
            let mode = *cancel.borrow_and_update();
            if mode.is_some() {
                watch.stop.send_replace(mode);
            }
        }
    })
}

/// Bytes in MiB, as the log shows them: `64 MiB`, `95.4 MiB`.
fn mebibytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        #[expect(
            clippy::cast_precision_loss,
            reason = "a figure for people, one decimal"
        )]
        let mib = bytes as f64 / MIB as f64;
        format!("{mib:.1} MiB")
    }
}

fn finish(mut outcome: AttemptOutcome, started: Instant) -> AttemptOutcome {
    outcome.duration = started.elapsed();
    if outcome.state == JobState::Succeeded && outcome.exit_code.is_none() {
        outcome.exit_code = Some(0);
    }
    outcome
}

fn group_is_alive(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// The program a step runs, and variables only it gets: a `sql:` step is this binary's
/// `sql-step` command with its rendered request in [`step::SQL_REQUEST_VAR`], so that it is
/// started, timed, cancelled and captured as every other step is.
fn build_program(
    context: &TemplateContext,
    value: &LazyValue,
    step: &crate::spec::model::Step,
    what: &str,
    workdir: &Path,
) -> Result<(Program, Vec<(String, String)>), JobFailure> {
    if let Some(sql) = &step.sql {
        return sql_program(context, value, sql, what, workdir);
    }
    build_process(context, value, step, what).map(|program| (program, Vec::new()))
}

fn sql_program(
    context: &TemplateContext,
    value: &LazyValue,
    sql: &crate::spec::model::SqlStep,
    what: &str,
    workdir: &Path,
) -> Result<(Program, Vec<(String, String)>), JobFailure> {
    let url = context.render(value, sql.url.as_str(), &format!("`sql.url` of {what}"))?;
    let query = match (&sql.query, &sql.file) {
        (Some(query), _) => query.clone(),
        (None, Some(file)) => {
            let file = context.render(value, file.as_str(), &format!("`sql.file` of {what}"))?;
            let path = workdir.join(&file);
            std::fs::read_to_string(&path).map_err(|err| {
                JobFailure(format!(
                    "{what}: cannot read `sql.file` {}: {err}",
                    path.display()
                ))
            })?
        }
        (None, None) => {
            return Err(JobFailure(format!(
                "{what}: `sql` has no `query` or `file`"
            )));
        }
    };
    let mut args = Vec::with_capacity(sql.args.len());
    for (i, arg) in sql.args.iter().enumerate() {
        args.push(context.render(value, arg.as_str(), &format!("`sql.args[{i}]` of {what}"))?);
    }
    let request = serde_json::to_string(&step::sql::SqlRequest { url, query, args })
        .map_err(|err| JobFailure(format!("{what}: {err}")))?;
    let exe = std::env::current_exe()
        .map_err(|err| JobFailure(format!("{what}: cannot find the coreflow binary: {err}")))?;
    Ok((
        Program::Argv(vec![exe.display().to_string(), "sql-step".to_owned()]),
        vec![(step::SQL_REQUEST_VAR.to_owned(), request)],
    ))
}

fn build_process(
    context: &TemplateContext,
    value: &LazyValue,
    step: &crate::spec::model::Step,
    what: &str,
) -> Result<Program, JobFailure> {
    if let Some(run) = &step.run {
        let script = context.render(value, run.as_str(), &format!("`run` of {what}"))?;
        let shell = match &step.shell {
            Some(text) => text
                .parse::<Shell>()
                .map_err(|e| JobFailure(format!("{what}: {e}")))?,
            None => Shell::Sh,
        };
        return Ok(Program::Script { shell, script });
    }
    let command = step
        .command
        .as_ref()
        .ok_or_else(|| JobFailure(format!("{what} has no `run` or `command`")))?;
    let mut argv = Vec::with_capacity(command.len());
    for item in command {
        argv.push(context.render(value, item.as_str(), &format!("`command` of {what}"))?);
    }
    Ok(Program::Argv(argv))
}

/// Adds what a step wrote to `$COREFLOW_OUTPUT` to the job's outputs (a later write of a
/// key wins) and returns it.
fn collect_outputs(
    path: &Path,
    masker: &Masker,
    outputs: &mut Vec<(String, String)>,
    outcome: &mut AttemptOutcome,
) -> Vec<(String, String)> {
    let mut pairs = read_pairs(path, "$COREFLOW_OUTPUT", outcome);
    if !masker.is_empty() {
        for (_, value) in &mut pairs {
            *value = masker.mask_str(value).into_owned();
        }
    }
    for (key, value) in &pairs {
        outputs.retain(|(k, _)| k != key);
        outputs.push((key.clone(), value.clone()));
    }
    pairs
}

/// The `NAME=value` / `NAME<<DELIM` lines a step wrote to the file `path` (`$COREFLOW_OUTPUT`
/// or `$COREFLOW_EXPORT`, named `what`), removing it; a file not in that format fails the job.
fn read_pairs(path: &Path, what: &str, outcome: &mut AttemptOutcome) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(path);
    match step::parse_outputs(&text) {
        Ok(pairs) => pairs,
        Err(err) => {
            outcome.state = JobState::Failed;
            outcome.reason = Some(format!("invalid {what}: {err}"));
            Vec::new()
        }
    }
}

/// The working directory of `step`: the job's, or the step's `workdir` under it (created
/// when missing).
fn step_workdir(
    context: &TemplateContext,
    value: &LazyValue,
    step: &crate::spec::model::Step,
    what: &str,
    workdir: &Path,
) -> Result<PathBuf, JobFailure> {
    let Some(text) = &step.workdir else {
        return Ok(workdir.to_owned());
    };
    let rendered = context.render(value, text.as_str(), &format!("`workdir` of {what}"))?;
    let dir = workdir.join(rendered);
    std::fs::create_dir_all(&dir).map_err(|err| {
        JobFailure(format!(
            "{what}: cannot create the working directory {}: {err}",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// Where a step's lines go: the attempt's log file and the reporter.
struct SinkState<'a> {
    shared: &'a RunShared,
    log: &'a mut Option<LogWriter>,
    job: &'a AttemptInput,
    step: &'a str,
    index: u32,
    /// Replaces the job's secrets in every line before it is stored or shown.
    masker: &'a Masker,
}

impl step::Sink for SinkState<'_> {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        SinkState::line(self, stream, line);
    }

    /// A quiet step's last lines reach the log (and `logs --follow` elsewhere) within a
    /// tick, not only with its next line or its end.
    fn tick(&mut self) {
        if let Some(writer) = self.log.as_mut() {
            let _ = writer.flush_if_pending();
        }
    }
}

impl SinkState<'_> {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        let line = &*self.masker.mask(line);
        let ts = self.shared.now();
        if self.log.is_none() {
            *self.log = self
                .shared
                .store
                .log_writer(self.shared.run_id, self.job.job, self.job.attempt)
                .ok();
        }
        if let Some(writer) = self.log.as_mut() {
            let _ = writer.write_line(ts, stream, self.index, self.step, line);
        }
        self.shared
            .output(ts, &self.job.name, self.step, stream, line);
    }
}

fn sink_state_line(
    shared: &RunShared,
    log: &mut Option<LogWriter>,
    job: &AttemptInput,
    step: &str,
    index: u32,
    line: &[u8],
) {
    let mut state = SinkState {
        shared,
        log,
        job,
        step,
        index,
        masker: &Masker::default(),
    };
    state.line(Stream::Stderr, line);
}

/// Creates the per-run scratch folder for `$COREFLOW_OUTPUT` files, as an absolute path
/// (steps run in other folders).
///
/// # Errors
/// The folder cannot be created.
pub fn scratch_dir(env_dir: &Path, run: crate::state::RunId) -> std::io::Result<PathBuf> {
    let dir = env_dir.join("tmp").join(run.to_string());
    crate::store::private::create_dir_all(&dir)?;
    std::fs::canonicalize(&dir)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use tokio::sync::watch;

    use super::{AttemptOutcome, MemoryWatch, mebibytes};
    use crate::state::JobState;
    use crate::step::CancelMode;

    const MIB: u64 = 1024 * 1024;

    fn memory_watch(
        limit: u64,
        cancel: watch::Receiver<Option<CancelMode>>,
    ) -> (MemoryWatch, watch::Receiver<Option<CancelMode>>) {
        let (stop, steps) = watch::channel(None);
        let watch = MemoryWatch {
            limit,
            used: AtomicU64::new(0),
            by_kernel: AtomicBool::new(false),
            cgroup: None,
            stop,
            cancel,
        };
        (watch, steps)
    }

    #[test]
    fn going_over_the_limit_stops_the_steps_once_and_fails_the_attempt() {
        let (_job_cancel, cancel) = watch::channel(None);
        let (watch, steps) = memory_watch(64 * MIB, cancel);
        watch.observe(64 * MIB);
        assert!(!watch.is_over() && !watch.is_over_after_step());
        assert_eq!(*steps.borrow(), None);

        watch.observe(300 * MIB);
        watch.observe(400 * MIB);
        assert!(watch.is_over());
        assert_eq!(*steps.borrow(), Some(CancelMode::Graceful));
        // The figure is the one seen first.
        assert_eq!(
            watch.line(),
            "coreflow: memory_limit: 300 MiB used, 64 MiB allowed"
        );

        let mut outcome = AttemptOutcome::new(JobState::Succeeded);
        outcome.exit_code = Some(0);
        watch.fail(&mut outcome, "build");
        assert_eq!(outcome.state, JobState::Failed);
        assert_eq!(outcome.reason.as_deref(), Some("memory_limit"));
        assert_eq!(outcome.step.as_deref(), Some("build"));
        assert_eq!(outcome.exit_code, None);
    }

    #[test]
    fn a_cancel_that_came_first_is_the_reason() {
        let (job_cancel, cancel) = watch::channel(None);
        let (watch, steps) = memory_watch(MIB, cancel);
        job_cancel.send_replace(Some(CancelMode::Kill));
        watch.observe(2 * MIB);
        assert!(!watch.is_over());
        assert_eq!(*steps.borrow(), None);
    }

    #[test]
    fn figures_read_in_mebibytes() {
        assert_eq!(mebibytes(64 * MIB), "64 MiB");
        assert_eq!(mebibytes(0), "0 MiB");
        assert_eq!(mebibytes(100_000_000), "95.4 MiB");
    }
}
