//! Crash test: a child process publishes through a recorder, acknowledging
//! each `flush()` that returned on stdout, and is SIGKILLed at varying
//! points (after a random number of acknowledgements plus a random delay,
//! so mid-batch and mid-commit). Reopened, the store must hold every
//! acknowledged event, sequences contiguous, no duplicate or torn row, each
//! run's events a prefix in publish order. Both backends, 22 kills in all.
//!
//! Dead letters the same way (SQLite, 6 kills): a child whose handler
//! fails dead-letters events, discards one letter now and then, and after
//! each `flush()` reports the letters and discards that are durable. The
//! store must hold every reported letter, whole (unless it was being
//! discarded at the kill), and none reported discarded; a new bus with a
//! recorder lists exactly what is stored.
//!
//! The binary is its own child: with `AGENTBUS_CRASH_CHILD` set it runs the
//! publisher instead of the test.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agentbus::{DeadLetterId, DeadLetterQuery, Event, EventBus, EventType};
use agentbus_store::{DeadLetterStore, EventStore, PostgresStore, Recorder, SqliteStore};
use serde_json::json;

const SQLITE_KILLS: u32 = 12;
const LETTER_KILLS: u32 = 6;
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

    let letters = dir.path().join("letters.db");
    let kills = crash_letters_repeatedly(&letters, LETTER_KILLS, &mut rng);
    println!("sqlite dead letters: {kills} kills, store verified after each");

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
    if let Some(path) = target.strip_prefix("letters:") {
        letters_child(path);
        return;
    }
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
        let lines = lines_of(&mut child);
        let mut last_acked = None;
        for _ in 0..acks_before_kill {
            last_acked = Some(parse_ack(&next_line(&lines, &mut child, run)));
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
                               // Acknowledgements printed before the kill count too.
        for line in lines {
            last_acked = Some(parse_ack(&line));
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed");
        acknowledged.insert(run, last_acked);
        verify(target, &acknowledged);
    }
    kills
}

/// How long a child may take to report its next flush: a few milliseconds
/// normally, seconds on a loaded machine; past it the flush hangs.
const REPORT_DEADLINE: Duration = Duration::from_secs(30);

/// The child's stdout, line by line, from a thread of its own, so that each
/// wait for a line can have a deadline; the channel ends with the output.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The child's next report, within [`REPORT_DEADLINE`]; past it the child
/// is killed and the test fails, rather than waiting for ever on a flush
/// that never returns.
fn next_line(lines: &Receiver<String>, child: &mut Child, run: u64) -> String {
    match lines.recv_timeout(REPORT_DEADLINE) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {run} reported no flush within {REPORT_DEADLINE:?}: a flush hangs")
        }
        Err(RecvTimeoutError::Disconnected) => {
            panic!("child {run} exited early: {:?}", child.wait())
        }
    }
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

/// The dead-letter child: every event fails its handler; every 10 events,
/// on odd rounds, the oldest letter is discarded (announced by `discarding
/// ID`); after each flush prints `kept ID:RUN:I ... discarded ID ...` for
/// what that flush made durable.
fn letters_child(path: &str) {
    let run: u64 = std::env::var("AGENTBUS_CRASH_RUN")
        .unwrap()
        .parse()
        .unwrap();
    runtime().block_on(async {
        let bus = EventBus::new();
        bus.subscription(EventType::TaskFailed)
            .name("exporter")
            .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
        let recorder = Recorder::attach(&bus, SqliteStore::open(path).unwrap());
        let dead = bus.dead_letters();
        // Restored letters were reported by an earlier run.
        let mut reported = dead
            .list(&DeadLetterQuery::new().limit(usize::MAX))
            .last()
            .map_or(DeadLetterId::new(0), |letter| letter.id());
        let mut stdout = std::io::stdout().lock();
        for round in 0u64.. {
            for n in 0..10 {
                let i = round * 10 + n;
                bus.publish(
                    Event::new(EventType::TaskFailed).with_data(json!({"run": run, "i": i})),
                )
                .await;
            }
            let mut discarded = Vec::new();
            if round % 2 == 1 {
                let oldest = dead.list(&DeadLetterQuery::new().limit(1));
                let id = oldest[0].id();
                // Said first: a kill before the flush may or may not keep
                // the discard.
                writeln!(stdout, "discarding {id}").unwrap();
                stdout.flush().unwrap();
                assert!(dead.discard(id));
                discarded.push(id);
            }
            let kept = dead.list(&DeadLetterQuery::new().after(reported).limit(usize::MAX));
            recorder.flush().await.unwrap();
            let mut line = String::from("kept");
            for letter in &kept {
                let data = &letter.event().data;
                line += &format!(" {}:{}:{}", letter.id(), data["run"], data["i"]);
                reported = letter.id();
            }
            line += " discarded";
            for id in discarded {
                line += &format!(" {id}");
            }
            writeln!(stdout, "{line}").unwrap();
            stdout.flush().unwrap();
        }
    });
}

