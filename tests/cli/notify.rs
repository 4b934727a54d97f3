//! `notify:` (SPEC §2) against real peers: a webhook receiver (an HTTP server on a loopback
//! port, here), an SMTP server (aiosmtpd from PyPI, installed by `scripts/test-deps.sh`), and
//! shell commands. Sent by `coreflow run` and by the leading daemon; every attempt is
//! recorded and shown; a notifier's failure never changes the run's result.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon_support::Site;
use crate::engine_support::{Workspace, wait_until};

/// One request the receiver got.
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP server on a free loopback port that answers each request with the next status of
/// `statuses` (then 200) and hands the requests over.
struct Receiver {
    port: u16,
    requests: mpsc::Receiver<Received>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let (tx, requests) = mpsc::channel();
        let statuses: Vec<u16> = statuses.to_vec();
        let mut statuses = statuses.into_iter();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let status = statuses.next().unwrap_or(200);
                if let Some(received) = serve(stream, status)
                    && tx.send(received).is_err()
                {
                    return;
                }
            }
        });
        Receiver { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The next request, waiting up to 30 s.
    fn next(&self) -> Received {
        self.requests
            .recv_timeout(Duration::from_secs(30))
            .expect("a webhook request")
    }
}

fn serve(stream: TcpStream, status: u16) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Some(Received { headers, body })
}

/// Where `scripts/test-deps.sh` installs aiosmtpd.
const AIOSMTPD: &str = "/tmp/coreflow-test-venv/bin/aiosmtpd";

/// aiosmtpd on a free loopback port, delivering to a Maildir; stopped on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        assert!(
            Path::new(AIOSMTPD).exists(),
            "{AIOSMTPD} is missing: run scripts/test-deps.sh (it installs aiosmtpd from PyPI)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let maildir = dir.join("maildir");
        let child = Command::new(AIOSMTPD)
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    /// The messages delivered so far.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workflow(hook: &str, smtp: bool, fail: bool) -> String {
    let email = if smtp {
        "  - on: [failure]\n    email: { to: [oncall@example.com] }\n"
    } else {
        ""
    };
    format!(
        r#"
notify:
  - on: [failure]
    webhook: {{ url: "{hook}", secret_env: HOOK_KEY }}
  - on: [any]
    run: echo "$COREFLOW_RUN_ID $COREFLOW_RUN_STATUS $COREFLOW_WORKFLOW" >> notified.txt
  - on: [success]
    run: touch success-notifier-ran
  - on: [failure]
    run: echo broken >&2; exit 3
{email}jobs:
  ok:
    steps: [{{ run: "true" }}]
  broken:
    steps: [{{ run: "exit {code}" }}]
"#,
        code = if fail { 1 } else { 0 }
    )
}

