//! Guest time follows the modelled cycles (issue 6, DESIGN.md principle 1):
//! the TSC a guest reads is the machine's cycle counter, so a cost model that
//! prices page-walk references higher makes the same loop take more TSC
//! ticks, by exactly the price difference times the references it made,
//! while the run itself (instructions, walks) is unchanged.

use guestkit::Program;
use iced_x86::code_asm::*;
use nestemu::cost::CostModel;
use nestemu::stats::Report;
use nestemu::MachineConfig;
use testsuites::{config, run};

/// Pages the loop reads, one access each.
const PAGES: u32 = 256;

/// RBX := TSC ticks across a loop reading [`PAGES`] pages from 16 MiB.
fn program() -> Program {
    let mut p = Program::new();
    p.long_case("tsc across page walks", |a| {
        a.rdtsc()?;
        a.shl(rdx, 32i32)?;
        a.or(rax, rdx)?;
        a.mov(r8, rax)?;
        a.mov(esi, 0x100_0000i32)?;
        a.mov(ecx, PAGES as i32)?;
        let mut lp = a.label();
        a.set(&mut lp)?;
        a.mov(rax, qword_ptr(rsi))?;
        a.add(rsi, 4096i32)?;
        a.dec(ecx)?;
        a.jnz(lp.l)?;
        a.rdtsc()?;
        a.shl(rdx, 32i32)?;
        a.or(rax, rdx)?;
        a.sub(rax, r8)?;
        a.mov(rbx, rax)
    });
    p
}

/// TSC ticks across the loop and the run's report, with `guest_ref` cycles
/// per walk reference and no TLBs (every access walks).
fn ticks(guest_ref: u32) -> (u64, serde_json::Value) {
    let cost = CostModel::from_json(&format!(r#"{{"guest_ref": {guest_ref}}}"#), "intel")
        .expect("a valid cost file");
    let cfg = MachineConfig {
        cost,
        tlb: Some(mmu::TlbConfig::none()),
        ..config()
    };
    let o = run(&program(), cfg);
    assert!(o.passed(), "{:?}\n{}", o.stop, o.serial);
    let r = o.record("tsc across page walks");
    assert!(r.done && r.exception.is_none(), "{r:?}");
    let report = serde_json::to_value(Report::of(&o.machine, 0, String::new())).unwrap();
    (r.gprs[3], report)
}

#[test]
fn the_tsc_counts_modelled_cycles_walk_references_included() {
    let (cheap, rc) = ticks(20);
    let (dear, rd) = ticks(120);
    assert_eq!(
        rc["instructions"], rd["instructions"],
        "costs never change the run"
    );
    assert_eq!(rc["walks"], rd["walks"]);
    // Every access walked (no TLB), each walk at least two references.
    let diff = dear - cheap;
    assert_eq!(diff % 100, 0, "{cheap} -> {dear}");
    let refs = diff / 100;
    assert!(refs >= 2 * PAGES as u64, "{refs} references in the loop");
    assert!(refs <= rc["walks"]["guest_refs"].as_u64().unwrap());
    // The loop's ticks are the cycles of its instructions and walks: more
    // than the instructions alone.
    assert!(cheap > 20 * refs, "{cheap}");
    assert_eq!(
        rd["cycles"].as_u64().unwrap() - rc["cycles"].as_u64().unwrap(),
        100 * rc["walks"]["guest_refs"].as_u64().unwrap(),
        "the clock: every guest reference at the new price"
    );
}
