//! Packed integer arithmetic of MMX, SSE2, SSSE3 and SSE4.1 (SDM Vol. 2
//! PADDB..PSUBUSW, PMUL*, PMADD*, PAVG*, PSADBW, PMIN*/PMAX*, PABS*, PSIGN*,
//! PHADD*/PHSUB*, PHMINPOSUW, MPSADBW). Each handler serves both the MMX
//! form (64-bit, `mm, mm/m64`) and the SSE form (128-bit, `xmm, xmm/m128`).

use super::lanes::{self, *};
use super::operands::{mm_n, mmx_check, sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::Instruction;

/// `dst = f(dst, src, is_xmm)` for an MMX or SSE two-operand instruction
/// (`src` is operand 1, or operand 1 and the immediate is read by `f`'s
/// caller). MMX forms make the x87-to-MMX transition once nothing can fault.
#[inline(always)]
pub fn vec_binop(m: &mut Machine, i: &Instruction, f: impl Fn(u128, u128, bool) -> u128) -> Flow {
    let r0 = i.op0_register();
    if r0.is_mm() {
        mmx_check(m)?;
        let src = m.mm_src(i, 1)?;
        let d = mm_n(r0);
        let r = f(m.mm(d) as u128, src as u128, false) as u64;
        m.mmx_enter();
        m.set_mm(d, r);
    } else {
        sse_check(m)?;
        let src = m.xmm_src(i, 1, Mem::Aligned)?;
        let d = xmm_n(r0);
        m.cpu.fpu.xmm[d] = f(m.cpu.fpu.xmm[d], src, true);
    }
    Ok(())
}

/// Defines handlers `fn(m, i) -> Flow` as [`vec_binop`] over a lane function.
macro_rules! vec_ops {
    ($( $(#[$doc:meta])* $name:ident = $f:expr; )*) => {
        $(
            $(#[$doc])*
            pub fn $name(m: &mut Machine, i: &Instruction) -> Flow {
                vec_binop(m, i, $f)
            }
        )*
    };
}
pub(super) use vec_ops;

vec_ops! {
    /// PADDB.
    paddb = |a, b, _| map_b(a, b, u8::wrapping_add);
    /// PADDW.
    paddw = |a, b, _| map_w(a, b, u16::wrapping_add);
    /// PADDD.
    paddd = |a, b, _| map_d(a, b, u32::wrapping_add);
    /// PADDQ.
    paddq = |a, b, _| map_q(a, b, u64::wrapping_add);
    /// PSUBB.
    psubb = |a, b, _| map_b(a, b, u8::wrapping_sub);
    /// PSUBW.
    psubw = |a, b, _| map_w(a, b, u16::wrapping_sub);
    /// PSUBD.
    psubd = |a, b, _| map_d(a, b, u32::wrapping_sub);
    /// PSUBQ.
    psubq = |a, b, _| map_q(a, b, u64::wrapping_sub);
    /// PADDSB.
    paddsb = |a, b, _| map_b(a, b, |x, y| sat_i8(x as i8 as i32 + y as i8 as i32));
    /// PADDSW.
    paddsw = |a, b, _| map_w(a, b, |x, y| sat_i16(x as i16 as i32 + y as i16 as i32));
    /// PADDUSB.
    paddusb = |a, b, _| map_b(a, b, u8::saturating_add);
    /// PADDUSW.
    paddusw = |a, b, _| map_w(a, b, u16::saturating_add);
    /// PSUBSB.
    psubsb = |a, b, _| map_b(a, b, |x, y| sat_i8(x as i8 as i32 - y as i8 as i32));
    /// PSUBSW.
    psubsw = |a, b, _| map_w(a, b, |x, y| sat_i16(x as i16 as i32 - y as i16 as i32));
    /// PSUBUSB.
    psubusb = |a, b, _| map_b(a, b, u8::saturating_sub);
    /// PSUBUSW.
    psubusw = |a, b, _| map_w(a, b, u16::saturating_sub);
    /// PMULLW: low words of the signed products.
    pmullw = |a, b, _| map_w(a, b, u16::wrapping_mul);
    /// PMULHW: high words of the signed products.
    pmulhw = |a, b, _| map_w(a, b, |x, y| ((x as i16 as i32 * y as i16 as i32) >> 16) as u16);
    /// PMULHUW: high words of the unsigned products.
    pmulhuw = |a, b, _| map_w(a, b, |x, y| ((x as u32 * y as u32) >> 16) as u16);
    /// PMULLD: low doublewords of the products.
    pmulld = |a, b, _| map_d(a, b, u32::wrapping_mul);
    /// PMULUDQ: unsigned products of the even doublewords.
    pmuludq = |a, b, _| map_q(a, b, |x, y| (x as u32 as u64) * (y as u32 as u64));
    /// PMULDQ: signed products of the even doublewords.
    pmuldq = |a, b, _| map_q(a, b, |x, y| (x as i32 as i64 * y as i32 as i64) as u64);
    /// PMULHRSW: signed products scaled by 2^-15 with rounding.
    pmulhrsw = |a, b, _| map_w(a, b, |x, y| {
        ((((x as i16 as i32 * y as i16 as i32) >> 14) + 1) >> 1) as u16
    });
    /// PMADDWD: sums of adjacent signed word products (the one overflow case,
    /// all four words 8000H, wraps to 8000_0000H).
    pmaddwd = |a, b, _| {
        let (x, y) = (w(a), w(b));
        from_d(core::array::from_fn(|k| {
            let p0 = x[2 * k] as i16 as i32 * y[2 * k] as i16 as i32;
            let p1 = x[2 * k + 1] as i16 as i32 * y[2 * k + 1] as i16 as i32;
            p0.wrapping_add(p1) as u32
        }))
    };
    /// PMADDUBSW: sums of adjacent unsigned-by-signed byte products,
    /// saturated to signed words (destination bytes unsigned).
    pmaddubsw = |a, b, _| {
        let (x, y) = (lanes::b(a), lanes::b(b));
        from_w(core::array::from_fn(|k| {
            let p0 = x[2 * k] as i32 * y[2 * k] as i8 as i32;
            let p1 = x[2 * k + 1] as i32 * y[2 * k + 1] as i8 as i32;
            sat_i16(p0 + p1)
        }))
    };
    /// PAVGB.
    pavgb = |a, b, _| map_b(a, b, |x, y| ((x as u16 + y as u16 + 1) >> 1) as u8);
    /// PAVGW.
    pavgw = |a, b, _| map_w(a, b, |x, y| ((x as u32 + y as u32 + 1) >> 1) as u16);
    /// PSADBW: per 64-bit half, the sum of absolute byte differences in the
    /// low word, zeros above.
    psadbw = |a, b, _| {
        let (x, y) = (lanes::b(a), lanes::b(b));
        let half = |h: usize| (0..8).map(|k| x[8 * h + k].abs_diff(y[8 * h + k]) as u64).sum::<u64>();
        from_q([half(0), half(1)])
    };
    /// PMINUB.
    pminub = |a, b, _| map_b(a, b, u8::min);
    /// PMAXUB.
    pmaxub = |a, b, _| map_b(a, b, u8::max);
    /// PMINSW.
    pminsw = |a, b, _| map_w(a, b, |x, y| (x as i16).min(y as i16) as u16);
    /// PMAXSW.
    pmaxsw = |a, b, _| map_w(a, b, |x, y| (x as i16).max(y as i16) as u16);
    /// PMINSB.
    pminsb = |a, b, _| map_b(a, b, |x, y| (x as i8).min(y as i8) as u8);
    /// PMAXSB.
    pmaxsb = |a, b, _| map_b(a, b, |x, y| (x as i8).max(y as i8) as u8);
    /// PMINUW.
    pminuw = |a, b, _| map_w(a, b, u16::min);
    /// PMAXUW.
    pmaxuw = |a, b, _| map_w(a, b, u16::max);
    /// PMINSD.
    pminsd = |a, b, _| map_d(a, b, |x, y| (x as i32).min(y as i32) as u32);
    /// PMAXSD.
    pmaxsd = |a, b, _| map_d(a, b, |x, y| (x as i32).max(y as i32) as u32);
    /// PMINUD.
    pminud = |a, b, _| map_d(a, b, u32::min);
    /// PMAXUD.
    pmaxud = |a, b, _| map_d(a, b, u32::max);
    /// PABSB.
    pabsb = |_, b, _| map_b(b, 0, |x, _| (x as i8).unsigned_abs());
    /// PABSW.
    pabsw = |_, b, _| map_w(b, 0, |x, _| (x as i16).unsigned_abs());
    /// PABSD.
    pabsd = |_, b, _| map_d(b, 0, |x, _| (x as i32).unsigned_abs());
    /// PSIGNB.
    psignb = |a, b, _| map_b(a, b, |x, y| match (y as i8).signum() {
        -1 => x.wrapping_neg(),
        0 => 0,
        _ => x,
    });
    /// PSIGNW.
    psignw = |a, b, _| map_w(a, b, |x, y| match (y as i16).signum() {
        -1 => x.wrapping_neg(),
        0 => 0,
        _ => x,
    });
    /// PSIGND.
    psignd = |a, b, _| map_d(a, b, |x, y| match (y as i32).signum() {
        -1 => x.wrapping_neg(),
        0 => 0,
        _ => x,
    });
    /// PHADDW.
    phaddw = |a, b, x| horizontal_w(a, b, x, |p, q| p.wrapping_add(q));
    /// PHADDSW.
    phaddsw = |a, b, x| horizontal_w(a, b, x, |p, q| sat_i16(p as i16 as i32 + q as i16 as i32));
    /// PHSUBW.
    phsubw = |a, b, x| horizontal_w(a, b, x, |p, q| p.wrapping_sub(q));
    /// PHSUBSW.
    phsubsw = |a, b, x| horizontal_w(a, b, x, |p, q| sat_i16(p as i16 as i32 - q as i16 as i32));
    /// PHADDD.
    phaddd = |a, b, x| horizontal_d(a, b, x, u32::wrapping_add);
    /// PHSUBD.
    phsubd = |a, b, x| horizontal_d(a, b, x, u32::wrapping_sub);
}

/// Horizontal word operation: adjacent pairs of the destination, then of
/// the source (4 pairs each for XMM, 2 for MMX).
#[inline(always)]
fn horizontal_w(a: u128, b: u128, xmm: bool, f: impl Fn(u16, u16) -> u16) -> u128 {
    let (x, y) = (w(a), w(b));
    let n = if xmm { 4 } else { 2 };
    let mut r = [0u16; 8];
    for k in 0..n {
        r[k] = f(x[2 * k], x[2 * k + 1]);
        r[n + k] = f(y[2 * k], y[2 * k + 1]);
    }
    from_w(r)
}

/// Horizontal doubleword operation (2 pairs each for XMM, 1 for MMX).
#[inline(always)]
fn horizontal_d(a: u128, b: u128, xmm: bool, f: impl Fn(u32, u32) -> u32) -> u128 {
    let (x, y) = (d(a), d(b));
    let n = if xmm { 2 } else { 1 };
    let mut r = [0u32; 4];
    for k in 0..n {
        r[k] = f(x[2 * k], x[2 * k + 1]);
        r[n + k] = f(y[2 * k], y[2 * k + 1]);
    }
    from_d(r)
}

/// PHMINPOSUW: the minimum unsigned word of the source and its index (the
/// lowest on ties) in the low doubleword, zeros above.
pub fn phminposuw(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let v = w(src);
    let (idx, min) = v.iter().enumerate().fold(
        (0, v[0]),
        |(bi, bm), (k, &x)| if x < bm { (k, x) } else { (bi, bm) },
    );
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = (idx as u128) << 16 | min as u128;
    Ok(())
}

/// MPSADBW: eight sums of absolute differences between a 4-byte block of
/// the source (imm8[1:0] × 4) and the destination's sliding 4-byte windows
/// starting at imm8[2] × 4.
pub fn mpsadbw(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let src = lanes::b(m.xmm_src(i, 1, Mem::Aligned)?);
    let imm = i.immediate8() as usize;
    let d = xmm_n(i.op0_register());
    let dst = lanes::b(m.cpu.fpu.xmm[d]);
    let s = (imm & 3) * 4;
    let o = ((imm >> 2) & 1) * 4;
    let r: [u16; 8] = core::array::from_fn(|k| {
        (0..4)
            .map(|j| dst[o + k + j].abs_diff(src[s + j]) as u16)
            .sum()
    });
    m.cpu.fpu.xmm[d] = from_w(r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmaddwd_overflow_wraps() {
        let a = 0x8000_8000u128;
        let f = |a, b| {
            let (x, y) = (w(a), w(b));
            let p0 = x[0] as i16 as i32 * y[0] as i16 as i32;
            let p1 = x[1] as i16 as i32 * y[1] as i16 as i32;
            p0.wrapping_add(p1) as u32
        };
        assert_eq!(f(a, a), 0x8000_0000);
    }

    #[test]
    fn horizontal_widths() {
        let a = from_w([1, 2, 3, 4, 5, 6, 7, 8]);
        let b = from_w([10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(
            w(horizontal_w(a, b, true, u16::wrapping_add)),
            [3, 7, 11, 15, 30, 70, 110, 150]
        );
        assert_eq!(
            w(horizontal_w(a, b, false, u16::wrapping_add))[..4],
            [3, 7, 30, 70]
        );
    }
}
