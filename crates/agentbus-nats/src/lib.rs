//! agentbus-nats (docs to come).

mod bridge;
mod config;
mod dedup;
mod echo;
mod error;
mod incoming;
mod outgoing;
mod stats;
mod wire;

pub use crate::{
    bridge::NatsBridge,
    config::{BridgeConfig, Mode, Overflow, StartFrom},
    error::ConnectError,
    stats::BridgeStats,
};
