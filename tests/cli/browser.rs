//! The web UI end to end, in a real browser: headless Chromium driven through ChromeDriver
//! (see `browser_support`), on a real daemon serving the pages (`--listen`), one daemon and
//! one browser per test. The tests watch what a person would: a run page updating live (a
//! DAG node recoloured, log lines arriving, the status changing, all without a reload), the
//! runs page showing a new run by itself, a log line holding markup shown as text, the Run
//! form of a workflow starting a run with typed params, signing in with a token, the pages
//! on a 360 px wide screen, and cancelling a run from its page. A last test opens the page of
//! a run of 1,000 jobs and prints how long it took (it asserts what is drawn, never the time).
//!
//! Timing is in the test's hands: steps that must stay running wait for a gate file
//! (`Site::gate`), and every wait polls the page's state with `wait_for`.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::json;

use crate::browser_support::{Browser, api, create_run, ui_daemon, wait_run_status};
use crate::daemon_support::Site;

const TOKEN: &str = "browser-s3cret";

#[test]
fn a_run_page_recolours_its_dag_and_streams_its_log_without_a_reload() {
    let site = Site::new();
    let spoken = site.gate("spoken");
    let gate = site.gate("talked");
    site.workflow(
        "live.yaml",
        &format!(
            "jobs:\n  talk:\n    steps:\n      - run: |\n          echo 'hello from the talk job'\n          {}\n          echo 'a second line, printed after the page loaded'\n          {}\n  after:\n    needs: [talk]\n    steps: [{{ run: 'true' }}]\n",
            spoken.step(),
            gate.step()
        ),
    );
    let (daemon, addr) = ui_daemon(&site, &[]);
    let run = create_run(addr, "live", None);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/runs/{run}"));
    assert_eq!(browser.attr("#run", "data-run-id"), Some(run.to_string()));
    // A mark on this page's window: a reload or a navigation would lose it.
    browser.js("window.coreflowMark = 'same page'; return null;");

    let talk = "#dag g.node[data-job='talk']";
    browser.wait_attr(talk, "data-state", "running");
    let line = browser.wait_js(
        "the talk job's first line in #log",
        "return [...document.querySelectorAll('#log .line')].map(l => l.textContent).find(t => t.includes('hello from the talk job')) || null;",
    );
    assert!(
        line.as_str()
            .is_some_and(|l| l.contains("talk/") && l.contains("hello from the talk job")),
        "the line names its job and step: {line}"
    );
    // A line printed now, with the page open, arrives while the job still runs.
    spoken.open();
    browser.wait_js(
        "the talk job's second line in #log",
        "return [...document.querySelectorAll('#log .line .text')].some(l => l.textContent === 'a second line, printed after the page loaded');",
    );
    assert_eq!(browser.attr(talk, "data-state").as_deref(), Some("running"));
    assert_eq!(browser.text("#run-status").as_deref(), Some("running"));
    assert_eq!(
        browser
            .attr("#dag g.node[data-job='after']", "data-state")
            .as_deref(),
        Some("pending")
    );
    let running_fill = browser.js(&format!(
        "return getComputedStyle(document.querySelector(\"{talk} rect\")).fill;"
    ));

    gate.open();
    browser.wait_attr(talk, "data-state", "succeeded");
    let succeeded_fill = browser.js(&format!(
        "return getComputedStyle(document.querySelector(\"{talk} rect\")).fill;"
    ));
    assert_ne!(
        running_fill, succeeded_fill,
        "the node changes colour with its state"
    );
    browser.wait_attr("#dag g.node[data-job='after']", "data-state", "succeeded");
    browser.wait_text("#run-status", "succeeded");
    assert_eq!(
        browser.attr("#run-status", "data-status").as_deref(),
        Some("succeeded")
    );
    browser.wait_text("#jobs tr[data-job='talk'] .c-status .status", "succeeded");
    assert!(
        !browser.displayed("#cancel") && !browser.displayed("#retry"),
        "a succeeded run offers neither Cancel nor Retry"
    );
    assert_eq!(
        browser.js("return window.coreflowMark;"),
        json!("same page"),
        "all of it happened without a reload"
    );
    assert_eq!(
        browser.count("#log .line"),
        2,
        "each line is shown once: {:?}",
        browser.text("#log")
    );
    drop(browser);
    daemon.stop();
}

