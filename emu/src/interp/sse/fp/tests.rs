//! Tests of the float core: hand-checked special cases, and properties against
//! the host's IEEE arithmetic (round to nearest) and an exact reference for
//! the directed modes.

use super::*;
use proptest::prelude::*;

fn env() -> Env {
    Env::new(mxcsr::RESET)
}

fn env_rc(rc: u32) -> Env {
    Env::new(mxcsr::RESET | rc << mxcsr::RC_SHIFT)
}

const F32_INDEF: u64 = 0xffc0_0000;

#[test]
fn nan_rules() {
    let mut e = env();
    // First operand's NaN wins, quieted; IE for an SNaN anywhere.
    assert_eq!(add::<F32>(&mut e, 0x7f80_0001, 0x7fc0_0002), 0x7fc0_0001);
    assert_eq!(e.flags, flag::IE);
    let mut e = env();
    assert_eq!(add::<F32>(&mut e, 0x3f80_0000, 0xffc0_0005), 0xffc0_0005);
    assert_eq!(e.flags, 0);
    let mut e = env();
    assert_eq!(sub::<F32>(&mut e, 0x3f80_0000, 0x7fa0_0000), 0x7fe0_0000);
    assert_eq!(e.flags, flag::IE);
    // Invalid operations give the default NaN.
    let mut e = env();
    assert_eq!(sub::<F32>(&mut e, 0x7f80_0000, 0x7f80_0000), F32_INDEF);
    assert_eq!(mul::<F32>(&mut e, 0, 0xff80_0000), F32_INDEF);
    assert_eq!(div::<F32>(&mut e, 0x8000_0000, 0), F32_INDEF);
    assert_eq!(sqrt::<F64>(&mut e, 0xbff0_0000_0000_0000), F64::INDEFINITE);
    assert_eq!(e.flags, flag::IE);
}

#[test]
fn zero_signs() {
    let mut e = env();
    assert_eq!(add::<F32>(&mut e, 0x3f80_0000, 0xbf80_0000), 0);
    let mut d = env_rc(1);
    assert_eq!(add::<F32>(&mut d, 0x3f80_0000, 0xbf80_0000), 0x8000_0000);
    assert_eq!(add::<F32>(&mut e, 0x8000_0000, 0x8000_0000), 0x8000_0000);
    assert_eq!(add::<F32>(&mut e, 0x8000_0000, 0), 0);
    assert_eq!(sqrt::<F32>(&mut e, 0x8000_0000), 0x8000_0000);
    assert_eq!(e.flags, 0);
}

#[test]
fn divide_by_zero_and_denormals() {
    let mut e = env();
    assert_eq!(div::<F32>(&mut e, 0xbf80_0000, 0), 0xff80_0000);
    assert_eq!(e.flags, flag::ZE);
    let mut e = env();
    assert_eq!(div::<F32>(&mut e, 1, 0), 0x7f80_0000);
    assert_eq!(e.flags, flag::ZE, "zero-divide takes precedence over DE");
    let mut e = env();
    assert_eq!(mul::<F32>(&mut e, 1, 0x3f80_0000), 1);
    assert_eq!(e.flags, flag::DE);
    let mut e = Env::new(mxcsr::RESET | mxcsr::DAZ);
    assert_eq!(mul::<F32>(&mut e, 0x8000_0001, 0x3f80_0000), 0x8000_0000);
    assert_eq!(e.flags, 0);
}

