//! Extended page tables (SDM Vol. 3C 29.3, "The extended page table
//! mechanism"): the EPT pointer, the EPT capabilities the walk depends on, the
//! access-rights rule, and the EPT-violation exit qualification (SDM Vol. 3C
//! 28.2.1, table 28-7, "Exit qualification for EPT violations").

use super::format::{EptFormat, Rights, EPT_R, EPT_UX, EPT_W, EPT_X};
use crate::{AddressWidths, GuestPhysAddr, LinearAddr};
use bitflags::bitflags;
use serde::{Deserialize, Serialize};

/// The extended-page-table pointer, a VM-execution control field (SDM Vol. 3C
/// 25.6.11, table 25-9, "Format of extended-page-table pointer"). Validity
/// checks at VM entry (SDM Vol. 3C 27.2.1.1) belong to `vmx-model`; this type
/// only reads the fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Eptp(pub u64);

impl Eptp {
    /// Builds an EPTP: write-back paging-structure memory type, the page-walk
    /// length for `levels` (4 or 5), A/D flags if `ad`, root at `root`.
    pub const fn new(root: u64, levels: u8, ad: bool) -> Self {
        Self((root & !0xfff) | (((levels as u64) - 1) << 3) | ((ad as u64) << 6) | 6)
    }
    /// Bits 2:0: memory type for accessing the EPT paging structures
    /// (0 = UC, 6 = WB).
    #[inline]
    pub const fn memory_type(self) -> u8 {
        (self.0 & 7) as u8
    }
    /// Bits 5:3 plus one: the EPT page-walk length (4 or 5 levels).
    #[inline]
    pub const fn walk_length(self) -> u8 {
        (((self.0 >> 3) & 7) + 1) as u8
    }
    /// Bit 6: accessed and dirty flags for EPT enabled.
    #[inline]
    pub const fn ad_enabled(self) -> bool {
        self.0 & (1 << 6) != 0
    }
    /// Bit 7: enforcement of access rights for supervisor shadow-stack pages.
    #[inline]
    pub const fn sss_enabled(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    /// Bits 11:8, reserved.
    #[inline]
    pub const fn reserved_low(self) -> u64 {
        self.0 & 0xf00
    }
    /// Bits M-1:12: physical address of the EPT PML4 (or PML5) table.
    #[inline]
    pub const fn root(self, widths: AddressWidths) -> u64 {
        self.0 & widths.phys_mask() & !0xfff
    }
    /// The EP4TA: bits 51:12 of the EPTP, the tag of guest-physical and
    /// combined mappings (SDM Vol. 3C 29.4.1, "Information that may be cached").
    #[inline]
    pub const fn ep4ta(self) -> u64 {
        self.0 & 0x000f_ffff_ffff_f000
    }
}

impl core::fmt::Debug for Eptp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Eptp({:#x}, mt {}, {} levels{})",
            self.0 & !0xfff,
            self.memory_type(),
            self.walk_length(),
            if self.ad_enabled() { ", A/D" } else { "" }
        )
    }
}

/// The EPT capabilities (IA32_VMX_EPT_VPID_CAP, SDM Vol. 3D appendix A.10)
/// that change how translation behaves. `vmx-model` advertises them; the walk
/// obeys them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EptCaps {
    /// Bit 0: execute-only translations. Without it, bits 2:0 = 100b are a
    /// misconfiguration.
    pub exec_only: bool,
    /// Bit 17: 1-GByte pages.
    pub page_1g: bool,
    /// Bit 22: advanced VM-exit information for EPT violations (exit
    /// qualification bits 9-11).
    pub advanced_exit_info: bool,
}

impl Default for EptCaps {
    fn default() -> Self {
        Self {
            exec_only: true,
            page_1g: true,
            advanced_exit_info: true,
        }
    }
}

/// EPT as configured for one guest: the EPTP, the capabilities, and the
/// "mode-based execute control for EPT" VM-execution control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EptContext {
    /// The EPT pointer.
    pub eptp: Eptp,
    /// Capabilities of the CPU model.
    pub caps: EptCaps,
    /// Mode-based execute control (secondary processor-based control bit 22).
    pub mbec: bool,
}

