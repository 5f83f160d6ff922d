//! SMP: INIT-SIPI-SIPI bring-up of one to four APs, IPIs of every kind,
//! a TLB shootdown, INIT to a running AP, LOCK-prefixed counting from every
//! vCPU, and deterministic interleaving (`testsuites/src/platform/smp.rs`).

use nestemu::stats::Report;
use nestemu::{MachineConfig, Stop};
use testsuites::platform::{self, smp, Verdicts};
use testsuites::Outcome;

fn config(cpus: u32, quantum: u64) -> MachineConfig {
    let mut c = platform::config();
    c.platform.cpus = cpus;
    c.platform.quantum = quantum;
    c
}

fn run(cpus: u32, quantum: u64) -> (Outcome, Verdicts) {
    let o = testsuites::run(&smp::program(cpus as u64), config(cpus, quantum));
    let v = Verdicts::parse(&o.serial);
    assert!(
        v.failed.is_empty() && o.stop == Stop::DebugExit(0),
        "{cpus} cpus, quantum {quantum}: stop {:?}; failures:\n{}\nserial:\n{}",
        o.stop,
        v.failed.join("\n"),
        o.serial
    );
    (o, v)
}

/// The `--stats` JSON of a finished run.
fn stats_json(o: &Outcome) -> String {
    serde_json::to_string_pretty(&Report::of(&o.machine, 1, "debug exit".into())).unwrap()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

const QUANTUM: u64 = nestemu::devices::DEFAULT_QUANTUM;

#[test]
fn bring_up_one_to_four_aps() {
    for cpus in 2..=5 {
        let (o, v) = run(cpus, QUANTUM);
        assert!(v.ok.iter().any(|n| n == "every ap came online"), "{cpus}");
        for id in 1..cpus {
            assert!(
                v.ok.iter()
                    .any(|n| n == &format!("ap {id}: cpuid 01h and 0bh give its apic id")),
                "{cpus}: ap {id}"
            );
        }
        let r = o
            .machine
            .smp_report()
            .expect("an SMP machine reports its vCPUs");
        assert_eq!(r.vcpus.len(), cpus as usize);
        assert!(r
            .vcpus
            .iter()
            .skip(1)
            .all(|c| c.sipis >= 1 && c.instructions > 0));
        let insns: u64 = r.vcpus.iter().map(|c| c.instructions).sum();
        let cycles: u64 = r.vcpus.iter().map(|c| c.cycles).sum();
        assert_eq!(insns, o.machine.stats.instructions, "per-vCPU parts add up");
        assert_eq!(cycles + r.idle_cycles, o.machine.stats.cycles);
    }
}

#[test]
fn ipis_shootdown_init_and_locked_counting() {
    let (o, v) = run(4, QUANTUM);
    for name in [
        "fixed ipi to apic id 3",
        "nmi ipi reaches ap 1 (no eoi)",
        "logical flat ipi skips ap 2",
        "all-excluding-self skips the sender",
        "all-including-self reaches apic id 0",
        "self ipi",
        "lowest priority goes to the lowest tpr (ap 2)",
        "ap 1 still reads page a through its tlb",
        "ap 1 reads page b after the shootdown ipi",
        "an ap after init runs nothing",
        "sipi restarts the init-ed ap",
        "init reset the ap's svr to ffh",
        "lock inc from every cpu reaches the total",
    ] {
        assert!(
            v.ok.iter().any(|n| n == name),
            "missing ok {name}:\n{}",
            o.serial
        );
    }
    let r = o.machine.smp_report().unwrap();
    assert_eq!(r.vcpus[3].inits, 1);
    assert_eq!(r.vcpus[3].sipis, 2);
    // The unlocked counter lost updates: the vCPUs' turns really
    // interleave inside the counting loops.
    let racy = v.info("unlocked counter");
    assert!(racy < 4 * smp::COUNT_ITERATIONS, "{racy}");
}

#[test]
fn four_vcpus_run_deterministically() {
    let (a, va) = run(4, QUANTUM);
    let (b, _) = run(4, QUANTUM);
    assert_eq!(a.serial, b.serial, "same serial output twice");
    let (ja, jb) = (stats_json(&a), stats_json(&b));
    assert_eq!(ja, jb, "same stats twice");
    eprintln!(
        "4 vCPUs, quantum {QUANTUM}: stats JSON FNV-1a {:016x} both runs",
        fnv(&ja)
    );
    // Another quantum: another interleaving, again reproducible.
    let (c, vc) = run(4, 3_000);
    let (d, _) = run(4, 3_000);
    assert_eq!(c.serial, d.serial);
    let (jc, jd) = (stats_json(&c), stats_json(&d));
    assert_eq!(jc, jd);
    eprintln!(
        "4 vCPUs, quantum 3000: stats JSON FNV-1a {:016x} both runs",
        fnv(&jc)
    );
    assert_ne!(ja, jc, "the quantum changes the interleaving");
    assert_ne!(
        (va.info("unlocked counter"), a.machine.stats.cycles),
        (vc.info("unlocked counter"), c.machine.stats.cycles)
    );
}
