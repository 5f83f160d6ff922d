//! PCI suite: configuration mechanism #1, the host bridge and ISA bridge,
//! finding QEMU's pci-testdev, sizing its BARs, running its protocol over
//! both BARs the way kvm-unit-tests' lib/pci-testdev.c does, memory decode
//! control, and QEMU's pc-testdev (scratch ports incl. string I/O, MMIO).

use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, masked, nonzero};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        bridges(a, rt)?;
        testdev_config(a, rt)?;
        testdev_protocol(a, rt, false)?;
        testdev_protocol(a, rt, true)?;
        decode(a, rt)?;
        pc_testdev(a, rt)
    });
    p
}

fn bridges(a: &mut Asm, rt: &Rt64) -> AsmResult {
    out(a, 0xcf8, 4, 0x8000_0000)?;
    inp(a, 0xcf8, 4)?;
    eq(a, rt, "config address reads back", 0x8000_0000)?;
    pci_read32(a, 0x00, 0x00)?;
    eq(a, rt, "00.0 is the i440fx host bridge", 0x1237_8086)?;
    pci_read32(a, 0x00, 0x08)?;
    masked(a, rt, "host bridge class 0600h", 0xffff_ff00, 0x0600_0000)?;
    pci_read32(a, 0x08, 0x00)?;
    eq(a, rt, "01.0 is the piix3 isa bridge", 0x7000_8086)?;
    pci_read32(a, 0x08, 0x0c)?;
    masked(
        a,
        rt,
        "the isa bridge is multi-function",
        0x0080_0000,
        0x0080_0000,
    )?;
    pci_read32(a, 0xf8, 0x00)?;
    eq(a, rt, "an empty slot reads all ones", 0xffff_ffff)?;
    out(a, 0xcf8, 4, 0)?;
    inp(a, 0xcfc, 4)?;
    eq(
        a,
        rt,
        "config data with the enable bit clear reads ones",
        0xffff_ffff,
    )
}

/// Emits: R15 = the devfn of vendor 1B36 device 0005 (or 100H).
fn find_testdev(a: &mut Asm) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.xor(r15d, r15d)?;
    a.set(&mut lp)?;
    a.mov(eax, r15d)?;
    a.shl(eax, 8)?;
    a.or(eax, 0x8000_0000u32)?;
    a.mov(dx, 0xcf8u32)?;
    a.out(dx, eax)?;
    a.mov(dx, 0xcfcu32)?;
    a.in_(eax, dx)?;
    a.cmp(eax, 0x0005_1b36u32)?;
    a.je(done.l)?;
    a.inc(r15d)?;
    a.cmp(r15d, 0x100u32)?;
    a.jb(lp.l)?;
    a.set(&mut done)
}

/// Emits: CONFIG_ADDRESS = R15's function, register `reg`.
fn select(a: &mut Asm, reg: u8) -> AsmResult {
    a.mov(eax, r15d)?;
    a.shl(eax, 8)?;
    a.or(eax, 0x8000_0000u32 | reg as u32)?;
    a.mov(dx, 0xcf8u32)?;
    a.out(dx, eax)
}

/// Emits: RAX = config dword `reg` of R15's function.
fn cfg_read(a: &mut Asm, reg: u8) -> AsmResult {
    select(a, reg)?;
    inp(a, 0xcfc, 4)
}

/// Emits: config dword `reg` of R15's function = EBX.
fn cfg_write_ebx(a: &mut Asm, reg: u8) -> AsmResult {
    select(a, reg)?;
    a.mov(eax, ebx)?;
    a.mov(dx, 0xcfcu32)?;
    a.out(dx, eax)
}

fn testdev_config(a: &mut Asm, rt: &Rt64) -> AsmResult {
    find_testdev(a)?;
    a.mov(eax, r15d)?;
    masked(a, rt, "pci-testdev found on bus 0", 0x100, 0)?;
    cfg_read(a, 0x08)?;
    masked(a, rt, "pci-testdev class: other", 0xffff_ff00, 0x00ff_0000)?;
    cfg_read(a, 0x3c)?;
    masked(a, rt, "pci-testdev has no interrupt pin", 0xff00, 0)?;
    // Size BAR0 and BAR1: write ones, read the mask, restore.
    for (bar, mask, name) in [
        (0x10u8, 0xffff_f000u64, "bar0: 4 KiB memory"),
        (0x14, 0xffff_ff01, "bar1: 256 ports of i/o"),
    ] {
        cfg_read(a, bar)?;
        a.mov(r12, rax)?;
        a.mov(ebx, 0xffff_ffffu32)?;
        cfg_write_ebx(a, bar)?;
        cfg_read(a, bar)?;
        eq(a, rt, name, mask)?;
        a.mov(rbx, r12)?;
        cfg_write_ebx(a, bar)?;
    }
    cfg_read(a, 0x10)?;
    a.and(eax, !0xfu32 as i32)?;
    a.mov(r14, rax)?;
    nonzero(a, rt, "bar0 assigned as firmware would")
}