impl EptContext {
    /// The entry format these settings define.
    pub fn format(&self, widths: AddressWidths) -> EptFormat {
        EptFormat {
            widths,
            exec_only: self.caps.exec_only,
            page_1g: self.caps.page_1g,
            mbec: self.mbec,
            ad: self.eptp.ad_enabled(),
        }
    }

    /// The EPT rights an access needs (SDM Vol. 3C 29.3.3.2, "EPT violations"):
    /// reads need bit 0, writes bit 1, fetches bit 2, or with mode-based
    /// execute control bit 2 for supervisor-mode linear addresses and bit 10
    /// for user-mode ones.
    #[inline]
    pub fn needed(&self, read: bool, write: bool, fetch: bool, user_la: bool) -> Rights {
        let mut need = 0;
        if read {
            need |= EPT_R;
        }
        if write {
            need |= EPT_W;
        }
        if fetch {
            need |= if self.mbec && user_la { EPT_UX } else { EPT_X };
        }
        need
    }
}

bitflags! {
    /// Exit qualification for EPT violations (SDM Vol. 3C 28.2.1, table 28-7).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct EptViolationQual: u64 {
        /// The access was a data read.
        const READ = 1 << 0;
        /// The access was a data write.
        const WRITE = 1 << 1;
        /// The access was an instruction fetch.
        const FETCH = 1 << 2;
        /// AND of bit 0 of the EPT entries used: the address was readable.
        const READABLE = 1 << 3;
        /// AND of bit 1: writable.
        const WRITABLE = 1 << 4;
        /// AND of bit 2: executable (for supervisor-mode linear addresses
        /// under mode-based execute control).
        const EXECUTABLE = 1 << 5;
        /// With mode-based execute control, AND of bit 10: executable for
        /// user-mode linear addresses. Clear otherwise.
        const USER_EXECUTABLE = 1 << 6;
        /// The guest linear-address field is valid (clear only for accesses
        /// not made to translate a linear address, such as PDPTE loads by MOV
        /// to CR).
        const GLA_VALID = 1 << 7;
        /// With GLA_VALID: the access was to the translation of the linear
        /// address; clear when it was to a paging-structure entry (a walk read
        /// or an A/D update).
        const GLA_TRANSLATED = 1 << 8;
        /// Advanced information, with GLA_TRANSLATED: the linear address is a
        /// user-mode address.
        const USER_LINEAR = 1 << 9;
        /// Advanced information: the linear address maps a read/write page.
        const WRITABLE_LINEAR = 1 << 10;
        /// Advanced information: the linear address maps an execute-disable
        /// page.
        const NX_LINEAR = 1 << 11;
        /// NMI unblocking due to IRET (set by the caller, which knows).
        const NMI_UNBLOCKING = 1 << 12;
        /// The access was a shadow-stack access.
        const SHADOW_STACK = 1 << 13;
        /// Supervisor shadow-stack page (bit 60 of the EPT leaf).
        const SUPERVISOR_SHADOW_STACK = 1 << 14;
        /// The access was a guest-paging verification.
        const GUEST_PAGING_VERIFY = 1 << 15;
        /// The access was asynchronous to instruction execution.
        const ASYNC = 1 << 16;
    }
}

/// An EPT violation as the VM exit reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EptViolation {
    /// The exit qualification.
    pub qualification: EptViolationQual,
    /// The guest-physical address whose access violated EPT.
    pub gpa: GuestPhysAddr,
    /// The guest-linear address, when GLA_VALID.
    pub gla: Option<LinearAddr>,
}

