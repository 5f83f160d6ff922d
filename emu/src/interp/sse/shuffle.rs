//! Shuffles, unpacks, packs, inserts, extracts, blends and sign/zero
//! extension (SDM Vol. 2 SHUFPS, SHUFPD, UNPCK*, PSHUF*, PALIGNR, PUNPCK*,
//! PACK*, INSERTPS, EXTRACTPS, PINSR*, PEXTR*, BLEND*, PBLEND*, PMOVSX*,
//! PMOVZX*).

use super::int::{vec_binop, vec_ops};
use super::lanes::*;
use super::operands::{mm_n, mmx_check, sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};

/// Lane `k` of `lb` bytes.
#[inline(always)]
fn lane(x: u128, k: usize, lb: usize) -> u128 {
    let bits = 8 * lb;
    (x >> (k * bits)) & (u128::MAX >> (128 - bits))
}

/// Interleaves the low (or high) halves of the `lb`-byte lanes of `a` and
/// `b`, over 8 (MMX) or 16 (XMM) bytes.
#[inline(always)]
fn unpack(a: u128, b: u128, xmm: bool, lb: usize, high: bool) -> u128 {
    let n = if xmm { 16 } else { 8 } / lb;
    let half = n / 2;
    let start = if high { half } else { 0 };
    let bits = 8 * lb;
    (0..half).fold(0u128, |acc, k| {
        acc | lane(a, start + k, lb) << (2 * k * bits)
            | lane(b, start + k, lb) << ((2 * k + 1) * bits)
    })
}

/// Packs the signed words (or doublewords, `lb` = 4) of `a` then `b` into
/// lanes of half the size with `sat`.
#[inline(always)]
fn pack(a: u128, b: u128, xmm: bool, lb: usize, sat: impl Fn(i32) -> u32) -> u128 {
    let n = if xmm { 16 } else { 8 } / lb;
    let out = 4 * lb; // bits of a result lane
    let s = |x: u128| -> i32 {
        if lb == 2 {
            x as u16 as i16 as i32
        } else {
            x as u32 as i32
        }
    };
    (0..n).fold(0u128, |acc, k| {
        acc | (sat(s(lane(a, k, lb))) as u128) << (k * out)
            | (sat(s(lane(b, k, lb))) as u128) << ((n + k) * out)
    })
}

vec_ops! {
    /// PUNPCKLBW.
    punpcklbw = |a, b, x| unpack(a, b, x, 1, false);
    /// PUNPCKLWD.
    punpcklwd = |a, b, x| unpack(a, b, x, 2, false);
    /// PUNPCKLDQ.
    punpckldq = |a, b, x| unpack(a, b, x, 4, false);
    /// PUNPCKLQDQ, UNPCKLPD.
    punpcklqdq = |a, b, x| unpack(a, b, x, 8, false);
    /// PUNPCKHBW.
    punpckhbw = |a, b, x| unpack(a, b, x, 1, true);
    /// PUNPCKHWD.
    punpckhwd = |a, b, x| unpack(a, b, x, 2, true);
    /// PUNPCKHDQ, UNPCKHPS.
    punpckhdq = |a, b, x| unpack(a, b, x, 4, true);
    /// PUNPCKHQDQ, UNPCKHPD.
    punpckhqdq = |a, b, x| unpack(a, b, x, 8, true);
    /// PACKSSWB.
    packsswb = |a, b, x| pack(a, b, x, 2, |v| sat_i8(v) as u32);
    /// PACKUSWB.
    packuswb = |a, b, x| pack(a, b, x, 2, |v| sat_u8(v) as u32);
    /// PACKSSDW.
    packssdw = |a, b, x| pack(a, b, x, 4, |v| sat_i16(v) as u32);
    /// PACKUSDW.
    packusdw = |a, b, x| pack(a, b, x, 4, |v| sat_u16(v) as u32);
    /// PSHUFB: each destination byte from the byte the source selects, or
    /// zero if the selector's top bit is set.
    pshufb = |a, b, x| {
        let (t, s) = (super::lanes::b(a), super::lanes::b(b));
        let m = if x { 15 } else { 7 };
        from_b(core::array::from_fn(|k| if s[k] & 0x80 != 0 { 0 } else { t[(s[k] & m) as usize] }))
    };
}

