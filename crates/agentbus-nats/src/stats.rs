//! [`BridgeStats`]: what a bridge has sent, received, dropped and rejected.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::context::Shared;

/// A snapshot of a bridge's counters; from
/// [`NatsBridge::stats`](crate::NatsBridge::stats).
///
/// Every event that does not make it is in exactly one counter: the sender's
/// [`outgoing_dropped`](Self::outgoing_dropped) or
/// [`outgoing_rejected`](Self::outgoing_rejected), or a receiver's
/// [`incoming_lost`](Self::incoming_lost) or one of the `rejected_*` counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Local events handed to NATS (in JetStream mode: acknowledged by the
    /// server as stored).
    pub sent: u64,
    /// Local events dropped before they reached NATS because the outgoing
    /// buffer was full (core mode, or JetStream with
    /// [`Overflow::DropOldest`](crate::Overflow::DropOldest)).
    pub outgoing_dropped: u64,
    /// Local events not sent because they cannot be encoded or exceed
    /// [`max_event_bytes`](crate::BridgeConfig::max_event_bytes), or NATS
    /// refused them (a payload over the server's `max_payload`, in either
    /// mode, is refused every time, so it is skipped, not sent again).
    pub outgoing_rejected: u64,
    /// JetStream: publishes sent again after a failed or missing ack.
    pub resent: u64,
    /// Events from other processes published on the local bus.
    pub received: u64,
    /// Core mode: events another process sent that never arrived here, found
    /// from the gaps in each sender's per-type sequence numbers (dropped by a
    /// full client buffer, by the server for a slow consumer, or while
    /// disconnected). A loss is counted when the next event of that type from
    /// that sender arrives.
    pub incoming_lost: u64,
    /// Core mode: the NATS client's slow-consumer signals (it drops a message
    /// each time; the client may drop some signals too, so
    /// [`incoming_lost`](Self::incoming_lost) is the exact figure).
    pub slow_consumer_signals: u64,
    /// JetStream: redeliveries of events already delivered here, skipped.
    pub duplicates_skipped: u64,
    /// Messages that are this process's own events coming back, skipped.
    pub echoes_skipped: u64,
    /// Incoming messages that are not an event (not JSON, wrong shape, or a
    /// type that does not match their subject), skipped.
    pub rejected_invalid: u64,
    /// Incoming messages of an event type this build does not know, skipped.
    pub rejected_unknown_type: u64,
    /// Incoming messages larger than
    /// [`max_event_bytes`](crate::BridgeConfig::max_event_bytes), skipped.
    pub rejected_oversized: u64,
    /// Incoming events left out by the circle or project filter.
    pub filtered: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
    /// Whether the client is connected right now.
    pub connected: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) outgoing_dropped: AtomicU64,
    pub(crate) outgoing_rejected: AtomicU64,
    pub(crate) resent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) incoming_lost: AtomicU64,
    pub(crate) slow_consumer_signals: AtomicU64,
    pub(crate) duplicates_skipped: AtomicU64,
    pub(crate) echoes_skipped: AtomicU64,
    pub(crate) rejected_invalid: AtomicU64,
    pub(crate) rejected_unknown_type: AtomicU64,
    pub(crate) rejected_oversized: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) connected: AtomicBool,
}

/// Relaxed everywhere: counters order nothing, and a snapshot is a
/// best-effort picture of a running bridge.
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            sent: get(&self.sent),
            outgoing_dropped: get(&self.outgoing_dropped),
            outgoing_rejected: get(&self.outgoing_rejected),
            resent: get(&self.resent),
            received: get(&self.received),
            incoming_lost: get(&self.incoming_lost),
            slow_consumer_signals: get(&self.slow_consumer_signals),
            duplicates_skipped: get(&self.duplicates_skipped),
            echoes_skipped: get(&self.echoes_skipped),
            rejected_invalid: get(&self.rejected_invalid),
            rejected_unknown_type: get(&self.rejected_unknown_type),
            rejected_oversized: get(&self.rejected_oversized),
            filtered: get(&self.filtered),
            disconnects: get(&self.disconnects),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

/// Reads a bridge's counters without holding the bridge; from
/// [`NatsBridge::stats_handle`](crate::NatsBridge::stats_handle). Cheap to
/// clone; `Send` and `Sync`.
#[derive(Clone)]
pub struct StatsHandle(pub(crate) Arc<Shared>);

impl StatsHandle {
    /// A snapshot of the counters, as [`NatsBridge::stats`](crate::NatsBridge::stats).
    pub fn snapshot(&self) -> BridgeStats {
        self.0.counters.snapshot()
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatsHandle")
            .field(&self.snapshot())
            .finish()
    }
}
