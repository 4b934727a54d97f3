//! `coreflow daemon`, black-box: a real daemon process on a temporary workflow folder and
//! environment, driven through files, signals, the HTTP API and the inspecting commands
//! (`runs`, `show`, `logs`, `workers`). See `daemon_support` for the harness.
//!
//! No test waits for time to pass: each waits for a state (a run, a job, a worker) with the
//! one polling helper. Triggers use `every: 1s`, so a test that needs fires takes a few
//! seconds; long-running steps wait on a gate file instead of sleeping.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::daemon_support::{Site, free_port, http, is_terminal, wait_api, wait_for};
use crate::engine_support::is_alive;
use crate::support::Coreflow;

/// A workflow that fires every second and succeeds at once.
const TICK: &str = "triggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: 'true'\n";

/// The `scheduled_for` of every run of `workflow`, which must all differ.
#[track_caller]
fn assert_no_instant_fired_twice(site: &Site, workflow: &str) -> usize {
    let runs = site.runs(workflow);
    let mut seen = BTreeMap::new();
    for run in &runs {
        let at = run["trigger"]["scheduled_for"]
            .as_str()
            .unwrap_or_else(|| panic!("a timed run names its instant: {run:#}"))
            .to_owned();
        *seen.entry(at).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "instants fired twice: {twice:?}\n{runs:#?}"
    );
    runs.len()
}

fn id(run: &Value) -> i64 {
    run["id"].as_i64().expect("a run id is a number")
}

#[test]
fn an_every_trigger_fires_runs_that_complete_with_the_trigger_params() {
    let site = Site::new();
    site.workflow(
        "tick.yaml",
        "params:\n  greeting: { type: string, default: unset }\ntriggers:\n  - every: 1s\n    params: { greeting: hello }\njobs:\n  say:\n    steps:\n      - run: echo \"greeting=$COREFLOW_PARAM_GREETING kind=${{ trigger.type }}\"\n",
    );
    let daemon = site.daemon(&["--workers", "1"]);
    let done = wait_for("two runs of tick to succeed", || {
        let done = site.runs_in("tick", "succeeded");
        (done.len() >= 2).then_some(done)
    });
    let output = daemon.stop();
    for run in &done {
        assert_eq!(run["trigger"]["type"], "every", "{run:#}");
        assert_eq!(run["trigger"]["trigger"], 0, "{run:#}");
        assert_eq!(run["trigger"]["spec"], "every 1s", "{run:#}");
        assert_eq!(run["params"]["greeting"], "hello", "{run:#}");
    }
    let logs = site.logs(id(&done[0]));
    assert!(logs.contains("greeting=hello kind=every"), "{logs}");
    assert_no_instant_fired_twice(&site, "tick");
    assert!(output.stderr().contains("trigger due"), "{output}");
}

#[test]
fn reload_arms_new_workflows_applies_edits_stops_removed_ones_and_skips_invalid_files() {
    let site = Site::new();
    let versioned = |v: u32| {
        format!(
            "params:\n  version: {{ type: string, default: '{v}' }}\ntriggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: 'true'\n"
        )
    };
    let with_version = |site: &Site, v: &str| -> Vec<Value> {
        site.runs("a")
            .into_iter()
            .filter(|r| r["params"]["version"] == v)
            .collect()
    };
    site.workflow("a.yaml", &versioned(1));
    // `--workers 0`: runs are only counted here, nobody needs to run them.
    let daemon = site.daemon(&["--workers", "0"]);
    wait_for("a to fire", || (!site.runs("a").is_empty()).then_some(()));

    // A file added while the daemon runs is armed.
    site.workflow("b.yaml", TICK);
    wait_for("the added b to fire", || {
        (!site.runs("b").is_empty()).then_some(())
    });

    // An edit takes effect.
    site.workflow("a.yaml", &versioned(2));
    wait_for("the edited a to fire", || {
        (!with_version(&site, "2").is_empty()).then_some(())
    });

    // An invalid file is skipped, a removed one stops firing; the edit to `a`, written last,
    // shows when the daemon has seen all three changes.
    site.workflow(
        "bad.yaml",
        "triggers:\n  - every: 1s\njobs:\n  j:\n    neeeds: [x]\n    steps: [{ run: 'true' }]\n",
    );
    site.remove("flows/b.yaml");
    site.workflow("a.yaml", &versioned(3));
    wait_for("the valid a to fire beside the invalid file", || {
        (!with_version(&site, "3").is_empty()).then_some(())
    });
    let b_runs = site.runs("b").len();
    wait_for("a to fire twice more", || {
        (with_version(&site, "3").len() >= 3).then_some(())
    });
    assert_eq!(site.runs("b").len(), b_runs, "the removed b fired again");
    assert!(site.runs("bad").is_empty());

    let output = daemon.stop();
    assert!(
        output.stderr().contains("bad.yaml:5:5"),
        "the invalid file is reported with file:line:col\n{output}"
    );
    assert!(output.stderr().contains("unknown key `neeeds`"), "{output}");
    assert_no_instant_fired_twice(&site, "a");
}

