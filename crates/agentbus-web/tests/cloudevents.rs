//! CloudEvents over the API, with the Rust CloudEvents SDK as the client:
//! its events posted in structured, batch and binary mode arrive intact
//! (read back through the API and from the store), our
//! `?format=cloudevents` reads, WebSocket and SSE frames parse with it into
//! the same values, the mapping round-trips over many generated events,
//! and bad CloudEvents are a 400 naming the attribute.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use agentbus::{Event, EventBus, EventType, HistoryQuery, TraceContext};
use agentbus_guard::Schemas;
use agentbus_store::{EventStore, Recorder, SqliteStore};
use agentbus_web::{CloudEvent, PublishReply, RejectedReply, WebApi};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, EventBuilder, EventBuilderV10};
use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// The SDK's event for `event`, built attribute by attribute from the
/// mapping table (not through our encoder).
fn sdk_event(event: &Event) -> cloudevents::Event {
    let source = match (event.circle_id, event.source_agent_id) {
        (None, None) => "/agentbus".to_owned(),
        (Some(c), None) => format!("/agentbus/circles/{c}"),
        (None, Some(a)) => format!("/agentbus/agents/{a}"),
        (Some(c), Some(a)) => format!("/agentbus/circles/{c}/agents/{a}"),
    };
    let mut builder = EventBuilderV10::new()
        .id(event.id.to_string())
        .ty(event.event_type.as_str())
        .source(source)
        .time(humantime::format_rfc3339_nanos(event.timestamp).to_string())
        .data("application/json", event.data.clone());
    if let Some(project) = event.project_id {
        builder = builder.extension("agentbusproject", project.to_string());
    }
    if let Some(id) = event.correlation_id {
        builder = builder.extension("agentbuscorrelation", id.to_string());
    }
    if let Some(id) = event.causation_id {
        builder = builder.extension("agentbuscausation", id.to_string());
    }
    if let Some(context) = &event.trace_context {
        builder = builder.extension("traceparent", context.traceparent.to_string());
        if let Some(state) = &context.tracestate {
            builder = builder.extension("tracestate", state.to_string());
        }
    }
    builder.build().unwrap()
}

/// The event an SDK event carries, read from the SDK's accessors.
fn assert_same(parsed: &cloudevents::Event, expected: &Event) {
    let sent = sdk_event(expected);
    assert_eq!(parsed.id(), sent.id());
    assert_eq!(parsed.ty(), sent.ty());
    assert_eq!(parsed.source(), sent.source());
    assert_eq!(parsed.specversion(), sent.specversion());
    let since = expected.timestamp.duration_since(UNIX_EPOCH).unwrap();
    let time = parsed.time().unwrap();
    assert_eq!(
        (time.timestamp(), time.timestamp_subsec_nanos()),
        (since.as_secs() as i64, since.subsec_nanos())
    );
    assert_eq!(parsed.datacontenttype(), Some("application/json"));
    assert_eq!(parsed.data(), Some(&Data::Json(expected.data.clone())));
    for (name, value) in sent.iter_extensions() {
        assert_eq!(parsed.extension(name), Some(value), "extension {name}");
    }
}

fn sample(event_type: EventType, n: i64) -> Event {
    Event::new(event_type)
        .with_data(
            json!({"n": n, "text": "héllo wörld ✓ 日本", "nested": {"list": [1, 2.5, null, true]}}),
        )
        .with_circle(n)
        .with_source_agent(-n)
        .with_project(1 << 40)
        .with_correlation(Event::new(EventType::TaskCreated).id)
        .with_trace_context(TraceContext::parse(PARENT, Some("rojo=1")).unwrap())
}

fn stored_api(dir: &tempfile::TempDir) -> (EventBus, Recorder, WebApi) {
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open(dir.path().join("ce.db")).unwrap());
    let api = WebApi::new(bus.clone()).store(recorder.clone());
    (bus, recorder, api)
}

