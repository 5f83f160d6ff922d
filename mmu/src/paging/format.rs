//! Paging-structure entry formats: how each kind of entry is laid out, which
//! bits are reserved, and what rights it grants. One [`Format`] per structure
//! family; the walk loop in [`super::walk`] is written once against this trait
//! (the role KVM's `paging_tmpl.h` plays with a preprocessor template).
//!
//! Levels are numbered from the leaf: 1 = PTE, 2 = PDE, 3 = PDPTE, 4 = PML4E,
//! 5 = PML5E.

use super::mem::EntrySize;
use super::PageSize;
use crate::AddressWidths;

/// What one entry says, once it is known to be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// References the next paging structure at this (input-space) address.
    Table(u64),
    /// Maps a page starting at this (output-space) address.
    Leaf(u64, PageSize),
    /// Sets a reserved bit, or (EPT) holds an unsupported combination: a
    /// page fault with RSVD, or an EPT misconfiguration.
    Reserved,
}

/// Rights accumulated across levels are bit sets ANDed together.
pub type Rights = u8;

/// Guest-format rights: R/W = 1 in the entry.
pub const RIGHT_W: Rights = 1 << 0;
/// Guest-format rights: U/S = 1 in the entry.
pub const RIGHT_U: Rights = 1 << 1;
/// Guest-format rights: instruction fetches allowed (XD = 0, or XD not in use).
pub const RIGHT_X: Rights = 1 << 2;

/// EPT rights: bit 0, read access.
pub const EPT_R: Rights = 1 << 0;
/// EPT rights: bit 1, write access.
pub const EPT_W: Rights = 1 << 1;
/// EPT rights: bit 2, execute access (for supervisor-mode linear addresses
/// when mode-based execute control is on).
pub const EPT_X: Rights = 1 << 2;
/// EPT rights: bit 10, execute access for user-mode linear addresses (only
/// with mode-based execute control; equal to [`EPT_X`] otherwise).
pub const EPT_UX: Rights = 1 << 3;

/// A paging-structure format.
pub trait Format {
    /// Width of one entry.
    const ENTRY: EntrySize;
    /// Bit position of the accessed flag.
    const A_BIT: u32;
    /// Bit position of the dirty flag.
    const D_BIT: u32;

    /// Index of the entry for `addr` in a table at `level`.
    fn index(&self, addr: u64, level: u8) -> u64;
    /// True if the entry is present (a not-present entry ends the walk).
    fn present(&self, e: u64) -> bool;
    /// Decodes a present entry at `level`.
    fn decode(&self, e: u64, level: u8) -> Decoded;
    /// The rights an entry at `level` grants, in the format's [`Rights`] bits.
    fn rights(&self, e: u64, level: u8) -> Rights;
    /// True if entries at `level` have an accessed flag the processor sets.
    fn has_accessed(&self, level: u8) -> bool;
    /// True if leaf entries have a dirty flag the processor sets.
    fn has_dirty(&self) -> bool;

    /// Byte offset of the entry for `addr` within the table at `level`.
    #[inline]
    fn offset(&self, addr: u64, level: u8) -> u64 {
        self.index(addr, level) * Self::ENTRY.bytes()
    }
}

/// Bits M-1:12 of an entry (M = MAXPHYADDR).
#[inline]
const fn frame_bits(w: AddressWidths) -> u64 {
    w.phys_mask() & !0xfff
}

/// Bits 51:M, reserved in every 64-bit IA-32e, EPT and NPT entry.
#[inline]
const fn above_maxphy_51(w: AddressWidths) -> u64 {
    ((1u64 << 52) - 1) & !w.phys_mask()
}

#[inline]
const fn index9(addr: u64, level: u8) -> u64 {
    (addr >> (12 + 9 * (level as u32 - 1))) & 0x1ff
}

const PS: u64 = 1 << 7;
const XD: u64 = 1 << 63;

/// 32-bit paging (SDM Vol. 3A 4.3, tables 4-4 to 4-6): 4-byte entries, two
/// levels, 4-MByte pages with CR4.PSE, PSE-36 physical-address bits.
#[derive(Clone, Copy, Debug)]
pub struct Legacy32 {
    /// CR4.PSE: PS = 1 in a PDE maps a 4-MByte page.
    pub pse: bool,
    /// M for 4-MByte pages: min(MAXPHYADDR, 40) (SDM Vol. 3A 4.3, "PSE-36").
    pub m: u32,
}

