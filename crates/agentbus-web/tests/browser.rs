//! The dashboard in a real headless Chromium (chromedriver + fantoccini):
//! events appear, filters hide others, pause holds the feed, a restarted
//! server is resumed without a gap, dead letters are redriven and
//! discarded from their panel, the page works nested under a prefix, and a
//! screenshot under load.
//!
//! Skipped with a message when chromium or chromedriver is missing, unless
//! `AGENTBUS_REQUIRE_SERVICES=1`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventId, EventType, Retry};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_web::WebApi;
use common::browser::launch;
use common::*;
use fantoccini::Locator;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(15);

async fn post(server: &str, body: serde_json::Value) -> Vec<String> {
    let reply = post_json(&format!("{server}/api/events"), &body.to_string()).await;
    reply.assert_status(200);
    serde_json::from_value(reply.json()["ids"].clone()).unwrap()
}

fn shown(id: &str) -> String {
    format!("return document.querySelector('#feed .event[data-id=\"{id}\"]') !== null")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_nested_under_a_prefix() {
    let Some(browser) = launch("the_dashboard_works_nested_under_a_prefix").await else {
        return;
    };
    let app = axum::Router::new().nest("/bus", WebApi::new(EventBus::new()).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::serving(listener, app);
    browser.client.goto(&server.url("/bus")).await.unwrap();
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            PATIENCE,
            "the socket under /bus",
        )
        .await;
    let posted = post(&server.url("/bus"), json!({"type": "task.completed"})).await;
    browser
        .wait_until(&shown(&posted[0]), PATIENCE, "the event under /bus")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_filter_and_pause() {
    let Some(browser) = launch("feed_filter_and_pause").await else {
        return;
    };
    let server = Server::start(WebApi::new(EventBus::new())).await;
    let base = server.url("");
    browser.client.goto(&server.url("/")).await.unwrap();
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            PATIENCE,
            "the socket",
        )
        .await;

    // Published over HTTP, seen in the feed.
    let first = post(
        &base,
        json!({"type": "task.completed", "circle_id": 1, "data": {"task_id": 7}}),
    )
    .await;
    browser
        .wait_until(&shown(&first[0]), PATIENCE, "the first event")
        .await;
    let others = post(
        &base,
        json!([
            {"type": "memory.shared", "circle_id": 2},
            {"type": "task.failed", "circle_id": 1, "source_agent_id": 3},
            {"type": "system.error", "circle_id": 2}
        ]),
    )
    .await;
    browser
        .wait_until(&shown(&others[2]), PATIENCE, "the batch")
        .await;
    // Newest first.
    let ids = browser.feed_ids().await;
    assert_eq!(
        ids[..4],
        [
            others[2].clone(),
            others[1].clone(),
            others[0].clone(),
            first[0].clone()
        ]
    );

    // Filter by type: the others are hidden.
    browser
        .client
        .find(Locator::Css("#filter-type"))
        .await
        .unwrap()
        .select_by_value("task.failed")
        .await
        .unwrap();
    browser
        .wait_until(
            "return document.querySelectorAll('#feed .event').length === 1",
            PATIENCE,
            "the type filter",
        )
        .await;
    assert_eq!(browser.feed_ids().await, [others[1].clone()]);
    browser
        .client
        .find(Locator::Css("#filter-type"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();

    // Filter by circle and by text.
    let circle = browser
        .client
        .find(Locator::Css("#filter-circle"))
        .await
        .unwrap();
    circle.send_keys("2").await.unwrap();
    browser
        .wait_until(
            "return document.querySelectorAll('#feed .event').length === 2",
            PATIENCE,
            "the circle filter",
        )
        .await;
    assert_eq!(
        browser.feed_ids().await,
        [others[2].clone(), others[0].clone()]
    );
    circle.clear().await.unwrap();
    browser.eval("document.getElementById('filter-circle').dispatchEvent(new Event('input')); return null").await;
    let text = browser
        .client
        .find(Locator::Css("#filter-text"))
        .await
        .unwrap();
    text.send_keys("task_id").await.unwrap();
    browser
        .wait_until(
            "return document.querySelectorAll('#feed .event').length === 1",
            PATIENCE,
            "the text filter",
        )
        .await;
    assert_eq!(browser.feed_ids().await, [first[0].clone()]);
    text.clear().await.unwrap();
    browser
        .eval(
            "document.getElementById('filter-text').dispatchEvent(new Event('input')); return null",
        )
        .await;
    browser
        .wait_until(
            "return document.querySelectorAll('#feed .event').length === 4",
            PATIENCE,
            "no filter",
        )
        .await;

    // Click an event: its JSON and its chain.
    browser
        .client
        .find(Locator::Css(&format!(
            "#feed .event[data-id=\"{}\"]",
            first[0]
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(
            &format!(
                "return document.getElementById('detail-json').textContent.includes('{}')",
                first[0]
            ),
            PATIENCE,
            "the detail panel",
        )
        .await;

    // Pause: new events wait; resume: they appear.
    browser
        .client
        .find(Locator::Css("#pause"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let held = post(
        &base,
        json!({"type": "agent.started", "source_agent_id": 9}),
    )
    .await;
    browser
        .wait_until(
            "return document.getElementById('pending').textContent.startsWith('1 new')",
            PATIENCE,
            "the paused count",
        )
        .await;
    assert!(
        !browser.feed_ids().await.contains(&held[0]),
        "a paused feed showed a new event"
    );
    browser
        .client
        .find(Locator::Css("#pause"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until(&shown(&held[0]), PATIENCE, "the held event after resume")
        .await;
    assert_eq!(browser.feed_ids().await[0], held[0]);
}

/// Stop the server (its connections die with it), start it again on the
/// same port and SQLite file, publish at once: the page reconnects by
/// itself, resumes from its last sequence, and shows every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_resumes_after_a_server_restart_without_gap() {
    let Some(browser) = launch("page_resumes_after_a_server_restart_without_gap").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let stored = |path: std::path::PathBuf| {
        move || {
            let bus = EventBus::new();
            let recorder = Recorder::attach(&bus, SqliteStore::open(path).unwrap());
            WebApi::new(bus).store(recorder)
        }
    };
    let first = ThreadServer::start("127.0.0.1:0".parse().unwrap(), stored(path.clone()));
    let addr = first.addr;
    let base = first.url("");
    browser.client.goto(&first.url("/")).await.unwrap();
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            PATIENCE,
            "the socket",
        )
        .await;
    let batch = |from: usize| {
        json!((from..from + 5)
            .map(|n| json!({"type": "task.created", "data": {"n": n}}))
            .collect::<Vec<_>>())
    };
    let before = post(&base, batch(0)).await;
    browser
        .wait_until(&shown(&before[4]), PATIENCE, "the first batch")
        .await;

    drop(first);
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'reconnecting'",
            PATIENCE,
            "the page to notice",
        )
        .await;
    let second = ThreadServer::start(addr, stored(path.clone()));
    // Published before the page is back: only resuming from the store can show them.
    let after = post(&base, batch(5)).await;
    browser
        .wait_until(
            &shown(&after[4]),
            PATIENCE,
            "the events published during the restart",
        )
        .await;
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            PATIENCE,
            "live again",
        )
        .await;
    let sequences: Vec<u64> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('#feed .event')].map(e => Number(e.dataset.sequence))")
            .await,
    )
    .unwrap();
    assert_eq!(
        sequences,
        (1..=10).rev().collect::<Vec<u64>>(),
        "a gap or a duplicate"
    );
    let ids = browser.feed_ids().await;
    let expected: Vec<String> = after
        .iter()
        .rev()
        .chain(before.iter().rev())
        .cloned()
        .collect();
    assert_eq!(ids, expected);
    drop(second);
}

/// Many agents publishing for a few seconds; the screenshot is kept in
/// tests/artifacts/ (the README's picture comes from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_under_load() {
    let Some(browser) = launch("screenshot_under_load").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(
        &bus,
        SqliteStore::open(dir.path().join("events.db")).unwrap(),
    );
    let server = Server::start(WebApi::new(bus.clone()).store(recorder)).await;
    browser.client.set_window_size(1440, 960).await.unwrap();
    browser.client.goto(&server.url("/")).await.unwrap();
    browser
        .wait_until(
            "return document.getElementById('status').dataset.state === 'live'",
            PATIENCE,
            "the socket",
        )
        .await;
    let load = tokio::spawn(agentbus_testkit::traffic::simulate(
        bus.clone(),
        Duration::from_secs(25),
    ));
    tokio::time::sleep(Duration::from_secs(20)).await;
    browser
        .wait_until(
            "return document.querySelectorAll('#feed .event').length > 50",
            PATIENCE,
            "a busy feed",
        )
        .await;
    // Select a chained event so the detail panel shows a causal chain.
    browser
        .eval("const e = [...document.querySelectorAll('#feed .event')].find(e => e.dataset.type === 'task.completed'); e && e.click(); return null")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let png = browser.client.screenshot().await.unwrap();
    load.await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a png");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.png"), &png).unwrap();
    eprintln!("screenshot: {}", dir.join("dashboard.png").display());
}

/// The stats bar shows the guards' rejections, per reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_counts_per_reason() {
    let Some(browser) = launch("rejected_counts_per_reason").await else {
        return;
    };
    let schemas = agentbus_guard::Schemas::new()
        .schema(
            agentbus::EventType::TaskCompleted,
            json!({"type": "object", "required": ["task_id"]}),
        )
        .unwrap();
    let bus = EventBus::builder()
        .guard(schemas)
        .guard(agentbus_guard::Dedup::window(Duration::from_secs(60)))
        .build();
    let server = Server::start(WebApi::new(bus)).await;
    browser.client.goto(&server.url("/")).await.unwrap();
    let event = json!({"type": "task.completed", "data": {"task_id": 1}});
    post(&server.url(""), json!([event, event, event])).await;
    let invalid = json!({"type": "task.completed", "data": {}});
    let reply = post_json(&server.url("/api/events"), &invalid.to_string()).await;
    assert_eq!(reply.status, 422);
    browser
        .wait_until(
            "return document.getElementById('stat-rejected').textContent \
             === '3 (dup 2 · rate 0 · invalid 1)'",
            PATIENCE,
            "the rejected counts",
        )
        .await;
}

