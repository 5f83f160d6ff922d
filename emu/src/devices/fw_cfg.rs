//! QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst), legacy
//! I/O interface on x86: a 16-bit write to port 510H selects an item and
//! resets the data offset; each byte read from 511H (or 510H) returns the next
//! byte of the item, and 0 past its end or for an item that does not exist.
//! The DMA interface is not provided (the ID item says so).
//!
//! Items are those QEMU's `pc` machine creates (hw/nvram/fw_cfg.c,
//! hw/i386/fw_cfg.c) and its Multiboot loader adds (hw/i386/multiboot.c):
//! signature, interface ID, UUID, RAM size, nographic, CPU counts, NUMA,
//! boot menu, the file directory, IRQ0 override, and the kernel address,
//! size, entry and data. kvm-unit-tests reads key 05H (CPU count), 03H (RAM
//! size) and 11H, which its sources call "max RAM" but which QEMU fills with
//! the Multiboot image: its first 8 bytes come back, as they do from QEMU.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The selector port.
pub const PORT_SELECTOR: u16 = 0x510;
/// The data port.
pub const PORT_DATA: u16 = 0x511;

/// Item keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h).
pub mod key {
    /// "QEMU".
    pub const SIGNATURE: u16 = 0x00;
    /// Interface features: bit 0 traditional, bit 1 DMA.
    pub const ID: u16 = 0x01;
    /// The VM's UUID.
    pub const UUID: u16 = 0x02;
    /// RAM size in bytes (u64).
    pub const RAM_SIZE: u16 = 0x03;
    /// No graphics console (u16).
    pub const NOGRAPHIC: u16 = 0x04;
    /// Boot CPUs (u16).
    pub const NB_CPUS: u16 = 0x05;
    /// The kernel's load address (u32).
    pub const KERNEL_ADDR: u16 = 0x07;
    /// The kernel's size (u32).
    pub const KERNEL_SIZE: u16 = 0x08;
    /// NUMA description.
    pub const NUMA: u16 = 0x0d;
    /// Boot menu (u16).
    pub const BOOT_MENU: u16 = 0x0e;
    /// Maximum CPUs (u16).
    pub const MAX_CPUS: u16 = 0x0f;
    /// The kernel's entry point (u32).
    pub const KERNEL_ENTRY: u16 = 0x10;
    /// The kernel image.
    pub const KERNEL_DATA: u16 = 0x11;
    /// The file directory.
    pub const FILE_DIR: u16 = 0x19;
    /// IRQ 0 is routed to GSI 2 (x86-specific, u32).
    pub const IRQ0_OVERRIDE: u16 = 0x8002;
}

/// One item: bytes, then zeros up to `len`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stored bytes.
    pub data: Vec<u8>,
    /// The item's length (bytes beyond `data` read as zero).
    pub len: u64,
}

impl Item {
    fn bytes(b: &[u8]) -> Self {
        Self {
            data: b.to_vec(),
            len: b.len() as u64,
        }
    }
}

/// The fw_cfg device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwCfg {
    /// The selected key.
    pub selector: u16,
    /// The read offset in the selected item.
    pub offset: u64,
    /// Items by key.
    pub items: BTreeMap<u16, Item>,
}

impl FwCfg {
    /// The items of a machine with `ram` bytes and `cpus` processors.
    pub fn new(ram: u64, cpus: u16, nographic: bool) -> Self {
        let mut items = BTreeMap::new();
        items.insert(key::SIGNATURE, Item::bytes(b"QEMU"));
        items.insert(key::ID, Item::bytes(&1u32.to_le_bytes()));
        items.insert(key::UUID, Item::bytes(&[0; 16]));
        items.insert(key::RAM_SIZE, Item::bytes(&ram.to_le_bytes()));
        items.insert(
            key::NOGRAPHIC,
            Item::bytes(&(nographic as u16).to_le_bytes()),
        );
        items.insert(key::NB_CPUS, Item::bytes(&cpus.to_le_bytes()));
        items.insert(key::MAX_CPUS, Item::bytes(&cpus.to_le_bytes()));
        // NUMA: node count 0, then a node per CPU (all 0).
        items.insert(key::NUMA, Item::bytes(&vec![0u8; 8 * (1 + cpus as usize)]));
        items.insert(key::BOOT_MENU, Item::bytes(&0u16.to_le_bytes()));
        // An empty file directory: a big-endian count of 0.
        items.insert(key::FILE_DIR, Item::bytes(&0u32.to_be_bytes()));
        items.insert(key::IRQ0_OVERRIDE, Item::bytes(&1u32.to_le_bytes()));
        Self {
            selector: 0,
            offset: 0,
            items,
        }
    }

