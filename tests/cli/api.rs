//! The HTTP API of SPEC §5, black-box, on a real daemon: the OpenAPI document is valid
//! OpenAPI 3.1 and describes the answers the daemon really gives; runs are listed, filtered
//! and paged; queues and jobs are steered; a run's events stream every line once, also
//! across a reconnection with `Last-Event-ID`; `/metrics` serves Prometheus text behind the
//! token. See `daemon_support` for the harness (a hand-written HTTP client: the tests need
//! no HTTP crate).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::daemon_support::{Answer, Daemon, Site, free_port, http, wait_api, wait_for};

const TOKEN: &str = "s3cret";

/// A daemon with one worker listening on a free port behind [`TOKEN`].
fn daemon(site: &Site) -> (Daemon, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let daemon = site.daemon_with_env(
        &["--workers", "1", "--listen", &addr.to_string()],
        &[("COREFLOW_API_TOKEN", TOKEN)],
    );
    wait_api(addr);
    (daemon, addr)
}

#[track_caller]
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Answer {
    http(addr, method, path, Some(TOKEN), body).expect("the API answers")
}

/// Creates a run of `workflow` through the API and returns its id.
#[track_caller]
fn create(addr: SocketAddr, workflow: &str, body: &str) -> i64 {
    let answer = call(
        addr,
        "POST",
        &format!("/api/v1/workflows/{workflow}/runs"),
        Some(body),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["run_id"].as_i64().expect("a run id")
}

/// Waits for run `id` to end and returns its document.
#[track_caller]
fn ended(addr: SocketAddr, id: i64) -> Value {
    wait_for(&format!("run {id} to end"), || {
        let answer = call(addr, "GET", &format!("/api/v1/runs/{id}"), None);
        assert_eq!(answer.status, 200, "{answer:?}");
        matches!(
            answer.body["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled" | "skipped")
        )
        .then_some(answer.body)
    })
}

/// A validator for the schema `name` of the OpenAPI `document`.
fn schema_validator(document: &Value, name: &str) -> jsonschema::Validator {
    let mut schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
    });
    schema["components"] = document["components"].clone();
    jsonschema::validator_for(&schema).expect("the component schemas compile")
}

#[track_caller]
fn assert_valid(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:#?}\n{value:#}"
    );
}

