//! The fuzz targets, one per input boundary (issue 8 part 2). Each decodes
//! its input with a [`crate::source::Source`]; the decoder is the
//! structure-aware generator.
//!
//! | target | boundary | defined outcomes |
//! | --- | --- | --- |
//! | `loader` | Multiboot images (a.out kludge, ELF32, ELF64, random) through `multiboot::boot` on random RAM sizes, then a bounded run | a `LoadError`, or any `Stop` |
//! | `cli` | argv of nestemu's and QEMU's command lines with hostile values and files | `Ok` or a `UsageError`; a prepared run `Ok` or a `LoadError` |
//! | `paging` | random page tables in every paging mode, with EPT or NPT, through the `mmu` walkers and TLBs | a translation or a fault, the same on re-walk and from the TLB |
//! | `insn` | random instruction bytes in real mode, 32-bit protected mode, 64-bit mode at CPL 0 and CPL 3 | any `Stop` (`Unimplemented` names reported) |
//! | `vmcs` | random VMCS contents before VMLAUNCH/VMRESUME, in the model and through an L1 guest | VMfail with a defined error, entry failure 33/34, defined exit reasons |
//! | `vmcb` | random VMCB contents before VMRUN, in the model and through an L1 guest | a run or a defined exit code |
//! | `snapshot` | damaged snapshots (state JSON, page records, bytes, header) through `Machine::from_snapshot` | a `SnapshotError`, or a machine that runs to any `Stop` and saves a snapshot that loads again |

pub mod cli;
pub mod code;
pub mod image;
pub mod insn;
pub mod loader;
pub mod paging;
pub mod snapshot;
pub mod vmcb;
pub mod vmcs;

use crate::{Outcome, Target};
use nestemu::{Machine, Stop};

/// Every target name, in the order `all` runs them.
pub const NAMES: &[&str] = &[
    "loader", "cli", "paging", "insn", "vmcs", "vmcb", "snapshot",
];

/// Builds the target called `name` (building guest programs it needs).
pub fn make(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "loader" => Box::new(loader::Loader),
        "cli" => Box::new(cli::Cli::new()),
        "paging" => Box::new(paging::Paging),
        "insn" => Box::new(insn::Insn::new()),
        "vmcs" => Box::new(vmcs::Vmcs::new()),
        "vmcb" => Box::new(vmcb::Vmcb::new()),
        "snapshot" => Box::new(snapshot::Snapshot::new()),
        _ => return None,
    })
}

/// Modelled cycles an input may use per instruction of its limit.
pub const CYCLES_PER_INSN: u64 = 16;

/// Runs `m` until it stops, or until its modelled cycles pass
/// [`CYCLES_PER_INSN`] times its instruction limit (`None`). The
/// instruction limit counts a REP string instruction once per chunk of
/// `nestemu::interp::string::CHUNK` iterations, so on its own it lets one
/// input do thousands of times its nominal work; the cycle count charges
/// every iteration. Both bounds are deterministic.
pub fn run_bounded(m: &mut Machine) -> Option<Stop> {
    let left = m.config.max_insns.map(|n| n.saturating_sub(m.steps()));
    let cycles = left.map_or(u64::MAX, |n| {
        m.stats
            .cycles
            .saturating_add(n.saturating_mul(CYCLES_PER_INSN))
    });
    loop {
        if let Some(stop) = m.run_slice() {
            return Some(stop);
        }
        if m.stats.cycles >= cycles {
            return None;
        }
    }
}

/// The outcome of a machine that stopped (`None`: ran out of cycles): the
/// stop kind (exit values of isa-debug-exit kept, reasons normalized),
/// `Unimplemented` as a finding, and log2 of the steps run as novelty
/// signal.
pub fn stop_outcome(m: &Machine, stop: Option<&Stop>) -> Outcome {
    let mut unimplemented = None;
    let Some(stop) = stop else {
        return Outcome::new("stop: cycle budget")
            .with_signal(64 - m.steps().leading_zeros() as u64);
    };
    let label = match stop {
        Stop::DebugExit(v) if *v < 16 => format!("stop: debug-exit {v}"),
        Stop::DebugExit(_) => "stop: debug-exit (large)".into(),
        Stop::PowerOff => "stop: power off".into(),
        Stop::Reset(why) => format!("stop: reset ({})", crate::normalize(why)),
        Stop::Shutdown(why) => format!("stop: shutdown ({})", crate::normalize(why)),
        Stop::HaltForever => "stop: halt forever".into(),
        Stop::InstructionLimit => "stop: instruction limit".into(),
        Stop::Unimplemented { what, .. } => {
            unimplemented = Some(what.clone());
            "stop: unimplemented".into()
        }
    };
    Outcome {
        label,
        signal: 64 - m.steps().leading_zeros() as u64,
        unimplemented,
        ram: 0,
    }
}
