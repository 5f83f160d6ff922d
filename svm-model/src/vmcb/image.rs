//! A VMCB as bytes: [`VmcbImage`] (an owned copy of the 4-KiB page, what VMRUN
//! reads) and field-granular writes straight to memory (what #VMEXIT does).
//!
//! Segment registers are stored "similar to SMM": selector, 12-bit attributes
//! (descriptor bits 47:40 and 55:52), expanded 32-bit limit, 64-bit base
//! (APM Vol. 2 15.5.1, "Segment State in the VMCB").

use super::layout::{VmcbField, VMCB_SIZE};
use crate::mem::{read_bytes, PhysMem, SvmAccess};
use mmu::{canonicalize, AccessRights, SegmentCache, Selector, TableRegister};
use serde::{Deserialize, Serialize};

/// An owned image of a VMCB page.
#[derive(Clone, PartialEq, Eq)]
pub struct VmcbImage(Box<[u8; VMCB_SIZE]>);

impl Serialize for VmcbImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0[..])
    }
}

impl<'de> Deserialize<'de> for VmcbImage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        let bytes: [u8; VMCB_SIZE] = v
            .try_into()
            .map_err(|_| serde::de::Error::custom("a VMCB image is 4096 bytes"))?;
        Ok(Self::from_bytes(&bytes))
    }
}

impl Default for VmcbImage {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl core::fmt::Debug for VmcbImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("VmcbImage");
        for field in VmcbField::ALL {
            let v = self.get(*field);
            if v != 0 {
                d.field(field.name(), &format_args!("{v:#x}"));
            }
        }
        d.finish()
    }
}

impl VmcbImage {
    /// An all-zero VMCB.
    pub fn zeroed() -> Self {
        Self(Box::new([0; VMCB_SIZE]))
    }

    /// A VMCB from raw bytes.
    pub fn from_bytes(bytes: &[u8; VMCB_SIZE]) -> Self {
        Self(Box::new(*bytes))
    }

