//! An L1 hypervisor with nested paging runs an L2 guest doing real work,
//! deterministically (DESIGN.md "Determinism test"; issue 5). The guest has
//! its own page tables (4-KiB pages permuting a 2-MiB region), L1's nested
//! page tables move that region elsewhere in host memory, and the guest runs
//! a memory-heavy loop over it, exiting with VMMCALL after each round; L1
//! resumes it each time injecting an interrupt through EVENTINJ and, every
//! other time, a virtual interrupt through V_IRQ. The checksum, the memory
//! the guest wrote (found in host memory through both translations), the
//! interrupt counts and the per-level statistics are checked, and a second
//! run must give the same serial output and statistics, bit for bit.

mod svm_common;

use guestkit::svm::{self as ksvm, log, L2_LOG, NPT_PML4};
use iced_x86::code_asm::*;
use nestemu::stats::Report;
use svm_common::*;
use svm_model::vmcb::{EventInj, EventType, NestedCtl, VIntr};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::no_exception;

/// The guest's linear (and guest-physical) data region.
const DATA: u64 = 0x200_0000;
/// Where nested paging puts it in host memory.
const HOST_DATA: u64 = 0x300_0000;
/// The guest's page tables: PML4, PDPT, PD, and the PT of the data region.
const L2_PML4: u64 = 0x44_0000;
/// Iterations per round.
const N: u64 = 16384;
/// Rounds (one VMMCALL exit each).
const ROUNDS: u64 = 8;
/// The page permutation of the guest's page table.
const PERM: u64 = 167;
/// The address stride of the loop.
const STRIDE: u64 = 4104;

fn perm(page: u64) -> u64 {
    (page * PERM) % 512
}

/// The guest's computation, in Rust: the checksum and the final memory.
fn expected() -> (u64, Vec<u64>) {
    let mut mem = vec![0u64; 0x20_0000 / 8];
    let mut sum = 0u64;
    for i in 0..ROUNDS * N {
        let off = (i.wrapping_mul(STRIDE) & 0x1f_fff8) as usize / 8;
        let v = mem[off].wrapping_mul(31).wrapping_add(i);
        mem[off] = v;
        sum = sum.wrapping_add(v);
    }
    (sum, mem)
}

