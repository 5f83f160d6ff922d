//! Loaders: Multiboot v1 kernels (ELF32, ELF64 and the a.out kludge) entered as
//! QEMU's `-kernel` enters them, and flat binaries at a given address.

pub mod elf;
pub mod multiboot;

use crate::machine::Machine;
use mmu::{Cr0, SegReg, SegmentCache, TableRegister};

/// A loader error: bad host input, reported on one line (exit status 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError(pub String);

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Where the boot GDT lives relative to the boot-information block, and the
/// selectors it provides (those QEMU's Multiboot option ROM leaves loaded).
pub const BOOT_CS: u16 = 0x10;
/// The data selector of the boot GDT.
pub const BOOT_DS: u16 = 0x18;

/// Checks that `[pa, pa + len)` is RAM.
pub fn check_ram(m: &Machine, pa: u64, len: u64, what: &str) -> Result<(), LoadError> {
    if len == 0 {
        return Ok(());
    }
    let end = pa.checked_add(len);
    let ok = end.is_some() && m.ram.offset(pa, len).is_some();
    if !ok {
        return Err(LoadError(format!(
            "{what} at {pa:#x}..{:#x} lies outside RAM (RAM is {:#x} bytes below 4 GiB{})",
            pa.saturating_add(len),
            m.ram.map.low,
            if m.ram.map.high > 0 {
                format!(" and {:#x} above", m.ram.map.high)
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

impl Machine {
    /// Puts the CPU in the 32-bit protected-mode state of a Multiboot entry
    /// (Multiboot 0.6.96 section 3.2): flat 4-GiB code and data segments,
    /// paging off, IF = 0, with a GDT at `gdt` holding the boot selectors.
    pub fn enter_protected_flat(&mut self, entry: u64, gdt: u64) {
        let descs: [u64; 4] = [0, 0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
        for (k, d) in descs.iter().enumerate() {
            self.load_phys(gdt + 8 * k as u64, &d.to_le_bytes());
        }
        let cpu = &mut self.cpu;
        cpu.sys.cr0 = Cr0::PE | Cr0::ET;
        cpu.sys.gdtr = TableRegister {
            base: gdt,
            limit: 31,
        };
        cpu.sys.idtr = TableRegister {
            base: 0,
            limit: 0x3ff,
        };
        for s in SegReg::ALL {
            cpu.sys.segs[s as usize] = SegmentCache::flat(BOOT_DS, 0x3, 0, true, false);
        }
        cpu.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(BOOT_CS, 0xb, 0, true, false);
        cpu.flags.set(2);
        cpu.rip = entry;
        cpu.update_mode();
        self.paging_changed();
    }

    /// Puts the CPU in real mode at `0:entry` (as a boot sector is entered).
    pub fn enter_real(&mut self, entry: u64) {
        let cpu = &mut self.cpu;
        cpu.sys.cr0 = Cr0::ET;
        for s in SegReg::ALL {
            cpu.sys.segs[s as usize] = SegmentCache::real_mode(0, false);
        }
        cpu.sys.segs[SegReg::Cs as usize].attr = mmu::AccessRights(0x9b);
        cpu.sys.idtr = TableRegister {
            base: 0,
            limit: 0x3ff,
        };
        cpu.flags.set(2);
        cpu.rip = entry;
        cpu.gpr[4] = 0x7c00;
        cpu.update_mode();
        self.paging_changed();
    }
}
