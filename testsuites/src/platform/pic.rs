//! 8259A suite: the boot state, initialization, requests on the master and
//! through the cascade, priorities, IRR/ISR reads, EOI, automatic EOI,
//! polling, the PIT on IRQ 0, and the path to the processor: LINT0 in ExtINT
//! mode, or directly while the local APIC is globally disabled.

use super::lapic::routine;
use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, masked};
use guestkit::irq::{load_count, set_hook, set_mode, COUNT, EOI_PIC, EOI_PIC_SLAVE, HOOK};
use guestkit::layout::{var, VARS};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

const TD: u64 = VARS + var::TEST_DATA;
const LOG: u64 = VARS + var::IRQ_LOG;

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        // The kit's start-up masked both chips after reading the masks
        // the firmware left.
        a.movzx(eax, byte_ptr(VARS + var::FIRMWARE_PIC_MASKS))?;
        eq(
            a,
            rt,
            "master pic masks at entry as SeaBIOS leaves them",
            0xb8,
        )?;
        a.movzx(eax, byte_ptr(VARS + var::FIRMWARE_PIC_MASKS + 1))?;
        eq(
            a,
            rt,
            "slave pic masks at entry as SeaBIOS leaves them",
            0x8e,
        )?;
        inp(a, 0x21, 1)?;
        eq(a, rt, "master pic masked by the start-up code", 0xff)?;
        inp(a, 0xa1, 1)?;
        eq(a, rt, "slave pic masked by the start-up code", 0xff)?;
        a.cli()?;
        // The local APIC in virtual-wire mode: LINT0 ExtINT.
        super::setup(a)?;
        lapic_write(a, 0x350, 0x700)?;
        inp(a, 0x4d1, 1)?;
        eq(
            a,
            rt,
            "elcr: irq 10 and 11 level, as firmware leaves them",
            0x0c,
        )?;
        out(a, 0x4d0, 1, 0)?;
        out(a, 0x4d1, 1, 0)?;
        pic_init(a, 0x20, 0x28, false, (0xff, 0xff))?;
        inp(a, 0x21, 1)?;
        eq(a, rt, "masks as written after init", 0xff)?;
        for v in 0x20..0x28 {
            set_mode(a, v, COUNT | EOI_PIC)?;
        }
        for v in 0x28..0x30 {
            set_mode(a, v, COUNT | EOI_PIC_SLAVE)?;
        }
        a.sti()?;
        requests(a, rt)?;
        registers(a, rt)?;
        modes(a, rt)?;
        paths(a, rt)
    });
    p
}

fn requests(a: &mut Asm, rt: &Rt64) -> AsmResult {
    out(a, 0x21, 1, 0xf7)?;
    set_irq_line(a, 3, true)?;
    settle(a)?;
    load_count(a, 0x23)?;
    eq(a, rt, "irq 3 on the master", 1)?;
    set_irq_line(a, 3, true)?;
    settle(a)?;
    load_count(a, 0x23)?;
    eq(a, rt, "edge-triggered: a held line requests once", 1)?;
    set_irq_line(a, 3, false)?;
    // Through the cascade: IRQ 13 needs IR2 unmasked on the master.
    out(a, 0x21, 1, 0xf3)?;
    out(a, 0xa1, 1, 0xdf)?;
    set_irq_line(a, 13, true)?;
    settle(a)?;
    set_irq_line(a, 13, false)?;
    load_count(a, 0x2d)?;
    eq(a, rt, "irq 13 through the cascade", 1)?;
    // Priority: the slave sits on IR2, so IRQ 13 outranks IRQ 3.
    a.cli()?;
    a.mov(rbx, qword_ptr(VARS + var::IRQ_LOG_LEN))?;
    set_irq_line(a, 3, true)?;
    set_irq_line(a, 13, true)?;
    a.sti()?;
    settle(a)?;
    a.movzx(eax, byte_ptr(rbx + LOG as u32))?;
    eq(a, rt, "irq 13 (cascade on ir2) is served first", 0x2d)?;
    a.movzx(eax, byte_ptr(rbx + (LOG + 1) as u32))?;
    eq(a, rt, "then irq 3", 0x23)?;
    set_irq_line(a, 13, false)?;
    set_irq_line(a, 3, false)?;
    out(a, 0xa1, 1, 0xff)
}

