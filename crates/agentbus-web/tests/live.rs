//! WebSocket and SSE without a store: filters, a slow client told it
//! lagged without slowing the others, clients that ping, send garbage or
//! never read, bursts of connections, and a router built outside any
//! runtime.

mod common;

use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_web::WebApi;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_websocket_ping_is_answered_and_the_feed_goes_on() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let mut socket = connect_ws(&server.ws_url("/ws")).await;
    wait_for_clients(&server, 1).await;

    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("no answer to the ping in 10 s")
        .expect("websocket closed")
        .expect("websocket error");
    assert_eq!(answer, Message::Pong(b"are you there".to_vec().into()));
    let event = Event::new(EventType::TaskCreated);
    bus.publish(event.clone()).await;
    let got = next_json(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(got["id"], json!(event.id.to_string()));
}

/// Built outside any runtime, the router cannot start its hub: it starts
/// with the first request, and live clients then get every event.
#[tokio::test]
async fn a_router_built_outside_any_runtime_starts_its_hub_with_the_first_request() {
    let bus = EventBus::new();
    let router = std::thread::spawn({
        let bus = bus.clone();
        move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            WebApi::new(bus).router()
        }
    })
    .join()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::serving(listener, router);

    let mut socket = connect_ws(&server.ws_url("/ws")).await;
    wait_for_clients(&server, 1).await;
    let event = Event::new(EventType::TaskCreated);
    bus.publish(event.clone()).await;
    let got = next_json(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(got["id"], json!(event.id.to_string()));
}

#[tokio::test]
async fn websocket_filters_by_type_circle_agent_and_project() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let mut typed = connect_ws(&server.ws_url("/ws?type=task.failed,system.error")).await;
    let mut scoped =
        connect_ws(&server.ws_url("/ws?circle_id=2&source_agent_id=7&project_id=3")).await;
    let events = [
        Event::new(EventType::TaskCreated)
            .with_circle(2)
            .with_source_agent(7)
            .with_project(3),
        Event::new(EventType::TaskFailed).with_circle(1),
        Event::new(EventType::TaskFailed)
            .with_circle(2)
            .with_source_agent(7),
        Event::new(EventType::SystemError)
            .with_circle(2)
            .with_source_agent(7)
            .with_project(3),
    ];
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    // Wait until both sockets are counted, so none can miss an event.
    wait_for_clients(&server, 2).await;
    for event in events {
        bus.publish(event).await;
    }
    let got: Vec<_> = [
        next_json(&mut typed, ARRIVAL).await,
        next_json(&mut typed, ARRIVAL).await,
        next_json(&mut typed, ARRIVAL).await,
    ]
    .iter()
    .map(|e| e["id"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(got, [ids[1].clone(), ids[2].clone(), ids[3].clone()]);
    let first = next_json(&mut scoped, ARRIVAL).await;
    let second = next_json(&mut scoped, ARRIVAL).await;
    assert_eq!(
        [first["id"].clone(), second["id"].clone()],
        [json!(ids[0]), json!(ids[3])]
    );
    assert!(first.get("sequence").is_none());
}

#[tokio::test]
async fn sse_streams_matching_events() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /api/stream?type=memory.shared HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    wait_for_clients(&server, 1).await;
    bus.publish(Event::new(EventType::MemoryCreated)).await;
    let wanted = Event::new(EventType::MemoryShared).with_circle(4);
    let id = wanted.id.to_string();
    bus.publish(wanted).await;
    let text = read_sse_until(&mut stream, ARRIVAL, |text| text.contains(&id)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(!text.contains("memory.created"), "{text}");
    let data = text.lines().find(|l| l.starts_with("data:")).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(event["circle_id"], 4);
}

/// A client that stops reading gets `{"lagged": n}` once it reads again and
/// goes on; a fast client on the same server misses nothing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_client_is_told_it_lagged_and_others_are_not_slowed() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).client_buffer(64)).await;
    let mut slow = connect_ws(&server.ws_url("/ws")).await;
    let mut fast = connect_ws(&server.ws_url("/ws")).await;
    wait_for_clients(&server, 2).await;
    let padding = "x".repeat(8192);
    let total = 2000;
    // Paced so the fast client keeps up; the slow one reads nothing.
    for chunk in 0..total / 40 {
        for i in 0..40 {
            bus.publish(
                Event::new(EventType::MemoryCreated)
                    .with_data(json!({"n": chunk * 40 + i, "pad": padding})),
            )
            .await;
        }
        for i in 0..40 {
            let event = next_json(&mut fast, Duration::from_secs(10)).await;
            assert_eq!(
                event["data"]["n"],
                chunk * 40 + i,
                "the fast client lost or reordered events"
            );
        }
    }
    let mut received = 0u64;
    let mut lagged = 0u64;
    let mut last = -1i64;
    while received + lagged < total as u64 {
        let message = next_json(&mut slow, Duration::from_secs(10)).await;
        if let Some(n) = message.get("lagged") {
            lagged += n.as_u64().unwrap();
        } else {
            let n = message["data"]["n"].as_i64().unwrap();
            assert!(n > last, "out of order");
            last = n;
            received += 1;
        }
    }
    assert!(
        lagged > 0,
        "the slow client never lagged (received {received})"
    );
    assert_eq!(received + lagged, total as u64);
    // It goes on after the lag.
    bus.publish(Event::new(EventType::SystemWarning)).await;
    assert_eq!(
        next_json(&mut slow, ARRIVAL).await["type"],
        "system.warning"
    );
}

