//! The segment-register checks (SDM Vol. 3C 27.3.1.2) read each register once;
//! on random edits of the known-good VMCS they give exactly the outcome (the
//! same first failed check, naming the same field) of the reference that reads
//! every field where each rule uses it.

use super::seg_reference;
use crate::caps::{VmxCaps, VmxFeatures};
use crate::controls::{EntryControls, Proc2Controls};
use crate::entry::view::{Ctls, CHECK_ORDER, LDTR, TR};
use crate::entry::{guest_seg, EntryEnv};
use crate::mem::FlatMem;
use crate::testkit::good_vmcs;
use crate::vmcs::{Field, Vmcs};
use mmu::{Cr0, Rflags};
use proptest::prelude::*;

/// Values that make the rules' edge cases likely: usable, unusable, V86 and
/// real-mode access rights, limits either side of the granularity rule,
/// canonical and non-canonical bases, selectors with TI and RPL set.
fn value(row: usize) -> impl Strategy<Value = u64> {
    match row {
        0 => prop_oneof![
            Just(0u64),
            Just(0x8),
            Just(0x10),
            Just(0x13),
            Just(0x1b),
            Just(0x2c),
            Just(0x1000),
            any::<u16>().prop_map(u64::from),
        ]
        .boxed(),
        1 => prop_oneof![
            Just(0u64),
            Just(0x1_0000),
            Just(0x10000 << 4),
            Just(0xffff_ffff),
            Just(0x1_0000_0000),
            Just(0x0000_8000_0000_0000),
            Just(0xffff_8000_0000_0000),
            any::<u64>(),
        ]
        .boxed(),
        2 => prop_oneof![
            Just(0u64),
            Just(0xfff),
            Just(0xffff),
            Just(0xf_ffff),
            Just(0xfff0_0000),
            Just(0xffff_ffff),
            any::<u32>().prop_map(u64::from),
        ]
        .boxed(),
        _ => prop_oneof![
            3 => access_rights(),
            1 => prop_oneof![
            Just(0xa09bu64),
            Just(0xc093),
            Just(0xc09b),
            Just(0xa093),
            Just(0xc0f3),
            Just(0xf3),
            Just(0x93),
            Just(0x8b),
            Just(0x83),
            Just(0x82),
            Just(0x1_0000),
            Just(0xc09f),
            any::<u32>().prop_map(u64::from),
            ],
        ]
        .boxed(),
    }
}

/// Access rights built from their sub-fields: any type, S, DPL, P, the
/// flag bits, and now and then the unusable bit or a reserved bit.
fn access_rights() -> impl Strategy<Value = u64> {
    (
        0u64..16,
        any::<bool>(),
        0u64..4,
        prop::bool::weighted(0.9),
        0u64..16,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(typ, s, dpl, p, flags, unusable, r11_8, r31_17)| {
            typ | u64::from(s) << 4
                | dpl << 5
                | u64::from(p) << 7
                | flags << 12
                | u64::from(unusable) << 16
                | u64::from(r11_8) << 9
                | u64::from(r31_17) << 20
        })
}

/// One edit: a register (the six in check order, LDTR, TR), which of its four
/// fields, and the value.
fn edit() -> impl Strategy<Value = (usize, usize, u64)> {
    (0usize..8, 0usize..4).prop_flat_map(|(r, f)| value(f).prop_map(move |v| (r, f, v)))
}

fn apply(v: &mut Vmcs, (r, f, x): (usize, usize, u64)) {
    let s = match r {
        0..=5 => CHECK_ORDER[r],
        6 => LDTR,
        _ => TR,
    };
    let field = [s.selector, s.base, s.limit, s.ar][f];
    v.set(field, x);
}

