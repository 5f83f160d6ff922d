//! The memory fast path: a host-side page cache in front of the modelled
//! TLB (DESIGN.md, "Memory": a TLB hit yields the host page directly).
//!
//! A line remembers, for one 4-KiB linear page and one kind of access
//! (read, write, fetch) at one privilege (user or supervisor, RFLAGS.AC),
//! the physical page a first-level TLB hit gives and where that page lives
//! in the RAM buffer. It is filled after an access the reference path made,
//! from [`mmu::Mmu::l1_probe`], and is good while the first-level TLB's
//! generation ([`mmu::Mmu::l1_generation`]) and the translation context
//! ([`PageCache::epoch`], advanced by [`Machine::paging_changed`]) are the
//! ones it was filled under. A hit then stands for exactly what the modelled
//! translation would do: a first-level hit with the same result, counted
//! with [`mmu::Mmu::count_l1_hit`]; no walk, no fill, no other counter.
//!
//! Only plain accesses take it: within one page, no armed data breakpoint,
//! no alignment check, whole RAM pages (never MMIO), and for writes never a
//! page holding decoded code (the reference path invalidates those blocks).
//! Everything else goes the reference way ([`Machine::read_linear`],
//! [`Machine::write_linear`], [`Machine::translate`]).

use super::access::{AccessKind, Privilege};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use mmu::{Cr0, Rflags, SegReg};

/// Lines per kind of access (a power of two).
const LINES: usize = 256;

/// Index of the read lines.
const READ: usize = 0;
/// Index of the write lines.
const WRITE: usize = 1;
/// Index of the fetch lines.
const FETCH: usize = 2;

/// One cached first-level hit.
#[derive(Clone, Copy, Debug, Default)]
struct Line {
    /// Linear page | 4 | user << 1 | AC; 0 when empty.
    key: u64,
    /// The first-level TLB generation it was filled under.
    generation: u64,
    /// The [`PageCache::epoch`] it was filled under.
    epoch: u64,
    /// Offset of the physical page in the RAM buffer.
    ram: usize,
    /// The physical page.
    pa: u64,
}

/// The page cache: host-side state, never part of the modelled machine.
#[derive(Clone, Debug)]
pub struct PageCache {
    lines: Vec<[Line; LINES]>,
    /// Changes with the translation context.
    epoch: u64,
}

impl Default for PageCache {
    fn default() -> Self {
        Self {
            lines: vec![[Line::default(); LINES]; 3],
            epoch: 1,
        }
    }
}

impl PageCache {
    /// The translation context changed: every line is stale.
    #[inline]
    pub fn new_context(&mut self) {
        self.epoch += 1;
    }
}

/// The line key of `la` for an access at `user` privilege with RFLAGS.AC
/// `ac`.
#[inline(always)]
fn line_key(la: u64, user: bool, ac: bool) -> u64 {
    (la & !0xfff) | 4 | (user as u64) << 1 | ac as u64
}

/// Loads `S` bytes little-endian.
#[inline(always)]
fn load<const S: usize>(b: [u8; S]) -> u64 {
    let mut v = [0u8; 8];
    v[..S].copy_from_slice(&b);
    u64::from_le_bytes(v)
}

impl Machine {
    /// The key of `la` for an explicit access at the current privilege.
    #[inline(always)]
    fn current_key(&self, la: u64) -> u64 {
        line_key(la, self.cpu.mode.cpl == 3, self.cpu.flags.has(Rflags::AC))
    }

    /// The RAM offset of `la` if the page cache has a good line for it.
    #[inline(always)]
    fn page_hit(&self, la: u64, kind: usize) -> Option<&Line> {
        let line = &self.pages.lines[kind][(la >> 12) as usize & (LINES - 1)];
        let good = line.key == self.current_key(la)
            && line.epoch == self.pages.epoch
            && line.generation == self.mmu.l1_generation(kind == FETCH)
            && (self.cpu.sys.cr0.contains(Cr0::PG) || self.in_guest());
        good.then_some(line)
    }

    /// True if an explicit access of `size` bytes at `la` is one the page
    /// cache may serve: within a page, no data breakpoint armed, no #AC.
    #[inline(always)]
    fn plain_access(&self, la: u64, size: usize) -> bool {
        (la & 0xfff) as usize + size <= 0x1000 && !self.dbg.data_armed && !self.misaligned(la, size)
    }

