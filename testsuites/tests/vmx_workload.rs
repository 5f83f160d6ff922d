//! An L1 hypervisor with EPT runs an L2 that does real work, twice, and the
//! two runs must agree bit for bit (DESIGN.md principle 1).
//!
//! L2 runs in 64-bit mode on its own page tables (4-KiB pages for its data)
//! in a guest-physical space that EPT maps away from the identity: GPA
//! 4-12 MiB lives at HPA 40-48 MiB. It fills 4 MiB with a xorshift sequence,
//! then reads 64 Ki random qwords into a checksum. L1 runs it under the
//! VMX-preemption timer and injects an external interrupt (vector 30H) at
//! every expiry where L2 can take one; L2's handler counts them. The host
//! side recomputes the checksum and checks the counts, the exits by reason
//! and the per-level counters (totals = root + guest).

mod vmx_common;

use guestkit::vmx::{at, layout, poke, vmor, vmr, vmw, VmxCase};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use vmx_common::*;
use vmx_model::controls::{PinControls as Pin, Proc2Controls as P2};
use vmx_model::Field as F;

/// GPA 4-12 MiB (EPT PD entries 2-5) maps to HPA 40-48 MiB.
const GPA_BASE: u64 = 0x40_0000;
const HPA_BASE: u64 = 0x280_0000;
/// L2's page tables (guest-physical).
const L2_PML4: u64 = GPA_BASE;
const L2_PDPT: u64 = GPA_BASE + 0x1000;
const L2_PD0: u64 = GPA_BASE + 0x2000;
const L2_PD1: u64 = GPA_BASE + 0x3000;
const L2_PT: u64 = GPA_BASE + 0x4000;
/// L2's 4 MiB of data: VA 1 GiB, GPA 5-9 MiB.
const DATA_VA: u64 = 0x4000_0000;
const DATA_GPA: u64 = 0x50_0000;
const QWORDS: u64 = 4 << 17;
const READS: u64 = 1 << 16;
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// L2's interrupt counter (identity-mapped guest data).
const COUNTER: u64 = layout::GUEST_DATA + 0x800;
const VECTOR: u64 = 0x30;

fn hpa(gpa: u64) -> u64 {
    gpa - GPA_BASE + HPA_BASE
}

fn xorshift(a: &mut Asm) -> AsmResult {
    for (shl, n) in [(true, 13), (false, 7), (true, 17)] {
        a.mov(r10, rax)?;
        if shl {
            a.shl(r10, n)?;
        } else {
            a.shr(r10, n)?;
        }
        a.xor(rax, r10)?;
    }
    Ok(())
}

fn xs(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// The checksum L2 computes.
fn expected_checksum() -> u64 {
    let mut x = SEED;
    let mem: Vec<u64> = (0..QWORDS)
        .map(|_| {
            x = xs(x);
            x
        })
        .collect();
    let mut c = 0u64;
    for _ in 0..READS {
        x = xs(x);
        c = c
            .wrapping_add(mem[(x & (QWORDS - 1)) as usize])
            .rotate_left(3);
    }
    c
}

/// L1 builds L2's page tables in L2's guest-physical memory (through HPA)
/// and points EPT PD entries 2-5 at HPA 40-48 MiB.
fn build_world(a: &mut Asm) -> AsmResult {
    for i in 0..4u64 {
        poke(
            a,
            layout::EPT_PD + 8 * (2 + i),
            (HPA_BASE + (i << 21)) | 0xb7,
        )?;
    }
    let mut zero = a.label();
    a.mov(rdi, hpa(GPA_BASE))?;
    a.xor(eax, eax)?;
    a.mov(ecx, 0x8000i32)?;
    a.set(&mut zero)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.dec(ecx)?;
    a.jnz(zero.l)?;
    poke(a, hpa(L2_PML4), L2_PDPT | 3)?;
    poke(a, hpa(L2_PDPT), L2_PD0 | 3)?;
    poke(a, hpa(L2_PDPT) + 8, L2_PD1 | 3)?;
    // VA 0-1 GiB: identity, 2-MiB pages (code, stack, IDT, the kit's tables).
    let mut id = a.label();
    a.mov(rdi, hpa(L2_PD0))?;
    a.mov(eax, 0x83i32)?;
    a.mov(ecx, 512i32)?;
    a.set(&mut id)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x20_0000i32)?;
    a.dec(ecx)?;
    a.jnz(id.l)?;
    // VA 1 GiB + 4 MiB: two page tables of 4-KiB pages onto the data GPAs.
    poke(a, hpa(L2_PD1), L2_PT | 3)?;
    poke(a, hpa(L2_PD1) + 8, (L2_PT + 0x1000) | 3)?;
    let mut pt = a.label();
    a.mov(rdi, hpa(L2_PT))?;
    a.mov(eax, (DATA_GPA | 3) as i32)?;
    a.mov(ecx, 1024i32)?;
    a.set(&mut pt)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(pt.l)?;
    poke(a, COUNTER, 0)?;
    a.mov(edx, 2i32)?;
    a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))
}

