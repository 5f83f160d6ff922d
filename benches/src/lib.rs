//! Workloads shared by the benchmarks: guest programs built with the kit and a
//! runner that reports guest instructions per host second.

use guestkit::Program;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig, Stop};
use std::time::Instant;

pub mod compare;
pub mod workloads;

pub use workloads::integer_loop;

/// True if a workload ended as it should: through Bochs' shutdown port
/// (which nestemu models as power-off) or isa-debug-exit with 0.
pub fn ended(stop: &Stop) -> bool {
    matches!(stop, Stop::PowerOff | Stop::DebugExit(0))
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Guest instructions retired.
    pub instructions: u64,
    /// Host seconds.
    pub seconds: f64,
    /// VM exits (every level).
    pub exits: u64,
    /// How the machine stopped.
    pub stop: Stop,
}

impl Measured {
    /// Millions of guest instructions per host second.
    pub fn mips(&self) -> f64 {
        self.instructions as f64 / self.seconds / 1e6
    }
}

/// Loads a built program and runs it to the end, timing the run only.
pub fn run(p: &Program, cfg: MachineConfig) -> Measured {
    let built = p.build().expect("the workload builds");
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "bench", &[]).expect("the workload loads");
    let start = Instant::now();
    let stop = m.run();
    let seconds = start.elapsed().as_secs_f64();
    Measured {
        instructions: m.stats.instructions,
        exits: m.stats.vmexits.total,
        seconds,
        stop,
    }
}

/// A machine configuration for workloads.
pub fn config() -> MachineConfig {
    MachineConfig {
        mem_bytes: 64 << 20,
        max_insns: Some(10_000_000_000),
        ..Default::default()
    }
}
