//! Ports are never handed out twice, and a guarded process takes what it
//! started with it.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentbus_testkit::{free_port, ProcessGuard};

#[test]
fn free_ports_are_distinct_within_a_process() {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..50).map(|_| free_port()).collect::<Vec<_>>()))
        .collect();
    let ports: Vec<u16> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
}

/// Gone, or a zombie nobody reaped yet: either way no longer running.
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Waits up to 10 s for `pid` to stop running, or panics with `what`.
fn wait_gone(pid: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dropping_the_guard_kills_the_process_and_what_it_started() {
    let mut guard = ProcessGuard::spawn(
        Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(Stdio::piped()),
    )
    .unwrap();
    let stdout = guard.child_mut().stdout.take().unwrap();
    let mut grandchild = String::new();
    BufReader::new(stdout).read_line(&mut grandchild).unwrap();
    let grandchild = grandchild.trim().to_owned();
    let child = guard.id().to_string();
    assert!(running(&grandchild) && running(&child));

    drop(guard);
    wait_gone(&grandchild, "the grandchild outlived the guard");
    assert!(!running(&child));
}

#[test]
fn a_test_process_that_dies_without_unwinding_leaves_no_process_behind() {
    const NAME: &str = "a_test_process_that_dies_without_unwinding_leaves_no_process_behind";
    if std::env::var_os("AGENTBUS_TESTKIT_GUARDS_CHILD").is_some() {
        // Not on our stdout: the parent reads it to the end.
        let guard = ProcessGuard::spawn(
            Command::new("sleep")
                .arg("300")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        println!("guarded {}", guard.id());
        // No unwinding, so no Drop: only the watchdog can stop the sleep.
        std::process::abort();
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture"])
        .env("AGENTBUS_TESTKIT_GUARDS_CHILD", "1")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child aborted");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid = stdout
        .lines()
        .find_map(|line| line.strip_prefix("guarded "))
        .unwrap_or_else(|| panic!("no pid in {stdout:?}"))
        .to_owned();
    wait_gone(&pid, "the guarded process outlived its test process");
}
