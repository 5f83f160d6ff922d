//! `vmx-model`: Intel VT-x (SDM Vol. 3C chapters 24-33) as pure semantics over
//! data. Given a VMCS, the capability MSRs and the state handed in, it decides what
//! the hardware does and returns it as a value. `emu` binds it to the interpreter.
//!
//! SDM citations use the section numbering of the 2023 and later editions, with
//! the section title; see [`sdm`] for the table and how older editions differ.
//!
//! # How the machine binds it
//!
//! In the order the interpreter meets them:
//!
//! 1. **Capabilities.** Build [`VmxCaps`] once from the CPU preset's
//!    [`VmxFeatures`]; RDMSR of an IA32_VMX_* MSR is [`VmxCaps::read_msr`] (`None`
//!    raises #GP). IA32_FEATURE_CONTROL is a [`caps::FeatureControl`].
//! 2. **VMX instructions.** Keep one [`VmxState`] per logical processor (serde: it
//!    is part of snapshots). Call [`insn::vmxon`], [`insn::vmxoff`],
//!    [`insn::vmclear`], [`insn::vmptrld`], [`insn::vmptrst`], [`insn::vmread`],
//!    [`insn::vmwrite`], [`insn::invept`], [`insn::invvpid`], [`insn::vmcall`]
//!    with an [`insn::InsnCtx`] and closures that read memory operands; apply
//!    [`insn::Outcome::rflags`], deliver faults, or take the VM exit an
//!    [`insn::Outcome::Exit`] names.
//! 3. **VM entry.** [`insn::vmlaunch`] / [`insn::vmresume`] run the basic checks,
//!    every check of SDM 27.2-27.3 (each failure a typed [`entry::CheckId`] naming
//!    the field and the section), load the guest state and the MSR-load area, and
//!    return [`insn::LaunchOutcome::Entered`] with an [`entry::GuestEntry`]: the
//!    register file, RIP/RSP/RFLAGS, blocking, PDPTEs, the event to inject, a
//!    pending MTF exit, the timer value. [`entry::check`] runs the checks alone.
//! 4. **Non-root operation.** Read [`decide::Controls`] from the current VMCS once
//!    per entry and ask [`decide`] at each event or instruction whether it exits.
//! 5. **VM exit.** Build an [`exit::ExitInfo`] (qualifications from [`exit::qual`],
//!    instruction information from [`exit::insn_info`]) and a
//!    [`exit::GuestSnapshot`], call [`exit::vm_exit`], load the returned
//!    [`exit::HostLoad`]; on [`exit::VmxAbort`] the processor shuts down.
//!
//! Physical memory is reached through [`PhysMem`] with an [`Access`] reason on
//! every access; MSR-area processing asks an [`MsrOracle`] whether RDMSR/WRMSR
//! would fault. [`testkit`] has a known-good VMCS and a machine to break it.
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
