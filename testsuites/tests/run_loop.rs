//! The run loop's quick path against its full path: `Machine::run` (which
//! runs cached blocks back to back in `Machine::run_slices`, testing only
//! the clock and the instruction count after a block of specialized
//! operations) ends exactly as a run made of `Machine::run_slice` calls
//! alone (every boundary fully checked, every block fetched through the
//! reference path): same stop, serial output, `--stats` report and final
//! machine state. The workloads have timer interrupts falling due in the
//! middle of chains of blocks, self-modifying code that rewrites the block
//! being run and the next one, memory traffic through the page cache, and
//! SMP turns; instruction limits land at many points, inside chains too.
//! Both also end as a run of the generic handlers alone (no specialized
//! operation, so no block counted at once, no chained fetch).

use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::layout::{var, VARS};
use guestkit::platform::{lapic_periodic_timer, lapic_write};
use guestkit::{Built, Program};
use iced_x86::code_asm::*;
use nestemu::loader::multiboot;
use nestemu::stats::Report;
use nestemu::{Machine, MachineConfig, Stop};
use testsuites::config;

const DATA: u64 = VARS + var::TEST_DATA;

fn program() -> Built {
    let mut p = Program::new();
    p.long_case("timer interrupts in chained blocks", |a| {
        set_mode(a, 0x50, COUNT | EOI_XAPIC)?;
        clear_counts(a)?;
        lapic_periodic_timer(a, 0x50, 1777)?;
        a.sti()?;
        a.xor(eax, eax)?;
        a.mov(edi, (DATA + 0x200) as u32)?;
        a.mov(ecx, 30_000u32)?;
        let mut lp = a.label();
        let mut skip = a.label();
        a.set(&mut lp)?;
        a.add(eax, ecx)?;
        a.mov(dword_ptr(rdi), eax)?;
        a.test(ecx, 7u32)?;
        a.jnz(skip.l)?;
        a.xor(eax, dword_ptr(rdi + 4))?;
        a.set(&mut skip)?;
        a.rol(eax, 3)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        a.cli()?;
        lapic_write(a, 0x320, 0x1_0000)?; // masked
        a.mov(ebx, eax)?;
        load_count(a, 0x50)
    });
    p.long_case("code that rewrites its own block", |a| {
        // Each round stores a new immediate into the MOV two instructions
        // ahead (in the block being run), and into the ADD of the next
        // block, then runs both.
        let mut lp = a.label();
        let mut patched = a.label();
        let mut next = a.label();
        a.xor(ebx, ebx)?;
        a.mov(ecx, 3000u32)?;
        a.lea(rsi, ptr(patched.l))?;
        a.lea(rdi, ptr(next.l))?;
        a.set(&mut lp)?;
        a.mov(dword_ptr(rsi + 1), ecx)?;
        a.mov(dword_ptr(rdi + 2), ecx)?;
        a.set(&mut patched)?;
        a.mov(eax, 0u32)?;
        a.add(ebx, eax)?;
        a.jmp(next.l)?;
        a.set(&mut next)?;
        a.add(ebx, 0x7fff_0000i32)?;
        a.dec(ecx)?;
        a.jnz(lp.l)
    });
    p.long_case("timer interrupts in blocks of register operations", |a| {
        set_mode(a, 0x51, COUNT | EOI_XAPIC)?;
        clear_counts(a)?;
        lapic_periodic_timer(a, 0x51, 1333)?;
        a.sti()?;
        let mut lp = a.label();
        let mut skip = a.label();
        a.mov(ecx, 40_000u32)?;
        a.xor(eax, eax)?;
        a.set(&mut lp)?;
        a.add(eax, ecx)?;
        a.test(ecx, 3u32)?;
        a.jz(skip.l)?;
        a.rol(eax, 5)?;
        a.set(&mut skip)?;
        a.lea(edx, dword_ptr(rax + rcx * 2 + 7))?;
        a.xor(eax, edx)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        a.cli()?;
        lapic_write(a, 0x320, 0x1_0000)?; // masked
        a.mov(ebx, eax)?;
        load_count(a, 0x51)
    });
    p.long_case("code rewritten between chained blocks", |a| {
        // Three blocks of register operations run as a chain (the loop
        // head, the block with the patched MOV, the loop tail); every
        // 16th round a block with a store rewrites the MOV's immediate,
        // on the page of the chain's blocks, between two of them.
        let mut lp = a.label();
        let mut patched = a.label();
        let mut tail = a.label();
        a.xor(eax, eax)?;
        a.xor(edx, edx)?;
        a.mov(ecx, 20_000u32)?;
        a.lea(rsi, ptr(patched.l))?;
        a.set(&mut lp)?;
        a.add(eax, ecx)?;
        a.xor(edx, eax)?;
        a.jmp(patched.l)?;
        a.set(&mut patched)?;
        a.mov(ebx, 0u32)?;
        a.add(edx, ebx)?;
        a.test(ecx, 15u32)?;
        a.jnz(tail.l)?;
        a.mov(dword_ptr(rsi + 1), ecx)?;
        a.set(&mut tail)?;
        a.rol(edx, 1)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        a.mov(ebx, edx)
    });
    p.long_case("a plain integer loop", |a| {
        let mut lp = a.label();
        a.mov(rcx, 50_000u64)?;
        a.xor(eax, eax)?;
        a.mov(rbx, 0x1234_5678u64)?;
        a.set(&mut lp)?;
        a.add(rax, rcx)?;
        a.xor(rdx, rax)?;
        a.sub(rbx, 1i32)?;
        a.dec(rcx)?;
        a.jnz(lp.l)
    });
    p.build().expect("assembles")
}

