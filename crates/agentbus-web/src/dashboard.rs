//! `GET /`: the dashboard, one self-contained page (no CDN, no other asset).

use std::sync::OnceLock;

use agentbus::EventType;
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine as _;
use sha2::{Digest, Sha256};

const STYLE: &str = concat!("\n", include_str!("../assets/dashboard/style.css"));
const SCRIPT: &str = concat!("\n", include_str!("../assets/dashboard/app.js"));

/// The page: markup, style and script embedded at compile time.
pub(crate) const PAGE: &str = concat!(
    include_str!("../assets/dashboard/head.html"),
    "<style>",
    "\n",
    include_str!("../assets/dashboard/style.css"),
    "</style>\n",
    include_str!("../assets/dashboard/body.html"),
    "<script>",
    "\n",
    include_str!("../assets/dashboard/app.js"),
    "</script>\n</body>\n</html>\n",
);

/// The page with the event type names filled in (from the core, so the
/// dashboard cannot drift from it), and its `Content-Security-Policy`.
fn rendered() -> &'static (String, String) {
    static RENDERED: OnceLock<(String, String)> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let json = serde_json::to_string(&names).expect("names encode");
        let page = PAGE.replacen("__EVENT_TYPES__", &json, 1);
        // The inline style and script are allowed by their hashes, and
        // nothing else runs; requests go to this server only.
        let policy = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(SCRIPT),
            hash(STYLE),
        );
        (page, policy)
    })
}

fn hash(inline: &str) -> String {
    let digest = Sha256::digest(inline.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

pub(crate) async fn page() -> impl IntoResponse {
    let (page, policy) = rendered();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, policy.as_str()),
        ],
        page.as_str(),
    )
}
