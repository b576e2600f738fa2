//! H.264 video from the framebuffer: one encoder module with two sinks, RFB encoding 50 (Open
//! H.264, framed by `rfb::encoding::h264`) and the MP4 recorder (`crate::record`).

mod encoder;
pub mod yuv;

pub use encoder::{nal_types, nal_units, EncodedFrame, H264Encoder, H264Settings, VideoError};
