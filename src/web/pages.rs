//! The web UI of SPEC §5: server-side HTML pages over the same store reads as the JSON API
//! ([`super::api`]), with a little plain JavaScript for live updates.
//!
//! # Routes
//!
//! | Route | Page |
//! |---|---|
//! | `GET /` | runs, newest first, 50 a page: `?workflow=NAME&status=STATE&before=RUN_ID` |
//! | `GET /runs/{id}` | a run: header, cancel / retry, the DAG, jobs, streamed output, attempts |
//! | `GET /workflows` | workflows with triggers, next fires and a Run form from their params |
//! | `GET /queues` | queues (pause / resume) and waiting jobs (priority, top, cancel) |
//! | `GET /workers` | live workers |
//! | `GET /blocks`, `GET /blocks/{name}` | DataBlocks; one block's versions with lineage |
//! | `GET /static/app.css`, `GET /static/app.js` | the embedded assets |
//!
//! Every page is one template rendered into `layout.html` (minijinja without the
//! `multi_template` feature has no `{% extends %}`, so the layout takes the rendered body as
//! a safe string). Template names end in `.html`, so minijinja escapes every value; the DAG
//! ([`super::dag::draw`], which escapes what it writes) is the only markup passed as safe.
//! Each page makes one trip to the blocking pool (`blocking`) with a few bounded reads: the
//! runs page one indexed page of runs (51, to know whether an older page exists), the run
//! page the run document ([`run_document`]) and nothing else, the queues page the queues and
//! at most 500 queued and 500 pending jobs, a block page its versions and their lineage.
//! Errors are HTML pages with the API's error text and status (a missing run is 404).
//!
//! # Live updates
//!
//! - The run page opens `EventSource('/api/v1/runs/{id}/events')`: `jobs`/`job` recolour DAG
//!   nodes (`data-state`, and their `<title>`) and update the jobs table; `lines` append to
//!   the log (auto-scrolling unless the reader scrolled up; at most 20,000 lines are kept);
//!   `end` sets the status, hides Cancel, shows Retry (failed or cancelled runs) and closes
//!   the stream. The attempts table and the header's times are as rendered (reload for
//!   more).
//! - Elements with `data-refresh="MS"` and an `id` (the runs table body, queues, waiting
//!   jobs, workers, blocks) are replaced by the same elements of a fresh copy of the page
//!   (fetched, and parsed inert by `DOMParser`: markup the server rendered and escaped),
//!   every MS while the tab is visible (`document.visibilityState`), and right after an
//!   action. A region holding the focus or an edited input is left alone. A 2 s poll of a
//!   50-run page costs one indexed read.
//! - Buttons with `data-post="URL"` POST `{}` as JSON (the guard's same-origin and content
//!   type rules hold for `fetch` from the page; a session cookie rides along by itself).
//!
//! Script never puts data into the page with `innerHTML`: `textContent` and
//! `setAttribute` only, so a log line `<script>` shows as text. Pages are sent with a
//! `Content-Security-Policy` allowing only this origin's scripts and styles (no inline
//! script or style), as a second line of defence.
//!
//! # Assets
//!
//! Embedded with `include_str!`: two assets and nine templates need no crate, no build
//! script and no difference between debug and release builds (`rust-embed` earns its keep
//! with many files or a folder to walk; it would add a proc-macro dependency here for
//! nothing). They are served as `/static/app.css?v=HASH` and `/static/app.js?v=HASH`, HASH
//! being the first 12 hex digits of the served content's SHA-256 (the stylesheet is
//! `app.css` followed by [`dag::DAG_CSS`]), with `Cache-Control: public,
//! max-age=31536000, immutable`: a new binary brings new URLs.
//!
//! # Stable hooks (for browser tests)
//!
//! - Every page: `<body data-page="runs|run|workflows|queues|workers|blocks|block|error">`,
//!   nav links with `aria-current="page"` on the current section.
//! - Runs: `form.filters` with `select[name=workflow]`, `select[name=status]`;
//!   `table#runs`, body `#runs-body`, rows `tr[data-run-id=N][data-status=S]` with a link to
//!   `/runs/N`; `a#older` for the next page.
//! - Run: `#run[data-run-id]`; `#run-status[data-status]` (text = state); `button#cancel`
//!   (`hidden` once the run ended), `button#retry` (`hidden` unless the run failed or was
//!   cancelled; it reloads the page); `#action-message`; `#dag` holding the
//!   SVG (`g.node[data-job][data-state]`, selected node gets class `selected`); `table#jobs`
//!   rows `tr[data-job=NAME][data-job-id=ID]` (class `selected` when selected) with cells
//!   `.c-status .status`, `.c-attempts`, `.c-duration`, `.c-cpu`, `.c-mem`, `.c-exit`,
//!   `.c-reason` and a `button.select-job` (its row's job); `#log` with one `.line[data-job]`
//!   element per output line (class `stderr` too for standard error), each holding
//!   `.src` (`job/step `, `job#2/step ` for a later attempt) and `.text`; `#log-filter`
//!   (text), `button#log-all`; `table#attempts` rows `tr[data-job]`.
//! - Workflows: `section.workflow[data-workflow=NAME]`, `form.run-form[data-workflow=NAME]`
//!   with one input per param named after it (`select` for choices, `input[type=checkbox]`
//!   for bool, `input[type=number]` for int and float, `input[type=text]` otherwise;
//!   `required` and a visible `.req` `*` when required; `data-type` = the param type),
//!   a `button[type=submit]` and `.form-message` (the API's error text on failure). On
//!   success the page goes to `/runs/{run_id}`.
//! - Queues: `table#queues` rows `tr[data-queue=NAME]` with `button.pause` /
//!   `button.resume`; `table#waiting` rows `tr[data-job-id=ID]` with
//!   `form.priority-form input[name=priority]` (Enter or its Save button), `button.top`,
//!   `button.cancel-job`; `#action-message`.
//! - Workers: `table#workers` rows `tr[data-worker=NAME]`.
//! - Blocks: `table#blocks` rows `tr[data-block=NAME]`; a block page has
//!   `section.block-version[data-version=N]#vN` with `table.lineage` rows
//!   `tr[data-relation=produced_by|made_from|consumed_by|used_for]`.
//! - Errors: `#error` holds the message.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::state::{JobState, RunId, RunState};
use crate::store::{
    AttemptRecord, BlockVersion, JobFilter, JobRecord, Lineage, LineageLink, QueueRecord,
    RunFilter, RunRecord, WorkerRecord,
};
use crate::web::api::{ApiError, ApiState, ParamView, Shared, WorkflowView, Workflows, blocking};
use crate::web::dag;
use crate::web::views::{JobDocument, run_document};

