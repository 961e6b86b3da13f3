//! The conformance suite against SQLite (a file per test).

use agentbus_store::SqliteStore;

fn store() -> Option<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    // The directory lives as long as the test process; tempfile cleans up
    // on the next boot at worst. Keep it so the file outlives this function.
    std::mem::forget(dir);
    Some(store)
}

agentbus_testkit::conformance_suite!(store());

/// SQLite reads on the calling thread, so `Recorder::attach` shows the
/// stored dead letters before it returns (no flush needed).
#[test]
fn attach_restores_the_stored_dead_letters_before_it_returns() {
    use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
    use agentbus_store::Recorder;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    let recorder = Recorder::attach(&bus, SqliteStore::open(&path).unwrap());
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(recorder.close()).unwrap();
    drop(bus);

    let bus = EventBus::new();
    let _recorder = Recorder::attach(&bus, SqliteStore::open(&path).unwrap());
    let listed = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id().get(), listed[0].error()), (1, "down"));
}
