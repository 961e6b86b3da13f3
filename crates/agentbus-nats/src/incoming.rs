//! Events from NATS into the local bus.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventType};
use async_nats::header::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, consumer::PullConsumer, AckKind};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use crate::context::{deliver_policy, Context};
use crate::dedup::DedupWindow;
use crate::echo::MarkedInbound;
use crate::error::ConnectError;
use crate::stats::bump;
use crate::wire;

pub(crate) enum Incoming {
    Core(Vec<async_nats::Subscriber>),
    JetStream(Box<JetStreamSource>),
}

pub(crate) struct JetStreamSource {
    js: jetstream::Context,
    messages: pull::Stream,
}

/// The subjects the bridge listens on: the whole prefix, or one per type.
fn subjects(context: &Context) -> Vec<String> {
    let prefix = &context.config.prefix;
    let types = context.config.incoming_types;
    if types == agentbus::EventTypeSet::all() {
        vec![format!("{prefix}.>")]
    } else {
        types
            .iter()
            .map(|t| format!("{prefix}.{}", t.as_str()))
            .collect()
    }
}

pub(crate) async fn subscribe_core(
    client: &async_nats::Client,
    context: &Context,
) -> Result<Vec<async_nats::Subscriber>, ConnectError> {
    let mut subscribers = Vec::new();
    for subject in subjects(context) {
        subscribers.push(
            client
                .subscribe(subject)
                .await
                .map_err(ConnectError::Subscribe)?,
        );
    }
    // `flush` only empties the socket buffer. A request nobody answers is a
    // round trip: once the server says "no responders" it has processed the
    // subscriptions sent before it, so nothing published after `connect`
    // returns is missed.
    let probe = format!("_agentbus_sync.{}", context.instance);
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(probe, bytes::Bytes::new()),
    )
    .await;
    Ok(subscribers)
}

/// The server's window for dropping a publish it already stored (by its
/// `Nats-Msg-Id`): 2 minutes, or the stream's age limit if that is shorter,
/// which the server requires (0 keeps events forever).
fn duplicate_window(max_age: Duration) -> Duration {
    const TWO_MINUTES: Duration = Duration::from_secs(120);
    if max_age.is_zero() {
        TWO_MINUTES
    } else {
        max_age.min(TWO_MINUTES)
    }
}

pub(crate) async fn bind_jetstream(
    js: &jetstream::Context,
    context: &Context,
) -> Result<JetStreamSource, ConnectError> {
    let config = &context.config;
    let stream_name = config.resolved_stream_name();
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{}.>", config.prefix)],
            max_age: config.max_age,
            duplicate_window: duplicate_window(config.max_age),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|source| ConnectError::Stream {
            stream: stream_name,
            source,
        })?;
    // One filter subject: several need a 2.10 server. Types not wanted are
    // left out on receipt.
    let mut filters = subjects(context);
    let filter_subject = if filters.len() == 1 {
        filters.remove(0)
    } else {
        format!("{}.>", config.prefix)
    };
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            &context.name,
            pull::Config {
                durable_name: Some(context.name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_ack_pending: 20_000,
                deliver_policy: deliver_policy(config.start_from),
                filter_subject,
                ..Default::default()
            },
        )
        .await
        .map_err(|source| ConnectError::Consumer {
            consumer: context.name.clone(),
            source,
        })?;
    let messages = consume(&consumer).await.map_err(ConnectError::Consume)?;
    Ok(JetStreamSource {
        js: js.clone(),
        messages,
    })
}

async fn consume(
    consumer: &PullConsumer,
) -> Result<pull::Stream, async_nats::jetstream::consumer::StreamError> {
    consumer
        .stream()
        .max_messages_per_batch(1000)
        .expires(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(1))
        .messages()
        .await
}

pub(crate) async fn run(context: Arc<Context>, incoming: Incoming, stop: watch::Receiver<bool>) {
    let mut receiver = Receiver {
        context: Arc::clone(&context),
        sequences: HashMap::new(),
        dedup: DedupWindow::new(context.config.dedup_window),
        scope: context.config.scope.clone(),
        warnings: 0,
    };
    match incoming {
        Incoming::Core(subscribers) => receiver.run_core(subscribers, stop).await,
        Incoming::JetStream(source) => receiver.run_jetstream(*source, stop).await,
    }
}

/// Why a message was not delivered.
enum Skip {
    Echo,
    Duplicate,
    Filtered,
    Invalid(String),
    UnknownType(String),
    Oversized(usize),
}

struct Receiver {
    context: Arc<Context>,
    /// Core mode: the last sequence number seen per sending bridge and type.
    sequences: HashMap<Box<str>, [u64; EventType::COUNT]>,
    dedup: DedupWindow,
    scope: crate::config::Scope,
    warnings: u64,
}

