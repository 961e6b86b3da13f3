//! `GET /`: the dashboard, one self-contained page (no CDN, no other asset).

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

pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
