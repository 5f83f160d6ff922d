//! I/O APIC suite (82093AA datasheet): registers, edge and level delivery
//! with Remote IRR and EOI, masking, the TMR, destinations, NMI delivery, and
//! the timers' pins (PIT on pin 2, RTC on pin 8, the ACPI SCI on pin 9). The
//! interrupt lines are driven through QEMU's pc-testdev (ports 2000H+n), the
//! way kvm-unit-tests' x86/ioapic.c drives them; these cases follow it.

use super::lapic::routine;
use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, info, masked};
use guestkit::irq::{load_count, set_hook, set_mode, COUNT, EOI_XAPIC, HOOK};
use guestkit::layout::{var, VARS};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

const TD: u64 = VARS + var::TEST_DATA;
const LOG: u64 = VARS + var::IRQ_LOG;
const LINE: u16 = 0x0e;
const EDGE: u32 = 0;
const LEVEL: u32 = 1 << 15;
const MASK: u32 = 1 << 16;

/// Handles `vector` with a hook that runs `body` first, then counts and EOIs.
fn hooked(a: &mut Asm, vector: u8, body: impl Fn(&mut Asm) -> AsmResult) -> AsmResult {
    let h = routine(a, body)?;
    set_hook(a, vector, &h)?;
    set_mode(a, vector, HOOK | COUNT | EOI_XAPIC)
}

/// A hook body that lowers line 0EH.
fn lower(a: &mut Asm) -> AsmResult {
    set_irq_line(a, LINE, false)
}

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        super::setup(a)?;
        out(a, 0x21, 1, 0xff)?;
        out(a, 0xa1, 1, 0xff)?;
        a.sti()?;
        registers(a, rt)?;
        edge_and_level(a, rt)?;
        level_semantics(a, rt)?;
        masking(a, rt)?;
        tmr(a, rt)?;
        destinations(a, rt)?;
        timers(a, rt)
    });
    p
}

fn registers(a: &mut Asm, rt: &Rt64) -> AsmResult {
    ioapic_read(a, 1)?;
    eq(a, rt, "ioapic version 20h, 24 entries", 0x0017_0020)?;
    ioapic_write(a, 1, 0)?;
    ioapic_read(a, 1)?;
    eq(a, rt, "version register is read-only", 0x0017_0020)?;
    ioapic_write(a, 0, 0xffff_ffff)?;
    ioapic_read(a, 0)?;
    eq(a, rt, "id register: only bits 27:24 writable", 0x0f00_0000)?;
    ioapic_read(a, 2)?;
    eq(a, rt, "arbitration id follows the id", 0x0f00_0000)?;
    ioapic_write(a, 0, 0)?;
    ioapic_read(a, 0x10 + 2 * 5)?;
    masked(
        a,
        rt,
        "redirection entries start masked",
        MASK as u64,
        MASK as u64,
    )
}

fn edge_and_level(a: &mut Asm, rt: &Rt64) -> AsmResult {
    set_mode(a, 0x76, COUNT | EOI_XAPIC)?;
    ioapic_redir(a, 0x0e, 0x76 | EDGE, 0)?;
    set_irq_line(a, LINE, true)?;
    set_irq_line(a, LINE, false)?;
    settle(a)?;
    load_count(a, 0x76)?;
    eq(a, rt, "edge triggered interrupt", 1)?;
    hooked(a, 0x77, lower)?;
    ioapic_redir(a, 0x0e, 0x77 | LEVEL, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x77)?;
    eq(a, rt, "level triggered interrupt", 1)?;
    // Two edges while IF=0: the higher vector first, at the same boundary.
    set_mode(a, 0x78, COUNT | EOI_XAPIC)?;
    set_mode(a, 0x66, COUNT | EOI_XAPIC)?;
    ioapic_redir(a, 0x0e, 0x78 | EDGE, 0)?;
    ioapic_redir(a, 0x0f, 0x66 | EDGE, 0)?;
    a.cli()?;
    a.mov(rbx, qword_ptr(VARS + var::IRQ_LOG_LEN))?;
    set_irq_line(a, 0x0f, true)?;
    set_irq_line(a, 0x0f, false)?;
    set_irq_line(a, LINE, true)?;
    set_irq_line(a, LINE, false)?;
    a.sti()?;
    settle(a)?;
    a.movzx(eax, byte_ptr(rbx + LOG as u32))?;
    eq(a, rt, "simultaneous edges: higher vector first", 0x78)?;
    a.movzx(eax, byte_ptr(rbx + (LOG + 1) as u32))?;
    eq(a, rt, "simultaneous edges: then the lower", 0x66)
}

