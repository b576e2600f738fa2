//! Screenshots for the action API: read the shared framebuffer (after forcing a fresh read of
//! pending damage), optionally wait until the screen is quiet, crop, draw the pointer, resize,
//! and encode as PNG, JPEG or WebP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fast_image_resize as fr;

use crate::capture::{CursorImage, Frame};
use crate::desktop::{Desktop, DesktopError};

/// Largest output side we produce, so a hostile `scaled_width` cannot allocate gigabytes.
pub const MAX_SIDE: u32 = 8192;
/// Largest output area in pixels (8192x4096; an 8K UHD screen fits). With [`MAX_RENDERS`] this
/// bounds the memory screenshots can take at once.
pub const MAX_PIXELS: u64 = 8192 * 4096;
/// Screenshots rendered at once; more wait their turn.
pub const MAX_RENDERS: usize = 2;

static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RENDERS);

/// Why an output size is refused, if it is.
pub fn output_size_error(w: u32, h: u32) -> Option<String> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        Some(format!(
            "Output size {w}x{h} is out of range (1 to {MAX_SIDE} on a side)."
        ))
    } else if u64::from(w) * u64::from(h) > MAX_PIXELS {
        Some(format!(
            "Output size {w}x{h} is more than {MAX_PIXELS} pixels."
        ))
    } else {
        None
    }
}

/// Image encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Lossless, exact pixels.
    #[default]
    Png,
    /// Lossy, small and fast.
    Jpeg,
    /// Lossless WebP (VP8L); `quality` does not apply.
    Webp,
}

impl Format {
    /// From a request value (case-insensitive; `jpg` works).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }

    /// The media type (Content-Type) of the encoding.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Webp => "image/webp",
        }
    }
}

/// Wait for a quiet screen before capturing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    /// How long the screen must go without a new frame version.
    pub quiet: Duration,
    /// Give up waiting (and capture anyway) after this long.
    pub timeout: Duration,
}

impl Settle {
    /// Default quiet period.
    pub const DEFAULT_QUIET: Duration = Duration::from_millis(100);
    /// Default bound on the wait.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
    /// Longest quiet period or timeout accepted.
    pub const MAX: Duration = Duration::from_secs(30);
}

impl Default for Settle {
    fn default() -> Settle {
        Settle {
            quiet: Settle::DEFAULT_QUIET,
            timeout: Settle::DEFAULT_TIMEOUT,
        }
    }
}

/// A native-pixel rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (at least 1).
    pub width: u32,
    /// Height (at least 1).
    pub height: u32,
}

/// What to capture and how to encode it.
#[derive(Debug, Clone, Default)]
pub struct ShotOptions {
    /// Encoding.
    pub format: Format,
    /// JPEG quality 1..=100 (default 80).
    pub quality: Option<u8>,
    /// Part of the screen (native pixels); the whole screen when `None`. Clipped to the screen.
    pub region: Option<Region>,
    /// Output size; the region's own size when `None`.
    pub size: Option<(u32, u32)>,
    /// Draw the pointer into the image.
    pub cursor: bool,
    /// Wait for a quiet screen first.
    pub settle: Option<Settle>,
}

/// An encoded image.
#[derive(Debug, Clone)]
pub struct Shot {
    /// Encoded bytes.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Encoding.
    pub format: Format,
    /// With `settle`: whether the screen went quiet before the timeout.
    pub settled: Option<bool>,
}

/// Read pending damage into the frame store (blocking X work, so off the async threads).
pub async fn refresh(desktop: &Desktop) -> Result<u64, DesktopError> {
    let frames = Arc::clone(&desktop.frames);
    crate::desktop::blocking("reading the screen", move || frames.refresh()).await
}

