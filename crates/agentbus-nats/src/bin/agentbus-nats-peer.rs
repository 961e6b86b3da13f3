//! A peer process on a bridged bus, driven line by line on stdin; the
//! crate's multi-process tests run several of these, and it is handy for
//! trying a bridge by hand.
//!
//! ```text
//! agentbus-nats-peer <nats-url> <name> <core|jetstream>
//! ```
//!
//! Every event its local subscriber sees is printed as `recv <origin> <seq>`
//! (from the event's `data`). Commands on stdin:
//!
//! - `publish <count>`: publishes `task.started` events
//!   `{"origin": name, "seq": n}` with `n` counting on from the last one,
//!   from a plain thread, then prints `published <count>`;
//! - `flush`: waits until what was published is sent (JetStream: stored),
//!   then prints `flushed`;
//! - `stats`: prints `stats key=value ...`;
//! - `exit` (or end of input): shuts the bridge down gracefully, prints the
//!   final `stats` line and `bye`, and exits.
//!
//! Environment: `AGENTBUS_PEER_SUBSCRIPTION_CAPACITY` (core mode client
//! buffer), `AGENTBUS_PEER_HANDLER_SPIN_US` (busy time per received event, to
//! make a slow consumer), `AGENTBUS_PEER_OUTGOING_BUFFER`.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_nats::{BridgeConfig, BridgeStats, NatsBridge};

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn print_stats(out: &Mutex<std::io::Stdout>, stats: &BridgeStats) {
    let line = format!(
        "stats sent={} received={} incoming_lost={} outgoing_dropped={} outgoing_rejected={} \
         duplicates_skipped={} echoes_skipped={} resent={} slow_consumer_signals={} disconnects={}\n",
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
    );
    let mut out = out.lock().unwrap();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out.lock().unwrap();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: agentbus-nats-peer <nats-url> <name> <core|jetstream>");
        std::process::exit(2);
    }
    let (url, name, mode) = (args[1].clone(), args[2].clone(), args[3].as_str());
    let mut config = BridgeConfig::default()
        .name(name.clone())
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
    let bridge = match runtime.block_on(NatsBridge::connect(&url, &bus, config)) {
        Ok(bridge) => bridge,
        Err(err) => {
            eprintln!(
                "agentbus-nats-peer: {err}: {:?}",
                std::error::Error::source(&err)
            );
            std::process::exit(1);
        }
    };
    say(&out, "ready");

    let next_seq = Arc::new(AtomicU64::new(
        env_number("AGENTBUS_PEER_FIRST_SEQ").unwrap_or(0),
    ));
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("publish") => {
                let count: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let (bus, name, next_seq, out) = (
                    bus.clone(),
                    name.clone(),
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
            Some(other) => eprintln!("agentbus-nats-peer: unknown command `{other}`"),
            None => {}
        }
    }
    let stats = runtime.block_on(bridge.shutdown());
    print_stats(&out, &stats);
    say(&out, "bye");
}
