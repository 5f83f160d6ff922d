//! The platform's physical interrupts meeting VT-x (SDM Vol. 3C 26.2, "Other
//! Causes of VM Exits"; 26.4.1, "Event Blocking"; 28.2.2, "Information for
//! VM Exits Due to Vectored Events"): local APIC interrupts and NMIs pending
//! while L2 runs, with and without "external-interrupt exiting",
//! "acknowledge interrupt on exit" and "NMI exiting", and a halted L2 woken
//! by the local APIC timer.

mod vmx_common;

use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::platform::{
    ap_sends, lapic_enable, lapic_read, lapic_write, start_ap, AP_SENT, ICR_INIT, ICR_SIPI_42,
};
use guestkit::vmx::{
    at, layout, store_user, var, vmclr, vmor, vmr, vmw, VmxCase, VmxRt, GUEST_EXCEPTION,
};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use vmx_common::*;
use vmx_model::controls::{ExitControls as Ex, PinControls as Pin};
use vmx_model::Field as F;

/// Valid external interrupt, vector 40H.
const EXT_40: u64 = 0x8000_0040;
/// Valid NMI (type 2, vector 2).
const NMI: u64 = 0x8000_0202;

/// L1: a pending local APIC interrupt 40H (self IPI while L1 has IF = 0).
fn pend_40(a: &mut Asm) -> AsmResult {
    lapic_enable(a)?;
    lapic_write(a, 0x300, 0x4_0040)
}

/// L1: count vector `v` in L1's IDT and EOI it.
fn l1_handles(a: &mut Asm, v: u8) -> AsmResult {
    set_mode(a, v, COUNT | EOI_XAPIC)?;
    clear_counts(a)
}

/// L1 exit code: on exit `r` run `then` and resume L2 where it was (the exit
/// is not caused by an instruction, so nothing is skipped); otherwise the
/// default (finish on VMCALL).
fn on(
    r: u64,
    then: impl Fn(&mut Asm) -> AsmResult + 'static,
) -> impl Fn(&mut Asm, &VmxRt) -> AsmResult + 'static {
    move |a, rt| {
        let mut other = a.label();
        vmr(a, rax, F::ExitReason)?;
        a.cmp(eax, r as i32)?;
        a.jne(other.l)?;
        then(a)?;
        a.jmp(rt.resume.l)?;
        a.set(&mut other)?;
        a.jmp(rt.default_exit.l)
    }
}

/// L1: lets a pending interrupt in for one instruction, then user slot
/// `slot` = the count of vector `v`.
fn drain(a: &mut Asm, v: u8, slot: u64) -> AsmResult {
    a.sti()?;
    a.nop()?;
    a.cli()?;
    load_count(a, v)?;
    store_user(a, slot, rax)
}

/// L2: a physical NMI to itself (ICR: physical destination 0, delivery mode
/// NMI); the NMI is pending at the next boundary.
fn self_nmi(a: &mut Asm) -> AsmResult {
    a.mov(rcx, 0xfee0_0310u64)?;
    a.mov(dword_ptr(rcx), 0)?;
    a.mov(rcx, 0xfee0_0300u64)?;
    a.mov(dword_ptr(rcx), 0x400)
}

