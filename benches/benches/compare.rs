//! The side-by-side comparison of issue 7: the workloads of
//! `nestemu_benches::workloads`, built as bootable images, run on nestemu,
//! Bochs and QEMU (TCG) in one run; guest instructions and VM exits per host
//! CPU second, and nestemu's ratio to each.
//!
//! Times are host CPU time (user and system, every thread of the emulator):
//! nestemu's running thread, each other emulator's process. The machines
//! this runs on are shared, and wall time moves by 3x with their load
//! while CPU time stays within a few percent.
//!
//! `cargo bench -p nestemu-benches --bench compare` (`NESTEMU_COMPARE_SCALE`
//! multiplies the workload sizes; `NESTEMU_COMPARE_RUNS`, default 1, runs
//! each workload that many times on each emulator, the emulators in turn,
//! and keeps each one's least CPU time: a machine whose CPU time is not
//! steady slows single runs, never speeds them). An emulator that is not
//! installed is reported as such and nestemu is measured alone.

use nestemu_benches::compare::{bochs, bochs_disk, bochs_ticks, qemu, which, Timed};
use nestemu_benches::workloads as w;
use nestemu_benches::{config, run};

/// One workload: name, program, VT-x or AMD-V (None: neither), on QEMU.
struct Load {
    name: &'static str,
    program: guestkit::Program,
    svm: Option<bool>,
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        println!("compare: skipped in test mode");
        return;
    }
    let scale: u64 = std::env::var("NESTEMU_COMPARE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runs: usize = std::env::var("NESTEMU_COMPARE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let loads = vec![
        Load {
            name: "empty",
            program: w::integer_loop(1),
            svm: None,
        },
        Load {
            name: "(a) integer loop",
            program: w::integer_loop(20_000_000 * scale),
            svm: None,
        },
        Load {
            name: "(b) memory loop, paging",
            program: w::memory(100 * scale),
            svm: None,
        },
        Load {
            name: "(c) memory loop, L2 under EPT",
            program: w::memory_ept(100 * scale),
            svm: Some(false),
        },
        Load {
            name: "(d) memory loop, L2 under NPT",
            program: w::memory_npt(100 * scale),
            svm: Some(true),
        },
        Load {
            name: "(e) VMCALL round trips",
            program: w::vmcall_loop(200_000 * scale),
            svm: Some(false),
        },
        Load {
            name: "(f) VMMCALL round trips",
            program: w::vmmcall_loop(200_000 * scale),
            svm: Some(true),
        },
        Load {
            name: "(g) demo",
            program: w::demo(),
            svm: None,
        },
    ];
    let dir = std::env::temp_dir().join(format!("nestemu-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let qemu_bin = which("qemu-system-x86_64");
    let bochs_bin = which("bochs");
    match &qemu_bin {
        Some(p) => println!("QEMU: {} (TCG)", p.display()),
        None => println!(
            "QEMU: qemu-system-x86_64 not on PATH (Debian: qemu-system-x86); nestemu alone"
        ),
    }
    match &bochs_bin {
        Some(p) => println!("Bochs: {}", p.display()),
        None => {
            println!("Bochs: bochs not on PATH (Debian: bochs bochsbios vgabios); nestemu alone")
        }
    }
    let mut base_q = 0.0;
    let mut base_b = 0.0;
    let (mut base_ticks, mut base_insns) = (0u64, 0u64);
    println!(
        "\n| workload | guest insns | Bochs' count | exits | nestemu MIPS | nestemu exits/s | Bochs MIPS | Bochs exits/s | nestemu/Bochs | QEMU MIPS | QEMU exits/s | nestemu/QEMU |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for l in loads {
        let built = l.program.build().expect("the workload builds");
        let image = dir.join("image.bin");
        std::fs::write(&image, &built.image).expect("the image is written");
        let mut cfg = config();
        cfg.mem_bytes = 256 << 20;
        if l.svm == Some(true) {
            cfg.model = nestemu::cpu::cpuid::CpuModel::preset("amd").expect("the amd preset");
        }
        let svm = l.svm.unwrap_or(false);
        let disk = bochs_disk(&built.image).and_then(|(disk, cyl)| {
            let path = dir.join("disk.img");
            std::fs::write(&path, disk).map_err(|e| e.to_string())?;
            Ok((path, cyl))
        });
        let mut best: Option<(nestemu_benches::Measured, Timed, Timed, Option<u64>)> = None;
        for _ in 0..runs {
            let n = run(&l.program, cfg.clone());
            assert!(nestemu_benches::ended(&n.stop), "{}: {:?}", l.name, n.stop);
            let b: Timed = match (&bochs_bin, &disk) {
                (None, _) => Err("not installed".into()),
                (Some(_), Err(e)) => Err(e.clone()),
                (Some(bin), Ok((path, cyl))) => bochs(bin, &dir, path, *cyl, svm),
            };
            // Bochs' own instruction count (BIOS and boot sector included),
            // less the empty program's: it should equal nestemu's count less
            // the empty program's, the sign that Bochs ran the same path.
            let ticks = b.as_ref().ok().and_then(|_| bochs_ticks(&dir));
            let q: Timed = match (&qemu_bin, l.svm) {
                (None, _) => Err("not installed".into()),
                (Some(_), Some(false)) => Err("no VT-x in TCG".into()),
                (Some(bin), _) => qemu(bin, &image, svm),
            };
            best = Some(match best {
                None => (n, b, q, ticks),
                Some((bn, bb, bq, bt)) => (
                    if n.cpu_seconds < bn.cpu_seconds {
                        n
                    } else {
                        bn
                    },
                    least(bb, b),
                    least(bq, q),
                    bt.or(ticks),
                ),
            });
        }
        let (n, b, q, ticks) = best.expect("at least one run");
        if l.name == "empty" {
            base_b = *b.as_ref().unwrap_or(&0.0);
            base_q = *q.as_ref().unwrap_or(&0.0);
            base_ticks = ticks.unwrap_or(0);
            base_insns = n.instructions;
            println!(
                "| start-up (subtracted below) | {} | {} | | | | {} | | | {} | | |",
                n.instructions,
                ticks.map_or("-".into(), |t| t.to_string()),
                fmt_secs(&b),
                fmt_secs(&q)
            );
            continue;
        }
        let bochs_count = ticks.map_or("-".into(), |t| {
            format!("{}", (t - base_ticks.min(t)) + base_insns)
        });
        let rate = |secs: f64| (n.instructions as f64 / secs / 1e6, n.exits as f64 / secs);
        let (nm, ne) = rate(n.cpu_seconds);
        let other = |t: &Timed, base: f64| -> [String; 3] {
            match t {
                Ok(s) => {
                    let s = (s - base).max(1e-6);
                    let (m, e) = rate(s);
                    let ratio = n.cpu_seconds.recip() * s;
                    [format!("{m:.1}"), exits(e, n.exits), format!("{ratio:.2}x")]
                }
                Err(e) => [format!("- ({e})"), "-".into(), "-".into()],
            }
        };
        let [bm, be, br] = other(&b, base_b);
        let [qm, qe, qr] = other(&q, base_q);
        println!(
            "| {} | {} | {bochs_count} | {} | {nm:.1} | {} | {bm} | {be} | {br} | {qm} | {qe} | {qr} |",
            l.name,
            n.instructions,
            n.exits,
            exits(ne, n.exits)
        );
    }
    if std::env::var_os("NESTEMU_COMPARE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The lesser of two timings (an error only if both are).
fn least(a: Timed, b: Timed) -> Timed {
    match (a, b) {
        (Ok(x), Ok(y)) => Ok(x.min(y)),
        (Ok(x), Err(_)) | (Err(_), Ok(x)) => Ok(x),
        (Err(e), Err(_)) => Err(e),
    }
}

fn exits(per_sec: f64, total: u64) -> String {
    if total < 1000 {
        "-".into()
    } else {
        format!("{per_sec:.0}")
    }
}

fn fmt_secs(t: &Timed) -> String {
    match t {
        Ok(s) => format!("{s:.2} s CPU"),
        Err(e) => format!("- ({e})"),
    }
}
