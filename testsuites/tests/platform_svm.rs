//! The platform's physical interrupts meeting AMD-V (APM Vol. 2 15.17 GIF,
//! 15.21.1 V_INTR_MASKING, table 15-12): a local APIC interrupt pending when
//! L2 runs with the INTR intercept exits with #VMEXIT(INTR) and stays pending
//! for the host, which takes it once GIF is set again; GIF = 0 holds it in
//! the host; without the intercept and V_INTR_MASKING it goes through the L2
//! IDT under the guest's IF. An SMI is held and exits alike (table 15-14);
//! a frozen x87 wait with CR0.NE = 0 exits with FERR_FREEZE (15.14) or waits
//! for IRQ 13.

mod svm_common;

use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::platform::{
    ap_sends, ap_sends_when_told, lapic_write, out, pic_init, settle, start_ap, tell_ap, AP_SENT,
    ICR_INIT,
};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{Misc1, VIntr};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::that;

/// Emits: a pending local APIC interrupt 40H (self IPI while IF = 0).
fn pend_40(a: &mut Asm) -> AsmResult {
    lapic_write(a, 0xf0, 0x1ff)?;
    lapic_write(a, 0x300, 0x4_0040)
}

#[test]
fn physical_interrupts_and_svm() {
    let mut s = Suite::new();
    s.case(
        "an intercepted INTR exits and the host takes it after STGI",
        |a, s| {
            set_mode(a, 0x40, COUNT | EOI_XAPIC)?;
            clear_counts(a)?;
            let l2 = l2_code(a, |a| {
                let mut lp = a.label();
                a.nop()?;
                a.set(&mut lp)?;
                a.pause()?;
                a.jmp(lp.l)
            })?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::INTR.bits() as u64)?;
                let v = VIntr {
                    v_intr_masking: true,
                    ..VIntr::default()
                };
                svm::set(a, VMCB, F::VIntrControl, v.to_raw() as u64)?;
                pend_40(a)?;
                a.clgi()?;
                a.sti()
            })?;
            a.mov(r10, rax)?;
            load_count(a, 0x40)?;
            a.mov(r11, rax)?;
            a.stgi()?;
            settle(a)?;
            a.cli()?;
            load_count(a, 0x40)?;
            a.mov(r9, rax)?;
            a.mov(rax, r10)
        },
        vec![
            code(X::VMEXIT_INTR),
            named("taken before STGI", 11, 0),
            named("taken after STGI", 9, 1),
        ],
    );
    s.case(
        "GIF = 0 holds a physical interrupt in the host",
        |a, _| {
            set_mode(a, 0x40, COUNT | EOI_XAPIC)?;
            clear_counts(a)?;
            pend_40(a)?;
            a.clgi()?;
            a.sti()?;
            settle(a)?;
            load_count(a, 0x40)?;
            a.mov(r9, rax)?;
            a.stgi()?;
            settle(a)?;
            a.cli()?;
            load_count(a, 0x40)?;
            a.mov(r10, rax)
        },
        vec![named("held by GIF", 9, 0), named("taken after STGI", 10, 1)],
    );
    s.case(
        "without the intercept it goes through the L2 IDT",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.nop()?;
                a.vmmcall()
            })?;
            run_l2(a, s, &l2, |a| {
                svm::set(a, VMCB, F::Rflags, 0x202)?;
                pend_40(a)?;
                a.clgi()
            })?;
            l2_log(a, r9, svm::log::VECTOR)?;
            // The L2 handler does not EOI the physical APIC; the host does.
            a.push(rax)?;
            lapic_write(a, 0xb0, 0)?;
            a.pop(rax)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("L2 took vector 40h", 9, 0x41),
        ],
    );
    s.run();
}