fn level_semantics(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // Re-raising while Remote IRR is set coalesces.
    hooked(a, 0x98, |a| {
        let mut skip = a.label();
        a.cmp(dword_ptr(guestkit::irq::count_addr(0x98)), 0u32)?;
        a.jne(skip.l)?;
        set_irq_line(a, LINE, false)?;
        set_irq_line(a, LINE, true)?;
        a.set(&mut skip)?;
        set_irq_line(a, LINE, false)
    })?;
    ioapic_redir(a, 0x0e, 0x98 | LEVEL, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x98)?;
    eq(a, rt, "coalesce simultaneous level interrupts", 1)?;
    hooked(a, 0x99, lower)?;
    ioapic_redir(a, 0x0e, 0x99 | LEVEL, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x99)?;
    eq(a, rt, "sequential level interrupts", 2)?;
    // Still asserted after EOI: delivered again.
    hooked(a, 0x9a, |a| {
        let mut skip = a.label();
        a.cmp(dword_ptr(guestkit::irq::count_addr(0x9a)), 1u32)?;
        a.jne(skip.l)?;
        set_irq_line(a, LINE, false)?;
        a.set(&mut skip)
    })?;
    ioapic_redir(a, 0x0e, 0x9a | LEVEL, 0)?;
    a.cli()?;
    set_irq_line(a, LINE, true)?;
    wait_count(a, 0x9a, 2)?;
    a.sti()?;
    load_count(a, 0x9a)?;
    eq(a, rt, "retriggered level interrupt without masking", 2)?;
    // Remote IRR while in service, clear after EOI.
    hooked(a, 0x9b, |a| {
        ioapic_read(a, 0x10 + 2 * 0x0e)?;
        a.mov(dword_ptr(TD + 0x80), eax)?;
        lower(a)
    })?;
    ioapic_redir(a, 0x0e, 0x9b | LEVEL, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    masked(a, rt, "remote irr set while in service", 1 << 14, 1 << 14)?;
    ioapic_read(a, 0x10 + 2 * 0x0e)?;
    masked(a, rt, "remote irr clear after eoi", 1 << 14, 0)
}

fn masking(a: &mut Asm, rt: &Rt64) -> AsmResult {
    hooked(a, 0x81, lower)?;
    ioapic_redir(a, 0x0e, 0x81 | EDGE | MASK, 0)?;
    set_irq_line(a, LINE, true)?;
    set_irq_line(a, LINE, false)?;
    settle(a)?;
    load_count(a, 0x81)?;
    eq(a, rt, "masked edge is lost", 0)?;
    ioapic_redir(a, 0x0e, 0x81 | EDGE, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x81)?;
    eq(a, rt, "unmasked edge delivers", 1)?;
    hooked(a, 0x82, lower)?;
    ioapic_redir(a, 0x0e, 0x82 | LEVEL | MASK, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x82)?;
    eq(a, rt, "masked level waits", 0)?;
    ioapic_redir(a, 0x0e, 0x82 | LEVEL, 0)?;
    settle(a)?;
    load_count(a, 0x82)?;
    eq(a, rt, "unmasking an asserted level pin delivers", 1)?;
    // The handler masks the entry; unmasking redelivers (line still high).
    hooked(a, 0x83, |a| {
        ioapic_write(a, 0x10 + 2 * 0x0e, 0x83 | LEVEL | MASK)
    })?;
    ioapic_redir(a, 0x0e, 0x83 | LEVEL, 0)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    ioapic_write(a, 0x10 + 2 * 0x0e, 0x83 | LEVEL)?;
    settle(a)?;
    load_count(a, 0x83)?;
    eq(a, rt, "retriggered level interrupt with masking", 2)?;
    set_irq_line(a, LINE, false)?;
    ioapic_write(a, 0x10 + 2 * 0x0e, 0x83 | LEVEL | MASK)
}

/// TMR as seen from the handler of vector 79H (bit 25 of TMR[3]).
fn tmr(a: &mut Asm, rt: &Rt64) -> AsmResult {
    hooked(a, 0x79, |a| {
        lapic_read(a, 0x1b0)?;
        a.shr(eax, 25)?;
        a.and(eax, 1)?;
        a.mov(dword_ptr(TD + 0x84), eax)?;
        lower(a)
    })?;
    let cases = [
        (EDGE, 0, 0, "edge"),
        (LEVEL, 0, 1, "level"),
        (LEVEL, 1, 1, "level after level"),
        (EDGE, 1, 0, "edge after level"),
    ];
    for (trig, before, during, what) in cases {
        ioapic_redir(a, 0x0e, 0x79 | trig, 0)?;
        lapic_read(a, 0x1b0)?;
        a.shr(eax, 25)?;
        a.and(eax, 1)?;
        eq(a, rt, &format!("tmr before: {what}"), before)?;
        set_irq_line(a, LINE, true)?;
        settle(a)?;
        a.mov(eax, dword_ptr(TD + 0x84))?;
        eq(a, rt, &format!("tmr in service: {what}"), during)?;
        set_irq_line(a, LINE, false)?;
    }
    Ok(())
}

fn destinations(a: &mut Asm, rt: &Rt64) -> AsmResult {
    hooked(a, 0x85, lower)?;
    ioapic_redir(a, 0x0e, 0x85 | EDGE, 1)?;
    set_irq_line(a, LINE, true)?;
    set_irq_line(a, LINE, false)?;
    settle(a)?;
    load_count(a, 0x85)?;
    eq(a, rt, "no delivery to an absent apic id", 0)?;
    ioapic_redir(a, 0x0e, 0x85 | LEVEL, 0xff)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x85)?;
    eq(a, rt, "physical broadcast destination", 1)?;
    // Logical flat: LDR bit 0.
    lapic_write(a, 0xe0, 0xffff_ffff)?;
    lapic_write(a, 0xd0, 0x0100_0000)?;
    ioapic_redir(a, 0x0e, 0x85 | LEVEL | 1 << 11, 0x01)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x85)?;
    eq(a, rt, "logical flat destination", 2)?;
    ioapic_redir(a, 0x0e, 0x85 | LEVEL | 1 << 11 | 1 << 8, 0x01)?;
    set_irq_line(a, LINE, true)?;
    settle(a)?;
    load_count(a, 0x85)?;
    eq(a, rt, "lowest priority delivery", 3)?;
    // NMI delivery mode.
    set_mode(a, 2, COUNT)?;
    ioapic_redir(a, 0x0e, 0x400 | EDGE, 0)?;
    set_irq_line(a, LINE, true)?;
    set_irq_line(a, LINE, false)?;
    settle(a)?;
    load_count(a, 2)?;
    eq(a, rt, "nmi delivery mode", 1)?;
    ioapic_redir(a, 0x0e, MASK, 0)
}