impl Legacy32 {
    /// The format for these registers and widths.
    pub fn new(pse: bool, widths: AddressWidths) -> Self {
        Self {
            pse,
            m: (widths.phys_bits as u32).clamp(32, 40),
        }
    }

    /// Reserved bits of a PDE that maps a 4-MByte page: bits 21:(M-19)
    /// (table 4-4).
    #[inline]
    fn rsvd_4m(&self) -> u64 {
        let lo = self.m - 19; // 13 when M = 32, 21 when M = 40
        let hi_excl = 22;
        ((1u64 << hi_excl) - 1) & !((1u64 << lo) - 1)
    }
}

impl Format for Legacy32 {
    const ENTRY: EntrySize = EntrySize::Four;
    const A_BIT: u32 = 5;
    const D_BIT: u32 = 6;

    #[inline]
    fn index(&self, addr: u64, level: u8) -> u64 {
        (addr >> (12 + 10 * (level as u32 - 1))) & 0x3ff
    }
    #[inline]
    fn present(&self, e: u64) -> bool {
        e & 1 != 0
    }
    fn decode(&self, e: u64, level: u8) -> Decoded {
        if level == 2 && self.pse && e & PS != 0 {
            if e & self.rsvd_4m() != 0 {
                return Decoded::Reserved;
            }
            let high = (e >> 13) & ((1u64 << (self.m - 32)) - 1);
            Decoded::Leaf((e & 0xffc0_0000) | (high << 32), PageSize::Size4M)
        } else if level == 2 {
            Decoded::Table(e & 0xffff_f000)
        } else {
            Decoded::Leaf(e & 0xffff_f000, PageSize::Size4K)
        }
    }
    #[inline]
    fn rights(&self, e: u64, _level: u8) -> Rights {
        ((e >> 1) & 3) as u8 | RIGHT_X
    }
    #[inline]
    fn has_accessed(&self, _level: u8) -> bool {
        true
    }
    #[inline]
    fn has_dirty(&self) -> bool {
        true
    }
}

/// PAE paging (SDM Vol. 3A 4.4, tables 4-8 to 4-11). Level 3 is the PDPTE;
/// normally its entries come from the PDPTE registers and the walk starts at
/// level 2, but under AMD nested paging they are read from memory.
#[derive(Clone, Copy, Debug)]
pub struct Pae {
    /// IA32_EFER.NXE: bit 63 is XD, else reserved.
    pub nxe: bool,
    /// MAXPHYADDR.
    pub widths: AddressWidths,
}

impl Pae {
    /// Reserved bits of a PDPTE: 2:1, 8:5 and 63:M (table 4-8). Checked when
    /// the PDPTE registers are loaded.
    pub const fn pdpte_reserved(widths: AddressWidths) -> u64 {
        0x1e6 | !widths.phys_mask()
    }

    /// Bits 62:M, and 63 without NXE: reserved in PAE PDEs and PTEs.
    #[inline]
    fn rsvd_high(&self) -> u64 {
        let r = !self.widths.phys_mask() & !XD;
        if self.nxe {
            r
        } else {
            r | XD
        }
    }
}

impl Format for Pae {
    const ENTRY: EntrySize = EntrySize::Eight;
    const A_BIT: u32 = 5;
    const D_BIT: u32 = 6;

