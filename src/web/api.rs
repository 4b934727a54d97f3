//! The HTTP API of SPEC §5, on axum, under `/api/v1`: workflows and runs (create, list,
//! read, logs, live events, cancel, retry), queues (list, pause, resume), jobs (list,
//! priority, top, cancel), workers, DataBlocks with lineage, health; `/metrics` at the root;
//! the OpenAPI document at `/api/v1/openapi.json` ([`super::openapi`]).
//!
//! One handler style: every request passes [`guard::check`] first (Host, same origin,
//! token, body: SPEC §5 "Security"); path ids, query strings and JSON bodies are parsed by
//! the extractors of this module ([`Id`], [`Params`], [`Body`]), which answer a bad one
//! with 400 (404 for an id that is not a number) and a `{"error": "..."}` body; handlers
//! return `Result<_, ApiError>` and touch the store only on the blocking pool
//! (`blocking`). Nothing a client sends can stop the daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::info;

use crate::engine::admission::{self, Admission, Request as RunRequest};
use crate::engine::queued::Reopened;
use crate::spec::Loaded;
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::{
    BlockSummary, BlockVersion, CancelOutcome, Env, Environment, JobFilter, JobRecord, LogCursor,
    LogLine, QueueRecord, RunFilter, RunRecord, WorkerRecord,
};
use crate::web::coalesce::Coalescer;
use crate::web::guard::{self, Guard};
use crate::web::views::{RunDocument, run_document};

/// Where the API finds workflows by name.
pub enum Workflows {
    /// The daemon's valid workflows, replaced on every reload.
    Daemon(Arc<RwLock<BTreeMap<String, Arc<Loaded>>>>),
    /// The definitions recorded in the environment (`coreflow ui`, without a daemon).
    Recorded,
}

/// What the handlers share.
pub struct ApiState {
    /// A connection of the API's own: a long read never holds up the daemon's loop.
    pub store: Env,
    pub workflows: Workflows,
    /// `GET /runs/{id}` answers, shared by the clients that ask for a run at once.
    pub runs: Coalescer<i64, (StatusCode, Bytes)>,
    /// The runs being watched live, one reader each.
    pub feeds: super::feed::Feeds,
}

impl ApiState {
    #[must_use]
    pub fn new(store: Env, workflows: Workflows) -> ApiState {
        ApiState {
            store,
            workflows,
            runs: Coalescer::default(),
            feeds: super::feed::Feeds::default(),
        }
    }

    /// Every workflow by name.
    pub(crate) fn workflows(&self) -> Result<BTreeMap<String, Arc<Loaded>>, ApiError> {
        match &self.workflows {
            Workflows::Daemon(workflows) => Ok(workflows
                .read()
                .map(|workflows| workflows.clone())
                .unwrap_or_default()),
            Workflows::Recorded => {
                let mut out = BTreeMap::new();
                for definition in self.store.definitions()? {
                    if let Ok(loaded) = crate::engine::definition::load_definition(&definition) {
                        out.insert(definition.name.clone(), Arc::new(loaded));
                    }
                }
                Ok(out)
            }
        }
    }
}

pub(crate) type Shared = Arc<ApiState>;

/// The API's routes (and `/metrics`), every request passing `guard` first.
pub fn router(state: Shared, guard: Guard) -> Router {
    routes()
        .merge(super::pages::routes())
        .merge(super::login::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::check,
        ))
        .with_state(state)
}

/// The routes without the guard, for [`router`] and the pages that add theirs.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/workflows", get(list_workflows))
        .route("/api/v1/workflows/{name}/runs", post(create_run))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(read_run))
        .route("/api/v1/runs/{id}/logs", get(read_logs))
        .route("/api/v1/runs/{id}/events", get(super::events::run_events))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/runs/{id}/retry", post(retry_run))
        .route("/api/v1/queues", get(list_queues))
        .route("/api/v1/queues/{name}/pause", post(pause_queue))
        .route("/api/v1/queues/{name}/resume", post(resume_queue))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}/priority", post(set_priority))
        .route("/api/v1/jobs/{id}/top", post(move_to_top))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/workers", get(list_workers))
        .route("/api/v1/blocks", get(list_blocks))
        .route("/api/v1/blocks/{name}", get(read_block))
        .route("/metrics", get(metrics))
}

