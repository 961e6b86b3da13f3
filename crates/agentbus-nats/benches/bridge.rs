//! The bridge against a raw async-nats client doing the same work, in one
//! run, on a nats-server this benchmark starts on loopback.
//!
//! ```text
//! cargo bench -p agentbus-nats --bench bridge
//! ```
//!
//! Rows: core and JetStream throughput (bridge vs a raw client doing the same
//! work: JSON encode, publish with the same headers, receive, read the
//! headers, decode; core also against a raw client without headers), cross-connection
//! latency publish-in-A -> handler-in-B in core mode (hdrhistogram), and the
//! local publish cost with a bridge attached vs without (medians).
//! `BENCH_EVENTS` sets the throughput runs' event count (default 100,000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, EventTypeSet};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;

fn event(n: u64) -> Event {
    Event::new(EventType::TaskCompleted)
        .with_data(serde_json::json!({"task_id": n, "result": "success"}))
        .with_source_agent(1)
        .with_circle(5)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Raw core: encode and publish N events on one connection; another
/// connection receives and decodes them. Events per second end to end.
/// With `headers`, the raw client also does the bridge's header work: it
/// sends origin, event id and sequence headers, and reads them back.
fn raw_core(rt: &tokio::runtime::Runtime, url: &str, n: u64, round: usize, headers: bool) -> f64 {
    rt.block_on(async {
        let publisher = async_nats::connect(url).await.unwrap();
        let receiver = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 20)
            .connect(url)
            .await
            .unwrap();
        let subject = format!("raw{round}{headers}.task.completed");
        let mut sub = receiver.subscribe(subject.clone()).await.unwrap();
        // A round trip (flush only empties the socket buffer).
        let _ = receiver.request("_bench_sync", Bytes::new()).await;
        let events: Vec<Event> = (0..n).map(event).collect();
        let reader = tokio::spawn(async move {
            let mut count = 0u64;
            while count < n {
                let message = sub.next().await.unwrap();
                if headers {
                    let map = message.headers.as_ref().unwrap();
                    std::hint::black_box(map.get("Agentbus-Origin").unwrap());
                    let seq = map.get("Agentbus-Seq").unwrap().as_str();
                    let (_, number) = seq.split_once(' ').unwrap();
                    std::hint::black_box(number.parse::<u64>().unwrap());
                }
                let event = Event::from_json(std::str::from_utf8(&message.payload).unwrap());
                std::hint::black_box(event.unwrap());
                count += 1;
            }
            Instant::now()
        });
        let started = Instant::now();
        for (seq, event) in events.iter().enumerate() {
            let payload = Bytes::from(event.to_json().unwrap());
            if headers {
                let mut map = async_nats::HeaderMap::new();
                map.insert("Agentbus-Origin", "raw");
                map.insert("Agentbus-Event-Id", event.id.to_string().as_str());
                map.insert("Agentbus-Seq", format!("instance {}", seq + 1));
                publisher
                    .publish_with_headers(subject.clone(), map, payload)
                    .await
                    .unwrap();
            } else {
                publisher.publish(subject.clone(), payload).await.unwrap();
            }
        }
        publisher.flush().await.unwrap();
        let ended = reader.await.unwrap();
        n as f64 / (ended - started).as_secs_f64()
    })
}

