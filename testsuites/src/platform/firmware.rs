//! What firmware leaves for a kernel: fw_cfg items (the keys kvm-unit-tests
//! reads), the ACPI tables parsed back as kvm-unit-tests' lib/x86/acpi.c
//! walks them (RSDP scan of E0000H-FFFFFH, RSDT, FADT, FACS, DSDT, MADT),
//! and the PM timer. Separate programs end the run through each power-off
//! and reset path.

use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, info, masked, nonzero, range};
use guestkit::layout::{var, VARS};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;
use nestemu::Stop;

/// The suite.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        fw_cfg(a, rt)?;
        rsdp(a, rt)?;
        rsdt(a, rt)?;
        fadt(a, rt)?;
        madt(a, rt)?;
        pm_timer(a, rt)
    });
    p
}

fn fw_cfg(a: &mut Asm, rt: &Rt64) -> AsmResult {
    fw_cfg_read(a, 0x00, 4)?;
    eq(a, rt, "fw_cfg signature QEMU", 0x554d_4551)?;
    fw_cfg_read(a, 0x01, 4)?;
    masked(a, rt, "fw_cfg traditional interface", 1, 1)?;
    fw_cfg_read(a, 0x05, 2)?;
    eq(a, rt, "fw_cfg 05h: one cpu", 1)?;
    fw_cfg_read(a, 0x0f, 2)?;
    eq(a, rt, "fw_cfg 0fh: max cpus 1", 1)?;
    // RAM size against Multiboot's mem_upper (KiB above 1 MiB).
    a.mov(rbx, qword_ptr(VARS + var::MBI))?;
    a.mov(r12d, dword_ptr(rbx + 8u32))?;
    a.add(r12, 1024)?;
    a.shl(r12, 10)?;
    fw_cfg_read(a, 0x03, 8)?;
    a.sub(rax, r12)?;
    // QEMU's firmware reserves a little at the top of RAM; nestemu does
    // not: allow up to 1 MiB.
    range(
        a,
        rt,
        "fw_cfg 03h: ram size covers multiboot's memory",
        0,
        1 << 20,
    )?;
    // QEMU fills key 11h with the Multiboot image: its first 8 bytes are
    // the kit's header (magic 1BADB002H, flags 10000H).
    fw_cfg_read(a, 0x11, 8)?;
    eq(
        a,
        rt,
        "fw_cfg 11h: the kernel image, as qemu",
        0x0001_0000_1bad_b002,
    )?;
    fw_cfg_read(a, 0x7777, 4)?;
    eq(a, rt, "fw_cfg: a missing item reads 0", 0)?;
    fw_cfg_read(a, 0x19, 4)?;
    a.bswap(eax)?;
    info(a, rt, "fw_cfg files")
}

/// Emits: AL = the byte sum of [RSI, RSI + RCX) (clobbers RSI, RCX, RDX).
fn byte_sum(a: &mut Asm) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.xor(eax, eax)?;
    a.test(rcx, rcx)?;
    a.jz(done.l)?;
    a.set(&mut lp)?;
    a.add(al, byte_ptr(rsi))?;
    a.inc(rsi)?;
    a.dec(rcx)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.movzx(eax, al)
}

/// Emits: check table R8's checksum (length at +4).
fn table_checksum(a: &mut Asm, rt: &Rt64, name: &str) -> AsmResult {
    a.mov(rsi, r8)?;
    a.mov(ecx, dword_ptr(r8 + 4u32))?;
    byte_sum(a)?;
    eq(a, rt, name, 0)
}

/// R12 = the RSDP.
fn rsdp(a: &mut Asm, rt: &Rt64) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r12d, 0xe_0000u32)?;
    a.mov(rbx, u64::from_le_bytes(*b"RSD PTR "))?;
    a.set(&mut lp)?;
    a.cmp(qword_ptr(r12), rbx)?;
    a.je(done.l)?;
    a.add(r12d, 16)?;
    a.cmp(r12d, 0x10_0000u32)?;
    a.jb(lp.l)?;
    a.xor(r12d, r12d)?;
    a.set(&mut done)?;
    a.mov(rax, r12)?;
    nonzero(a, rt, "rsdp found on a 16-byte boundary in e0000h-fffffh")?;
    a.mov(rsi, r12)?;
    a.mov(ecx, 20u32)?;
    byte_sum(a)?;
    eq(a, rt, "rsdp checksum", 0)?;
    a.movzx(eax, byte_ptr(r12 + 15u32))?;
    info(a, rt, "rsdp revision")
}

/// R13 = the FADT, R14 = the MADT.
fn rsdt(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.mov(r8d, dword_ptr(r12 + 16u32))?;
    a.mov(eax, dword_ptr(r8))?;
    eq(a, rt, "rsdt signature", u32::from_le_bytes(*b"RSDT") as u64)?;
    table_checksum(a, rt, "rsdt checksum")?;
    // Walk the entries from offset 36 to the length.
    a.xor(r13d, r13d)?;
    a.xor(r14d, r14d)?;
    a.mov(r9d, dword_ptr(r8 + 4u32))?;
    a.add(r9, r8)?;
    a.lea(r10, qword_ptr(r8 + 36u32))?;
    let mut lp = a.label();
    let mut next = a.label();
    let mut done = a.label();
    a.set(&mut lp)?;
    a.cmp(r10, r9)?;
    a.jae(done.l)?;
    a.mov(r11d, dword_ptr(r10))?;
    a.mov(eax, dword_ptr(r11))?;
    a.cmp(eax, u32::from_le_bytes(*b"FACP"))?;
    a.cmove(r13, r11)?;
    a.cmp(eax, u32::from_le_bytes(*b"APIC"))?;
    a.cmove(r14, r11)?;
    a.set(&mut next)?;
    a.add(r10, 4)?;
    a.jmp(lp.l)?;
    a.set(&mut done)?;
    a.mov(rax, r13)?;
    nonzero(a, rt, "rsdt lists the fadt")?;
    a.mov(rax, r14)?;
    nonzero(a, rt, "rsdt lists the madt")
}

