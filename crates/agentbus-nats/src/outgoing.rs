//! Local events out to NATS.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use agentbus::{wait_for_room, Event, EventStream, EventType, Overflow, TryRecvError};
use async_nats::header::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{jetstream, Subject};
use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{in_scope, Mode};
use crate::context::{on_bridge_thread, waits, Context, Control, Shared};
use crate::echo::is_inbound;
use crate::stats::bump;
use crate::wire::Stamp;

/// How many local events are taken per wake-up before yielding to the
/// runtime's other tasks.
const BATCH: usize = 256;

/// How long a graceful stop waits for buffered events to be stored.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Subscribes the outgoing side on the local bus: a bounded stream whose
/// filter, run inline by publishers, drops inbound events (no echo), applies
/// the circle and project filter, and in JetStream [`Overflow::Wait`] mode
/// reserves room, waiting for it.
///
/// [`Overflow::Wait`]: crate::Overflow::Wait
pub(crate) fn subscribe(context: &Context) -> EventStream {
    let config = &context.config;
    let scope = config.scope.clone();
    let capacity = config.outgoing_buffer;
    let subscription = context.bus.subscription(config.outgoing_types);
    if !waits(config) {
        // Core mode always drops the oldest; JetStream keeps the newest
        // buffered events unless told to keep the older ones.
        let overflow = match (config.mode, config.overflow) {
            (Mode::JetStream, Overflow::DropNewest) => Overflow::DropNewest,
            _ => Overflow::DropOldest,
        };
        return match scope {
            None => subscription.filter(|event: &Event| !is_inbound(event)),
            scope @ Some(_) => subscription
                .filter(move |event: &Event| !is_inbound(event) && in_scope(&scope, event)),
        }
        .name("agentbus-nats outgoing")
        .stream_with(capacity, overflow);
    }
    let shared = Arc::clone(&context.shared);
    subscription
        .filter(move |event: &Event| {
            if is_inbound(event) || !in_scope(&scope, event) {
                return false;
            }
            reserve(&shared, capacity)
        })
        .name("agentbus-nats outgoing")
        .stream(capacity)
}

/// Takes one slot of the outgoing buffer, waiting while it is full. Never
/// waits on the bridge's own thread (a handler reacting to an inbound event),
/// which is the one that makes room: there a full buffer drops and counts.
fn reserve(shared: &Shared, capacity: usize) -> bool {
    // Full: the server is away or slower than the publishers. This is the
    // overflow path.
    wait_for_room(|| {
        let mut used = shared.reserved.load(Ordering::Relaxed);
        while used < capacity {
            match shared.reserved.compare_exchange_weak(
                used,
                used + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(true),
                Err(now) => used = now,
            }
        }
        if shared.closed.load(Ordering::Relaxed) || on_bridge_thread() {
            bump(&shared.counters.outgoing_dropped, 1);
            return Some(false);
        }
        None
    })
}

pub(crate) struct Outgoing {
    pub(crate) sender: Sender,
    pub(crate) jetstream: Option<jetstream::Context>,
    pub(crate) local: EventStream,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// An encoded event on its way out.
struct Message {
    subject: Subject,
    headers: HeaderMap,
    payload: Bytes,
}

/// A publish's ack, given up on after the bridge's
/// [`ack_timeout`](crate::BridgeConfig::ack_timeout): the client's own wait
/// for an awaited ack is its context's timeout, which also bounds every
/// JetStream API request, so it is kept at least as long and the bridge
/// times the ack itself.
type AckFuture = Pin<Box<dyn Future<Output = Result<(), AckError>> + Send>>;

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
enum AckError {
    #[error("publish not acknowledged")]
    Refused(#[source] jetstream::context::PublishError),
    #[error("no ack within {0:?}")]
    TimedOut(Duration),
}

fn timed_ack(ack: jetstream::context::PublishAckFuture, within: Duration) -> AckFuture {
    Box::pin(async move {
        match tokio::time::timeout(within, ack.into_future()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(AckError::Refused(err)),
            Err(_) => Err(AckError::TimedOut(within)),
        }
    })
}

/// What turns local events into NATS messages.
pub(crate) struct Sender {
    pub(crate) context: Arc<Context>,
    pub(crate) client: async_nats::Client,
    pub(crate) stamp: Stamp,
    /// `<prefix>.<dotted type>` by type index.
    pub(crate) subjects: Vec<Subject>,
}

impl Outgoing {
    pub(crate) async fn run(self) {
        match self.jetstream.clone() {
            None => self.run_core().await,
            Some(js) => self.run_jetstream(js).await,
        }
    }
}

impl Sender {
    /// Encodes `event`, or counts it as rejected.
    fn encode(&self, event: &Event, sequence: Option<u64>) -> Option<Message> {
        let payload = match event.to_json() {
            Ok(json) => json,
            Err(err) => {
                bump(&self.context.shared.counters.outgoing_rejected, 1);
                tracing::warn!(event_id = %event.id, error = %err, "event not sent: cannot encode");
                return None;
            }
        };
        if payload.len() > self.context.config.max_event_bytes {
            bump(&self.context.shared.counters.outgoing_rejected, 1);
            tracing::warn!(
                event_id = %event.id,
                bytes = payload.len(),
                max = self.context.config.max_event_bytes,
                "event not sent: larger than max_event_bytes"
            );
            return None;
        }
        let id = event.id.to_string();
        let mut headers = match sequence {
            Some(sequence) => self.stamp.core(&id, sequence),
            None => self.stamp.jetstream(&id),
        };
        crate::wire::put_trace_context(&mut headers, event);
        Some(Message {
            subject: self.subjects[event.event_type.index()].clone(),
            headers,
            payload: Bytes::from(payload),
        })
    }

