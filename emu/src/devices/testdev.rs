//! QEMU's test devices, as test kernels (kvm-unit-tests first) use them.
//!
//! `pc-testdev` (QEMU hw/misc/pc-testdev.c): a 32-bit scratch register at
//! ports E0H-E3H (any width, string I/O included) and again byte-wise at
//! E8H-EBH, a "flush page" port at E4H, ports 2000H+n (n < 24) that drive ISA
//! interrupt line n to (data != 0), and 64 KiB of RAM-like MMIO at FF000000H.
//!
//! `pci-testdev` (QEMU hw/misc/pci-testdev.c): six I/O tests, three on the
//! memory BAR and three on the I/O BAR. Writing test number t to offset 0
//! selects test t of that BAR's kind; the header then reads back (test, width,
//! offset, data, count, name), and each byte written at the test's offset
//! (matching the data byte where the test asks for it) increments the count.
//! QEMU implements the regions with 1-byte accesses, so wider accesses act as
//! byte sequences.

use serde::{Deserialize, Serialize};

/// Size of pc-testdev's MMIO window.
pub const IOMEM_LEN: usize = 0x1_0000;
/// Base of pc-testdev's MMIO window.
pub const IOMEM_BASE: u64 = 0xff00_0000;
/// First of pc-testdev's IRQ-line ports.
pub const IRQ_PORT_BASE: u16 = 0x2000;
/// Number of IRQ lines pc-testdev drives.
pub const IRQ_LINES: u16 = 24;

/// The pc-testdev state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcTestdev {
    /// The scratch register behind E0H-E3H and E8H-EBH.
    pub ioport_data: u32,
    /// The MMIO window contents.
    pub iomem: Vec<u8>,
}

impl Default for PcTestdev {
    fn default() -> Self {
        Self {
            ioport_data: 0,
            iomem: vec![0; IOMEM_LEN],
        }
    }
}

impl PcTestdev {
    /// Reads `size` bytes of the scratch register at byte `addr & 3`.
    pub fn read_scratch(&self, addr: u16, size: u8) -> u32 {
        let shift = (addr & 3) as u32 * 8;
        let bits = size as u32 * 8;
        let mask = if bits >= 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        (self.ioport_data >> shift) & mask
    }

    /// Writes `size` bytes of the scratch register at byte `addr & 3`.
    pub fn write_scratch(&mut self, addr: u16, size: u8, v: u32) {
        let shift = (addr & 3) as u32 * 8;
        let bits = size as u32 * 8;
        let mask = if bits >= 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        let m = mask.checked_shl(shift).unwrap_or(0);
        self.ioport_data = (self.ioport_data & !m) | ((v & mask).checked_shl(shift).unwrap_or(0));
    }

    /// Reads `size` bytes of the MMIO window.
    pub fn read_iomem(&self, off: usize, size: usize) -> u64 {
        let mut v = 0u64;
        for k in 0..size {
            v |= (*self.iomem.get(off + k).unwrap_or(&0) as u64) << (8 * k);
        }
        v
    }

    /// Writes `size` bytes of the MMIO window.
    pub fn write_iomem(&mut self, off: usize, size: usize, v: u64) {
        for k in 0..size {
            if let Some(b) = self.iomem.get_mut(off + k) {
                *b = (v >> (8 * k)) as u8;
            }
        }
    }
}

/// The number of pci-testdev tests of each kind.
const TESTS_PER_KIND: usize = 3;
/// Test names, by test number within a kind.
const TEST_NAMES: [&str; TESTS_PER_KIND] = ["no-eventfd", "wildcard-eventfd", "datamatch-eventfd"];
/// The data byte tests that match data expect, and the others report.
const DATAMATCH: u8 = 0xfa;
const NOMATCH: u8 = 0xce;
/// Region sizes the test offsets are placed after.
const MEMSIZE: u32 = 2048;
const IOSIZE: u32 = 128;

/// Which BAR an access goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BAR0, memory.
    Mmio = 0,
    /// BAR1, I/O.
    Portio = 1,
}

/// The pci-testdev state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciTestdev {
    /// The selected test (0-5), if any.
    pub current: Option<usize>,
    /// Each test's write count.
    pub counts: [u32; 2 * TESTS_PER_KIND],
}

