//! Emitters for PC platform access from 64-bit kit code: port I/O, MSRs, the
//! local APIC (xAPIC MMIO and x2APIC MSRs), the I/O APIC, the 8259 pair,
//! PCI configuration mechanism #1, fw_cfg, and waiting for interrupts. Each
//! leaves its result in RAX (zero-extended) and clobbers RCX and RDX; memory
//! is identity-mapped, so device addresses are used as they are.

use crate::asm::{Asm, AsmResult};
use crate::irq;
use iced_x86::code_asm::*;

/// The xAPIC page.
pub const LAPIC: u64 = 0xfee0_0000;
/// The I/O APIC page.
pub const IOAPIC: u64 = 0xfec0_0000;

/// Emits: OUT `port`, `v` with `size` bytes (1, 2 or 4).
pub fn out(a: &mut Asm, port: u16, size: u8, v: u32) -> AsmResult {
    a.mov(dx, port as u32)?;
    a.mov(eax, v)?;
    match size {
        1 => a.out(dx, al),
        2 => a.out(dx, ax),
        _ => a.out(dx, eax),
    }
}

/// Emits: RAX = IN `size` bytes from `port`.
pub fn inp(a: &mut Asm, port: u16, size: u8) -> AsmResult {
    a.mov(dx, port as u32)?;
    a.xor(eax, eax)?;
    match size {
        1 => a.in_(al, dx),
        2 => a.in_(ax, dx),
        _ => a.in_(eax, dx),
    }
}

/// Emits: WRMSR `msr` with `v`.
pub fn wrmsr(a: &mut Asm, msr: u32, v: u64) -> AsmResult {
    a.mov(ecx, msr)?;
    a.mov(eax, v as u32)?;
    a.mov(edx, (v >> 32) as u32)?;
    a.wrmsr()
}

