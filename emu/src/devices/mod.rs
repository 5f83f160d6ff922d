//! The device bus: port I/O and MMIO dispatch to the machine's devices.
//!
//! Devices are plain state machines owned by [`Devices`]; dispatch is a match
//! on the address, with no trait objects, so the whole set is one serde value.
//! Accesses no device claims read as all ones and are counted (SDM Vol. 1 18.3
//! leaves unclaimed I/O undefined; a PC's floating bus reads 0xFF).

pub mod acpi;
pub mod clock;
pub mod fw_cfg;
pub mod ioapic;
pub mod kbc;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod testdev;
pub mod uart;

use serde::{Deserialize, Serialize};

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// QEMU's isa-debug-exit port.
pub const DEBUG_EXIT: u16 = 0xf4;

/// What an I/O write asks the machine to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoEffect {
    /// Nothing beyond the device's own state change.
    None,
    /// isa-debug-exit: end the run with status `(value << 1) | 1`.
    DebugExit(u32),
}

/// Counters for accesses no device claimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnclaimedCounts {
    /// Port reads.
    pub port_reads: u64,
    /// Port writes.
    pub port_writes: u64,
    /// MMIO reads.
    pub mmio_reads: u64,
    /// MMIO writes.
    pub mmio_writes: u64,
}

/// The machine's devices.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Devices {
    /// COM1.
    pub com1: uart::Uart16550,
    /// Accesses no device claimed.
    pub unclaimed: UnclaimedCounts,
}

impl Devices {
    /// An IN of `size` bytes (1, 2 or 4) from `port`.
    pub fn port_read(&mut self, port: u16, size: u8) -> u32 {
        match port {
            COM1..=0x3ff if size == 1 => self.com1.read(port - COM1) as u32,
            _ => {
                self.unclaimed.port_reads += 1;
                ones(size)
            }
        }
    }

    /// An OUT of `size` bytes (1, 2 or 4) to `port`.
    pub fn port_write(&mut self, port: u16, size: u8, value: u32) -> IoEffect {
        match port {
            COM1..=0x3ff => {
                self.com1.write(port - COM1, value as u8);
                IoEffect::None
            }
            // isa-debug-exit with iosize 4 decodes the whole 4-byte window; QEMU
            // takes the written value as is (hw/misc/debugexit.c).
            DEBUG_EXIT..=0xf7 => IoEffect::DebugExit(value & ones(size)),
            _ => {
                self.unclaimed.port_writes += 1;
                IoEffect::None
            }
        }
    }

    /// An MMIO read of `size` bytes from physical address `pa`.
    pub fn mmio_read(&mut self, _pa: u64, size: u8) -> u64 {
        self.unclaimed.mmio_reads += 1;
        if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        }
    }

    /// An MMIO write of `size` bytes to physical address `pa`.
    pub fn mmio_write(&mut self, _pa: u64, _size: u8, _value: u64) -> IoEffect {
        self.unclaimed.mmio_writes += 1;
        IoEffect::None
    }
}

#[inline]
fn ones(size: u8) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1u32 << (size * 8)) - 1
    }
}
