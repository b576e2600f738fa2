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

/// The wire body of an [`ApiError`].
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Short message.
    pub message: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message,
            detail: self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

/// The 401 of a request without the API token: sandbox-agent's problem under `/v1` (as its
/// own server answers), Coder's shape elsewhere.
pub fn unauthorized(path: &str) -> Response {
    let mut resp = if path == "/v1" || path.starts_with("/v1/") {
        super::v1::problem::Problem::token_invalid().into_response()
    } else {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "Missing or wrong API token.".into(),
            detail: "send Authorization: Bearer <token> (deskd --api-token)".into(),
        }
        .into_response()
    };
    resp.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    resp
}
