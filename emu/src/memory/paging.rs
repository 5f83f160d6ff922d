//! The interpreter's side of address translation: PDPTE loading and TLB
//! invalidation requested by instructions. The translation model itself lives
//! in the `mmu` crate.

use crate::event::{Event, Flow};
use crate::machine::Machine;

impl Machine {
    /// Loads the four PAE PDPTE registers from the table CR3 points to, with
    /// the reserved-bit checks of MOV to CR0/CR3/CR4 (SDM Vol. 3A 4.4.1: a
    /// present PDPTE with a reserved bit set is #GP(0)).
    pub fn load_pdptes(&mut self, cr3: u64) -> Flow {
        let base = cr3 & 0xffff_ffe0;
        let mut p = [0u64; 4];
        let phys_mask = self.config.model.widths.phys_mask();
        for (k, e) in p.iter_mut().enumerate() {
            *e = self.phys_read(base + 8 * k as u64, 8);
            let reserved = 0x1e6 | !phys_mask;
            if *e & 1 != 0 && *e & reserved != 0 {
                return Err(Event::gp0());
            }
        }
        self.cpu.pdptes = p;
        Ok(())
    }

    /// Invalidates translations for the page of `la` (INVLPG).
    pub fn invalidate_page(&mut self, _la: u64) {}

    /// Invalidates translations: non-global ones, or all with `global`.
    pub fn flush_tlb(&mut self, _global: bool) {}
}
