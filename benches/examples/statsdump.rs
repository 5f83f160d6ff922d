//! Prints the `--stats` report of each workload (a)-(g), at small sizes,
//! plus runs cut by an instruction limit: compare the output of two builds
//! to check that a host-side change left every modelled count unchanged.

use nestemu::cpu::cpuid::CpuModel;
use nestemu::loader::multiboot;
use nestemu::stats::Report;
use nestemu::Machine;
use nestemu_benches::config;
use nestemu_benches::workloads as w;

fn main() {
    let loads = [
        ("a", w::integer_loop(200_000), false),
        ("b", w::memory(3), false),
        ("c", w::memory_ept(3), false),
        ("d", w::memory_npt(3), true),
        ("e", w::vmcall_loop(2_000), false),
        ("f", w::vmmcall_loop(2_000), true),
        ("g", w::demo(), false),
    ];
    for (key, program, amd) in &loads {
        let built = program.build().expect("the workload builds");
        for limit in [None, Some(77_777), Some(1_234_567)] {
            let mut cfg = config();
            cfg.mem_bytes = 256 << 20;
            if let Some(l) = limit {
                cfg.max_insns = Some(l);
            }
            if *amd {
                cfg.model = CpuModel::preset("amd").expect("the amd preset");
            }
            let mut m = Machine::new(cfg);
            multiboot::boot(&mut m, &built.image, "bench", &[]).expect("loads");
            let stop = m.run();
            let json = serde_json::to_string(&Report::of(&m, stop.exit_status(), stop.describe()))
                .expect("json");
            let serial = m.take_serial();
            println!("== ({key}) limit {limit:?}");
            println!("{json}");
            println!(
                "rip {:#x} rax {:#x} serial {:?}",
                m.cpu.rip,
                m.cpu.gpr[0],
                String::from_utf8_lossy(&serial)
            );
        }
    }
}
