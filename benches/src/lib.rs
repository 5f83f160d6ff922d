//! Workloads shared by the benchmarks: guest programs built with the kit and a
//! runner that reports guest instructions per host second.

use guestkit::Program;
use iced_x86::code_asm::*;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig, Stop};
use std::time::Instant;

/// An integer loop: `iterations` rounds of five ALU/branch instructions.
pub fn integer_loop(iterations: u64) -> Program {
    let mut p = Program::new();
    p.body64(move |a, _rt| {
        let mut top = a.label();
        a.mov(rcx, iterations)?;
        a.xor(eax, eax)?;
        a.mov(rbx, 0x1234_5678u64)?;
        a.set(&mut top)?;
        a.add(rax, rcx)?;
        a.xor(rdx, rax)?;
        a.sub(rbx, 1i32)?;
        a.dec(rcx)?;
        a.jnz(top.l)
    });
    p
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Guest instructions retired.
    pub instructions: u64,
    /// Host seconds.
    pub seconds: f64,
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