fn timers(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // PIT channel 0 (rate generator) on pin 2, the MADT's override of IRQ 0.
    set_mode(a, 0x30, COUNT | EOI_XAPIC)?;
    ioapic_redir(a, 2, 0x30, 0)?;
    out(a, 0x43, 1, 0x34)?;
    out(a, 0x40, 1, 0x00)?;
    out(a, 0x40, 1, 0x10)?;
    rdtsc(a)?;
    a.mov(r12, rax)?;
    wait_count(a, 0x30, 5)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "five pit periods tsc delta")?;
    ioapic_redir(a, 2, MASK, 0)?;
    load_count(a, 0x30)?;
    eq(a, rt, "pit interrupts through pin 2", 5)?;
    // RTC periodic interrupt (1024 Hz) on pin 8; the handler reads C.
    hooked(a, 0x38, |a| {
        out(a, 0x70, 1, 0x0c)?;
        inp(a, 0x71, 1)?;
        a.mov(dword_ptr(TD + 0x88), eax)
    })?;
    ioapic_redir(a, 8, 0x38, 0)?;
    out(a, 0x70, 1, 0x0a)?;
    out(a, 0x71, 1, 0x26)?;
    out(a, 0x70, 1, 0x0b)?;
    out(a, 0x71, 1, 0x42)?;
    wait_count(a, 0x38, 4)?;
    out(a, 0x70, 1, 0x0b)?;
    out(a, 0x71, 1, 0x02)?;
    ioapic_redir(a, 8, MASK, 0)?;
    load_count(a, 0x38)?;
    eq(a, rt, "rtc periodic interrupts through pin 8", 4)?;
    a.mov(eax, dword_ptr(TD + 0x88))?;
    masked(a, rt, "register c: irqf and pf", 0xc0, 0xc0)?;
    // The ACPI SCI (PM timer overflow) on pin 9, level, active high.
    hooked(a, 0x39, |a| out(a, 0x600, 2, 1))?;
    ioapic_redir(a, 9, 0x39 | LEVEL, 0)?;
    out(a, 0x600, 2, 1)?;
    out(a, 0x602, 2, 1)?;
    wait_count(a, 0x39, 1)?;
    out(a, 0x602, 2, 0)?;
    ioapic_redir(a, 9, MASK, 0)?;
    load_count(a, 0x39)?;
    eq(a, rt, "pm timer overflow sci through pin 9", 1)
}