/// L2's handler for [`VECTOR`], as bytes L1 places in L2's memory:
/// `inc qword [COUNTER]; iretq`.
const HANDLER: u64 = layout::GUEST_DATA + 0x900;

fn handler_bytes() -> Vec<u8> {
    let mut b = vec![0x48, 0xff, 0x04, 0x25];
    b.extend_from_slice(&(COUNTER as u32).to_le_bytes());
    b.extend_from_slice(&[0x48, 0xcf]);
    b
}

/// Places the handler and points L2's IDT entry for [`VECTOR`] at it.
fn install_handler(a: &mut Asm) -> AsmResult {
    for (k, byte) in handler_bytes().into_iter().enumerate() {
        a.mov(byte_ptr((HANDLER + k as u64) as u32 as u64), byte as i32)?;
    }
    let gate = layout::GUEST_IDT + 16 * VECTOR;
    a.mov(word_ptr(gate as u32 as u64), (HANDLER & 0xffff) as i32)?;
    a.mov(word_ptr((gate + 6) as u32 as u64), (HANDLER >> 16) as i32)?;
    a.mov(dword_ptr((gate + 8) as u32 as u64), 0i32)
}

fn workload(a: &mut Asm) -> AsmResult {
    let mut fill = a.label();
    let mut read = a.label();
    a.mov(rsi, DATA_VA)?;
    a.mov(ecx, QWORDS as i32)?;
    a.mov(rax, SEED)?;
    a.sti()?;
    a.set(&mut fill)?;
    xorshift(a)?;
    a.mov(qword_ptr(rsi), rax)?;
    a.add(rsi, 8i32)?;
    a.dec(ecx)?;
    a.jnz(fill.l)?;
    a.mov(rdi, DATA_VA)?;
    a.xor(r8d, r8d)?;
    a.mov(ecx, READS as i32)?;
    a.set(&mut read)?;
    xorshift(a)?;
    a.mov(rdx, rax)?;
    a.and(edx, (QWORDS - 1) as i32)?;
    a.add(r8, qword_ptr(rdi + rdx * 8))?;
    a.rol(r8, 3i32)?;
    a.dec(ecx)?;
    a.jnz(read.l)?;
    a.cli()?;
    a.mov(r9, at(COUNTER))
}

/// The case: the world, the timer, and L1's injection at each expiry.
fn case() -> VmxCase {
    VmxCase::guest("EPT workload under the preemption timer", |a, _| {
        workload(a)
    })
    .setup(|a, _| {
        build_world(a)?;
        install_handler(a)?;
        vmor(
            a,
            F::SecondaryProcBasedControls,
            P2::ENABLE_EPT.bits() as u64,
        )?;
        vmw(a, F::EptPointer, layout::EPTP)?;
        vmw(a, F::GuestCr3, L2_PML4)?;
        vmor(
            a,
            F::PinBasedControls,
            Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64,
        )?;
        vmw(a, F::PreemptionTimerValue, 2000)
    })
    .on_exit(|a, rt| {
        let mut other = a.label();
        vmr(a, rax, F::ExitReason)?;
        a.cmp(eax, 52i32)?;
        a.jne(other.l)?;
        // Inject vector 30H if L2 can take an interrupt now.
        vmr(a, rax, F::GuestRflags)?;
        a.test(eax, 0x200i32)?;
        a.jz(rt.resume.l)?;
        vmr(a, rax, F::GuestInterruptibility)?;
        a.test(eax, 3i32)?;
        a.jnz(rt.resume.l)?;
        vmw(a, F::EntryInterruptionInfo, 0x8000_0000 | VECTOR)?;
        a.mov(rbx, at(layout::VARS))?;
        a.inc(qword_ptr(rbx + guestkit::vmx::rec::USER as i32))?;
        a.jmp(rt.resume.l)?;
        a.set(&mut other)?;
        a.jmp(rt.default_exit.l)
    })
    .max_exits(100_000)
}

