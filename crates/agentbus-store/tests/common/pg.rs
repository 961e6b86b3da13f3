//! A throwaway PostgreSQL cluster on loopback, started by the tests.
//!
//! `initdb` refuses to run as root, so the data and socket directories are
//! chowned to `postgres` and the server runs as that user via `runuser`.
//! A watchdog process stops the cluster and removes its directory when the
//! test process exits, however it exits; `Drop` does the same earlier.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set by `.ci/run`: a missing PostgreSQL is a failure, not a skip.
const REQUIRE: &str = "AGENTBUS_REQUIRE_SERVICES";

pub struct PgCluster {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    sockets: PathBuf,
    pub port: u16,
    fsync: bool,
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// The cluster, or `None` after printing why the suite is skipped. Panics
/// instead of skipping under `AGENTBUS_REQUIRE_SERVICES=1`.
pub fn start_or_skip(suite: &str) -> Option<PgCluster> {
    start_or_skip_with(suite, false)
}

/// [`start_or_skip`], with `fsync` on (the server's durable default, for
/// benchmarks) or off (faster tests; a killed client or a stopped server
/// loses nothing either way, only a machine crash would).
pub fn start_or_skip_with(suite: &str, fsync: bool) -> Option<PgCluster> {
    match PgCluster::start(fsync) {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            if std::env::var(REQUIRE).as_deref() == Ok("1") {
                panic!("{suite}: PostgreSQL is required ({REQUIRE}=1) but {why}");
            }
            eprintln!(
                "SKIPPED {suite}: {why}. Install PostgreSQL (bash .ci/install/postgres.sh) \
                 and run `cargo test -p agentbus-store` again."
            );
            None
        }
    }
}

/// One cluster shared by every test of this binary, stopped by its watchdog
/// when the process exits.
pub fn shared(suite: &str) -> Option<&'static PgCluster> {
    static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
    SHARED.get_or_init(|| start_or_skip(suite)).as_ref()
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl PgCluster {
    pub fn start(fsync: bool) -> Result<Self, String> {
        let bin = find_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb on this machine")?;
        let (uid, gid) = postgres_ids().ok_or("there is no `postgres` user")?;
        let dir = tempfile::Builder::new()
            .prefix("agentbus-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&sockets).map_err(|e| e.to_string())?;
        for path in [dir.path(), &sockets] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data))?;
        let mut cluster = Self {
            bin,
            dir: Some(dir),
            data,
            sockets,
            port: 0,
            fsync,
        };
        cluster.watchdog();
        let mut last_error = String::new();
        for _ in 0..3 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Stops the cluster and removes its directory once this process is
    /// gone, even if it was killed.
    fn watchdog(&self) {
        let dir = self.dir.as_ref().expect("directory").path();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             runuser -u postgres -- {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; \
             rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
            dir = dir.display(),
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=200 {}",
            self.port,
            self.sockets.display(),
            if self.fsync {
                ""
            } else {
                "-c fsync=off -c full_page_writes=off"
            }
        );
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-o", &options, "-w", "-t", "30", "start"]))
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]))
        .expect("pg_ctl stop");
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start().expect("pg_ctl start");
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A fresh, empty database; its URL.
    pub fn create_database(&self) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        run(Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}")))
        .expect("create database");
        self.url(&name)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]));
        drop(self.dir.take());
    }
}
