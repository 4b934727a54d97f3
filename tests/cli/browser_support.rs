//! Helpers for the browser tests: a [`Browser`], real headless Chromium driven through
//! ChromeDriver with `fantoccini`, and a daemon serving the UI on a free port ([`ui_daemon`]).
//!
//! Each [`Browser`] starts its own `chromedriver --port=FREE` (in a process group of its own,
//! killed with its browsers when the `Browser` is dropped) and opens one session. Chromium and
//! ChromeDriver come from Debian's `chromium` and `chromium-driver` (`scripts/test-deps.sh`);
//! a test fails, rather than skips, when they are missing.
//!
//! The API is synchronous, so that the tests read like the other daemon tests and use the
//! same one polling helper ([`wait_for`]): every browser command is a `block_on` on a small
//! runtime of the browser's own. Pages are read with small scripts (`execute`) rather than by
//! holding element references, which a live page may replace; clicks and typing go through
//! WebDriver elements, as a person's would.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::daemon_support::{Answer, Daemon, Site, free_port, http, wait_api, wait_for};

/// The browser and its driver, as Debian installs them.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The narrowest window headless Chromium makes; below it, [`Browser::start`] emulates a
/// phone's screen.
const MIN_WINDOW_WIDTH: u32 = 500;

/// A headless Chromium session.
pub(crate) struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// ChromeDriver's log and Chromium's profile.
    scratch: tempfile::TempDir,
}

