//! Local APIC suites (SDM Vol. 3A chapter 11): registers, global disable and
//! re-enable through IA32_APIC_BASE (as kvm-unit-tests does), TPR/CR8/PPR,
//! IPIs with every destination form, priority ordering, the error register,
//! NMIs, relocation; the timer in one-shot, periodic and TSC-deadline modes;
//! x2APIC mode and its MSRs.

use guestkit::asm::{Asm, AsmResult};
use guestkit::checks::{eq, faults, info, masked, nonzero, range};
use guestkit::irq::{self, load_count, set_hook, set_mode, COUNT, EOI_X2APIC, EOI_XAPIC, HOOK};
use guestkit::layout::{var, VARS};
use guestkit::platform::*;
use guestkit::{Program, Rt64};
use iced_x86::code_asm::*;

/// The test-data scratch area.
const TD: u64 = VARS + var::TEST_DATA;
/// The interrupt log.
const LOG: u64 = VARS + var::IRQ_LOG;

/// Emits a routine at a label (jumping over it) and returns the label.
pub(crate) fn routine(
    a: &mut Asm,
    body: impl Fn(&mut Asm) -> AsmResult,
) -> AsmResult<guestkit::Label> {
    let mut over = a.label();
    let mut l = a.label();
    a.jmp(over.l)?;
    a.set(&mut l)?;
    body(a)?;
    a.ret()?;
    a.set(&mut over)?;
    Ok(l)
}

/// Registers, enable/disable, TPR, IPIs, ESR, NMIs, relocation.
pub fn program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        for v in [0xf1, 0x40, 0x50, 0xe3] {
            set_mode(a, v, COUNT | EOI_XAPIC)?;
        }
        set_mode(a, 2, COUNT)?;
        super::setup(a)?;
        registers(a, rt)?;
        priority(a, rt)?;
        ipis(a, rt)?;
        nmis(a, rt)?;
        // Last: QEMU's TCG cannot re-enable a globally disabled APIC.
        global_disable(a, rt)?;
        relocation(a, rt)
    });
    p
}

fn registers(a: &mut Asm, rt: &Rt64) -> AsmResult {
    lapic_read(a, 0x30)?;
    eq(a, rt, "lapic version 14h with 6 LVT entries", 0x0005_0014)?;
    rdmsr(a, 0x1b)?;
    eq(a, rt, "apic base msr: fee00000, enabled, bsp", 0xfee0_0900)?;
    lapic_read(a, 0x20)?;
    eq(a, rt, "apic id 0", 0)?;
    lapic_read(a, 0xf0)?;
    eq(a, rt, "svr software enable", 0x1ff)?;
    a.mov(eax, 5u32)?;
    a.mov(cr8, rax)?;
    lapic_read(a, 0x80)?;
    eq(a, rt, "cr8 writes tpr[7:4]", 0x50)?;
    lapic_write(a, 0x80, 0x30)?;
    a.mov(rax, cr8)?;
    eq(a, rt, "tpr[7:4] reads in cr8", 3)?;
    lapic_read(a, 0xa0)?;
    eq(a, rt, "ppr follows tpr", 0x30)?;
    lapic_write(a, 0x80, 0)
}

/// kvm-unit-tests' test_apic_disable: global disable through
/// IA32_APIC_BASE and re-enable.
fn global_disable(a: &mut Asm, rt: &Rt64) -> AsmResult {
    wrmsr(a, 0x1b, 0xfee0_0100)?;
    cpuid(a, 1, 3)?;
    masked(a, rt, "cpuid.1 edx.apic clear while disabled", 1 << 9, 0)?;
    lapic_read(a, 0x30)?;
    eq(a, rt, "disabled apic page reads all ones", 0xffff_ffff)?;
    a.mov(eax, 7u32)?;
    a.mov(cr8, rax)?;
    a.mov(rax, cr8)?;
    eq(a, rt, "cr8 works while the apic is disabled", 7)?;
    a.xor(eax, eax)?;
    a.mov(cr8, rax)?;
    wrmsr(a, 0x1b, 0xfee0_0900)?;
    cpuid(a, 1, 3)?;
    masked(
        a,
        rt,
        "cpuid.1 edx.apic set after re-enable",
        1 << 9,
        1 << 9,
    )?;
    lapic_read(a, 0xf0)?;
    eq(a, rt, "svr at its reset value after re-enable", 0xff)?;
    lapic_read(a, 0x350)?;
    eq(a, rt, "lint0 masked after re-enable", 0x1_0000)?;
    lapic_read(a, 0xe0)?;
    eq(a, rt, "dfr reset value", 0xffff_ffff)?;
    lapic_enable(a)
}

