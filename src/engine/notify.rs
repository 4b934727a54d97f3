//! `notify:`: what is sent when a run ends — a webhook (JSON, signed with HMAC-SHA256 when a
//! key is given, 3 attempts with backoff, 10 s each), a shell command, an e-mail through
//! SMTP — by whichever process first takes the run's notifications once it has ended (its
//! `coreflow run`, or the leading daemon: [`RunStore::claim_notifications`]). Every attempt
//! is recorded; a notifier's failure never changes the run's result.
//!
//! [`RunStore::claim_notifications`]: crate::store::RunStore::claim_notifications

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::engine::definition::load_run_definition;
use crate::spec::model::{Email, Notify, NotifyOn, Webhook};
use crate::state::{JobState, RunId, RunState};
use crate::store::{Environment, NotificationRecord, RunRecord};

/// Attempts of a webhook or an e-mail.
const ATTEMPTS: u32 = 3;
/// How long one webhook attempt may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a notifier's command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable naming the SMTP server for e-mail notifiers.
pub const SMTP_URL_VAR: &str = "COREFLOW_SMTP_URL";
/// The environment variable giving the sender of e-mail notifiers.
pub const SMTP_FROM_VAR: &str = "COREFLOW_SMTP_FROM";

/// Whether `notify` is sent for a run that ended `status`.
#[must_use]
pub fn is_due(notify: &Notify, status: RunState) -> bool {
    notify.on.iter().any(|on| match on {
        NotifyOn::Any => matches!(
            status,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        ),
        NotifyOn::Success => status == RunState::Succeeded,
        NotifyOn::Failure => status == RunState::Failed,
        NotifyOn::Cancelled => status == RunState::Cancelled,
    })
}

/// Sends the notifications of ended run `run` if this process is the first to take them,
/// and records every attempt. `env` is this process's environment (keys of webhooks, the
/// SMTP server). Errors are recorded or logged, never returned: a run's result stands.
pub async fn send(store: &dyn Environment, run: RunId, env: &BTreeMap<String, String>) {
    match store.claim_notifications(run) {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            tracing::warn!(run = run.0, error = %err, "cannot take the run's notifications");
            return;
        }
    }
    let record = match store.run(run) {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(run = run.0, error = %err, "cannot read the run to notify");
            return;
        }
    };
    let definition = match load_run_definition(store, &record) {
        Ok(definition) => definition,
        Err(err) => {
            tracing::warn!(run = run.0, error = %err, "cannot read the run's notifiers");
            return;
        }
    };
    let failed_jobs: Vec<String> = store
        .jobs(run)
        .unwrap_or_default()
        .into_iter()
        .filter(|job| matches!(job.status, JobState::Failed | JobState::TimedOut))
        .map(|job| job.name)
        .collect();
    let ended = Ended {
        record: &record,
        failed_jobs,
        dir: &definition.loaded.dir,
        env,
    };
    let sends = definition
        .loaded
        .workflow
        .notify
        .iter()
        .enumerate()
        .filter(|(_, notify)| is_due(notify, record.status))
        .map(|(index, notify)| ended.notify(index, notify));
    for records in futures_util::future::join_all(sends).await {
        for attempt in records {
            if !attempt.ok {
                tracing::warn!(run = run.0, notifier = attempt.notifier, kind = %attempt.kind,
                    error = attempt.error.as_deref().unwrap_or_default(), "a notifier failed");
            }
            if let Err(err) = store.record_notification(&attempt) {
                tracing::warn!(run = run.0, error = %err, "cannot record a notification");
            }
        }
    }
}

/// An ended run, as its notifiers describe it.
struct Ended<'a> {
    record: &'a RunRecord,
    failed_jobs: Vec<String>,
    /// The workflow's folder: where a `run` notifier's script runs.
    dir: &'a Path,
    env: &'a BTreeMap<String, String>,
}

