//! `--store postgres://...`: serve, restart and replay over a real
//! PostgreSQL (agentbus-testkit's throwaway cluster on a free loopback
//! port); skipped when PostgreSQL is not installed, unless
//! `AGENTBUS_REQUIRE_SERVICES=1`.

#[cfg(feature = "postgres")]
mod common;

#[cfg(feature = "postgres")]
mod over_postgres {
    use super::common;

    use std::time::Duration;

    use agentbus_testkit::Postgres;
    use common::{json_lines, run, run_ok, Server};

    #[test]
    fn serve_restart_and_replay_over_postgres() {
        let Some(postgres) = Postgres::start_or_skip("agentbus --store postgres://") else {
            return;
        };
        let url = postgres.create_database();
        let store = url.as_str();

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
        let Some(postgres) =
            Postgres::start_or_skip("agentbus replay --store postgres:// creates nothing")
        else {
            return;
        };
        for _ in 0..2 {
            // Twice: the first attempt must not have created the schema.
            let output = run(&["replay", "--store", &postgres.url("postgres")]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("cannot open the store postgres://postgres@127.0.0.1:")
                    && stderr.contains("/postgres` does not exist"),
                "{stderr}"
            );
        }

        let port = postgres.port();
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
        let port = agentbus_testkit::free_port();
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
