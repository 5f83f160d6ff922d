//! The MMU facade the interpreter calls: TLB lookup on the fast path, a walk
//! (one- or two-dimensional) on a miss, the invalidation instructions, and the
//! counters.

mod context;
mod invalidate;

pub use context::TranslationContext;
pub use invalidate::{InveptType, InvpcidType, InvvpidType, TlbControl};

use crate::counters::{MmuCosts, MmuCounters, TlbCounters, Work};
use crate::paging::cache::{PscEntry, WalkCaches};
use crate::paging::format::{Rights, EPT_R, EPT_UX, EPT_W, EPT_X, RIGHT_U, RIGHT_W, RIGHT_X};
use crate::paging::nested::{nested_translate, NestedReq, NestedTranslation, Stage};
use crate::paging::{
    guest, pdpte, Access, AccessKind, NestedPaging, PagingMode, PdpteError, PhysMemory,
    TranslateFault, Translation, WalkEvent, WalkRecorder,
};
use crate::tlb::entry::{
    code_for_shift, code_shift, DIRTY_OK, GLOBAL, OK_FETCH, OK_READ, OK_WRITE,
};
use crate::tlb::psc::NestedTlb;
use crate::tlb::{
    GlobalRule, GuestPsc, NestedPsc, RootSel, Scope, TlbConfig, TlbConfigError, TlbEntry, TlbLevel,
    VpidSel,
};
use crate::{GuestPhysAddr, LinearAddr, PhysAddr};
use serde::{Deserialize, Serialize};

/// The walkers' view of `$mmu`'s caches and counters under context `$ctx`
/// (a struct of borrows of its fields, built in place so that the borrows
/// stay apart from the rest of the MMU's).
macro_rules! caches {
    ($mmu:ident, $ctx:expr) => {
        MmuCaches {
            ctx: $ctx,
            counters: &mut $mmu.counters,
            costs: &$mmu.cost.costs,
            cycles: 0,
            refs: 0,
            guest_psc: &mut $mmu.guest_psc,
            nested_psc: &mut $mmu.nested_psc,
            nested_tlb: &mut $mmu.nested_tlb,
            tlbs: [&mut $mmu.itlb, &mut $mmu.dtlb, &mut $mmu.stlb],
            fast: !$mmu.general_only.0,
            ntlb_absent: None,
        }
    };
}

/// The modelled MMU of one logical processor: TLBs, paging-structure caches,
/// nested TLB, counters. Its state is plain data (serde) and deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mmu {
    config: TlbConfig,
    itlb: TlbLevel,
    dtlb: TlbLevel,
    stlb: TlbLevel,
    guest_psc: GuestPsc,
    nested_psc: NestedPsc,
    nested_tlb: NestedTlb,
    counters: MmuCounters,
    /// The cost of `counters`, kept as they grow: derived from them and
    /// the cost weights ([`Mmu::set_costs`]), so not stored.
    #[serde(skip)]
    cost: RunningCost,
    /// Host-side: the first-level entry the last fill made, for
    /// [`Mmu::l1_probe`]. Not modelled state (never stored, never
    /// compared).
    #[serde(skip)]
    last_fill: LastFill,
    /// Host-side: walks take only the general path (for tests comparing
    /// it with the short ones). Not modelled state.
    #[serde(skip)]
    general_only: GeneralOnly,
}

impl Mmu {
    /// An MMU with empty caches of the configured sizes.
    pub fn new(config: TlbConfig) -> Result<Self, TlbConfigError> {
        config.validate()?;
        Ok(Self {
            itlb: TlbLevel::new(&config.itlb),
            dtlb: TlbLevel::new(&config.dtlb),
            stlb: TlbLevel::new(&config.stlb),
            guest_psc: GuestPsc::new(&config.guest_psc),
            nested_psc: NestedPsc::new(&config.nested_psc),
            nested_tlb: NestedTlb::new(config.nested_tlb),
            counters: MmuCounters::default(),
            cost: RunningCost::default(),
            last_fill: LastFill::default(),
            general_only: GeneralOnly(false),
            config,
        })
    }

    /// Makes walks take only the general walker (`true`) or also its short
    /// paths for misses a paging-structure cache leaves one entry for
    /// (`false`, the default). Both give the same outcome, counters, cache
    /// contents and references: tests compare them.
    pub fn set_general_walks_only(&mut self, on: bool) {
        self.general_only = GeneralOnly(on);
    }

