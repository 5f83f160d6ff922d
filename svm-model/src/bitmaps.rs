//! The I/O and MSR permission maps (APM Vol. 2 15.10.1, "I/O Permissions Map",
//! and 15.11, "MSR Intercepts").
//!
//! The IOPM is 64K+3 bits in 12 KiB: bit n intercepts port n, and a multi-byte
//! access checks the bits of every byte it touches, so an access at port FFFFh
//! reads bits beyond 64K instead of wrapping to port 0 (which is why the map has
//! a third page). The MSRPM holds two bits per MSR (read at the even, write at
//! the odd position) for three 8K-MSR ranges; an MSR outside them is always
//! intercepted.

use crate::mem::{read_u8, PhysMem, SvmAccess};

/// The byte offset in the IOPM and the bit within it for `port`.
pub const fn iopm_position(port: u32) -> (u64, u8) {
    ((port / 8) as u64, (port % 8) as u8)
}

/// True if the IOPM at `base` intercepts an access of `size` bytes (1, 2 or 4)
/// at `port`: any bit from `port` to `port + size - 1` set (no wrap at 64K).
pub fn iopm_intercepts<M: PhysMem + ?Sized>(mem: &mut M, base: u64, port: u16, size: u8) -> bool {
    let first = u32::from(port);
    let last = first + u32::from(size.clamp(1, 4)) - 1;
    let (first_byte, _) = iopm_position(first);
    let (last_byte, _) = iopm_position(last);
    let mut bits: u16 = 0;
    for (i, off) in (first_byte..=last_byte).enumerate() {
        bits |= u16::from(read_u8(mem, base + off, SvmAccess::Iopm)) << (8 * i);
    }
    let width = last - first + 1;
    let mask = (((1u32 << width) - 1) << (first % 8)) as u16;
    bits & mask != 0
}

/// The MSRPM position of an MSR: (byte offset, bit of the read permission;
/// the write permission is the next bit). `None` for MSRs outside the three
/// ranges of table 15-8.
pub const fn msrpm_position(msr: u32) -> Option<(u64, u8)> {
    let (base, index) = match msr {
        0x0000_0000..=0x0000_1fff => (0x000, msr),
        0xc000_0000..=0xc000_1fff => (0x800, msr - 0xc000_0000),
        0xc001_0000..=0xc001_1fff => (0x1000, msr - 0xc001_0000),
        _ => return None,
    };
    let bit = index as u64 * 2;
    Some((base + bit / 8, (bit % 8) as u8))
}

/// True if the MSRPM at `base` intercepts a read (`write == false`) or write
/// of `msr`. MSRs outside the covered ranges are always intercepted.
pub fn msrpm_intercepts<M: PhysMem + ?Sized>(
    mem: &mut M,
    base: u64,
    msr: u32,
    write: bool,
) -> bool {
    match msrpm_position(msr) {
        None => true,
        Some((byte, bit)) => {
            let v = read_u8(mem, base + byte, SvmAccess::Msrpm);
            (v >> (bit + u8::from(write))) & 1 != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::PageMem;

    #[test]
    fn msrpm_positions_per_the_apm_ranges() {
        assert_eq!(msrpm_position(0), Some((0, 0)));
        assert_eq!(msrpm_position(3), Some((0, 6)));
        assert_eq!(msrpm_position(4), Some((1, 0)));
        assert_eq!(msrpm_position(0x1fff), Some((0x7ff, 6)));
        // EFER, C000_0080h: range 2, 80h * 2 bits = byte 20h.
        assert_eq!(msrpm_position(0xc000_0080), Some((0x820, 0)));
        assert_eq!(msrpm_position(0xc000_0102), Some((0x840, 4)));
        // VM_CR, C001_0114h: range 3, 114h * 2 = 228h bits = byte 45h, bit 0.
        assert_eq!(msrpm_position(0xc001_0114), Some((0x1045, 0)));
        assert_eq!(msrpm_position(0xc001_1fff), Some((0x17ff, 6)));
        assert_eq!(msrpm_position(0x2000), None);
        assert_eq!(msrpm_position(0xc000_2000), None);
        assert_eq!(msrpm_position(0xc001_2000), None);
        assert_eq!(msrpm_position(0x4000_0000), None);
    }

    #[test]
    fn msrpm_read_and_write_bits() {
        let mut m = PageMem::new();
        let base = 0x10_0000;
        // Intercept writes of EFER only.
        m.poke(base + 0x820, &[0b10]);
        assert!(!msrpm_intercepts(&mut m, base, 0xc000_0080, false));
        assert!(msrpm_intercepts(&mut m, base, 0xc000_0080, true));
        // Reads of MSR 1Bh (APIC_BASE): byte 6, bit 6.
        m.poke(base + 6, &[1 << 6]);
        assert!(msrpm_intercepts(&mut m, base, 0x1b, false));
        assert!(!msrpm_intercepts(&mut m, base, 0x1b, true));
        // Uncovered MSRs always intercept.
        assert!(msrpm_intercepts(&mut m, base, 0x4000_0000, false));
    }

    #[test]
    fn iopm_single_and_multi_byte() {
        let mut m = PageMem::new();
        let base = 0x20_0000;
        // Port 3F8h (COM1): byte 7Fh, bit 0.
        assert_eq!(iopm_position(0x3f8), (0x7f, 0));
        m.poke(base + 0x7f, &[1]);
        assert!(iopm_intercepts(&mut m, base, 0x3f8, 1));
        assert!(!iopm_intercepts(&mut m, base, 0x3f9, 1));
        // A dword access at 3F5h covers 3F5h-3F8h.
        assert!(iopm_intercepts(&mut m, base, 0x3f5, 4));
        assert!(!iopm_intercepts(&mut m, base, 0x3f4, 4));
        // A word access spanning two IOPM bytes: port 7h..8h.
        m.poke(base + 1, &[1]); // port 8
        assert!(iopm_intercepts(&mut m, base, 7, 2));
        assert!(!iopm_intercepts(&mut m, base, 6, 2));
    }

    #[test]
    fn iopm_does_not_wrap_at_64k() {
        let mut m = PageMem::new();
        let base = 0x30_0000;
        // Bit 0 (port 0) set must not affect an access at FFFFh.
        m.poke(base, &[1]);
        assert!(!iopm_intercepts(&mut m, base, 0xffff, 4));
        // Bits 65536-65538 live in the third page at byte 2000h.
        m.poke(base + 0x2000, &[0b100]);
        assert!(iopm_intercepts(&mut m, base, 0xffff, 4));
        assert!(!iopm_intercepts(&mut m, base, 0xffff, 2));
        assert!(!iopm_intercepts(&mut m, base, 0xfffe, 4));
        m.poke(base + 0x2000, &[0b001]);
        assert!(iopm_intercepts(&mut m, base, 0xffff, 2));
    }
}
