//! Table tests of the exit decisions.

use super::*;
use crate::controls::{
    ExitControls as Ex, PinControls as Pin, Proc2Controls as P2, ProcControls as P1,
};
use crate::event::{ActivityState as A, Interruptibility as I};
use crate::exit::ExitReason as R;
use crate::mem::{Access, FlatMem, PhysMem};

fn ctl(proc: P1, proc2: P2) -> Controls {
    Controls {
        proc,
        proc2,
        ..Default::default()
    }
}

/// (bitmap, mask, match, vector, error code, exits)
type ExceptionRow = (u32, u32, u32, u8, Option<u32>, bool);

#[test]
fn exception_bitmap_and_page_fault_filtering() {
    let rows: &[ExceptionRow] = &[
        (1 << 6, 0, 0, 6, None, true),          // #UD intercepted
        (1 << 6, 0, 0, 13, Some(0), false),     // #GP not intercepted
        (1 << 3, 0, 0, 3, None, true),          // INT3 (software exception) uses the bitmap
        (1 << 14, 0, 0, 14, Some(0x2), true),   // bit 14 set, mask=match=0: every #PF
        (0, 0, 0, 14, Some(0x2), false),        // bit 14 clear, mask=match=0: none
        (0, 0, 0xffff_ffff, 14, Some(0), true), // bit 14 clear, impossible match: every #PF
        (1 << 14, 1, 1, 14, Some(0x3), true),   // only protection violations (P=1)
        (1 << 14, 1, 1, 14, Some(0x2), false),  // not-present fault filtered out
        (0, 1, 1, 14, Some(0x2), true),         // inverted: not-present faults exit
        (u32::MAX, 0, 0, 0x80, None, false),    // INT n never uses the bitmap
    ];
    for &(bitmap, mask, matchv, vector, ec, exits) in rows {
        let c = Controls {
            exception_bitmap: bitmap,
            pf_mask: mask,
            pf_match: matchv,
            ..Default::default()
        };
        assert_eq!(
            exception_exits(&c, vector, ec),
            exits,
            "{bitmap:#x} {mask:#x} {matchv:#x} {vector} {ec:?}"
        );
    }
}

fn bitmaps() -> (FlatMem, Controls) {
    let mut m = FlatMem::new(0x10000);
    // I/O bitmap A at 0x1000: port 0x60 and 0x7fff; B at 0x2000: port 0x8000.
    m.write(0x1000 + 0x60 / 8, &[1 << (0x60 % 8)], Access::IoBitmap);
    m.write(0x1000 + 0x7fff / 8, &[0x80], Access::IoBitmap);
    m.write(0x2000, &[1], Access::IoBitmap);
    // MSR bitmaps at 0x3000: read-low 0x10, write-low 0x10 not set, read-high
    // C0000080H, write-high C0000100H.
    m.write(0x3000 + 0x10 / 8, &[1 << (0x10 % 8)], Access::MsrBitmap);
    m.write(0x3000 + 0x400 + 0x80 / 8, &[1], Access::MsrBitmap);
    m.write(0x3000 + 0xc00 + 0x100 / 8, &[1], Access::MsrBitmap);
    let c = Controls {
        proc: P1::USE_IO_BITMAPS | P1::USE_MSR_BITMAPS,
        io_bitmaps: [0x1000, 0x2000],
        msr_bitmap: 0x3000,
        ..Default::default()
    };
    (m, c)
}