// ---------------------------------------------------------------------------------------
// Errors and extractors

/// A request the API cannot answer as asked, with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::store::Error> for ApiError {
    fn from(err: crate::store::Error) -> ApiError {
        ApiError::Internal(err.to_string())
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(err: crate::engine::EngineError) -> ApiError {
        if err.exit_code() == crate::exit::USAGE {
            ApiError::BadRequest(err.to_string())
        } else {
            ApiError::Internal(err.to_string())
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// A numeric id in the path (`/runs/{id}`, `/jobs/{id}`); anything else is 404.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Id, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::NotFound(err.to_string()))?;
        text.parse()
            .map(Id)
            .map_err(|_| ApiError::NotFound(format!("no such id `{text}`")))
    }
}

/// A query string; one that does not parse is 400 with the reason.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|err| ApiError::BadRequest(err.body_text()))
    }
}

/// A JSON body (the guard has checked its type and size); an empty body reads as `{}`.
/// One that does not parse is 400 with the reason.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|err| ApiError::BadRequest(err.body_text()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(Body).map_err(|err| {
            ApiError::BadRequest(format!("the body is not the JSON expected: {err}"))
        })
    }
}

/// Runs `work` with the store on tokio's blocking pool: a busy database must not hold up
/// the async workers, whose timers fire the daemon's schedules.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Shared,
    work: impl FnOnce(&ApiState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|err| ApiError::Internal(format!("the request failed: {err}")))?
}

// ---------------------------------------------------------------------------------------
// Health, OpenAPI, metrics

/// `GET /api/v1/health`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[utoipa::path(get, path = "/api/v1/health", tag = "health", security(()),
    responses((status = 200, description = "The server answers (no token needed)", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document_json(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let snapshot = blocking(&state, |state| Ok(state.store.metrics_snapshot()?)).await?;
    Ok((
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        super::metrics::render(&snapshot),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Workflows

/// A workflow with what a Run form and a schedule view need.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub name: String,
    pub description: Option<String>,
    pub file: String,
    pub params: Vec<ParamView>,
    pub triggers: Vec<TriggerView>,
}

/// A parameter as declared.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParamView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub choices: Option<Vec<String>>,
    pub default: Option<String>,
    pub required: bool,
    pub description: Option<String>,
}

/// A trigger with its next fire times (time-based triggers only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerView {
    /// `schedule`, `every`, `at`, `file`, `after`, `datablock`, …
    pub kind: String,
    /// As written: the cron expression, the interval, the instant, the glob, …
    pub spec: Value,
    #[serde(serialize_with = "crate::store::rfc3339::instants")]
    pub next_fires: Vec<DateTime<Utc>>,
}

/// How many next fires `GET /workflows` shows per trigger.
const NEXT_FIRES: usize = 3;

pub(crate) fn workflow_view(name: &str, loaded: &Loaded, now: DateTime<Utc>) -> WorkflowView {
    let workflow = &loaded.workflow;
    let params = workflow
        .params
        .iter()
        .map(|(name, param)| ParamView {
            name: name.clone(),
            kind: param.kind.as_str().to_owned(),
            choices: param
                .choices
                .as_ref()
                .map(|choices| choices.iter().map(|c| c.as_str().to_owned()).collect()),
            default: param.default.as_ref().map(|d| d.as_str().to_owned()),
            required: param.required,
            description: param.description.clone(),
        })
        .collect();
    let triggers = workflow
        .triggers
        .iter()
        .map(|spec| {
            let value = serde_json::to_value(spec).unwrap_or_default();
            let kind = value
                .as_object()
                .and_then(|object| {
                    object
                        .iter()
                        .find(|(key, value)| !value.is_null() && *key != "timezone")
                        .map(|(key, _)| key.clone())
                })
                .unwrap_or_default();
            let next_fires = match crate::triggers::TimeTrigger::from_spec(spec, now) {
                Ok(Some(trigger)) => trigger
                    .next_fires(now, NEXT_FIRES)
                    .into_iter()
                    .map(|fire| fire.at)
                    .collect(),
                _ => Vec::new(),
            };
            TriggerView {
                kind,
                spec: value,
                next_fires,
            }
        })
        .collect();
    WorkflowView {
        name: name.to_owned(),
        description: workflow.description.clone(),
        file: loaded.file.clone(),
        params,
        triggers,
    }
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    responses((status = 200, description = "Every workflow with its params and triggers", body = [WorkflowView])))]
pub(crate) async fn list_workflows(
    State(state): State<Shared>,
) -> Result<Json<Vec<WorkflowView>>, ApiError> {
    blocking(&state, |state| {
        let now = state.store.clock().now();
        Ok(Json(
            state
                .workflows()?
                .iter()
                .map(|(name, loaded)| workflow_view(name, loaded, now))
                .collect(),
        ))
    })
    .await
}

/// `POST /api/v1/workflows/{name}/runs`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Parameter values by name.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, Value>>,
}

