//! Intercept decisions, table-tested against APM Vol. 2 table B-1 bit positions,
//! the exit information formats of 15.8-15.14 and the interrupt rules of 15.17
//! and 15.21.

use mmu::{Cr0, SegReg};
use svm_model::intercept::{self, CrRead, CrWrite, Intercept, IoAccess, TaskSwitchSource};
use svm_model::interrupts::{self, Routing, VirtualIntr};
use svm_model::vmcb::{Intercepts, Misc1, Misc2, Misc3, VIntr, VmcbBuilder, VmcbField as F};
use svm_model::{
    vmrun, AddressSize, CpuState, ExitCode, GuestControls, InsnBytes, PageMem, SvmAccess,
    SvmConfig, VmCr, VmcbCache, VmrunOutcome,
};

fn controls_with(cfg: &SvmConfig, b: VmcbBuilder) -> GuestControls {
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

fn controls(i: Intercepts) -> GuestControls {
    let mut i = i;
    i.misc2 |= Misc2::VMRUN;
    controls_with(&SvmConfig::amd(), VmcbBuilder::long_mode().intercepts(i))
}

fn misc1(m: Misc1) -> GuestControls {
    controls(Intercepts {
        misc1: m,
        ..Intercepts::default()
    })
}

/// (intercept, vector, bit) from APM Vol. 2 table B-1.
const TABLE_B1: &[(Intercept, u8, u8)] = &[
    (Intercept::IdtrRead, 3, 6),
    (Intercept::GdtrRead, 3, 7),
    (Intercept::LdtrRead, 3, 8),
    (Intercept::TrRead, 3, 9),
    (Intercept::IdtrWrite, 3, 10),
    (Intercept::GdtrWrite, 3, 11),
    (Intercept::LdtrWrite, 3, 12),
    (Intercept::TrWrite, 3, 13),
    (Intercept::Rdtsc, 3, 14),
    (Intercept::Rdpmc, 3, 15),
    (Intercept::Pushf, 3, 16),
    (Intercept::Popf, 3, 17),
    (Intercept::Cpuid, 3, 18),
    (Intercept::Rsm, 3, 19),
    (Intercept::Iret, 3, 20),
    (Intercept::Invd, 3, 22),
    (Intercept::Invlpga, 3, 26),
    (Intercept::FerrFreeze, 3, 30),
    (Intercept::Shutdown, 3, 31),
    (Intercept::Vmrun, 4, 0),
    (Intercept::Vmmcall, 4, 1),
    (Intercept::Vmload, 4, 2),
    (Intercept::Vmsave, 4, 3),
    (Intercept::Stgi, 4, 4),
    (Intercept::Clgi, 4, 5),
    (Intercept::Skinit, 4, 6),
    (Intercept::Rdtscp, 4, 7),
    (Intercept::Icebp, 4, 8),
    (Intercept::Wbinvd, 4, 9),
    (Intercept::Monitor, 4, 10),
    (Intercept::Xsetbv, 4, 13),
    (Intercept::Rdpru, 4, 14),
    (Intercept::Invlpgb, 5, 0),
    (Intercept::InvlpgbIllegal, 5, 1),
    (Intercept::Invpcid, 5, 2),
    (Intercept::Mcommit, 5, 3),
    (Intercept::Tlbsync, 5, 4),
];

#[test]
fn simple_intercepts_follow_table_b1() {
    assert_eq!(
        TABLE_B1.len(),
        Intercept::ALL.len(),
        "every simple intercept is in the table"
    );
    for &(i, vector, bit) in TABLE_B1 {
        let field = match vector {
            3 => F::InterceptMisc1,
            4 => F::InterceptMisc2,
            _ => F::InterceptMisc3,
        };
        // VMRUN's own bit must stay set for the VMCB to run.
        let mut b = VmcbBuilder::long_mode().set(field, 1 << bit);
        if vector != 4 {
            b = b.set(F::InterceptMisc2, 1);
        } else {
            b = b.set(F::InterceptMisc2, 1 | 1 << bit);
        }
        let ctl = controls_with(&SvmConfig::amd(), b);
        let e = intercept::simple(&ctl, i, 0x77).unwrap_or_else(|| panic!("{i:?} not intercepted"));
        assert_eq!(e.code, i.exit_code());
        assert_eq!(
            e.next_rip,
            if i.is_event() { None } else { Some(0x77) },
            "{i:?}"
        );
        // No other simple intercept fires (except VMRUN, always set).
        for &other in Intercept::ALL {
            if other != i && other != Intercept::Vmrun {
                assert!(
                    intercept::simple(&ctl, other, 0).is_none(),
                    "{other:?} with {i:?}"
                );
            }
        }
    }
}

#[test]
fn cr_reads_and_writes() {
    let amd = SvmConfig::amd();
    let ctl = controls(Intercepts {
        cr_read: 1 << 3,
        cr_write: 1 << 4 | 1 << 8,
        ..Intercepts::default()
    });
    let e = intercept::cr_read(&amd, &ctl, 3, CrRead::Mov { gpr: 5 }, 9).unwrap();
    assert_eq!(
        (e.code, e.info1, e.next_rip),
        (ExitCode::VMEXIT_CR3_READ, 1 << 63 | 5, Some(9))
    );
    assert!(intercept::cr_read(&amd, &ctl, 0, CrRead::Smsw, 9).is_none());
    let e = intercept::cr_write(&amd, &ctl, 8, CrWrite::Mov { gpr: 12 }, 0, 3, 9).unwrap();
    assert_eq!(
        (e.code, e.info1),
        (ExitCode::VMEXIT_CR8_WRITE, 1 << 63 | 12)
    );
    assert!(intercept::cr_write(&amd, &ctl, 3, CrWrite::Mov { gpr: 0 }, 0, 0, 9).is_none());
    // Without decode assists, no GPR information.
    let first = SvmConfig::first_generation();
    let e = intercept::cr_write(&first, &ctl, 4, CrWrite::Mov { gpr: 1 }, 0, 0, 9).unwrap();
    assert_eq!(e.info1, 0);
}

#[test]
fn selective_cr0_write() {
    let amd = SvmConfig::amd();
    let sel = misc1(Misc1::CR0_SEL_WRITE);
    let cr0 = (Cr0::PE | Cr0::PG | Cr0::ET).bits();
    let w = |how, new| intercept::cr_write(&amd, &sel, 0, how, cr0, new, 0).map(|e| e.code);
    let mov = CrWrite::Mov { gpr: 0 };
    // Changing only TS or MP does not trigger it.
    assert_eq!(w(mov, cr0 | Cr0::TS.bits() | Cr0::MP.bits()), None);
    assert_eq!(w(mov, cr0), None);
    assert_eq!(
        w(mov, cr0 & !Cr0::PG.bits()),
        Some(ExitCode::VMEXIT_CR0_SEL_WRITE)
    );
    assert_eq!(
        w(mov, cr0 | Cr0::CD.bits()),
        Some(ExitCode::VMEXIT_CR0_SEL_WRITE)
    );
    // LMSW is treated as non-selective; CLTS never checks it.
    assert_eq!(w(CrWrite::Lmsw, cr0), Some(ExitCode::VMEXIT_CR0_SEL_WRITE));
    assert_eq!(w(CrWrite::Clts, cr0 & !Cr0::TS.bits()), None);
    // The non-selective CR0 write intercept takes priority.
    let both = controls(Intercepts {
        cr_write: 1,
        misc1: Misc1::CR0_SEL_WRITE,
        ..Intercepts::default()
    });
    let e = intercept::cr_write(&amd, &both, 0, CrWrite::Clts, cr0, cr0, 0).unwrap();
    assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_CR0_WRITE, 0));
}

