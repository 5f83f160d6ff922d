//! VMCB fields staged by value on the stack: what #VMEXIT writes and VMRUN
//! saves to the host save area (APM Vol. 2 15.5.1, 15.6) field by field,
//! without a 4-KiB image per world switch. Values are truncated to the
//! field's width exactly as [`VmcbImage::set`] truncates them, so a field
//! staged here reaches memory with the same bytes.

use super::image::{VmcbImage, VmcbSeg, VmcbSegment, VmcbTable};
use super::layout::VmcbField;
use mmu::TableRegister;

/// The most fields one world switch stages (#VMEXIT writes 40-odd).
const CAPACITY: usize = 64;

/// A field's value truncated to its width (fields wider than eight bytes keep
/// their first eight).
#[inline]
fn truncate(f: VmcbField, v: u64) -> u64 {
    match f.width() {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

/// Reading fields by value: a VMCB image, or fields staged by value.
pub trait FieldSource {
    /// A field's value, zero-extended (see [`VmcbImage::get`]).
    fn get(&self, f: VmcbField) -> u64;

    /// A segment register's raw VMCB form.
    fn seg(&self, s: VmcbSeg) -> VmcbSegment {
        let [sel, attrib, limit, base] = s.fields();
        VmcbSegment {
            selector: self.get(sel) as u16,
            attrib: self.get(attrib) as u16,
            limit: self.get(limit) as u32,
            base: self.get(base),
        }
    }

    /// GDTR or IDTR.
    fn table(&self, t: VmcbTable) -> TableRegister {
        let (limit, base) = t.fields();
        TableRegister {
            base: self.get(base),
            limit: self.get(limit) as u16,
        }
    }
}

impl FieldSource for VmcbImage {
    #[inline]
    fn get(&self, f: VmcbField) -> u64 {
        VmcbImage::get(self, f)
    }
}

/// Number of VMCB fields (the layout table's rows).
const FIELDS: usize = VmcbField::ALL.len();

/// Fields staged by value, in the order they were set (each field once: a
/// second set replaces the value in place). Looked up by the field's row, so
/// staging and reading back are constant time.
#[derive(Clone, Debug)]
pub struct StagedFields {
    /// (field, value) in staging order.
    order: [(VmcbField, u64); CAPACITY],
    len: usize,
    /// 1 + the index in `order` of each field's row, 0 if not staged.
    slot: [u8; FIELDS],
}

impl Default for StagedFields {
    fn default() -> Self {
        Self::new()
    }
}

impl StagedFields {
    /// Nothing staged.
    pub fn new() -> Self {
        Self {
            order: [(VmcbField::InterceptCr, 0); CAPACITY],
            len: 0,
            slot: [0; FIELDS],
        }
    }

    /// Stages `f` = `v`, truncated to the field's width.
    ///
    /// # Panics
    /// If more than 64 distinct fields are staged (a bug in the caller: the
    /// world switches stage fixed lists well below that).
    #[inline]
    pub fn set(&mut self, f: VmcbField, v: u64) {
        let v = truncate(f, v);
        let row = f as usize;
        match self.slot[row] {
            0 => {
                self.order[self.len] = (f, v);
                self.len += 1;
                self.slot[row] = self.len as u8;
            }
            i => self.order[usize::from(i) - 1].1 = v,
        }
    }

    /// Stages a segment register's four fields.
    pub fn set_seg(&mut self, s: VmcbSeg, v: VmcbSegment) {
        let [sel, attrib, limit, base] = s.fields();
        self.set(sel, v.selector.into());
        self.set(attrib, v.attrib.into());
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }

    /// Stages GDTR or IDTR.
    pub fn set_table(&mut self, t: VmcbTable, v: TableRegister) {
        let (limit, base) = t.fields();
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }

    /// The staged fields with their values, in staging order.
    pub fn iter(&self) -> impl Iterator<Item = (VmcbField, u64)> + '_ {
        self.fields().iter().copied()
    }

    /// The staged fields with their values, in staging order, as a slice
    /// (what [`crate::PhysMem::write_fields`] takes).
    pub fn fields(&self) -> &[(VmcbField, u64)] {
        &self.order[..self.len]
    }
}

impl FieldSource for StagedFields {
    /// The staged value, 0 for a field not staged.
    #[inline]
    fn get(&self, f: VmcbField) -> u64 {
        match self.slot[f as usize] {
            0 => 0,
            i => self.order[usize::from(i) - 1].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmu::TableRegister;

    #[test]
    fn rows_are_discriminants() {
        for (row, f) in VmcbField::ALL.iter().enumerate() {
            assert_eq!(*f as usize, row, "{}", f.name());
        }
    }

    #[test]
    fn staging_truncates_like_the_image() {
        let mut s = StagedFields::new();
        let mut img = VmcbImage::zeroed();
        for f in VmcbField::ALL {
            if f.width() <= 8 {
                s.set(*f, u64::MAX - f.offset() as u64);
                img.set(*f, u64::MAX - f.offset() as u64);
            }
            if s.len == CAPACITY {
                break;
            }
        }
        for (f, v) in s.iter() {
            assert_eq!(v, img.get(f), "{}", f.name());
            assert_eq!(FieldSource::get(&s, f), img.get(f));
        }
    }

    #[test]
    fn segments_and_tables_round_trip() {
        let mut s = StagedFields::new();
        let seg = VmcbSegment {
            selector: 0x10,
            attrib: 0xa9b,
            limit: 0xffff_ffff,
            base: 0x1234_5678_9abc,
        };
        s.set_seg(VmcbSeg::Cs, seg);
        let t = TableRegister {
            base: 0xffff_8000_0000_1000,
            limit: 0xfff,
        };
        s.set_table(VmcbTable::Idtr, t);
        s.set(VmcbField::Rip, 1);
        s.set(VmcbField::Rip, 2);
        assert_eq!(s.seg(VmcbSeg::Cs), seg);
        assert_eq!(s.table(VmcbTable::Idtr), t);
        assert_eq!(s.iter().count(), 7, "a second set replaces the first");
        assert_eq!(FieldSource::get(&s, VmcbField::Rip), 2);
        assert_eq!(FieldSource::get(&s, VmcbField::Rax), 0);
    }
}
