//! PCI configuration space through configuration mechanism #1 (PCI Local Bus
//! Specification 3.0, 3.2.2.3.2): CONFIG_ADDRESS at CF8H (enable bit 31, bus,
//! device, function, register) and CONFIG_DATA at CFCH-CFFH, any width.
//!
//! Bus 0 holds what QEMU's `pc` machine has with `-nodefaults`: the i440FX
//! host bridge (00.0), the PIIX3 ISA bridge (01.0) and the PIIX4 power
//! management function (01.3, whose PM I/O base is the fixed 600H of the
//! ACPI tables), plus QEMU's `pci-testdev` at 02.0 when configured. There is
//! no firmware, so BARs come pre-assigned and decoding enabled, as SeaBIOS
//! leaves them. Config registers follow the type 0 header (PCI 3.0 6.1).

use serde::{Deserialize, Serialize};

/// The pci-testdev's default memory BAR (BAR0, 4 KiB).
pub const TESTDEV_MMIO: u64 = 0xfeb0_0000;
/// The pci-testdev's default I/O BAR (BAR1, 256 ports).
pub const TESTDEV_PIO: u16 = 0xc000;

/// One PCI function's configuration space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Device number << 3 | function number, on bus 0.
    pub devfn: u8,
    /// The 256-byte configuration space.
    pub config: Vec<u8>,
    /// Which bits software may write, per byte.
    write_mask: Vec<u8>,
    /// BAR sizes (0: not implemented) and whether each is I/O.
    bars: [(u32, bool); 6],
}

impl Function {
    fn new(devfn: u8, vendor: u16, device: u16, rev: u8, class: u32, header: u8) -> Self {
        let mut f = Self {
            devfn,
            config: vec![0; 256],
            write_mask: vec![0; 256],
            bars: [(0, false); 6],
        };
        f.put16(0x00, vendor);
        f.put16(0x02, device);
        f.config[0x08] = rev;
        f.put16(0x0a, (class >> 8) as u16);
        f.config[0x09] = class as u8;
        f.config[0x0e] = header;
        // Command: I/O, memory, bus master, parity, SERR#, INTx disable.
        f.write_mask[0x04] = 0x47;
        f.write_mask[0x05] = 0x05;
        // Cache line size, latency timer, interrupt line.
        f.write_mask[0x0c] = 0xff;
        f.write_mask[0x0d] = 0xff;
        f.write_mask[0x3c] = 0xff;
        f
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.config[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.config[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn get32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.config[off..off + 4].try_into().expect("4 bytes"))
    }

    /// Declares BAR `n` of `size` bytes (a power of two) at `addr`.
    fn bar(&mut self, n: usize, size: u32, io: bool, addr: u32) {
        self.bars[n] = (size, io);
        let off = 0x10 + 4 * n;
        let mask = !(size - 1) & if io { !3 } else { !0xf };
        self.put32(off, (addr & mask) | io as u32);
        for k in 0..4 {
            self.write_mask[off + k] = (mask >> (8 * k)) as u8;
        }
    }

    /// The address and size of BAR `n` if its decoding is enabled in the
    /// command register.
    pub fn bar_region(&self, n: usize) -> Option<(u64, u64)> {
        let (size, io) = self.bars[n];
        if size == 0 {
            return None;
        }
        let cmd = self.config[0x04];
        if cmd & if io { 1 } else { 2 } == 0 {
            return None;
        }
        let raw = self.get32(0x10 + 4 * n);
        let base = if io { raw & !3 } else { raw & !0xf };
        (base != 0).then_some((base as u64, size as u64))
    }

    fn read(&self, off: usize, size: usize) -> u32 {
        let mut v = 0u32;
        for k in 0..size {
            v |= (self.config[(off + k) & 0xff] as u32) << (8 * k);
        }
        v
    }

    fn write(&mut self, off: usize, size: usize, v: u32) {
        for k in 0..size {
            let o = (off + k) & 0xff;
            let m = self.write_mask[o];
            self.config[o] = (self.config[o] & !m) | ((v >> (8 * k)) as u8 & m);
        }
    }
}

/// Bus 0 and the configuration-mechanism #1 ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciBus {
    /// CONFIG_ADDRESS.
    pub address: u32,
    /// The functions on bus 0.
    pub functions: Vec<Function>,
    /// Index of the pci-testdev function, if present.
    pub testdev: Option<usize>,
}

