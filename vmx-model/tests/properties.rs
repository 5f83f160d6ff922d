//! Property tests of the VMX model's public API.

use mmu::{CpuMode, Cr0, Efer};
use proptest::prelude::*;
use std::collections::BTreeSet;
use vmx_model::entry::{check, CheckClass};
use vmx_model::exit::ExitReason;
use vmx_model::insn::{self, InsnCtx, LaunchOutcome, Outcome};
use vmx_model::testkit::Machine;
use vmx_model::vmcs::{Field, Kind, Width, FIELDS};
use vmx_model::{VmInstructionError as E, VmxCaps, VmxFeatures};

fn presets() -> [VmxFeatures; 3] {
    [
        VmxFeatures::intel(),
        VmxFeatures::everything(),
        VmxFeatures::first_generation(),
    ]
}

fn ctx(long: bool) -> InsnCtx {
    let c = InsnCtx::long_mode_cpl0();
    if long {
        c
    } else {
        InsnCtx {
            mode: CpuMode::Protected,
            cr0: Cr0::PE | Cr0::NE | Cr0::PG | Cr0::ET,
            efer: Efer::empty(),
            ..c
        }
    }
}

fn write(m: &mut Machine, c: &InsnCtx, enc: u64, v: u64) -> Outcome {
    insn::vmwrite(&mut m.state, &m.caps, c, &mut m.mem, enc, || Ok(v))
}

fn read(m: &mut Machine, c: &InsnCtx, enc: u64) -> Outcome<u64> {
    insn::vmread(&mut m.state, &m.caps, c, &mut m.mem, enc)
}

/// Every (encoding) that names a field of this processor, full and high.
fn valid_encodings(caps: &VmxCaps) -> BTreeSet<u64> {
    let mut s = BTreeSet::new();
    for info in FIELDS.iter().filter(|i| caps.field_exists(i.field)) {
        s.insert(info.encoding as u64);
        if info.width == Width::W64 {
            s.insert(info.encoding as u64 | 1);
        }
    }
    s
}

