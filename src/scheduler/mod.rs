//! The Scheduler: a pure choice of the next job for a free worker.
//!
//! The worker must carry every label the job asks for (`runs_on`); among those jobs, the
//! order is `jobs top` first, then higher priority, then older; a paused queue gives nothing
//! and a queue at its concurrency limit gives nothing more. Candidates arrive already sorted
//! by that order (the store sorts them in SQL), so the choice is the first that fits. The same
//! function serves whichever process hosts the scheduling: a standalone worker claiming from
//! the store, or the daemon.

use std::collections::HashMap;

/// A queued job as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub queue: &'a str,
    pub runs_on: &'a [String],
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
/// from `queues` has no limit.
#[must_use]
pub fn pick(
    candidates: &[Candidate<'_>],
    labels: &[String],
    queues: &HashMap<String, QueueLoad>,
) -> Option<usize> {
    candidates.iter().position(|candidate| {
        queues.get(candidate.queue).is_none_or(QueueLoad::admits)
            && candidate.runs_on.iter().all(|label| labels.contains(label))
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
            },
            Candidate {
                queue: "default",
                runs_on: &none,
            },
        ];
        let queues = HashMap::new();
        assert_eq!(pick(&candidates, &labels(&["linux"]), &queues), Some(1));
        assert_eq!(
            pick(&candidates, &labels(&["linux", "gpu"]), &queues),
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
            },
            Candidate {
                queue: "web",
                runs_on: &none,
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
        assert_eq!(pick(&candidates, &[], &queues), None);
        queues.insert(
            "etl".to_owned(),
            QueueLoad {
                concurrency: Some(2),
                paused: false,
                running: 1,
            },
        );
        assert_eq!(pick(&candidates, &[], &queues), Some(0));
    }
}