/// What dead-letter children reported durable: letters by id (with the
/// run and index of their event), and discarded ids; and ids about to be
/// discarded (durably or not).
#[derive(Default)]
struct Reported {
    kept: BTreeMap<u64, (u64, u64)>,
    discarded: HashSet<u64>,
    discarding: HashSet<u64>,
}

impl Reported {
    fn take(&mut self, line: &str) {
        if let Some(id) = line.strip_prefix("discarding ") {
            self.discarding.insert(id.parse().unwrap());
            return;
        }
        let (kept, discarded) = line
            .strip_prefix("kept")
            .and_then(|rest| rest.split_once(" discarded"))
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        for letter in kept.split_whitespace() {
            let parts: Vec<u64> = letter.split(':').map(|n| n.parse().unwrap()).collect();
            self.kept.insert(parts[0], (parts[1], parts[2]));
        }
        for id in discarded.split_whitespace() {
            self.discarded.insert(id.parse().unwrap());
        }
    }
}

fn crash_letters_repeatedly(path: &std::path::Path, kills: u32, rng: &mut XorShift) -> u32 {
    let target = format!("letters:{}", path.display());
    let mut reported = Reported::default();
    for run in 0..kills as u64 {
        let acks_before_kill = 1 + rng.below(4);
        // Half the kills right after the report, while the writer may
        // still be busy with the next round.
        let delay = Duration::from_micros(rng.below(2) * rng.below(5_000));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("AGENTBUS_CRASH_CHILD", &target)
            .env("AGENTBUS_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut child);
        for _ in 0..acks_before_kill {
            reported.take(&next_line(&lines, &mut child, run));
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        for line in lines {
            reported.take(&line);
        }
        assert!(!child.wait().unwrap().success(), "the child was killed");
        verify_letters(path, &reported);
    }
    kills
}

/// Every reported letter not discarded is stored, whole; none reported
/// discarded is; a bus with a recorder lists what is stored.
fn verify_letters(path: &std::path::Path, reported: &Reported) {
    runtime().block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let stored = store
            .read_dead_letters(&DeadLetterQuery::new().limit(usize::MAX))
            .await
            .unwrap();
        let by_id: BTreeMap<u64, &agentbus::DeadLetter> = stored
            .iter()
            .map(|letter| (letter.id().get(), letter))
            .collect();
        for (id, (run, i)) in &reported.kept {
            if reported.discarded.contains(id) {
                assert!(!by_id.contains_key(id), "letter {id} was discarded durably");
                continue;
            }
            if reported.discarding.contains(id) && !by_id.contains_key(id) {
                continue; // discarded, and killed before it was reported
            }
            let letter = by_id.get(id).unwrap_or_else(|| {
                panic!(
                    "letter {id} was reported durable but is not stored (stored: {:?})",
                    by_id.keys().collect::<Vec<_>>()
                )
            });
            let data = &letter.event().data;
            assert_eq!(
                (data["run"].as_u64(), data["i"].as_u64()),
                (Some(*run), Some(*i))
            );
            assert_eq!(
                (
                    letter.subscription_name(),
                    letter.error(),
                    letter.attempts()
                ),
                (Some("exporter"), "exporter down", 1)
            );
        }
        let bus = EventBus::new();
        let recorder = Recorder::attach(&bus, store.clone());
        let listed = bus
            .dead_letters()
            .list(&DeadLetterQuery::new().limit(usize::MAX));
        let listed: Vec<u64> = listed.iter().map(|letter| letter.id().get()).collect();
        assert_eq!(listed, by_id.keys().copied().collect::<Vec<_>>());
        recorder.close().await.unwrap();
    });
}
