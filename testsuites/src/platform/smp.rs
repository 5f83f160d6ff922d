//! The SMP suite (SDM Vol. 3A 9.4, "Multiple-Processor (MP)
//! Initialization"; 11.6, "Issuing Interprocessor Interrupts"): the
//! bootstrap processor starts every application processor with
//! INIT-SIPI-SIPI through a real-mode trampoline; each AP goes to long mode
//! on the kit's page tables, reports its APIC ID (and what CPUID says it
//! is), and then serves commands from a mailbox. The BSP then checks IPIs
//! (fixed, NMI, logical flat, the shorthands, lowest priority), a TLB
//! shootdown, an INIT to a running AP and its restart, and a counter that
//! every processor increments with LOCK INC.
//!
//! Every processor takes interrupts through one IDT of this suite (the
//! kit's uses the BSP's TSS): a stub per vector counts the arrival per
//! APIC ID and vector and sends the EOI. Verdicts are the kit's `ok`/`FAIL`
//! lines from the BSP; `info` lines report interleaving-dependent values.

use guestkit::asm::{self, Asm, AsmResult};
use guestkit::checks::{eq, info};
use guestkit::layout::{sel, GDT, PD, PML4};
use guestkit::platform::{cpuid, fw_cfg_read, inp, out, LAPIC};
use guestkit::rt64::abs;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

/// Where APs start: SIPI vector 20H.
pub const SIPI_VECTOR: u8 = 0x20;
const TRAMPOLINE: u64 = (SIPI_VECTOR as u64) << 12;
/// The trampoline's 32-bit part.
const T32: u64 = TRAMPOLINE + 0x100;
/// Shared variables.
const DATA: u64 = 0x30_0000;
/// Interrupt counts: a u32 per APIC ID (0x400 bytes each) and vector.
const COUNTS: u64 = 0x31_0000;
/// AP stacks, 4 KiB per APIC ID.
const STACKS: u64 = 0x32_0000;
/// A page table for the shootdown page.
const PT: u64 = 0x36_1000;
const PAGE_A: u64 = 0x36_2000;
const PAGE_B: u64 = 0x36_3000;
/// The linear address whose translation is shot down (1 GiB: the first
/// entry of the kit's second page directory, pointed at [`PT`]).
const TEST_VA: u64 = 0x4000_0000;
const A_VALUE: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const B_VALUE: u64 = 0xbbbb_bbbb_bbbb_bbbb;

/// Offsets in [`DATA`].
mod v {
    pub const ONLINE: u64 = 0x00;
    pub const APMASK: u64 = 0x08;
    pub const COUNTER: u64 = 0x10;
    pub const RACY: u64 = 0x18;
    pub const FATAL: u64 = 0x20;
    /// A far pointer (offset32, selector) to the 64-bit AP entry.
    pub const AP_JUMP: u64 = 0x28;
    /// Per APIC ID, 8 bytes each: the mailbox.
    pub const CMD: u64 = 0x100;
    /// Per APIC ID: a command's result.
    pub const RES: u64 = 0x300;
    /// Per APIC ID: start-ups.
    pub const BOOTS: u64 = 0x500;
    /// Per APIC ID: idle-loop heartbeat.
    pub const HB: u64 = 0x700;
    /// Per APIC ID: SVR as found at start-up.
    pub const SVR0: u64 = 0x900;
    /// Per APIC ID: 1 if CPUID.01H:EBX[31:24] is the APIC ID, +2 if
    /// CPUID.0BH:EDX is.
    pub const CPUID_OK: u64 = 0xb00;
}

/// Mailbox commands (low byte; the argument from bit 8).
mod cmd {
    pub const COUNT: u64 = 1;
    pub const READ: u64 = 2;
    pub const SET_TPR: u64 = 3;
    pub const SET_LDR: u64 = 4;
}

/// Iterations of the counter loop per processor.
pub const COUNT_ITERATIONS: u64 = 3000;

fn d(off: u64) -> u64 {
    DATA + off
}