#[test]
fn write_traps_carry_the_new_value() {
    let ctl = controls(Intercepts {
        misc2: Misc2::EFER_WRITE_TRAP | Misc2::from_bits_retain(1 << (16 + 4)),
        ..Intercepts::default()
    });
    let e = intercept::cr_write_trap(&ctl, 4, 0x20, 5).unwrap();
    assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_CR4_WRITE_TRAP, 0x20));
    assert!(intercept::cr_write_trap(&ctl, 0, 0x11, 5).is_none());
    let e = intercept::efer_write_trap(&ctl, 0xd01, 5).unwrap();
    assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_EFER_WRITE_TRAP, 0xd01));
}

#[test]
fn debug_registers() {
    let amd = SvmConfig::amd();
    let ctl = controls(Intercepts {
        dr_read: 1 << 7,
        dr_write: 1 << 0,
        ..Intercepts::default()
    });
    let e = intercept::dr_access(&amd, &ctl, 7, false, 3, 1).unwrap();
    assert_eq!(
        (e.code, e.info1),
        (ExitCode::VMEXIT_DR7_READ, 3),
        "no bit 63 for DRx"
    );
    assert_eq!(
        intercept::dr_access(&amd, &ctl, 0, true, 3, 1)
            .unwrap()
            .code,
        ExitCode::VMEXIT_DR0_WRITE
    );
    assert!(intercept::dr_access(&amd, &ctl, 0, false, 3, 1).is_none());
}