    /// The configuration.
    pub fn config(&self) -> &TlbConfig {
        &self.config
    }

    /// Translates linear address `la` for `access`: a TLB lookup, and on a
    /// miss a walk that fills the TLBs. Returns the machine-physical address,
    /// or the fault to deliver (#PF, EPT violation or misconfiguration,
    /// #NPF). `la` must already have passed the canonicality and segment
    /// checks, which are the caller's.
    #[inline]
    pub fn translate<M, R>(
        &mut self,
        ctx: &TranslationContext,
        la: LinearAddr,
        access: Access,
        mem: &mut M,
        rec: &mut R,
    ) -> Result<PhysAddr, TranslateFault>
    where
        M: PhysMemory + ?Sized,
        R: WalkRecorder + ?Sized,
    {
        if ctx.is_identity() {
            crate::tally!(self.counters.untranslated += 1);
            return Ok(PhysAddr(la.0));
        }
        let fetch = access.is_fetch();
        let l1 = if fetch {
            &mut self.itlb
        } else {
            &mut self.dtlb
        };
        // What the lookups prove absent from the first level and from the
        // shared one, so the fills after a walk need no search.
        let absent = if let Some(e) = l1.lookup(la.0, ctx.tag()) {
            if e.permits(access, ctx.policy()) {
                let pa = e.pa(la.0);
                crate::tally!(self.tlb_counters(fetch).l1_hits += 1);
                rec.event(WalkEvent::TlbHit { level: 1 });
                return Ok(PhysAddr(pa));
            }
            Absent::NONE
        } else if let Some(e) = self.stlb.lookup(la.0, ctx.tag()) {
            if e.permits(access, ctx.policy()) {
                let e = *e;
                let held = l1.insert_absent(e);
                self.last_fill
                    .note(held, fetch, l1.generation(), la.0, ctx, e);
                crate::tally!(self.tlb_counters(fetch).l2_hits += 1);
                crate::tally!(
                    self.cost.tlb = self.cost.tlb.wrapping_add(self.cost.costs.tlb_l2_hit)
                );
                rec.event(WalkEvent::TlbHit { level: 2 });
                return Ok(PhysAddr(e.pa(la.0)));
            }
            Absent {
                l1: true,
                l2: false,
            }
        } else {
            Absent { l1: true, l2: true }
        };
        self.translate_miss(ctx, la, access, mem, rec, absent)
            .map(|t| t.pa)
    }

    /// The machine-physical address [`Mmu::translate`] would return for `la`
    /// from a first-level TLB hit, without translating: no counters move,
    /// nothing is filled. `None` if the access would not hit the first level
    /// (or the context is the identity).
    ///
    /// With [`Mmu::l1_generation`] this lets a host-side cache in front of
    /// the model stand in for a first-level hit exactly: while the
    /// generation and the context are unchanged, `translate` of the same
    /// page for the same access would hit the same entry, and
    /// [`Mmu::count_l1_hit`] moves the counters it would move.
    #[inline]
    pub fn l1_probe(
        &self,
        ctx: &TranslationContext,
        la: LinearAddr,
        access: Access,
    ) -> Option<u64> {
        if ctx.is_identity() {
            return None;
        }
        let fetch = access.is_fetch();
        let l1 = if fetch { &self.itlb } else { &self.dtlb };
        let e = match self.last_fill.get(fetch, l1.generation(), la.0, ctx) {
            Some(e) => {
                debug_assert_eq!(
                    l1.lookup(la.0, ctx.tag())
                        .map(|x| TlbEntry { stamp: 0, ..*x }),
                    Some(TlbEntry { stamp: 0, ..*e }),
                    "the last fill is what a lookup finds"
                );
                e
            }
            None => l1.lookup(la.0, ctx.tag())?,
        };
        e.permits(access, ctx.policy()).then(|| e.pa(la.0))
    }

    /// The generation of the first-level TLB for fetches (`true`) or data
    /// accesses: it changes whenever that TLB's content does.
    #[inline]
    pub fn l1_generation(&self, fetch: bool) -> u64 {
        if fetch {
            self.itlb.generation()
        } else {
            self.dtlb.generation()
        }
    }

