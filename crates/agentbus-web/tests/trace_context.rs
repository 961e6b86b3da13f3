//! W3C trace context over the API: a `POST`'s `traceparent` header goes to
//! the events that have none, a bad one is a 400, and WebSocket and SSE
//! clients get the context with each event.

mod common;

use agentbus::{Event, EventBus, EventType, HistoryQuery, TraceContext};
use agentbus_web::WebApi;
use common::*;
use tokio::io::AsyncWriteExt;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OWN: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

#[tokio::test]
async fn post_traceparent_goes_to_events_without_one() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let body = format!(
        r#"[{{"type":"task.created","circle_id":1}},
            {{"type":"task.created","circle_id":2,"traceparent":"{OWN}"}}]"#
    );
    let reply = request(
        "POST",
        &server.url("/api/events"),
        &[
            ("content-type", "application/json"),
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.error());
    let mut events = bus.history(&HistoryQuery::new());
    events.sort_by_key(|event| event.circle_id);
    assert_eq!(
        events[0].trace_context,
        Some(TraceContext::parse(PARENT, Some("rojo=1")).unwrap())
    );
    assert_eq!(
        events[1].trace_context,
        Some(TraceContext::parse(OWN, None).unwrap())
    );

    // A tracestate alone is ignored; no header leaves the event untraced.
    let reply = request(
        "POST",
        &server.url("/api/events"),
        &[
            ("content-type", "application/json"),
            ("tracestate", "rojo=1"),
        ],
        r#"{"type":"task.failed"}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    let failed = bus.history(&HistoryQuery::new().event_type(EventType::TaskFailed));
    assert_eq!(failed[0].trace_context, None);
}

#[tokio::test]
async fn a_bad_trace_header_is_a_400_and_nothing_is_published() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    for (headers, expected) in [
        (
            [("traceparent", "00-abc"), ("tracestate", "rojo=1")],
            "header invalid traceparent: shorter than 55 characters",
        ),
        (
            [("traceparent", PARENT), ("tracestate", "Rojo=1")],
            "header invalid tracestate: a key is not a W3C tracestate key",
        ),
    ] {
        let mut all = vec![("content-type", "application/json")];
        all.extend(headers);
        let reply = request(
            "POST",
            &server.url("/api/events"),
            &all,
            r#"{"type":"task.created"}"#,
        )
        .await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.error(), expected);
    }
    assert_eq!(bus.stats().events_published, 0);
}

#[tokio::test]
async fn websocket_and_sse_clients_get_the_trace_context() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let mut ws = connect_ws(&server.ws_url("/ws")).await;
    let mut sse = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    sse.write_all(
        b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    wait_for_clients(&server, 2).await;
    let context = TraceContext::parse(PARENT, Some("rojo=1")).unwrap();
    bus.publish(Event::new(EventType::MemoryShared).with_trace_context(context))
        .await;

    let frame = next_json(&mut ws, ARRIVAL).await;
    assert_eq!(frame["traceparent"], PARENT);
    assert_eq!(frame["tracestate"], "rojo=1");

    let text = read_until_sse_data(&mut sse, ARRIVAL).await;
    let data = text.lines().find(|l| l.starts_with("data:")).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(event["traceparent"], PARENT);
    assert_eq!(event["tracestate"], "rojo=1");
}
