//! Reading the official single-file checkpoint: component prefixes, the `config` metadata, dtypes
//! (f32, bf16, FP8 with per-tensor scales).

use std::path::Path;

/// The JSON stored under the `config` key of a safetensors file's metadata (sections
/// `transformer`, `vae`, `audio_vae`, `vocoder` in the LTX-2 checkpoint; the upsampler file keeps
/// its own flat config there). `Ok(None)` when the file has no such entry.
pub fn read_config(path: &Path) -> candle_core::Result<Option<serde_json::Value>> {
    let metadata = read_metadata(path)?;
    match metadata.get("config") {
        None => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
            candle_core::Error::Msg(format!(
                "{}: `config` metadata is not valid JSON: {e}",
                path.display()
            ))
        }),
    }
}

/// The string-to-string `__metadata__` of a safetensors file, reading only its header.
pub fn read_metadata(
    path: &Path,
) -> candle_core::Result<std::collections::HashMap<String, String>> {
    use std::io::Read;
    let fail = |what: String| candle_core::Error::Msg(format!("{}: {what}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    if len > 100 << 20 || len + 8 > file_len {
        return Err(fail(format!(
            "not a safetensors file: header length {len} is implausible"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| fail(format!("truncated header: {e}")))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| fail(format!("header is not JSON: {e}")))?;
    let mut out = std::collections::HashMap::new();
    if let Some(meta) = header.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(out)
}