#[test]
fn a_file_trigger_fires_once_per_new_or_changed_file_also_across_a_restart() {
    let site = Site::new();
    site.workflow(
        "arrivals.yaml",
        "triggers:\n  - file: { path: 'incoming/*.csv' }\njobs:\n  see:\n    steps:\n      - run: echo \"file=${{ trigger.file }}\"\n",
    );
    site.write("flows/incoming/old.csv", "present before the daemon\n");
    let incoming = site.flows().join("incoming");
    let path = |name: &str| incoming.join(name).display().to_string();
    let fired = |site: &Site, name: &str| -> Vec<Value> {
        site.runs("arrivals")
            .into_iter()
            .filter(|r| r["trigger"]["file"] == path(name))
            .collect()
    };
    let wait_fires = |site: &Site, name: &str, count: usize| -> Vec<Value> {
        wait_for(&format!("{count} run(s) for {name} to succeed"), || {
            let runs = fired(site, name);
            (runs.len() >= count && runs.iter().all(|r| r["status"] == "succeeded")).then_some(runs)
        })
    };

    let daemon = site.daemon(&["--workers", "1"]);
    site.wait_daemon_ready();
    site.write("flows/incoming/new.csv", "a,b\n");
    let runs = wait_fires(&site, "new.csv", 1);
    assert_eq!(runs[0]["trigger"]["type"], "file", "{runs:#?}");
    let logs = site.logs(id(&runs[0]));
    assert!(
        logs.contains(&format!("file={}", path("new.csv"))),
        "the step sees the absolute path\n{logs}"
    );
    // New content fires again.
    site.write("flows/incoming/new.csv", "a,b\n1,2\n");
    wait_fires(&site, "new.csv", 2);
    daemon.stop();

    // A file that arrives while the daemon is down fires after the restart, once.
    site.write("flows/incoming/late.csv", "late\n");
    let daemon = site.daemon(&["--workers", "1"]);
    wait_fires(&site, "late.csv", 1);
    site.write("flows/incoming/later.csv", "later\n");
    wait_fires(&site, "later.csv", 1);
    daemon.stop();

    assert_eq!(fired(&site, "late.csv").len(), 1);
    assert_eq!(
        fired(&site, "new.csv").len(),
        2,
        "new.csv fired again after the restart"
    );
    assert!(
        fired(&site, "old.csv").is_empty(),
        "a file present at start fired"
    );
    assert_eq!(site.runs("arrivals").len(), 4);
}

#[test]
fn an_after_trigger_fires_when_the_other_workflow_succeeds_not_when_it_fails() {
    let site = Site::new();
    site.workflow(
        "up.yaml",
        "params:\n  ok: { type: bool, default: true }\njobs:\n  j:\n    steps:\n      - run: test \"$COREFLOW_PARAM_OK\" = true\n",
    );
    site.workflow(
        "down.yaml",
        "triggers:\n  - after: { workflow: up, status: success }\njobs:\n  j:\n    steps:\n      - run: echo \"after run ${{ trigger.run }}\"\n",
    );
    let daemon = site.daemon(&["--workers", "1"]);
    site.wait_daemon_ready();
    let failed = site.trigger("up", &["ok=false"]);
    assert_eq!(site.wait_run_ended(failed)["status"], "failed");
    let succeeded = site.trigger("up", &[]);
    assert_eq!(site.wait_run_ended(succeeded)["status"], "succeeded");
    let down = wait_for("down to run after up succeeded", || {
        site.runs("down")
            .into_iter()
            .find(|r| r["status"] == "succeeded")
    });
    daemon.stop();

    assert_eq!(down["trigger"]["type"], "after", "{down:#}");
    assert_eq!(down["trigger"]["workflow"], "up", "{down:#}");
    assert_eq!(down["trigger"]["run"], succeeded, "{down:#}");
    assert!(
        site.logs(id(&down))
            .contains(&format!("after run {succeeded}"))
    );
    // The failed run, processed before the successful one, fired nothing.
    assert_eq!(site.runs("down").len(), 1, "{:#?}", site.runs("down"));
}

