//! `--store postgres://...`: serve, restart and replay over a real
//! PostgreSQL that this test starts itself (a throwaway cluster on a free
//! loopback port); skipped when PostgreSQL is not installed, unless
//! `AGENTBUS_REQUIRE_SERVICES=1`.

#[cfg(feature = "postgres")]
mod common;

#[cfg(feature = "postgres")]
mod over_postgres {
    use super::common;

    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use common::{json_lines, run, run_ok, Server};

    /// A PostgreSQL cluster in a temp dir, stopped on drop.
    struct Postgres {
        bin: PathBuf,
        data: PathBuf,
        url: String,
        _dir: tempfile::TempDir,
    }

    fn as_postgres(bin: &Path, program: &str) -> Command {
        let path = bin.join(program);
        // initdb and the server refuse to run as root.
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    }

    fn postgres_bin() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    impl Postgres {
        fn start() -> Option<Self> {
            let Some(bin) = postgres_bin() else {
                assert!(
                    std::env::var_os("AGENTBUS_REQUIRE_SERVICES").is_none_or(|v| v != "1"),
                    "PostgreSQL is required (AGENTBUS_REQUIRE_SERVICES=1) but not installed"
                );
                eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
                return None;
            };
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let socket = dir.path().join("socket");
            std::fs::create_dir(&socket).unwrap();
            if is_root() {
                let status = Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap();
                assert!(status.success(), "chown failed");
            }
            let initdb = as_postgres(&bin, "initdb")
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                initdb.status.success(),
                "initdb: {}",
                String::from_utf8_lossy(&initdb.stderr)
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
                socket.display()
            );
            let started = as_postgres(&bin, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.path().join("log"))
                .args(["-w", "start"])
                .output()
                .unwrap();
            assert!(
                started.status.success(),
                "pg_ctl start: {}",
                String::from_utf8_lossy(&started.stderr)
            );
            Some(Self {
                bin,
                data,
                url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                _dir: dir,
            })
        }
    }

    impl Drop for Postgres {
        fn drop(&mut self) {
            let _ = as_postgres(&self.bin, "pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }

    #[test]
    fn serve_restart_and_replay_over_postgres() {
        let Some(postgres) = Postgres::start() else {
            return;
        };
        let store = postgres.url.as_str();

        let mut server = Server::start(&["--store", store]);
        for n in 1..=3 {
            let out = run_ok(
                &server.url,
                &[
                    "publish",
                    "task.created",
                    "--data",
                    &format!("{{\"n\": {n}}}"),
                ],
            );
            assert!(out.contains(&format!("(sequence {n})")), "{out}");
        }
        assert!(server.process.terminate(Duration::from_secs(30)).success());

        let restarted = Server::start(&["--store", store]);
        let stored = json_lines(&run_ok(&restarted.url, &["history", "--json"]));
        let numbers: Vec<_> = stored
            .iter()
            .map(|e| {
                (
                    e["sequence"].as_u64().unwrap(),
                    e["data"]["n"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(numbers, [(1, 1), (2, 2), (3, 3)]);

        let replayed = run(&["replay", "--store", store, "--from", "2", "--json"]);
        assert!(
            replayed.status.success(),
            "{}",
            String::from_utf8_lossy(&replayed.stderr)
        );
        let replayed = json_lines(&String::from_utf8(replayed.stdout).unwrap());
        assert_eq!(
            replayed
                .iter()
                .map(|e| e["data"]["n"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [2, 3]
        );
    }

    /// A reading command does not create the schema in a database that
    /// has none; a `key=value` location is PostgreSQL, shown redacted.
    #[test]
    fn replay_never_creates_a_store_and_key_value_locations_serve() {
        let Some(postgres) = Postgres::start() else {
            return;
        };
        for _ in 0..2 {
            // Twice: the first attempt must not have created the schema.
            let output = run(&["replay", "--store", &postgres.url]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("cannot open the store postgres://postgres@127.0.0.1:")
                    && stderr.contains("/postgres` does not exist"),
                "{stderr}"
            );
        }

        let port = postgres
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let key_value =
            format!("host=127.0.0.1 port={port} user=postgres password=hunter2 dbname=postgres");
        let mut serve = common::agentbus();
        serve.env("RUST_LOG", "info").args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--store",
            &key_value,
        ]);
        let server = common::Running::spawn(serve);
        let first = server.stdout_line(Duration::from_secs(60), |line| line.contains("http://"));
        assert!(
            first.contains("(store host=127.0.0.1 port=") && first.contains("password=***"),
            "{first}"
        );
        assert!(!first.contains("hunter2"), "{first}");
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap()
            .trim_end_matches('/');
        let out = run_ok(url, &["publish", "task.created"]);
        assert!(out.contains("(sequence 1)"), "{out}");
        drop(server);
        let replayed = run(&["replay", "--store", &key_value, "--json"]);
        let stderr = String::from_utf8_lossy(&replayed.stderr);
        assert!(replayed.status.success(), "{stderr}");
        assert_eq!(
            json_lines(&String::from_utf8(replayed.stdout).unwrap()).len(),
            1
        );
        assert!(
            stderr.contains("password=***") && !stderr.contains("hunter2"),
            "{stderr}"
        );
    }

    #[test]
    fn an_unreachable_postgres_is_a_clear_startup_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let output = run(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--store",
            &format!("postgres://postgres@127.0.0.1:{port}/events"),
        ]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8(output.stderr).unwrap();
        let error = stderr
            .lines()
            .find(|line| line.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            error.starts_with("error: cannot open the store postgres://postgres@127.0.0.1:"),
            "{stderr}"
        );
    }
}
