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