impl Browser {
    /// A browser whose viewport is `width` × `height` CSS pixels (a window that size,
    /// headless; an emulated phone's screen below [`MIN_WINDOW_WIDTH`]).
    #[track_caller]
    pub(crate) fn start(width: u32, height: u32) -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (scripts/test-deps.sh installs them)"
            );
        }
        let scratch = tempfile::tempdir().expect("a scratch folder");
        let port = free_port();
        let log = scratch.path().join("chromedriver.log");
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            scratch,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // ChromeDriver listens once it is ready for sessions. (Its `/status` is not read with
        // `http`: it keeps the connection open despite `Connection: close`.)
        wait_for("chromedriver to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
        });
        let profile = browser.scratch.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        // Headless Chromium keeps its window at least 500 px wide, whatever `--window-size`
        // says: a narrower screen is a phone's, emulated (its viewport, a touch screen, and
        // the page laid out at `width=device-width`).
        let mut capabilities = capabilities;
        if width < MIN_WINDOW_WIDTH {
            capabilities["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": true, "mobile": true },
            });
        }
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let client = browser
            .runtime
            .block_on(async {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://{addr}"))
                    .await
            })
            .unwrap_or_else(|err| {
                panic!(
                    "no browser session: {err}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// Navigates to `url` and waits for the page to load.
    #[track_caller]
    pub(crate) fn goto(&self, url: &str) {
        self.block_on(self.client().goto(url))
            .unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    }

    /// The current URL.
    #[track_caller]
    pub(crate) fn url(&self) -> String {
        self.block_on(self.client().current_url())
            .expect("the browser has a URL")
            .as_str()
            .to_owned()
    }

    /// The path of the current URL.
    #[track_caller]
    pub(crate) fn path(&self) -> String {
        self.block_on(self.client().current_url())
            .expect("the browser has a URL")
            .path()
            .to_owned()
    }

    /// Runs `script` (the body of a function: `return …`) in the page and returns its value.
    #[track_caller]
    pub(crate) fn js(&self, script: &str) -> Value {
        self.block_on(self.client().execute(script, Vec::new()))
            .unwrap_or_else(|err| panic!("the script failed: {err}\n{script}"))
    }

    /// Runs `script` with `args` (as `arguments[0]`, …).
    #[track_caller]
    pub(crate) fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.block_on(self.client().execute(script, args))
            .unwrap_or_else(|err| panic!("the script failed: {err}\n{script}"))
    }

    /// Polls `script` until it returns something other than `null`, `undefined` or `false`,
    /// and returns that. A script that fails (the page is being replaced by the next one)
    /// counts as not yet.
    #[track_caller]
    pub(crate) fn wait_js(&self, what: &str, script: &str) -> Value {
        wait_for(what, || {
            let value = self
                .block_on(self.client().execute(script, Vec::new()))
                .ok()?;
            (!matches!(value, Value::Null | Value::Bool(false))).then_some(value)
        })
    }

    /// The text of the first element matching `css`, or `None`.
    #[track_caller]
    pub(crate) fn text(&self, css: &str) -> Option<String> {
        self.js_with(
            "const el = document.querySelector(arguments[0]); return el ? el.textContent : null;",
            vec![json!(css)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// An attribute of the first element matching `css`, or `None`.
    #[track_caller]
    pub(crate) fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.js_with(
            "const el = document.querySelector(arguments[0]); return el ? el.getAttribute(arguments[1]) : null;",
            vec![json!(css), json!(name)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// How many elements match `css`.
    #[track_caller]
    pub(crate) fn count(&self, css: &str) -> usize {
        let n = self.js_with(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        );
        usize::try_from(n.as_u64().expect("a count")).expect("a count fits usize")
    }

    /// Waits until an attribute of the first element matching `css` is `value`.
    #[track_caller]
    pub(crate) fn wait_attr(&self, css: &str, name: &str, value: &str) {
        wait_for(&format!("{css} to have {name}={value:?}"), || {
            (self.attr(css, name).as_deref() == Some(value)).then_some(())
        });
    }

    /// Waits until the text of the first element matching `css` is `value` (trimmed).
    #[track_caller]
    pub(crate) fn wait_text(&self, css: &str, value: &str) {
        wait_for(&format!("{css} to read {value:?}"), || {
            (self.text(css).as_deref().map(str::trim) == Some(value)).then_some(())
        });
    }

    /// The element matching `css` (which must exist now).
    #[track_caller]
    pub(crate) fn find(&self, css: &str) -> Element {
        self.block_on(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|err| panic!("no element {css}: {err}"))
    }

    /// Clicks the element matching `css`, as a person would (WebDriver checks that it can be
    /// clicked: displayed, enabled, not covered).
    #[track_caller]
    pub(crate) fn click(&self, css: &str) {
        let element = self.find(css);
        self.block_on(element.click())
            .unwrap_or_else(|err| panic!("cannot click {css}: {err}"));
    }

    /// Empties the field matching `css`, then types `text` into it.
    #[track_caller]
    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.block_on(element.clear())
            .unwrap_or_else(|err| panic!("cannot clear {css}: {err}"));
        self.block_on(element.send_keys(text))
            .unwrap_or_else(|err| panic!("cannot type into {css}: {err}"));
    }

    /// Picks the option with `value` in the `select` matching `css`.
    #[track_caller]
    pub(crate) fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        self.block_on(element.select_by_value(value))
            .unwrap_or_else(|err| panic!("cannot pick {value:?} in {css}: {err}"));
    }

    /// Whether the element matching `css` is displayed (WebDriver's own check).
    #[track_caller]
    pub(crate) fn displayed(&self, css: &str) -> bool {
        let element = self.find(css);
        self.block_on(element.is_displayed())
            .unwrap_or_else(|err| panic!("cannot tell whether {css} shows: {err}"))
    }

    /// Every cookie of the current page, HttpOnly ones included, as (name, HttpOnly).
    #[track_caller]
    pub(crate) fn cookies(&self) -> Vec<(String, bool)> {
        self.block_on(self.client().get_all_cookies())
            .expect("the cookies can be read")
            .iter()
            .map(|cookie| {
                (
                    cookie.name().to_owned(),
                    cookie.http_only().unwrap_or(false),
                )
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends Chromium; bounded, in case the driver is stuck.
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let group =
            nix::unistd::Pid::from_raw(i32::try_from(self.driver.id()).expect("pids fit i32"));
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
        if std::thread::panicking() {
            let log = self.scratch.path().join("chromedriver.log");
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "chromedriver's log, last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// A daemon with one worker serving the API and the UI on a free loopback port, with `vars`
/// in its environment; waits until it answers.
#[track_caller]
pub(crate) fn ui_daemon(site: &Site, vars: &[(&str, &str)]) -> (Daemon, SocketAddr) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let daemon = site.daemon_with_env(&["--workers", "1", "--listen", &addr.to_string()], vars);
    wait_api(addr);
    (daemon, addr)
}

/// One API call, with `token` if given.
#[track_caller]
pub(crate) fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    http(addr, method, path, token, body).expect("the API answers")
}

/// Creates a run of `workflow` through the API and returns its id.
#[track_caller]
pub(crate) fn create_run(addr: SocketAddr, workflow: &str, token: Option<&str>) -> i64 {
    let answer = api(
        addr,
        "POST",
        &format!("/api/v1/workflows/{workflow}/runs"),
        token,
        Some("{}"),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["run_id"].as_i64().expect("a run id")
}

/// Waits until run `id` (read through the API) is in `status`, and returns its document.
#[track_caller]
pub(crate) fn wait_run_status(
    addr: SocketAddr,
    id: i64,
    status: &str,
    token: Option<&str>,
) -> Value {
    wait_for(&format!("run {id} to be {status}"), || {
        let answer = api(addr, "GET", &format!("/api/v1/runs/{id}"), token, None);
        assert_eq!(answer.status, 200, "{answer:?}");
        (answer.body["status"] == status).then_some(answer.body)
    })
}
