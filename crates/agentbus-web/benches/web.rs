//! agentbus-web's speed targets, side by side in one run (a plain binary:
//! the targets are about percentiles and ratios, not criterion means).
//!
//! 1. **Fan-out.** 100 WebSocket clients each receive every event while the
//!    bus publishes 20k events/s for 5 s: every client must get all of them
//!    (no `lagged`), and the bus's publish cost with them attached is
//!    compared with the same bus and router with no client, and with a bare
//!    bus (no router). Publishes go out from a plain thread in bursts of 100
//!    every 5 ms; a burst's time divided by 100 is one sample. Run with the
//!    default `client_buffer` (16,384 events) and with 65,536. The server has
//!    its own runtime, as in its own process.
//! 2. **Latency.** `POST /api/events` (one event) until a WebSocket client
//!    has it, over loopback, 2000 times, without and with a SQLite store
//!    (with one, the POST waits for the commit).
//! 3. **Durable throughput.** `POST /api/events` with batches of 1000 (one
//!    and two connections), 256, 16 and 1 into a SQLite store (each reply
//!    only once its batch is durable), against the store's own `append` of
//!    the same batches in the same run.
//!    Then the floor of any such `POST` of 1000: `append` alone, the
//!    body's decode alone (on one thread, and its two halves on two), and
//!    the same body's round trip to a bare route that only reads it and
//!    answers a reply of the real size. Their sum bounds the ratio a `POST`
//!    that decodes its whole body before storing any of it can reach here.
//! 4. **Metrics scrape.** `GET /metrics` with every event type published
//!    (24 label values in each of the published, delivered and failed
//!    families) and 1,000 WebSocket clients connected, with a
//!    SQLite store, against `GET /api/stats` (the JSON it replaces) and
//!    `GET /api/health` (the bare round trip) alternating in one run.
//!
//! 5. **CloudEvents POST.** `POST /api/events` in CloudEvents form
//!    (structured for one event, a batch for 1000, and binary mode for one)
//!    against the same events in the core's JSON, taking turns on one
//!    server, without a store and with a SQLite one.
//!
//! Run: `cargo bench -p agentbus-web --bench web` (about two minutes);
//! `-- durable` runs only the third part, `-- metrics` only the fourth,
//! `-- cloudevents` only the fifth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, Recorder, SqliteStore};
use agentbus_web::{CloudEvent, WebApi};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 100;
const RATE: u64 = 20_000;
const SECONDS: u64 = 5;
const BURST: u64 = 100;
/// The large per-client buffer (3 s at this rate); the default is also run.
const LARGE_CLIENT_BUFFER: usize = 1 << 16;
const LATENCY_ROUNDS: usize = 2000;

fn main() {
    // The clients' runtime; the server has its own (see `serve`), as it
    // would in its own process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-clients")
        .enable_all()
        .build()
        .unwrap();
    println!(
        "agentbus-web benchmark ({} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if std::env::args().any(|arg| arg == "metrics") {
        runtime.block_on(metrics_scrape());
        return;
    }
    if std::env::args().any(|arg| arg == "cloudevents") {
        cloudevents_posts(&runtime);
        return;
    }
    if !std::env::args().any(|arg| arg == "durable") {
        runtime.block_on(fan_out(agentbus_web::DEFAULT_CLIENT_BUFFER));
        runtime.block_on(fan_out(LARGE_CLIENT_BUFFER));
        runtime.block_on(latency());
    }
    println!("3. durable POST /api/events into a SQLite store, reply after commit, against SqliteStore::append alone");
    println!("   (same batches, same settings, in turn; target >= 0.8x for batches of 1000)");
    println!("                                       POST    append   ratio");
    // `-- durable` runs only this part.
    for (batch, batches, connections) in [
        (1000, 100, 1),
        (1000, 100, 2),
        (1000, 100, 4),
        (256, 200, 1),
        (16, 1000, 1),
        (1, 2000, 1),
    ] {
        runtime.block_on(durable_throughput(batch, batches, connections));
    }
    runtime.block_on(durable_floor(1000, 100));
    if !std::env::args().any(|arg| arg == "durable") {
        runtime.block_on(metrics_scrape());
        cloudevents_posts(&runtime);
    }
}

