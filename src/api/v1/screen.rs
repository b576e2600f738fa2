//! Screenshots: `GET /v1/desktop/screenshot` and `/screenshot/region` with `format` (png,
//! jpeg, webp), `quality`, `scale` (0.1 to 1) and `showCursor`, answered with the image bytes.
//! Same capture and encoders as `/api/v0/desktop/screenshot`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ensure_active;
use super::problem::Problem;
use crate::api::screenshot::{self, Region, ShotOptions};
use crate::api::screenshot_options::{OptionError, Rules, ScreenshotOptions, Size};
use crate::api::ApiState;

fn bad_query(message: String) -> Problem {
    Problem::invalid_request(StatusCode::BAD_REQUEST, message)
}

fn number<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, Problem> {
    q.get(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| bad_query(format!("invalid value {v:?} for `{name}`")))
        })
        .transpose()
}

/// Format, quality, scale and cursor from the query, checked; `region` in native pixels.
pub fn options(
    q: &HashMap<String, String>,
    screen: (u32, u32),
    region: Option<Region>,
) -> Result<ShotOptions, Problem> {
    let quality = number::<i64>(q, "quality")?;
    let scale = number::<f64>(q, "scale")?;
    let cursor = match q.get("showCursor").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(v) => return Err(bad_query(format!("invalid value {v:?} for `showCursor`"))),
    };
    ScreenshotOptions {
        format: q.get("format").cloned(),
        quality,
        region,
        size: scale.map_or(Size::Native, Size::Scale),
        cursor,
        settle: None,
    }
    .validate(screen, Rules::V1)
    .map_err(|e| match e {
        OptionError::Format(f) => bad_query(format!(
            "unknown variant `{f}`, expected one of `png`, `jpeg`, `webp`"
        )),
        OptionError::Quality(_) => Problem::invalid("quality must be between 1 and 100"),
        OptionError::Scale(_) => Problem::invalid("scale must be between 0.1 and 1.0"),
        OptionError::Width(_) | OptionError::Height(_) => {
            Problem::invalid("width and height must be between 1 and 8192")
        }
        OptionError::Output(e) => Problem::invalid(e),
    })
}

/// The region of a region query, clipped to the screen.
pub fn region(q: &HashMap<String, String>, screen: (u32, u32)) -> Result<Region, Problem> {
    let mut v = [0i64; 4];
    for (slot, name) in v.iter_mut().zip(["x", "y", "width", "height"]) {
        *slot =
            number::<i64>(q, name)?.ok_or_else(|| bad_query(format!("missing field `{name}`")))?;
    }
    let [x, y, w, h] = v;
    if w <= 0 || h <= 0 {
        return Err(Problem::invalid(
            "Screenshot region width and height must be greater than 0",
        ));
    }
    let (sw, sh) = (i64::from(screen.0), i64::from(screen.1));
    if x < 0 || y < 0 || x >= sw || y >= sh {
        return Err(Problem::invalid(format!(
            "Screenshot region origin ({x}, {y}) is outside the {sw}x{sh} screen"
        )));
    }
    let clip = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(Region {
        x: clip(x),
        y: clip(y),
        width: clip(w.min(sw - x)),
        height: clip(h.min(sh - y)),
    })
}

async fn shoot(state: &ApiState, opts: ShotOptions) -> Response {
    match screenshot::capture(&state.desktop, &opts).await {
        Ok(shot) => (
            [(header::CONTENT_TYPE, shot.format.media_type())],
            shot.data,
        )
            .into_response(),
        Err(e) => Problem::from_desktop(
            "desktop_screenshot_failed",
            "Desktop Screenshot Failed",
            "screenshot",
            &e,
        )
        .into_response(),
    }
}

/// `GET /v1/desktop/screenshot`.
#[utoipa::path(get, path = "/v1/desktop/screenshot", tag = "v1", params(("format" = Option<String>, Query, description = "png (default), jpeg or webp"), ("quality" = Option<i64>, Query, description = "JPEG/WebP quality 1..=100"), ("scale" = Option<f64>, Query, description = "Output scale 0.1..=1"), ("showCursor" = Option<bool>, Query, description = "Draw the pointer")), responses((status = 200, description = "The image", content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"))), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn full(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = ensure_active(&state) {
        return p.into_response();
    }
    let screen = crate::api::action::native_size(&state.desktop);
    match options(&q, screen, None) {
        Ok(o) => shoot(&state, o).await,
        Err(p) => p.into_response(),
    }
}

/// `GET /v1/desktop/screenshot/region`.
#[utoipa::path(get, path = "/v1/desktop/screenshot/region", tag = "v1", params(("x" = i64, Query), ("y" = i64, Query), ("width" = i64, Query), ("height" = i64, Query), ("format" = Option<String>, Query, description = "png (default), jpeg or webp"), ("quality" = Option<i64>, Query, description = "JPEG/WebP quality 1..=100"), ("scale" = Option<f64>, Query, description = "Output scale 0.1..=1"), ("showCursor" = Option<bool>, Query, description = "Draw the pointer")), responses((status = 200, description = "The image", content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"))), (status = "4XX", description = "A problem (400 bad input, 404 unknown id, 409 desktop not active)", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json"), (status = "5XX", description = "The desktop failed", body = crate::api::v1::problem::ProblemBody, content_type = "application/problem+json")))]
pub async fn region_shot(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = ensure_active(&state) {
        return p.into_response();
    }
    let screen = crate::api::action::native_size(&state.desktop);
    match region(&q, screen).and_then(|r| options(&q, screen, Some(r))) {
        Ok(o) => shoot(&state, o).await,
        Err(p) => p.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::screenshot::Format;

    fn q(s: &str) -> HashMap<String, String> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn query_options() {
        let o = options(&q(""), (1440, 900), None).unwrap();
        assert_eq!((o.format, o.size, o.cursor), (Format::Png, None, false));
        let o = options(
            &q("format=jpeg&quality=50&scale=0.5&showCursor=true"),
            (1440, 900),
            None,
        )
        .unwrap();
        assert_eq!(o.format, Format::Jpeg);
        assert_eq!(o.quality, Some(50));
        assert_eq!(o.size, Some((720, 450)));
        assert!(o.cursor);
        for bad in ["scale=0", "scale=3", "format=gif", "quality=500", "scale=x"] {
            assert!(options(&q(bad), (1440, 900), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions() {
        let r = region(&q("x=1400&y=10&width=100&height=50"), (1440, 900)).unwrap();
        assert_eq!((r.x, r.width, r.height), (1400, 40, 50));
        assert!(region(&q("x=10&y=10&width=0&height=50"), (1440, 900)).is_err());
        assert!(region(&q("x=10&y=10"), (1440, 900)).is_err());
        assert!(region(&q("x=-1&y=0&width=5&height=5"), (1440, 900)).is_err());
        let o = options(
            &q("scale=0.5"),
            (1440, 900),
            Some(region(&q("x=0&y=0&width=101&height=51"), (1440, 900)).unwrap()),
        )
        .unwrap();
        assert_eq!(o.size, Some((51, 26)));
    }
}
