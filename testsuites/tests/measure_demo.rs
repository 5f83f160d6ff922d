//! The demo's runs (issue 6) on VT-x and AMD-V, on a smaller work than the
//! demo's so the suite stays quick: every setup computes the right checksum,
//! every total of its report is the sum of its parts, repeated runs are
//! identical, and shadow paging trades walk references for exits.

use nestemu::cli::measure::MeasureOptions;
use nestemu::cost::Category;
use nestemu::demo::work::Work;
use nestemu::demo::{config, run_one, Run, Setup};
use nestemu::stats::{LevelReport, Report};

const SMALL: Work = Work {
    data_bytes: 8 << 20,
    rounds: 2,
    per_round: 8192,
    switch_every: None,
};

const CPUS: [&str; 2] = ["intel", "amd"];

fn run(cpu: &str, setup: Setup, w: Work) -> Run {
    let c = config(cpu, &MeasureOptions::default()).unwrap();
    let r = run_one(setup, w, &c, None).unwrap();
    assert!(r.passed(), "{cpu} {setup:?}: {:?}\n{}", r.stop, r.serial);
    assert!(r.serial.contains("(right)"), "{}", r.serial);
    r
}

/// The manuals' names of the exits the demo's guests take: CPUID, I/O,
/// the hypercall, #PF, CR3 writes.
struct Names {
    cpuid: &'static str,
    io: &'static str,
    call: &'static str,
    pf: &'static str,
    cr3: &'static str,
}

fn names(cpu: &str) -> Names {
    if cpu == "amd" {
        Names {
            cpuid: "VMEXIT_CPUID",
            io: "VMEXIT_IOIO",
            call: "VMEXIT_VMMCALL",
            pf: "VMEXIT_EXCP14",
            cr3: "VMEXIT_CR3_WRITE",
        }
    } else {
        Names {
            cpuid: "CPUID",
            io: "I/O instruction",
            call: "VMCALL",
            pf: "Exception or non-maskable interrupt (NMI)",
            cr3: "Control-register accesses",
        }
    }
}

fn sum_levels(parts: &[&LevelReport], f: impl Fn(&LevelReport) -> u64) -> u64 {
    parts.iter().map(|p| f(p)).sum()
}

/// Every total is the sum of its parts.
fn assert_parts_add_up(r: &Report) {
    let l1 = &r.levels.l1;
    let l2 = &r.levels.l2.total;
    let contexts: Vec<&LevelReport> = r.levels.l2.by_control.values().collect();
    assert_eq!(r.instructions, l1.instructions + l2.instructions);
    assert_eq!(r.cycles, l1.cycles + l2.cycles);
    assert_eq!(r.vmexits.total, l1.vmexits + l2.vmexits);
    assert_eq!(r.vmexits.total, r.vmexits.by_reason.values().sum::<u64>());
    assert_eq!(l2.cycles, sum_levels(&contexts, |c| c.cycles));
    assert_eq!(l2.instructions, sum_levels(&contexts, |c| c.instructions));
    for part in [
        &r.cycles_by_category,
        &l1.cycles_by_category,
        &l2.cycles_by_category,
    ] {
        assert_eq!(part.other, 0, "no cycles outside the categories");
    }
    assert_eq!(r.cycles, r.cycles_by_category.parts.sum());
    assert_eq!(l1.cycles, l1.cycles_by_category.parts.sum());
    assert_eq!(l2.cycles, l2.cycles_by_category.parts.sum());
    for c in Category::ALL {
        assert_eq!(
            r.cycles_by_category.parts.get(c),
            l1.cycles_by_category.parts.get(c) + l2.cycles_by_category.parts.get(c),
            "{c:?}"
        );
    }
    assert_eq!(r.walks.count, l1.walks.count + l2.walks.count);
    assert_eq!(r.walks.refs, r.walks.guest_refs + r.walks.nested_refs);
    assert_eq!(r.walks.refs, l1.walks.refs + l2.walks.refs);
    assert_eq!(r.walks.count, r.walks.refs_per_walk.iter().sum::<u64>());
    let refs: u64 = r
        .walks
        .refs_per_walk
        .iter()
        .enumerate()
        .map(|(n, c)| n as u64 * c)
        .sum();
    assert_eq!(refs, r.walks.refs);
    assert_eq!(r.tlb.hits, l1.tlb.hits + l2.tlb.hits);
    assert_eq!(r.tlb.misses, l1.tlb.misses + l2.tlb.misses);
}

