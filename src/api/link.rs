//! `POST /api/v0/desktop/link`: issue a signed, expiring viewer link (the API twin of
//! `deskd link`). Behind the API token like every other API route.

use axum::extract::State;
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{route, Route, Verb};
use crate::links::{self, LinkSecret};

/// The link route's state.
#[derive(Clone)]
pub struct LinkState {
    secret: LinkSecret,
    scheme: &'static str,
}

/// The request: both fields optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// The viewer may only watch (default false).
    #[serde(default)]
    view_only: bool,
    /// Lifetime such as "90s", "15m", "1h", "7d" (default "1h", at most 30 days).
    ttl: Option<String>,
}

/// A signed viewer link.
#[derive(Debug, Serialize, ToSchema)]
struct LinkResponse {
    /// The viewer URL with the token.
    url: String,
    /// The token alone.
    token: String,
    /// Expiry, unix seconds.
    expires_at: u64,
    /// Whether the viewer may only watch.
    view_only: bool,
}

/// The route; `https` says which scheme the URLs it prints use.
pub fn router(secret: LinkSecret, https: bool) -> Router {
    let state = LinkState {
        secret,
        scheme: if https { "https" } else { "http" },
    };
    super::routes::router(routes()).with_state(state)
}

/// The link route.
pub fn routes() -> Vec<Route<LinkState>> {
    vec![route(Verb::Post, "/api/v0/desktop/link", issue)]
}

fn error(status: StatusCode, message: &str, detail: String) -> Response {
    (
        status,
        Json(serde_json::json!({"message": message, "detail": detail})),
    )
        .into_response()
}

/// Issue a signed, expiring viewer link.
#[utoipa::path(post, path = "/api/v0/desktop/link", tag = "v0",
    request_body(content = LinkRequest, description = "Optional; an empty body takes the defaults"),
    responses(
        (status = 200, description = "The link", body = LinkResponse),
        (status = 400, description = "Bad request", body = super::error::ErrorBody),
        (status = 500, description = "Cannot sign links", body = super::error::ErrorBody),
    ))]
pub async fn issue(State(state): State<LinkState>, headers: HeaderMap, body: String) -> Response {
    let req: LinkRequest = if body.trim().is_empty() {
        LinkRequest {
            view_only: false,
            ttl: None,
        }
    } else {
        match serde_json::from_str(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "Invalid request.", e.to_string()),
        }
    };
    let ttl = match links::parse_ttl(req.ttl.as_deref().unwrap_or("1h")) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "Invalid ttl.", e),
    };
    // The Host the caller reached us by is the one the link should use (the Host allow-list
    // has already vetted it when configured).
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing Host header.",
            "the link URL is built from it".into(),
        );
    };
    match state.secret.issue(ttl, req.view_only) {
        Ok((token, grant)) => Json(LinkResponse {
            url: links::viewer_url(&format!("{}://{host}", state.scheme), &token),
            token,
            expires_at: grant.expires,
            view_only: grant.view_only,
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign links.",
            e.to_string(),
        ),
    }
}