/// The bridge, core mode: publish N events on bus A; bus B's handler counts
/// them. Events per second end to end (B's count / time).
fn bridge_core(rt: &tokio::runtime::Runtime, url: &str, n: u64, round: usize) -> (f64, u64) {
    let (a, b) = (EventBus::new(), EventBus::new());
    let count = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&count);
    b.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let config = |name: &str| {
        BridgeConfig::default()
            .name(format!("{name}{round}"))
            .prefix(format!("bench{round}"))
            .outgoing_buffer(1 << 20)
            .subscription_capacity(1 << 20)
    };
    let bridge_a = rt
        .block_on(NatsBridge::connect(url, &a, config("a")))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(url, &b, config("b")))
        .unwrap();
    let events: Vec<Event> = (0..n).map(event).collect();
    let started = Instant::now();
    let mut publisher = a.publisher();
    for event in events {
        publisher.publish_blocking(event);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        let before = count.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(200));
        if count.load(Ordering::Relaxed) == before && bridge_a.stats().sent == n {
            // Sent and nothing arriving for a while: count what came.
            std::thread::sleep(Duration::from_millis(200));
            if count.load(Ordering::Relaxed) == before {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let received = count.load(Ordering::Relaxed);
    let lost = bridge_a.stats().outgoing_dropped + bridge_b.stats().incoming_lost;
    rt.block_on(bridge_a.shutdown());
    rt.block_on(bridge_b.shutdown());
    (received as f64 / elapsed.as_secs_f64(), lost)
}

/// Raw JetStream: encode and publish N events with 256 acks in flight and
/// `Nats-Msg-Id` set, until every ack is in. Events per second.
fn raw_jetstream(rt: &tokio::runtime::Runtime, url: &str, n: u64, round: usize) -> f64 {
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: format!("RAWJS{round}"),
            subjects: vec![format!("rawjs{round}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        let events: Vec<Event> = (0..n).map(event).collect();
        let started = Instant::now();
        let mut acks = std::collections::VecDeque::new();
        for event in &events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Agentbus-Origin", "raw");
            headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
            let payload = Bytes::from(event.to_json().unwrap());
            let ack = js
                .publish_with_headers(format!("rawjs{round}.task.completed"), headers, payload)
                .await
                .unwrap();
            acks.push_back(ack);
            if acks.len() >= 256 {
                acks.pop_front().unwrap().await.unwrap();
            }
        }
        for ack in acks {
            ack.await.unwrap();
        }
        n as f64 / started.elapsed().as_secs_f64()
    })
}

/// The bridge, JetStream mode: publish N events on a bus, then `flush`
/// (every one stored). Events per second.
fn bridge_jetstream(rt: &tokio::runtime::Runtime, url: &str, n: u64, round: usize) -> f64 {
    let bus = EventBus::new();
    let bridge = rt
        .block_on(NatsBridge::connect(
            url,
            &bus,
            BridgeConfig::default()
                .name(format!("js{round}"))
                .prefix(format!("benchjs{round}"))
                .jetstream(true)
                .outgoing_buffer(1 << 20)
                // Publish only: this bench compares the sending side.
                .incoming_types(EventTypeSet::from(EventType::TaskFailed)),
        ))
        .unwrap();
    let events: Vec<Event> = (0..n).map(event).collect();
    let started = Instant::now();
    let mut publisher = bus.publisher();
    for event in events {
        publisher.publish_blocking(event);
    }
    rt.block_on(bridge.flush());
    let rate = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(bridge.stats().sent, n);
    rt.block_on(bridge.shutdown());
    rate
}

const ROUNDS: usize = 3;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn percentiles(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        histogram.value_at_quantile(0.50) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        histogram.value_at_quantile(0.999) as f64 / 1000.0,
        histogram.max() as f64 / 1000.0
    )
}

const SAMPLES: usize = 20_000;
const WARMUP: usize = 2_000;

/// Publish in A (plain thread) -> handler runs in B, one event at a time;
/// the publishing thread blocks (no spinning) until B's handler reports.
fn bridge_latency(rt: &tokio::runtime::Runtime, url: &str) -> Histogram<u64> {
    let (a, b) = (EventBus::new(), EventBus::new());
    let (handled_tx, handled_rx) = std::sync::mpsc::channel::<Instant>();
    let handled_tx = Mutex::new(handled_tx);
    b.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        let _ = handled_tx.lock().unwrap().send(Instant::now());
    });
    let config = |name: &str| BridgeConfig::default().name(name).prefix("lat");
    let bridge_a = rt
        .block_on(NatsBridge::connect(url, &a, config("la")))
        .unwrap();
    let bridge_b = rt
        .block_on(NatsBridge::connect(url, &b, config("lb")))
        .unwrap();
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    for i in 0..(SAMPLES + WARMUP) {
        let event = event(i as u64);
        let sent = Instant::now();
        a.publish_blocking(event);
        let Ok(handled) = handled_rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if i >= WARMUP {
            histogram
                .record((handled - sent).as_nanos() as u64)
                .unwrap();
        }
    }
    rt.block_on(bridge_a.shutdown());
    rt.block_on(bridge_b.shutdown());
    histogram
}

