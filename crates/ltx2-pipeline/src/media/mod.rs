//! Media in and out: conditioning images, input audio, input clips (MP4 decoding) and the MP4
//! (H.264 + AAC) writer.

pub mod audio;
pub mod image;
pub mod mp4;
pub mod video;