/// Case 5: CloudEvents POSTs against native ones.
fn cloudevents_posts(runtime: &tokio::runtime::Runtime) {
    println!("5. POST /api/events as CloudEvents against the core's JSON, same events, in turn");
    println!("   (target >= 0.7x)                          native      cloudevents   ratio");
    for durable in [false, true] {
        for (batch, batches) in [(1000, 60), (1, 3000)] {
            runtime.block_on(cloudevents_throughput(batch, batches, durable, false));
        }
        runtime.block_on(cloudevents_throughput(1, 3000, durable, true));
    }
    println!();
}

/// Headers and body of one request.
type Request = (Vec<(&'static str, String)>, Bytes);

/// The time `requests` take, one after another.
async fn timed_posts(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    requests: &[Request],
) -> Duration {
    let began = Instant::now();
    for (headers, body) in requests {
        post_with(client, url, headers, body.clone()).await;
    }
    began.elapsed()
}

/// `batches` bodies of `batch` events each way (binary mode for single
/// events when `binary`), posted in alternating turns of ten.
async fn cloudevents_throughput(batch: usize, batches: usize, durable: bool, binary: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let mut api = WebApi::new(bus.clone()).body_limit(16 << 20);
    if durable {
        api = api.store(Recorder::attach(
            &bus,
            SqliteStore::open(dir.path().join("ce.db")).unwrap(),
        ));
    }
    let addr = serve(api).await;
    let url = format!("http://{addr}/api/events");
    let make = |n: usize| -> Vec<Event> {
        (0..batch)
            .map(|i| {
                Event::new(EventType::AgentToolExecuted)
                    .with_data(json!({"tool": "edit_file", "n": n * batch + i}))
                    .with_source_agent(3)
                    .with_circle(1)
                    .with_project(7)
            })
            .collect()
    };
    let native: Vec<Request> = (0..batches)
        .map(|n| {
            let events = make(n);
            let body = if batch == 1 {
                serde_json::to_string(&events[0])
            } else {
                serde_json::to_string(&events)
            };
            (
                vec![("content-type", "application/json".to_owned())],
                Bytes::from(body.unwrap()),
            )
        })
        .collect();
    let cloud: Vec<Request> = (0..batches)
        .map(|n| {
            let events: Vec<CloudEvent> =
                make(n + batches).into_iter().map(CloudEvent::new).collect();
            if binary {
                let json = serde_json::to_value(&events[0]).unwrap();
                let mut headers = vec![("content-type", "application/json".to_owned())];
                for name in [
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "agentbusproject",
                ] {
                    let header = match name {
                        "specversion" => "ce-specversion",
                        "id" => "ce-id",
                        "source" => "ce-source",
                        "type" => "ce-type",
                        "time" => "ce-time",
                        _ => "ce-agentbusproject",
                    };
                    headers.push((header, json[name].as_str().unwrap().to_owned()));
                }
                (headers, Bytes::from(json["data"].to_string()))
            } else if batch == 1 {
                (
                    vec![("content-type", "application/cloudevents+json".to_owned())],
                    Bytes::from(serde_json::to_string(&events[0]).unwrap()),
                )
            } else {
                (
                    vec![(
                        "content-type",
                        "application/cloudevents-batch+json".to_owned(),
                    )],
                    Bytes::from(serde_json::to_string(&events).unwrap()),
                )
            }
        })
        .collect();
    let client = http_client();
    let (mut native_time, mut cloud_time) = (Duration::ZERO, Duration::ZERO);
    const TURN: usize = 10;
    for (turn, (natives, clouds)) in native.chunks(TURN).zip(cloud.chunks(TURN)).enumerate() {
        if turn % 2 == 0 {
            native_time += timed_posts(&client, &url, natives).await;
            cloud_time += timed_posts(&client, &url, clouds).await;
        } else {
            cloud_time += timed_posts(&client, &url, clouds).await;
            native_time += timed_posts(&client, &url, natives).await;
        }
    }
    let events = (batch * batches) as f64;
    let (native_rate, cloud_rate) = (
        events / native_time.as_secs_f64(),
        events / cloud_time.as_secs_f64(),
    );
    let mode = match (binary, batch) {
        (true, _) => "binary",
        (false, 1) => "structured",
        _ => "batch",
    };
    println!(
        "   {:<8} batches of {batch:>4}, {mode:<10} {native_rate:>9.0} /s {cloud_rate:>11.0} /s {:>7.2}x",
        if durable { "sqlite" } else { "no store" },
        cloud_rate / native_rate
    );
}

const SCRAPE_CLIENTS: usize = 1000;
const SCRAPE_ROUNDS: usize = 500;

/// Case 4: `/metrics` against `/api/stats` and `/api/health`.
async fn metrics_scrape() {
    println!(
        "4. GET /metrics with {} types and {SCRAPE_CLIENTS} WebSocket clients, {SCRAPE_ROUNDS} rounds",
        EventType::COUNT
    );
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("m.db")).unwrap());
    let addr = serve(
        WebApi::new(bus.clone())
            .store(recorder)
            .max_clients(SCRAPE_CLIENTS + 10),
    )
    .await;
    let mut sockets = Vec::with_capacity(SCRAPE_CLIENTS);
    for _ in 0..SCRAPE_CLIENTS {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        sockets.push(socket);
    }
    for event_type in EventType::ALL {
        bus.publish(Event::new(event_type)).await;
    }
    let client = http_client();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("http://{addr}{path}");
        async move {
            let start = Instant::now();
            let response = client.get(url.parse().unwrap()).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (start.elapsed(), body)
        }
    };
    let (_, body) = get("/metrics").await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("agentbus_live_clients{transport=\"websocket\"} 1000"),
        "{text}"
    );
    // Every type in each per-type family (the recorder's delivery each).
    for event_type in EventType::ALL {
        for family in ["published", "delivered", "failed"] {
            let count = if family == "failed" { 0 } else { 1 };
            let sample = format!(
                "agentbus_events_{family}_total{{type=\"{}\"}} {count}\n",
                event_type.as_str()
            );
            assert!(text.contains(&sample), "no {sample} in {text}");
        }
    }
    let paths = ["/metrics", "/api/stats", "/api/health"];
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); paths.len()];
    for _ in 0..SCRAPE_ROUNDS {
        for (path, samples) in paths.iter().zip(&mut samples) {
            samples.push(get(path).await.0.as_nanos() as u64);
        }
    }
    let medians: Vec<u64> = samples
        .iter_mut()
        .map(|samples| {
            samples.sort_unstable();
            samples[samples.len() / 2]
        })
        .collect();
    for (path, median) in paths.iter().zip(&medians) {
        println!(
            "   {path:<12} median {:>7.1} us  ({:.2}x /api/health)",
            *median as f64 / 1000.0,
            *median as f64 / medians[2] as f64
        );
    }
    println!(
        "   /metrics body {} bytes; /metrics / /api/stats = {:.2}\n",
        body.len(),
        medians[0] as f64 / medians[1] as f64
    );
    drop(sockets);
}