/// How a run ended: stop, serial output, report, final state.
#[derive(PartialEq, Eq)]
struct End {
    stop: Stop,
    serial: String,
    report: serde_json::Value,
    state: Vec<u8>,
    steps: u64,
}

fn end(mut m: Machine, stop: Stop) -> End {
    let report = serde_json::to_value(Report::of(&m, stop.exit_status(), stop.describe()))
        .expect("serializes");
    End {
        serial: String::from_utf8_lossy(&m.take_serial()).into_owned(),
        report,
        state: m.save_snapshot(),
        steps: m.steps(),
        stop,
    }
}

fn boot(built: &Built, cfg: MachineConfig) -> Machine {
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "kit", &[]).expect("loads");
    m
}

/// The quick path, as `nestemu run` takes it.
fn quick(built: &Built, cfg: MachineConfig) -> End {
    let mut m = boot(built, cfg);
    let stop = m.run();
    end(m, stop)
}

/// The full path only.
fn full(built: &Built, cfg: MachineConfig) -> End {
    let mut m = boot(built, cfg);
    let stop = loop {
        if let Some(stop) = m.run_slice() {
            break stop;
        }
    };
    end(m, stop)
}

/// The full path with every instruction through its generic handler.
fn reference(built: &Built, cfg: MachineConfig) -> End {
    let mut m = boot(built, cfg);
    m.code.specialize = false;
    let stop = loop {
        if let Some(stop) = m.run_slice() {
            break stop;
        }
    };
    end(m, stop)
}

fn assert_same(a: &End, b: &End, what: &str) {
    assert_eq!(a.stop, b.stop, "{what}: stop");
    assert_eq!(a.serial, b.serial, "{what}: serial");
    assert_eq!(a.report, b.report, "{what}: report");
    assert_eq!(a.steps, b.steps, "{what}: steps");
    assert!(a.state == b.state, "{what}: final state");
}

fn same(built: &Built, cfg: MachineConfig, what: &str) -> End {
    let a = quick(built, cfg.clone());
    let b = full(built, cfg.clone());
    assert_same(&a, &b, what);
    let c = reference(built, cfg);
    assert_same(&a, &c, &format!("{what}, generic handlers"));
    a
}

fn limited(cfg: &MachineConfig, n: u64) -> MachineConfig {
    MachineConfig {
        max_insns: Some(n),
        ..cfg.clone()
    }
}

#[test]
fn chained_blocks_end_as_single_slices() {
    let built = program();
    let whole = same(&built, config(), "whole run");
    assert_eq!(whole.stop, Stop::DebugExit(0), "{}", whole.serial);
    let events = whole.report["events"].as_object().expect("events");
    let delivered: u64 = events.values().filter_map(|v| v.as_u64()).sum();
    assert!(delivered > 20, "timer interrupts arrived: {events:?}");
    let total = whole.steps;
    // Limits everywhere, most of them inside chains of blocks.
    let mut x = 0x9e37_79b9_u64;
    let mut limits = vec![1, 2, 3, 4, 5, 6, 7, 100, total - 1, total / 2];
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        limits.push(x % total);
    }
    for n in limits {
        let e = same(&built, limited(&config(), n.max(1)), &format!("limit {n}"));
        assert_eq!(e.stop, Stop::InstructionLimit, "limit {n}");
    }
}

