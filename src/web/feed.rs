//! One reader of a run for all the clients watching it: the events of `GET
//! /api/v1/runs/{id}/events` are read from the store and encoded once per run (and job
//! filter), by a `Feed`, and handed to every client as they are. A hundred browsers on one
//! chatty run cost one reader, not a hundred.
//!
//! A feed reads the run from the start of its output and keeps what it read as numbered
//! batches, up to `KEEP_BYTES`: a client joining (or rejoining with `Last-Event-ID`) gets
//! the batches it lacks from there, then the live ones. A client whose place is no longer
//! kept (it rejoins after much output, or it reads slower than the run writes and falls out
//! of the window) reads the store on its own from its cursor, as before: correct, only
//! dearer. The feed stops when nobody watches or the run has ended and everything was read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::response::sse::Event;
use tokio::sync::Notify;

use serde::Serialize;

use crate::state::{JobId, JobState, RunId};
use crate::store::{JobRecord, LogCursor, LogLine};
use crate::web::api::{ApiError, ApiState, Shared, blocking};

/// The most lines one `lines` event carries.
const MAX_LINES: usize = 1000;

/// How often a feed looks at the store.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// How much encoded output a feed keeps for clients that join late or fall behind.
const KEEP_BYTES: usize = 16 << 20;

/// What one look of a feed found, encoded once.
pub(crate) struct Batch {
    /// Its number: the feed's batches are numbered from 0.
    pub(crate) seq: u64,
    /// `job` events, in order.
    pub(crate) jobs: Vec<Event>,
    /// `lines` events, with their cursor ids.
    pub(crate) lines: Vec<Event>,
    /// The `end` (or `error`) event: nothing follows.
    pub(crate) end: Option<Event>,
    /// The log cursor after it, as a client's `Last-Event-ID` names it.
    pub(crate) cursor: String,
    /// Bytes of data it holds, for [`KEEP_BYTES`].
    size: usize,
}

/// A run (and job filter) being watched.
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    /// Woken when a batch is added.
    added: Notify,
}

struct FeedState {
    batches: VecDeque<Arc<Batch>>,
    /// The number of the next batch.
    next_seq: u64,
    /// Bytes held by `batches`.
    bytes: usize,
    /// Every job as of the last batch.
    jobs: HashMap<JobId, JobEvent>,
    /// The last batch holds the run's end (or an error): nothing follows.
    ended: bool,
}

/// Where a client joins a feed.
pub(crate) enum Join {
    /// Replay batches from `from` (only their lines) up to `upto`, then send the jobs as they
    /// are (`jobs`), then follow live from `upto`.
    At {
        from: u64,
        upto: u64,
        jobs: Vec<JobEvent>,
    },
    /// The place is not kept: read the store alone.
    Alone,
}

/// What a client gets next from a feed.
pub(crate) enum Next {
    Batch(Arc<Batch>),
    /// Fell out of the window: read the store alone from the last cursor sent.
    Behind,
    /// The run ended and everything was sent.
    End,
}

impl Feed {
    /// Where a client with the log cursor `token` (empty for a new client) joins.
    pub(crate) fn join(&self, token: &str) -> Join {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let first = state.batches.front().map_or(state.next_seq, |b| b.seq);
        let from = if token.is_empty() {
            (first == 0).then_some(0)
        } else {
            state
                .batches
                .iter()
                .find(|batch| batch.cursor == token)
                .map(|batch| batch.seq + 1)
        };
        match from {
            Some(from) => {
                let mut jobs: Vec<JobEvent> = state.jobs.values().cloned().collect();
                jobs.sort_by_key(|job| job.id);
                Join::At {
                    from,
                    upto: state.next_seq,
                    jobs,
                }
            }
            None => Join::Alone,
        }
    }

