//! The run's writer: a thread of its own that records the coordinator's changes in the
//! store, in order, so that the coordinator hands a batch over and goes on starting jobs
//! while the transaction commits on another core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::store::{Change, RunStore};

enum Msg {
    /// Record these changes.
    Apply(Vec<Change>),
    /// Say so on the channel once everything sent before is recorded.
    Sync(Sender<()>),
}

/// Hands batches of changes to the writer thread.
pub(crate) struct Writer {
    store: Arc<dyn RunStore>,
    warned: Arc<AtomicBool>,
    /// The thread and its queue; `None` when it could not start: batches are then
    /// written by the caller.
    thread: Option<(Sender<Msg>, JoinHandle<()>)>,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn start(store: Arc<dyn RunStore>) -> Writer {
        let warned = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("coreflow-writer".into())
            .spawn({
                let store = Arc::clone(&store);
                let warned = Arc::clone(&warned);
                move || {
                    while let Ok(msg) = rx.recv() {
                        record(&*store, &rx, msg, &warned);
                    }
                }
            });
        Writer {
            store,
            warned,
            thread: spawned.ok().map(|thread| (tx, thread)),
        }
    }

    /// Queues `changes` to be recorded after everything queued before.
    pub(crate) fn send(&self, changes: Vec<Change>) {
        match &self.thread {
            Some((tx, _)) => {
                if let Err(mpsc::SendError(Msg::Apply(changes))) = tx.send(Msg::Apply(changes)) {
                    apply(&*self.store, &changes, &self.warned);
                }
            }
            None => apply(&*self.store, &changes, &self.warned),
        }
    }

    /// Waits until everything queued so far is recorded.
    pub(crate) fn sync(&self) {
        if let Some((tx, _)) = &self.thread {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Msg::Sync(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }
}

/// Dropping the writer records everything queued and stops the thread.
impl Drop for Writer {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.thread.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// Records one message, with the batches queued right behind it in the same transaction.
fn record(store: &dyn RunStore, rx: &Receiver<Msg>, msg: Msg, warned: &AtomicBool) {
    let mut changes = match msg {
        Msg::Apply(changes) => changes,
        Msg::Sync(done) => {
            let _ = done.send(());
            return;
        }
    };
    let mut syncs = Vec::new();
    while let Ok(next) = rx.try_recv() {
        match next {
            Msg::Apply(more) => changes.extend(more),
            // A sync queued behind batches that join this transaction waits for all of it.
            Msg::Sync(done) => syncs.push(done),
        }
    }
    let started = std::time::Instant::now();
    apply(store, &changes, warned);
    tracing::debug!(
        changes = changes.len(),
        micros = started.elapsed().as_micros(),
        "state written"
    );
    for done in syncs {
        let _ = done.send(());
    }
}

fn apply(store: &dyn RunStore, changes: &[Change], warned: &AtomicBool) {
    if let Err(err) = store.apply(changes)
        && !warned.swap(true, Ordering::Relaxed)
    {
        eprintln!("warning: could not record the run's state: {err}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::Writer;
    use crate::state::JobState;
    use crate::store::test_support::{job, run, store};
    use crate::store::{RunStore, Transition};

    #[test]
    fn writes_in_order_and_sync_waits_for_everything_sent() {
        let (_dir, store) = store();
        let store: Arc<dyn RunStore> = Arc::new(store);
        let (run_id, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("a", &[], JobState::Queued),
                    job("b", &[], JobState::Queued),
                ],
            ))
            .unwrap();
        let writer = Writer::start(Arc::clone(&store));
        let now = Utc::now();
        writer.send(vec![Transition::new(ids[0], JobState::Running, now).into()]);
        writer.send(vec![
            Transition::new(ids[0], JobState::Succeeded, now).into(),
        ]);
        writer.sync();
        assert_eq!(store.jobs(run_id).unwrap()[0].status, JobState::Succeeded);
        writer.send(vec![Transition::new(ids[1], JobState::Running, now).into()]);
        // Dropping the writer records what is still queued.
        drop(writer);
        assert_eq!(store.jobs(run_id).unwrap()[1].status, JobState::Running);
    }
}