fn run_once() -> (VmxRun, String) {
    let mut t = Table::default();
    t.case(
        case(),
        vec![
            gpr(8, expected_checksum()),
            that("L1 injected interrupts", |r| r.user[0] > 10),
            that("L2 took each one", |r| r.gprs[9] == r.user[0]),
            that("timer exits", |r| r.exit_count > r.user[0]),
            ends_with_vmcall(),
        ],
    );
    let run = t.run();
    let m = &run.outcome.machine;
    let stats = serde_json::to_string(&(
        m.stats.instructions,
        m.stats.cycles,
        &m.stats.vmexits,
        &m.levels_report(),
        &m.mmu_totals(),
        &m.stats.events,
    ))
    .expect("stats serialize");
    (run, stats)
}

#[test]
fn ept_workload_is_deterministic_and_accounted_by_level() {
    let (a, stats_a) = run_once();
    let (b, stats_b) = run_once();
    assert_eq!(a.outcome.serial, b.outcome.serial);
    assert_eq!(a.records, b.records);
    assert_eq!(stats_a, stats_b, "stats differ between two runs");
    let m = &a.outcome.machine;
    let r = m.levels_report();
    let (root, guest) = (&r.l1, &r.l2.total);
    assert_eq!(root.cycles + guest.cycles, m.stats.cycles);
    assert_eq!(root.instructions + guest.instructions, m.stats.instructions);
    assert!(guest.instructions > 4_000_000, "{r:#?}");
    assert!(
        guest.walks.nested_refs > 0,
        "EPT walks in the guest: {r:#?}"
    );
    assert_eq!(root.walks.nested_refs, 0, "no EPT walks in the root");
    let by = &m.stats.vmexits.by_reason;
    let rec = a.record("EPT workload under the preemption timer");
    assert_eq!(by["VMX-preemption timer expired"], rec.exit_count - 1);
    assert_eq!(by["VMCALL"], 1);
    assert_eq!(guest.vmexits, m.stats.vmexits.total);
    eprintln!(
        "EPT workload: {} exits, {} interrupts injected, {} guest instructions, {} nested refs",
        rec.exit_count, rec.user[0], guest.instructions, guest.walks.nested_refs
    );
}

/// The same run stopped halfway at a snapshot (in the middle of L2's work,
/// with a VMCS current and the preemption timer running) and continued on a
/// restored machine ends identically.
#[test]
fn ept_workload_continues_exactly_from_a_snapshot() {
    let mut t = Table::default();
    t.case(case(), vec![]);
    let built = t.suite.into_program().build().expect("assembles");
    let cfg = testsuites::config();
    let whole = testsuites::run_built(&built, cfg.clone());
    assert!(whole.passed(), "{:?}", whole.stop);
    let at = whole.machine.steps() / 2;
    let resumed = testsuites::run_built_via_snapshot(&built, cfg, at);
    let report = |o: &testsuites::Outcome| {
        let mut v = serde_json::to_value(nestemu::stats::Report::of(
            &o.machine,
            0,
            format!("{:?}", o.stop),
        ))
        .expect("serializes");
        v.as_object_mut().expect("object").remove("code_cache");
        v
    };
    assert_eq!(whole.stop, resumed.stop);
    assert_eq!(whole.serial, resumed.serial);
    assert_eq!(report(&whole), report(&resumed));
    let mut a = vec![0u8; 8 << 20];
    let mut b = vec![0u8; 8 << 20];
    whole.machine.peek_phys(HPA_BASE, &mut a);
    resumed.machine.peek_phys(HPA_BASE, &mut b);
    assert!(a == b, "L2 memory");
    let mut a = vec![0u8; 1 << 16];
    let mut b = vec![0u8; 1 << 16];
    whole.machine.peek_phys(layout::RECORDS, &mut a);
    resumed.machine.peek_phys(layout::RECORDS, &mut b);
    assert!(a == b, "VMX case records");
}