impl Ended<'_> {
    /// The JSON body of a webhook.
    fn body(&self) -> serde_json::Value {
        let run = self.record;
        let duration_ms = match (run.started_at, run.finished_at) {
            (Some(start), Some(end)) => (end - start).num_milliseconds().max(0),
            _ => 0,
        };
        serde_json::json!({
            "event": "run.finished",
            "run": {
                "id": run.id.0,
                "workflow": run.workflow,
                "status": run.status.as_str(),
                "trigger": run.trigger,
                "started_at": run.started_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "finished_at": run.finished_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "duration_ms": duration_ms,
                "failed_jobs": self.failed_jobs,
            }
        })
    }

    /// Sends notifier `index` and returns the record of each attempt.
    async fn notify(&self, index: usize, notify: &Notify) -> Vec<NotificationRecord> {
        let notifier = u32::try_from(index).unwrap_or(u32::MAX);
        let (kind, target) = describe(notify);
        let mut records = Vec::new();
        let mut record = |attempt: u32, result: Result<(), String>| {
            records.push(NotificationRecord {
                run: self.record.id,
                notifier,
                kind: kind.to_owned(),
                target: target.clone(),
                attempt,
                ok: result.is_ok(),
                error: result.err(),
                at: Utc::now(),
            });
        };
        if let Some(webhook) = &notify.webhook {
            retrying(|| self.webhook(webhook), &mut record).await;
        } else if let Some(script) = &notify.run {
            record(1, self.command(script).await);
        } else if let Some(email) = &notify.email {
            retrying(|| self.email(email), &mut record).await;
        }
        records
    }

    async fn webhook(&self, webhook: &Webhook) -> Result<(), String> {
        let body = serde_json::to_vec(&self.body()).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("coreflow/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(var) = &webhook.secret_env {
            let key = self
                .env
                .get(var)
                .ok_or_else(|| format!("the signing key's variable `{var}` is not set"))?;
            request = request.header("x-coreflow-signature", signature(key.as_bytes(), &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| describe_reqwest(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    async fn command(&self, script: &str) -> Result<(), String> {
        let run = self.record;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .current_dir(self.dir)
            .env("COREFLOW_RUN_ID", run.id.0.to_string())
            .env("COREFLOW_RUN_STATUS", run.status.as_str())
            .env("COREFLOW_WORKFLOW", &run.workflow)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("still running after {}s", COMMAND_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default().trim();
        Err(match output.status.code() {
            Some(code) if last.is_empty() => format!("exit {code}"),
            Some(code) => format!("exit {code}: {last}"),
            None => "killed by a signal".to_owned(),
        })
    }

    async fn email(&self, email: &Email) -> Result<(), String> {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let url = self
            .env
            .get(SMTP_URL_VAR)
            .ok_or_else(|| format!("{SMTP_URL_VAR} is not set"))?;
        let from = self
            .env
            .get(SMTP_FROM_VAR)
            .cloned()
            .unwrap_or_else(|| format!("coreflow@{}", crate::store::host_name()));
        let run = self.record;
        let mut message = Message::builder()
            .from(from.parse().map_err(|e| format!("sender `{from}`: {e}"))?)
            .subject(format!(
                "CoreFlow: {} run {} {}",
                run.workflow,
                run.id.0,
                run.status.as_str()
            ));
        for to in &email.to {
            message = message.to(to.parse().map_err(|e| format!("recipient `{to}`: {e}"))?);
        }
        let mut text = format!(
            "Run {} of workflow {} ended {}.\n",
            run.id.0,
            run.workflow,
            run.status.as_str()
        );
        if !self.failed_jobs.is_empty() {
            text.push_str(&format!("Failed jobs: {}\n", self.failed_jobs.join(", ")));
        }
        if let Some(reason) = &run.reason {
            text.push_str(&format!("Reason: {reason}\n"));
        }
        text.push_str(&format!("\ncoreflow show {}\n", run.id.0));
        let message = message.body(text).map_err(|e| e.to_string())?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("{SMTP_URL_VAR}: {e}"))?
            .timeout(Some(WEBHOOK_TIMEOUT))
            .build();
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Runs `attempt` up to [`ATTEMPTS`] times, 1 s then 2 s apart, recording each.
async fn retrying<F, Fut>(mut attempt: F, record: &mut impl FnMut(u32, Result<(), String>))
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for n in 1..=ATTEMPTS {
        let result = attempt().await;
        let done = result.is_ok();
        record(n, result);
        if done {
            return;
        }
        if n < ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(u64::from(n))).await;
        }
    }
}

/// The kind and target of a notifier, as recorded and shown.
fn describe(notify: &Notify) -> (&'static str, String) {
    if let Some(webhook) = &notify.webhook {
        ("webhook", webhook.url.clone())
    } else if let Some(script) = &notify.run {
        ("run", script.clone())
    } else if let Some(email) = &notify.email {
        ("email", email.to.join(", "))
    } else {
        ("none", String::new())
    }
}

/// `sha256=<hex HMAC-SHA256 of body under key>`, the `X-CoreFlow-Signature` header.
#[must_use]
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A reqwest error with its cause (a refused connection says so).
fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn notifiers_are_due_for_the_results_they_list() {
        let notify = |on: Vec<NotifyOn>| Notify {
            on,
            webhook: None,
            run: Some("true".into()),
            email: None,
        };
        assert!(is_due(&notify(vec![NotifyOn::Failure]), RunState::Failed));
        assert!(!is_due(
            &notify(vec![NotifyOn::Failure]),
            RunState::Succeeded
        ));
        assert!(is_due(&notify(vec![NotifyOn::Any]), RunState::Cancelled));
        assert!(!is_due(&notify(vec![NotifyOn::Any]), RunState::Skipped));
        assert!(is_due(
            &notify(vec![NotifyOn::Success, NotifyOn::Cancelled]),
            RunState::Cancelled
        ));
    }
}
