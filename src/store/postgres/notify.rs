//! Waking idle workers: a connection of its own that `LISTEN`s on the environment's channel
//! (schema 3 sends a notification there when work may have become claimable) and wakes the
//! worker's [`Notify`]. Polling stays as the fallback: a listener that loses its connection
//! reconnects with backoff, and wakes the worker once reconnected, as it may have missed a
//! notification meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokio::sync::Notify;

/// How long the listener waits for a notification before it looks whether it is to stop.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// A listening thread; it stops when dropped (within [`LOOK_EVERY`]).
pub(super) struct Listener {
    stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The channel of the environment whose schema is `schema` (as `coreflow_work_ready`
/// names it).
pub(super) const CHANNEL_SQL: &str = "SELECT 'coreflow_' || md5(current_schema())";

/// Starts listening on `channel` of the database at `url`, waking `wake` on each
/// notification.
pub(super) fn listen(url: String, channel: String, wake: Arc<Notify>) -> std::io::Result<Listener> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("coreflow-listen".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            while !stopped.load(Ordering::Relaxed) {
                match serve(&url, &channel, &wake, &stopped) {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "work notifications interrupted; polling meanwhile");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })?;
    Ok(Listener { stop })
}

/// One connection's worth of listening: `Ok` when told to stop, an error when the
/// connection failed.
fn serve(
    url: &str,
    channel: &str,
    wake: &Notify,
    stop: &AtomicBool,
) -> Result<(), postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    // The channel is `coreflow_` and hex digits: an identifier as it stands.
    client.batch_execute(&format!("LISTEN {channel}"))?;
    // Work may have appeared before the listening began.
    wake.notify_one();
    while !stop.load(Ordering::Relaxed) {
        // Several notifications before the worker looks make one wake-up: `Notify` keeps
        // one permit.
        if client
            .notifications()
            .timeout_iter(LOOK_EVERY)
            .next()?
            .is_some()
        {
            wake.notify_one();
        }
        if client.is_closed() {
            // Asked for anything, a closed client says why.
            client.simple_query("")?;
        }
    }
    Ok(())
}