#[tokio::test]
async fn sdk_events_posted_in_every_mode_arrive_intact() {
    // A publish that never returns fails the test instead of hanging it.
    let _deadline = agentbus_testkit::deadline::deadline();
    let dir = tempfile::tempdir().unwrap();
    let (_bus, recorder, api) = stored_api(&dir);
    let server = Server::start(api).await;
    let url = server.url("/api/events");

    // Structured: one event.
    let one = sample(EventType::TaskCompleted, 1);
    let body = serde_json::to_vec(&sdk_event(&one)).unwrap();
    let reply = request("POST", &url, &[("content-type", STRUCTURED)], body).await;
    reply.assert_status(200);
    let published: PublishReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(published.ids, vec![one.id]);
    assert_eq!(published.sequences, Some(vec![Some(1)]));

    // Batch: three events, one with null data and nothing optional.
    let mut batch = vec![
        sample(EventType::MemoryShared, 2),
        Event::new(EventType::SystemWarning).with_data(Value::Null),
        sample(EventType::AgentToolExecuted, 3),
    ];
    batch[2] = batch[2].clone().caused_by(&batch[0]);
    let sdk_batch: Vec<cloudevents::Event> = batch.iter().map(sdk_event).collect();
    let reply = request(
        "POST",
        &url,
        &[("content-type", BATCH)],
        serde_json::to_vec(&sdk_batch).unwrap(),
    )
    .await;
    reply.assert_status(200);
    let published: PublishReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(published.sequences, Some(vec![Some(2), Some(3), Some(4)]));

    // Binary: the SDK's own HTTP binding writes the `ce-*` headers.
    // With a cause: `ce-agentbuscausation` as well as the correlation.
    let binary = sample(EventType::CircleMemberAdded, 4).caused_by(&one);
    let http: hyper::http::Request<Option<Vec<u8>>> =
        hyper::http::Request::try_from(sdk_event(&binary)).unwrap();
    let headers: Vec<(String, String)> = http
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    assert!(headers.iter().any(|(name, _)| name == "ce-agentbusproject"));
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let reply = request(
        "POST",
        &url,
        &header_refs,
        http.into_body().unwrap_or_default(),
    )
    .await;
    reply.assert_status(200);

    let mut all = vec![one];
    all.extend(batch);
    all.push(binary);
    for (index, event) in all.iter().enumerate() {
        // Through the API, in the core's JSON...
        let read = get(&server.url(&format!("/api/events/{}", event.id))).await;
        let read: agentbus_web::SequencedEvent = serde_json::from_slice(&read.body).unwrap();
        assert_eq!(&read.event, event, "event {index} through the api");
        assert_eq!(read.sequence, Some(index as u64 + 1));
        // ...and from the store itself.
        let stored = recorder.store().get(event.id).await.unwrap().unwrap();
        assert_eq!(&*stored.event, event, "event {index} in the store");
    }

    // Read back as CloudEvents, the SDK parses the batch into the same values.
    let page = get(&server.url("/api/events?format=cloudevents&limit=3")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], BATCH);
    assert_eq!(page.headers["agentbus-next"], "3");
    let parsed: Vec<cloudevents::Event> = serde_json::from_slice(&page.body).unwrap();
    assert_eq!(parsed.len(), 3);
    for (parsed, (index, event)) in parsed.iter().zip(all.iter().enumerate()) {
        assert_same(parsed, event);
        assert_eq!(
            parsed.extension("agentbussequence"),
            Some(&ExtensionValue::String((index + 1).to_string()))
        );
    }
    let last = get(&server.url("/api/events?format=cloudevents&after=3")).await;
    assert!(last.headers.get("agentbus-next").is_none());
    let parsed: Vec<cloudevents::Event> = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(parsed.len(), 2);

    // One event: a structured-mode CloudEvent.
    let one = get(&server.url(&format!("/api/events/{}?format=cloudevents", all[4].id))).await;
    assert_eq!(one.headers["content-type"], STRUCTURED);
    let parsed: cloudevents::Event = serde_json::from_slice(&one.body).unwrap();
    assert_same(&parsed, &all[4]);
}

