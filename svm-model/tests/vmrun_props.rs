//! Property tests: any VMCB either runs (and then every check passes) or exits
//! with VMEXIT_INVALID naming exactly the checks an independent restatement of
//! the APM rules finds violated; nothing panics; VMCBs round-trip.

use mmu::Cr4;
use proptest::prelude::*;
use std::collections::BTreeSet;
use svm_model::checks::CheckId;
use svm_model::vmcb::{VmcbBuilder, VmcbField, VmcbImage, VmcbSeg, VMRUN_READ_END};
use svm_model::{
    vmexit, vmrun, CpuState, ExitCode, ExitInfo, PageMem, SvmAccess, SvmConfig, VmcbCache,
    VmrunOutcome,
};

const VMCB: u64 = 0x5000;
const HSAVE: u64 = 0x6000;

/// The APM 15.5.1 / 15.20 / 15.25.4 / 15.21.10 rules, restated from the manual
/// over raw bits, independently of `svm_model::checks`.
fn reference(cfg: &SvmConfig, img: &VmcbImage, host: &CpuState) -> BTreeSet<CheckId> {
    use CheckId::*;
    let mut out = BTreeSet::new();
    let g = |f| img.get(f);
    let bit = |v: u64, b: u32| v >> b & 1 == 1;
    let (cr0, cr3, cr4, efer) = (
        g(VmcbField::Cr0),
        g(VmcbField::Cr3),
        g(VmcbField::Cr4),
        g(VmcbField::Efer),
    );
    let top = 1u128 << cfg.widths.phys_bits;
    if !bit(efer, 12) {
        out.insert(EferSvme);
    }
    if !bit(cr0, 30) && bit(cr0, 29) {
        out.insert(Cr0CdNw);
    }
    if cr0 > u64::from(u32::MAX) {
        out.insert(Cr0High);
    }
    if u128::from(cr3) >= top {
        out.insert(Cr3Mbz);
    }
    if cr4 & !cfg.cr4_allowed != 0 {
        out.insert(Cr4Mbz);
    }
    if g(VmcbField::Dr6) > u64::from(u32::MAX) {
        out.insert(Dr6High);
    }
    if g(VmcbField::Dr7) > u64::from(u32::MAX) {
        out.insert(Dr7High);
    }
    if efer & !cfg.efer_allowed != 0 {
        out.insert(EferMbz);
    }
    if !cfg.long_mode && (bit(efer, 8) || bit(efer, 10)) {
        out.insert(EferLongModeUnsupported);
    }
    let lme_pg = bit(efer, 8) && bit(cr0, 31);
    let cs = img.seg(VmcbSeg::Cs).attrib as u64;
    if lme_pg && !bit(cr4, 5) {
        out.insert(LongModeNoPae);
    }
    if lme_pg && !bit(cr0, 0) {
        out.insert(LongModeNoPe);
    }
    if lme_pg && bit(cr4, 5) && bit(cs, 9) && bit(cs, 10) {
        out.insert(LongModeCsLD);
    }
    if !bit(g(VmcbField::InterceptMisc2), 0) {
        out.insert(VmrunIntercept);
    }
    if u128::from(g(VmcbField::MsrpmBasePa) & !0xfff) + 0x1fff >= top {
        out.insert(MsrpmBeyondMaxPhys);
    }
    if u128::from(g(VmcbField::IopmBasePa) & !0xfff) + 0x2fff >= top {
        out.insert(IopmBeyondMaxPhys);
    }
    let ev = g(VmcbField::EventInj);
    if bit(ev, 31) {
        let (typ, vector) = (ev >> 8 & 7, ev & 0xff);
        let exceptions = [
            0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 21, 28, 29, 30,
        ];
        if ![0, 2, 3, 4].contains(&typ) {
            out.insert(EventInjType);
        } else if typ == 3 && !exceptions.contains(&vector) {
            out.insert(EventInjVector);
        } else if typ == 3 && lme_pg && bit(cs, 9) && (vector == 4 || vector == 5) {
            out.insert(EventInjImpossible);
        }
    }
    if g(VmcbField::GuestAsid) == 0 {
        out.insert(AsidZero);
    }
    if cfg.cr4_allowed & Cr4::CET.bits() != 0 {
        if g(VmcbField::SCet) & 0x3c0 != 0 {
            out.insert(SCetReserved);
        }
        if bit(cr4, 23) && !bit(cr0, 16) {
            out.insert(CetWithoutWp);
        }
    }
    if cfg.features.np && bit(g(VmcbField::NestedCtl), 0) {
        if !bit(host.regs.cr0.bits(), 31) {
            out.insert(NpHostPagingDisabled);
        }
        if u128::from(g(VmcbField::NCr3)) >= top {
            out.insert(NCr3Mbz);
        }
        let pat = g(VmcbField::GPat);
        if (0..8).any(|i| matches!(pat >> (8 * i) & 0xff, 2 | 3 | 8..=255)) {
            out.insert(GPatInvalid);
        }
    }
    if cfg.features.vnmi
        && bit(g(VmcbField::VIntrControl), 26)
        && !bit(g(VmcbField::InterceptMisc1), 1)
    {
        out.insert(VNmiWithoutNmiIntercept);
    }
    out
}

