//! Conditioning media whose headers claim huge sizes are refused before anything that size is
//! allocated: images claiming huge dimensions, WAV files claiming gigabytes, channels or absurd
//! rates, audio longer than the limit, an MP4 (AAC) claiming billions of samples. (Video MP4
//! input does not exist yet: the project only writes MP4.) Each case
//! asserts the error and the peak heap use of the decode.

use std::io::Cursor;

use ltx2_model::alloc_meter::{peak_during, CountingAlloc};
use ltx2_pipeline::media::audio::{
    check_conditioning, decode_audio_with, AudioDecodeError, AudioLimits,
};
use ltx2_pipeline::media::image::{decode_image, ImageDecodeError, DEFAULT_MAX_IMAGE_PIXELS};
use ltx2_pipeline::{AudioClip, AudioInputSpec};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// What refusing a crafted header may cost at most.
const SMALL: usize = 2 << 20;

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn encode(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A real PNG whose IHDR (with a valid CRC) claims `w x h`.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = encode(16, 16, image::ImageFormat::Png);
    // Signature (8) + IHDR length (4) + "IHDR" (4): width and height follow.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A real baseline JPEG whose SOF0 claims `w x h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpg = encode(16, 16, image::ImageFormat::Jpeg);
    let sof = jpg
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("SOF0");
    // FFC0, length (2), precision (1), height (2), width (2).
    jpg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpg
}

/// A lossless WebP whose VP8L header claims `w x h` (at most 16384 each).
fn webp_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut webp = encode(16, 16, image::ImageFormat::WebP);
    let vp8l = webp.windows(4).position(|m| m == b"VP8L").expect("VP8L");
    // Chunk header (8) + signature byte 0x2f, then 14 bits width-1, 14 bits height-1, ...
    let at = vp8l + 9;
    let old = u32::from_le_bytes(webp[at..at + 4].try_into().unwrap());
    let bits = (old & !((1 << 28) - 1)) | (w - 1) | ((h - 1) << 14);
    webp[at..at + 4].copy_from_slice(&bits.to_le_bytes());
    webp
}

#[test]
fn images_claiming_huge_sizes_are_refused_from_the_header() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("PNG 100000x100000", png_claiming(100_000, 100_000)),
        ("PNG 8192x8192 (67 MP)", png_claiming(8192, 8192)),
        ("PNG 4294967295x1", png_claiming(u32::MAX, 1)),
        ("JPEG 65535x65535", jpeg_claiming(65_535, 65_535)),
        ("WebP 16384x16384", webp_claiming(16_384, 16_384)),
    ];
    for (case, bytes) in cases {
        let (r, peak) = peak_during(|| decode_image(&bytes));
        let e = r.expect_err(case);
        println!("{case}: {e} (peak {peak} B)");
        // The PNG reader itself refuses a 4-billion-pixel row, and the WebP reader a header
        // that disagrees with its bitstream, before we see the size: refused all the same.
        if case.starts_with("JPEG") || case.contains("100000") || case.contains("67 MP") {
            assert!(
                matches!(e, ImageDecodeError::TooLarge { .. }),
                "{case}: {e}"
            );
        }
        assert!(peak < SMALL, "{case}: peak {peak} B");
    }
    // At the limit the decoder may allocate the image (bounded by the limit), then fails on the
    // missing data.
    let side = (DEFAULT_MAX_IMAGE_PIXELS as f64).sqrt() as u32;
    let bytes = png_claiming(side, side);
    let (r, peak) = peak_during(|| decode_image(&bytes));
    println!("PNG {side}x{side} without its data: {r:?} (peak {peak} B)");
    assert!(r.is_err());
    assert!(peak as u64 <= DEFAULT_MAX_IMAGE_PIXELS * 8, "peak {peak} B");
}

