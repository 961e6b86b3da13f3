//! A nats-server on loopback.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::policy::{require_program, skip_or_fail, Unavailable};
use crate::port::free_port;
use crate::process::ProcessGuard;

/// A `nats-server` with JetStream on a free loopback port, its store in a
/// temp dir; killed on drop (a [`ProcessGuard`]).
///
/// The server is started with a name of its own and counts as started only
/// once the INFO on its port carries that name: a port picked free may be
/// taken by another program before the server binds it, and then another
/// port is tried.
///
/// ```no_run
/// use agentbus_testkit::NatsServer;
///
/// let Some(mut server) = NatsServer::start_or_skip("my_test") else { return };
/// let url = server.url(); // nats://127.0.0.1:PORT
/// server.kill(); // SIGKILL: no goodbye, no flush
/// server.restart(); // same port, same store
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct NatsServer {
    process: Option<ProcessGuard>,
    port: u16,
    store: tempfile::TempDir,
    first_start: bool,
    /// More `nats-server` arguments (`--user`, `--auth`, ...).
    extra_args: Vec<String>,
}

impl NatsServer {
    /// A running server, or `None` as [`skip_or_fail`] decides when
    /// `nats-server` is not installed.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        Self::start_with_args_or_skip(test, &[])
    }

    /// [`start_or_skip`](Self::start_or_skip) with more `nats-server`
    /// arguments (`--user`, `--auth`, ...).
    pub fn start_with_args_or_skip(test: &str, extra_args: &[&str]) -> Option<Self> {
        skip_or_fail(test, Self::start(extra_args))
    }

    fn start(extra_args: &[&str]) -> Result<Self, Unavailable> {
        require_program("nats-server", "nats.sh")?;
        let mut server = Self {
            process: None,
            port: free_port(),
            store: tempfile::tempdir().expect("a temp dir"),
            first_start: true,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        };
        server.launch();
        Ok(server)
    }

    fn launch(&mut self) {
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
        format!("agentbus-test-{}-{}", std::process::id(), self.port)
    }

    /// Starts the server; `true` once it is the one answering on the port.
    fn try_launch(&mut self) -> bool {
        let name = self.server_name();
        let process = ProcessGuard::spawn(
            Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-n", &name, "-sd"])
                .arg(self.store.path())
                .args(&self.extra_args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("nats-server starts");
        let process = self.process.insert(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if process.try_wait().is_some() {
                self.process = None;
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

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Freezes the server (SIGSTOP) until [`resume`](Self::resume): it keeps
    /// its connections but reads and answers nothing, like a server on a
    /// badly overloaded machine.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .args([signal, &process.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill {signal} nats-server failed");
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}
