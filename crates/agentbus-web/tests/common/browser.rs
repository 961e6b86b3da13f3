//! The dashboard in agentbus-testkit's headless Chromium.

use std::ops::Deref;
use std::time::Duration;

use agentbus_testkit::Browser;
use serde_json::Value;

/// A browser for the dashboard's pages; derefs to the testkit's
/// [`Browser`].
pub struct Dashboard(Browser);

/// The browser, or `None` as the testkit's skip-or-fail policy decides.
pub async fn launch(test: &str) -> Option<Dashboard> {
    Browser::start_or_skip(test).await.map(Dashboard)
}

impl Deref for Dashboard {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.0
    }
}

impl Dashboard {
    /// Waits until `script` returns `true`, or panics with `what` and the
    /// feed's count.
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
