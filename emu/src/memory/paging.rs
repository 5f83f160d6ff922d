//! The interpreter's side of address translation: the `mmu` crate's walker
//! reaches guest RAM through [`WalkMemory`], the machine keeps the translation
//! context current, and instructions' TLB invalidations are forwarded.

use super::access::{AccessKind, Privilege};
use super::Ram;
use crate::event::{Event, Flow};
use crate::interp::cache::CodeCache;
use crate::machine::Machine;
use mmu::paging::mem::EntrySize;
use mmu::paging::pdpte::{load_pdptes, PdpteError};
use mmu::{
    Access, Cr0, LinearAddr, PagingFeatures, PagingRegs, PhysAddr, PhysMemory, Rflags,
    TranslateFault, TranslationContext,
};

/// Guest RAM as the page walker sees it. Entries outside RAM read as all ones
/// and cannot be updated. Accessed/dirty updates keep the code cache exact.
pub(crate) struct WalkMemory<'a> {
    pub ram: &'a mut Ram,
    pub code: &'a mut CodeCache,
    pub stop_block: &'a mut bool,
}

impl PhysMemory for WalkMemory<'_> {
    #[inline]
    fn read_entry(&mut self, pa: PhysAddr, size: EntrySize) -> u64 {
        let n = size.bytes() as usize;
        match self.ram.offset(pa.0, n as u64) {
            Some(off) => self.ram.read_sized(off, n),
            None => u64::MAX >> (64 - 8 * n),
        }
    }

    fn cmpxchg_entry(&mut self, pa: PhysAddr, size: EntrySize, old: u64, new: u64) -> bool {
        let n = size.bytes() as usize;
        let Some(off) = self.ram.offset(pa.0, n as u64) else {
            return false;
        };
        if self.read_entry(pa, size) != old {
            return false;
        }
        // An aligned entry lies on one page.
        if self.code.written(pa.0, pa.0) {
            *self.stop_block = true;
        }
        self.ram.write_sized(off, n, new);
        true
    }

    #[inline]
    fn prefetch(&mut self, pa: PhysAddr) {
        if let Some(off) = self.ram.offset(pa.0, 1) {
            self.ram.prefetch(off);
        }
    }
}

impl Machine {
    /// The paging registers of the current state.
    pub fn paging_regs(&self) -> PagingRegs {
        let s = &self.cpu.sys;
        let mut r = PagingRegs::new(s.cr0, s.cr3, s.cr4, s.efer);
        r.pdptes = self.cpu.pdptes;
        r.pkru = self.cpu.pkru;
        r
    }

    /// The translation context of the current state.
    pub fn translation_context(&self) -> TranslationContext {
        let features = PagingFeatures {
            page_1g: self.config.model.has(crate::cpu::cpuid::Feature::Pdpe1gb),
        };
        let ctx = TranslationContext::new(self.paging_regs(), self.config.model.widths, features);
        self.guest_translation_context(ctx)
    }

    /// Records that a register paging depends on changed (CR0, CR3, CR4,
    /// EFER, PDPTEs, PKRU): the context is rebuilt before the next
    /// translation.
    #[inline]
    pub fn paging_changed(&mut self) {
        self.tctx = self.translation_context();
        self.pages.enter(&self.tctx);
    }

    /// Translates a linear address for an access within one page.
    #[inline(always)]
    pub fn translate(&mut self, la: u64, kind: AccessKind, who: Privilege) -> Result<u64, Event> {
        if !self.cpu.sys.cr0.contains(Cr0::PG) && !self.in_guest() {
            return Ok(la & 0xffff_ffff);
        }
        self.translate_paged(la, kind, who)
    }

    #[inline]
    fn translate_paged(&mut self, la: u64, kind: AccessKind, who: Privilege) -> Result<u64, Event> {
        let kind = match kind {
            AccessKind::Read => mmu::AccessKind::Read,
            AccessKind::Write => mmu::AccessKind::Write,
            AccessKind::Execute => mmu::AccessKind::Execute,
        };
        let access = match who {
            Privilege::System => Access::implicit(kind),
            Privilege::Current => Access::new(kind, self.cpu.mode.cpl == 3),
            Privilege::AtCpl(c) => Access::new(kind, c == 3),
        }
        .with_ac(self.cpu.flags.has(Rflags::AC));
        if self.trace.wants(crate::trace::Kind::Walk) {
            return self.translate_traced(la, access);
        }
        let mut mem = WalkMemory {
            ram: &mut self.ram,
            code: &mut self.code,
            stop_block: &mut self.stop_block,
        };
        match self
            .mmu
            .translate(&self.tctx, LinearAddr(la), access, &mut mem, &mut ())
        {
            Ok(pa) => Ok(pa.0),
            Err(f) => Err(self.translate_fault(f)),
        }
    }

    /// [`Machine::translate`] with the walk recorded for `--trace`.
    #[cold]
    fn translate_traced(&mut self, la: u64, access: Access) -> Result<u64, Event> {
        let mut rec = mmu::paging::Trace::default();
        let mut mem = WalkMemory {
            ram: &mut self.ram,
            code: &mut self.code,
            stop_block: &mut self.stop_block,
        };
        let r = self
            .mmu
            .translate(&self.tctx, LinearAddr(la), access, &mut mem, &mut rec);
        if rec.refs().next().is_some() {
            let what = match access.kind {
                mmu::AccessKind::Read => "read",
                mmu::AccessKind::Write => "write",
                mmu::AccessKind::Execute => "fetch",
            };
            let result = r.as_ref().map(|pa| pa.0);
            self.trace_walk(la, what, &rec, result);
        }
        match r {
            Ok(pa) => Ok(pa.0),
            Err(f) => Err(self.translate_fault(f)),
        }
    }

    /// Turns a translation fault into the event to deliver.
    #[cold]
    fn translate_fault(&mut self, f: TranslateFault) -> Event {
        match f {
            TranslateFault::PageFault { error_code, linear } => Event::PageFault {
                code: error_code,
                linear,
            },
            nested => self.nested_fault_exit(nested),
        }
    }

    /// Loads the four PAE PDPTE registers from the table `cr3` points to, with
    /// the reserved-bit checks of MOV to CR0/CR3/CR4 (SDM Vol. 3A 4.4.1: a
    /// present PDPTE with a reserved bit set is #GP(0)). In a guest with
    /// nested paging the table is read through EPT/NPT (SDM Vol. 3C 29.3.3:
    /// an EPT violation there is a VM exit).
    pub fn load_pdptes(&mut self, cr3: u64) -> Flow {
        let mut mem = WalkMemory {
            ram: &mut self.ram,
            code: &mut self.code,
            stop_block: &mut self.stop_block,
        };
        let loaded = if self.tctx.nested().is_some() {
            self.mmu.load_pdptes(&self.tctx, cr3, &mut mem, &mut ())
        } else {
            load_pdptes(cr3, self.config.model.widths, &mut mem)
        };
        match loaded {
            Ok(p) => {
                self.cpu.pdptes = p;
                Ok(())
            }
            Err(PdpteError::Reserved { .. }) => Err(Event::gp0()),
            Err(PdpteError::Nested(f)) => Err(self.translate_fault(f)),
        }
    }

    /// INVLPG: invalidates translations for the page of `la`.
    pub fn invalidate_page(&mut self, la: u64) {
        self.mmu.invlpg(&self.tctx, LinearAddr(la));
    }
}
