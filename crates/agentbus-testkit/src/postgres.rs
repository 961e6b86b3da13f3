//! A throwaway PostgreSQL cluster on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::policy::{skip_or_fail, Unavailable};
use crate::port::free_port;
use crate::process::after_this_process;

/// A PostgreSQL cluster of its own: `initdb` in a temp dir, the server on a
/// free loopback port (its Unix socket in the temp dir too), every client
/// trusted, user `postgres`. Stopped (immediate shutdown) and its directory
/// removed on drop, or by a watchdog once the test process is gone, however
/// it ends.
///
/// The newest `/usr/lib/postgresql/*/bin` is used. `initdb` refuses to run
/// as root, so as root the cluster belongs to the `postgres` user and its
/// programs run through `runuser`.
///
/// ```no_run
/// use agentbus_testkit::Postgres;
///
/// let Some(postgres) = Postgres::start_or_skip("my_test") else { return };
/// let url = postgres.create_database(); // postgres://postgres@127.0.0.1:PORT/test_0
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    sockets: PathBuf,
    port: u16,
    fsync: bool,
}

impl Postgres {
    /// A cluster with `fsync` off (the tests are faster; a killed client
    /// or a stopped server loses nothing either way, only a machine crash
    /// would), or `None` as [`skip_or_fail`] decides.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        skip_or_fail(test, Self::start(false))
    }

    /// [`start_or_skip`](Self::start_or_skip) with `fsync` on, the server's
    /// durable default, for benchmarks.
    pub fn start_durable_or_skip(test: &str) -> Option<Self> {
        skip_or_fail(test, Self::start(true))
    }

    /// One cluster shared by every test of this test binary, started by the
    /// first caller and stopped by its watchdog when the process exits.
    /// Tests take a [`create_database`](Self::create_database) each.
    pub fn shared_or_skip(test: &str) -> Option<&'static Self> {
        static SHARED: OnceLock<Option<Postgres>> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_or_skip(test)).as_ref()
    }

    fn start(fsync: bool) -> Result<Self, Unavailable> {
        let unavailable = |why: String| Unavailable::new("PostgreSQL", "postgres.sh", why);
        let bin = newest_bin()
            .ok_or_else(|| unavailable("no /usr/lib/postgresql/*/bin/initdb".into()))?;
        let owner = if is_root() {
            Some(postgres_ids().ok_or_else(|| unavailable("there is no `postgres` user".into()))?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("agentbus-pg-")
            .tempdir()
            .map_err(|e| unavailable(e.to_string()))?;
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&sockets).map_err(|e| unavailable(e.to_string()))?;
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), &sockets] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| unavailable(e.to_string()))?;
            }
        }
        let mut cluster = Self {
            bin,
            owner,
            dir: Some(dir),
            data,
            sockets,
            port: 0,
            fsync,
        };
        run(cluster
            .program("initdb")
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
            .arg(&cluster.data))
        .map_err(unavailable)?;
        cluster.watchdog();
        // The port is free when picked but may be taken before the server
        // binds it: then pg_ctl fails, and another port is tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(unavailable(last_error))
    }

    /// A PostgreSQL program, run as the cluster's owner.
    fn program(&self, name: &str) -> Command {
        if self.owner.is_some() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(name));
            command
        } else {
            Command::new(self.bin.join(name))
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.program("pg_ctl");
        command.arg("-D").arg(&self.data);
        command
    }

    /// Stops the cluster and removes its directory once this process is
    /// gone, even if it was killed.
    fn watchdog(&self) {
        let pg_ctl = self.pg_ctl();
        let pg_ctl: Vec<String> = std::iter::once(pg_ctl.get_program())
            .chain(pg_ctl.get_args())
            .map(|word| format!("'{}'", word.to_string_lossy()))
            .collect();
        let pg_ctl = pg_ctl.join(" ");
        let dir = self.dir.as_ref().expect("the cluster's directory").path();
        after_this_process(
            &format!(
                "{pg_ctl} -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
                dir.display()
            ),
            None,
        );
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
        run(self
            .pg_ctl()
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-o", &options, "-w", "-t", "30", "start"]))
    }

    /// Stops the server (fast shutdown: open connections are cut); the
    /// cluster stays, for [`restart`](Self::restart).
    pub fn stop(&self) {
        run(self.pg_ctl().args(["-m", "fast", "-w", "stop"])).expect("pg_ctl stop");
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start().expect("pg_ctl start");
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A fresh, empty database; its URL.
    pub fn create_database(&self) -> String {
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

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = run(self.pg_ctl().args(["-m", "immediate", "stop"]));
        drop(self.dir.take());
    }
}

fn newest_bin() -> Option<PathBuf> {
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

fn is_root() -> bool {
    id(&["-u"]) == Some(0)
}

fn postgres_ids() -> Option<(u32, u32)> {
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
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