    /// Counts a first-level hit found through [`Mmu::l1_probe`]: exactly
    /// what [`Mmu::translate`] counts for one.
    #[inline]
    pub fn count_l1_hit(&mut self, fetch: bool) {
        self.count_l1_hits(fetch, 1);
    }

    /// Counts `n` first-level hits found through [`Mmu::l1_probe`] at
    /// once.
    #[inline]
    pub fn count_l1_hits(&mut self, fetch: bool, n: u64) {
        crate::tally!(self.tlb_counters(fetch).l1_hits += n);
        let _ = (fetch, n);
    }

    /// Like [`Mmu::translate`] but always walks (filling the caches and TLBs
    /// as a miss would) and returns the whole [`Translation`]: for debuggers,
    /// viewers and tests.
    pub fn translate_walk<M, R>(
        &mut self,
        ctx: &TranslationContext,
        la: LinearAddr,
        access: Access,
        mem: &mut M,
        rec: &mut R,
    ) -> Result<Translation, TranslateFault>
    where
        M: PhysMemory + ?Sized,
        R: WalkRecorder + ?Sized,
    {
        self.translate_miss(ctx, la, access, mem, rec, Absent::NONE)
    }

    #[inline(never)]
    fn translate_miss<M, R>(
        &mut self,
        ctx: &TranslationContext,
        la: LinearAddr,
        access: Access,
        mem: &mut M,
        rec: &mut R,
        absent: Absent,
    ) -> Result<Translation, TranslateFault>
    where
        M: PhysMemory + ?Sized,
        R: WalkRecorder + ?Sized,
    {
        let fetch = access.is_fetch();
        crate::tally!(self.tlb_counters(fetch).misses += 1);
        crate::tally!(self.cost.tlb = self.cost.tlb.wrapping_add(self.cost.costs.tlb_miss));
        let mut caches = caches!(self, ctx);
        let res = guest::translate(
            ctx.config(),
            ctx.policy(),
            ctx.nested(),
            la.0,
            access,
            mem,
            rec,
            &mut caches,
        );
        if let Ok(t) = &res {
            // The access itself comes right after: let the host fetch its
            // data while the counting and the fills below run.
            mem.prefetch(t.pa);
        }
        let (refs, cycles) = (caches.refs, caches.cycles);
        self.count_walk(refs, res.is_err(), cycles);
        if let Ok(t) = &res {
            // A walk only removes TLB entries (a fault's invalidation, and
            // then nothing is filled), so what the lookups found absent
            // still is.
            let e = tlb_entry(ctx, la.0, t);
            fill(&mut self.stlb, e, absent.l2);
            let l1 = if fetch {
                &mut self.itlb
            } else {
                &mut self.dtlb
            };
            let held = fill(l1, e, absent.l1);
            self.last_fill
                .note(held && absent.l1, fetch, l1.generation(), la.0, ctx, e);
        }
        res
    }

    /// Translates a guest-physical address through EPT/NPT for an access made
    /// by guest-physical address (not part of a linear translation: the exit
    /// information says so). Identity without nested paging.
    pub fn translate_gpa<M, R>(
        &mut self,
        ctx: &TranslationContext,
        gpa: GuestPhysAddr,
        kind: AccessKind,
        mem: &mut M,
        rec: &mut R,
    ) -> Result<PhysAddr, TranslateFault>
    where
        M: PhysMemory + ?Sized,
        R: WalkRecorder + ?Sized,
    {
        let Some(n) = ctx.nested() else {
            return Ok(PhysAddr(gpa.0));
        };
        let req = NestedReq {
            gpa: gpa.0,
            kind,
            stage: Stage::Physical,
        };
        let mut caches = caches!(self, ctx);
        let res = nested_translate(n, ctx.widths(), &req, mem, rec, &mut caches);
        let (refs, cycles) = (caches.refs, caches.cycles);
        if refs == 0 && res.is_ok() {
            // Translated without reading an entry: a nested-TLB hit, not a
            // walk.
            self.cost.walks = self.cost.walks.wrapping_add(cycles);
        } else {
            self.count_walk(refs, res.is_err(), cycles);
        }
        res.map(|t| t.hpa)
    }

