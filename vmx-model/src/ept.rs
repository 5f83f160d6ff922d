//! The extended-page-table pointer (SDM Vol. 3C 25.6.11, "Extended-Page-Table
//! Pointer (EPTP)", table 25-9) and its validity, shared by the VM-entry checks
//! (27.2.1.1) and single-context INVEPT (31.3, "INVEPT").
//!
//! The EPT walk itself lives in `mmu`; this is the VMX side of the pointer.

use crate::caps::VmxCaps;
use crate::controls::EptVpidCap;
use serde::{Deserialize, Serialize};

/// An EPTP value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Eptp(pub u64);

/// Why an EPTP is invalid, in the order the SDM lists the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EptpError {
    /// Bits 2:0: a memory type not reported in IA32_VMX_EPT_VPID_CAP.
    MemoryType,
    /// Bits 5:3: a page-walk length not supported.
    WalkLength,
    /// Bit 6: accessed/dirty flags enabled but not supported.
    AccessedDirty,
    /// Bits 11:7 or bits 63:MAXPHYADDR set.
    Reserved,
}

impl Eptp {
    /// EPT paging-structure memory type, bits 2:0 (0 UC, 6 WB).
    pub const fn memory_type(self) -> u8 {
        (self.0 & 7) as u8
    }
    /// The EPT page-walk length (bits 5:3 plus one).
    pub const fn walk_length(self) -> u8 {
        ((self.0 >> 3) & 7) as u8 + 1
    }
    /// Bit 6: accessed and dirty flags enabled.
    pub const fn accessed_dirty(self) -> bool {
        self.0 & (1 << 6) != 0
    }
    /// Physical address of the EPT PML4 (or PML5) table.
    pub const fn root(self) -> u64 {
        self.0 & !0xfff
    }

    /// The VM-entry checks on the EPTP (SDM Vol. 3C 27.2.1.1).
    pub fn validate(self, caps: &VmxCaps) -> Result<(), EptpError> {
        let cap = caps.features.ept_vpid;
        let mt_ok = match self.memory_type() {
            0 => cap.contains(EptVpidCap::MEMORY_TYPE_UC),
            6 => cap.contains(EptVpidCap::MEMORY_TYPE_WB),
            _ => false,
        };
        if !mt_ok {
            return Err(EptpError::MemoryType);
        }
        let wl_ok = match self.walk_length() {
            4 => cap.contains(EptVpidCap::PAGE_WALK_4),
            5 => cap.contains(EptVpidCap::PAGE_WALK_5),
            _ => false,
        };
        if !wl_ok {
            return Err(EptpError::WalkLength);
        }
        if self.accessed_dirty() && !cap.contains(EptVpidCap::ACCESSED_DIRTY) {
            return Err(EptpError::AccessedDirty);
        }
        if self.0 & 0xf80 != 0 || caps.features.widths.exceeds_phys(self.0) {
            return Err(EptpError::Reserved);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VmxFeatures;

    #[test]
    fn eptp_rules_in_order() {
        let caps = VmxCaps::default();
        assert_eq!(Eptp(0x5000 | 0x1e).validate(&caps), Ok(()));
        assert_eq!(Eptp(0x5000 | 0x18).validate(&caps), Ok(()));
        assert_eq!(
            Eptp(0x5000 | 0x1c).validate(&caps),
            Err(EptpError::MemoryType)
        );
        assert_eq!(
            Eptp(0x5000 | 0x26).validate(&caps),
            Err(EptpError::WalkLength)
        );
        assert_eq!(
            Eptp(0x5000 | 0x5e).validate(&caps),
            Err(EptpError::AccessedDirty)
        );
        assert_eq!(
            Eptp(0x5000 | 0x9e).validate(&caps),
            Err(EptpError::Reserved)
        );
        assert_eq!(
            Eptp(1 << 50 | 0x1e).validate(&caps),
            Err(EptpError::Reserved)
        );
        let all = VmxCaps::new(VmxFeatures::everything());
        assert_eq!(Eptp(0x5000 | 0x66).validate(&all), Ok(()));
    }
}