/// An intercepted physical INIT (APM Vol. 2 15.13.3, table 15-12): the AP
/// sends an INIT to the BSP while its L2 spins; L2 exits with
/// #VMEXIT(INIT), and the INIT stays pending for the host, where GIF = 0
/// (as every #VMEXIT leaves it) holds it.
#[test]
fn an_intercepted_init_exits_and_gif_holds_it() {
    let mut s = Suite::new();
    s.case(
        "an intercepted INIT exits with #VMEXIT(INIT)",
        |a, s| {
            let l2 = l2_code(a, |a| {
                let mut lp = a.label();
                a.nop()?;
                a.set(&mut lp)?;
                tell_ap(a)?;
                a.pause()?;
                a.jmp(lp.l)
            })?;
            start_ap(a, &ap_sends_when_told(&[ICR_INIT])?)?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::INIT.bits() as u64)
            })
        },
        vec![code(X::VMEXIT_INIT)],
    );
    let mut cfg = amd();
    cfg.platform.cpus = 2;
    let o = s.run_with(cfg);
    let bsp = &o.machine.dev.lapics[0];
    assert!(bsp.init_pending, "held in the host while GIF = 0");
    let by = &o.machine.stats.vmexits.by_reason;
    assert_eq!(by.get("VMEXIT_INIT"), Some(&1), "{by:?}");
}

/// ICR low word: SMI (delivery mode 010B, assert, physical; the vector
/// field is 0, SDM Vol. 3A 11.6.1).
const ICR_SMI: u32 = 0x4200;
/// A counter the spinning L2 increments.
const L2_COUNT: u64 = svm::L2_LOG + 0x800;

/// An intercepted physical SMI (APM Vol. 2 15.13.3, tables 15-10 and 15-14):
/// the AP sends an SMI IPI to the BSP while its L2 spins; L2 exits with
/// #VMEXIT(SMI), EXITINFO1 bit 0 set (an external SMI, not I/O trapping),
/// and the SMI stays pending for the host: GIF = 0, as the exit leaves it,
/// holds it, so the next VMRUN (which sets GIF) exits again before L2 runs
/// an instruction; STGI lets the host take it. SMM is not modelled: a taken
/// SMI is counted and dropped (`LocalApic::smi_count`). Without the
/// intercept L2 takes it in the same way and goes on.
#[test]
fn an_intercepted_smi_exits_and_gif_holds_it() {
    let mut s = Suite::new();
    s.case(
        "an intercepted SMI exits with #VMEXIT(SMI), held by GIF = 0",
        |a, s| {
            let l2 = l2_code(a, |a| {
                let mut lp = a.label();
                a.nop()?;
                a.set(&mut lp)?;
                a.inc(qword_ptr(L2_COUNT as u32 as u64))?;
                tell_ap(a)?;
                a.pause()?;
                a.jmp(lp.l)
            })?;
            start_ap(a, &ap_sends_when_told(&[ICR_SMI])?)?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::SMI.bits() as u64)
            })?;
            a.mov(r9, rax)?;
            a.mov(r10, rbx)?;
            a.mov(r14, rcx)?;
            a.mov(r11, qword_ptr(L2_COUNT as u32 as u64))?;
            // Again, still with GIF = 0 since the exit.
            svm::vmrun(a, VMCB)?;
            read_exit(a, VMCB)?;
            a.mov(r12, rax)?;
            a.mov(r13, qword_ptr(L2_COUNT as u32 as u64))?;
            a.stgi()?;
            settle(a)?;
            a.mov(rcx, r14)?;
            a.mov(rbx, r10)?;
            a.mov(rax, r9)
        },
        vec![
            code(X::VMEXIT_SMI),
            info1(1),
            info2(0),
            that("L2 ran before the SMI", |r| r.gprs[11] > 0),
            named("the next VMRUN exits with SMI again", 12, X::VMEXIT_SMI.0),
            that("before L2 ran an instruction", |r| r.gprs[13] == r.gprs[11]),
        ],
    );
    s.case(
        "without the intercept L2 takes the SMI and goes on",
        |a, s| {
            let l2 = l2_code(a, |a| {
                let mut lp = a.label();
                a.nop()?;
                a.set(&mut lp)?;
                a.pause()?;
                a.cmp(byte_ptr(AP_SENT), 0)?;
                a.je(lp.l)?;
                settle(a)?;
                a.vmmcall()
            })?;
            start_ap(a, &ap_sends(1000, &[ICR_SMI])?)?;
            run_l2(a, s, &l2, |_| Ok(()))
        },
        vec![code(X::VMEXIT_VMMCALL)],
    );
    let mut cfg = amd();
    cfg.platform.cpus = 2;
    let o = s.run_with(cfg);
    let bsp = &o.machine.dev.lapics[0];
    assert!(!bsp.smi_pending, "taken after STGI and in L2");
    assert_eq!(bsp.smi_count, 2, "one SMI taken by the host, one by L2");
    let by = &o.machine.stats.vmexits.by_reason;
    assert_eq!(by.get("VMEXIT_SMI"), Some(&2), "{by:?}");
}