#[test]
fn io_bitmaps_unconditional_and_wrap() {
    let (mut m, c) = bitmaps();
    let rows: &[(u16, u8, bool)] = &[
        (0x60, 1, true),
        (0x61, 1, false),
        (0x5f, 2, true),   // second byte is 0x60
        (0x7ffe, 2, true), // second byte 0x7fff in A
        (0x7fff, 2, true),
        (0x8001, 4, false),
        (0x8000, 1, true), // bitmap B
        (0xfffe, 2, false),
        (0xffff, 2, true), // wraps past FFFFH
    ];
    for &(port, size, exits) in rows {
        assert_eq!(
            io_exits(&c, &mut m, port, size),
            exits,
            "port {port:#x} size {size}"
        );
    }
    // Bitmaps override unconditional I/O exiting; without bitmaps it decides alone.
    let both = Controls {
        proc: c.proc | P1::UNCONDITIONAL_IO_EXITING,
        ..c
    };
    assert!(!io_exits(&both, &mut m, 0x61, 1));
    let uncond = ctl(P1::UNCONDITIONAL_IO_EXITING, P2::empty());
    assert!(io_exits(&uncond, &mut m, 0x61, 1));
    assert!(!io_exits(&Controls::default(), &mut m, 0x60, 1));
}

#[test]
fn msr_bitmaps() {
    let (mut m, c) = bitmaps();
    let rows: &[(u32, bool, bool)] = &[
        (0x10, false, true),
        (0x10, true, false),
        (0x11, false, false),
        (0xc000_0080, false, true),
        (0xc000_0080, true, false),
        (0xc000_0100, true, true),
        (0xc000_0100, false, false),
        (0x2000, false, true),      // outside both ranges
        (0xc000_2000, true, true),  // outside both ranges
        (0x4000_0000, false, true), // hypervisor range: outside
    ];
    for &(index, write, exits) in rows {
        assert_eq!(
            msr_exits(&c, &mut m, index, write),
            exits,
            "{index:#x} write={write}"
        );
    }
    assert!(
        msr_exits(&Controls::default(), &mut m, 0x11, false),
        "no bitmaps: always"
    );
}

#[test]
fn control_register_rules() {
    let c = Controls {
        proc: P1::CR3_LOAD_EXITING,
        cr0_mask: 0x8000_0021, // PG, NE, PE owned by the host
        cr0_shadow: 0x8000_0031,
        cr4_mask: 0x2000, // VMXE owned
        cr4_shadow: 0,
        cr3_target_count: 2,
        cr3_targets: [0x1000, 0x2000, 0x3000, 0],
        ..Default::default()
    };
    assert!(!cr0_write_exits(&c, 0x8000_0031));
    assert!(
        !cr0_write_exits(&c, 0x8004_0033),
        "guest-owned bits may change"
    );
    assert!(
        cr0_write_exits(&c, 0x8000_0011),
        "NE differs from the shadow"
    );
    assert!(cr4_write_exits(&c, 0x2020));
    assert!(!cr4_write_exits(&c, 0x20));
    // Guest reads see the shadow for owned bits.
    assert_eq!(guest_cr_read(&c, CrKind::Cr4, 0x2020), 0x20);
    assert_eq!(guest_cr_read(&c, CrKind::Cr0, 0x8005_0033), 0x8005_0033);
    assert_eq!(guest_cr_write(&c, CrKind::Cr4, 0x2000, 0x20), 0x2020);
    // CR3 targets: only the first `count` values count.
    assert!(!cr3_load_exits(&c, 0x2000));
    assert!(cr3_load_exits(&c, 0x3000));
    let zero = Controls {
        cr3_target_count: 0,
        ..c
    };
    assert!(cr3_load_exits(&zero, 0x1000));
    assert!(!cr3_load_exits(&Controls::default(), 0x1000));
}

