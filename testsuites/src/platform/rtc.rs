//! MC146818 RTC and CMOS suite: status registers, reading the date (BCD,
//! binary, 12-hour), update-in-progress, the clock advancing, setting the
//! time with SET, the update-ended, alarm and periodic interrupts on IRQ 8
//! (through I/O APIC pin 8), and CMOS RAM.

use super::lapic::routine;
use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, info, masked, range};
use guestkit::irq::{clear_counts, load_count, set_hook, set_mode, COUNT, EOI_XAPIC, HOOK};
use guestkit::layout::{var, VARS};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

const TD: u64 = VARS + var::TEST_DATA;

/// Emits: RAX = CMOS register `r`.
fn cmos_read(a: &mut Asm, r: u8) -> AsmResult {
    out(a, 0x70, 1, r as u32)?;
    inp(a, 0x71, 1)
}

/// Emits: CMOS register `r` = `v`.
fn cmos_write(a: &mut Asm, r: u8, v: u8) -> AsmResult {
    out(a, 0x70, 1, r as u32)?;
    out(a, 0x71, 1, v as u32)
}

/// Emits: wait (bounded) while register A's UIP bit is `uip`; RAX = polls
/// left.
fn wait_uip(a: &mut Asm, uip: bool) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r13d, 50_000_000u32)?;
    a.set(&mut lp)?;
    cmos_read(a, 0x0a)?;
    a.and(eax, 0x80)?;
    if uip {
        a.jz(done.l)?;
    } else {
        a.jnz(done.l)?;
    }
    a.dec(r13d)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.mov(eax, r13d)
}

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        super::setup(a)?;
        status(a, rt)?;
        date(a, rt)?;
        setting(a, rt)?;
        interrupts(a, rt)?;
        cmos_write(a, 0x0b, 0x02)
    });
    p
}

fn status(a: &mut Asm, rt: &Rt64) -> AsmResult {
    cmos_read(a, 0x0d)?;
    eq(a, rt, "register d: valid ram and time", 0x80)?;
    cmos_read(a, 0x0b)?;
    masked(a, rt, "register b: 24-hour bcd, no interrupts", 0x7e, 0x02)?;
    cmos_read(a, 0x0a)?;
    masked(
        a,
        rt,
        "register a: 32.768 khz time base, 1024 hz rate",
        0x7f,
        0x26,
    )?;
    wait_uip(a, false)?;
    wait_uip(a, true)?;
    range(a, rt, "update-in-progress observed", 1, 50_000_000)?;
    wait_uip(a, false)?;
    range(a, rt, "update-in-progress ends", 1, 50_000_000)
}

fn date(a: &mut Asm, rt: &Rt64) -> AsmResult {
    let fields: [(u8, &str, u64, u64); 7] = [
        (0x00, "seconds", 0, 0x59),
        (0x02, "minutes", 0, 0x59),
        (0x04, "hours", 0, 0x23),
        (0x06, "day of week", 1, 7),
        (0x07, "day of month", 1, 0x31),
        (0x08, "month", 1, 0x12),
        (0x09, "year", 0, 0x99),
    ];
    for (r, name, lo, hi) in fields {
        cmos_read(a, r)?;
        info(a, rt, &format!("rtc {name}"))?;
        range(a, rt, &format!("rtc {name} is bcd in range"), lo, hi)?;
    }
    cmos_read(a, 0x32)?;
    info(a, rt, "rtc century")?;
    range(a, rt, "rtc century byte", 0x19, 0x21)?;
    // The clock advances: wait for the seconds to change.
    cmos_read(a, 0x00)?;
    a.mov(r12, rax)?;
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r13d, 100_000_000u32)?;
    a.set(&mut lp)?;
    cmos_read(a, 0x00)?;
    a.cmp(rax, r12)?;
    a.jne(done.l)?;
    a.dec(r13d)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.mov(eax, r13d)?;
    range(a, rt, "the seconds advance", 1, 100_000_000)
}

fn setting(a: &mut Asm, rt: &Rt64) -> AsmResult {
    cmos_write(a, 0x0b, 0x82)?;
    cmos_write(a, 0x04, 0x12)?;
    cmos_write(a, 0x02, 0x34)?;
    cmos_write(a, 0x00, 0x10)?;
    cmos_read(a, 0x04)?;
    eq(a, rt, "set: the hours hold while SET", 0x12)?;
    cmos_write(a, 0x0b, 0x02)?;
    cmos_read(a, 0x02)?;
    eq(a, rt, "set: the written minutes", 0x34)?;
    cmos_read(a, 0x04)?;
    eq(a, rt, "set: the written hours", 0x12)?;
    cmos_write(a, 0x0b, 0x06)?;
    cmos_read(a, 0x02)?;
    eq(a, rt, "binary mode: minutes 34 read 22h", 0x22)?;
    cmos_write(a, 0x0b, 0x00)?;
    cmos_read(a, 0x04)?;
    eq(a, rt, "12-hour mode: 12:34 is 12 pm", 0x92)?;
    cmos_write(a, 0x0b, 0x02)?;
    cmos_write(a, 0x40, 0xa5)?;
    cmos_read(a, 0x40)?;
    eq(a, rt, "cmos ram byte", 0xa5)?;
    cmos_read(a, 0x34)?;
    info(a, rt, "cmos 34h: memory above 16 MiB in 64 KiB, low byte")
}

fn interrupts(a: &mut Asm, rt: &Rt64) -> AsmResult {
    let hook = routine(a, |a| {
        cmos_read(a, 0x0c)?;
        a.or(dword_ptr(TD + 0x80), eax)
    })?;
    set_hook(a, 0x38, &hook)?;
    set_mode(a, 0x38, HOOK | COUNT | EOI_XAPIC)?;
    ioapic_redir(a, 8, 0x38, 0)?;
    cmos_read(a, 0x0c)?;
    // Update-ended interrupts, once a second.
    a.mov(dword_ptr(TD + 0x80), 0)?;
    cmos_write(a, 0x0b, 0x12)?;
    wait_count(a, 0x38, 2)?;
    cmos_write(a, 0x0b, 0x02)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    masked(a, rt, "update-ended interrupts: irqf and uf", 0x90, 0x90)?;
    // The alarm with don't-care fields fires at the next update.
    clear_counts(a)?;
    a.mov(dword_ptr(TD + 0x80), 0)?;
    for r in [0x01, 0x03, 0x05] {
        cmos_write(a, r, 0xc0)?;
    }
    cmos_write(a, 0x0b, 0x22)?;
    wait_count(a, 0x38, 1)?;
    cmos_write(a, 0x0b, 0x02)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    masked(a, rt, "alarm interrupt: irqf and af", 0xa0, 0xa0)?;
    // The periodic interrupt at 1024 Hz.
    clear_counts(a)?;
    rdtsc(a)?;
    a.mov(r12, rax)?;
    cmos_write(a, 0x0b, 0x42)?;
    wait_count(a, 0x38, 8)?;
    cmos_write(a, 0x0b, 0x02)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "eight 1024 hz periods tsc delta")?;
    load_count(a, 0x38)?;
    eq(a, rt, "periodic interrupts", 8)?;
    ioapic_redir(a, 8, 1 << 16, 0)
}