#[tokio::test]
async fn without_a_store_reads_come_from_the_history() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let event = sample(EventType::TaskCreated, 9);
    bus.publish(event.clone()).await;
    let page = get(&server.url("/api/events?format=cloudevents")).await;
    let parsed: Vec<cloudevents::Event> = serde_json::from_slice(&page.body).unwrap();
    assert_same(&parsed[0], &event);
    assert!(parsed[0].extension("agentbussequence").is_none());
    // `json`, the default, by name: the native form.
    let native = get(&server.url("/api/events?format=json")).await.json();
    assert_eq!(native["events"][0]["id"], event.id.to_string(), "{native}");
    assert_eq!(native["events"][0]["type"], "task.created", "{native}");
    let reply = get(&server.url("/api/events?format=xml")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        r#"query parameter `format`: expected "json" or "cloudevents", got "xml""#
    );
}

/// Events and their CloudEvents form agree both ways over many generated
/// events: every type, unicode and odd JSON in `data`, every combination of
/// the optional fields, any nanosecond; and the SDK reading our JSON and
/// writing it again changes nothing.
#[test]
fn the_mapping_round_trips_exactly() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let texts = [
        "",
        "ascii",
        "ünïcødé",
        "日本語",
        "emoji 🚀",
        "quote \" back \\ nl \n",
        "\u{0}",
    ];
    for round in 0..2000 {
        let event_type = EventType::ALL[(next() % EventType::COUNT as u64) as usize];
        let mut event = Event::new(event_type);
        event.timestamp =
            UNIX_EPOCH + Duration::new(next() % 253_402_300_799, (next() % 1_000_000_000) as u32);
        let text = texts[(next() % texts.len() as u64) as usize];
        event.data = match next() % 5 {
            0 => json!({"text": text, "n": next() as i64, "u": next(), "f": 0.1 + round as f64}),
            1 => json!([text, null, false, {"deep": [[]]}]),
            2 => Value::Null,
            3 => json!(text),
            _ => json!({}),
        };
        let id = |next: &mut dyn FnMut() -> u64| Some(next() as i64);
        event.circle_id = if next() % 2 == 0 { id(&mut next) } else { None };
        event.source_agent_id = if next() % 2 == 0 { id(&mut next) } else { None };
        event.project_id = if next() % 2 == 0 { id(&mut next) } else { None };
        if next() % 2 == 0 {
            event = event.caused_by(&Event::new(EventType::TaskCreated));
        }
        if next() % 3 == 0 {
            let state = (next() % 2 == 0).then_some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
            event.trace_context = Some(TraceContext::parse(PARENT, state).unwrap());
        }
        let json = serde_json::to_string(&CloudEvent::new(event.clone())).unwrap();
        let back: CloudEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.event, event, "round {round}: {json}");

        let sdk: cloudevents::Event = serde_json::from_str(&json).unwrap();
        assert_same(&sdk, &event);
        let again: CloudEvent = serde_json::from_slice(&serde_json::to_vec(&sdk).unwrap()).unwrap();
        assert_eq!(again.event, event, "round {round} through the sdk");
    }
}