    /// Reads the VMCB page at physical address `pa` (one 4-KiB access).
    pub fn read<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, access: SvmAccess) -> Self {
        let mut img = Self::zeroed();
        img.read_from(mem, pa, access);
        img
    }

    /// Replaces this image with the VMCB page at physical address `pa` (one
    /// 4-KiB access, as [`VmcbImage::read`], reusing this image's storage).
    pub fn read_from<M: PhysMem + ?Sized>(&mut self, mem: &mut M, pa: u64, access: SvmAccess) {
        read_bytes(mem, pa, &mut self.0[..], access);
    }

    /// Replaces the first [`VMRUN_READ_END`] bytes of this image with the
    /// VMCB's at physical address `pa` (one access, as VMRUN reads it); the
    /// bytes above are left as they are.
    pub fn read_vmrun_part<M: PhysMem + ?Sized>(
        &mut self,
        mem: &mut M,
        pa: u64,
        access: SvmAccess,
    ) {
        read_bytes(mem, pa, &mut self.0[..VMRUN_READ_END], access);
    }

    /// Zeroes the bytes from [`VMRUN_READ_END`] on (the part VMRUN does not
    /// read).
    pub fn clear_above_vmrun_part(&mut self) {
        self.0[VMRUN_READ_END..].fill(0);
    }

    /// Writes the whole page to memory at `pa`.
    pub fn write<M: PhysMem + ?Sized>(&self, mem: &mut M, pa: u64, access: SvmAccess) {
        let _ = mem.write(pa, &self.0[..], access);
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; VMCB_SIZE] {
        &self.0
    }

    /// The raw bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8; VMCB_SIZE] {
        &mut self.0
    }

    /// A field's bytes.
    pub fn bytes(&self, f: VmcbField) -> &[u8] {
        &self.0[f.offset()..f.offset() + f.width()]
    }

    /// A field's bytes, mutably.
    pub fn bytes_mut(&mut self, f: VmcbField) -> &mut [u8] {
        &mut self.0[f.offset()..f.offset() + f.width()]
    }

    /// A field's value, little-endian, zero-extended. Fields wider than eight
    /// bytes (the guest instruction bytes) yield their first eight bytes.
    #[inline]
    pub fn get(&self, f: VmcbField) -> u64 {
        let at = f.offset();
        let b = &self.0[..];
        // Fixed-width loads: the world switches read and write many fields.
        match f.width() {
            1 => b[at].into(),
            2 => u16::from_le_bytes([b[at], b[at + 1]]).into(),
            4 => u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default()).into(),
            _ => u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default()),
        }
    }

    /// Sets a field, truncating `v` to the field's width (fields wider than
    /// eight bytes take `v` in their first eight bytes).
    #[inline]
    pub fn set(&mut self, f: VmcbField, v: u64) {
        let at = f.offset();
        let width = f.stored_width();
        // One 8-byte load and store with the field's bytes merged in: the
        // compiler turns a match of fixed-width copies into a call to
        // memcpy of run-time length, and #VMEXIT sets 40-odd fields.
        if let Some(word) = self.0.get_mut(at..at + 8) {
            let mask = u64::MAX >> (64 - 8 * width);
            let old = u64::from_le_bytes(word.try_into().unwrap_or_default());
            word.copy_from_slice(&(old & !mask | v & mask).to_le_bytes());
        } else {
            self.0[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        }
    }

    /// Copies one field's bytes from `other`.
    pub fn copy_field(&mut self, other: &VmcbImage, f: VmcbField) {
        self.copy_range(other, f.offset(), f.width());
    }

    /// Copies `len` bytes at offset `at` from `other`.
    pub(crate) fn copy_range(&mut self, other: &VmcbImage, at: usize, len: usize) {
        self.0[at..at + len].copy_from_slice(&other.0[at..at + len]);
    }

    /// A segment register's raw VMCB form (as every [`FieldSource`] reads
    /// it).
    pub fn seg(&self, s: VmcbSeg) -> VmcbSegment {
        super::staged::FieldSource::seg(self, s)
    }

    /// Stores a segment register's raw VMCB form.
    pub fn set_seg(&mut self, s: VmcbSeg, v: VmcbSegment) {
        let [sel, attrib, limit, base] = s.fields();
        self.set(sel, v.selector.into());
        self.set(attrib, v.attrib.into());
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }

    /// GDTR or IDTR.
    pub fn table(&self, t: VmcbTable) -> TableRegister {
        let (limit, base) = t.fields();
        TableRegister {
            base: self.get(base),
            limit: self.get(limit) as u16,
        }
    }

    /// Stores GDTR or IDTR (the limit field is 32 bits, of which 15:0 are
    /// implemented).
    pub fn set_table(&mut self, t: VmcbTable, v: TableRegister) {
        let (limit, base) = t.fields();
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }
}

/// The end of the part of the VMCB VMRUN reads: the control area and the
/// state-save area through the last field VMRUN loads, checks or may take
/// from its cache (the LBR virtualization group, APM Vol. 2 15.15.3, with
/// DBGEXTNCTL after it). SPEC_CTRL (not modelled) and the reserved bytes
/// above are not read.
pub const VMRUN_READ_END: usize = VmcbField::DbgExtnCtl.offset() + VmcbField::DbgExtnCtl.width();

/// Writes one field of the VMCB at `vmcb_pa` directly to memory.
pub fn write_field<M: PhysMem + ?Sized>(
    mem: &mut M,
    vmcb_pa: u64,
    f: VmcbField,
    v: u64,
    access: SvmAccess,
) {
    let n = f.stored_width();
    let _ = mem.write(vmcb_pa + f.offset() as u64, &v.to_le_bytes()[..n], access);
}

/// Writes one field's bytes (for fields wider than eight bytes).
pub fn write_field_bytes<M: PhysMem + ?Sized>(
    mem: &mut M,
    vmcb_pa: u64,
    f: VmcbField,
    bytes: &[u8],
    access: SvmAccess,
) {
    let n = bytes.len().min(f.width());
    let _ = mem.write(vmcb_pa + f.offset() as u64, &bytes[..n], access);
}

