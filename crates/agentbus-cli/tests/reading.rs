//! Commands that only read a store never create one: a missing store is a
//! clear error (exit 1) naming it, and no file appears.

mod common;

#[test]
fn replay_of_a_missing_sqlite_store_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    for store in [
        format!("sqlite:{}", missing.display()),
        missing.display().to_string(),
    ] {
        let output = common::run(&["replay", "--store", &store]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{store}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot open the store sqlite:{}",
                missing.display()
            )) && stderr.contains("does not exist"),
            "{stderr}"
        );
        let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(created.is_empty(), "replay created {created:?}");
    }
}

#[test]
fn replay_still_reads_an_existing_store() {
    let (_dir, path) = common::sqlite_file();
    let store = format!("sqlite:{}", path.display());
    // `serve` creates the store before it prints its address; a reading
    // command then opens it.
    common::Server::sqlite(&path).process.kill();
    let output = common::run(&["replay", "--store", &store]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
