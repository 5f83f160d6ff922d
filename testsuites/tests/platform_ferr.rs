//! Legacy x87 error reporting on the PC platform (SDM Vol. 1 8.7.2 and
//! appendix D.2.1; APM Vol. 1 6.4.6): with CR0.NE = 0 an unmasked x87
//! exception pending at a waiting instruction asserts FERR#, which reaches
//! the processor as IRQ 13 through the slave 8259, and the processor freezes
//! on that instruction until the interrupt arrives. The handler writes port
//! F0H (IRQ 13 off, IGNNE# on) and clears the error with FNCLEX; the waiting
//! instruction then runs again and finds nothing pending. Without FNCLEX,
//! IGNNE# lets waiting instructions ignore the error until FERR# goes away.
//! The checks run in the guest and report over COM1 (`ok` / `FAIL`).

use guestkit::checks::{eq, masked};
use guestkit::irq::{load_count, set_hook, set_mode, COUNT, EOI_PIC_SLAVE, HOOK};
use guestkit::layout::{var, VARS};
use guestkit::platform::{lapic_write, out, pic_init};
use guestkit::Program;
use iced_x86::code_asm::*;
use testsuites::platform::{run_suite, setup};

/// IRQ 13 with the slave 8259 at vector base 28H.
const IRQ13: u8 = 0x2d;
/// Where the hook stores the RIP the interrupt pushed.
const PUSHED_RIP: u64 = VARS + var::TEST_DATA;
/// FCW with the zero-divide exception unmasked.
const FCW_ZE: u64 = 0x37b;

/// Emits: CR0.NE := `on` (clobbers RAX).
fn cr0_ne(a: &mut guestkit::Asm, on: bool) -> guestkit::AsmResult {
    a.mov(rax, cr0)?;
    if on {
        a.bts(rax, 5i32)?;
    } else {
        a.btr(rax, 5i32)?;
    }
    a.mov(cr0, rax)
}

/// Emits: an unmasked zero divide, pending (ES set) after FDIVP
/// (clobbers RAX).
fn pend_zero_divide(a: &mut guestkit::Asm) -> guestkit::AsmResult {
    a.fninit()?;
    a.mov(eax, FCW_ZE as u32)?;
    a.mov(dword_ptr(PUSHED_RIP + 8), eax)?;
    a.fldcw(word_ptr(PUSHED_RIP + 8))?;
    a.fld1()?;
    a.fldz()?;
    a.fdivp(st1, st0)
}

#[test]
fn ferr_irq13_freeze_and_ignne() {
    let mut p = Program::new();
    p.body64(|a, rt| {
        a.cli()?;
        setup(a)?;
        // The 8259 reaches the processor through LINT0 in ExtINT mode;
        // IR2 (the cascade) and the slave's IR5 (IRQ 13) unmasked.
        lapic_write(a, 0x350, 0x700)?;
        pic_init(a, 0x20, 0x28, false, (0xfb, 0xdf))?;

        // Hook 1: record the pushed RIP, write port F0H, clear the error.
        let mut hook1 = a.label();
        let mut hook2 = a.label();
        let mut over = a.label();
        a.jmp(over.l)?;
        a.set(&mut hook1)?;
        a.mov(rax, qword_ptr(rsi))?;
        a.mov(qword_ptr(PUSHED_RIP), rax)?;
        a.out(0xf0u32, al)?;
        a.fnclex()?;
        a.ret()?;
        // Hook 2: port F0H only.
        a.set(&mut hook2)?;
        a.mov(rax, qword_ptr(rsi))?;
        a.mov(qword_ptr(PUSHED_RIP), rax)?;
        a.out(0xf0u32, al)?;
        a.ret()?;
        a.set(&mut over)?;

        set_mode(a, IRQ13, COUNT | EOI_PIC_SLAVE | HOOK)?;
        set_hook(a, IRQ13, &hook1)?;
        cr0_ne(a, false)?;
        pend_zero_divide(a)?;
        a.mov(qword_ptr(PUSHED_RIP), 0i32)?;
        let mut fwait = a.label();
        a.sti()?;
        a.set(&mut fwait)?;
        a.wait()?;
        a.cli()?;
        load_count(a, IRQ13)?;
        eq(a, rt, "FWAIT froze and IRQ 13 woke it", 1)?;
        a.lea(rcx, ptr(fwait.l))?;
        a.mov(rax, qword_ptr(PUSHED_RIP))?;
        a.sub(rax, rcx)?;
        eq(a, rt, "the interrupt returned to the FWAIT", 0)?;
        a.fnstsw(ax)?;
        masked(a, rt, "the handler's FNCLEX cleared ES", 0x80, 0)?;
        // A freeze with IF = 1 but the error already cleared: nothing.
        a.wait()?;
        load_count(a, IRQ13)?;
        eq(a, rt, "no error, no IRQ 13", 1)?;

        // IGNNE#: the handler only writes port F0H.
        set_hook(a, IRQ13, &hook2)?;
        pend_zero_divide(a)?;
        a.sti()?;
        a.wait()?;
        // Still pending, but ignored while FERR# stays asserted.
        a.fld1()?;
        a.wait()?;
        a.cli()?;
        load_count(a, IRQ13)?;
        eq(a, rt, "IGNNE#: one IRQ 13, the error ignored after it", 2)?;
        a.fnstsw(ax)?;
        masked(a, rt, "ES still set under IGNNE#", 0x80, 0x80)?;
        // FNCLEX drops FERR# and with it IGNNE#: the next error freezes
        // again and raises IRQ 13 again.
        a.fnclex()?;
        set_hook(a, IRQ13, &hook1)?;
        pend_zero_divide(a)?;
        a.sti()?;
        a.wait()?;
        a.cli()?;
        load_count(a, IRQ13)?;
        eq(a, rt, "after FNCLEX the next error interrupts again", 3)?;

        // With CR0.NE = 1 the same error is #MF, not IRQ 13: leave it
        // pending and check only that NE is back for the rest.
        a.fninit()?;
        cr0_ne(a, true)?;
        out(a, 0xa1, 1, 0xff)?;
        out(a, 0x21, 1, 0xff)
    });
    run_suite(&p);
}
