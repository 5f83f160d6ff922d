//! VMCB fields staged by value: what #VMEXIT writes and VMRUN saves to the
//! host save area (APM Vol. 2 15.5.1, 15.6). The world switches write fixed
//! lists of fields, so each list is a [`FieldList`] whose layout (every
//! field's offset within the span the list covers, its width, and the
//! field-to-position map) is computed once, at compile time; the values are
//! staged in a [`Staged`] array in list order and reach memory through one
//! range check ([`crate::PhysMem::write_fields`]). Values are truncated to the
//! field's width exactly as [`VmcbImage::set`] truncates them, so a field
//! staged here reaches memory with the same bytes.

use super::image::{VmcbImage, VmcbSeg, VmcbSegment, VmcbTable};
use super::layout::VmcbField;
use mmu::TableRegister;

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
    #[inline]
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
    #[inline]
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

/// A fixed list of distinct VMCB fields (at most `N`) with its layout
/// precomputed: built by a `const fn`, so the world switches' lists are
/// tables in the binary, derived from the one layout table.
///
/// The list keeps the fields grouped by stored width (eight-byte fields
/// first, then four-, two- and one-byte ones; within a group in the order
/// given): staged values then lie in that order too, and storing or loading
/// them is one straight loop per width, with no per-field look-up of where a
/// value is or how wide its field is.
#[derive(Clone, Debug)]
pub struct FieldList<const N: usize> {
    /// The fields, grouped by width (the first `len` are in use).
    fields: [VmcbField; N],
    /// Number of fields in use.
    len: usize,
    /// Each field's offset relative to `lo`.
    rel: [u16; N],
    /// The end in the list of the eight-, four-, two- and one-byte fields.
    ends: [u8; 4],
    /// The lowest offset any field starts at.
    lo: u16,
    /// Bytes from `lo` to the end of the highest field.
    span: u16,
    /// 1 + each field's position in the list, by the field's row; 0 if absent.
    pos: [u8; FIELDS],
}

/// The layout of a [`FieldList`] as [`crate::PhysMem`] takes it: each field's
/// offset relative to `lo`, with the span they cover. The fields are grouped
/// by stored width ([`VmcbField::stored_width`]): `fields[..ends[0]]` are
/// eight bytes wide, then come the four-, two- and one-byte ones.
#[derive(Clone, Copy, Debug)]
pub struct FieldLayout<'a> {
    /// The fields.
    pub fields: &'a [VmcbField],
    /// Each field's offset relative to `lo`.
    pub rel: &'a [u16],
    /// The end in `fields` of each width group (8, 4, 2 and 1 bytes).
    pub ends: [u8; 4],
    /// The lowest offset any field starts at.
    pub lo: u64,
    /// Bytes from `lo` to the end of the highest field.
    pub span: u64,
}

impl<const N: usize> FieldList<N> {
    /// The fields of `parts`, one part after the other, then grouped by
    /// stored width (a stable grouping: within a width, in the order given).
    ///
    /// # Panics
    /// At compile time (the lists are constants) if a field repeats, if there
    /// are more than `N` fields or if the list is empty.
    pub const fn new(parts: &[&[VmcbField]]) -> Self {
        let mut given = [VmcbField::InterceptCr; N];
        let mut len = 0;
        let mut p = 0;
        while p < parts.len() {
            let mut j = 0;
            while j < parts[p].len() {
                assert!(len < N, "list size");
                given[len] = parts[p][j];
                len += 1;
                j += 1;
            }
            p += 1;
        }
        assert!(len > 0 && N < 256, "list size");
        let mut list = [VmcbField::InterceptCr; N];
        let mut ends = [0u8; 4];
        let (mut n, mut g) = (0, 0);
        while g < 4 {
            let w = 8 >> g;
            let mut i = 0;
            while i < len {
                if given[i].stored_width() == w {
                    list[n] = given[i];
                    n += 1;
                }
                i += 1;
            }
            ends[g] = n as u8;
            g += 1;
        }
        assert!(n == len, "every field is 1, 2, 4 or 8 bytes wide");
        let (mut lo, mut hi) = (usize::MAX, 0);
        let mut pos = [0u8; FIELDS];
        let mut i = 0;
        while i < len {
            let f = list[i];
            assert!(pos[f as usize] == 0, "a field repeats");
            pos[f as usize] = (i + 1) as u8;
            if f.offset() < lo {
                lo = f.offset();
            }
            if f.offset() + f.stored_width() > hi {
                hi = f.offset() + f.stored_width();
            }
            i += 1;
        }
        let mut rel = [0u16; N];
        let mut i = 0;
        while i < len {
            rel[i] = (list[i].offset() - lo) as u16;
            i += 1;
        }
        Self {
            fields: list,
            len,
            rel,
            ends,
            lo: lo as u16,
            span: (hi - lo) as u16,
            pos,
        }
    }