/// Emits: RAX = RDMSR `msr`.
pub fn rdmsr(a: &mut Asm, msr: u32) -> AsmResult {
    a.mov(ecx, msr)?;
    a.rdmsr()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// Emits: RAX = the 32-bit value at physical address `pa`.
pub fn read32(a: &mut Asm, pa: u64) -> AsmResult {
    a.mov(rcx, pa)?;
    a.mov(eax, dword_ptr(rcx))
}

/// Emits: the 32-bit store of `v` at physical address `pa`.
pub fn write32(a: &mut Asm, pa: u64, v: u32) -> AsmResult {
    a.mov(rcx, pa)?;
    a.mov(dword_ptr(rcx), v)
}

/// Emits: RAX = xAPIC register `off`.
pub fn lapic_read(a: &mut Asm, off: u32) -> AsmResult {
    read32(a, LAPIC + off as u64)
}

/// Emits: xAPIC register `off` = `v`.
pub fn lapic_write(a: &mut Asm, off: u32, v: u32) -> AsmResult {
    write32(a, LAPIC + off as u64, v)
}

/// Emits: software-enable the local APIC (SVR = 1FFH).
pub fn lapic_enable(a: &mut Asm) -> AsmResult {
    lapic_write(a, 0xf0, 0x1ff)
}

/// Emits: software-enable the local APIC and start its timer in periodic
/// mode at `vector`, counting down from `initial` at the bus clock (divide
/// configuration 1011B: divide by 1; SDM Vol. 3A 11.5.4).
pub fn lapic_periodic_timer(a: &mut Asm, vector: u8, initial: u32) -> AsmResult {
    lapic_enable(a)?;
    lapic_write(a, 0x3e0, 0xb)?;
    lapic_write(a, 0x320, 0x2_0000 | vector as u32)?;
    lapic_write(a, 0x380, initial)
}

/// Emits: RAX = I/O APIC register `reg`.
pub fn ioapic_read(a: &mut Asm, reg: u32) -> AsmResult {
    write32(a, IOAPIC, reg)?;
    read32(a, IOAPIC + 0x10)
}

/// Emits: I/O APIC register `reg` = `v`.
pub fn ioapic_write(a: &mut Asm, reg: u32, v: u32) -> AsmResult {
    write32(a, IOAPIC, reg)?;
    write32(a, IOAPIC + 0x10, v)
}

/// Emits: redirection entry `pin` = `lo` (vector, mode, trigger, mask) with
/// destination APIC ID `dest`.
pub fn ioapic_redir(a: &mut Asm, pin: u32, lo: u32, dest: u8) -> AsmResult {
    ioapic_write(a, 0x11 + 2 * pin, (dest as u32) << 24)?;
    ioapic_write(a, 0x10 + 2 * pin, lo)
}

/// Emits: drive ISA interrupt line `line` through QEMU's pc-testdev.
pub fn set_irq_line(a: &mut Asm, line: u16, level: bool) -> AsmResult {
    out(a, 0x2000 + line, 1, level as u32)
}

/// Emits: initialize both 8259s (edge, cascade on IR2, vector bases
/// `master` and `slave`, 8086 mode, automatic EOI if `auto_eoi`), masks as
/// given.
pub fn pic_init(a: &mut Asm, master: u8, slave: u8, auto_eoi: bool, masks: (u8, u8)) -> AsmResult {
    let icw4 = if auto_eoi { 3 } else { 1 };
    for (port, v) in [
        (0x20, 0x11),
        (0x21, master as u32),
        (0x21, 4),
        (0x21, icw4),
        (0xa0, 0x11),
        (0xa1, slave as u32),
        (0xa1, 2),
        (0xa1, icw4),
        (0x21, masks.0 as u32),
        (0xa1, masks.1 as u32),
    ] {
        out(a, port, 1, v)?;
    }
    Ok(())
}

/// Emits: RAX = PCI configuration dword `reg` of bus 0, `devfn`.
pub fn pci_read32(a: &mut Asm, devfn: u8, reg: u8) -> AsmResult {
    out(
        a,
        0xcf8,
        4,
        0x8000_0000 | (devfn as u32) << 8 | (reg & 0xfc) as u32,
    )?;
    inp(a, 0xcfc, 4)
}

/// Emits: PCI configuration dword `reg` of bus 0, `devfn` = `v`.
pub fn pci_write32(a: &mut Asm, devfn: u8, reg: u8, v: u32) -> AsmResult {
    out(
        a,
        0xcf8,
        4,
        0x8000_0000 | (devfn as u32) << 8 | (reg & 0xfc) as u32,
    )?;
    out(a, 0xcfc, 4, v)
}

/// Emits: RAX = the first `n` (1-8) bytes of fw_cfg item `key`, little
/// endian (clobbers R8).
pub fn fw_cfg_read(a: &mut Asm, key: u16, n: u8) -> AsmResult {
    out(a, 0x510, 2, key as u32)?;
    a.xor(r8d, r8d)?;
    for k in 0..n {
        inp(a, 0x511, 1)?;
        a.shl(rax, 8 * k as i32)?;
        a.or(r8, rax)?;
    }
    a.mov(rax, r8)
}

/// Emits: wait with `sti; hlt` until `vector`'s count reaches `n`; leaves
/// interrupts disabled.
pub fn wait_count(a: &mut Asm, vector: u8, n: u32) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.set(&mut lp)?;
    a.cli()?;
    a.cmp(dword_ptr(irq::count_addr(vector)), n)?;
    a.jae(done.l)?;
    a.sti()?;
    a.hlt()?;
    a.jmp(lp.l)?;
    a.set(&mut done)?;
    a.nop()
}

/// Emits: spin (interrupts enabled) for `n` iterations of a PAUSE loop.
pub fn spin(a: &mut Asm, n: u32) -> AsmResult {
    let mut lp = a.label();
    a.mov(ecx, n)?;
    a.set(&mut lp)?;
    a.pause()?;
    a.dec(ecx)?;
    a.jnz(lp.l)
}

/// Emits: the local APIC reset kvm-unit-tests' `reset_apic` does: globally
/// disable (EN and EXTD clear), re-enable in xAPIC mode, SVR = 1FFH.
pub fn lapic_reset(a: &mut Asm) -> AsmResult {
    a.mov(ecx, 0x1bu32)?;
    a.rdmsr()?;
    a.and(eax, !0xc00u32 as i32)?;
    a.wrmsr()?;
    a.or(eax, 0x800u32)?;
    a.wrmsr()?;
    lapic_enable(a)
}

