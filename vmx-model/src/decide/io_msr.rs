//! I/O instructions and RDMSR/WRMSR (SDM Vol. 3C 26.1.3, "Instructions That Cause
//! VM Exits Conditionally"; 25.6.4, "I/O-Bitmap Addresses"; 25.6.9, "MSR-Bitmap
//! Address").

use super::Controls;
use crate::controls::ProcControls;
use crate::mem::{Access, PhysMem, PhysMemExt};

/// True if an I/O instruction touching `size` bytes from `port` exits.
///
/// With "use I/O bitmaps" 1 (which overrides "unconditional I/O exiting"), it exits
/// if the bit of any byte's port is set (bitmap A covers 0000H-7FFFH, B 8000H-FFFFH)
/// or if the access wraps past FFFFH. Otherwise it exits iff "unconditional I/O
/// exiting" is 1. INS/OUTS and REP prefixes decide per iteration the same way.
pub fn io_exits(c: &Controls, mem: &mut dyn PhysMem, port: u16, size: u8) -> bool {
    if !c.proc.contains(ProcControls::USE_IO_BITMAPS) {
        return c.proc.contains(ProcControls::UNCONDITIONAL_IO_EXITING);
    }
    (0..size as u32).any(|i| {
        let p = port as u32 + i;
        if p > 0xffff {
            return true;
        }
        let bitmap = c.io_bitmaps[(p >> 15) as usize];
        mem.read_bit(bitmap, (p & 0x7fff) as u64, Access::IoBitmap)
    })
}

/// True if RDMSR (`write` false) or WRMSR of MSR `index` exits.
///
/// Without MSR bitmaps every RDMSR and WRMSR exits. With them: MSRs 00000000H-
/// 00001FFFH use the read-low bitmap (offset 0) and write-low bitmap (offset 800H),
/// C0000000H-C0001FFFH the read-high (400H) and write-high (C00H) bitmaps; any
/// other index exits.
pub fn msr_exits(c: &Controls, mem: &mut dyn PhysMem, index: u32, write: bool) -> bool {
    if !c.proc.contains(ProcControls::USE_MSR_BITMAPS) {
        return true;
    }
    let (base, bit) = match index {
        0..=0x1fff => (0x000, index),
        0xc000_0000..=0xc000_1fff => (0x400, index - 0xc000_0000),
        _ => return true,
    };
    let base = base + if write { 0x800 } else { 0 };
    mem.read_bit(c.msr_bitmap + base, bit as u64, Access::MsrBitmap)
}
