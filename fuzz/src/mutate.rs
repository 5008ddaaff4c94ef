//! A small seeded mutator for running the targets on the stable toolchain (CI). It is no
//! substitute for coverage-guided fuzzing (`fuzz/libfuzzer`); it keeps every target
//! exercised on inputs near the valid ones in every test run.

const INTERESTING: &[i64] = &[
    0,
    1,
    -1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    -0x8000,
    0xffff,
    0x7fff_ffff,
    -0x8000_0000,
    1 << 20,
    1 << 31,
];

/// Applies 1–4 random edits to `input`; `others` are inputs to splice from.
pub fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    for _ in 0..rng.usize(1..=4) {
        let len = input.len();
        match rng.u8(0..8) {
            0 if len > 0 => input[rng.usize(..len)] ^= 1 << rng.u8(0..8),
            1 if len > 0 => input[rng.usize(..len)] = rng.u8(..),
            2 if len >= 4 => {
                // A big-endian integer of 1, 2 or 4 bytes: counts, lengths and sizes.
                let width = [1, 2, 4][rng.usize(..3)];
                let at = rng.usize(..=len - width);
                let value = INTERESTING[rng.usize(..INTERESTING.len())];
                let bytes = value.to_be_bytes();
                input[at..at + width].copy_from_slice(&bytes[8 - width..]);
            }
            3 => {
                let at = rng.usize(..=len);
                let count = rng.usize(1..=16);
                let bytes: Vec<u8> = (0..count).map(|_| rng.u8(..)).collect();
                input.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..=32)).min(len);
                input.drain(at..end);
            }
            5 if len > 0 => input.truncate(rng.usize(..len)),
            6 if !others.is_empty() => {
                let other = &others[rng.usize(..others.len())];
                if !other.is_empty() {
                    let from = rng.usize(..other.len());
                    let to = (from + rng.usize(1..=64)).min(other.len());
                    let at = rng.usize(..=len);
                    input.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ if len > 1 => {
                // Repeat a slice: lists that claim more entries than they carry.
                let from = rng.usize(..len);
                let to = (from + rng.usize(1..=32)).min(len);
                let copy = input[from..to].to_vec();
                let at = rng.usize(..=len);
                input.splice(at..at, copy);
            }
            _ => input.push(rng.u8(..)),
        }
    }
}
