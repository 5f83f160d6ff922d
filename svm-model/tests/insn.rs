//! SVM instruction rules (#UD, #GP, intercept priority) and the state VMLOAD
//! and VMSAVE move.

use mmu::{CpuMode, Efer, Exception, SegReg, SegmentCache, Selector, SystemRegs};
use svm_model::insn::{self, InsnContext, InsnOutcome, SvmInsn, VmcbAddress};
use svm_model::vmcb::{Intercepts, Misc1, Misc2, VIntr, VirtExt, VmcbBuilder, VmcbField as F};
use svm_model::{
    vmrun, AddressSize, CpuState, ExitCode, GuestControls, PageMem, SvmAccess, SvmConfig,
    VirtVmload, VmcbCache, VmrunOutcome,
};

fn ctx(insn_rax: u64) -> InsnContext<'static> {
    InsnContext {
        mode: CpuMode::Long64,
        cpl: 0,
        efer: Efer::SVME | Efer::LME | Efer::LMA,
        rax: insn_rax,
        ecx: 7,
        address_size: AddressSize::A64,
        next_rip: 0x1003,
        guest: None,
    }
}

fn guest(cfg: &SvmConfig, b: VmcbBuilder) -> GuestControls {
    let mut mem = PageMem::new();
    b.build().write(&mut mem, 0x5000, SvmAccess::VmcbWrite);
    let host = CpuState::long_mode_host(0x1000);
    match vmrun(
        cfg,
        &host,
        0x5000,
        0x6000,
        &mut mem,
        &mut VmcbCache::default(),
    ) {
        VmrunOutcome::Entered(e) => e.setup.controls,
        VmrunOutcome::Invalid(i) => panic!("{:?}", i.check),
    }
}

fn intercepting(misc2: Misc2) -> GuestControls {
    guest(
        &SvmConfig::amd(),
        VmcbBuilder::long_mode().intercepts(Intercepts {
            misc2: misc2 | Misc2::VMRUN,
            misc1: Misc1::INVLPGA,
            ..Intercepts::default()
        }),
    )
}

#[test]
fn ud_rules() {
    let amd = SvmConfig::amd();
    let ud = InsnOutcome::Fault(Exception::ud());
    for i in [
        SvmInsn::Vmrun,
        SvmInsn::Vmload,
        SvmInsn::Vmsave,
        SvmInsn::Clgi,
        SvmInsn::Invlpga,
    ] {
        let c = InsnContext {
            efer: Efer::LME | Efer::LMA,
            ..ctx(0x1000)
        };
        assert_eq!(insn::execute(&amd, i, &c), ud, "{i:?} with SVME=0");
        for mode in [CpuMode::Real, CpuMode::Virtual8086] {
            let c = InsnContext {
                mode,
                ..ctx(0x1000)
            };
            assert_eq!(insn::execute(&amd, i, &c), ud, "{i:?} in {mode:?}");
        }
    }
    // STGI works with SVME=0 when SVM-Lock (or SKINIT) is supported (15.4, 15.31).
    let c = InsnContext {
        efer: Efer::empty(),
        mode: CpuMode::Protected,
        ..ctx(0)
    };
    assert_eq!(
        insn::execute(&amd, SvmInsn::Stgi, &c),
        InsnOutcome::SetGif(true)
    );
    let first = SvmConfig::first_generation();
    assert_eq!(insn::execute(&first, SvmInsn::Stgi, &c), ud);
    // SKINIT is not advertised by the presets: #UD.
    assert_eq!(insn::execute(&amd, SvmInsn::Skinit, &ctx(0)), ud);
    // VMMCALL without intercept is #UD at any CPL.
    let c = InsnContext { cpl: 3, ..ctx(0) };
    assert_eq!(insn::execute(&amd, SvmInsn::Vmmcall, &c), ud);
}