/// Emits the walk of lib/pci-testdev.c over one BAR: for each test, select
/// it, check count 0 and width 1, write the data byte 16 times at the
/// offset, and check the count (16, or 0 where an eventfd swallows writes).
/// The base is R14 (memory) or R13 (ports).
fn testdev_protocol(a: &mut Asm, rt: &Rt64, io: bool) -> AsmResult {
    if io {
        cfg_read(a, 0x14)?;
        a.and(eax, !3u32 as i32)?;
        a.mov(r13, rax)?;
    }
    a.xor(r12d, r12d)?;
    let mut next = a.label();
    let mut end = a.label();
    a.set(&mut next)?;
    // Select test R12.
    write_byte(a, io, 0, r12b)?;
    read_byte(a, io, 12)?;
    a.test(eax, eax)?;
    a.jnz(end.l)?;
    read_byte(a, io, 1)?;
    a.cmp(eax, 1)?;
    a.jne(end.l)?;
    read_byte(a, io, 8)?;
    a.mov(ebx, eax)?;
    read_byte(a, io, 4)?;
    a.mov(r8d, eax)?;
    read_byte(a, io, 5)?;
    a.shl(eax, 8)?;
    a.or(r8d, eax)?;
    a.mov(ecx, 16u32)?;
    let mut w = a.label();
    a.set(&mut w)?;
    if io {
        a.lea(rdx, qword_ptr(r13 + r8))?;
        a.mov(al, bl)?;
        a.out(dx, al)?;
    } else {
        a.mov(byte_ptr(r14 + r8), bl)?;
    }
    a.dec(ecx)?;
    a.jnz(w.l)?;
    read_byte(a, io, 12)?;
    let mut ok = a.label();
    a.test(eax, eax)?;
    a.jz(ok.l)?;
    a.cmp(eax, 16)?;
    a.jne(end.l)?;
    a.set(&mut ok)?;
    a.inc(r12d)?;
    a.jmp(next.l)?;
    a.set(&mut end)?;
    a.mov(eax, r12d)?;
    let what = if io { "i/o" } else { "memory" };
    eq(
        a,
        rt,
        &format!("pci-testdev: three tests pass over the {what} bar"),
        3,
    )
}

/// Emits: RAX = the byte at offset `off` of the test BAR.
fn read_byte(a: &mut Asm, io: bool, off: u32) -> AsmResult {
    a.xor(eax, eax)?;
    if io {
        a.lea(rdx, qword_ptr(r13 + off))?;
        a.in_(al, dx)
    } else {
        a.mov(al, byte_ptr(r14 + off))
    }
}

/// Emits: the byte in `v` at offset `off` of the test BAR.
fn write_byte(a: &mut Asm, io: bool, off: u32, v: AsmRegister8) -> AsmResult {
    if io {
        a.lea(rdx, qword_ptr(r13 + off))?;
        a.mov(al, v)?;
        a.out(dx, al)
    } else {
        a.mov(byte_ptr(r14 + off), v)
    }
}

fn decode(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // Memory decode off: BAR0 no longer answers.
    cfg_read(a, 0x04)?;
    a.mov(r12, rax)?;
    a.mov(ebx, eax)?;
    a.and(ebx, !2u32 as i32)?;
    cfg_write_ebx(a, 0x04)?;
    a.mov(eax, dword_ptr(r14))?;
    eq(a, rt, "bar0 unanswered with memory decode off", 0xffff_ffff)?;
    a.mov(rbx, r12)?;
    cfg_write_ebx(a, 0x04)?;
    a.mov(al, 0u32)?;
    a.mov(byte_ptr(r14), al)?;
    a.movzx(eax, byte_ptr(r14 + 1u32))?;
    eq(a, rt, "bar0 answers again with decode on", 1)
}

fn pc_testdev(a: &mut Asm, rt: &Rt64) -> AsmResult {
    out(a, 0xe0, 4, 0x1234_5678)?;
    inp(a, 0xe0, 4)?;
    eq(a, rt, "pc-testdev: 32-bit scratch register", 0x1234_5678)?;
    inp(a, 0xe1, 1)?;
    eq(a, rt, "pc-testdev: byte access at e1h", 0x56)?;
    out(a, 0xea, 1, 0xab)?;
    inp(a, 0xe0, 4)?;
    eq(
        a,
        rt,
        "pc-testdev: byte port eah writes byte 2",
        0x12ab_5678,
    )?;
    // String I/O: four bytes out to E0H leave the last one in byte 0.
    a.mov(
        dword_ptr(guestkit::layout::VARS + guestkit::layout::var::TEST_DATA),
        0x6463_6261u32,
    )?;
    a.mov(
        esi,
        (guestkit::layout::VARS + guestkit::layout::var::TEST_DATA) as u32,
    )?;
    a.mov(ecx, 4u32)?;
    a.mov(dx, 0xe0u32)?;
    a.cld()?;
    a.rep().outsb()?;
    inp(a, 0xe0, 1)?;
    eq(a, rt, "pc-testdev: rep outsb", b'd' as u64)?;
    a.mov(
        edi,
        (guestkit::layout::VARS + guestkit::layout::var::TEST_DATA + 8) as u32,
    )?;
    a.mov(ecx, 2u32)?;
    a.mov(dx, 0xe0u32)?;
    a.rep().insw()?;
    a.mov(
        eax,
        dword_ptr(guestkit::layout::VARS + guestkit::layout::var::TEST_DATA + 8),
    )?;
    masked(a, rt, "pc-testdev: rep insw", 0xff, b'd' as u64)?;
    out(a, 0xe4, 4, 0x10_0000)?;
    a.mov(rcx, 0xff00_0000u64)?;
    a.mov(rax, 0x0123_4567_89ab_cdefu64)?;
    a.mov(qword_ptr(rcx + 0x100u32), rax)?;
    a.mov(rax, qword_ptr(rcx + 0x100u32))?;
    eq(a, rt, "pc-testdev: iomem qword", 0x0123_4567_89ab_cdef)?;
    a.mov(rcx, 0xff00_0000u64)?;
    a.movzx(eax, byte_ptr(rcx + 0x103u32))?;
    eq(a, rt, "pc-testdev: iomem byte", 0x89)
}