fn count_addr(apic_id: u64, vector: u8) -> u64 {
    COUNTS + apic_id * 0x400 + 4 * vector as u64
}

/// The real-mode part of the trampoline, at CS = SIPI_VECTOR << 8, IP = 0.
fn trampoline16() -> Result<Vec<u8>, String> {
    let c = asm::build(16, 0, |a| {
        let mut gdtp = a.label();
        a.cli()?;
        a.mov(ax, cs)?;
        a.mov(ds, ax)?;
        let at = a.addr(&gdtp) & 0xffff;
        a.lgdt(fword_ptr(at))?;
        a.mov(eax, cr0)?;
        a.or(eax, 1i32)?;
        a.mov(cr0, eax)?;
        // JMP DWORD CODE32:T32.
        let mut far = vec![0x66, 0xea];
        far.extend_from_slice(&(T32 as u32).to_le_bytes());
        far.extend_from_slice(&sel::CODE32.to_le_bytes());
        a.db(&far)?;
        a.set(&mut gdtp)?;
        a.dw(&[0x67])?;
        a.dd(&[GDT as u32])
    })?;
    Ok(c.bytes)
}

/// The 32-bit part: long mode on the kit's page tables, then a far jump to
/// the 64-bit entry the BSP left in [`v::AP_JUMP`].
fn trampoline32() -> Result<Vec<u8>, String> {
    let c = asm::build(32, T32, |a| {
        a.mov(ax, sel::DATA as u32)?;
        for s in [ds, es, ss, fs, gs] {
            a.mov(s, ax)?;
        }
        a.mov(eax, cr4)?;
        a.or(eax, 0x20i32)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PML4 as u32)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x901i32)?;
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0001u32 as i32)?;
        a.mov(cr0, eax)?;
        a.jmp(fword_ptr(d(v::AP_JUMP)))
    })?;
    Ok(c.bytes)
}

/// Emits: ECX = xAPIC register `off` of this processor.
fn lapic_rd(a: &mut Asm, off: u32) -> AsmResult {
    a.mov(rcx, LAPIC)?;
    a.mov(ecx, dword_ptr(rcx + off))
}

/// Emits: xAPIC register `off` = EAX (clobbers RCX).
fn lapic_wr_eax(a: &mut Asm, off: u32) -> AsmResult {
    a.mov(rcx, LAPIC)?;
    a.mov(dword_ptr(rcx + off), eax)
}

/// Emits: send an IPI: ICR high = `dest` << 24, ICR low = `lo`.
fn ipi(a: &mut Asm, dest: u8, lo: u32) -> AsmResult {
    a.mov(rcx, LAPIC)?;
    a.mov(dword_ptr(rcx + 0x310), (dest as u32) << 24)?;
    a.mov(dword_ptr(rcx + 0x300), lo)
}

/// Emits: RAX = the qword at `addr` once it equals `want` (or after a
/// bounded wait); clobbers RCX, R8.
fn wait_eq(a: &mut Asm, addr: u64, want: u64) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r8d, 20_000_000u32)?;
    a.mov(rcx, want)?;
    a.set(&mut lp)?;
    a.mov(rax, abs(addr))?;
    a.cmp(rax, rcx)?;
    a.je(done.l)?;
    a.pause()?;
    a.dec(r8d)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.nop()
}

/// Emits: EAX = the dword at `addr` once it equals `want` (bounded).
fn wait_eq32(a: &mut Asm, addr: u64, want: u32) -> AsmResult {
    let mut lp = a.label();
    let mut done = a.label();
    a.mov(r8d, 20_000_000u32)?;
    a.set(&mut lp)?;
    a.mov(eax, dword_ptr(addr))?;
    a.cmp(eax, want)?;
    a.je(done.l)?;
    a.pause()?;
    a.dec(r8d)?;
    a.jnz(lp.l)?;
    a.set(&mut done)?;
    a.nop()
}

