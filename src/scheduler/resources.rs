//! `resources:` and what hosts offer: a job's request (its own `resources`, else the
//! defaults'), a host's offer (`--cpus`/`--memory`, else its CPU count and physical memory),
//! whether a request fits beside what already runs there, and the room a round of choices
//! shares ([`Room`]): the first request that does not fit reserves its share, so that a
//! stream of small jobs never starves a big one.

use crate::spec::model::{MemorySize, Resources, Workflow};

/// What a host offers the jobs running on it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Offer {
    pub cpus: f64,
    pub memory: u64,
}

/// What a job asks for; zero where it asks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Request {
    pub cpus: f64,
    pub memory: u64,
}

impl Offer {
    /// An offer as a store records it: thousandths of a CPU, bytes.
    #[must_use]
    pub fn from_milli(cpu_milli: i64, memory: i64) -> Offer {
        let as_request = Request::from_milli(cpu_milli, memory);
        Offer {
            cpus: as_request.cpus,
            memory: as_request.memory,
        }
    }

    /// The offer as a store records it: thousandths of a CPU, bytes.
    #[must_use]
    pub fn as_milli(&self) -> (i64, i64) {
        let as_request = Request {
            cpus: self.cpus,
            memory: self.memory,
        };
        (as_request.cpu_milli(), as_request.memory_i64())
    }

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

/// What a host has left for a round of choices: its offer, what runs there, and what the
/// requests held back so far in this round reserve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    offer: Offer,
    used: Request,
    reserved: Request,
}

/// What [`Room::admit`] says of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// It fits: start it (the room counts it as used).
    Take,
    /// It does not fit now: it waits, and reserves its share from the jobs behind it.
    Hold,
    /// It can never fit in this offer.
    Never(String),
}

impl Room {
    #[must_use]
    pub fn new(offer: Offer, used: Request) -> Room {
        Room {
            offer,
            used,
            reserved: Request::default(),
        }
    }

    /// Whether `request` may start now. A request of nothing always may; one that does not
    /// fit beside what runs and what the requests held before it reserve is held, and
    /// reserves its share in turn.
    pub fn admit(&mut self, request: Request) -> Admit {
        if request.is_empty() {
            return Admit::Take;
        }
        if let Some(why) = self.offer.never_fits(request) {
            return Admit::Never(why);
        }
        if self.offer.fits(self.used.plus(self.reserved), request) {
            self.used = self.used.plus(request);
            Admit::Take
        } else {
            self.reserved = self.reserved.plus(request);
            Admit::Hold
        }
    }

    /// Gives back what [`admit`](Self::admit) took for a request that did not start after
    /// all.
    pub fn give_back(&mut self, request: Request) {
        self.used = self.used.minus(request);
    }
}

impl Request {
    /// A request as a store records it: thousandths of a CPU, bytes.
    #[must_use]
    pub fn from_milli(cpu_milli: i64, memory: i64) -> Request {
        Request {
            cpus: cpu_milli.max(0) as f64 / 1000.0,
            memory: u64::try_from(memory).unwrap_or(0),
        }
    }

    /// Thousandths of a CPU, as a store records them.
    #[must_use]
    pub fn cpu_milli(&self) -> i64 {
        (self.cpus * 1000.0).round() as i64
    }

    /// Bytes, as a store records them.
    #[must_use]
    pub fn memory_i64(&self) -> i64 {
        i64::try_from(self.memory).unwrap_or(i64::MAX)
    }

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

/// Why a queued job asking `request` waits, given what each host its workers are on offers
/// and what runs there (`hosts`, only those of live workers that carry the job's labels
/// and offer resources): it fits nowhere ever, or nowhere now. `None` when it would fit
/// somewhere now (then it waits for its turn) or when no such host is known.
#[must_use]
pub fn why_waiting(request: Request, hosts: &[(Offer, Request)]) -> Option<String> {
    if request.is_empty() || hosts.is_empty() {
        return None;
    }
    let largest = Offer {
        cpus: hosts
            .iter()
            .map(|(offer, _)| offer.cpus)
            .fold(0.0, f64::max),
        memory: hosts
            .iter()
            .map(|(offer, _)| offer.memory)
            .max()
            .unwrap_or(0),
    };
    if let Some(why) = largest.never_fits(request) {
        return Some(why);
    }
    if hosts.iter().any(|(offer, used)| offer.fits(*used, request)) {
        return None;
    }
    let free = |(offer, used): &(Offer, Request)| Request {
        cpus: (offer.cpus - used.cpus).max(0.0),
        memory: offer.memory.saturating_sub(used.memory),
    };
    if request.cpus > 0.0
        && hosts
            .iter()
            .all(|host| free(host).cpus + 1e-9 < request.cpus)
    {
        let most = hosts.iter().map(|host| free(host).cpus).fold(0.0, f64::max);
        Some(format!(
            "waits for {} cpus; at most {} are free on a worker's host",
            request.cpus,
            (most * 1000.0).round() / 1000.0
        ))
    } else {
        let most = hosts
            .iter()
            .map(|host| free(host).memory)
            .max()
            .unwrap_or(0);
        Some(format!(
            "waits for {} of memory; at most {} is free on a worker's host",
            MemorySize(request.memory),
            MemorySize(most)
        ))
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

    #[test]
    fn a_waiting_job_says_why() {
        let cpus = |cpus: f64| Request { cpus, memory: 0 };
        let two = Offer {
            cpus: 2.0,
            memory: 1 << 30,
        };
        assert_eq!(
            why_waiting(cpus(8.0), &[(two, Request::default())]).as_deref(),
            Some("needs 8 cpus; the largest worker offers 2")
        );
        assert_eq!(
            why_waiting(cpus(2.0), &[(two, cpus(1.5))]).as_deref(),
            Some("waits for 2 cpus; at most 0.5 are free on a worker's host")
        );
        assert_eq!(
            why_waiting(cpus(2.0), &[(two, cpus(1.5)), (two, cpus(0.0))]),
            None
        );
        assert_eq!(why_waiting(cpus(2.0), &[]), None);
        assert_eq!(why_waiting(Request::default(), &[(two, cpus(2.0))]), None);
    }

    #[test]
    fn the_first_request_held_reserves_its_share() {
        let cpus = |cpus: f64| Request { cpus, memory: 0 };
        let offer = Offer {
            cpus: 2.0,
            memory: 1000,
        };
        // One CPU is taken; a 2-CPU job waits, and the 1-CPU job behind it must not take
        // the CPU it waits for, while a job asking nothing still starts.
        let mut room = Room::new(offer, cpus(1.0));
        assert_eq!(room.admit(cpus(2.0)), Admit::Hold);
        assert_eq!(room.admit(cpus(1.0)), Admit::Hold);
        assert_eq!(room.admit(Request::default()), Admit::Take);
        assert!(matches!(room.admit(cpus(3.0)), Admit::Never(_)));
        // With nothing running the big job takes the host and the small one waits.
        let mut room = Room::new(offer, Request::default());
        assert_eq!(room.admit(cpus(2.0)), Admit::Take);
        assert_eq!(room.admit(cpus(0.5)), Admit::Hold);
        let mut room = Room::new(offer, Request::default());
        assert_eq!(room.admit(cpus(0.5)), Admit::Take);
        assert_eq!(room.admit(cpus(1.5)), Admit::Take);
        assert_eq!(room.admit(cpus(0.1)), Admit::Hold);
        assert_eq!(
            Request::from_milli(cpus(1.5).cpu_milli(), 7),
            Request {
                cpus: 1.5,
                memory: 7
            }
        );
    }
}