fn priority(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.sti()?;
    lapic_write(a, 0x300, 0x4_00f1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "self ipi (xapic shorthand)", 1)?;
    lapic_read(a, 0x300)?;
    masked(a, rt, "icr delivery status idle", 1 << 12, 0)?;
    a.cli()?;
    lapic_write(a, 0x300, 0x4_0040)?;
    lapic_write(a, 0x300, 0x4_0050)?;
    lapic_read(a, 0x220)?;
    masked(
        a,
        rt,
        "irr holds 40h and 50h while IF=0",
        0x1_0001,
        0x1_0001,
    )?;
    a.sti()?;
    settle(a)?;
    a.cli()?;
    a.movzx(eax, byte_ptr(LOG + 1))?;
    eq(a, rt, "the higher vector is delivered first", 0x50)?;
    a.movzx(eax, byte_ptr(LOG + 2))?;
    eq(a, rt, "then the lower", 0x40)?;
    lapic_write(a, 0x80, 0x60)?;
    lapic_write(a, 0x300, 0x4_0050)?;
    a.sti()?;
    settle(a)?;
    load_count(a, 0x50)?;
    eq(a, rt, "tpr 60h holds back vector 50h", 1)?;
    lapic_read(a, 0x220)?;
    masked(a, rt, "the held vector stays in irr", 0x1_0000, 0x1_0000)?;
    lapic_write(a, 0x80, 0)?;
    settle(a)?;
    load_count(a, 0x50)?;
    eq(a, rt, "lowering tpr delivers it", 2)?;
    // ISR while in service, read by a hook.
    let hook = routine(a, |a| {
        lapic_read(a, 0x130)?;
        a.mov(dword_ptr(TD + 0x80), eax)
    })?;
    set_hook(a, 0x60, &hook)?;
    set_mode(a, 0x60, HOOK | COUNT | EOI_XAPIC)?;
    lapic_write(a, 0x300, 0x4_0060)?;
    settle(a)?;
    a.mov(eax, dword_ptr(TD + 0x80))?;
    masked(a, rt, "isr bit set while in service", 1, 1)?;
    lapic_read(a, 0x130)?;
    masked(a, rt, "isr bit clear after eoi", 1, 0)?;
    // The error status register and the error LVT; vector 5 is counted in
    // case an APIC delivers it anyway.
    set_mode(a, 5, COUNT | EOI_XAPIC)?;
    lapic_write(a, 0x370, 0xe3)?;
    lapic_write(a, 0x280, 0)?;
    lapic_write(a, 0x300, 0x4_0005)?;
    settle(a)?;
    lapic_write(a, 0x280, 0)?;
    lapic_read(a, 0x280)?;
    masked(a, rt, "esr: send illegal vector", 0x20, 0x20)?;
    load_count(a, 0xe3)?;
    eq(a, rt, "error lvt interrupt", 1)?;
    load_count(a, 5)?;
    eq(a, rt, "an illegal vector is not delivered", 0)?;
    set_mode(a, 5, 0)
}

fn ipis(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // INIT and SIPI to all excluding self: accepted, delivery status clear.
    lapic_write(a, 0x310, 0)?;
    lapic_write(a, 0x300, 0xc_4500)?;
    lapic_read(a, 0x300)?;
    masked(a, rt, "init ipi to all-but-self completes", 1 << 12, 0)?;
    lapic_write(a, 0x300, 0xc_0608)?;
    lapic_read(a, 0x300)?;
    masked(a, rt, "sipi to all-but-self completes", 1 << 12, 0)?;
    lapic_write(a, 0xe0, 0xffff_ffff)?;
    lapic_write(a, 0xd0, 0x0100_0000)?;
    lapic_read(a, 0xd0)?;
    eq(a, rt, "ldr writable", 0x0100_0000)?;
    lapic_write(a, 0x310, 0x0100_0000)?;
    lapic_write(a, 0x300, 0x0800 | 0xf1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "logical flat destination", 2)?;
    lapic_write(a, 0x310, 0)?;
    lapic_write(a, 0x300, 0x0100 | 0xf1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "lowest priority to self", 3)?;
    lapic_write(a, 0x310, 0xff00_0000)?;
    lapic_write(a, 0x300, 0xf1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "physical broadcast", 4)?;
    lapic_write(a, 0x300, 0x8_00f1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "all-including-self shorthand", 5)?;
    lapic_write(a, 0x310, 0x0500_0000)?;
    lapic_write(a, 0x300, 0xf1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "no delivery to an absent apic id", 5)
}