#[test]
fn an_after_trigger_fires_once_per_upstream_run_across_a_restart() {
    // Upstream runs may end out of order: the one that ended first must not fire again
    // after a restart while the other still runs.
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "up.yaml",
        &format!(
            "params:\n  wait: {{ type: bool, default: false }}\njobs:\n  j:\n    steps:\n      - run: if [ \"$COREFLOW_PARAM_WAIT\" = true ]; then {}; fi\n",
            gate.step()
        ),
    );
    site.workflow(
        "down.yaml",
        "triggers:\n  - after: { workflow: up, status: any }\njobs:\n  j:\n    steps:\n      - run: 'true'\n",
    );
    let for_run = |site: &Site, up: i64| -> usize {
        site.runs("down")
            .iter()
            .filter(|r| r["trigger"]["run"] == up)
            .count()
    };
    let daemon = site.daemon(&["--workers", "2", "--grace", "500ms"]);
    site.wait_daemon_ready();
    let slow = site.trigger("up", &["wait=true"]);
    site.wait_job_running(slow);
    let quick = site.trigger("up", &[]);
    site.wait_run_ended(quick);
    wait_for("down to fire for the quick run", || {
        (for_run(&site, quick) == 1).then_some(())
    });
    daemon.stop();

    gate.open();
    let daemon = site.daemon(&["--workers", "2"]);
    site.wait_run_ended(slow);
    wait_for("down to fire for the slow run", || {
        (for_run(&site, slow) == 1).then_some(())
    });
    let third = site.trigger("up", &[]);
    site.wait_run_ended(third);
    wait_for("down to fire for a later run", || {
        (for_run(&site, third) == 1).then_some(())
    });
    daemon.stop();
    assert_eq!(for_run(&site, quick), 1, "{:#?}", site.runs("down"));
    assert_eq!(site.runs("down").len(), 3, "{:#?}", site.runs("down"));
}

#[test]
fn bad_daemon_settings_exit_2_before_anything_starts() {
    let site = Site::new();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--min-workers", "3", "--max-workers", "1"],
            "--min-workers 3 is above",
        ),
        (&["--lease", "1s"], "at least 2s"),
        (&["--listen", "localhost"], "invalid"),
        (&["--log-format", "xml"], "possible values"),
    ];
    for (args, message) in cases {
        let output = site.daemon_command(args).fails(2);
        assert!(output.stderr().contains(message), "{output}");
    }
    let output = site.coreflow().args(["daemon", "no-such-folder"]).fails(2);
    assert!(
        output.stderr().contains("not a folder of workflows"),
        "{output}"
    );
    assert!(site.runs("anything").is_empty());
}

#[test]
fn a_datablock_trigger_fires_once_per_new_version_with_that_version() {
    let site = Site::new();
    site.workflow(
        "producer.yaml",
        "params:\n  content: { type: string, default: x }\njobs:\n  make:\n    steps:\n      - run: echo \"$COREFLOW_PARAM_CONTENT\" > out.txt\n    datablocks:\n      raw: { path: out.txt }\n",
    );
    site.workflow(
        "consumer.yaml",
        "params:\n  src: { type: datablock, default: raw }\ntriggers:\n  - datablock: raw\njobs:\n  use:\n    steps:\n      - run: echo \"src=$COREFLOW_PARAM_SRC\"; cat \"$COREFLOW_INPUT_SRC\"\n",
    );
    // A version that exists before the trigger is first seen does not fire it.
    site.coreflow()
        .args(["run", "flows/producer.yaml", "-p", "content=zero"])
        .succeeds();
    let daemon = site.daemon(&["--workers", "1"]);
    site.wait_daemon_ready();
    let published = |content: &str| {
        let run = site.trigger("producer", &[&format!("content={content}")]);
        assert_eq!(site.wait_run_ended(run)["status"], "succeeded");
    };
    published("one");
    let first = wait_for("the consumer to run for raw@2", || {
        site.runs_in("consumer", "succeeded").into_iter().next()
    });
    // The same content again makes no version; new content does.
    published("one");
    published("two");
    let runs = wait_for("the consumer to run for raw@3", || {
        let runs = site.runs_in("consumer", "succeeded");
        (runs.len() >= 2).then_some(runs)
    });
    daemon.stop();
    assert_eq!(first["trigger"]["type"], "datablock", "{first:#}");
    assert_eq!(first["trigger"]["block"], "raw", "{first:#}");
    assert_eq!(first["trigger"]["version"], 2, "{first:#}");
    let logs = site.logs(id(&first));
    assert!(logs.contains("src=raw@2") && logs.contains("one"), "{logs}");
    assert_eq!(runs[1]["trigger"]["version"], 3, "{runs:#?}");
    assert!(site.logs(id(&runs[1])).contains("two"));
    assert_eq!(
        site.runs("consumer").len(),
        2,
        "{:#?}",
        site.runs("consumer")
    );
}

#[test]
fn on_overlap_skip_records_the_dropped_fires_as_skipped_runs_with_a_reason() {
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "busy.yaml",
        &format!(
            "concurrency: {{ max_runs: 1, on_overlap: skip }}\ntriggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: {}\n",
            gate.step()
        ),
    );
    let daemon = site.daemon(&["--workers", "1"]);
    let skipped = wait_for("a skipped fire", || {
        site.runs_in("busy", "skipped").into_iter().next()
    });
    let reason = skipped["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("max_runs 1") && reason.contains("skip"),
        "{skipped:#}"
    );
    assert!(
        skipped["trigger"]["scheduled_for"].is_string(),
        "{skipped:#}"
    );
    // While the first run holds the slot, every other fire is skipped.
    let active: Vec<Value> = site
        .runs("busy")
        .into_iter()
        .filter(|r| r["status"] != "skipped")
        .collect();
    assert_eq!(active.len(), 1, "{active:#?}");
    gate.open();
    assert_eq!(site.wait_run_ended(id(&active[0]))["status"], "succeeded");
    daemon.stop();
    assert_no_instant_fired_twice(&site, "busy");
}

