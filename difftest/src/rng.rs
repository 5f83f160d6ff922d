//! The generator's deterministic random source (SplitMix64: Steele, Lea and
//! Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014).

/// A seeded random source.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo.wrapping_add(self.below(hi.wrapping_sub(lo) as u64 + 1) as i64)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `xs` (non-empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// A value biased towards the edges of `bits`-bit arithmetic: zero, one,
    /// all ones, the sign boundaries, single bits, small numbers, or random.
    pub fn value(&mut self, bits: u32) -> u64 {
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let sign = 1u64 << (bits - 1);
        let v = match self.below(12) {
            0 => 0,
            1 => 1,
            2 => mask,
            3 => sign,
            4 => sign - 1,
            5 => sign + 1,
            6 => 1u64 << self.below(bits as u64),
            7 => self.below(256),
            8 => mask - self.below(256),
            9 => self.next_u64() & (self.next_u64() | self.next_u64() << 7),
            _ => self.next_u64(),
        };
        v & mask
    }

    /// A 64-bit register value: a `bits`-wide edge value, and random upper
    /// bits half of the time.
    pub fn reg_value(&mut self, bits: u32) -> u64 {
        let v = self.value(bits);
        if bits < 64 && self.chance(50) {
            v | (self.next_u64() << bits)
        } else {
            v
        }
    }
}