fn nmis(a: &mut Asm, rt: &Rt64) -> AsmResult {
    lapic_write(a, 0x300, 0x4_4400)?;
    settle(a)?;
    load_count(a, 2)?;
    eq(a, rt, "nmi by self ipi", 1)?;
    // kvm-unit-tests' test_pending_nmi: NMIs sent while one is in service
    // latch as one more.
    let hook = routine(a, |a| {
        let mut skip = a.label();
        a.cmp(dword_ptr(irq::count_addr(2)), 1u32)?;
        a.jne(skip.l)?;
        for _ in 0..3 {
            lapic_write(a, 0x300, 0x4_4400)?;
        }
        a.set(&mut skip)
    })?;
    set_hook(a, 2, &hook)?;
    set_mode(a, 2, HOOK | COUNT)?;
    lapic_write(a, 0x300, 0x4_4400)?;
    settle(a)?;
    settle(a)?;
    load_count(a, 2)?;
    eq(a, rt, "nmis sent during an nmi latch once", 3)
}

fn relocation(a: &mut Asm, rt: &Rt64) -> AsmResult {
    wrmsr(a, 0x1b, 0xfee0_0100)?;
    wrmsr(a, 0x1b, 0xfed4_0900)?;
    read32(a, 0xfed4_0030)?;
    eq(a, rt, "relocated apic answers at fed40000", 0x0005_0014)?;
    wrmsr(a, 0x1b, 0xfee0_0100)?;
    wrmsr(a, 0x1b, 0xfee0_0900)?;
    lapic_enable(a)?;
    faults(a, rt, "apic base reserved bit 0 faults", 13, |a| {
        wrmsr(a, 0x1b, 0xfee0_0901)
    })?;
    faults(a, rt, "apic base above maxphyaddr faults", 13, |a| {
        wrmsr(a, 0x1b, 0xfee0_0900 | 1 << 52)
    })?;
    faults(a, rt, "x2apic msr faults in xapic mode", 13, |a| {
        rdmsr(a, 0x802)
    })
}

/// The timer: one-shot, periodic, mode changes, TSC-deadline.
pub fn timer_program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        for v in [0xee, 0xef] {
            set_mode(a, v, COUNT | EOI_XAPIC)?;
        }
        super::setup(a)?;
        one_shot(a, rt)?;
        periodic(a, rt)?;
        mode_change(a, rt)?;
        super::if_cpuid(a, rt, 1, 2, 24, "tsc-deadline", |a| tsc_deadline(a, rt))
    });
    p
}

fn one_shot(a: &mut Asm, rt: &Rt64) -> AsmResult {
    lapic_write(a, 0x3e0, 0xb)?;
    lapic_write(a, 0x320, 0xee)?;
    rdtsc(a)?;
    a.mov(r12, rax)?;
    lapic_write(a, 0x380, 0x1_0000)?;
    lapic_read(a, 0x390)?;
    range(
        a,
        rt,
        "one-shot current count at most the initial",
        0,
        0x1_0000,
    )?;
    wait_count(a, 0xee, 1)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "one-shot tsc delta")?;
    range(
        a,
        rt,
        "one-shot fired no earlier than 10000h tsc",
        0x1_0000,
        u64::MAX,
    )?;
    lapic_read(a, 0x390)?;
    eq(a, rt, "one-shot current count ends at 0", 0)?;
    a.sti()?;
    spin(a, 10_000)?;
    a.cli()?;
    load_count(a, 0xee)?;
    eq(a, rt, "one-shot fires once", 1)
}