/// L2 code: an unmasked zero divide left pending (CR0.NE = 0 in its VMCB),
/// then a waiting FWAIT at the label returned, then VMMCALL.
fn pending_x87_error(a: &mut Asm) -> Result<(Label, Label), iced_x86::IcedError> {
    let mut at = a.label();
    let l2 = l2_code(a, |a| {
        a.fninit()?;
        a.push(0x37bi32)?;
        a.fldcw(word_ptr(rsp))?;
        a.pop(rax)?;
        a.fld1()?;
        a.fldz()?;
        a.fdivp(st1, st0)?;
        a.set(&mut at)?;
        a.wait()?;
        a.vmmcall()
    })?;
    Ok((l2, at))
}

/// L2's CR0 with NE clear: legacy x87 error reporting.
const L2_CR0_NO_NE: u64 = svm::L2_CR0 & !(1 << 5);

/// FERR_FREEZE (APM Vol. 2 15.14, exit code 7EH): an L2 with CR0.NE = 0
/// whose FWAIT would freeze on a pending unmasked x87 error exits instead,
/// on the FWAIT, with no NRIP and no exit information. Without the
/// intercept it freezes there, FERR# raises IRQ 13 through the 8259, and
/// the interrupt (vector 2DH through L2's IDT) ends the freeze, pushing the
/// FWAIT's address.
#[test]
fn ferr_freeze() {
    let mut s = Suite::new();
    s.case(
        "the FERR_FREEZE intercept",
        |a, s| {
            let (l2, at) = pending_x87_error(a)?;
            run_l2(a, s, &l2, |a| {
                svm::set(a, VMCB, F::Cr0, L2_CR0_NO_NE)?;
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::FERR_FREEZE.bits() as u64)
            })?;
            a.lea(r9, ptr(at.l))?;
            // FERR# is still asserted: clear the error, which drops it.
            a.fninit()
        },
        vec![
            code(X::VMEXIT_FERR_FREEZE),
            info1(0),
            info2(0),
            that("RIP is the FWAIT", |r| r.gprs[reg::RIP] == r.gprs[9]),
            named("NRIP", reg::NRIP, 0),
        ],
    );
    s.case(
        "without the intercept L2 freezes until IRQ 13",
        |a, s| {
            let (l2, at) = pending_x87_error(a)?;
            lapic_write(a, 0x350, 0x700)?;
            pic_init(a, 0x20, 0x28, false, (0xfb, 0xdf))?;
            run_l2(a, s, &l2, |a| {
                svm::set(a, VMCB, F::Cr0, L2_CR0_NO_NE)?;
                svm::set(a, VMCB, F::Rflags, 0x202)
            })?;
            a.lea(r9, ptr(at.l))?;
            l2_log(a, r10, svm::log::VECTOR)?;
            l2_log(a, r11, svm::log::RIP)?;
            // Port F0H, clear the error, EOI both 8259s (L2's handler did
            // not), mask them again.
            a.push(rax)?;
            out(a, 0xf0, 1, 0)?;
            a.fninit()?;
            out(a, 0xa0, 1, 0x20)?;
            out(a, 0x20, 1, 0x20)?;
            out(a, 0xa1, 1, 0xff)?;
            out(a, 0x21, 1, 0xff)?;
            lapic_write(a, 0x350, 0x1_0000)?;
            a.pop(rax)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("L2 took vector 2DH (IRQ 13)", 10, 0x2e),
            that("the interrupt pushed the FWAIT's address", |r| {
                r.gprs[11] == r.gprs[9]
            }),
        ],
    );
    let o = s.run();
    assert!(!o.machine.dev.ferr.asserted, "FNINIT dropped FERR#");
    let by = &o.machine.stats.vmexits.by_reason;
    assert_eq!(by.get("VMEXIT_FERR_FREEZE"), Some(&1), "{by:?}");
}
