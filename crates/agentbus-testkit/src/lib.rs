//! The services agentbus's tests run against, started by the tests
//! themselves, and what the crates' tests share.
//!
//! A dev-dependency of the workspace's crates, never published. It starts
//! real programs on 127.0.0.1, each on a port it picks itself
//! ([`free_port`]) with its files in a temp dir, and stops them when their
//! guard drops, also while a test panics; a watchdog kills what is left
//! should the test process die without unwinding ([`ProcessGuard`]):
//!
//! | Service | Start | Gives |
//! |---|---|---|
//! | PostgreSQL | [`Postgres::start_or_skip`], [`Postgres::shared_or_skip`] | `postgres://` URLs, a fresh database each, stop and restart |
//! | nats-server (JetStream on) | [`NatsServer::start_or_skip`] | its `nats://` URL, SIGKILL and restart |
//! | Chromium + chromedriver (feature `browser`) | [`Browser::start_or_skip`] | a WebDriver session |
//! | Prometheus (scraping one target) | [`Prometheus::start_or_skip`] | instant queries |
//!
//! # When a service is missing
//!
//! Each `start_or_skip` returns `None` when its program is not installed,
//! after printing `SKIPPED <test>: <why> (install it with ...)` on stderr,
//! and the test returns early. With `AGENTBUS_REQUIRE_SERVICES=1` (as
//! `.ci/run` sets after running the scripts in `.ci/install/`), it panics
//! instead, so a CI machine never passes by skipping. The rule lives in
//! [`skip_or_fail`] alone.
//!
//! ```no_run
//! use agentbus_testkit::Postgres;
//!
//! #[test]
//! fn stores_over_postgres() {
//!     let Some(postgres) = Postgres::start_or_skip("stores_over_postgres") else {
//!         return;
//!     };
//!     let url = postgres.create_database();
//!     // ... connect to `url`; the cluster stops when `postgres` drops.
//! #   let _ = url;
//! }
//! ```
//!
//! # Also shared
//!
//! - [`traffic`]: events to publish, from one numbered event to agents at
//!   work.
//! - [`logs`] (feature `logs`): what a test's own thread, or every thread,
//!   logged through `tracing`, for the behaviours a crate promises to log.
//! - [`deadline`]: deadlines a hang cannot escape, for code that may loop
//!   for ever without yielding.
//! - [`threads`]: this process's threads by name, with their scheduler
//!   state, CPU time and context switches (Linux `/proc`), for what a
//!   background thread does while nobody calls it.
//! - [`store::conformance`] (feature `store`): the behaviour every
//!   [`EventStore`](agentbus_store::EventStore) backend must have, one
//!   test per case through [`conformance_suite!`] given a store factory.
//! - [`NatsPeer`] (feature `nats`): a bridged bus in a process of its own,
//!   driven over stdin; the test binary itself, started again
//!   ([`nats_peer_entry!`]).
//!
//! Features keep each crate's build small: `store`, `nats`, `browser` and
//! `logs` add their crates (agentbus-store, agentbus-nats, fantoccini,
//! tracing-subscriber), nothing else does.

#[cfg(feature = "browser")]
mod browser;
pub mod deadline;
#[cfg(feature = "logs")]
pub mod logs;
#[cfg(feature = "nats")]
mod nats_peer;
mod nats_server;
mod policy;
mod port;
mod postgres;
mod process;
mod prometheus;
#[cfg(feature = "store")]
pub mod store;
pub mod threads;
pub mod traffic;

#[cfg(feature = "browser")]
pub use browser::Browser;
#[cfg(feature = "nats")]
pub use nats_peer::{nats_peer_main, NatsPeer};
pub use {
    nats_server::NatsServer,
    policy::{services_required, skip_or_fail, Unavailable, REQUIRE_SERVICES},
    port::free_port,
    postgres::Postgres,
    process::ProcessGuard,
    prometheus::Prometheus,
};
