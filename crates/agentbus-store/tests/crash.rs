//! Crash test: a child process publishes through a recorder, acknowledging
//! each `flush()` that returned on stdout, and is SIGKILLed at varying
//! points (after a random number of acknowledgements plus a random delay,
//! so mid-batch and mid-commit). Reopened, the store must hold every
//! acknowledged event, sequences contiguous, no duplicate or torn row, each
//! run's events a prefix in publish order. Both backends, 22 kills in all.
//!
//! The binary is its own child: with `AGENTBUS_CRASH_CHILD` set it runs the
//! publisher instead of the test.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{EventStore, PostgresStore, Recorder, SqliteStore};
use serde_json::json;

const SQLITE_KILLS: u32 = 12;
const POSTGRES_KILLS: u32 = 10;
/// Events published between two flushes in the child.
const PER_FLUSH: u64 = 40;

fn main() {
    if let Ok(target) = std::env::var("AGENTBUS_CRASH_CHILD") {
        child(&target);
        return;
    }
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let started = Instant::now();
    let seed = std::env::var("AGENTBUS_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (set AGENTBUS_CRASH_SEED to repeat)");
    let mut rng = XorShift(seed);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let sqlite = format!("sqlite:{}", path.display());
    let kills = crash_repeatedly(&sqlite, SQLITE_KILLS, &mut rng);
    println!("sqlite: {kills} kills, store verified after each");

    if let Some(cluster) =
        agentbus_testkit::Postgres::start_or_skip("agentbus-store crash test (PostgreSQL)")
    {
        let target = format!("postgres:{}", cluster.create_database());
        let kills = crash_repeatedly(&target, POSTGRES_KILLS, &mut rng);
        println!("postgres: {kills} kills, store verified after each");
    }
    println!("crash test passed in {:?}", started.elapsed());
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn open(target: &str) -> Arc<dyn EventStore> {
    if let Some(path) = target.strip_prefix("sqlite:") {
        Arc::new(SqliteStore::open(path).unwrap())
    } else if let Some(url) = target.strip_prefix("postgres:") {
        Arc::new(PostgresStore::connect(url).await.unwrap())
    } else {
        panic!("unknown target {target}")
    }
}

/// The child: publish forever, print `i last_sequence` after each flush.
fn child(target: &str) {
    let run: u64 = std::env::var("AGENTBUS_CRASH_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let max_batch: usize = std::env::var("AGENTBUS_CRASH_BATCH")
        .unwrap()
        .parse()
        .unwrap();
    runtime().block_on(async {
        let store = open(target).await;
        let bus = EventBus::new();
        let recorder = Recorder::builder().max_batch(max_batch).attach(&bus, store);
        let mut stdout = std::io::stdout().lock();
        for i in 0.. {
            bus.publish(
                Event::new(EventType::AgentToolExecuted)
                    .with_data(json!({"run": run, "i": i, "pad": "x".repeat((i % 300) as usize)})),
            )
            .await;
            if i % PER_FLUSH == PER_FLUSH - 1 {
                let last = recorder.flush().await.unwrap();
                writeln!(stdout, "{i} {last}").unwrap();
                stdout.flush().unwrap();
            }
        }
    });
}

fn crash_repeatedly(target: &str, kills: u32, rng: &mut XorShift) -> u32 {
    let mut acknowledged: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    for run in 0..kills as u64 {
        let acks_before_kill = 1 + rng.below(5);
        let delay = Duration::from_micros(rng.below(8_000));
        let max_batch = [1, 7, 64, 1000][rng.below(4) as usize];
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("AGENTBUS_CRASH_CHILD", target)
            .env("AGENTBUS_CRASH_RUN", run.to_string())
            .env("AGENTBUS_CRASH_BATCH", max_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last_acked = None;
        for _ in 0..acks_before_kill {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("child {run} exited early: {:?}", child.wait()))
                .unwrap();
            last_acked = Some(parse_ack(&line));
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
                               // Acknowledgements printed before the kill count too.
        for line in lines {
            let Ok(line) = line else { break };
            last_acked = Some(parse_ack(&line));
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed");
        acknowledged.insert(run, last_acked);
        verify(target, &acknowledged);
    }
    kills
}

fn parse_ack(line: &str) -> u64 {
    line.split(' ').next().unwrap().parse().unwrap()
}

/// Every acknowledged event is stored; sequences are contiguous from 1;
/// ids are unique; each run's events are a prefix in publish order.
fn verify(target: &str, acknowledged: &BTreeMap<u64, Option<u64>>) {
    runtime().block_on(async {
        let store = open(target).await;
        let all = agentbus_testkit::store::read_all(&store).await;
        let last = store.last_sequence().await.unwrap();
        agentbus_testkit::store::assert_contiguous(&all, 1, last);
        let ids: HashSet<_> = all.iter().map(|s| s.event.id).collect();
        assert_eq!(ids.len(), all.len(), "no duplicate rows");
        let mut per_run: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for stored in &all {
            let data = &stored.event.data;
            let (run, i) = (data["run"].as_u64().unwrap(), data["i"].as_u64().unwrap());
            assert_eq!(
                data["pad"].as_str().unwrap().len() as u64,
                i % 300,
                "row {} intact",
                stored.sequence
            );
            per_run.entry(run).or_default().push(i);
        }
        for (run, acked) in acknowledged {
            let stored = per_run.get(run).map_or(&[][..], Vec::as_slice);
            let prefix: Vec<u64> = (0..stored.len() as u64).collect();
            assert_eq!(stored, &prefix[..], "run {run}: a prefix, in publish order");
            if let Some(acked) = acked {
                assert!(
                    stored.len() as u64 > *acked,
                    "run {run}: event {acked} was acknowledged durable but only {} are stored",
                    stored.len()
                );
            }
        }
    });
}
