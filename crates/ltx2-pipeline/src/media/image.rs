//! Decoding conditioning images (PNG, JPEG, WebP) and the cover-resize + center crop of ltx-pipelines.
