//! Measuring through the whole stack (issue 6): a guest program (an L1
//! hypervisor and its L2 guest, built with the kit) runs in the `nestemu`
//! binary, and its `--stats` JSON says how many references the 2-D walks
//! made, with every part adding up to its total. Also the measuring options
//! end to end: `--cost`, `--report`, `--trace`, `cost-presets` and
//! `explain-walk` on a real run.

use guestkit::{Asm, Label, Rt64};
use iced_x86::code_asm::*;
use nestemu::demo::hv::Paging;
use nestemu::demo::vmx::Levels;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn nestemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestemu"))
        .args(args)
        .output()
        .expect("the nestemu binary runs")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("nestemu-measure-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(name: &str, data: &[u8]) -> String {
    let p = dir().join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_string()
}

fn path(name: &str) -> String {
    dir().join(name).to_str().unwrap().to_string()
}

/// The guest's page tables: 4-KiB pages only, so every walk of the guest
/// reads all its levels. The low 2 MiB (the guest's code) are identity-
/// mapped; linear [`DATA_LA`] maps to guest-physical [`DATA_FRAME`]. A
/// 5-level guest has a PML5 above the same PML4.
const TABLES: u64 = 0x50_0000;
const PML5: u64 = TABLES + 0x6000;
const DATA_LA: u64 = 0x4000_0000;
const DATA_FRAME: u64 = 0x70_0000;

fn four_k_tables(a: &mut Asm) -> Result<(), IcedError> {
    let (pml4, pdpt, pd0, pt0, pd1, pt1) = (
        TABLES,
        TABLES + 0x1000,
        TABLES + 0x2000,
        TABLES + 0x3000,
        TABLES + 0x4000,
        TABLES + 0x5000,
    );
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, TABLES)?;
    a.mov(ecx, 3584i32)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(PML5), (TABLES | 3) as i32)?;
    a.mov(qword_ptr(pml4), (pdpt | 3) as i32)?;
    a.mov(qword_ptr(pdpt), (pd0 | 3) as i32)?;
    a.mov(qword_ptr(pd0), (pt0 | 3) as i32)?;
    a.mov(qword_ptr(pdpt + 8), (pd1 | 3) as i32)?;
    a.mov(qword_ptr(pd1), (pt1 | 3) as i32)?;
    a.mov(qword_ptr(pt1), (DATA_FRAME | 3) as i32)?;
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(eax, ecx)?;
    a.shl(eax, 12i32)?;
    a.or(eax, 3i32)?;
    a.mov(qword_ptr(rcx * 8 + pt0 as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, 512i32)?;
    a.jb(lp.l)
}

/// The L2 guest: a read and a write of [`DATA_LA`], then VMMCALL (AMD-V)
/// or VMCALL (VT-x).
fn guest(intel: bool) -> impl Fn(&mut Asm, &Rt64) -> Result<Label, IcedError> {
    move |a: &mut Asm, _rt: &Rt64| {
        four_k_tables(a)?;
        let mut l2 = a.label();
        let mut over = a.label();
        a.jmp(over.l)?;
        a.set(&mut l2)?;
        a.mov(eax, DATA_LA as i32)?;
        a.mov(rbx, qword_ptr(rax))?;
        a.add(rbx, 1i32)?;
        a.mov(qword_ptr(rax), rbx)?;
        if intel {
            a.vmcall()?;
        } else {
            a.vmmcall()?;
        }
        a.hlt()?;
        a.set(&mut over)?;
        Ok(l2)
    }
}

/// The AMD-V hypervisor with nested paging and the guest above.
fn image() -> Vec<u8> {
    nestemu::demo::svm::hypervisor_for(Paging::Nested, TABLES, guest(false))
        .build()
        .expect("the guest builds")
        .image
}

/// The VT-x hypervisor with EPT and the guest above, 4 or 5 levels in
/// both dimensions.
fn vmx_image(levels: Levels) -> Vec<u8> {
    let root = if levels.guest == 5 { PML5 } else { TABLES };
    nestemu::demo::vmx::hypervisor_with(Paging::Nested, root, levels, guest(true))
        .build()
        .expect("the guest builds")
        .image
}

fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every total of the report is the sum of its parts: levels, L2 contexts,
/// cycle categories, walk counters and the histogram.
fn assert_parts_add_up(r: &Value) {
    let l1 = &r["levels"]["L1"];
    let l2 = &r["levels"]["L2"];
    for key in ["instructions", "cycles", "vmexits"] {
        let total = if key == "vmexits" {
            u(&r["vmexits"]["total"])
        } else {
            u(&r[key])
        };
        assert_eq!(total, u(&l1[key]) + u(&l2[key]), "{key}");
        let by_control: u64 = l2["by_control"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| u(&c[key]))
            .sum();
        assert_eq!(u(&l2[key]), by_control, "L2 {key} by VMCB");
    }
    for part in [r, l1, l2] {
        let cats = part["cycles_by_category"].as_object().unwrap();
        let sum: u64 = cats.values().map(u).sum();
        assert_eq!(sum, u(&part["cycles"]), "categories add up to the cycles");
        assert_eq!(u(&cats["other"]), 0, "no cycles outside the categories");
        let w = &part["walks"];
        assert_eq!(u(&w["refs"]), u(&w["guest_refs"]) + u(&w["nested_refs"]));
        let h = w["refs_per_walk"].as_array().unwrap();
        assert_eq!(h.iter().map(u).sum::<u64>(), u(&w["count"]), "histogram");
        let refs: u64 = h.iter().enumerate().map(|(n, c)| n as u64 * u(c)).sum();
        assert_eq!(refs, u(&w["refs"]), "histogram references");
        let t = &part["tlb"];
        assert_eq!(u(&t["hits"]), u(&t["l1_hits"]) + u(&t["l2_hits"]));
    }
    for key in ["count", "refs", "guest_refs", "nested_refs"] {
        assert_eq!(
            u(&r["walks"][key]),
            u(&l1["walks"][key]) + u(&l2["walks"][key]),
            "walks {key}"
        );
    }
    for key in ["hits", "misses"] {
        assert_eq!(
            u(&r["tlb"][key]),
            u(&l1["tlb"][key]) + u(&l2["tlb"][key]),
            "tlb {key}"
        );
    }
}

