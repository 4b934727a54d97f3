//! Security (SPEC §5 "Security", §7): no other site, user or parameter gets in.
//!
//! - Requests that change state from another site, with any content type, change nothing:
//!   raw HTTP requests with forged headers, and a real page in headless Chromium served from
//!   another loopback port that submits forms and calls `fetch`.
//! - A `Host` that does not name the daemon (DNS rebinding) gets 421.
//! - The environment folder is private (0700 / 0600) under umask 000, and an old, open one is
//!   closed when opened; files the user asks for follow the umask.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::daemon_support::{Site, free_port, wait_api, wait_for};
use crate::support::Coreflow;

const HELLO: &str = "jobs:\n  j:\n    steps:\n      - run: echo hi\n";
const CREATE: &str = "/api/v1/workflows/hello/runs";
const BODY: &str = r#"{"params":{}}"#;

/// Sends `head` (request line and headers, without the final blank line) and `body` with a
/// `Content-Length`; returns the status.
fn raw(addr: SocketAddr, head: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("the daemon listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout can be set");
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The daemon may refuse from the headers alone and close before the body is written
    // (a broken pipe here); its answer is read all the same.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// A daemon serving `hello` on a free loopback port, with `args` besides.
fn daemon(site: &Site, args: &[&str]) -> (crate::daemon_support::Daemon, SocketAddr) {
    site.workflow("hello.yaml", HELLO);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("an address");
    let listen = addr.to_string();
    let mut all = vec!["--workers", "0", "--listen", &listen];
    all.extend_from_slice(args);
    let daemon = site.daemon(&all);
    wait_api(addr);
    (daemon, addr)
}

#[test]
fn requests_from_other_sites_change_nothing_whatever_their_content_type() {
    let site = Site::new();
    let (daemon, addr) = daemon(&site, &[]);
    let post = |path: &str, headers: &str, body: &str| {
        raw(
            addr,
            &format!("POST {path} HTTP/1.1\r\nHost: {addr}{headers}"),
            body,
        )
    };
    // The attack of the issue: a "simple request" any page may send without a preflight.
    let evil = "\r\nOrigin: http://evil.example";
    assert_eq!(
        post(CREATE, &format!("{evil}\r\nContent-Type: text/plain"), BODY),
        403
    );
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        // From another site: refused for where it comes from.
        let headers = format!("{evil}\r\nContent-Type: {content_type}");
        assert_eq!(post(CREATE, &headers, BODY), 403, "{content_type}");
        let headers = format!("\r\nSec-Fetch-Site: cross-site\r\nContent-Type: {content_type}");
        assert_eq!(post(CREATE, &headers, BODY), 403, "{content_type}");
        // Even with no origin given: a body that is not JSON is refused.
        let headers = format!("\r\nContent-Type: {content_type}");
        assert_eq!(post(CREATE, &headers, BODY), 415, "{content_type}");
    }
    // Another port of the same host is another origin; so is a sandboxed page ("null").
    let json = "\r\nContent-Type: application/json";
    let other_port = format!("\r\nOrigin: http://127.0.0.1:{}{json}", addr.port() + 1);
    assert_eq!(post(CREATE, &other_port, BODY), 403);
    assert_eq!(post(CREATE, &format!("\r\nOrigin: null{json}"), BODY), 403);
    assert_eq!(
        post(
            CREATE,
            &format!("\r\nSec-Fetch-Site: same-site{json}"),
            BODY
        ),
        403
    );
    // A JSON body without a type is not JSON to a browser's form either.
    assert_eq!(post(CREATE, "", BODY), 415);
    // Bodies are capped at 1 MiB.
    let big = format!(r#"{{"params":{{}},"pad":"{}"}}"#, "x".repeat(1 << 20));
    assert_eq!(post(CREATE, json, &big), 413);
    // Cancelling is changing state too.
    assert_eq!(post("/api/v1/runs/1/cancel", evil, ""), 403);
    assert!(
        site.runs("hello").is_empty(),
        "a refused request made a run"
    );

    // The daemon's own page, and tools that send no origin, get through.
    let own = format!("\r\nOrigin: http://{addr}\r\nSec-Fetch-Site: same-origin{json}");
    assert_eq!(post(CREATE, &own, BODY), 201);
    assert_eq!(post(CREATE, json, BODY), 201);
    assert_eq!(site.runs("hello").len(), 2);
    daemon.stop();
}

#[test]
fn a_host_that_does_not_name_the_daemon_is_misdirected() {
    let site = Site::new();
    let (daemon, addr) = daemon(&site, &["--public-host", "flows.example.org"]);
    let get = |host: &str| {
        raw(
            addr,
            &format!("GET /api/v1/runs/1 HTTP/1.1\r\nHost: {host}"),
            "",
        )
    };
    // A DNS-rebinding page reaches the loopback daemon under its own name.
    assert_eq!(get("evil.example"), 421);
    assert_eq!(get(&format!("evil.example:{}", addr.port())), 421);
    let health = raw(
        addr,
        "GET /api/v1/health HTTP/1.1\r\nHost: evil.example",
        "",
    );
    assert_eq!(health, 421);
    let create =
        format!("POST {CREATE} HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json");
    assert_eq!(raw(addr, &create, BODY), 421);
    assert!(site.runs("hello").is_empty());
    // The listening address, loopback names and --public-host names are the daemon's.
    for host in [
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        "flows.example.org".to_owned(),
    ] {
        assert_eq!(get(&host), 404, "{host}");
    }
    daemon.stop();
}

#[test]
fn slow_clients_time_out() {
    let site = Site::new();
    let (daemon, addr) = daemon(&site, &[]);
    // Headers that never end: the daemon closes the connection (after its 10 s header
    // timeout; the read timeout here only guards against a hang).
    let headers = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("the daemon listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("a timeout can be set");
        stream
            .write_all(format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
            .expect("the request starts");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map(|_| answer)
    });
    // A body that never comes in full: 408.
    let mut stream = TcpStream::connect(addr).expect("the daemon listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout can be set");
    let head = format!(
        "POST {CREATE} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"params\""
    );
    stream
        .write_all(head.as_bytes())
        .expect("the request starts");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let closed = headers.join().expect("the thread ends");
    assert!(
        closed.is_ok(),
        "the connection with unfinished headers was not closed: {closed:?}"
    );
    assert!(site.runs("hello").is_empty());
    daemon.stop();
}

#[test]
fn the_token_can_come_from_a_file_and_is_never_logged() {
    let site = Site::new();
    site.write("token", "f1le-t0ken\n");
    let file = site.path().join("token");
    let (daemon, addr) = daemon(&site, &["--token-file", file.to_str().expect("UTF-8")]);
    let create = |auth: &str| {
        let head = format!(
            "POST {CREATE} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json{auth}"
        );
        raw(addr, &head, BODY)
    };
    assert_eq!(create(""), 401);
    assert_eq!(create("\r\nAuthorization: Bearer f1le-t0ke"), 401);
    assert_eq!(create("\r\nAuthorization: Bearer f1le-t0ken"), 201);
    let log = daemon.stop();
    assert!(log.stderr().contains("request refused"), "{log}");
    assert!(
        !log.stderr().contains("f1le-t0ke"),
        "the token was logged:\n{log}"
    );

    let empty = site.path().join("empty");
    std::fs::write(&empty, "\n").expect("a file");
    let refused = site
        .daemon_command(&[
            "--listen",
            "127.0.0.1:1",
            "--token-file",
            empty.to_str().expect("UTF-8"),
        ])
        .fails(2);
    assert!(refused.stderr().contains("empty"), "{refused}");
}

/// Every entry under `root` with its mode, for messages.
fn modes(root: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("an entry");
        out.push((
            path.display().to_string(),
            meta.permissions().mode() & 0o7777,
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a folder") {
                pending.push(entry.expect("an entry").path());
            }
        }
    }
    out
}