#[test]
fn gp_rules_come_before_the_intercept() {
    let amd = SvmConfig::amd();
    let gp = InsnOutcome::Fault(Exception::gp0());
    let g = intercepting(Misc2::VMLOAD | Misc2::VMSAVE | Misc2::STGI | Misc2::CLGI);
    let with_guest = |rax, cpl| InsnContext {
        guest: Some(&g),
        cpl,
        ..ctx(rax)
    };
    for i in [SvmInsn::Vmrun, SvmInsn::Vmload, SvmInsn::Vmsave] {
        assert_eq!(
            insn::execute(&amd, i, &with_guest(0x1000, 3)),
            gp,
            "{i:?} CPL 3"
        );
        assert_eq!(
            insn::execute(&amd, i, &with_guest(0x1008, 0)),
            gp,
            "{i:?} misaligned"
        );
        assert_eq!(
            insn::execute(&amd, i, &with_guest(1 << 48, 0)),
            gp,
            "{i:?} beyond MAXPHYADDR"
        );
        let InsnOutcome::Exit(e) = insn::execute(&amd, i, &with_guest(0x1000, 0)) else {
            panic!("{i:?} not intercepted");
        };
        assert_eq!(e.code, insn::exit_code(i));
        assert_eq!(e.next_rip, Some(0x1003));
    }
    assert_eq!(insn::execute(&amd, SvmInsn::Clgi, &with_guest(0, 1)), gp);
    // VMMCALL's intercept wins over everything, at any CPL.
    let vm = intercepting(Misc2::VMMCALL);
    let c = InsnContext {
        guest: Some(&vm),
        cpl: 3,
        mode: CpuMode::Virtual8086,
        ..ctx(0)
    };
    assert!(
        matches!(insn::execute(&amd, SvmInsn::Vmmcall, &c), InsnOutcome::Exit(e) if e.code == ExitCode::VMEXIT_VMMCALL)
    );
}

#[test]
fn outcomes() {
    let amd = SvmConfig::amd();
    assert_eq!(
        insn::execute(&amd, SvmInsn::Vmrun, &ctx(0x7000)),
        InsnOutcome::Vmrun { vmcb_pa: 0x7000 }
    );
    // The effective address size selects how much of rAX is used.
    let c = InsnContext {
        address_size: AddressSize::A32,
        ..ctx(0xffff_ffff_0000_7000)
    };
    assert_eq!(
        insn::execute(&amd, SvmInsn::Vmload, &c),
        InsnOutcome::Vmload(VmcbAddress::System(0x7000))
    );
    assert_eq!(
        insn::execute(&amd, SvmInsn::Clgi, &ctx(0)),
        InsnOutcome::SetGif(false)
    );
    assert_eq!(
        insn::execute(&amd, SvmInsn::Invlpga, &ctx(0xffff_8000_0000_1234)),
        InsnOutcome::Invlpga {
            linear: 0xffff_8000_0000_1234,
            asid: 7
        }
    );
    // INVLPGA intercepted: no address in EXITINFO1 (15.8.3).
    let g = intercepting(Misc2::empty());
    let c = InsnContext {
        guest: Some(&g),
        ..ctx(0x1234)
    };
    let InsnOutcome::Exit(e) = insn::execute(&amd, SvmInsn::Invlpga, &c) else {
        panic!()
    };
    assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_INVLPGA, 0));
}

#[test]
fn vgif_redirects_stgi_and_clgi() {
    let amd = SvmConfig::amd();
    let g = guest(
        &amd,
        VmcbBuilder::long_mode().vintr(VIntr {
            vgif_enable: true,
            ..VIntr::default()
        }),
    );
    assert!(g.vgif);
    let c = InsnContext {
        guest: Some(&g),
        ..ctx(0)
    };
    assert_eq!(
        insn::execute(&amd, SvmInsn::Clgi, &c),
        InsnOutcome::SetVirtualGif(false)
    );
    assert_eq!(
        insn::execute(&amd, SvmInsn::Stgi, &c),
        InsnOutcome::SetVirtualGif(true)
    );
    // Without VGIF in the preset the enable bit is ignored.
    let first = SvmConfig::first_generation();
    let g = guest(
        &first,
        VmcbBuilder::long_mode().vintr(VIntr {
            vgif_enable: true,
            ..VIntr::default()
        }),
    );
    assert!(!g.vgif);
}

