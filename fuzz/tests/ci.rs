//! The fuzz run of every CI run (issue 8 part 4): each target for a fixed
//! number of iterations from a fixed seed, so the run is deterministic, and
//! every saved reproducer under `fuzz/regressions/<target>/` replayed.
//! Long runs: see the README's "Fuzzing" section.

use nestemu_fuzz::runner::{fuzz, run_caught, Config};
use nestemu_fuzz::targets::{make, NAMES};
use std::path::Path;

/// The CI seed.
const SEED: u64 = 0x6e65_7374;

/// Runs `name` for `iters` iterations and requires no failure and at least
/// `min_outcomes` distinct outcomes (a target that stops exploring fails).
fn short_run(name: &str, iters: u64, min_outcomes: usize) {
    let target = make(name).expect("target exists");
    let mut cfg = Config::iterations(SEED, iters);
    cfg.out = std::env::temp_dir().join(format!("nestemu-fuzz-ci-{}", std::process::id()));
    let s = fuzz(target.as_ref(), &cfg);
    let report = s.render();
    println!("{report}");
    assert_eq!(s.failing_iterations, 0, "{report}");
    assert!(s.outcomes.len() >= min_outcomes, "{report}");
}

#[test]
fn fuzz_loader() {
    short_run("loader", 150, 10);
}

#[test]
fn fuzz_cli() {
    short_run("cli", 400, 30);
}

#[test]
fn fuzz_paging() {
    short_run("paging", 3000, 60);
}

#[test]
fn fuzz_insn() {
    short_run("insn", 150, 10);
}

#[test]
fn fuzz_vmcs() {
    short_run("vmcs", 120, 10);
}

#[test]
fn fuzz_vmcb() {
    short_run("vmcb", 150, 10);
}

#[test]
fn fuzz_snapshot() {
    short_run("snapshot", 40, 8);
}

#[test]
fn same_seed_same_outcomes() {
    let target = make("paging").expect("target exists");
    let cfg = Config::iterations(7, 500);
    let a = fuzz(target.as_ref(), &cfg);
    let b = fuzz(target.as_ref(), &cfg);
    assert_eq!(a.outcomes, b.outcomes);
    assert_eq!(a.corpus, b.corpus);
}

/// Every reproducer kept under `fuzz/regressions/<target>/` runs to a
/// defined outcome.
#[test]
fn regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for name in NAMES {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        let target = make(name).expect("target exists");
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "bin"))
        {
            let input = std::fs::read(f).expect("reproducer readable");
            match run_caught(target.as_ref(), &input) {
                Ok(Ok(_)) => replayed += 1,
                Ok(Err(v)) => panic!("{}: undefined outcome: {v}", f.display()),
                Err(p) => panic!("{}: {p}", f.display()),
            }
        }
    }
    println!("{replayed} regression inputs replayed");
}