#[test]
fn physical_interrupts_and_vmx() {
    let mut t = Table::default();
    t.case(
        VmxCase::guest(
            "an external interrupt exits with its vector even with IF = 0",
            |a, _| {
                a.cli()?;
                a.mov(r12d, 1i32)?;
                a.vmcall()
            },
        )
        .setup(|a, _| {
            vmor(
                a,
                F::PinBasedControls,
                Pin::EXTERNAL_INTERRUPT_EXITING.bits() as u64,
            )?;
            vmor(
                a,
                F::ExitControls,
                Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
            )?;
            vmclr(a, F::GuestRflags, 0x200)?;
            pend_40(a)
        })
        .on_exit(on(1, |a| lapic_write(a, 0xb0, 0))),
        vec![
            reason(0, 1),
            intr(0, EXT_40),
            reason(1, 18),
            gpr(12, 1),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "without acknowledge interrupt on exit it stays pending for L1",
            |a, _| {
                a.mov(r12d, 1i32)?;
                a.vmcall()
            },
        )
        .setup(|a, _| {
            l1_handles(a, 0x40)?;
            vmor(
                a,
                F::PinBasedControls,
                Pin::EXTERNAL_INTERRUPT_EXITING.bits() as u64,
            )?;
            vmclr(
                a,
                F::ExitControls,
                Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
            )?;
            pend_40(a)
        })
        .on_exit(on(1, |a| {
            // IRR bit 40H (register 220H, bit 0).
            lapic_read(a, 0x220)?;
            a.and(eax, 1i32)?;
            store_user(a, 0, rax)?;
            drain(a, 0x40, 1)
        })),
        vec![
            reason(0, 1),
            intr(0, 0),
            user(0, 1),
            user(1, 1),
            reason(1, 18),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "without external-interrupt exiting it goes through L2's IDT",
            |a, _| {
                a.mov(r12d, 1i32)?;
                a.vmcall()
            },
        )
        .setup(|a, _| {
            vmclr(
                a,
                F::PinBasedControls,
                Pin::EXTERNAL_INTERRUPT_EXITING.bits() as u64,
            )?;
            vmor(a, F::GuestRflags, 0x200)?;
            pend_40(a)
        })
        .on_exit(|a, rt| {
            // L2's stub does not EOI: L1 does.
            lapic_write(a, 0xb0, 0)?;
            a.jmp(rt.default_exit.l)
        }),
        vec![gpr(15, GUEST_EXCEPTION + 0x40), reason(0, 18), exits(1)],
    );
    t.case(
        VmxCase::guest(
            "without external-interrupt exiting L2's IF = 0 holds it",
            |a, _| {
                a.xor(r15d, r15d)?;
                a.mov(r12d, 0x4444i32)?;
                a.vmcall()
            },
        )
        .setup(|a, _| {
            l1_handles(a, 0x40)?;
            vmclr(
                a,
                F::PinBasedControls,
                Pin::EXTERNAL_INTERRUPT_EXITING.bits() as u64,
            )?;
            vmclr(a, F::GuestRflags, 0x200)?;
            pend_40(a)
        })
        .on_exit(|a, rt| {
            drain(a, 0x40, 0)?;
            a.jmp(rt.default_exit.l)
        }),
        vec![
            gpr(12, 0x4444),
            gpr(15, 0),
            reason(0, 18),
            user(0, 1),
            exits(1),
        ],
    );
    t.case(
        VmxCase::guest("an NMI exits with NMI exiting", |a, _| {
            a.xor(r15d, r15d)?;
            self_nmi(a)?;
            a.mov(r12d, 1i32)?;
            a.vmcall()
        })
        .setup(|a, _| vmor(a, F::PinBasedControls, Pin::NMI_EXITING.bits() as u64))
        .on_exit(on(0, |_| Ok(()))),
        vec![
            reason(0, 0),
            intr(0, NMI),
            reason(1, 18),
            gpr(12, 1),
            gpr(15, 0),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "the local APIC timer wakes a halted L2 with IF = 0 into an exit",
            |a, _| {
                a.cli()?;
                a.hlt()?;
                a.mov(r12d, 1i32)?;
                a.vmcall()
            },
        )
        .setup(|a, _| {
            vmor(
                a,
                F::PinBasedControls,
                Pin::EXTERNAL_INTERRUPT_EXITING.bits() as u64,
            )?;
            vmor(
                a,
                F::ExitControls,
                Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT.bits() as u64,
            )?;
            lapic_enable(a)?;
            lapic_write(a, 0x3e0, 0xb)?; // divide by 1
            lapic_write(a, 0x320, 0x41)?; // one-shot, vector 41H
            lapic_write(a, 0x380, 5000) // initial count
        })
        .on_exit(on(1, |a| {
            lapic_write(a, 0xb0, 0)?;
            vmw(a, F::GuestActivityState, 0)
        })),
        vec![
            reason(0, 1),
            intr(0, 0x8000_0041),
            that("L2 was halted at the exit", |r| r.exits[0].activity == 1),
            reason(1, 18),
            gpr(12, 1),
            exits(2),
        ],
    );
    let n = t.checks.len();
    let run = t.run();
    let by = &run.outcome.machine.stats.vmexits.by_reason;
    eprintln!("vmx platform interrupts: {n} cases passed; exits {by:?}");
}