/// What creating a run did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunCreated {
    pub run_id: Option<i64>,
    /// `queued`, `skipped` (the workflow's `concurrency` said so) or `waiting` (for a run
    /// slot).
    pub status: String,
    pub reason: Option<String>,
    /// Runs ahead of this request, while `waiting`.
    pub ahead: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/workflows/{name}/runs", tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name")),
    request_body = CreateRun,
    responses(
        (status = 201, description = "Created (or skipped by `concurrency`)", body = RunCreated),
        (status = 202, description = "Waiting for a run slot", body = RunCreated),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(crate) async fn create_run(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Body(body): Body<CreateRun>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    let texts: Vec<String> = body
        .params
        .map(|params| crate::spec::params::param_texts(&Value::Object(params)))
        .unwrap_or_default();
    blocking(&state, move |state| {
        let loaded = state
            .workflows()?
            .remove(&name)
            .ok_or_else(|| ApiError::NotFound(format!("no workflow `{name}`")))?;
        let source = std::fs::canonicalize(&loaded.file).ok();
        let request = RunRequest {
            loaded: &loaded,
            params: &texts,
            trigger: json!({ "type": "api" }),
            source: source.as_deref().and_then(std::path::Path::to_str),
            now: state.store.clock().now(),
            fire: None,
        };
        let created = |run: RunId, status: &str, reason: Option<String>| RunCreated {
            run_id: Some(run.0),
            status: status.to_owned(),
            reason,
            ahead: None,
        };
        match admission::admit(&state.store, &request)? {
            Admission::Created(run) => {
                info!(workflow = %name, run = run.0, trigger = "api", "run created");
                Ok((StatusCode::CREATED, Json(created(run, "queued", None))))
            }
            Admission::Skipped { run, reason } => {
                info!(workflow = %name, run = run.0, reason = %reason, "api request skipped");
                Ok((
                    StatusCode::CREATED,
                    Json(created(run, "skipped", Some(reason))),
                ))
            }
            Admission::Waiting { ahead } => {
                info!(workflow = %name, ahead, "api request waits for a run slot");
                Ok((
                    StatusCode::ACCEPTED,
                    Json(RunCreated {
                        run_id: None,
                        status: "waiting".into(),
                        reason: None,
                        ahead: Some(ahead),
                    }),
                ))
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Runs

/// `GET /api/v1/runs`: newest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    pub workflow: Option<String>,
    pub status: Option<String>,
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<usize>,
    /// Only runs older than this run id: the next page after a page ending with it.
    pub before: Option<i64>,
}

/// The default page of lists.
const DEFAULT_LIMIT: usize = 50;
/// The largest page of lists.
const MAX_LIMIT: usize = 1000;

fn page(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn parse_state<T: std::str::FromStr>(text: Option<&str>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.map(|text| text.parse::<T>())
        .transpose()
        .map_err(|err| ApiError::BadRequest(err.to_string()))
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, description = "Runs, newest first", body = [RunRecord]),
        (status = 400, description = "A bad filter", body = ErrorBody)))]
pub(crate) async fn list_runs(
    State(state): State<Shared>,
    Params(query): Params<RunsQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let filter = RunFilter {
        workflow: query.workflow,
        status: parse_state::<RunState>(query.status.as_deref())?,
        limit: Some(page(query.limit)),
        before: query.before.map(RunId),
    };
    blocking(&state, move |state| Ok(Json(state.store.runs(&filter)?))).await
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "The run with its jobs, as `coreflow show --json`", body = RunDocument),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn read_run(State(state): State<Shared>, Id(id): Id) -> Response {
    let shared = Arc::clone(&state);
    let (status, body) = state
        .runs
        .get(id, || async move {
            let answer = blocking(&shared, move |state| {
                run_document(&*state.store, RunId(id))?
                    .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))
            })
            .await;
            match answer {
                Ok(document) => (
                    StatusCode::OK,
                    Bytes::from(serde_json::to_vec(&document).unwrap_or_default()),
                ),
                Err(err) => {
                    let response = err.into_response();
                    let status = response.status();
                    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .unwrap_or_default();
                    (status, body)
                }
            }
        })
        .await;
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Checks that run `id` exists.
fn existing_run(store: &dyn Environment, id: i64) -> Result<RunRecord, ApiError> {
    store
        .run(RunId(id))?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))
}

