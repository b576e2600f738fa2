//! One typed screenshot request ([`ScreenshotOptions`]) and its one validator. The v0 GET
//! screenshot, the action fields and `/v1` each read their own wire syntax into it, call
//! [`ScreenshotOptions::validate`], and word the typed [`OptionError`] in their own API's
//! error shape.

use std::ops::{Bound, RangeBounds};

use super::screenshot::{output_size_error, Format, Region, Settle, ShotOptions, MAX_SIDE};

/// The output size as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Size {
    /// The region's own size.
    #[default]
    Native,
    /// Both sides given by the client (each 1 to [`MAX_SIDE`]).
    Exact(i64, i64),
    /// Width given; height keeps the region's aspect ratio.
    Width(i64),
    /// Height given; width keeps the region's aspect ratio.
    Height(i64),
    /// The region's size times a factor (range set by [`Rules::scale`]).
    Scale(f64),
    /// Already computed by the API's own coordinate space (only the output caps apply).
    Pixels(u32, u32),
}

/// A screenshot request, wire syntax already read, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct ScreenshotOptions {
    /// Format name as sent; PNG when `None`.
    pub format: Option<String>,
    /// JPEG quality as sent (1 to 100).
    pub quality: Option<i64>,
    /// Part of the screen in native pixels (each API has its own region syntax and checks).
    pub region: Option<Region>,
    /// Output size.
    pub size: Size,
    /// Draw the pointer.
    pub cursor: bool,
    /// Wait for a quiet screen first.
    pub settle: Option<Settle>,
}

/// Where the APIs differ in what they accept.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Only the exact names `png`, `jpeg`, `webp` (no `jpg`, no upper case).
    pub exact_format_names: bool,
    /// Accepted `scale` factors.
    pub scale: (Bound<f64>, Bound<f64>),
}

impl Rules {
    /// `/api/v0` (GET screenshot and actions): any case, `jpg`, scale above 0 up to 4.
    pub const V0: Rules = Rules {
        exact_format_names: false,
        scale: (Bound::Excluded(0.0), Bound::Included(4.0)),
    };
    /// `/v1` (sandbox-agent): exact names, scale 0.1 to 1.
    pub const V1: Rules = Rules {
        exact_format_names: true,
        scale: (Bound::Included(0.1), Bound::Included(1.0)),
    };
}

/// Why a request was refused; each API words it its own way.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionError {
    /// Unknown format name.
    Format(String),
    /// Quality outside 1 to 100.
    Quality(i64),
    /// Scale outside [`Rules::scale`].
    Scale(f64),
    /// Width outside 1 to [`MAX_SIDE`].
    Width(i64),
    /// Height outside 1 to [`MAX_SIDE`].
    Height(i64),
    /// The output size breaks the caps ([`output_size_error`]'s message).
    Output(String),
}

fn side(v: i64, err: fn(i64) -> OptionError) -> Result<u32, OptionError> {
    match u32::try_from(v) {
        Ok(s) if (1..=MAX_SIDE).contains(&s) => Ok(s),
        _ => Err(err(v)),
    }
}