#[tokio::test]
async fn bad_cloudevents_are_a_400_naming_the_attribute_and_nothing_is_published() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let url = server.url("/api/events");
    let id = Event::new(EventType::TaskCreated).id.to_string();
    let good =
        json!({"specversion": "1.0", "id": id, "type": "task.created", "source": "/agentbus"});
    let with = |key: &str, value: Value| {
        let mut event = good.clone();
        if value.is_null() {
            event.as_object_mut().unwrap().remove(key);
        } else {
            event[key] = value;
        }
        event
    };
    for (event, expected) in [
        (with("specversion", Value::Null), "attribute `specversion`: missing"),
        (
            with("specversion", json!("0.3")),
            "attribute `specversion`: \"0.3\" is not supported: only 1.0",
        ),
        (with("id", Value::Null), "attribute `id`: missing"),
        (with("type", Value::Null), "attribute `type`: missing"),
        (with("source", Value::Null), "attribute `source`: missing"),
        (
            with("time", json!("last tuesday")),
            "attribute `time`: \"last tuesday\" is not an rfc 3339 time such as \"2026-11-23T23:54:30.123456789Z\"",
        ),
        (
            with("time", json!("2026-11-24T01:54:30.5++2:00")),
            "attribute `time`: \"2026-11-24T01:54:30.5++2:00\" is not an rfc 3339 time such as \"2026-11-23T23:54:30.123456789Z\"",
        ),
        // In range as written, outside it once in UTC.
        (
            with("time", json!("1970-01-01T00:30:00.000000000+01:00")),
            "field `timestamp`: must be between 1970-01-01 and 9999-12-31",
        ),
        (
            with("time", json!("9999-12-31T23:30:00.000000000-01:00")),
            "field `timestamp`: must be between 1970-01-01 and 9999-12-31",
        ),
        (
            with("agentbusproject", json!(true)),
            "attribute `agentbusproject`: invalid type: boolean `true`, expected an integer or a string",
        ),
        (
            with("type", json!("com.example.order.placed")),
            "attribute `type`: unknown event type \"com.example.order.placed\": this bus carries only its own types, such as \"task.completed\"",
        ),
        (
            with("source", json!("https://orders.example.com")),
            "attribute `source`: \"https://orders.example.com\" is not an agentbus source: expected /agentbus, /agentbus/circles/{id}, /agentbus/agents/{id} or /agentbus/circles/{id}/agents/{id} (decimal integer ids as the bus writes them)",
        ),
        (
            with("id", json!("A234-1234-1234")),
            "attribute `id`: \"A234-1234-1234\" is not an agentbus event id (a uuid)",
        ),
        (
            with("id", json!(5)),
            "attribute `id`: invalid type: integer `5`, expected a string",
        ),
        (
            with("datacontenttype", json!("text/plain")),
            "attribute `datacontenttype`: \"text/plain\": the bus carries json data only",
        ),
        (
            with("data_base64", json!("aGk=")),
            "attribute `data_base64`: the bus carries json data only: send it in `data`",
        ),
        (
            with("agentbusproject", json!("seven")),
            "attribute `agentbusproject`: expected a 64-bit integer, got \"seven\"",
        ),
        (
            with("traceparent", json!("00-abc")),
            "attribute `traceparent`: invalid traceparent: shorter than 55 characters",
        ),
    ] {
        let reply = request(
            "POST",
            &url,
            &[("content-type", STRUCTURED)],
            event.to_string(),
        )
        .await;
        assert_eq!(reply.status, 400, "{event}");
        assert_eq!(reply.error(), expected, "{event}");
    }
    // In a batch the error names the event.
    let batch = json!([good, with("type", Value::Null)]);
    let reply = request("POST", &url, &[("content-type", BATCH)], batch.to_string()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "event 1: attribute `type`: missing");
    let reply = request("POST", &url, &[("content-type", BATCH)], "[]").await;
    assert_eq!(reply.error(), "the array holds no event");
    let reply = request("POST", &url, &[("content-type", STRUCTURED)], "[]").await;
    assert_eq!(reply.status, 400);
    // Binary mode: the same checks on the headers.
    let reply = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-type", "task.created"),
            ("ce-source", "/agentbus"),
        ],
        "{}",
    )
    .await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "attribute `id`: missing")
    );
    let reply = request(
        "POST",
        &url,
        &[
            ("content-type", "text/plain"),
            ("ce-specversion", "1.0"),
            ("ce-id", &id),
            ("ce-type", "task.created"),
            ("ce-source", "/agentbus"),
        ],
        "hello",
    )
    .await;
    assert_eq!(reply.status, 415);
    assert!(bus.history(&HistoryQuery::new()).is_empty());
    assert_eq!(bus.stats().events_published, 0);

    // Extensions the bus has no field for are dropped; null is absent.
    let extra = with("subject", json!("order 7"));
    let mut extra = extra;
    extra["comexampleext"] = json!("x");
    extra["time"] = Value::Null;
    let reply = request(
        "POST",
        &url,
        &[("content-type", STRUCTURED)],
        extra.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.error());
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
}

