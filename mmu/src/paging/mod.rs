//! Linear-address translation: the paging modes of SDM Vol. 3A chapter 4, EPT
//! (SDM Vol. 3C 29.3) and AMD nested paging (APM Vol. 2 15.25), and the
//! two-dimensional walk that composes them.
//!
//! The walkers here are pure functions over a [`PhysMemory`]: they read
//! paging-structure entries, set accessed and dirty flags, report every memory
//! reference to a [`WalkRecorder`], and return a [`Translation`] or a
//! [`TranslateFault`]. Caching (TLBs, paging-structure caches) lives in
//! [`crate::tlb`] and the [`crate::Mmu`] facade.
//!
//! One generic walk loop ([`walk`]) serves every format; each format
//! ([`mod@format`]) says how its entries are laid out, and each dimension's policy
//! (guest #PF rules in [`perm`], EPT in [`ept`], NPT in [`npt`]) decides what
//! the accumulated rights allow.

pub mod cache;
pub mod ept;
mod fast;
pub mod format;
pub mod guest;
pub mod mem;
pub mod nested;
pub mod npt;
pub mod pdpte;
pub mod perm;
pub mod record;
pub mod walk;

pub use cache::{NoCaches, PscEntry, WalkCaches};
pub use ept::{EptCaps, EptContext, EptViolation, EptViolationQual, Eptp};
pub use guest::walk_guest;
pub use mem::{EntrySize, PhysMemory, SparseMemory};
pub use nested::{translate_nested, NestedPaging, NestedTranslation};
pub use npt::{NestedPageFault, NpfExitInfo1, NptContext};
pub use pdpte::{load_pdptes, PdpteError};
pub use perm::PermPolicy;
pub use record::{
    Dimension, NoRecord, RefKind, Trace, TraceItem, WalkEvent, WalkRecorder, WalkRef,
};

use crate::{AddressWidths, Cr0, Cr4, Efer, GuestPhysAddr, PfErrorCode, PhysAddr};
use serde::{Deserialize, Serialize};

/// The paging mode in effect (SDM Vol. 3A 4.1.1, "Four paging modes", table 4-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PagingMode {
    /// CR0.PG = 0: linear addresses are used as physical (or guest-physical)
    /// addresses.
    Disabled,
    /// 32-bit paging: CR0.PG = 1, CR4.PAE = 0.
    Legacy32,
    /// PAE paging: CR0.PG = 1, CR4.PAE = 1, IA32_EFER.LME = 0.
    Pae,
    /// 4-level paging: CR0.PG = 1, CR4.PAE = 1, IA32_EFER.LME = 1, CR4.LA57 = 0.
    Level4,
    /// 5-level paging: as 4-level with CR4.LA57 = 1.
    Level5,
}

impl PagingMode {
    /// The mode table 4-1 selects for these control-register values. Uses
    /// EFER.LMA (the mode actually active), not LME.
    pub fn from_regs(cr0: Cr0, cr4: Cr4, efer: Efer) -> Self {
        if !cr0.contains(Cr0::PG) {
            PagingMode::Disabled
        } else if !cr4.contains(Cr4::PAE) {
            PagingMode::Legacy32
        } else if !efer.contains(Efer::LMA) {
            PagingMode::Pae
        } else if cr4.contains(Cr4::LA57) {
            PagingMode::Level5
        } else {
            PagingMode::Level4
        }
    }

    /// True for 4-level and 5-level paging (IA-32e paging; IA32_EFER.LMA = 1).
    #[inline]
    pub const fn is_ia32e(self) -> bool {
        matches!(self, PagingMode::Level4 | PagingMode::Level5)
    }

    /// Number of paging-structure levels a walk may read (PAE counts its PDPTE
    /// level, whose entries normally come from the PDPTE registers).
    pub const fn levels(self) -> u8 {
        match self {
            PagingMode::Disabled => 0,
            PagingMode::Legacy32 => 2,
            PagingMode::Pae => 3,
            PagingMode::Level4 => 4,
            PagingMode::Level5 => 5,
        }
    }
}

/// The register state paging depends on, built by `emu` from its registers
/// (SDM Vol. 3A 4.1.3, "Paging-mode modifiers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagingRegs {
    /// The paging mode (see [`PagingMode::from_regs`]).
    pub mode: PagingMode,
    /// CR0 (WP is the modifier that matters).
    pub cr0: Cr0,
    /// CR3 as software wrote it (without bit 63 of a MOV to CR3).
    pub cr3: u64,
    /// CR4 (PSE, PGE, PCIDE, SMEP, SMAP, PKE, PKS).
    pub cr4: Cr4,
    /// IA32_EFER (NXE).
    pub efer: Efer,
    /// The four PDPTE registers, used by PAE paging (SDM Vol. 3A 4.4.1).
    pub pdptes: [u64; 4],
    /// PKRU, user-mode protection keys (SDM Vol. 3A 4.6.2).
    pub pkru: u32,
    /// IA32_PKRS, supervisor-mode protection keys (SDM Vol. 3A 4.6.2).
    pub pkrs: u32,
}