    /// Records the loaded kernel as QEMU's Multiboot loader does: load
    /// address, size, entry, and the image from the load address on (`data`
    /// followed by `len - data.len()` zero bytes of BSS).
    pub fn set_kernel(&mut self, addr: u32, entry: u32, data: &[u8], len: u64) {
        self.items
            .insert(key::KERNEL_ADDR, Item::bytes(&addr.to_le_bytes()));
        self.items
            .insert(key::KERNEL_SIZE, Item::bytes(&(len as u32).to_le_bytes()));
        self.items
            .insert(key::KERNEL_ENTRY, Item::bytes(&entry.to_le_bytes()));
        self.items.insert(
            key::KERNEL_DATA,
            Item {
                data: data.to_vec(),
                len,
            },
        );
    }

    /// Selects an item (the write bit 4000H is not part of the key).
    pub fn select(&mut self, v: u16) {
        self.selector = v & !0x4000;
        self.offset = 0;
    }

    /// Reads the next data byte.
    pub fn read_data(&mut self) -> u8 {
        let Some(item) = self.items.get(&self.selector) else {
            return 0;
        };
        if self.offset >= item.len {
            return 0;
        }
        let b = item.data.get(self.offset as usize).copied().unwrap_or(0);
        self.offset += 1;
        b
    }

    /// Handles an access to the I/O window 510H-511H: byte reads return data,
    /// 16-bit writes select, byte writes (the old write interface) are
    /// ignored. Returns `None` for an access the window does not accept.
    pub fn io(&mut self, write: bool, size: u8, v: u32) -> Option<u32> {
        match (write, size) {
            (false, 1) => Some(self.read_data() as u32),
            (true, 2) => {
                self.select(v as u16);
                Some(0)
            }
            (true, 1) => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(f: &mut FwCfg, k: u16, n: usize) -> Vec<u8> {
        f.io(true, 2, k as u32);
        (0..n).map(|_| f.io(false, 1, 0).unwrap() as u8).collect()
    }

    #[test]
    fn keys_kvm_unit_tests_reads() {
        let mut f = FwCfg::new(256 << 20, 1, false);
        assert_eq!(read_item(&mut f, key::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut f, key::NB_CPUS, 2), [1, 0]);
        assert_eq!(
            read_item(&mut f, key::RAM_SIZE, 8),
            (256u64 << 20).to_le_bytes()
        );
        assert_eq!(read_item(&mut f, key::ID, 4), [1, 0, 0, 0], "no DMA");
        assert_eq!(read_item(&mut f, 0x1234, 2), [0, 0], "missing item reads 0");
        assert_eq!(read_item(&mut f, key::KERNEL_DATA, 8), [0; 8]);
        f.set_kernel(0x40_0000, 0x40_000c, &[0x02, 0xb0, 0xad, 0x1b], 0x1000);
        assert_eq!(
            read_item(&mut f, key::KERNEL_DATA, 8),
            [0x02, 0xb0, 0xad, 0x1b, 0, 0, 0, 0]
        );
        assert_eq!(
            read_item(&mut f, key::KERNEL_ENTRY, 4),
            0x40_000cu32.to_le_bytes()
        );
        assert_eq!(
            read_item(&mut f, key::NOGRAPHIC, 3),
            [0, 0, 0],
            "past the end: 0"
        );
        assert_eq!(
            f.io(false, 2, 0),
            None,
            "16-bit data reads are not accepted"
        );
    }
}
