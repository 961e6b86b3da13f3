//! [`Context`]: what the bridge's thread and its incoming and outgoing
//! halves share, and the small rules they all follow.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use agentbus::EventBus;
use async_nats::jetstream;
use tokio::sync::{oneshot, watch};

use crate::config::{BridgeConfig, Mode, Overflow, StartFrom};
use crate::stats::Counters;

/// State shared by the bridge's handle, its tasks and the filter that runs on
/// local publishers' threads.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// JetStream with [`Overflow::Wait`]: events accepted and not yet acked.
    pub(crate) reserved: AtomicUsize,
    /// Set when the bridge stops: waiting publishers give up.
    pub(crate) closed: AtomicBool,
}

pub(crate) enum Control {
    Flush(oneshot::Sender<()>),
}

/// Everything the bridge thread needs to run.
pub(crate) struct Context {
    pub(crate) bus: EventBus,
    pub(crate) config: BridgeConfig,
    pub(crate) name: String,
    pub(crate) instance: String,
    pub(crate) shared: Arc<Shared>,
}

thread_local! {
    /// Set on the bridge's own thread, where a publisher must never wait for
    /// room that only this thread can make.
    static BRIDGE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as a bridge's own.
pub(crate) fn mark_bridge_thread() {
    BRIDGE_THREAD.with(|flag| flag.set(true));
}

/// Whether the current thread is a bridge's own.
pub(crate) fn on_bridge_thread() -> bool {
    BRIDGE_THREAD.with(std::cell::Cell::get)
}

pub(crate) fn deliver_policy(start: StartFrom) -> jetstream::consumer::DeliverPolicy {
    match start {
        StartFrom::New => jetstream::consumer::DeliverPolicy::New,
        StartFrom::All => jetstream::consumer::DeliverPolicy::All,
    }
}

pub(crate) fn waits(config: &BridgeConfig) -> bool {
    config.mode == Mode::JetStream && config.overflow == Overflow::Wait
}

/// Resolves once the bridge is told to stop (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
