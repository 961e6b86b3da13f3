//! The API end to end: health, publish, read back, live over WebSocket.

mod common;

use agentbus::EventBus;
use agentbus_web::WebApi;
use common::*;

#[tokio::test]
async fn health_publish_read_and_live() {
    let bus = EventBus::new();
    let api = WebApi::new(bus.clone());
    // `bus()` is the very bus given, not a copy or a new one.
    api.bus()
        .publish_blocking(agentbus::Event::new(agentbus::EventType::SystemError));
    assert_eq!(bus.stats().events_published, 1);
    let server = Server::start(api).await;

    let health = get(&server.url("/api/health")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));

    let mut socket = connect_ws(&server.ws_url("/ws?type=task.completed")).await;

    let reply = post_json(
        &server.url("/api/events"),
        r#"[{"type":"task.created","circle_id":5},{"type":"task.completed","circle_id":5,"data":{"task_id":1}}]"#,
    )
    .await;
    reply.assert_status(200);
    let ids = reply.json()["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2);
    assert!(reply.json()["sequences"].is_null());
    assert_eq!(bus.stats().events_published, 3);

    let live = next_json(&mut socket, ARRIVAL).await;
    assert_eq!(live["type"], "task.completed");
    assert_eq!(live["id"], ids[1]);
    assert_eq!(live["data"]["task_id"], 1);

    let page = get(&server.url("/api/events?circle_id=5&order=asc"))
        .await
        .json();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], ids[0]);
    assert_eq!(events[1]["id"], ids[1]);

    let one = get(&server.url(&format!("/api/events/{}", ids[0].as_str().unwrap()))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["type"], "task.created");

    let stats = get(&server.url("/api/stats")).await.json();
    assert_eq!(stats["events_published"], 3);
    // Only the types published, each with its count.
    assert_eq!(
        stats["per_type"],
        serde_json::json!({"system.error": 1, "task.created": 1, "task.completed": 1})
    );
    assert_eq!(stats["websocket_clients"], 1);
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_type() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    let reply = get(&server.url("/api/openapi.json")).await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/health",
        "/api/events",
        "/api/events/{id}",
        "/api/stats",
        "/api/stream",
        "/ws",
        "/api/openapi.json",
        "/",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    let types: Vec<String> =
        serde_json::from_value(doc["components"]["schemas"]["EventType"]["enum"].clone()).unwrap();
    let ours: Vec<&str> = agentbus::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ours);

    // CloudEvents: the content types in and out, and `format` wherever
    // events are read.
    let post = &doc["paths"]["/api/events"]["post"];
    for media in [
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    ] {
        assert!(
            post["requestBody"]["content"].get(media).is_some(),
            "{media}"
        );
    }
    assert!(post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "ce-specversion" && p["in"] == "header"));
    let read = &doc["paths"]["/api/events"]["get"]["responses"]["200"];
    assert!(read["content"]
        .get("application/cloudevents-batch+json")
        .is_some());
    assert!(read["headers"].get("Agentbus-Next").is_some());
    for path in ["/api/events", "/api/events/{id}", "/api/stream", "/ws"] {
        let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let format = parameters.iter().find(|p| p["name"] == "format");
        assert_eq!(
            format.map(|p| p["schema"]["enum"].clone()),
            Some(serde_json::json!(["json", "cloudevents"])),
            "{path}"
        );
    }
    let cloud_event = &doc["components"]["schemas"]["CloudEvent"];
    assert_eq!(
        cloud_event["required"],
        serde_json::json!(["specversion", "id", "type", "source"])
    );
}

#[tokio::test]
async fn dashboard_is_one_self_contained_page() {
    let server = Server::start(WebApi::new(EventBus::new())).await;
    let reply = get(&server.url("/")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(
        page.contains("\"task.conflict.detected\""),
        "event types are filled in"
    );
    assert!(!page.contains("__EVENT_TYPES__"));
    // Nothing is fetched from elsewhere: no CDN, no external script or font.
    for needle in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(needle), "external asset: {needle}");
    }
}
