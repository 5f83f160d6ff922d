//! Inputs: the fixed-seed generator, FRSTOR images and memory operands.

use super::*;

pub(super) use testsuites::rng::Rng;

/// An 80-bit value from the interesting classes.
pub(super) fn value(r: &mut Rng) -> (u64, u16) {
    let sign = (r.below(2) as u16) << 15;
    let j = 1u64 << 63;
    let sig = match r.below(6) {
        0 => j,
        1 => j | (r.next() >> 1),
        2 => j | (r.next() >> r.below(64)) & !1,
        3 => u64::MAX,
        4 => j | (r.next() >> 1) & 0xffff_ff00_0000_0000 | (r.below(4) << 38),
        _ => j | (r.next() >> 1) & !0x7ff | (r.below(8) << 9),
    };
    let near = |r: &mut Rng, c: i64, w: i64| (c + r.below(2 * w as u64 + 1) as i64 - w) as u16;
    match r.below(40) {
        0 => (0, sign),
        1 => (j, sign | 0x7fff),                           // infinity
        2 => (j | 1 << 62 | r.next() >> 2, sign | 0x7fff), // QNaN
        3 => (j | (r.next() >> 2).max(1), sign | 0x7fff),  // SNaN
        4 => (0xc000_0000_0000_0000, 0xffff),              // indefinite
        5 => (r.next() >> 1 >> r.below(63), sign),         // denormal
        6 => (j | r.next() >> 1, sign),                    // pseudo-denormal
        7 => (r.next() >> 1, sign | (1 + r.below(0x7ffe)) as u16), // unnormal
        8 => (r.next() >> 1, sign | 0x7fff),               // pseudo-NaN/-infinity
        9 => (sig, sign | near(r, 1, 2)),
        10 => (sig, sign | near(r, 0x7ffe, 2)),
        11 => (sig, sign | near(r, 0x3fff - 16382 + 64, 70).max(1)),
        12 => (sig, sign | near(r, 0x3fff + 16383 - 64, 70).min(0x7ffe)),
        13..=15 => (sig, sign | near(r, 0x3fff - 126, 30)),
        16..=17 => (sig, sign | near(r, 0x3fff - 1022, 60)),
        18..=19 => (sig, sign | near(r, 0x3fff + 1023, 4)),
        20 => (sig, sign | near(r, 0x3fff + 127, 4)),
        21..=24 => {
            // A small integer or an integer-and-a-half.
            let bits = r.below(20);
            let n = r.below(1 << bits).max(1);
            let lz = n.leading_zeros();
            let half = if r.chance(30) {
                1u64 << (62 - (63 - lz))
            } else {
                0
            };
            ((n << lz) | half, sign | (0x3fff + 63 - lz) as u16)
        }
        25..=27 => (sig, sign | near(r, 0x3fff + 62, 3)),
        _ => (sig, sign | near(r, 0x3fff, 64)),
    }
}

/// A random FRSTOR image (32-bit protected layout) with no pending unmasked
/// exception.
pub(super) fn state(r: &mut Rng, full_stack: bool) -> [u8; 108] {
    let mut b = [0u8; 108];
    let masks = if r.chance(75) {
        0x3f
    } else {
        r.below(64) as u16
    };
    let pc = [0, 2, 3, 3, 3][r.below(5) as usize];
    let rc = r.below(4) as u16;
    let fcw = 0x40 | masks | pc << 8 | rc << 10;
    let top = r.below(8) as u16;
    // Only masked exception flags may be set, so nothing is pending.
    let flags = (r.next() as u16) & masks & 0x3f;
    let cc = r.next() as u16 & 0x4700;
    let fsw = flags | cc | top << 11;
    let mut ftw = 0u16;
    for p in 0..8 {
        let empty = !full_stack && r.chance(12);
        ftw |= if empty { 3 } else { 0 } << (2 * p);
    }
    let w = |b: &mut [u8; 108], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    w(&mut b, 0, 0xffff_0000 | fcw as u32);
    w(&mut b, 4, 0xffff_0000 | fsw as u32);
    w(&mut b, 8, 0xffff_0000 | ftw as u32);
    for k in 0..8 {
        let (sig, se) = value(r);
        let o = 28 + 10 * k;
        b[o..o + 8].copy_from_slice(&sig.to_le_bytes());
        b[o + 8..o + 10].copy_from_slice(&se.to_le_bytes());
    }
    b
}

