//! `agentbus serve`: the bus with its store, HTTP API and dashboard.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentbus::{EventBus, MAX_HISTORY_CAPACITY};
use agentbus_store::{EventStore, Recorder};
use tokio::net::TcpListener;

use crate::error::CommandError;
use crate::render::{ColorChoice, Palette};
use crate::store_spec::StoreSpec;

/// How long open connections (WebSockets, SSE streams) get to finish after
/// a shutdown signal before the server stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Arguments of `agentbus serve`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus serve                                         # SQLite ./agentbus.db on 127.0.0.1:7878\n  \
    agentbus serve --store postgres://postgres@127.0.0.1/events --token s3cret\n  \
    agentbus serve --addr 0.0.0.0:7878 --token s3cret      # reachable from other hosts, by address\n  \
    agentbus serve --addr 0.0.0.0:7878 --token s3cret --allow-host bus.lan   # ... and as bus.lan")]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the first line printed
    /// says which).
    #[arg(long, env = "AGENTBUS_ADDR", default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,

    /// Where events are kept: sqlite:PATH, postgres://..., memory (in-memory
    /// SQLite) or none (the API answers from the bus history).
    #[arg(
        long,
        env = "AGENTBUS_STORE",
        hide_env_values = true,
        default_value = "sqlite:./agentbus.db",
        value_parser = crate::redacting_parser::RedactingParser(crate::store_spec::parse_store_spec)
    )]
    pub store: StoreSpec,

    /// Require this bearer token on every route but /api/health.
    #[arg(long, env = "AGENTBUS_TOKEN", hide_env_values = true, value_parser = crate::client::parse_token)]
    pub token: Option<String>,

    /// Events the bus keeps in its in-memory history.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HISTORY_CAPACITY as u64))]
    pub history: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub body_limit: usize,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub nats: crate::nats::NatsArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub exposure: ExposureArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub guards: GuardArgs,
}

/// The guards every event must pass to enter the bus (see
/// `agentbus_guard`): run in this order, schemas, rate limit, dedup.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GuardArgs {
    /// Check each event's data against DIR/<event.type>.json (JSON Schema,
    /// draft 2020-12 or 7); types without a file pass unless --strict.
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<std::path::PathBuf>,

    /// With --schemas: reject events whose type has no schema.
    #[arg(long, requires = "schemas")]
    pub strict: bool,

    /// Keep out repeats (same id, or same type, agent, circle and data)
    /// within this window, e.g. 1s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub dedup: Option<Duration>,

    /// Allow COUNT events per PERIOD (100/s, 6000/min, 50/100ms) for each
    /// --rate-limit-by key; more get 429.
    #[arg(long, value_name = "COUNT/PERIOD", value_parser = parse_rate)]
    pub rate_limit: Option<(u32, Duration)>,

    /// What --rate-limit counts separately.
    #[arg(long, value_enum, default_value_t = RateLimitBy::Agent, requires = "rate_limit")]
    pub rate_limit_by: RateLimitBy,

    /// With --rate-limit: bursts of up to N events (default COUNT).
    #[arg(long, value_name = "N", requires = "rate_limit",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
}

/// What `--rate-limit` counts separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitBy {
    /// Each source agent.
    #[default]
    Agent,
    /// Each circle.
    Circle,
    /// Each event type.
    Type,
    /// All events together.
    Global,
}

impl GuardArgs {
    /// The guards, in the order they run, on `bus`.
    fn apply(
        &self,
        mut bus: agentbus::EventBusBuilder,
    ) -> Result<agentbus::EventBusBuilder, CommandError> {
        use agentbus_guard::{Dedup, Per, RateLimit, Schemas};
        if let Some(dir) = &self.schemas {
            let mut schemas = Schemas::from_dir(dir)?;
            if self.strict {
                schemas = schemas.strict();
            }
            bus = bus.guard(schemas);
        }
        if let Some((count, period)) = self.rate_limit {
            let per = match self.rate_limit_by {
                RateLimitBy::Agent => Per::Agent,
                RateLimitBy::Circle => Per::Circle,
                RateLimitBy::Type => Per::Type,
                RateLimitBy::Global => Per::Global,
            };
            let mut limit = RateLimit::new(per, count, period);
            if let Some(burst) = self.burst {
                limit = limit.burst(burst);
            }
            bus = bus.guard(limit);
        }
        if let Some(window) = self.dedup {
            bus = bus.guard(Dedup::window(window));
        }
        Ok(bus)
    }
}

/// `COUNT/PERIOD`: `100/s`, `6000/min`, `5/h`, `50/100ms`.
fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let (count, period) = text
        .split_once('/')
        .ok_or("a rate is COUNT/PERIOD, e.g. 100/s")?;
    let count: u32 = match count.trim().parse() {
        Ok(n) if n >= 1 => n,
        _ => return Err(format!("{count:?} is not a positive count")),
    };
    let period = match period.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other).map_err(|e| format!("{other:?}: {e}"))?,
    };
    if period.is_zero() {
        return Err("the period must be longer than zero".into());
    }
    Ok((count, period))
}

/// Who may talk to the server, and how long and how many connections it
/// keeps (the details are in `agentbus_web`'s crate docs).
#[derive(Clone, Debug, clap::Args)]
pub struct ExposureArgs {
    /// Also let web pages of this origin (SCHEME://HOST or
    /// SCHEME://HOST:PORT) call the API; by default only the server's own
    /// pages may. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origins: Vec<String>,

    /// Also accept requests naming this host (NAME or NAME:PORT) in their
    /// Host header; by default only loopback names and addresses and the
    /// address the server listens on are. Repeatable.
    #[arg(long = "allow-host", value_name = "HOST", value_parser = parse_host)]
    pub allow_hosts: Vec<String>,