#[test]
fn on_overlap_queue_delays_fires_until_the_active_run_ends_also_across_a_restart() {
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "serial.yaml",
        &format!(
            "concurrency: {{ max_runs: 1, on_overlap: queue }}\ntriggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: {}\n",
            gate.step()
        ),
    );
    // `tick` shows time passing in fires, not in seconds.
    site.workflow("tick.yaml", TICK);
    let daemon = site.daemon(&["--workers", "2", "--grace", "500ms"]);
    let first = wait_for("the first run of serial", || {
        site.runs("serial").into_iter().next()
    });
    site.wait_job_running(id(&first));
    let ticks = site.runs("tick").len();
    wait_for("three more ticks", || {
        (site.runs("tick").len() >= ticks + 3).then_some(())
    });
    assert_eq!(
        site.runs("serial").len(),
        1,
        "fires made runs while the slot was taken"
    );
    // The fires in line are kept in the environment: a restart starts them.
    daemon.stop();
    let last_tick = site
        .runs("tick")
        .iter()
        .filter_map(|r| r["trigger"]["scheduled_for"].as_str().map(str::to_owned))
        .max()
        .expect("ticks fired");
    gate.open();
    let daemon = site.daemon(&["--workers", "2"]);
    let waited = wait_for("a fire that waited across the restart to run", || {
        site.runs("serial").into_iter().find(|r| {
            id(r) != id(&first)
                && r["trigger"]["scheduled_for"]
                    .as_str()
                    .is_some_and(|at| at <= last_tick.as_str())
        })
    });
    let first = site.wait_run_ended(id(&first));
    assert_eq!(first["status"], "succeeded");
    let ended = first["finished_at"].as_str().expect("the run ended");
    let created = waited["created_at"].as_str().expect("a creation time");
    assert!(
        created >= ended,
        "the queued fire started at {created}, before the active run ended at {ended}"
    );
    daemon.stop();
    assert_no_instant_fired_twice(&site, "serial");
}

#[test]
fn on_overlap_queue_keeps_at_most_max_queued_fires_waiting_and_skips_the_rest() {
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "serial.yaml",
        &format!(
            "concurrency: {{ max_runs: 1, on_overlap: queue, max_queued: 2 }}\ntriggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: {}\n",
            gate.step()
        ),
    );
    let daemon = site.daemon(&["--workers", "1", "--grace", "500ms"]);
    // One run holds the slot, two fires wait, the next is skipped with its reason.
    let skipped = wait_for("a fire beyond max_queued", || {
        site.runs_in("serial", "skipped").into_iter().next()
    });
    let reason = skipped["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("max_queued 2") && reason.contains("2 request(s) already waiting"),
        "{skipped:#}"
    );
    let made: Vec<Value> = site
        .runs("serial")
        .into_iter()
        .filter(|r| r["status"] != "skipped")
        .collect();
    assert_eq!(made.len(), 1, "{made:#?}");
    gate.open();
    daemon.stop();
}

#[test]
fn max_runs_counts_runs_from_the_api_trigger_and_detach_too() {
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "serial.yaml",
        &format!(
            "concurrency: {{ max_runs: 1 }}\njobs:\n  j:\n    steps:\n      - run: {}\n",
            gate.step()
        ),
    );
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let daemon = site.daemon(&["--workers", "2", "--listen", &addr.to_string()]);
    wait_api(addr);
    let create = "/api/v1/workflows/serial/runs";
    let first = http(addr, "POST", create, None, Some("{}")).expect("the API answers");
    assert_eq!(first.status, 201, "{first:?}");
    let first = first.body["run_id"].as_i64().expect("a run id");
    site.wait_job_running(first);
    // The slot is taken: every other way of asking waits in line, in order.
    let second = http(addr, "POST", create, None, Some("{}")).expect("the API answers");
    assert_eq!(second.status, 202, "{second:?}");
    assert_eq!(second.body["status"], "waiting", "{second:?}");
    let third = site.coreflow().args(["trigger", "serial"]).succeeds();
    assert_eq!(third.stdout(), "", "{third}");
    assert!(third.stderr().contains("waiting for a run slot"), "{third}");
    let fourth = site
        .coreflow()
        .args(["--json", "run", "--detach"])
        .arg(site.flows().join("serial.yaml"))
        .succeeds();
    assert_eq!(fourth.stdout_json()["ahead"], 2, "{fourth}");
    assert_eq!(
        site.runs("serial").len(),
        1,
        "a second run was created beside the first"
    );
    gate.open();
    let ended = wait_for("all four runs to end", || {
        let runs = site.runs("serial");
        (runs.len() == 4 && runs.iter().all(|r| is_terminal(&r["status"]))).then_some(runs)
    });
    // One at a time: each started after the one before it finished.
    for pair in ended.windows(2) {
        assert_eq!(pair[0]["status"], "succeeded", "{pair:#?}");
        let finished = pair[0]["finished_at"].as_str().expect("an end");
        let started = pair[1]["started_at"].as_str().expect("a start");
        assert!(finished <= started, "runs overlapped: {pair:#?}");
    }
    daemon.stop();
}