#[tokio::test]
async fn websocket_client_sending_garbage_is_ignored_or_dropped_alone() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let mut watcher = connect_ws(&server.ws_url("/ws")).await;
    // Text and binary messages are ignored; the feed goes on.
    let mut chatty = connect_ws(&server.ws_url("/ws")).await;
    chatty.send(Message::text("{not json")).await.unwrap();
    chatty
        .send(Message::binary(vec![0xff; 1000]))
        .await
        .unwrap();
    // A frame over the size limit closes only that connection.
    let mut huge = connect_ws(&server.ws_url("/ws")).await;
    wait_for_clients(&server, 3).await;
    let _ = huge.send(Message::binary(vec![0u8; 1 << 20])).await;
    wait_for_clients(&server, 2).await;
    // Raw bytes that are not WebSocket frames after the handshake.
    let mut raw = connect_ws(&server.ws_url("/ws")).await;
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = raw.get_mut() {
        // FIN, reserved opcode 0xF, masked, empty: a protocol error.
        tcp.write_all(&[0x8f, 0x80, 1, 2, 3, 4]).await.ok();
    }
    wait_for_clients(&server, 2).await;
    bus.publish(Event::new(EventType::TaskStarted)).await;
    assert_eq!(
        next_json(&mut watcher, ARRIVAL).await["type"],
        "task.started"
    );
    assert_eq!(
        next_json(&mut chatty, ARRIVAL).await["type"],
        "task.started"
    );
    assert_eq!(get(&server.url("/api/health")).await.status, 200);
}

/// A client that never reads is closed after the send timeout; the rest go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_that_never_reads_is_closed() {
    let bus = EventBus::new();
    let server = Server::start(
        WebApi::new(bus.clone())
            .client_buffer(32)
            .send_timeout(Duration::from_millis(300)),
    )
    .await;
    let _never_reads = connect_ws(&server.ws_url("/ws")).await;
    let mut reader = connect_ws(&server.ws_url("/ws")).await;
    wait_for_clients(&server, 2).await;
    let padding = "y".repeat(16 << 10);
    let mut n = 0;
    // Enough to fill the socket buffers of the idle client many times over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for _ in 0..20 {
            bus.publish(Event::new(EventType::MemoryRecalled).with_data(json!({"pad": padding})))
                .await;
            n += 1;
        }
        for _ in 0..20 {
            let event = next_json(&mut reader, ARRIVAL).await;
            assert_eq!(event["type"], "memory.recalled");
        }
        if get(&server.url("/api/stats")).await.json()["websocket_clients"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle client was never closed ({n} events)"
        );
    }
}

