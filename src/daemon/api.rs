//! The HTTP API of SPEC §5, on axum:
//!
//! - `POST /api/v1/workflows/{name}/runs` with `{"params": {...}}` → `201 {"run_id": N}`
//! - `GET /api/v1/runs/{id}` → the run with its jobs (as `coreflow show --json`)
//! - `POST /api/v1/runs/{id}/cancel` → `202 {"run_id": N, "status": "requested" | …}`
//! - `GET /api/v1/health` → `{"status": "ok"}`, without a token
//!
//! Every request passes [`guard::check`] first (Host, same origin, token, body: SPEC §5
//! "Security"); handlers hold no checks of their own. Bad JSON and bad params are 400, unknown workflows and runs 404, each with a
//! `{"error": "..."}` body; nothing a client sends can stop the daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing::info;

use crate::daemon::coalesce::Coalescer;
use crate::daemon::guard::{self, Guard};
use crate::engine::admission::{self, Admission, Request};
use crate::spec::Loaded;
use crate::state::RunId;
use crate::store::CancelOutcome;
use crate::store::{Env, Environment};

/// What the handlers share.
pub struct ApiState {
    /// A connection of the API's own: a long read never holds up the daemon's loop.
    pub store: Env,
    /// The daemon's valid workflows by name, replaced on every reload.
    pub workflows: Arc<RwLock<BTreeMap<String, Arc<Loaded>>>>,
    /// `GET /runs/{id}` answers, shared by the clients that ask for a run at once.
    pub runs: Coalescer<i64, (StatusCode, Bytes)>,
}

type Shared = Arc<ApiState>;

/// The API's routes, every request passing `guard` first.
pub fn router(state: Shared, guard: Guard) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/workflows/{name}/runs", post(create_run))
        .route("/api/v1/runs/{id}", get(read_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::check,
        ))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs `work` (the database, files) on tokio's blocking pool: a busy database must not hold
/// up the async workers, whose timers fire the daemon's schedules.
async fn blocking(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request failed: {err}"),
            )
        })
}

async fn health() -> Response {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

async fn create_run(
    State(state): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {err}"),
                );
            }
        }
    };
    let Some(object) = body.as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object like {\"params\": {...}}",
        );
    };
    if let Some(key) = object.keys().find(|k| *k != "params") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown field `{key}`: the body holds `params`"),
        );
    }
    let texts: Vec<String> = match object.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(params @ Value::Object(_)) => crate::spec::params::param_texts(params),
        Some(_) => return error(StatusCode::BAD_REQUEST, "`params` must be an object"),
    };
    blocking(move || {
        let loaded = match state.workflows.read() {
            Ok(workflows) => workflows.get(&name).map(Arc::clone),
            Err(_) => None,
        };
        let Some(loaded) = loaded else {
            return error(StatusCode::NOT_FOUND, format!("no workflow `{name}`"));
        };
        let source = std::fs::canonicalize(&loaded.file).ok();
        let request = Request {
            loaded: &loaded,
            params: &texts,
            trigger: json!({ "type": "api" }),
            source: source.as_deref().and_then(std::path::Path::to_str),
            now: state.store.clock().now(),
            fire: None,
        };
        match admission::admit(&state.store, &request) {
            Ok(Admission::Created(run)) => {
                info!(workflow = %name, run = run.0, trigger = "api", "run created");
                let body = json!({ "run_id": run.0, "status": "queued" });
                (StatusCode::CREATED, Json(body)).into_response()
            }
            Ok(Admission::Skipped { run, reason }) => {
                info!(workflow = %name, run = run.0, reason = %reason, "api request skipped");
                let body = json!({ "run_id": run.0, "status": "skipped", "reason": reason });
                (StatusCode::CREATED, Json(body)).into_response()
            }
            Ok(Admission::Waiting { ahead }) => {
                info!(workflow = %name, ahead, "api request waits for a run slot");
                let body = json!({ "status": "waiting", "ahead": ahead });
                (StatusCode::ACCEPTED, Json(body)).into_response()
            }
            Err(err) => {
                let status = if err.exit_code() == crate::exit::USAGE {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                error(status, err.to_string())
            }
        }
    })
    .await
}

async fn read_run(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no run `{id}`"));
    };
    let shared = Arc::clone(&state);
    let (status, body) = state
        .runs
        .get(id, || async move {
            tokio::task::spawn_blocking(move || run_json(&*shared.store, id))
                .await
                .unwrap_or_else(|err| {
                    error_body(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
                })
        })
        .await;
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A run with its jobs, as `coreflow show --json` prints it, or the error.
fn run_json(store: &dyn Environment, id: i64) -> (StatusCode, Bytes) {
    match store.run(RunId(id)) {
        Ok(Some(run)) => {
            let jobs = match store.jobs(run.id) {
                Ok(jobs) => jobs,
                Err(err) => return error_body(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
            };
            let mut value = serde_json::to_value(&run).unwrap_or_default();
            value["jobs"] = serde_json::to_value(&jobs).unwrap_or_default();
            match store.notifications(run.id) {
                Ok(notifications) if !notifications.is_empty() => {
                    value["notifications"] =
                        serde_json::to_value(&notifications).unwrap_or_default();
                }
                Ok(_) => {}
                Err(err) => return error_body(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
            }
            (
                StatusCode::OK,
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            )
        }
        Ok(None) => error_body(StatusCode::NOT_FOUND, &format!("no run {id}")),
        Err(err) => error_body(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    }
}

/// An error's status and `{"error": …}` body.
fn error_body(status: StatusCode, message: &str) -> (StatusCode, Bytes) {
    let body = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
    (status, Bytes::from(body))
}

async fn cancel_run(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, format!("no run `{id}`"));
    };
    blocking(move || {
        match state.store.run(RunId(id)) {
            Ok(Some(_)) => {}
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("no run {id}")),
            Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        }
        match crate::engine::queued::cancel_run(&*state.store, RunId(id)) {
            Ok(outcome) => {
                let status = match outcome {
                    CancelOutcome::Requested => "requested",
                    CancelOutcome::Cancelled => "cancelled",
                    CancelOutcome::AlreadyFinished => "already_finished",
                };
                info!(run = id, status, "cancel via api");
                (
                    StatusCode::ACCEPTED,
                    Json(json!({ "run_id": id, "status": status })),
                )
                    .into_response()
            }
            Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        }
    })
    .await
}