#[test]
fn on_overlap_cancel_running_cancels_the_active_run() {
    let site = Site::new();
    let gate = site.gate("gate");
    site.workflow(
        "latest.yaml",
        &format!(
            "concurrency: {{ max_runs: 1, on_overlap: cancel_running }}\ntriggers:\n  - every: 1s\njobs:\n  j:\n    steps:\n      - run: {}\n",
            gate.step()
        ),
    );
    let daemon = site.daemon(&["--workers", "1"]);
    let cancelled = wait_for("a run cancelled by a newer fire", || {
        site.runs_in("latest", "cancelled").into_iter().next()
    });
    let show = site.show(id(&cancelled));
    assert_eq!(show["jobs"][0]["status"], "cancelled", "{show:#}");
    assert!(
        site.runs("latest").iter().any(|r| id(r) > id(&cancelled)),
        "the fire that cancelled it made a run"
    );
    gate.open();
    daemon.stop();
    assert_no_instant_fired_twice(&site, "latest");
}

/// A workflow without triggers whose step waits for `gate`, for `coreflow trigger`.
fn long_job(site: &Site, retries: bool) -> crate::daemon_support::Gate {
    let gate = site.gate("gate");
    let retry = if retries {
        "    retry: { max_attempts: 3, delay: 100ms }\n"
    } else {
        ""
    };
    site.workflow(
        "long.yaml",
        &format!(
            "jobs:\n  j:\n{retry}    steps:\n      - run: echo started; {}; echo finished\n",
            gate.step()
        ),
    );
    gate
}

#[test]
fn sigterm_lets_a_running_job_finish_within_the_grace_and_exits_0() {
    let site = Site::new();
    let gate = long_job(&site, false);
    let daemon = site.daemon(&["--workers", "1", "--grace", "30s"]);
    site.wait_daemon_ready();
    let run = site.trigger("long", &[]);
    site.wait_job_running(run);
    daemon.signal(Signal::SIGTERM);
    gate.open();
    let output = daemon.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    assert!(output.stderr().contains("daemon stopped"), "{output}");
    let show = site.show(run);
    assert_eq!(show["status"], "succeeded", "{show:#}");
    let logs = site.logs(run);
    assert!(
        logs.contains("started") && logs.contains("finished"),
        "{logs}"
    );
}

#[test]
fn sigterm_with_a_short_grace_requeues_a_long_job_which_the_next_daemon_finishes() {
    let site = Site::new();
    let gate = long_job(&site, false);
    let daemon = site.daemon(&["--workers", "1", "--grace", "500ms"]);
    site.wait_daemon_ready();
    let run = site.trigger("long", &[]);
    site.wait_job_running(run);
    daemon.stop();
    let show = site.show(run);
    let job = &show["jobs"][0];
    assert_eq!(job["status"], "queued", "re-queued, not lost\n{show:#}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("re-queued"),
        "{show:#}"
    );

    gate.open();
    let daemon = site.daemon(&["--workers", "1"]);
    let show = site.wait_run_ended(run);
    daemon.stop();
    assert_eq!(show["status"], "succeeded", "{show:#}");
    assert!(site.logs(run).contains("finished"));
}

#[test]
fn kill_9_then_restart_fires_no_instant_twice_and_the_orphaned_workers_requeue_their_job() {
    let site = Site::new();
    let gate = long_job(&site, false);
    site.workflow("tick.yaml", TICK);
    let daemon = site.daemon(&["--workers", "2", "--grace", "500ms"]);
    site.wait_daemon_ready();
    let run = site.trigger("long", &[]);
    site.wait_job_running(run);
    wait_for("tick to fire twice", || {
        (site.runs("tick").len() >= 2).then_some(())
    });
    let pids: Vec<i32> = site
        .live_workers()
        .iter()
        .map(|w| i32::try_from(w["pid"].as_i64().expect("a pid")).expect("pids fit i32"))
        .collect();
    assert_eq!(pids.len(), 2, "{:#?}", site.workers());

    daemon.kill();
    for pid in &pids {
        wait_for(&format!("worker {pid} to follow its daemon"), || {
            (!is_alive(*pid)).then_some(())
        });
    }
    let show = site.show(run);
    assert_eq!(show["jobs"][0]["status"], "queued", "{show:#}");
    let before = site.runs("tick").len();

    gate.open();
    let daemon = site.daemon(&["--workers", "2"]);
    assert_eq!(site.wait_run_ended(run)["status"], "succeeded");
    wait_for("tick to fire twice after the restart", || {
        (site.runs("tick").len() >= before + 2).then_some(())
    });
    daemon.stop();
    assert_no_instant_fired_twice(&site, "tick");
    let jobs = site
        .coreflow()
        .args(["jobs", "--json"])
        .succeeds()
        .stdout_json();
    assert!(
        jobs.as_array()
            .expect("an array")
            .iter()
            .all(|job| job["status"] != "running"),
        "{jobs:#}"
    );
}