    /// Batch `seq` if it is kept, `None` if it is not there yet, `Behind` if evicted.
    fn get(&self, seq: u64) -> Option<Next> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let first = state.batches.front().map_or(state.next_seq, |b| b.seq);
        if seq < first {
            return Some(Next::Behind);
        }
        if let Some(batch) = state.batches.get(usize::try_from(seq - first).ok()?) {
            return Some(Next::Batch(Arc::clone(batch)));
        }
        state.ended.then_some(Next::End)
    }

    /// Waits for batch `seq` (or the end, or eviction).
    pub(crate) async fn next(&self, seq: u64) -> Next {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(next) = self.get(seq) {
                return next;
            }
            added.await;
        }
    }

    /// Batch `seq` if it is kept (for a replay).
    pub(crate) fn kept(&self, seq: u64) -> Option<Arc<Batch>> {
        match self.get(seq) {
            Some(Next::Batch(batch)) => Some(batch),
            _ => None,
        }
    }

    fn push(&self, look: Look, cursor: &LogCursor) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let size = look.size;
        let batch = Arc::new(Batch {
            seq: state.next_seq,
            jobs: look.job_events,
            lines: look.events,
            end: look.end,
            cursor: cursor.to_token(),
            size,
        });
        state.next_seq += 1;
        state.bytes += size;
        state.batches.push_back(batch);
        state.jobs = look.sent;
        state.ended = look.ended;
        while state.bytes > KEEP_BYTES && state.batches.len() > 1 {
            if let Some(old) = state.batches.pop_front() {
                state.bytes -= old.size;
            }
        }
        drop(state);
        self.added.notify_waiters();
    }
}

/// What a feed follows: a run, and one job's lines or all.
type FeedKey = (RunId, Option<JobId>);

/// The feeds being watched, by run and job filter.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<FeedKey, Weak<Feed>>>,
}

impl Feeds {
    /// The feed of `run` (lines of `job` only, when given), started if nobody watches it.
    pub(crate) fn watch(&self, api: &Shared, run: RunId, job: Option<JobId>) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.retain(|_, feed| feed.strong_count() > 0);
        if let Some(feed) = feeds.get(&(run, job)).and_then(Weak::upgrade) {
            return feed;
        }
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState {
                batches: VecDeque::new(),
                next_seq: 0,
                bytes: 0,
                jobs: HashMap::new(),
                ended: false,
            }),
            added: Notify::new(),
        });
        feeds.insert((run, job), Arc::downgrade(&feed));
        tokio::spawn(read(Arc::downgrade(&feed), Arc::clone(api), run, job));
        feed
    }
}

