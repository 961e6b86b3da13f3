//! [`AppState`]: what every handler shares, built once per router.

use std::sync::Arc;
use std::time::Duration;

use agentbus::EventBus;
use agentbus_store::Recorder;

use crate::hub::Hub;
use crate::metrics::Metrics;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) bus: EventBus,
    pub(crate) recorder: Option<Recorder>,
    pub(crate) body_limit: usize,
    pub(crate) max_clients: usize,
    pub(crate) send_timeout: Duration,
    pub(crate) durable_timeout: Duration,
    pub(crate) hub: Arc<Hub>,
    pub(crate) metrics: Metrics,
}

pub(crate) type SharedState = Arc<AppState>;