    fn count_lag(&self, missed: u64) {
        bump(&self.context.shared.counters.outgoing_dropped, missed);
        tracing::warn!(missed, "outgoing buffer full: events dropped");
    }

    /// Sends up to `limit` buffered events without waiting for more.
    async fn drain_core(&self, local: &mut EventStream, sequences: &mut [u64], limit: usize) {
        for _ in 0..limit {
            match local.try_recv() {
                Ok(event) => self.send_core(sequences, &event).await,
                Err(TryRecvError::Lagged(missed)) => self.count_lag(missed),
                Err(_) => break,
            }
        }
    }

    async fn send_core(&self, sequences: &mut [u64], event: &Event) {
        let slot = &mut sequences[event.event_type.index()];
        let Some(message) = self.encode(event, Some(*slot + 1)) else {
            return;
        };
        *slot += 1;
        let counters = &self.context.shared.counters;
        match self
            .client
            .publish_with_headers(message.subject, message.headers, message.payload)
            .await
        {
            Ok(()) => bump(&counters.sent, 1),
            Err(err) => {
                bump(&counters.outgoing_rejected, 1);
                tracing::warn!(event_id = %event.id, error = %err, "event not sent");
            }
        }
    }
}

impl Outgoing {
    async fn run_core(self) {
        let Outgoing {
            sender,
            mut local,
            mut control,
            mut stop,
            ..
        } = self;
        let mut sequences = [0u64; EventType::COUNT];
        loop {
            let first = tokio::select! {
                biased;
                _ = crate::context::stopped(&mut stop) => break,
                Some(Control::Flush(done)) = control.recv() => {
                    sender.drain_core(&mut local, &mut sequences, usize::MAX).await;
                    let _ = sender.client.flush().await;
                    let _ = done.send(());
                    continue;
                }
                next = local.recv() => next,
            };
            match first {
                None => break,
                Some(Err(lagged)) => sender.count_lag(lagged.0),
                Some(Ok(event)) => sender.send_core(&mut sequences, &event).await,
            }
            sender.drain_core(&mut local, &mut sequences, BATCH).await;
        }
        sender
            .drain_core(&mut local, &mut sequences, usize::MAX)
            .await;
        let _ = tokio::time::timeout(STOP_DEADLINE, sender.client.flush()).await;
    }

