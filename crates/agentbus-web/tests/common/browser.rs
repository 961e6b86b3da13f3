//! Headless Chromium through chromedriver, started on a free loopback port
//! and stopped on drop.

use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// The programs, or why the browser tests cannot run here.
pub fn programs() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(Path::new)
            .find(|path| path.exists())
            .map(Path::to_path_buf)
    };
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
        .ok_or("chromedriver not found (Debian: apt-get install chromium-driver)")?;
    let browser = find(&[
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ])
    .ok_or("chromium not found (Debian: apt-get install chromium)")?;
    Ok((driver, browser))
}

/// `None` (after saying why) when the programs are missing, unless
/// `AGENTBUS_REQUIRE_SERVICES=1`, where that is a failure.
pub async fn launch(test: &str) -> Option<Browser> {
    match programs() {
        Ok((driver, browser)) => Some(Browser::start(&driver, &browser).await),
        Err(why) => {
            if std::env::var("AGENTBUS_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: {why}, and AGENTBUS_REQUIRE_SERVICES=1");
            }
            eprintln!(
                "SKIPPED {test}: {why}. Install both (or run `bash .ci/install/chromium.sh`) to run the browser tests."
            );
            None
        }
    }
}

pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver: &Path, browser: &Path) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(driver)
            // Its own process group, so Drop can stop Chromium with it.
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": browser,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        driver: child,
                        client,
                        _profile: profile,
                    }
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        panic!("chromedriver never accepted a session: {last_error:?}");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` returns `true`, or panics with `what`.
    pub async fn wait_until(&self, script: &str, within: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let feed = self
                    .eval("return document.getElementById('feed-count').textContent")
                    .await;
                panic!("timed out waiting for {what} (feed: {feed})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ids shown in the feed, top (newest) first.
    pub async fn feed_ids(&self) -> Vec<String> {
        let ids = self
            .eval("return [...document.querySelectorAll('#feed .event')].map(e => e.dataset.id)")
            .await;
        serde_json::from_value(ids).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started share a group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
