//! Segment objects: what the reader decodes from storage.

use bytes::Bytes;
use silt_segment::{SegmentCompression, SegmentFooter};

use crate::seeds::{known_records, known_segment};

/// Byte 0 selects the mode.
///
/// - 0: the rest is a whole object. Its footer and every row group it names are decoded:
///   errors are fine, panics are not.
/// - 1–3: damage to the known segment (1: LZ4, 2: zstd, 3: uncompressed). The rest is a
///   list of 3-byte edits — a 2-byte position (modulo the object's length) and a byte to
///   XOR there — and, when one byte is left over, a truncation by that many bytes. The
///   footer is checked against its checksum as the reader does (the index keeps it).
///   Every chunk must then fail to read or read back exactly as written, and a chunk whose
///   own bytes or footer changed must fail.
pub fn segment_object(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let compression = match mode % 4 {
        0 => return whole_object(rest),
        1 => SegmentCompression::Lz4,
        2 => SegmentCompression::Zstd,
        _ => SegmentCompression::None,
    };
    damaged(compression, rest);
}

fn whole_object(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let n = data.len();
    if n < 8 {
        return;
    }
    let footer_len = u32::from_le_bytes([data[n - 8], data[n - 7], data[n - 6], data[n - 5]]);
    let footer_len = (footer_len as usize).saturating_add(8).min(n);
    let Ok(footer) = SegmentFooter::decode(data.slice(n - footer_len..), n as u64) else {
        return;
    };
    for row_group in 0..footer.row_groups() {
        let Ok(range) = footer.row_group_range(row_group) else {
            continue;
        };
        // The footer checked every range lies inside the object.
        let bytes = data.slice(range.start as usize..range.end as usize);
        let _ = footer.decode_chunk(row_group, range.start, bytes);
    }
}

fn damaged(compression: SegmentCompression, edits: &[u8]) {
    let segment = known_segment(compression);
    let expected = known_records();
    let mut data = segment.data.to_vec();
    let len = data.len();
    for edit in edits.chunks(3) {
        match *edit {
            [hi, lo, xor] => {
                let position = usize::from(u16::from_be_bytes([hi, lo])) % len;
                data[position] ^= xor;
            }
            [cut] => data.truncate(len.saturating_sub(usize::from(cut))),
            _ => {}
        }
    }
    let touched: Vec<usize> = (0..data.len())
        .filter(|&i| data[i] != segment.data[i])
        .collect();
    let data = Bytes::from(data);
    let range = segment.footer_range();
    if data.len() < len {
        // Truncated: the footer is not where the index says; it must not decode as one.
        let start = (range.start as usize).min(data.len());
        let footer = SegmentFooter::decode(data.slice(start..), len as u64);
        assert!(footer.is_err(), "a truncated object decoded a footer");
        return;
    }
    // As the reader does: the footer is checked against the checksum the index keeps.
    let footer = SegmentFooter::decode_checked(
        data.slice(range.start as usize..range.end as usize),
        len as u64,
        Some(segment.footer_crc),
    );
    let footer_touched = touched.iter().any(|p| range.contains(&(*p as u64)));
    let Ok(footer) = footer else {
        return;
    };
    assert!(!footer_touched, "a damaged footer passed its checksum");
    for (index, location) in segment.chunks.iter().enumerate() {
        let (start, end) = (
            location.byte_start as usize,
            (location.byte_start + location.byte_len) as usize,
        );
        let read = footer.decode_chunk(
            location.row_group,
            location.byte_start,
            data.slice(start..end),
        );
        if let Ok(records) = read {
            assert!(
                !touched.iter().any(|p| (start..end).contains(p)),
                "chunk {index} read back despite damage to its bytes"
            );
            assert_eq!(
                records, expected[index],
                "chunk {index} read back wrong records"
            );
        }
    }
}