impl PagingRegs {
    /// Registers with the mode derived from CR0, CR4 and EFER, no PDPTEs and
    /// protection keys cleared.
    pub fn new(cr0: Cr0, cr3: u64, cr4: Cr4, efer: Efer) -> Self {
        Self {
            mode: PagingMode::from_regs(cr0, cr4, efer),
            cr0,
            cr3,
            cr4,
            efer,
            pdptes: [0; 4],
            pkru: 0,
            pkrs: 0,
        }
    }

    /// The current PCID: CR3 bits 11:0 when CR4.PCIDE = 1, else 000H
    /// (SDM Vol. 3A 4.10.1, "Process-context identifiers").
    #[inline]
    pub fn pcid(&self) -> u16 {
        if self.cr4.contains(Cr4::PCIDE) && self.mode.is_ia32e() {
            (self.cr3 & 0xfff) as u16
        } else {
            0
        }
    }
}

/// CPU-model paging features that are not visible in the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagingFeatures {
    /// 1-GByte pages (CPUID.80000001H:EDX.Page1GB[bit 26]). Without it, PS = 1
    /// in a PDPTE is a reserved bit (SDM Vol. 3A 4.5.4, table 4-16).
    pub page_1g: bool,
}

impl Default for PagingFeatures {
    fn default() -> Self {
        Self { page_1g: true }
    }
}

/// The kind of a memory access (SDM Vol. 3A 4.6, "Access rights").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessKind {
    /// Data read.
    Read,
    /// Data write (including the write of a read-modify-write).
    Write,
    /// Instruction fetch.
    Execute,
}

/// One access to translate: its kind and who makes it (SDM Vol. 3A 4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    /// Read, write or fetch.
    pub kind: AccessKind,
    /// A user-mode access: CPL = 3 and not an implicit supervisor-mode access.
    /// Becomes the U/S bit of a page-fault error code.
    pub user: bool,
    /// An implicit supervisor-mode access: one made to a system structure
    /// (GDT, LDT, IDT, TSS, ...) or as part of event delivery, at any CPL. SMAP
    /// blocks such accesses to user-mode pages regardless of RFLAGS.AC
    /// (SDM Vol. 3A 4.6.1). Never set together with `user`.
    pub implicit_supervisor: bool,
    /// RFLAGS.AC, which lifts SMAP for explicit supervisor-mode data accesses.
    pub ac: bool,
}

impl Access {
    /// An explicit access of `kind`, from user mode if `user`.
    #[inline]
    pub const fn new(kind: AccessKind, user: bool) -> Self {
        Self {
            kind,
            user,
            implicit_supervisor: false,
            ac: false,
        }
    }
    /// An explicit data read.
    pub const fn read(user: bool) -> Self {
        Self::new(AccessKind::Read, user)
    }
    /// An explicit data write.
    pub const fn write(user: bool) -> Self {
        Self::new(AccessKind::Write, user)
    }
    /// An instruction fetch.
    pub const fn execute(user: bool) -> Self {
        Self::new(AccessKind::Execute, user)
    }
    /// An implicit supervisor-mode access of `kind`.
    pub const fn implicit(kind: AccessKind) -> Self {
        Self {
            kind,
            user: false,
            implicit_supervisor: true,
            ac: false,
        }
    }
    /// The same access with RFLAGS.AC set to `ac`.
    pub const fn with_ac(mut self, ac: bool) -> Self {
        self.ac = ac;
        self
    }
    /// True for writes.
    #[inline]
    pub const fn is_write(self) -> bool {
        matches!(self.kind, AccessKind::Write)
    }
    /// True for instruction fetches.
    #[inline]
    pub const fn is_fetch(self) -> bool {
        matches!(self.kind, AccessKind::Execute)
    }
}

/// The size of the page a translation maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PageSize {
    /// 4 KiB (a PTE).
    Size4K,
    /// 2 MiB (a PAE or IA-32e PDE with PS = 1, or an EPT/NPT PDE).
    Size2M,
    /// 4 MiB (a 32-bit-paging PDE with PS = 1).
    Size4M,
    /// 1 GiB (a PDPTE with PS = 1).
    Size1G,
}

impl PageSize {
    /// log2 of the size in bytes.
    #[inline]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size4M => 22,
            PageSize::Size1G => 30,
        }
    }
    /// The size in bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }
    /// Mask of the offset bits within the page.
    #[inline]
    pub const fn offset_mask(self) -> u64 {
        self.bytes() - 1
    }
}

