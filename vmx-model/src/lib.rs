//! `vmx-model`: Intel VT-x (SDM Vol. 3C chapters 24-33) as pure semantics over
//! data. Given a VMCS, the capability MSRs and the state handed in, it decides what
//! the hardware does and returns it as a value. `emu` binds it to the interpreter.
//!
//! SDM citations use the section numbering of the 2023 and later editions, with the
//! section title; see [`sdm`] for the table and how older editions differ.
#![forbid(unsafe_code)]

pub mod caps;
pub mod controls;
pub mod decide;
pub mod entry;
pub mod ept;
pub mod error;
pub mod event;
pub mod exit;
pub mod insn;
pub mod mem;
pub mod msr_area;
pub mod report;
pub mod sdm;
pub mod testkit;
pub mod vmcs;

pub use caps::{VmxCaps, VmxFeatures};
pub use error::VmInstructionError;
pub use mem::{Access, MsrOracle, PhysMem};
pub use vmcs::{Field, Vmcs, VmxState};
