//! VMRUN and #VMEXIT: every consistency check violated alone, the world switch
//! in both directions, event injection, TLB control and the clean-bit cache.

use mmu::{Cr0, Cr4, Efer, Rflags, SegReg};
use svm_model::checks::CheckId;
use svm_model::vmcb::{
    CleanBit, EventInj, EventType, Intercepts, Misc1, Misc2, TlbFlush, VIntr, VmcbBuilder,
    VmcbField as F, VmcbImage, VmcbSeg,
};
use svm_model::{
    vmexit, vmrun, CpuState, ExitCode, ExitInfo, GuestEntry, HostLoad, PageMem, SvmAccess,
    SvmConfig, VmcbCache, VmrunOutcome,
};

const VMCB: u64 = 0x5000;
const HSAVE: u64 = 0x6000;
const NEXT_RIP: u64 = 0xffff_8000_0000_1234;

fn host() -> CpuState {
    CpuState::long_mode_host(NEXT_RIP)
}

fn run_with(cfg: &SvmConfig, host: &CpuState, img: &VmcbImage) -> (VmrunOutcome, PageMem) {
    let mut mem = PageMem::new();
    img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
    let mut cache = VmcbCache::default();
    let out = vmrun(cfg, host, VMCB, HSAVE, &mut mem, &mut cache);
    (out, mem)
}

fn run(img: &VmcbImage) -> (VmrunOutcome, PageMem) {
    run_with(&SvmConfig::amd(), &host(), img)
}

fn entered(out: VmrunOutcome) -> GuestEntry {
    match out {
        VmrunOutcome::Entered(e) => e,
        VmrunOutcome::Invalid(i) => panic!("VMRUN failed: {:?} (all: {:?})", i.check, i.all),
    }
}

fn long() -> VmcbBuilder {
    VmcbBuilder::long_mode()
}

fn cet_cfg() -> SvmConfig {
    let mut c = SvmConfig::amd();
    c.cr4_allowed |= Cr4::CET.bits();
    c
}