#[test]
fn a_cold_4_over_4_walk_makes_24_references_in_the_json_report() {
    let kernel = write("l2-4k.bin", &image());
    let stats = path("l2-4k.json");
    // No TLBs and no paging-structure caches: every walk is cold.
    let o = nestemu(&[
        "run", "--kernel", &kernel, "--cpu", "amd", "--caches", "none", "--stats", &stats,
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let r = json(&stats);
    assert_parts_add_up(&r);
    let l2 = &r["levels"]["L2"]["walks"];
    let walks = u(&l2["count"]);
    assert!(walks >= 3, "the guest fetched, read and wrote: {l2}");
    let hist = l2["refs_per_walk"].as_array().unwrap();
    assert_eq!(
        hist.len(),
        25,
        "the longest L2 walk made 24 references: {l2}"
    );
    assert_eq!(
        u(&hist[24]),
        walks,
        "every L2 walk made 24 references: {l2}"
    );
    assert_eq!(u(&l2["guest_refs"]), 4 * walks);
    assert_eq!(u(&l2["nested_refs"]), 20 * walks);
    // The hypervisor's own walks are one-dimensional (the kit's 2-MiB pages).
    let l1 = &r["levels"]["L1"]["walks"];
    assert_eq!(u(&l1["nested_refs"]), 0);
    assert_eq!(u(&r["vmexits"]["by_reason"]["VMEXIT_VMMCALL"]), 1);
    // The same run with the caches of the AMD-like model: the walks are
    // cheaper, and every part still adds up.
    let warm = path("l2-4k-warm.json");
    let o = nestemu(&["run", "--kernel", &kernel, "--cpu", "amd", "--stats", &warm]);
    assert_eq!(o.status.code(), Some(1));
    let w = json(&warm);
    assert_parts_add_up(&w);
    assert!(u(&w["levels"]["L2"]["walks"]["refs"]) < u(&l2["refs"]));
}

#[test]
fn cold_walks_make_24_references_over_4_level_ept_and_35_over_5_level() {
    for (levels, refs, guest_refs, name) in [
        (Levels::FOUR, 24u64, 4u64, "ept4.bin"),
        (Levels::FIVE, 35, 5, "ept5.bin"),
    ] {
        let kernel = write(name, &vmx_image(levels));
        let stats = path(&format!("{name}.json"));
        let o = nestemu(&[
            "run", "--kernel", &kernel, "--cpu", "intel", "--caches", "none", "--stats", &stats,
        ]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let r = json(&stats);
        assert_parts_add_up(&r);
        let l2 = &r["levels"]["L2"]["walks"];
        let walks = u(&l2["count"]);
        assert!(walks >= 3, "{l2}");
        let hist = l2["refs_per_walk"].as_array().unwrap();
        assert_eq!(hist.len() as u64, refs + 1, "{l2}");
        assert_eq!(
            u(&hist[refs as usize]),
            walks,
            "every L2 walk: {refs} references"
        );
        assert_eq!(u(&l2["guest_refs"]), guest_refs * walks);
        assert_eq!(u(&l2["nested_refs"]), (refs - guest_refs) * walks);
        assert_eq!(u(&r["vmexits"]["by_reason"]["VMCALL"]), 1);
    }
}

#[test]
fn the_cost_model_prices_the_same_run_differently_and_deterministically() {
    let kernel = write("cost.bin", &image());
    let (a, b, c) = (
        path("cost-a.json"),
        path("cost-b.json"),
        path("cost-c.json"),
    );
    let dear = write(
        "dear.json",
        br#"{"base": "amd", "nested_ref": 200, "name": "dear"}"#,
    );
    for (out, extra) in [(&a, None), (&b, None), (&c, Some(dear.as_str()))] {
        let mut args = vec!["run", "--kernel", &kernel, "--cpu", "amd", "--stats", out];
        if let Some(f) = extra {
            args.extend(["--cost", f]);
        }
        assert_eq!(nestemu(&args).status.code(), Some(1));
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "identical JSON twice"
    );
    let (ra, rc) = (json(&a), json(&c));
    assert_eq!(ra["cost_model"], "amd");
    assert_eq!(rc["cost_model"], "dear");
    assert_eq!(
        ra["instructions"], rc["instructions"],
        "costs never change the run"
    );
    let nested = u(&ra["walks"]["nested_refs"]);
    assert!(nested > 0);
    assert_eq!(
        u(&rc["cycles_by_category"]["walks"]) - u(&ra["cycles_by_category"]["walks"]),
        nested * (200 - 20),
        "each nested reference costs what the file says"
    );
    assert_parts_add_up(&rc);
}

#[test]
fn bad_cost_files_get_one_line_and_status_2() {
    let kernel = write("bad-cost.bin", &image());
    for (body, needle) in [
        (&b"{\"guest_refs\": 1}"[..], "unknown cost 'guest_refs'"),
        (b"not json", "not JSON"),
    ] {
        let f = write("bad.json", body);
        let o = nestemu(&["run", "--kernel", &kernel, "--cost", &f]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn cost_presets_prints_the_table_with_its_sources() {
    let o = nestemu(&["cost-presets"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for row in nestemu::cost::ROWS {
        assert!(out.contains(row.name), "{}", row.name);
    }
    assert!(out.contains("not a microarchitecture simulation"));
}

#[test]
fn report_and_trace_of_a_nested_run() {
    let kernel = write("trace.bin", &image());
    let (t1, t2) = (path("t1.jsonl"), path("t2.jsonl"));
    for t in [&t1, &t2] {
        let o = nestemu(&[
            "run",
            "--kernel",
            &kernel,
            "--cpu",
            "amd",
            "--report",
            "--trace",
            t,
            "--trace-events",
            "vmentry,vmexit,walk",
            "--trace-level",
            "L2",
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("where the cycles went"), "{err}");
        assert!(err.contains("VMEXIT_VMMCALL"), "{err}");
        assert!(
            err.contains("references per walk") || err.contains("per walk"),
            "{err}"
        );
    }
    let text = std::fs::read_to_string(&t1).unwrap();
    assert_eq!(text, std::fs::read_to_string(&t2).unwrap(), "deterministic");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["level"] == "L2"), "only L2 events");
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"vmentry"));
    assert_eq!(kinds.last(), Some(&"vmexit"));
    let exit = lines.last().unwrap();
    assert_eq!(exit["reason"], "VMEXIT_VMMCALL");
    assert!(exit["info1"].is_string() && exit["info2"].is_string());
    let walk = lines.iter().find(|l| l["kind"] == "walk").expect("a walk");
    let refs = walk["refs"].as_array().unwrap();
    let reads = refs.iter().filter(|r| r.get("n").is_some()).count();
    assert_eq!(reads as u64, u(&walk["refs_count"]));
    assert!(refs.iter().any(|r| r["dim"] == "nested") && refs.iter().any(|r| r["dim"] == "guest"));
    // A bound: two events, then the line that says so.
    let t3 = path("t3.jsonl");
    let o = nestemu(&[
        "run",
        "--kernel",
        &kernel,
        "--cpu",
        "amd",
        "--trace",
        &t3,
        "--trace-limit",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = std::fs::read_to_string(&t3).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    let last: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(last["kind"], "truncated");
    assert_eq!(last["written"], 2);
    assert!(u(&last["dropped"]) > 0);
}

#[test]
fn explain_walk_in_the_guest_of_a_real_run() {
    let kernel = write("explain.bin", &image());
    let svg = path("walk.svg");
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain-walk",
            "--kernel",
            &kernel,
            "--cpu",
            "amd",
            "--address",
            "0x40000000",
        ];
        args.extend(extra);
        let o = nestemu(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // A machine without caches: every reference of the textbook walk.
    let out = explain(&["--level", "L2", "--caches", "none", "--svg", &svg]);
    assert!(
        out.contains("4-level guest paging over 4-level NPT"),
        "{out}"
    );
    assert!(out.contains("in L2 (VMCB 0x401000)"), "{out}");
    assert!(out.contains("24 references: 4 guest, 20 nested"), "{out}");
    assert!(out.contains(&format!("result {:#x}", DATA_FRAME)), "{out}");
    assert!(!out.contains("cached"), "{out}");
    let pic = std::fs::read_to_string(&svg).unwrap();
    assert!(pic.starts_with("<svg") && pic.contains(">24</text>"));
    // Empty caches fill during the walk: later nested walks hit what the
    // first one cached.
    let cold = explain(&["--level", "L2", "--cold"]);
    assert!(
        cold.contains("cold caches") && cold.contains("cached"),
        "{cold}"
    );
    assert!(!cold.contains("24 references"), "{cold}");
    // The run's own caches spare more.
    let warm = explain(&["--level", "L2"]);
    assert!(warm.contains("the run's caches"), "{warm}");
    let refs = |s: &str| -> usize {
        let total = s.lines().find(|l| l.contains(" references: ")).unwrap();
        total.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(refs(&warm) <= refs(&cold), "{warm}\n{cold}");
    // In L1 after the run: the hypervisor's own, one-dimensional tables.
    let l1 = explain(&[]);
    assert!(l1.contains("in L1"), "{l1}");
    assert!(!l1.contains("NPT"), "{l1}");
}

#[test]
fn the_demo_is_deterministic_and_reports_every_run() {
    let (a, b) = (path("demo-a.json"), path("demo-b.json"));
    // `nestemu demo` is what `nestemu` alone runs: VT-x with EPT.
    let first = nestemu(&["demo", "--stats", &a]);
    let second = nestemu(&["demo", "--stats", &b]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    assert_eq!(first.stdout, second.stdout, "identical output twice");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "identical JSON twice"
    );
    let r = json(&a);
    let runs = r["nested"].as_object().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs.values() {
        assert_parts_add_up(run);
    }
    let l2 = &runs["l2_nested_paging"];
    assert!(u(&l2["levels"]["L2"]["walks"]["nested_refs"]) > 0);
    assert_eq!(u(&runs["native"]["vmexits"]["total"]), 0);
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(out.matches("(right)").count(), 3, "{out}");
    assert!(out.contains("references per walk"), "{out}");
    assert!(out.contains("VT-x hypervisor") && out.contains("cost model 'intel'"));
    assert_eq!(u(&l2["vmexits"]["by_reason"]["VMCALL"]), 1);
    // README shows this very table.
    let table = &out[out.find("The work:").unwrap()..out.find("Try:").unwrap()];
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(table.trim_end()),
        "README's demo output is out of date; it is now:\n{table}"
    );
}

#[test]
fn explain_walk_in_the_demo() {
    for cpu in ["intel", "amd"] {
        let svg = path(&format!("demo-walk-{cpu}.svg"));
        let o = nestemu(&[
            "explain-walk",
            "--svg",
            &svg,
            "--demo",
            "nested",
            "--cpu",
            cpu,
            "--address",
            "0x40123000",
            "--at-insn",
            "1000000",
            "--level",
            "L2",
            "--caches",
            "none",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let nested = if cpu == "intel" {
            "4-level EPT"
        } else {
            "4-level NPT"
        };
        assert!(out.contains(nested), "{out}");
        let control = if cpu == "intel" {
            "in L2 (VMCS 0x"
        } else {
            "in L2 (VMCB 0x"
        };
        assert!(out.contains(control), "{out}");
        assert!(out.contains("24 references: 4 guest, 20 nested"), "{out}");
        // The limit counts delivered events too (as --max-insns does).
        assert!(out.contains("after 999,"), "{out}");
        // The picture README shows is this one.
        if cpu == "intel" {
            let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/walk-cold.svg");
            assert!(
                std::fs::read_to_string(docs).unwrap() == std::fs::read_to_string(&svg).unwrap(),
                "docs/walk-cold.svg is out of date: regenerate it with \
                 nestemu explain-walk --demo nested --address 0x40123000 \
                 --at-insn 1000000 --caches none --svg docs/walk-cold.svg"
            );
        }
    }
}

#[test]
fn a_measured_nested_run_resumes_from_a_snapshot_with_the_same_report() {
    use nestemu::cpu::cpuid::Vendor;
    use nestemu::demo::{program, work::Work, Setup};
    // Context switches, so the L2 guest has exits and walks on both sides
    // of the snapshot; a cost file and cache sizes the snapshot must keep.
    let w = Work {
        data_bytes: 4 << 20,
        rounds: 2,
        per_round: 4096,
        switch_every: Some(1024),
    };
    let cost = write("snap-cost.json", br#"{"base": "intel", "nested_ref": 55}"#);
    for (cpu, vendor) in [("intel", Vendor::Intel), ("amd", Vendor::Amd)] {
        let image = program(vendor, Setup::L2Nested, w).build().unwrap().image;
        let kernel = write(&format!("snap-{cpu}.bin"), &image);
        let (whole, part, rest) = (
            path(&format!("snap-{cpu}-whole.json")),
            path(&format!("snap-{cpu}-part.json")),
            path(&format!("snap-{cpu}-rest.json")),
        );
        let snap = path(&format!("snap-{cpu}.snap"));
        let base = [
            "run", "--kernel", &kernel, "--cpu", cpu, "--mem", "192", "--cost", &cost, "--caches",
            "amd",
        ];
        let o = nestemu(&[&base[..], &["--stats", &whole]].concat());
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let full = json(&whole);
        // The guest runs last: stop in the middle of its work.
        let half =
            (u(&full["instructions"]) - u(&full["levels"]["L2"]["instructions"]) / 2).to_string();
        let serial = path(&format!("snap-{cpu}.serial"));
        let o = nestemu(
            &[
                &base[..],
                &[
                    "--snapshot",
                    &snap,
                    "--snapshot-at",
                    &half,
                    "--stats",
                    &part,
                ],
            ]
            .concat(),
        );
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            json(&part),
            full,
            "{cpu}: a snapshot does not disturb the run"
        );
        let o = nestemu(&[
            "run", "--resume", &snap, "--stats", &rest, "--serial", &serial, "--report",
        ]);
        // It resumed in the middle of the guest's work.
        let tail = std::fs::read_to_string(&serial).unwrap();
        assert!(tail.contains("the guest is done"), "{tail}");
        assert!(!tail.contains("starting the work"), "{tail}");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut resumed = json(&rest);
        let mut full = full;
        for r in [&mut resumed, &mut full] {
            r.as_object_mut().unwrap().remove("code_cache");
        }
        assert_eq!(resumed, full, "{cpu}: the resumed run's report");
        assert_parts_add_up(&resumed);
        assert!(String::from_utf8_lossy(&o.stderr).contains("nested"));
        // The snapshot holds the cost model and the caches.
        let o = nestemu(&["run", "--resume", &snap, "--cost", &cost]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--cost cannot be given with --resume"));
    }
}
