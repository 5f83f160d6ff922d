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
    /// Host seconds (wall).
    pub seconds: f64,
    /// Host CPU seconds of the running thread (see [`thread_cpu_seconds`]).
    pub cpu_seconds: f64,
    /// VM exits (every level).
    pub exits: u64,
    /// How the machine stopped.
    pub stop: Stop,
}

impl Measured {
    /// Millions of guest instructions per second of host CPU time.
    pub fn mips(&self) -> f64 {
        self.instructions as f64 / self.cpu_seconds / 1e6
    }
}

/// Loads a built program and runs it to the end, timing the run only.
pub fn run(p: &Program, cfg: MachineConfig) -> Measured {
    let built = p.build().expect("the workload builds");
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "bench", &[]).expect("the workload loads");
    let start = Instant::now();
    let cpu = thread_cpu_seconds();
    let stop = m.run();
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = thread_cpu_seconds() - cpu;
    Measured {
        instructions: m.stats.instructions,
        cpu_seconds,
        exits: m.stats.vmexits.total,
        seconds,
        stop,
    }
}

/// Host CPU seconds the calling thread has used (POSIX
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`; Linux and macOS).
pub fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `t`.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// A machine configuration for workloads.
pub fn config() -> MachineConfig {
    MachineConfig {
        mem_bytes: 64 << 20,
        max_insns: Some(10_000_000_000),
        ..Default::default()
    }
}
