//! Checks of the test harness itself: that its deadline kills a process that hangs, and that
//! its options reach the binary.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::Coreflow;

/// A FIFO that nothing ever writes to: `coreflow validate` blocks opening it, for as long as
/// the test wants, without any sleep.
fn with_fifo(test: Coreflow) -> Coreflow {
    nix::unistd::mkfifo(
        &test.path().join("hang.yaml"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .expect("a FIFO can be created");
    test
}

#[test]
#[should_panic(expected = "did not finish within")]
fn the_deadline_kills_a_hanging_process_and_fails_the_test() {
    with_fifo(Coreflow::new())
        .args(["validate", "hang.yaml"])
        .timeout(Duration::from_millis(300))
        .run();
}

#[test]
fn a_spawned_process_can_be_signalled() {
    let running = with_fifo(Coreflow::new())
        .args(["validate", "hang.yaml"])
        .spawn();
    assert!(running.path().join("hang.yaml").exists());
    // SIGKILL, which no handler CoreFlow may install can catch.
    running.signal(Signal::SIGKILL);
    let output = running.wait();
    assert_eq!(output.signal(), Some(Signal::SIGKILL as i32), "{output}");
    assert_eq!(output.code(), None);
}

#[test]
fn stdin_and_the_working_directory_reach_the_binary() {
    let output = Coreflow::new()
        .dir("sub")
        .current_dir("sub")
        .stdin("jobs:\n  a: { steps: [{ run: x }] }\n")
        .args(["validate", "/dev/stdin"])
        .succeeds();
    assert_eq!(output.stdout(), "/dev/stdin: ok (stdin, 1 job)\n");

    let output = Coreflow::new()
        .file("sub/wf.yaml", "jobs:\n  a: { steps: [{ run: x }] }\n")
        .current_dir("sub")
        .args(["validate", "wf.yaml"])
        .succeeds();
    assert_eq!(output.stdout(), "wf.yaml: ok (wf, 1 job)\n");
}