/// 16-bit PCM WAV: `n` frames of a tone, header fields given.
fn wav(rate: u32, channels: u16, n: usize, claimed_data_len: Option<u32>) -> Vec<u8> {
    let data_len = n * channels as usize * 2;
    let claimed = claimed_data_len.unwrap_or(data_len as u32);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&rate.wrapping_mul(channels as u32 * 2).to_le_bytes());
    w.extend_from_slice(&channels.wrapping_mul(2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&claimed.to_le_bytes());
    for i in 0..n {
        let s = ((i as f32 * 0.05).sin() * 8000.0) as i16;
        for _ in 0..channels {
            w.extend_from_slice(&s.to_le_bytes());
        }
    }
    w
}

fn conditioning_limits() -> AudioLimits {
    AudioLimits {
        max_seconds: 300.0,
        keep_seconds: Some(2.0),
        keep_channels: 2,
    }
}

#[test]
fn audio_claiming_gigabytes_channels_or_rates_is_bounded() {
    let limits = conditioning_limits();
    // 0.1 s of audio behind a header claiming 4 GB of data (18 hours at 16 kHz mono).
    let liar = wav(16_000, 1, 1_600, Some(u32::MAX - 64));
    let (r, peak) = peak_during(|| decode_audio_with(&liar, &limits));
    let clip = r.expect("the samples that are there decode");
    println!(
        "WAV claiming 4 GB, holding 0.1 s: {} samples (peak {peak} B)",
        clip.num_samples()
    );
    assert_eq!(clip.num_samples(), 1_600);
    assert!(peak < SMALL, "peak {peak} B");

    for (case, bytes) in [
        ("65535 channels", wav(16_000, 65_535, 4, None)),
        ("4294967295 Hz", wav(u32::MAX, 1, 1_000, None)),
        ("1 Hz", wav(1, 1, 1_000, None)),
    ] {
        let (r, peak) = peak_during(|| decode_audio_with(&bytes, &limits));
        let e = r.expect_err(case);
        println!("WAV with {case}: {e} (peak {peak} B)");
        assert!(peak < SMALL, "{case}: peak {peak} B");
    }
}

/// Fuzzing finding (audio_decode): symphonia's probe skips an ID3v2 tag before a RIFF header, so a
/// WAV declaring 65026 channels behind one got past the channel check made on the header and
/// reached symphonia's u16 overflow (a caught panic: "the decoder failed on this input").
#[test]
fn too_many_channels_behind_an_id3_tag_are_refused_from_the_header() {
    let limits = conditioning_limits();
    // The fuzzer's input (fuzz/corpus/audio_decode/8a95b4d9...), 79 bytes.
    let found: &[u8] = b"ID3\x04\0\0\0\0VEfmt \x10\0\0\0\x0d\0D\0\0\xac\x02\0\x98````\0\
        RIFF4\x0e\0\0WAVEfmt \x10\0\0\0\x01\0\x02\xfeD\xac\0\0\x98\x09\x04\0\
        \x06\0\x18\0d\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa";
    assert_eq!(found.len(), 79);
    let mut tagged = b"ID3\x04\0\0\0\0\0\0".to_vec();
    tagged.extend(wav(16_000, 65_535, 4, None));
    for (case, bytes) in [("fuzzer input", found.to_vec()), ("ID3 + WAV", tagged)] {
        let e = decode_audio_with(&bytes, &limits).expect_err(case);
        println!("{case}: {e}");
        assert!(
            matches!(e, AudioDecodeError::TooManyChannels(_)),
            "{case}: {e}"
        );
    }
}

#[test]
fn audio_longer_than_the_limit_stops_decoding() {
    // 400 s of 8 kHz mono: refused once 300 s are decoded; only the 2 s asked for are kept.
    let long = wav(8_000, 1, 8_000 * 400, None);
    let limits = conditioning_limits();
    let (r, peak) = peak_during(|| decode_audio_with(&long, &limits));
    let e = r.expect_err("too long");
    println!("400 s WAV ({} bytes): {e} (peak {peak} B)", long.len());
    assert!(matches!(e, AudioDecodeError::TooLong { .. }), "{e}");
    // The input is copied once (symphonia owns its source); decoded samples are not kept.
    assert!(peak < long.len() + SMALL, "peak {peak} B");

    let ok = wav(8_000, 1, 8_000 * 10, None);
    let clip = decode_audio_with(&ok, &limits).unwrap();
    assert_eq!(clip.num_samples(), 16_000, "only keep_seconds are kept");
}