#[test]
fn clts_and_lmsw() {
    let ts = 1 << 3;
    let mut c = Controls {
        cr0_mask: ts,
        cr0_shadow: ts,
        ..Default::default()
    };
    assert!(clts_exits(&c));
    c.cr0_shadow = 0;
    assert!(!clts_exits(&c));
    // LMSW: PE owned and clear in the shadow, source sets PE -> exit.
    let c = Controls {
        cr0_mask: 1,
        cr0_shadow: 0,
        ..Default::default()
    };
    assert!(lmsw_exits(&c, 1));
    assert!(!lmsw_exits(&c, 0));
    // MP owned, shadow MP = 1: changing MP exits.
    let c = Controls {
        cr0_mask: 2,
        cr0_shadow: 2,
        ..Default::default()
    };
    assert!(lmsw_exits(&c, 0));
    assert!(!lmsw_exits(&c, 2));
    // Value: owned MP kept, EM/TS from the source, PE cannot be cleared.
    assert_eq!(lmsw_value(&c, 0x33, 0xc), 0x3f);
    assert_eq!(lmsw_value(&Controls::default(), 0x31, 0x0), 0x31);
}

#[test]
fn tpr_shadow() {
    let c = Controls {
        proc: P1::USE_TPR_SHADOW,
        tpr_threshold: 5,
        ..Default::default()
    };
    assert_eq!(vtpr_from_cr8(0x3), 0x30);
    assert!(tpr_below_threshold(&c, 0x40));
    assert!(!tpr_below_threshold(&c, 0x50));
    let vid = Controls {
        proc2: P2::VIRTUAL_INTERRUPT_DELIVERY,
        ..c
    };
    assert!(!tpr_below_threshold(&vid, 0x00));
}

#[test]
fn instruction_table() {
    use Decision::{Execute as E, Exit as X, Undefined as U};
    let none = Controls::default();
    let all = ctl(P1::all(), P2::all());
    let rows: &[(Insn, Decision, Decision)] = &[
        // (instruction, with no controls, with every control)
        (Insn::Cpuid, X(R::Cpuid), X(R::Cpuid)),
        (Insn::Invd, X(R::Invd), X(R::Invd)),
        (Insn::Xsetbv, X(R::Xsetbv), X(R::Xsetbv)),
        (Insn::Getsec { smxe: false }, U, U),
        (Insn::Getsec { smxe: true }, X(R::Getsec), X(R::Getsec)),
        (Insn::Hlt, E, X(R::Hlt)),
        (Insn::Invlpg, E, X(R::Invlpg)),
        (Insn::Invpcid, U, X(R::Invpcid)),
        (Insn::Mwait, E, X(R::Mwait)),
        (Insn::Monitor, E, X(R::Monitor)),
        (Insn::Rdpmc, E, X(R::Rdpmc)),
        (Insn::Rdtsc, E, X(R::Rdtsc)),
        (Insn::Rdtscp, U, X(R::Rdtscp)),
        (Insn::Rdrand, E, X(R::Rdrand)),
        (Insn::Rdseed, E, X(R::Rdseed)),
        (Insn::Wbinvd, E, X(R::Wbinvd)),
        (Insn::Pause, E, X(R::Pause)),
        (Insn::MovDr, E, X(R::MovDr)),
        (Insn::MovFromCr3, E, X(R::ControlRegisterAccess)),
        (Insn::MovToCr8, E, X(R::ControlRegisterAccess)),
        (Insn::MovFromCr8, E, X(R::ControlRegisterAccess)),
        (Insn::GdtrIdtrAccess, E, X(R::GdtrIdtrAccess)),
        (Insn::LdtrTrAccess, E, X(R::LdtrTrAccess)),
        (Insn::Xsaves { mask: 1 }, U, E), // XSS-exiting bitmap is 0
    ];
    for &(insn, bare, full) in rows {
        assert_eq!(instruction(&none, insn), bare, "{insn:?} without controls");
        assert_eq!(instruction(&all, insn), full, "{insn:?} with every control");
    }
    let xss = Controls {
        xss_exiting_bitmap: 1 << 8,
        ..all
    };
    assert_eq!(
        instruction(&xss, Insn::Xrstors { mask: 1 << 8 }),
        X(R::Xrstors)
    );
    assert_eq!(instruction(&xss, Insn::Xsaves { mask: 1 << 9 }), E);
}

