//! Physical memory as the SVM model sees it.
//!
//! VMRUN, #VMEXIT, VMLOAD and VMSAVE touch memory by (system-)physical address
//! only: the VMCB, the host save area (VM_HSAVE_PA), the I/O and MSR permission
//! maps and, for legacy-PAE guests or hosts, the four PDPEs (APM Vol. 2 15.5.1,
//! 15.6, 15.10.1, 15.11). The model reaches memory through [`PhysMem`], which
//! `emu` implements; every access carries an [`SvmAccess`] tag so the cost model
//! can charge it without looking inside the semantics (DESIGN principle 7).
//!
//! A read the implementation cannot satisfy (`false`) yields all-ones bytes, as a
//! PC's open bus does for non-existent memory; a write it cannot satisfy is
//! dropped. Either way the model stays deterministic and never panics.

use crate::vmcb::FieldLayout;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why the model touches physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SvmAccess {
    /// VMRUN reading the guest VMCB (APM Vol. 2 15.5.1).
    VmcbRead,
    /// #VMEXIT, or a failed VMRUN, writing the VMCB (APM Vol. 2 15.6).
    VmcbWrite,
    /// VMRUN saving host state to the host save area (APM Vol. 2 15.30.4).
    HostSaveWrite,
    /// #VMEXIT reloading host state from the host save area.
    HostSaveRead,
    /// A lookup in the I/O permissions map (APM Vol. 2 15.10.1).
    Iopm,
    /// A lookup in the MSR permissions map (APM Vol. 2 15.11).
    Msrpm,
    /// VMLOAD reading a VMCB (APM Vol. 2 15.5.2).
    VmloadRead,
    /// VMSAVE writing a VMCB (APM Vol. 2 15.5.2).
    VmsaveWrite,
    /// Loading the four legacy-PAE PDPEs of a guest (VMRUN) or host (#VMEXIT).
    Pdpte,
}

/// Physical memory, implemented by `emu`.
pub trait PhysMem {
    /// Reads `buf.len()` bytes at physical address `pa`. Returns `false` if the
    /// range is not backed; the model then uses all-ones bytes.
    fn read(&mut self, pa: u64, buf: &mut [u8], access: SvmAccess) -> bool;
    /// Writes `data` at physical address `pa`. Returns `false` if the range is
    /// not backed; the model then drops the write.
    fn write(&mut self, pa: u64, data: &[u8], access: SvmAccess) -> bool;

    /// Writes several fields of the structure at `base`: each field of
    /// `layout` gets its value's low bytes (at most eight) at `base +
    /// offset`, in list order, each one access tagged `access`. The effect is
    /// exactly that of one [`PhysMem::write`] per field (the default); an
    /// implementation may check and translate the span once.
    fn write_fields(
        &mut self,
        base: u64,
        layout: FieldLayout<'_>,
        values: &[u64],
        access: SvmAccess,
    ) {
        write_fields_each(self, base, layout, values, access);
    }

    /// Reads several fields of the structure at `base` into `values` (one per
    /// field of `layout`, zero-extended; an unbacked field reads as all-ones
    /// bytes of its width), each one access tagged `access`. The effect is
    /// exactly that of one [`PhysMem::read`] per field (the default).
    fn read_fields(
        &mut self,
        base: u64,
        layout: FieldLayout<'_>,
        values: &mut [u64],
        access: SvmAccess,
    ) {
        read_fields_each(self, base, layout, values, access);
    }
}

/// [`PhysMem::write_fields`] as one [`PhysMem::write`] per field.
pub fn write_fields_each<M: PhysMem + ?Sized>(
    mem: &mut M,
    base: u64,
    layout: FieldLayout<'_>,
    values: &[u64],
    access: SvmAccess,
) {
    for (&f, &v) in layout.fields.iter().zip(values) {
        let n = f.stored_width();
        let _ = mem.write(
            base.wrapping_add(f.offset() as u64),
            &v.to_le_bytes()[..n],
            access,
        );
    }
}

/// [`PhysMem::read_fields`] as one [`PhysMem::read`] per field.
pub fn read_fields_each<M: PhysMem + ?Sized>(
    mem: &mut M,
    base: u64,
    layout: FieldLayout<'_>,
    values: &mut [u64],
    access: SvmAccess,
) {
    for (f, out) in layout.fields.iter().zip(values.iter_mut()) {
        let mut b = [0u8; 8];
        read_bytes(
            mem,
            base.wrapping_add(f.offset() as u64),
            &mut b[..f.stored_width()],
            access,
        );
        *out = u64::from_le_bytes(b);
    }
}

