//! Several hosts on one PostgreSQL environment ("Several hosts (PostgreSQL)" in the book, docs/src/hosts.md),
//! simulated on this machine: each host is a network namespace (`ip netns`) joined to the
//! root namespace by a veth pair, with a host name of its own (a UTS namespace), so that no
//! worker takes another host's workers for its own and only leases can tell a dead worker
//! from a live one. A throwaway PostgreSQL cluster of the test's own listens on the root-side
//! veth addresses; workers reach it over their veth, the inspecting commands from the root
//! namespace. The namespaces share the file system, so steps can wait on a gate file.
//!
//! The test needs root (CI runs as root) and fails, never skips, without it. It starts its own
//! cluster whichever pass of the suite runs it. The workers are started through `ip netns
//! exec` rather than [`Coreflow::spawn`]: the harness would look up the pass's test database
//! from inside the namespace, where the test server is out of reach. Everything it makes —
//! namespaces, veths, the cluster, processes — goes when [`Hosts`] is dropped, even after a
//! failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::daemon_support::{is_terminal, wait_for};
use crate::queue_support::wait_for as wait_for_file;
use crate::support::Coreflow;

/// The workers' lease.
const LEASE: Duration = Duration::from_secs(2);

/// Runs a program to its end and returns its output; `None` when it cannot start.
fn run(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

/// Runs a program and fails the test with `what` and its output unless it exits 0.
#[track_caller]
fn must(what: &str, program: &str, args: &[&str]) -> String {
    match run(program, args) {
        Some(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Some(output) => panic!(
            "{what} failed: `{program} {}` exited {}\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        None => panic!("{what} failed: `{program}` cannot be started"),
    }
}

/// `ip ARGS…`, which must succeed.
#[track_caller]
fn ip(args: &[&str]) -> String {
    must("setting up the network", "ip", args)
}

/// Whether we are root: then PostgreSQL must run as the `postgres` user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs one of PostgreSQL's programs as the cluster's owner (`postgres` when root).
#[track_caller]
fn as_postgres(what: &str, program: &Path, args: &[&str]) -> String {
    let program = program.to_str().expect("the PostgreSQL path is UTF-8");
    if is_root() {
        let mut all = vec!["-u", "postgres", "--", program];
        all.extend_from_slice(args);
        must(what, "runuser", &all)
    } else {
        must(what, program, args)
    }
}

/// The newest `/usr/lib/postgresql/*/bin`.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL under /usr/lib/postgresql: install it (`apt-get install postgresql`, \
             as scripts/test-postgres.sh does)"
        )
    })
}

/// A port that no socket of this host uses a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port can be found")
        .port()
}