/// A feed's reader: looks at the store every [`POLL`] while someone watches, until the
/// run's end was read.
async fn read(feed: Weak<Feed>, api: Shared, run: RunId, job: Option<JobId>) {
    let mut cursor = LogCursor::default();
    let mut sent: Option<HashMap<JobId, JobEvent>> = Some(HashMap::new());
    loop {
        if feed.strong_count() == 0 {
            return;
        }
        let (from, jobs) = (cursor.clone(), sent.clone());
        let result = blocking(&api, move |state: &ApiState| {
            look(state, run, job, &from, jobs.as_ref())
        })
        .await;
        let Some(feed) = feed.upgrade() else { return };
        let ended = match result {
            Ok(found) => {
                cursor = found.cursor.clone();
                sent = Some(found.sent.clone());
                let ended = found.ended;
                if !found.is_empty() || ended {
                    feed.push(found, &cursor);
                }
                ended
            }
            Err(err) => {
                feed.push(Look::error(&err), &cursor);
                true
            }
        };
        if ended {
            return;
        }
        drop(feed);
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------
// Looking at the store

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

/// What one look at the store found.
pub(crate) struct Look {
    /// `lines` events.
    pub(crate) events: Vec<Event>,
    /// The `end` (or `error`) event, when nothing follows.
    pub(crate) end: Option<Event>,
    /// `jobs` (the first look of a client alone) or `job` events.
    pub(crate) job_events: Vec<Event>,
    pub(crate) cursor: LogCursor,
    pub(crate) sent: HashMap<JobId, JobEvent>,
    pub(crate) ended: bool,
    /// Bytes of event data.
    pub(crate) size: usize,
}

impl Look {
    /// Whether it found nothing new.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.job_events.is_empty() && self.end.is_none()
    }

    /// A look that failed: an `error` event, and the end of the stream.
    pub(crate) fn error(err: &ApiError) -> Look {
        Look {
            events: Vec::new(),
            end: Some(json_event(
                "error",
                &serde_json::json!({ "error": err.to_string() }),
            )),
            job_events: Vec::new(),
            cursor: LogCursor::default(),
            sent: HashMap::new(),
            ended: true,
            size: 0,
        }
    }
}

pub(crate) fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// One look at run `run`: what changed in the jobs since `sent` (all of them as `jobs` when
/// `None`), the lines written after `cursor` (of `job` only, when given), and the end.
pub(crate) fn look(
    state: &ApiState,
    run: RunId,
    job: Option<JobId>,
    cursor: &LogCursor,
    sent: Option<&HashMap<JobId, JobEvent>>,
) -> Result<Look, ApiError> {
    let store = &*state.store;
    // The run first: when it has ended, the lines read after hold all there will be.
    let record = store
        .run(run)?
        .ok_or_else(|| ApiError::NotFound(format!("no run {run}")))?;
    let jobs = store.jobs(run)?;
    let mut job_events = Vec::new();
    let mut size = 0;
    let now: HashMap<JobId, JobEvent> =
        jobs.iter().map(|job| (job.id, JobEvent::of(job))).collect();
    match sent {
        None => {
            let all: Vec<JobEvent> = jobs.iter().map(JobEvent::of).collect();
            job_events.push(json_event("jobs", &all));
        }
        Some(sent) => {
            for job in &jobs {
                let current = &now[&job.id];
                if sent.get(&job.id) != Some(current) {
                    size += 200;
                    job_events.push(json_event("job", current));
                }
            }
        }
    }
    let mut events = Vec::new();
    let mut reader = store.read_logs(run, job, Some(cursor))?;
    let mut complete = true;
    loop {
        let mut lines: Vec<LogLine> = Vec::new();
        for line in reader.by_ref() {
            let line = line?;
            size += line.line.len() + line.job.len() + line.step.len() + 80;
            lines.push(line);
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
    let ended = record.status.is_terminal() && complete;
    let end = ended.then(|| json_event("end", &serde_json::json!({ "status": record.status })));
    Ok(Look {
        events,
        end,
        job_events,
        cursor: reader.cursor(),
        sent: now,
        ended,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> Feed {
        Feed {
            state: Mutex::new(FeedState {
                batches: VecDeque::new(),
                next_seq: 0,
                bytes: 0,
                jobs: HashMap::new(),
                ended: false,
            }),
            added: Notify::new(),
        }
    }

    fn look(size: usize, ended: bool) -> Look {
        Look {
            events: vec![Event::default().event("lines").data("[]")],
            end: ended.then(|| Event::default().event("end").data("{}")),
            job_events: Vec::new(),
            cursor: LogCursor::default(),
            sent: HashMap::new(),
            ended,
            size,
        }
    }

    fn cursor(offset: u64) -> LogCursor {
        LogCursor::from_token(&format!("1.1.{offset}")).expect("a cursor")
    }

    #[tokio::test]
    async fn clients_join_where_they_left_and_read_alone_beyond_the_window() {
        let feed = feed();
        assert!(matches!(
            feed.join(""),
            Join::At {
                from: 0,
                upto: 0,
                ..
            }
        ));
        feed.push(look(10, false), &cursor(10));
        feed.push(look(10, false), &cursor(20));
        // A new client replays from the start; one that had the first batch, from the second.
        assert!(matches!(
            feed.join(""),
            Join::At {
                from: 0,
                upto: 2,
                ..
            }
        ));
        assert!(matches!(
            feed.join("1.1.10"),
            Join::At {
                from: 1,
                upto: 2,
                ..
            }
        ));
        // A cursor the feed never gave: alone.
        assert!(matches!(feed.join("1.1.15"), Join::Alone));
        assert!(matches!(feed.next(1).await, Next::Batch(batch) if batch.cursor == "1.1.20"));
        // Past the window: the oldest batches go, and who needs them reads alone.
        feed.push(look(KEEP_BYTES, false), &cursor(30));
        assert!(matches!(feed.join(""), Join::Alone));
        assert!(matches!(feed.next(0).await, Next::Behind));
        assert!(matches!(
            feed.join("1.1.30"),
            Join::At {
                from: 3,
                upto: 3,
                ..
            }
        ));
        // The end: the last batch, then nothing.
        feed.push(look(1, true), &cursor(40));
        assert!(matches!(feed.next(3).await, Next::Batch(batch) if batch.end.is_some()));
        assert!(matches!(feed.next(4).await, Next::End));
    }
}
