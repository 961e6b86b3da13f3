//! The test harness: a real nats-server on a free loopback port with a temp
//! store dir, and peer processes (the `agentbus-nats-peer` binary).
#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A nats-server with JetStream, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    first_start: bool,
    /// More `nats-server` arguments (`--user`, `--auth`, ...).
    extra_args: Vec<String>,
}

/// A loopback port free now and not handed out before in this process
/// (tests run in parallel threads; two servers on one port would mix them).
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl NatsServer {
    /// Starts a server, or returns `None` (after saying why) when
    /// `nats-server` is not installed, unless `AGENTBUS_REQUIRE_SERVICES=1`,
    /// where that is a failure.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more `nats-server` arguments.
    pub fn start_with(extra_args: &[&str]) -> Option<Self> {
        let installed = Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            if std::env::var("AGENTBUS_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("nats-server is not installed and AGENTBUS_REQUIRE_SERVICES=1 (run .ci/install/nats.sh)");
            }
            eprintln!("SKIPPED: nats-server is not installed (run .ci/install/nats.sh)");
            return None;
        }
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("a temp dir"),
            first_start: true,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        };
        server.launch();
        Some(server)
    }

    fn launch(&mut self) {
        // Another program on this machine may take the port between our
        // check and the server's bind: the server then exits, and whatever
        // holds the port answers. Our server names itself; only its INFO
        // counts. On a first start, try another port.
        for _ in 0..5 {
            if self.try_launch() {
                return;
            }
            assert!(
                self.first_start,
                "port {} was taken while nats-server restarted",
                self.port
            );
            self.port = free_port();
        }
        panic!("nats-server did not start on five free ports");
    }

    fn server_name(&self) -> String {
        format!("agentbus-nats-test-{}-{}", std::process::id(), self.port)
    }

    /// Starts the server; `true` once it is the one answering on the port.
    fn try_launch(&mut self) -> bool {
        let name = self.server_name();
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-n",
                &name,
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child = self.child.as_mut().expect("just started");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut info = String::new();
                let _ = BufReader::new(stream).read_line(&mut info);
                if info.contains(&format!("\"server_name\":\"{name}\"")) {
                    self.first_start = false;
                    return true;
                }
                if !info.is_empty() {
                    // Someone else's server holds the port.
                    self.kill();
                    return false;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tokio runtime for a test body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Polls `condition` until it holds or `timeout` passes; `true` if it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    /// `recv` lines: origin -> seqs in arrival order.
    received: HashMap<String, Vec<u64>>,
    total_received: usize,
    exited: bool,
}

/// A peer process (`agentbus-nats-peer`), killed on drop.
pub struct Peer {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Peer {
    /// Starts a peer and waits until its bridge is connected.
    pub fn start(url: &str, name: &str, mode: &str, env: &[(&str, String)]) -> Peer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentbus-nats-peer"));
        command
            .args([url, name, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the peer starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let output: Arc<(Mutex<Output>, Condvar)> = Arc::default();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lock, signal) = &*sink;
                let mut output = lock.lock().unwrap();
                if let Some(rest) = line.strip_prefix("recv ") {
                    let (origin, seq) = rest.split_once(' ').expect("recv <origin> <seq>");
                    output
                        .received
                        .entry(origin.to_owned())
                        .or_default()
                        .push(seq.parse().expect("a sequence number"));
                    output.total_received += 1;
                } else {
                    output.lines.push(line);
                }
                signal.notify_all();
            }
            let (lock, signal) = &*sink;
            lock.lock().unwrap().exited = true;
            signal.notify_all();
        });
        let stdin = child.stdin.take();
        let peer = Peer {
            name: name.to_owned(),
            child,
            stdin,
            output,
        };
        peer.wait_line("ready", Duration::from_secs(20));
        peer
    }

    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("the peer reads its stdin");
        stdin.flush().expect("the peer reads its stdin");
    }

    /// Waits for an output line starting with `prefix` (consuming it).
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let (lock, signal) = &*self.output;
        let deadline = Instant::now() + timeout;
        let mut output = lock.lock().unwrap();
        loop {
            if let Some(index) = output.lines.iter().position(|l| l.starts_with(prefix)) {
                return output.lines.remove(index);
            }
            let now = Instant::now();
            assert!(
                now < deadline && !output.exited,
                "peer {} did not print `{prefix}` (exited: {}, lines: {:?})",
                self.name,
                output.exited,
                output.lines
            );
            output = signal.wait_timeout(output, deadline - now).unwrap().0;
        }
    }

    /// Waits until the peer's subscriber has seen `count` events in all.
    pub fn wait_received(&self, count: usize, timeout: Duration) -> bool {
        let (lock, signal) = &*self.output;
        let deadline = Instant::now() + timeout;
        let mut output = lock.lock().unwrap();
        while output.total_received < count {
            let now = Instant::now();
            if now >= deadline || output.exited {
                return false;
            }
            output = signal.wait_timeout(output, deadline - now).unwrap().0;
        }
        true
    }

    /// What the subscriber saw: origin -> seqs in arrival order.
    pub fn received(&self) -> HashMap<String, Vec<u64>> {
        self.output.0.lock().unwrap().received.clone()
    }

    pub fn total_received(&self) -> usize {
        self.output.0.lock().unwrap().total_received
    }

    /// `stats` as numbers by key.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        self.send("stats");
        parse_stats(&self.wait_line("stats ", Duration::from_secs(10)))
    }

    /// SIGKILL; what it printed before stays readable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees end of file once the pipe drains.
        let (lock, signal) = &*self.output;
        let mut output = lock.lock().unwrap();
        while !output.exited {
            output = signal.wait(output).unwrap();
        }
    }

    /// Graceful exit; returns the final stats.
    pub fn exit(&mut self) -> HashMap<String, u64> {
        self.send("exit");
        let stats = parse_stats(&self.wait_line("stats ", Duration::from_secs(30)));
        self.wait_line("bye", Duration::from_secs(10));
        let _ = self.child.wait();
        stats
    }
}

fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.trim_start_matches("stats ")
        .split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts `seqs` is exactly `0..count` in order: each once, none missing.
pub fn assert_exactly_once_in_order(who: &str, from: &str, seqs: &[u64], count: u64) {
    let expected: Vec<u64> = (0..count).collect();
    if seqs != expected.as_slice() {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        panic!(
            "{who} from {from}: {} events, {} distinct, expected {count} in order (first ones: {:?})",
            seqs.len(),
            sorted.len(),
            &seqs[..seqs.len().min(20)]
        );
    }
}