/// Runs on a page of `/`.
const PAGE: usize = 50;
/// The most waiting jobs of each state (`queued`, `pending`) `/queues` lists.
const WAITING: usize = 500;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// Every template, by name (a name ending in `.html` turns HTML escaping on).
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("error.html", include_str!("templates/error.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("workflows.html", include_str!("templates/workflows.html")),
    ("queues.html", include_str!("templates/queues.html")),
    ("workers.html", include_str!("templates/workers.html")),
    ("blocks.html", include_str!("templates/blocks.html")),
    ("block.html", include_str!("templates/block.html")),
];

/// The pages' routes.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/workflows", get(workflows_page))
        .route("/queues", get(queues_page))
        .route("/workers", get(workers_page))
        .route("/blocks", get(blocks_page))
        .route("/blocks/{name}", get(block_page))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
}

// ---------------------------------------------------------------------------------------
// Templates, assets, responses

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are part of the binary; the unit tests render every one.
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, error = %err, "web ui: bad template");
            }
        }
        env.add_filter("seg", |text: &str| path_segment(text));
        env
    })
}

/// `text` percent-encoded for a URL path segment or a query value.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An asset's URL, naming its content so that it can be cached for good.
fn asset_url(path: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("{path}?v={}", &hex::encode(digest)[..12])
}

/// The stylesheet: `app.css` and the DAG's ([`dag::DAG_CSS`]).
fn stylesheet() -> &'static str {
    static CSS_ALL: OnceLock<String> = OnceLock::new();
    CSS_ALL.get_or_init(|| format!("{CSS}\n/* The DAG (web::dag). */\n{}", dag::DAG_CSS))
}

fn asset_urls() -> &'static (String, String) {
    static URLS: OnceLock<(String, String)> = OnceLock::new();
    URLS.get_or_init(|| {
        (
            asset_url("/static/app.css", stylesheet()),
            asset_url("/static/app.js", JS),
        )
    })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", stylesheet())
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// What pages allow themselves: this origin's scripts, styles and requests only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// The sections of the top navigation: (section, link, label).
const NAV: &[(&str, &str, &str)] = &[
    ("runs", "/", "Runs"),
    ("workflows", "/workflows", "Workflows"),
    ("queues", "/queues", "Queues"),
    ("workers", "/workers", "Workers"),
    ("blocks", "/blocks", "DataBlocks"),
];

/// A page to render: its template, title, `data-page` and nav section.
struct Page {
    template: &'static str,
    title: String,
    page: &'static str,
    section: &'static str,
}

