//! [`NatsBridge`]: joins a local bus to a NATS server. Behaviour is in the
//! crate docs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus};
use async_nats::header::HeaderValue;
use async_nats::jetstream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{BridgeConfig, Mode};
use crate::context::{mark_bridge_thread, stopped, Context, Control, Shared};
use crate::error::ConnectError;
use crate::incoming::{self, Incoming};
use crate::outgoing::{self, Outgoing, Sender};
use crate::servers::Servers;
use crate::stats::{bump, BridgeStats, Counters, StatsHandle};
use crate::wire::Stamp;

/// The bound on a JetStream API request (creating the stream, binding the
/// consumer): the NATS client's default request timeout.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the server to confirm the last acks
/// (JetStream) and for the socket to take the last messages: an ack lost
/// here is a redelivery to the next consumer, so it is generous for a loaded
/// machine.
pub(crate) const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// A connection between a local [`EventBus`] and a NATS server (see the
/// crate docs for what it guarantees).
///
/// The bridge runs on a thread of its own. Dropping it stops the bridge
/// without waiting; [`shutdown`](Self::shutdown) stops it gracefully.
pub struct NatsBridge {
    name: String,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    stop: Option<watch::Sender<bool>>,
    finished: Option<oneshot::Receiver<()>>,
}

impl std::fmt::Debug for NatsBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBridge")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl NatsBridge {
    /// Connects `bus` to the NATS server at `url` (`nats://host:port`, or a
    /// comma-separated list; `nats://user:password@host` or
    /// `nats://token@host` to authenticate: see the crate docs) and starts
    /// bridging.
    ///
    /// Returns once connected and, in JetStream mode, once the stream and the
    /// durable consumer exist, so events published locally from then on are
    /// not missed. Works from any async runtime: the bridge runs on its own
    /// thread.
    ///
    /// ```no_run
    /// use agentbus::EventBus;
    /// use agentbus_nats::{BridgeConfig, NatsBridge};
    ///
    /// # async fn run() -> Result<(), agentbus_nats::ConnectError> {
    /// let bus = EventBus::new();
    /// let bridge = NatsBridge::connect(
    ///     "nats://127.0.0.1:4222",
    ///     &bus,
    ///     BridgeConfig::default().name("worker-1").jetstream(true),
    /// )
    /// .await?;
    /// // ... publish and subscribe on `bus` as usual ...
    /// let stats = bridge.shutdown().await;
    /// println!("sent {}, received {}", stats.sent, stats.received);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        url: &str,
        bus: &EventBus,
        config: BridgeConfig,
    ) -> Result<NatsBridge, ConnectError> {
        let name = config.resolved_name();
        validate(&config, &name)?;
        let servers = Servers::parse(url)?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            reserved: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        let context = Context {
            bus: bus.clone(),
            instance: Event::new(agentbus::EventType::AgentStarted).id.to_string(),
            config,
            name: name.clone(),
            shared: Arc::clone(&shared),
        };
        // The local subscription starts here, on the caller's side, so an
        // event published right after `connect` returns is captured.
        let local = outgoing::subscribe(&context);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        let worker_threads = context.config.worker_threads;
        std::thread::Builder::new()
            .name(format!("agentbus-nats-{name}"))
            .spawn({
                let name = name.clone();
                move || {
                    mark_bridge_thread();
                    // Two workers: encoding and decoding overlap the client's
                    // socket I/O, as they would with a raw client on a
                    // multi-threaded runtime.
                    let runtime = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(worker_threads)
                        .thread_name(format!("agentbus-nats-{name}"))
                        .on_thread_start(mark_bridge_thread)
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = ready_tx.send(Err(ConnectError::Thread(err)));
                            return;
                        }
                    };
                    runtime.block_on(run(context, servers, local, control_rx, stop_rx, ready_tx));
                    drop(runtime);
                    let _ = finished_tx.send(());
                }
            })
            .map_err(ConnectError::Thread)?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(NatsBridge {
                name,
                shared,
                control: control_tx,
                stop: Some(stop_tx),
                finished: Some(finished_rx),
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ConnectError::Thread(std::io::Error::other(
                "the bridge thread ended during setup",
            ))),
        }
    }

    /// The name this bridge goes by ([`BridgeConfig::name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the bridge's counters.
    pub fn stats(&self) -> BridgeStats {
        self.shared.counters.snapshot()
    }

    /// A handle that reads the bridge's counters ([`StatsHandle::snapshot`])
    /// without the bridge, for a metrics collector. After the bridge shuts
    /// down it keeps returning the final counts.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Resolves when every event published locally before the call has been
    /// handed to NATS and flushed to the socket (core mode) or stored by the
    /// server (JetStream). While disconnected it waits for the reconnection;
    /// wrap it in a timeout where that matters.
    pub async fn flush(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.control.send(Control::Flush(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Stops the bridge gracefully: stops taking local events, sends the ones
    /// already buffered (JetStream: waits for their acks, up to 10 s), acks
    /// what was delivered locally, closes the connection, and returns the
    /// final counters.
    pub async fn shutdown(mut self) -> BridgeStats {
        self.signal_stop();
        if let Some(finished) = self.finished.take() {
            let _ = finished.await;
        }
        self.stats()
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl Drop for NatsBridge {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn validate(config: &BridgeConfig, name: &str) -> Result<(), ConnectError> {
    let token_ok = |s: &str| {
        !s.is_empty()
            && !s
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '*' | '>' | '.' | '/' | '\\'))
    };
    if config.prefix.is_empty() || !config.prefix.split('.').all(token_ok) {
        return Err(ConnectError::Config(
            "the prefix must be one or more subject tokens without wildcards",
        ));
    }
    if !token_ok(name) {
        return Err(ConnectError::Config(
            "the name must be non-empty, without spaces, dots, slashes or wildcards",
        ));
    }
    Ok(())
}

fn reconnect_delay(max: Duration) -> impl Fn(usize) -> Duration + Send + Sync + 'static {
    move |attempts| {
        let exponent = attempts.min(16) as u32;
        Duration::from_millis(10)
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(max)
    }
}

async fn run(
    context: Context,
    servers: Servers,
    local: agentbus::EventStream,
    control: mpsc::UnboundedReceiver<Control>,
    mut stop: watch::Receiver<bool>,
    ready: oneshot::Sender<Result<(), ConnectError>>,
) {
    let context = Arc::new(context);
    let setup = async {
        let shared = Arc::clone(&context.shared);
        let client = servers
            .authenticate(async_nats::ConnectOptions::new())
            .name(&context.name)
            .no_echo()
            .subscription_capacity(context.config.subscription_capacity)
            .reconnect_delay_callback(reconnect_delay(context.config.max_reconnect_delay))
            .event_callback(move |event| {
                let shared = Arc::clone(&shared);
                async move { on_client_event(&shared, event) }
            })
            .connect(servers.addrs)
            .await
            .map_err(ConnectError::Connect)?;
        context
            .shared
            .counters
            .connected
            .store(true, Ordering::Relaxed);
        let stamp = Stamp {
            origin: HeaderValue::from(context.name.as_str()),
            instance: context.instance.clone(),
        };
        match context.config.mode {
            Mode::Core => {
                let incoming = incoming::subscribe_core(&client, &context).await?;
                Ok((client, None, Incoming::Core(incoming), stamp))
            }
            Mode::JetStream => {
                // The context's timeout is the client's wait for an awaited
                // ack as well as the bound on API requests: never shorter
                // than the connection's request timeout, and long enough
                // that the bridge's own `ack_timeout` fires first.
                let js = jetstream::ContextBuilder::new()
                    .timeout(context.config.ack_timeout.max(API_TIMEOUT))
                    .ack_timeout(context.config.ack_timeout)
                    .build(client.clone());
                let consumer = incoming::bind_jetstream(&js, &context).await?;
                Ok((
                    client,
                    Some(js),
                    Incoming::JetStream(Box::new(consumer)),
                    stamp,
                ))
            }
        }
    };
    let (client, js, incoming, stamp) = match setup.await {
        Ok(parts) => parts,
        Err(err) => {
            context.shared.closed.store(true, Ordering::Relaxed);
            // Unsubscribed before the caller hears of the failure.
            drop(local);
            let _ = ready.send(Err(err));
            return;
        }
    };
    let _ = ready.send(Ok(()));

    let outgoing = Outgoing {
        sender: Sender {
            context: Arc::clone(&context),
            client: client.clone(),
            stamp,
            subjects: crate::wire::subjects(&context.config.prefix),
        },
        jetstream: js,
        local,
        control,
        stop: stop.clone(),
    };
    let incoming_task = tokio::spawn(incoming::run(Arc::clone(&context), incoming, stop.clone()));
    let outgoing_task = tokio::spawn(outgoing.run());
    stopped(&mut stop).await;
    context.shared.closed.store(true, Ordering::Relaxed);
    let _ = outgoing_task.await;
    let _ = incoming_task.await;
    let _ = tokio::time::timeout(FINAL_FLUSH, client.flush()).await;
    drop(client);
    context
        .shared
        .counters
        .connected
        .store(false, Ordering::Relaxed);
}

fn on_client_event(shared: &Shared, event: async_nats::Event) {
    let counters = &shared.counters;
    match event {
        async_nats::Event::Connected => {
            counters.connected.store(true, Ordering::Relaxed);
            tracing::info!("nats bridge reconnected");
        }
        async_nats::Event::Disconnected => {
            counters.connected.store(false, Ordering::Relaxed);
            bump(&counters.disconnects, 1);
            tracing::warn!("nats bridge disconnected; reconnecting with backoff");
        }
        async_nats::Event::SlowConsumer(_) => bump(&counters.slow_consumer_signals, 1),
        other => tracing::debug!(event = %other, "nats client event"),
    }
}