#[test]
fn overflow_and_underflow() {
    let max = F32::MAX;
    let mut e = env();
    assert_eq!(mul::<F32>(&mut e, max, 0x4000_0000), 0x7f80_0000);
    assert_eq!(e.flags, flag::OE | flag::PE);
    let mut z = env_rc(3);
    assert_eq!(mul::<F32>(&mut z, max, 0x4000_0000), max);
    // 2^-126 * 0.5 = 2^-127: exact denormal, no UE while masked.
    let mut e = env();
    assert_eq!(mul::<F32>(&mut e, 0x0080_0000, 0x3f00_0000), 0x0040_0000);
    assert_eq!(e.flags, 0);
    // Unmasked, a tiny exact result still underflows.
    let mut u = Env::new(mxcsr::RESET & !(flag::UE << mxcsr::MASK_SHIFT));
    mul::<F32>(&mut u, 0x0080_0000, 0x3f00_0000);
    assert_eq!(u.flags, flag::UE);
    // Inexact tiny result: UE and PE; with FTZ, a zero.
    let mut e = env();
    assert_eq!(mul::<F32>(&mut e, 0x0080_0001, 0x3f00_0000), 0x0040_0000);
    assert_eq!(e.flags, flag::UE | flag::PE);
    let mut f = Env::new(mxcsr::RESET | mxcsr::FTZ);
    assert_eq!(mul::<F32>(&mut f, 0x8080_0000, 0x3f00_0000), 0x8000_0000);
    assert_eq!(f.flags, flag::UE | flag::PE);
    // Tininess after rounding: 2^-126 (1 + 2^-23)(1 - 2^-23) = 2^-126 (1 -
    // 2^-46) rounds up to 2^-126 at 24 bits, so it is not tiny; the result
    // is inexact only.
    let mut e = env();
    let r = mul::<F32>(&mut e, 0x0080_0001, 0x3f7f_fffe);
    assert_eq!(r, 0x0080_0000);
    assert_eq!(e.flags, flag::PE);
}

#[test]
fn conversions() {
    let mut e = env();
    assert_eq!(
        to_int::<F32>(&mut e, 0x4f00_0000, 32, Rounding::Nearest),
        0x8000_0000
    );
    assert_eq!(e.flags, flag::IE);
    let mut e = env();
    assert_eq!(
        to_int::<F32>(&mut e, 0xcf00_0000, 32, Rounding::Nearest),
        0x8000_0000
    );
    assert_eq!(e.flags, 0);
    let mut e = env();
    assert_eq!(
        to_int::<F64>(&mut e, (-2.5f64).to_bits(), 32, Rounding::Nearest),
        0xffff_fffe
    );
    assert_eq!(
        to_int::<F64>(&mut e, (-2.5f64).to_bits(), 64, Rounding::Zero),
        (-2i64) as u64
    );
    assert_eq!(e.flags, flag::PE);
    let mut e = env();
    assert_eq!(from_int::<F32>(&mut e, 16_777_217), 0x4b80_0000);
    assert_eq!(e.flags, flag::PE);
    let mut e = env();
    assert_eq!(f64_to_f32(&mut e, 0x7ff0_0000_0000_0001), 0x7fc0_0000);
    assert_eq!(e.flags, flag::IE);
    assert_eq!(f32_to_f64(&mut e, 0xff80_0001), 0xfff8_0000_2000_0000);
    let mut e = env();
    assert_eq!(
        round_to_integral::<F32>(&mut e, 0xbe99_999a, Rounding::Nearest, false),
        0x8000_0000
    );
    assert_eq!(e.flags, flag::PE);
}

#[test]
fn min_max_rules() {
    let mut e = env();
    assert_eq!(max::<F32>(&mut e, 0, 0x8000_0000), 0x8000_0000);
    assert_eq!(min::<F32>(&mut e, 0x8000_0000, 0), 0);
    assert_eq!(e.flags, 0);
    assert_eq!(max::<F32>(&mut e, 0x7fc0_0000, 0x3f80_0000), 0x3f80_0000);
    assert_eq!(e.flags, flag::IE);
    let mut e = env();
    assert_eq!(min::<F32>(&mut e, 0x3f80_0000, 0x7f80_0001), 0x7f80_0001);
    assert_eq!(e.flags, flag::IE);
}

/// An arbitrary encoding biased toward the interesting classes.
fn bits32() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (any::<bool>(), 0u32..0x80_0000).prop_map(|(s, f)| (s as u32) << 31 | f),
        (any::<bool>(), 0u32..8, 0u32..0x80_0000)
            .prop_map(|(s, e, f)| (s as u32) << 31 | (e + 0x7e) << 23 | f),
    ]
}

