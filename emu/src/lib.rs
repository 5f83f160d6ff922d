//! nestemu: a deterministic pure-software x86-64 machine whose CPU implements
//! Intel VT-x and AMD-V (DESIGN.md). This crate is the machine: interpreter,
//! memory, devices, loaders, cost model and the `nestemu` command line.
#![deny(unsafe_code)]

pub mod cli;
pub mod cost;
pub mod cpu;
pub mod debug;
pub mod demo;
pub mod devices;
pub mod event;
pub mod explain;
pub mod interp;
pub mod interrupt;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod snapshot;
pub mod stats;
pub mod virt;

pub use event::{Event, Stop};
pub use machine::{Machine, MachineConfig};
