//! Headless Chromium through chromedriver.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::policy::{skip_or_fail, Unavailable};
use crate::port::free_port;
use crate::process::ProcessGuard;

/// A headless Chromium driven through chromedriver (on a free loopback
/// port, accepting only 127.0.0.1) with a fresh profile in a temp dir.
/// chromedriver and every Chromium process it started are killed on drop
/// (a [`ProcessGuard`] over their process group).
///
/// ```no_run
/// # async fn demo() {
/// use agentbus_testkit::Browser;
///
/// let Some(browser) = Browser::start_or_skip("my_test").await else { return };
/// browser.client.goto("http://127.0.0.1:8080/").await.unwrap();
/// let title = browser.eval("return document.title").await;
/// # let _ = title;
/// # }
/// ```
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: ProcessGuard,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser, or `None` as [`skip_or_fail`] decides when chromium or
    /// chromedriver is not installed.
    pub async fn start_or_skip(test: &str) -> Option<Self> {
        Some(Self::start(skip_or_fail(test, programs())?).await)
    }

    async fn start((driver, browser): (PathBuf, PathBuf)) -> Self {
        let port = free_port();
        let driver = ProcessGuard::spawn(
            Command::new(driver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a temp dir");
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
            unreachable!("a JSON object")
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
                        client,
                        _driver: driver,
                        _profile: profile,
                    }
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver never accepted a session: {last_error:?}");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("the script runs")
    }
}

/// chromedriver and the browser, or why they cannot run here.
fn programs() -> Result<(PathBuf, PathBuf), Unavailable> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(Path::new)
            .find(|path| path.exists())
            .map(Path::to_path_buf)
    };
    let unavailable = |why: &str| Unavailable::new("Chromium", "chromium.sh", why);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
        .ok_or_else(|| unavailable("chromedriver not found (Debian: chromium-driver)"))?;
    let browser = find(&[
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ])
    .ok_or_else(|| unavailable("chromium not found (Debian: chromium)"))?;
    Ok((driver, browser))
}