#[track_caller]
fn assert_private(root: &Path) {
    let open: Vec<_> = modes(root)
        .into_iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .collect();
    assert!(open.is_empty(), "readable by other users: {open:#?}");
}

#[test]
fn sqlite_only_the_environment_is_private_whatever_the_umask() {
    let flow = "jobs:\n  make:\n    steps:\n      - run: echo rows=3 >> \"$COREFLOW_OUTPUT\"; echo data > out.csv\n    datablocks:\n      orders: { path: out.csv }\n  use:\n    needs: [make]\n    inputs: { orders: make.orders }\n    steps:\n      - run: cat \"$COREFLOW_INPUT_ORDERS\"\n";
    let run = Coreflow::new()
        .file("flow.yaml", flow)
        .umask(0o000)
        .args(["run", "flow.yaml", "--junit", "report.xml"])
        .succeeds();
    let env = run.path().join(crate::support::ENV_DIR);
    assert!(env.join("coreflow.db").is_file());
    assert!(env.join("blocks").is_dir());
    assert_private(&env);
    // What the user asked for follows the umask (000 here: 0666).
    let report = std::fs::metadata(run.path().join("report.xml")).expect("a report");
    assert_eq!(report.permissions().mode() & 0o777, 0o666);
    let got = Coreflow::new()
        .env("COREFLOW_ENV", &env)
        .umask(0o022)
        .args(["blocks", "get", "orders", "orders.csv"])
        .succeeds();
    let block = std::fs::metadata(got.path().join("orders.csv")).expect("the block");
    assert_eq!(block.permissions().mode() & 0o777, 0o644);
    assert_private(&env);

    // A daemon's lock file and a standalone worker's files are private too.
    let site = Site::new();
    site.workflow("hello.yaml", HELLO);
    let daemon = crate::daemon_support::Daemon::from(
        site.daemon_command(&["--workers", "1"])
            .umask(0o000)
            .spawn(),
    );
    site.wait_daemon_ready();
    site.trigger("hello", &[]);
    wait_for("the run to end", || {
        site.runs("hello")
            .first()
            .filter(|run| run["status"] == "succeeded")
            .cloned()
    });
    daemon.stop();
    let env = site.path().join(crate::support::ENV_DIR);
    assert!(env.join("daemon.lock").is_file());
    assert_private(&env);
}