impl PciBus {
    /// The bus of a `pc` machine, with `pci-testdev` if asked for.
    pub fn new(testdev: bool) -> Self {
        let mut host = Function::new(0x00, 0x8086, 0x1237, 0x02, 0x06_0000, 0);
        host.put16(0x2c, 0x1af4);
        host.put16(0x2e, 0x1100);
        host.config[0x04] = 0x06;
        let isa = Function::new(0x08, 0x8086, 0x7000, 0x00, 0x06_0100, 0x80);
        let mut pm = Function::new(0x0b, 0x8086, 0x7113, 0x03, 0x06_8000, 0);
        // PMBA (40H) = 600H, I/O space; PMREGMISC (80H) bit 0: enabled.
        pm.put32(0x40, 0x0601);
        pm.config[0x80] = 1;
        pm.config[0x3c] = 9;
        pm.config[0x3d] = 1;
        let mut functions = vec![host, isa, pm];
        let mut idx = None;
        if testdev {
            // QEMU's pci-testdev: vendor 1B36 (Red Hat), device 0005, class
            // "other" (class code 00FF00H), no interrupt pin.
            let mut t = Function::new(0x10, 0x1b36, 0x0005, 0x00, 0x00_ff00, 0);
            t.put16(0x2c, 0x1af4);
            t.put16(0x2e, 0x1100);
            t.bar(0, 0x1000, false, TESTDEV_MMIO as u32);
            t.bar(1, 0x100, true, TESTDEV_PIO as u32);
            t.config[0x04] = 0x03;
            idx = Some(functions.len());
            functions.push(t);
        }
        Self {
            address: 0,
            functions,
            testdev: idx,
        }
    }

    /// The function CONFIG_ADDRESS selects, if enabled and present.
    fn selected(&self) -> Option<usize> {
        let a = self.address;
        if a & 0x8000_0000 == 0 || (a >> 16) & 0xff != 0 {
            return None;
        }
        let devfn = ((a >> 8) & 0xff) as u8;
        self.functions.iter().position(|f| f.devfn == devfn)
    }

    /// Reads CF8H-CFFH.
    pub fn read(&self, port: u16, size: u8) -> u32 {
        match port {
            0xcf8 if size == 4 => self.address,
            0xcfc..=0xcff => match self.selected() {
                Some(i) => {
                    let off = (self.address & 0xfc) as usize + (port & 3) as usize;
                    self.functions[i].read(off, size as usize)
                }
                None => ones(size),
            },
            _ => ones(size),
        }
    }

    /// Writes CF8H-CFFH.
    pub fn write(&mut self, port: u16, size: u8, v: u32) {
        match port {
            0xcf8 if size == 4 => self.address = v & 0x80ff_fffc,
            0xcfc..=0xcff => {
                if let Some(i) = self.selected() {
                    let off = (self.address & 0xfc) as usize + (port & 3) as usize;
                    self.functions[i].write(off, size as usize, v);
                }
            }
            _ => {}
        }
    }

    /// True if `port` belongs to the configuration mechanism (CF8H is only
    /// CONFIG_ADDRESS for 32-bit accesses; byte accesses there go to the
    /// chipset's reset control register at CF9H and its neighbours).
    pub fn claims(port: u16, size: u8) -> bool {
        matches!(port, 0xcfc..=0xcff) || (port == 0xcf8 && size == 4)
    }

    /// The pci-testdev BAR `n` region, if present and decoded.
    pub fn testdev_bar(&self, n: usize) -> Option<(u64, u64)> {
        self.functions[self.testdev?].bar_region(n)
    }
}

fn ones(size: u8) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1u32 << (size * 8)) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_read(b: &mut PciBus, devfn: u8, reg: u8, size: u8) -> u32 {
        b.write(
            0xcf8,
            4,
            0x8000_0000 | (devfn as u32) << 8 | (reg & 0xfc) as u32,
        );
        b.read(0xcfc + (reg & 3) as u16, size)
    }

    #[test]
    fn host_bridge_and_absent_functions() {
        let mut b = PciBus::new(false);
        assert_eq!(cfg_read(&mut b, 0, 0, 4), 0x1237_8086);
        assert_eq!(cfg_read(&mut b, 0, 0x0a, 2), 0x0600);
        assert_eq!(cfg_read(&mut b, 0x18, 0, 2), 0xffff, "no device 3");
        assert_eq!(
            cfg_read(&mut b, 0x08, 0x0e, 1),
            0x80,
            "PIIX3 is multi-function"
        );
        // Disabled CONFIG_ADDRESS reads all ones.
        b.write(0xcf8, 4, 0);
        assert_eq!(b.read(0xcfc, 4), 0xffff_ffff);
    }

    #[test]
    fn testdev_bars_size_and_move() {
        let mut b = PciBus::new(true);
        assert_eq!(cfg_read(&mut b, 0x10, 0, 4), 0x0005_1b36);
        assert_eq!(b.testdev_bar(0), Some((TESTDEV_MMIO, 0x1000)));
        assert_eq!(b.testdev_bar(1), Some((TESTDEV_PIO as u64, 0x100)));
        // BAR sizing: write all ones, read the mask back.
        b.write(0xcf8, 4, 0x8000_1010);
        b.write(0xcfc, 4, 0xffff_ffff);
        assert_eq!(b.read(0xcfc, 4), 0xffff_f000);
        b.write(0xcfc, 4, 0xfe00_0000);
        assert_eq!(b.testdev_bar(0), Some((0xfe00_0000, 0x1000)));
        b.write(0xcf8, 4, 0x8000_1014);
        b.write(0xcfc, 4, 0xffff_ffff);
        assert_eq!(b.read(0xcfc, 4), 0xffff_ff01);
        // Clearing memory decode hides BAR0.
        b.write(0xcf8, 4, 0x8000_1004);
        b.write(0xcfc, 2, 0x0001);
        assert_eq!(b.testdev_bar(0), None);
    }
}