/// One case per check: the configuration, the host, and a VMCB that violates
/// that rule and no other.
fn violation(check: CheckId) -> (SvmConfig, CpuState, VmcbImage) {
    let amd = SvmConfig::amd();
    let h = host();
    let lm = long().build();
    let get = |f| lm.get(f);
    let img = match check {
        CheckId::EferSvme => long()
            .set(F::Efer, get(F::Efer) & !Efer::SVME.bits())
            .build(),
        CheckId::Cr0CdNw => long().set(F::Cr0, get(F::Cr0) | Cr0::NW.bits()).build(),
        CheckId::Cr0High => long().set(F::Cr0, get(F::Cr0) | 1 << 32).build(),
        CheckId::Cr3Mbz => long().set(F::Cr3, get(F::Cr3) | 1 << 48).build(),
        CheckId::Cr4Mbz => long().set(F::Cr4, get(F::Cr4) | Cr4::VMXE.bits()).build(),
        CheckId::Dr6High => long().set(F::Dr6, get(F::Dr6) | 1 << 32).build(),
        CheckId::Dr7High => long().set(F::Dr7, get(F::Dr7) | 1 << 63).build(),
        CheckId::EferMbz => long().set(F::Efer, get(F::Efer) | 1 << 20).build(),
        CheckId::EferLongModeUnsupported => {
            let img = VmcbBuilder::protected_mode()
                .set(F::Efer, (Efer::SVME | Efer::LME).bits())
                .build();
            let cfg = SvmConfig {
                long_mode: false,
                ..amd
            };
            // A 32-bit host: the CPU has no long mode.
            let mut h = h;
            h.regs.efer = Efer::SVME;
            h.regs.cr0 = Cr0::PE | Cr0::ET | Cr0::NE;
            h.regs.cr4 = Cr4::empty();
            *h.regs.seg_mut(SegReg::Cs) = mmu::SegmentCache::flat(0x08, 0xb, 0, true, false);
            h.rip &= 0xffff_ffff;
            return (cfg, h, img);
        }
        CheckId::LongModeNoPae => long().set(F::Cr4, get(F::Cr4) & !Cr4::PAE.bits()).build(),
        CheckId::LongModeNoPe => long().set(F::Cr0, get(F::Cr0) & !Cr0::PE.bits()).build(),
        CheckId::LongModeCsLD => long().set(F::CsAttrib, get(F::CsAttrib) | 0x400).build(),
        CheckId::VmrunIntercept => long().intercepts(Intercepts::default()).build(),
        CheckId::MsrpmBeyondMaxPhys => long().set(F::MsrpmBasePa, (1 << 48) - 0x1000).build(),
        CheckId::IopmBeyondMaxPhys => long().set(F::IopmBasePa, (1 << 48) - 0x2000).build(),
        CheckId::EventInjType => long().event(EventInj(EventInj::VALID | 1 << 8)).build(),
        CheckId::EventInjVector => long()
            .event(EventInj::new(EventType::Exception, 2, None))
            .build(),
        CheckId::EventInjImpossible => long()
            .event(EventInj::new(EventType::Exception, 5, None))
            .build(),
        CheckId::AsidZero => long().set(F::GuestAsid, 0).build(),
        CheckId::SCetReserved => {
            return (cet_cfg(), h, long().set(F::SCet, 1 << 6).build());
        }
        CheckId::CetWithoutWp => {
            let img = long()
                .set(F::Cr4, get(F::Cr4) | Cr4::CET.bits())
                .set(F::Cr0, get(F::Cr0) & !Cr0::WP.bits())
                .build();
            return (cet_cfg(), h, img);
        }
        CheckId::NpHostPagingDisabled => {
            let mut h = h;
            h.regs.cr0.remove(Cr0::PG);
            h.regs.efer.remove(Efer::LMA);
            return (amd, h, long().nested_paging(0x9000).build());
        }
        CheckId::NCr3Mbz => long().nested_paging(1 << 50).build(),
        CheckId::GPatInvalid => long().nested_paging(0x9000).set(F::GPat, 0x02).build(),
        CheckId::VNmiWithoutNmiIntercept => long()
            .vintr(VIntr {
                vnmi_enable: true,
                ..VIntr::default()
            })
            .build(),
        CheckId::PdpteReserved => VmcbBuilder::protected_mode()
            .set(F::Cr0, (Cr0::PE | Cr0::ET | Cr0::PG).bits())
            .set(F::Cr4, Cr4::PAE.bits())
            .set(F::Cr3, 0x3000)
            .build(),
    };
    (amd, h, img)
}

#[test]
fn known_good_vmcbs_enter() {
    for b in [
        long(),
        VmcbBuilder::protected_mode(),
        VmcbBuilder::real_mode(),
    ] {
        let (out, _) = run(&b.build());
        entered(out);
    }
    let (out, _) = run_with(&SvmConfig::first_generation(), &host(), &long().build());
    entered(out);
}

#[test]
fn every_check_violated_alone_is_vmexit_invalid_with_its_id() {
    for &check in CheckId::ALL {
        let (cfg, h, img) = violation(check);
        let mut mem = PageMem::new();
        img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
        if check == CheckId::PdpteReserved {
            mem.poke_u64(0x3000, 0x7000 | 1 | 2); // P and a reserved bit
        }
        let mut cache = VmcbCache::default();
        let out = vmrun(&cfg, &h, VMCB, HSAVE, &mut mem, &mut cache);
        let VmrunOutcome::Invalid(inv) = out else {
            panic!("{check:?}: VMRUN entered the guest");
        };
        assert_eq!(inv.check, check, "{check:?}");
        assert_eq!(inv.all, vec![check], "{check:?} was not violated alone");
        assert_eq!(
            mem.peek_u64(VMCB + 0x70),
            ExitCode::VMEXIT_INVALID.0,
            "{check:?}"
        );
        assert_eq!(mem.peek_u64(VMCB + 0x78), 0);
        assert_eq!(mem.peek_u64(VMCB + 0x80), 0);
        assert_eq!(mem.peek_u64(VMCB + 0xa8), 0, "EVENTINJ cleared");
        // The host continues after VMRUN, at CPL 0, breakpoints disabled.
        assert_eq!(inv.host.state.rip, h.rip);
        assert_eq!(inv.host.state.cpl, 0);
        assert_eq!(inv.host.state.regs.dr7.bits(), 0x400);
        assert_eq!(inv.host.reload.shutdown, None);
    }
}