    /// Loads the four PAE PDPTEs from `cr3` (SDM Vol. 3A 4.4.1), through
    /// EPT/NPT when the context has nested paging. `Err(Reserved)` means
    /// #GP(0).
    pub fn load_pdptes<M, R>(
        &mut self,
        ctx: &TranslationContext,
        cr3: u64,
        mem: &mut M,
        rec: &mut R,
    ) -> Result<[u64; 4], PdpteError>
    where
        M: PhysMemory + ?Sized,
        R: WalkRecorder + ?Sized,
    {
        let mut caches = caches!(self, ctx);
        let res = pdpte::load(cr3, ctx.widths(), ctx.nested(), mem, rec, &mut caches);
        let (refs, cycles) = (caches.refs, caches.cycles);
        self.count_walk(refs, res.is_err(), cycles);
        res
    }

    /// Counts a walk of `refs` entry reads, whose work the walkers added to
    /// the counters, and adds its modelled `cycles` to the running cost.
    #[inline]
    fn count_walk(&mut self, refs: u64, faulted: bool, cycles: u64) {
        self.counters.count_walk(refs, faulted);
        self.cost.walks = self.cost.walks.wrapping_add(cycles);
    }

    #[inline]
    #[cfg_attr(feature = "uncounted", allow(dead_code))]
    fn tlb_counters(&mut self, fetch: bool) -> &mut TlbCounters {
        if fetch {
            &mut self.counters.itlb
        } else {
            &mut self.counters.dtlb
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &MmuCounters {
        &self.counters
    }

    /// The counters, mutably. Their cost ([`Mmu::cycles`]) does not follow
    /// changes made through this: [`Mmu::set_costs`] recomputes it.
    pub fn counters_mut(&mut self) -> &mut MmuCounters {
        &mut self.counters
    }

    /// Returns the counters and starts new ones (for attributing work to a
    /// level at VM entries and exits); their cost starts again at 0.
    pub fn take_counters(&mut self) -> MmuCounters {
        self.cost.restart();
        core::mem::take(&mut self.counters)
    }

    /// Adds the counters to `into` and starts new ones, as
    /// [`Mmu::take_counters`] followed by [`MmuCounters::merge`] but
    /// without moving them.
    pub fn take_counters_into(&mut self, into: &mut MmuCounters) {
        self.cost.restart();
        into.merge(&self.counters);
        self.counters.clear();
    }

    /// Sets the modelled cycles of each MMU event (the machine's cost
    /// model) and recomputes the cost of the counters with them.
    pub fn set_costs(&mut self, costs: MmuCosts) {
        let (tlb, walks) = costs.cycles(&self.counters);
        // The first-level hits are added when read (see `cycles`).
        let l1 = (self.counters.itlb.l1_hits + self.counters.dtlb.l1_hits)
            .wrapping_mul(costs.tlb_l1_hit);
        self.cost = RunningCost {
            costs,
            tlb: tlb.wrapping_sub(l1),
            walks,
        };
    }

    /// The modelled cycles of the counters, (TLB, walks): always
    /// `costs.cycles(self.counters())` for the costs last set, kept as the
    /// counters grow (the walkers add each unit of walk work's cost as they
    /// count it). First-level TLB hits, the most frequent event and free
    /// in the presets, are costed here rather than at each hit.
    #[inline]
    pub fn cycles(&self) -> (u64, u64) {
        let c = &self.cost;
        let mut tlb = c.tlb;
        if c.costs.tlb_l1_hit != 0 {
            let l1 = self.counters.itlb.l1_hits + self.counters.dtlb.l1_hits;
            tlb = tlb.wrapping_add(l1.wrapping_mul(c.costs.tlb_l1_hit));
        }
        (tlb, c.walks)
    }

    /// The cost weights last set.
    pub fn costs(&self) -> &MmuCosts {
        &self.cost.costs
    }

    /// Every valid entry of the first-level TLB for `kind` and of the shared
    /// TLB, for tests and viewers.
    pub fn tlb_entries(&self, kind: AccessKind) -> impl Iterator<Item = &TlbEntry> {
        let l1 = if kind == AccessKind::Execute {
            &self.itlb
        } else {
            &self.dtlb
        };
        l1.entries().chain(self.stlb.entries())
    }

    /// Numbers of valid entries in the guest and nested paging-structure
    /// caches and the nested TLB.
    pub fn cache_occupancy(&self) -> (usize, usize, usize) {
        (
            self.guest_psc.len(),
            self.nested_psc.len(),
            self.nested_tlb.len(),
        )
    }

    fn flush_tlbs(&mut self, scope: &Scope) {
        self.itlb.invalidate(scope);
        self.dtlb.invalidate(scope);
        self.stlb.invalidate(scope);
    }
}

/// The running cost of the counters (see [`Mmu::cycles`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RunningCost {
    /// The weights.
    costs: MmuCosts,
    /// TLB cycles, first-level hits left out.
    tlb: u64,
    /// Walk cycles.
    walks: u64,
}

impl RunningCost {
    /// The cost of new, empty counters.
    fn restart(&mut self) {
        self.tlb = 0;
        self.walks = 0;
    }
}

/// Which TLB levels a translation's lookups found without an entry for the
/// address under the context's tags.
#[derive(Clone, Copy, Debug)]
struct Absent {
    /// The first level (instruction or data, as the access).
    l1: bool,
    /// The shared second level.
    l2: bool,
}

impl Absent {
    /// Nothing known: fills search for an entry to replace.
    const NONE: Absent = Absent {
        l1: false,
        l2: false,
    };
}

/// Caches `e` in `level`, without a search when the lookup found nothing.
/// Returns true if `level` holds `e` now.
#[inline]
fn fill(level: &mut TlbLevel, e: TlbEntry, absent: bool) -> bool {
    if absent {
        level.insert_absent(e)
    } else {
        level.insert(e);
        true
    }
}

/// The first-level entry the last fill made, while it is the one a lookup
/// finds: host-side, so the interpreter's page cache, probing right after
/// a miss ([`Mmu::l1_probe`]), does not search the level again.
///
/// It holds only after a fill into a level whose lookup had just found no
/// entry for the address under the context's tags: then the new entry is
/// the only one a lookup of that 4-KiB page under those tags can find, in
/// any of the level's arrays, until the level changes (its generation).
#[derive(Clone, Copy, Debug, Default)]
struct LastFill(Option<Filled>);

#[derive(Clone, Copy, Debug)]
struct Filled {
    fetch: bool,
    generation: u64,
    page: u64,
    tag: crate::tlb::Tag,
    entry: TlbEntry,
}

impl LastFill {
    /// Notes the entry just filled for `la` into the first level for
    /// `fetch`, now at `generation`; `held` says whether it is known to be
    /// what a lookup finds.
    #[inline]
    fn note(
        &mut self,
        held: bool,
        fetch: bool,
        generation: u64,
        la: u64,
        ctx: &TranslationContext,
        entry: TlbEntry,
    ) {
        self.0 = held.then_some(Filled {
            fetch,
            generation,
            page: la >> 12,
            tag: *ctx.tag(),
            entry,
        });
    }

