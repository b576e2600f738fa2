//! The web viewer: `web/index.html`, `web/app.js`, `web/app.css`, and noVNC's `core/` and
//! `vendor/` (from `web/node_modules/@novnc/novnc`, installed by `npm ci` in `web/`) under
//! `/novnc/`.
//!
//! Release builds embed the files in the binary; debug builds read them from the source tree at
//! request time, so editing the page needs no rebuild.
//!
//! Wiring (server side): declare `pub mod assets;` in `transport/mod.rs` and merge
//! [`router`] into the HTTP router, e.g. `app.merge(assets::router())`. It only claims `/`,
//! `/index.html`, `/app.js`, `/app.css` and `/novnc/...`, so it does not collide with
//! `/websockify` or `/api/...`.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::{EmbeddedFile, RustEmbed};

/// deskd's own page.
#[derive(RustEmbed)]
#[folder = "web/"]
#[include = "index.html"]
#[include = "app.js"]
#[include = "app.css"]
struct Page;

/// The noVNC library from npm: only what the browser loads (ES modules), no docs or tests.
#[derive(RustEmbed)]
#[folder = "web/node_modules/@novnc/novnc/"]
#[include = "core/**/*.js"]
#[include = "vendor/**/*.js"]
struct NoVnc;

/// Routes serving the viewer page and noVNC. Merge into the HTTP router.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/app.js",
            get(|h: HeaderMap| async move { page("app.js", &h) }),
        )
        .route(
            "/app.css",
            get(|h: HeaderMap| async move { page("app.css", &h) }),
        )
        .route("/novnc/{*path}", get(novnc))
}

async fn index(headers: HeaderMap) -> Response {
    page("index.html", &headers)
}

fn page(name: &str, headers: &HeaderMap) -> Response {
    serve(name, Page::get(name), headers)
}

async fn novnc(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, NoVnc::get(&path), &headers)
}

fn serve(name: &str, file: Option<EmbeddedFile>, headers: &HeaderMap) -> Response {
    let Some(file) = file else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    // The content hash is the validator: browsers revalidate each load and get 304 when
    // nothing changed, so a new deskd version is never hidden behind a stale cache.
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Ok(v) = HeaderValue::from_str(&etag) {
        builder = builder.header(header::ETAG, v);
    }
    let result = if matches {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        let body = match file.data {
            Cow::Borrowed(b) => Body::from(b),
            Cow::Owned(b) => Body::from(b),
        };
        builder
            .header(header::CONTENT_TYPE, content_type(name))
            .body(body)
    };
    result.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_path(path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        use tower::ServiceExt;
        let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let resp = router().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn serves_page_and_novnc_modules() {
        let (status, headers, body) = get_path("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(String::from_utf8_lossy(&body).contains("app.js"));

        let (status, headers, body) = get_path("/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(String::from_utf8_lossy(&body).contains("./novnc/core/rfb.js"));

        let (status, _, body) = get_path("/novnc/core/rfb.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("export default class RFB"));

        // rfb.js imports pako through a relative path; that must resolve too.
        let (status, _, _) = get_path("/novnc/vendor/pako/lib/zlib/inflate.js").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn refuses_other_files() {
        for path in [
            "/novnc/package.json",
            "/novnc/docs/API.md",
            "/novnc/../package.json",
            "/novnc/core/../../../Cargo.toml",
            "/package.json",
        ] {
            let (status, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn revalidates_with_etag() {
        let (_, headers, _) = get_path("/app.css").await;
        let etag = headers[header::ETAG].clone();
        use tower::ServiceExt;
        let req = axum::http::Request::get("/app.css")
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap();
        let resp = router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    }
}