/// Emits: a PAUSE loop of `n` iterations (clobbers R8).
fn spin(a: &mut Asm, n: u32) -> AsmResult {
    let mut lp = a.label();
    a.mov(r8d, n)?;
    a.set(&mut lp)?;
    a.pause()?;
    a.dec(r8d)?;
    a.jnz(lp.l)
}

/// Emits: post command `c` to AP `id` and wait until it is done.
fn command(a: &mut Asm, id: u64, c: u64) -> AsmResult {
    a.mov(rax, c)?;
    a.mov(abs(d(v::CMD + 8 * id)), rax)?;
    wait_eq(a, d(v::CMD + 8 * id), 0)
}

/// Labels of the code every processor shares.
struct Shared {
    idt_ptr: guestkit::Label,
    count: guestkit::Label,
}

/// Emits the shared code (jumped over): interrupt stubs and handler, the
/// IDT, the counter routine, the AP entry and its mailbox loop, and the
/// trampoline bytes (at label `tramp`).
fn shared(
    a: &mut Asm,
    tramp: &mut guestkit::Label,
    ap_entry: &mut guestkit::Label,
) -> AsmResult<Shared> {
    let t16 = trampoline16().expect("the 16-bit trampoline assembles");
    let t32 = trampoline32().expect("the 32-bit trampoline assembles");
    let mut over = a.label();
    let mut stubs = a.label();
    let mut common = a.label();
    let mut idt = a.label();
    let mut idt_ptr = a.label();
    let mut count = a.label();
    a.jmp(over.l)?;

    // Stubs: push rax; mov al, vector; jmp rel32 common (8 bytes each).
    a.set(&mut stubs)?;
    let base = a.addr(&stubs);
    let target = a.addr(&common);
    for vec in 0..256u64 {
        let next = base.wrapping_add(8 * vec + 8);
        let rel = target.wrapping_sub(next) as u32;
        let mut b = vec![0x50, 0xb0, vec as u8, 0xe9];
        b.extend_from_slice(&rel.to_le_bytes());
        a.db(&b)?;
    }

    // Common handler: count per APIC ID and vector; EOI except for NMIs;
    // vector 31H first invalidates the shootdown page; an exception is
    // fatal (recorded, the processor stops).
    let mut no_eoi = a.label();
    let mut fatal = a.label();
    let mut not_shootdown = a.label();
    a.set(&mut common)?;
    a.push(rcx)?;
    a.push(rdx)?;
    a.movzx(edx, al)?;
    a.cmp(edx, 0x31)?;
    a.jne(not_shootdown.l)?;
    a.mov(rax, TEST_VA)?;
    a.invlpg(byte_ptr(rax))?;
    a.set(&mut not_shootdown)?;
    lapic_rd(a, 0x20)?;
    a.shr(ecx, 24)?;
    a.shl(ecx, 10)?;
    a.lea(rax, qword_ptr(rcx + rdx * 4 + COUNTS as i32))?;
    a.lock().inc(dword_ptr(rax))?;
    a.cmp(edx, 2)?;
    a.je(no_eoi.l)?;
    a.cmp(edx, 0x20)?;
    a.jb(fatal.l)?;
    a.xor(eax, eax)?;
    lapic_wr_eax(a, 0xb0)?;
    a.set(&mut no_eoi)?;
    a.pop(rdx)?;
    a.pop(rcx)?;
    a.pop(rax)?;
    a.iretq()?;
    a.set(&mut fatal)?;
    a.inc(edx)?;
    a.mov(abs(d(v::FATAL)), rdx)?;
    let mut stop = a.label();
    a.set(&mut stop)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(stop.l)?;

    // The IDT: 64-bit interrupt gates, no IST.
    a.set(&mut idt)?;
    for vec in 0..256u64 {
        let off = base.wrapping_add(8 * vec);
        let lo =
            (off & 0xffff) | (sel::CODE64 as u64) << 16 | 0x8e << 40 | ((off >> 16) & 0xffff) << 48;
        a.dq(&[lo, off >> 32])?;
    }
    a.set(&mut idt_ptr)?;
    a.dw(&[0xfff])?;
    let idt_at = a.addr(&idt);
    a.dq(&[idt_at])?;

    // count: ECX iterations of LOCK INC [COUNTER], and of an unlocked
    // load / store pair split across blocks (updates lost wherever another
    // vCPU's turn falls between them).
    let mut split = a.label();
    a.set(&mut count)?;
    a.lock().inc(abs(d(v::COUNTER)))?;
    a.mov(rax, abs(d(v::RACY)))?;
    a.jmp(split.l)?;
    a.set(&mut split)?;
    a.inc(rax)?;
    a.mov(abs(d(v::RACY)), rax)?;
    a.dec(ecx)?;
    a.jnz(count.l)?;
    a.ret()?;

    // The AP's 64-bit entry: R12 = APIC ID, R13 = 8 * APIC ID.
    a.set(ap_entry)?;
    a.mov(ax, sel::DATA as u32)?;
    for s in [ds, es, ss, fs, gs] {
        a.mov(s, ax)?;
    }
    lapic_rd(a, 0x20)?;
    a.shr(ecx, 24)?;
    a.mov(r12d, ecx)?;
    a.lea(r13, qword_ptr(r12 * 8))?;
    a.mov(rsp, r12)?;
    a.shl(rsp, 12)?;
    a.add(rsp, (STACKS + 0x1000) as i32)?;
    a.lidt(ptr(idt_ptr.l))?;
    lapic_rd(a, 0xf0)?;
    a.mov(qword_ptr(r13 + d(v::SVR0) as i32), rcx)?;
    cpuid_ok(a)?;
    a.mov(qword_ptr(r13 + d(v::CPUID_OK) as i32), rdx)?;
    a.mov(eax, 0x1ffu32)?;
    lapic_wr_eax(a, 0xf0)?;
    a.xor(eax, eax)?;
    lapic_wr_eax(a, 0x80)?;
    a.lock().inc(qword_ptr(r13 + d(v::BOOTS) as i32))?;
    a.lock().bts(abs(d(v::APMASK)), r12)?;
    a.lock().inc(abs(d(v::ONLINE)))?;
    a.sti()?;

    // The mailbox loop.
    let mut idle = a.label();
    let mut nothing = a.label();
    let mut done = a.label();
    let mut not_count = a.label();
    let mut not_read = a.label();
    let mut not_tpr = a.label();
    a.set(&mut idle)?;
    a.inc(qword_ptr(r13 + d(v::HB) as i32))?;
    a.mov(rax, qword_ptr(r13 + d(v::CMD) as i32))?;
    a.test(rax, rax)?;
    a.jz(nothing.l)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 8)?;
    a.cmp(al, cmd::COUNT as i32)?;
    a.jne(not_count.l)?;
    a.mov(ecx, edx)?;
    a.call(count.l)?;
    a.jmp(done.l)?;
    a.set(&mut not_count)?;
    a.cmp(al, cmd::READ as i32)?;
    a.jne(not_read.l)?;
    a.mov(rax, TEST_VA)?;
    a.mov(rax, qword_ptr(rax))?;
    a.mov(qword_ptr(r13 + d(v::RES) as i32), rax)?;
    a.jmp(done.l)?;
    a.set(&mut not_read)?;
    a.cmp(al, cmd::SET_TPR as i32)?;
    a.jne(not_tpr.l)?;
    a.mov(eax, edx)?;
    lapic_wr_eax(a, 0x80)?;
    a.jmp(done.l)?;
    a.set(&mut not_tpr)?;
    // SET_LDR.
    a.mov(eax, edx)?;
    lapic_wr_eax(a, 0xd0)?;
    a.set(&mut done)?;
    a.mov(qword_ptr(r13 + d(v::CMD) as i32), 0)?;
    a.jmp(idle.l)?;
    a.set(&mut nothing)?;
    a.pause()?;
    a.jmp(idle.l)?;

    a.set(tramp)?;
    let mut image = vec![0u8; 0x100 + t32.len()];
    image[..t16.len()].copy_from_slice(&t16);
    image[0x100..].copy_from_slice(&t32);
    a.db(&image)?;
    a.set(&mut over)?;
    a.nop()?;
    Ok(Shared { idt_ptr, count })
}