impl PciTestdev {
    /// Test `i`'s header and name as the guest reads them.
    fn header(i: usize) -> Vec<u8> {
        let mmio = i < TESTS_PER_KIND;
        let t = i % TESTS_PER_KIND;
        let name = format!("{}-{}", if mmio { "mmio" } else { "portio" }, TEST_NAMES[t]);
        let offset = if mmio { MEMSIZE } else { IOSIZE } + i as u32;
        let data = if t == 1 { NOMATCH } else { DATAMATCH };
        let mut h = vec![i as u8, 1, 0, 0];
        h.extend_from_slice(&offset.to_le_bytes());
        h.extend_from_slice(&[data, 0, 0, 0]);
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        h
    }

    fn read_byte(&self, addr: u64) -> u8 {
        let Some(cur) = self.current else { return 0 };
        let mut h = Self::header(cur);
        h[12..16].copy_from_slice(&self.counts[cur].to_le_bytes());
        if addr + 1 >= h.len() as u64 {
            return 0;
        }
        h[addr as usize]
    }

    fn write_byte(&mut self, kind: Kind, addr: u64, v: u8) {
        if addr == 0 {
            self.current = None;
            if (v as usize) < TESTS_PER_KIND {
                let t = kind as usize * TESTS_PER_KIND + v as usize;
                self.counts[t] = 0;
                self.current = Some(t);
            }
            return;
        }
        let Some(cur) = self.current else { return };
        let mmio = cur < TESTS_PER_KIND;
        let offset = if mmio { MEMSIZE } else { IOSIZE } as u64 + cur as u64;
        let match_data = cur % TESTS_PER_KIND != 1;
        if addr != offset || (match_data && v != DATAMATCH) {
            return;
        }
        self.counts[cur] = self.counts[cur].wrapping_add(1);
    }

    /// Reads `size` bytes at `addr` of a BAR.
    pub fn read(&self, addr: u64, size: u8) -> u64 {
        let mut v = 0u64;
        for k in 0..size as u64 {
            v |= (self.read_byte(addr + k) as u64) << (8 * k);
        }
        v
    }

    /// Writes `size` bytes at `addr` of a BAR of `kind`.
    pub fn write(&mut self, kind: Kind, addr: u64, size: u8, v: u64) {
        for k in 0..size as u64 {
            self.write_byte(kind, addr + k, (v >> (8 * k)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_register_widths() {
        let mut t = PcTestdev::default();
        t.write_scratch(0xe0, 4, 0x1234_5678);
        assert_eq!(t.read_scratch(0xe0, 4), 0x1234_5678);
        assert_eq!(t.read_scratch(0xe1, 1), 0x56);
        t.write_scratch(0xea, 1, 0xab);
        assert_eq!(t.read_scratch(0xe0, 4), 0x12ab_5678);
        assert_eq!(t.read_scratch(0xe2, 2), 0x12ab);
    }

    /// The walk lib/pci-testdev.c does, per test of a kind.
    fn run_test(d: &mut PciTestdev, kind: Kind, n: u8) -> Option<(String, u32)> {
        d.write(kind, 0, 1, n as u64);
        if d.read(12, 4) != 0 {
            return None;
        }
        let width = d.read(1, 1);
        if ![1, 2, 4].contains(&width) {
            return None;
        }
        let sig = d.read(8, 4);
        let off = d.read(4, 4);
        for _ in 0..16 {
            d.write(kind, off, width as u8, sig);
        }
        let count = d.read(12, 4) as u32;
        let name: String = (16..)
            .map(|a| d.read(a, 1) as u8)
            .take_while(|&c| c != 0)
            .map(char::from)
            .collect();
        Some((name, count))
    }

    #[test]
    fn pci_testdev_protocol() {
        let mut d = PciTestdev::default();
        let mut names = Vec::new();
        for kind in [Kind::Mmio, Kind::Portio] {
            for n in 0.. {
                match run_test(&mut d, kind, n) {
                    Some((name, count)) => {
                        assert_eq!(count, 16, "{name}");
                        names.push(name);
                    }
                    None => break,
                }
            }
        }
        assert_eq!(
            names,
            [
                "mmio-no-eventfd",
                "mmio-wildcard-eventfd",
                "mmio-datamatch-eventfd",
                "portio-no-eventfd",
                "portio-wildcard-eventfd",
                "portio-datamatch-eventfd"
            ]
        );
    }
}