/// Emits: RAX = TSC.
pub fn rdtsc(a: &mut Asm) -> AsmResult {
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// Emits: RAX = CPUID(`leaf`, 0) register `reg` (0 EAX, 1 EBX, 2 ECX, 3 EDX);
/// clobbers RBX.
pub fn cpuid(a: &mut Asm, leaf: u32, reg: u8) -> AsmResult {
    a.mov(eax, leaf)?;
    a.xor(ecx, ecx)?;
    a.cpuid()?;
    match reg {
        0 => Ok(()),
        1 => a.mov(eax, ebx),
        2 => a.mov(eax, ecx),
        _ => a.mov(eax, edx),
    }
}

/// Emits: give an interrupt just raised time to arrive. The architecture
/// does not promise delivery at the very next instruction boundary (QEMU's
/// TCG, for one, takes it at the end of a translation block); a short PAUSE
/// loop crosses many boundaries. nestemu delivers at the first.
pub fn settle(a: &mut Asm) -> AsmResult {
    spin(a, 64)
}

// ---- a second processor that signals the BSP ----

/// Where the AP's real-mode code starts (SIPI vector 20H).
pub const AP_CODE: u64 = 0x2_0000;
/// A byte the AP sets once its IPIs are sent.
pub const AP_SENT: u64 = 0x2_0800;
/// A byte the AP of [`ap_sends_when_told`] waits on (see [`tell_ap`]).
pub const AP_GO: u64 = 0x2_0801;

/// When the AP sends its IPIs.
enum Wait {
    /// After spinning this many iterations.
    Spin(u16),
    /// Once [`AP_GO`] is non-zero.
    Told,
}

/// The AP's code: spin `delay` iterations, switch its local APIC to x2APIC
/// mode (so real-mode code can reach the ICR through WRMSR 830H), send each
/// of `icrs` (ICR low words) to APIC ID 0 (the BSP), set [`AP_SENT`], halt.
pub fn ap_sends(delay: u16, icrs: &[u32]) -> AsmResult<Vec<u8>> {
    ap_code(Wait::Spin(delay), icrs)
}

/// As [`ap_sends`], but the AP sends once the BSP (or its guest) has run
/// [`tell_ap`]: for IPIs that must arrive while a guest runs, whatever the
/// interleaving of the two vCPUs.
pub fn ap_sends_when_told(icrs: &[u32]) -> AsmResult<Vec<u8>> {
    ap_code(Wait::Told, icrs)
}

/// Emits: set [`AP_GO`] (the AP of [`ap_sends_when_told`] sends its IPIs).
pub fn tell_ap(a: &mut Asm) -> AsmResult {
    a.mov(byte_ptr(AP_GO), 1)
}

fn ap_code(wait: Wait, icrs: &[u32]) -> AsmResult<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    let mut spin = a.create_label();
    let mut park = a.create_label();
    a.mov(ax, cs)?;
    a.mov(ds, ax)?;
    match wait {
        Wait::Spin(delay) => {
            a.mov(cx, delay as u32)?;
            a.set_label(&mut spin)?;
            a.dec(cx)?;
            a.jnz(spin)?;
        }
        Wait::Told => {
            a.set_label(&mut spin)?;
            a.pause()?;
            a.cmp(byte_ptr((AP_GO - AP_CODE) as u32), 0)?;
            a.je(spin)?;
        }
    }
    a.mov(ecx, 0x1bu32)?;
    a.rdmsr()?;
    a.or(eax, 0xc00u32)?;
    a.wrmsr()?;
    for &icr in icrs {
        a.mov(ecx, 0x830u32)?;
        a.xor(edx, edx)?;
        a.mov(eax, icr)?;
        a.wrmsr()?;
    }
    a.mov(byte_ptr((AP_SENT - AP_CODE) as u32), 1u32)?;
    a.set_label(&mut park)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(park)?;
    a.assemble(AP_CODE)
}

/// ICR low word: INIT (assert, physical).
pub const ICR_INIT: u32 = 0x4500;
/// ICR low word: SIPI vector 42H.
pub const ICR_SIPI_42: u32 = 0x4642;

/// Emits: copy `code` to [`AP_CODE`], clear [`AP_SENT`] and [`AP_GO`], and start APIC ID 1
/// on it (INIT then SIPI vector 20H: an AP halted by an earlier case needs
/// the INIT to wait for a SIPI again). Needs a machine of two vCPUs.
pub fn start_ap(a: &mut Asm, code: &[u8]) -> AsmResult {
    for (k, w) in code.chunks(4).enumerate() {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        a.mov(
            dword_ptr(AP_CODE + 4 * k as u64),
            u32::from_le_bytes(b) as i32,
        )?;
    }
    a.mov(byte_ptr(AP_SENT), 0)?;
    a.mov(byte_ptr(AP_GO), 0)?;
    lapic_enable(a)?;
    lapic_write(a, 0x310, 1 << 24)?;
    lapic_write(a, 0x300, ICR_INIT)?;
    lapic_write(a, 0x310, 1 << 24)?;
    lapic_write(a, 0x300, 0x4600 | (AP_CODE >> 12) as u32)
}