#[test]
fn the_openapi_document_is_valid_openapi_and_describes_the_real_answers() {
    let site = Site::new();
    site.workflow(
        "greet.yaml",
        "params:\n  name: { type: string, default: you }\njobs:\n  hello:\n    resources: { cpus: 0.5 }\n    steps:\n      - run: echo \"hello ${{ params.name }}\"\n  after:\n    needs: [hello]\n    steps: [{ run: 'true' }]\n",
    );
    let (daemon, addr) = daemon(&site);
    let answer = call(addr, "GET", "/api/v1/openapi.json", None);
    assert_eq!(answer.status, 200);
    let document = answer.body;
    let meta: Value = serde_json::from_str(include_str!("../fixtures/openapi/oas-3.1-schema.json"))
        .expect("the OpenAPI 3.1 schema is JSON");
    let validator = jsonschema::validator_for(&meta).expect("the OpenAPI 3.1 schema compiles");
    assert_valid(&validator, &document, "the OpenAPI document");
    let mut broken = document.clone();
    broken["paths"]["/api/v1/health"]["get"]["responses"] = serde_json::json!("none");
    assert!(
        !validator.is_valid(&broken),
        "the meta-schema checks the paths"
    );
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );

    let run = create(addr, "greet", r#"{"params": {"name": "api"}}"#);
    let read = ended(addr, run);
    assert_eq!(read["status"], "succeeded", "{read:#}");
    let run_schema = schema_validator(&document, "RunDocument");
    assert_valid(&run_schema, &read, "GET /runs/{id}");
    let mut wrong = read.clone();
    wrong["jobs"][0]["status"] = serde_json::json!("sleeping");
    assert!(!run_schema.is_valid(&wrong), "the schemas check job states");
    let runs = call(addr, "GET", "/api/v1/runs", None).body;
    for run in runs.as_array().expect("an array") {
        assert_valid(&schema_validator(&document, "RunRecord"), run, "GET /runs");
    }
    let jobs = call(addr, "GET", "/api/v1/jobs", None).body;
    for job in jobs.as_array().expect("an array") {
        assert_valid(&schema_validator(&document, "JobRecord"), job, "GET /jobs");
    }
    for worker in call(addr, "GET", "/api/v1/workers", None)
        .body
        .as_array()
        .expect("an array")
    {
        assert_valid(
            &schema_validator(&document, "WorkerRecord"),
            worker,
            "GET /workers",
        );
    }
    let workflows = call(addr, "GET", "/api/v1/workflows", None).body;
    assert_eq!(workflows[0]["name"], "greet", "{workflows:#}");
    assert_eq!(workflows[0]["params"][0]["name"], "name");
    assert_eq!(workflows[0]["params"][0]["default"], "you");
    assert_valid(
        &schema_validator(&document, "WorkflowView"),
        &workflows[0],
        "GET /workflows",
    );
    let logs = call(addr, "GET", &format!("/api/v1/runs/{run}/logs"), None).body;
    assert_valid(
        &schema_validator(&document, "LogsPage"),
        &logs,
        "GET /runs/{id}/logs",
    );
    let error = call(addr, "GET", "/api/v1/runs/999999", None);
    assert_eq!(error.status, 404);
    assert_valid(
        &schema_validator(&document, "ErrorBody"),
        &error.body,
        "a 404",
    );
    daemon.stop();
}