#[test]
fn kill_9_of_the_daemon_and_its_workers_requeues_the_job_at_once_on_restart() {
    let site = Site::new();
    let gate = long_job(&site, true);
    site.workflow("tick.yaml", TICK);
    // A lease far longer than the test's deadline: the job can only come back because the
    // restarted daemon sees that the worker holding it (pid and start time) is gone.
    let args = ["--workers", "1", "--lease", "1h", "--grace", "500ms"];
    let daemon = site.daemon(&args);
    site.wait_daemon_ready();
    let run = site.trigger("long", &[]);
    site.wait_job_running(run);
    // The whole process group: no worker is left to hand the job back.
    let group = nix::unistd::Pid::from_raw(i32::try_from(daemon.pid()).expect("pids fit i32"));
    nix::sys::signal::killpg(group, Signal::SIGKILL).expect("the group can be killed");
    daemon.wait();
    assert_eq!(site.show(run)["jobs"][0]["status"], "running");

    let daemon = site.daemon(&args);
    let requeued = wait_for("the job of the dead worker to run again", || {
        let show = site.show(run);
        (show["jobs"][0]["attempts"].as_i64() >= Some(2)).then_some(show)
    });
    assert!(
        requeued["jobs"][0]["history"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lost"))
            || requeued["jobs"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("lost")),
        "{requeued:#}"
    );
    gate.open();
    let show = site.wait_run_ended(run);
    let output = daemon.stop();
    assert_eq!(show["status"], "succeeded", "{show:#}\n{output}");
    assert_no_instant_fired_twice(&site, "tick");
}

#[test]
fn a_second_daemon_on_the_same_environment_exits_2_naming_the_first() {
    let site = Site::new();
    site.workflow("tick.yaml", TICK);
    let daemon = site.daemon(&["--workers", "0"]);
    wait_for("the first daemon to fire", || {
        (!site.runs("tick").is_empty()).then_some(())
    });
    let second = site.daemon_command(&["--workers", "0"]).fails(2);
    assert!(
        second.stderr().contains(&format!("pid {}", daemon.pid())),
        "{second}"
    );
    daemon.stop();
}

const GREET: &str = "params:\n  name: { type: string, required: true }\n  times: { type: int, default: 1 }\njobs:\n  j:\n    steps:\n      - run: echo \"hello ${{ params.name }} x${{ params.times }}\"\n";

#[test]
fn the_api_creates_reads_and_cancels_runs_behind_a_bearer_token() {
    let site = Site::new();
    site.workflow("greet.yaml", GREET);
    let gate = long_job(&site, false);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let listen = addr.to_string();
    let token = Some("s3cret");
    let daemon = site
        .daemon_command(&["--workers", "1", "--listen", &listen])
        .env("COREFLOW_API_TOKEN", "s3cret")
        .spawn();
    let daemon = crate::daemon_support::Daemon::from(daemon);
    wait_api(addr);
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<&str>| {
        http(addr, method, path, token, body).expect("the API answers")
    };

    let health = call("GET", "/api/v1/health", None, None);
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body["status"], "ok");

    let create = "/api/v1/workflows/greet/runs";
    let body = r#"{"params": {"name": "api", "times": 3}}"#;
    assert_eq!(call("POST", create, None, Some(body)).status, 401);
    assert_eq!(call("POST", create, Some("wrong"), Some(body)).status, 401);
    assert_eq!(call("GET", "/api/v1/runs/1", None, None).status, 401);

    let created = call("POST", create, token, Some(body));
    assert_eq!(created.status, 201, "{created:?}");
    let run = created.body["run_id"].as_i64().expect("a run id");
    let read = wait_for("the API's run to end", || {
        let answer = call("GET", &format!("/api/v1/runs/{run}"), token, None);
        assert_eq!(answer.status, 200, "{answer:?}");
        (answer.body["status"] != "queued" && answer.body["status"] != "running")
            .then_some(answer.body)
    });
    assert_eq!(read["status"], "succeeded", "{read:#}");
    assert_eq!(read["trigger"]["type"], "api", "{read:#}");
    assert_eq!(read["jobs"][0]["name"], "j", "{read:#}");
    assert!(site.logs(run).contains("hello api x3"));

    let bad_json = call("POST", create, token, Some("{not json"));
    assert_eq!(bad_json.status, 400, "{bad_json:?}");
    assert!(
        bad_json.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("JSON"))
    );
    let unknown = call("POST", "/api/v1/workflows/nope/runs", token, Some("{}"));
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(
        unknown.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("nope"))
    );
    let wrong_type = call(
        "POST",
        create,
        token,
        Some(r#"{"params": {"name": "x", "times": "many"}}"#),
    );
    assert_eq!(wrong_type.status, 400, "{wrong_type:?}");
    assert!(
        wrong_type.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("times")),
        "{wrong_type:?}"
    );
    let missing = call("POST", create, token, Some("{}"));
    assert_eq!(missing.status, 400, "{missing:?}");
    assert!(
        missing.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("name")),
        "{missing:?}"
    );
    let unknown_param = call(
        "POST",
        create,
        token,
        Some(r#"{"params": {"name": "x", "bogus": 1}}"#),
    );
    assert_eq!(unknown_param.status, 400, "{unknown_param:?}");
    assert_eq!(call("GET", "/api/v1/runs/999999", token, None).status, 404);
    assert_eq!(
        call("POST", "/api/v1/runs/999999/cancel", token, None).status,
        404
    );

    let created = call("POST", "/api/v1/workflows/long/runs", token, None);
    assert_eq!(created.status, 201, "{created:?}");
    let long = created.body["run_id"].as_i64().expect("a run id");
    site.wait_job_running(long);
    let cancel = call("POST", &format!("/api/v1/runs/{long}/cancel"), token, None);
    assert_eq!(cancel.status, 202, "{cancel:?}");
    assert_eq!(site.wait_run_ended(long)["status"], "cancelled");
    gate.open();
    let output = daemon.stop();
    assert!(
        !output.stderr().contains("s3cret"),
        "the token leaked into the log\n{output}"
    );
}