/// `max_clients` counts WebSocket and SSE clients together: with one of
/// each connected and a limit of two, a third of either kind is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_limit_counts_websockets_and_sse_streams_together() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(WebApi::new(EventBus::new()).max_clients(2)).await;
    let _websocket = connect_ws(&server.ws_url("/ws")).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    wait_for_clients(&server, 2).await;
    match tokio_tungstenite::connect_async(server.ws_url("/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!(
            "a third client, a websocket, was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let reply = get(&server.url("/api/stream")).await;
    reply.assert_status(503);
    assert!(
        reply.error().contains("too many live clients"),
        "{}",
        reply.error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_connections_is_served_or_refused_clearly() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone()).max_clients(50)).await;
    let attempts = (0..120).map(|_| {
        let url = server.ws_url("/ws");
        tokio::spawn(async move { tokio_tungstenite::connect_async(url).await })
    });
    let mut sockets = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok((socket, _)) => sockets.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("too many live clients"), "{body}");
                refused += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(sockets.len(), 50);
    assert_eq!(refused, 70);
    // Plain HTTP still works, and every admitted client gets the event.
    let reply = post_json(&server.url("/api/events"), r#"{"type":"circle.started"}"#).await;
    assert_eq!(reply.status, 200);
    for socket in &mut sockets {
        assert_eq!(next_json(socket, ARRIVAL).await["type"], "circle.started");
    }
    // Slots free up when clients leave.
    for mut socket in sockets.drain(..10) {
        socket.close(None).await.ok();
        while socket.next().await.is_some() {}
    }
    wait_for_clients(&server, 40).await;
    assert!(tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .is_ok());

    // Many short HTTP requests at once.
    let requests = (0..200).map(|_| {
        let url = server.url("/api/health");
        tokio::spawn(async move { get(&url).await.status })
    });
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
}

/// `GET /api/stats`: the hub's rates hold one count a second per type seen,
/// over the 300 seconds ending at `end`, and `publish_rate` is the mean of
/// the five whole seconds before `end`.
#[tokio::test]
async fn stats_count_each_type_per_second_and_the_recent_rate() {
    let bus = EventBus::new();
    let server = Server::start(WebApi::new(bus.clone())).await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let started = now();
    for _ in 0..7 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
    }
    for _ in 0..3 {
        bus.publish(Event::new(EventType::MemoryShared)).await;
    }
    // Once every count is a whole second old and still within five.
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    let stats = loop {
        let stats: agentbus_web::StatsReply =
            serde_json::from_slice(&get(&server.url("/api/stats")).await.body).unwrap();
        if stats.publish_rate == 2.0 || tokio::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rates = &stats.rates;
    assert_eq!(stats.publish_rate, 2.0, "{rates:?}");
    assert_eq!(rates.seconds, 300);
    assert!((started..=now()).contains(&rates.end), "{rates:?}");
    assert_eq!(
        rates.per_type.keys().collect::<Vec<_>>(),
        ["memory.shared", "task.created"],
        "only the types seen"
    );
    let counted = |series: &Vec<u32>, seconds: std::ops::Range<usize>| -> u32 {
        series[seconds].iter().sum()
    };
    for (name, published) in [("task.created", 7), ("memory.shared", 3)] {
        let series = &rates.per_type[name];
        assert_eq!(series.len(), 300, "{name}");
        assert_eq!(counted(series, 0..300), published, "{name}: {series:?}");
        // All in the five seconds before `end`, none in `end` itself.
        assert_eq!(counted(series, 294..299), published, "{name}: {series:?}");
    }
}