#[test]
fn virtual_vmload_vmsave() {
    let amd = SvmConfig::amd();
    let virt = VirtExt::VMSAVE_VMLOAD_VIRT.bits();
    let on = guest(
        &amd,
        VmcbBuilder::long_mode()
            .nested_paging(0x9000)
            .set(F::VirtExt, virt),
    );
    assert_eq!(on.virt_vmload, VirtVmload::On);
    let c = InsnContext {
        guest: Some(&on),
        ..ctx(0x8000)
    };
    assert_eq!(
        insn::execute(&amd, SvmInsn::Vmsave, &c),
        InsnOutcome::Vmsave(VmcbAddress::GuestPhysical(0x8000))
    );
    // Enabled without nested paging: VMLOAD exits even though not intercepted.
    let exit = guest(&amd, VmcbBuilder::long_mode().set(F::VirtExt, virt));
    assert_eq!(exit.virt_vmload, VirtVmload::Exit);
    let c = InsnContext {
        guest: Some(&exit),
        ..ctx(0x8000)
    };
    assert!(
        matches!(insn::execute(&amd, SvmInsn::Vmload, &c), InsnOutcome::Exit(e) if e.code == ExitCode::VMEXIT_VMLOAD)
    );
    // Not enabled: a system-physical address, as in the host.
    let off = guest(&amd, VmcbBuilder::long_mode().nested_paging(0x9000));
    let c = InsnContext {
        guest: Some(&off),
        ..ctx(0x8000)
    };
    assert_eq!(
        insn::execute(&amd, SvmInsn::Vmload, &c),
        InsnOutcome::Vmload(VmcbAddress::System(0x8000))
    );
}

#[test]
fn vmsave_then_vmload_moves_exactly_the_listed_state() {
    let cfg = SvmConfig::amd();
    let mut regs = SystemRegs::default();
    *regs.seg_mut(SegReg::Fs) = SegmentCache {
        selector: Selector(0x2b),
        base: 0x7fff_0000_1000,
        limit: 0xfffff,
        attr: mmu::AccessRights(0xc0f3),
    };
    *regs.seg_mut(SegReg::Gs) = SegmentCache::flat(0x33, 3, 3, true, false);
    regs.tr = SegmentCache {
        selector: Selector(0x40),
        base: 0xffff_8000_0000_3000,
        limit: 0x67,
        attr: mmu::AccessRights(0x8b),
    };
    regs.ldtr = SegmentCache::null(0);
    regs.kernel_gs_base = 0xffff_8880_0000_0000;
    regs.star = 0x0023_0010_0000_0000;
    regs.lstar = 0xffff_ffff_8100_0000;
    regs.cstar = 0xffff_ffff_8100_1000;
    regs.sfmask = 0x4700;
    regs.sysenter_cs = 0x10;
    regs.sysenter_esp = 0xffff_fe00_0000_0000;
    regs.sysenter_eip = 0xffff_ffff_8100_2000;
    regs.cr3 = 0x1234_5000; // not part of VMSAVE
    let mut mem = PageMem::new();
    insn::vmsave(&mut mem, 0x8000, &regs);
    assert!(mem.log.iter().all(|(a, ..)| *a == SvmAccess::VmsaveWrite));
    assert_eq!(mem.peek_u64(0x8000 + F::Lstar.offset() as u64), regs.lstar);
    let mut loaded = SystemRegs::default();
    insn::vmload(&cfg, &mut mem, 0x8000, &mut loaded);
    let mut want = regs.clone();
    want.cr3 = 0;
    assert_eq!(loaded, want);
}

#[test]
fn vmload_canonicalizes_bases() {
    let cfg = SvmConfig::amd();
    let mut mem = PageMem::new();
    mem.poke_u64(0x8000 + F::FsBase.offset() as u64, 0x0000_8000_0000_0000);
    mem.poke_u64(
        0x8000 + F::KernelGsBase.offset() as u64,
        0x0000_9000_0000_0000,
    );
    let mut regs = SystemRegs::default();
    insn::vmload(&cfg, &mut mem, 0x8000, &mut regs);
    assert_eq!(regs.seg(SegReg::Fs).base, 0xffff_8000_0000_0000);
    assert_eq!(regs.kernel_gs_base, 0xffff_9000_0000_0000);
}
