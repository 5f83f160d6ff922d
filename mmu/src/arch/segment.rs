//! Segment selectors, descriptors and the hidden part of segment registers
//! (SDM Vol. 3A 3.4, "Logical and linear addresses", and 3.5, "System descriptor
//! types").

use serde::{Deserialize, Serialize};

/// A segment selector (SDM Vol. 3A 3.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Selector(pub u16);

impl Selector {
    /// Requested privilege level.
    #[inline]
    pub const fn rpl(self) -> u8 {
        (self.0 & 3) as u8
    }
    /// Table indicator: true for the LDT.
    #[inline]
    pub const fn ti(self) -> bool {
        self.0 & 4 != 0
    }
    /// Descriptor index.
    #[inline]
    pub const fn index(self) -> u16 {
        self.0 >> 3
    }
    /// True for a null selector (index 0 in the GDT, any RPL).
    #[inline]
    pub const fn is_null(self) -> bool {
        self.0 & !3 == 0
    }
    /// Byte offset of the descriptor in its table.
    #[inline]
    pub const fn offset(self) -> u64 {
        (self.0 & !7) as u64
    }
}

/// Segment access rights in the layout the VMCS uses (SDM Vol. 3C 25.4.1,
/// table 25-2), which is the descriptor's bits 40-55 with bits 8-11 cleared:
/// type (3:0), S (4), DPL (6:5), P (7), AVL (12), L (13), D/B (14), G (15),
/// and "segment unusable" (16).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessRights(pub u32);

impl AccessRights {
    /// The "segment unusable" bit (VMX only; a null selector loaded in protected
    /// mode leaves the register unusable).
    pub const UNUSABLE: u32 = 1 << 16;

