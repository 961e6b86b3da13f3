//! [`Inner`]: the state one bus's handles share, read by every publish
//! (`dispatch.rs`) and changed by subscribing (`bus.rs`).

use std::collections::HashMap;

use crossbeam_utils::CachePadded;

use crate::delivery::DeliveryState;
use crate::event_type::EventTypeSet;
use crate::guard::Guards;
use crate::handler::Subscriber;
use crate::history::History;
use crate::id::SubscriptionId;
use crate::stats::Counters;
use crate::sync::{Arc, Mutex};
use crate::table::Tables;

/// What an [`EventBus`](crate::EventBus) and its clones point to.
pub(crate) struct Inner {
    /// Distinguishes this bus's subscription ids from every other bus's.
    pub(crate) id: u64,
    pub(crate) tables: Tables,
    pub(crate) history: History,
    pub(crate) counters: Counters,
    /// Checked on every publish; rejections counted here.
    pub(crate) guards: Guards,
    /// Padded: writers lock it on every subscribe and unsubscribe, and it
    /// must not share a line with anything publishers read.
    pub(crate) registry: CachePadded<Mutex<Registry>>,
    /// Dead letters, bus-wide permits, retry counters (`delivery/`).
    pub(crate) delivery: std::sync::Arc<DeliveryState>,
}

/// The writers' side: who is subscribed to what. Guarded by a mutex that
/// publishers never take.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) last_id: u64,
    pub(crate) subscriptions: HashMap<SubscriptionId, (EventTypeSet, Arc<Subscriber>)>,
}