#[test]
fn exceptions() {
    let amd = SvmConfig::amd();
    let ctl = controls(Intercepts {
        exceptions: 1 << 14 | 1 << 13 | 1 << 3 | 1 << 2,
        ..Intercepts::default()
    });
    let bytes = InsnBytes::new(&[0x89, 0x07]);
    let e = intercept::exception(&amd, &ctl, 14, Some(6), 0xdead_0000, None, Some(bytes)).unwrap();
    assert_eq!(
        (e.code, e.info1, e.info2),
        (ExitCode::VMEXIT_EXCP14, 6, 0xdead_0000)
    );
    assert_eq!(e.insn_bytes, Some(bytes));
    assert_eq!(e.next_rip, None, "exceptions do not save nRIP");
    let e = intercept::exception(&amd, &ctl, 13, Some(0x10), 0, None, None).unwrap();
    assert_eq!(
        (e.code, e.info1, e.info2),
        (ExitCode::VMEXIT_EXCP13, 0x10, 0)
    );
    // INT3's #BP saves nRIP.
    let e = intercept::exception(&amd, &ctl, 3, None, 0, Some(0x101), None).unwrap();
    assert_eq!(e.next_rip, Some(0x101));
    // Vector 2 is not an exception intercept (15.12.3); unset vectors pass.
    assert!(intercept::exception(&amd, &ctl, 2, None, 0, None, None).is_none());
    assert!(intercept::exception(&amd, &ctl, 6, None, 0, None, None).is_none());
    // No decode assists, no bytes.
    let first = SvmConfig::first_generation();
    let e = intercept::exception(&first, &ctl, 14, Some(2), 1, None, Some(bytes)).unwrap();
    assert_eq!(e.insn_bytes, None);
}

#[test]
fn intn_and_invlpg_decode_assists() {
    let ctl = misc1(Misc1::INTN | Misc1::INVLPG);
    let amd = SvmConfig::amd();
    let first = SvmConfig::first_generation();
    let e = intercept::intn(&amd, &ctl, 0x80, 2).unwrap();
    assert_eq!(
        (e.code, e.info1, e.next_rip),
        (ExitCode::VMEXIT_SWINT, 0x80, Some(2))
    );
    assert_eq!(intercept::intn(&first, &ctl, 0x80, 2).unwrap().info1, 0);
    let e = intercept::invlpg(&amd, &ctl, 0xffff_8000_0000_1000, 2).unwrap();
    assert_eq!(
        (e.code, e.info1),
        (ExitCode::VMEXIT_INVLPG, 0xffff_8000_0000_1000)
    );
    assert_eq!(intercept::invlpg(&first, &ctl, 0x1000, 2).unwrap().info1, 0);
}