/// The segment registers with a slot in the VMCB state-save area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VmcbSeg {
    /// ES.
    Es,
    /// CS.
    Cs,
    /// SS.
    Ss,
    /// DS.
    Ds,
    /// FS.
    Fs,
    /// GS.
    Gs,
    /// LDTR.
    Ldtr,
    /// TR.
    Tr,
}

impl VmcbSeg {
    /// ES, CS, SS, DS, FS, GS in `mmu::SegReg` order.
    pub const SEGS: [VmcbSeg; 6] = [
        VmcbSeg::Es,
        VmcbSeg::Cs,
        VmcbSeg::Ss,
        VmcbSeg::Ds,
        VmcbSeg::Fs,
        VmcbSeg::Gs,
    ];

    /// The selector, attrib, limit and base fields.
    pub const fn fields(self) -> [VmcbField; 4] {
        use VmcbField as F;
        match self {
            VmcbSeg::Es => [F::EsSelector, F::EsAttrib, F::EsLimit, F::EsBase],
            VmcbSeg::Cs => [F::CsSelector, F::CsAttrib, F::CsLimit, F::CsBase],
            VmcbSeg::Ss => [F::SsSelector, F::SsAttrib, F::SsLimit, F::SsBase],
            VmcbSeg::Ds => [F::DsSelector, F::DsAttrib, F::DsLimit, F::DsBase],
            VmcbSeg::Fs => [F::FsSelector, F::FsAttrib, F::FsLimit, F::FsBase],
            VmcbSeg::Gs => [F::GsSelector, F::GsAttrib, F::GsLimit, F::GsBase],
            VmcbSeg::Ldtr => [F::LdtrSelector, F::LdtrAttrib, F::LdtrLimit, F::LdtrBase],
            VmcbSeg::Tr => [F::TrSelector, F::TrAttrib, F::TrLimit, F::TrBase],
        }
    }

    /// True for the registers that may hold a NULL segment, signalled by P = 0
    /// (CS and TR never do; SS's P is ignored in 64-bit mode).
    pub const fn nullable(self) -> bool {
        matches!(
            self,
            VmcbSeg::Es | VmcbSeg::Ds | VmcbSeg::Fs | VmcbSeg::Gs | VmcbSeg::Ldtr
        )
    }
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VmcbTable {
    /// GDTR.
    Gdtr,
    /// IDTR.
    Idtr,
}

impl VmcbTable {
    /// The limit and base fields.
    pub const fn fields(self) -> (VmcbField, VmcbField) {
        match self {
            VmcbTable::Gdtr => (VmcbField::GdtrLimit, VmcbField::GdtrBase),
            VmcbTable::Idtr => (VmcbField::IdtrLimit, VmcbField::IdtrBase),
        }
    }
}

/// A segment register in VMCB format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct VmcbSegment {
    /// Selector.
    pub selector: u16,
    /// Attributes: descriptor bits 47:40 in 7:0 and 55:52 in 11:8.
    pub attrib: u16,
    /// Expanded limit in bytes.
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

impl VmcbSegment {
    /// The P (present) bit; P = 0 signals a NULL segment where permissible.
    pub const fn present(self) -> bool {
        self.attrib & 0x80 != 0
    }

    /// The L bit (attrib bit 9).
    pub const fn l(self) -> bool {
        self.attrib & 0x200 != 0
    }

    /// The D/B bit (attrib bit 10).
    pub const fn db(self) -> bool {
        self.attrib & 0x400 != 0
    }

    /// The hidden-state cache loaded from this VMCB segment, with the base
    /// canonicalized to `linear_bits` (APM Vol. 2 15.5.1: VMRUN canonicalizes
    /// all loaded segment bases). A NULL segment (P = 0) in a register that can
    /// hold one is marked unusable, the workspace's convention for NULL.
    pub fn to_cache(self, seg: VmcbSeg, linear_bits: u8) -> SegmentCache {
        let mut attr = AccessRights::from_svm_attrib(self.attrib & 0xfff);
        if seg.nullable() && !self.present() {
            attr.0 |= AccessRights::UNUSABLE;
        }
        SegmentCache {
            selector: Selector(self.selector),
            base: canonicalize(self.base, linear_bits),
            limit: self.limit,
            attr,
        }
    }