#[test]
fn runs_are_listed_filtered_and_paged_and_logs_read_from_a_cursor() {
    let site = Site::new();
    site.workflow(
        "count.yaml",
        "params:\n  n: { type: int, default: 1 }\njobs:\n  echo:\n    steps:\n      - run: |\n          echo \"line one of ${{ params.n }}\"\n          echo \"line two of ${{ params.n }}\"\n          test ${{ params.n }} -ne 3\n",
    );
    let (daemon, addr) = daemon(&site);
    let ids: Vec<i64> = (1..=4)
        .map(|n| create(addr, "count", &format!(r#"{{"params": {{"n": {n}}}}}"#)))
        .collect();
    for id in &ids {
        ended(addr, *id);
    }
    let page = call(addr, "GET", "/api/v1/runs?limit=2", None).body;
    let first: Vec<i64> = page
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(first, vec![ids[3], ids[2]]);
    let next = call(
        addr,
        "GET",
        &format!("/api/v1/runs?limit=2&before={}", ids[2]),
        None,
    )
    .body;
    let second: Vec<i64> = next
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(second, vec![ids[1], ids[0]]);
    let failed = call(
        addr,
        "GET",
        "/api/v1/runs?status=failed&workflow=count",
        None,
    )
    .body;
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed:#}");
    assert_eq!(failed[0]["id"], ids[2]);
    let bad = call(addr, "GET", "/api/v1/runs?status=sleeping", None);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body["error"].as_str().is_some(), "{bad:?}");
    let unknown = call(addr, "GET", "/api/v1/runs?colour=red", None);
    assert_eq!(unknown.status, 400, "{unknown:?}");

    // Logs: every line, then nothing after the cursor of the run that has ended.
    let logs = call(addr, "GET", &format!("/api/v1/runs/{}/logs", ids[0]), None).body;
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["line"].as_str().expect("a line"))
        .collect();
    assert_eq!(lines, vec!["line one of 1", "line two of 1"]);
    assert_eq!(logs["ended"], true);
    let after = logs["after"].as_str().expect("a cursor");
    let rest = call(
        addr,
        "GET",
        &format!("/api/v1/runs/{}/logs?after={after}&job=echo", ids[0]),
        None,
    )
    .body;
    assert_eq!(rest["lines"], serde_json::json!([]), "{rest:#}");
    let no_job = call(
        addr,
        "GET",
        &format!("/api/v1/runs/{}/logs?job=nope", ids[0]),
        None,
    );
    assert_eq!(no_job.status, 404);

    // Retry through the API reopens the failed run under its id; it fails again (n = 3).
    let retried = call(
        addr,
        "POST",
        &format!("/api/v1/runs/{}/retry", ids[2]),
        None,
    );
    assert_eq!(retried.status, 202, "{retried:?}");
    assert_eq!(retried.body["status"], "queued");
    let again = ended(addr, ids[2]);
    assert_eq!(again["jobs"][0]["attempts"], 2, "{again:#}");
    let nothing = call(
        addr,
        "POST",
        &format!("/api/v1/runs/{}/retry", ids[0]),
        None,
    );
    assert_eq!(nothing.body["status"], "nothing_to_retry", "{nothing:?}");
    daemon.stop();
}

#[test]
fn queues_and_waiting_jobs_are_steered_through_the_api() {
    let site = Site::new();
    site.workflow(
        "batch.yaml",
        "jobs:\n  a:\n    queue: slow\n    steps: [{ run: 'true' }]\n  b:\n    queue: slow\n    steps: [{ run: 'true' }]\n",
    );
    let (daemon, addr) = daemon(&site);
    let pause = call(addr, "POST", "/api/v1/queues/slow/pause", None);
    assert_eq!(
        pause.status, 404,
        "no queue before its first job: {pause:?}"
    );
    // The queue exists once a run names it; pause it before the worker can start anything
    // by creating it paused through a first run whose jobs wait for it.
    site.coreflow().args(["queue", "add", "slow"]).succeeds();
    let paused = call(addr, "POST", "/api/v1/queues/slow/pause", None);
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.body["paused"], true);
    let run = create(addr, "batch", "{}");
    let waiting = wait_for("both jobs to wait", || {
        let jobs = call(addr, "GET", "/api/v1/jobs?queue=slow&status=queued", None).body;
        (jobs.as_array().map(Vec::len) == Some(2)).then_some(jobs)
    });
    let id_of = |name: &str| {
        waiting
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["id"].as_i64())
            .expect("a job id")
    };
    let (a, b) = (id_of("a"), id_of("b"));
    let priority = call(
        addr,
        "POST",
        &format!("/api/v1/jobs/{b}/priority"),
        Some(r#"{"priority": 7}"#),
    );
    assert_eq!(priority.status, 200, "{priority:?}");
    let bad = call(
        addr,
        "POST",
        &format!("/api/v1/jobs/{b}/priority"),
        Some(r#"{"priority": "high"}"#),
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(
        call(addr, "POST", &format!("/api/v1/jobs/{a}/top"), None).status,
        200
    );
    let cancelled = call(addr, "POST", &format!("/api/v1/jobs/{a}/cancel"), None);
    assert_eq!(cancelled.status, 202, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    let queues = call(addr, "GET", "/api/v1/queues", None).body;
    let slow = queues
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == "slow")
        .expect("the queue");
    assert_eq!(slow["paused"], true);
    assert_eq!(slow["depth"], 1, "{queues:#}");
    assert_eq!(
        call(addr, "POST", "/api/v1/queues/slow/resume", None).status,
        200
    );
    let done = ended(addr, run);
    let status = |name: &str| {
        done["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["name"] == name)
            .map(|j| j["status"].clone())
    };
    assert_eq!(status("a"), Some("cancelled".into()), "{done:#}");
    assert_eq!(status("b"), Some("succeeded".into()), "{done:#}");
    let top_after = call(addr, "POST", &format!("/api/v1/jobs/{b}/top"), None);
    assert_eq!(top_after.status, 409, "{top_after:?}");
    daemon.stop();
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
}

/// A server-sent events stream read by hand from a socket (chunked transfer encoding).
struct SseStream {
    reader: BufReader<TcpStream>,
    pending: String,
}

impl SseStream {
    fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> SseStream {
        let mut stream = TcpStream::connect(addr).expect("the API listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .expect("the request is sent");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("a status line");
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a header");
            if line == "\r\n" {
                break;
            }
        }
        SseStream {
            reader,
            pending: String::new(),
        }
    }

    /// The next event; `None` when the stream ended.
    fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        event.data.push_str(value.trim_start());
                    }
                }
                if event.event.is_empty() && event.data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(event);
            }
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.pending
                .push_str(&String::from_utf8_lossy(&chunk[..size]));
        }
    }
}

