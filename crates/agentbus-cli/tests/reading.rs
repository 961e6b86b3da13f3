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

/// An empty file (or another program's SQLite database) holds no store;
/// replay must not write the schema into it.
#[test]
fn replay_of_a_file_without_a_store_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let output = common::run(&["replay", "--store", &format!("sqlite:{}", empty.display())]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "replay wrote to it"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