fn fadt(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.mov(r8, r13)?;
    table_checksum(a, rt, "fadt checksum")?;
    a.mov(eax, dword_ptr(r13 + 76u32))?;
    eq(a, rt, "fadt pm timer block 608h", 0x608)?;
    a.mov(eax, dword_ptr(r13 + 64u32))?;
    eq(a, rt, "fadt pm1a control block 604h", 0x604)?;
    a.movzx(eax, word_ptr(r13 + 46u32))?;
    eq(a, rt, "fadt sci on irq 9", 9)?;
    a.mov(r8d, dword_ptr(r13 + 36u32))?;
    a.mov(eax, dword_ptr(r8))?;
    eq(
        a,
        rt,
        "fadt firmware_ctrl points at the facs",
        u32::from_le_bytes(*b"FACS") as u64,
    )?;
    a.mov(r8d, dword_ptr(r13 + 40u32))?;
    a.mov(eax, dword_ptr(r8))?;
    eq(
        a,
        rt,
        "fadt dsdt points at the dsdt",
        u32::from_le_bytes(*b"DSDT") as u64,
    )?;
    table_checksum(a, rt, "dsdt checksum")
}

fn madt(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.mov(r8, r14)?;
    table_checksum(a, rt, "madt checksum")?;
    a.mov(eax, dword_ptr(r14 + 36u32))?;
    eq(a, rt, "madt local apic address", 0xfee0_0000)?;
    // Walk the entries: R12 counts enabled CPUs with APIC ID 0, RBX holds
    // the I/O APIC's address.
    a.xor(r12d, r12d)?;
    a.xor(ebx, ebx)?;
    a.mov(r9d, dword_ptr(r14 + 4u32))?;
    a.add(r9, r14)?;
    a.lea(r10, qword_ptr(r14 + 44u32))?;
    let mut lp = a.label();
    let mut next = a.label();
    let mut done = a.label();
    let mut not_cpu = a.label();
    a.set(&mut lp)?;
    a.cmp(r10, r9)?;
    a.jae(done.l)?;
    a.movzx(eax, byte_ptr(r10))?;
    a.cmp(eax, 0)?;
    a.jne(not_cpu.l)?;
    a.cmp(byte_ptr(r10 + 3u32), 0)?;
    a.jne(next.l)?;
    a.test(byte_ptr(r10 + 4u32), 1)?;
    a.jz(next.l)?;
    a.inc(r12d)?;
    a.jmp(next.l)?;
    a.set(&mut not_cpu)?;
    a.cmp(eax, 1)?;
    a.jne(next.l)?;
    a.mov(ebx, dword_ptr(r10 + 4u32))?;
    a.set(&mut next)?;
    a.movzx(eax, byte_ptr(r10 + 1u32))?;
    a.test(eax, eax)?;
    a.jz(done.l)?;
    a.add(r10, rax)?;
    a.jmp(lp.l)?;
    a.set(&mut done)?;
    a.mov(eax, r12d)?;
    eq(a, rt, "madt: one enabled processor with apic id 0", 1)?;
    a.mov(eax, ebx)?;
    eq(a, rt, "madt: the i/o apic at fec00000h", 0xfec0_0000)
}

fn pm_timer(a: &mut Asm, rt: &Rt64) -> AsmResult {
    inp(a, 0x608, 4)?;
    a.mov(r12, rax)?;
    masked(a, rt, "pm timer is 24 bits", 0xff00_0000, 0)?;
    spin(a, 1000)?;
    inp(a, 0x608, 4)?;
    a.sub(eax, r12d)?;
    a.and(eax, 0xff_ffff)?;
    nonzero(a, rt, "pm timer advances")?;
    inp(a, 0x604, 2)?;
    info(a, rt, "pm1 control")
}

/// Programs that end the run through one power path, with the stop each
/// should produce on nestemu.
pub fn exits() -> Vec<(&'static str, Program, Stop)> {
    let mut v = Vec::new();
    let ending = |f: fn(&mut Asm) -> AsmResult| {
        let mut p = Program::new();
        p.body64(move |a, _| f(a));
        p
    };
    v.push((
        "acpi_poweroff",
        ending(|a| out(a, 0x604, 2, 0x2000)),
        Stop::PowerOff,
    ));
    v.push((
        "reset_cf9",
        ending(|a| out(a, 0xcf9, 1, 0x06)),
        Stop::Reset("reset control register (port CF9H)".into()),
    ));
    v.push((
        "reset_kbc",
        ending(|a| out(a, 0x64, 1, 0xfe)),
        Stop::Reset("keyboard controller reset (port 64H)".into()),
    ));
    v.push((
        "reset_port92",
        ending(|a| out(a, 0x92, 1, 0x01)),
        Stop::Reset("fast reset (port 92H)".into()),
    ));
    v.push((
        "shutdown_8900",
        ending(|a| {
            for b in b"Shutdown" {
                out(a, 0x8900, 1, *b as u32)?;
            }
            Ok(())
        }),
        Stop::PowerOff,
    ));
    v
}