/// UNPCKLPS is PUNPCKLDQ on XMM registers.
pub use punpckldq as unpcklps;

/// PALIGNR: (destination:source) shifted right by imm8 bytes, the low half
/// kept.
pub fn palignr(m: &mut Machine, i: &Instruction) -> Flow {
    let n = i.immediate8() as u32 * 8;
    vec_binop(m, i, |a, b, x| {
        if x {
            // 256-bit concatenation as two halves.
            if n >= 256 {
                0
            } else if n >= 128 {
                a.checked_shr(n - 128).unwrap_or(0)
            } else if n == 0 {
                b
            } else {
                (b >> n) | (a << (128 - n))
            }
        } else {
            let v = a << 64 | b;
            v.checked_shr(n).unwrap_or(0) & u64::MAX as u128
        }
    })
}

/// SHUFPS: destination's dwords selected into the low half, source's into
/// the high half.
pub fn shufps(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as usize;
    vec_binop(m, i, |a, b, _| {
        let (x, y) = (d(a), d(b));
        from_d([
            x[imm & 3],
            x[(imm >> 2) & 3],
            y[(imm >> 4) & 3],
            y[(imm >> 6) & 3],
        ])
    })
}

/// SHUFPD.
pub fn shufpd(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as usize;
    vec_binop(m, i, |a, b, _| {
        from_q([q(a)[imm & 1], q(b)[(imm >> 1) & 1]])
    })
}

/// A `dst ← f(src, imm8)` instruction on XMM registers.
#[inline(always)]
fn xmm_unop(m: &mut Machine, i: &Instruction, f: impl Fn(u128, usize) -> u128) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = f(src, i.immediate8() as usize);
    Ok(())
}

/// PSHUFD.
pub fn pshufd(m: &mut Machine, i: &Instruction) -> Flow {
    xmm_unop(m, i, |s, imm| {
        let v = d(s);
        from_d(core::array::from_fn(|k| v[(imm >> (2 * k)) & 3]))
    })
}

/// PSHUFLW: the low four words shuffled, the high quadword copied.
pub fn pshuflw(m: &mut Machine, i: &Instruction) -> Flow {
    xmm_unop(m, i, |s, imm| {
        let v = w(s);
        let mut r = v;
        for k in 0..4 {
            r[k] = v[(imm >> (2 * k)) & 3];
        }
        from_w(r)
    })
}

/// PSHUFHW: the high four words shuffled, the low quadword copied.
pub fn pshufhw(m: &mut Machine, i: &Instruction) -> Flow {
    xmm_unop(m, i, |s, imm| {
        let v = w(s);
        let mut r = v;
        for k in 0..4 {
            r[4 + k] = v[4 + ((imm >> (2 * k)) & 3)];
        }
        from_w(r)
    })
}

/// PSHUFW (MMX).
pub fn pshufw(m: &mut Machine, i: &Instruction) -> Flow {
    mmx_check(m)?;
    let s = m.mm_src(i, 1)?;
    let imm = i.immediate8() as u64;
    let r = (0..4).fold(0u64, |acc, k| {
        let sel = (imm >> (2 * k)) & 3;
        acc | ((s >> (16 * sel)) & 0xffff) << (16 * k)
    });
    m.mmx_enter();
    m.set_mm(mm_n(i.op0_register()), r);
    Ok(())
}

/// INSERTPS: a single from the source (register: dword imm8[7:6]; memory:
/// the m32) into destination dword imm8[5:4], then dwords of imm8[3:0]
/// zeroed.
pub fn insertps(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let imm = i.immediate8() as usize;
    let v = if i.op_kind(1) == OpKind::Register {
        d(m.cpu.fpu.xmm[xmm_n(i.op1_register())])[(imm >> 6) & 3]
    } else {
        m.read_mem_op(i, 4)? as u32
    };
    let dn = xmm_n(i.op0_register());
    let mut r = d(m.cpu.fpu.xmm[dn]);
    r[(imm >> 4) & 3] = v;
    for (k, x) in r.iter_mut().enumerate() {
        if imm >> k & 1 != 0 {
            *x = 0;
        }
    }
    m.cpu.fpu.xmm[dn] = from_d(r);
    Ok(())
}

