//! Loading the PAE PDPTE registers (SDM Vol. 3A 4.4.1, "PDPTE registers").
//!
//! With PAE paging (CR0.PG = 1, CR4.PAE = 1, IA32_EFER.LMA = 0) the four
//! PDPTEs are loaded from the 32-byte-aligned table at CR3 bits 31:5 by MOV to
//! CR3, by a MOV to CR0 or CR4 that modifies CR0.CD, CR0.NW, CR0.PG, CR4.PAE,
//! CR4.PGE, CR4.PSE or CR4.SMEP when PAE paging is in use afterwards (the
//! caller decides when), and by task switches.
//! If a present PDPTE sets a reserved bit the instruction raises #GP(0) and
//! loads nothing. In VMX non-root operation with EPT the table address is
//! guest-physical and the loads are reads through EPT, never treated as writes
//! and reported with "guest-linear address not valid" (SDM Vol. 3C 29.3.3.2).

use super::cache::{NoCaches, WalkCaches};
use super::format::Pae;
use super::mem::EntrySize;
use super::nested::{nested_translate, NestedPaging, NestedReq, Stage};
use super::record::{Dimension, RefKind, WalkRecorder, WalkRef};
use super::{AccessKind, PhysMemory, TranslateFault};
use crate::counters::Work;
use crate::{AddressWidths, GuestPhysAddr, PhysAddr};
use serde::{Deserialize, Serialize};

/// Why the PDPTEs could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PdpteError {
    /// A present PDPTE sets a reserved bit: the instruction raises #GP(0).
    Reserved {
        /// Which PDPTE (0-3).
        index: u8,
        /// Its value.
        value: u64,
    },
    /// Reading the table through EPT/NPT failed: the VM exit to deliver.
    Nested(TranslateFault),
}

/// Reads and checks the four PDPTEs at `cr3` in machine-physical memory.
pub fn load_pdptes<M: PhysMemory + ?Sized>(
    cr3: u64,
    widths: AddressWidths,
    mem: &mut M,
) -> Result<[u64; 4], PdpteError> {
    load(cr3, widths, None, mem, &mut (), &mut NoCaches)
}

/// Reads and checks the four PDPTEs at `cr3`, a guest-physical address when
/// `nested` is set.
pub(crate) fn load<M, R, C>(
    cr3: u64,
    widths: AddressWidths,
    nested: Option<&NestedPaging>,
    mem: &mut M,
    rec: &mut R,
    caches: &mut C,
) -> Result<[u64; 4], PdpteError>
where
    M: PhysMemory + ?Sized,
    R: WalkRecorder + ?Sized,
    C: WalkCaches + ?Sized,
{
    let table = cr3 & 0xffff_ffe0;
    let base = match nested {
        None => table,
        Some(n) => {
            let req = NestedReq {
                gpa: table,
                kind: AccessKind::Read,
                stage: Stage::PdpteLoad,
            };
            nested_translate(n, widths, &req, mem, rec, caches)
                .map_err(PdpteError::Nested)?
                .hpa
                .0
        }
    };
    let mut pdptes = [0u64; 4];
    for (i, slot) in pdptes.iter_mut().enumerate() {
        let pa = base + 8 * i as u64;
        let v = mem.read_entry(PhysAddr(pa), EntrySize::Eight);
        caches.count(Work::GuestRef, 1);
        rec.reference(WalkRef {
            dimension: Dimension::Guest,
            kind: RefKind::Read,
            level: 3,
            addr: PhysAddr(pa),
            gpa: nested.map(|_| GuestPhysAddr(table + 8 * i as u64)),
            entry: v,
            for_guest_level: None,
        });
        if v & 1 != 0 && v & Pae::pdpte_reserved(widths) != 0 {
            return Err(PdpteError::Reserved {
                index: i as u8,
                value: v,
            });
        }
        *slot = v;
    }
    Ok(pdptes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::SparseMemory;

    #[test]
    fn reserved_bits_only_matter_when_present() {
        let w = AddressWidths {
            phys_bits: 36,
            linear_bits: 48,
        };
        let mut m = SparseMemory::new();
        m.write_u64(0x1020, 0x2001);
        m.write_u64(0x1028, 0x0000_0010_0000_0006); // not present: ignored
        m.write_u64(0x1030, 0x3001 | (1 << 3) | (1 << 4)); // PWT, PCD fine
        assert_eq!(
            load_pdptes(0x1020 | 0x18, w, &mut m),
            Ok([0x2001, 0x0000_0010_0000_0006, 0x3019, 0])
        );
        m.write_u64(0x1038, 0x4001 | (1 << 36)); // above MAXPHYADDR
        assert!(matches!(
            load_pdptes(0x1020, w, &mut m),
            Err(PdpteError::Reserved { index: 3, .. })
        ));
        m.write_u64(0x1038, 0x4001 | (1 << 5)); // bit 5 reserved
        assert!(load_pdptes(0x1020, w, &mut m).is_err());
        m.write_u64(0x1038, 0x4001 | (1 << 63)); // no XD in PDPTEs
        assert!(load_pdptes(0x1020, w, &mut m).is_err());
    }
}
