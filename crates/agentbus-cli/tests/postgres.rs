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
