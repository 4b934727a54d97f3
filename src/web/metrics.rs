//! `GET /metrics`: the environment's figures in the Prometheus text format (version 0.0.4,
//! [`CONTENT_TYPE`]), rendered from a [`MetricsSnapshot`] the store computed at this scrape:
//!
//! - `coreflow_runs_finished_total{workflow,status}` (counter): runs that ended.
//! - `coreflow_jobs_finished_total{workflow,queue,status}` (counter): jobs that ended.
//! - `coreflow_job_duration_seconds{workflow,queue}` (histogram): how long ended jobs took,
//!   from their first start to their end (buckets
//!   [`JOB_DURATION_BUCKETS`](crate::store::metrics::JOB_DURATION_BUCKETS)).
//! - `coreflow_queue_depth{queue}` (gauge): jobs waiting in each queue.
//! - `coreflow_queue_oldest_wait_seconds{queue}` (gauge): how long the oldest of them has
//!   waited (0 when none).
//! - `coreflow_workers{state}` (gauge): live workers, `idle`, `busy` or `stopping`.
//! - `coreflow_trigger_lateness_seconds{workflow,trigger}` (gauge): how late each time
//!   trigger's last fire was (`trigger` is its place in the workflow's `triggers:` list).
//!
//! The counters are counts over the stored history, not over this process's life: they
//! survive restarts and agree between daemons, and fall only when runs are deleted (which
//! Prometheus reads as a counter reset).
//!
//! Built with `prometheus-client`, the Prometheus project's official Rust client, which the
//! metrics issue requires: a fresh [`Registry`] per scrape holds the snapshot's series as
//! they are (nothing is counted in memory between scrapes).