/// `GET /api/v1/runs/{id}/logs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only this job's lines (its full name, `build` or `test[os=linux]`).
    pub job: Option<String>,
    /// Only lines after this cursor (the `after` of an earlier answer).
    pub after: Option<String>,
}

/// A page of a run's output: the lines of `coreflow logs --json`, and the cursor to ask
/// again with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogsPage {
    pub lines: Vec<LogLine>,
    /// Hand back as `after` for the lines written since.
    pub after: String,
    /// Whether the run has ended: no line will follow.
    pub ended: bool,
}

/// The most lines one logs answer holds; ask again with `after` for the rest.
const MAX_LOG_LINES: usize = 10_000;

#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", tag = "runs",
    params(("id" = i64, Path, description = "The run's id"), LogsQuery),
    responses((status = 200, description = "Lines after the cursor", body = LogsPage),
        (status = 404, description = "No such run or job", body = ErrorBody)))]
pub(crate) async fn read_logs(
    State(state): State<Shared>,
    Id(id): Id,
    Params(query): Params<LogsQuery>,
) -> Result<Json<LogsPage>, ApiError> {
    let cursor = match &query.after {
        Some(text) => Some(
            LogCursor::from_token(text)
                .ok_or_else(|| ApiError::BadRequest(format!("`after` is not a cursor: {text}")))?,
        ),
        None => None,
    };
    blocking(&state, move |state| {
        let run = existing_run(&*state.store, id)?;
        let job = match &query.job {
            Some(name) => Some(job_of_run(&*state.store, &run, name)?),
            None => None,
        };
        let ended = run.status.is_terminal();
        let mut reader = state.store.read_logs(run.id, job, cursor.as_ref())?;
        let mut lines = Vec::new();
        for line in reader.by_ref() {
            lines.push(line?);
            if lines.len() >= MAX_LOG_LINES {
                break;
            }
        }
        let complete = lines.len() < MAX_LOG_LINES;
        Ok(Json(LogsPage {
            lines,
            after: reader.cursor().to_token(),
            ended: ended && complete,
        }))
    })
    .await
}

/// The id of job `name` of `run`.
pub(crate) fn job_of_run(
    store: &dyn Environment,
    run: &RunRecord,
    name: &str,
) -> Result<JobId, ApiError> {
    store
        .jobs(run.id)?
        .into_iter()
        .find(|job| job.name == name)
        .map(|job| job.id)
        .ok_or_else(|| ApiError::NotFound(format!("run {} has no job `{name}`", run.id)))
}

/// What a cancel or retry did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunAction {
    pub run_id: i64,
    /// Cancel: `requested`, `cancelled` or `already_finished`; retry: `queued` or
    /// `nothing_to_retry`.
    pub status: String,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 202, description = "What the cancel did", body = RunAction),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn cancel_run(
    State(state): State<Shared>,
    Id(id): Id,
) -> Result<(StatusCode, Json<RunAction>), ApiError> {
    blocking(&state, move |state| {
        existing_run(&*state.store, id)?;
        let outcome = crate::engine::queued::cancel_run(&*state.store, RunId(id))?;
        let status = cancel_status(outcome);
        info!(run = id, status, "cancel via api");
        Ok((
            StatusCode::ACCEPTED,
            Json(RunAction {
                run_id: id,
                status: status.into(),
            }),
        ))
    })
    .await
}

