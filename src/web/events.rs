//! `GET /api/v1/runs/{id}/events`: a run live, as server-sent events.
//!
//! - `jobs` (first, and again after a reconnection): every job with its state, attempts,
//!   exit code, duration, CPU time and peak memory, as a JSON array.
//! - `job`: one job whose state or figures changed, as one such object.
//! - `lines`: output lines (the objects of `coreflow logs --json`), as a JSON array, with an
//!   `id` that is the log cursor after them: a client reconnecting with `Last-Event-ID` gets
//!   every line after those it had, none twice (`EventSource` does this by itself).
//! - `end`: the run ended (`{"status": …}`) and every line was sent; the stream closes.
//!
//! `?job=NAME` streams one job's lines (every job's state still). The stream looks at the
//! store every quarter second; a comment every 15 s keeps idle connections open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::state::{JobId, JobState, RunId};
use crate::store::{JobRecord, LogCursor, LogLine};
use crate::web::api::{ApiError, Id, Params, Shared, blocking, job_of_run};

/// How often the stream looks at the store.
const POLL: Duration = Duration::from_millis(250);
/// The most lines one `lines` event carries.
const MAX_LINES: usize = 1000;

/// `?job=` of the events stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub job: Option<String>,
}

/// A job as the events show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub id: JobId,
    pub name: String,
    pub status: JobState,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub reason: Option<String>,
}

impl JobEvent {
    fn of(job: &JobRecord) -> JobEvent {
        JobEvent {
            id: job.id,
            name: job.name.clone(),
            status: job.status,
            attempts: job.attempts,
            exit_code: job.exit_code,
            duration_ms: job.duration_ms,
            cpu_ms: job.cpu_ms,
            peak_rss_bytes: job.peak_rss_bytes,
            reason: job.reason.clone(),
        }
    }
}

/// Where a stream is.
struct Follow {
    state: Shared,
    run: RunId,
    job: Option<JobId>,
    cursor: LogCursor,
    /// The jobs as last sent; `None` before the first `jobs` event.
    sent: Option<HashMap<JobId, JobEvent>>,
    done: bool,
}

/// What one look at the store found.
struct Look {
    events: Vec<Event>,
    cursor: LogCursor,
    sent: HashMap<JobId, JobEvent>,
    ended: bool,
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// One look: what changed in the jobs, the lines written since the cursor, and the end.
fn look(follow: &Follow, state: &crate::web::api::ApiState) -> Result<Look, ApiError> {
    let store = &*state.store;
    // The run first: when it has ended, the lines read after hold all there will be.
    let run = store
        .run(follow.run)?
        .ok_or_else(|| ApiError::NotFound(format!("no run {}", follow.run)))?;
    let jobs = store.jobs(follow.run)?;
    let mut events = Vec::new();
    let now: HashMap<JobId, JobEvent> =
        jobs.iter().map(|job| (job.id, JobEvent::of(job))).collect();
    match &follow.sent {
        None => {
            let all: Vec<JobEvent> = jobs.iter().map(JobEvent::of).collect();
            events.push(json_event("jobs", &all));
        }
        Some(sent) => {
            for job in &jobs {
                let current = &now[&job.id];
                if sent.get(&job.id) != Some(current) {
                    events.push(json_event("job", current));
                }
            }
        }
    }
    let mut reader = store.read_logs(follow.run, follow.job, Some(&follow.cursor))?;
    let mut complete = true;
    loop {
        let mut lines: Vec<LogLine> = Vec::new();
        for line in reader.by_ref() {
            lines.push(line?);
            if lines.len() >= MAX_LINES {
                break;
            }
        }
        if lines.is_empty() {
            break;
        }
        let full = lines.len() >= MAX_LINES;
        events.push(json_event("lines", &lines).id(reader.cursor().to_token()));
        if !full {
            break;
        }
        if events.len() > 16 {
            // Enough for one look; the rest comes with the next.
            complete = false;
            break;
        }
    }
    let ended = run.status.is_terminal() && complete;
    if ended {
        events.push(json_event(
            "end",
            &serde_json::json!({ "status": run.status }),
        ));
    }
    Ok(Look {
        events,
        cursor: reader.cursor(),
        sent: now,
        ended,
    })
}

/// `GET /api/v1/runs/{id}/events`.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs",
    params(("id" = i64, Path, description = "The run's id"), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-sent events: `jobs`, `job`, `lines`, `end`", content_type = "text/event-stream"),
        (status = 404, description = "No such run or job", body = crate::web::api::ErrorBody)))]
pub(crate) async fn run_events(
    State(state): State<Shared>,
    Id(id): Id,
    Params(query): Params<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let cursor = match resume.as_deref() {
        Some(token) => LogCursor::from_token(token).ok_or_else(|| {
            ApiError::BadRequest(format!("Last-Event-ID is not a cursor: {token}"))
        })?,
        None => LogCursor::default(),
    };
    let job_name = query.job.clone();
    let (run, job) = blocking(&state, move |state| {
        let run = state
            .store
            .run(RunId(id))?
            .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
        let job = match &job_name {
            Some(name) => Some(job_of_run(&*state.store, &run, name)?),
            None => None,
        };
        Ok((run.id, job))
    })
    .await?;
    let follow = Follow {
        state,
        run,
        job,
        cursor,
        sent: None,
        done: false,
    };
    let events = stream::unfold(follow, |mut follow| async move {
        if follow.done {
            return None;
        }
        if follow.sent.is_some() {
            tokio::time::sleep(POLL).await;
        }
        let state = std::sync::Arc::clone(&follow.state);
        let snapshot = Follow {
            state: std::sync::Arc::clone(&state),
            run: follow.run,
            job: follow.job,
            cursor: follow.cursor.clone(),
            sent: follow.sent.clone(),
            done: false,
        };
        let result = blocking(&state, move |state| look(&snapshot, state)).await;
        let events = match result {
            Ok(look) => {
                follow.cursor = look.cursor;
                follow.sent = Some(look.sent);
                follow.done = look.ended;
                look.events
            }
            Err(err) => {
                follow.done = true;
                vec![json_event(
                    "error",
                    &serde_json::json!({ "error": err.to_string() }),
                )]
            }
        };
        Some((events, follow))
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