fn periodic(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // Divide by 16, 1000h: periodic.
    lapic_write(a, 0x3e0, 0x3)?;
    lapic_write(a, 0x320, 0x2_00ee)?;
    rdtsc(a)?;
    a.mov(r12, rax)?;
    lapic_write(a, 0x380, 0x1000)?;
    wait_count(a, 0xee, 11)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "ten periods tsc delta")?;
    lapic_write(a, 0x380, 0)?;
    load_count(a, 0xee)?;
    eq(a, rt, "periodic timer fired ten times", 11)?;
    lapic_read(a, 0x390)?;
    eq(a, rt, "writing initial count 0 stops the timer", 0)
}

fn mode_change(a: &mut Asm, rt: &Rt64) -> AsmResult {
    // kvm-unit-tests' test_apic_change_mode, masked so no interrupts.
    lapic_write(a, 0x3e0, 0xb)?;
    lapic_write(a, 0x320, 0x1_00ee)?;
    lapic_write(a, 0x380, 0x99_9999)?;
    lapic_write(a, 0x320, 0x3_00ee)?;
    lapic_read(a, 0x380)?;
    eq(a, rt, "mode change keeps the initial count", 0x99_9999)?;
    // Wait until below half, switch to one-shot: the count continues.
    let mut wait = a.label();
    a.set(&mut wait)?;
    lapic_read(a, 0x390)?;
    a.cmp(eax, 0x4c_cccc)?;
    a.ja(wait.l)?;
    lapic_write(a, 0x320, 0x1_00ee)?;
    lapic_read(a, 0x390)?;
    range(a, rt, "switching to one-shot keeps counting", 1, 0x4c_cccc)?;
    let mut wait0 = a.label();
    a.set(&mut wait0)?;
    lapic_read(a, 0x390)?;
    a.test(eax, eax)?;
    a.jnz(wait0.l)?;
    lapic_write(a, 0x320, 0x3_00ee)?;
    lapic_read(a, 0x390)?;
    eq(a, rt, "an expired one-shot stays at 0 in periodic mode", 0)?;
    lapic_write(a, 0x380, 0)
}

fn tsc_deadline(a: &mut Asm, rt: &Rt64) -> AsmResult {
    lapic_write(a, 0x320, 0x4_00ef)?;
    lapic_read(a, 0x380)?;
    eq(
        a,
        rt,
        "entering tsc-deadline mode clears the initial count",
        0,
    )?;
    a.sti()?;
    rdtsc(a)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 32)?;
    a.mov(ecx, 0x6e0u32)?;
    a.wrmsr()?;
    settle(a)?;
    load_count(a, 0xef)?;
    eq(a, rt, "a past deadline fires at once", 1)?;
    rdmsr(a, 0x6e0)?;
    eq(a, rt, "the deadline msr clears when it fires", 0)?;
    rdtsc(a)?;
    a.add(rax, 200_000)?;
    a.mov(r12, rax)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 32)?;
    a.mov(ecx, 0x6e0u32)?;
    a.wrmsr()?;
    rdmsr(a, 0x6e0)?;
    a.sub(rax, r12)?;
    eq(a, rt, "an armed deadline reads back", 0)?;
    wait_count(a, 0xef, 2)?;
    rdtsc(a)?;
    a.sub(rax, r12)?;
    info(a, rt, "tsc past the deadline when it fired")?;
    range(a, rt, "the deadline fires no earlier than set", 0, 1 << 40)?;
    // Leaving TSC-deadline mode disarms.
    rdtsc(a)?;
    a.add(rax, 100_000)?;
    a.mov(rdx, rax)?;
    a.shr(rdx, 32)?;
    a.mov(ecx, 0x6e0u32)?;
    a.wrmsr()?;
    lapic_write(a, 0x320, 0x00ef)?;
    rdmsr(a, 0x6e0)?;
    eq(a, rt, "the deadline reads 0 outside tsc-deadline mode", 0)?;
    a.sti()?;
    spin(a, 100_000)?;
    a.cli()?;
    load_count(a, 0xef)?;
    eq(a, rt, "leaving tsc-deadline mode disarms", 2)
}