    async fn run_jetstream(self, js: jetstream::Context) {
        let Outgoing {
            sender,
            mut local,
            mut control,
            mut stop,
            ..
        } = self;
        let config = &sender.context.config;
        let (capacity, window) = (config.outgoing_buffer, config.acks_in_flight);
        let shared = Arc::clone(&sender.context.shared);
        let waits = waits(config);
        // `pending[..acks.len()]` are published and awaiting their acks; the
        // rest are not sent yet.
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut acks: VecDeque<AckFuture> = VecDeque::new();
        let mut flushes: Vec<(usize, oneshot::Sender<()>)> = Vec::new();
        let mut delivered_total = 0usize;
        let mut stopping: Option<tokio::time::Instant> = None;
        let mut backoff = Duration::from_millis(10);
        // What an ack (or its failure) does; used by the fast path below and
        // by the select.
        macro_rules! on_ack {
            ($result:expr) => {
                match $result {
                    Ok(_) => {
                        pending.pop_front();
                        delivered_total += 1;
                        backoff = Duration::from_millis(10);
                        bump(&shared.counters.sent, 1);
                        release(&shared, waits, 1);
                        settle(&mut flushes, delivered_total);
                    }
                    Err(err) => {
                        // The ones behind it are sent again too: order is
                        // kept, and the server drops the duplicates.
                        tracing::debug!(error = ?err, "jetstream ack failed; sending again");
                        bump(&shared.counters.resent, (acks.len() + 1) as u64);
                        acks.clear();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(config.max_reconnect_delay);
                    }
                }
            };
        }
        loop {
            // Take local events while there is room, a batch at a time so
            // encoding and sending interleave.
            let mut drained = false;
            for _ in 0..BATCH {
                if pending.len() >= capacity {
                    break;
                }
                match local.try_recv() {
                    Ok(event) => match sender.encode(&event, None) {
                        Some(message) => pending.push_back(message),
                        None => release(&shared, waits, 1),
                    },
                    Err(TryRecvError::Lagged(missed)) => sender.count_lag(missed),
                    Err(_) => {
                        drained = true;
                        break;
                    }
                }
            }
            // Publish what is not sent yet, up to the ack window.
            let mut failed = false;
            while acks.len() < window && acks.len() < pending.len() {
                let message = &pending[acks.len()];
                match js
                    .publish_with_headers(
                        message.subject.clone(),
                        message.headers.clone(),
                        message.payload.clone(),
                    )
                    .await
                {
                    Ok(ack) => acks.push_back(timed_ack(ack, config.ack_timeout)),
                    Err(err) if err.kind() == PublishErrorKind::MaxPayloadExceeded => {
                        // The server will never take it: counted and
                        // skipped, as in core mode, rather than sent again
                        // for ever with everything behind it waiting.
                        tracing::warn!(error = %err, "event not sent: larger than the server takes");
                        pending.remove(acks.len());
                        delivered_total += 1;
                        bump(&shared.counters.outgoing_rejected, 1);
                        release(&shared, waits, 1);
                        settle(&mut flushes, delivered_total);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "jetstream publish failed");
                        failed = true;
                        break;
                    }
                }
            }
            if let Some(deadline) = stopping {
                if pending.is_empty() && drained {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        unsent = pending.len(),
                        "bridge stopped before every buffered event was stored"
                    );
                    break;
                }
            }
            if failed {
                bump(&shared.counters.resent, acks.len() as u64);
                acks.clear();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_reconnect_delay);
                continue;
            }
            // The oldest ack is usually in by now: take it without building
            // the select (whose stop branch registers a waiter each time).
            if let Some(result) = acks.front_mut().and_then(|ack| ack.as_mut().now_or_never()) {
                acks.pop_front();
                on_ack!(result);
                continue;
            }
            tokio::select! {
                biased;
                result = async { acks.front_mut().expect("checked").as_mut().await }, if !acks.is_empty() => {
                    acks.pop_front();
                    on_ack!(result);
                }
                _ = crate::context::stopped(&mut stop), if stopping.is_none() => {
                    stopping = Some(tokio::time::Instant::now() + STOP_DEADLINE);
                }
                Some(Control::Flush(done)) = control.recv() => {
                    // Everything taken so far, and what is in the local
                    // buffer now, must be stored first.
                    loop {
                        match local.try_recv() {
                            Ok(event) => match sender.encode(&event, None) {
                                Some(message) => pending.push_back(message),
                                None => release(&shared, waits, 1),
                            },
                            Err(TryRecvError::Lagged(missed)) => sender.count_lag(missed),
                            Err(_) => break,
                        }
                    }
                    flushes.push((delivered_total + pending.len(), done));
                    settle(&mut flushes, delivered_total);
                }
                next = local.recv(), if pending.len() < capacity && stopping.is_none() => {
                    match next {
                        Some(Ok(event)) => match sender.encode(&event, None) {
                            Some(message) => pending.push_back(message),
                            None => release(&shared, waits, 1),
                        },
                        Some(Err(lagged)) => sender.count_lag(lagged.0),
                        None => stopping = Some(tokio::time::Instant::now() + STOP_DEADLINE),
                    }
                }
            }
        }
    }
}

/// Answers the flushes whose events are all stored.
fn settle(flushes: &mut Vec<(usize, oneshot::Sender<()>)>, stored: usize) {
    let mut index = 0;
    while index < flushes.len() {
        if flushes[index].0 <= stored {
            let (_, done) = flushes.swap_remove(index);
            let _ = done.send(());
        } else {
            index += 1;
        }
    }
}

fn release(shared: &Shared, waits: bool, count: usize) {
    if waits {
        shared.reserved.fetch_sub(count, Ordering::Relaxed);
    }
}