    #[inline]
    fn index(&self, addr: u64, level: u8) -> u64 {
        if level == 3 {
            (addr >> 30) & 3
        } else {
            index9(addr, level)
        }
    }
    #[inline]
    fn present(&self, e: u64) -> bool {
        e & 1 != 0
    }
    fn decode(&self, e: u64, level: u8) -> Decoded {
        let frame = frame_bits(self.widths);
        match level {
            3 => {
                if e & Self::pdpte_reserved(self.widths) != 0 {
                    Decoded::Reserved
                } else {
                    Decoded::Table(e & frame)
                }
            }
            2 if e & PS != 0 => {
                if e & (self.rsvd_high() | 0x1f_e000) != 0 {
                    Decoded::Reserved
                } else {
                    Decoded::Leaf(e & frame & !0x1f_ffff, PageSize::Size2M)
                }
            }
            _ if e & self.rsvd_high() != 0 => Decoded::Reserved,
            2 => Decoded::Table(e & frame),
            _ => Decoded::Leaf(e & frame, PageSize::Size4K),
        }
    }
    #[inline]
    fn rights(&self, e: u64, level: u8) -> Rights {
        if level == 3 {
            // PDPTEs carry no access rights (bits 2:1 and 63 are reserved).
            return !0;
        }
        let x = if self.nxe && e & XD != 0 { 0 } else { RIGHT_X };
        ((e >> 1) & 3) as u8 | x
    }
    #[inline]
    fn has_accessed(&self, level: u8) -> bool {
        // PDPTEs have no accessed flag (bits 8:5 are reserved).
        level != 3
    }
    #[inline]
    fn has_dirty(&self) -> bool {
        true
    }
}

/// IA-32e paging, 4- and 5-level (SDM Vol. 3A 4.5, tables 4-14 to 4-20); also
/// the format of AMD nested page tables in a long-mode host (APM Vol. 2
/// 15.25.5).
#[derive(Clone, Copy, Debug)]
pub struct Ia32e {
    /// IA32_EFER.NXE: bit 63 is XD, else reserved.
    pub nxe: bool,
    /// 1-GByte pages supported.
    pub page_1g: bool,
    /// MAXPHYADDR.
    pub widths: AddressWidths,
}

impl Ia32e {
    #[inline]
    fn rsvd(&self) -> u64 {
        let r = above_maxphy_51(self.widths);
        if self.nxe {
            r
        } else {
            r | XD
        }
    }
}

impl Format for Ia32e {
    const ENTRY: EntrySize = EntrySize::Eight;
    const A_BIT: u32 = 5;
    const D_BIT: u32 = 6;

    #[inline]
    fn index(&self, addr: u64, level: u8) -> u64 {
        index9(addr, level)
    }
    #[inline]
    fn present(&self, e: u64) -> bool {
        e & 1 != 0
    }
    fn decode(&self, e: u64, level: u8) -> Decoded {
        let frame = frame_bits(self.widths);
        let rsvd = self.rsvd();
        if e & rsvd != 0 {
            return Decoded::Reserved;
        }
        match level {
            4 | 5 if e & PS != 0 => Decoded::Reserved,
            3 if e & PS != 0 => {
                if !self.page_1g || e & 0x3fff_e000 != 0 {
                    Decoded::Reserved
                } else {
                    Decoded::Leaf(e & frame & !0x3fff_ffff, PageSize::Size1G)
                }
            }
            2 if e & PS != 0 => {
                if e & 0x1f_e000 != 0 {
                    Decoded::Reserved
                } else {
                    Decoded::Leaf(e & frame & !0x1f_ffff, PageSize::Size2M)
                }
            }
            1 => Decoded::Leaf(e & frame, PageSize::Size4K),
            _ => Decoded::Table(e & frame),
        }
    }
    #[inline]
    fn rights(&self, e: u64, _level: u8) -> Rights {
        let x = if self.nxe && e & XD != 0 { 0 } else { RIGHT_X };
        ((e >> 1) & 3) as u8 | x
    }
    #[inline]
    fn has_accessed(&self, _level: u8) -> bool {
        true
    }
    #[inline]
    fn has_dirty(&self) -> bool {
        true
    }
}

/// EPT paging-structure entries (SDM Vol. 3C 29.3.2, tables 29-1 to 29-6;
/// misconfigurations per 29.3.3.1).
#[derive(Clone, Copy, Debug)]
pub struct EptFormat {
    /// MAXPHYADDR.
    pub widths: AddressWidths,
    /// Execute-only translations supported (IA32_VMX_EPT_VPID_CAP bit 0).
    pub exec_only: bool,
    /// 1-GByte EPT pages supported (IA32_VMX_EPT_VPID_CAP bit 17).
    pub page_1g: bool,
    /// The "mode-based execute control for EPT" VM-execution control.
    pub mbec: bool,
    /// Accessed and dirty flags enabled (EPTP bit 6).
    pub ad: bool,
}

/// EPT bit 10: execute access for user-mode linear addresses (MBEC).
const EPT_UX_BIT: u64 = 1 << 10;

