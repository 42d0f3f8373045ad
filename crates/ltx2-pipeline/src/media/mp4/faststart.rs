//! Box-level rewrite of the finished file: `moov` moved before `mdat` (chunk offsets shifted) and
//! an `edts/elst` added to the audio track.

use super::Mp4Error;

/// Edit list of the audio track: play `segment_duration` (movie timescale) starting at media
/// sample `media_time`.
#[derive(Clone, Copy)]
pub(super) struct AudioEdit {
    pub media_time: u64,
    pub segment_duration: u64,
}

struct BoxRef {
    kind: [u8; 4],
    start: usize,
    header: usize,
    end: usize,
}

fn parse_boxes(data: &[u8], base: usize) -> Result<Vec<BoxRef>, Mp4Error> {
    let mut boxes = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().expect("4 bytes");
        let (size, header) = match size32 {
            0 => (data.len() - pos, 8),
            1 if pos + 16 <= data.len() => (
                u64::from_be_bytes(data[pos + 8..pos + 16].try_into().expect("8 bytes")) as usize,
                16,
            ),
            s => (s, 8),
        };
        if size < header || pos + size > data.len() {
            return Err(Mp4Error::Mux(format!(
                "box {:?} at {} overruns its parent",
                String::from_utf8_lossy(&kind),
                base + pos
            )));
        }
        boxes.push(BoxRef {
            kind,
            start: pos,
            header,
            end: pos + size,
        });
        pos += size;
    }
    Ok(boxes)
}

fn with_header(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

/// Moves `moov` before `mdat` and adds the audio edit list.
pub(super) fn faststart(file: &[u8], audio_edit: Option<AudioEdit>) -> Result<Vec<u8>, Mp4Error> {
    let top = parse_boxes(file, 0)?;
    let moov_idx = top
        .iter()
        .position(|b| &b.kind == b"moov")
        .ok_or_else(|| Mp4Error::Mux("no moov box".into()))?;
    let moov = &top[moov_idx];
    let moov_payload = &file[moov.start + moov.header..moov.end];

    let mut children = Vec::new();
    let mut track_durations = Vec::new();
    for child in parse_boxes(moov_payload, moov.start + moov.header)? {
        let bytes = &moov_payload[child.start..child.end];
        if &child.kind == b"trak" {
            let (trak, duration) = rewrite_trak(bytes, audio_edit)?;
            track_durations.push(duration);
            children.push(trak);
        } else {
            children.push(bytes.to_vec());
        }
    }
    if let Some(mvhd) = children.iter_mut().find(|c| &c[4..8] == b"mvhd") {
        let duration = track_durations.iter().copied().max().unwrap_or(0);
        set_duration(mvhd, 8, 24, 32, duration)?;
    }
    let mut new_moov = with_header(b"moov", &children.concat());
    fix_sl_config(&mut new_moov);

    // Everything that was before moov (except ftyp) now sits after it: shift by moov's size.
    let first_after_ftyp = top.iter().position(|b| &b.kind != b"ftyp").unwrap_or(0);
    let insert_at = top.get(first_after_ftyp).map_or(file.len(), |b| b.start);
    if insert_at < moov.start {
        let moov_len = new_moov.len() as u64;
        shift_chunk_offsets(&mut new_moov, moov_len)?;
    }
    let mut out = Vec::with_capacity(file.len() + 64);
    out.extend_from_slice(&file[..insert_at]);
    out.extend_from_slice(&new_moov);
    out.extend_from_slice(&file[insert_at..moov.start]);
    out.extend_from_slice(&file[moov.end..]);
    Ok(out)
}

/// Returns the trak (with an edit list if it is the audio track) and its duration in the movie
/// timescale.
fn rewrite_trak(trak: &[u8], audio_edit: Option<AudioEdit>) -> Result<(Vec<u8>, u64), Mp4Error> {
    let payload = &trak[8..];
    let children = parse_boxes(payload, 0)?;
    let is_audio = find_path(payload, &[b"mdia", b"hdlr"])?
        .is_some_and(|h| h.len() >= 12 && &h[8..12] == b"soun");
    let mut out = Vec::new();
    let mut duration = 0;
    for child in &children {
        let mut bytes = payload[child.start..child.end].to_vec();
        if &child.kind == b"tkhd" {
            match (is_audio, audio_edit) {
                (true, Some(edit)) => {
                    set_duration(&mut bytes, 8, 28, 36, edit.segment_duration)?;
                    duration = edit.segment_duration;
                    out.extend_from_slice(&bytes);
                    let mut elst = vec![0u8; 4]; // version 0, flags 0
                    elst.extend_from_slice(&1u32.to_be_bytes());
                    elst.extend_from_slice(&(edit.segment_duration as u32).to_be_bytes());
                    elst.extend_from_slice(&(edit.media_time as u32).to_be_bytes());
                    elst.extend_from_slice(&1u16.to_be_bytes());
                    elst.extend_from_slice(&0u16.to_be_bytes());
                    out.extend_from_slice(&with_header(b"edts", &with_header(b"elst", &elst)));
                    continue;
                }
                _ => duration = get_duration(&bytes, 8, 28, 36)?,
            }
        }
        if &child.kind != b"edts" || !is_audio || audio_edit.is_none() {
            out.extend_from_slice(&bytes);
        }
    }
    Ok((with_header(b"trak", &out), duration))
}

/// Payload of the box at `path` below `data` (a list of boxes).
fn find_path<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Result<Option<&'a [u8]>, Mp4Error> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(Some(data));
    };
    for b in parse_boxes(data, 0)? {
        if &b.kind == *first {
            return find_path(&data[b.start + b.header..b.end], rest);
        }
    }
    Ok(None)
}

