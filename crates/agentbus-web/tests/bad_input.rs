//! Every HTTP error case: the right status, a JSON `{"error": ...}` that
//! says what is wrong, nothing published, and the server still serving.

mod common;

use agentbus::EventBus;
use agentbus_web::WebApi;
use common::*;

async fn server() -> (EventBus, Server) {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).body_limit(4096)).await;
    (bus, server)
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (bus, server) = server().await;
    for body in [
        "{",
        "{\"type\": \"task.created\",}",
        "[{\"type\":\"task.created\"}] trailing",
        "",
        "42",
        "\"text\"",
    ] {
        let reply = post_json(&server.url("/api/events"), body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply.error().starts_with("malformed json"),
            "{body}: {}",
            reply.error()
        );
    }
    assert_eq!(bus.stats().events_published, 0);
}

#[tokio::test]
async fn unknown_type_names_the_index_and_field() {
    let (bus, server) = server().await;
    let reply = post_json(
        &server.url("/api/events"),
        r#"[{"type":"task.created"},{"type":"task.created"},{"type":"task.finished"}]"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    let error = reply.error();
    assert!(error.starts_with("event 2: field `type`"), "{error}");
    assert!(error.contains("task.finished"), "{error}");
    // One bad event in the array publishes none of them.
    assert_eq!(bus.stats().events_published, 0);

    let missing = post_json(&server.url("/api/events"), r#"{"circle_id": 1}"#).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.error().contains("missing field `type`"),
        "{}",
        missing.error()
    );
}

#[tokio::test]
async fn wrong_field_type_names_the_field() {
    let (bus, server) = server().await;
    let single = post_json(
        &server.url("/api/events"),
        r#"{"type":"task.created","circle_id":"five"}"#,
    )
    .await;
    assert_eq!(single.status, 400);
    assert!(
        single.error().starts_with("field `circle_id`"),
        "{}",
        single.error()
    );

    let array = post_json(
        &server.url("/api/events"),
        r#"[{"type":"task.created"},{"type":"task.created","timestamp":"yesterday"}]"#,
    )
    .await;
    assert_eq!(array.status, 400);
    assert!(
        array.error().starts_with("event 1: field `timestamp`"),
        "{}",
        array.error()
    );

    for (body, field) in [
        (
            r#"{"type":"task.created","source_agent_id":1.5}"#,
            "source_agent_id",
        ),
        (
            r#"{"type":"task.created","project_id":99999999999999999999}"#,
            "project_id",
        ),
        (r#"{"type":"task.created","id":"not-a-uuid"}"#, "id"),
        (
            r#"{"type":"task.created","correlation_id":7}"#,
            "correlation_id",
        ),
        (r#"{"type":7}"#, "type"),
    ] {
        let reply = post_json(&server.url("/api/events"), body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply.error().contains(&format!("field `{field}`")),
            "{body}: {}",
            reply.error()
        );
    }
    let empty = post_json(&server.url("/api/events"), "[]").await;
    assert_eq!(empty.status, 400);
    assert_eq!(bus.stats().events_published, 0);
}

#[tokio::test]
async fn over_the_body_limit_is_413() {
    let (bus, server) = server().await;
    let big = format!(
        r#"{{"type":"task.created","data":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let reply = post_json(&server.url("/api/events"), &big).await;
    assert_eq!(reply.status, 413);
    assert!(reply.error().contains("4096"), "{}", reply.error());
    assert_eq!(bus.stats().events_published, 0);
    // To the byte: 4096 is taken, 4097 is not.
    let sized = |len: usize| {
        let frame = r#"{"type":"task.created","data":{"pad":""}}"#.len();
        format!(
            r#"{{"type":"task.created","data":{{"pad":"{}"}}}}"#,
            "x".repeat(len - frame)
        )
    };
    let fits = post_json(&server.url("/api/events"), &sized(4096)).await;
    assert_eq!(fits.status, 200, "{}", fits.error());
    let over = post_json(&server.url("/api/events"), &sized(4097)).await;
    assert_eq!(over.status, 413, "{}", over.error());
    assert_eq!(bus.stats().events_published, 1);
}

#[tokio::test]
async fn not_json_is_415() {
    let (bus, server) = server().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> =
            content_type.iter().map(|c| ("content-type", *c)).collect();
        let reply = request(
            "POST",
            &server.url("/api/events"),
            &headers,
            r#"{"type":"task.created"}"#,
        )
        .await;
        assert_eq!(reply.status, 415, "{content_type:?}");
        assert!(reply.error().contains("application/json"));
    }
    // Parameters and +json media types are JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.agentbus+json",
    ] {
        let reply = request(
            "POST",
            &server.url("/api/events"),
            &[("content-type", content_type)],
            r#"{"type":"task.created"}"#,
        )
        .await;
        assert_eq!(reply.status, 200, "{content_type}");
    }
    assert_eq!(bus.stats().events_published, 2);
}

#[tokio::test]
async fn token_guards_every_route_but_health() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).token(Some("s3cret".into()))).await;
    assert_eq!(get(&server.url("/api/health")).await.status, 200);
    for path in [
        "/",
        "/api/events",
        "/api/stats",
        "/api/openapi.json",
        "/api/stream",
        "/ws",
    ] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, 401, "{path}");
        assert!(reply.error().contains("token"));
        assert!(reply.headers.contains_key("www-authenticate"));
        let wrong = request(
            "GET",
            &server.url(path),
            &[("authorization", "Bearer s3cre")],
            "",
        )
        .await;
        assert_eq!(wrong.status, 401, "{path}");
    }
    let post = post_json(&server.url("/api/events"), r#"{"type":"task.created"}"#).await;
    assert_eq!(post.status, 401);
    assert_eq!(bus.stats().events_published, 0);

    let ok = request(
        "GET",
        &server.url("/api/stats"),
        &[("authorization", "Bearer s3cret")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    let ok = get(&server.url("/api/stats?token=s3cret")).await;
    assert_eq!(ok.status, 200);
    let posted = request(
        "POST",
        &server.url("/api/events"),
        &[
            ("content-type", "application/json"),
            ("authorization", "bearer s3cret"),
        ],
        r#"{"type":"task.created"}"#,
    )
    .await;
    assert_eq!(posted.status, 200);
    let socket = tokio_tungstenite::connect_async(server.ws_url("/ws?token=s3cret")).await;
    assert!(socket.is_ok());
}

#[tokio::test]
async fn out_of_range_query_parameters_and_headers_are_400() {
    let (_bus, server) = server().await;
    for (path, needle) in [
        ("/api/events?limit=0", "limit"),
        ("/api/events?limit=10001", "limit"),
        ("/api/events?limit=-1", "limit"),
        ("/api/events?limit=99999999999999999999999", "limit"),
        ("/api/events?order=sideways", "order"),
        ("/api/events?type=task.finished", "type"),
        ("/api/events?circle_id=abc", "circle_id"),
        ("/api/events?circle_id=9223372036854775808", "circle_id"),
        ("/api/events?correlation_id=nope", "correlation_id"),
        ("/api/events?after=-5", "after"),
        ("/api/events?after=3", "store"),
        ("/api/events?colour=red", "colour"),
        ("/api/events/not-an-id", "not-an-id"),
        ("/ws?type=bogus", "type"),
        ("/ws?after=1", "store"),
        ("/api/stream?project_id=1e3", "project_id"),
    ] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, 400, "{path}");
        assert!(reply.error().contains(needle), "{path}: {}", reply.error());
    }
    let bad_header = request(
        "GET",
        &server.url("/api/stream"),
        &[("last-event-id", "minus one")],
        "",
    )
    .await;
    assert_eq!(bad_header.status, 400);
    assert!(bad_header.error().contains("Last-Event-ID"));
    // Empty values mean "not set".
    let empty =
        get(&server.url("/api/events?type=&circle_id=&source_agent_id=&project_id=&limit=")).await;
    assert_eq!(empty.status, 200);
    let missing = get(&server.url("/api/events/01890a5d-ac96-774b-bcce-b302099a8057")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.error().contains("no event"));
    let nowhere = get(&server.url("/nowhere")).await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.error().contains("route"));
    // Plain GET on /ws is not an upgrade.
    let plain = get(&server.url("/ws")).await;
    assert!((400..500).contains(&plain.status), "{}", plain.status);
    assert!(plain.error().contains("websocket"));
    assert_eq!(get(&server.url("/api/health")).await.status, 200);
}
