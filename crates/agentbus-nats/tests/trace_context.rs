//! W3C trace context crosses the bridge as `traceparent`/`tracestate`
//! headers both ways: a traced event goes out with them, and a message whose
//! JSON has no trace context takes it from its headers (invalid headers are
//! ignored, as the W3C rules say).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, TraceContext};
use agentbus_nats::{BridgeConfig, NatsBridge};
use agentbus_testkit::NatsServer;
use bytes::Bytes;
use common::{runtime, shut_down, wait_until};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "rojo=00f067aa0ba902b7";

fn trace_headers_cross_both_ways(jetstream: bool) {
    let Some(server) = NatsServer::start_or_skip("trace_headers_cross_both_ways") else {
        return;
    };
    let rt = runtime();
    let bus = EventBus::new();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    bus.subscribe(EventType::TaskCompleted, move |event: &Event| {
        sink.lock().unwrap().push(event.clone());
    });
    let bridge = rt
        .block_on(NatsBridge::connect(
            &server.url(),
            &bus,
            BridgeConfig::default().name("traced").jetstream(jetstream),
        ))
        .expect("connects");
    let raw = rt
        .block_on(async_nats::connect(server.url()))
        .expect("raw client connects");

    // Out: the headers carry the event's context.
    let mut sub = rt.block_on(raw.subscribe("agentbus.task.started")).unwrap();
    let _ = rt.block_on(raw.request("_test_sync", Bytes::new()));
    let context = TraceContext::parse(PARENT, Some(STATE)).unwrap();
    bus.publish_blocking(Event::new(EventType::TaskStarted).with_trace_context(context.clone()));
    let out = rt.block_on(async {
        use futures_util::StreamExt;
        tokio::time::timeout(Duration::from_secs(10), sub.next()).await
    });
    let out = out.expect("the event went out").expect("a message");
    let headers = out.headers.expect("headers");
    assert_eq!(headers.get("traceparent").map(|v| v.as_str()), Some(PARENT));
    assert_eq!(headers.get("tracestate").map(|v| v.as_str()), Some(STATE));
    let sent = Event::from_json_slice(&out.payload).unwrap();
    assert_eq!(sent.trace_context, Some(context.clone()));

    // In: headers only (a producer that does not put it in the JSON), a
    // context in the JSON (kept over the headers), invalid headers (ignored).
    let plain = |circle: i64| {
        Bytes::from(
            Event::new(EventType::TaskCompleted)
                .with_circle(circle)
                .to_json()
                .unwrap(),
        )
    };
    let headers = |traceparent: &str, tracestate: &str| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", traceparent);
        headers.insert("tracestate", tracestate);
        headers
    };
    let other = TraceContext::parse(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        None,
    )
    .unwrap();
    let in_json = Bytes::from(
        Event::new(EventType::TaskCompleted)
            .with_circle(2)
            .with_trace_context(other.clone())
            .to_json()
            .unwrap(),
    );
    rt.block_on(async {
        raw.publish_with_headers("agentbus.task.completed", headers(PARENT, STATE), plain(1))
            .await
            .unwrap();
        raw.publish_with_headers("agentbus.task.completed", headers(PARENT, STATE), in_json)
            .await
            .unwrap();
        raw.publish_with_headers("agentbus.task.completed", headers("00-zz", STATE), plain(3))
            .await
            .unwrap();
        raw.publish_with_headers(
            "agentbus.task.completed",
            headers(PARENT, "Bad Key"),
            plain(4),
        )
        .await
        .unwrap();
        raw.flush().await.unwrap();
    });
    assert!(wait_until(Duration::from_secs(10), || received
        .lock()
        .unwrap()
        .len()
        == 4));
    let mut by_circle = received.lock().unwrap().clone();
    by_circle.sort_by_key(|event| event.circle_id);
    let contexts: Vec<_> = by_circle.into_iter().map(|e| e.trace_context).collect();
    assert_eq!(
        contexts,
        [
            Some(context),
            Some(other),
            None,
            Some(TraceContext::parse(PARENT, None).unwrap()),
        ]
    );
    shut_down(&rt, bridge);
}

#[test]
fn core_trace_headers_cross_both_ways() {
    trace_headers_cross_both_ways(false);
}

#[test]
fn jetstream_trace_headers_cross_both_ways() {
    trace_headers_cross_both_ways(true);
}