    /// Fills the line for `la` from a first-level probe, after the
    /// reference path accessed it.
    #[cold]
    fn page_fill(&mut self, la: u64, kind: usize) {
        if !(self.cpu.sys.cr0.contains(Cr0::PG) || self.in_guest()) {
            return;
        }
        let user = self.cpu.mode.cpl == 3;
        let ac = self.cpu.flags.has(Rflags::AC);
        let k = match kind {
            READ => mmu::AccessKind::Read,
            WRITE => mmu::AccessKind::Write,
            _ => mmu::AccessKind::Execute,
        };
        let access = mmu::Access::new(k, user).with_ac(ac);
        let Some(pa) = self.mmu.l1_probe(&self.tctx, mmu::LinearAddr(la), access) else {
            return;
        };
        let page = pa & !0xfff;
        let Some(ram) = self.ram.offset(page, 0x1000) else {
            return;
        };
        self.pages.lines[kind][(la >> 12) as usize & (LINES - 1)] = Line {
            key: line_key(la, user, ac),
            generation: self.mmu.l1_generation(kind == FETCH),
            epoch: self.pages.epoch,
            ram,
            pa: page,
        };
    }

    /// [`Machine::read_mem`] of `S` bytes through the page cache.
    #[inline(always)]
    pub(crate) fn read_fast<const S: usize>(
        &mut self,
        seg: SegReg,
        off: u64,
    ) -> Result<u64, Event> {
        let la = self.linear(seg, off, S, false)?;
        if self.plain_access(la, S) {
            if let Some(line) = self.page_hit(la, READ) {
                let at = line.ram + (la & 0xfff) as usize;
                self.mmu.count_l1_hit(false);
                return Ok(load(self.ram.read_le::<S>(at)));
            }
        }
        self.read_slow(la, S)
    }

    #[inline(never)]
    fn read_slow(&mut self, la: u64, size: usize) -> Result<u64, Event> {
        let v = self.read_linear(la, size, Privilege::Current)?;
        if self.plain_access(la, size) {
            self.page_fill(la, READ);
        }
        Ok(v)
    }

    /// [`Machine::read_mem_rmw`] of `S` bytes (a read with write intent)
    /// through the page cache's write lines.
    #[inline(always)]
    pub(crate) fn read_fast_rmw<const S: usize>(
        &mut self,
        seg: SegReg,
        off: u64,
    ) -> Result<u64, Event> {
        let la = self.linear(seg, off, S, true)?;
        if self.plain_access(la, S) {
            if let Some(line) = self.page_hit(la, WRITE) {
                let at = line.ram + (la & 0xfff) as usize;
                self.mmu.count_l1_hit(false);
                return Ok(load(self.ram.read_le::<S>(at)));
            }
        }
        self.read_rmw_slow(seg, off, la, S)
    }

    #[inline(never)]
    fn read_rmw_slow(&mut self, seg: SegReg, off: u64, la: u64, size: usize) -> Result<u64, Event> {
        let v = self.read_mem_rmw(seg, off, size)?;
        if self.plain_access(la, size) {
            self.page_fill(la, WRITE);
        }
        Ok(v)
    }

    /// [`Machine::write_mem`] of `S` bytes through the page cache.
    #[inline(always)]
    pub(crate) fn write_fast<const S: usize>(&mut self, seg: SegReg, off: u64, v: u64) -> Flow {
        let la = self.linear(seg, off, S, true)?;
        if self.plain_access(la, S) {
            if let Some(line) = self.page_hit(la, WRITE) {
                if !self.code.is_code_page(line.pa) {
                    let at = line.ram + (la & 0xfff) as usize;
                    self.mmu.count_l1_hit(false);
                    let b: [u8; 8] = v.to_le_bytes();
                    self.ram
                        .write_le::<S>(at, b[..S].try_into().expect("S <= 8"));
                    return Ok(());
                }
            }
        }
        self.write_slow(la, S, v)
    }

    #[inline(never)]
    fn write_slow(&mut self, la: u64, size: usize, v: u64) -> Flow {
        self.write_linear(la, size, v, Privilege::Current)?;
        if self.plain_access(la, size) {
            self.page_fill(la, WRITE);
        }
        Ok(())
    }

    /// The physical address of an instruction fetch at `la` if the page
    /// cache has it, counting nothing ([`Machine::translate_fetch`] counts
    /// the first-level hit it stands for).
    #[inline(always)]
    pub(crate) fn fetch_hit(&self, la: u64) -> Option<u64> {
        self.page_hit(la, FETCH).map(|line| line.pa | (la & 0xfff))
    }

    /// [`Machine::translate`] of an instruction fetch at the current
    /// privilege, through the page cache.
    #[inline(always)]
    pub(crate) fn translate_fetch(&mut self, la: u64) -> Result<u64, Event> {
        if let Some(line) = self.page_hit(la, FETCH) {
            let pa = line.pa | (la & 0xfff);
            self.mmu.count_l1_hit(true);
            return Ok(pa);
        }
        self.fetch_slow(la)
    }

    #[inline(never)]
    fn fetch_slow(&mut self, la: u64) -> Result<u64, Event> {
        let pa = self.translate(la, AccessKind::Execute, Privilege::Current)?;
        self.page_fill(la, FETCH);
        Ok(pa)
    }
}