/// A normal binary32 of moderate exponent: products stay in range.
fn normal32() -> impl Strategy<Value = u32> {
    (any::<bool>(), 70u32..190, 0u32..0x80_0000)
        .prop_map(|(s, e, f)| (s as u32) << 31 | e << 23 | f)
}

fn bits64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (any::<bool>(), 0u64..1 << 52).prop_map(|(s, f)| (s as u64) << 63 | f),
        (any::<bool>(), 0u64..8, 0u64..1 << 52)
            .prop_map(|(s, e, f)| (s as u64) << 63 | (e + 0x3fe) << 52 | f),
    ]
}

/// The host's IEEE result, with NaNs compared as "any NaN".
fn same32(ours: u64, host: f32) -> bool {
    let h = host.to_bits() as u64;
    if host.is_nan() {
        is_nan::<F32>(ours)
    } else {
        ours == h
    }
}

fn same64(ours: u64, host: f64) -> bool {
    if host.is_nan() {
        is_nan::<F64>(ours)
    } else {
        ours == host.to_bits()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn f32_matches_host_nearest(a in bits32(), b in bits32()) {
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        let (a, b) = (a as u64, b as u64);
        let mut e = env();
        prop_assert!(same32(add::<F32>(&mut e, a, b), x + y));
        prop_assert!(same32(sub::<F32>(&mut e, a, b), x - y));
        prop_assert!(same32(mul::<F32>(&mut e, a, b), x * y));
        prop_assert!(same32(div::<F32>(&mut e, a, b), x / y));
        prop_assert!(same32(sqrt::<F32>(&mut e, a), x.sqrt()));
        prop_assert!(same64(f32_to_f64(&mut e, a), x as f64));
    }

    #[test]
    fn f64_matches_host_nearest(a in bits64(), b in bits64()) {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let mut e = env();
        prop_assert!(same64(add::<F64>(&mut e, a, b), x + y));
        prop_assert!(same64(sub::<F64>(&mut e, a, b), x - y));
        prop_assert!(same64(mul::<F64>(&mut e, a, b), x * y));
        prop_assert!(same64(div::<F64>(&mut e, a, b), x / y));
        prop_assert!(same64(sqrt::<F64>(&mut e, a), x.sqrt()));
        prop_assert!(same32(f64_to_f32(&mut e, a), x as f32));
        let i = a as i64;
        prop_assert!(same64(from_int::<F64>(&mut e, i), i as f64));
        prop_assert!(same32(from_int::<F32>(&mut e, i), i as f32));
    }

    /// Directed rounding of binary32 products, which binary64 holds exactly:
    /// the result brackets the exact value as the mode requires, and PE is
    /// raised exactly when they differ.
    #[test]
    fn f32_directed_products(a in normal32(), b in normal32(), rc in 1u32..4) {
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        let exact = x as f64 * y as f64;
        prop_assume!(exact.is_finite() && !x.is_nan() && !y.is_nan());
        prop_assume!(exact == 0.0 || (exact.abs() >= f32::MIN_POSITIVE as f64 && exact.abs() <= f32::MAX as f64));
        let mut e = env_rc(rc);
        let r = f32::from_bits(mul::<F32>(&mut e, a as u64, b as u64) as u32) as f64;
        let inexact = r != exact;
        prop_assert_eq!(e.flags & flag::PE != 0, inexact);
        match rc {
            1 => prop_assert!(r <= exact && (f32::from_bits((r as f32).to_bits()) as f64) <= exact),
            2 => prop_assert!(r >= exact),
            _ => prop_assert!(r.abs() <= exact.abs()),
        }
        // And it is the nearest such value: one step further violates the bound.
        let step = |v: f32, up: bool| {
            let b = v.to_bits();
            if v == 0.0 { return if up { f32::from_bits(1) } else { -f32::from_bits(1) }; }
            f32::from_bits(if (v > 0.0) == up { b + 1 } else { b - 1 })
        };
        let rf = r as f32;
        match rc {
            1 => prop_assert!((step(rf, true) as f64) > exact),
            2 => prop_assert!((step(rf, false) as f64) < exact),
            _ => prop_assert!(exact == 0.0 || (step(rf, exact > 0.0) as f64).abs() > exact.abs()),
        }
    }
}
