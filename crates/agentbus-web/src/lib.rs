//! HTTP, WebSocket and Server-Sent Events API, and a live dashboard, for an
//! [`agentbus`] event bus.
//!
//! [`WebApi`] turns an [`EventBus`](agentbus::EventBus) into an axum
//! [`Router`](axum::Router) that you mount in your own server or run with
//! [`serve`]:
//!
//! ```no_run
//! use agentbus::EventBus;
//!
//! # async fn run() -> std::io::Result<()> {
//! let bus = EventBus::new();
//! let app: axum::Router = agentbus_web::WebApi::new(bus.clone())
//!     .token(Some("secret".into()))
//!     .body_limit(1 << 20)
//!     .router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
//! agentbus_web::serve(listener, app).await
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod api;
mod auth;
mod dashboard;
mod error;
mod hub;
mod live;
mod openapi;
mod params;
mod publish;
mod read;
mod serve;
mod sse;
mod stats;
mod ws;

pub use crate::{
    api::{
        WebApi, DEFAULT_BODY_LIMIT, DEFAULT_CLIENT_BUFFER, DEFAULT_MAX_CLIENTS,
        DEFAULT_SEND_TIMEOUT,
    },
    serve::serve,
};