/// The raw client's round: encode, publish on one connection, receive and
/// decode on another.
fn raw_latency(rt: &tokio::runtime::Runtime, url: &str) -> Histogram<u64> {
    rt.block_on(async {
        let publisher = async_nats::connect(url).await.unwrap();
        let receiver = async_nats::connect(url).await.unwrap();
        let mut sub = receiver.subscribe("rawlat.task.completed").await.unwrap();
        // A round trip (flush only empties the socket buffer).
        let _ = receiver.request("_bench_sync", Bytes::new()).await;
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for i in 0..(SAMPLES + WARMUP) {
            let event = event(i as u64);
            let started = Instant::now();
            publisher
                .publish(
                    "rawlat.task.completed",
                    Bytes::from(event.to_json().unwrap()),
                )
                .await
                .unwrap();
            let message = sub.next().await.unwrap();
            std::hint::black_box(
                Event::from_json(std::str::from_utf8(&message.payload).unwrap()).unwrap(),
            );
            if i >= WARMUP {
                histogram
                    .record(started.elapsed().as_nanos() as u64)
                    .unwrap();
            }
        }
        histogram
    })
}

const BATCH: usize = 1_000;
const BATCHES: usize = 300;

/// Median ns per publish over batches of `BATCH` publishes of one event,
/// with `settle` run between batches (outside the timing).
fn publish_cost(bus: &EventBus, mut settle: impl FnMut()) -> f64 {
    let event = Arc::new(event(0));
    let mut publisher = bus.publisher();
    let mut samples = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        settle();
        let started = Instant::now();
        for _ in 0..BATCH {
            publisher.publish_blocking(Arc::clone(&event));
        }
        samples.push(started.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Some(server) = NatsServer::start_or_skip("the bridge benchmark") else {
        return;
    };
    let url = server.url();
    let rt = runtime();

    println!(
        "== throughput ({n} events of ~{} bytes; raw and bridge alternate, {ROUNDS} rounds, medians)",
        event(0).to_json().unwrap().len()
    );
    let (mut bare, mut raw, mut bridge, mut lost) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS {
        bare.push(raw_core(&rt, &url, n, round, false));
        raw.push(raw_core(&rt, &url, n, round, true));
        let (rate, round_lost) = bridge_core(&rt, &url, n, round);
        bridge.push(rate);
        lost += round_lost;
    }
    let (bare, raw, bridge) = (median(bare), median(raw), median(bridge));
    println!(
        "core       raw {:>9.0} ev/s   bridge {:>9.0} ev/s   ratio {:.2}x   (bridge losses {lost})",
        raw,
        bridge,
        bridge / raw
    );
    println!(
        "core       raw without headers {:>9.0} ev/s          ratio {:.2}x",
        bare,
        bridge / bare
    );
    let (mut raw, mut bridge) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        raw.push(raw_jetstream(&rt, &url, n, round));
        bridge.push(bridge_jetstream(&rt, &url, n, round));
    }
    let (raw, bridge) = (median(raw), median(bridge));
    println!(
        "jetstream  raw {:>9.0} ev/s   bridge {:>9.0} ev/s   ratio {:.2}x",
        raw,
        bridge,
        bridge / raw
    );

    println!("== latency, core mode, one event at a time ({SAMPLES} samples)");
    println!("raw client  {}", percentiles(&raw_latency(&rt, &url)));
    println!("bridge      {}", percentiles(&bridge_latency(&rt, &url)));

    println!("== local publish cost, one sync handler, median of {BATCHES} x {BATCH}");
    let bus = EventBus::new();
    bus.subscribe(EventType::TaskCompleted, |e: &Event| {
        std::hint::black_box(e);
    });
    let without = publish_cost(&bus, || {});
    let bridge = rt
        .block_on(NatsBridge::connect(
            &url,
            &bus,
            BridgeConfig::default()
                .name("cost")
                .prefix("cost")
                .outgoing_types(EventTypeSet::all()),
        ))
        .unwrap();
    let with = publish_cost(&bus, || rt.block_on(bridge.flush()));
    rt.block_on(bridge.shutdown());
    let bridge = rt
        .block_on(NatsBridge::connect(
            &url,
            &bus,
            BridgeConfig::default()
                .name("cost2")
                .prefix("cost")
                .outgoing_types(EventTypeSet::from(EventType::TaskFailed)),
        ))
        .unwrap();
    let other_type = publish_cost(&bus, || {});
    rt.block_on(bridge.shutdown());
    println!("no bridge                       {without:>6.1} ns");
    println!(
        "bridge, type sent out           {with:>6.1} ns   (+{:.1} ns)",
        with - without
    );
    println!(
        "bridge, type not sent out       {other_type:>6.1} ns   (+{:.1} ns)",
        other_type - without
    );
}