/// Writes an extracted element to a general register (zero-extended to
/// its width) or to memory of the instruction's memory size.
#[inline(always)]
fn put_extracted(m: &mut Machine, i: &Instruction, v: u64) -> Flow {
    if i.op_kind(0) == OpKind::Register {
        m.write_gpr(i.op0_register(), v);
        Ok(())
    } else {
        m.write_mem_op(i, i.memory_size().size(), v)
    }
}

/// EXTRACTPS, PEXTRB, PEXTRW (SSE4.1 and SSE2 register forms), PEXTRD,
/// PEXTRQ from an XMM register: element imm8 (modulo the element count) of
/// the memory size, or of `lb` bytes for register destinations.
fn pextr(m: &mut Machine, i: &Instruction, lb: usize) -> Flow {
    sse_check(m)?;
    let s = m.cpu.fpu.xmm[xmm_n(i.op1_register())];
    let k = i.immediate8() as usize % (16 / lb);
    put_extracted(m, i, lane(s, k, lb) as u64)
}

/// PEXTRB.
pub fn pextrb(m: &mut Machine, i: &Instruction) -> Flow {
    pextr(m, i, 1)
}

/// PEXTRW (XMM source; the SSE2 register form and the SSE4.1 r/m16 form).
pub fn pextrw(m: &mut Machine, i: &Instruction) -> Flow {
    if i.op1_register().is_mm() {
        mmx_check(m)?;
        let s = m.mm(mm_n(i.op1_register()));
        let k = (i.immediate8() & 3) as u64;
        m.mmx_enter();
        m.write_gpr(i.op0_register(), (s >> (16 * k)) & 0xffff);
        return Ok(());
    }
    pextr(m, i, 2)
}

/// PEXTRD and EXTRACTPS.
pub fn pextrd(m: &mut Machine, i: &Instruction) -> Flow {
    pextr(m, i, 4)
}

/// PEXTRQ.
pub fn pextrq(m: &mut Machine, i: &Instruction) -> Flow {
    pextr(m, i, 8)
}

/// PINSRB, PINSRW, PINSRD, PINSRQ: element imm8 of `lb` bytes from a general
/// register or memory.
fn pinsr(m: &mut Machine, i: &Instruction, lb: usize) -> Flow {
    let r0 = i.op0_register();
    let mmx = r0.is_mm();
    if mmx {
        mmx_check(m)?;
    } else {
        sse_check(m)?;
    }
    let v = if i.op_kind(1) == OpKind::Register {
        m.read_gpr(i.op1_register())
    } else {
        m.read_mem_op(i, lb)?
    };
    let bits = 8 * lb;
    let field = u128::MAX >> (128 - bits);
    if mmx {
        let k = (i.immediate8() & 3) as usize;
        let d = mm_n(r0);
        let cur = m.mm(d) as u128;
        let r = (cur & !(field << (k * bits))) | ((v as u128 & field) << (k * bits));
        m.mmx_enter();
        m.set_mm(d, r as u64);
    } else {
        let k = i.immediate8() as usize % (16 / lb);
        let x = &mut m.cpu.fpu.xmm[xmm_n(r0)];
        *x = (*x & !(field << (k * bits))) | ((v as u128 & field) << (k * bits));
    }
    Ok(())
}

/// PINSRB.
pub fn pinsrb(m: &mut Machine, i: &Instruction) -> Flow {
    pinsr(m, i, 1)
}

/// PINSRW (MMX and XMM).
pub fn pinsrw(m: &mut Machine, i: &Instruction) -> Flow {
    pinsr(m, i, 2)
}

/// PINSRD.
pub fn pinsrd(m: &mut Machine, i: &Instruction) -> Flow {
    pinsr(m, i, 4)
}

/// PINSRQ.
pub fn pinsrq(m: &mut Machine, i: &Instruction) -> Flow {
    pinsr(m, i, 8)
}

/// Selects `lb`-byte lanes of `b` where `sel(k)`, else of `a`.
#[inline(always)]
fn blend(a: u128, b: u128, lb: usize, sel: impl Fn(usize) -> bool) -> u128 {
    let bits = 8 * lb;
    let field = u128::MAX >> (128 - bits);
    (0..16 / lb).fold(0u128, |acc, k| {
        let src = if sel(k) { b } else { a };
        acc | (src & (field << (k * bits)))
    })
}