fn registers(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // IRR shows a masked request; ISR shows it in service (read by a hook).
    a.cli()?;
    out(a, 0x21, 1, 0xff)?;
    set_irq_line(a, 4, true)?;
    out(a, 0x20, 1, 0x0a)?;
    inp(a, 0x20, 1)?;
    masked(a, rt, "irr shows a masked request", 0x10, 0x10)?;
    let hook = routine(a, |a| {
        out(a, 0x20, 1, 0x0b)?;
        inp(a, 0x20, 1)?;
        a.mov(dword_ptr(TD + 0x80), eax)?;
        out(a, 0x20, 1, 0x0a)
    })?;
    set_hook(a, 0x24, &hook)?;
    set_mode(a, 0x24, HOOK | COUNT | EOI_PIC)?;
    out(a, 0x21, 1, 0xef)?;
    a.sti()?;
    settle(a)?;
    load_count(a, 0x24)?;
    eq(a, rt, "unmasking delivers the request", 1)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    eq(a, rt, "isr shows irq 4 in service", 0x10)?;
    out(a, 0x20, 1, 0x0b)?;
    inp(a, 0x20, 1)?;
    eq(a, rt, "isr clear after the eoi", 0)?;
    out(a, 0x20, 1, 0x0a)?;
    set_irq_line(a, 4, false)?;
    // Specific EOI: a handler without EOI leaves ISR set; OCW2 60h|n clears.
    set_mode(a, 0x25, COUNT)?;
    out(a, 0x21, 1, 0xdf)?;
    set_irq_line(a, 5, true)?;
    settle(a)?;
    out(a, 0x20, 1, 0x0b)?;
    inp(a, 0x20, 1)?;
    eq(a, rt, "isr stays set without eoi", 0x20)?;
    out(a, 0x20, 1, 0x65)?;
    inp(a, 0x20, 1)?;
    eq(a, rt, "specific eoi clears it", 0)?;
    out(a, 0x20, 1, 0x0a)?;
    set_irq_line(a, 5, false)?;
    out(a, 0x21, 1, 0xff)
}

fn modes(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // Poll: with IF=0, OCW3 poll reads the highest request and acknowledges.
    a.cli()?;
    out(a, 0x21, 1, 0xbf)?;
    set_irq_line(a, 6, true)?;
    out(a, 0x20, 1, 0x0c)?;
    inp(a, 0x20, 1)?;
    eq(a, rt, "poll reports irq 6", 0x86)?;
    out(a, 0x20, 1, 0x20)?;
    out(a, 0x21, 1, 0xff)?;
    set_irq_line(a, 6, false)?;
    // Automatic EOI: ISR stays clear in the handler.
    pic_init(a, 0x20, 0x28, true, (0xf7, 0xff))?;
    let hook = routine(a, |a| {
        out(a, 0x20, 1, 0x0b)?;
        inp(a, 0x20, 1)?;
        a.mov(dword_ptr(TD + 0x80), eax)?;
        out(a, 0x20, 1, 0x0a)
    })?;
    set_hook(a, 0x23, &hook)?;
    set_mode(a, 0x23, HOOK | COUNT)?;
    a.sti()?;
    set_irq_line(a, 3, true)?;
    settle(a)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    eq(a, rt, "automatic eoi leaves isr clear", 0)?;
    set_irq_line(a, 3, false)?;
    pic_init(a, 0x20, 0x28, false, (0xff, 0xff))?;
    set_mode(a, 0x23, COUNT | EOI_PIC)
}

fn paths(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // The PIT's channel 0 on IRQ 0.
    out(a, 0x43, 1, 0x34)?;
    out(a, 0x40, 1, 0x00)?;
    out(a, 0x40, 1, 0x20)?;
    out(a, 0x21, 1, 0xfe)?;
    wait_count(a, 0x20, 3)?;
    out(a, 0x21, 1, 0xff)?;
    load_count(a, 0x20)?;
    eq(a, rt, "pit interrupts through irq 0", 3)?;
    // LINT0 masked: the PIC's request does not reach the processor.
    lapic_write(a, 0x350, 0x1_0700)?;
    out(a, 0x21, 1, 0xf7)?;
    a.sti()?;
    load_count(a, 0x23)?;
    a.mov(r12, rax)?;
    set_irq_line(a, 3, true)?;
    settle(a)?;
    load_count(a, 0x23)?;
    a.sub(rax, r12)?;
    eq(a, rt, "lint0 masked blocks the pic", 0)?;
    // Globally disabling the APIC connects INTR directly.
    wrmsr(a, 0x1b, 0xfee0_0100)?;
    settle(a)?;
    load_count(a, 0x23)?;
    a.sub(rax, r12)?;
    eq(a, rt, "with the apic disabled the pic reaches the cpu", 1)?;
    set_irq_line(a, 3, false)?;
    out(a, 0x21, 1, 0xff)?;
    wrmsr(a, 0x1b, 0xfee0_0900)
}
