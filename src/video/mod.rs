//! H.264 video from the framebuffer: one encoder module with two sinks, RFB encoding 50 (Open
//! H.264, framed by `rfb::encoding::h264`) and the MP4 recorder (`crate::record`).

mod encoder;
mod open_h264;
pub mod yuv;

pub use encoder::{nal_types, nal_units, EncodedFrame, H264Encoder, H264Settings, VideoError};
pub use open_h264::{DeskdEncoders, OpenH264};