/// What caused an EPT access, for the exit qualification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptStage {
    /// A guest paging-structure entry read or A/D update for linear address
    /// `gla`.
    GuestTable {
        /// The linear address being translated.
        gla: u64,
    },
    /// The final guest-physical address of linear address `gla`; the guest
    /// translation's attributes feed the advanced exit information.
    Final {
        /// The linear address.
        gla: u64,
        /// Guest U/S (user-mode linear address).
        user: bool,
        /// Guest R/W.
        writable: bool,
        /// Guest execute-disable.
        nx: bool,
    },
    /// A guest-physical access not made to translate a linear address (PDPTE
    /// loads by MOV to CR, emulator accesses by guest-physical address).
    Physical,
}

/// Builds the exit qualification of an EPT violation.
///
/// `read`/`write`/`fetch` describe the access as the qualification reports it
/// (a guest paging-structure access with EPT A/D enabled reports both read and
/// write, SDM Vol. 3C 29.3.3.2), `rights` is the AND of the rights of the EPT
/// entries used (zero through a not-present entry).
pub fn violation(
    ctx: &EptContext,
    gpa: u64,
    read: bool,
    write: bool,
    fetch: bool,
    rights: Rights,
    stage: EptStage,
) -> EptViolation {
    let mut q = EptViolationQual::empty();
    q.set(EptViolationQual::READ, read);
    q.set(EptViolationQual::WRITE, write);
    q.set(EptViolationQual::FETCH, fetch);
    q.set(EptViolationQual::READABLE, rights & EPT_R != 0);
    q.set(EptViolationQual::WRITABLE, rights & EPT_W != 0);
    q.set(EptViolationQual::EXECUTABLE, rights & EPT_X != 0);
    q.set(
        EptViolationQual::USER_EXECUTABLE,
        ctx.mbec && rights & EPT_UX != 0,
    );
    let gla = match stage {
        EptStage::GuestTable { gla } => {
            q |= EptViolationQual::GLA_VALID;
            Some(LinearAddr(gla))
        }
        EptStage::Final {
            gla,
            user,
            writable,
            nx,
        } => {
            q |= EptViolationQual::GLA_VALID | EptViolationQual::GLA_TRANSLATED;
            if ctx.caps.advanced_exit_info {
                q.set(EptViolationQual::USER_LINEAR, user);
                q.set(EptViolationQual::WRITABLE_LINEAR, writable);
                q.set(EptViolationQual::NX_LINEAR, nx);
            }
            Some(LinearAddr(gla))
        }
        EptStage::Physical => None,
    };
    EptViolation {
        qualification: q,
        gpa: GuestPhysAddr(gpa),
        gla,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eptp_fields() {
        let p = Eptp::new(0x12_3456_7000, 4, true);
        assert_eq!(p.memory_type(), 6);
        assert_eq!(p.walk_length(), 4);
        assert!(p.ad_enabled());
        assert_eq!(p.root(AddressWidths::default()), 0x12_3456_7000);
        assert_eq!(p.ep4ta(), 0x12_3456_7000);
        assert_eq!(Eptp::new(0x1000, 5, false).walk_length(), 5);
        assert_eq!(p.0, 0x12_3456_7000 | 0x5e);
    }

    #[test]
    fn qualification_bits() {
        let ctx = EptContext {
            eptp: Eptp::new(0, 4, false),
            caps: EptCaps::default(),
            mbec: false,
        };
        let v = violation(
            &ctx,
            0x1234,
            false,
            true,
            false,
            EPT_R | EPT_X | EPT_UX,
            EptStage::Final {
                gla: 0x7000,
                user: true,
                writable: true,
                nx: false,
            },
        );
        assert_eq!(v.qualification.bits(), 0b0111_1010_1010);
        assert_eq!(v.gla, Some(LinearAddr(0x7000)));
        let t = violation(
            &ctx,
            8,
            true,
            true,
            false,
            0,
            EptStage::GuestTable { gla: 5 },
        );
        assert_eq!(t.qualification.bits(), 0b1000_0011);
        let p = violation(&ctx, 8, true, false, false, EPT_R, EptStage::Physical);
        assert_eq!(p.qualification.bits(), 0b1001);
        assert_eq!(p.gla, None);
    }
}