/// Emits: RDX = 1 if CPUID.01H:EBX[31:24] equals R12, + 2 if CPUID.0BH:EDX
/// does (clobbers RAX, RBX, RCX).
fn cpuid_ok(a: &mut Asm) -> AsmResult {
    a.xor(edx, edx)?;
    a.push(rdx)?;
    cpuid(a, 1, 1)?;
    a.shr(eax, 24)?;
    a.pop(rdx)?;
    a.cmp(eax, r12d)?;
    a.sete(dl)?;
    a.push(rdx)?;
    cpuid(a, 0xb, 3)?;
    a.pop(rdx)?;
    a.cmp(eax, r12d)?;
    a.sete(al)?;
    a.movzx(eax, al)?;
    a.lea(edx, dword_ptr(rdx + rax * 2))
}

/// The suite for a machine of `cpus` processors with APIC IDs 0..cpus
/// (`-smp cpus`): bring-up always; with at least four processors the IPI,
/// shootdown, INIT and counter checks.
pub fn program(cpus: u64) -> Program {
    let mut p = Program::new();
    p.body64(move |a, rt| body(a, rt, cpus));
    p
}

fn body(a: &mut Asm, rt: &Rt64, cpus: u64) -> AsmResult {
    let aps = cpus - 1;
    let mut tramp = a.label();
    let mut ap_entry = a.label();
    let sh = shared(a, &mut tramp, &mut ap_entry)?;
    super::setup(a)?;
    a.lidt(ptr(sh.idt_ptr.l))?;
    // The trampoline, the AP entry pointer, the shootdown page table.
    a.lea(rsi, ptr(tramp.l))?;
    a.mov(edi, TRAMPOLINE as u32)?;
    a.mov(ecx, 0x200u32)?;
    a.cld()?;
    a.rep().movsb()?;
    a.lea(rax, ptr(ap_entry.l))?;
    a.mov(dword_ptr(d(v::AP_JUMP)), eax)?;
    a.mov(word_ptr(d(v::AP_JUMP) + 4), sel::CODE64 as u32)?;
    a.mov(rax, A_VALUE)?;
    a.mov(abs(PAGE_A), rax)?;
    a.mov(rax, B_VALUE)?;
    a.mov(abs(PAGE_B), rax)?;
    a.mov(rax, PAGE_A | 3)?;
    a.mov(abs(PT), rax)?;
    a.mov(rax, PT | 3)?;
    a.mov(abs(PD + 0x1000), rax)?;
    a.mov(rax, cr3)?;
    a.mov(cr3, rax)?;
    a.xor(r12d, r12d)?;
    a.xor(r13d, r13d)?;
    cpuid_ok(a)?;
    a.mov(rax, rdx)?;
    eq(a, rt, "bsp: cpuid 01h and 0bh give its apic id", 3)?;
    a.sti()?;

    // What firmware tables say about the processors.
    fw_cfg_read(a, 5, 2)?;
    eq(a, rt, "fw_cfg cpu count", cpus)?;
    out(a, 0x70, 1, 0x5f)?;
    inp(a, 0x71, 1)?;
    eq(a, rt, "cmos 5fh: cpus - 1", cpus - 1)?;
    a.mov(eax, 0xbu32)?;
    a.mov(ecx, 1u32)?;
    a.cpuid()?;
    a.mov(eax, ebx)?;
    a.and(eax, 0xffff)?;
    eq(a, rt, "cpuid 0bh core level: logical processors", cpus)?;

    // INIT, then two start-up IPIs to all but self (SDM Vol. 3A 9.4.4.1).
    ipi(a, 0, 0x000c_4500)?;
    spin(a, 1000)?;
    ipi(a, 0, 0x000c_4600 | SIPI_VECTOR as u32)?;
    spin(a, 100)?;
    ipi(a, 0, 0x000c_4600 | SIPI_VECTOR as u32)?;
    wait_eq(a, d(v::ONLINE), aps)?;
    eq(a, rt, "every ap came online", aps)?;
    a.mov(rax, abs(d(v::APMASK)))?;
    eq(a, rt, "ap apic ids", ((1u64 << cpus) - 1) & !1)?;
    for id in 1..cpus {
        a.mov(rax, abs(d(v::CPUID_OK + 8 * id)))?;
        eq(
            a,
            rt,
            &format!("ap {id}: cpuid 01h and 0bh give its apic id"),
            3,
        )?;
        a.mov(rax, abs(d(v::SVR0 + 8 * id)))?;
        eq(a, rt, &format!("ap {id}: svr at start-up is ffh"), 0xff)?;
        a.mov(rax, abs(d(v::BOOTS + 8 * id)))?;
        eq(a, rt, &format!("ap {id}: started once"), 1)?;
    }
    if cpus >= 4 {
        ipis(a, rt)?;
        shootdown(a, rt)?;
        init_running(a, rt, cpus)?;
    }
    // Every processor increments the counter.
    for id in 1..cpus {
        a.mov(rax, cmd::COUNT | COUNT_ITERATIONS << 8)?;
        a.mov(abs(d(v::CMD + 8 * id)), rax)?;
    }
    a.mov(ecx, COUNT_ITERATIONS as u32)?;
    a.call(sh.count.l)?;
    for id in 1..cpus {
        wait_eq(a, d(v::CMD + 8 * id), 0)?;
    }
    a.mov(rax, abs(d(v::COUNTER)))?;
    eq(
        a,
        rt,
        "lock inc from every cpu reaches the total",
        cpus * COUNT_ITERATIONS,
    )?;
    a.mov(rax, abs(d(v::RACY)))?;
    info(a, rt, "unlocked counter")?;
    a.mov(rax, abs(d(v::FATAL)))?;
    eq(a, rt, "no exception on any cpu", 0)
}