/// The suites' machine with a second vCPU (the AP that sends INITs and
/// SIPIs to the BSP).
fn two_vcpus() -> nestemu::MachineConfig {
    let mut cfg = testsuites::config();
    cfg.platform.cpus = 2;
    cfg
}

/// The AP's code sending one INIT to the BSP.
fn ap_sends_init(delay: u16) -> AsmResult<Vec<u8>> {
    ap_sends(delay, &[ICR_INIT])
}

/// L2: count R12 up to 50,000, then VMCALL.
fn count_then_vmcall(a: &mut Asm) -> AsmResult {
    let mut top = a.label();
    a.xor(r12d, r12d)?;
    a.set(&mut top)?;
    a.inc(r12)?;
    a.cmp(r12, 50_000)?;
    a.jb(top.l)?;
    a.vmcall()
}

/// An INIT signal in VMX non-root operation exits with reason 3 and leaves
/// the guest's state alone (SDM Vol. 3C 26.2: "INIT signals cause VM exits
/// ... Such exits do not modify register state or clear pending events as
/// they would outside of VMX operation"); in VMX root operation an INIT is
/// blocked (24.8) and stays pending until a VM entry unblocks it, when it
/// exits before the guest's first instruction. Two vCPUs: the AP sends the
/// INIT to the BSP, where L1 and L2 run.
#[test]
fn init_signals_exit_from_vmx_non_root() {
    let mut t = Table::default();
    t.case(
        VmxCase::guest("an init while l2 runs exits with reason 3", |a, _| {
            count_then_vmcall(a)
        })
        .setup(move |a, _| start_ap(a, &ap_sends_init(3000)?))
        .on_exit(on(3, |a| {
            a.mov(rax, at(layout::VARS + var::EXIT_GPRS + 8 * 12))?;
            store_user(a, 0, rax)
        })),
        vec![
            reason(0, 3),
            qual(0, 0),
            intr(0, 0),
            that("l2 was counting when the init came", |r| {
                r.user[0] > 0 && r.user[0] < 50_000
            }),
            that("l2 was active", |r| r.exits[0].activity == 0),
            reason(1, 18),
            gpr(12, 50_000),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "an init held in root operation exits at the next entry",
            |a, _| count_then_vmcall(a),
        )
        .setup(move |a, _| {
            start_ap(a, &ap_sends_init(1)?)?;
            // Wait until the AP has sent it: L1 (root) holds it pending.
            let mut wait = a.label();
            a.set(&mut wait)?;
            a.pause()?;
            a.cmp(byte_ptr(AP_SENT), 0)?;
            a.je(wait.l)?;
            vmr(a, rax, F::GuestRip)?;
            store_user(a, 1, rax)
        })
        .on_exit(on(3, |_| Ok(()))),
        vec![
            reason(0, 3),
            that("no l2 instruction ran", |r| {
                r.exits[0].rip == r.user[1] && r.user[1] != 0
            }),
            reason(1, 18),
            gpr(12, 50_000),
            exits(2),
        ],
    );
    let run = t.run_with(two_vcpus());
    let m = &run.outcome.machine;
    assert!(!m.dev.lapics[0].init_pending, "each exit consumed its init");
    let by = &m.stats.vmexits.by_reason;
    eprintln!("vmx init: 2 cases passed; exits {by:?}");
}

/// L1: enter L2 in the wait-for-SIPI activity state (SDM Vol. 3C 25.4.2)
/// and start the AP on `code`; user slot 1 = the guest RIP entered with.
fn wait_for_sipi(a: &mut Asm, code: &[u8]) -> AsmResult {
    vmw(a, F::GuestActivityState, 3)?;
    vmr(a, rax, F::GuestRip)?;
    store_user(a, 1, rax)?;
    start_ap(a, code)
}