#[test]
fn checks_see_the_cached_state_not_memory() {
    // 15.5.1: consistency checks use the merged state, clean fields included.
    let cfg = SvmConfig::amd();
    let mut mem = PageMem::new();
    let mut cache = VmcbCache::default();
    let good = long().build();
    good.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
    let e = entered(vmrun(&cfg, &host(), VMCB, HSAVE, &mut mem, &mut cache));
    vmexit(
        &cfg,
        &e.setup.controls,
        &e.state,
        false,
        &ExitInfo::new(ExitCode::VMEXIT_HLT),
        &mut mem,
        &mut cache,
    );
    // Break CR0 in memory but claim CRx clean: VMRUN uses the cached CR0.
    let bad_cr0 = good.get(F::Cr0) | Cr0::NW.bits();
    mem.poke_u64(VMCB + F::Cr0.offset() as u64, bad_cr0);
    mem.poke_u64(
        VMCB + F::VmcbClean.offset() as u64,
        CleanBit::Crx.mask().into(),
    );
    let e = entered(vmrun(&cfg, &host(), VMCB, HSAVE, &mut mem, &mut cache));
    assert!(!e.state.regs.cr0.contains(Cr0::NW));
    // Clear the clean bit: now the broken value is loaded and checked.
    mem.poke_u64(VMCB + F::VmcbClean.offset() as u64, 0);
    let out = vmrun(&cfg, &host(), VMCB, HSAVE, &mut mem, &mut cache);
    assert_eq!(out.check(), Some(CheckId::Cr0CdNw));
}

#[test]
fn lying_about_clean_bits_shows_the_cached_value() {
    let cfg = SvmConfig::amd();
    let mut mem = PageMem::new();
    let mut cache = VmcbCache::default();
    long().build().write(&mut mem, VMCB, SvmAccess::VmcbWrite);
    let e = entered(vmrun(&cfg, &host(), VMCB, HSAVE, &mut mem, &mut cache));
    assert_eq!(e.setup.clean.0, 0, "first run of a VMCB is never cached");
    let mut guest = e.state.clone();
    guest.regs.cr3 = 0x0055_5000; // the guest moves CR3
    vmexit(
        &cfg,
        &e.setup.controls,
        &guest,
        false,
        &ExitInfo::new(ExitCode::VMEXIT_CPUID),
        &mut mem,
        &mut cache,
    );
    // The hypervisor writes a new CR3 and lies that CRx is clean.
    mem.poke_u64(VMCB + F::Cr3.offset() as u64, 0x0077_7000);
    mem.poke_u64(
        VMCB + F::VmcbClean.offset() as u64,
        CleanBit::Crx.mask().into(),
    );
    let e = entered(vmrun(&cfg, &host(), VMCB, HSAVE, &mut mem, &mut cache));
    assert_eq!(
        e.state.regs.cr3, 0x0055_5000,
        "hardware may use its cached CR3"
    );
    // Without VmcbClean in the preset the clean field is ignored.
    let first = SvmConfig::first_generation();
    let e = entered(vmrun(&first, &host(), VMCB, HSAVE, &mut mem, &mut cache));
    assert_eq!(e.state.regs.cr3, 0x0077_7000);
}