    /// The fields, in list order.
    pub fn fields(&self) -> &[VmcbField] {
        &self.fields[..self.len]
    }

    /// The layout, for [`crate::PhysMem::write_fields`] and
    /// [`crate::PhysMem::read_fields`].
    #[inline]
    pub fn layout(&self) -> FieldLayout<'_> {
        FieldLayout {
            fields: &self.fields[..self.len],
            rel: &self.rel[..self.len],
            ends: self.ends,
            lo: self.lo.into(),
            span: self.span.into(),
        }
    }

    /// The position of `f` in the list, if it is on it.
    #[inline]
    pub const fn position(&self, f: VmcbField) -> Option<usize> {
        match self.pos[f as usize] {
            0 => None,
            i => Some(i as usize - 1),
        }
    }
}

/// Values staged for the fields of a [`FieldList`], in list order.
#[derive(Clone, Debug)]
pub struct Staged<'l, const N: usize> {
    list: &'l FieldList<N>,
    values: [u64; N],
}

impl<'l, const N: usize> Staged<'l, N> {
    /// Every field of `list` staged as 0.
    pub fn new(list: &'l FieldList<N>) -> Self {
        Self {
            list,
            values: [0; N],
        }
    }

    /// The list the values belong to.
    pub fn list(&self) -> &'l FieldList<N> {
        self.list
    }

    /// Stages `f` = `v`, truncated to the field's width.
    ///
    /// # Panics
    /// If `f` is not on the list (a bug in the caller: the world switches
    /// stage fixed lists).
    #[inline]
    pub fn set(&mut self, f: VmcbField, v: u64) {
        match self.list.position(f) {
            Some(i) => self.values[i] = truncate(f, v),
            None => panic!("VMCB field {} is not on the staged list", f.name()),
        }
    }

    /// Stages a segment register's four fields.
    #[inline]
    pub fn set_seg(&mut self, s: VmcbSeg, v: VmcbSegment) {
        let [sel, attrib, limit, base] = s.fields();
        self.set(sel, v.selector.into());
        self.set(attrib, v.attrib.into());
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }

    /// Stages GDTR or IDTR.
    #[inline]
    pub fn set_table(&mut self, t: VmcbTable, v: TableRegister) {
        let (limit, base) = t.fields();
        self.set(limit, v.limit.into());
        self.set(base, v.base);
    }

    /// The values, in list order.
    pub fn values(&self) -> &[u64] {
        &self.values[..self.list.len]
    }

    /// The values, in list order, mutably (to read fields into). A value
    /// stored here must fit its field's width.
    pub fn values_mut(&mut self) -> &mut [u64] {
        &mut self.values[..self.list.len]
    }

    /// The staged fields with their values, in list order.
    pub fn iter(&self) -> impl Iterator<Item = (VmcbField, u64)> + '_ {
        self.list
            .fields()
            .iter()
            .copied()
            .zip(self.values().iter().copied())
    }
}

impl<const N: usize> FieldSource for Staged<'_, N> {
    /// The staged value, 0 for a field not on the list.
    #[inline]
    fn get(&self, f: VmcbField) -> u64 {
        self.list.position(f).map_or(0, |i| self.values[i])
    }
}

impl VmcbImage {
    /// Stores every staged field (as [`VmcbImage::set`] per field, with the
    /// list's precomputed offsets).
    pub fn set_staged<const N: usize>(&mut self, s: &Staged<'_, N>) {
        let l = s.list.layout();
        let lo = l.lo as usize;
        store_fields(
            &mut self.as_bytes_mut()[lo..lo + l.span as usize],
            l,
            s.values(),
        );
    }
}

