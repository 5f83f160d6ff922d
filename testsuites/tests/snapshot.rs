//! Snapshots: a run stopped at any step, saved, restored on a new machine and
//! continued ends exactly as the run that never stopped — same stop, serial
//! output, case records, `--stats` report (but for the decoded-code cache's
//! own counters) and final machine state. The workload mixes paging, a
//! periodic local APIC timer whose interrupts land in the middle of loops,
//! the PIT, x87 and SSE state and self-modifying code; the snapshot is taken
//! at several points; a 4-vCPU run is resumed the same way. Damaged files
//! are refused with a message, never a panic.

use guestkit::irq::{clear_counts, load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::layout::{var, VARS};
use guestkit::platform::{lapic_periodic_timer, lapic_write, spin};
use guestkit::{Built, Program};
use iced_x86::code_asm::*;
use nestemu::stats::Report;
use nestemu::{Machine, MachineConfig};
use testsuites::{config, run_built, run_built_via_snapshot, Outcome};

const DATA: u64 = VARS + var::TEST_DATA;

fn program() -> Built {
    let mut p = Program::new();
    p.long_case("timer interrupts in a busy loop", |a| {
        set_mode(a, 0x50, COUNT | EOI_XAPIC)?;
        clear_counts(a)?;
        lapic_periodic_timer(a, 0x50, 3000)?;
        a.sti()?;
        a.xor(eax, eax)?;
        a.mov(ecx, 200_000u32)?;
        let mut lp = a.label();
        a.set(&mut lp)?;
        a.add(eax, ecx)?;
        a.rol(eax, 3)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        a.cli()?;
        lapic_write(a, 0x320, 0x1_0000)?; // masked
        a.mov(ebx, eax)?;
        load_count(a, 0x50)
    });
    p.long_case("x87 and sse state", |a| {
        a.mov(rax, cr4)?;
        a.or(eax, 3 << 9)?; // OSFXSR, OSXMMEXCPT
        a.mov(cr4, rax)?;
        a.fninit()?;
        a.fldpi()?;
        a.fld1()?;
        a.fadd_2(st0, st1)?;
        a.mov(rax, 0x4000_0000_0000_0000u64)?; // 2.0
        a.movq(xmm3, rax)?;
        a.mulsd(xmm3, xmm3)?;
        spin(a, 20_000)?;
        a.fstp(qword_ptr(DATA))?;
        a.mov(rbx, qword_ptr(DATA))?;
        a.movq(rcx, xmm3)
    });
    p.long_case("self-modifying code and memory", |a| {
        let mut target = a.label();
        let mut lp = a.label();
        a.xor(esi, esi)?;
        a.mov(edi, (DATA + 0x100) as u32)?;
        a.mov(ecx, 5000u32)?;
        a.set(&mut lp)?;
        a.mov(dword_ptr(rdi + rsi * 4), esi)?;
        a.inc(esi)?;
        a.and(esi, 0x3ff)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        // Patch the immediate of the MOV below, then run it.
        a.lea(rdx, ptr(target.l))?;
        a.mov(dword_ptr(rdx + 1), 0x1234_5678u32)?;
        a.set(&mut target)?;
        a.mov(eax, 0u32)?;
        a.mov(ebx, dword_ptr(rdi + 0x40))
    });
    p.build().expect("assembles")
}

/// The report without the decoded-code cache counters (which count the
/// decoding work of a process, not of the machine).
fn report(o: &Outcome) -> serde_json::Value {
    let r = Report::of(&o.machine, o.stop.exit_status(), o.stop.describe());
    let mut v = serde_json::to_value(&r).expect("serializes");
    v.as_object_mut().expect("an object").remove("code_cache");
    v
}

/// The final state as a snapshot, without the code-cache counters.
fn state(m: &Machine) -> Vec<u8> {
    let mut c = Machine::from_snapshot(&m.save_snapshot()).expect("round trip");
    c.code.decoded_blocks = 0;
    c.code.invalidated_blocks = 0;
    c.save_snapshot()
}

fn same(a: &Outcome, b: &Outcome, what: &str) {
    assert_eq!(a.stop, b.stop, "{what}: stop");
    assert_eq!(a.serial, b.serial, "{what}: serial");
    assert_eq!(a.records, b.records, "{what}: records");
    assert_eq!(report(a), report(b), "{what}: report");
    assert!(
        state(&a.machine) == state(&b.machine),
        "{what}: final state"
    );
}

#[test]
fn a_restored_run_ends_as_the_uninterrupted_one() {
    let built = program();
    let whole = run_built(&built, config());
    assert!(whole.passed(), "{:?}\n{}", whole.stop, whole.serial);
    let r = whole.record("timer interrupts in a busy loop");
    assert!(r.gprs[0] > 50, "timer interrupts arrived: {}", r.gprs[0]);
    let total = whole.machine.steps();
    for at in [1, 12_345, total / 3, total / 2 + 7, total - 1] {
        let resumed = run_built_via_snapshot(&built, config(), at);
        same(
            &whole,
            &resumed,
            &format!("snapshot at step {at} of {total}"),
        );
    }
}

/// Four vCPUs mid-conversation (APs starting, IPIs in flight, a shootdown,
/// an INIT, the counting race): every vCPU's state and the scheduler's are
/// saved, and the resumed run interleaves exactly as the whole one did.
#[test]
fn an_smp_run_resumes_exactly() {
    let built = testsuites::platform::build(&testsuites::platform::smp::program(4));
    let mut cfg = testsuites::platform::config();
    cfg.platform.cpus = 4;
    let whole = run_built(&built, cfg.clone());
    assert!(whole.passed(), "{:?}\n{}", whole.stop, whole.serial);
    let total = whole.machine.steps();
    for at in [50_000, total / 3, total / 2 + 7, total - 1] {
        let resumed = run_built_via_snapshot(&built, cfg.clone(), at);
        same(
            &whole,
            &resumed,
            &format!("4 vCPUs: snapshot at step {at} of {total}"),
        );
    }
}

#[test]
fn damaged_snapshots_are_refused_with_a_reason() {
    let built = program();
    let mut m = Machine::new(MachineConfig {
        max_insns: Some(10_000),
        ..config()
    });
    nestemu::loader::multiboot::boot(&mut m, &built.image, "kit", &[]).expect("loads");
    m.run();
    let good = m.save_snapshot();
    let msg = |b: &[u8]| {
        Machine::from_snapshot(b)
            .map(|_| ())
            .expect_err("refused")
            .to_string()
    };
    assert!(msg(b"hello").contains("not a nestemu snapshot"));
    assert!(msg(&good[..good.len() / 2]).contains("corrupt or truncated"));
    assert!(msg(&good[..20]).contains("truncated"));
    let mut v = good.clone();
    v[16] = 9;
    assert!(msg(&v).contains("version 9"));
    let mut v = good.clone();
    let mid = v.len() / 2;
    v[mid] ^= 0x40;
    assert!(msg(&v).contains("checksum"));
    // A consistent checksum over inconsistent contents: the state is checked.
    let mut v = good[..good.len() - 8].to_vec();
    v[40] = b'{';
    let sum = fnv(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    assert!(msg(&v).contains("invalid"), "{}", msg(&v));
    // Every prefix is refused without a panic.
    for n in (0..good.len()).step_by(good.len() / 97 + 1) {
        assert!(Machine::from_snapshot(&good[..n]).is_err());
    }
    assert!(Machine::from_snapshot(&good).is_ok());
}

/// FNV-1a, as the format uses.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