/// The server runtime: its own threads, as in its own process.
fn server_runtime() -> &'static tokio::runtime::Runtime {
    static SERVER: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("web-server")
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Serves `api` on the server runtime.
async fn serve(api: WebApi) -> String {
    let (bound, at) = tokio::sync::oneshot::channel();
    server_runtime().spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        bound.send(listener.local_addr().unwrap()).unwrap();
        let app = api.router();
        agentbus_web::serve(listener, app).await.unwrap()
    });
    format!("{}", at.await.unwrap())
}

/// Publishes `RATE` events/s for `SECONDS` from a plain thread, in bursts;
/// returns the per-publish cost of each burst in nanoseconds.
fn paced_publish(bus: EventBus) -> Histogram<u64> {
    let mut costs = Histogram::<u64>::new(3).unwrap();
    let bursts = RATE * SECONDS / BURST;
    let period = Duration::from_nanos(1_000_000_000 * BURST / RATE);
    // Built before and dropped after the timed run: otherwise the cost of
    // freeing an event (on whichever thread drops the last reference: the
    // history ring's on the publisher, a client's elsewhere) would swamp
    // the cost of publishing it.
    let events: Vec<Arc<Event>> = (0..bursts * BURST)
        .map(|n| {
            Arc::new(
                Event::new(EventType::TaskCompleted)
                    .with_data(json!({"task_id": n, "result": "success"}))
                    .with_source_agent(7)
                    .with_circle(3),
            )
        })
        .collect();
    let start = Instant::now();
    for (burst, chunk) in events.chunks(BURST as usize).enumerate() {
        let began = Instant::now();
        for event in chunk {
            bus.publish_blocking(Arc::clone(event));
        }
        let took = began.elapsed().as_nanos() as u64;
        costs.record((took / BURST).max(1)).unwrap();
        // Sleep, then yield for the last 300 us: a core woken from a long
        // sleep has cold caches, and spinning throughout would take CPU
        // from the clients.
        let next = start + period * (burst as u32 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.saturating_sub(Duration::from_micros(300)));
        }
        while Instant::now() < next {
            std::thread::yield_now();
        }
    }
    bus.clear_history();
    drop(events);
    costs
}