/// Instruction limits at every point of a stretch of the program's
/// chains of register-operation blocks (all of their block boundaries and
/// the instructions inside them) end as the full path does.
#[test]
fn limits_inside_chains_end_as_single_slices() {
    let built = program();
    let total = quick(&built, config()).steps;
    // Windows of limits one instruction apart at points spread over the
    // run (most of it runs chains of pure blocks).
    for n in [total / 2, total * 3 / 4, total * 9 / 10]
        .into_iter()
        .flat_map(|at| at..at + 12)
    {
        let e = same(&built, limited(&config(), n), &format!("limit {n}"));
        assert_eq!(e.stop, Stop::InstructionLimit, "limit {n}");
    }
}

/// With several vCPUs the turns end on the clock inside chains.
#[test]
fn smp_turns_end_chains_exactly() {
    let built = testsuites::platform::build(&testsuites::platform::smp::program(4));
    let mut cfg = testsuites::platform::config();
    cfg.platform.cpus = 4;
    let whole = same(&built, cfg.clone(), "4 vCPUs");
    let total = whole.steps;
    for n in [total / 5, total / 3 + 11, total - 3] {
        same(&built, limited(&cfg, n), &format!("4 vCPUs, limit {n}"));
    }
}

/// An L2 loop of loads, stores and arithmetic over `pages` 4-KiB pages of
/// the kit's test data (clobbers RAX, RCX, RSI, R9).
fn l2_loop(a: &mut guestkit::Asm, pages: u32, rounds: u32) -> guestkit::AsmResult {
    let mut round = a.label();
    let mut page = a.label();
    a.xor(eax, eax)?;
    a.mov(r9d, rounds)?;
    a.set(&mut round)?;
    a.mov(rsi, DATA)?;
    a.mov(ecx, pages)?;
    a.set(&mut page)?;
    a.add(rax, qword_ptr(rsi))?;
    a.mov(qword_ptr(rsi + 8), rax)?;
    a.add(rsi, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(page.l)?;
    a.dec(r9d)?;
    a.jnz(round.l)
}

/// VMX guests whose boundaries have exits due now and then (interrupt and
/// NMI windows, the monitor trap flag, the preemption timer), with memory
/// traffic under EPT between them.
fn vmx_program() -> Built {
    use guestkit::vmx::{vmclr, vmor, vmr, vmw, VmxCase, VmxSuite};
    use vmx_model::controls::{PinControls as Pin, Proc2Controls as P2, ProcControls as P1};
    use vmx_model::Field as F;
    // L1: on exit reason `r`, clear `bits` of `field` and resume.
    let clear_on = |r: i32, field: F, bits: u64| {
        move |a: &mut guestkit::Asm, rt: &guestkit::vmx::VmxRt| {
            let mut other = a.label();
            vmr(a, rax, F::ExitReason)?;
            a.cmp(eax, r)?;
            a.jne(other.l)?;
            vmclr(a, field, bits)?;
            a.jmp(rt.resume.l)?;
            a.set(&mut other)?;
            a.jmp(rt.default_exit.l)
        }
    };
    let ept = (P2::ENABLE_VPID | P2::ENABLE_EPT).bits() as u64;
    let mut s = VmxSuite::new();
    s.push(
        VmxCase::guest("memory loop under EPT", |a, _| l2_loop(a, 16, 40))
            .setup(move |a, _| vmor(a, F::SecondaryProcBasedControls, ept)),
    );
    let iw = P1::INTERRUPT_WINDOW_EXITING.bits() as u64;
    s.push(
        VmxCase::guest("interrupt window after a loop", |a, _| {
            l2_loop(a, 4, 30)?;
            a.sti()?;
            l2_loop(a, 4, 30)
        })
        .setup(move |a, _| vmor(a, F::PrimaryProcBasedControls, iw))
        .on_exit(clear_on(7, F::PrimaryProcBasedControls, iw)),
    );
    let nw = P1::NMI_WINDOW_EXITING.bits() as u64;
    let vnmi = (Pin::NMI_EXITING | Pin::VIRTUAL_NMIS).bits() as u64;
    s.push(
        VmxCase::guest("NMI window", |a, _| l2_loop(a, 4, 30))
            .setup(move |a, _| {
                vmor(a, F::PinBasedControls, vnmi)?;
                vmor(a, F::PrimaryProcBasedControls, nw)
            })
            .on_exit(clear_on(8, F::PrimaryProcBasedControls, nw)),
    );
    let mtf = P1::MONITOR_TRAP_FLAG.bits() as u64;
    s.push(
        VmxCase::guest("monitor trap flag", |a, _| l2_loop(a, 4, 30))
            .setup(move |a, _| vmor(a, F::PrimaryProcBasedControls, mtf))
            .on_exit(clear_on(37, F::PrimaryProcBasedControls, mtf)),
    );
    // CPUID asks L1 to set the flag in the middle of hot code.
    s.push(
        VmxCase::guest("monitor trap flag in hot code", |a, _| {
            let mut top = a.label();
            let mut done = a.label();
            a.mov(r12d, 4u32)?;
            a.set(&mut top)?;
            l2_loop(a, 4, 20)?;
            a.dec(r12d)?;
            a.jz(done.l)?;
            a.cpuid()?;
            a.jmp(top.l)?;
            a.set(&mut done)?;
            a.nop()
        })
        .on_exit(move |a, rt| {
            let mut other = a.label();
            let mut not_cpuid = a.label();
            vmr(a, rax, F::ExitReason)?;
            a.cmp(eax, 10)?;
            a.jne(not_cpuid.l)?;
            vmor(a, F::PrimaryProcBasedControls, mtf)?;
            a.jmp(rt.skip.l)?;
            a.set(&mut not_cpuid)?;
            vmr(a, rax, F::ExitReason)?;
            a.cmp(eax, 37)?;
            a.jne(other.l)?;
            vmclr(a, F::PrimaryProcBasedControls, mtf)?;
            a.jmp(rt.resume.l)?;
            a.set(&mut other)?;
            a.jmp(rt.default_exit.l)
        }),
    );
    let timer = Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64;
    s.push(
        VmxCase::guest("preemption timer in a loop", |a, _| l2_loop(a, 16, 400))
            .setup(move |a, _| {
                vmor(a, F::PinBasedControls, timer)?;
                vmw(a, F::PreemptionTimerValue, 20)
            })
            .on_exit(clear_on(52, F::PinBasedControls, timer)),
    );
    s.into_program().build().expect("assembles")
}

/// In VMX non-root operation the quick path takes the boundaries where no
/// guest-mode exit is due, and ends every run as the full path does.
#[test]
fn vmx_guest_boundaries_end_as_single_slices() {
    let built = vmx_program();
    let whole = same(&built, config(), "vmx guests");
    assert_eq!(whole.stop, Stop::DebugExit(0), "{}", whole.serial);
    let exits = &whole.report["vmexits"]["by_reason"];
    for r in [
        "Interrupt window",
        "NMI window",
        "Monitor trap flag",
        "VMX-preemption timer expired",
    ] {
        assert!(
            exits[r].as_u64().is_some_and(|n| n > 0),
            "no {r} exit: {exits}"
        );
    }
    let total = whole.steps;
    for n in [total / 7, total / 3 + 5, total / 2 + 1, total - 9] {
        same(&built, limited(&config(), n), &format!("vmx, limit {n}"));
    }
}

/// An SVM guest (under the kit's identity NPT, ASID 1) doing memory traffic
/// and VMMCALLs that L1 resumes from, until it sets R14 = 1.
fn svm_program() -> Built {
    use guestkit::svm as ksvm;
    ksvm::npt_guest_program(
        "svm guest",
        |a| {
            let mut lp = a.label();
            a.mov(r12d, 20u32)?;
            a.set(&mut lp)?;
            l2_loop(a, 8, 10)?;
            a.vmmcall()?;
            a.dec(r12d)?;
            a.jnz(lp.l)
        },
        ksvm::skip_vmmcall,
    )
    .build()
    .expect("assembles")
}

/// In SVM guest mode the quick path takes the boundaries where no event is
/// due, and ends every run as the full path does.
#[test]
fn svm_guest_boundaries_end_as_single_slices() {
    let built = svm_program();
    let cfg = MachineConfig {
        model: nestemu::cpu::cpuid::CpuModel::amd(),
        ..config()
    };
    let whole = same(&built, cfg.clone(), "svm guest");
    assert_eq!(whole.stop, Stop::DebugExit(0), "{}", whole.serial);
    let total = whole.steps;
    for n in [total / 7, total / 3 + 5, total / 2 + 1, total - 9] {
        same(&built, limited(&cfg, n), &format!("svm, limit {n}"));
    }
}
