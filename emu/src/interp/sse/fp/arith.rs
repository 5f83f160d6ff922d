//! Addition, subtraction, multiplication, division and square root
//! (SDM Vol. 2 ADDPS..SQRTSD; Vol. 1 4.8.3 special operands, 4.9.1.1-4.9.1.3
//! invalid operation, denormal operand, divide-by-zero).

use super::round::{round_pack, shr_jam};
use super::*;

/// `a + b`.
pub fn add<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    add_sub::<F>(env, a, b, false)
}

/// `a - b`.
pub fn sub<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    add_sub::<F>(env, a, b, true)
}

/// Raises DE if either operand is a denormal (after DAZ, which makes them
/// zeros); the callers do this only once NaNs, invalid operations and
/// division by zero have been ruled out, which take precedence.
#[inline(always)]
fn denormal_check<F: Format>(env: &mut Env, a: u64, b: u64) {
    if is_denormal::<F>(a) || is_denormal::<F>(b) {
        env.raise(flag::DE);
    }
}

fn add_sub<F: Format>(env: &mut Env, a: u64, b: u64, negate: bool) -> u64 {
    let a = daz::<F>(env, a);
    let b = daz::<F>(env, b);
    if is_nan::<F>(a) || is_nan::<F>(b) {
        return propagate_nan::<F>(env, a, b);
    }
    let b = if negate { b ^ F::SIGN } else { b };
    let (ia, ib) = (is_inf::<F>(a), is_inf::<F>(b));
    if ia || ib {
        if ia && ib && sign::<F>(a) != sign::<F>(b) {
            env.raise(flag::IE);
            return F::INDEFINITE;
        }
        denormal_check::<F>(env, a, b);
        return if ia { a } else { b };
    }
    denormal_check::<F>(env, a, b);
    let (za, zb) = (is_zero::<F>(a), is_zero::<F>(b));
    if za || zb {
        if za && zb {
            // Exact zero sum: -0 only for (-0) + (-0), or when rounding down
            // (IEEE 754-2008 6.3).
            let s = if sign::<F>(a) == sign::<F>(b) {
                sign::<F>(a)
            } else {
                env.rc == Rounding::Down
            };
            return zero::<F>(s);
        }
        // x + 0 = x, but a denormal x is a tiny result: it underflows when
        // underflow is unmasked and flushes to zero under FTZ.
        let x = if za { b } else { a };
        if !is_denormal::<F>(x) {
            return x;
        }
        let u = unpack::<F>(x);
        return round_pack::<F>(env, u.sign, u.sig as u128, u.exp);
    }
    let ua = unpack::<F>(a);
    let ub = unpack::<F>(b);
    // Both significands move up 64 bits so the aligned one keeps enough
    // guard bits; the smaller-exponent operand is shifted right with jamming.
    let (hi, lo) = if ua.exp >= ub.exp { (ua, ub) } else { (ub, ua) };
    let shi = (hi.sig as u128) << 64;
    let slo = shr_jam((lo.sig as u128) << 64, (hi.exp - lo.exp) as u32);
    let exp = hi.exp - 64;
    if hi.sign == lo.sign {
        return round_pack::<F>(env, hi.sign, shi + slo, exp);
    }
    if shi == slo {
        return zero::<F>(env.rc == Rounding::Down);
    }
    if shi > slo {
        round_pack::<F>(env, hi.sign, shi - slo, exp)
    } else {
        round_pack::<F>(env, lo.sign, slo - shi, exp)
    }
}