    /// Time a client gets to send a request's headers (also how long an
    /// idle keep-alive connection stays open); 0 for no limit.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Time a connection may move no byte while a request is served
    /// (a client that stopped reading the reply); 0 for no limit.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Largest number of open connections (WebSockets and SSE streams
    /// included); more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = agentbus_web::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_max_connections)]
    pub max_connections: usize,

    /// With a store: how long a POST may wait for its events to be durable
    /// (room in the recorder's queue, then the commit) before it gets 503.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub durable_timeout: Duration,
}

impl Default for ExposureArgs {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_hosts: Vec::new(),
            header_timeout: agentbus_web::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: agentbus_web::DEFAULT_IDLE_TIMEOUT,
            max_connections: agentbus_web::DEFAULT_MAX_CONNECTIONS,
            durable_timeout: agentbus_web::DEFAULT_DURABLE_TIMEOUT,
        }
    }
}

fn parse_origin(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("an origin starts with http:// or https://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err("an origin is scheme://host[:port], without a path".into());
    }
    Ok(text.to_owned())
}

fn parse_host(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['/', '?', '#', '@', ' ']) {
        return Err("a host is NAME or NAME:PORT, without a scheme or path".into());
    }
    Ok(text.to_owned())
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("a positive number of connections".into()),
    }
}

/// A zero duration turns a limit off.
fn limit(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// A bound server: the bus, its recorder (when there is a store) and the
/// router, ready to run. Shared by `serve` and `demo`.
pub(crate) struct Server {
    pub(crate) bus: EventBus,
    recorder: Option<Recorder>,
    listener: TcpListener,
    app: axum::Router,
    addr: SocketAddr,
    exposure: ExposureArgs,
    nats: Option<crate::nats::Bridge>,
}

/// What the server needs, from either command's arguments.
pub(crate) struct ServerConfig<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) store: &'a StoreSpec,
    pub(crate) token: Option<String>,
    pub(crate) history: usize,
    pub(crate) body_limit: usize,
    pub(crate) nats: Option<&'a crate::nats::NatsArgs>,
    pub(crate) exposure: ExposureArgs,
    pub(crate) guards: GuardArgs,
}

impl Server {
    /// Opens the store, attaches the recorder, builds the router and binds.
    pub(crate) async fn start(config: ServerConfig<'_>) -> Result<Self, CommandError> {
        let bus = config
            .guards
            .apply(EventBus::builder().history_capacity(config.history))?
            .try_build()?;
        let store = config.store.open().await?;
        let recorder = store.map(|store: Arc<dyn EventStore>| Recorder::attach(&bus, store));
        if config.token.is_none() && !config.addr.ip().is_loopback() {
            tracing::warn!(
                addr = %config.addr,
                "listening beyond loopback without a token: anyone who can reach this address can publish"
            );
        }
        let mut api = agentbus_web::WebApi::new(bus.clone())
            .token(config.token)
            .body_limit(config.body_limit)
            .allowed_origins(&config.exposure.allow_origins)
            .allowed_hosts(&config.exposure.allow_hosts)
            .durable_timeout(config.exposure.durable_timeout);
        if let Some(recorder) = &recorder {
            api = api.store(recorder.clone());
        }
        // Before the router: its metrics read the bridge's counters.
        let nats = match config.nats {
            Some(args) => crate::nats::Bridge::connect(args, &bus).await?,
            None => None,
        };
        if let Some(bridge) = &nats {
            api = api.metrics_collector(bridge.collector());
        }
        let app = api.router();
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| CommandError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| CommandError::Bind {
            addr: config.addr,
            source,
        })?;
        Ok(Self {
            bus,
            recorder,
            listener,
            app,
            addr,
            exposure: config.exposure,
            nats,
        })
    }

    /// The dashboard's URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until `stop` resolves, lets open connections finish for a
    /// moment, then makes every recorded event durable. Returns the store's
    /// last sequence, if there is a store.
    pub(crate) async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Option<u64>, CommandError> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = agentbus_web::Serve::new(self.listener, self.app)
            .header_read_timeout(limit(self.exposure.header_timeout))
            .idle_timeout(limit(self.exposure.idle_timeout))
            .max_connections(self.exposure.max_connections)
            .graceful_shutdown(async move {
                stop.await;
                let _ = stopping_tx.send(());
            })
            .run();
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = serve => result.map_err(CommandError::Serve)?,
            () = deadline => tracing::debug!("connections still open after the grace period; stopping anyway"),
        }
        if let Some(nats) = self.nats {
            nats.shutdown().await;
        }
        match self.recorder {
            Some(recorder) => recorder
                .close()
                .await
                .map(Some)
                .map_err(CommandError::Flush),
            None => Ok(None),
        }
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Runs `agentbus serve` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs, color: ColorChoice) -> Result<(), CommandError> {
    let server = Server::start(ServerConfig {
        addr: args.addr,
        store: &args.store,
        token: args.token.clone(),
        history: args.history as usize,
        body_limit: args.body_limit,
        nats: Some(&args.nats),
        exposure: args.exposure.clone(),
        guards: args.guards.clone(),
    })
    .await?;
    let palette = Palette::stdout(color);
    // The first line is the address: scripts and tests read it.
    say!(
        "agentbus serving {} (store {})",
        palette.bold(&server.url()),
        args.store
    );
    let last = server.run_until(shutdown_signal()).await?;
    match last {
        Some(sequence) => say!("stopped; store flushed up to sequence {sequence}"),
        None => say!("stopped"),
    }
    Ok(())
}