/// L1: the guest's page tables and the nested page tables.
fn build_tables(a: &mut Asm) -> AsmResult {
    let (pdpt, pd, pt) = (L2_PML4 + 0x1000, L2_PML4 + 0x2000, L2_PML4 + 0x3000);
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, L2_PML4)?;
    a.mov(ecx, 0x4000 / 8)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(L2_PML4), (pdpt | 7) as i32)?;
    a.mov(qword_ptr(pdpt), (pd | 7) as i32)?;
    // PD: 2-MiB identity pages for 0-64 MiB, the data region through `pt`.
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(rax, rcx)?;
    a.shl(rax, 21i32)?;
    a.or(rax, 0x83i32)?;
    a.mov(qword_ptr(rcx * 8 + pd as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, 32i32)?;
    a.jb(lp.l)?;
    a.mov(qword_ptr(pd + (DATA >> 21) * 8), (pt | 3) as i32)?;
    // PT[i] = DATA + perm(i) * 4 KiB.
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.imul_3(eax, ecx, PERM as i32)?;
    a.and(eax, 511i32)?;
    a.shl(eax, 12i32)?;
    a.add(eax, (DATA | 3) as i32)?;
    a.mov(qword_ptr(rcx * 8 + pt as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, 512i32)?;
    a.jb(lp.l)?;
    ksvm::build_identity_npt(a)?;
    let npd = NPT_PML4 + 0x2000;
    a.mov(qword_ptr(npd + (DATA >> 21) * 8), (HOST_DATA | 0x87) as i32)
}

/// L2: ROUNDS rounds of N iterations over the data region, VMMCALL after
/// each; R13 := 1 and RAX := checksum at the end.
fn guest(a: &mut Asm) -> AsmResult {
    a.xor(ebx, ebx)?;
    a.xor(r8d, r8d)?;
    a.xor(r13d, r13d)?;
    a.mov(r12d, ROUNDS as i32)?;
    let mut round = a.label();
    let mut inner = a.label();
    a.set(&mut round)?;
    a.mov(r9d, N as i32)?;
    a.set(&mut inner)?;
    a.imul_3(rdi, r8, STRIDE as i32)?;
    a.and(edi, 0x1f_fff8)?;
    a.add(rdi, DATA as i32)?;
    a.imul_3(rdx, qword_ptr(rdi), 31)?;
    a.add(rdx, r8)?;
    a.mov(qword_ptr(rdi), rdx)?;
    a.add(rbx, rdx)?;
    a.inc(r8)?;
    a.dec(r9d)?;
    a.jnz(inner.l)?;
    a.vmmcall()?;
    a.dec(r12d)?;
    a.jnz(round.l)?;
    a.mov(r13d, 1i32)?;
    a.mov(rax, rbx)?;
    a.vmmcall()?;
    a.hlt()
}

/// L1: runs the guest to the end, resuming at NRIP with an injected
/// interrupt 40h and, every other time, V_IRQ 41h. R11 := exits, R12 :=
/// checksum.
fn hypervisor(a: &mut Asm, s: &Svm) -> AsmResult {
    let exits = (L2_LOG + 0x800) as u32 as u64;
    let l2 = l2_code(a, guest)?;
    build_tables(a)?;
    s.init_vmcb(a, VMCB)?;
    a.mov(qword_ptr((L2_LOG + log::RESUME) as u32 as u64), 1i32)?;
    a.mov(qword_ptr(exits), 0i32)?;
    svm::set_label(a, VMCB, F::Rip, &l2)?;
    svm::set(a, VMCB, F::Cr3, L2_PML4)?;
    svm::set(a, VMCB, F::Rflags, 0x202)?;
    svm::set(a, VMCB, F::NestedCtl, NestedCtl::NP_ENABLE.bits())?;
    svm::set(a, VMCB, F::NCr3, NPT_PML4)?;
    let mut lp = a.label();
    let mut done = a.label();
    let mut fail = a.label();
    let mut no_virq = a.label();
    a.set(&mut lp)?;
    ksvm::vmrun(a, VMCB)?;
    // After the first run, keep the TLB: the ASID is this guest's alone.
    svm::set(a, VMCB, F::TlbControl, 0)?;
    a.inc(qword_ptr(exits))?;
    a.mov(rax, X::VMEXIT_VMMCALL.0)?;
    a.cmp(
        qword_ptr((VMCB + F::ExitCode.offset() as u64) as u32 as u64),
        rax,
    )?;
    a.jne(fail.l)?;
    a.cmp(r13d, 1i32)?;
    a.je(done.l)?;
    ksvm::get(a, rax, VMCB, F::NRip)?;
    a.mov(
        qword_ptr((VMCB + F::Rip.offset() as u64) as u32 as u64),
        rax,
    )?;
    svm::set(
        a,
        VMCB,
        F::EventInj,
        EventInj::new(EventType::Intr, 0x40, None).0,
    )?;
    a.test(qword_ptr(exits), 1i32)?;
    a.jnz(no_virq.l)?;
    let v = VIntr {
        v_irq: true,
        v_intr_prio: 0xf,
        v_intr_vector: 0x41,
        ..VIntr::default()
    };
    svm::set(a, VMCB, F::VIntrControl, v.to_raw() as u64)?;
    svm::set(a, VMCB, F::VIntrVector, 0x41)?;
    a.set(&mut no_virq)?;
    a.jmp(lp.l)?;
    a.set(&mut fail)?;
    a.ud2()?;
    a.set(&mut done)?;
    a.mov(r11, qword_ptr(exits))?;
    ksvm::get(a, r12, VMCB, F::Rax)?;
    l2_log(a, r13, log::PER_VECTOR + 0x40 * 8)?;
    l2_log(a, r14, log::PER_VECTOR + 0x41 * 8)?;
    ksvm::get(a, rax, VMCB, F::ExitCode)
}

fn suite() -> Suite {
    let mut s = Suite::new();
    let (sum, _) = expected();
    s.case(
        "L1 with NPT runs an L2 doing real work",
        hypervisor,
        vec![
            no_exception(),
            code(X::VMEXIT_VMMCALL),
            named("exits", 11, ROUNDS + 1),
            named("checksum", 12, sum),
            named("injected interrupts taken", 13, ROUNDS),
            named("virtual interrupts taken", 14, ROUNDS / 2),
        ],
    );
    s
}

#[test]
fn npt_guest_does_real_work_deterministically() {
    let first = suite().run();
    let (_, mem) = expected();
    // The guest's data, through its page table and then nested paging.
    let m = &first.machine;
    for page in [0u64, 1, 77, 300, 511] {
        for word in [0u64, 1, 255, 511] {
            let la_off = page * 4096 + word * 8;
            let hpa = HOST_DATA + perm(page) * 4096 + word * 8;
            let mut b = [0u8; 8];
            m.peek_phys(hpa, &mut b);
            assert_eq!(
                u64::from_le_bytes(b),
                mem[la_off as usize / 8],
                "guest data at offset {la_off:#x} found at host {hpa:#x}"
            );
        }
    }
    // Per-level statistics: the parts add up, the guest did the work and
    // its TLB misses walked both dimensions.
    let levels = m.levels_report();
    assert_eq!(
        levels.l1.instructions + levels.l2.total.instructions,
        m.stats.instructions
    );
    assert_eq!(levels.l1.cycles + levels.l2.total.cycles, m.stats.cycles);
    assert!(levels.l2.total.instructions > ROUNDS * N * 9);
    assert!(levels.l2.total.walks.nested_refs > 0);
    assert_eq!(levels.l2.total.vmexits, m.stats.vmexits.total);
    assert_eq!(levels.l2.by_control.len(), 1, "one VMCB");
    assert_eq!(m.stats.vmexits.by_reason["VMEXIT_VMMCALL"], ROUNDS + 1);
    let report = |o: &testsuites::Outcome| {
        serde_json::to_string(&Report::of(&o.machine, 0, format!("{:?}", o.stop))).unwrap()
    };
    let second = suite().run();
    assert_eq!(first.serial, second.serial);
    assert_eq!(report(&first), report(&second));
    assert_eq!(
        first.machine.stats.instructions,
        second.machine.stats.instructions
    );
}

/// The same run stopped halfway at a snapshot and continued on a restored
/// machine ends identically: guest memory, serial, every counter.
#[test]
fn npt_workload_continues_exactly_from_a_snapshot() {
    let built = suite().p.finish().build().expect("assembles");
    let whole = testsuites::run_built(&built, amd());
    assert!(whole.passed(), "{:?}", whole.stop);
    let at = whole.machine.steps() / 2;
    let resumed = testsuites::run_built_via_snapshot(&built, amd(), at);
    let report = |o: &testsuites::Outcome| {
        let mut v = serde_json::to_value(Report::of(&o.machine, 0, format!("{:?}", o.stop)))
            .expect("serializes");
        v.as_object_mut().expect("object").remove("code_cache");
        v
    };
    assert_eq!(whole.stop, resumed.stop);
    assert_eq!(whole.serial, resumed.serial);
    assert_eq!(whole.records, resumed.records);
    assert_eq!(report(&whole), report(&resumed));
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    whole.machine.peek_phys(HOST_DATA, &mut a);
    resumed.machine.peek_phys(HOST_DATA, &mut b);
    assert!(a == b, "guest data");
}