#[test]
fn ioio_exit_information() {
    let amd = SvmConfig::amd();
    let base = VmcbBuilder::long_mode().build().get(F::IopmBasePa);
    let ctl = misc1(Misc1::IOIO_PROT);
    let mut mem = PageMem::new();
    mem.poke(base + 0x7f, &[1]); // port 3F8h
    let io = IoAccess {
        port: 0x3f8,
        size: 1,
        is_in: true,
        string: false,
        rep: false,
        address_size: AddressSize::A64,
        segment: SegReg::Ds,
    };
    let e = intercept::ioio(&amd, &ctl, &mut mem, &io, 0x4001).unwrap();
    // TYPE=IN, SZ8, A64, port 3F8h.
    assert_eq!(e.info1, 0x03f8_0211);
    assert_eq!(
        (e.code, e.info2, e.next_rip),
        (ExitCode::VMEXIT_IOIO, 0x4001, Some(0x4001))
    );
    // REP OUTSW with a32 from FS at port 3F7h (covers 3F7h-3F8h).
    let outs = IoAccess {
        port: 0x3f7,
        size: 2,
        is_in: false,
        string: true,
        rep: true,
        address_size: AddressSize::A32,
        segment: SegReg::Fs,
    };
    let e = intercept::ioio(&amd, &ctl, &mut mem, &outs, 0).unwrap();
    assert_eq!(
        e.info1,
        0x03f7_0000 | 4 << 10 | 1 << 8 | 1 << 5 | 1 << 3 | 1 << 2
    );
    // INS always reports ES; without decode assists, no SEG.
    let ins = IoAccess {
        is_in: true,
        ..outs
    };
    assert_eq!(ins.exit_info1(true) >> 10 & 7, 0);
    assert_eq!(outs.exit_info1(false) >> 10 & 7, 0);
    // A port whose bit is clear, or IOIO_PROT clear, does not exit.
    let other = IoAccess { port: 0x60, ..io };
    assert!(intercept::ioio(&amd, &ctl, &mut mem, &other, 0).is_none());
    let none = controls(Intercepts::default());
    assert!(intercept::ioio(&amd, &none, &mut mem, &io, 0).is_none());
}

#[test]
fn msr_exit_information() {
    let base = VmcbBuilder::long_mode().build().get(F::MsrpmBasePa);
    let ctl = misc1(Misc1::MSR_PROT);
    let mut mem = PageMem::new();
    mem.poke(base + 0x820, &[0b10]); // EFER writes
    assert!(intercept::msr(&ctl, &mut mem, 0xc000_0080, false, 0).is_none());
    let e = intercept::msr(&ctl, &mut mem, 0xc000_0080, true, 7).unwrap();
    assert_eq!(
        (e.code, e.info1, e.next_rip),
        (ExitCode::VMEXIT_MSR, 1, Some(7))
    );
    let e = intercept::msr(&ctl, &mut mem, 0x4000_0000, false, 7).unwrap();
    assert_eq!(e.info1, 0, "uncovered MSRs always exit");
    let none = controls(Intercepts::default());
    assert!(intercept::msr(&none, &mut mem, 0x4000_0000, false, 7).is_none());
}

#[test]
fn pause_filter_through_the_intercept() {
    let cfg = SvmConfig::amd();
    let b = VmcbBuilder::long_mode()
        .set(F::InterceptMisc1, Misc1::PAUSE.bits().into())
        .set(F::PauseFilterCount, 2);
    let mut ctl = controls_with(&cfg, b.clone());
    assert!(intercept::pause(&mut ctl, None, 1).is_none());
    assert!(intercept::pause(&mut ctl, Some(5), 1).is_none());
    let e = intercept::pause(&mut ctl, Some(5), 1).unwrap();
    assert_eq!((e.code, e.next_rip), (ExitCode::VMEXIT_PAUSE, Some(1)));
    // Without PauseFilter in the preset, the first PAUSE exits.
    let mut ctl = controls_with(&SvmConfig::first_generation(), b);
    assert!(intercept::pause(&mut ctl, None, 1).is_some());
}

