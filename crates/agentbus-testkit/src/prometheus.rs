//! A Prometheus server on loopback that scrapes one target.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::policy::{require_program, skip_or_fail, Unavailable};
use crate::port::free_port;
use crate::process::ProcessGuard;

/// A `prometheus` server on a free loopback port, its config and TSDB in a
/// temp dir, scraping one target (`127.0.0.1:PORT`, path `/metrics`) every
/// second, with a bearer token if given; killed on drop (a
/// [`ProcessGuard`]).
///
/// It counts as started once `/-/ready` answers 200 on its port; a port
/// picked free but taken meanwhile makes it exit, and another is tried.
///
/// ```no_run
/// use agentbus_testkit::Prometheus;
///
/// let Some(prometheus) = Prometheus::start_or_skip("my_test", 7878, Some("secret")) else {
///     return;
/// };
/// let reply = prometheus.query("agentbus_events_published_total");
/// # let _ = reply;
/// ```
#[derive(Debug)]
pub struct Prometheus {
    _process: ProcessGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A running server scraping `127.0.0.1:target_port/metrics`, or `None`
    /// as [`skip_or_fail`] decides when `prometheus` is not installed.
    pub fn start_or_skip(test: &str, target_port: u16, token: Option<&str>) -> Option<Self> {
        skip_or_fail(test, Self::start(target_port, token))
    }

    fn start(target_port: u16, token: Option<&str>) -> Result<Self, Unavailable> {
        require_program("prometheus", "prometheus.sh")?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let authorization = token
            .map(|token| format!("    authorization:\n      credentials: \"{token}\"\n"))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: agentbus\n    metrics_path: /metrics\n\
             {authorization}    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config written");
        for _ in 0..5 {
            let port = free_port();
            let mut process = ProcessGuard::spawn(
                Command::new("prometheus")
                    .arg(format!("--config.file={}", config_path.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .expect("prometheus starts");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if process.try_wait().is_some() {
                    break;
                }
                if get(port, "/-/ready").is_some_and(|(status, _)| status == 200) {
                    return Ok(Self {
                        _process: process,
                        port,
                        _dir: dir,
                    });
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus was not ready within 30 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("prometheus did not start on five free ports");
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JSON body of an instant query (`GET /api/v1/query`) of `promql`,
    /// which may hold letters, digits and `_{}="`.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let mut encoded = String::new();
        for byte in promql.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'_' {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        let (status, body) =
            get(self.port, &format!("/api/v1/query?query={encoded}")).expect("prometheus answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("prometheus answers JSON")
    }
}

/// `GET path` over HTTP/1.0 (the server closes after the reply): status and
/// body, or `None` if nothing answered within 2 s.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}