/// Reads the duration field of a full box (mvhd/tkhd) whose version-0 field is a u32 at `off_v0`
/// and version-1 field a u64 at `off_v1` (offsets from the box start).
fn get_duration(
    b: &[u8],
    version_at: usize,
    off_v0: usize,
    off_v1: usize,
) -> Result<u64, Mp4Error> {
    let short = || Mp4Error::Mux("truncated mvhd/tkhd".into());
    match b.get(version_at) {
        Some(0) => Ok(u32::from_be_bytes(
            b.get(off_v0..off_v0 + 4)
                .ok_or_else(short)?
                .try_into()
                .expect("4"),
        ) as u64),
        Some(1) => Ok(u64::from_be_bytes(
            b.get(off_v1..off_v1 + 8)
                .ok_or_else(short)?
                .try_into()
                .expect("8"),
        )),
        _ => Err(short()),
    }
}

fn set_duration(
    b: &mut [u8],
    version_at: usize,
    off_v0: usize,
    off_v1: usize,
    d: u64,
) -> Result<(), Mp4Error> {
    let short = || Mp4Error::Mux("truncated mvhd/tkhd".into());
    match b.get(version_at) {
        Some(0) => b
            .get_mut(off_v0..off_v0 + 4)
            .ok_or_else(short)?
            .copy_from_slice(&(d.min(u32::MAX as u64) as u32).to_be_bytes()),
        Some(1) => b
            .get_mut(off_v1..off_v1 + 8)
            .ok_or_else(short)?
            .copy_from_slice(&d.to_be_bytes()),
        _ => return Err(short()),
    }
    Ok(())
}

/// The `mp4` crate (0.14) ends `esds` with an `SLConfigDescriptor` of declared length 0 followed
/// by one stray byte (`06 00 00`): ffmpeg tolerates it, strict demuxers (symphonia) read past the
/// descriptor and fail. ISO 14496-1 wants length 1 and `predefined = 2` for MP4 files
/// (`06 01 02`), which has the same size, so no other box changes.
fn fix_sl_config(moov: &mut [u8]) {
    let mut from = 0;
    while let Some(i) = moov[from..].windows(4).position(|w| w == b"esds") {
        let kind_at = from + i;
        from = kind_at + 4;
        if kind_at < 4 {
            continue;
        }
        let start = kind_at - 4;
        let size = u32::from_be_bytes(moov[start..kind_at].try_into().expect("4")) as usize;
        let end = start + size;
        if size >= 11 && end <= moov.len() && moov[end - 3..end] == [0x06, 0x00, 0x00] {
            moov[end - 2..end].copy_from_slice(&[0x01, 0x02]);
        }
    }
}

/// Adds `shift` to every `stco`/`co64` entry below the given box (a complete moov).
fn shift_chunk_offsets(moov: &mut [u8], shift: u64) -> Result<(), Mp4Error> {
    fn walk(data: &mut [u8], shift: u64) -> Result<(), Mp4Error> {
        for b in parse_boxes(data, 0)? {
            let payload = &mut data[b.start + b.header..b.end];
            match &b.kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => walk(payload, shift)?,
                b"stco" | b"co64" => {
                    let width = if &b.kind == b"stco" { 4 } else { 8 };
                    let count = u32::from_be_bytes(payload[4..8].try_into().expect("4")) as usize;
                    if payload.len() < 8 + count * width {
                        return Err(Mp4Error::Mux("truncated chunk offset table".into()));
                    }
                    for e in payload[8..8 + count * width].chunks_exact_mut(width) {
                        if width == 4 {
                            let v = u32::from_be_bytes(e.try_into().expect("4")) as u64 + shift;
                            let v = u32::try_from(v)
                                .map_err(|_| Mp4Error::Mux("file too large for stco".into()))?;
                            e.copy_from_slice(&v.to_be_bytes());
                        } else {
                            let v = u64::from_be_bytes(e.try_into().expect("8")) + shift;
                            e.copy_from_slice(&v.to_be_bytes());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    walk(moov, shift)
}
