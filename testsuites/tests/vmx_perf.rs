//! How fast a VMCALL round trip runs on this host: an L1 with a minimal exit
//! handler (advance the guest RIP, VMRESUME) and an L2 that calls it in a
//! loop. A measurement, not a test of speed: run with
//! `cargo test -p testsuites --test vmx_perf -- --ignored --nocapture`.

mod vmx_common;

use guestkit::vmx::VmxCase;
use std::time::Instant;
use testsuites::config;
use vmx_common::*;

const CALLS: u64 = 200_000;

#[test]
#[ignore = "a measurement; run explicitly"]
fn vmcall_round_trips_per_second() {
    if std::env::var_os("VPID_ONLY").is_none() {
        measure(false);
    }
    measure(true);
}

/// One measurement, with VPID 1 or without VPIDs (then every VM entry and
/// exit invalidates the TLB entries of VPID 0, SDM Vol. 3C 29.4.3.1).
fn measure(vpid: bool) {
    let mut t = Table::default();
    t.case(
        VmxCase::vmcall_loop(CALLS, vpid),
        vec![reason(0, 18), gpr(15, 0)],
    );
    let mut cfg = config();
    cfg.max_insns = Some(50_000_000);
    let start = Instant::now();
    let run = t.run_with(cfg);
    let secs = start.elapsed().as_secs_f64();
    let m = &run.outcome.machine;
    let exits = m.stats.vmexits.total;
    eprintln!(
        "VPID {vpid}: {exits} VM exits ({CALLS} VMCALL round trips) in {secs:.3} s: {:.0} exits/s; {} instructions, {:.1} MIPS",
        exits as f64 / secs,
        m.stats.instructions,
        m.stats.instructions as f64 / secs / 1e6
    );
}
