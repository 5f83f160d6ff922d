//! The memory fast path: a host-side page cache in front of the modelled
//! TLB (DESIGN.md, "Memory": a TLB hit yields the host page directly).
//!
//! A line remembers, for one 4-KiB linear page and one kind of access
//! (read, write, fetch) at one privilege (user or supervisor, RFLAGS.AC),
//! the physical page a first-level TLB hit gives and where that page lives
//! in the RAM buffer. It is filled after an access the reference path made,
//! from [`mmu::Mmu::l1_probe`], and is good while the first-level TLB's
//! generation ([`mmu::Mmu::l1_generation`]) and the translation context
//! (named by [`PageCache::epoch`], set by [`Machine::paging_changed`]) are
//! the ones it was filled under. A hit then stands for exactly what the
//! modelled translation would do: a first-level hit with the same result,
//! counted with [`mmu::Mmu::count_l1_hit`]; no walk, no fill, no other
//! counter.
//!
//! An epoch names one translation context value, not one stretch of time:
//! the cache remembers the last few contexts it saw with their epochs, and a
//! return to one of them (the other side of a VM entry or exit, whose TLB
//! entries are tagged by VPID or ASID and survive the switch) takes its old
//! epoch back, so that world's lines are good again at once. That is exact
//! because [`mmu::Mmu::l1_probe`] depends on nothing but the first-level
//! TLB's content, the context and the line key: with the same context, and
//! the generation proving that no fill or invalidation of any kind (INVLPG,
//! MOV CR3, INVEPT/INVVPID, INVLPGA, TLB_CONTROL, a flush by VPID or ASID)
//! touched the TLB since the fill, the probe would give the same answer now.
//! Lines of different contexts sit in different slots for the same page
//! ([`PageCache::salt`]), so the two worlds of a round trip do not evict
//! each other.
//!
//! Only plain accesses take it: within one page, no armed data breakpoint,
//! no alignment check, whole RAM pages (never MMIO), and for writes never a
//! page holding decoded code (the reference path invalidates those blocks).
//! Everything else goes the reference way ([`Machine::read_linear`],
//! [`Machine::write_linear`], [`Machine::translate`]).

use super::access::{AccessKind, Privilege};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use mmu::{Cr0, Rflags, SegReg, TranslationContext};

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

/// Translation contexts remembered with their epochs.
const CONTEXTS: usize = 4;

/// The page cache: host-side state, never part of the modelled machine.
#[derive(Clone, Debug)]
pub struct PageCache {
    lines: Vec<[Line; LINES]>,
    /// Names the current translation context (see the module docs).
    epoch: u64,
    /// XORed into the line index: different per epoch, so the lines of
    /// different contexts for one page take different slots.
    salt: usize,
    /// The next epoch never used.
    next: u64,
    /// The last contexts entered with their epochs.
    recent: [Option<(TranslationContext, u64)>; CONTEXTS],
    /// The slot of `recent` the next new context takes (the oldest).
    victim: usize,
}

impl Default for PageCache {
    fn default() -> Self {
        let mut c = Self {
            lines: vec![[Line::default(); LINES]; 3],
            epoch: 0,
            salt: 0,
            next: 1,
            recent: [None; CONTEXTS],
            victim: 0,
        };
        c.new_context();
        c
    }
}

impl PageCache {
    /// Forgets every context: every line is stale (another vCPU's state was
    /// brought in).
    #[inline]
    pub fn new_context(&mut self) {
        self.recent = [None; CONTEXTS];
        self.victim = 0;
        self.use_epoch(self.next);
        self.next += 1;
    }

    /// The translation context is now `ctx`: its lines, if it is one of the
    /// last few, are good again; otherwise it gets a fresh epoch and takes
    /// the place of the context remembered longest.
    #[inline]
    pub fn enter(&mut self, ctx: &TranslationContext) {
        for (c, epoch) in self.recent.iter().flatten() {
            if c == ctx {
                let epoch = *epoch;
                self.use_epoch(epoch);
                return;
            }
        }
        let epoch = self.next;
        self.next += 1;
        self.recent[self.victim] = Some((*ctx, epoch));
        self.victim = (self.victim + 1) % CONTEXTS;
        self.use_epoch(epoch);
    }

    fn use_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.salt = (epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (LINES - 1);
    }

