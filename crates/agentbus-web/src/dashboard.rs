//! `GET /`: the dashboard, one self-contained page (no CDN, no other asset).

use std::sync::OnceLock;

use agentbus::EventType;
use axum::http::header;
use axum::response::IntoResponse;

/// The page: markup, style and script embedded at compile time.
pub(crate) const PAGE: &str = concat!(
    include_str!("../assets/dashboard/head.html"),
    "<style>\n",
    include_str!("../assets/dashboard/style.css"),
    "</style>\n",
    include_str!("../assets/dashboard/body.html"),
    "<script>\n",
    include_str!("../assets/dashboard/app.js"),
    "</script>\n</body>\n</html>\n",
);

/// The page with the event type names filled in (from the core, so the
/// dashboard cannot drift from it).
fn rendered() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let json = serde_json::to_string(&names).expect("names encode");
        PAGE.replacen("__EVENT_TYPES__", &json, 1)
    })
}

pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        rendered(),
    )
}
