//! Property tests of the soft-float against independent references: the
//! host's IEEE double and single arithmetic (round to nearest) for results
//! the x87 computes under precision control 53 and 24, exact integer
//! arithmetic for remainders and conversions, and the ordering of the four
//! rounding modes.

use super::arith::{add, compare_ordered, div, mul, sqrt, sub};
use super::convert::{from_f32, from_f64, from_i64, to_f32, to_f64, to_int};
use super::rem::remainder;
use super::{exc, Env, Fx, Pc, Rc, F80};
use core::cmp::Ordering;
use proptest::prelude::*;

fn env(rc: Rc, pc: Pc) -> Env {
    Env {
        rc,
        pc,
        masks: exc::ALL,
    }
}

/// Finite doubles, a good share of them near each other or near 1.
fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1e6f64..1e6f64),
        (0u64..1 << 20).prop_map(|m| f64::from_bits(0x3ff0_0000_0000_0000 | m)),
    ]
    .prop_filter("finite", |x| x.is_finite())
}

fn single() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite", |x| x.is_finite())
}

/// The x87 result, rounded to double, under PC = 53 and round to nearest.
fn x87_double(op: u8, a: f64, b: f64) -> (f64, Fx) {
    let mut fx = Fx::default();
    let e = env(Rc::Nearest, Pc::Double);
    let (x, y) = (
        from_f64(a.to_bits(), &mut fx),
        from_f64(b.to_bits(), &mut fx),
    );
    let r = match op {
        0 => add(x, y, e, &mut fx),
        1 => sub(x, y, e, &mut fx),
        2 => mul(x, y, e, &mut fx),
        3 => div(x, y, e, &mut fx),
        _ => sqrt(x, e, &mut fx),
    };
    let mut f2 = Fx::default();
    (f64::from_bits(to_f64(r, e, &mut f2)), fx)
}

fn host_double(op: u8, a: f64, b: f64) -> f64 {
    match op {
        0 => a + b,
        1 => a - b,
        2 => a * b,
        3 => a / b,
        _ => a.sqrt(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// With PC = 53 the x87 rounds once to 53 bits; wherever the result is a
    /// normal double, that is exactly the IEEE double result.
    #[test]
    fn precision_53_is_ieee_double(op in 0u8..5, a in double(), b in double()) {
        let h = host_double(op, a, b);
        prop_assume!(h.is_normal() || h == 0.0);
        let (x, _) = x87_double(op, a, b);
        prop_assert_eq!(x.to_bits(), h.to_bits(), "op {} on {:e} {:e}", op, a, b);
    }

    /// The same for PC = 24 against IEEE single.
    #[test]
    fn precision_24_is_ieee_single(op in 0u8..5, a in single(), b in single()) {
        let h = match op {
            0 => a + b,
            1 => a - b,
            2 => a * b,
            3 => a / b,
            _ => a.sqrt(),
        };
        prop_assume!(h.is_normal() || h == 0.0);
        let mut fx = Fx::default();
        let e = env(Rc::Nearest, Pc::Single);
        let (x, y) = (from_f32(a.to_bits(), &mut fx), from_f32(b.to_bits(), &mut fx));
        let r = match op {
            0 => add(x, y, e, &mut fx),
            1 => sub(x, y, e, &mut fx),
            2 => mul(x, y, e, &mut fx),
            3 => div(x, y, e, &mut fx),
            _ => sqrt(x, e, &mut fx),
        };
        let mut f2 = Fx::default();
        prop_assert_eq!(to_f32(r, e, &mut f2), h.to_bits());
        if h.is_normal() {
            // Already rounded to 24 bits, so the store to single is exact.
            prop_assert_eq!(f2.flags & exc::PE, 0);
        }
    }

    /// Directed roundings bracket the exact result: RD <= RN, RZ <= RU;
    /// RD == RU exactly when no precision exception was raised; RZ is RD
    /// for positive and RU for negative results; RN is one of the two.
    #[test]
    fn rounding_modes_bracket(op in 0u8..4, a in double(), b in double(), pc in 0u16..3) {
        let pc = Pc::from_bits([0, 2, 3][pc as usize]);
        let run = |rc| {
            let mut fx = Fx::default();
            let (x, y) = (from_f64(a.to_bits(), &mut fx), from_f64(b.to_bits(), &mut fx));
            let e = env(rc, pc);
            let r = match op {
                0 => add(x, y, e, &mut fx),
                1 => sub(x, y, e, &mut fx),
                2 => mul(x, y, e, &mut fx),
                _ => div(x, y, e, &mut fx),
            };
            (r, fx)
        };
        let (rd, fd) = run(Rc::Down);
        let (ru, fu) = run(Rc::Up);
        let (rn, _) = run(Rc::Nearest);
        let (rz, _) = run(Rc::Zero);
        prop_assume!(!rd.is_nan() && !ru.is_nan());
        prop_assert_ne!(compare_ordered(rd, ru), Ordering::Greater);
        let exact = fd.flags & exc::PE == 0;
        prop_assert_eq!(exact, fu.flags & exc::PE == 0);
        if exact {
            prop_assert_eq!(rd, ru);
        } else {
            prop_assert_ne!(rd, ru);
        }
        prop_assert!(rn == rd || rn == ru);
        let toward_zero = if rd.sign() && !rd.is_zero() { ru } else { rd };
        if !(rd.is_zero() && ru.is_zero()) {
            prop_assert_eq!(rz.abs(), toward_zero.abs());
        }
    }

    /// FPREM and FPREM1 on integers agree with integer division.
    #[test]
    fn remainder_of_integers(a in -1_000_000_000i64..1_000_000_000, b in 1i64..100_000, neg in any::<bool>()) {
        let b = if neg { -b } else { b };
        let mut fx = Fx::default();
        let e = env(Rc::Nearest, Pc::Extended);
        let r = remainder(from_i64(a), from_i64(b), false, e, &mut fx);
        let q = a / b;
        prop_assert_eq!(r.value, if a % b == 0 { F80::ZERO.with_sign(a < 0) } else { from_i64(a % b) });
        prop_assert_eq!(r.quotient, Some(q.unsigned_abs()));
        let r1 = remainder(from_i64(a), from_i64(b), true, e, &mut fx);
        // Nearest quotient, ties to even.
        let ra = a.rem_euclid(b.abs());
        let half = b.abs();
        let r_near = if 2 * ra > half || (2 * ra == half && ((a - ra) / b).rem_euclid(2) == 1) {
            ra - b.abs()
        } else {
            ra
        };
        let want = if r_near == 0 { F80::ZERO.with_sign(a < 0) } else { from_i64(r_near) };
        prop_assert_eq!(r1.value, want, "{} rem1 {}", a, b);
        prop_assert_eq!(fx.flags, 0);
    }

    /// Integers survive FILD/FISTP; doubles survive FLD/FSTP.
    #[test]
    fn conversions_round_trip(i in any::<i64>(), d in double()) {
        let mut fx = Fx::default();
        let e = env(Rc::Nearest, Pc::Extended);
        prop_assert_eq!(to_int(from_i64(i), 64, false, e, &mut fx), i as u64);
        prop_assert_eq!(to_f64(from_f64(d.to_bits(), &mut fx), e, &mut fx), d.to_bits());
        prop_assert_eq!(fx.flags & !exc::DE, 0);
    }
}