    /// From descriptor bits 40-55 (the second dword's bits 8-23).
    #[inline]
    pub const fn from_descriptor(desc: u64) -> Self {
        Self(((desc >> 40) as u32) & 0xf0ff)
    }
    /// The 4-bit type field.
    #[inline]
    pub const fn typ(self) -> u8 {
        (self.0 & 0xf) as u8
    }
    /// S: 1 for code/data, 0 for system.
    #[inline]
    pub const fn s(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Descriptor privilege level.
    #[inline]
    pub const fn dpl(self) -> u8 {
        ((self.0 >> 5) & 3) as u8
    }
    /// Present.
    #[inline]
    pub const fn present(self) -> bool {
        self.0 & 0x80 != 0
    }
    /// Available to software.
    #[inline]
    pub const fn avl(self) -> bool {
        self.0 & 0x1000 != 0
    }
    /// 64-bit code segment.
    #[inline]
    pub const fn l(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// Default operation size (D) / big (B).
    #[inline]
    pub const fn db(self) -> bool {
        self.0 & 0x4000 != 0
    }
    /// Granularity.
    #[inline]
    pub const fn g(self) -> bool {
        self.0 & 0x8000 != 0
    }
    /// Segment unusable.
    #[inline]
    pub const fn unusable(self) -> bool {
        self.0 & Self::UNUSABLE != 0
    }
    /// Code segment (S=1, type bit 3 set).
    #[inline]
    pub const fn is_code(self) -> bool {
        self.s() && self.0 & 0x8 != 0
    }
    /// Data segment (S=1, type bit 3 clear).
    #[inline]
    pub const fn is_data(self) -> bool {
        self.s() && self.0 & 0x8 == 0
    }
    /// Conforming code segment.
    #[inline]
    pub const fn conforming(self) -> bool {
        self.is_code() && self.0 & 0x4 != 0
    }
    /// Readable (code) or always true (data).
    #[inline]
    pub const fn readable(self) -> bool {
        self.is_data() || (self.is_code() && self.0 & 0x2 != 0)
    }
    /// Writable data segment.
    #[inline]
    pub const fn writable(self) -> bool {
        self.is_data() && self.0 & 0x2 != 0
    }
    /// Expand-down data segment.
    #[inline]
    pub const fn expand_down(self) -> bool {
        self.is_data() && self.0 & 0x4 != 0
    }
    /// Accessed bit.
    #[inline]
    pub const fn accessed(self) -> bool {
        self.0 & 1 != 0
    }
    /// The 12-bit "attrib" form of the AMD VMCB segment state (APM Vol. 2 15.5.1):
    /// descriptor bits 40-47 in 7:0 and bits 52-55 in 11:8.
    #[inline]
    pub const fn to_svm_attrib(self) -> u16 {
        ((self.0 & 0xff) | ((self.0 >> 4) & 0xf00)) as u16
    }
    /// Inverse of [`AccessRights::to_svm_attrib`].
    #[inline]
    pub const fn from_svm_attrib(attrib: u16) -> Self {
        let a = attrib as u32;
        Self((a & 0xff) | ((a & 0xf00) << 4))
    }
}

impl core::fmt::Debug for AccessRights {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AccessRights({:#x})", self.0)
    }
}

/// System-segment and gate descriptor types, S = 0 (SDM Vol. 3A table 3-2).
pub mod system_type {
    /// 16-bit TSS (available).
    pub const TSS16_AVAILABLE: u8 = 1;
    /// LDT.
    pub const LDT: u8 = 2;
    /// 16-bit TSS (busy).
    pub const TSS16_BUSY: u8 = 3;
    /// 16-bit call gate.
    pub const CALL_GATE16: u8 = 4;
    /// Task gate.
    pub const TASK_GATE: u8 = 5;
    /// 16-bit interrupt gate.
    pub const INT_GATE16: u8 = 6;
    /// 16-bit trap gate.
    pub const TRAP_GATE16: u8 = 7;
    /// 32-bit TSS (available); 64-bit TSS in IA-32e mode.
    pub const TSS_AVAILABLE: u8 = 9;
    /// 32-bit TSS (busy); 64-bit TSS in IA-32e mode.
    pub const TSS_BUSY: u8 = 11;
    /// 32-bit call gate; 64-bit call gate in IA-32e mode.
    pub const CALL_GATE: u8 = 12;
    /// 32-bit interrupt gate; 64-bit in IA-32e mode.
    pub const INT_GATE: u8 = 14;
    /// 32-bit trap gate; 64-bit in IA-32e mode.
    pub const TRAP_GATE: u8 = 15;
}

/// A segment descriptor as stored in the GDT or LDT (SDM Vol. 3A 3.4.5,
/// figure 3-8). System descriptors in IA-32e mode take 16 bytes; the upper 8
/// bytes carry base bits 63:32 ([`Descriptor::base64`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Descriptor(pub u64);

impl Descriptor {
    /// Base address bits 31:0.
    #[inline]
    pub const fn base(self) -> u64 {
        ((self.0 >> 16) & 0xff_ffff) | ((self.0 >> 32) & 0xff00_0000)
    }
    /// Base for a 16-byte system descriptor whose upper half is `high`.
    #[inline]
    pub const fn base64(self, high: u64) -> u64 {
        self.base() | ((high & 0xffff_ffff) << 32)
    }
    /// The raw 20-bit limit field.
    #[inline]
    pub const fn raw_limit(self) -> u32 {
        ((self.0 & 0xffff) | ((self.0 >> 32) & 0xf_0000)) as u32
    }
    /// The limit in bytes after applying granularity.
    #[inline]
    pub const fn limit(self) -> u32 {
        let raw = self.raw_limit();
        if self.access_rights().g() {
            (raw << 12) | 0xfff
        } else {
            raw
        }
    }
    /// The access rights in VMX layout.
    #[inline]
    pub const fn access_rights(self) -> AccessRights {
        AccessRights::from_descriptor(self.0)
    }
    /// The descriptor with its accessed bit set.
    #[inline]
    pub const fn with_accessed(self) -> Self {
        Self(self.0 | 1 << 40)
    }
    /// The segment cache this descriptor loads for `selector`.
    #[inline]
    pub const fn to_cache(self, selector: Selector) -> SegmentCache {
        SegmentCache {
            selector,
            base: self.base(),
            limit: self.limit(),
            attr: self.access_rights(),
        }
    }
    /// Gate fields: target selector.
    #[inline]
    pub const fn gate_selector(self) -> Selector {
        Selector((self.0 >> 16) as u16)
    }
    /// Gate fields: target offset bits 31:0 (16-bit gates use 15:0).
    #[inline]
    pub const fn gate_offset(self) -> u64 {
        (self.0 & 0xffff) | ((self.0 >> 32) & 0xffff_0000)
    }
    /// Gate fields: interrupt stack table index (64-bit interrupt/trap gates).
    #[inline]
    pub const fn gate_ist(self) -> u8 {
        ((self.0 >> 32) & 7) as u8
    }
    /// Gate fields: parameter count (call gates).
    #[inline]
    pub const fn gate_param_count(self) -> u8 {
        ((self.0 >> 32) & 0x1f) as u8
    }
}

/// The visible and hidden parts of a segment register (SDM Vol. 3A 3.4.3):
/// selector plus the cached base, limit (in bytes) and access rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SegmentCache {
    /// The visible selector.
    pub selector: Selector,
    /// Base address.
    pub base: u64,
    /// Limit in bytes (granularity applied).
    pub limit: u32,
    /// Access rights, VMX layout.
    pub attr: AccessRights,
}

impl SegmentCache {
    /// The state of a segment register in real-address mode after loading
    /// `selector` (SDM Vol. 3A 20.1.1): base = selector * 16, limit and attributes
    /// unchanged.
    #[inline]
    pub fn load_real(&mut self, selector: u16) {
        self.selector = Selector(selector);
        self.base = (selector as u64) << 4;
    }

    /// A real-mode data segment (present, writable, accessed, 64 KiB limit), as
    /// after reset or in virtual-8086 mode (SDM Vol. 3A 20.2.1).
    pub const fn real_mode(selector: u16, dpl3: bool) -> Self {
        Self {
            selector: Selector(selector),
            base: (selector as u64) << 4,
            limit: 0xffff,
            attr: AccessRights(0x93 | if dpl3 { 0x60 } else { 0 }),
        }
    }

    /// A flat 4-GiB segment with the given type, DPL, and D/B and L bits.
    pub const fn flat(selector: u16, typ: u8, dpl: u8, db: bool, l: bool) -> Self {
        Self {
            selector: Selector(selector),
            base: 0,
            limit: 0xffff_ffff,
            attr: AccessRights(
                typ as u32
                    | 0x10
                    | ((dpl as u32) << 5)
                    | 0x80
                    | ((l as u32) << 13)
                    | ((db as u32) << 14)
                    | 0x8000,
            ),
        }
    }

    /// A null selector loaded into a data segment register: unusable.
    pub const fn null(selector: u16) -> Self {
        Self {
            selector: Selector(selector),
            base: 0,
            limit: 0,
            attr: AccessRights(AccessRights::UNUSABLE),
        }
    }
}

/// A descriptor-table register, GDTR or IDTR (SDM Vol. 3A 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TableRegister {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes.
    pub limit: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_code_descriptor() {
        // The classic 0x00cf9a000000ffff: flat 32-bit ring-0 code.
        let d = Descriptor(0x00cf_9a00_0000_ffff);
        assert_eq!(d.base(), 0);
        assert_eq!(d.limit(), 0xffff_ffff);
        let ar = d.access_rights();
        assert!(ar.is_code() && ar.readable() && ar.present() && ar.db() && ar.g());
        assert_eq!(ar.dpl(), 0);
        assert_eq!(ar.0, 0xc09a);
        // 64-bit code: 0x00af9a000000ffff.
        assert!(Descriptor(0x00af_9a00_0000_ffff).access_rights().l());
    }

    #[test]
    fn svm_attrib_round_trip() {
        let ar = AccessRights(0xc09b);
        assert_eq!(ar.to_svm_attrib(), 0xc9b);
        assert_eq!(AccessRights::from_svm_attrib(0xc9b), ar);
    }

    #[test]
    fn base_assembly() {
        let d = Descriptor(0x12cf_9a34_5678_ffff);
        assert_eq!(d.base(), 0x1234_5678);
        assert_eq!(d.base64(0x9abc_def0), 0x9abc_def0_1234_5678);
    }

    #[test]
    fn selectors() {
        let s = Selector(0x2b);
        assert_eq!(s.rpl(), 3);
        assert!(!s.ti());
        assert_eq!(s.index(), 5);
        assert!(Selector(3).is_null());
    }
}