#[test]
fn every_setup_does_the_work_and_its_parts_add_up() {
    for cpu in CPUS {
        let n = names(cpu);
        let native = run(cpu, Setup::Native, SMALL);
        let report = native.report();
        assert_parts_add_up(&report);
        assert_eq!(report.vmexits.total, 0);
        assert_eq!(report.walks.nested_refs, 0);
        for setup in [Setup::L1Alone, Setup::L2Nested, Setup::L2Shadow] {
            let r = run(cpu, setup, SMALL);
            let rep = r.report();
            assert_parts_add_up(&rep);
            let l2 = &rep.levels.l2.total;
            let exits = &rep.vmexits.by_reason;
            match setup {
                Setup::L1Alone => {
                    assert_eq!(l2.instructions, 0);
                    // The same loop: the same walks, within the setup's own.
                    assert!(rep.walks.count >= report.walks.count);
                }
                Setup::L2Nested => {
                    assert!(l2.walks.nested_refs > 0);
                    assert_eq!(exits[n.cpuid], 2, "{cpu}: {exits:?}");
                    assert_eq!(exits[n.call], 1, "{cpu}: {exits:?}");
                    assert!(exits[n.io] > 2, "{cpu}: {exits:?}");
                    assert!(rep.cycles > report.cycles, "nesting costs cycles");
                }
                _ => {
                    assert_eq!(l2.walks.nested_refs, 0, "shadow walks are 1-D");
                    assert!(exits[n.pf] >= 2048, "{cpu}: {exits:?}");
                }
            }
            // The guest ran the same loop as the native kernel (which also
            // booted and built the tables).
            if setup != Setup::L1Alone {
                let ratio = l2.instructions as f64 / report.instructions as f64;
                assert!((0.8..1.0).contains(&ratio), "{cpu} {setup:?}: {ratio}");
            }
        }
    }
}

#[test]
fn runs_are_identical_twice() {
    let w = Work {
        switch_every: Some(4096),
        ..SMALL
    };
    for cpu in CPUS {
        for setup in [Setup::L2Nested, Setup::L2Shadow] {
            let a = run(cpu, setup, w);
            let b = run(cpu, setup, w);
            assert_eq!(a.serial, b.serial);
            assert_eq!(
                serde_json::to_string(&a.report()).unwrap(),
                serde_json::to_string(&b.report()).unwrap(),
                "{cpu} {setup:?}"
            );
        }
    }
}

#[test]
fn shadow_paging_trades_walk_references_for_exits() {
    for cpu in CPUS {
        // A region beyond the TLBs' reach, each page touched eight times.
        let w = Work {
            data_bytes: 32 << 20,
            rounds: 2,
            per_round: 32768,
            switch_every: None,
        };
        let nested = run(cpu, Setup::L2Nested, w)
            .report()
            .levels
            .l2
            .total
            .clone();
        let shadow = run(cpu, Setup::L2Shadow, w)
            .report()
            .levels
            .l2
            .total
            .clone();
        assert!(shadow.vmexits > 100 * nested.vmexits, "{cpu}: more exits");
        assert!(
            shadow.walks.refs < nested.walks.refs,
            "{cpu}: fewer references"
        );
        assert_eq!(shadow.walks.nested_refs, 0);
        // Every context switch empties the shadow tables: the pages fault
        // in again, and shadow paging loses by far.
        let switching = Work {
            switch_every: Some(16384),
            ..w
        };
        let nested_sw = run(cpu, Setup::L2Nested, switching)
            .report()
            .levels
            .l2
            .total
            .clone();
        let shadow_run = run(cpu, Setup::L2Shadow, switching);
        let shadow_sw = shadow_run.report().levels.l2.total.clone();
        assert_eq!(shadow_run.report().vmexits.by_reason[names(cpu).cr3], 4);
        assert!(shadow_sw.vmexits > 2 * shadow.vmexits);
        assert!(shadow_sw.cycles > 3 * nested_sw.cycles);
        assert_eq!(
            nested_sw.vmexits, nested.vmexits,
            "MOV CR3 does not exit with nested paging"
        );
    }
}
