//! The 4-KByte VMCS region in memory (SDM Vol. 3C 25.2, "Format of the VMCS Region").
//!
//! The architecture fixes only the first 8 bytes: bits 30:0 of the first dword hold
//! the VMCS revision identifier and bit 31 the shadow-VMCS indicator; the second
//! dword is the VMX-abort indicator. The rest is implementation-specific. This
//! model uses, as Bochs does, a layout decoupled from the encodings: a launch-state
//! dword at offset 8, then one qword per table row from offset 16.

use super::{Field, Vmcs, FIELD_COUNT};
use crate::mem::{Access, PhysMem, PhysMemExt};
use serde::{Deserialize, Serialize};

/// Offset of the VMX-abort indicator.
pub const ABORT_OFFSET: u64 = 4;
/// Offset of this model's launch-state dword.
pub const LAUNCH_OFFSET: u64 = 8;
/// Offset of the first field qword.
pub const DATA_OFFSET: u64 = 16;
const REGION_BYTES: usize = DATA_OFFSET as usize + 8 * FIELD_COUNT;
const _: () = assert!(REGION_BYTES <= 4096);

/// The launch state of a VMCS (SDM Vol. 3C 25.11.3, "Initializing a VMCS").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LaunchState {
    /// Set by VMCLEAR; VMLAUNCH requires it.
    Clear,
    /// Set by a successful VMLAUNCH; VMRESUME requires it.
    Launched,
    /// A launched VMCS that was still active at VMXOFF: its memory image is not
    /// a consistent VMCS. VMRESUME of it fails with VM-instruction error 6.
    LaunchedBeforeVmxoff,
}

impl LaunchState {
    const fn code(self) -> u32 {
        match self {
            LaunchState::Clear => 0,
            LaunchState::Launched => 1,
            LaunchState::LaunchedBeforeVmxoff => 2,
        }
    }
    fn from_code(c: u32) -> Self {
        match c {
            1 => LaunchState::Launched,
            2 => LaunchState::LaunchedBeforeVmxoff,
            // A region never initialised by VMCLEAR: treat as clear (the SDM
            // leaves VMPTRLD of such a region undefined).
            _ => LaunchState::Clear,
        }
    }
}

/// A VMCS region as read from or written to memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Bits 30:0 of the first dword.
    pub revision_id: u32,
    /// Bit 31 of the first dword.
    pub shadow: bool,
    /// The launch state.
    pub launch: LaunchState,
    /// The field values.
    pub vmcs: Vmcs,
}

impl Region {
    /// Reads the first dword of the region at `pa`: (revision identifier, shadow bit).
    pub fn read_header(mem: &mut dyn PhysMem, pa: u64, why: Access) -> (u32, bool) {
        let d = mem.read_u32(pa, why);
        (d & 0x7fff_ffff, d & 0x8000_0000 != 0)
    }

    /// Reads a whole region.
    pub fn load(mem: &mut dyn PhysMem, pa: u64, why: Access) -> Self {
        let mut bytes = vec![0u8; REGION_BYTES];
        if !mem.read(pa, &mut bytes, why) {
            bytes.fill(0xff);
        }
        let dword = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
        let header = dword(0);
        let mut vmcs = Vmcs::new();
        for f in Field::ALL {
            let o = DATA_OFFSET as usize + 8 * f.row();
            let q = u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
            vmcs.set(*f, q);
        }
        Region {
            revision_id: header & 0x7fff_ffff,
            shadow: header & 0x8000_0000 != 0,
            launch: LaunchState::from_code(dword(LAUNCH_OFFSET as usize)),
            vmcs,
        }
    }

    /// Writes the region (header, launch state and data; the abort indicator is
    /// left as it is).
    pub fn store(&self, mem: &mut dyn PhysMem, pa: u64, why: Access) {
        let header = self.revision_id & 0x7fff_ffff | (self.shadow as u32) << 31;
        mem.write_u32(pa, header, why);
        let mut bytes = Vec::with_capacity(REGION_BYTES - LAUNCH_OFFSET as usize);
        bytes.extend_from_slice(&self.launch.code().to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        for f in Field::ALL {
            bytes.extend_from_slice(&self.vmcs.get(*f).to_le_bytes());
        }
        mem.write(pa + LAUNCH_OFFSET, &bytes, why);
    }

    /// Writes only the launch-state dword (VMCLEAR of a VMCS that is not cached).
    pub fn store_launch_state(mem: &mut dyn PhysMem, pa: u64, launch: LaunchState) {
        mem.write_u32(pa + LAUNCH_OFFSET, launch.code(), Access::Vmcs);
    }

    /// Offset of field `f` in the region.
    pub const fn field_offset(f: Field) -> u64 {
        DATA_OFFSET + 8 * f as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FlatMem;

    #[test]
    fn region_round_trip_keeps_abort_indicator() {
        let mut m = FlatMem::new(0x3000);
        m.write_u32(0x1004, 0xdead, Access::Vmcs);
        let r = Region {
            revision_id: 0x12,
            shadow: true,
            launch: LaunchState::Launched,
            vmcs: Vmcs::new().with(Field::GuestRip, 0x1234_5678_9abc),
        };
        r.store(&mut m, 0x1000, Access::Vmcs);
        assert_eq!(m.read_u32(0x1000, Access::Vmcs), 0x8000_0012);
        assert_eq!(m.read_u32(0x1004, Access::Vmcs), 0xdead);
        assert_eq!(Region::load(&mut m, 0x1000, Access::Vmcs), r);
        assert_eq!(
            m.read_u64(0x1000 + Region::field_offset(Field::GuestRip), Access::Vmcs),
            0x1234_5678_9abc
        );
        assert_eq!(
            Region::read_header(&mut m, 0x1000, Access::Vmcs),
            (0x12, true)
        );
    }
}