#[test]
fn guest_state_is_loaded_and_host_state_saved() {
    let img = long()
        .set(F::Rip, 0x1111)
        .set(F::Rsp, 0x2222)
        .set(F::Rax, 0x3333)
        .set(F::Cr2, 0x4444)
        .set(F::Rflags, 0x202)
        .set(F::InterruptShadow, 1)
        .set(F::TscOffset, 0x1000)
        .set(F::GuestAsid, 9)
        .set(F::EsBase, 0x0000_8000_0000_0000)
        .build();
    let (out, mem) = run(&img);
    let e = entered(out);
    assert_eq!(
        (e.state.rip, e.state.rsp, e.state.rax),
        (0x1111, 0x2222, 0x3333)
    );
    assert_eq!(e.state.regs.cr2, 0x4444);
    assert!(e.state.rflags.contains(Rflags::IF));
    assert!(e.state.regs.efer.contains(Efer::LMA));
    assert!(e.setup.interrupt_shadow);
    assert_eq!(e.setup.controls.asid, 9);
    assert_eq!(e.setup.controls.tsc_offset, 0x1000);
    assert_eq!(e.setup.controls.iopm_base, 0x7000_0000);
    assert_eq!(e.setup.tlb, TlbFlush::None);
    // Segment bases are canonicalized on load.
    assert_eq!(e.state.regs.seg(SegReg::Es).base, 0xffff_8000_0000_0000);
    // Registers VMRUN does not touch keep the host's values.
    let h = host();
    assert_eq!(e.state.regs.seg(SegReg::Fs), h.regs.seg(SegReg::Fs));
    assert_eq!(e.state.regs.lstar, h.regs.lstar);
    // The host's RIP after VMRUN went to the host save area.
    assert_eq!(mem.peek_u64(HSAVE + F::Rip.offset() as u64), NEXT_RIP);
    assert_eq!(mem.peek_u64(HSAVE + F::Cr3.offset() as u64), h.regs.cr3);
}

#[test]
fn cpl_is_forced_in_real_and_v86_mode() {
    let e = entered(run(&VmcbBuilder::real_mode().set(F::Cpl, 3).build()).0);
    assert_eq!(e.state.cpl, 0);
    let v86 = VmcbBuilder::protected_mode()
        .set(F::Rflags, (Rflags::FIXED1 | Rflags::VM).bits())
        .build();
    let e = entered(run(&v86).0);
    assert_eq!(e.state.cpl, 3);
    assert_eq!(e.state.regs.cpl_with_vm(true), 3);
    let e = entered(run(&long().set(F::Cpl, 3).build()).0);
    assert_eq!(e.state.cpl, 3);
    assert_eq!(e.state.regs.cpl(), 3, "SS.DPL follows the VMCB CPL");
}

#[test]
fn paged_real_mode_is_legal() {
    let img = VmcbBuilder::real_mode()
        .set(F::Cr0, (Cr0::ET | Cr0::PG).bits())
        .build();
    let e = entered(run(&img).0);
    assert!(e.state.regs.cr0.contains(Cr0::PG) && !e.state.regs.cr0.contains(Cr0::PE));
    assert_eq!(e.state.cpl, 0);
}

