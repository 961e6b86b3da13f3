//! [`serve`]: run a router on a listener until the process ends.

use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` on `listener` (HTTP/1.1, WebSocket upgrades included) until
/// an I/O error ends it.
///
/// Equivalent to `axum::serve(listener, app).await`; for graceful shutdown,
/// call `axum::serve` yourself and add `with_graceful_shutdown`.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}