/// The pids of every process in network namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns])
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL to every process in network namespace `ns`, again until none is left (a step's
/// shell may fork between the listing and the kill). Returns whether none is left.
fn kill_namespace(ns: &str) -> bool {
    for _ in 0..100 {
        let pids = pids_in(ns);
        if pids.is_empty() {
            return true;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pids_in(ns).is_empty()
}

/// Two simulated hosts, a PostgreSQL cluster reachable from both, and a database in it.
/// Dropping it removes everything it made, in reverse order.
struct Hosts {
    dir: TempDir,
    /// This test's names: `cfh<pid>`.
    tag: String,
    namespaces: Vec<String>,
    /// The root-side ends of the veth pairs (deleting one deletes its peer).
    links: Vec<String>,
    /// The root-side address each host reaches the server at.
    server_addr: Vec<String>,
    pg_bin: PathBuf,
    pg_data: Option<PathBuf>,
    port: u16,
}

impl Hosts {
    /// Sets up `n` hosts (at most 2: two /30s of one /29) and the cluster.
    fn new(n: usize) -> Hosts {
        assert!((1..=2).contains(&n), "one or two hosts");
        let dir = tempfile::Builder::new()
            .prefix("coreflow-hosts-")
            .tempdir()
            .expect("a temporary directory can be created");
        // The postgres user must reach the data folder inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("the temporary directory's mode can be set");
        let tag = format!("cfh{}", std::process::id());
        let mut hosts = Hosts {
            dir,
            namespaces: Vec::new(),
            links: Vec::new(),
            server_addr: Vec::new(),
            pg_bin: postgres_bin(),
            pg_data: None,
            port: free_port(),
            tag,
        };
        let subnet = free_subnet();
        for i in 0..n {
            let ns = format!("{}-{}", hosts.tag, i + 1);
            match run("ip", &["netns", "add", &ns]) {
                Some(output) if output.status.success() => {}
                Some(output) => panic!(
                    "cannot create a network namespace (`ip netns add {ns}` exited {}): this \
                     test simulates hosts with network namespaces and needs root\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
                None => {
                    panic!("cannot run `ip netns add`: this test needs iproute2 (`ip`) and root")
                }
            }
            hosts.namespaces.push(ns.clone());
            let root_end = format!("{}r{}", hosts.tag, i + 1);
            let ns_end = format!("{}n{}", hosts.tag, i + 1);
            ip(&[
                "link", "add", &root_end, "type", "veth", "peer", "name", &ns_end,
            ]);
            hosts.links.push(root_end.clone());
            ip(&["link", "set", &ns_end, "netns", &ns]);
            let root_addr = format!("{subnet}.{}", 4 * i + 1);
            let ns_addr = format!("{subnet}.{}", 4 * i + 2);
            ip(&["addr", "add", &format!("{root_addr}/30"), "dev", &root_end]);
            ip(&["link", "set", &root_end, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_addr}/30"),
                "dev",
                &ns_end,
            ]);
            ip(&["-n", &ns, "link", "set", &ns_end, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            hosts.server_addr.push(root_addr);
        }
        hosts.start_cluster(&format!("{subnet}.0/29"));
        let mut client = postgres::Client::connect(&hosts.url(0, "postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test cluster cannot be reached: {e}"));
        client
            .batch_execute("CREATE DATABASE flows")
            .expect("the database can be created");
        hosts
    }

    /// initdb, trust for the hosts' subnet, and a server on the root-side addresses.
    fn start_cluster(&mut self, subnet: &str) {
        let data = self.path().join("pg");
        std::fs::create_dir(&data).expect("the data folder can be created");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .expect("the data folder's mode can be set");
        if is_root() {
            must("chown", "chown", &["postgres:", path_str(&data)]);
        }
        as_postgres(
            "initdb",
            &self.pg_bin.join("initdb"),
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf can be read");
        writeln!(rules, "host all all {subnet} trust").expect("writing to a String works");
        std::fs::write(&hba, rules).expect("pg_hba.conf can be written");
        let options = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off -c max_connections=100",
            self.port,
            path_str(&data),
            self.server_addr.join(",")
        );
        let log = data.join("server.log");
        // From here on, dropping stops the cluster.
        self.pg_data = Some(data.clone());
        let started = self.pg_ctl(&[
            "-D",
            path_str(&data),
            "-w",
            "-t",
            "60",
            "-l",
            path_str(&log),
            "-o",
            &options,
            "start",
        ]);
        assert!(
            started.is_some_and(|o| o.status.success()),
            "the test cluster did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl ARGS…` as the cluster's owner.
    fn pg_ctl(&self, args: &[&str]) -> Option<Output> {
        let pg_ctl = self.pg_bin.join("pg_ctl");
        if is_root() {
            let mut all = vec!["-u", "postgres", "--", path_str(&pg_ctl)];
            all.extend_from_slice(args);
            run("runuser", &all)
        } else {
            run(path_str(&pg_ctl), args)
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment's URL as host `i` reaches it.
    fn url(&self, i: usize, db: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{db}",
            self.server_addr[i], self.port
        )
    }

    /// Host `i`'s host name.
    fn host_name(&self, i: usize) -> String {
        format!("{}-host{}", self.tag, i + 1)
    }

    /// A `coreflow` invocation in the root namespace, on the environment.
    fn coreflow(&self) -> Coreflow {
        Coreflow::new()
            .current_dir(self.path())
            .env("COREFLOW_ENV", self.url(0, "flows"))
            .env("XDG_STATE_HOME", self.path().join("state-root"))
    }

    /// `coreflow ARGS… --json`, parsed.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        self.coreflow()
            .args(args)
            .arg("--json")
            .succeeds()
            .stdout_json()
    }

    /// The live workers (`workers --json`).
    #[track_caller]
    fn workers(&self) -> Vec<Value> {
        match self.json(&["workers"]) {
            Value::Array(workers) => workers,
            other => panic!("`workers --json` printed no array: {other}"),
        }
    }

    /// Starts `coreflow worker ARGS…` on host `i`: in its network namespace, under its host
    /// name, with its own state folder, reaching the server over its veth.
    fn worker(&self, i: usize, n: usize, args: &[&str]) -> HostWorker {
        let log = self.path().join(format!("worker-{}-{n}.log", i + 1));
        let file = File::create(&log).expect("the worker's log can be created");
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &self.namespaces[i],
                "unshare",
                "--uts",
                "--",
            ])
            .args(["sh", "-c", r#"hostname "$1" && shift && exec "$@""#, "sh"])
            .arg(self.host_name(i))
            .arg(env!("CARGO_BIN_EXE_coreflow"))
            .args(["worker", "--env", &self.url(i, "flows")])
            .args(args)
            .env(
                "XDG_STATE_HOME",
                self.path().join(format!("state-{}", i + 1)),
            )
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log can be shared"))
            .stderr(file)
            .process_group(0);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("COREFLOW_") {
                command.env_remove(key);
            }
        }
        // `ip netns exec`, `unshare` and `sh -c … exec` each exec: the pid is the worker's.
        let child = command.spawn().expect("`ip netns exec` starts");
        HostWorker {
            child: Some(child),
            log,
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            if !kill_namespace(ns) {
                eprintln!("hosts: processes are left in {ns}: {:?}", pids_in(ns));
            }
        }
        if let Some(data) = self.pg_data.take() {
            let stopped = self.pg_ctl(&["-D", path_str(&data), "-m", "immediate", "-w", "stop"]);
            if !stopped.is_some_and(|o| o.status.success()) {
                eprintln!("hosts: the test cluster in {} did not stop", data.display());
            }
        }
        for link in &self.links {
            let _ = run("ip", &["link", "del", link]);
        }
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A /24 of 10.214.0.0/16 that no interface of this host uses, starting from one chosen by
/// the process id, so that concurrent test processes take different ones.
fn free_subnet() -> String {
    let used = run("ip", &["-4", "-o", "addr", "show"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let start = std::process::id() % 250;
    (0..250)
        .map(|k| format!("10.214.{}", (start + k) % 250 + 1))
        .find(|subnet| !used.contains(&format!(" {subnet}.")))
        .expect("a free /24 in 10.214.0.0/16")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A `coreflow worker` in a namespace. Dropping it (a test that failed) kills its process
/// group; its output is in a log file.
struct HostWorker {
    child: Option<Child>,
    log: PathBuf,
}

impl HostWorker {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the worker runs").id()
    }

    /// What the worker wrote.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Reaps the worker once it has died (of a SIGKILL sent to its namespace).
    #[track_caller]
    fn reap_killed(mut self) {
        let mut child = self.child.take().expect("the worker runs");
        let status = wait_for("a killed worker to exit", || {
            child.try_wait().ok().flatten()
        });
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32),
            "the worker died of SIGKILL\n{}",
            self.log()
        );
    }

    /// SIGTERM, then waits: the worker must exit 0 and must not have panicked.
    #[track_caller]
    fn stop(mut self) {
        let mut child = self.child.take().expect("the worker runs");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit i32"));
        nix::sys::signal::kill(pid, Signal::SIGTERM).expect("the worker can be signalled");
        let status = wait_for("a worker to stop", || child.try_wait().ok().flatten());
        let log = self.log();
        assert!(
            status.success() && !log.contains("panicked at"),
            "a worker exits 0 on SIGTERM, without panicking: {status}\n{log}"
        );
    }
}

impl Drop for HostWorker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            eprintln!("a worker, killed after the test failed:\n{}", self.log());
        }
    }
}

/// A timestamp of `show --json`.
#[track_caller]
fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not a time: {text}: {e}"))
        .with_timezone(&Utc)
}

/// `JOBS` jobs, each allowed a second attempt, each logging its start and end (with its
/// attempt and host name) around a wait (of 30 s at most) for the file `gate`.
fn gated_workflow(jobs: usize, gate: &Path, log: &Path) -> String {
    let log = log.display();
    let gate = wait_for_file(&format!("'{}'", gate.display()));
    let mut yaml = String::from("name: hosts\njobs:\n");
    for i in 0..jobs {
        write!(
            yaml,
            r#"  j{i}:
    retry: {{ max_attempts: 2, delay: 0s }}
    steps:
      - run: |
          host=$(cat /proc/sys/kernel/hostname)
          echo "start $COREFLOW_JOB $COREFLOW_ATTEMPT $host" >> '{log}'
          {gate}
          echo "end $COREFLOW_JOB $COREFLOW_ATTEMPT $host" >> '{log}'
"#
        )
        .expect("writing to a String works");
    }
    yaml
}

#[test]
fn killing_one_hosts_workers_mid_job_their_jobs_finish_elsewhere_within_two_leases() {
    let hosts = Hosts::new(2);
    let gate = hosts.path().join("gate");
    let log = hosts.path().join("steps.log");
    let workflow = hosts.path().join("wf.yaml");
    std::fs::write(&workflow, gated_workflow(6, &gate, &log)).expect("the workflow is written");
    let lease = format!("{}s", LEASE.as_secs());
    let mut workers: Vec<Vec<HostWorker>> = (0..2)
        .map(|i| {
            (0..2)
                .map(|n| hosts.worker(i, n, &["--lease", &lease]))
                .collect()
        })
        .collect();
    let host1 = hosts.host_name(0);
    let host2 = hosts.host_name(1);
    // Each reaches the server from its own namespace and registers under its host's name.
    wait_for("four idle workers, two on each host", || {
        let listed = hosts.workers();
        let on = |host: &str| {
            listed
                .iter()
                .filter(|w| host_name_of(w) == host && w["state"] == "idle")
                .count()
        };
        (on(&host1) == 2 && on(&host2) == 2).then_some(())
    });

    let output = hosts
        .coreflow()
        .args(["run", path_str(&workflow), "--detach"])
        .succeeds();
    let run_id = output.stdout().trim().to_owned();
    assert!(
        run_id.parse::<u64>().is_ok(),
        "`run --detach` prints the run id\n{output}"
    );

    // Every worker holds a job whose step is waiting on the gate; two jobs stay queued.
    let held: BTreeMap<String, String> = wait_for("a job running on every worker", || {
        let listed = hosts.workers();
        let busy: Vec<&Value> = listed
            .iter()
            .filter(|w| w["current_job"].is_number())
            .collect();
        if busy.len() != 4 {
            return None;
        }
        let show = hosts.json(&["show", &run_id]);
        let jobs = show["jobs"].as_array()?;
        let running = jobs.iter().filter(|j| j["status"] == "running").count();
        let started = std::fs::read_to_string(&log).unwrap_or_default();
        if running != 4 || started.lines().count() != 4 {
            return None;
        }
        // Job name → the host of the worker holding it.
        let mut held = BTreeMap::new();
        for worker in busy {
            let job = jobs.iter().find(|j| j["id"] == worker["current_job"])?;
            held.insert(
                job["name"].as_str()?.to_owned(),
                host_name_of(worker).to_owned(),
            );
        }
        Some(held)
    });
    let killed_jobs: Vec<&String> = held
        .iter()
        .filter(|(_, host)| **host == host1)
        .map(|(job, _)| job)
        .collect();
    assert_eq!(killed_jobs.len(), 2, "two jobs run on host 1: {held:?}");
    assert_eq!(held.len(), 4, "{held:?}");
    let start_lines = std::fs::read_to_string(&log).expect("the steps log");
    for (job, host) in &held {
        assert!(
            start_lines.contains(&format!("start {job} 1 {host}\n")),
            "{job} started on {host}: {start_lines}"
        );
    }

    // Host 1 goes down: every process in its namespace, workers and steps, killed at once.
    let killed_pids: Vec<u32> = workers[0].iter().map(HostWorker::pid).collect();
    let killed_at = Utc::now();
    assert!(
        kill_namespace(&hosts.namespaces[0]),
        "the processes of host 1 could not all be killed"
    );
    for worker in workers.remove(0) {
        worker.reap_killed();
    }
    std::fs::write(&gate, "open").expect("the gate can be opened");

    let show = wait_for(&format!("run {run_id} to end"), || {
        let show = hosts.json(&["show", &run_id]);
        is_terminal(&show["status"]).then_some(show)
    });
    assert_eq!(show["status"], "succeeded", "{show:#}");
    let jobs = show["jobs"].as_array().expect("jobs is an array");
    assert_eq!(jobs.len(), 6, "{show:#}");
    let lines = std::fs::read_to_string(&log).expect("the steps log");
    let allowed =
        chrono::Duration::from_std(2 * LEASE + Duration::from_secs(2)).expect("a small duration");
    for job in jobs {
        let name = job["name"].as_str().expect("a job name");
        let history = job["history"].as_array().expect("history is an array");
        assert_eq!(job["status"], "succeeded", "{job:#}");
        let ends: Vec<&str> = lines
            .lines()
            .filter(|l| l.starts_with(&format!("end {name} ")))
            .collect();
        assert_eq!(ends.len(), 1, "{name} ran to its end once: {lines}");
        if !killed_jobs.contains(&&name.to_owned()) {
            assert_eq!(job["attempts"], 1, "{job:#}");
            assert_eq!(history.len(), 1, "{job:#}");
            continue;
        }
        // A job of host 1: its first attempt is lost, the second ran on host 2.
        assert_eq!(job["attempts"], 2, "{job:#}");
        assert_eq!(history.len(), 2, "{job:#}");
        assert_eq!(history[0]["status"], "failed", "{job:#}");
        assert_eq!(history[0]["reason"], "lost", "{job:#}");
        assert_eq!(history[1]["status"], "succeeded", "{job:#}");
        assert_eq!(
            ends,
            [format!("end {name} 2 {host2}")],
            "{name} ended only on host 2, at its second attempt: {lines}"
        );
        // Never twice at once: the second attempt began after the first was killed and
        // after it was recorded lost, and no earlier than the kill.
        let lost_at = time(&history[0]["finished_at"]);
        let again_at = time(&history[1]["started_at"]);
        assert!(
            again_at >= lost_at && lost_at >= killed_at - chrono::Duration::milliseconds(5),
            "{name}: killed at {killed_at}, lost at {lost_at}, again at {again_at}"
        );
        eprintln!(
            "{name}: lost {} ms after the kill, running again on host 2 after {} ms",
            (lost_at - killed_at).num_milliseconds(),
            (again_at - killed_at).num_milliseconds()
        );
        // The lease ran out and the job was taken again within 2 × lease (+ 2 s of slack).
        assert!(
            again_at - killed_at <= allowed,
            "{name} ran again {} ms after the kill (lease {LEASE:?}, allowed {} ms)",
            (again_at - killed_at).num_milliseconds(),
            allowed.num_milliseconds()
        );
    }

    // The killed workers are listed as lost; host 2's stop cleanly.
    let all = match hosts.json(&["workers", "--all"]) {
        Value::Array(all) => all,
        other => panic!("`workers --json --all` printed no array: {other}"),
    };
    for pid in killed_pids {
        let worker = all
            .iter()
            .find(|w| w["pid"] == pid && host_name_of(w) == host1)
            .unwrap_or_else(|| panic!("killed worker {pid} is not listed: {all:#?}"));
        assert_eq!(worker["state"], "lost", "{worker:#}");
    }
    for worker in workers.remove(0) {
        worker.stop();
    }
}

/// The host name a worker record names: its `host` up to the `@` that starts the tag of the
/// host's boot and PID namespace.
fn host_name_of(worker: &Value) -> &str {
    let host = worker["host"].as_str().unwrap_or_default();
    host.split_once('@').map_or(host, |(name, _)| name)
}