impl Receiver {
    async fn run_core(
        &mut self,
        subscribers: Vec<async_nats::Subscriber>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut messages = futures_util::stream::select_all(subscribers);
        loop {
            // A message already waiting skips the select, whose stop branch
            // would register and unregister a waiter every time.
            let message = match messages.next().now_or_never() {
                Some(message) if !self.context.shared.closed.load(Relaxed) => message,
                _ => tokio::select! {
                    biased;
                    _ = crate::context::stopped(&mut stop) => break,
                    message = messages.next() => message,
                },
            };
            let Some(message) = message else { break };
            self.account_sequence(&message.subject, message.headers.as_ref());
            self.handle(
                &message.subject,
                message.headers.as_ref(),
                &message.payload,
                false,
            )
            .await;
        }
    }

    async fn run_jetstream(&mut self, source: JetStreamSource, mut stop: watch::Receiver<bool>) {
        let JetStreamSource { js, mut messages } = source;
        let mut backoff = Duration::from_millis(10);
        // The last message delivered and acked: its ack is confirmed at the
        // stop (see `hand_back`).
        let mut last_acked = None;
        // A message taken from the stream just as the bridge closed.
        let mut taken_at_stop = None;
        'outer: loop {
            let next = match messages.next().now_or_never() {
                Some(next) if !self.context.shared.closed.load(Relaxed) => next,
                Some(Some(Ok(message))) => {
                    taken_at_stop = Some(message);
                    break 'outer;
                }
                _ => tokio::select! {
                    biased;
                    _ = crate::context::stopped(&mut stop) => break 'outer,
                    next = messages.next() => next,
                },
            };
            match next {
                Some(Ok(message)) => {
                    backoff = Duration::from_millis(10);
                    self.handle(
                        &message.subject,
                        message.headers.as_ref(),
                        &message.payload,
                        true,
                    )
                    .await;
                    // Acked once delivered locally (skipped ones too, or they
                    // would come back forever). Explicit acks: acking one
                    // never acks another still on its way.
                    if let Err(err) = message.ack().await {
                        // Delivered again after ack_wait; the id window drops it.
                        tracing::debug!(error = %err, "jetstream ack failed");
                    }
                    last_acked = Some(message);
                }
                other => {
                    match other {
                        Some(Err(err)) => {
                            tracing::debug!(error = %err, "jetstream consumer interrupted; rebinding")
                        }
                        _ => tracing::debug!("jetstream consumer ended; rebinding"),
                    }
                    // Rebind: the server may have restarted and forgotten the
                    // pull requests. The durable consumer resumes after what
                    // was acked; redeliveries are dropped by the id window.
                    loop {
                        tokio::select! {
                            biased;
                            _ = crate::context::stopped(&mut stop) => break 'outer,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(self.context.config.max_reconnect_delay);
                        match bind_jetstream(&js, &self.context).await {
                            Ok(source) => {
                                messages = source.messages;
                                break;
                            }
                            Err(err) => tracing::debug!(error = %err, "rebinding failed"),
                        }
                    }
                }
            }
        }
        let mut undelivered: Vec<jetstream::Message> = taken_at_stop.into_iter().collect();
        while let Some(Some(Ok(message))) = messages.next().now_or_never() {
            undelivered.push(message);
        }
        hand_back(last_acked, undelivered).await;
    }

    /// Core mode: counts the messages missing before this one from its sender.
    fn account_sequence(&mut self, subject: &str, headers: Option<&HeaderMap>) {
        let Some((instance, sequence)) = wire::sequence(headers) else {
            return;
        };
        let Ok(event_type) = wire::subject_type(&self.context.config.prefix, subject) else {
            return;
        };
        if instance == self.context.instance {
            return;
        }
        let last = match self.sequences.get_mut(instance) {
            Some(last) => last,
            None => self
                .sequences
                .entry(instance.into())
                .or_insert([0; EventType::COUNT]),
        };
        let last = &mut last[event_type.index()];
        if sequence > *last + 1 {
            let lost = sequence - *last - 1;
            bump(&self.context.shared.counters.incoming_lost, lost);
            tracing::warn!(
                lost,
                sender = instance,
                "events from NATS lost before they arrived"
            );
        }
        *last = (*last).max(sequence);
    }

    async fn handle(
        &mut self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        dedup: bool,
    ) {
        match self.accept(subject, headers, payload, dedup) {
            Ok(event) => {
                let event = Arc::new(event);
                let bus = &self.context.bus;
                // Past the guards: the sending bus's guards let it in, and
                // an event let in anywhere is never dropped here (see the
                // crate docs, "Guards").
                let publish = std::pin::pin!(bus.publish_unguarded(Arc::clone(&event)));
                MarkedInbound::new(event, publish).await;
                bump(&self.context.shared.counters.received, 1);
            }
            Err(skip) => self.count(skip, subject),
        }
    }