impl ScreenshotOptions {
    /// Check everything and resolve the output size against the region (or `native`, the
    /// screen size). Checks run in the order format, quality, size, so the first error is stable.
    pub fn validate(&self, native: (u32, u32), rules: Rules) -> Result<ShotOptions, OptionError> {
        let format = match self.format.as_deref() {
            None => Format::Png,
            Some(f) if rules.exact_format_names && !matches!(f, "png" | "jpeg" | "webp") => {
                return Err(OptionError::Format(f.to_owned()))
            }
            Some(f) => Format::parse(f).ok_or_else(|| OptionError::Format(f.to_owned()))?,
        };
        let quality = match self.quality {
            None => None,
            Some(q) => match u8::try_from(q) {
                Ok(v) if (1..=100).contains(&v) => Some(v),
                _ => return Err(OptionError::Quality(q)),
            },
        };
        let (rw, rh) = self.region.map_or(native, |r| (r.width, r.height));
        // `a` scaled by `num / den`, at least 1.
        let keep = |num: u32, a: u32, den: u32| {
            ((f64::from(num) * f64::from(a) / f64::from(den.max(1))).round() as u32).max(1)
        };
        let size = match self.size {
            Size::Native => None,
            Size::Exact(w, h) => {
                Some((side(w, OptionError::Width)?, side(h, OptionError::Height)?))
            }
            Size::Width(w) => {
                let w = side(w, OptionError::Width)?;
                Some((w, keep(w, rh, rw)))
            }
            Size::Height(h) => {
                let h = side(h, OptionError::Height)?;
                Some((keep(h, rw, rh), h))
            }
            Size::Scale(s) if rules.scale.contains(&s) => {
                let by = |v: u32| ((f64::from(v) * s).round() as u32).max(1);
                // A factor of 1 is the region's own size.
                (s != 1.0).then(|| (by(rw), by(rh)))
            }
            Size::Scale(s) => return Err(OptionError::Scale(s)),
            Size::Pixels(w, h) => Some((w, h)),
        };
        if let Some((w, h)) = size {
            if let Some(e) = output_size_error(w, h) {
                return Err(OptionError::Output(e));
            }
        }
        Ok(ShotOptions {
            format,
            quality,
            region: self.region,
            size,
            cursor: self.cursor,
            settle: self.settle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(o: ScreenshotOptions, rules: Rules) -> Result<ShotOptions, OptionError> {
        o.validate((1440, 900), rules)
    }

    #[test]
    fn formats_follow_the_rules() {
        let f = |s: &str, r| {
            check(
                ScreenshotOptions {
                    format: Some(s.into()),
                    ..Default::default()
                },
                r,
            )
            .map(|o| o.format)
        };
        assert_eq!(f("JPG", Rules::V0), Ok(Format::Jpeg));
        assert_eq!(f("JPG", Rules::V1), Err(OptionError::Format("JPG".into())));
        assert_eq!(f("webp", Rules::V1), Ok(Format::Webp));
        assert_eq!(f("gif", Rules::V0), Err(OptionError::Format("gif".into())));
    }

    #[test]
    fn quality_and_sizes() {
        let o = |quality, size| ScreenshotOptions {
            quality,
            size,
            ..Default::default()
        };
        assert_eq!(
            check(o(Some(0), Size::Native), Rules::V0).unwrap_err(),
            OptionError::Quality(0)
        );
        assert_eq!(
            check(o(Some(50), Size::Native), Rules::V0).unwrap().quality,
            Some(50)
        );
        let size = |s, r| check(o(None, s), r).map(|o| o.size);
        assert_eq!(size(Size::Width(720), Rules::V0), Ok(Some((720, 450))));
        assert_eq!(size(Size::Height(450), Rules::V0), Ok(Some((720, 450))));
        assert_eq!(size(Size::Scale(0.5), Rules::V1), Ok(Some((720, 450))));
        assert_eq!(size(Size::Scale(1.0), Rules::V1), Ok(None));
        assert_eq!(
            size(Size::Scale(2.0), Rules::V1),
            Err(OptionError::Scale(2.0))
        );
        assert_eq!(size(Size::Scale(2.0), Rules::V0), Ok(Some((2880, 1800))));
        assert_eq!(
            size(Size::Scale(0.0), Rules::V0),
            Err(OptionError::Scale(0.0))
        );
        assert_eq!(
            size(Size::Exact(0, 5), Rules::V0),
            Err(OptionError::Width(0))
        );
        assert_eq!(
            size(Size::Exact(5, 9000), Rules::V0),
            Err(OptionError::Height(9000))
        );
        assert!(matches!(
            size(Size::Pixels(8192, 8192), Rules::V0),
            Err(OptionError::Output(_))
        ));
    }
}