#[test]
fn events_stream_every_line_once_across_a_reconnection_and_end_with_the_run() {
    let site = Site::new();
    let gate = site.gate("half");
    site.workflow(
        "talk.yaml",
        &format!(
            "jobs:\n  talk:\n    steps:\n      - run: |\n          for i in $(seq 1 100); do echo \"line $i\"; done\n          {}\n          for i in $(seq 101 200); do echo \"line $i\"; done\n",
            gate.step()
        ),
    );
    let (daemon, addr) = daemon(&site);
    let run = create(addr, "talk", "{}");
    let path = format!("/api/v1/runs/{run}/events");
    let mut stream = SseStream::open(addr, &path, None);
    let first = stream.next().expect("a first event");
    assert_eq!(first.event, "jobs", "{first:?}");
    let mut seen: Vec<String> = Vec::new();
    let mut last_id = None;
    // Read until the first 100 lines arrived, then drop the connection.
    while seen.len() < 100 {
        let event = stream.next().expect("the stream goes on");
        if event.event == "lines" {
            let lines: Vec<Value> = serde_json::from_str(&event.data).expect("JSON lines");
            seen.extend(
                lines
                    .iter()
                    .map(|l| l["line"].as_str().expect("a line").to_owned()),
            );
            last_id = event.id.clone();
        }
    }
    drop(stream);
    gate.open();
    let mut stream = SseStream::open(addr, &path, last_id.as_deref());
    let mut states = Vec::new();
    let mut end = None;
    while let Some(event) = stream.next() {
        match event.event.as_str() {
            "lines" => {
                let lines: Vec<Value> = serde_json::from_str(&event.data).expect("JSON lines");
                seen.extend(
                    lines
                        .iter()
                        .map(|l| l["line"].as_str().expect("a line").to_owned()),
                );
            }
            "job" | "jobs" => states.push(event.data),
            "end" => {
                end = Some(event.data);
                break;
            }
            other => panic!("unexpected event {other}: {event:?}"),
        }
    }
    let expected: Vec<String> = (1..=200).map(|i| format!("line {i}")).collect();
    assert_eq!(seen, expected, "every line once, in order");
    assert!(end.is_some_and(|e| e.contains("succeeded")));
    assert!(states.iter().any(|s| s.contains("succeeded")), "{states:?}");
    daemon.stop();
}

#[test]
fn metrics_are_prometheus_text_behind_the_token() {
    let site = Site::new();
    site.workflow(
        "tick.yaml",
        "jobs:\n  ok:\n    steps: [{ run: 'true' }]\n  bad:\n    steps: [{ run: 'false' }]\n",
    );
    let (daemon, addr) = daemon(&site);
    let run = create(addr, "tick", "{}");
    ended(addr, run);
    assert_eq!(
        http(addr, "GET", "/metrics", None, None)
            .expect("the API answers")
            .status,
        401
    );
    let metrics = call(addr, "GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    for expected in [
        "coreflow_runs_finished_total{workflow=\"tick\",status=\"failed\"} 1",
        "coreflow_jobs_finished_total{workflow=\"tick\",queue=\"default\",status=\"succeeded\"} 1",
        "coreflow_jobs_finished_total{workflow=\"tick\",queue=\"default\",status=\"failed\"} 1",
        "coreflow_job_duration_seconds_count{workflow=\"tick\",queue=\"default\"} 2",
        "coreflow_queue_depth{queue=\"default\"} 0",
        "coreflow_workers{state=\"idle\"} 1",
    ] {
        assert!(
            metrics.text.contains(expected),
            "{expected}\n{}",
            metrics.text
        );
    }
    daemon.stop();
}

