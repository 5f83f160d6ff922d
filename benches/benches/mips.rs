//! The MIPS benchmark: guest instructions per second of host CPU time (the
//! running thread's, which a loaded host inflates far less than wall time;
//! wall-time MIPS are printed beside it) for the plain-code
//! and memory workloads of issue 7, (a) the integer loop, (b) the memory
//! loop with a TLB miss per access, (c) and (d) that loop in an L2 under
//! EPT and under NPT.
//!
//! `cargo bench -p nestemu-benches --bench mips` runs them all;
//! `-- a c` runs the named ones. NESTEMU_MIPS_ITERS sets the integer loop's
//! length, NESTEMU_MIPS_ROUNDS the memory loops' rounds, NESTEMU_MIPS_REPEAT
//! how many times each is run (the best run is reported).

use nestemu::cpu::cpuid::CpuModel;
use nestemu_benches::workloads as w;
use nestemu_benches::{config, ended, run};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // Skip when cargo runs benches in test mode (`cargo test --benches`).
    if std::env::args().any(|a| a == "--test") {
        println!("mips: skipped in test mode");
        return;
    }
    let iters = env("NESTEMU_MIPS_ITERS", 20_000_000);
    let rounds = env("NESTEMU_MIPS_ROUNDS", 100);
    let repeat = env("NESTEMU_MIPS_REPEAT", 1).max(1);
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // As the comparison runs them: the memory loops' data lies above
    // 64 MiB, and (d) needs AMD-V.
    let loads = [
        ("a", "integer loop", w::integer_loop(iters), false),
        ("b", "memory loop, paging", w::memory(rounds), false),
        (
            "c",
            "memory loop, L2 under EPT",
            w::memory_ept(rounds),
            false,
        ),
        (
            "d",
            "memory loop, L2 under NPT",
            w::memory_npt(rounds),
            true,
        ),
    ];
    for (key, name, program, amd) in &loads {
        if !picked.is_empty() && !picked.iter().any(|p| p == key) {
            continue;
        }
        let mut best: Option<nestemu_benches::Measured> = None;
        for _ in 0..repeat {
            let mut cfg = config();
            cfg.mem_bytes = 256 << 20;
            if *amd {
                cfg.model = CpuModel::preset("amd").expect("the amd preset");
            }
            let r = run(program, cfg);
            assert!(ended(&r.stop), "{name}: {:?}", r.stop);
            match &best {
                Some(b) if b.cpu_seconds <= r.cpu_seconds => {}
                _ => best = Some(r),
            }
        }
        let r = best.expect("at least one run");
        println!(
            "({key}) {name}: {} guest instructions in {:.3} s of host CPU time = {:.1} MIPS ({:.1} MIPS of wall time)",
            r.instructions,
            r.cpu_seconds,
            r.mips(),
            r.instructions as f64 / r.seconds / 1e6
        );
    }
}