/// What a hostile handler or client could put in a dead letter; the panel
/// must show it as text.
const HOSTILE: &str = "<img src=x onerror=\"window.__pwned = true\">";

/// A script expression: the text of `cell` in the panel's row of letter `id`.
fn letter_cell(id: u64, cell: &str) -> String {
    format!(
        "(document.querySelector('#dlq-rows tr[data-id=\"{id}\"] td.dl-{cell}')?.textContent ?? null)"
    )
}

async fn click(browser: &common::browser::Dashboard, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn settled(bus: &EventBus) {
    tokio::time::timeout(PATIENCE, bus.settled())
        .await
        .expect("the retries finish");
}

/// A subscription that fails until a switch is flipped dead-letters an
/// event; the panel lists it, its hostile error, subscription name and data
/// as text; a redrive clicked while it still fails says so and keeps it;
/// flipped, a redrive clicked in the browser delivers it exactly once and
/// the panel empties; a discard removes another undelivered. With more
/// letters than the panel shows, it shows the newest and says how many
/// more. The page carries the server's token, as the API requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_redriven_and_discarded_from_the_panel() {
    let Some(browser) = launch("dead_letters_are_redriven_and_discarded_from_the_panel").await
    else {
        return;
    };
    let bus = EventBus::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let delivered: Arc<Mutex<Vec<EventId>>> = Arc::default();
    let (is_fixed, got) = (Arc::clone(&fixed), Arc::clone(&delivered));
    bus.subscription(EventType::TaskCompleted)
        .name(HOSTILE)
        .retry(Retry::attempts(2).delay(Duration::from_millis(1)))
        .handler(move |event: &Event| -> Result<(), String> {
            if is_fixed.load(Ordering::SeqCst) {
                got.lock().unwrap().push(event.id);
                Ok(())
            } else {
                Err(HOSTILE.to_owned())
            }
        });
    let server = Server::start(WebApi::new(bus.clone()).token(Some("s3cret".into()))).await;
    browser
        .client
        .goto(&server.url("/?token=s3cret"))
        .await
        .unwrap();

    let event = Event::new(EventType::TaskCompleted).with_data(json!({"note": HOSTILE}));
    assert_eq!(bus.publish(event.clone()).await.retrying, 1);
    settled(&bus).await;
    let dead = bus.dead_letters();
    let id = dead.list(&agentbus::DeadLetterQuery::new())[0].id().get();
    browser
        .wait_until(
            &format!("return {} === {}", letter_cell(id, "error"), json!(HOSTILE)),
            PATIENCE,
            "the dead letter in the panel",
        )
        .await;
    assert_eq!(
        browser
            .eval(&format!("return {}", letter_cell(id, "subscription")))
            .await,
        HOSTILE
    );
    assert_eq!(
        browser
            .eval(&format!("return {}", letter_cell(id, "attempts")))
            .await,
        "2"
    );
    let shown_event = browser
        .eval(&format!("return {}", letter_cell(id, "event")))
        .await;
    let shown_event = shown_event.as_str().unwrap();
    assert!(
        shown_event == format!("task.completed{}", json!({"note": HOSTILE})),
        "{shown_event}"
    );
    assert_eq!(
        browser
            .eval("return [document.querySelectorAll('#dead-letters img').length, window.__pwned ?? null]")
            .await,
        json!([0, null]),
        "the panel rendered untrusted text as HTML"
    );
    browser
        .wait_until(
            "return document.getElementById('stat-dead-lettered').textContent === '1' \
             && document.getElementById('stat-retries').textContent === '1' \
             && document.getElementById('dlq-summary').textContent === '1 held'",
            PATIENCE,
            "the delivery stats",
        )
        .await;

    // Still failing: the panel says so, the letter stays with one attempt more.
    let redrive = format!("#dlq-rows tr[data-id=\"{id}\"] button.redrive");
    click(&browser, &redrive).await;
    browser
        .wait_until(
            &format!(
                "return {} === '3' && document.getElementById('dlq-message').classList.contains('bad')",
                letter_cell(id, "attempts")
            ),
            PATIENCE,
            "the failed redrive",
        )
        .await;
    let message = browser
        .eval("return document.getElementById('dlq-message').textContent")
        .await;
    assert!(message.as_str().unwrap().contains(HOSTILE), "{message}");

    fixed.store(true, Ordering::SeqCst);
    click(&browser, &redrive).await;
    browser
        .wait_until(
            "return document.querySelectorAll('#dlq-rows tr').length === 0 \
             && document.getElementById('dlq-table').hidden \
             && document.getElementById('dlq-summary').textContent === 'none'",
            PATIENCE,
            "the panel to empty after the redrive",
        )
        .await;
    settled(&bus).await;
    assert_eq!(
        *delivered.lock().unwrap(),
        [event.id],
        "not delivered exactly once"
    );
    assert!(dead.is_empty());

    // Discard: failing again, a second event is dead-lettered and discarded.
    fixed.store(false, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    settled(&bus).await;
    let second = dead.list(&agentbus::DeadLetterQuery::new())[0].id().get();
    browser
        .wait_until(
            &format!("return {} === '2'", letter_cell(second, "attempts")),
            PATIENCE,
            "the second dead letter",
        )
        .await;
    click(
        &browser,
        &format!("#dlq-rows tr[data-id=\"{second}\"] button.discard"),
    )
    .await;
    browser
        .wait_until(
            "return document.querySelectorAll('#dlq-rows tr').length === 0 \
             && document.getElementById('dlq-message').textContent.includes('discarded')",
            PATIENCE,
            "the panel to empty after the discard",
        )
        .await;
    assert!(dead.is_empty());
    assert_eq!(
        delivered.lock().unwrap().len(),
        1,
        "a discarded letter was delivered"
    );

    // More than the panel shows: the newest 50, and how many more.
    for _ in 0..53 {
        bus.publish(Event::new(EventType::TaskCompleted)).await;
    }
    settled(&bus).await;
    let newest = dead.list(&agentbus::DeadLetterQuery::new().newest_first().limit(1))[0]
        .id()
        .get();
    browser
        .wait_until(
            "return document.getElementById('dlq-summary').textContent === '53 held · the newest 50 shown' \
             && document.querySelectorAll('#dlq-rows tr').length === 50 \
             && document.getElementById('dlq-more').textContent.startsWith('3 more')",
            PATIENCE,
            "the bounded panel",
        )
        .await;
    assert_eq!(
        browser
            .eval("return Number(document.querySelector('#dlq-rows tr').dataset.id)")
            .await,
        newest
    );
}
