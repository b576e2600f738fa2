//! The error answer of the `/api/v0` endpoints (Coder's shape: `{"message", "detail"}`); the
//! `/v1` endpoints answer [`super::v1::problem::Problem`]s.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::desktop::DesktopError;

/// Coder's error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// 400, 404, 500...
    pub status: StatusCode,
    /// Short message.
    pub message: String,
    /// Details (omitted when empty).
    pub detail: String,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            detail: String::new(),
        }
    }

    /// 500 from a desktop failure; 503 when the X server is gone or not answering.
    pub fn desktop(message: impl Into<String>, e: &DesktopError) -> ApiError {
        let status = match e {
            DesktopError::Unavailable(_) | DesktopError::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: message.into(),
            detail: e.to_string(),
        }
    }

    /// With a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = detail.into();
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("message".into(), self.message.into());
        if !self.detail.is_empty() {
            body.insert("detail".into(), self.detail.into());
        }
        (self.status, Json(serde_json::Value::Object(body))).into_response()
    }
}