/// Reads bytes with open-bus semantics for unbacked memory.
pub(crate) fn read_bytes<M: PhysMem + ?Sized>(
    mem: &mut M,
    pa: u64,
    buf: &mut [u8],
    access: SvmAccess,
) {
    if !mem.read(pa, buf, access) {
        buf.fill(0xff);
    }
}

/// Reads a little-endian u64.
pub(crate) fn read_u64<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, access: SvmAccess) -> u64 {
    let mut b = [0u8; 8];
    read_bytes(mem, pa, &mut b, access);
    u64::from_le_bytes(b)
}

/// Reads one byte.
pub(crate) fn read_u8<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, access: SvmAccess) -> u8 {
    let mut b = [0u8; 1];
    read_bytes(mem, pa, &mut b, access);
    b[0]
}

/// A sparse, page-granular physical memory: the reference [`PhysMem`] for tests
/// and for users driving the model without an interpreter. Pages spring into
/// existence zero-filled on first touch; addresses at or above `limit` are not
/// backed. Every access is logged with its tag.
#[derive(Clone, Debug, Default)]
pub struct PageMem {
    pages: BTreeMap<u64, Box<[u8; 4096]>>,
    limit: Option<u64>,
    /// Every access: (tag, address, length, is_write).
    pub log: Vec<(SvmAccess, u64, usize, bool)>,
}

impl PageMem {
    /// An empty memory where every address is backed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty memory backing only addresses below `limit`.
    pub fn with_limit(limit: u64) -> Self {
        Self {
            limit: Some(limit),
            ..Self::default()
        }
    }

    fn backed(&self, pa: u64, len: usize) -> bool {
        match (self.limit, pa.checked_add(len as u64)) {
            (_, None) => false,
            (Some(limit), Some(end)) => end <= limit,
            (None, Some(_)) => true,
        }
    }

    /// Reads without logging (test inspection).
    pub fn peek(&self, pa: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = pa.wrapping_add(i as u64);
            *b = self
                .pages
                .get(&(a >> 12))
                .map_or(0, |p| p[(a & 0xfff) as usize]);
        }
    }

    /// Reads a little-endian u64 without logging.
    pub fn peek_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.peek(pa, &mut b);
        u64::from_le_bytes(b)
    }

    /// Writes without logging (test setup).
    pub fn poke(&mut self, pa: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = pa.wrapping_add(i as u64);
            let page = self
                .pages
                .entry(a >> 12)
                .or_insert_with(|| Box::new([0; 4096]));
            page[(a & 0xfff) as usize] = *b;
        }
    }

    /// Writes a little-endian u64 without logging.
    pub fn poke_u64(&mut self, pa: u64, v: u64) {
        self.poke(pa, &v.to_le_bytes());
    }
}

impl PhysMem for PageMem {
    fn read(&mut self, pa: u64, buf: &mut [u8], access: SvmAccess) -> bool {
        self.log.push((access, pa, buf.len(), false));
        if !self.backed(pa, buf.len()) {
            return false;
        }
        self.peek(pa, buf);
        true
    }

    fn write(&mut self, pa: u64, data: &[u8], access: SvmAccess) -> bool {
        self.log.push((access, pa, data.len(), true));
        if !self.backed(pa, data.len()) {
            return false;
        }
        self.poke(pa, data);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_bus_beyond_limit() {
        let mut m = PageMem::with_limit(0x2000);
        m.poke(0x1ffe, &[1, 2]);
        assert_eq!(read_u8(&mut m, 0x1fff, SvmAccess::Iopm), 2);
        assert_eq!(read_u64(&mut m, 0x1ffc, SvmAccess::Iopm), u64::MAX);
        assert!(!m.write(0x2000, &[0], SvmAccess::VmcbWrite));
        assert_eq!(m.log.len(), 3);
    }

    #[test]
    fn accesses_cross_pages() {
        let mut m = PageMem::new();
        assert!(m.write(0xfff, &[0xaa, 0xbb], SvmAccess::VmcbWrite));
        let mut b = [0; 2];
        assert!(m.read(0xfff, &mut b, SvmAccess::VmcbRead));
        assert_eq!(b, [0xaa, 0xbb]);
    }
}