#[test]
fn windows_and_event_exits() {
    let c = ctl(
        P1::INTERRUPT_WINDOW_EXITING | P1::NMI_WINDOW_EXITING,
        P2::empty(),
    );
    assert!(interrupt_window_exit(&c, true, I::empty(), A::Active));
    assert!(interrupt_window_exit(&c, true, I::NMI, A::Hlt));
    assert!(!interrupt_window_exit(&c, false, I::empty(), A::Active));
    assert!(!interrupt_window_exit(&c, true, I::STI, A::Active));
    assert!(!interrupt_window_exit(&c, true, I::empty(), A::Shutdown));
    assert!(nmi_window_exit(&c, I::empty(), A::Shutdown));
    assert!(!nmi_window_exit(&c, I::NMI, A::Active));
    assert!(!nmi_window_exit(&c, I::MOV_SS, A::Active));
    assert!(!nmi_window_exit(&c, I::empty(), A::WaitForSipi));
    let pin = Controls {
        pin: Pin::EXTERNAL_INTERRUPT_EXITING | Pin::NMI_EXITING,
        ..Default::default()
    };
    assert!(nmi_exits(&pin));
    let no_ack = external_interrupt_exit(&pin, 0x30).unwrap();
    assert_eq!(
        (no_ack.reason, no_ack.interruption),
        (R::ExternalInterrupt, None)
    );
    let ack = Controls {
        exit: Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT,
        ..pin
    };
    let e = external_interrupt_exit(&ack, 0x30).unwrap();
    assert_eq!(e.interruption.unwrap().info.0, 0x8000_0030);
    assert!(external_interrupt_exit(&Controls::default(), 0x30).is_none());
}

#[test]
fn tsc_timer_and_pause_loop() {
    let mut c = ctl(P1::USE_TSC_OFFSETTING, P2::empty());
    c.tsc_offset = (-1000i64) as u64;
    assert_eq!(guest_tsc(&c, 5000), 4000);
    c.proc2 = P2::USE_TSC_SCALING;
    c.tsc_multiplier = 2 << 48; // x2
    assert_eq!(guest_tsc(&c, 5000), 9000);
    c.proc = P1::empty();
    assert_eq!(guest_tsc(&c, 5000), 5000, "scaling needs offsetting");
    // Rate 5: one tick per 32 TSC cycles.
    assert_eq!(preemption_timer_decrements(5, 31, 32), 1);
    assert_eq!(preemption_timer_decrements(5, 32, 63), 0);
    assert_eq!(preemption_timer_decrements(5, 0, 320), 10);
    // PLE: gap 10, window 100.
    let c = Controls {
        ple_gap: 10,
        ple_window: 100,
        ..Default::default()
    };
    let mut p = PauseLoop::default();
    let exits: Vec<bool> = [0, 5, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110]
        .iter()
        .map(|&t| p.pause(&c, t))
        .collect();
    // A new loop starts at 50 (gap 45 > 10); it exceeds the window at 155.
    assert!(exits.iter().all(|e| !e));
    let mut t = 110;
    while !p.pause(&c, t) {
        t += 5;
    }
    assert_eq!(t, 155);
}

#[test]
fn signals_task_switch_and_mtf() {
    use crate::exit::qual::TaskSwitchSource;
    assert!(init_signal_exits(A::Hlt));
    assert!(!init_signal_exits(A::WaitForSipi));
    assert_eq!(sipi_exit(A::Active, 0x9a), None);
    let s = sipi_exit(A::WaitForSipi, 0x9a).unwrap();
    assert_eq!((s.reason, s.qualification), (R::StartupIpi, 0x9a));
    assert_eq!(triple_fault_exit().reason, R::TripleFault);
    let t = task_switch_exit(0x28, TaskSwitchSource::Jmp, Some(5));
    assert_eq!((t.qualification, t.instruction_len), (0x8000_0028, Some(5)));
    assert!(monitor_trap_flag(&ctl(P1::MONITOR_TRAP_FLAG, P2::empty())));
}
