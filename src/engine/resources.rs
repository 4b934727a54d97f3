//! `resources:` and what hosts offer: a job's request (its own `resources`, else the
//! defaults'), a host's offer (`--cpus`/`--memory`, else its CPU count and physical memory),
//! and whether a request fits beside what already runs there.

use crate::spec::model::{MemorySize, Resources, Workflow};

/// What a host offers the jobs running on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer {
    pub cpus: f64,
    pub memory: u64,
}

/// What a job asks for; zero where it asks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Request {
    pub cpus: f64,
    pub memory: u64,
}

impl Offer {
    /// `--cpus` and `--memory`, else the host's CPU count and physical memory.
    #[must_use]
    pub fn of_host(cpus: Option<f64>, memory: Option<MemorySize>) -> Offer {
        Offer {
            cpus: cpus.unwrap_or_else(host_cpus),
            memory: memory.map_or_else(host_memory, |m| m.0),
        }
    }

    /// Whether `request` fits beside `used`.
    #[must_use]
    pub fn fits(&self, used: Request, request: Request) -> bool {
        // A little slack so that 0.1 + 0.2 CPUs fit in 0.3.
        used.cpus + request.cpus <= self.cpus + 1e-9 && used.memory + request.memory <= self.memory
    }

    /// Why `request` can never fit here, or `None`.
    #[must_use]
    pub fn never_fits(&self, request: Request) -> Option<String> {
        if request.cpus > self.cpus + 1e-9 {
            Some(format!(
                "needs {} cpus; the largest worker offers {}",
                request.cpus, self.cpus
            ))
        } else if request.memory > self.memory {
            Some(format!(
                "needs {} of memory; the largest worker offers {}",
                MemorySize(request.memory),
                MemorySize(self.memory)
            ))
        } else {
            None
        }
    }
}

impl Request {
    /// The request of job `base` of `workflow`: its own `resources`, else the defaults'.
    #[must_use]
    pub fn of(workflow: &Workflow, base: &str) -> Request {
        let resources: Option<Resources> = workflow
            .jobs
            .get(base)
            .and_then(|job| job.resources)
            .or(workflow.defaults.resources);
        resources.map_or_else(Request::default, |r| Request {
            cpus: r.cpus.unwrap_or(0.0),
            memory: r.memory.map_or(0, |m| m.0),
        })
    }

    /// Whether it asks for anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cpus == 0.0 && self.memory == 0
    }

    /// The sum of two requests.
    #[must_use]
    pub fn plus(self, other: Request) -> Request {
        Request {
            cpus: self.cpus + other.cpus,
            memory: self.memory + other.memory,
        }
    }

    /// `self` less `other`, never below zero.
    #[must_use]
    pub fn minus(self, other: Request) -> Request {
        Request {
            cpus: (self.cpus - other.cpus).max(0.0),
            memory: self.memory.saturating_sub(other.memory),
        }
    }
}

/// The host's CPU count.
#[must_use]
pub fn host_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| {
        f64::from(u32::try_from(n.get()).unwrap_or(u32::MAX))
    })
}

/// The host's physical memory (`MemTotal` of /proc/meminfo), or 1 TiB when unknown.
#[must_use]
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(1 << 40, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fit_beside_what_runs() {
        let offer = Offer {
            cpus: 2.0,
            memory: 1000,
        };
        let two = Request {
            cpus: 2.0,
            memory: 0,
        };
        assert!(offer.fits(Request::default(), two));
        assert!(!offer.fits(two, two));
        let tenth = Request {
            cpus: 0.1,
            memory: 0,
        };
        assert!(offer.fits(
            Request {
                cpus: 1.9,
                memory: 0
            },
            tenth
        ));
        assert_eq!(
            offer
                .never_fits(Request {
                    cpus: 8.0,
                    memory: 0
                })
                .as_deref(),
            Some("needs 8 cpus; the largest worker offers 2")
        );
        assert!(
            offer
                .never_fits(Request {
                    cpus: 0.0,
                    memory: 2000
                })
                .is_some()
        );
        assert!(host_memory() > 0 && host_cpus() >= 1.0);
    }
}