/// Rows of the VM-exit information fields that exist with every feature.
fn exit_info_rows() -> Vec<usize> {
    let caps = VmxCaps::new(VmxFeatures::everything());
    (0..FIELDS.len())
        .filter(|&r| FIELDS[r].kind == Kind::ExitInfo && caps.field_exists(FIELDS[r].field))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn vmwrite_then_vmread_returns_the_value_truncated_to_the_field(
        row in 0..FIELDS.len(),
        value: u64,
        long: bool,
        preset in 0usize..3,
    ) {
        let caps = VmxCaps::new(presets()[preset].clone());
        let info = &FIELDS[row];
        let mut m = Machine::new(caps.clone());
        let c = ctx(long);
        let enc = info.encoding as u64;
        let op_mask = if long { u64::MAX } else { 0xffff_ffff };
        if !caps.field_exists(info.field) {
            prop_assert_eq!(write(&mut m, &c, enc, value), Outcome::FailValid(E::UnsupportedComponent));
            prop_assert_eq!(read(&mut m, &c, enc), Outcome::FailValid(E::UnsupportedComponent));
            return Ok(());
        }
        if info.kind == Kind::ExitInfo && !caps.features.misc.vmwrite_any_field {
            let before = m.get(info.field);
            prop_assert_eq!(write(&mut m, &c, enc, value), Outcome::FailValid(E::VmwriteReadOnly));
            // VMfailValid itself writes the VM-instruction error field.
            let expect = if info.field == Field::VmInstructionError { 13 } else { before };
            prop_assert_eq!(m.get(info.field), expect);
            return Ok(());
        }
        prop_assert_eq!(write(&mut m, &c, enc, value), Outcome::Succeed(()));
        let stored = value & op_mask & info.width.mask();
        prop_assert_eq!(m.get(info.field), stored);
        prop_assert_eq!(read(&mut m, &c, enc), Outcome::Succeed(stored & op_mask));
        if info.width == Width::W64 {
            let high = value.rotate_left(17);
            prop_assert_eq!(write(&mut m, &c, enc | 1, high), Outcome::Succeed(()));
            let both = stored & 0xffff_ffff | (high & 0xffff_ffff) << 32;
            prop_assert_eq!(m.get(info.field), both);
            prop_assert_eq!(read(&mut m, &c, enc | 1), Outcome::Succeed(high & 0xffff_ffff));
        }
    }

    #[test]
    fn read_only_fields_fail_with_13_unless_misc_bit_29(
        row in proptest::sample::select(exit_info_rows()),
        value: u64,
        allow: bool,
    ) {
        let mut f = VmxFeatures::everything();
        f.misc.vmwrite_any_field = allow;
        let mut m = Machine::new(VmxCaps::new(f));
        let info = &FIELDS[row];
        let c = ctx(true);
        let out = write(&mut m, &c, info.encoding as u64, value);
        if allow {
            prop_assert_eq!(out, Outcome::Succeed(()));
        } else {
            prop_assert_eq!(out, Outcome::FailValid(E::VmwriteReadOnly));
            prop_assert_eq!(m.get(Field::VmInstructionError), 13);
        }
    }

    #[test]
    fn encodings_outside_the_table_are_unsupported_components(enc: u32, high_bits: u32, preset in 0usize..3) {
        let caps = VmxCaps::new(presets()[preset].clone());
        let valid = valid_encodings(&caps);
        let mut m = Machine::new(caps);
        let c = ctx(true);
        let enc = (high_bits as u64) << 32 | enc as u64;
        let expect_ok = valid.contains(&enc);
        let r = read(&mut m, &c, enc);
        prop_assert_eq!(matches!(r, Outcome::Succeed(_)), expect_ok, "{:#x}: {:?}", enc, r);
        if !expect_ok {
            prop_assert_eq!(r, Outcome::FailValid(E::UnsupportedComponent));
            prop_assert_eq!(write(&mut m, &c, enc, 0), Outcome::FailValid(E::UnsupportedComponent));
        }
    }

    #[test]
    fn a_random_vmcs_enters_or_fails_with_a_defined_outcome(
        mutations in proptest::collection::vec((0..FIELDS.len(), any::<u64>(), 0u8..4), 1..10),
        preset in 0usize..3,
        lma: bool,
    ) {
        let mut m = Machine::new(VmxCaps::new(presets()[preset].clone()));
        if !lma {
            m.ctx.efer = Efer::empty();
        }
        for (row, value, style) in mutations {
            let f = FIELDS[row].field;
            let old = m.get(f);
            let v = match style {
                0 => value,
                1 => old ^ (1 << (value % 64)),
                2 => old & value,
                _ => old | value & 0xffff,
            };
            m.set(f, v);
        }
        let before = m.vmcs().clone();
        let cur = m.state.current_ptr();
        let verdict = check(&m.caps.clone(), &before, lma, cur, &mut m.mem);
        match m.launch() {
            LaunchOutcome::FailValid(e, Some(fc)) => {
                prop_assert_eq!(Some(e), fc.id.class().error());
                prop_assert_eq!(m.get(Field::VmInstructionError), e.number() as u64);
                prop_assert_eq!(verdict, Err(fc));
            }
            LaunchOutcome::EntryFailed(f) => {
                prop_assert_eq!(m.get(Field::ExitReason) >> 31, 1);
                match f.check.id.class() {
                    CheckClass::Guest(q) => {
                        prop_assert_eq!(f.reason, ExitReason::EntryFailureGuestState);
                        prop_assert_eq!(f.qualification, q as u64);
                        prop_assert_eq!(verdict, Err(f.check));
                    }
                    CheckClass::MsrLoad => {
                        prop_assert_eq!(f.reason, ExitReason::EntryFailureMsrLoading);
                        prop_assert!(f.qualification >= 1);
                        prop_assert_eq!(verdict, Ok(()));
                    }
                    other => prop_assert!(false, "entry failure with class {:?}", other),
                }
                prop_assert!(!m.state.non_root);
            }
            LaunchOutcome::Entered(_) => {
                prop_assert_eq!(verdict, Ok(()));
                prop_assert!(m.state.non_root);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn checks_never_panic_on_arbitrary_field_values(values in proptest::collection::vec(any::<u64>(), FIELDS.len()), lma: bool) {
        let mut m = Machine::new(VmxCaps::new(VmxFeatures::everything()));
        for (info, v) in FIELDS.iter().zip(values) {
            m.set(info.field, v);
        }
        let v = m.vmcs().clone();
        let _ = check(&m.caps.clone(), &v, lma, 0x2000, &mut m.mem);
        let _ = m.launch();
    }
}
