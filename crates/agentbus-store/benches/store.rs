//! Publish-to-durable throughput, publish cost and catch-up speed, each next
//! to its raw baseline measured in the same run; the cost of keeping dead
//! letters in the store. Prints a Markdown table.
//!
//! `cargo bench -p agentbus-store --bench store` (PostgreSQL rows need the
//! server binaries; see `.ci/install/postgres.sh`); `-- dead-letters` runs
//! only the dead-letter rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
use agentbus_store::{EventStore, PostgresStore, ReadQuery, Recorder, SqliteStore};
use agentbus_testkit::store::Throttled;
use agentbus_testkit::Postgres;
use futures_util::StreamExt;
use serde_json::json;

const EVENTS: usize = 200_000;

fn events(count: usize) -> Vec<Arc<Event>> {
    (0..count)
        .map(|n| {
            Arc::new(
                Event::new(EventType::TaskCompleted)
                    .with_data(json!({"task_id": n, "result": "success"}))
                    .with_source_agent(1)
                    .with_circle(5),
            )
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Row {
    what: String,
    rate: f64,
    unit: &'static str,
    baseline: Option<(String, f64)>,
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Publishes `events` through a recorder into `store` from one thread and
/// waits for the flush: events per second, publish to durable.
fn recorder_throughput<S: EventStore>(
    rt: &tokio::runtime::Runtime,
    store: S,
    events: &[Arc<Event>],
) -> f64 {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store);
    let mut publisher = bus.publisher();
    let started = Instant::now();
    for event in events {
        publisher.publish_blocking(Arc::clone(event));
    }
    let last = rt.block_on(recorder.flush()).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(last as usize, events.len());
    rt.block_on(recorder.close()).unwrap();
    rate(events.len(), elapsed)
}

const SQLITE_INSERT: &str =
    "INSERT INTO agentbus_events (sequence, id, event_type, source_agent_id, \
    circle_id, project_id, correlation_id, causation_id, timestamp_ns, data) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

fn nanos(event: &Event) -> i64 {
    event
        .timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Raw rusqlite into the same schema and settings (WAL, synchronous=NORMAL):
/// `per_tx` rows per transaction.
fn sqlite_raw(path: &std::path::Path, events: &[Arc<Event>], per_tx: usize) -> f64 {
    drop(SqliteStore::open(path).unwrap()); // the schema
    let mut connection = rusqlite::Connection::open(path).unwrap();
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .unwrap();
    let started = Instant::now();
    let mut sequence = 0i64;
    for chunk in events.chunks(per_tx) {
        let tx = connection.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached(SQLITE_INSERT).unwrap();
            for event in chunk {
                sequence += 1;
                insert
                    .execute(rusqlite::params![
                        sequence,
                        &event.id.as_uuid().as_bytes()[..],
                        event.event_type.as_str(),
                        event.source_agent_id,
                        event.circle_id,
                        event.project_id,
                        Option::<Vec<u8>>::None,
                        Option::<Vec<u8>>::None,
                        nanos(event),
                        event.data.to_string(),
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rate(events.len(), started.elapsed())
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Raw binary COPY of 1000-row batches, or one INSERT per event, into the
/// same schema.
async fn pg_raw(url: &str, events: &[Arc<Event>], copy: bool) -> f64 {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    drop(PostgresStore::connect(url).await.unwrap());
    let mut client = pg_client(url).await;
    let started = Instant::now();
    let mut sequence = 0i64;
    if copy {
        let types = [
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::UUID,
            Type::UUID,
            Type::INT8,
            Type::JSON,
        ];
        for chunk in events.chunks(1000) {
            let tx = client.transaction().await.unwrap();
            let sink = tx
                .copy_in("COPY agentbus_events (sequence, id, event_type, source_agent_id, circle_id, \
                          project_id, correlation_id, causation_id, timestamp_ns, data) FROM STDIN BINARY")
                .await
                .unwrap();
            let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
            for event in chunk {
                sequence += 1;
                let none: Option<uuid::Uuid> = None;
                let row: [&(dyn ToSql + Sync); 10] = [
                    &sequence,
                    &event.id.as_uuid(),
                    &event.event_type.as_str(),
                    &event.source_agent_id,
                    &event.circle_id,
                    &event.project_id,
                    &none,
                    &none,
                    &nanos(event),
                    &event.data,
                ];
                writer.as_mut().write(&row).await.unwrap();
            }
            writer.finish().await.unwrap();
            tx.commit().await.unwrap();
        }
    } else {
        let insert = client
            .prepare("INSERT INTO agentbus_events (sequence, id, event_type, source_agent_id, circle_id, \
                      project_id, timestamp_ns, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .await
            .unwrap();
        for event in events {
            sequence += 1;
            client
                .execute(
                    &insert,
                    &[
                        &sequence,
                        &event.id.as_uuid(),
                        &event.event_type.as_str(),
                        &event.source_agent_id,
                        &event.circle_id,
                        &event.project_id,
                        &nanos(event),
                        &event.data,
                    ],
                )
                .await
                .unwrap();
        }
    }
    rate(events.len(), started.elapsed())
}

/// Median nanoseconds per publish (batches of 1000) on two buses with one
/// no-op handler each, one also with a recorder, sampled alternately so
/// drift affects both alike. The recorder's queue is large enough that
/// publishers never wait, and is drained between samples, untimed.
fn publish_cost(rt: &tokio::runtime::Runtime, events: &[Arc<Event>]) -> (f64, f64) {
    let bus = |recorded: bool| {
        let bus = EventBus::builder().history_capacity(1).build();
        bus.subscribe_all(|_e: &Event| {});
        let recorder = recorded.then(|| {
            Recorder::builder()
                .capacity(1 << 17)
                .attach(&bus, SqliteStore::open_in_memory().unwrap())
        });
        (bus, recorder)
    };
    let (plain, _) = bus(false);
    let (recorded, recorder) = bus(true);
    let recorder = recorder.unwrap();
    let mut publishers = [plain.publisher(), recorded.publisher()];
    let mut samples = [Vec::new(), Vec::new()];
    // Each bus publishes its own events, so both find them equally cold in
    // cache (the same events would be warm for whichever bus goes second).
    let halves = events.split_at(events.len() / 2);
    let halves = [halves.0, halves.1];
    for round in 0..400 {
        for (which, publisher) in publishers.iter_mut().enumerate() {
            let start = (round % 100) * 1000;
            let chunk = &halves[which][start..start + 1000];
            let started = Instant::now();
            for event in chunk {
                publisher.publish_blocking(Arc::clone(event));
            }
            samples[which].push(started.elapsed().as_nanos() as f64 / 1000.0);
        }
        if round % 50 == 49 {
            // Already-stored ids are skipped, so repeats cost the writer little.
            rt.block_on(recorder.flush()).unwrap();
        }
    }
    let [mut without, mut with] = samples;
    without.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    (with[with.len() / 2], without[without.len() / 2])
}

/// Bursts of `size` events with an idle `gap` after each (the shape of
/// agent traffic: a flurry, then quiet; a zero gap is #18's own case,
/// bursts flushed between them and nothing more), on two buses with one
/// no-op handler each, one also with a SQLite recorder (a file store, WAL).
/// Each burst is timed alone; the recorder is flushed after it, untimed, so
/// the writer is idle when the next burst starts. The two buses take turns,
/// each going first every other round. Returns the median nanoseconds per
/// publish (with, without).
fn bursty_cost(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    size: usize,
    rounds: usize,
    gap: Duration,
) -> (f64, f64) {
    let bus = || {
        let bus = EventBus::builder().history_capacity(1).build();
        bus.subscribe_all(|_e: &Event| {});
        bus
    };
    let plain = bus();
    let recorded = bus();
    let recorder = Recorder::attach(
        &recorded,
        SqliteStore::open(dir.join(format!("burst{size}-{}.db", gap.as_micros()))).unwrap(),
    );
    // Fresh events for every burst, built before and dropped after the run:
    // the writer does the work of storing each, no publish pays for building
    // one, and none for freeing one (whichever thread drops the last
    // reference would: the history ring's on the publisher without a
    // recorder, the writer's with one).
    let feeds = [events(size * rounds), events(size * rounds)];
    let mut publishers = [plain.publisher(), recorded.publisher()];
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for turn in 0..2 {
            let which = (round + turn) % 2;
            let burst = &feeds[which][round * size..(round + 1) * size];
            let started = Instant::now();
            for event in burst {
                publishers[which].publish_blocking(Arc::clone(event));
            }
            samples[which].push(started.elapsed().as_nanos() as f64 / size as f64);
            if which == 1 {
                rt.block_on(recorder.flush()).unwrap();
            }
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
    }
    let [without, with] = samples.map(|mut samples| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    });
    rt.block_on(recorder.close()).unwrap();
    plain.clear_history();
    recorded.clear_history();
    drop(feeds);
    (with, without)
}

/// CPU time of every live thread of this process, from the scheduler's
/// accounting (`/proc/self/task/*/schedstat`, nanoseconds).
fn cpu_time() -> Duration {
    let nanos: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Bursts of `size` with a `gap` after each for about a second, not flushed, on
/// a bus with a SQLite recorder and on one without: the CPU the process
/// spends beyond the plain bus, as a share of one core over the run's wall
/// time (the writer's commits and its watching the queue).
fn burst_cpu(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    size: usize,
    gap: Duration,
) -> f64 {
    let bursts =
        (Duration::from_secs(1).as_nanos() / gap.as_nanos().max(1)).clamp(1, 1000) as usize;
    let feed = events(size * bursts);
    let run = |recorded: bool| {
        let bus = EventBus::builder().history_capacity(1).build();
        bus.subscribe_all(|_e: &Event| {});
        let recorder = recorded.then(|| {
            Recorder::attach(
                &bus,
                SqliteStore::open(dir.join(format!("cpu-{size}-{}.db", gap.as_micros()))).unwrap(),
            )
        });
        let mut publisher = bus.publisher();
        let (cpu, started) = (cpu_time(), Instant::now());
        for burst in feed.chunks(size) {
            for event in burst {
                publisher.publish_blocking(Arc::clone(event));
            }
            std::thread::sleep(gap);
        }
        if let Some(recorder) = &recorder {
            rt.block_on(recorder.flush()).unwrap();
        }
        let used = cpu_time() - cpu;
        let wall = started.elapsed();
        if let Some(recorder) = recorder {
            rt.block_on(recorder.close()).unwrap();
        }
        bus.clear_history();
        (used, wall)
    };
    let (plain, _) = run(false);
    let (recorded, wall) = run(true);
    recorded.saturating_sub(plain).as_secs_f64() / wall.as_secs_f64()
}

/// A lone event every millisecond: microseconds from its publish until a
/// catch-up stream has it, committed (p50, p99). The writer commits it
/// without being flushed.
fn lone_event_latency(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (f64, f64) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.join("lone.db")).unwrap());
    let mut latencies: Vec<f64> = rt.block_on(async {
        let mut stream = recorder.subscribe_from(0, ReadQuery::new());
        let mut latencies = Vec::new();
        for event in events(1000) {
            let started = Instant::now();
            bus.publish(event).await;
            stream.next().await.unwrap().unwrap();
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies
    });
    rt.block_on(recorder.close()).unwrap();
    latencies.sort_by(f64::total_cmp);
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
    )
}

/// Catch-up from sequence 0 through `subscribe_from`, and raw page reads
/// on the calling thread, taking turns for `rounds` rounds: the median
/// events per second of each.
fn catch_up(
    rt: &tokio::runtime::Runtime,
    store: SqliteStore,
    count: usize,
    rounds: usize,
) -> (f64, f64) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, store.clone());
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        samples[0].push(rt.block_on(async {
            let started = Instant::now();
            let seen = recorder
                .subscribe_from(0, ReadQuery::new())
                .take(count)
                .fold(0usize, |n, item| {
                    item.unwrap();
                    async move { n + 1 }
                })
                .await;
            assert_eq!(seen, count);
            rate(count, started.elapsed())
        }));
        let started = Instant::now();
        let mut after = 0;
        let mut read = 0;
        loop {
            let page = store
                .read_blocking(&ReadQuery::new().after(after).limit(1000))
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.sequence;
            read += page.len();
        }
        assert_eq!(read, count);
        samples[1].push(rate(count, started.elapsed()));
    }
    let [stream, paged] = samples.map(|mut samples| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    });
    (stream, paged)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Publishers four times faster than the writer: peak queue and RSS growth.
fn bounded_memory(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (usize, usize, u64, f64) {
    let bus = EventBus::builder().history_capacity(1).build();
    let capacity = 10_000;
    let recorder = Recorder::builder()
        .capacity(capacity)
        .max_batch(100)
        .attach(
            &bus,
            // Appends take at least 2 ms per batch of at most 100.
            Throttled::new(
                SqliteStore::open(dir.join("slow.db")).unwrap(),
                Duration::from_millis(2),
            ),
        );
    let rss_before = rss_kib();
    let published = 60_000;
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for n in 0..published {
                bus.publish_blocking(
                    Event::new(EventType::TaskCreated)
                        .with_data(json!({"n": n, "blob": "y".repeat(200)})),
                );
            }
        })
    };
    let mut peak = 0;
    let mut peak_rss = rss_before;
    while !publisher.is_finished() {
        peak = peak.max(recorder.stats().queued);
        peak_rss = peak_rss.max(rss_kib());
        std::thread::sleep(Duration::from_millis(5));
    }
    publisher.join().unwrap();
    let last = rt.block_on(recorder.flush()).unwrap();
    assert_eq!(last as usize, published);
    let waits = recorder.stats().waits;
    (
        peak,
        capacity,
        peak_rss.saturating_sub(rss_before),
        waits as f64,
    )
}

/// Median nanoseconds per publish (rounds of 1000) on two recorded buses
/// (SQLite files) whose one plain handler always fails: on one the failures
/// are dead letters, kept in the store; on the other the subscription opts
/// out (`dead_letters(false)`). Sampled alternately; both recorders are
/// flushed between rounds, untimed. Returns (kept, not kept).
fn dead_letter_cost(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (f64, f64) {
    let bus = |keep: bool| {
        let bus = EventBus::builder().history_capacity(1).build();
        bus.subscription(EventType::TaskFailed)
            .name("exporter")
            .dead_letters(keep)
            .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
        let store = SqliteStore::open(dir.join(format!("letters-{keep}.db"))).unwrap();
        let recorder = Recorder::builder().capacity(1 << 17).attach(&bus, store);
        (bus, recorder)
    };
    let buses = [bus(true), bus(false)];
    let mut samples = [Vec::new(), Vec::new()];
    for _round in 0..100 {
        for (which, (bus, recorder)) in buses.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..1000 {
                bus.publish_blocking(Event::new(EventType::TaskFailed));
            }
            samples[which].push(started.elapsed().as_nanos() as f64 / 1000.0);
            rt.block_on(recorder.flush()).unwrap();
        }
    }
    let [mut kept, mut dropped] = samples;
    kept.sort_by(f64::total_cmp);
    dropped.sort_by(f64::total_cmp);
    (kept[kept.len() / 2], dropped[dropped.len() / 2])
}

/// 100,000 failures on a recorded bus (SQLite file) keeping at most 10,000
/// dead letters: the letters in memory and in the store after the flush,
/// and how long publishing and the flush took.
fn dead_letter_bound(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (usize, usize, Duration) {
    let bus = EventBus::builder().history_capacity(1).build();
    bus.subscription(EventType::TaskFailed)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    let store = SqliteStore::open(dir.join("bound.db")).unwrap();
    let recorder = Recorder::attach(&bus, store.clone());
    let started = Instant::now();
    for _ in 0..100_000 {
        bus.publish_blocking(Event::new(EventType::TaskFailed));
    }
    rt.block_on(recorder.flush()).unwrap();
    let elapsed = started.elapsed();
    let stored = store
        .read_dead_letters_blocking(&DeadLetterQuery::new().limit(usize::MAX))
        .unwrap()
        .len();
    (bus.dead_letters().len(), stored, elapsed)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rt = runtime();
    let events = events(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();

    // `-- bursts` runs only the bursty rows, `-- catch-up` only catch-up,
    // `-- throughput` the rest.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wants = |section: &str| only.is_empty() || only.iter().any(|arg| arg == section);
    let mut lone = None;
    let mut cpu = Vec::new();
    let mut memory = None;
    let mut bound = None;
    if wants("dead-letters") {
        let (kept, not_kept) = dead_letter_cost(&rt, dir.path());
        rows.push(Row {
            what:
                "recorded publish, failing handler, dead letters kept in SQLite (median ns/publish)"
                    .into(),
            rate: kept,
            unit: "ns",
            baseline: Some(("same, dead_letters(false)".into(), not_kept)),
        });
        bound = Some(dead_letter_bound(&rt, dir.path()));
    }
    if wants("bursts") {
        let gaps = [
            (Duration::ZERO, "flushed, no gap"),
            (Duration::from_micros(100), "100 us gaps"),
            (Duration::from_millis(1), "1 ms gaps"),
        ];
        let cases = [
            (256, 300, gaps[0]),
            (256, 300, gaps[1]),
            (1, 2000, gaps[2]),
            (16, 1000, gaps[2]),
            (256, 300, gaps[2]),
            (4096, 30, gaps[2]),
        ];
        for (size, rounds, (gap, gap_name)) in cases {
            let (with, without) = bursty_cost(&rt, dir.path(), size, rounds, gap);
            rows.push(Row {
                what: format!(
                    "bursts of {size}, {gap_name}: publish with a recorder (median ns/publish)"
                ),
                rate: with,
                unit: "ns",
                baseline: Some(("same bursts, no recorder".into(), without)),
            });
        }
        lone = Some(lone_event_latency(&rt, dir.path()));
        for (size, gap) in [
            (256, Duration::from_micros(100)),
            (256, Duration::from_millis(1)),
            (1, Duration::from_millis(1)),
        ] {
            cpu.push((size, gap, burst_cpu(&rt, dir.path(), size, gap)));
        }
    }
    if wants("throughput") || wants("catch-up") {
        let store = SqliteStore::open(dir.path().join("catch-up.db")).unwrap();
        for chunk in events.chunks(1000) {
            store.append_blocking(chunk).unwrap();
        }
        let (stream, raw_read) = catch_up(&rt, store, EVENTS, 5);
        rows.push(Row {
            what: "SQLite catch-up: subscribe_from(0) stream (median of 5)".into(),
            rate: stream,
            unit: "events/s",
            baseline: Some(("read_blocking, pages of 1000, in turn".into(), raw_read)),
        });
    }
    if wants("throughput") {
        let raw_batched = sqlite_raw(&dir.path().join("raw.db"), &events, 1000);
        let raw_per_event = sqlite_raw(&dir.path().join("raw1.db"), &events[..20_000], 1);
        let recorded = recorder_throughput(
            &rt,
            SqliteStore::open(dir.path().join("rec.db")).unwrap(),
            &events,
        );
        rows.push(Row {
            what: "SQLite: publish -> durable through the recorder".into(),
            rate: recorded,
            unit: "events/s",
            baseline: Some((
                "raw rusqlite, 1000 rows per transaction".into(),
                raw_batched,
            )),
        });
        rows.push(Row {
            what: "SQLite: publish -> durable through the recorder".into(),
            rate: recorded,
            unit: "events/s",
            baseline: Some((
                "raw rusqlite, one transaction per event".into(),
                raw_per_event,
            )),
        });

        if let Some(cluster) = Postgres::start_durable_or_skip("store bench (PostgreSQL rows)") {
            let copy = rt.block_on(pg_raw(&cluster.create_database(), &events, true));
            let per_event =
                rt.block_on(pg_raw(&cluster.create_database(), &events[..3_000], false));
            let store = rt
                .block_on(PostgresStore::connect(&cluster.create_database()))
                .unwrap();
            let recorded = recorder_throughput(&rt, store, &events);
            rows.push(Row {
                what: "PostgreSQL: publish -> durable through the recorder".into(),
                rate: recorded,
                unit: "events/s",
                baseline: Some(("raw binary COPY, 1000 rows per transaction".into(), copy)),
            });
            rows.push(Row {
                what: "PostgreSQL: publish -> durable through the recorder".into(),
                rate: recorded,
                unit: "events/s",
                baseline: Some(("raw INSERT per event".into(), per_event)),
            });
        }

        let (with, without) = publish_cost(&rt, &events);
        rows.push(Row {
            what: "publish with a recorder attached (median ns/publish)".into(),
            rate: with,
            unit: "ns",
            baseline: Some(("same publish, no recorder".into(), without)),
        });

        memory = Some(bounded_memory(&rt, dir.path()));
    }

    println!("| measurement | result | baseline (same run) | ratio |");
    println!("|---|---:|---|---:|");
    for row in &rows {
        let (name, base) = row.baseline.clone().unwrap();
        let ratio = if row.unit == "ns" {
            format!("{:+.1} ns", row.rate - base)
        } else {
            format!("{:.2}x", row.rate / base)
        };
        let fmt = |v: f64| {
            if row.unit == "ns" {
                format!("{v:.1} ns")
            } else if v >= 10_000.0 {
                format!("{:.0}k {}", v / 1000.0, row.unit)
            } else {
                format!("{v:.0} {}", row.unit)
            }
        };
        println!(
            "| {} | {} | {}: {} | {} |",
            row.what,
            fmt(row.rate),
            name,
            fmt(base),
            ratio
        );
    }
    if let Some((p50, p99)) = lone {
        println!(
            "| lone event every 1 ms: publish -> committed and streamed | p50 {p50:.0} us, p99 {p99:.0} us | | |"
        );
    }
    for (size, gap, share) in cpu {
        println!(
            "| bursts of {size} every {gap:?}, not flushed: the recorder's CPU (commits and watching the queue) | {:.0}% of a core | | |",
            share * 100.0
        );
    }
    if let Some((in_memory, stored, elapsed)) = bound {
        println!(
            "| 100,000 failures, capacity 10,000, SQLite: publish + flush | {in_memory} letters in memory, {stored} stored, {elapsed:.2?} | | |"
        );
    }
    if let Some((peak, capacity, rss_growth, waits)) = memory {
        println!(
            "| slow writer (2 ms per 100-event batch), 60k publishes | peak queue {peak} of {capacity}, RSS +{:.1} MiB, {waits:.0} publisher waits | | |",
            rss_growth as f64 / 1024.0
        );
    }
}
