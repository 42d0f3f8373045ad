//! Checkpoint (and future LoRA) files with crafted safetensors headers are refused with a clear
//! error before anything the header claims is allocated: every reader of a weights file
//! (`Checkpoint::open`, `read_config` used by the component loaders, the upsampler loader) is fed
//! each case and its peak heap use is measured.

use std::path::PathBuf;

use candle_core::{DType, Device};
use ltx2_model::alloc_meter::{peak_during, CountingAlloc};
use ltx2_model::checkpoint::{read_config, Checkpoint, MAX_HEADER_BYTES};
use ltx2_model::upsampler::LatentUpsampler;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Nothing here may cost more than this (the honest files are a few hundred bytes).
const PEAK_LIMIT: usize = 4 << 20;

fn file(bytes: &[u8], name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ltx2-st-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `len(header) | header | data`, with the length field given explicitly.
fn raw(len_field: u64, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = len_field.to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn honest(header: &str, data: &[u8]) -> Vec<u8> {
    raw(header.len() as u64, header, data)
}

/// (case, file bytes, words the error must contain)
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let one = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    vec![
        (
            "header length u64::MAX",
            raw(u64::MAX, one, &[0; 8]),
            "header length",
        ),
        (
            "header length 1 GiB in a small file",
            raw(1 << 30, one, &[0; 8]),
            "header length",
        ),
        (
            "header length just under the cap, past the end of the file",
            raw(MAX_HEADER_BYTES - 8, one, &[0; 8]),
            "past the end",
        ),
        (
            "overlapping offsets",
            honest(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                &[0; 12],
            ),
            "offset",
        ),
        (
            "offsets past the end of the data",
            honest(
                r#"{"a":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#,
                &[0; 8],
            ),
            "safetensors",
        ),
        (
            "shape larger than its bytes",
            honest(
                r#"{"a":{"dtype":"BF16","shape":[4096,4096],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "safetensors",
        ),
        (
            "shape whose size overflows",
            honest(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "safetensors",
        ),
        ("not JSON", honest("\u{1}\u{2}garbage", &[]), "safetensors"),
        (
            "shorter than the length field",
            vec![1, 2, 3],
            "safetensors",
        ),
    ]
}

#[test]
fn crafted_headers_are_refused_before_allocating() {
    for (i, (case, bytes, words)) in cases().into_iter().enumerate() {
        let path = file(&bytes, &format!("case{i}.safetensors"));
        let (r, peak) = peak_during(|| Checkpoint::open(&path).map(|_| ()));
        let e = r.expect_err(case).to_string();
        println!("{case}: Checkpoint::open -> {e} (peak {peak} B)");
        assert!(e.contains(words), "{case}: {e}");
        assert!(peak < PEAK_LIMIT, "{case}: peak {peak} B");

        let (r, peak) = peak_during(|| read_config(&path).map(|_| ()));
        let e = r.expect_err(case).to_string();
        println!("{case}: read_config -> {e} (peak {peak} B)");
        assert!(peak < PEAK_LIMIT, "{case}: peak {peak} B");

        let (r, peak) =
            peak_during(|| LatentUpsampler::from_file(&path, DType::F32, &Device::Cpu).map(|_| ()));
        assert!(r.is_err(), "{case}");
        assert!(peak < PEAK_LIMIT, "{case}: upsampler loader peak {peak} B");
    }
}

#[test]
fn an_honest_header_still_reads() {
    let header =
        r#"{"__metadata__":{"config":"{}"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let path = file(&honest(header, &[0; 8]), "honest.safetensors");
    let c = Checkpoint::open(&path).unwrap();
    assert_eq!(c.tensors()["a"].shape, vec![2]);
    assert!(read_config(&path).unwrap().is_some());
}