fn cfg_strategy() -> impl Strategy<Value = SvmConfig> {
    prop_oneof![
        Just(SvmConfig::amd()),
        Just(SvmConfig::first_generation()),
        Just({
            let mut c = SvmConfig::amd();
            c.cr4_allowed |= Cr4::CET.bits();
            c
        }),
        Just(SvmConfig {
            long_mode: false,
            ..SvmConfig::amd()
        }),
    ]
}

fn host_strategy() -> impl Strategy<Value = CpuState> {
    any::<bool>().prop_map(|paging| {
        let mut h = CpuState::long_mode_host(0xffff_8000_0000_4321);
        if !paging {
            h.regs.cr0.remove(mmu::Cr0::PG);
            h.regs.efer.remove(mmu::Efer::LMA);
        }
        h
    })
}

/// A value for a field: anything, small, or one bit flipped.
fn value_strategy() -> impl Strategy<Value = (usize, u8, u64)> {
    (0..VmcbField::ALL.len(), 0u8..4, any::<u64>())
}

fn mutated_vmcb() -> impl Strategy<Value = VmcbImage> {
    (0..3usize, prop::collection::vec(value_strategy(), 0..6)).prop_map(|(base, muts)| {
        let mut img = match base {
            0 => VmcbBuilder::long_mode(),
            1 => VmcbBuilder::protected_mode(),
            _ => VmcbBuilder::real_mode(),
        }
        .build();
        for (i, kind, v) in muts {
            let f = VmcbField::ALL[i];
            let old = img.get(f);
            let new = match kind {
                0 => v,
                1 => v & 0xff,
                _ => old ^ (1 << (v % (8 * f.stored_width() as u64))),
            };
            img.set(f, new);
        }
        img
    })
}

fn random_vmcb() -> impl Strategy<Value = VmcbImage> {
    prop::collection::vec(any::<u8>(), 4096).prop_map(|v| {
        let bytes: [u8; 4096] = v.try_into().unwrap();
        VmcbImage::from_bytes(&bytes)
    })
}

