//! What the model needs from the machine: physical memory and the MSR file.
//!
//! VMX structures are reached by physical address (SDM Vol. 3C 25.11.1, "Software
//! Use of Virtual-Machine Control Structures"): the VMCS and VMXON regions, bitmaps,
//! MSR areas, the virtual-APIC page, PDPTEs when EPT is off. Every access carries an
//! [`Access`] tag so the machine's cost model can charge it without looking inside
//! the semantics.

use serde::{Deserialize, Serialize};

/// Why the model touches physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Access {
    /// The VMXON region (revision identifier).
    VmxonRegion,
    /// The VMCS region: VMPTRLD load, VMCLEAR/flush store, abort indicator.
    Vmcs,
    /// A shadow VMCS reached through the VMCS link pointer.
    ShadowVmcs,
    /// The VMREAD or VMWRITE bitmap.
    VmcsShadowingBitmap,
    /// I/O bitmap A or B.
    IoBitmap,
    /// The MSR bitmaps.
    MsrBitmap,
    /// The VM-entry MSR-load, VM-exit MSR-store or VM-exit MSR-load area.
    MsrArea,
    /// The virtual-APIC page (VTPR).
    VirtualApic,
    /// Guest PDPTEs read through CR3 when EPT is off, or host PDPTEs on VM exit.
    Pdpte,
}

/// Physical memory of the emulated machine as VMX sees it.
///
/// `read` and `write` return `false` when the range is not backed by anything
/// (outside RAM and devices); the model then treats read data as all ones, as an
/// unclaimed bus read does, and ignores the write.
pub trait PhysMem {
    /// Reads `buf.len()` bytes at physical address `pa`.
    fn read(&mut self, pa: u64, buf: &mut [u8], why: Access) -> bool;
    /// Writes `data` at physical address `pa`.
    fn write(&mut self, pa: u64, data: &[u8], why: Access) -> bool;
}

/// Little-endian helpers over [`PhysMem`].
pub trait PhysMemExt: PhysMem {
    /// Reads a byte (all ones if unbacked).
    fn read_u8(&mut self, pa: u64, why: Access) -> u8 {
        let mut b = [0u8; 1];
        if !self.read(pa, &mut b, why) {
            return 0xff;
        }
        b[0]
    }
    /// Reads a little-endian dword (all ones if unbacked).
    fn read_u32(&mut self, pa: u64, why: Access) -> u32 {
        let mut b = [0u8; 4];
        if !self.read(pa, &mut b, why) {
            return u32::MAX;
        }
        u32::from_le_bytes(b)
    }
    /// Reads a little-endian qword (all ones if unbacked).
    fn read_u64(&mut self, pa: u64, why: Access) -> u64 {
        let mut b = [0u8; 8];
        if !self.read(pa, &mut b, why) {
            return u64::MAX;
        }
        u64::from_le_bytes(b)
    }
    /// Writes a little-endian dword.
    fn write_u32(&mut self, pa: u64, v: u32, why: Access) -> bool {
        self.write(pa, &v.to_le_bytes(), why)
    }
    /// Writes a little-endian qword.
    fn write_u64(&mut self, pa: u64, v: u64, why: Access) -> bool {
        self.write(pa, &v.to_le_bytes(), why)
    }
    /// Reads bit `bit` of a bitmap at `base`.
    fn read_bit(&mut self, base: u64, bit: u64, why: Access) -> bool {
        self.read_u8(base + bit / 8, why) & (1 << (bit % 8)) != 0
    }
}

impl<T: PhysMem + ?Sized> PhysMemExt for T {}

/// The machine's MSR file as VM entry and VM exit need it (SDM Vol. 3C 27.4,
/// "Loading MSRs", 28.4, "Saving MSRs", 28.6, "Loading MSRs"): whether RDMSR and
/// WRMSR at CPL 0 would fault, without performing anything. The model returns
/// the writes to perform as values; the machine applies them.
pub trait MsrOracle {
    /// The value RDMSR at CPL 0 would return, or `None` if it would raise #GP.
    fn read(&mut self, index: u32) -> Option<u64>;
    /// True if WRMSR of `value` at CPL 0 would complete without #GP.
    fn can_write(&mut self, index: u32, value: u64) -> bool;
}

/// A flat RAM for tests, property tests and examples: `size` bytes from 0, every
/// access outside it unbacked, each access recorded with its tag.
#[derive(Clone, Debug, Default)]
pub struct FlatMem {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Every access in order: (address, length, write?, tag).
    pub log: Vec<(u64, usize, bool, Access)>,
}

impl FlatMem {
    /// A zeroed RAM of `size` bytes.
    pub fn new(size: usize) -> Self {
        Self {
            bytes: vec![0; size],
            log: Vec::new(),
        }
    }

    fn range(&self, pa: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(pa).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }
}

impl PhysMem for FlatMem {
    fn read(&mut self, pa: u64, buf: &mut [u8], why: Access) -> bool {
        self.log.push((pa, buf.len(), false, why));
        match self.range(pa, buf.len()) {
            Some(r) => {
                buf.copy_from_slice(&self.bytes[r]);
                true
            }
            None => false,
        }
    }

    fn write(&mut self, pa: u64, data: &[u8], why: Access) -> bool {
        self.log.push((pa, data.len(), true, why));
        match self.range(pa, data.len()) {
            Some(r) => {
                self.bytes[r].copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_mem_round_trip_and_unbacked() {
        let mut m = FlatMem::new(0x2000);
        assert!(m.write_u64(0x1000, 0x1122_3344_5566_7788, Access::Vmcs));
        assert_eq!(m.read_u64(0x1000, Access::Vmcs), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u32(0x1004, Access::Vmcs), 0x1122_3344);
        assert_eq!(m.read_u32(0x2000, Access::Vmcs), u32::MAX);
        assert!(!m.write_u32(0x1fff, 1, Access::Vmcs));
        assert!(m.read_bit(0x1000, 3, Access::MsrBitmap));
        assert_eq!(m.log.len(), 6);
    }
}
