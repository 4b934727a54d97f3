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
//! `?job=NAME` streams one job's lines (every job's state still). The clients of one run
//! share one reader of the store, which looks every quarter second ([`super::feed`]); a
//! comment every 15 s keeps idle connections open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use crate::state::{JobId, RunId};
use crate::store::LogCursor;
use crate::web::api::{ApiError, Id, Params, Shared, blocking, job_of_run};
use crate::web::feed::{Feed, JobEvent, Join, Look, Next, POLL, json_event, look};

/// `?job=` of the events stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub job: Option<String>,
}

/// Where one client's stream is.
enum Phase {
    /// Sending the kept batches `seq..upto` (their lines), then `jobs`, then live.
    Replay {
        feed: Arc<Feed>,
        seq: u64,
        upto: u64,
        jobs: Vec<JobEvent>,
        /// The `end` of a batch replayed: sent after the jobs, and nothing follows.
        end: Option<Event>,
    },
    /// Following the feed live from batch `seq`.
    Live {
        feed: Arc<Feed>,
        seq: u64,
    },
    /// Reading the store alone, from `cursor`.
    Alone {
        cursor: LogCursor,
        sent: Option<HashMap<JobId, JobEvent>>,
        first: bool,
    },
    Done,
}

/// A client's stream: its phase, and what it needs to fall back on reading alone.
struct Client {
    api: Shared,
    run: RunId,
    job: Option<JobId>,
    phase: Phase,
    /// The log cursor after the last lines sent.
    cursor: String,
}

impl Client {
    /// The next events to send; `None` when the stream is over.
    async fn step(&mut self) -> Option<Vec<Event>> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Replay {
                    feed,
                    seq,
                    upto,
                    jobs,
                    end,
                } => {
                    if seq == upto {
                        let mut events = vec![json_event("jobs", &jobs)];
                        if let Some(end) = end {
                            events.push(end);
                        } else {
                            self.phase = Phase::Live { feed, seq };
                        }
                        return Some(events);
                    }
                    let Some(batch) = feed.kept(seq) else {
                        self.fall_behind();
                        continue;
                    };
                    self.cursor.clone_from(&batch.cursor);
                    let lines = batch.lines.clone();
                    self.phase = Phase::Replay {
                        feed,
                        seq: seq + 1,
                        upto,
                        jobs,
                        end: batch.end.clone().or(end),
                    };
                    // Only lines: the jobs as they are now follow the replay.
                    if !lines.is_empty() {
                        return Some(lines);
                    }
                }
                Phase::Live { feed, seq } => match feed.next(seq).await {
                    Next::Batch(batch) => {
                        self.cursor.clone_from(&batch.cursor);
                        let events: Vec<Event> = batch
                            .jobs
                            .iter()
                            .chain(&batch.lines)
                            .chain(&batch.end)
                            .cloned()
                            .collect();
                        if batch.end.is_none() {
                            self.phase = Phase::Live { feed, seq: seq + 1 };
                        }
                        if !events.is_empty() {
                            return Some(events);
                        }
                    }
                    Next::Behind => self.fall_behind(),
                    Next::End => return None,
                },
                Phase::Alone {
                    cursor,
                    sent,
                    first,
                } => {
                    if !first {
                        tokio::time::sleep(POLL).await;
                    }
                    let (run, job, from) = (self.run, self.job, cursor.clone());
                    let jobs = sent.clone();
                    let result = blocking(&self.api, move |state| {
                        look(state, run, job, &from, jobs.as_ref())
                    })
                    .await;
                    match result {
                        Ok(found) => {
                            let ended = found.ended;
                            let events: Vec<Event> = found
                                .job_events
                                .into_iter()
                                .chain(found.events)
                                .chain(found.end)
                                .collect();
                            self.cursor = found.cursor.to_token();
                            self.phase = if ended {
                                Phase::Done
                            } else {
                                Phase::Alone {
                                    cursor: found.cursor,
                                    sent: Some(found.sent),
                                    first: false,
                                }
                            };
                            if !events.is_empty() {
                                return Some(events);
                            }
                        }
                        Err(err) => return Some(Look::error(&err).end.into_iter().collect()),
                    }
                }
            }
        }
    }

    /// Out of the feed's window: reads the store alone from the last lines sent, starting
    /// with every job as it is.
    fn fall_behind(&mut self) {
        self.phase = Phase::Alone {
            cursor: LogCursor::from_token(&self.cursor).unwrap_or_default(),
            sent: None,
            first: true,
        };
    }
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
        .unwrap_or("")
        .to_owned();
    if LogCursor::from_token(&resume).is_none() {
        return Err(ApiError::BadRequest(format!(
            "Last-Event-ID is not a cursor: {resume}"
        )));
    }
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
    let feed = state.feeds.watch(&state, run, job);
    let phase = match feed.join(&resume) {
        Join::At { from, upto, jobs } => Phase::Replay {
            feed,
            seq: from,
            upto,
            jobs,
            end: None,
        },
        Join::Alone => Phase::Alone {
            cursor: LogCursor::from_token(&resume).unwrap_or_default(),
            sent: None,
            first: true,
        },
    };
    let client = Client {
        api: state,
        run,
        job,
        phase,
        cursor: resume,
    };
    let events = stream::unfold(client, |mut client| async move {
        client.step().await.map(|events| (events, client))
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