fn check_vmrun(cfg: &SvmConfig, host: &CpuState, img: &VmcbImage) -> Result<(), TestCaseError> {
    let mut mem = PageMem::new();
    img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
    let mut cache = VmcbCache::default();
    let want = reference(cfg, img, host);
    mem.log.clear();
    let out = vmrun(cfg, host, VMCB, HSAVE, &mut mem, &mut cache);
    // Validate, then commit: VMRUN reads the VMCB and PDPEs before it writes
    // anything, and writes only the host save area and, on failure, the exit
    // fields of the VMCB.
    let first_write = mem.log.iter().position(|a| a.3).unwrap_or(mem.log.len());
    for (tag, pa, _, write) in &mem.log[first_write..] {
        prop_assert!(
            *write || *tag == SvmAccess::HostSaveRead,
            "{:?} read at {:#x} after the commit began",
            tag,
            pa
        );
        if *write && *tag == SvmAccess::VmcbWrite {
            prop_assert!(
                matches!(pa - VMCB, 0x70 | 0x78 | 0x80 | 0xa8),
                "VMCB write at {:#x}",
                pa
            );
        }
    }
    match out {
        VmrunOutcome::Entered(e) => {
            prop_assert!(want.is_empty(), "entered although {:?} fail", want);
            // Leave again with an arbitrary exit: never panics, host restored.
            let h = vmexit(
                cfg,
                &e.setup.controls,
                &e.state,
                e.setup.interrupt_shadow,
                &ExitInfo::new(ExitCode::VMEXIT_HLT),
                &mut mem,
                &mut cache,
            );
            prop_assert_eq!(h.state.rip, host.rip);
            prop_assert_eq!(h.state.regs.cr3, host.regs.cr3);
            prop_assert_eq!(h.state.cpl, 0);
        }
        VmrunOutcome::Invalid(inv) => {
            prop_assert_eq!(mem.peek_u64(VMCB + 0x70), u64::MAX);
            let got: BTreeSet<_> = inv
                .all
                .iter()
                .copied()
                .filter(|c| *c != CheckId::PdpteReserved)
                .collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(Some(&inv.check), inv.all.first());
            if inv.check == CheckId::PdpteReserved {
                prop_assert!(want.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_vmcbs_run_iff_all_checks_pass(
        cfg in cfg_strategy(), host in host_strategy(), img in mutated_vmcb()
    ) {
        check_vmrun(&cfg, &host, &img)?;
    }

    #[test]
    fn random_vmcbs_never_panic_and_exit_with_a_defined_code(
        cfg in cfg_strategy(), host in host_strategy(), img in random_vmcb()
    ) {
        check_vmrun(&cfg, &host, &img)?;
    }

    /// VMRUN reads only the VMCB below VMRUN_READ_END: whatever the bytes
    /// above hold in memory, and whatever the cache's spare buffer held, two
    /// rounds of VMRUN and #VMEXIT (the second with random clean bits and a
    /// changed field) give the same outcomes, the same memory below the read
    /// end, and the same cache.
    #[test]
    fn vmrun_outcome_ignores_the_bytes_it_does_not_read(
        cfg in cfg_strategy(),
        host in host_strategy(),
        img in mutated_vmcb(),
        above in random_vmcb(),
        clean in any::<u32>(),
        second in value_strategy(),
    ) {
        let run = |garbage: bool| {
            let mut img = img.clone();
            let mut cache = VmcbCache::default();
            if garbage {
                img.as_bytes_mut()[VMRUN_READ_END..]
                    .copy_from_slice(&above.as_bytes()[VMRUN_READ_END..]);
                cache.recycle(above.clone());
            }
            let mut mem = PageMem::new();
            img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
            let mut outs = Vec::new();
            for round in 0..2 {
                if round == 1 {
                    let (i, _, v) = second;
                    let f = VmcbField::ALL[i];
                    svm_model::vmcb::write_field(&mut mem, VMCB, f, v, SvmAccess::VmcbWrite);
                    svm_model::vmcb::write_field(
                        &mut mem, VMCB, VmcbField::VmcbClean, clean.into(), SvmAccess::VmcbWrite,
                    );
                }
                let out = vmrun(&cfg, &host, VMCB, HSAVE, &mut mem, &mut cache);
                if let VmrunOutcome::Entered(e) = &out {
                    let h = vmexit(
                        &cfg,
                        &e.setup.controls,
                        &e.state,
                        e.setup.interrupt_shadow,
                        &ExitInfo::new(ExitCode::VMEXIT_VMMCALL),
                        &mut mem,
                        &mut cache,
                    );
                    outs.push(format!("{out:?} {h:?}"));
                } else {
                    outs.push(format!("{out:?}"));
                }
            }
            let mut low = vec![0u8; VMRUN_READ_END];
            mem.peek(VMCB, &mut low);
            let mut hsave = vec![0u8; 4096];
            mem.peek(HSAVE, &mut hsave);
            (outs, low, hsave, cache)
        };
        let (a, b) = (run(false), run(true));
        prop_assert_eq!(&a.0, &b.0);
        prop_assert!(a.1 == b.1, "VMCB below the read end");
        prop_assert!(a.2 == b.2, "host save area");
        prop_assert_eq!(&a.3, &b.3);
    }

    #[test]
    fn vmcb_images_round_trip_through_memory(img in random_vmcb(), page in 0u64..0x10000) {
        let mut mem = PageMem::new();
        img.write(&mut mem, page << 12, SvmAccess::VmcbWrite);
        let back = VmcbImage::read(&mut mem, page << 12, SvmAccess::VmcbRead);
        prop_assert_eq!(back, img);
    }

    #[test]
    fn field_set_get_round_trips(i in 0..VmcbField::ALL.len(), v in any::<u64>()) {
        let f = VmcbField::ALL[i];
        let mut img = VmcbImage::zeroed();
        img.set(f, v);
        let mask = if f.width() >= 8 { u64::MAX } else { (1u64 << (8 * f.width())) - 1 };
        prop_assert_eq!(img.get(f), v & mask);
        // Only the field's own bytes changed.
        let nonzero: Vec<usize> = img.as_bytes().iter().enumerate()
            .filter(|(_, b)| **b != 0).map(|(i, _)| i).collect();
        for o in nonzero {
            prop_assert!(o >= f.offset() && o < f.offset() + f.width());
        }
    }
}
