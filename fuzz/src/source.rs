//! Reading a structured case out of an input's bytes.
//!
//! Every target decodes its input with a [`Source`]: the bytes are the
//! target's choices (which mode, which field, which value) in order, and an
//! exhausted input reads as zeros. Generating an input is then drawing random
//! bytes, mutating one is editing bytes, and a reproducer is just the bytes:
//! the structure lives in one place, the decoder, so generator and decoder
//! cannot disagree (the approach of `arbitrary` and libFuzzer's
//! FuzzedDataProvider).

/// A cursor over an input's bytes.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Source<'a> {
    /// A source over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next `N` bytes as a little-endian integer.
    fn le(&mut self, n: usize) -> u64 {
        (0..n).fold(0u64, |v, k| v | (self.u8() as u64) << (8 * k))
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        self.le(2) as u16
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        self.le(4) as u32
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        self.le(8)
    }

    /// A choice in `0..n` (0 when `n` is 0), from one byte when `n` fits.
    pub fn below(&mut self, n: u64) -> u64 {
        match n {
            0 => 0,
            1..=256 => self.u8() as u64 % n,
            257..=65536 => self.u16() as u64 % n,
            _ => self.u64() % n,
        }
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match hi.wrapping_sub(lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.u64(),
        }
    }

    /// True with probability about `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A boolean.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// One element of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Up to `n` bytes (fewer when the input ends).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data[start..end].to_vec()
    }

    /// Every byte not read yet.
    pub fn rest(&mut self) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        self.data[start..].to_vec()
    }

    /// A 64-bit value biased towards edges: zero, all ones, single bits,
    /// masks, small values, or raw bits.
    pub fn interesting_u64(&mut self) -> u64 {
        let shift = |s: &mut Self| s.u8() as u32 % 64;
        match self.u8() % 10 {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << shift(self),
            3 => (1u64 << shift(self)).wrapping_sub(1),
            4 => !(1u64 << shift(self)),
            5 => self.u8() as u64,
            6 => [
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                0x1_0000_0000,
                0x7fff_ffff_ffff_ffff,
                0x8000_0000_0000_0000,
                0xffff_f000,
                0xffff_ffff_ffff_f000,
            ][self.u8() as usize % 8],
            7 => self.u32() as u64,
            _ => self.u64(),
        }
    }

    /// A string of up to `max` characters: ASCII, unicode, controls.
    pub fn string(&mut self, max: usize) -> String {
        let n = self.below(max as u64 + 1) as usize;
        let mut s = String::new();
        for _ in 0..n {
            if self.is_empty() {
                break;
            }
            let c = match self.u8() % 8 {
                0 => char::from_u32(self.u32() % 0x11_0000).unwrap_or('\u{fffd}'),
                1 => self.pick(&['é', 'ß', '٣', '€', '𝄞', '\u{0}', '\u{202e}', ' ', '=', ',']),
                2 => (self.u8() % 32) as char,
                _ => (b' ' + self.u8() % 95) as char,
            };
            s.push(c);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_then_zeros() {
        let mut s = Source::new(&[1, 2, 3]);
        assert_eq!(s.u16(), 0x0201);
        assert_eq!(s.u32(), 3);
        assert!(s.is_empty());
        assert_eq!(s.u64(), 0);
        assert_eq!(s.bytes(4), Vec::<u8>::new());
    }

    #[test]
    fn ranges_hold() {
        let data: Vec<u8> = (0..=255).collect();
        let mut s = Source::new(&data);
        for _ in 0..50 {
            assert!((3..=7).contains(&s.range(3, 7)));
        }
        assert_eq!(
            Source::new(&[9; 8]).range(0, u64::MAX),
            0x0909_0909_0909_0909
        );
    }
}