/// Wait until no new frame version has appeared for `settle.quiet`, bounded by
/// `settle.timeout`. Returns whether the screen went quiet.
pub async fn settle(desktop: &Desktop, settle: Settle) -> Result<bool, DesktopError> {
    let store = Arc::clone(desktop.frames.store());
    let mut rx = store.subscribe();
    let deadline = Instant::now() + settle.timeout;
    loop {
        let before = refresh(desktop).await?;
        rx.borrow_and_update();
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = settle.quiet.min(left);
        match tokio::time::timeout(wait, rx.changed()).await {
            // Something changed: start the quiet period again, unless time is up.
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(DesktopError::Unavailable("frame store closed".into())),
            Err(_) => {
                // No notification; damage the source has not read yet would still show up on
                // an explicit refresh.
                let after = refresh(desktop).await?;
                if after == before && wait == settle.quiet {
                    return Ok(true);
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// Take a screenshot: refresh (so it shows the effect of the previous action), settle if asked,
/// then render off the async threads.
pub async fn capture(desktop: &Desktop, opts: &ShotOptions) -> Result<Shot, DesktopError> {
    let settled = match opts.settle {
        Some(s) => Some(settle(desktop, s).await?),
        None => {
            refresh(desktop).await?;
            None
        }
    };
    let store = Arc::clone(desktop.frames.store());
    let (_, frame) = store.snapshot();
    let cursor = match (opts.cursor, store.cursor().1) {
        (true, Some(c)) => {
            // Ask X where the pointer is (another client may have moved it); the store's last
            // recorded position is the fallback.
            let input = Arc::clone(&desktop.input);
            let pos =
                crate::desktop::blocking("pointer position", move || input.pointer_position())
                    .await
                    .unwrap_or_else(|_| store.pointer());
            Some((c, pos))
        }
        _ => None,
    };
    let opts = opts.clone();
    // Rendering takes several bytes per output pixel: bound how many run at once.
    let _turn = RENDERS
        .acquire()
        .await
        .map_err(|_| DesktopError::Other("screenshot limit closed".into()))?;
    let mut shot = tokio::task::spawn_blocking(move || {
        render(
            &frame,
            cursor.as_ref().map(|(c, p)| (c.as_ref(), *p)),
            &opts,
        )
    })
    .await
    .map_err(|e| DesktopError::Other(format!("encode task failed: {e}")))??;
    shot.settled = settled;
    Ok(shot)
}

/// A BGRX image borrowed from a frame or owned after cropping/drawing/resizing.
struct Bgrx<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    width: u32,
    height: u32,
    stride: usize,
}

/// Crop, draw the cursor, resize and encode one frame. Pure (no X, no clock).
pub fn render(
    frame: &Frame,
    cursor: Option<(&CursorImage, (u16, u16))>,
    opts: &ShotOptions,
) -> Result<Shot, DesktopError> {
    let fw = u32::from(frame.width);
    let fh = u32::from(frame.height);
    if fw == 0 || fh == 0 {
        return Err(DesktopError::Unavailable("the screen has no pixels".into()));
    }
    let region = clip(
        opts.region.unwrap_or(Region {
            x: 0,
            y: 0,
            width: fw,
            height: fh,
        }),
        fw,
        fh,
    );
    let (ow, oh) = opts.size.unwrap_or((region.width, region.height));
    if let Some(e) = output_size_error(ow, oh) {
        return Err(DesktopError::Invalid(e));
    }

    let start = region.y as usize * frame.stride + region.x as usize * 4;
    let mut img = Bgrx {
        data: std::borrow::Cow::Borrowed(frame.data.get(start..).unwrap_or_default()),
        width: region.width,
        height: region.height,
        stride: frame.stride,
    };
    if let Some((c, (px, py))) = cursor {
        let mut owned = pack(&img);
        let cx = i64::from(px) - i64::from(c.hot_x) - i64::from(region.x);
        let cy = i64::from(py) - i64::from(c.hot_y) - i64::from(region.y);
        draw_cursor(&mut owned, region.width, region.height, c, cx, cy);
        img = Bgrx {
            data: std::borrow::Cow::Owned(owned),
            width: region.width,
            height: region.height,
            stride: region.width as usize * 4,
        };
    }
    if (ow, oh) != (img.width, img.height) {
        img = resize(&img, ow, oh)?;
    }
    let data = match opts.format {
        Format::Png => encode_png(&img)?,
        Format::Jpeg => encode_jpeg(&img, opts.quality.unwrap_or(80))?,
        Format::Webp => encode_webp(&img)?,
    };
    Ok(Shot {
        data,
        width: img.width,
        height: img.height,
        format: opts.format,
        settled: None,
    })
}

fn clip(r: Region, fw: u32, fh: u32) -> Region {
    let x = r.x.min(fw - 1);
    let y = r.y.min(fh - 1);
    Region {
        x,
        y,
        width: r.width.clamp(1, fw - x),
        height: r.height.clamp(1, fh - y),
    }
}

/// Copy into a tightly packed buffer.
fn pack(img: &Bgrx<'_>) -> Vec<u8> {
    let row = img.width as usize * 4;
    let mut out = Vec::with_capacity(row * img.height as usize);
    for y in 0..img.height as usize {
        let s = y * img.stride;
        out.extend_from_slice(&img.data[s..s + row]);
    }
    out
}

/// Alpha-blend the cursor (straight alpha BGRA) with its top-left at (cx, cy).
fn draw_cursor(buf: &mut [u8], w: u32, h: u32, c: &CursorImage, cx: i64, cy: i64) {
    let cw = usize::from(c.width);
    for row in 0..usize::from(c.height) {
        let y = cy + row as i64;
        if y < 0 || y >= i64::from(h) {
            continue;
        }
        for col in 0..cw {
            let x = cx + col as i64;
            if x < 0 || x >= i64::from(w) {
                continue;
            }
            let si = (row * cw + col) * 4;
            let Some(src) = c.pixels.get(si..si + 4) else {
                return;
            };
            let a = u32::from(src[3]);
            if a == 0 {
                continue;
            }
            let di = (y as usize * w as usize + x as usize) * 4;
            for k in 0..3 {
                let d = u32::from(buf[di + k]);
                buf[di + k] = ((u32::from(src[k]) * a + d * (255 - a) + 127) / 255) as u8;
            }
        }
    }
}

fn resize(img: &Bgrx<'_>, ow: u32, oh: u32) -> Result<Bgrx<'static>, DesktopError> {
    let err = |e: &dyn std::fmt::Display| DesktopError::Other(format!("resize failed: {e}"));
    let packed;
    let src_bytes: &[u8] = if img.stride == img.width as usize * 4 {
        &img.data[..img.width as usize * 4 * img.height as usize]
    } else {
        packed = pack(img);
        &packed
    };
    let src = fr::images::ImageRef::new(img.width, img.height, src_bytes, fr::PixelType::U8x4)
        .map_err(|e| err(&e))?;
    let mut dst = fr::images::Image::new(ow, oh, fr::PixelType::U8x4);
    // Catmull-Rom keeps text legible when shrinking at a fraction of Lanczos' cost.
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| err(&e))?;
    Ok(Bgrx {
        data: std::borrow::Cow::Owned(dst.into_vec()),
        width: ow,
        height: oh,
        stride: ow as usize * 4,
    })
}

/// BGRX rows to packed RGB.
fn to_rgb(img: &Bgrx<'_>) -> Vec<u8> {
    let w = img.width as usize;
    let mut out = Vec::with_capacity(w * 3 * img.height as usize);
    for y in 0..img.height as usize {
        let row = &img.data[y * img.stride..y * img.stride + w * 4];
        for px in row.chunks_exact(4) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    out
}

fn encode_png(img: &Bgrx<'_>) -> Result<Vec<u8>, DesktopError> {
    let err = |e: png::EncodingError| DesktopError::Other(format!("PNG encoding failed: {e}"));
    let rgb = to_rgb(img);
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut enc = png::Encoder::new(&mut out, img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // fdeflate's fast mode with the Up filter: screens are flat colour and repeated rows, which
    // this handles well at a fraction of zlib's default cost.
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::FilterType::Up);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(&rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

fn encode_jpeg(img: &Bgrx<'_>, quality: u8) -> Result<Vec<u8>, DesktopError> {
    let err = |e: turbojpeg::Error| DesktopError::Other(format!("JPEG encoding failed: {e}"));
    let mut c = turbojpeg::Compressor::new().map_err(err)?;
    c.set_quality(i32::from(quality.clamp(1, 100)));
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2);
    let w = img.width as usize;
    let h = img.height as usize;
    let needed = (h - 1) * img.stride + w * 4;
    c.compress_to_vec(turbojpeg::Image {
        pixels: &img.data[..needed],
        width: w,
        pitch: img.stride,
        height: h,
        format: turbojpeg::PixelFormat::BGRX,
    })
    .map_err(err)
}

fn encode_webp(img: &Bgrx<'_>) -> Result<Vec<u8>, DesktopError> {
    let rgb = to_rgb(img);
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(&rgb, img.width, img.height, image_webp::ColorType::Rgb8)
        .map_err(|e| DesktopError::Other(format!("WebP encoding failed: {e}")))?;
    Ok(out)
}

/// `GET /api/v0/desktop/screenshot?format=&quality=&width=&height=&scale=&region=&cursor=&settle=`:
/// the image bytes with their Content-Type. `region` is `x1,y1,x2,y2` in native pixels;
/// `width`/`height` (one keeps the aspect ratio) or `scale` set the output size.
#[utoipa::path(get, path = "/api/v0/desktop/screenshot", tag = "v0",
    params(
        ("format" = Option<String>, Query, description = "png (default), jpeg or webp"),
        ("quality" = Option<i64>, Query, description = "JPEG/WebP quality 1..=100"),
        ("width" = Option<i64>, Query, description = "Output width (alone: keeps the aspect ratio)"),
        ("height" = Option<i64>, Query, description = "Output height (alone: keeps the aspect ratio)"),
        ("scale" = Option<f64>, Query, description = "Output scale"),
        ("region" = Option<String>, Query, description = "x1,y1,x2,y2 in native pixels"),
        ("cursor" = Option<bool>, Query, description = "Draw the pointer"),
        ("settle" = Option<String>, Query, description = "true or a quiet period in ms to wait for first"),
    ),
    responses(
        (status = 200, description = "The image", content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"))),
        (status = "4XX", description = "Bad request", body = super::error::ErrorBody),
        (status = "5XX", description = "The desktop failed", body = super::error::ErrorBody),
    ))]
pub async fn handle_get(
    axum::extract::State(state): axum::extract::State<super::ApiState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match get_options(&q, super::action::native_size(&state.desktop)) {
        Err(e) => e.into_response(),
        Ok(opts) => match capture(&state.desktop, &opts).await {
            Err(e) => super::action::ApiError::desktop("Screenshot failed.", &e).into_response(),
            Ok(shot) => {
                let mut headers = axum::http::HeaderMap::new();
                let hv = |s: String| {
                    axum::http::HeaderValue::from_str(&s)
                        .unwrap_or(axum::http::HeaderValue::from_static(""))
                };
                headers.insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static(shot.format.media_type()),
                );
                headers.insert(
                    axum::http::header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("no-store"),
                );
                headers.insert("x-screenshot-width", hv(shot.width.to_string()));
                headers.insert("x-screenshot-height", hv(shot.height.to_string()));
                if let Some(s) = shot.settled {
                    headers.insert("x-screenshot-settled", hv(s.to_string()));
                }
                (headers, shot.data).into_response()
            }
        },
    }
}

fn get_options(
    q: &std::collections::HashMap<String, String>,
    native: (u32, u32),
) -> Result<ShotOptions, super::action::ApiError> {
    use super::action::ApiError;
    use super::screenshot_options::{OptionError, Rules, ScreenshotOptions, Size};
    use std::ops::RangeBounds;
    let bad = |name: &str, v: &str, want: &str| {
        ApiError::bad(format!("Invalid \"{name}\" query parameter {v:?}: {want}."))
    };
    let int = |name: &str, lo: i64, hi: i64| -> Result<Option<i64>, ApiError> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(bad(
                    name,
                    v,
                    &format!("expected an integer from {lo} to {hi}"),
                )),
            },
        }
    };
    let flag = |name: &str| -> Result<bool, ApiError> {
        match q.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) => match v.as_str() {
                "" | "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(bad(name, &v, "expected true or false")),
            },
        }
    };
    let region = match q.get("region") {
        None => None,
        Some(v) => {
            let parts: Vec<i64> = v
                .split(',')
                .map(|p| p.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("region", v, "expected x1,y1,x2,y2"))?;
            match parts[..] {
                [x1, y1, x2, y2]
                    if x1 >= 0
                        && y1 >= 0
                        && x2 > x1
                        && y2 > y1
                        && x2 <= i64::from(native.0)
                        && y2 <= i64::from(native.1) =>
                {
                    Some(Region {
                        x: x1 as u32,
                        y: y1 as u32,
                        width: (x2 - x1) as u32,
                        height: (y2 - y1) as u32,
                    })
                }
                _ => {
                    return Err(bad(
                        "region",
                        v,
                        &format!(
                            "expected x1,y1,x2,y2 with x1<x2, y1<y2 inside {}x{}",
                            native.0, native.1
                        ),
                    ))
                }
            }
        }
    };
    // Range errors come back from the shared validator; the wording is v0's.
    let raw = |name: &str| q.get(name).map_or("", String::as_str);
    let range = |name: &str, hi: u32| {
        bad(
            name,
            raw(name),
            &format!("expected an integer from 1 to {hi}"),
        )
    };
    let number = |name: &str, hi: u32| -> Result<Option<i64>, ApiError> {
        q.get(name)
            .map(|v| v.trim().parse::<i64>().map_err(|_| range(name, hi)))
            .transpose()
    };
    let quality = number("quality", 100)?;
    let width = number("width", MAX_SIDE)?;
    let height = number("height", MAX_SIDE)?;
    let scale = match q.get("scale") {
        None => None,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) => Some(s),
            Err(_) => return Err(bad("scale", v, SCALE_WANT)),
        },
    };
    let size = match (width, height, scale) {
        // A bad scale is refused even when width/height take precedence.
        (_, _, Some(s)) if !Rules::V0.scale.contains(&s) => Size::Scale(s),
        (Some(w), Some(h), _) => Size::Exact(w, h),
        (Some(w), None, _) => Size::Width(w),
        (None, Some(h), _) => Size::Height(h),
        (None, None, Some(s)) => Size::Scale(s),
        (None, None, None) => Size::Native,
    };
    let timeout = match int("settle_timeout", 0, Settle::MAX.as_millis() as i64)? {
        Some(t) => Duration::from_millis(t as u64),
        None => Settle::DEFAULT_TIMEOUT,
    };
    let settle = match q.get("settle").map(|v| v.to_ascii_lowercase()) {
        None => None,
        Some(v) if matches!(v.as_str(), "" | "true" | "yes" | "on") => Some(Settle {
            timeout,
            ..Settle::default()
        }),
        Some(v) if matches!(v.as_str(), "false" | "no" | "off") => None,
        Some(_) => int("settle", 0, Settle::MAX.as_millis() as i64)?.map(|ms| Settle {
            quiet: Duration::from_millis(ms as u64),
            timeout,
        }),
    };
    let cursor = flag("cursor")?;
    ScreenshotOptions {
        format: q.get("format").cloned(),
        quality,
        region,
        size,
        cursor,
        settle,
    }
    .validate(native, Rules::V0)
    .map_err(|e| match e {
        OptionError::Format(f) => bad("format", &f, "use png, jpeg or webp"),
        OptionError::Quality(_) => range("quality", 100),
        OptionError::Width(_) => range("width", MAX_SIDE),
        OptionError::Height(_) => range("height", MAX_SIDE),
        OptionError::Scale(_) => bad("scale", raw("scale"), SCALE_WANT),
        OptionError::Output(e) => ApiError::bad(e),
    })
}