async fn fan_out(client_buffer: usize) {
    let total = RATE * SECONDS;
    // Baselines: a bare bus, then a bus with the router but no client.
    let bare = tokio::task::spawn_blocking(|| paced_publish(EventBus::new()))
        .await
        .unwrap();
    let bus = EventBus::new();
    let addr = serve(WebApi::new(bus.clone()).client_buffer(client_buffer)).await;
    let idle = {
        let bus = bus.clone();
        tokio::task::spawn_blocking(move || paced_publish(bus))
            .await
            .unwrap()
    };

    let received: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    let lagged = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for client in 0..CLIENTS {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let received = Arc::clone(&received);
        let lagged = Arc::clone(&lagged);
        readers.push(tokio::spawn(async move {
            let mut missed = 0;
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message {
                    if let Some(n) = text.strip_prefix("{\"lagged\":") {
                        let n: u64 = n.trim_end_matches('}').parse().unwrap();
                        missed += n;
                        lagged.fetch_add(n, Ordering::Relaxed);
                    } else if received[client].fetch_add(1, Ordering::Relaxed) + 1 + missed == total
                    {
                        return;
                    }
                    if received[client].load(Ordering::Relaxed) + missed >= total {
                        return;
                    }
                }
            }
        }));
    }
    // Every client is subscribed once its handshake is done.
    let attached = {
        let bus = bus.clone();
        tokio::task::spawn_blocking(move || paced_publish(bus))
            .await
            .unwrap()
    };
    let published = Instant::now();
    let drained = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(readers),
    )
    .await;
    let drain_time = published.elapsed();
    let counts: Vec<u64> = received.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    let complete = counts.iter().filter(|&&n| n == total).count();
    let min = counts.iter().min().copied().unwrap_or(0);

    println!("1. fan-out: {CLIENTS} WebSocket clients, bus publishing {RATE} events/s for {SECONDS} s ({total} events), client_buffer {client_buffer}");
    println!(
        "   clients that received all {total}: {complete}/{CLIENTS} (fewest: {min}); events skipped (lagged) in all: {}; the last client finished {:.0} ms after the last publish{}",
        lagged.load(Ordering::Relaxed),
        drain_time.as_secs_f64() * 1000.0,
        if drained.is_ok() { "" } else { " (timed out)" },
    );
    println!("   publish cost per event (ns)      median    mean     p99");
    for (name, h) in [
        ("bare bus, no router", &bare),
        ("router, no client", &idle),
        ("router, 100 clients", &attached),
    ] {
        println!(
            "   {name:<30} {:>7} {:>7.0} {:>7}",
            h.value_at_quantile(0.5),
            h.mean(),
            h.value_at_quantile(0.99)
        );
    }
    println!(
        "   ratio 100 clients / no client: median {:.2}x, mean {:.2}x (target <= 1.2x); vs bare bus: median {:.2}x",
        attached.value_at_quantile(0.5) as f64 / idle.value_at_quantile(0.5) as f64,
        attached.mean() / idle.mean(),
        attached.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5) as f64,
    );
    println!();
}