/// Stores each field of `layout` with its value (`values` in list order) in
/// `span`, the bytes from the layout's lowest offset: one store of the
/// field's width per field, a straight loop per width (the list is grouped
/// by width).
#[inline]
pub fn store_fields(span: &mut [u8], layout: FieldLayout<'_>, values: &[u64]) {
    let [e8, e4, e2, e1] = layout.ends.map(usize::from);
    let n = e1.min(values.len()).min(layout.rel.len());
    let (rel, values) = (&layout.rel[..n], &values[..n]);
    let group = |a: usize, b: usize| {
        let (a, b) = (a.min(n), b.min(n));
        rel[a..b].iter().map(|&r| usize::from(r)).zip(&values[a..b])
    };
    for (at, v) in group(0, e8) {
        span[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    for (at, v) in group(e8, e4) {
        span[at..at + 4].copy_from_slice(&v.to_le_bytes()[..4]);
    }
    for (at, v) in group(e4, e2) {
        span[at..at + 2].copy_from_slice(&v.to_le_bytes()[..2]);
    }
    for (at, v) in group(e2, e1) {
        span[at] = v.to_le_bytes()[0];
    }
}

/// Loads each field of `layout` from `span` (the bytes from the layout's
/// lowest offset) into `values`, in list order, zero-extended: the reads of
/// [`store_fields`].
#[inline]
pub fn load_fields(span: &[u8], layout: FieldLayout<'_>, values: &mut [u64]) {
    let [e8, e4, e2, e1] = layout.ends.map(usize::from);
    let n = e1.min(values.len()).min(layout.rel.len());
    let (rel, values) = (&layout.rel[..n], &mut values[..n]);
    let (r8, rest) = rel.split_at(e8.min(n));
    let (r4, rest) = rest.split_at((e4 - e8).min(rest.len()));
    let (r2, r1) = rest.split_at((e2 - e4).min(rest.len()));
    let (v8, rest) = values.split_at_mut(r8.len());
    let (v4, rest) = rest.split_at_mut(r4.len());
    let (v2, v1) = rest.split_at_mut(r2.len());
    let at = |r: &u16| usize::from(*r);
    for (r, out) in r8.iter().map(at).zip(v8) {
        *out = u64::from_le_bytes(span[r..r + 8].try_into().unwrap_or_default());
    }
    for (r, out) in r4.iter().map(at).zip(v4) {
        *out = u32::from_le_bytes(span[r..r + 4].try_into().unwrap_or_default()).into();
    }
    for (r, out) in r2.iter().map(at).zip(v2) {
        *out = u16::from_le_bytes(span[r..r + 2].try_into().unwrap_or_default()).into();
    }
    for (r, out) in r1.iter().map(at).zip(v1) {
        *out = span[r].into();
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

    /// Every field no wider than eight bytes, as one list.
    static NARROW: FieldList<FIELDS> = {
        let mut t = [VmcbField::InterceptCr; FIELDS];
        let (mut n, mut i) = (0, 0);
        while i < FIELDS {
            if VmcbField::ALL[i].width() <= 8 {
                t[n] = VmcbField::ALL[i];
                n += 1;
            }
            i += 1;
        }
        let (list, _) = t.split_at(n);
        FieldList::new(&[list])
    };

    #[test]
    fn staging_truncates_like_the_image() {
        let mut s = Staged::new(&NARROW);
        let mut img = VmcbImage::zeroed();
        for f in NARROW.fields() {
            s.set(*f, u64::MAX - f.offset() as u64);
            img.set(*f, u64::MAX - f.offset() as u64);
        }
        for (f, v) in s.iter() {
            assert_eq!(v, img.get(f), "{}", f.name());
            assert_eq!(FieldSource::get(&s, f), img.get(f));
        }
        let mut back = VmcbImage::zeroed();
        back.set_staged(&s);
        assert_eq!(back, img, "set_staged stores what set stores");
    }

    #[test]
    fn layout_is_the_layout_table() {
        let l = NARROW.layout();
        for (i, f) in l.fields.iter().enumerate() {
            assert_eq!(l.lo as usize + usize::from(l.rel[i]), f.offset());
            assert_eq!(NARROW.position(*f), Some(i));
            assert!(u64::from(l.rel[i]) + f.stored_width() as u64 <= l.span);
        }
        // The list is grouped by width, and each group keeps the order
        // the fields were given in (here: the layout table's).
        let mut start = 0;
        for (g, &end) in l.ends.iter().enumerate() {
            let group = &l.fields[start..usize::from(end)];
            for f in group {
                assert_eq!(f.stored_width(), 8 >> g);
            }
            assert!(group.windows(2).all(|w| (w[0] as usize) < (w[1] as usize)));
            start = usize::from(end);
        }
        assert_eq!(start, l.fields.len());
        // Loading what was stored gives the values back.
        let values: Vec<u64> = (0..l.fields.len() as u64)
            .map(|i| {
                (0x0123_4567_89ab_cdef_u64.rotate_left(i as u32))
                    & (u64::MAX >> (64 - 8 * l.fields[i as usize].stored_width()))
            })
            .collect();
        let mut span = vec![0u8; l.span as usize];
        store_fields(&mut span, l, &values);
        let mut back = vec![0; values.len()];
        load_fields(&span, l, &mut back);
        assert_eq!(back, values);
        assert_eq!(NARROW.position(VmcbField::GuestInsnBytes), None);
    }

    static SEGS: FieldList<8> = FieldList::new(&[
        &[
            VmcbField::CsSelector,
            VmcbField::CsAttrib,
            VmcbField::CsLimit,
            VmcbField::CsBase,
            VmcbField::IdtrLimit,
            VmcbField::IdtrBase,
        ],
        &[VmcbField::Rip],
    ]);

    #[test]
    fn segments_and_tables_round_trip() {
        let mut s = Staged::new(&SEGS);
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

    #[test]
    #[should_panic(expected = "not on the staged list")]
    fn a_field_off_the_list_is_a_bug() {
        Staged::new(&SEGS).set(VmcbField::Rax, 1);
    }
}