/// A successful translation with the attributes the paging structures give it
/// (SDM Vol. 3A 4.6 for rights, 4.9.2 for the PAT index, 4.10.2.2 for what a TLB
/// entry holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    /// The machine-physical address the linear address maps to.
    pub pa: PhysAddr,
    /// In a two-dimensional walk, the guest-physical address in between.
    pub gpa: Option<GuestPhysAddr>,
    /// The size of the page the guest paging structures map (4K when paging is
    /// disabled).
    pub page_size: PageSize,
    /// User-mode address: U/S = 1 in every paging-structure entry used.
    pub user: bool,
    /// R/W = 1 in every entry used.
    pub writable: bool,
    /// Execute-disable: XD = 1 in some entry used (only when IA32_EFER.NXE = 1
    /// and PAE or IA-32e paging).
    pub nx: bool,
    /// Global page: G = 1 in the leaf entry with CR4.PGE = 1.
    pub global: bool,
    /// The dirty flag of the leaf entry after this access.
    pub dirty: bool,
    /// Protection key (bits 62:59 of the leaf) in IA-32e paging, else 0.
    pub pkey: u8,
    /// PAT index: PAT * 4 + PCD * 2 + PWT of the leaf entry (SDM Vol. 3A 4.9.2).
    pub pat_index: u8,
    /// The nested translation of the final guest-physical address, if any.
    pub nested: Option<NestedTranslation>,
}

/// Why a translation failed. Every variant is an architectural event that the
/// caller delivers: a #PF to the guest, or a VM exit to the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TranslateFault {
    /// Page fault (SDM Vol. 3A 4.7): deliver #PF with `error_code`, CR2 =
    /// `linear`.
    PageFault {
        /// The error code.
        error_code: PfErrorCode,
        /// The faulting linear address (for CR2).
        linear: u64,
    },
    /// EPT violation (SDM Vol. 3C 29.3.3.2): VM exit with this exit
    /// qualification, guest-physical and guest-linear address.
    EptViolation(EptViolation),
    /// EPT misconfiguration (SDM Vol. 3C 29.3.3.1): VM exit with the
    /// guest-physical address.
    EptMisconfig {
        /// The guest-physical address being translated.
        gpa: GuestPhysAddr,
    },
    /// Nested page fault, #VMEXIT(NPF) (APM Vol. 2 15.25.6).
    NestedPageFault(NestedPageFault),
}

// Every translation returns this in a Result: keep it small.
const _: () = assert!(core::mem::size_of::<Result<PhysAddr, TranslateFault>>() <= 40);

impl TranslateFault {
    /// The page-fault error code, if this is a #PF.
    pub fn page_fault_code(&self) -> Option<PfErrorCode> {
        match self {
            TranslateFault::PageFault { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }
    /// True for faults that exit to the hypervisor (EPT violation or
    /// misconfiguration, #NPF).
    pub fn is_nested(&self) -> bool {
        !matches!(self, TranslateFault::PageFault { .. })
    }
}

/// Everything a walk needs to know besides memory: registers, CPU features,
/// address widths. The [`crate::Mmu`] keeps its own copy inside its
/// translation context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// The paging registers.
    pub regs: PagingRegs,
    /// MAXPHYADDR and the linear width.
    pub widths: AddressWidths,
    /// Features not in the registers.
    pub features: PagingFeatures,
}

/// Physical-address bits of an entry below MAXPHYADDR and at or above bit 12
/// (bits M-1:12).
#[inline]
pub(crate) const fn frame_mask(widths: AddressWidths) -> u64 {
    widths.phys_mask() & !0xfff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_table_4_1() {
        let pg = Cr0::PG | Cr0::PE;
        assert_eq!(
            PagingMode::from_regs(Cr0::PE, Cr4::PAE, Efer::LMA),
            PagingMode::Disabled
        );
        assert_eq!(
            PagingMode::from_regs(pg, Cr4::empty(), Efer::empty()),
            PagingMode::Legacy32
        );
        assert_eq!(
            PagingMode::from_regs(pg, Cr4::PAE, Efer::LME),
            PagingMode::Pae
        );
        assert_eq!(
            PagingMode::from_regs(pg, Cr4::PAE, Efer::LME | Efer::LMA),
            PagingMode::Level4
        );
        assert_eq!(
            PagingMode::from_regs(pg, Cr4::PAE | Cr4::LA57, Efer::LME | Efer::LMA),
            PagingMode::Level5
        );
    }

    #[test]
    fn pcid_only_with_pcide_in_ia32e() {
        let mut r = PagingRegs::new(
            Cr0::PG | Cr0::PE,
            0x1234_5abc,
            Cr4::PAE | Cr4::PCIDE,
            Efer::LMA | Efer::LME,
        );
        assert_eq!(r.pcid(), 0xabc);
        r.cr4.remove(Cr4::PCIDE);
        assert_eq!(r.pcid(), 0);
    }
}