fn http_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    body: impl Into<Bytes>,
) -> serde_json::Value {
    post_with(
        client,
        url,
        &[("content-type", "application/json".to_owned())],
        body,
    )
    .await
}

/// `post` with these headers.
async fn post_with(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> serde_json::Value {
    let mut request = hyper::Request::post(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn latency() {
    println!(
        "2. POST /api/events (1 event) -> seen by a WebSocket client, {LATENCY_ROUNDS} rounds"
    );
    println!("   {:<30} {:>8} {:>8} {:>8}", "", "p50", "p99", "max");
    let dir = tempfile::tempdir().unwrap();
    for stored in [false, true] {
        let bus = EventBus::new();
        let mut api = WebApi::new(bus.clone());
        if stored {
            api = api.store(Recorder::attach(
                &bus,
                SqliteStore::open(dir.path().join("latency.db")).unwrap(),
            ));
        }
        let addr = serve(api).await;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let arrivals: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<Instant>>>> =
            Arc::default();
        let reader = {
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    let now = Instant::now();
                    if let Message::Text(text) = message {
                        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let id = event["id"].as_str().unwrap_or_default().to_owned();
                        if let Some(waiter) = arrivals.lock().unwrap().remove(&id) {
                            let _ = waiter.send(now);
                        }
                    }
                }
            })
        };
        let client = http_client();
        let url = format!("http://{addr}/api/events");
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for round in 0..LATENCY_ROUNDS {
            let event = Event::new(EventType::TaskCompleted).with_data(json!({"task_id": round}));
            let (seen, arrived) = tokio::sync::oneshot::channel();
            arrivals.lock().unwrap().insert(event.id.to_string(), seen);
            let body = event.to_json().unwrap();
            let began = Instant::now();
            post(&client, &url, body).await;
            let at = tokio::time::timeout(Duration::from_secs(5), arrived)
                .await
                .unwrap()
                .unwrap();
            histogram
                .record(at.duration_since(began).as_micros() as u64)
                .unwrap();
        }
        reader.abort();
        let name = if stored {
            "with SQLite store (durable)"
        } else {
            "without store"
        };
        println!(
            "   {name:<30} {:>6.2}ms {:>6.2}ms {:>6.2}ms",
            histogram.value_at_quantile(0.5) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0,
            histogram.max() as f64 / 1000.0
        );
    }
    println!("   targets: p50 <= 2 ms, p99 <= 20 ms\n");
}