#[test]
fn the_runs_page_shows_new_runs_without_a_reload() {
    let site = Site::new();
    site.workflow("hello.yaml", "jobs:\n  hi:\n    steps: [{ run: 'true' }]\n");
    let (daemon, addr) = ui_daemon(&site, &[]);
    let first = create_run(addr, "hello", None);
    wait_run_status(addr, first, "succeeded", None);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/"));
    browser.js("window.coreflowMark = 'same page'; return null;");
    assert_eq!(browser.count("#runs tr[data-run-id]"), 1);
    let second = create_run(addr, "hello", None);
    browser.wait_attr(
        &format!("#runs tr[data-run-id='{second}']"),
        "data-status",
        "succeeded",
    );
    assert_eq!(
        browser.js(
            "return [...document.querySelectorAll('#runs tr[data-run-id]')].map(r => Number(r.dataset.runId));"
        ),
        json!([second, first]),
        "newest first"
    );
    assert_eq!(
        browser.js("return window.coreflowMark;"),
        json!("same page")
    );
    drop(browser);
    daemon.stop();
}

#[test]
fn a_log_line_holding_markup_shows_as_text() {
    let site = Site::new();
    site.workflow(
        "markup.yaml",
        "jobs:\n  inject:\n    steps:\n      - run: |\n          echo '<script>window.pwned=1</script>'\n          echo '<img src=x onerror=\"window.pwned=2\">'\n",
    );
    let (daemon, addr) = ui_daemon(&site, &[]);
    let run = create_run(addr, "markup", None);
    wait_run_status(addr, run, "succeeded", None);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/runs/{run}"));
    let texts = browser.wait_js(
        "both lines in #log",
        "const t = [...document.querySelectorAll('#log .line .text')].map(l => l.textContent); return t.length >= 2 ? t : null;",
    );
    assert_eq!(
        texts,
        json!([
            "<script>window.pwned=1</script>",
            "<img src=x onerror=\"window.pwned=2\">"
        ]),
        "the lines show as they were printed"
    );
    assert_eq!(
        browser.count("#log script, #log img"),
        0,
        "no markup was made"
    );
    assert_eq!(
        browser.js("return typeof window.pwned;"),
        json!("undefined")
    );
    drop(browser);
    daemon.stop();
}

#[test]
fn the_run_form_starts_a_run_with_typed_params() {
    let site = Site::new();
    site.workflow(
        "typed.yaml",
        "params:\n  target: { type: string, choices: [staging, production], default: staging }\n  dry: { type: bool, default: true }\n  count: { type: int, default: 1 }\n  who: { type: string, required: true }\njobs:\n  show:\n    steps:\n      - run: echo \"${{ params.target }} ${{ params.dry }} ${{ params.count }} ${{ params.who }}\"\n",
    );
    let (daemon, addr) = ui_daemon(&site, &[]);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/workflows"));
    let form = "form.run-form[data-workflow='typed']";
    assert_eq!(
        browser.js(&format!(
            "return [...document.querySelectorAll(\"{form} [name]\")].map(e => e.tagName.toLowerCase() + ':' + (e.type || '') + ':' + e.name);"
        )),
        json!([
            "select:select-one:target",
            "input:checkbox:dry",
            "input:number:count",
            "input:text:who"
        ]),
        "one typed input per param"
    );
    // The required string left empty: the form says so and stays.
    browser.click(&format!("{form} button[type=submit]"));
    let message = browser.wait_js(
        "the form's message",
        &format!(
            "const m = document.querySelector(\"{form} .form-message\"); return m && m.textContent.trim() || null;"
        ),
    );
    assert!(
        message.as_str().is_some_and(|m| m.contains("who")),
        "the message names the missing param: {message}"
    );
    assert_eq!(browser.path(), "/workflows");

    browser.select(&format!("{form} select[name=target]"), "production");
    browser.click(&format!("{form} input[name=dry]"));
    browser.type_into(&format!("{form} input[name=count]"), "7");
    browser.type_into(&format!("{form} input[name=who]"), "Ada Lovelace");
    browser.click(&format!("{form} button[type=submit]"));
    let path = browser.wait_js(
        "the new run's page",
        "return /^\\/runs\\/[0-9]+$/.test(location.pathname) && document.readyState === 'complete' ? location.pathname : null;",
    );
    let run: i64 = path
        .as_str()
        .and_then(|p| p.strip_prefix("/runs/"))
        .and_then(|id| id.parse().ok())
        .expect("a run id in the path");
    browser.wait_attr("#run", "data-run-id", &run.to_string());
    let document = api(addr, "GET", &format!("/api/v1/runs/{run}"), None, None);
    assert_eq!(document.status, 200, "{document:?}");
    assert_eq!(document.body["workflow"], "typed", "{:#}", document.body);
    assert_eq!(
        document.body["params"],
        json!({"target": "production", "dry": false, "count": 7, "who": "Ada Lovelace"}),
        "{:#}",
        document.body
    );
    browser.wait_text("#run-status", "succeeded");
    drop(browser);
    daemon.stop();
}