/// A binary-mode event with no data has no body, so it needs no
/// `Content-Type`; any body without one is still a 415, and so is an empty
/// body that is not a binary-mode event.
#[tokio::test]
async fn a_binary_event_without_data_needs_no_content_type() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let url = server.url("/api/events");
    let event = Event::new(EventType::TaskCreated);
    let id = event.id.to_string();
    let attributes = [
        ("ce-specversion", "1.0"),
        ("ce-id", id.as_str()),
        ("ce-type", "task.created"),
        ("ce-source", "/agentbus"),
    ];
    let with_length = |length: &'static str| {
        let mut headers = attributes.to_vec();
        headers.push(("content-length", length));
        headers
    };
    let reply = request("POST", &url, &with_length("2"), "{}").await;
    reply.assert_status(415);
    let reply = request("POST", &url, &[("content-length", "0")], "").await;
    reply.assert_status(415);
    assert_eq!(bus.stats().events_published, 0);

    let reply = request("POST", &url, &with_length("0"), "").await;
    reply.assert_status(200);
    let published = bus.history(&HistoryQuery::new());
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, event.id);

    // With a JSON content type: a body of blanks is no data (the event's
    // default, `{}`), any other body is the data (here without a blank).
    for (body, data) in [
        (" \n\t", json!({})),
        (r#"{"n":[1,2]}"#, json!({"n": [1, 2]})),
    ] {
        let id = Event::new(EventType::TaskCreated).id.to_string();
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(
            attributes
                .iter()
                .map(|&(name, value)| (name, if name == "ce-id" { id.as_str() } else { value })),
        );
        let reply = request("POST", &url, &headers, body).await;
        reply.assert_status(200);
        let published = bus.history(&HistoryQuery::new());
        let event = published.iter().find(|e| e.id.to_string() == id).unwrap();
        assert_eq!(event.data, data, "{body:?}");
    }
}

#[tokio::test]
async fn guards_answer_cloudevents_posts_as_they_answer_native_ones() {
    let schemas = Schemas::new()
        .schema(
            EventType::TaskCompleted,
            json!({"type": "object", "required": ["task_id"]}),
        )
        .unwrap();
    let bus = EventBus::builder().guard(schemas).build();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let good = sdk_event(&Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 1})));
    let bad = sdk_event(&Event::new(EventType::TaskCompleted).with_data(json!({})));
    let reply = request(
        "POST",
        &server.url("/api/events"),
        &[("content-type", BATCH)],
        serde_json::to_vec(&[good, bad]).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 422);
    let rejected: RejectedReply = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (rejected.reason.as_str(), rejected.index),
        ("invalid", Some(1))
    );
    assert_eq!(bus.stats().events_published, 0);
}

#[tokio::test]
async fn websocket_and_sse_clients_get_cloudevents_with_format_cloudevents() {
    // A publish that never returns fails the test instead of hanging it.
    let _deadline = agentbus_testkit::deadline::deadline();
    let dir = tempfile::tempdir().unwrap();
    let (_bus, _recorder, api) = stored_api(&dir);
    let server = Server::start(api).await;
    let mut ws = connect_ws(&server.ws_url("/ws?format=cloudevents")).await;
    let mut native = connect_ws(&server.ws_url("/ws")).await;
    let mut sse = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    sse.write_all(
        b"GET /api/stream?format=cloudevents HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    wait_for_clients(&server, 3).await;
    let event = sample(EventType::ConversationMessage, 11);
    let reply = request(
        "POST",
        &server.url("/api/events"),
        &[("content-type", STRUCTURED)],
        serde_json::to_vec(&sdk_event(&event)).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);

    let frame = next_json(&mut ws, ARRIVAL).await;
    let parsed: cloudevents::Event = serde_json::from_value(frame.clone()).unwrap();
    assert_same(&parsed, &event);
    assert_eq!(frame["agentbussequence"], "1");
    let ours: CloudEvent = serde_json::from_value(frame).unwrap();
    assert_eq!((ours.event, ours.sequence), (event.clone(), Some(1)));
    // Another client on the same hub still gets the core's JSON.
    let frame = next_json(&mut native, ARRIVAL).await;
    assert_eq!(frame["type"], "conversation.message");
    assert_eq!(frame["sequence"], 1);

    let text = read_until_sse_data(&mut sse, ARRIVAL).await;
    assert!(text.lines().any(|line| line == "id: 1"), "{text}");
    let data = text.lines().find(|l| l.starts_with("data:")).unwrap();
    let parsed: cloudevents::Event =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_same(&parsed, &event);
}
