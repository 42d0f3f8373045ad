//! In-process MP4 writer: H.264 yuv420p (openh264) + AAC-LC 24 kHz stereo (fdk-aac), moov first.