#[test]
fn legacy_pae_guest_loads_pdptes_unless_nested() {
    let img = VmcbBuilder::protected_mode()
        .set(F::Cr0, (Cr0::PE | Cr0::ET | Cr0::PG).bits())
        .set(F::Cr4, Cr4::PAE.bits())
        .set(F::Cr3, 0x3020)
        .build();
    let mut mem = PageMem::new();
    img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
    for i in 0..4 {
        mem.poke_u64(0x3020 + 8 * i, (0x10_0000 * (i + 1)) | 1);
    }
    let mut cache = VmcbCache::default();
    let e = entered(vmrun(
        &SvmConfig::amd(),
        &host(),
        VMCB,
        HSAVE,
        &mut mem,
        &mut cache,
    ));
    assert_eq!(
        e.setup.pdptes,
        Some([0x10_0001, 0x20_0001, 0x30_0001, 0x40_0001])
    );
    // With nested paging the PDPEs are walked on demand (15.25.10).
    let np = VmcbBuilder::protected_mode()
        .set(F::Cr0, (Cr0::PE | Cr0::ET | Cr0::PG).bits())
        .set(F::Cr4, Cr4::PAE.bits())
        .nested_paging(0x9000)
        .build();
    let e = entered(run(&np).0);
    assert_eq!(e.setup.pdptes, None);
}

#[test]
fn tlb_control_by_preset() {
    let img = |tc| long().set(F::TlbControl, tc).set(F::GuestAsid, 5).build();
    assert_eq!(entered(run(&img(1)).0).setup.tlb, TlbFlush::All);
    assert_eq!(entered(run(&img(3)).0).setup.tlb, TlbFlush::Asid(5));
    assert_eq!(
        entered(run(&img(7)).0).setup.tlb,
        TlbFlush::AsidNonGlobal(5)
    );
    let first = SvmConfig::first_generation();
    let e = entered(run_with(&first, &host(), &img(3)).0);
    assert_eq!(
        e.setup.tlb,
        TlbFlush::All,
        "only bit 0 exists without FlushByAsid"
    );
}

#[test]
fn event_injection_of_every_type() {
    let inj = |cfg: &SvmConfig, ev: EventInj| {
        let img = long().event(ev).set(F::NRip, 0x0040_0002).build();
        entered(run_with(cfg, &host(), &img).0)
            .setup
            .inject
            .unwrap()
    };
    let amd = SvmConfig::amd();
    let i = inj(&amd, EventInj::new(EventType::Intr, 0x30, None));
    assert_eq!(
        (i.typ, i.vector, i.error_code, i.dpl_checked),
        (EventType::Intr, 0x30, None, false)
    );
    assert_eq!(i.return_rip, 0x0040_0000);
    let i = inj(&amd, EventInj::new(EventType::Nmi, 0x99, None));
    assert_eq!((i.typ, i.vector), (EventType::Nmi, 2), "NMI ignores VECTOR");
    let i = inj(&amd, EventInj::new(EventType::Exception, 13, Some(0x18)));
    assert_eq!(
        (i.vector, i.error_code, i.dpl_checked),
        (13, Some(0x18), false)
    );
    let i = inj(&amd, EventInj::new(EventType::Exception, 3, None));
    assert!(i.dpl_checked, "#BP behaves like INT3");
    assert_eq!(i.return_rip, 0x0040_0002, "NRIP is the return address");
    let i = inj(&amd, EventInj::new(EventType::SoftwareInt, 0x80, None));
    assert_eq!(
        (i.typ, i.vector, i.return_rip),
        (EventType::SoftwareInt, 0x80, 0x0040_0002)
    );
    // Without NRIPS, software interrupts return to RIP (15.20).
    let i = inj(
        &SvmConfig::first_generation(),
        EventInj::new(EventType::SoftwareInt, 0x80, None),
    );
    assert_eq!(i.return_rip, 0x0040_0000);
}

#[test]
fn injected_nmi_sets_v_nmi_mask_under_vnmi() {
    let img = long()
        .intercepts(Intercepts {
            misc1: Misc1::NMI,
            misc2: Misc2::VMRUN,
            ..Intercepts::default()
        })
        .vintr(VIntr {
            vnmi_enable: true,
            ..VIntr::default()
        })
        .event(EventInj::new(EventType::Nmi, 2, None))
        .build();
    let (out, mut mem) = run(&img);
    let e = entered(out);
    assert!(e.setup.controls.vnmi && e.setup.controls.vintr.v_nmi_mask);
    // A #VMEXIT during the NMI's delivery saves V_NMI_MASK as 0 (15.21.10).
    let exit = ExitInfo::new(ExitCode::VMEXIT_NPF).during_delivery(e.setup.inject.unwrap().raw);
    exit_now(&SvmConfig::amd(), &e, &exit, &mut mem);
    let back = VIntr::from_raw(mem.peek_u64(VMCB + 0x60) as u32, 0);
    assert!(back.vnmi_enable && !back.v_nmi_mask);
}

