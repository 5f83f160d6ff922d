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

/// An independent, per-register reading of SDM Vol. 3C 27.3.1.2 for a guest that
/// is not virtual-8086, with flat 4-GByte limits (so G must be 1 where checked).
mod reference {
    fn bits(ar: u32) -> (u32, bool, u32, bool, bool) {
        let typ = ar & 0xf;
        let s = ar & 0x10 != 0;
        let dpl = (ar >> 5) & 3;
        let p = ar & 0x80 != 0;
        let unusable = ar & 0x1_0000 != 0;
        (typ, s, dpl, p, unusable)
    }
    fn common(ar: u32) -> bool {
        let (_, s, _, p, _) = bits(ar);
        let g = ar & 0x8000 != 0;
        s && p && ar & 0xf00 == 0 && g && ar & 0xfffe_0000 == 0
    }
    pub fn cs(ar: u32, ss_ar: u32, ug: bool, ia32e: bool) -> bool {
        let (typ, _, dpl, _, _) = bits(ar);
        let (_, _, ss_dpl, _, _) = bits(ss_ar);
        let type_ok = matches!(typ, 9 | 11 | 13 | 15) || (ug && typ == 3);
        let dpl_ok = match typ {
            3 => dpl == 0,
            9 | 11 => dpl == ss_dpl,
            13 | 15 => dpl <= ss_dpl,
            _ => true,
        };
        let l_db = !(ia32e && ar & 0x2000 != 0 && ar & 0x4000 != 0);
        type_ok && dpl_ok && common(ar) && l_db
    }
    pub fn ss(ar: u32, rpl: u32, cs_ar: u32, ug: bool) -> bool {
        let (typ, _, dpl, _, unusable) = bits(ar);
        let rpl_ok = ug || dpl == rpl;
        let zero_ok = cs_ar & 0xf != 3 || dpl == 0;
        rpl_ok && zero_ok && (unusable || (matches!(typ, 3 | 7) && common(ar)))
    }
    pub fn data(ar: u32, rpl: u32, ug: bool) -> bool {
        let (typ, _, dpl, _, unusable) = bits(ar);
        if unusable {
            return true;
        }
        let accessed = typ & 1 != 0;
        let readable = typ & 8 == 0 || typ & 2 != 0;
        let dpl_ok = ug || typ > 11 || dpl >= rpl;
        accessed && readable && dpl_ok && common(ar)
    }
}

fn access_rights() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => proptest::sample::select(vec![0xa09bu32, 0xc093, 0xc09b, 0xa093, 0xc0f3, 0xa0ff, 0x1_0000, 0xc09f]),
        4 => (0u32..0x100).prop_map(|low| 0xc000 | low),
        1 => 0u32..0x2_0000,
        1 => any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn segment_checks_agree_with_an_independent_reading_of_the_sdm(
        cs_ar in access_rights(),
        ss_ar in access_rights(),
        ds_ar in access_rights(),
        cs_rpl in 0u64..4,
        ss_rpl in 0u64..4,
        ds_rpl in 0u64..4,
        ug: bool,
    ) {
        let mut m = Machine::intel();
        if ug {
            m.enable_unrestricted();
        }
        m.set(Field::GuestCsAccessRights, cs_ar as u64)
            .set(Field::GuestSsAccessRights, ss_ar as u64)
            .set(Field::GuestDsAccessRights, ds_ar as u64)
            .set(Field::GuestCsSelector, 0x08 | cs_rpl)
            .set(Field::GuestSsSelector, 0x10 | ss_rpl)
            .set(Field::GuestDsSelector, 0x10 | ds_rpl);
        let expect = (ug || cs_rpl == ss_rpl)
            && reference::cs(cs_ar, ss_ar, ug, true)
            && reference::ss(ss_ar, ss_rpl as u32, cs_ar, ug)
            && reference::data(ds_ar, ds_rpl as u32, ug);
        let v = m.vmcs().clone();
        let got = check(&m.caps.clone(), &v, true, m.state.current_ptr(), &mut m.mem);
        match got {
            Ok(()) => prop_assert!(expect, "checks passed, the reference says invalid"),
            Err(fc) => {
                prop_assert!(!expect, "checks failed with {}, the reference says valid", fc);
                prop_assert_eq!(fc.id.section(), "27.3.1.2");
            }
        }
    }
}