#[test]
fn unusable_rates_and_lengths_are_refused_before_the_model() {
    let spec = AudioInputSpec {
        sample_rate: 16_000,
        min_samples: 513,
    };
    // 44101 Hz has gcd 1 with 16 kHz: its resampling kernel would be 16000 x 44135 f64 (5.6 GB).
    let clip = decode_audio_with(&wav(44_101, 1, 44_101, None), &conditioning_limits()).unwrap();
    let (r, peak) = peak_during(|| check_conditioning(&clip, 2.0, &spec));
    println!("44101 Hz: {r:?} (peak {peak} B)");
    assert!(r.unwrap_err().contains("44101 Hz"));
    assert!(peak < SMALL);

    let short = AudioClip {
        sample_rate: 16_000,
        channels: vec![vec![0.0; 512]],
    };
    assert!(check_conditioning(&short, 2.0, &spec)
        .unwrap_err()
        .contains("too short"));
    // Long enough in itself, but the video only uses its first 0.02 s.
    let clip = AudioClip {
        sample_rate: 16_000,
        channels: vec![vec![0.0; 16_000]],
    };
    assert!(check_conditioning(&clip, 0.02, &spec).is_err());
    assert!(check_conditioning(&clip, 0.5, &spec).is_ok());
    // 48 kHz: 1539 samples resample to 513.
    let clip = AudioClip {
        sample_rate: 48_000,
        channels: vec![vec![0.0; 1_539]],
    };
    assert!(check_conditioning(&clip, 1.0, &spec).is_ok());
}

/// Patches every `kind` box's 32-bit field at `offset` (from the box start) to `value`.
fn patch_boxes(mp4: &mut [u8], kind: &[u8; 4], offset: usize, value: u32) -> usize {
    let mut n = 0;
    let mut i = 4;
    while i + 4 <= mp4.len() {
        if &mp4[i..i + 4] == kind {
            let start = i - 4;
            mp4[start + offset..start + offset + 4].copy_from_slice(&value.to_be_bytes());
            n += 1;
        }
        i += 1;
    }
    n
}

/// 0.25 s of 16 kHz mono AAC-LC in MP4, made with
/// `ffmpeg -f lavfi -i sine=frequency=440:duration=0.25 -ac 1 -ar 16000 -c:a aac -b:a 32k tone.m4a`.
const TONE_M4A: &[u8] = include_bytes!("fixtures/tone.m4a");

#[test]
fn an_mp4_claiming_billions_of_samples_is_bounded() {
    let limits = conditioning_limits();
    let clip = decode_audio_with(TONE_M4A, &limits).expect("the honest MP4 decodes");
    assert_eq!(clip.sample_rate, 16_000);

    // stsz: size, type, version/flags, sample_size, sample_count; stts: ..., entry_count;
    // mdhd (version 0): size, type, version/flags, created, modified, timescale, duration.
    for (case, kind, offset) in [
        ("stsz sample_count", b"stsz", 16),
        ("stts entry_count", b"stts", 12),
        ("stco entry_count", b"stco", 12),
        ("mdhd duration", b"mdhd", 24),
        ("mdhd timescale", b"mdhd", 20),
    ] {
        let mut mp4 = TONE_M4A.to_vec();
        assert_eq!(patch_boxes(&mut mp4, kind, offset, u32::MAX), 1, "{case}");
        let (r, peak) = peak_during(|| decode_audio_with(&mp4, &limits));
        println!(
            "MP4 with {case} = 4294967295: {:?} (peak {peak} B)",
            r.as_ref().map(|c| c.num_samples())
        );
        assert!(peak < SMALL, "{case}: peak {peak} B");
    }
}