fn exit_now(cfg: &SvmConfig, e: &GuestEntry, exit: &ExitInfo, mem: &mut PageMem) -> HostLoad {
    let mut cache = VmcbCache::default();
    vmexit(
        cfg,
        &e.setup.controls,
        &e.state,
        e.setup.interrupt_shadow,
        exit,
        mem,
        &mut cache,
    )
}

#[test]
fn vmrun_then_vmexit_round_trips_state() {
    let cfg = SvmConfig::amd();
    let img = long()
        .set(F::Rip, 0x0040_1000)
        .set(F::Rflags, 0x246)
        .set(F::InterruptShadow, 1)
        .set(F::Cr2, 0xdead_b000)
        .set(F::NRip, 0x1)
        .event(EventInj::new(EventType::Intr, 0x40, None))
        .build();
    let (out, mut mem) = run_with(&cfg, &host(), &img);
    let e = entered(out);
    let exit = ExitInfo::with_info(ExitCode::VMEXIT_IOIO, 0x3f8_0010, 0x0040_1002)
        .with_next_rip(0x0040_1002)
        .during_delivery(EventInj::new(EventType::Intr, 0x40, None));
    let h = exit_now(&cfg, &e, &exit, &mut mem);
    let back = VmcbImage::read(&mut mem, VMCB, SvmAccess::VmcbRead);
    for f in [
        F::Cr0,
        F::Cr2,
        F::Cr3,
        F::Cr4,
        F::Efer,
        F::Dr6,
        F::Dr7,
        F::Rip,
        F::Rsp,
        F::Rax,
        F::Rflags,
        F::Cpl,
        F::GdtrBase,
        F::GdtrLimit,
        F::IdtrBase,
        F::IdtrLimit,
        F::VIntrControl,
    ] {
        assert_eq!(back.get(f), img.get(f), "{f:?}");
    }
    for s in [VmcbSeg::Es, VmcbSeg::Cs, VmcbSeg::Ss, VmcbSeg::Ds] {
        assert_eq!(back.seg(s), img.seg(s), "{s:?}");
    }
    assert_eq!(back.get(F::ExitCode), ExitCode::VMEXIT_IOIO.0);
    assert_eq!(back.get(F::ExitInfo1), 0x3f8_0010);
    assert_eq!(back.get(F::ExitInfo2), 0x0040_1002);
    assert_eq!(back.get(F::NRip), 0x0040_1002);
    assert_eq!(back.get(F::ExitIntInfo), 0x8000_0040);
    assert_eq!(back.get(F::EventInj), 0, "EVENTINJ is cleared");
    assert_eq!(back.get(F::InterruptShadow), 0b11, "shadow and guest IF");
    assert_eq!(back.get(F::GuestInsnBytesFetched), 0);
    // The host comes back as it left, at the next RIP, breakpoints off.
    let mut want = host();
    want.regs.dr7 = mmu::Dr7::FIXED1;
    want.regs.cr2 = 0xdead_b000; // CR2 is not reloaded
    assert_eq!(h.state, want);
    assert_eq!(h.reload.shutdown, None);
    assert!(!h.reload.single_step);
}

