//! sandbox-agent's error bodies: RFC 9457 `application/problem+json` with a
//! `urn:sandbox-agent:error:<code>` type. Desktop errors carry `code`; the server's generic
//! errors (conflict, not found, bad request) carry `details` instead, as the reference does.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::desktop::DesktopError;

/// One error answer.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (the last part of `type`).
    pub code: &'static str,
    /// Human title.
    pub title: &'static str,
    /// What went wrong.
    pub detail: String,
    /// Desktop errors repeat the code in a `code` field.
    pub desktop: bool,
    /// Generic errors' `details` object.
    pub details: Option<Value>,
}

impl Problem {
    fn desktop(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: String,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail,
            desktop: true,
            details: None,
        }
    }

    /// 400 `desktop_invalid_action`: a request the desktop cannot carry out as given.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::desktop(
            StatusCode::BAD_REQUEST,
            "desktop_invalid_action",
            "Desktop Invalid Action",
            detail.into(),
        )
    }

    /// 409 `desktop_runtime_inactive`: the display is stopped.
    pub fn inactive() -> Problem {
        Problem::desktop(
            StatusCode::CONFLICT,
            "desktop_runtime_inactive",
            "Desktop Runtime Inactive",
            "Desktop runtime has not been started".into(),
        )
    }

    /// 409 `desktop_runtime_starting`: the display is being (re)started.
    pub fn starting() -> Problem {
        Problem::desktop(
            StatusCode::CONFLICT,
            "desktop_runtime_starting",
            "Desktop Runtime Starting",
            "Desktop runtime is starting".into(),
        )
    }

    /// 503 `desktop_runtime_failed`: the X server is unreachable.
    pub fn runtime_failed(detail: impl Into<String>) -> Problem {
        Problem::desktop(
            StatusCode::SERVICE_UNAVAILABLE,
            "desktop_runtime_failed",
            "Desktop Runtime Failed",
            detail.into(),
        )
    }

    /// 404 `window_not_found`.
    pub fn window_not_found(raw: &str) -> Problem {
        Problem::desktop(
            StatusCode::NOT_FOUND,
            "window_not_found",
            "Window Not Found",
            format!("Window {raw} not found"),
        )
    }

    /// 404 `no_focused_window`.
    pub fn no_focused_window() -> Problem {
        Problem::desktop(
            StatusCode::NOT_FOUND,
            "no_focused_window",
            "No Focused Window",
            "No window currently has focus".into(),
        )
    }

    /// 404 `app_not_found`.
    pub fn app_not_found(detail: impl Into<String>) -> Problem {
        Problem::desktop(
            StatusCode::NOT_FOUND,
            "app_not_found",
            "App Not Found",
            detail.into(),
        )
    }

    /// A failure of the desktop while doing `what` (an input, a screenshot...): the X server
    /// being unreachable is 503 `desktop_runtime_failed`, a refused request 400, anything else
    /// 502 with `code`.
    pub fn from_desktop(
        code: &'static str,
        title: &'static str,
        what: &str,
        e: &DesktopError,
    ) -> Problem {
        match e {
            DesktopError::Unavailable(_) | DesktopError::Timeout(_) => {
                Problem::runtime_failed(format!("{what}: {e}"))
            }
            DesktopError::Invalid(_) => Problem::invalid(e.to_string()),
            _ => Problem::desktop(StatusCode::BAD_GATEWAY, code, title, format!("{what}: {e}")),
        }
    }

    /// 409 `conflict` (generic form).
    pub fn conflict(message: impl Into<String>) -> Problem {
        let message = message.into();
        Problem {
            status: StatusCode::CONFLICT,
            code: "conflict",
            title: "Conflict",
            detail: format!("conflict: {message}"),
            desktop: false,
            details: Some(json!({ "message": message })),
        }
    }

    /// 404 `not_found` for a resource (generic form).
    pub fn not_found(resource: &str, id: &str) -> Problem {
        Problem {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            title: "Not Found",
            detail: format!("not found: {resource} {id}"),
            desktop: false,
            details: Some(json!({ "resource": resource, "id": id })),
        }
    }

    /// 400 or 422 `invalid_request`: a body or query that does not parse.
    pub fn invalid_request(status: StatusCode, message: impl Into<String>) -> Problem {
        let message = message.into();
        Problem {
            status,
            code: "invalid_request",
            title: "Invalid Request",
            detail: format!("invalid request: {message}"),
            desktop: false,
            details: Some(json!({ "message": message })),
        }
    }

    /// 401 `token_invalid`: no or a wrong bearer token (with `--api-token`).
    pub fn token_invalid() -> Problem {
        Problem {
            status: StatusCode::UNAUTHORIZED,
            code: "token_invalid",
            title: "Token Invalid",
            detail: "token invalid".into(),
            desktop: false,
            details: Some(json!({ "message": "missing or invalid bearer token" })),
        }
    }

    /// The wire body.
    pub fn wire(&self) -> ProblemBody {
        ProblemBody {
            kind: format!("urn:sandbox-agent:error:{}", self.code),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.desktop.then(|| self.code.into()),
            details: self.details.clone(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        serde_json::to_value(self.wire()).unwrap_or(Value::Null)
    }
}

/// An RFC 9457 problem as sandbox-agent writes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// `urn:sandbox-agent:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
    /// Desktop errors' machine-readable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Generic errors' details.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        // Serialized from the struct, so the fields keep the reference's order.
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&self.wire()).unwrap_or_default(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_reference() {
        assert_eq!(
            Problem::inactive().body(),
            json!({"type":"urn:sandbox-agent:error:desktop_runtime_inactive",
                   "title":"Desktop Runtime Inactive","status":409,
                   "detail":"Desktop runtime has not been started",
                   "code":"desktop_runtime_inactive"})
        );
        assert_eq!(
            Problem::not_found("desktop_recording", "nope").body(),
            json!({"type":"urn:sandbox-agent:error:not_found","title":"Not Found","status":404,
                   "detail":"not found: desktop_recording nope",
                   "details":{"id":"nope","resource":"desktop_recording"}})
        );
        let p = Problem::from_desktop(
            "desktop_input_failed",
            "Desktop Input Failed",
            "click",
            &DesktopError::Unavailable("gone".into()),
        );
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        // Exactly what sandbox-agent 0.4.2 `server --token` answers without the token.
        assert_eq!(
            serde_json::to_string(&Problem::token_invalid().wire()).unwrap(),
            r#"{"type":"urn:sandbox-agent:error:token_invalid","title":"Token Invalid","status":401,"detail":"token invalid","details":{"message":"missing or invalid bearer token"}}"#
        );
    }
}