    fn accept(
        &mut self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        dedup: bool,
    ) -> Result<Event, Skip> {
        let context = &*self.context;
        if wire::header(headers, &wire::ORIGIN) == Some(context.name.as_str())
            || wire::sequence(headers).is_some_and(|(instance, _)| instance == context.instance)
        {
            return Err(Skip::Echo);
        }
        let subject_type = wire::subject_type(&context.config.prefix, subject)
            .map_err(|()| Skip::UnknownType(subject.to_owned()))?;
        if payload.len() > context.config.max_event_bytes {
            return Err(Skip::Oversized(payload.len()));
        }
        let mut event = decode(payload)?;
        if event.trace_context.is_none() {
            event.trace_context = wire::trace_context(headers);
        }
        if event.event_type != subject_type {
            return Err(Skip::Invalid(format!(
                "type `{}` on subject `{subject}`",
                event.event_type
            )));
        }
        if !context.config.incoming_types.contains(event.event_type)
            || !crate::config::in_scope(&self.scope, &event)
        {
            return Err(Skip::Filtered);
        }
        if dedup && !self.dedup.insert(event.id) {
            return Err(Skip::Duplicate);
        }
        Ok(event)
    }

    fn count(&mut self, skip: Skip, subject: &str) {
        let counters = &self.context.shared.counters;
        let (counter, problem): (&AtomicU64, Option<String>) = match skip {
            Skip::Echo => (&counters.echoes_skipped, None),
            Skip::Duplicate => (&counters.duplicates_skipped, None),
            Skip::Filtered => (&counters.filtered, None),
            Skip::Invalid(why) => (
                &counters.rejected_invalid,
                Some(format!("not an event: {why}")),
            ),
            Skip::UnknownType(name) => (
                &counters.rejected_unknown_type,
                Some(format!("unknown event type: {name}")),
            ),
            Skip::Oversized(bytes) => (
                &counters.rejected_oversized,
                Some(format!("{bytes} bytes, over max_event_bytes")),
            ),
        };
        bump(counter, 1);
        if let Some(problem) = problem {
            // Bad input can come in floods: log the first few, then every
            // thousandth; the counters have the rest.
            self.warnings += 1;
            if self.warnings <= 10 || self.warnings.is_multiple_of(1000) {
                tracing::warn!(
                    subject,
                    problem,
                    skipped = self.warnings,
                    "message from NATS skipped"
                );
            }
        }
    }
}

/// The end of a JetStream consumer's life: naks what arrived but was not
/// delivered, so the next life gets it at once rather than after ack_wait,
/// then confirms with a double ack (a request the server answers once it has
/// processed it) that every ack and nak sent on this connection has been
/// processed: the server handles one connection's acks in order.
///
/// Plain acks are fire-and-forget: on a loaded machine the server can still
/// hold unread acks when the process closes its socket (and a close with
/// unread incoming data resets the connection, which discards them), so
/// without the confirmation a restarted consumer was handed again events its
/// first life had delivered. The last delivered message is acked again
/// (acking twice is harmless); if nothing was delivered, the last nak is the
/// confirmed one. Retried until [`FINAL_FLUSH`](crate::bridge::FINAL_FLUSH)
/// runs out.
async fn hand_back(
    last_acked: Option<jetstream::Message>,
    mut undelivered: Vec<jetstream::Message>,
) {
    let confirm = match last_acked {
        Some(message) => Some((message, AckKind::Ack)),
        None => undelivered
            .pop()
            .map(|message| (message, AckKind::Nak(None))),
    };
    for message in &undelivered {
        let _ = message.ack_with(AckKind::Nak(None)).await;
    }
    let Some((message, kind)) = confirm else {
        return;
    };
    let deadline = tokio::time::Instant::now() + crate::bridge::FINAL_FLUSH;
    loop {
        match tokio::time::timeout_at(deadline, message.double_ack_with(kind)).await {
            Ok(Ok(())) => return,
            Ok(Err(err)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %err, "final jetstream ack not confirmed yet; retrying")
            }
            _ => {
                tracing::warn!(
                    "the server did not confirm the final jetstream acks; \
                     the next consumer may be handed some delivered events again"
                );
                return;
            }
        }
    }
}

fn decode(payload: &[u8]) -> Result<Event, Skip> {
    let text = std::str::from_utf8(payload).map_err(|err| Skip::Invalid(err.to_string()))?;
    Event::from_json(text).map_err(|err| {
        // Tell an unknown type (a newer sender) from a malformed message.
        let type_name = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| value.get("type")?.as_str().map(str::to_owned));
        match type_name {
            Some(name) if name.parse::<EventType>().is_err() => Skip::UnknownType(name),
            _ => Skip::Invalid(err.to_string()),
        }
    })
}
