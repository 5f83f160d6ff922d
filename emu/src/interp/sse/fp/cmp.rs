//! Comparisons, minimum and maximum (SDM Vol. 2 CMPPS, COMISS, UCOMISS,
//! MINPS, MAXPS).

use super::*;

/// The outcome of comparing two values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// a < b.
    Less,
    /// a = b (including +0 = -0).
    Equal,
    /// a > b.
    Greater,
    /// At least one is a NaN.
    Unordered,
}

/// Compares `a` with `b`. An SNaN raises IE; a QNaN raises IE too unless the
/// comparison is `quiet` (UCOMISS, the EQ/NEQ/ORD/UNORD predicates). DE for
/// a denormal operand when both are ordered.
pub fn compare<F: Format>(env: &mut Env, a: u64, b: u64, quiet: bool) -> Relation {
    if is_nan::<F>(a) || is_nan::<F>(b) {
        if !quiet || is_snan::<F>(a) || is_snan::<F>(b) {
            env.raise(flag::IE);
        }
        return Relation::Unordered;
    }
    let a = denormal_operand::<F>(env, a);
    let b = denormal_operand::<F>(env, b);
    order::<F>(a, b)
}

/// DAZ, or DE, for an ordered operand.
#[inline(always)]
fn denormal_operand<F: Format>(env: &mut Env, x: u64) -> u64 {
    if is_denormal::<F>(x) {
        if env.daz {
            return x & F::SIGN;
        }
        env.raise(flag::DE);
    }
    x
}

/// Orders two non-NaN encodings.
#[inline(always)]
fn order<F: Format>(a: u64, b: u64) -> Relation {
    if a == b || (a | b) & !F::SIGN == 0 {
        return Relation::Equal;
    }
    let (sa, sb) = (sign::<F>(a), sign::<F>(b));
    if sa != sb {
        return if sa {
            Relation::Less
        } else {
            Relation::Greater
        };
    }
    // Same sign: magnitudes order as integers.
    if (a < b) != sa {
        Relation::Less
    } else {
        Relation::Greater
    }
}

/// MINPS and friends: `a < b ? a : b`, where any NaN operand (IE, even for a
/// QNaN) and equal zeros give the second operand, unchanged but for DAZ.
pub fn min<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    min_max::<F>(env, a, b, Relation::Less)
}

/// MAXPS and friends: `a > b ? a : b`, with MIN's special cases.
pub fn max<F: Format>(env: &mut Env, a: u64, b: u64) -> u64 {
    min_max::<F>(env, a, b, Relation::Greater)
}

fn min_max<F: Format>(env: &mut Env, a: u64, b: u64, pick_a: Relation) -> u64 {
    // DAZ applies before anything else: the second operand returned for a
    // NaN is flushed too.
    let a = daz::<F>(env, a);
    let b = daz::<F>(env, b);
    if is_nan::<F>(a) || is_nan::<F>(b) {
        env.raise(flag::IE);
        return b;
    }
    let a = denormal_operand::<F>(env, a);
    let b = denormal_operand::<F>(env, b);
    if order::<F>(a, b) == pick_a {
        a
    } else {
        b
    }
}