/// x2APIC mode: the switch and back, MSR registers, self IPI, timer, #GP
/// rules.
pub fn x2apic_program() -> Program {
    let mut p = Program::new();
    p.body64(|a, rt| {
        for v in [0xf1, 0xee] {
            set_mode(a, v, COUNT | EOI_X2APIC)?;
        }
        super::setup(a)?;
        super::if_cpuid(a, rt, 1, 2, 21, "x2apic", |a| {
            wrmsr(a, 0x1b, 0xfee0_0d00)?;
            rdmsr(a, 0x1b)?;
            eq(a, rt, "apic base: x2apic mode", 0xfee0_0d00)?;
            x2apic_registers(a, rt)?;
            x2apic_interrupts(a, rt)?;
            x2apic_transitions(a, rt)
        })
    });
    p
}

fn x2apic_registers(a: &mut Asm, rt: &Rt64) -> AsmResult {
    rdmsr(a, 0x802)?;
    eq(a, rt, "x2apic id", 0)?;
    cpuid(a, 0xb, 3)?;
    eq(a, rt, "cpuid.0bh edx is the x2apic id", 0)?;
    rdmsr(a, 0x803)?;
    eq(a, rt, "x2apic version", 0x0005_0014)?;
    rdmsr(a, 0x80d)?;
    eq(a, rt, "x2apic ldr derives from the id", 1)?;
    rdmsr(a, 0x80f)?;
    eq(a, rt, "svr carries over", 0x1ff)?;
    lapic_read(a, 0x30)?;
    eq(a, rt, "no xapic page in x2apic mode", 0xffff_ffff)?;
    wrmsr(a, 0x808, 0x20)?;
    a.mov(rax, cr8)?;
    eq(a, rt, "x2apic tpr is cr8", 2)?;
    wrmsr(a, 0x808, 0)?;
    faults(a, rt, "x2apic id is read-only", 13, |a| wrmsr(a, 0x802, 1))?;
    faults(a, rt, "x2apic eoi must be 0", 13, |a| wrmsr(a, 0x80b, 1))?;
    faults(a, rt, "self ipi msr is write-only", 13, |a| rdmsr(a, 0x83f))?;
    faults(a, rt, "no dfr in x2apic mode", 13, |a| rdmsr(a, 0x80e))
}

fn x2apic_interrupts(a: &mut Asm, rt: &Rt64) -> AsmResult {
    a.sti()?;
    wrmsr(a, 0x83f, 0xf1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "x2apic self ipi msr", 1)?;
    wrmsr(a, 0x830, 0x4_00f1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "x2apic icr self shorthand", 2)?;
    wrmsr(a, 0x830, 0xffff_ffff_0000_00f1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "x2apic physical broadcast", 3)?;
    rdmsr(a, 0x830)?;
    masked(
        a,
        rt,
        "x2apic icr reads back without busy",
        0xffff_ffff_0000_10ff,
        0xffff_ffff_0000_00f1,
    )?;
    wrmsr(a, 0x83e, 0xb)?;
    wrmsr(a, 0x832, 0xee)?;
    wrmsr(a, 0x838, 0x2000)?;
    rdmsr(a, 0x839)?;
    nonzero(a, rt, "x2apic timer counts")?;
    wait_count(a, 0xee, 1)?;
    load_count(a, 0xee)?;
    eq(a, rt, "x2apic one-shot timer", 1)
}

fn x2apic_transitions(a: &mut Asm, rt: &Rt64) -> AsmResult {
    faults(a, rt, "x2apic to xapic directly faults", 13, |a| {
        wrmsr(a, 0x1b, 0xfee0_0900)
    })?;
    faults(a, rt, "extd without en faults", 13, |a| {
        wrmsr(a, 0x1b, 0xfee0_0500)
    })?;
    wrmsr(a, 0x1b, 0xfee0_0100)?;
    faults(a, rt, "disabled to x2apic directly faults", 13, |a| {
        wrmsr(a, 0x1b, 0xfee0_0d00)
    })?;
    wrmsr(a, 0x1b, 0xfee0_0900)?;
    lapic_read(a, 0x30)?;
    eq(a, rt, "back in xapic mode through disabled", 0x0005_0014)?;
    lapic_enable(a)?;
    set_mode(a, 0xf1, COUNT | EOI_XAPIC)?;
    a.sti()?;
    lapic_write(a, 0x300, 0x4_00f1)?;
    settle(a)?;
    load_count(a, 0xf1)?;
    eq(a, rt, "xapic self ipi after the round trip", 4)
}