/// BLENDPS.
pub fn blendps(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as usize;
    vec_binop(m, i, |a, b, _| blend(a, b, 4, |k| imm >> k & 1 != 0))
}

/// BLENDPD.
pub fn blendpd(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as usize;
    vec_binop(m, i, |a, b, _| blend(a, b, 8, |k| imm >> k & 1 != 0))
}

/// PBLENDW.
pub fn pblendw(m: &mut Machine, i: &Instruction) -> Flow {
    let imm = i.immediate8() as usize;
    vec_binop(m, i, |a, b, _| blend(a, b, 2, |k| imm >> k & 1 != 0))
}

/// BLENDVPS, BLENDVPD, PBLENDVB: lanes of the source where the matching
/// lane of XMM0 has its sign bit set.
fn blendv(m: &mut Machine, i: &Instruction, lb: usize) -> Flow {
    let mask = m.cpu.fpu.xmm[0];
    let top = 8 * lb - 1;
    vec_binop(m, i, |a, b, _| {
        blend(a, b, lb, |k| mask >> (8 * lb * k + top) & 1 != 0)
    })
}

/// BLENDVPS.
pub fn blendvps(m: &mut Machine, i: &Instruction) -> Flow {
    blendv(m, i, 4)
}

/// BLENDVPD.
pub fn blendvpd(m: &mut Machine, i: &Instruction) -> Flow {
    blendv(m, i, 8)
}

/// PBLENDVB.
pub fn pblendvb(m: &mut Machine, i: &Instruction) -> Flow {
    blendv(m, i, 1)
}

/// PMOVSX*/PMOVZX*: the low `from`-byte lanes of the source extended to
/// `to` bytes.
fn pmov_extend(m: &mut Machine, i: &Instruction, from: usize, to: usize, signed: bool) -> Flow {
    sse_check(m)?;
    let s = m.xmm_src(i, 1, Mem::Aligned)?;
    let fb = 8 * from as u32;
    let tb = 8 * to;
    let r = (0..16 / to).fold(0u128, |acc, k| {
        let v = lane(s, k, from);
        let v = if signed {
            (((v << (128 - fb)) as i128) >> (128 - fb)) as u128
        } else {
            v
        };
        acc | (v & (u128::MAX >> (128 - tb))) << (k * tb)
    });
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = r;
    Ok(())
}

macro_rules! pmov {
    ($( $name:ident = $from:literal, $to:literal, $signed:literal; )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`.")]
            pub fn $name(m: &mut Machine, i: &Instruction) -> Flow {
                pmov_extend(m, i, $from, $to, $signed)
            }
        )*
    };
}

pmov! {
    pmovsxbw = 1, 2, true;
    pmovsxbd = 1, 4, true;
    pmovsxbq = 1, 8, true;
    pmovsxwd = 2, 4, true;
    pmovsxwq = 2, 8, true;
    pmovsxdq = 4, 8, true;
    pmovzxbw = 1, 2, false;
    pmovzxbd = 1, 4, false;
    pmovzxbq = 1, 8, false;
    pmovzxwd = 2, 4, false;
    pmovzxwq = 2, 8, false;
    pmovzxdq = 4, 8, false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_and_pack() {
        let a = from_b(core::array::from_fn(|k| k as u8));
        let b = from_b(core::array::from_fn(|k| 0x10 + k as u8));
        assert_eq!(
            super::super::lanes::b(unpack(a, b, true, 1, false))[..4],
            [0, 0x10, 1, 0x11]
        );
        assert_eq!(
            super::super::lanes::b(unpack(a, b, false, 1, true))[..4],
            [4, 0x14, 5, 0x15]
        );
        assert_eq!(unpack(a, b, false, 1, true) >> 64, 0);
        let x = from_w([0x7fff, 0x8000, 300, 0xffff, 5, 6, 7, 8]);
        let p = super::super::lanes::b(pack(x, x, true, 2, |v| sat_i8(v) as u32));
        assert_eq!(p[..5], [0x7f, 0x80, 0x7f, 0xff, 5]);
        let p = super::super::lanes::b(pack(x, 0, false, 2, |v| sat_u8(v) as u32));
        assert_eq!(p[..8], [0xff, 0, 0xff, 0, 0, 0, 0, 0]);
    }
}