use std::fmt;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::store::MetricsSnapshot;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A series' labels, in order.
type Labels = Vec<(&'static str, String)>;

/// A metric family whose series were computed before the scrape: each label set with its
/// value, written in the order given.
#[derive(Debug)]
struct Series<M>(Vec<(Labels, M)>);

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Series<M> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        for (labels, metric) in &self.0 {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A histogram counted by the store: the crate's own `Histogram` only counts observations
/// made in this process.
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// `(upper bound, observations in this bucket alone)`, ending with `+Inf`: the encoder
    /// adds them up.
    buckets: Vec<(f64, u64)>,
}

impl ConstHistogram {
    /// From cumulative bucket counts (each bucket's count includes the ones below it).
    fn from_cumulative(cumulative: &[(f64, u64)], sum: f64, count: u64) -> ConstHistogram {
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = cumulative
            .iter()
            .map(|&(bound, upto)| {
                let own = upto.saturating_sub(below);
                below = below.max(upto);
                (bound, own)
            })
            .collect();
        buckets.push((f64::INFINITY, count.saturating_sub(below)));
        ConstHistogram {
            sum,
            count,
            buckets,
        }
    }
}

impl TypedMetric for ConstHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The text `GET /metrics` answers with ([`CONTENT_TYPE`]).
#[must_use]
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut registry = Registry::with_prefix("coreflow");

    registry.register(
        "runs_finished",
        "Runs that ended, by workflow and final state",
        Series(
            snapshot
                .runs_finished
                .iter()
                .map(|r| {
                    let labels = vec![
                        ("workflow", r.workflow.clone()),
                        ("status", r.status.clone()),
                    ];
                    (labels, ConstCounter::new(r.count))
                })
                .collect(),
        ),
    );
    registry.register(
        "jobs_finished",
        "Jobs that ended, by workflow, queue and final state",
        Series(
            snapshot
                .jobs_finished
                .iter()
                .map(|j| {
                    let labels = vec![
                        ("workflow", j.workflow.clone()),
                        ("queue", j.queue.clone()),
                        ("status", j.status.clone()),
                    ];
                    (labels, ConstCounter::new(j.count))
                })
                .collect(),
        ),
    );
    registry.register(
        "job_duration_seconds",
        "How long ended jobs took, from their first start to their end, by workflow and queue",
        Series(
            snapshot
                .job_durations
                .iter()
                .map(|d| {
                    let labels = vec![("workflow", d.workflow.clone()), ("queue", d.queue.clone())];
                    let histogram =
                        ConstHistogram::from_cumulative(&d.buckets, d.sum_seconds, d.count);
                    (labels, histogram)
                })
                .collect(),
        ),
    );
    registry.register(
        "queue_depth",
        "Jobs waiting in each queue",
        Series(
            snapshot
                .queues
                .iter()
                .map(|q| (vec![("queue", q.queue.clone())], ConstGauge::new(q.depth)))
                .collect(),
        ),
    );
    registry.register(
        "queue_oldest_wait_seconds",
        "How long the job waiting longest in each queue has waited (0 when none waits)",
        Series(
            snapshot
                .queues
                .iter()
                .map(|q| {
                    let labels = vec![("queue", q.queue.clone())];
                    (labels, ConstGauge::new(q.oldest_wait_seconds))
                })
                .collect(),
        ),
    );
    registry.register(
        "workers",
        "Live workers by state",
        Series(
            snapshot
                .workers
                .iter()
                .map(|w| (vec![("state", w.state.clone())], ConstGauge::new(w.count)))
                .collect(),
        ),
    );
    registry.register(
        "trigger_lateness_seconds",
        "How late the last fire of each time trigger was: from its scheduled instant to its run",
        Series(
            snapshot
                .trigger_lateness
                .iter()
                .map(|t| {
                    let labels = vec![
                        ("workflow", t.workflow.clone()),
                        ("trigger", t.trigger.clone()),
                    ];
                    (labels, ConstGauge::new(t.seconds))
                })
                .collect(),
        ),
    );

    let mut text = String::new();
    // Writing into a String cannot fail, and every name and value above encodes.
    if let Err(error) = prometheus_text::encode(&mut text, &registry) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{CONTENT_TYPE, render};
    use crate::store::MetricsSnapshot;
    use crate::store::metrics::{
        JOB_DURATION_BUCKETS, JobCount, JobDurations, QueueGauge, RunCount, TriggerLateness,
        WorkerCount,
    };

    fn snapshot() -> MetricsSnapshot {
        let mut buckets: Vec<(f64, u64)> = JOB_DURATION_BUCKETS.iter().map(|b| (*b, 3)).collect();
        buckets[0].1 = 1; // 1 job took at most 1 s, 3 at most 5 s, the 4th took longer.
        MetricsSnapshot {
            runs_finished: vec![RunCount {
                workflow: "etl".into(),
                status: "succeeded".into(),
                count: 7,
            }],
            jobs_finished: vec![JobCount {
                workflow: "etl".into(),
                queue: "default".into(),
                status: "timed_out".into(),
                count: 2,
            }],
            job_durations: vec![JobDurations {
                workflow: "etl".into(),
                queue: "default".into(),
                buckets,
                sum_seconds: 90000.5,
                count: 4,
            }],
            queues: vec![QueueGauge {
                queue: "heavy".into(),
                depth: 3,
                oldest_wait_seconds: 42.5,
            }],
            workers: vec![
                WorkerCount {
                    state: "idle".into(),
                    count: 2,
                },
                WorkerCount {
                    state: "busy".into(),
                    count: 0,
                },
            ],
            trigger_lateness: vec![TriggerLateness {
                workflow: "say \"hi\"".into(),
                trigger: "0".into(),
                seconds: 1.25,
            }],
        }
    }

    #[test]
    fn metrics_render_every_family_in_the_prometheus_text_format() {
        let text = render(&snapshot());
        for line in [
            "# TYPE coreflow_runs_finished_total counter",
            r#"coreflow_runs_finished_total{workflow="etl",status="succeeded"} 7"#,
            "# TYPE coreflow_jobs_finished_total counter",
            r#"coreflow_jobs_finished_total{workflow="etl",queue="default",status="timed_out"} 2"#,
            "# TYPE coreflow_job_duration_seconds histogram",
            r#"coreflow_job_duration_seconds_bucket{workflow="etl",queue="default",le="1"} 1"#,
            r#"coreflow_job_duration_seconds_bucket{workflow="etl",queue="default",le="5"} 3"#,
            r#"coreflow_job_duration_seconds_bucket{workflow="etl",queue="default",le="21600"} 3"#,
            r#"coreflow_job_duration_seconds_bucket{workflow="etl",queue="default",le="+Inf"} 4"#,
            r#"coreflow_job_duration_seconds_sum{workflow="etl",queue="default"} 90000.5"#,
            r#"coreflow_job_duration_seconds_count{workflow="etl",queue="default"} 4"#,
            "# TYPE coreflow_queue_depth gauge",
            r#"coreflow_queue_depth{queue="heavy"} 3"#,
            r#"coreflow_queue_oldest_wait_seconds{queue="heavy"} 42.5"#,
            "# TYPE coreflow_workers gauge",
            r#"coreflow_workers{state="idle"} 2"#,
            r#"coreflow_workers{state="busy"} 0"#,
            "# TYPE coreflow_trigger_lateness_seconds gauge",
            r#"coreflow_trigger_lateness_seconds{workflow="say \"hi\"",trigger="0"} 1.25"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // One +Inf bucket per histogram, and the text format has no OpenMetrics EOF.
        assert_eq!(text.matches("le=\"+Inf\"").count(), 1, "{text}");
        assert!(!text.contains("# EOF"));
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn metrics_render_an_empty_snapshot_with_descriptors_only() {
        let text = render(&MetricsSnapshot::default());
        assert!(text.contains("# TYPE coreflow_queue_depth gauge"), "{text}");
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    }
}