/// A random memory operand for `code`.
pub(super) fn operand(r: &mut Rng, code: Code) -> Mem {
    let mut m = Mem([0u8; 1024]);
    for x in m.0.iter_mut() {
        *x = r.next() as u8;
    }
    let name = format!("{code:?}");
    let m8 = &mut m.0;
    let f32s = [
        0u32,
        0x8000_0000,
        0x3f80_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0001,
        0x7f80_0001,
        0x0000_0001,
        0x807f_ffff,
        0x7f7f_ffff,
        0x0080_0000,
    ];
    let f64s = [
        0u64,
        0x3ff0_0000_0000_0000,
        0x7ff0_0000_0000_0000,
        0x7ff8_0000_0000_0001,
        0x7ff0_0000_0000_0001,
        1,
        0x800f_ffff_ffff_ffff,
        0x7fef_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
    ];
    if name.contains("m32fp") {
        let v = if r.chance(30) {
            f32s[r.below(f32s.len() as u64) as usize]
        } else {
            let e = [0x7f, 0x80, 0x60, 0x01, 0xfe, 0x00, 0x9e][r.below(7) as usize];
            (r.next() as u32 & 0x807f_ffff) | e << 23
        };
        m8[..4].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("m64fp") {
        let v = if r.chance(30) {
            f64s[r.below(f64s.len() as u64) as usize]
        } else {
            let e: u64 = [0x3ff, 0x400, 0x3c0, 0x001, 0x7fe, 0x000, 0x43e][r.below(7) as usize];
            (r.next() & 0x800f_ffff_ffff_ffff) | e << 52
        };
        m8[..8].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("int") {
        let v: u64 = match r.below(4) {
            0 => r.below(5).wrapping_sub(2),
            1 => 1 << r.below(64),
            2 => (1u64 << r.below(64)).wrapping_neg(),
            _ => r.next() >> r.below(64),
        };
        m8[..8].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("bcd") {
        // Mostly valid digits; sometimes nibbles above 9 and stray bits in
        // the sign byte (undefined by the SDM: taken at face value).
        let wild = r.chance(10);
        for x in m8.iter_mut().take(9) {
            *x = if wild {
                r.next() as u8
            } else {
                ((r.below(10) << 4) | r.below(10)) as u8
            };
        }
        m8[9] = if wild {
            r.next() as u8
        } else if r.chance(50) {
            0x80
        } else {
            0
        };
    } else if name.contains("m80fp") {
        let (sig, se) = value(r);
        m8[..8].copy_from_slice(&sig.to_le_bytes());
        m8[8..10].copy_from_slice(&se.to_le_bytes());
    } else if name.contains("m2byte") {
        // A control word: any bits, reserved ones included; masks mostly set.
        let v = r.next() as u16 | if r.chance(60) { 0x3f } else { 0 };
        m8[..2].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("m108byte") || name.contains("m28byte") {
        let s = state(r, false);
        m8[..108].copy_from_slice(&s);
        // Any flags, masks, tags and pointers, even a pending exception.
        m8[4] = r.next() as u8;
        if r.chance(30) {
            m8[0] = r.next() as u8;
            m8[1] = r.next() as u8;
            m8[8] = r.next() as u8;
            m8[9] = r.next() as u8;
        }
        m8[12..28].iter_mut().for_each(|x| *x = r.next() as u8);
    } else if name.contains("m94byte") || name.contains("m14byte") {
        let s = state(r, false);
        m8[0..2].copy_from_slice(&s[0..2]);
        m8[2..4].copy_from_slice(&s[4..6]);
        m8[4..6].copy_from_slice(&s[8..10]);
        m8[14..94].copy_from_slice(&s[28..108]);
    } else if name.starts_with("Fxrstor") {
        let s = state(r, false);
        m8[0..2].copy_from_slice(&s[0..2]);
        m8[2..4].copy_from_slice(&s[4..6]);
        m8[4] = r.next() as u8; // abridged tag
        m8[5] = 0;
        let fop = r.next() as u16 & 0x7ff;
        m8[6..8].copy_from_slice(&fop.to_le_bytes());
        let mxcsr = 0x1f80u32 | (r.next() as u32 & 0x3f);
        m8[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        for k in 0..8 {
            m8[32 + 16 * k..42 + 16 * k].copy_from_slice(&s[28 + 10 * k..38 + 10 * k]);
        }
    }
    m
}
