//! Views of a 128-bit (or, zero-extended, 64-bit) vector as lanes, and the
//! lane-wise maps the packed instructions are written with. Lane 0 is the
//! least significant (SDM Vol. 1 11.2.2 "SSE2 data types").

/// The 16 bytes.
#[inline(always)]
pub fn b(x: u128) -> [u8; 16] {
    x.to_le_bytes()
}

/// From 16 bytes.
#[inline(always)]
pub fn from_b(v: [u8; 16]) -> u128 {
    u128::from_le_bytes(v)
}

/// The eight words.
#[inline(always)]
pub fn w(x: u128) -> [u16; 8] {
    core::array::from_fn(|k| (x >> (16 * k)) as u16)
}

/// From eight words.
#[inline(always)]
pub fn from_w(v: [u16; 8]) -> u128 {
    v.iter().rev().fold(0u128, |acc, &x| acc << 16 | x as u128)
}

/// The four doublewords.
#[inline(always)]
pub fn d(x: u128) -> [u32; 4] {
    core::array::from_fn(|k| (x >> (32 * k)) as u32)
}

/// From four doublewords.
#[inline(always)]
pub fn from_d(v: [u32; 4]) -> u128 {
    v.iter().rev().fold(0u128, |acc, &x| acc << 32 | x as u128)
}

/// The two quadwords.
#[inline(always)]
pub fn q(x: u128) -> [u64; 2] {
    [x as u64, (x >> 64) as u64]
}

/// From two quadwords.
#[inline(always)]
pub fn from_q(v: [u64; 2]) -> u128 {
    (v[1] as u128) << 64 | v[0] as u128
}

/// Byte-wise map of two vectors.
#[inline(always)]
pub fn map_b(x: u128, y: u128, f: impl Fn(u8, u8) -> u8) -> u128 {
    let (a, c) = (b(x), b(y));
    from_b(core::array::from_fn(|k| f(a[k], c[k])))
}

/// Word-wise map of two vectors.
#[inline(always)]
pub fn map_w(x: u128, y: u128, f: impl Fn(u16, u16) -> u16) -> u128 {
    let (a, c) = (w(x), w(y));
    from_w(core::array::from_fn(|k| f(a[k], c[k])))
}

/// Doubleword-wise map of two vectors.
#[inline(always)]
pub fn map_d(x: u128, y: u128, f: impl Fn(u32, u32) -> u32) -> u128 {
    let (a, c) = (d(x), d(y));
    from_d(core::array::from_fn(|k| f(a[k], c[k])))
}

/// Quadword-wise map of two vectors.
#[inline(always)]
pub fn map_q(x: u128, y: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    let (a, c) = (q(x), q(y));
    from_q([f(a[0], c[0]), f(a[1], c[1])])
}

/// Saturates a signed value to a signed byte.
#[inline(always)]
pub fn sat_i8(v: i32) -> u8 {
    v.clamp(i8::MIN as i32, i8::MAX as i32) as i8 as u8
}

/// Saturates a signed value to an unsigned byte.
#[inline(always)]
pub fn sat_u8(v: i32) -> u8 {
    v.clamp(0, u8::MAX as i32) as u8
}

/// Saturates a signed value to a signed word.
#[inline(always)]
pub fn sat_i16(v: i32) -> u16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16 as u16
}

/// Saturates a signed value to an unsigned word.
#[inline(always)]
pub fn sat_u16(v: i32) -> u16 {
    v.clamp(0, u16::MAX as i32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let x = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
        assert_eq!(from_b(b(x)), x);
        assert_eq!(from_w(w(x)), x);
        assert_eq!(from_d(d(x)), x);
        assert_eq!(from_q(q(x)), x);
        assert_eq!(w(x)[0], 0xeeff);
        assert_eq!(d(x)[3], 0x0011_2233);
    }
}