const SCALE_WANT: &str = "expected a number above 0 and at most 4";

#[cfg(test)]
mod tests {
    use super::*;

    fn test_frame(w: u16, h: u16) -> Frame {
        let mut f = Frame::new(w, h);
        for y in 0..usize::from(h) {
            for x in 0..usize::from(w) {
                let i = y * f.stride + x * 4;
                f.data[i] = (x * 7) as u8;
                f.data[i + 1] = (y * 5) as u8;
                f.data[i + 2] = (x ^ y) as u8;
            }
        }
        f
    }

    fn decode_png(data: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(data);
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_is_exact() {
        let f = test_frame(37, 21);
        let shot = render(&f, None, &ShotOptions::default()).unwrap();
        let (w, h, rgb) = decode_png(&shot.data);
        assert_eq!((w, h), (37, 21));
        for y in 0..21u16 {
            for x in 0..37u16 {
                let i = (usize::from(y) * 37 + usize::from(x)) * 3;
                let p = f.pixel(x, y);
                assert_eq!(
                    (u32::from(rgb[i]) << 16)
                        | (u32::from(rgb[i + 1]) << 8)
                        | u32::from(rgb[i + 2]),
                    p
                );
            }
        }
    }

    #[test]
    fn region_and_resize() {
        let f = test_frame(64, 48);
        let opts = ShotOptions {
            region: Some(Region {
                x: 10,
                y: 5,
                width: 20,
                height: 10,
            }),
            ..Default::default()
        };
        let shot = render(&f, None, &opts).unwrap();
        let (w, h, rgb) = decode_png(&shot.data);
        assert_eq!((w, h), (20, 10));
        let p = f.pixel(10, 5);
        assert_eq!(rgb[0], (p >> 16) as u8);
        let opts = ShotOptions {
            size: Some((31, 17)),
            format: Format::Jpeg,
            ..Default::default()
        };
        let shot = render(&f, None, &opts).unwrap();
        assert_eq!((shot.width, shot.height), (31, 17));
        assert_eq!(&shot.data[..2], &[0xff, 0xd8]);
        let shot = render(
            &f,
            None,
            &ShotOptions {
                format: Format::Webp,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(&shot.data[..4], b"RIFF");
        assert_eq!(&shot.data[8..12], b"WEBP");
    }

    #[test]
    fn cursor_is_drawn_at_the_pointer_hotspot() {
        let f = Frame::new(16, 16);
        let cursor = CursorImage {
            width: 2,
            height: 2,
            hot_x: 1,
            hot_y: 1,
            pixels: vec![
                255, 255, 255, 255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 255, 0, 128,
            ],
        };
        let shot = render(&f, Some((&cursor, (5, 5))), &ShotOptions::default()).unwrap();
        let (_, _, rgb) = decode_png(&shot.data);
        let at = |x: usize, y: usize| &rgb[(y * 16 + x) * 3..(y * 16 + x) * 3 + 3];
        assert_eq!(at(4, 4), &[255, 255, 255]);
        assert_eq!(at(5, 4), &[255, 0, 0]);
        assert_eq!(at(4, 5), &[0, 0, 0]);
        assert_eq!(at(5, 5), &[0, 128, 0]);
        assert_eq!(at(6, 6), &[0, 0, 0]);
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let f = Frame::new(8, 8);
        let opts = ShotOptions {
            size: Some((100_000, 10)),
            ..Default::default()
        };
        assert!(render(&f, None, &opts).is_err());
    }
}