impl EptFormat {
    /// True if this EPT memory type (bits 5:3 of a leaf, or EPTP bits 2:0)
    /// is one the SDM defines: 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB).
    #[inline]
    pub const fn memory_type_valid(mt: u64) -> bool {
        matches!(mt, 0 | 1 | 4 | 5 | 6)
    }

    /// The misconfiguration rules on bits 2:0 (and 10) of a present entry.
    #[inline]
    fn bad_permissions(&self, e: u64) -> bool {
        let r = e & 1 != 0;
        let w = e & 2 != 0;
        let x = e & 4 != 0 || (self.mbec && e & EPT_UX_BIT != 0);
        // Write without read (010b, 110b); execute without read when
        // execute-only translations are not supported.
        (w && !r) || (x && !r && !self.exec_only)
    }
}

impl Format for EptFormat {
    const ENTRY: EntrySize = EntrySize::Eight;
    const A_BIT: u32 = 8;
    const D_BIT: u32 = 9;

    #[inline]
    fn index(&self, addr: u64, level: u8) -> u64 {
        index9(addr, level)
    }
    #[inline]
    fn present(&self, e: u64) -> bool {
        e & 7 != 0 || (self.mbec && e & EPT_UX_BIT != 0)
    }
    fn decode(&self, e: u64, level: u8) -> Decoded {
        let frame = frame_bits(self.widths);
        if self.bad_permissions(e) || e & above_maxphy_51(self.widths) != 0 {
            return Decoded::Reserved;
        }
        let leaf = |mask: u64, size: PageSize| {
            if e & mask != 0 || !Self::memory_type_valid((e >> 3) & 7) {
                Decoded::Reserved
            } else {
                Decoded::Leaf(e & frame & !size.offset_mask(), size)
            }
        };
        match level {
            // PML5E, PML4E: bits 7:3 reserved (including PS).
            4 | 5 if e & 0xf8 != 0 => Decoded::Reserved,
            3 if e & PS != 0 => {
                if self.page_1g {
                    leaf(0x3fff_f000, PageSize::Size1G)
                } else {
                    Decoded::Reserved
                }
            }
            2 if e & PS != 0 => leaf(0x1f_f000, PageSize::Size2M),
            1 => leaf(0, PageSize::Size4K),
            // Non-leaf PDPTE and PDE: bits 6:3 reserved.
            2 | 3 if e & 0x78 != 0 => Decoded::Reserved,
            _ => Decoded::Table(e & frame),
        }
    }
    #[inline]
    fn rights(&self, e: u64, _level: u8) -> Rights {
        let rwx = (e & 7) as u8;
        let ux = if self.mbec {
            if e & EPT_UX_BIT != 0 {
                EPT_UX
            } else {
                0
            }
        } else if e & 4 != 0 {
            EPT_UX
        } else {
            0
        };
        rwx | ux
    }
    #[inline]
    fn has_accessed(&self, _level: u8) -> bool {
        self.ad
    }
    #[inline]
    fn has_dirty(&self) -> bool {
        self.ad
    }
}

/// The leaf attributes guest formats share: global, PAT index, protection key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafAttrs {
    /// G flag (bit 8).
    pub global: bool,
    /// PAT index (SDM Vol. 3A 4.9.2).
    pub pat_index: u8,
    /// Bits 62:59 in IA-32e paging.
    pub pkey: u8,
}