fn caps(all: bool) -> VmxCaps {
    if all {
        VmxCaps::new(VmxFeatures::everything())
    } else {
        VmxCaps::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 20_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_read_per_register_agrees_with_the_reference(
        edits in proptest::collection::vec(edit(), 0..5),
        v86: bool,
        pe: bool,
        ia32e: bool,
        unrestricted: bool,
        all: bool,
    ) {
        const IA32E: u64 = EntryControls::IA32E_MODE_GUEST.bits() as u64;
        const UG: u64 = Proc2Controls::UNRESTRICTED_GUEST.bits() as u64;
        let caps = caps(all);
        let mut v = good_vmcs(&caps);
        if v86 {
            // Start from a virtual-8086 guest's segments (base = selector *
            // 16, limit FFFFH, access rights F3H), so edits reach past the
            // base rule.
            for (i, s) in crate::entry::view::SEGS.iter().enumerate() {
                let sel = 0x1000 + 0x100 * i as u64;
                v.set(s.selector, sel);
                v.set(s.base, sel << 4);
                v.set(s.limit, 0xffff);
                v.set(s.ar, 0xf3);
            }
        }
        for e in edits {
            apply(&mut v, e);
        }
        let rflags = v.get(Field::GuestRflags);
        let vm = Rflags::VM.bits();
        v.set(Field::GuestRflags, if v86 { rflags | vm } else { rflags & !vm });
        let cr0 = v.get(Field::GuestCr0);
        let pe_bit = Cr0::PE.bits();
        v.set(Field::GuestCr0, if pe { cr0 | pe_bit } else { cr0 & !pe_bit });
        let entry = v.get(Field::EntryControls);
        v.set(Field::EntryControls, if ia32e { entry | IA32E } else { entry & !IA32E });
        let proc2 = v.get(Field::SecondaryProcBasedControls);
        v.set(Field::SecondaryProcBasedControls, if unrestricted { proc2 | UG } else { proc2 & !UG });
        let mut mem = FlatMem::new(0x1000);
        let mut env = EntryEnv {
            caps: &caps,
            vmcs: &v,
            ctls: Ctls::read(&v),
            lma: true,
            current_ptr: 0x2000,
            mem: &mut mem,
        };
        let new = guest_seg::segments(&mut env);
        let reference = seg_reference::segments(&mut env);
        prop_assert_eq!(new, reference);
    }

    /// The memoized checks (skipped when their inputs equal those of the last
    /// run that passed) give exactly the full checks' outcome on every entry
    /// of a sequence of random edits: to the segment fields, to the mode bits
    /// they depend on, and to fields they do not read.
    #[test]
    fn memoized_segment_checks_agree_with_the_full_checks(
        steps in proptest::collection::vec(
            (
                proptest::collection::vec(edit(), 0..3),
                0u8..8,
                any::<u64>(),
            ),
            1..8,
        ),
        all: bool,
    ) {
        const IA32E: u64 = EntryControls::IA32E_MODE_GUEST.bits() as u64;
        const UG: u64 = Proc2Controls::UNRESTRICTED_GUEST.bits() as u64;
        let caps = caps(all);
        let mut v = good_vmcs(&caps);
        let mut memo = guest_seg::SegCheckMemo::default();
        let mut mem = FlatMem::new(0x1000);
        for (edits, toggle, other) in steps {
            for e in edits {
                apply(&mut v, e);
            }
            // Now and then flip a mode bit the checks depend on, or change a
            // field they do not read.
            let flip = |v: &mut Vmcs, f: Field, bit: u64| v.set(f, v.get(f) ^ bit);
            match toggle {
                0 => flip(&mut v, Field::GuestRflags, Rflags::VM.bits()),
                1 => flip(&mut v, Field::GuestCr0, Cr0::PE.bits()),
                2 => flip(&mut v, Field::EntryControls, IA32E),
                3 => flip(&mut v, Field::SecondaryProcBasedControls, UG),
                4 => v.set(Field::GuestRip, other),
                _ => {}
            }
            let mut env = EntryEnv {
                caps: &caps,
                vmcs: &v,
                ctls: Ctls::read(&v),
                lma: true,
                current_ptr: 0x2000,
                mem: &mut mem,
            };
            let full = guest_seg::segments(&mut env);
            let memoized = guest_seg::segments_memo(&mut env, &mut memo);
            prop_assert_eq!(&memoized, &full);
            // A second entry with nothing changed: the memo answers.
            prop_assert_eq!(guest_seg::segments_memo(&mut env, &mut memo), full);
        }
    }
}

/// The memo answers only for the inputs that passed: breaking a segment
/// field after a passing run fails the next run.
#[test]
fn a_memoized_pass_does_not_hide_a_later_change() {
    let caps = caps(false);
    let mut v = good_vmcs(&caps);
    let mut memo = guest_seg::SegCheckMemo::default();
    let mut mem = FlatMem::new(0x1000);
    let mut run = |v: &Vmcs, memo: &mut guest_seg::SegCheckMemo| {
        let mut env = EntryEnv {
            caps: &caps,
            vmcs: v,
            ctls: Ctls::read(v),
            lma: true,
            current_ptr: 0x2000,
            mem: &mut mem,
        };
        guest_seg::segments_memo(&mut env, memo)
    };
    assert_eq!(run(&v, &mut memo), Ok(()));
    assert_eq!(run(&v, &mut memo), Ok(()));
    let tr_ar = v.get(TR.ar);
    v.set(TR.ar, tr_ar | 1 << 16);
    assert!(run(&v, &mut memo).is_err(), "TR unusable is caught");
    v.set(TR.ar, tr_ar);
    assert_eq!(run(&v, &mut memo), Ok(()));
}