/// `POST /api/events` with `batches` batches of `batch` events into a
/// SQLite store, `connections` clients posting at once (each waits for its
/// reply, sent only once its batch is durable), against the store's own
/// `append` of the same batches. The two take turns, `connections` batches
/// at a time, so a busy machine slows both alike; each side's time is the
/// sum of its turns. Both stores are files opened alike (WAL,
/// `synchronous=NORMAL`), so each commit costs the same; the bodies are
/// encoded before the clock starts, as the events given to `append` are
/// built before it.
async fn durable_throughput(batch: usize, batches: usize, connections: usize) {
    let dir = tempfile::tempdir().unwrap();
    let built: Vec<Vec<Arc<Event>>> = (0..batches)
        .map(|b| {
            (0..batch)
                .map(|i| {
                    Arc::new(
                        Event::new(EventType::AgentToolExecuted)
                            .with_data(json!({"tool": "edit_file", "n": b * batch + i}))
                            .with_source_agent(3)
                            .with_circle(1),
                    )
                })
                .collect()
        })
        .collect();
    let raw = SqliteStore::open(dir.path().join("raw.db")).unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("web.db")).unwrap());
    let addr = serve(
        WebApi::new(bus.clone())
            .store(recorder)
            .body_limit(16 << 20),
    )
    .await;
    let url = format!("http://{addr}/api/events");
    let bodies: Vec<Bytes> = built
        .iter()
        .map(|batch| {
            // Fresh ids: the raw run stores these in another file, but be plain about it.
            let fresh: Vec<Event> = batch
                .iter()
                .map(|e| Event::new(e.event_type).with_data(e.data.clone()))
                .collect();
            Bytes::from(serde_json::to_string(&fresh).unwrap())
        })
        .collect();
    let clients: Vec<_> = (0..connections).map(|_| http_client()).collect();
    let (mut raw_time, mut web_time) = (Duration::ZERO, Duration::ZERO);
    let mut stored = 0;
    for (turn, (appends, posts)) in built
        .chunks(connections)
        .zip(bodies.chunks(connections))
        .enumerate()
    {
        let raw_turn = async {
            let began = Instant::now();
            for batch in appends {
                raw.append(batch).await.unwrap();
            }
            began.elapsed()
        };
        let web_turn = async {
            let began = Instant::now();
            let replies = futures_util::future::join_all(
                posts
                    .iter()
                    .zip(&clients)
                    .map(|(body, client)| post(client, &url, body.clone())),
            )
            .await;
            let elapsed = began.elapsed();
            let stored: usize = replies
                .iter()
                .map(|reply| {
                    reply["sequences"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|s| s.is_u64())
                        .count()
                })
                .sum();
            (elapsed, stored)
        };
        // Each goes first every other turn.
        if turn % 2 == 0 {
            raw_time += raw_turn.await;
            let (elapsed, count) = web_turn.await;
            web_time += elapsed;
            stored += count;
        } else {
            let (elapsed, count) = web_turn.await;
            web_time += elapsed;
            stored += count;
            raw_time += raw_turn.await;
        }
    }
    assert_eq!(stored, batches * batch);
    let raw_rate = stored as f64 / raw_time.as_secs_f64();
    let web_rate = stored as f64 / web_time.as_secs_f64();
    println!(
        "   batches of {batch:>4}, {connections} connection{}  {web_rate:>9.0} /s {raw_rate:>9.0} /s {:>7.2}x",
        if connections == 1 { " " } else { "s" },
        web_rate / raw_rate
    );
}

