//! The dashboard under its Content-Security-Policy, in a real headless
//! Chromium: its own style and script run, an injected script does not.
//!
//! Skipped with a message when chromium or chromedriver is missing, unless
//! `AGENTBUS_REQUIRE_SERVICES=1`.

mod common;

use std::time::Duration;

use agentbus::EventBus;
use agentbus_web::WebApi;
use common::browser::launch;
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_under_its_policy_and_injected_scripts_do_not() {
    let Some(browser) = launch("the_dashboard_runs_under_its_policy").await else {
        return;
    };
    let server = Server::start(WebApi::new(EventBus::new())).await;
    browser.client.goto(&server.url("/")).await.unwrap();
    // The page's own script connected its live feed.
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            Duration::from_secs(15),
            "the socket",
        )
        .await;
    // Its own style applies.
    let rules = browser
        .eval("const sheet = document.querySelector('style').sheet; return sheet ? sheet.cssRules.length : 0")
        .await;
    assert!(
        rules.as_u64().unwrap() > 10,
        "the page's style was blocked: {rules}"
    );
    // What an attacker would inject is blocked.
    let injected = browser
        .eval(
            "const s = document.createElement('script'); \
             s.textContent = 'window.injected = true'; \
             document.body.appendChild(s); \
             return window.injected === true",
        )
        .await;
    assert_eq!(
        injected,
        Value::Bool(false),
        "an injected inline script ran"
    );
}
