//! [`WebApi`]: the builder that turns a bus (and optionally a store) into an
//! axum [`Router`].

use std::sync::Arc;
use std::time::Duration;

use agentbus::EventBus;
use agentbus_store::Recorder;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::auth::Token;
use crate::hub::Hub;
use crate::origin::Allowed;
use crate::state::{AppState, SharedState};

/// The default largest request body, 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// The default number of events buffered per live client before it lags.
pub const DEFAULT_CLIENT_BUFFER: usize = 16_384;
/// The default largest number of simultaneous WebSocket and SSE clients.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// The default time a live client may take to accept a write.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time a `POST` may wait for its events to be durable, 10 s.
pub const DEFAULT_DURABLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The web API over one [`EventBus`]: configure it, then call
/// [`router`](Self::router) and mount or [`serve`](crate::serve) the result.
///
/// Cloning is cheap until `router` is called; each `router` call starts its
/// own hub (one bus subscription shared by that router's live clients).
///
/// ```
/// use agentbus::EventBus;
///
/// let bus = EventBus::new();
/// let app: axum::Router = agentbus_web::WebApi::new(bus.clone())
///     .token(Some("secret".into()))
///     .body_limit(1 << 20)
///     .router();
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct WebApi {
    bus: EventBus,
    recorder: Option<Recorder>,
    /// Redacted in `Debug`: the derived `Debug` shows `Some(Token(..))`.
    token: Option<Arc<Token>>,
    body_limit: usize,
    client_buffer: usize,
    max_clients: usize,
    send_timeout: Duration,
    durable_timeout: Duration,
    allowed: Allowed,
    collectors: Vec<SharedCollector>,
}

/// A collector added with [`WebApi::metrics_collector`], shared by clones.
#[derive(Clone, Debug)]
struct SharedCollector(Arc<dyn Collector>);

impl Collector for SharedCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

impl WebApi {
    /// An API over `bus` with no token, a 1 MiB body limit and no store.
    ///
    /// Turns on the bus's per-type counts ([`EventBus::count_per_type`]),
    /// which `GET /metrics` and `GET /api/stats` report: what was published
    /// before this call is in the bus-wide totals only.
    pub fn new(bus: EventBus) -> Self {
        bus.count_per_type();
        Self {
            bus,
            recorder: None,
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            client_buffer: DEFAULT_CLIENT_BUFFER,
            max_clients: DEFAULT_MAX_CLIENTS,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            durable_timeout: DEFAULT_DURABLE_TIMEOUT,
            allowed: Allowed::default(),
            collectors: Vec::new(),
        }
    }

    /// Attaches a store through its [`Recorder`] (attached to the same bus).
    ///
    /// Then `POST /api/events` replies only once its events are durable and
    /// returns their sequences, `GET /api/events` reads the store, live
    /// events carry their `sequence`, WebSocket `after` and SSE
    /// `Last-Event-ID` resume from the store, and a client that falls behind
    /// is refilled from the store instead of told it lagged.
    #[must_use]
    pub fn store(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Requires `Authorization: Bearer <token>` (or `?token=<token>`, for
    /// browsers' WebSocket and EventSource, which cannot set headers) on
    /// every route but `GET /api/health`. `None` (the default) or an empty
    /// token turns authentication off.
    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token
            .filter(|t| !t.is_empty())
            .map(|t| Arc::new(Token::new(t)));
        self
    }

    /// The largest request body accepted, in bytes (default 1 MiB); larger
    /// bodies get 413, at once when `Content-Length` declares one (so a
    /// client sending `Expect: 100-continue` is never invited to send it).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many events a live (WebSocket or SSE) client may fall behind
    /// before it skips ahead and is told `{"lagged": n}` (default 16,384: under a second at 20k events/s; the hub keeps that many recent events in memory, shared by all clients).
    #[must_use]
    pub fn client_buffer(mut self, events: usize) -> Self {
        self.client_buffer = events.max(1);
        self
    }

    /// The largest number of simultaneous live clients (default 1024);
    /// beyond it new ones get 503.
    #[must_use]
    pub fn max_clients(mut self, clients: usize) -> Self {
        self.max_clients = clients;
        self
    }

    /// How long a write to a live client may wait for the client to read
    /// before the connection is closed (default 30 s).
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// With a store: how long a `POST` may wait for room in the recorder's
    /// queue and for its events to commit before it gets 503 (default
    /// 10 s). The wait never blocks a Tokio worker.
    #[must_use]
    pub fn durable_timeout(mut self, timeout: Duration) -> Self {
        self.durable_timeout = timeout;
        self
    }

    /// Web pages of these origins (`scheme://host[:port]`, e.g.
    /// `https://app.example`) may call the API too. By default only the
    /// server's own pages may: a request whose `Origin` header is another
    /// origin gets 403. Requests without `Origin` (anything but a browser)
    /// are not affected. Replies to a listed origin carry the CORS headers
    /// that let its pages read them.
    #[must_use]
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed.origins = origins
            .into_iter()
            .map(|origin| Allowed::origin(origin.as_ref()))
            .collect();
        self
    }