fn cancel_status(outcome: CancelOutcome) -> &'static str {
    match outcome {
        CancelOutcome::Requested => "requested",
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::AlreadyFinished => "already_finished",
    }
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 202, description = "Reopened for workers, keeping its id", body = RunAction),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has not ended", body = ErrorBody)))]
pub(crate) async fn retry_run(
    State(state): State<Shared>,
    Id(id): Id,
) -> Result<(StatusCode, Json<RunAction>), ApiError> {
    blocking(&state, move |state| {
        let run = existing_run(&*state.store, id)?;
        if !run.status.is_terminal() {
            return Err(ApiError::Conflict(format!(
                "run {id} is still {}; cancel it first",
                run.status
            )));
        }
        let status = match crate::engine::queued::reopen_for_retry(&*state.store, &run)? {
            Reopened::NothingToRetry => "nothing_to_retry",
            Reopened::Reopened(_) => "queued",
        };
        info!(run = id, status, "retry via api");
        Ok((
            StatusCode::ACCEPTED,
            Json(RunAction {
                run_id: id,
                status: status.into(),
            }),
        ))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Queues and jobs

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, description = "Every queue with its load", body = [QueueRecord])))]
pub(crate) async fn list_queues(
    State(state): State<Shared>,
) -> Result<Json<Vec<QueueRecord>>, ApiError> {
    blocking(&state, |state| Ok(Json(state.store.queues()?))).await
}

/// A queue after a pause or resume.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueState {
    pub name: String,
    pub paused: bool,
}

#[utoipa::path(post, path = "/api/v1/queues/{name}/pause", tag = "queues",
    params(("name" = String, Path, description = "The queue's name")),
    responses((status = 200, description = "Paused", body = QueueState),
        (status = 404, description = "No such queue", body = ErrorBody)))]
pub(crate) async fn pause_queue(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    set_paused(state, name, true).await
}

#[utoipa::path(post, path = "/api/v1/queues/{name}/resume", tag = "queues",
    params(("name" = String, Path, description = "The queue's name")),
    responses((status = 200, description = "Resumed", body = QueueState),
        (status = 404, description = "No such queue", body = ErrorBody)))]
pub(crate) async fn resume_queue(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    set_paused(state, name, false).await
}

async fn set_paused(
    state: Shared,
    name: String,
    paused: bool,
) -> Result<Json<QueueState>, ApiError> {
    blocking(&state, move |state| {
        if !state.store.set_paused(&name, paused)? {
            return Err(ApiError::NotFound(format!("no queue `{name}`")));
        }
        info!(queue = %name, paused, "queue changed via api");
        Ok(Json(QueueState { name, paused }))
    })
    .await
}

/// `GET /api/v1/jobs`: newest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    pub queue: Option<String>,
    pub status: Option<String>,
    /// At most this many (default 50, at most 1,000).
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "Jobs across runs, newest first", body = [JobRecord]),
        (status = 400, description = "A bad filter", body = ErrorBody)))]
pub(crate) async fn list_jobs(
    State(state): State<Shared>,
    Params(query): Params<JobsQuery>,
) -> Result<Json<Vec<JobRecord>>, ApiError> {
    let filter = JobFilter {
        queue: query.queue,
        status: parse_state::<JobState>(query.status.as_deref())?,
        limit: Some(page(query.limit)),
    };
    blocking(&state, move |state| {
        Ok(Json(state.store.list_jobs(&filter)?))
    })
    .await
}

/// A waiting job, for priority and top.
fn waiting_job(store: &dyn Environment, id: i64) -> Result<JobRecord, ApiError> {
    let job = store
        .job(JobId(id))?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    if !matches!(job.status, JobState::Pending | JobState::Queued) {
        return Err(ApiError::Conflict(format!(
            "job {id} is {} already; only a waiting job can be reprioritised",
            job.status
        )));
    }
    Ok(job)
}