    /// The slot of linear address `la`'s page in the current context.
    #[inline(always)]
    fn slot(&self, la: u64) -> usize {
        ((la >> 12) as usize ^ self.salt) & (LINES - 1)
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
        let line = &self.pages.lines[kind][self.pages.slot(la)];
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
        let slot = self.pages.slot(la);
        self.pages.lines[kind][slot] = Line {
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

#[cfg(test)]
mod tests {
    //! The page cache against the reference path: two identical machines
    //! run the same random sequence of accesses, context switches with and
    //! without TLB flushes, INVLPGs, page-table writes and privilege
    //! changes, one through the page cache, one through the reference
    //! translation. Every result, the whole modelled MMU (TLB contents and
    //! counters) after each step and all of RAM at the end must agree.

    use super::*;
    use crate::machine::MachineConfig;
    use mmu::{Cr4, Efer, SegmentCache};
    use proptest::prelude::*;

    /// Two sets of page tables: A maps the data pages identically, B maps
    /// page p to p ^ 5.
    const PML4: [u64; 2] = [0x1000, 0x5000];
    /// The first data page (linear and physical).
    const DATA: u64 = 0x10_0000;
    /// Data pages.
    const PAGES: u64 = 32;
    /// The contexts: A, B, and A again with CR3.PWT set (another context
    /// value with the same TLB tag, so the two share TLB entries).
    const CR3: [u64; 3] = [PML4[0], PML4[1], PML4[0] | 8];

    fn pte_at(tables: usize, page: u64) -> u64 {
        PML4[tables] + 0x3000 + 8 * (DATA / 0x1000 + page)
    }

    fn machine() -> Machine {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 4 << 20,
            ..Default::default()
        });
        let w = |m: &mut Machine, pa: u64, v: u64| m.load_phys(pa, &v.to_le_bytes());
        for (t, &pml4) in PML4.iter().enumerate() {
            w(&mut m, pml4, (pml4 + 0x1000) | 7);
            w(&mut m, pml4 + 0x1000, (pml4 + 0x2000) | 7);
            w(&mut m, pml4 + 0x2000, (pml4 + 0x3000) | 7);
            for page in 0..PAGES {
                let target = if t == 0 { page } else { page ^ 5 };
                w(&mut m, pte_at(t, page), (DATA + target * 0x1000) | 7);
            }
        }
        for page in 0..PAGES {
            let fill = [page as u8 ^ 0x5a; 0x1000];
            m.load_phys(DATA + page * 0x1000, &fill);
        }
        let sys = &mut m.cpu.sys;
        sys.cr0 = Cr0::PE | Cr0::ET | Cr0::NE | Cr0::PG | Cr0::WP;
        sys.cr3 = CR3[0];
        sys.cr4 = Cr4::PAE;
        sys.efer = Efer::LME | Efer::LMA;
        set_cpl(&mut m, 0);
        m.paging_changed();
        m
    }

    fn set_cpl(m: &mut Machine, dpl: u8) {
        let sys = &mut m.cpu.sys;
        sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8 | dpl as u16, 0xb, dpl, false, true);
        for s in [SegReg::Ds, SegReg::Es, SegReg::Ss] {
            sys.segs[s as usize] = SegmentCache::flat(0x10 | dpl as u16, 0x3, dpl, true, false);
        }
        m.cpu.update_mode();
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A world switch: the context changes, the TLB is not flushed (as
        /// VM entries and exits with VPIDs or ASIDs).
        Switch(usize),
        /// MOV CR3, which flushes.
        MovCr3(usize),
        Read(u64, u64, usize),
        ReadRmw(u64, u64, usize),
        Write(u64, u64, usize, u64),
        Fetch(u64, u64),
        Invlpg(u64),
        /// A page-table write with no invalidation: the modelled TLB keeps
        /// the old translation, and so must the page cache.
        Pte(usize, u64, u64),
        Cpl(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let page = 0..PAGES;
        let off = 0..0x1000u64;
        let size = prop_oneof![Just(1usize), Just(2), Just(4), Just(8)];
        prop_oneof![
            3 => (0..3usize).prop_map(Op::Switch),
            1 => (0..3usize).prop_map(Op::MovCr3),
            6 => (page.clone(), off.clone(), size.clone()).prop_map(|(p, o, s)| Op::Read(p, o, s)),
            2 => (page.clone(), off.clone(), size.clone())
                .prop_map(|(p, o, s)| Op::ReadRmw(p, o, s)),
            4 => (page.clone(), off.clone(), size, any::<u64>())
                .prop_map(|(p, o, s, v)| Op::Write(p, o, s, v)),
            3 => (page.clone(), off).prop_map(|(p, o)| Op::Fetch(p, o)),
            1 => page.clone().prop_map(Op::Invlpg),
            1 => (0..2usize, page, prop_oneof![Just(7u64), Just(5), Just(3), Just(0)])
                .prop_map(|(t, p, f)| Op::Pte(t, p, f)),
            1 => prop_oneof![Just(0u8), Just(3)].prop_map(Op::Cpl),
        ]
    }

    fn read_fast_n(m: &mut Machine, la: u64, size: usize, rmw: bool) -> Result<u64, Event> {
        match (size, rmw) {
            (1, false) => m.read_fast::<1>(SegReg::Ds, la),
            (2, false) => m.read_fast::<2>(SegReg::Ds, la),
            (4, false) => m.read_fast::<4>(SegReg::Ds, la),
            (_, false) => m.read_fast::<8>(SegReg::Ds, la),
            (1, true) => m.read_fast_rmw::<1>(SegReg::Ds, la),
            (2, true) => m.read_fast_rmw::<2>(SegReg::Ds, la),
            (4, true) => m.read_fast_rmw::<4>(SegReg::Ds, la),
            (_, true) => m.read_fast_rmw::<8>(SegReg::Ds, la),
        }
    }

    fn write_fast_n(m: &mut Machine, la: u64, size: usize, v: u64) -> Flow {
        match size {
            1 => m.write_fast::<1>(SegReg::Ds, la, v),
            2 => m.write_fast::<2>(SegReg::Ds, la, v),
            4 => m.write_fast::<4>(SegReg::Ds, la, v),
            _ => m.write_fast::<8>(SegReg::Ds, la, v),
        }
    }

    /// Runs `op` on `fast` through the page cache and on `reference`
    /// through the reference path; the results must agree.
    fn step(fast: &mut Machine, reference: &mut Machine, op: &Op) -> Result<(), TestCaseError> {
        let la = |p: u64, o: u64| DATA + p * 0x1000 + o;
        match *op {
            Op::Switch(c) => {
                for m in [&mut *fast, &mut *reference] {
                    m.cpu.sys.cr3 = CR3[c];
                    m.paging_changed();
                }
            }
            Op::MovCr3(c) => {
                prop_assert_eq!(fast.write_cr3(CR3[c]), reference.write_cr3(CR3[c]));
            }
            Op::Read(p, o, s) | Op::ReadRmw(p, o, s) => {
                let rmw = matches!(op, Op::ReadRmw(..));
                let a = read_fast_n(fast, la(p, o), s, rmw);
                let b = if rmw {
                    reference.read_mem_rmw(SegReg::Ds, la(p, o), s)
                } else {
                    reference.read_mem(SegReg::Ds, la(p, o), s)
                };
                prop_assert_eq!(a, b);
            }
            Op::Write(p, o, s, v) => {
                let a = write_fast_n(fast, la(p, o), s, v);
                let b = reference.write_mem(SegReg::Ds, la(p, o), s, v);
                prop_assert_eq!(a, b);
            }
            Op::Fetch(p, o) => {
                let a = fast.translate_fetch(la(p, o));
                let b = reference.translate(la(p, o), AccessKind::Execute, Privilege::Current);
                prop_assert_eq!(a, b);
            }
            Op::Invlpg(p) => {
                fast.invalidate_page(la(p, 0));
                reference.invalidate_page(la(p, 0));
            }
            Op::Pte(t, p, flags) => {
                let target = if t == 0 { p } else { p ^ 5 };
                let v = (DATA + target * 0x1000) | flags;
                fast.load_phys(pte_at(t, p), &v.to_le_bytes());
                reference.load_phys(pte_at(t, p), &v.to_le_bytes());
            }
            Op::Cpl(c) => {
                set_cpl(fast, c);
                set_cpl(reference, c);
            }
        }
        prop_assert!(
            fast.mmu == reference.mmu,
            "the modelled MMUs differ after {op:?}"
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Keeping the lines of earlier contexts (and taking them back on a
        /// return) answers and counts exactly as the reference path.
        #[test]
        fn page_cache_equals_reference(ops in proptest::collection::vec(op(), 1..200)) {
            let mut fast = machine();
            let mut reference = machine();
            for op in &ops {
                step(&mut fast, &mut reference, op)?;
            }
            prop_assert!(fast.ram.as_slice() == reference.ram.as_slice(), "RAM differs");
        }
    }

    /// A return to a context finds the lines it filled; a flush or a
    /// forgotten context does not.
    #[test]
    fn lines_survive_a_round_trip_of_contexts() {
        let mut m = machine();
        let la = DATA + 0x3000;
        m.read_fast::<8>(SegReg::Ds, la).expect("mapped");
        assert!(m.page_hit(la, READ).is_some());
        m.cpu.sys.cr3 = CR3[1];
        m.paging_changed();
        assert!(m.page_hit(la, READ).is_none(), "another context");
        m.cpu.sys.cr3 = CR3[0];
        m.paging_changed();
        assert!(m.page_hit(la, READ).is_some(), "the same context again");
        m.pages.new_context();
        assert!(m.page_hit(la, READ).is_none(), "all contexts forgotten");
        m.read_fast::<8>(SegReg::Ds, la).expect("mapped");
        m.write_cr3(CR3[0]).expect("a good CR3");
        assert!(m.page_hit(la, READ).is_none(), "MOV CR3 flushed the TLB");
    }
}