#[test]
fn sqlite_only_an_environment_open_to_others_is_closed_when_opened() {
    let run = Coreflow::new()
        .file("flow.yaml", HELLO)
        .umask(0o022)
        .args(["run", "flow.yaml"])
        .succeeds();
    let env = run.path().join(crate::support::ENV_DIR);
    // As an older CoreFlow left it.
    for (path, _) in modes(&env) {
        let path = Path::new(&path);
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    std::fs::write(run.path().join("notes.txt"), "the user's").expect("a file");
    let listed = Coreflow::new()
        .env("COREFLOW_ENV", &env)
        .args(["runs"])
        .succeeds();
    assert!(listed.stdout().contains("flow"), "{listed}");
    assert_private(&env);
}

/// The page another site would serve: it submits forms of every encoding and calls `fetch`
/// against the daemon at `daemon`, then lists how each `fetch` ended in `#out`.
fn attacker_page(daemon: SocketAddr) -> String {
    let base = format!("http://{daemon}/api/v1");
    format!(
        r#"<!doctype html><html><head><title>waiting</title></head><body>
<iframe name="t1"></iframe><iframe name="t2"></iframe><iframe name="t3"></iframe><iframe name="t4"></iframe>
<form id="plain" method="post" enctype="text/plain" target="t1" action="{base}/workflows/hello/runs"><input name='{{"params":{{}},"x":"' value='"}}'></form>
<form id="url" method="post" target="t2" action="{base}/workflows/hello/runs"><input name="params" value="{{}}"></form>
<form id="multi" method="post" enctype="multipart/form-data" target="t3" action="{base}/workflows/hello/runs"><input name="params" value="{{}}"></form>
<form id="cancel" method="post" target="t4" action="{base}/runs/1/cancel"></form>
<pre id="out"></pre>
<script>
const create = "{base}/workflows/hello/runs";
const body = '{{"params":{{}}}}';
for (const id of ["plain", "url", "multi", "cancel"]) document.getElementById(id).submit();
const attempts = [
  fetch(create, {{ method: "POST", mode: "no-cors", headers: {{ "Content-Type": "text/plain" }}, body }}),
  fetch(create, {{ method: "POST", mode: "no-cors", body: new Blob([body]) }}),
  fetch(create, {{ method: "POST", headers: {{ "Content-Type": "application/json" }}, body }}),
  fetch("{base}/runs/1").then(r => r.text()),
];
Promise.allSettled(attempts).then(results => {{
  document.getElementById("out").textContent = results
    .map(r => r.status === "fulfilled" ? (typeof r.value === "string" ? "read" : "sent") : "blocked")
    .join(",");
  setTimeout(() => {{ document.title = "done"; }}, 1000);
}});
</script></body></html>"#
    )
}

/// Serves `page` to every request on a free loopback port, on a thread.
fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("an address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

#[test]
fn a_page_from_another_site_in_a_real_browser_cannot_start_or_cancel_runs() {
    let site = Site::new();
    let (daemon, addr) = daemon(&site, &[]);
    let page = serve_page(attacker_page(addr));
    let profile = tempfile::tempdir().expect("a profile folder");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let output = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{page}/"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{chromium} must be installed (scripts/test-deps.sh installs it): {e}")
        });
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("<title>done</title>"),
        "the page did not finish:\n{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Each no-cors fetch reached the daemon; the JSON one died at its preflight; the answer
    // to the read was withheld from the page (no CORS header).
    assert!(
        dom.contains(r#"<pre id="out">sent,sent,blocked,blocked</pre>"#),
        "{dom}"
    );
    assert!(site.runs("hello").is_empty(), "the page started a run");
    let log = daemon.stop();
    let refused = log.stderr().matches("request refused").count();
    // Four forms and two fetches arrived, and each was refused.
    assert!(refused >= 6, "only {refused} refusals:\n{log}");
}