/// Fixed, NMI, logical, shorthand and lowest-priority IPIs among APs 1-3.
fn ipis(a: &mut Asm, rt: &Rt64) -> AsmResult {
    for id in 1..4u64 {
        ipi(a, id as u8, 0x4040)?;
        wait_eq32(a, count_addr(id, 0x40), 1)?;
        eq(a, rt, &format!("fixed ipi to apic id {id}"), 1)?;
    }
    ipi(a, 1, 0x4400)?;
    wait_eq32(a, count_addr(1, 2), 1)?;
    eq(a, rt, "nmi ipi reaches ap 1 (no eoi)", 1)?;
    // Logical flat: AP n has LDR bit n; destination 0AH is APs 1 and 3.
    for id in 1..4u64 {
        command(a, id, cmd::SET_LDR | (1 << (24 + id)) << 8)?;
    }
    ipi(a, 0x0a, 0x4841)?;
    wait_eq32(a, count_addr(3, 0x41), 1)?;
    wait_eq32(a, count_addr(1, 0x41), 1)?;
    eq(a, rt, "logical flat ipi reaches ap 1", 1)?;
    spin(a, 20_000)?;
    a.mov(eax, dword_ptr(count_addr(2, 0x41)))?;
    eq(a, rt, "logical flat ipi skips ap 2", 0)?;
    a.mov(eax, dword_ptr(count_addr(3, 0x41)))?;
    eq(a, rt, "logical flat ipi reaches ap 3", 1)?;
    // Shorthands.
    ipi(a, 0, 0x000c_4042)?;
    for id in 1..4u64 {
        wait_eq32(a, count_addr(id, 0x42), 1)?;
        eq(a, rt, &format!("all-excluding-self reaches ap {id}"), 1)?;
    }
    a.mov(eax, dword_ptr(count_addr(0, 0x42)))?;
    eq(a, rt, "all-excluding-self skips the sender", 0)?;
    ipi(a, 0, 0x0008_4043)?;
    for id in 0..4u64 {
        wait_eq32(a, count_addr(id, 0x43), 1)?;
        eq(
            a,
            rt,
            &format!("all-including-self reaches apic id {id}"),
            1,
        )?;
    }
    ipi(a, 0, 0x0004_4044)?;
    wait_eq32(a, count_addr(0, 0x44), 1)?;
    eq(a, rt, "self ipi", 1)?;
    // Lowest priority to APs 1-3 (logical 0EH): AP 2 has the lowest TPR.
    for (id, tpr) in [(1u64, 0x20u64), (2, 0x10), (3, 0x30)] {
        command(a, id, cmd::SET_TPR | tpr << 8)?;
    }
    a.mov(eax, 0x40u32)?;
    lapic_wr_eax(a, 0x80)?;
    ipi(a, 0x0e, 0x4945)?;
    wait_eq32(a, count_addr(2, 0x45), 1)?;
    eq(a, rt, "lowest priority goes to the lowest tpr (ap 2)", 1)?;
    spin(a, 20_000)?;
    for id in [0u64, 1, 3] {
        a.mov(eax, dword_ptr(count_addr(id, 0x45)))?;
        eq(a, rt, &format!("lowest priority skips apic id {id}"), 0)?;
    }
    for id in 1..4u64 {
        command(a, id, cmd::SET_TPR)?;
    }
    a.xor(eax, eax)?;
    lapic_wr_eax(a, 0x80)
}

