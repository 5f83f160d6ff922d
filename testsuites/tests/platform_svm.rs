//! The platform's physical interrupts meeting AMD-V (APM Vol. 2 15.17 GIF,
//! 15.21.1 V_INTR_MASKING, table 15-12): a local APIC interrupt pending when
//! L2 runs with the INTR intercept exits with #VMEXIT(INTR) and stays pending
//! for the host, which takes it once GIF is set again; GIF = 0 holds it in
//! the host; without the intercept and V_INTR_MASKING it goes through the L2
//! IDT under the guest's IF.

mod svm_common;

use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::platform::{ap_sends, lapic_write, settle, start_ap, ICR_INIT};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{Misc1, VIntr};
use svm_model::{ExitCode as X, VmcbField as F};

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
                a.pause()?;
                a.jmp(lp.l)
            })?;
            start_ap(a, &ap_sends(1000, &[ICR_INIT])?)?;
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
