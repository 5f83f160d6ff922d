//! `mmu`: the leaf crate of nestemu.
//!
//! It holds the architectural definitions every crate of the workspace shares
//! ([`arch`]: address types, control-register, EFER and RFLAGS bits, segment
//! descriptors, exception vectors, MSR indices) and the pure model of address
//! translation of SDM Vol. 3A chapter 4 (paging), SDM Vol. 3C chapter 29 (EPT) and
//! AMD APM Vol. 2 chapter 15.25 (nested paging).
//!
//! Nothing here depends on the interpreter: memory is reached through small
//! traits that `emu` implements, and every outcome (a translation, a page fault,
//! an EPT violation) is returned as a value.
#![forbid(unsafe_code)]

pub mod arch;
pub mod counters;
mod mmu;
pub mod paging;
pub mod tlb;

pub use arch::*;
pub use counters::{MmuCounters, TlbCounters};
pub use mmu::{InveptType, InvpcidType, InvvpidType, Mmu, TlbControl, TranslationContext};
pub use paging::{
    Access, AccessKind, NestedPaging, PageSize, PagingFeatures, PagingMode, PagingRegs, PhysMemory,
    TranslateFault, Translation, WalkRecorder, WalkRef,
};
pub use tlb::TlbConfig;