/// One raw HTTP/1.1 exchange: the request's head lines (after the request line and Host)
/// and body; the answer's status, head and body.
fn raw(
    addr: SocketAddr,
    request_line: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("the server listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout");
    let mut request = format!("{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    // Header names in lower case, as HTTP/2 writes them and hyper sends them.
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn coreflow_ui_serves_an_environment_without_a_daemon_and_signs_a_browser_in_once() {
    let site = Site::new();
    site.workflow(
        "hello.yaml",
        "jobs:\n  hi:\n    steps: [{ run: echo hi }]\n",
    );
    site.coreflow()
        .args(["run", "flows/hello.yaml", "--quiet"])
        .succeeds();
    // Not on another address without a token.
    let refused = site
        .coreflow()
        .args(["ui", "--listen", "0.0.0.0:0"])
        .fails(2);
    assert!(refused.stderr().contains("without a token"), "{refused}");

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let ui = site
        .coreflow()
        .args(["ui", "--listen", &addr.to_string()])
        .env("COREFLOW_API_TOKEN", TOKEN)
        .spawn();
    let ui = Daemon::from(ui);
    wait_api(addr);
    // The recorded workflow and its run, through the API.
    let workflows = call(addr, "GET", "/api/v1/workflows", None).body;
    assert_eq!(workflows[0]["name"], "hello", "{workflows:#}");
    let run = call(addr, "GET", "/api/v1/runs/1", None);
    assert_eq!(run.body["status"], "succeeded", "{run:?}");

    // A browser without a session is sent to sign in; the API says 401.
    let (status, head, _) = raw(addr, "GET /runs/1", &["Accept: text/html"], "");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /login?next=/runs/1"), "{head}");
    let (status, _, _) = raw(addr, "GET /api/v1/runs/1", &[], "");
    assert_eq!(status, 401);
    let (status, _, page) = raw(addr, "GET /login", &["Accept: text/html"], "");
    assert_eq!(status, 200);
    assert!(page.contains("type=\"password\""), "{page}");

    // Signing in: a wrong token is refused, another site is refused, the right one gets
    // an HttpOnly, SameSite=Strict cookie that opens the API and the pages.
    let json = "Content-Type: application/json";
    let (status, _, _) = raw(
        addr,
        "POST /api/v1/session",
        &[json],
        r#"{"token": "nope"}"#,
    );
    assert_eq!(status, 401);
    let (status, _, _) = raw(
        addr,
        "POST /api/v1/session",
        &[json, "Origin: http://evil.example"],
        &format!(r#"{{"token": "{TOKEN}"}}"#),
    );
    assert_eq!(status, 403);
    let (status, head, _) = raw(
        addr,
        "POST /api/v1/session",
        &[json, "Sec-Fetch-Site: same-origin"],
        &format!(r#"{{"token": "{TOKEN}"}}"#),
    );
    assert_eq!(status, 204, "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value");
    let (status, _, body) = raw(addr, "GET /api/v1/runs", &[&format!("Cookie: {pair}")], "");
    assert_eq!(status, 200, "{body}");
    // Cancelling from another site with the cookie is refused all the same.
    let (status, _, _) = raw(
        addr,
        "POST /api/v1/runs/1/cancel",
        &[
            &format!("Cookie: {pair}"),
            "Sec-Fetch-Site: cross-site",
            json,
        ],
        "{}",
    );
    assert_eq!(status, 403);
    ui.stop();
}
