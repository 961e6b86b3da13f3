//! Secrets in locations (`--store`, `--nats`, `--url` and their `AGENTBUS_*`
//! variables) never show: not in `--help`, not in the logs at INFO, not in
//! an error. The real binary runs against closed ports on 127.0.0.1.

mod common;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agentbus_testkit::free_port;

/// What a finished (or, after `timeout`, killed) run printed.
struct Finished {
    /// `None` when the run had to be killed.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Finished {
    #[track_caller]
    fn assert_hides(&self, secrets: &[&str]) {
        for secret in secrets {
            for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
                assert!(
                    !text.contains(secret),
                    "{secret:?} shows on {name}:\n{text}"
                );
            }
        }
    }

    #[track_caller]
    fn assert_failed(&self) {
        assert_eq!(
            self.status.and_then(|status| status.code()),
            Some(1),
            "expected exit code 1; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `command` with logs at INFO, in a temp dir, for at most `timeout`.
fn finish(mut command: Command, timeout: Duration) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agentbus");
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn agentbus(args: &[&str]) -> Command {
    let mut command = common::agentbus();
    command.args(args);
    command
}

#[test]
fn help_never_shows_the_values_of_agentbus_variables() {
    let port = free_port();
    let variables = [
        (
            "AGENTBUS_STORE",
            format!("postgres://app:storepass@127.0.0.1:{port}/events"),
        ),
        (
            "AGENTBUS_NATS",
            format!("nats://ann:natspass@127.0.0.1:{port}"),
        ),
        (
            "AGENTBUS_URL",
            format!("http://ann:urlpass@127.0.0.1:{port}"),
        ),
        ("AGENTBUS_TOKEN", "tokenpass".to_owned()),
    ];
    for command in [
        &[][..],
        &["serve"],
        &["demo"],
        &["replay"],
        &["publish"],
        &["tail"],
        &["history"],
        &["stats"],
    ] {
        let mut help = agentbus(command);
        help.arg("--help");
        for (name, value) in &variables {
            help.env(name, value);
        }
        let finished = finish(help, Duration::from_secs(30));
        assert!(
            finished.status.is_some_and(|status| status.success()),
            "{command:?} --help: {}",
            finished.stderr
        );
        finished.assert_hides(&["storepass", "natspass", "urlpass", "tokenpass"]);
    }
}

#[test]
fn an_unreachable_postgres_store_is_named_without_its_password() {
    let port = free_port();
    for store in [
        format!("postgres://app:hunter2@127.0.0.1:{port}/events"),
        format!("postgres://app:p@ss@hunter2@127.0.0.1:{port}/events"),
        format!("postgresql://app@127.0.0.1:{port}/events?password=hunter2&sslmode=disable"),
    ] {
        let mut serve = agentbus(&["serve", "--addr", "127.0.0.1:0"]);
        serve.env("AGENTBUS_STORE", &store);
        let finished = finish(serve, Duration::from_secs(60));
        finished.assert_failed();
        finished.assert_hides(&["hunter2", "p@ss"]);
        assert!(
            finished.stderr.contains("cannot open the store postgres"),
            "{}",
            finished.stderr
        );
    }
}

/// A `key=value` string is a PostgreSQL location, not a SQLite file named
/// after the password.
#[test]
fn a_postgres_key_value_store_is_recognised_and_redacted() {
    let port = free_port();
    let store = format!("host=127.0.0.1 port={port} user=app password=hunter2 dbname=events");
    for command in [
        &["serve", "--addr", "127.0.0.1:0", "--store"][..],
        &["replay", "--store"],
    ] {
        let mut run = agentbus(command);
        run.arg(&store);
        let finished = finish(run, Duration::from_secs(60));
        finished.assert_failed();
        finished.assert_hides(&["hunter2"]);
        assert!(
            finished
                .stderr
                .contains(&format!("host=127.0.0.1 port={port} user=app password=***")),
            "{}",
            finished.stderr
        );
    }
}

#[test]
fn an_unreachable_nats_server_is_named_without_its_credentials() {
    let port = free_port();
    for nats in [
        format!("nats://ann:natspass@127.0.0.1:{port}"),
        format!("nats://tokenpass@127.0.0.1:{port}"),
        format!("nats://ann:natspass@127.0.0.1:{port},nats://bob:tokenpass@127.0.0.1:{port}"),
    ] {
        let mut serve = agentbus(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--store",
            "none",
            "--nats",
        ]);
        serve.arg(&nats);
        let finished = finish(serve, Duration::from_secs(60));
        finished.assert_failed();
        finished.assert_hides(&["natspass", "tokenpass"]);
        assert!(
            finished.stderr.contains("cannot bridge to NATS at nats://"),
            "{}",
            finished.stderr
        );
    }
}

#[test]
fn client_errors_show_the_url_without_its_password() {
    let port = free_port();
    let url = format!("http://ann:urlpass@127.0.0.1:{port}/");
    for command in [
        &["history"][..],
        &["stats"],
        &["tail"],
        &["publish", "task.created"],
    ] {
        let mut client = agentbus(command);
        client.args(["--url", &url]);
        let finished = finish(client, Duration::from_secs(60));
        finished.assert_failed();
        finished.assert_hides(&["urlpass"]);
        assert!(
            finished
                .stderr
                .contains(&format!("ann:***@127.0.0.1:{port}")),
            "{command:?}: {}",
            finished.stderr
        );
    }
}

/// clap echoes a rejected value in its usage error; a location's is redacted.
#[test]
fn usage_errors_show_a_rejected_location_without_its_password() {
    for command in [
        &["serve", "--store", "mysql://app:hunter2@127.0.0.1/events"][..],
        &["demo", "--store", "mysql://app:hunter2@127.0.0.1/events"],
        &["replay", "--store", "mysql://app:hunter2@127.0.0.1/events"],
        &["history", "--url", "https://ann:hunter2@127.0.0.1:7878"],
    ] {
        let finished = finish(agentbus(command), Duration::from_secs(30));
        assert_eq!(
            finished.status.and_then(|status| status.code()),
            Some(2),
            "{command:?}: {}",
            finished.stderr
        );
        finished.assert_hides(&["hunter2"]);
        assert!(
            finished.stderr.contains(":***@127.0.0.1"),
            "{command:?}: {}",
            finished.stderr
        );
    }
}