    /// Requests may name these hosts in `Host` too: a name (any port) or
    /// `name:port`. By default only loopback names and addresses
    /// (`localhost`, `127.0.0.0/8`, `[::1]`, and `0.0.0.0`/`[::]`) and, when served by
    /// [`serve`](crate::serve) or [`Serve`](crate::Serve), the address the
    /// connection came in on are accepted; any other `Host` gets 403 (DNS
    /// rebinding). List the names clients use to reach this server, and,
    /// when you mount the router in your own server, the addresses it
    /// listens on beyond the loopback.
    #[must_use]
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed.hosts = hosts
            .into_iter()
            .map(|host| Allowed::host(host.as_ref()))
            .collect();
        self
    }

    /// Adds `collector`'s metrics to every scrape of `GET /metrics` (the
    /// NATS bridge's, or the application's own). It is called on each
    /// scrape, after the API's own metrics.
    #[must_use]
    pub fn metrics_collector(mut self, collector: impl Collector) -> Self {
        self.collectors.push(SharedCollector(Arc::new(collector)));
        self
    }

    /// The bus this API publishes to and reads from.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Builds the router. Its hub subscribes to the bus now and starts
    /// draining once a Tokio runtime is at hand (at once when called inside
    /// one, else at the first request).
    pub fn router(self) -> Router {
        let hub = Hub::new(&self.bus, self.recorder.clone(), self.client_buffer);
        hub.start();
        let collectors = self
            .collectors
            .into_iter()
            .map(|collector| Box::new(collector) as Box<dyn Collector>)
            .collect();
        let state = crate::metrics::cyclic(
            |metrics| AppState {
                recorder: self.recorder,
                body_limit: self.body_limit,
                max_clients: self.max_clients,
                send_timeout: self.send_timeout,
                durable_timeout: self.durable_timeout,
                bus: self.bus,
                hub,
                metrics,
            },
            collectors,
        );
        let token = self.token;
        let guarded = Router::new()
            .route("/", get(crate::dashboard::page))
            .route(
                "/api/events",
                get(crate::read::list).post(crate::publish::publish),
            )
            .route("/api/events/{id}", get(crate::read::one))
            .route("/api/stats", get(crate::stats::stats))
            .route("/metrics", get(crate::metrics::scrape))
            .route("/api/dead-letters", get(crate::dead_letters::list))
            .route(
                "/api/dead-letters/{id}",
                get(crate::dead_letters::one).delete(crate::dead_letters::discard),
            )
            .route(
                "/api/dead-letters/{id}/redrive",
                post(crate::dead_letters::redrive),
            )
            .route("/api/openapi.json", get(crate::openapi::document))
            .route("/api/stream", get(crate::sse::stream))
            .route("/ws", get(crate::ws::upgrade))
            .route_layer(middleware::from_fn_with_state(
                token,
                crate::auth::require_token,
            ));
        Router::new()
            .route("/api/health", get(health))
            .merge(guarded)
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                start_hub,
            ))
            // The publish handler enforces the limit itself with a JSON 413.
            .layer(DefaultBodyLimit::disable())
            .layer(middleware::from_fn_with_state(
                Arc::new(self.allowed),
                crate::origin::check,
            ))
            .layer(middleware::from_fn(crate::error::to_json))
            .layer(middleware::from_fn(crate::headers::add))
            .with_state(state)
    }
}

async fn start_hub(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    state.hub.start();
    next.run(request).await
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::not_found("no such route")
}
