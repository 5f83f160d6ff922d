//! Exit round trips per second on workloads (e) and (f), for profiling:
//! `cargo run --release -p nestemu-benches --example roundtrip [vmx|svm] [calls]`.
//!
//! Besides wall time it reports the thread's on-CPU time (Linux
//! `/proc/thread-self/schedstat`), which a shared, loaded host inflates less.
//! With `NESTEMU_STATS=PREFIX` it writes each run's `--stats` JSON to
//! `PREFIX-vmx.json` and `PREFIX-svm.json`, to check that a change leaves
//! every modelled count as it was.

use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig};
use nestemu_benches::config;
use nestemu_benches::workloads as w;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    let calls: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    if which != "svm" {
        measure("VMX (e)", "vmx", &w::vmcall_loop(calls), config());
    }
    if which != "vmx" {
        let mut cfg = config();
        cfg.model = nestemu::cpu::cpuid::CpuModel::preset("amd").expect("the amd preset");
        measure("SVM (f)", "svm", &w::vmmcall_loop(calls), cfg);
    }
}

fn measure(name: &str, key: &str, p: &guestkit::Program, cfg: MachineConfig) {
    let built = p.build().expect("the workload builds");
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "bench", &[]).expect("the workload loads");
    let cpu0 = cpu_ns();
    let start = Instant::now();
    let stop = m.run();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9);
    assert!(nestemu_benches::ended(&stop), "{name}: {stop:?}");
    let exits = m.stats.vmexits.total as f64;
    print!(
        "{name}: {} insns, {exits} exits, wall {wall:.3} s, {:.0} exits/s, {:.2} us per round trip",
        m.stats.instructions,
        exits / wall,
        wall / exits * 1e6
    );
    match cpu {
        Some(s) => println!(
            "; on-CPU {s:.3} s, {:.0} exits/s, {:.2} us per round trip",
            exits / s,
            s / exits * 1e6
        ),
        None => println!(),
    }
    if let Ok(prefix) = std::env::var("NESTEMU_STATS") {
        let path = format!("{prefix}-{key}.json");
        nestemu::cli::write_stats(&m, &stop, &path).expect("the stats are written");
    }
}

/// Nanoseconds this thread has run on a CPU, where the host tells.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