/// `POST /api/v1/jobs/{id}/priority`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Priority {
    pub priority: i64,
}

/// What a change to a job did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobAction {
    pub job_id: i64,
    /// `priority`, `top`; a cancel's `requested`, `cancelled` or `already_finished`.
    pub status: String,
    pub priority: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/priority", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")), request_body = Priority,
    responses((status = 200, description = "Reprioritised", body = JobAction),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not waiting", body = ErrorBody)))]
pub(crate) async fn set_priority(
    State(state): State<Shared>,
    Id(id): Id,
    Body(body): Body<Priority>,
) -> Result<Json<JobAction>, ApiError> {
    blocking(&state, move |state| {
        let job = waiting_job(&*state.store, id)?;
        state.store.apply(&[crate::store::Change::Priority {
            job: job.id,
            priority: body.priority,
        }])?;
        Ok(Json(JobAction {
            job_id: id,
            status: "priority".into(),
            priority: Some(body.priority),
        }))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/top", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, description = "First in its queue", body = JobAction),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not waiting", body = ErrorBody)))]
pub(crate) async fn move_to_top(
    State(state): State<Shared>,
    Id(id): Id,
) -> Result<Json<JobAction>, ApiError> {
    blocking(&state, move |state| {
        let job = waiting_job(&*state.store, id)?;
        state.store.set_top(job.id)?;
        Ok(Json(JobAction {
            job_id: id,
            status: "top".into(),
            priority: Some(job.priority),
        }))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 202, description = "What the cancel did", body = JobAction),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub(crate) async fn cancel_job(
    State(state): State<Shared>,
    Id(id): Id,
) -> Result<(StatusCode, Json<JobAction>), ApiError> {
    blocking(&state, move |state| {
        state
            .store
            .job(JobId(id))?
            .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
        let outcome = crate::engine::queued::cancel_job(&*state.store, JobId(id))?;
        Ok((
            StatusCode::ACCEPTED,
            Json(JobAction {
                job_id: id,
                status: cancel_status(outcome).into(),
                priority: None,
            }),
        ))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Workers and DataBlocks

#[utoipa::path(get, path = "/api/v1/workers", tag = "workers",
    responses((status = 200, description = "Live workers", body = [WorkerRecord])))]
pub(crate) async fn list_workers(
    State(state): State<Shared>,
) -> Result<Json<Vec<WorkerRecord>>, ApiError> {
    blocking(&state, |state| {
        Ok(Json(
            state
                .store
                .workers()?
                .into_iter()
                .filter(WorkerRecord::is_live)
                .collect(),
        ))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/blocks", tag = "blocks",
    responses((status = 200, description = "Every DataBlock with its newest version", body = [BlockSummary])))]
pub(crate) async fn list_blocks(
    State(state): State<Shared>,
) -> Result<Json<Vec<BlockSummary>>, ApiError> {
    blocking(&state, |state| Ok(Json(state.store.block_names()?))).await
}

/// A DataBlock's versions, newest first, each with its lineage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockHistory {
    pub name: String,
    pub versions: Vec<BlockVersionView>,
}

/// A version of a block with the jobs that consumed and produced it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockVersionView {
    #[serde(flatten)]
    pub version: BlockVersion,
    pub lineage: crate::store::Lineage,
}

#[utoipa::path(get, path = "/api/v1/blocks/{name}", tag = "blocks",
    params(("name" = String, Path, description = "The block's name")),
    responses((status = 200, description = "Its versions with lineage", body = BlockHistory),
        (status = 404, description = "No such block", body = ErrorBody)))]
pub(crate) async fn read_block(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<BlockHistory>, ApiError> {
    blocking(&state, move |state| {
        let versions = state.store.block_versions(&name)?;
        if versions.is_empty() {
            return Err(ApiError::NotFound(format!("no DataBlock `{name}`")));
        }
        let versions = versions
            .into_iter()
            .map(|version| {
                let lineage = state.store.block_lineage(version.id)?;
                Ok(BlockVersionView { version, lineage })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Json(BlockHistory { name, versions }))
    })
    .await
}