#[test]
fn nested_paging_swaps_pat_and_records_the_host_paging_mode() {
    let cfg = SvmConfig::amd();
    let gpat = 0x0606_0606_0606_0606;
    let img = long().nested_paging(0x0123_4000).set(F::GPat, gpat).build();
    let (out, mut mem) = run_with(&cfg, &host(), &img);
    let e = entered(out);
    let np = e.setup.controls.nested.expect("nested paging");
    assert_eq!(np.ncr3, 0x0123_4000);
    assert_eq!(np.host_pat, host().regs.pat);
    assert!(np.host_efer.contains(Efer::LMA));
    assert_eq!(e.state.regs.pat, gpat);
    let mut g = e.state.clone();
    g.regs.pat = 0x0404_0404_0404_0404;
    let mut cache = VmcbCache::default();
    let h = vmexit(
        &cfg,
        &e.setup.controls,
        &g,
        false,
        &ExitInfo::new(ExitCode::VMEXIT_NPF),
        &mut mem,
        &mut cache,
    );
    assert_eq!(h.state.regs.pat, host().regs.pat);
    assert_eq!(
        mem.peek_u64(VMCB + F::GPat.offset() as u64),
        0x0404_0404_0404_0404
    );
    // Without NP in the preset, NP_ENABLE is ignored.
    let e = entered(run_with(&SvmConfig::first_generation(), &host(), &img).0);
    assert!(e.setup.controls.nested.is_none());
    assert_eq!(e.state.regs.pat, host().regs.pat);
}

#[test]
fn illegal_host_state_on_vmexit_shuts_down() {
    let cfg = SvmConfig::amd();
    let (out, mut mem) = run(&long().build());
    let e = entered(out);
    // Corrupt the host save area: CR0.NW without CD.
    let cr0 = mem.peek_u64(HSAVE + F::Cr0.offset() as u64);
    mem.poke_u64(HSAVE + F::Cr0.offset() as u64, cr0 | Cr0::NW.bits());
    let h = exit_now(&cfg, &e, &ExitInfo::new(ExitCode::VMEXIT_HLT), &mut mem);
    assert_eq!(h.reload.shutdown, Some(CheckId::Cr0CdNw));
}

#[test]
fn host_tf_traps_after_vmrun_completes() {
    let cfg = SvmConfig::amd();
    let mut h = host();
    h.rflags |= Rflags::TF | Rflags::RF;
    let (out, mut mem) = run_with(&cfg, &h, &long().build());
    let e = entered(out);
    let back = exit_now(&cfg, &e, &ExitInfo::new(ExitCode::VMEXIT_HLT), &mut mem);
    assert!(back.reload.single_step);
    assert!(
        !back.state.rflags.contains(Rflags::RF),
        "VMRUN completion clears RF"
    );
}

#[test]
fn decode_assist_bytes_and_nrip_follow_the_preset() {
    let exit = ExitInfo {
        insn_bytes: Some(svm_model::InsnBytes::new(&[0x8b, 0x03])),
        ..ExitInfo::with_info(ExitCode::VMEXIT_NPF, 1 << 32, 0x1000)
    };
    for (cfg, want_len) in [(SvmConfig::amd(), 2u64), (SvmConfig::first_generation(), 0)] {
        let (out, mut mem) = run_with(&cfg, &host(), &long().build());
        let e = entered(out);
        mem.poke_u64(VMCB + F::NRip.offset() as u64, 0xaaaa);
        exit_now(&cfg, &e, &exit, &mut mem);
        let back = VmcbImage::read(&mut mem, VMCB, SvmAccess::VmcbRead);
        assert_eq!(back.get(F::GuestInsnBytesFetched), want_len);
        if want_len > 0 {
            assert_eq!(&back.bytes(F::GuestInsnBytes)[..2], &[0x8b, 0x03]);
            assert_eq!(
                back.get(F::NRip),
                0,
                "nRIP is zeroed for non-instruction exits"
            );
        } else {
            assert_eq!(back.get(F::NRip), 0xaaaa, "no NRIPS: nRIP untouched");
        }
    }
}