#[test]
fn signing_in_with_the_token_leads_back_to_the_page() {
    let site = Site::new();
    site.workflow("hello.yaml", "jobs:\n  hi:\n    steps: [{ run: 'true' }]\n");
    let (daemon, addr) = ui_daemon(&site, &[("COREFLOW_API_TOKEN", TOKEN)]);
    let run = create_run(addr, "hello", Some(TOKEN));
    wait_run_status(addr, run, "succeeded", Some(TOKEN));
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/"));
    assert_eq!(browser.path(), "/login", "{}", browser.url());
    assert_eq!(browser.count("table#runs"), 0);

    browser.type_into("#token", "not-the-token");
    browser.click("#login button[type=submit]");
    let error = browser.wait_js(
        "the sign-in error",
        "const e = document.getElementById('error'); return e && e.textContent.trim() || null;",
    );
    assert!(
        error.as_str().is_some_and(|e| e.contains("Wrong token")),
        "{error}"
    );
    assert_eq!(browser.path(), "/login");

    browser.type_into("#token", TOKEN);
    browser.click("#login button[type=submit]");
    browser.wait_js(
        "the runs page",
        "return location.pathname === '/' && document.readyState === 'complete' && !!document.querySelector('table#runs');",
    );
    assert_eq!(
        browser.count(&format!("#runs tr[data-run-id='{run}']")),
        1,
        "the runs table shows the run"
    );
    let cookies = browser.cookies();
    assert!(
        cookies.contains(&("coreflow_session".to_owned(), true)),
        "the session cookie is set, HttpOnly: {cookies:?}"
    );
    let visible = browser.js("return document.cookie;");
    assert!(
        !visible
            .as_str()
            .expect("a string")
            .contains("coreflow_session"),
        "scripts cannot read the session cookie: {visible}"
    );
    // Signed in: another page opens directly.
    browser.goto(&format!("http://{addr}/workflows"));
    assert_eq!(browser.path(), "/workflows");
    drop(browser);
    daemon.stop();
}

#[test]
fn the_pages_fit_a_360_px_wide_screen() {
    let site = Site::new();
    let long = "x".repeat(300);
    site.workflow(
        "narrow-screen-check.yaml",
        &format!(
            "params:\n  label: {{ type: string, default: a-rather-long-parameter-value-without-spaces-to-wrap }}\njobs:\n  first-job-with-a-long-name:\n    steps:\n      - run: echo '{long}'\n  second:\n    needs: [first-job-with-a-long-name]\n    steps: [{{ run: 'true' }}]\n  third:\n    needs: [second]\n    steps: [{{ run: 'true' }}]\n"
        ),
    );
    let (daemon, addr) = ui_daemon(&site, &[]);
    let run = create_run(addr, "narrow-screen-check", None);
    wait_run_status(addr, run, "succeeded", None);
    let browser = Browser::start(360, 800);
    let mut problems = String::new();
    for path in [
        "/".to_owned(),
        format!("/runs/{run}"),
        "/workflows".to_owned(),
        "/queues".to_owned(),
        "/workers".to_owned(),
        "/blocks".to_owned(),
    ] {
        browser.goto(&format!("http://{addr}{path}"));
        if path.starts_with("/runs/") {
            browser.wait_js(
                "the log",
                "return document.querySelectorAll('#log .line').length > 0;",
            );
        }
        let width = browser.js("return document.documentElement.clientWidth;");
        assert_eq!(width, json!(360), "the viewport is 360 px wide on {path}");
        let scroll = browser.js("return document.documentElement.scrollWidth;");
        if scroll.as_u64().is_none_or(|w| w > 360) {
            let wide = browser.js(
                "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 361).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' ' + Math.round(e.getBoundingClientRect().right));",
            );
            let _ = writeln!(
                problems,
                "{path}: the page scrolls sideways (scrollWidth {scroll}); widest: {wide}"
            );
        }
        let links = browser.js(
            "return [...document.querySelectorAll('header nav a')].map(a => { const r = a.getBoundingClientRect(); return [a.textContent.trim(), r.left, r.right, r.width, r.height]; });",
        );
        let links = links.as_array().expect("an array");
        assert!(
            links.len() >= 6,
            "the nav has its links on {path}: {links:?}"
        );
        for (i, link) in links.iter().enumerate() {
            let (left, right, w, h) = (
                link[1].as_f64().unwrap_or(-1.0),
                link[2].as_f64().unwrap_or(f64::MAX),
                link[3].as_f64().unwrap_or(0.0),
                link[4].as_f64().unwrap_or(0.0),
            );
            let shown = browser.displayed(&format!("header nav a:nth-of-type({})", i + 1));
            if !(shown && w > 0.0 && h > 0.0 && left >= 0.0 && right <= 360.0) {
                let _ = writeln!(
                    problems,
                    "{path}: the nav link {link} is not fully on screen (displayed: {shown})"
                );
            }
        }
    }
    assert!(problems.is_empty(), "at 360 px:\n{problems}");
    drop(browser);
    daemon.stop();
}