/// Reads the global flag, PAT index and protection key of a guest leaf entry.
/// The PAT bit is bit 7 in a PTE and bit 12 in a PDE or PDPTE that maps a page.
pub fn leaf_attrs(e: u64, size: PageSize, ia32e: bool) -> LeafAttrs {
    let pat = if size == PageSize::Size4K {
        (e >> 7) & 1
    } else {
        (e >> 12) & 1
    };
    LeafAttrs {
        global: e & (1 << 8) != 0,
        pat_index: ((pat << 2) | ((e >> 3) & 3)) as u8,
        pkey: if ia32e { ((e >> 59) & 0xf) as u8 } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W46: AddressWidths = AddressWidths {
        phys_bits: 46,
        linear_bits: 48,
    };

    #[test]
    fn pse36_frames_and_reserved_bits() {
        let f = Legacy32::new(true, W46);
        assert_eq!(f.m, 40);
        // PDE mapping 4 MiB at 0x12_0040_0000 (bits 39:32 = 0x12).
        let e = 0x0040_0000 | (0x12 << 13) | PS | 1;
        assert_eq!(
            f.decode(e, 2),
            Decoded::Leaf(0x12_0040_0000, PageSize::Size4M)
        );
        assert_eq!(f.decode(e | (1 << 21), 2), Decoded::Reserved);
        let f36 = Legacy32::new(
            true,
            AddressWidths {
                phys_bits: 36,
                linear_bits: 48,
            },
        );
        assert_eq!(f36.decode(e, 2), Decoded::Reserved); // bit 17 set: above 35
        assert_eq!(
            f36.decode(0x0040_0000 | (0x3 << 13) | PS | 1, 2),
            Decoded::Leaf(0x3_0040_0000, PageSize::Size4M)
        );
        // Without PSE the PS bit is ignored.
        let nopse = Legacy32::new(false, W46);
        assert_eq!(
            nopse.decode(e, 2),
            Decoded::Table(0x0040_0000 | (0x12 << 13) & 0xffff_f000)
        );
    }

    #[test]
    fn ia32e_reserved_bits() {
        let f = Ia32e {
            nxe: false,
            page_1g: false,
            widths: W46,
        };
        assert_eq!(f.decode(1 | XD, 1), Decoded::Reserved);
        assert_eq!(f.decode(1 | (1 << 46), 1), Decoded::Reserved);
        assert_eq!(
            f.decode(1 | (1 << 52), 1),
            Decoded::Leaf(0, PageSize::Size4K)
        );
        assert_eq!(f.decode(1 | PS, 4), Decoded::Reserved);
        assert_eq!(f.decode(1 | PS, 3), Decoded::Reserved); // no 1G pages
        assert_eq!(f.decode(1 | PS | (1 << 13), 2), Decoded::Reserved);
        assert_eq!(
            f.decode(1 | PS | 0x20_0000, 2),
            Decoded::Leaf(0x20_0000, PageSize::Size2M)
        );
    }

    #[test]
    fn ept_misconfigurations() {
        let f = EptFormat {
            widths: W46,
            exec_only: false,
            page_1g: true,
            mbec: false,
            ad: false,
        };
        assert_eq!(f.decode(0b010, 4), Decoded::Reserved); // write-only
        assert_eq!(f.decode(0b110, 4), Decoded::Reserved); // write/execute
        assert_eq!(f.decode(0b100, 4), Decoded::Reserved); // exec-only unsupported
        let xo = EptFormat {
            exec_only: true,
            ..f
        };
        assert_eq!(xo.decode(0b100, 4), Decoded::Table(0));
        assert_eq!(f.decode(0b111 | (2 << 3), 1), Decoded::Reserved); // MT 2
        assert_eq!(
            f.decode(0b111 | (6 << 3) | 0x5000, 1),
            Decoded::Leaf(0x5000, PageSize::Size4K)
        );
        assert_eq!(f.decode(0b111 | (1 << 3), 4), Decoded::Reserved); // bit 3 in PML4E
        assert_eq!(f.decode(0b111 | PS, 4), Decoded::Reserved);
        assert_eq!(f.decode(0b111 | (1 << 5), 2), Decoded::Reserved);
        assert!(!f.present(EPT_UX_BIT));
        let mbec = EptFormat {
            mbec: true,
            exec_only: true,
            ..f
        };
        assert!(mbec.present(EPT_UX_BIT));
        assert_eq!(mbec.rights(EPT_UX_BIT | 1, 1), EPT_R | EPT_UX);
    }

    #[test]
    fn pat_index_positions() {
        let pte = (1 << 7) | (1 << 4) | (1 << 8);
        let a = leaf_attrs(pte, PageSize::Size4K, true);
        assert_eq!(a.pat_index, 0b110);
        assert!(a.global);
        let pde = (1 << 12) | (1 << 3) | (0xa << 59);
        let b = leaf_attrs(pde, PageSize::Size2M, true);
        assert_eq!(b.pat_index, 0b101);
        assert_eq!(b.pkey, 0xa);
        assert_eq!(leaf_attrs(pde, PageSize::Size2M, false).pkey, 0);
    }
}