#[test]
fn a_failed_run_notifies_by_webhook_command_and_email_and_keeps_its_result() {
    let hook = Receiver::start(&[500]);
    let ws = Workspace::new();
    let smtp = Smtp::start(&ws.path());
    ws.file("wf.yaml", workflow(&hook.url(), true, true));
    ws.coreflow()
        .env("HOOK_KEY", "k3y")
        .env(
            "COREFLOW_SMTP_URL",
            format!("smtp://127.0.0.1:{}", smtp.port),
        )
        .args(["run", "wf.yaml"])
        .fails(1);
    // The first attempt got a 500, the second went through; both carried the body, signed.
    for _ in 0..2 {
        let request = hook.next();
        let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
        assert_eq!(body["event"], "run.finished");
        assert_eq!(body["run"]["id"], 1);
        assert_eq!(body["run"]["workflow"], "wf");
        assert_eq!(body["run"]["status"], "failed");
        assert_eq!(body["run"]["failed_jobs"], serde_json::json!(["broken"]));
        assert_eq!(body["run"]["trigger"]["type"], "manual");
        assert!(body["run"]["duration_ms"].is_number(), "{body}");
        assert_eq!(
            request
                .headers
                .get("x-coreflow-signature")
                .map(String::as_str),
            Some(coreflow::engine::notify::signature(b"k3y", &request.body).as_str())
        );
    }
    assert_eq!(ws.read("notified.txt"), "1 failed wf\n");
    assert!(!ws.exists("success-notifier-ran"));
    wait_until("the e-mail to arrive", || !smtp.messages().is_empty());
    let message = smtp.messages().remove(0);
    assert!(message.contains("To: oncall@example.com"), "{message}");
    assert!(
        message.contains("Subject: CoreFlow: wf run 1 failed"),
        "{message}"
    );
    assert!(message.contains("Failed jobs: broken"), "{message}");

    let show = ws.show("1");
    assert_eq!(show["status"], "failed");
    let attempts: Vec<(String, u64, bool, String)> = show["notifications"]
        .as_array()
        .expect("notifications in show --json")
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_owned(),
                n["attempt"].as_u64().unwrap_or_default(),
                n["ok"].as_bool().unwrap_or_default(),
                n["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        (
            "webhook".to_owned(),
            1,
            false,
            "HTTP 500 Internal Server Error".to_owned(),
        ),
        ("webhook".to_owned(), 2, true, String::new()),
        ("run".to_owned(), 1, true, String::new()),
        ("run".to_owned(), 1, false, "exit 3: broken".to_owned()),
        ("email".to_owned(), 1, true, String::new()),
    ] {
        assert!(
            attempts.contains(&expected),
            "{expected:?} not in {attempts:?}"
        );
    }
    let text = ws.coreflow().args(["show", "1"]).succeeds();
    assert!(
        text.stdout().contains("webhook http://127.0.0.1:")
            && text.stdout().contains("attempt 1 · failed: HTTP 500"),
        "{text}"
    );
}

#[test]
fn a_succeeded_run_sends_only_what_is_due_and_a_failing_notifier_changes_nothing() {
    let hook = Receiver::start(&[]);
    let ws = Workspace::with_workflow(&workflow(&hook.url(), false, false));
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("notified.txt"), "1 succeeded wf\n");
    assert!(ws.exists("success-notifier-ran"));
    assert!(
        hook.requests
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "the webhook is for failures only"
    );

    // A retry ends the run again: its notifiers go out again.
    let ws = Workspace::with_workflow(&workflow("http://127.0.0.1:9/", false, true));
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    ws.coreflow().args(["retry", "1"]).fails(1);
    assert_eq!(ws.lines("notified.txt"), ["1 failed wf", "1 failed wf"]);
}

#[test]
fn the_daemon_sends_the_notifications_of_runs_nobody_else_ran() {
    let hook = Receiver::start(&[]);
    let site = Site::new();
    site.workflow("wf.yaml", &workflow(&hook.url(), false, true));
    let daemon = site.daemon_with_env(&["--workers", "1"], &[("HOOK_KEY", "d43mon")]);
    let output = site
        .coreflow()
        .args(["run", "flows/wf.yaml", "--detach"])
        .succeeds();
    let run: i64 = output.stdout().trim().parse().expect("a run id");
    assert_eq!(site.wait_run_ended(run)["status"], "failed");
    let request = hook.next();
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body["run"]["id"], run);
    assert_eq!(
        request
            .headers
            .get("x-coreflow-signature")
            .map(String::as_str),
        Some(coreflow::engine::notify::signature(b"d43mon", &request.body).as_str())
    );
    let notified = site.path().join("flows/notified.txt");
    wait_until("the command notifier", || notified.exists());
    drop(daemon);
    assert!(
        hook.requests
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "sent once"
    );
}

#[test]
fn validate_checks_notifiers() {
    let ws = Workspace::with_workflow(
        r#"
notify:
  - on: [failure]
  - on: [sometimes]
    run: "true"
  - webhook: { url: "ftp://x" }
    run: "true"
  - email: { to: [] }
jobs:
  a:
    steps: [{ run: "true" }]
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    let stderr = output.stderr();
    for expected in [
        "notifier 1 needs `webhook`, `run` or `email`",
        "`sometimes` is not a valid value",
        "notifier 3 has both `webhook` and `run`; give one per notifier",
        "webhook URL `ftp://x` must start with http:// or https://",
        "notifier 4 sends e-mail to nobody",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
}