#[test]
fn hlt_mwait_and_task_switch() {
    let ctl = controls(Intercepts {
        misc1: Misc1::HLT | Misc1::TASK_SWITCH,
        misc2: Misc2::MWAIT | Misc2::MWAIT_CONDITIONAL,
        misc3: Misc3::IDLE_HLT,
        ..Intercepts::default()
    });
    let amd = SvmConfig::amd();
    assert_eq!(
        intercept::hlt(&amd, &ctl, 0).unwrap().code,
        ExitCode::VMEXIT_HLT
    );
    let mut idle = controls(Intercepts {
        misc3: Misc3::IDLE_HLT,
        ..Intercepts::default()
    });
    assert_eq!(
        intercept::hlt(&amd, &idle, 0).unwrap().code,
        ExitCode::VMEXIT_IDLE_HLT
    );
    let first = SvmConfig::first_generation();
    assert!(
        intercept::hlt(&first, &idle, 0).is_none(),
        "not advertised: ignored"
    );
    idle.vintr.v_irq = true;
    assert!(
        intercept::hlt(&amd, &idle, 0).is_none(),
        "a virtual interrupt is pending"
    );
    assert_eq!(
        intercept::mwait(&ctl, true, 0).unwrap().code,
        ExitCode::VMEXIT_MWAIT_CONDITIONAL
    );
    assert_eq!(
        intercept::mwait(&ctl, false, 0).unwrap().code,
        ExitCode::VMEXIT_MWAIT
    );
    let cond = controls(Intercepts {
        misc2: Misc2::MWAIT_CONDITIONAL,
        ..Intercepts::default()
    });
    assert!(intercept::mwait(&cond, false, 0).is_none());
    let e = intercept::task_switch(&ctl, 0x28, TaskSwitchSource::Jmp, Some(0x1c), true).unwrap();
    assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_TASK_SWITCH, 0x28));
    assert_eq!(e.info2, 0x1c | 1 << 38 | 1 << 44 | 1 << 48);
    let e = intercept::task_switch(&ctl, 0x30, TaskSwitchSource::Iret, None, false).unwrap();
    assert_eq!(e.info2, 1 << 36);
}

#[test]
fn nested_page_fault_exit() {
    let amd = SvmConfig::amd();
    let b = InsnBytes::new(&[0xc7, 0x00, 1, 0, 0, 0]);
    let e = intercept::npf(
        &amd,
        intercept::NPF_FINAL_TRANSLATION | 0b111,
        0x1234_5000,
        Some(b),
    );
    assert_eq!(
        (e.code, e.info1, e.info2),
        (ExitCode::VMEXIT_NPF, 1 << 32 | 7, 0x1234_5000)
    );
    assert_eq!(e.insn_bytes.unwrap().len, 6);
    assert_eq!(e.next_rip, None);
}

#[test]
fn physical_interrupt_routing() {
    let mut ctl = misc1(Misc1::INTR);
    // GIF = 0 holds everything.
    assert_eq!(
        interrupts::intr(Some(&ctl), false, true, false),
        Routing::HeldPending
    );
    // Without V_INTR_MASKING the guest IF masks physical interrupts.
    assert_eq!(
        interrupts::intr(Some(&ctl), true, false, false),
        Routing::HeldPending
    );
    let exit = interrupts::intr(Some(&ctl), true, true, true);
    assert!(
        matches!(exit, Routing::Exit(e) if e.code == ExitCode::VMEXIT_INTR),
        "shadow does not hold the exit"
    );
    // With V_INTR_MASKING the host IF at VMRUN decides.
    ctl.vintr.v_intr_masking = true;
    ctl.host_if = false;
    assert_eq!(
        interrupts::intr(Some(&ctl), true, true, false),
        Routing::HeldPending
    );
    ctl.host_if = true;
    assert!(matches!(
        interrupts::intr(Some(&ctl), true, false, false),
        Routing::Exit(_)
    ));
    // Not intercepted: delivered to the guest unless shadowed.
    let plain = controls(Intercepts::default());
    assert_eq!(
        interrupts::intr(Some(&plain), true, true, false),
        Routing::Deliver
    );
    assert_eq!(
        interrupts::intr(Some(&plain), true, true, true),
        Routing::HeldPending
    );
    assert_eq!(interrupts::intr(None, true, true, false), Routing::Deliver);
}

