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
//!
//! # Address translation
//!
//! - [`paging`]: the walkers. One walk loop ([`paging::walk`]) over entry
//!   formats ([`paging::format`]: 32-bit, PAE, IA-32e 4/5-level, EPT; NPT
//!   uses the IA-32e format), the access-rights rules ([`paging::perm`]),
//!   EPT and NPT policies and exit information ([`paging::ept`],
//!   [`paging::npt`]), the 2-D walk ([`paging::guest`], [`paging::nested`]),
//!   PAE PDPTE loading ([`paging::pdpte`]). [`paging::walk_guest`] is the
//!   uncached reference entry point.
//! - [`tlb`]: modelled TLBs, paging-structure caches and the nested TLB,
//!   sized by a [`TlbConfig`].
//! - [`Mmu`]: what the interpreter calls. [`Mmu::translate`] is a TLB lookup
//!   and, on a miss, a walk that fills the caches; the invalidation
//!   instructions are methods ([`Mmu::invlpg`], [`Mmu::flush_cr3`],
//!   [`Mmu::invpcid`], [`Mmu::invept`], [`Mmu::invvpid`], [`Mmu::invlpga`],
//!   [`Mmu::tlb_control`], ...). [`MmuCounters`] are the cost model's input.
//!
//! ```
//! use mmu::paging::SparseMemory;
//! use mmu::{Access, AddressWidths, Cr0, Cr4, Efer, LinearAddr, Mmu, PagingFeatures,
//!           PagingRegs, PhysAddr, TlbConfig, TranslationContext};
//!
//! // 4-level tables at 0x1000.. mapping linear 0x5000 to physical 0x9000.
//! let mut mem = SparseMemory::new();
//! mem.write_u64(0x1000, 0x2000 | 0x27); // PML4E: P, R/W, U/S, A
//! mem.write_u64(0x2000, 0x3000 | 0x27); // PDPTE
//! mem.write_u64(0x3000, 0x4000 | 0x27); // PDE
//! mem.write_u64(0x4000 + 5 * 8, 0x9000 | 0x07); // PTE: P, R/W, U/S
//!
//! let regs = PagingRegs::new(Cr0::PE | Cr0::PG, 0x1000, Cr4::PAE, Efer::LME | Efer::LMA);
//! let ctx = TranslationContext::new(regs, AddressWidths::default(), PagingFeatures::default());
//! let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
//! let pa = mmu.translate(&ctx, LinearAddr(0x5123), Access::write(true), &mut mem, &mut ());
//! assert_eq!(pa, Ok(PhysAddr(0x9123)));
//! assert_eq!(mem.read_u64(0x4000 + 5 * 8), 0x9000 | 0x67); // accessed and dirty set
//! // The second access is a TLB hit: no walk.
//! mmu.translate(&ctx, LinearAddr(0x5456), Access::read(true), &mut mem, &mut ()).unwrap();
//! assert_eq!((mmu.counters().walks, mmu.counters().dtlb.l1_hits), (1, 1));
//! ```
#![forbid(unsafe_code)]

pub mod arch;
pub mod counters;
mod mmu;
pub mod paging;
pub mod tlb;

pub use arch::*;
pub use counters::{MmuCosts, MmuCounters, RefsPerWalk, TlbCounters, Work};
pub use mmu::{InveptType, InvpcidType, InvvpidType, Mmu, TlbControl, TranslationContext};
pub use paging::{
    Access, AccessKind, NestedPaging, PageSize, PagingFeatures, PagingMode, PagingRegs, PhysMemory,
    TranslateFault, Translation, WalkRecorder, WalkRef,
};
pub use tlb::TlbConfig;