    /// The entry a lookup of `la` under `ctx`'s tags in the first level
    /// for `fetch`, at `generation`, finds, if the last fill tells.
    #[inline]
    fn get(
        &self,
        fetch: bool,
        generation: u64,
        la: u64,
        ctx: &TranslationContext,
    ) -> Option<&TlbEntry> {
        let f = self.0.as_ref()?;
        (f.fetch == fetch
            && f.generation == generation
            && f.page == la >> 12
            && f.tag == *ctx.tag())
        .then_some(&f.entry)
    }
}

/// Host-side state: equal whatever it holds.
impl PartialEq for LastFill {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for LastFill {}

/// Host-side switch for [`Mmu::set_general_walks_only`]: equal whatever it
/// holds.
#[derive(Clone, Copy, Debug, Default)]
struct GeneralOnly(bool);

impl PartialEq for GeneralOnly {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for GeneralOnly {}

/// Builds the TLB entry for a successful translation. Inlined into the
/// miss path, so the entry is built in registers and stored once into its
/// slots (built in memory by a call, its narrow fields stalled the wide
/// loads that copy it).
#[inline(always)]
fn tlb_entry(ctx: &TranslationContext, la: u64, t: &Translation) -> TlbEntry {
    let unpaged = ctx.regs().mode == PagingMode::Disabled;
    let guest_shift = if unpaged { 30 } else { t.page_size.shift() };
    let shift = t
        .nested
        .map_or(guest_shift, |n| guest_shift.min(n.size.shift()));
    let code = code_for_shift(shift);
    let size_shift = code_shift(code);
    let mut rights: Rights = 0;
    if t.writable {
        rights |= RIGHT_W;
    }
    if t.user {
        rights |= RIGHT_U;
    }
    if !t.nx {
        rights |= RIGHT_X;
    }
    let (nested_ok, nested_dirty) = match (ctx.nested(), &t.nested) {
        // Paging off: the linear address counts as supervisor-mode for
        // mode-based execute control (as the walker decided).
        (Some(n), Some(nt)) => (nested_ok(n, nt, t.user && !unpaged), nt.dirty),
        _ => (OK_READ | OK_WRITE | OK_FETCH, true),
    };
    let global = t.global && !unpaged;
    let tag = ctx.tag();
    TlbEntry {
        key: TlbEntry::make_key(la, code),
        root: tag.root,
        frame: t.pa.0 & !((1u64 << size_shift) - 1),
        vpid: tag.vpid,
        pcid: tag.pcid | if global { GLOBAL } else { 0 },
        rights,
        nested_ok,
        flags: if t.dirty && nested_dirty { DIRTY_OK } else { 0 },
        pkey: t.pkey,
        guest_shift: guest_shift as u8,
        stamp: 0,
    }
}

/// What the nested dimension allows for a cached combined translation.
#[inline]
fn nested_ok(n: &NestedPaging, nt: &NestedTranslation, user_la: bool) -> u8 {
    let r = nt.rights;
    let mut ok = 0;
    match n {
        NestedPaging::Ept(e) => {
            if r & EPT_R != 0 {
                ok |= OK_READ;
            }
            if r & EPT_W != 0 {
                ok |= OK_WRITE;
            }
            let x = if e.mbec && user_la { EPT_UX } else { EPT_X };
            if r & x != 0 {
                ok |= OK_FETCH;
            }
        }
        NestedPaging::Npt(c) => {
            if c.allows(r, false, false) {
                ok |= OK_READ;
            }
            if c.allows(r, true, false) {
                ok |= OK_WRITE;
            }
            if c.allows(r, false, true) {
                ok |= OK_FETCH;
            }
        }
    }
    ok
}

/// The MMU's caches as the walkers see them, tagged for one context.
#[cfg_attr(feature = "uncounted", allow(dead_code))]
struct MmuCaches<'a> {
    ctx: &'a TranslationContext,
    /// The MMU's counters, to which the walk's work is added.
    counters: &'a mut MmuCounters,
    /// The cost weights.
    costs: &'a MmuCosts,
    /// Modelled cycles of the work counted through this view.
    cycles: u64,
    /// Entry reads (both dimensions) counted through this view.
    refs: u64,
    guest_psc: &'a mut GuestPsc,
    nested_psc: &'a mut NestedPsc,
    nested_tlb: &'a mut NestedTlb,
    tlbs: [&'a mut TlbLevel; 3],
    fast: bool,
    /// The guest-physical page whose nested-TLB lookup just found no entry
    /// (under this context's tags), while nothing was filled since: its
    /// fill needs no search ([`NestedTlb::fill_absent`]).
    ntlb_absent: Option<u64>,
}

impl WalkCaches for MmuCaches<'_> {
    #[inline]
    fn fast_paths(&self) -> bool {
        self.fast
    }
    #[inline(always)]
    fn count(&mut self, work: Work, n: u64) {
        crate::tally!(self.counters.add(work, n));
        if matches!(work, Work::GuestRef | Work::NestedRef) {
            crate::tally!(self.refs += n);
        }
        crate::tally!(
            self.cycles = self
                .cycles
                .wrapping_add(n.wrapping_mul(self.costs.of(work)))
        );
        let _ = (work, n);
    }
    fn guest_psc_lookup(&mut self, la: u64, mode: PagingMode) -> Option<PscEntry> {
        self.guest_psc.lookup(la, mode, self.ctx.tag())
    }
    fn guest_psc_fill(&mut self, la: u64, mode: PagingMode, entry: PscEntry) {
        self.guest_psc.fill(la, mode, self.ctx.tag(), entry)
    }
    fn guest_fault(&mut self, la: u64, mode: PagingMode) {
        let tag = *self.ctx.tag();
        self.guest_psc.invalidate_for(la, mode, &tag);
        let scope = Scope {
            vpid: VpidSel::Only(tag.vpid),
            pcid: Some(tag.pcid),
            root: RootSel::Only(tag.root),
            page: Some(la),
            globals: GlobalRule::FlushAnyPcid,
        };
        for t in self.tlbs.iter_mut() {
            t.invalidate(&scope);
        }
    }
    fn nested_tlb_lookup(&mut self, gpa: u64) -> Option<NestedTranslation> {
        let (root, vpid) = self.ctx.nested_tag();
        let found = self.nested_tlb.lookup(gpa, root, vpid);
        self.ntlb_absent = found.is_none().then_some(gpa >> 12);
        found
    }
    fn nested_tlb_fill(&mut self, gpa: u64, t: &NestedTranslation) {
        let (root, vpid) = self.ctx.nested_tag();
        // Only invalidations (which keep an absent entry absent) come
        // between a walk's lookup and its fill; a fill ends the knowledge.
        if self.ntlb_absent.take() == Some(gpa >> 12) {
            self.nested_tlb.fill_absent(gpa, root, vpid, t)
        } else {
            self.nested_tlb.fill(gpa, root, vpid, t)
        }
    }
    fn nested_psc_lookup(&mut self, gpa: u64, levels: u8) -> Option<PscEntry> {
        let (root, vpid) = self.ctx.nested_tag();
        self.nested_psc.lookup(gpa, levels, root, vpid)
    }
    fn nested_psc_fill(&mut self, gpa: u64, entry: PscEntry) {
        let (root, vpid) = self.ctx.nested_tag();
        self.nested_psc.fill(gpa, root, vpid, entry)
    }
    fn nested_fault(&mut self, gpa: u64) {
        let (root, vpid) = self.ctx.nested_tag();
        self.nested_tlb.invalidate_page(gpa, root, vpid);
        self.nested_psc.invalidate_for(gpa, root, vpid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::{PagingFeatures, PagingRegs, SparseMemory};
    use crate::{AddressWidths, Cr0, Cr4, Efer};

    #[test]
    fn state_round_trips_through_serde() {
        let mut mem = SparseMemory::new();
        // Identity-map 0x5000 with 4-level paging rooted at 0x1000.
        mem.write_u64(0x1000, 0x2000 | 0x27);
        mem.write_u64(0x2000, 0x3000 | 0x27);
        mem.write_u64(0x3000, 0x4000 | 0x27);
        mem.write_u64(0x4000 + 5 * 8, 0x5000 | 0x67);
        let regs = PagingRegs::new(Cr0::PG | Cr0::PE, 0x1000, Cr4::PAE, Efer::LME | Efer::LMA);
        let ctx =
            TranslationContext::new(regs, AddressWidths::default(), PagingFeatures::default());
        let mut mmu = Mmu::new(TlbConfig::amd()).unwrap();
        let pa = mmu
            .translate(
                &ctx,
                LinearAddr(0x5123),
                Access::read(false),
                &mut mem,
                &mut (),
            )
            .unwrap();
        assert_eq!(pa, PhysAddr(0x5123));
        let json = serde_json::to_string(&mmu).unwrap();
        let back: Mmu = serde_json::from_str(&json).unwrap();
        assert_eq!(back, mmu);
        assert_eq!(back.tlb_entries(AccessKind::Read).count(), 2);
        assert_eq!(
            Mmu::new(TlbConfig::none())
                .unwrap()
                .tlb_entries(AccessKind::Read)
                .count(),
            0
        );
    }

    #[test]
    fn paging_off_without_nesting_is_the_identity() {
        let regs = PagingRegs::new(Cr0::PE, 0, Cr4::empty(), Efer::empty());
        let ctx =
            TranslationContext::new(regs, AddressWidths::default(), PagingFeatures::default());
        let mut mmu = Mmu::new(TlbConfig::intel()).unwrap();
        let pa = mmu
            .translate(
                &ctx,
                LinearAddr(0xb8000),
                Access::write(false),
                &mut SparseMemory::new(),
                &mut (),
            )
            .unwrap();
        assert_eq!(pa, PhysAddr(0xb8000));
        assert_eq!(mmu.counters().untranslated, 1);
        assert_eq!(mmu.counters().walks, 0);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut c = TlbConfig::intel();
        c.guest_psc.pd = 65;
        assert!(Mmu::new(c).is_err());
    }
}
