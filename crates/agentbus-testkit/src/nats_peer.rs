//! Peer processes on bridged buses, for the NATS bridge's multi-process
//! tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, BridgeStats, NatsBridge};

use crate::process::ProcessGuard;

/// Set in a peer process: its `<nats-url> <name> <core|jetstream>`.
const PEER_ARGS: &str = "AGENTBUS_TESTKIT_NATS_PEER";

/// Makes a test binary able to run [`NatsPeer`]s: put it once, at the top
/// level of each test file that starts peers.
///
/// A peer is this same test binary started again with only the test this
/// macro defines selected; that test runs the peer when the environment
/// asks for one, and passes at once otherwise. So the peer is always built
/// from the code under test, with no binary to build or find.
#[macro_export]
macro_rules! nats_peer_entry {
    () => {
        /// Runs a NATS peer when this binary was started as one.
        #[test]
        fn agentbus_testkit_nats_peer() {
            $crate::nats_peer_main();
        }
    };
}

/// The peer's `main`: does nothing unless this process was started as a
/// [`NatsPeer`]; then runs the peer and exits the process when it is done.
///
/// The peer is a bus bridged to `<nats-url>` as `<name>`, in `core` or
/// `jetstream` mode, driven line by line on stdin. Every event its local
/// subscriber sees is printed as `recv <origin> <seq>` (from the event's
/// `data`). Commands:
///
/// - `publish <count>`: publishes `task.started` events
///   `{"origin": name, "seq": n}` with `n` counting on from the last one
///   (from `AGENTBUS_PEER_FIRST_SEQ`, else 0), from a plain thread, then
///   prints `published <count>`;
/// - `flush`: waits until what was published is sent (JetStream: stored),
///   then prints `flushed`;
/// - `stats`: prints `stats key=value ...`;
/// - `exit` (or end of input): shuts the bridge down gracefully, prints the
///   final `stats` line and `bye`, and exits.
///
/// Environment: `AGENTBUS_PEER_SUBSCRIPTION_CAPACITY` (core mode client
/// buffer), `AGENTBUS_PEER_HANDLER_SPIN_US` (busy time per received event,
/// to make a slow consumer), `AGENTBUS_PEER_OUTGOING_BUFFER`.
pub fn nats_peer_main() {
    let Ok(args) = std::env::var(PEER_ARGS) else {
        return;
    };
    let args: Vec<&str> = args.split('\t').collect();
    let [url, name, mode] = args[..] else {
        eprintln!("agentbus-testkit peer: {PEER_ARGS} must be <nats-url>\\t<name>\\t<mode>");
        std::process::exit(2);
    };
    run_peer(url, name, mode);
    // Ends here, before the test harness reports on the test this ran in.
    std::process::exit(0);
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn print_stats(out: &Mutex<std::io::Stdout>, stats: &BridgeStats) {
    say(
        out,
        &format!(
            "stats sent={} received={} incoming_lost={} outgoing_dropped={} outgoing_rejected={} \
             duplicates_skipped={} echoes_skipped={} resent={} slow_consumer_signals={} disconnects={}",
            stats.sent,
            stats.received,
            stats.incoming_lost,
            stats.outgoing_dropped,
            stats.outgoing_rejected,
            stats.duplicates_skipped,
            stats.echoes_skipped,
            stats.resent,
            stats.slow_consumer_signals,
            stats.disconnects,
        ),
    );
}

fn run_peer(url: &str, name: &str, mode: &str) {
    let mut config = BridgeConfig::default()
        .name(name)
        .jetstream(mode == "jetstream")
        .ack_wait(Duration::from_secs(3))
        .ack_timeout(Duration::from_secs(2))
        .max_reconnect_delay(Duration::from_millis(250));
    if let Some(capacity) = env_number("AGENTBUS_PEER_SUBSCRIPTION_CAPACITY") {
        config = config.subscription_capacity(capacity as usize);
    }
    if let Some(capacity) = env_number("AGENTBUS_PEER_OUTGOING_BUFFER") {
        config = config.outgoing_buffer(capacity as usize);
    }
    let spin = Duration::from_micros(env_number("AGENTBUS_PEER_HANDLER_SPIN_US").unwrap_or(0));

    let out = Arc::new(Mutex::new(std::io::stdout()));
    let bus = EventBus::new();
    let printer = Arc::clone(&out);
    bus.subscribe(EventType::TaskStarted, move |event: &Event| {
        let started = Instant::now();
        let origin = event.data["origin"].as_str().unwrap_or("?");
        let seq = event.data["seq"].as_u64().unwrap_or(u64::MAX);
        say(&printer, &format!("recv {origin} {seq}"));
        while started.elapsed() < spin {
            std::hint::spin_loop();
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let bridge = match runtime.block_on(NatsBridge::connect(url, &bus, config)) {
        Ok(bridge) => bridge,
        Err(err) => {
            eprintln!(
                "agentbus-testkit peer: {err}: {:?}",
                std::error::Error::source(&err)
            );
            std::process::exit(1);
        }
    };
    say(&out, "ready");

    let next_seq = Arc::new(AtomicU64::new(
        env_number("AGENTBUS_PEER_FIRST_SEQ").unwrap_or(0),
    ));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("publish") => {
                let count: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let (bus, name, next_seq, out) = (
                    bus.clone(),
                    name.to_owned(),
                    Arc::clone(&next_seq),
                    Arc::clone(&out),
                );
                // Published from a plain thread, as an agent's code would.
                std::thread::spawn(move || {
                    let mut publisher = bus.publisher();
                    for _ in 0..count {
                        let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                        publisher.publish_blocking(
                            Event::new(EventType::TaskStarted)
                                .with_data(serde_json::json!({"origin": name, "seq": seq})),
                        );
                    }
                    say(&out, &format!("published {count}"));
                });
            }
            Some("flush") => {
                runtime.block_on(bridge.flush());
                say(&out, "flushed");
            }
            Some("stats") => print_stats(&out, &bridge.stats()),
            Some("exit") => break,
            Some(other) => eprintln!("agentbus-testkit peer: unknown command `{other}`"),
            None => {}
        }
    }
    let stats = runtime.block_on(bridge.shutdown());
    print_stats(&out, &stats);
    say(&out, "bye");
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    /// `recv` lines: origin -> seqs in arrival order.
    received: HashMap<String, Vec<u64>>,
    total_received: usize,
    exited: bool,
}

/// A peer process (see [`nats_peer_main`] for what it does), killed on
/// drop. The test binary must contain [`nats_peer_entry!`].
pub struct NatsPeer {
    /// The name it bridges as.
    pub name: String,
    process: ProcessGuard,
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl NatsPeer {
    /// Starts a peer bridged to `url` as `name` in `mode` (`core` or
    /// `jetstream`), with `env` set, and waits until its bridge is
    /// connected.
    pub fn start(url: &str, name: &str, mode: &str, env: &[(&str, String)]) -> NatsPeer {
        let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
        command
            // Only the test of `nats_peer_entry!`; the terse format keeps
            // the harness's lines apart from the peer's.
            .args([
                "agentbus_testkit_nats_peer",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(PEER_ARGS, format!("{url}\t{name}\t{mode}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = ProcessGuard::spawn(&mut command).expect("the peer starts");
        let stdout = process.child_mut().stdout.take().expect("piped stdout");
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
        let stdin = process.child_mut().stdin.take();
        let peer = NatsPeer {
            name: name.to_owned(),
            process,
            stdin,
            output,
        };
        peer.wait_line("ready", Duration::from_secs(20));
        peer
    }

    /// Sends one command line.
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

    /// How many events the subscriber saw in all.
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
        self.process.kill();
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
        let _ = self.process.wait();
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