/// `a × b`.
pub fn mul<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    let a = daz::<F>(env, a);
    let b = daz::<F>(env, b);
    if is_nan::<F>(a) || is_nan::<F>(b) {
        return propagate_nan::<F>(env, a, b);
    }
    let s = sign::<F>(a) != sign::<F>(b);
    let (ia, ib) = (is_inf::<F>(a), is_inf::<F>(b));
    let (za, zb) = (is_zero::<F>(a), is_zero::<F>(b));
    if ia || ib {
        if za || zb {
            env.raise(flag::IE);
            return F::INDEFINITE;
        }
        denormal_check::<F>(env, a, b);
        return inf::<F>(s);
    }
    denormal_check::<F>(env, a, b);
    if za || zb {
        return zero::<F>(s);
    }
    let ua = unpack::<F>(a);
    let ub = unpack::<F>(b);
    round_pack::<F>(env, s, ua.sig as u128 * ub.sig as u128, ua.exp + ub.exp)
}

/// `a ÷ b`.
pub fn div<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    let a = daz::<F>(env, a);
    let b = daz::<F>(env, b);
    if is_nan::<F>(a) || is_nan::<F>(b) {
        return propagate_nan::<F>(env, a, b);
    }
    let s = sign::<F>(a) != sign::<F>(b);
    let (ia, ib) = (is_inf::<F>(a), is_inf::<F>(b));
    let (za, zb) = (is_zero::<F>(a), is_zero::<F>(b));
    if (ia && ib) || (za && zb) {
        env.raise(flag::IE);
        return F::INDEFINITE;
    }
    if ia {
        denormal_check::<F>(env, a, b);
        return inf::<F>(s);
    }
    if ib {
        denormal_check::<F>(env, a, b);
        return zero::<F>(s);
    }
    if zb {
        env.raise(flag::ZE);
        return inf::<F>(s);
    }
    denormal_check::<F>(env, a, b);
    if za {
        return zero::<F>(s);
    }
    let ua = unpack::<F>(a);
    let ub = unpack::<F>(b);
    // The dividend moves up so the quotient has at least FRAC + 3 bits.
    const SHIFT: i32 = 72;
    let n = (ua.sig as u128) << SHIFT;
    let d = ub.sig as u128;
    let q = n / d;
    let q = q | (q * d != n) as u128;
    round_pack::<F>(env, s, q, ua.exp - ub.exp - SHIFT)
}

/// `√a`.
pub fn sqrt<F: Format>(env: &mut Env, a: u64) -> u64 {
    let a = daz::<F>(env, a);
    if is_nan::<F>(a) {
        return propagate_nan::<F>(env, a, a);
    }
    if is_zero::<F>(a) {
        return a;
    }
    if sign::<F>(a) {
        env.raise(flag::IE);
        return F::INDEFINITE;
    }
    if is_inf::<F>(a) {
        return a;
    }
    if is_denormal::<F>(a) {
        env.raise(flag::DE);
    }
    let u = unpack::<F>(a);
    // Radicand with an even exponent and about 124 bits, so the root has
    // about 62 (more than FRAC + 3).
    let k = if (u.exp - 72) & 1 == 0 { 72 } else { 73 };
    let rad = (u.sig as u128) << k;
    let r = isqrt(rad);
    let r = r | (r * r != rad) as u128;
    round_pack::<F>(env, false, r, (u.exp - k) / 2)
}

/// The integer square root, `⌊√x⌋`, for `x < 2^127`.
fn isqrt(x: u128) -> u128 {
    if x == 0 {
        return 0;
    }
    // Start above the root (a power of two), then Newton's iteration
    // decreases monotonically to ⌊√x⌋ (Crandall & Pomerance, "Prime
    // Numbers", algorithm 9.2.11).
    let bits = 128 - x.leading_zeros();
    let mut r = 1u128 << bits.div_ceil(2);
    loop {
        let next = (r + x / r) >> 1;
        if next >= r {
            return r;
        }
        r = next;
    }
}

#[cfg(test)]
mod tests {
    use super::isqrt;

    #[test]
    fn integer_square_root() {
        for x in [0u128, 1, 2, 3, 4, 15, 16, 17, 1 << 100, (1 << 126) + 12345] {
            let r = isqrt(x);
            assert!(r * r <= x && (r + 1) * (r + 1) > x, "{x}");
        }
    }
}