    /// The VMCB form of a hidden-state cache (the unusable marker drops out; a
    /// segment nulled by the interpreter has no other attribute bits, so it is
    /// stored as all-zero attributes as the APM asks).
    pub fn from_cache(c: &SegmentCache) -> Self {
        Self {
            selector: c.selector.0,
            attrib: c.attr.to_svm_attrib(),
            limit: c.limit,
            base: c.base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::PageMem;

    #[test]
    fn get_set_round_trip_every_field() {
        let mut img = VmcbImage::zeroed();
        for (i, f) in VmcbField::ALL.iter().enumerate() {
            let v = 0x0123_4567_89ab_cdefu64.rotate_left(i as u32);
            img.set(*f, v);
            let mask = if f.width() >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * f.width())) - 1
            };
            assert_eq!(img.get(*f), v & mask, "{f:?}");
        }
        // Setting every field did not disturb any other.
        for (i, f) in VmcbField::ALL.iter().enumerate() {
            let v = 0x0123_4567_89ab_cdefu64.rotate_left(i as u32);
            let mask = if f.width() >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * f.width())) - 1
            };
            assert_eq!(img.get(*f), v & mask, "{f:?} clobbered");
        }
    }

    proptest::proptest! {
        /// `set` changes exactly the field's bytes (its first eight for a
        /// wider field) to `v` little-endian, as a byte-by-byte store does,
        /// whatever the image held around it.
        #[test]
        fn set_writes_exactly_the_field_bytes(
            row in 0..VmcbField::ALL.len(),
            v: u64,
            fill: u8,
        ) {
            let f = VmcbField::ALL[row];
            let mut img = VmcbImage::zeroed();
            img.as_bytes_mut().fill(fill);
            let mut want = img.clone();
            let n = f.stored_width();
            want.as_bytes_mut()[f.offset()..f.offset() + n].copy_from_slice(&v.to_le_bytes()[..n]);
            img.set(f, v);
            proptest::prop_assert_eq!(img, want);
        }
    }

    #[test]
    fn memory_round_trip() {
        let mut img = VmcbImage::zeroed();
        img.set(VmcbField::Rip, 0xffff_8000_1234_5678);
        img.set(VmcbField::GuestAsid, 7);
        let mut mem = PageMem::new();
        img.write(&mut mem, 0x5000, SvmAccess::VmcbWrite);
        let back = VmcbImage::read(&mut mem, 0x5000, SvmAccess::VmcbRead);
        assert_eq!(back, img);
        write_field(
            &mut mem,
            0x5000,
            VmcbField::GuestAsid,
            9,
            SvmAccess::VmcbWrite,
        );
        assert_eq!(mem.peek_u64(0x5058) as u32, 9);
    }

    #[test]
    fn segment_round_trip_and_null() {
        let cs = SegmentCache::flat(0x10, 0xb, 0, false, true);
        let v = VmcbSegment::from_cache(&cs);
        assert_eq!(v.attrib, 0xa9b);
        assert!(v.l() && !v.db() && v.present());
        assert_eq!(v.to_cache(VmcbSeg::Cs, 48), cs);
        let null = VmcbSegment::default();
        let c = null.to_cache(VmcbSeg::Ds, 48);
        assert!(c.attr.unusable());
        assert_eq!(VmcbSegment::from_cache(&c), null);
        // Bases are canonicalized on load.
        let high = VmcbSegment {
            base: 0x0000_8000_0000_0000,
            attrib: 0x93,
            ..VmcbSegment::default()
        };
        assert_eq!(high.to_cache(VmcbSeg::Fs, 48).base, 0xffff_8000_0000_0000);
    }
}