#[test]
fn listening_beyond_loopback_needs_a_token_and_loopback_does_not() {
    let site = Site::new();
    site.workflow("greet.yaml", GREET);
    let port = free_port();
    let wildcard = format!("0.0.0.0:{port}");
    let refused = site
        .daemon_command(&["--workers", "0", "--listen", &wildcard])
        .fails(2);
    assert!(refused.stderr().contains("token"), "{refused}");

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let daemon = crate::daemon_support::Daemon::from(
        site.daemon_command(&["--workers", "0", "--listen", &wildcard])
            .env("COREFLOW_API_TOKEN", "t0ken")
            .spawn(),
    );
    wait_api(addr);
    let body = Some(r#"{"params": {"name": "x"}}"#);
    let create = "/api/v1/workflows/greet/runs";
    let answer = http(addr, "POST", create, None, body).expect("the API answers");
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = http(addr, "POST", create, Some("t0ken"), body).expect("the API answers");
    assert_eq!(answer.status, 201, "{answer:?}");
    daemon.stop();

    // On loopback without a token, no header is needed.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let daemon = site.daemon(&["--workers", "0", "--listen", &addr.to_string()]);
    wait_api(addr);
    let answer = http(addr, "POST", create, None, body).expect("the API answers");
    assert_eq!(answer.status, 201, "{answer:?}");
    daemon.stop();
    assert_eq!(site.runs("greet").len(), 2);
}

#[test]
fn the_scaler_grows_while_jobs_wait_and_shrinks_after_the_idle_timeout() {
    let site = Site::new();
    let gate = long_job(&site, false);
    let daemon = site.daemon(&[
        "--min-workers",
        "0",
        "--max-workers",
        "3",
        "--idle-timeout",
        "1s",
    ]);
    // No worker runs yet; the daemon knows the workflow once `trigger` accepts it.
    wait_for("the daemon to record the workflow", || {
        (site.coreflow().args(["trigger", "long"]).run().code() == Some(0)).then_some(())
    });
    for _ in 0..5 {
        site.trigger("long", &[]);
    }
    let most = wait_for("the pool to grow to 3", || {
        let live = site.live_workers().len();
        (live == 3).then_some(live)
    });
    assert_eq!(most, 3);
    gate.open();
    wait_for("the six runs to succeed", || {
        (site.runs_in("long", "succeeded").len() == 6).then_some(())
    });
    wait_for("the pool to shrink to 0", || {
        site.live_workers().is_empty().then_some(())
    });
    let output = daemon.stop();
    let stderr = output.stderr();
    let started = stderr.matches("scaler: worker started").count();
    assert!(started >= 3, "{output}");
    assert_eq!(
        stderr
            .matches("scaler: worker stopped after sitting idle")
            .count(),
        started,
        "{output}"
    );
}

#[test]
fn log_format_json_prints_one_json_object_per_line() {
    let site = Site::new();
    site.workflow("tick.yaml", TICK);
    site.workflow("bad.yaml", "jobs: {}\n");
    let daemon = site.daemon(&["--workers", "1", "--log-format", "json"]);
    wait_for("a tick to succeed", || {
        site.runs_in("tick", "succeeded").into_iter().next()
    });
    let output = daemon.stop();
    let mut messages = HashSet::new();
    for line in output.stderr().lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {line}\n{output}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
        if let Some(message) = value["fields"]["message"].as_str() {
            messages.insert(message.to_owned());
        }
    }
    for expected in [
        "daemon started",
        "trigger due",
        "run created",
        "invalid workflow skipped",
        "daemon stopped",
    ] {
        assert!(
            messages.contains(expected),
            "no `{expected}` in {messages:?}"
        );
    }
}

