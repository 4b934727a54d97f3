//! The Scheduler: a pure choice of the next job for a free worker.
//!
//! The worker must carry every label the job asks for (`runs_on`); among those jobs, the
//! order is `jobs top` first, then higher priority, then older; a paused queue gives nothing
//! and a queue at its concurrency limit gives nothing more. Candidates arrive already sorted
//! by that order (the store sorts them in SQL), so the choice is the first that fits. A job
//! with `resources` fits only where its request fits beside what runs on the worker's host,
//! and the first one that does not reserves its share from the jobs behind it
//! ([`resources::Room`]). The same function serves whichever process hosts the scheduling: a
//! standalone worker claiming from the store, or the daemon.

pub mod resources;

use std::collections::HashMap;

use resources::{Admit, Request, Room};

/// A queued job as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub queue: &'a str,
    pub runs_on: &'a [String],
    pub request: Request,
}

/// A queue's limits and load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueLoad {
    pub concurrency: Option<u32>,
    pub paused: bool,
    pub running: u32,
}

impl QueueLoad {
    /// Whether the queue may start one more job.
    #[must_use]
    pub fn admits(&self) -> bool {
        !self.paused && self.concurrency.is_none_or(|limit| self.running < limit)
    }
}

/// The index of the first candidate a worker with `labels` may take, if any. A queue missing
/// from `queues` has no limit. `room` is what the worker's host has left, carried from one
/// page of candidates to the next; without it requests are not looked at.
#[must_use]
pub fn pick(
    candidates: &[Candidate<'_>],
    labels: &[String],
    queues: &HashMap<String, QueueLoad>,
    mut room: Option<&mut Room>,
) -> Option<usize> {
    candidates.iter().position(|candidate| {
        queues.get(candidate.queue).is_none_or(QueueLoad::admits)
            && candidate.runs_on.iter().all(|label| labels.contains(label))
            && room
                .as_deref_mut()
                .is_none_or(|room| room.admit(candidate.request) == Admit::Take)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn first_fitting_candidate_wins() {
        let gpu = labels(&["gpu"]);
        let none: Vec<String> = Vec::new();
        let candidates = [
            Candidate {
                queue: "ml",
                runs_on: &gpu,
                request: Request::default(),
            },
            Candidate {
                queue: "default",
                runs_on: &none,
                request: Request::default(),
            },
        ];
        let queues = HashMap::new();
        assert_eq!(
            pick(&candidates, &labels(&["linux"]), &queues, None),
            Some(1)
        );
        assert_eq!(
            pick(&candidates, &labels(&["linux", "gpu"]), &queues, None),
            Some(0)
        );
    }

    #[test]
    fn paused_and_full_queues_give_nothing() {
        let none: Vec<String> = Vec::new();
        let candidates = [
            Candidate {
                queue: "etl",
                runs_on: &none,
                request: Request::default(),
            },
            Candidate {
                queue: "web",
                runs_on: &none,
                request: Request::default(),
            },
        ];
        let mut queues = HashMap::new();
        queues.insert(
            "etl".to_owned(),
            QueueLoad {
                concurrency: Some(2),
                paused: false,
                running: 2,
            },
        );
        queues.insert(
            "web".to_owned(),
            QueueLoad {
                concurrency: None,
                paused: true,
                running: 0,
            },
        );
        assert_eq!(pick(&candidates, &[], &queues, None), None);
        queues.insert(
            "etl".to_owned(),
            QueueLoad {
                concurrency: Some(2),
                paused: false,
                running: 1,
            },
        );
        assert_eq!(pick(&candidates, &[], &queues, None), Some(0));
    }

    #[test]
    fn a_big_request_is_not_starved_by_small_ones_behind_it() {
        let none: Vec<String> = Vec::new();
        let cpus = |cpus: f64| Request { cpus, memory: 0 };
        let candidate = |request| Candidate {
            queue: "default",
            runs_on: &none,
            request,
        };
        let offer = resources::Offer {
            cpus: 2.0,
            memory: 1 << 30,
        };
        let queues = HashMap::new();
        // One CPU of two is in use: the 2-CPU job waits and the 1-CPU job behind it may not
        // take the free CPU; the job asking nothing may.
        let waiting = [
            candidate(cpus(2.0)),
            candidate(cpus(1.0)),
            candidate(Request::default()),
        ];
        let mut room = Room::new(offer, cpus(1.0));
        assert_eq!(pick(&waiting, &[], &queues, Some(&mut room)), Some(2));
        // A request this worker can never meet is passed over without reserving anything.
        let waiting = [candidate(cpus(8.0)), candidate(cpus(1.0))];
        let mut room = Room::new(offer, cpus(1.0));
        assert_eq!(pick(&waiting, &[], &queues, Some(&mut room)), Some(1));
    }
}
