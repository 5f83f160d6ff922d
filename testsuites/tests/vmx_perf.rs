//! How fast a VMCALL round trip runs on this host: an L1 with a minimal exit
//! handler (advance the guest RIP, VMRESUME) and an L2 that calls it in a
//! loop. A measurement, not a test of speed: run with
//! `cargo test -p testsuites --test vmx_perf -- --ignored --nocapture`.

mod vmx_common;

use guestkit::vmx::{vmor, vmw_reg, VmxCase};
use iced_x86::code_asm::*;
use std::time::Instant;
use testsuites::config;
use vmx_common::*;
use vmx_model::controls::Proc2Controls as P2;
use vmx_model::Field as F;

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
        VmxCase::guest("VMCALL loop", |a, _| {
            let mut lp = a.label();
            a.xor(r14d, r14d)?;
            a.mov(r15, CALLS)?;
            a.set(&mut lp)?;
            a.vmcall()?;
            a.dec(r15)?;
            a.jnz(lp.l)?;
            a.mov(r14d, 1i32)
        })
        .setup(move |a, rt| {
            // HOST_RIP: a minimal handler; the final VMCALL (R14 = 1) goes
            // to the kit's recording handler.
            let mut lean = a.label();
            let mut over = a.label();
            a.jmp(over.l)?;
            a.set(&mut lean)?;
            a.cmp(r14d, 1i32)?;
            a.je(rt.exit_handler.l)?;
            a.mov(edx, F::GuestRip.encoding())?;
            a.vmread(rax, rdx)?;
            a.mov(edx, F::ExitInstructionLength.encoding())?;
            a.vmread(rcx, rdx)?;
            a.add(rax, rcx)?;
            a.mov(edx, F::GuestRip.encoding())?;
            a.vmwrite(rdx, rax)?;
            a.vmresume()?;
            a.ud2()?;
            a.set(&mut over)?;
            a.lea(rax, ptr(lean.l))?;
            vmw_reg(a, F::HostRip, rax)?;
            if vpid {
                vmor(
                    a,
                    F::SecondaryProcBasedControls,
                    P2::ENABLE_VPID.bits() as u64,
                )?;
            }
            Ok(())
        }),
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