#[test]
fn cancel_on_the_run_page_cancels_the_run() {
    let site = Site::new();
    let gate = site.gate("never");
    site.workflow(
        "long.yaml",
        &format!(
            "jobs:\n  wait:\n    steps:\n      - run: \"{}\"\n",
            gate.step().replace('\\', "\\\\").replace('"', "\\\"")
        ),
    );
    let (daemon, addr) = ui_daemon(&site, &[]);
    let run = create_run(addr, "long", None);
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{addr}/runs/{run}"));
    browser.wait_attr("#dag g.node[data-job='wait']", "data-state", "running");
    assert!(browser.displayed("#cancel"), "a running run offers Cancel");
    browser.click("#cancel");
    browser.wait_text("#run-status", "cancelled");
    browser.wait_attr("#dag g.node[data-job='wait']", "data-state", "cancelled");
    assert!(
        browser.displayed("#retry") && !browser.displayed("#cancel"),
        "a cancelled run offers Retry, not Cancel"
    );
    wait_run_status(addr, run, "cancelled", None);
    drop(browser);
    daemon.stop();
}

#[test]
fn the_page_of_a_run_of_1000_jobs_renders() {
    let site = Site::new();
    let gate = site.gate("never");
    // A root job that waits, then 999 jobs in layers of 100, each needing two of the layer
    // before: only the root runs, the rest stay pending.
    let mut yaml = format!(
        "jobs:\n  start:\n    steps:\n      - run: \"{}\"\n",
        gate.step().replace('\\', "\\\\").replace('"', "\\\"")
    );
    for i in 0..999 {
        let (layer, k) = (i / 100, i % 100);
        let needs = if layer == 0 {
            "start".to_owned()
        } else {
            format!(
                "j{:03}, j{:03}",
                (layer - 1) * 100 + k,
                (layer - 1) * 100 + (k + 1) % 100
            )
        };
        let _ = writeln!(
            yaml,
            "  j{i:03}:\n    needs: [{needs}]\n    steps: [{{ run: 'true' }}]"
        );
    }
    site.workflow("big.yaml", &yaml);
    let (daemon, addr) = ui_daemon(&site, &[]);
    let run = create_run(addr, "big", None);
    let browser = Browser::start(1280, 900);
    let clock = Instant::now();
    browser.goto(&format!("http://{addr}/runs/{run}"));
    let loaded = clock.elapsed();
    browser.wait_attr("#dag g.node[data-job='start']", "data-state", "running");
    let live = clock.elapsed();
    assert_eq!(browser.count("#dag g.node"), 1000);
    assert_eq!(browser.count("#jobs tbody tr[data-job]"), 1000);
    let timing = browser.js(
        "const n = performance.getEntriesByType('navigation')[0]; return { response: n.responseEnd - n.requestStart, dom_content_loaded: n.domContentLoadedEventEnd, load: n.loadEventEnd, bytes: n.transferSize, now: performance.now() };",
    );
    println!(
        "the page of a run of 1,000 jobs: loaded in {loaded:?} as WebDriver saw it, live (the root running) after {live:?}; navigation timing (ms): {timing}"
    );
    let answer = api(
        addr,
        "POST",
        &format!("/api/v1/runs/{run}/cancel"),
        None,
        Some("{}"),
    );
    assert!(answer.status < 300, "{answer:?}");
    wait_run_status(addr, run, "cancelled", None);
    drop(browser);
    daemon.stop();
}
