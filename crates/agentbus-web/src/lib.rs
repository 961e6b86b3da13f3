//! HTTP, WebSocket and Server-Sent Events API, and a live dashboard, for an
//! [`agentbus`] event bus, with or without a durable store.
//!
//! [`WebApi`] turns an [`EventBus`](agentbus::EventBus) (and optionally an
//! [`agentbus_store::Recorder`]) into an axum [`Router`](axum::Router) that
//! you mount in your own server or run with [`serve`] (or [`Serve`], to
//! set the connection limits):
//!
//! ```no_run
//! use agentbus::EventBus;
//! use agentbus_store::{Recorder, SqliteStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::new();
//! let recorder = Recorder::attach(&bus, SqliteStore::open("agentbus.db")?);
//! let app: axum::Router = agentbus_web::WebApi::new(bus.clone())
//!     .store(recorder)                // optional: durability, sequences, resume
//!     .token(Some("secret".into()))   // optional: bearer token
//!     .body_limit(1 << 20)
//!     .router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
//! agentbus_web::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /api/health` | `{"status":"ok"}`; never needs the token |
//! | `POST /api/events` | one event (the core's JSON form, `type` required) or an array, or [CloudEvents](CloudEvent) (structured, batch or binary mode); `{"ids":[...],"sequences":[...]}` |
//! | `GET /api/events?type=a,b&circle_id=&source_agent_id=&project_id=&correlation_id=&after=&before=&limit=&order=asc\|desc&format=json\|cloudevents` | `{"events":[...],"next":n\|null}` |
//! | `GET /api/events/{id}?format=` | the event, or 404 |
//! | `GET /api/stats` | bus stats, per-type counts, per-second rates, publish rate, clients, store lag |
//! | `GET /api/dead-letters?subscription=&type=&order=asc\|desc&after=&before=&limit=` | `{"dead_letters":[...],"next":n\|null}` |
//! | `GET` / `DELETE /api/dead-letters/{id}` | one dead letter; discard it |
//! | `POST /api/dead-letters/{id}/redrive` | deliver it again to its subscription, once |
//! | `GET /ws?type=&circle_id=&source_agent_id=&project_id=&correlation_id=&after=&format=` | WebSocket, one text frame per event |
//! | `GET /api/stream?...` | the same as Server-Sent Events; `id:` is the sequence, `Last-Event-ID` resumes |
//! | `GET /api/openapi.json` | the OpenAPI 3.1 document of all of this |
//! | `GET /metrics` | Prometheus metrics in the OpenMetrics text format (see below) |
//! | `GET /` | the dashboard |
//!
//! # Behaviour
//!
//! - **Publishing.** `POST /api/events` decodes the whole body first and
//!   publishes only if every event is valid, in order, awaiting the bus's
//!   handlers (a slow async handler delays the reply). Events keep the `id`
//!   and `timestamp` they were posted with; missing ones are filled in.
//!   Integers in `data` keep their exact value: one beyond 64 bits (`i64`
//!   or `u64`), which JSON parsing would round, is a 400 naming its event.
//! - **CloudEvents.** `POST /api/events` also takes CloudEvents 1.0 as the
//!   HTTP binding sends them: `application/cloudevents+json` (one event,
//!   structured mode), `application/cloudevents-batch+json` (an array, whose
//!   errors name the index like a native array's) and binary mode (a
//!   `ce-specversion` header, the attributes in percent-decoded `ce-*`
//!   headers, the body the event's `data`, declared `application/json` or
//!   empty). The limits, auth, origin checks, guards (422/429), trace
//!   header, durability and reply are the native `POST`'s. A CloudEvent that
//!   does not map is a 400 naming the attribute (`attribute `source`: ...`).
//!   `?format=cloudevents` on `GET /api/events` answers a CloudEvents batch
//!   (`application/cloudevents-batch+json`) with the next page's cursor in
//!   the `Agentbus-Next` header (absent on the last page; exposed to listed
//!   origins); on `GET /api/events/{id}` one structured event; on `/ws` and
//!   `/api/stream` one CloudEvent per frame (the `{"lagged": n}` notice
//!   stays as it is), encoded once per event for all such clients. The
//!   mapping and what is refused: [`CloudEvent`].
//! - **Metrics.** `GET /metrics` (behind the token like the API) answers in
//!   the Prometheus text format, or in OpenMetrics when the scraper asks
//!   for it: events published, delivered and failed per type, handler
//!   errors, guard rejections per reason, retries, timeouts and dead
//!   letters, subscribers, live clients per transport, and with a store its
//!   lag, counters and commit latency histogram. Values are read at scrape
//!   time from the counters the bus, hub and recorder keep; the per-type
//!   ones need the bus's per-type table, which [`WebApi::new`] turns on
//!   ([`EventBus::count_per_type`](agentbus::EventBus::count_per_type)), so
//!   they count from then on. The families, their labels and sources are
//!   one table in `src/metrics.rs` (and the crate README shows a scrape).
//!   More collectors (the NATS bridge's, the application's) are added with
//!   [`WebApi::metrics_collector`](WebApi::metrics_collector).
//! - **Trace context.** A `POST` with a W3C `traceparent` header (and
//!   optional `tracestate`) gives that context to each posted event that
//!   has none of its own in its JSON; a header that breaks the W3C rules is
//!   a 400 naming it (a `tracestate` alone is ignored). Every event read or
//!   streamed carries its `traceparent`/`tracestate` fields when set.
//! - **Durability.** With a store, the reply comes only after the
//!   recorder's [`flush`](agentbus_store::Recorder::flush): a 200 means the
//!   events are committed and survive a crash. `sequences` gives each
//!   event's sequence, or `null` for an id that was already stored, so
//!   posting the same ids again is a safe retry, and `null` means nothing
//!   else. An event the store cannot hold
//!   ([`EventStore::check`](agentbus_store::EventStore::check): a timestamp
//!   outside 1970-01-01..2262-04-11) is a 400 naming it, before anything is
//!   published; one the database refuses only when writing is skipped by
//!   the recorder, counted in `store.rejected` of `/api/stats`, and makes
//!   the reply a 500 naming it. If the store cannot confirm
//!   durability within [`durable_timeout`](WebApi::durable_timeout) (default
//!   10 s: waiting for room in the recorder's queue, then for the commit)
//!   the reply is 503 and says which events were published: those stay
//!   queued in the recorder and may still be committed. The wait never
//!   blocks a Tokio worker, so a stalled store (a locked file, a database
//!   down) leaves `/api/health`, `/api/stats` and reads answering. Without a
//!   store `sequences` is `null`.
//! - **Errors.** Every error is JSON `{"error": "..."}`, one lowercase line:
//!   400 for malformed JSON, a path that does not decode (`/api/events/%ff`), an unknown type or a field of the wrong type
//!   (naming the field, and the array index: `event 2: field `circle_id`:
//!   invalid type: string "five", expected i64`), for an unknown or
//!   out-of-range query parameter (`limit` is 1..=10000; empty values mean
//!   "not set") or a bad `Last-Event-ID`; 401 without the token; 403 for a
//!   foreign `Origin` or `Host` (below); 404 for an unknown event or route;
//!   405 for a method a route does not have (with `Allow`); 413 over the
//!   body limit (default 1 MiB); 415 when the body is not declared
//!   `application/json` (or `+json`); 503 when the client limit is reached
//!   or the store cannot be read. Under [`serve`]/[`Serve`], what hyper
//!   refuses before routing is JSON too: 400 for a malformed request, 414
//!   for a request target over 64 KiB, 431 for headers over about 400 KiB
//!   (these close the connection). Nothing panics on bad input, and nothing
//!   is published from a rejected request.
//! - **Foreign web pages.** Any page the user opens can make the browser
//!   call `127.0.0.1`, so every route (the dashboard, `/ws`, `/api/stream`
//!   and `/api/health` included) checks two headers first, and answers 403
//!   JSON when one is refused:
//!   - `Host` must be a loopback name or address (`localhost`,
//!     `127.0.0.0/8`, `[::1]`, any port), the address the connection came
//!     in on (known under [`serve`]/[`Serve`]; also the unspecified `0.0.0.0`
//!     or `[::]` a server bound to every interface prints), or one listed
//!     with [`WebApi::allowed_hosts`] (`--allow-host`). This stops DNS
//!     rebinding, where a page's own name is pointed at this server. A
//!     request without `Host` (HTTP/1.0, never a browser) passes. Mounted
//!     in your own server, the router does not know its address: list the
//!     names and non-loopback addresses clients use.
//!   - `Origin`, when present, must be the server's own (the scheme and
//!     the request's `Host`: the dashboard's requests) or one listed with
//!     [`WebApi::allowed_origins`] (`--allow-origin`); `Origin: null`
//!     (sandboxed frames, local files) is refused. Browsers send `Origin`
//!     on every WebSocket handshake and cross-origin request; other clients
//!     usually send none and are not affected. Replies to a listed origin
//!     carry `Access-Control-Allow-Origin` (its pages may read them, SSE
//!     included), and its preflight `OPTIONS` requests get 204 allowing
//!     `GET`, `POST` and the `Authorization`, `Content-Type` and
//!     `Last-Event-ID` headers.
//!
//!   The token, when set, is still required on top of this.
//! - **Security headers.** Every reply carries `X-Content-Type-Options:
//!   nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and
//!   a `Content-Security-Policy`: `default-src 'none'; frame-ancestors
//!   'none'` for the API, and for the dashboard one that allows only its
//!   own inline script and style (by their SHA-256 hashes), requests to its
//!   own origin (`connect-src 'self'`) and `data:` images.
//! - **Authentication.** With [`WebApi::token`], every route but
//!   `/api/health` needs `Authorization: Bearer <token>` or, for browsers'
//!   WebSocket and EventSource (which cannot set headers) and the dashboard,
//!   `?token=<token>`. The comparison is constant-time in the token's
//!   content. The dashboard passes on the `token` of its own URL.
//! - **Reading.** `GET /api/events` reads the store when there is one
//!   (ascending by sequence; `next` is the `after` of the next page, or, in
//!   `order=desc`, its `before`), else the bus history (newest events only,
//!   no sequences; `after`/`before` are then a 400). `correlation_id`
//!   returns a causal chain, the event that started it included, on every
//!   page. `GET /api/events/{id}` looks the id up in the store (with its
//!   `sequence`, however old the event), then in the bus history (an event
//!   not yet committed, or a server without a store).
//! - **Live clients.** WebSocket and SSE clients share one subscription: the
//!   bus's publisher only hands each event's `Arc` to a lock-free buffer, and
//!   a hub task encodes each event once and broadcasts it. So the publish
//!   cost does not grow with the number of clients, and no client slows the
//!   bus or another client. Filters (`type`, `circle_id`, `source_agent_id`,
//!   `project_id`, `correlation_id`) apply per client. Without a store, live
//!   events reach clients within about 2 ms of the publish (at once for
//!   events `POST`ed here); with one, as soon as they are committed, with
//!   their `sequence`. A client receives everything committed after its
//!   handshake: with a store, the handshake waits until the hub has read
//!   where the store ends (at once, unless the store is slow to answer; a
//!   503 after [`durable_timeout`](WebApi::durable_timeout)).
//! - **Slow clients.** Each client may fall [`client_buffer`](WebApi::client_buffer)
//!   events behind (default 16,384). Beyond that, without a store it skips
//!   ahead and receives `{"lagged": n}` (n events it missed) before the next
//!   event; with a store it is refilled from the store instead, and misses
//!   nothing. A client that does not read for [`send_timeout`](WebApi::send_timeout)
//!   (default 30 s) is dropped, WebSocket and SSE alike: its slot and buffer
//!   are freed at once (a WebSocket is closed; an SSE stream ends, and
//!   under [`Serve`] its socket is closed after the idle timeout). Messages a WebSocket client sends are
//!   ignored (pings are answered); one over 64 KiB or a protocol error
//!   closes that connection only.
//! - **Resume.** With a store, `/ws?after=N` and `/api/stream?after=N` (or
//!   the `Last-Event-ID: N` header a reconnecting EventSource sends) first
//!   replay the stored events after sequence N that match the filters, then
//!   go live, with no gap and no duplicate at the seam. Without a store,
//!   resuming is a 400.
//! - **Limits.** At most [`max_clients`](WebApi::max_clients) live clients
//!   (default 1024) at once; more get 503 until one leaves. Under
//!   [`serve`]/[`Serve`] (and `agentbus serve`): a client gets
//!   [`header_read_timeout`](Serve::header_read_timeout) (default 10 s,
//!   `--header-timeout`) to send a request's headers, which also closes
//!   idle keep-alive connections; a connection on which no byte moves for
//!   [`idle_timeout`](Serve::idle_timeout) (default 60 s, `--idle-timeout`)
//!   during a request is closed; at most
//!   [`max_connections`](Serve::max_connections) (default 2048,
//!   `--max-connections`) are open at once, WebSockets and SSE streams
//!   included, and more wait in the listen queue until one closes. The
//!   request body limit is [`body_limit`](WebApi::body_limit) (default
//!   1 MiB).
//! - **Dashboard.** `GET /` is one self-contained page (markup, style and
//!   script embedded in the binary; no CDN, works offline): a live feed,
//!   newest first, coloured by domain, pausable; filters by type, circle,
//!   agent, project and free text; click an event for its JSON and its causal
//!   chain; a per-type events-per-second chart (drawn on a canvas by hand:
//!   one stacked area chart did not justify a vendored library); the stats,
//!   delivery ones included (retries, retrying, timed out, dead-lettered,
//!   dead letters held); a dead-letter panel with the newest 50 letters
//!   (and how many more are held), refreshed every second, each with a
//!   redrive and a discard button that call the routes above from the
//!   page's own origin with its `token` (a foreign page cannot: its
//!   `Origin` is refused). Errors, subscription names and event data are
//!   untrusted: the page sets them as text, never as HTML.
//!   It reconnects by itself, resuming from its last sequence with a store,
//!   or refilling from the bus history without one. It also works when the
//!   router is nested under a prefix (`Router::nest("/bus", ...)`, opened at
//!   `/bus`).
//!
//! The hub and every live client are Tokio tasks: build the router inside a
//! Tokio runtime, or the hub starts with the first request.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "server")]
mod api;
#[cfg(feature = "server")]
mod auth;
#[cfg(feature = "server")]
mod body;
mod cloudevents;
#[cfg(feature = "server")]
mod connection;
#[cfg(feature = "server")]
mod dashboard;
#[cfg(feature = "server")]
mod dead_letters;
#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
mod extract;
#[cfg(feature = "server")]
mod guards;
#[cfg(feature = "server")]
mod headers;
#[cfg(feature = "server")]
mod hub;
#[cfg(feature = "server")]
mod live;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod openapi;
#[cfg(feature = "server")]
mod origin;
#[cfg(feature = "server")]
mod params;
#[cfg(feature = "server")]
mod publish;
#[cfg(feature = "server")]
mod read;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod sse;
#[cfg(feature = "server")]
mod state;
#[cfg(feature = "server")]
mod stats;
#[cfg(feature = "server")]
mod trace_header;
mod wire;
#[cfg(feature = "server")]
mod ws;

#[cfg(feature = "server")]
pub use crate::{
    api::{
        WebApi, DEFAULT_BODY_LIMIT, DEFAULT_CLIENT_BUFFER, DEFAULT_DURABLE_TIMEOUT,
        DEFAULT_MAX_CLIENTS, DEFAULT_SEND_TIMEOUT,
    },
    serve::{
        serve, Serve, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    },
};
pub use crate::{
    cloudevents::CloudEvent,
    wire::{
        DeadLetterReply, DeadLettersPage, ErrorReply, EventsPage, PublishReply, RateWindow,
        RejectedReply, SequencedEvent, StatsReply, StoreCounters, ViolationReply,
    },
};
/// The `prometheus-client` crate the metrics are built with, for
/// [`WebApi::metrics_collector`].
#[cfg(feature = "server")]
pub use prometheus_client;