#[test]
fn daemon_help() {
    let output = Coreflow::new().args(["daemon", "--help"]).succeeds();
    assert_eq!(output.stderr(), "");
    insta::assert_snapshot!(output.stdout_redacted(), @"
    Load a folder of workflows, fire their triggers, run workers, serve the HTTP API

    Usage: coreflow daemon [OPTIONS] [WORKFLOW_DIR]

    Arguments:
      [WORKFLOW_DIR]  The folder of workflow files (*.yaml, *.yml), reloaded when files change [default: .]

    Options:
          --env <DIR_OR_URL>                The environment: a state directory (default ./.coreflow) or a postgres:// URL [env: COREFLOW_ENV]
          --workers <N>                     A fixed number of local workers (default: one per CPU; 0: only standalone workers)
          --blocks <DIR_OR_URL>             Where DataBlock content lives: a folder (default <env>/blocks; one every host reaches for a PostgreSQL environment) or an S3-compatible store, s3://BUCKET[/PREFIX] [env: COREFLOW_BLOCKS]
          --min-workers <A>                 The fewest local workers the Scaler keeps
          --json                            Print machine-readable JSON
          --max-workers <B>                 The most local workers the Scaler starts while jobs wait
          --labels <L,…>                    Labels the local workers carry, besides OS, architecture and host name
      -q, --quiet                           Print less
          --launcher <LABEL[:MAX]=COMMAND>  How to start a worker for jobs whose `runs_on` holds LABEL when none carries it: LABEL=COMMAND or LABEL:MAX=COMMAND, with {env}, {labels} and {blocks} substituted (repeatable)
      -v, --verbose                         Print more
          --color <WHEN>                    When to use colors: auto, always, never (`auto` honours NO_COLOR) [default: auto]
          --cpus <N>                        CPUs offered to jobs' `resources.cpus` (default: the host's CPU count)
          --memory <SIZE>                   Memory offered to jobs' `resources.memory`, e.g. 8GiB (default: the host's memory)
          --listen <IP:PORT>                Serve the HTTP API on this IP:PORT (other than loopback only with a token: COREFLOW_API_TOKEN or --token-file)
          --public-host <NAME>              A host name the API answers to besides its address and loopback names (a reverse proxy's or the server's DNS name); repeatable. Requests naming any other host get 421
          --token-file <PATH>               Read the API token from this file (first line) instead of COREFLOW_API_TOKEN
          --grace <DURATION>                On SIGTERM, how long running jobs may take to finish before they are re-queued [default: 30s]
          --lease <DURATION>                How long a local worker's job stays leased without a heartbeat before another worker may take it over (workers heartbeat every second; at least 2s) [default: 30s]
          --idle-timeout <DURATION>         How long an idle local worker lives above the minimum [default: 30s]
          --log-format <FORMAT>             The daemon's own log: text or json [default: text] [possible values: text, json]
      -h, --help                            Print help
      -V, --version                         Print version
");
}

/// Several daemons on one (PostgreSQL) environment: one leads and fires; when it stops,
/// another takes over at once; when it is killed, the one left takes over; no instant of a
/// trigger is fired twice across the handovers. The daemons keep separate host folders
/// (`XDG_STATE_HOME`), as on separate hosts.
#[test]
fn a_standing_by_daemon_takes_over_when_the_leader_stops_or_dies() {
    let site = Site::on_postgres();
    site.workflow("tick.yaml", TICK);
    let daemon_in = |home: &str| {
        site.daemon_command(&["--workers", "0", "--lease", "2s"])
            .env("XDG_STATE_HOME", site.path().join(home))
            .spawn()
    };
    let ticks = || site.runs("tick").len();
    let first = crate::daemon_support::Daemon::from(daemon_in("a"));
    wait_for("the first daemon to fire twice", || {
        (ticks() >= 2).then_some(())
    });
    let second = crate::daemon_support::Daemon::from(daemon_in("b"));
    // The second stands by while the first leads: the ticks go on at the same pace, each
    // instant once.
    let before = ticks();
    wait_for("two more ticks with two daemons", || {
        (ticks() >= before + 2).then_some(())
    });
    assert_no_instant_fired_twice(&site, "tick");

    // The leader stops: it gives the leadership up, and the second fires from then on.
    let stopped = first.stop();
    assert!(
        stopped.stderr().contains("leading"),
        "the first daemon led\n{stopped}"
    );
    let before = ticks();
    wait_for("ticks after the leader stopped", || {
        (ticks() >= before + 2).then_some(())
    });
    assert_no_instant_fired_twice(&site, "tick");

    // A third daemon stands by; the leader is killed; the third takes over.
    let third = crate::daemon_support::Daemon::from(daemon_in("c"));
    let before = ticks();
    wait_for("ticks with the third standing by", || {
        (ticks() > before).then_some(())
    });
    let killed = second.kill();
    assert!(
        killed.stderr().contains("leading"),
        "the second daemon led\n{killed}"
    );
    let before = ticks();
    wait_for("ticks after the leader was killed", || {
        (ticks() >= before + 2).then_some(())
    });
    let output = third.stop();
    assert!(
        output.stderr().contains("leading"),
        "the third took over\n{output}"
    );
    assert_no_instant_fired_twice(&site, "tick");
}