/// Renders `page` with `ctx` into the layout.
fn render(page: &Page, ctx: Value) -> Result<String, minijinja::Error> {
    let env = templates();
    let body = env.get_template(page.template)?.render(ctx)?;
    let (css, js) = asset_urls();
    let nav: Vec<Value> = NAV
        .iter()
        .map(|&(section, href, label)| context! { page => section, href => href, label => label })
        .collect();
    env.get_template("layout.html")?.render(context! {
        title => &page.title,
        page => page.page,
        section => page.section,
        nav => nav,
        css => Value::from_safe_string(css.clone()),
        js => Value::from_safe_string(js.clone()),
        body => Value::from_safe_string(body),
    })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page that could not be shown: an HTML error page with the status the API would give.
#[derive(Debug)]
struct PageError {
    status: StatusCode,
    message: String,
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> PageError {
        let status = match &err {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError {
            status,
            message: err.to_string(),
        }
    }
}

impl From<minijinja::Error> for PageError {
    fn from(err: minijinja::Error) -> PageError {
        tracing::error!(error = %err, "web ui: a page failed to render");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the page failed to render: {err}"),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::CONFLICT => "Conflict",
            _ => "Something went wrong",
        };
        let page = Page {
            template: "error.html",
            title: heading.to_owned(),
            page: "error",
            section: "",
        };
        match render(
            &page,
            context! { heading => heading, message => &self.message },
        ) {
            Ok(body) => html(self.status, body),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

type PageResult = Result<Response, PageError>;

fn ok_page(page: &Page, ctx: Value) -> PageResult {
    Ok(html(StatusCode::OK, render(page, ctx)?))
}

fn bad_query(err: &QueryRejection) -> PageError {
    PageError {
        status: StatusCode::BAD_REQUEST,
        message: err.body_text(),
    }
}

// ---------------------------------------------------------------------------------------
// Formatting

/// An instant as pages show it: UTC to the second.
fn when(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn when_opt(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(|| "—".to_owned(), when)
}

/// A duration in milliseconds, short (as `app.js`'s `fmtMs`).
fn millis(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "—".to_owned();
    };
    let secs = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        #[expect(clippy::cast_precision_loss, reason = "under a minute")]
        let secs = ms as f64 / 1000.0;
        format!("{secs:.1} s")
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, (secs / 60) % 60)
    }
}

/// A size in bytes, short (as `app.js`'s `fmtBytes`).
fn bytes(size: Option<u64>) -> String {
    let Some(size) = size else {
        return "—".to_owned();
    };
    if size < 1024 {
        return format!("{size} B");
    }
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "shown to one decimal")]
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago `time` was.
fn age(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = u64::try_from((now - time).num_milliseconds()).unwrap_or(0);
    if ms < 1000 {
        return "just now".to_owned();
    }
    format!("{} ago", millis(Some(ms - ms % 1000)))
}

/// A JSON value as one short line: strings bare, the rest as JSON.
fn scalar(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// What started a run, in a few words: its `type` (or `kind`), then its other fields.
fn trigger_summary(trigger: &Json) -> String {
    let Some(object) = trigger.as_object() else {
        return scalar(trigger);
    };
    let kind = ["type", "kind"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Json::as_str));
    let mut out = kind.unwrap_or("").to_owned();
    for (key, value) in object {
        if (key == "type" || key == "kind") && kind.is_some() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{key}={}", scalar(value));
    }
    if out.chars().count() > 80 {
        out = out.chars().take(79).collect::<String>() + "…";
    }
    out
}

/// A JSON object's members as name/value pairs.
#[derive(Debug, Serialize)]
struct NameValue {
    name: String,
    value: String,
}

fn pairs(object: &Json) -> Vec<NameValue> {
    object
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(name, value)| NameValue {
                    name: name.clone(),
                    value: scalar(value),
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Workflows (the daemon's, or the recorded definitions)

/// The workflow names for the runs filter, without parsing recorded definitions.
fn workflow_names(state: &ApiState) -> Result<Vec<String>, ApiError> {
    match &state.workflows {
        Workflows::Daemon(workflows) => Ok(workflows
            .read()
            .map(|workflows| workflows.keys().cloned().collect())
            .unwrap_or_default()),
        Workflows::Recorded => {
            let mut names: Vec<String> = state
                .store
                .definitions()?
                .into_iter()
                .map(|definition| definition.name)
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Runs

/// `GET /` query.
#[derive(Debug, Default, Deserialize)]
struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    before: Option<i64>,
}

#[derive(Debug, Serialize)]
struct RunRow {
    id: i64,
    workflow: String,
    status: &'static str,
    trigger: String,
    created: String,
    duration: String,
}

fn run_duration(run: &RunRecord, now: DateTime<Utc>) -> Option<u64> {
    let started = run.started_at?;
    let end = run.finished_at.unwrap_or(now);
    u64::try_from((end - started).num_milliseconds()).ok()
}

fn run_row(run: &RunRecord, now: DateTime<Utc>) -> RunRow {
    RunRow {
        id: run.id.0,
        workflow: run.workflow.clone(),
        status: run.status.as_str(),
        trigger: trigger_summary(&run.trigger),
        created: when(run.created_at),
        duration: millis(run_duration(run, now)),
    }
}

const RUN_STATES: [RunState; 6] = [
    RunState::Queued,
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Skipped,
];

async fn runs_page(
    State(state): State<Shared>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> PageResult {
    let Query(query) = query.map_err(|err| bad_query(&err))?;
    let workflow = query.workflow.filter(|w| !w.is_empty());
    let status_text = query.status.filter(|s| !s.is_empty());
    let status = status_text
        .as_deref()
        .map(str::parse::<RunState>)
        .transpose()
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let filter = RunFilter {
        workflow: workflow.clone(),
        status,
        limit: Some(PAGE + 1),
        before: query.before.map(RunId),
    };
    let (mut runs, names, now) = blocking(&state, move |state| {
        let runs = state.store.runs(&filter)?;
        Ok((runs, workflow_names(state)?, state.store.clock().now()))
    })
    .await?;
    let more = runs.len() > PAGE;
    runs.truncate(PAGE);
    let href = |before: Option<i64>| {
        let mut parts = Vec::new();
        if let Some(workflow) = &workflow {
            parts.push(format!("workflow={}", path_segment(workflow)));
        }
        if let Some(status) = &status_text {
            parts.push(format!("status={}", path_segment(status)));
        }
        if let Some(before) = before {
            parts.push(format!("before={before}"));
        }
        if parts.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", parts.join("&"))
        }
    };
    let older_href = if more {
        runs.last().map(|run| href(Some(run.id.0)))
    } else {
        None
    };
    let rows: Vec<RunRow> = runs.iter().map(|run| run_row(run, now)).collect();
    let page = Page {
        template: "runs.html",
        title: "Runs".into(),
        page: "runs",
        section: "runs",
    };
    ok_page(
        &page,
        context! {
            runs => Serde(&rows),
            workflows => names,
            statuses => RUN_STATES.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            workflow => &workflow,
            status => &status_text,
            before => query.before,
            older_href => older_href,
            newest_href => href(None),
        },
    )
}

#[derive(Debug, Serialize)]
struct RunView {
    id: i64,
    workflow: String,
    status: &'static str,
    ended: bool,
    /// Whether `retry` has failed or cancelled jobs to run again.
    retryable: bool,
    trigger: String,
    params: Vec<NameValue>,
    created: String,
    started: String,
    finished: String,
    reason: Option<String>,
    parent: Option<i64>,
}

#[derive(Debug, Serialize)]
struct JobRow {
    id: i64,
    name: String,
    status: &'static str,
    attempts: u32,
    duration: String,
    cpu: String,
    memory: String,
    exit_code: String,
    queue: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct AttemptRow {
    job: String,
    number: u32,
    status: &'static str,
    started: String,
    duration: String,
    cpu: String,
    memory: String,
    exit_code: String,
    steps: Vec<String>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct RunBlockRow {
    job: String,
    way: &'static str,
    name: String,
    version: u64,
    hash: String,
    removed: bool,
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "—".to_owned(), |code| code.to_string())
}

fn job_row(job: &JobRecord) -> JobRow {
    JobRow {
        id: job.id.0,
        name: job.name.clone(),
        status: job.status.as_str(),
        attempts: job.attempts,
        duration: millis(job.duration_ms),
        cpu: millis(job.cpu_ms),
        memory: bytes(job.peak_rss_bytes),
        exit_code: exit_text(job.exit_code),
        queue: job.queue.clone(),
        reason: job.reason.clone().unwrap_or_default(),
    }
}

fn attempt_row(job: &str, attempt: &AttemptRecord) -> AttemptRow {
    AttemptRow {
        job: job.to_owned(),
        number: attempt.number,
        status: attempt.status.as_str(),
        started: when(attempt.started_at),
        duration: millis(attempt.duration_ms),
        cpu: millis(attempt.cpu_ms),
        memory: bytes(attempt.peak_rss_bytes),
        exit_code: exit_text(attempt.exit_code),
        steps: attempt
            .steps
            .iter()
            .map(|step| format!("{}: {}", step.name, step.status))
            .collect(),
        reason: attempt.reason.clone().unwrap_or_default(),
    }
}

fn run_blocks(jobs: &[JobDocument]) -> Vec<RunBlockRow> {
    let mut out = Vec::new();
    for job in jobs {
        let links = job
            .consumed_blocks
            .iter()
            .map(|link| ("consumed", link))
            .chain(job.produced_blocks.iter().map(|link| ("produced", link)));
        for (way, link) in links {
            out.push(RunBlockRow {
                job: job.job.name.clone(),
                way,
                name: link.name.clone(),
                version: link.version,
                hash: link.hash.chars().take(12).collect(),
                removed: link.removed,
            });
        }
    }
    out
}

async fn run_page(State(state): State<Shared>, Path(id): Path<String>) -> PageResult {
    let id: i64 = id.parse().map_err(|_| PageError {
        status: StatusCode::NOT_FOUND,
        message: format!("no such id `{id}`"),
    })?;
    let document = blocking(&state, move |state| {
        run_document(&*state.store, RunId(id))?
            .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))
    })
    .await?;
    let run = &document.run;
    let nodes: Vec<dag::Node<'_>> = document
        .jobs
        .iter()
        .map(|job| dag::Node {
            name: &job.job.name,
            needs: &job.job.needs,
            state: job.job.status,
        })
        .collect();
    let svg = dag::draw(&nodes);
    let view = RunView {
        id: run.id.0,
        workflow: run.workflow.clone(),
        status: run.status.as_str(),
        ended: run.status.is_terminal(),
        retryable: matches!(run.status, RunState::Failed | RunState::Cancelled),
        trigger: trigger_summary(&run.trigger),
        params: pairs(&run.params),
        created: when(run.created_at),
        started: when_opt(run.started_at),
        finished: when_opt(run.finished_at),
        reason: run.reason.clone(),
        parent: run.parent.map(|parent| parent.run.0),
    };
    let jobs: Vec<JobRow> = document.jobs.iter().map(|job| job_row(&job.job)).collect();
    let attempts: Vec<AttemptRow> = document
        .jobs
        .iter()
        .flat_map(|job| {
            job.job
                .history
                .iter()
                .map(|attempt| attempt_row(&job.job.name, attempt))
        })
        .collect();
    let page = Page {
        template: "run.html",
        title: format!("Run {} · {}", run.id, run.workflow),
        page: "run",
        section: "runs",
    };
    ok_page(
        &page,
        context! {
            run => Serde(&view),
            jobs => Serde(&jobs),
            attempts => Serde(&attempts),
            blocks => Serde(&run_blocks(&document.jobs)),
            dag => Value::from_safe_string(svg),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Workflows

#[derive(Debug, Serialize)]
struct WorkflowRow {
    name: String,
    description: Option<String>,
    file: String,
    params: Vec<ParamView>,
    triggers: Vec<TriggerRow>,
}

#[derive(Debug, Serialize)]
struct TriggerRow {
    kind: String,
    spec: String,
    next_fires: Vec<String>,
}

/// A trigger's spec as written: a string bare, an object of one scalar (`every`'s
/// `{"text": "6h"}`) as that scalar, anything else as JSON.
fn spec_text(spec: &Json) -> String {
    match spec.as_object() {
        Some(object) if object.len() == 1 => match object.values().next() {
            Some(value @ (Json::String(_) | Json::Number(_) | Json::Bool(_))) => scalar(value),
            _ => spec.to_string(),
        },
        _ => scalar(spec),
    }
}

fn workflow_row(view: WorkflowView) -> WorkflowRow {
    WorkflowRow {
        triggers: view
            .triggers
            .into_iter()
            .map(|trigger| TriggerRow {
                spec: trigger
                    .spec
                    .get(&trigger.kind)
                    .map_or_else(|| trigger.spec.to_string(), spec_text),
                kind: trigger.kind,
                next_fires: trigger.next_fires.into_iter().map(when).collect(),
            })
            .collect(),
        name: view.name,
        description: view.description,
        file: view.file,
        params: view.params,
    }
}

async fn workflows_page(State(state): State<Shared>) -> PageResult {
    let rows = blocking(&state, |state| {
        let now = state.store.clock().now();
        Ok(state
            .workflows()?
            .iter()
            .map(|(name, loaded)| workflow_row(crate::web::api::workflow_view(name, loaded, now)))
            .collect::<Vec<_>>())
    })
    .await?;
    let page = Page {
        template: "workflows.html",
        title: "Workflows".into(),
        page: "workflows",
        section: "workflows",
    };
    ok_page(&page, context! { workflows => Serde(&rows) })
}

// ---------------------------------------------------------------------------------------
// Queues

#[derive(Debug, Serialize)]
struct WaitingRow {
    id: i64,
    name: String,
    run_id: i64,
    queue: String,
    status: &'static str,
    priority: i64,
    metadata: Vec<NameValue>,
    since: String,
}

async fn queues_page(State(state): State<Shared>) -> PageResult {
    let (queues, mut jobs, truncated) = blocking(&state, |state| {
        let queues: Vec<QueueRecord> = state.store.queues()?;
        let mut jobs = Vec::new();
        let mut truncated = false;
        for status in [JobState::Queued, JobState::Pending] {
            let found = state.store.list_jobs(&JobFilter {
                queue: None,
                status: Some(status),
                limit: Some(WAITING),
            })?;
            truncated |= found.len() >= WAITING;
            jobs.extend(found);
        }
        Ok((queues, jobs, truncated))
    })
    .await?;
    // Queued before pending, then by queue, highest priority first, oldest first.
    jobs.sort_by(|a, b| {
        (b.status == JobState::Queued)
            .cmp(&(a.status == JobState::Queued))
            .then_with(|| a.queue.cmp(&b.queue))
            .then_with(|| b.priority.cmp(&a.priority))
            .then_with(|| a.created_at.cmp(&b.created_at))
    });
    let rows: Vec<WaitingRow> = jobs
        .iter()
        .map(|job| WaitingRow {
            id: job.id.0,
            name: job.name.clone(),
            run_id: job.run_id.0,
            queue: job.queue.clone(),
            status: job.status.as_str(),
            priority: job.priority,
            metadata: pairs(&job.metadata),
            since: when(job.queued_at.unwrap_or(job.created_at)),
        })
        .collect();
    let page = Page {
        template: "queues.html",
        title: "Queues".into(),
        page: "queues",
        section: "queues",
    };
    ok_page(
        &page,
        context! { queues => Serde(&queues), jobs => Serde(&rows), truncated => truncated },
    )
}

// ---------------------------------------------------------------------------------------
// Workers

#[derive(Debug, Serialize)]
struct WorkerRow {
    name: String,
    state: String,
    labels: Vec<String>,
    host: String,
    pid: u32,
    job: Option<i64>,
    run: Option<i64>,
    job_name: String,
    heartbeat: String,
    jobs_done: u64,
    cpus: String,
    memory: String,
    enforcement: String,
    started: String,
}

fn worker_row(
    worker: &WorkerRecord,
    running: &HashMap<i64, (i64, String)>,
    now: DateTime<Utc>,
) -> WorkerRow {
    let job = worker.current_job.map(|job| job.0);
    let found = job.and_then(|job| running.get(&job));
    let (cpus, memory) = match &worker.offer {
        Some(offer) => (
            format!("{} / {}", worker.used.cpus, offer.cpus),
            format!(
                "{} / {}",
                bytes(Some(worker.used.memory)),
                bytes(Some(offer.memory))
            ),
        ),
        None => ("count only".to_owned(), "count only".to_owned()),
    };
    WorkerRow {
        name: worker.name.clone(),
        state: worker.state.clone(),
        labels: worker.labels.clone(),
        host: worker.host.clone(),
        pid: worker.pid,
        job,
        run: found.map(|(run, _)| *run),
        job_name: found.map(|(_, name)| name.clone()).unwrap_or_default(),
        heartbeat: age(worker.heartbeat_at, now),
        jobs_done: worker.jobs_done,
        cpus,
        memory,
        enforcement: worker.enforcement.clone().unwrap_or_else(|| "—".to_owned()),
        started: when(worker.started_at),
    }
}

async fn workers_page(State(state): State<Shared>) -> PageResult {
    let (workers, running, now) = blocking(&state, |state| {
        let workers: Vec<WorkerRecord> = state
            .store
            .workers()?
            .into_iter()
            .filter(WorkerRecord::is_live)
            .collect();
        let running = if workers.iter().any(|w| w.current_job.is_some()) {
            state.store.list_jobs(&JobFilter {
                queue: None,
                status: Some(JobState::Running),
                limit: Some(1000),
            })?
        } else {
            Vec::new()
        };
        Ok((workers, running, state.store.clock().now()))
    })
    .await?;
    let running: HashMap<i64, (i64, String)> = running
        .into_iter()
        .map(|job| (job.id.0, (job.run_id.0, job.name)))
        .collect();
    let rows: Vec<WorkerRow> = workers
        .iter()
        .map(|worker| worker_row(worker, &running, now))
        .collect();
    let page = Page {
        template: "workers.html",
        title: "Workers".into(),
        page: "workers",
        section: "workers",
    };
    ok_page(&page, context! { workers => Serde(&rows) })
}

// ---------------------------------------------------------------------------------------
// DataBlocks

#[derive(Debug, Serialize)]
struct Producer {
    run_id: i64,
    job: String,
}

#[derive(Debug, Serialize)]
struct BlockRow {
    name: String,
    version: u64,
    versions: u64,
    kind: &'static str,
    size: String,
    files: u64,
    producer: Option<Producer>,
    created: String,
}

async fn blocks_page(State(state): State<Shared>) -> PageResult {
    let blocks = blocking(&state, |state| Ok(state.store.block_names()?)).await?;
    let rows: Vec<BlockRow> = blocks
        .iter()
        .map(|summary| {
            let latest = &summary.latest;
            BlockRow {
                name: latest.name.clone(),
                version: latest.version,
                versions: summary.versions,
                kind: latest.kind.as_str(),
                size: bytes(Some(latest.size)),
                files: latest.files,
                producer: latest.produced_by.as_ref().map(|by| Producer {
                    run_id: by.run_id.0,
                    job: by.job.clone(),
                }),
                created: when(latest.created_at),
            }
        })
        .collect();
    let page = Page {
        template: "blocks.html",
        title: "DataBlocks".into(),
        page: "blocks",
        section: "blocks",
    };
    ok_page(&page, context! { blocks => Serde(&rows) })
}

#[derive(Debug, Serialize)]
struct VersionRow {
    version: u64,
    hash: String,
    kind: &'static str,
    files: u64,
    size: String,
    executable: bool,
    file_name: String,
    created: String,
    removed: Option<String>,
    lineage: Vec<LinkRow>,
}

#[derive(Debug, Serialize)]
struct LinkRow {
    relation: &'static str,
    label: &'static str,
    block_name: String,
    block_version: u64,
    input: Option<String>,
    run_id: i64,
    workflow: String,
    job: String,
    attempt: u32,
    at: String,
}

fn lineage_rows(lineage: &Lineage) -> Vec<LinkRow> {
    let groups: [(&'static str, &'static str, &Vec<LineageLink>); 4] = [
        ("produced_by", "produced by", &lineage.produced_by),
        ("made_from", "made from", &lineage.made_from),
        ("consumed_by", "consumed by", &lineage.consumed_by),
        ("used_for", "used for", &lineage.used_for),
    ];
    groups
        .into_iter()
        .flat_map(|(relation, label, links)| {
            links.iter().map(move |link| LinkRow {
                relation,
                label,
                block_name: link.block.name.clone(),
                block_version: link.block.version,
                input: link.input.clone(),
                run_id: link.job.run_id.0,
                workflow: link.job.workflow.clone(),
                job: link.job.job.clone(),
                attempt: link.job.attempt,
                at: when(link.at),
            })
        })
        .collect()
}

fn version_row(version: &BlockVersion, lineage: &Lineage) -> VersionRow {
    VersionRow {
        version: version.version,
        hash: version.hash.to_string(),
        kind: version.kind.as_str(),
        files: version.files,
        size: bytes(Some(version.size)),
        executable: version.executable,
        file_name: version.file_name.clone(),
        created: when(version.created_at),
        removed: version.removed_at.map(when),
        lineage: lineage_rows(lineage),
    }
}

async fn block_page(State(state): State<Shared>, Path(name): Path<String>) -> PageResult {
    let lookup = name.clone();
    let versions = blocking(&state, move |state| {
        let versions = state.store.block_versions(&lookup)?;
        if versions.is_empty() {
            return Err(ApiError::NotFound(format!("no DataBlock `{lookup}`")));
        }
        versions
            .into_iter()
            .map(|version| {
                let lineage = state.store.block_lineage(version.id)?;
                Ok((version, lineage))
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    let rows: Vec<VersionRow> = versions
        .iter()
        .map(|(version, lineage)| version_row(version, lineage))
        .collect();
    let page = Page {
        template: "block.html",
        title: format!("DataBlock {name}"),
        page: "block",
        section: "blocks",
    };
    ok_page(&page, context! { name => name, versions => Serde(&rows) })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, RwLock};

    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode, header};
    use tower::ServiceExt as _;

    use super::{CSS, JS, TEMPLATES, bytes, millis, path_segment, routes, spec_text};
    use crate::state::JobState;
    use crate::store::test_support::{job, run};
    use crate::store::{Env, JobFilter};
    use crate::web::api::{ApiState, Shared, Workflows};

    const XSS: &str = "<script>alert(1)</script>";

    const FORM_WORKFLOW: &str = "params:
  date: { required: true, description: 'The <b>day</b>' }
  region: { choices: [eu, us], default: us }
  rows: { type: int, default: 1000 }
  ratio: { type: float }
  dry: { type: bool, default: true }
  src: { type: datablock }
triggers:
  - schedule: '0 3 * * *'
jobs:
  a:
    steps: [{ run: 'true' }]
";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Env,
        state: Shared,
    }

    /// An environment with the workflows `(name, yaml)` loaded as a daemon holds them.
    fn fixture(workflows: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::open(&dir.path().join("env")).expect("open env");
        let mut map = BTreeMap::new();
        for (name, source) in workflows {
            let mut loaded =
                crate::spec::parse_str(&format!("{name}.yaml"), source).expect("valid workflow");
            (*name).clone_into(&mut loaded.name);
            map.insert((*name).to_owned(), Arc::new(loaded));
        }
        let state = Arc::new(ApiState::new(
            Arc::clone(&store),
            Workflows::Daemon(Arc::new(RwLock::new(map))),
        ));
        Fixture {
            _dir: dir,
            store,
            state,
        }
    }

    async fn get(state: &Shared, uri: &str) -> (StatusCode, HeaderMap, String) {
        let response = routes()
            .with_state(Arc::clone(state))
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            headers,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }

    /// The whole start tag around the first occurrence of `needle`.
    fn tag_with<'a>(html: &'a str, needle: &str) -> &'a str {
        let at = html
            .find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in the page"));
        let start = html[..at].rfind('<').expect("tag start");
        let end = at + html[at..].find('>').expect("tag end");
        &html[start..=end]
    }

    fn assert_html(headers: &HeaderMap) {
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
    }

    #[tokio::test]
    async fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            super::templates()
                .get_template(name)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
    }

    #[tokio::test]
    async fn the_runs_page_escapes_names_and_pages_with_before() {
        let f = fixture(&[]);
        for _ in 0..55 {
            f.store
                .create_run(&run("nightly", vec![job("a", &[], JobState::Queued)]))
                .expect("run");
        }
        let (id, _) = f
            .store
            .create_run(&run(XSS, vec![job("a", &[], JobState::Queued)]))
            .expect("run");
        let (status, headers, html) = get(&f.state, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_html(&headers);
        assert!(html.contains("<table id=\"runs\">"));
        assert!(html.contains(&format!(
            "<tr data-run-id=\"{id}\" data-status=\"running\">"
        )));
        assert!(!html.contains(XSS), "a workflow name must show as text");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert_eq!(html.matches("<tr data-run-id=").count(), 50);
        assert!(
            html.contains("id=\"older\" href=\"&#x2f;?before=7\""),
            "{html}"
        );
        assert!(html.contains("aria-current=\"page\">Runs</a>"));
        assert!(html.contains("data-page=\"runs\""));

        let (_, _, older) = get(&f.state, "/?before=7").await;
        assert_eq!(older.matches("<tr data-run-id=").count(), 6);
        assert!(!older.contains("id=\"older\""));

        let (_, _, filtered) = get(&f.state, "/?workflow=nightly&status=running").await;
        assert_eq!(filtered.matches("<tr data-run-id=").count(), 50);
        assert!(
            filtered
                .contains("older\" href=\"&#x2f;?workflow=nightly&amp;status=running&amp;before=")
        );
        let (_, _, none) = get(&f.state, "/?workflow=&status=succeeded").await;
        assert!(none.contains("No runs match this filter."));

        let (status, headers, bad) = get(&f.state, "/?status=bogus").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_html(&headers);
        assert!(bad.contains("unknown state `bogus`"), "{bad}");
    }

    #[tokio::test]
    async fn the_run_page_has_its_dag_jobs_and_buttons() {
        let f = fixture(&[]);
        let name = "<img src=x onerror=alert(1)>";
        let (id, _) = f
            .store
            .create_run(&run(
                XSS,
                vec![
                    job(name, &[], JobState::Queued),
                    job("report", &[name], JobState::Pending),
                ],
            ))
            .expect("run");
        let (status, headers, html) = get(&f.state, &format!("/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_html(&headers);
        assert!(
            !html.contains(XSS) && !html.contains(name),
            "names must show as text"
        );
        for hook in [
            "id=\"run-status\"",
            "id=\"dag\"",
            "<svg",
            "class=\"node\" data-job=\"report\" data-state=\"pending\"",
            "<table id=\"jobs\">",
            "<tr data-job=\"report\"",
            "id=\"log\"",
            "id=\"log-filter\"",
            "<table id=\"attempts\">",
            "data-page=\"run\"",
        ] {
            assert!(html.contains(hook), "no `{hook}` in the run page");
        }
        assert_eq!(html.matches("class=\"select-job\"").count(), 2);
        let cancel = tag_with(&html, "id=\"cancel\"");
        assert!(!cancel.contains("hidden"), "{cancel}");
        let retry = tag_with(&html, "id=\"retry\"");
        assert!(retry.contains("hidden"), "{retry}");
        assert!(html.contains("date=2026-01-01"));

        // A queued run nobody owns is cancelled at once: Retry applies, Cancel no longer.
        let mut queued = run("nightly", vec![job("a", &[], JobState::Queued)]);
        queued.owner = None;
        queued.status = crate::state::RunState::Queued;
        let (cancelled, _) = f.store.create_run(&queued).expect("run");
        crate::engine::queued::cancel_run(&*f.store, cancelled).expect("cancel");
        let (_, _, html) = get(&f.state, &format!("/runs/{cancelled}")).await;
        assert!(
            html.contains("data-status=\"cancelled\">cancelled</span></h1>"),
            "{html}"
        );
        assert!(tag_with(&html, "id=\"cancel\"").contains("hidden"));
        assert!(!tag_with(&html, "id=\"retry\"").contains("hidden"));

        let (status, headers, missing) = get(&f.state, "/runs/999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_html(&headers);
        assert!(missing.contains("<p class=\"message error\" id=\"error\">no run 999</p>"));
        let (status, _, _) = get(&f.state, "/runs/abc").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_run_form_has_an_input_per_param_of_the_right_type() {
        let f = fixture(&[
            ("daily", FORM_WORKFLOW),
            ("a<script>b", "jobs:\n  a:\n    steps: [{ run: 'true' }]\n"),
        ]);
        let (status, headers, html) = get(&f.state, "/workflows").await;
        assert_eq!(status, StatusCode::OK);
        assert_html(&headers);
        assert!(html.contains("<form class=\"run-form\" data-workflow=\"daily\""));
        assert!(
            !html.contains("a<script>b"),
            "a workflow name must show as text"
        );
        assert!(html.contains("data-workflow=\"a&lt;script&gt;b\""));
        assert!(html.contains("data-post=\"/api/v1/workflows/a%3Cscript%3Eb/runs\""));

        let date = tag_with(&html, "name=\"date\"");
        assert!(
            date.contains("type=\"text\"") && date.contains(" required"),
            "{date}"
        );
        assert!(html.contains("date <span class=\"req\" aria-hidden=\"true\">*</span>"));
        assert!(html.contains("The &lt;b&gt;day&lt;&#x2f;b&gt;"));
        let region = tag_with(&html, "name=\"region\"");
        assert!(
            region.starts_with("<select") && !region.contains("required"),
            "{region}"
        );
        assert!(html.contains("<option value=\"us\" selected>us</option>"));
        assert!(html.contains("<option value=\"eu\">eu</option>"));
        let rows = tag_with(&html, "name=\"rows\"");
        assert!(
            rows.contains("type=\"number\"")
                && rows.contains("step=\"1\"")
                && rows.contains("value=\"1000\""),
            "{rows}"
        );
        let ratio = tag_with(&html, "name=\"ratio\"");
        assert!(
            ratio.contains("type=\"number\"")
                && ratio.contains("step=\"any\"")
                && ratio.contains("value=\"\""),
            "{ratio}"
        );
        let dry = tag_with(&html, "name=\"dry\"");
        assert!(
            dry.contains("type=\"checkbox\"") && dry.contains(" checked"),
            "{dry}"
        );
        let src = tag_with(&html, "name=\"src\"");
        assert!(
            src.contains("type=\"text\"") && src.contains("data-type=\"datablock\""),
            "{src}"
        );
        assert!(html.contains("<button type=\"submit\" class=\"primary\">Run daily</button>"));
        assert!(html.contains("<td>schedule</td><td class=\"wrap\"><code>0 3 * * *</code></td>"));
    }

    #[tokio::test]
    async fn queues_workers_and_blocks_pages_render() {
        let f = fixture(&[]);
        let (run_id, jobs) = f
            .store
            .create_run(&run("nightly", vec![job(XSS, &[], JobState::Queued)]))
            .expect("run");
        f.store.add_queue("default", Some(2)).expect("queue");
        let (status, headers, queues) = get(&f.state, "/queues").await;
        assert_eq!(status, StatusCode::OK);
        assert_html(&headers);
        assert!(queues.contains("<tr data-queue=\"default\">"));
        assert!(queues.contains("class=\"small pause\""));
        assert!(queues.contains(&format!("<tr data-job-id=\"{}\">", jobs[0].0)));
        assert!(queues.contains(&format!("<a href=\"/runs/{run_id}\">")));
        assert!(queues.contains("<code>partition=2026-01-01</code>"));
        assert!(!queues.contains(XSS));
        let priority = tag_with(&queues, "name=\"priority\"");
        assert!(priority.contains("type=\"number\"") && priority.contains("value=\"0\""));
        assert!(queues.contains("class=\"small top\"") && queues.contains("cancel-job"));
        assert!(
            f.store
                .list_jobs(&JobFilter::default())
                .expect("jobs")
                .iter()
                .all(|job| job.status == JobState::Queued)
        );

        f.store
            .register_worker("w<1>", &["gpu".to_owned()])
            .expect("worker");
        let (status, _, workers) = get(&f.state, "/workers").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            workers.contains("<tr data-worker=\"w&lt;1&gt;\">"),
            "{workers}"
        );
        assert!(workers.contains("<code>gpu</code>"));
        assert!(workers.contains("data-status=\"idle\""));

        let (status, _, blocks) = get(&f.state, "/blocks").await;
        assert_eq!(status, StatusCode::OK);
        assert!(blocks.contains("<table id=\"blocks\">") && blocks.contains("No DataBlocks."));
        let (status, _, missing) = get(&f.state, "/blocks/a%20b").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(missing.contains("no DataBlock `a b`"));
    }

    #[tokio::test]
    async fn assets_are_served_with_a_type_and_a_long_cache() {
        let f = fixture(&[]);
        let (status, headers, css) = get(&f.state, "/static/app.css").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("max-age=")
        );
        assert!(css.starts_with(CSS) && css.contains(".dag .node[data-state=\"failed\"]"));
        let (status, headers, js) = get(&f.state, "/static/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(js, JS);
        let (_, _, page) = get(&f.state, "/workers").await;
        assert!(page.contains("href=\"/static/app.css?v="));
        assert!(page.contains("src=\"/static/app.js?v="));
        assert!(
            page.contains(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            )
        );
    }

    #[test]
    fn script_puts_data_in_the_page_as_text_only() {
        assert!(!JS.contains("innerHTML") && !JS.contains("outerHTML"));
        assert!(!JS.contains("insertAdjacentHTML") && !JS.contains("document.write"));
        assert!(CSS.contains(":focus-visible") && CSS.contains("prefers-color-scheme: dark"));
    }

    #[test]
    fn figures_are_formatted_as_the_script_does() {
        assert_eq!(millis(None), "—");
        assert_eq!(millis(Some(15)), "15 ms");
        assert_eq!(millis(Some(1500)), "1.5 s");
        assert_eq!(millis(Some(125_000)), "2m 05s");
        assert_eq!(millis(Some(7_380_000)), "2h 03m");
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(1536)), "1.5 KiB");
        assert_eq!(bytes(Some(3 << 30)), "3.0 GiB");
        assert_eq!(path_segment("a b/c<é"), "a%20b%2Fc%3C%C3%A9");
        assert_eq!(spec_text(&serde_json::json!({"text": "6h"})), "6h");
        assert_eq!(spec_text(&serde_json::json!("0 3 * * *")), "0 3 * * *");
    }
}