/// A PTE changes; the BSP invalidates its own TLB entry; AP 1 still reads
/// through its stale entry until an IPI makes it execute INVLPG.
fn shootdown(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.mov(rax, TEST_VA)?;
    a.mov(rax, qword_ptr(rax))?;
    eq(a, rt, "bsp reads page a", A_VALUE)?;
    command(a, 1, cmd::READ)?;
    a.mov(rax, abs(d(v::RES + 8)))?;
    eq(a, rt, "ap 1 reads page a", A_VALUE)?;
    a.mov(rax, PAGE_B | 3)?;
    a.mov(abs(PT), rax)?;
    a.mov(rax, TEST_VA)?;
    a.invlpg(byte_ptr(rax))?;
    a.mov(rax, qword_ptr(rax))?;
    eq(a, rt, "bsp reads page b after its invlpg", B_VALUE)?;
    command(a, 1, cmd::READ)?;
    a.mov(rax, abs(d(v::RES + 8)))?;
    eq(a, rt, "ap 1 still reads page a through its tlb", A_VALUE)?;
    ipi(a, 1, 0x4031)?;
    wait_eq32(a, count_addr(1, 0x31), 1)?;
    command(a, 1, cmd::READ)?;
    a.mov(rax, abs(d(v::RES + 8)))?;
    eq(a, rt, "ap 1 reads page b after the shootdown ipi", B_VALUE)
}

/// An INIT to running AP 3 stops it (wait-for-SIPI); a SIPI restarts it
/// with its local APIC reset.
fn init_running(a: &mut Asm, rt: &Rt64, cpus: u64) -> AsmResult {
    ipi(a, 3, 0x4500)?;
    spin(a, 50_000)?;
    a.mov(r9, abs(d(v::HB + 24)))?;
    spin(a, 50_000)?;
    a.mov(rax, abs(d(v::HB + 24)))?;
    a.sub(rax, r9)?;
    eq(a, rt, "an ap after init runs nothing", 0)?;
    ipi(a, 3, 0x4600 | SIPI_VECTOR as u32)?;
    wait_eq(a, d(v::BOOTS + 24), 2)?;
    eq(a, rt, "sipi restarts the init-ed ap", 2)?;
    a.mov(rax, abs(d(v::SVR0 + 24)))?;
    eq(a, rt, "init reset the ap's svr to ffh", 0xff)?;
    wait_eq(a, d(v::ONLINE), cpus)?;
    eq(a, rt, "online count after the restart", cpus)
}
