//! Recordings: start, stop, list, get, download, delete, mapped onto deskd's own recorder
//! ([`crate::record::Recorder`]: H.264 from the capture path in fragmented MP4 under the state
//! directory) instead of the reference's ffmpeg x11grab.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::Problem;
use super::timestamp;
use super::{ensure_active, parse, V1};
use crate::api::ApiState;
use crate::record::{RecordError, Recorder, RecordingInfo, RecordingStatus, StartOptions};

/// `POST /v1/desktop/recording/start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopRecordingStartRequest {
    /// At most this many frames a second (30); frames are written only when the screen changes.
    pub fps: Option<u32>,
}

/// A recording.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopRecordingInfo {
    /// Identifier.
    pub id: String,
    /// recording, completed or failed.
    #[schema(value_type = String, example = "completed")]
    pub status: RecordingStatus,
    /// The recorder's process (none: deskd records in-process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// The MP4 file's name.
    pub file_name: String,
    /// Bytes on disk.
    pub bytes: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

/// `GET /v1/desktop/recordings`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopRecordingListResponse {
    /// Oldest first.
    pub recordings: Vec<DesktopRecordingInfo>,
}

fn to_v1(i: RecordingInfo) -> DesktopRecordingInfo {
    DesktopRecordingInfo {
        id: i.id,
        status: i.status,
        process_id: None,
        file_name: i.file_name,
        bytes: i.size_bytes,
        started_at: timestamp::format(i.started_at),
        ended_at: i.ended_at.map(timestamp::format),
    }
}

fn problem(e: RecordError) -> Problem {
    match e {
        RecordError::Conflict(_) => Problem::conflict("a desktop recording is already active"),
        RecordError::NotRecording => Problem::conflict("no desktop recording is active"),
        RecordError::NotFound(id) => Problem::not_found("desktop_recording", &id),
        RecordError::Invalid(m) => Problem::invalid(m),
        RecordError::QuotaExceeded { .. } | RecordError::DiskFull(_) => Problem {
            status: StatusCode::INSUFFICIENT_STORAGE,
            code: "desktop_recording_failed",
            title: "Desktop Recording Failed",
            detail: e.to_string(),
            desktop: true,
            details: None,
        },
        RecordError::Io(_) => Problem {
            status: StatusCode::BAD_GATEWAY,
            code: "desktop_recording_failed",
            title: "Desktop Recording Failed",
            detail: e.to_string(),
            desktop: true,
            details: None,
        },
    }
}

fn recorder(state: &ApiState) -> Result<Recorder, Problem> {
    state.recorder.clone().ok_or_else(|| {
        Problem::conflict("recording is not available: this API runs without deskd's server")
    })
}

async fn on_recorder<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&Recorder) -> Result<T, RecordError> + Send + 'static,
) -> Result<T, Problem> {
    let r = recorder(state)?;
    // stop and delete wait for the recording thread's last fragment.
    tokio::task::spawn_blocking(move || f(&r))
        .await
        .map_err(|e| Problem::runtime_failed(e.to_string()))?
        .map_err(problem)
}

/// `POST /v1/desktop/recording/start`.
#[utoipa::path(post, path = "/v1/desktop/recording/start", tag = "v1", request_body = DesktopRecordingStartRequest, responses((status = 200, description = "OK", body = DesktopRecordingInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn start(State(state): State<ApiState>, body: Bytes) -> V1<DesktopRecordingInfo> {
    ensure_active(&state)?;
    let r: DesktopRecordingStartRequest = parse(&body)?;
    let opts = StartOptions {
        fps: r.fps.unwrap_or(StartOptions::default().fps),
    };
    Ok(Json(to_v1(
        on_recorder(&state, move |rec| rec.start(opts)).await?,
    )))
}

/// `POST /v1/desktop/recording/stop`.
#[utoipa::path(post, path = "/v1/desktop/recording/stop", tag = "v1", responses((status = 200, description = "OK", body = DesktopRecordingInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn stop(State(state): State<ApiState>) -> V1<DesktopRecordingInfo> {
    Ok(Json(to_v1(on_recorder(&state, |rec| rec.stop()).await?)))
}

/// `GET /v1/desktop/recordings`.
#[utoipa::path(get, path = "/v1/desktop/recordings", tag = "v1", responses((status = 200, description = "OK", body = DesktopRecordingListResponse), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn list(State(state): State<ApiState>) -> V1<DesktopRecordingListResponse> {
    let recordings = match &state.recorder {
        Some(r) => r.list().into_iter().map(to_v1).collect(),
        None => Vec::new(),
    };
    Ok(Json(DesktopRecordingListResponse { recordings }))
}

/// `GET /v1/desktop/recordings/{id}`.
#[utoipa::path(get, path = "/v1/desktop/recordings/{id}", tag = "v1", params(("id" = String, Path, description = "Recording id")), responses((status = 200, description = "OK", body = DesktopRecordingInfo), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> V1<DesktopRecordingInfo> {
    recorder(&state)?
        .get(&id)
        .map(|i| Json(to_v1(i)))
        .ok_or_else(|| Problem::not_found("desktop_recording", &id))
}

/// `GET /v1/desktop/recordings/{id}/download`: the MP4, streamed from disk (a recording in
/// progress plays up to its last fragment).
#[utoipa::path(get, path = "/v1/desktop/recordings/{id}/download", tag = "v1", params(("id" = String, Path, description = "Recording id")), responses((status = 200, description = "The fragmented MP4", content_type = "video/mp4", body = Vec<u8>), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn download(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let path = match on_recorder(&state, move |rec| rec.file(&id)).await {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return Problem::runtime_failed(format!("opening the recording: {e}")).into_response()
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("video/mp4"),
    );
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
}

/// `DELETE /v1/desktop/recordings/{id}`: 204; 409 while it records.
#[utoipa::path(delete, path = "/v1/desktop/recordings/{id}", tag = "v1", params(("id" = String, Path, description = "Recording id")), responses((status = 204, description = "Deleted"), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn delete(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let rec = match recorder(&state) {
        Ok(r) => Arc::new(r),
        Err(p) => return p.into_response(),
    };
    let id2 = id.clone();
    match tokio::task::spawn_blocking(move || rec.delete(&id2)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(RecordError::Conflict(_))) => {
            Problem::conflict("stop the active desktop recording before deleting it")
                .into_response()
        }
        Ok(Err(e)) => problem(e).into_response(),
        Err(e) => Problem::runtime_failed(e.to_string()).into_response(),
    }
}