/// L1 at an exit: on a SIPI's exit (reason 4) make L2 active and resume it
/// where it was; on an INIT's (3) resume it; else the default.
fn sipi_then_active(a: &mut Asm, rt: &VmxRt) -> AsmResult {
    let mut other = a.label();
    let mut resume = a.label();
    vmr(a, rax, F::ExitReason)?;
    a.cmp(eax, 3)?;
    a.je(resume.l)?;
    a.cmp(eax, 4)?;
    a.jne(other.l)?;
    vmw(a, F::GuestActivityState, 0)?;
    a.set(&mut resume)?;
    a.jmp(rt.resume.l)?;
    a.set(&mut other)?;
    a.jmp(rt.default_exit.l)
}

/// The wait-for-SIPI activity state (IA32_VMX_MISC bit 8): a guest entered
/// in it runs nothing; a SIPI exits with reason 4 and the vector as exit
/// qualification, saving activity state 3 and the guest's registers
/// unchanged; an INIT is blocked there and stays pending, to exit at the
/// first entry into the active state (SDM Vol. 3C 26.2, "Other Causes of VM
/// Exits"; 28.2.1, table "Exit Qualification for ... SIPIs").
#[test]
fn wait_for_sipi_guests_exit_on_a_sipi() {
    let mut t = Table::default();
    t.case(
        VmxCase::guest("a sipi ends wait-for-sipi with exit 4", |a, _| {
            a.mov(r12d, 0x5151)?;
            a.vmcall()
        })
        .setup(|a, _| wait_for_sipi(a, &ap_sends(1, &[ICR_SIPI_42])?))
        .on_exit(sipi_then_active),
        vec![
            reason(0, 4),
            qual(0, 0x42),
            that("saved activity state wait-for-sipi", |r| {
                r.exits[0].activity == 3
            }),
            that("no l2 instruction ran before the sipi", |r| {
                r.exits[0].rip == r.user[1] && r.user[1] != 0
            }),
            reason(1, 18),
            gpr(12, 0x5151),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "an init in wait-for-sipi is held until the guest is active",
            |a, _| {
                a.mov(r12d, 0x5252)?;
                a.vmcall()
            },
        )
        .setup(|a, _| wait_for_sipi(a, &ap_sends(1, &[ICR_INIT, ICR_SIPI_42])?))
        .on_exit(sipi_then_active),
        vec![
            reason(0, 4),
            qual(0, 0x42),
            reason(1, 3),
            that("the init exit came before l2's first instruction", |r| {
                r.exits[1].rip == r.user[1]
            }),
            reason(2, 18),
            gpr(12, 0x5252),
            exits(3),
        ],
    );
    let run = t.run_with(two_vcpus());
    let m = &run.outcome.machine;
    let a = &m.dev.lapics[0];
    assert!(!a.init_pending && !a.wait_for_sipi && !a.sipi_exits);
    let by = &m.stats.vmexits.by_reason;
    eprintln!("vmx wait-for-sipi: 2 cases passed; exits {by:?}");
}

/// With one vCPU nothing can send a SIPI: a guest entered in wait-for-SIPI
/// never runs again, and the machine says so (it does not run L2's code).
#[test]
fn wait_for_sipi_on_one_vcpu_halts_forever() {
    let mut suite = guestkit::vmx::VmxSuite::new();
    suite.push(
        VmxCase::guest("wait-for-sipi alone", |a, _| {
            a.mov(r12d, 0x5353)?;
            a.vmcall()
        })
        .setup(|a, _| vmw(a, F::GuestActivityState, 3)),
    );
    let r = run_suite_with(suite, testsuites::config());
    assert_eq!(r.outcome.stop, nestemu::Stop::HaltForever);
    assert!(r.record("wait-for-sipi alone").exits.is_empty());
    assert!(r.outcome.machine.dev.lapics[0].sipi_exits);
}