#[test]
fn nmi_smi_init_in_guest_mode() {
    let ctl = misc1(Misc1::NMI | Misc1::SMI | Misc1::INIT);
    assert!(
        matches!(interrupts::nmi(Some(&ctl), true, true), Routing::Exit(e) if e.code == ExitCode::VMEXIT_NMI)
    );
    assert_eq!(
        interrupts::nmi(Some(&ctl), false, false),
        Routing::HeldPending
    );
    let plain = controls(Intercepts::default());
    assert_eq!(
        interrupts::nmi(Some(&plain), true, true),
        Routing::HeldPending
    );
    assert_eq!(interrupts::nmi(Some(&plain), true, false), Routing::Deliver);
    match interrupts::smi(Some(&ctl), true, true) {
        Routing::Exit(e) => assert_eq!((e.code, e.info1), (ExitCode::VMEXIT_SMI, 1)),
        r => panic!("{r:?}"),
    }
    assert!(matches!(interrupts::smi(Some(&ctl), true, false), Routing::Exit(e) if e.info1 == 0));
    assert!(matches!(
        interrupts::init(Some(&ctl), true, VmCr::R_INIT),
        Routing::Exit(_)
    ));
    assert!(matches!(
        interrupts::init(Some(&plain), true, VmCr::R_INIT),
        Routing::Redirect(_)
    ));
}

#[test]
fn virtual_interrupt_deliverability() {
    let mut ctl = controls(Intercepts::default());
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, true, false),
        VirtualIntr::NotPending
    );
    ctl.vintr = VIntr {
        v_irq: true,
        v_intr_prio: 5,
        v_tpr: 4,
        v_intr_vector: 0x41,
        ..VIntr::default()
    };
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, true, false),
        VirtualIntr::Deliver { vector: 0x41 }
    );
    // Priority must be strictly greater than V_TPR unless V_IGN_TPR.
    ctl.vintr.v_tpr = 5;
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, true, false),
        VirtualIntr::Masked
    );
    ctl.vintr.v_ign_tpr = true;
    assert!(matches!(
        interrupts::virtual_intr(&ctl, true, true, false),
        VirtualIntr::Deliver { .. }
    ));
    // IF, GIF and the shadow mask it.
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, false, false),
        VirtualIntr::Masked
    );
    assert_eq!(
        interrupts::virtual_intr(&ctl, false, true, false),
        VirtualIntr::Masked
    );
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, true, true),
        VirtualIntr::Masked
    );
    // VGIF in effect: V_GIF masks virtual interrupts.
    ctl.vgif = true;
    ctl.vintr.v_gif = false;
    assert_eq!(
        interrupts::virtual_intr(&ctl, true, true, false),
        VirtualIntr::Masked
    );
    ctl.vintr.v_gif = true;
    // The VINTR intercept fires just before delivery; V_IRQ stays set.
    ctl.intercepts.misc1 |= Misc1::VINTR;
    assert!(
        matches!(interrupts::virtual_intr(&ctl, true, true, false), VirtualIntr::Exit(e) if e.code == ExitCode::VMEXIT_VINTR)
    );
    assert!(ctl.vintr.v_irq);
    ctl.intercepts.misc1.remove(Misc1::VINTR);
    assert_eq!(interrupts::take_virtual_intr(&mut ctl), 0x41);
    assert!(!ctl.vintr.v_irq);
}

#[test]
fn virtual_nmi() {
    let b = VmcbBuilder::long_mode()
        .set(F::InterceptMisc1, Misc1::NMI.bits().into())
        .vintr(VIntr {
            vnmi_enable: true,
            v_nmi: true,
            ..VIntr::default()
        });
    let mut ctl = controls_with(&SvmConfig::amd(), b);
    assert!(interrupts::virtual_nmi_deliverable(&ctl, true, false));
    assert!(!interrupts::virtual_nmi_deliverable(&ctl, true, true));
    interrupts::take_virtual_nmi(&mut ctl);
    assert!(!ctl.vintr.v_nmi && ctl.vintr.v_nmi_mask);
    ctl.vintr.v_nmi = true;
    assert!(
        !interrupts::virtual_nmi_deliverable(&ctl, true, false),
        "masked until IRET"
    );
    interrupts::virtual_nmi_iret(&mut ctl);
    assert!(interrupts::virtual_nmi_deliverable(&ctl, true, false));
}
