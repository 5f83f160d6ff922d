//! 8254 suite: channel 0 in modes 0, 2, 3 and 4 (interrupts through I/O APIC
//! pin 2), the counter-latch and read-back commands, BCD counting, and
//! channel 2 with the port 61H gate and output (modes 0, 1 and 3), plus the
//! refresh toggle.

use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, info, masked, range};
use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

/// Emits: program channel `ch` with `mode`, LSB/MSB access, `count`.
fn program_counter(a: &mut Asm, chan: u8, mode: u8, bcd: bool, count: u16) -> AsmResult {
    out(
        a,
        0x43,
        1,
        (chan as u32) << 6 | 0x30 | (mode as u32) << 1 | bcd as u32,
    )?;
    out(a, 0x40 + chan as u16, 1, count as u32 & 0xff)?;
    out(a, 0x40 + chan as u16, 1, count as u32 >> 8)
}

/// Emits: RAX = channel `ch`'s count through a counter-latch command.
fn latch(a: &mut Asm, chan: u8) -> AsmResult {
    out(a, 0x43, 1, (chan as u32) << 6)?;
    read_pair(a, chan)
}

/// Emits: RAX = LSB then MSB read from channel `ch` (clobbers R8).
fn read_pair(a: &mut Asm, chan: u8) -> AsmResult {
    inp(a, 0x40 + chan as u16, 1)?;
    a.mov(r8, rax)?;
    inp(a, 0x40 + chan as u16, 1)?;
    a.shl(rax, 8)?;
    a.or(rax, r8)
}

/// Emits: loop until port 61H bit 5 equals `level` (at most `limit`
/// iterations); RAX = iterations (`limit` on time-out).
fn wait_out2(a: &mut Asm, level: bool, limit: u32) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.xor(r13d, r13d)?;
    a.set(&mut lp)?;
    inp(a, 0x61, 1)?;
    a.and(eax, 0x20)?;
    if level {
        a.jnz(done.l)?;
    } else {
        a.jz(done.l)?;
    }
    a.inc(r13d)?;
    a.cmp(r13d, limit)?;
    a.jb(lp.l)?;
    a.set(&mut done)?;
    a.mov(eax, r13d)
}

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        super::setup(a)?;
        set_mode(a, 0x30, COUNT | EOI_XAPIC)?;
        ioapic_redir(a, 2, 1 << 16, 0)?;
        channel2(a, rt)?;
        latches(a, rt)?;
        channel0(a, rt)?;
        // Back to the firmware's 18.2 Hz square wave, interrupt masked.
        ioapic_redir(a, 2, 1 << 16, 0)?;
        program_counter(a, 0, 3, false, 0)
    });
    p
}

fn channel2(a: &mut Asm, rt: &Rt64) -> AsmResult {
    out(a, 0x61, 1, 0)?;
    program_counter(a, 2, 0, false, 1000)?;
    inp(a, 0x61, 1)?;
    masked(a, rt, "mode 0: out2 low while the gate is low", 0x21, 0)?;
    out(a, 0x61, 1, 1)?;
    wait_out2(a, true, 1_000_000)?;
    info(a, rt, "polls until out2 rose")?;
    range(a, rt, "mode 0: out2 rises at terminal count", 1, 999_999)?;
    // Mode 1: a gate-triggered one-shot.
    out(a, 0x61, 1, 0)?;
    program_counter(a, 2, 1, false, 1000)?;
    inp(a, 0x61, 1)?;
    masked(a, rt, "mode 1: out2 high before the trigger", 0x20, 0x20)?;
    out(a, 0x61, 1, 1)?;
    inp(a, 0x61, 1)?;
    masked(a, rt, "mode 1: the gate trigger drives out2 low", 0x20, 0)?;
    wait_out2(a, true, 1_000_000)?;
    range(a, rt, "mode 1: out2 high at terminal count", 1, 999_999)?;
    // Mode 5: a gate-triggered strobe; the count waits for the trigger.
    out(a, 0x61, 1, 0)?;
    program_counter(a, 2, 5, false, 1000)?;
    spin(a, 100)?;
    latch(a, 2)?;
    eq(a, rt, "mode 5: no counting before the gate trigger", 1000)?;
    out(a, 0x61, 1, 1)?;
    spin(a, 5000)?;
    latch(a, 2)?;
    range(a, rt, "mode 5: the trigger starts the count", 0, 999)?;
    // Mode 3: a square wave.
    program_counter(a, 2, 3, false, 2000)?;
    wait_out2(a, false, 1_000_000)?;
    range(a, rt, "mode 3: out2 falls", 0, 999_999)?;
    wait_out2(a, true, 1_000_000)?;
    range(a, rt, "mode 3: and rises again", 1, 999_999)?;
    out(a, 0x61, 1, 0)?;
    // The refresh request toggles bit 4 every 15 us.
    inp(a, 0x61, 1)?;
    a.and(eax, 0x10)?;
    a.mov(r12, rax)?;
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r13d, 1_000_000u32)?;
    a.set(&mut lp)?;
    inp(a, 0x61, 1)?;
    a.and(eax, 0x10)?;
    a.cmp(rax, r12)?;
    a.jne(done.l)?;
    a.dec(r13d)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.mov(eax, r13d)?;
    range(a, rt, "port 61h refresh bit toggles", 1, 1_000_000)
}

