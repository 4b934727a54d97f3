//! Coalescing reads: requests for the same key share one computation, and a request only
//! ever gets an answer computed after it arrived, so sharing never serves anything stale.
//!
//! Fifty clients polling a run of 1,000 jobs would otherwise read and serialize the run fifty
//! times over (13 ms each): with coalescing the run is read once per round, and a request
//! waits at most for the round in flight and its own.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// How many keys keep their last answer; beyond that, idle ones are forgotten.
const KEEP: usize = 64;

/// One key's last answer and when its computation started.
type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// Coalesces computations of `V` by key.
pub struct Coalescer<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescer<K, V> {
    /// The value for `key`: the answer of a computation that started after this call, either
    /// one that another caller ran meanwhile, or `compute`'s.
    pub async fn get<F, Fut>(&self, key: K, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let arrived = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if slots.len() >= KEEP && !slots.contains_key(&key) {
                // Only slots nobody holds or waits for.
                slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
            Arc::clone(slots.entry(key).or_default())
        };
        // Held while computing: callers that arrive meanwhile wait here for its answer.
        let mut last = slot.lock().await;
        if let Some((started, value)) = last.as_ref()
            && *started >= arrived
        {
            return value.clone();
        }
        let started = Instant::now();
        let value = compute().await;
        *last = Some((started, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn callers_that_wait_share_an_answer_computed_after_they_came() {
        let coalescer: Arc<Coalescer<u32, usize>> = Arc::default();
        let computed = Arc::new(AtomicUsize::new(0));
        // A first computation holds the slot while eight more callers arrive.
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (coalescer, computed) = (Arc::clone(&coalescer), Arc::clone(&computed));
            tokio::spawn(async move {
                coalescer
                    .get(1, || async move {
                        let _ = hold.await;
                        computed.fetch_add(1, Ordering::SeqCst)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (coalescer, computed) = (Arc::clone(&coalescer), Arc::clone(&computed));
                tokio::spawn(async move {
                    coalescer
                        .get(1, || async move { computed.fetch_add(1, Ordering::SeqCst) })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 0);
        // The waiters came after the first computation started: they never see its answer,
        // and they share one computation of their own.
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), 1);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 2);
        // A later caller gets a fresh answer.
        let later = coalescer
            .get(1, || async { computed.fetch_add(1, Ordering::SeqCst) })
            .await;
        assert_eq!(later, 2);
    }
}