/// Case 3's floor: the parts every durable `POST` of a batch is made of,
/// each timed alone on the same batches, in turn. A `POST` receives and
/// decodes its whole body before any of it is published (a body is all or
/// nothing), stores it, and answers. So `append` / (`append` + decode +
/// round trip) bounds its ratio from above, even with admission,
/// publishing and the hand-off to the writer free. Printed with the decode
/// on one thread; with the body's two halves decoded on two threads at once
/// (split before the clock starts, which a server could not do for free);
/// with the decode free (the round trip alone); and with the store part
/// timed as the recorder does it in process (track, reserve, publish,
/// commit) instead of as `append`.
async fn durable_floor(batch: usize, batches: usize) {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteStore::open(dir.path().join("raw.db")).unwrap();
    let events: Vec<Vec<Arc<Event>>> = (0..batches)
        .map(|b| {
            (0..batch)
                .map(|i| {
                    Arc::new(
                        Event::new(EventType::AgentToolExecuted)
                            .with_data(json!({"tool": "edit_file", "n": b * batch + i})),
                    )
                })
                .collect()
        })
        .collect();
    let encode = |events: &[Arc<Event>]| {
        let plain: Vec<&Event> = events.iter().map(|e| &**e).collect();
        serde_json::to_string(&plain).unwrap()
    };
    let bodies: Vec<String> = events.iter().map(|b| encode(b)).collect();
    let halves: Vec<(String, String)> = events
        .iter()
        .map(|b| (encode(&b[..batch / 2]), encode(&b[batch / 2..])))
        .collect();
    // The reply a real server sends for such a batch: every id, every
    // sequence.
    let reply = serde_json::to_string(&agentbus_web::PublishReply {
        ids: events[0].iter().map(|e| e.id).collect(),
        sequences: Some((0..batch as u64).map(|s| Some(1_000_000 + s)).collect()),
        duplicate_of: None,
    })
    .unwrap();
    // The handler's store part without HTTP or decoding: track the ids,
    // reserve room, publish, wait for the commit (as `POST` does).
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("bus.db")).unwrap());
    let fresh: Vec<Vec<Event>> = events
        .iter()
        .map(|b| {
            b.iter()
                .map(|e| Event::new(e.event_type).with_data(e.data.clone()))
                .collect()
        })
        .collect();
    let addr = serve_bare(Bytes::from(reply)).await;
    let url = format!("http://{addr}/");
    let client = http_client();
    let [mut append, mut decode, mut decode_two, mut trip, mut in_process] = [Duration::ZERO; 5];
    for ((((batch_events, body), (first, second)), published), turn) in
        events.iter().zip(&bodies).zip(&halves).zip(fresh).zip(0..)
    {
        let began = Instant::now();
        raw.append(batch_events).await.unwrap();
        append += began.elapsed();

        let began = Instant::now();
        let ids: Vec<_> = published.iter().map(|e| e.id).collect();
        let tracked = recorder.track(&ids);
        let room = recorder.reserve(batch).await.unwrap();
        for event in published {
            bus.publish(event).await;
        }
        drop(room);
        let sequences = tracked.commit().await.unwrap();
        in_process += began.elapsed();
        assert!(sequences.iter().all(Option::is_some));

        let began = Instant::now();
        let decoded: Vec<Event> =
            serde_json::from_str(std::str::from_utf8(body.as_bytes()).unwrap()).unwrap();
        decode += began.elapsed();
        assert_eq!(decoded.len(), batch);
        drop(decoded);

        let began = Instant::now();
        let (a, b) = std::thread::scope(|scope| {
            let other = scope.spawn(|| serde_json::from_str::<Vec<Event>>(second).unwrap());
            let here: Vec<Event> = serde_json::from_str(first).unwrap();
            (here, other.join().unwrap())
        });
        decode_two += began.elapsed();
        assert_eq!(a.len() + b.len(), batch);
        drop((a, b));

        let began = Instant::now();
        let answered = post(&client, &url, Bytes::from(body.clone())).await;
        trip += began.elapsed();
        assert_eq!(
            answered["ids"].as_array().map(Vec::len),
            Some(batch),
            "turn {turn}"
        );
    }
    let per = |total: Duration| total.as_secs_f64() * 1e3 / batches as f64;
    let (a, d, d2, h, r) = (
        per(append),
        per(decode),
        per(decode_two),
        per(trip),
        per(in_process),
    );
    println!(
        "   parts of a POST of {batch}, ms per batch: append {a:.3}; publish + commit in process {r:.3}; decode {d:.3} (two threads {d2:.3}); bare round trip {h:.3}"
    );
    println!(
        "   ratio bound, storing as append does: {:.2}x (decode on one thread), {:.2}x (two), {:.2}x (decode free); storing as the recorder does: {:.2}x / {:.2}x",
        a / (a + d + h),
        a / (a + d2 + h),
        a / (a + h),
        a / (r + d + h),
        a / (r + d2 + h),
    );
}

/// A route on the server runtime that reads the whole body and answers
/// `reply`: the HTTP part of a `POST`, with nothing decoded or stored.
async fn serve_bare(reply: Bytes) -> String {
    let (bound, at) = tokio::sync::oneshot::channel();
    server_runtime().spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        bound.send(listener.local_addr().unwrap()).unwrap();
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::post(move |body: Bytes| {
                    let reply = reply.clone();
                    async move {
                        assert!(!body.is_empty());
                        ([("content-type", "application/json")], reply)
                    }
                }),
            )
            .layer(axum::extract::DefaultBodyLimit::max(16 << 20));
        axum::serve(listener, app).await.unwrap()
    });
    format!("{}", at.await.unwrap())
}
