//! Runs the real `agentbus` binary: servers on free loopback ports with
//! their files in temp dirs, killed when their guard drops (also on panic).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a server gets to print its address.
const STARTUP: Duration = Duration::from_secs(60);

/// A command for the binary under test, with colour and logs kept out of the way.
pub fn agentbus() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentbus"));
    command
        .env_remove("AGENTBUS_URL")
        .env_remove("AGENTBUS_TOKEN")
        .env_remove("AGENTBUS_STORE")
        .env_remove("AGENTBUS_ADDR")
        .env_remove("AGENTBUS_NATS")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs `agentbus ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    agentbus().args(args).output().expect("run agentbus")
}

/// Runs `agentbus ARGS --url URL` to completion and insists on success.
pub fn run_ok(url: &str, args: &[&str]) -> String {
    let output = agentbus()
        .args(args)
        .args(["--url", url])
        .output()
        .expect("run agentbus");
    assert!(
        output.status.success(),
        "agentbus {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A running child process, killed and reaped on drop.
pub struct Running {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            // A send fails once the test stopped listening; keep draining
            // anyway so the child never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

impl Running {
    /// Spawns `command` with piped output.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agentbus");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The next stdout line matching `wanted`, waiting at most `timeout`.
    /// Panics with what the process said on stderr when it has none.
    pub fn stdout_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_line(&self.stdout, timeout, wanted, "stdout")
        }));
        found.unwrap_or_else(|panic| {
            std::thread::sleep(Duration::from_millis(100));
            let stderr: Vec<String> = self.stderr.try_iter().collect();
            eprintln!("the process's stderr: {stderr:#?}");
            std::panic::resume_unwind(panic)
        })
    }

    /// The next stderr line matching `wanted`, waiting at most `timeout`.
    pub fn stderr_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stderr, timeout, wanted, "stderr")
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agentbus did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of stdout, once the process has closed it (after it exited).
    pub fn rest_of_stdout(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stdout still open after {timeout:?}")
                }
            }
        }
    }

    /// Sends SIGKILL and reaps.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait(timeout)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_line(
    lines: &Receiver<String>,
    timeout: Duration,
    wanted: impl Fn(&str) -> bool,
    name: &str,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no matching line on {name} within {timeout:?}; saw: {seen:#?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{name} closed without a matching line; saw: {seen:#?}")
            }
        }
    }
}

/// The `http://...` URL in a server's first line.
fn url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_owned()
}

/// `agentbus serve` on a free port.
pub struct Server {
    pub process: Running,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
}

impl Server {
    /// Starts `agentbus serve --addr 127.0.0.1:0 EXTRA...` and waits for its address.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", extra)
    }

    /// Starts `agentbus serve --addr ADDR EXTRA...` and waits for its address.
    pub fn start_at(addr: &str, extra: &[&str]) -> Self {
        let mut command = agentbus();
        command.args(["serve", "--addr", addr]).args(extra);
        let process = Running::spawn(command);
        let line = process.stdout_line(STARTUP, |line| line.contains("http://"));
        Self {
            url: url_in(&line),
            process,
        }
    }

    /// Starts a server over the SQLite file `path`.
    pub fn sqlite(path: &Path) -> Self {
        Self::start(&["--store", &format!("sqlite:{}", path.display())])
    }
}

/// `agentbus demo` on a free port.
pub fn demo(extra: &[&str]) -> (Running, String) {
    let mut command = agentbus();
    command.args(["demo", "--addr", "127.0.0.1:0"]).args(extra);
    let process = Running::spawn(command);
    let line = process.stdout_line(STARTUP, |line| line.contains("http://"));
    let url = url_in(&line);
    (process, url)
}

/// A temp dir and the SQLite file in it.
pub fn sqlite_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    (dir, path)
}

/// Parses NDJSON output.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}
