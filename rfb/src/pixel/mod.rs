//! Pixel formats and conversion from the native framebuffer.
//!
//! The native framebuffer is 32 bits per pixel, little-endian `0x00RRGGBB` words: bytes are
//! B, G, R, X in memory. That is what Xvfb at depth 24 produces and what capture hands over.

mod convert;

pub use convert::*;

/// Why a client's pixel format is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PixelFormatError {
    /// Colour-map formats are not supported.
    #[error("colour-map pixel formats are not supported; use a true-colour format")]
    ColourMap,
    /// bits-per-pixel is not 8, 16 or 32.
    #[error("unsupported bits-per-pixel {0} (8, 16 or 32 only)")]
    BitsPerPixel(u8),
    /// depth is zero or larger than bits-per-pixel.
    #[error("depth {depth} does not fit {bpp} bits per pixel")]
    Depth {
        /// The depth sent.
        depth: u8,
        /// The bits-per-pixel sent.
        bpp: u8,
    },
    /// A channel maximum is zero or not of the form 2^n - 1.
    #[error("{channel} maximum {max} is not 2^n - 1")]
    Max {
        /// "red", "green" or "blue".
        channel: &'static str,
        /// The maximum sent.
        max: u16,
    },
    /// A channel does not fit in the pixel at its shift.
    #[error("{channel} channel (max {max}, shift {shift}) does not fit in {bpp} bits")]
    Shift {
        /// "red", "green" or "blue".
        channel: &'static str,
        /// The maximum sent.
        max: u16,
        /// The shift sent.
        shift: u8,
        /// The bits-per-pixel sent.
        bpp: u8,
    },
}

/// An RFB PIXEL_FORMAT (RFC 6143 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat {
    /// Bits per pixel on the wire: 8, 16 or 32.
    pub bits_per_pixel: u8,
    /// Useful bits in a pixel.
    pub depth: u8,
    /// Multi-byte pixels are big-endian when true.
    pub big_endian: bool,
    /// True-colour (channels from shifts and maxima) when true; colour-map otherwise.
    pub true_colour: bool,
    /// Maximum red value (2^n - 1).
    pub red_max: u16,
    /// Maximum green value (2^n - 1).
    pub green_max: u16,
    /// Maximum blue value (2^n - 1).
    pub blue_max: u16,
    /// Shift of red within the pixel value.
    pub red_shift: u8,
    /// Shift of green within the pixel value.
    pub green_shift: u8,
    /// Shift of blue within the pixel value.
    pub blue_shift: u8,
}

impl PixelFormat {
    /// The server's native format: 32 bpp, depth 24, little-endian, R at 16, G at 8, B at 0.
    pub const NATIVE: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// A true-colour format from its parts; `max` and `shift` are (red, green, blue).
    pub const fn true_colour(
        bits_per_pixel: u8,
        depth: u8,
        big_endian: bool,
        max: (u16, u16, u16),
        shift: (u8, u8, u8),
    ) -> PixelFormat {
        PixelFormat {
            bits_per_pixel,
            depth,
            big_endian,
            true_colour: true,
            red_max: max.0,
            green_max: max.1,
            blue_max: max.2,
            red_shift: shift.0,
            green_shift: shift.1,
            blue_shift: shift.2,
        }
    }

    /// Check that the format is one deskd can produce.
    pub fn validate(&self) -> Result<(), PixelFormatError> {
        if !self.true_colour {
            return Err(PixelFormatError::ColourMap);
        }
        let bpp = self.bits_per_pixel;
        if !matches!(bpp, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(bpp));
        }
        if self.depth == 0 || self.depth > bpp {
            return Err(PixelFormatError::Depth {
                depth: self.depth,
                bpp,
            });
        }
        for (channel, max, shift) in [
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ] {
            if max == 0 || (u32::from(max) + 1).count_ones() != 1 {
                return Err(PixelFormatError::Max { channel, max });
            }
            let bits = 16 - max.leading_zeros();
            if u32::from(shift) + bits > u32::from(bpp) {
                return Err(PixelFormatError::Shift {
                    channel,
                    max,
                    shift,
                    bpp,
                });
            }
        }
        Ok(())
    }

    /// Bytes per pixel on the wire.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }
}

impl Default for PixelFormat {
    fn default() -> Self {
        PixelFormat::NATIVE
    }
}
