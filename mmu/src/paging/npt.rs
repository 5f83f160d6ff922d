//! AMD nested paging (APM Vol. 2 15.25, "Nested paging"): the nested page
//! tables under nCR3 in the host's long-mode format, the rule that every
//! nested access is a user access, and the #VMEXIT(NPF) information.

use super::format::{Ia32e, Rights, RIGHT_U, RIGHT_W, RIGHT_X};
use crate::AddressWidths;
use bitflags::bitflags;
use serde::{Deserialize, Serialize};

/// Nested paging as configured by VMRUN for one guest.
///
/// The nested tables use the host's paging mode at VMRUN (APM Vol. 2
/// 15.25.5, "Nested table walk"); this model supports long-mode hosts, with
/// four or five levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NptContext {
    /// N_CR3 from the VMCB: the nested PML4 (or PML5) table.
    pub ncr3: u64,
    /// 4, or 5 when the host runs with CR4.LA57 = 1.
    pub levels: u8,
    /// The host's EFER.NXE: bit 63 of nested entries is NX, else reserved.
    pub nxe: bool,
    /// 1-GByte pages supported in the nested tables.
    pub page_1g: bool,
}

impl NptContext {
    /// The entry format: the host's long-mode format.
    pub fn format(&self, widths: AddressWidths) -> Ia32e {
        Ia32e {
            nxe: self.nxe,
            page_1g: self.page_1g,
            widths,
        }
    }

    /// The root table's physical address.
    #[inline]
    pub fn root(&self, widths: AddressWidths) -> u64 {
        self.ncr3 & widths.phys_mask() & !0xfff
    }

    /// True if the nested rights allow the access. Every nested access is a
    /// user access (U/S = 1 needed at every level) and host CR0.WP is ignored
    /// (APM Vol. 2 15.25.5); guest page-table accesses are writes; fetches
    /// need NX = 0 everywhere.
    #[inline]
    pub fn allows(&self, rights: Rights, write: bool, fetch: bool) -> bool {
        rights & RIGHT_U != 0
            && (!write || rights & RIGHT_W != 0)
            && (!fetch || rights & RIGHT_X != 0)
    }
}

bitflags! {
    /// EXITINFO1 of #VMEXIT(NPF) (APM Vol. 2 15.25.6, "Nested versus guest
    /// page faults, fault ordering"): a page-fault error code in the low bits
    /// plus the stage of the walk.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct NpfExitInfo1: u64 {
        /// The nested entry was present (protection or reserved-bit fault).
        const P = 1 << 0;
        /// The access was a write (guest page-table accesses always are).
        const RW = 1 << 1;
        /// User access: always set, the nested walk is a user access.
        const US = 1 << 2;
        /// A reserved bit was set in a nested entry.
        const RSV = 1 << 3;
        /// The access was an instruction fetch (with host EFER.NXE = 1).
        const ID = 1 << 4;
        /// The fault occurred translating the guest's final physical address.
        const FINAL = 1 << 32;
        /// The fault occurred translating a guest page-table address.
        const TABLE = 1 << 33;
    }
}

/// A nested page fault as #VMEXIT(NPF) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedPageFault {
    /// EXITINFO1.
    pub exit_info1: NpfExitInfo1,
    /// EXITINFO2: the guest-physical address that faulted.
    pub exit_info2: u64,
}

/// Builds the #NPF information. `present` is false for a not-present nested
/// entry; `table` tells a guest page-table access from the final one; `None`
/// for a guest-physical access outside a linear translation, reported as a
/// final access.
pub fn fault(
    ctx: &NptContext,
    gpa: u64,
    present: bool,
    reserved: bool,
    write: bool,
    fetch: bool,
    table: bool,
) -> NestedPageFault {
    let mut i = NpfExitInfo1::US;
    i.set(NpfExitInfo1::P, present || reserved);
    i.set(NpfExitInfo1::RSV, reserved);
    i.set(NpfExitInfo1::RW, write);
    i.set(NpfExitInfo1::ID, fetch && ctx.nxe);
    i |= if table {
        NpfExitInfo1::TABLE
    } else {
        NpfExitInfo1::FINAL
    };
    NestedPageFault {
        exit_info1: i,
        exit_info2: gpa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_info_bits() {
        let ctx = NptContext {
            ncr3: 0x1000,
            levels: 4,
            nxe: true,
            page_1g: true,
        };
        let f = fault(&ctx, 0x5008, false, false, true, false, true);
        assert_eq!(f.exit_info1.bits(), (1 << 33) | 0b110);
        assert_eq!(f.exit_info2, 0x5008);
        let g = fault(&ctx, 0x7000, true, true, false, true, false);
        assert_eq!(g.exit_info1.bits(), (1 << 32) | 0b11101);
        assert!(ctx.allows(RIGHT_U | RIGHT_X, false, true));
        assert!(!ctx.allows(RIGHT_W | RIGHT_X, false, false));
        assert!(!ctx.allows(RIGHT_U | RIGHT_X, true, false));
    }
}
