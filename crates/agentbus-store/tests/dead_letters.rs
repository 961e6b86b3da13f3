//! Dead letters kept by a recorder: [`DeadLetterChanges`] empty only when
//! it would change nothing; a change reaches the store without a flush; a
//! store of more letters than one page is restored whole on attach.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery, Event, EventBus, EventType};
use agentbus_store::{DeadLetterChanges, Recorder, SqliteStore};
use agentbus_testkit::store::restored_letters;

/// Far longer than anything here takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn changes_are_empty_only_when_they_change_nothing() {
    assert!(DeadLetterChanges::new().is_empty());
    let letter = DeadLetter::restored(
        DeadLetterId::new(1),
        Arc::new(Event::new(EventType::TaskFailed)),
        3,
        Some("exporter"),
    );
    let put = DeadLetterChanges::new().put(letter);
    assert_eq!(put.put.len(), 1);
    assert!(!put.is_empty());
    let remove = DeadLetterChanges::new().remove(DeadLetterId::new(2));
    assert_eq!(remove.remove, [DeadLetterId::new(2)]);
    assert!(!remove.is_empty());
    // A clear alone is a change: it removes every stored letter.
    let clear = DeadLetterChanges {
        clear: true,
        ..DeadLetterChanges::new()
    };
    assert!(!clear.is_empty());
}

/// The bus tells the recorder of a changed letter with a wake-up: a letter
/// discarded while the writer sleeps leaves the store without anyone
/// flushing.
#[tokio::test]
async fn a_change_while_the_writer_sleeps_reaches_the_store_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    let recorder = Recorder::attach(&bus, store.clone());
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    recorder.flush().await.unwrap();
    let stored = || {
        store
            .read_dead_letters_blocking(&DeadLetterQuery::new())
            .unwrap()
    };
    let letter = stored().pop().expect("the letter is stored");
    // Well past the writer's 5 ms watch: it is asleep now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(bus.dead_letters().discard(letter.id()));
    let deadline = Instant::now() + LIMIT;
    while !stored().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the discarded letter left the store within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    recorder.close().await.unwrap();
}

/// Attach reads the stored letters back a page (1000) at a time, and
/// restores them all.
#[test]
fn attach_restores_every_stored_letter_past_the_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    SqliteStore::open(&path)
        .unwrap()
        .write_dead_letters_blocking(&DeadLetterChanges {
            put: restored_letters(1..=1500),
            ..DeadLetterChanges::new()
        })
        .unwrap();

    // On a thread of its own, so a restore that never ends fails the test.
    let (done, attached) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let bus = EventBus::new();
        let recorder = Recorder::attach(&bus, SqliteStore::open(&path).unwrap());
        let _ = done.send((bus, recorder));
    });
    let (bus, _recorder) = attached
        .recv_timeout(LIMIT)
        .expect("attach restored the stored letters");
    let dead = bus.dead_letters();
    assert_eq!(dead.len(), 1500);
    assert!(dead.get(DeadLetterId::new(1500)).is_some());
}
