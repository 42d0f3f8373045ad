//! What of an error message a client may see. Messages are written for clients, but some carry
//! text from libraries (decoders, candle) that, with `RUST_BACKTRACE=1`, can hold a backtrace
//! with source paths and function names. Every message an [`super::error::ApiError`] carries goes
//! through [`public_text`]: its first line only, paths and Rust item paths replaced, length capped.

/// Longest message returned, in characters.
pub const MAX_MESSAGE_CHARS: usize = 600;

/// `message` without backtraces, file paths or Rust item paths, and at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn public_text(message: &str) -> String {
    // A backtrace (candle's, anyhow's, a panic's) starts on a new line; so does a `Caused by:`
    // chain, whose first line is the part meant for people.
    let first = message.lines().next().unwrap_or_default();
    let first = first
        .split("stack backtrace:")
        .next()
        .unwrap_or_default()
        .trim_end();
    let mut out = String::with_capacity(first.len().min(MAX_MESSAGE_CHARS + 8));
    for (i, token) in first.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&redact_token(token));
    }
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push_str("...");
    }
    out
}

/// A token with its surrounding punctuation, the core replaced when it is internal.
fn redact_token(token: &str) -> String {
    let is_edge = |c: char| "\"'`()[]{}<>,;".contains(c);
    let core = token.trim_matches(is_edge);
    let replacement = if is_source_path(core) {
        "<source>"
    } else if is_file_path(core) {
        "<path>"
    } else if core.contains("::") {
        "<internal>"
    } else {
        return token.to_string();
    };
    let start = token.find(core).unwrap_or(0);
    format!(
        "{}{replacement}{}",
        &token[..start],
        &token[start + core.len()..]
    )
}

/// `src/x.rs`, `/a/b/x.rs:12:5`, `x.rs`.
fn is_source_path(s: &str) -> bool {
    let s = s.trim_end_matches(|c: char| c.is_ascii_digit() || c == ':');
    s.ends_with(".rs")
}

/// An absolute path with at least two components (`/work/model/x.safetensors`, `C:\models\x`).
fn is_file_path(s: &str) -> bool {
    let unix = s.starts_with('/') && s[1..].contains('/');
    let windows = s.len() > 3 && s.as_bytes()[1] == b':' && s[2..].starts_with('\\');
    unix || windows || s.starts_with("~/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_paths_and_items_are_removed() {
        let candle = "could not use `audio`: mel front-end: 100 samples is too short\n   0: candle_core::error::Error::bt\n   1: log_mel\n             at /work/x/crates/ltx2-model/src/audio_vae/mel.rs:268:13";
        assert_eq!(
            public_text(candle),
            "could not use `audio`: mel front-end: 100 samples is too short"
        );
        assert_eq!(
            public_text("failed at crates/a/src/b.rs:10:5 in ltx2_model::x::y (file /models/ltx/x.safetensors)"),
            "failed at <source> in <internal> (file <path>)"
        );
        // What clients send and what our messages say stays.
        for keep in [
            "`image_start` could not be decoded: not a PNG, JPEG or WebP image",
            "data URI must be base64-encoded (`data:<type>;base64,...`)",
            "`width` must be a multiple of 32 between 64 and 1536, got 300 (nearest valid: 288 or 320)",
            "send `Authorization: Bearer <key>`",
        ] {
            assert_eq!(public_text(keep), keep);
        }
        let long = "x".repeat(5000);
        assert_eq!(public_text(&long).chars().count(), MAX_MESSAGE_CHARS + 3);
    }
}