fn latches(a: &mut Asm, rt: &Rt64) -> AsmResult {
    program_counter(a, 0, 2, false, 0x8000)?;
    latch(a, 0)?;
    a.mov(r12, rax)?;
    range(a, rt, "latched count within the initial count", 1, 0x8000)?;
    spin(a, 200)?;
    latch(a, 0)?;
    a.cmp(rax, r12)?;
    a.setb(al)?;
    a.movzx(eax, al)?;
    eq(a, rt, "the count decreases", 1)?;
    // Read-back: status of counter 0, then its count.
    out(a, 0x43, 1, 0xe2)?;
    inp(a, 0x40, 1)?;
    masked(
        a,
        rt,
        "read-back status: lsb/msb, mode 2, binary",
        0x3f,
        0x34,
    )?;
    out(a, 0x43, 1, 0xd2)?;
    read_pair(a, 0)?;
    range(a, rt, "read-back count", 1, 0x8000)?;
    // BCD: every digit of the count is 0-9.
    program_counter(a, 0, 2, true, 0x5000)?;
    spin(a, 50)?;
    latch(a, 0)?;
    let mut lp = a.label();
    let mut bad = a.label();
    let mut done = a.label();
    a.mov(ecx, 4u32)?;
    a.set(&mut lp)?;
    a.mov(edx, eax)?;
    a.and(edx, 0xf)?;
    a.cmp(edx, 9)?;
    a.ja(bad.l)?;
    a.shr(eax, 4)?;
    a.dec(ecx)?;
    a.jnz(lp.l)?;
    a.mov(eax, 1u32)?;
    a.jmp(done.l)?;
    a.set(&mut bad)?;
    a.xor(eax, eax)?;
    a.set(&mut done)?;
    eq(a, rt, "bcd count reads decimal digits", 1)
}

/// Emits: reprogram channel 0 with I/O APIC pin 2 masked meanwhile (so the
/// output's jump at the control word is not counted), after draining any
/// interrupt already accepted, and with the counts cleared.
fn reprogram0(a: &mut Asm, mode: u8, count: u16) -> AsmResult {
    ioapic_redir(a, 2, 1 << 16, 0)?;
    a.sti()?;
    settle(a)?;
    settle(a)?;
    a.cli()?;
    clear_counts(a)?;
    program_counter(a, 0, mode, false, count)?;
    ioapic_redir(a, 2, 0x30, 0)
}

fn channel0(a: &mut Asm, rt: &Rt64) -> AsmResult {
    reprogram0(a, 0, 100)?;
    wait_count(a, 0x30, 1)?;
    a.sti()?;
    spin(a, 20_000)?;
    load_count(a, 0x30)?;
    eq(a, rt, "mode 0 interrupts once", 1)?;
    reprogram0(a, 2, 0x800)?;
    rdtsc(a)?;
    a.mov(r12, rax)?;
    wait_count(a, 0x30, 5)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "mode 2: five periods of 800h tsc delta")?;
    load_count(a, 0x30)?;
    eq(a, rt, "mode 2 periodic interrupts", 5)?;
    reprogram0(a, 3, 0x800)?;
    wait_count(a, 0x30, 5)?;
    load_count(a, 0x30)?;
    eq(a, rt, "mode 3 periodic interrupts", 5)?;
    reprogram0(a, 4, 100)?;
    wait_count(a, 0x30, 1)?;
    a.sti()?;
    spin(a, 20_000)?;
    load_count(a, 0x30)?;
    eq(a, rt, "mode 4 strobes once", 1)
}
