//! `GET /api/v0/openapi.json`: the OpenAPI 3.1 document, generated with `utoipa` from the
//! handlers' `#[utoipa::path]` attributes and the request and response types themselves.
//! `tests/api.rs` checks that it covers every route in [`super::registered_routes`].

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{action, clipboard, computer_use, link, screenshot, status, v1, windows};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "deskd API",
        description = "Drive an X11 desktop. `/api/v0`: Coder-compatible actions, an Anthropic \
            computer-use adapter, screenshots, windows, clipboard, status and metrics; errors \
            are `{\"message\", \"detail\"}`, and requests that fail validation change nothing. \
            `/v1`: sandbox-agent's desktop API (the `sandbox-agent` SDK drives it); errors are \
            `application/problem+json`. With `--api-token`, every route needs \
            `Authorization: Bearer <token>`."
    ),
    paths(
        action::handle,
        computer_use::handle,
        screenshot::handle_get,
        windows::list,
        windows::focus,
        windows::close,
        windows::move_to,
        windows::resize,
        clipboard::get_text,
        clipboard::put_text,
        link::issue,
        status::status,
        status::metrics,
        document,
        v1::lifecycle::health,
        v1::lifecycle::status,
        v1::lifecycle::start,
        v1::lifecycle::stop,
        v1::lifecycle::display_info,
        v1::screen::full,
        v1::screen::region_shot,
        v1::input::position,
        v1::input::mouse_move,
        v1::input::click,
        v1::input::mouse_down,
        v1::input::mouse_up,
        v1::input::drag,
        v1::input::scroll,
        v1::input::type_text,
        v1::input::press,
        v1::input::key_down,
        v1::input::key_up,
        v1::windows::list,
        v1::windows::focused,
        v1::windows::focus,
        v1::windows::move_to,
        v1::windows::resize,
        v1::clipboard::read,
        v1::clipboard::write,
        v1::apps::launch,
        v1::apps::open,
        v1::recording::start,
        v1::recording::stop,
        v1::recording::list,
        v1::recording::get,
        v1::recording::delete,
        v1::recording::download,
        v1::stream::status,
        v1::stream::start,
        v1::stream::stop,
        v1::stream::signaling,
    ),
    modifiers(&BearerToken, &OperationIds),
    security(("bearer" = [])),
    tags(
        (name = "v0", description = "deskd's own API (Coder's action shape and extensions)"),
        (name = "v1", description = "sandbox-agent's desktop API"),
    )
)]
struct ApiDoc;

/// The `--api-token` bearer scheme.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Operation ids from method and path (`post_v1_desktop_mouse_click`): unique, where the
/// handlers' own names (`list`, `status`, `handle`...) repeat across modules.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{}", words.join("_")));
                }
            }
        }
    }
}

/// The document as JSON (built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
    })
}

/// This document.
#[utoipa::path(get, path = "/api/v0/openapi.json", tag = "v0",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}
