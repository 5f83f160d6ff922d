//! Counters and the `--stats` JSON report (DESIGN.md, "Command line").
//!
//! Work is attributed to nesting levels (DESIGN.md, "Cost model"): the
//! software nestemu runs directly is L1 (a hypervisor in VMX root operation or
//! SVM host mode); the guests it runs are L2, told apart by the physical
//! address of their VMCS or VMCB. The VT-x and AMD-V bindings call
//! [`Machine::switch_level`] at every world switch; instructions, cycles and
//! the MMU's counters since the previous switch go to the level being left, so
//! the totals are always the sum of the parts.
//!
//! Cycles are also split by category ([`Category`]: instructions, TLB, walks,
//! VM entries, VM exits, deliveries), in total and per level. Whatever adds
//! to the clock outside [`Stats::charge`] and instruction retirement shows as
//! `other` in the report (time skipped while halted, for instance), so the
//! categories always add up to the total too.

mod reasons;

pub use reasons::ReasonCounts;

use crate::cost::Category;
use crate::machine::Machine;
use mmu::MmuCounters;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Modelled cycles by category.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleParts {
    /// Instructions retiring.
    pub instructions: u64,
    /// TLB lookups.
    pub tlb: u64,
    /// Page walks.
    pub walks: u64,
    /// VM entries / VMRUNs.
    pub vm_entries: u64,
    /// VM exits / #VMEXITs.
    pub vm_exits: u64,
    /// Exception and interrupt delivery.
    pub deliveries: u64,
}

impl CycleParts {
    /// The counter of category `c`.
    #[inline]
    pub fn get_mut(&mut self, c: Category) -> &mut u64 {
        match c {
            Category::Instructions => &mut self.instructions,
            Category::Tlb => &mut self.tlb,
            Category::Walks => &mut self.walks,
            Category::VmEntries => &mut self.vm_entries,
            Category::VmExits => &mut self.vm_exits,
            Category::Deliveries => &mut self.deliveries,
        }
    }

    /// The cycles of category `c`.
    pub fn get(&self, c: Category) -> u64 {
        let mut copy = *self;
        *copy.get_mut(c)
    }

    /// Every category together.
    pub fn sum(&self) -> u64 {
        Category::ALL.iter().map(|&c| self.get(c)).sum()
    }

    fn add(&mut self, o: &CycleParts) {
        for c in Category::ALL {
            *self.get_mut(c) += o.get(c);
        }
    }

    /// `self - o` per category, never below 0.
    fn since(&self, o: &CycleParts) -> CycleParts {
        let mut d = *self;
        for c in Category::ALL {
            *d.get_mut(c) = self.get(c).saturating_sub(o.get(c));
        }
        d
    }

    /// The larger of each category.
    fn max(&self, o: &CycleParts) -> CycleParts {
        let mut d = *self;
        for c in Category::ALL {
            *d.get_mut(c) = self.get(c).max(o.get(c));
        }
        d
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles: the machine's clock (guest time derives from it).
    /// MMU work is added at block boundaries; [`Machine::cycles`] includes
    /// the work since.
    pub cycles: u64,
    /// The same cycles by category (what is not here is `other`).
    pub parts: CycleParts,
    /// The cost of the MMU counters of the current level that is already in
    /// `cycles`: (TLB, walks).
    pub(crate) mmu_charged: (u64, u64),
    /// Exceptions and interrupts delivered, by vector name.
    pub events: BTreeMap<String, u64>,
    /// VM exits (VMX) and #VMEXITs (SVM), by the manual's reason names.
    pub vmexits: ExitCounts,
    /// Failed VM entries / VMRUNs, by the model's check name (prefixed with
    /// `vmx:` or `svm:`).
    pub entry_failures: BTreeMap<String, u64>,
    /// Work attributed to each level (kept in snapshots, not in the report's
    /// top level: [`Machine::levels_report`] presents it).
    pub levels: Levels,
}

/// VM exits counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCounts {
    /// Every exit.
    pub total: u64,
    /// By the reason's name in the manual (`VMEXIT_VMMCALL`, ...).
    pub by_reason: ReasonCounts,
}

/// A level of nesting.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Level {
    /// Root operation / host mode: the hypervisor nestemu runs (or a plain
    /// kernel).
    #[default]
    L1,
    /// A guest of L1, by the physical address of its VMCS or VMCB.
    L2 {
        /// The VMCS or VMCB physical address.
        control: u64,
    },
}

/// The work of one level (or one L2 context).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounters {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// The cycles by category.
    pub parts: CycleParts,
    /// World switches into the level.
    pub entries: u64,
    /// VM exits out of the level.
    pub vmexits: u64,
    /// The exits by reason.
    pub vmexits_by_reason: ReasonCounts,
    /// TLB and page-walk counters.
    pub mmu: MmuCounters,
}

impl LevelCounters {
    fn add(&mut self, o: &LevelCounters) {
        self.instructions += o.instructions;
        self.cycles += o.cycles;
        self.parts.add(&o.parts);
        self.entries += o.entries;
        self.vmexits += o.vmexits;
        self.vmexits_by_reason.merge(&o.vmexits_by_reason);
        self.mmu.merge(&o.mmu);
    }
}

/// Where the running level's current stretch began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    instructions: u64,
    cycles: u64,
    parts: CycleParts,
}

impl Stats {
    /// Adds `n` modelled cycles of category `c` to the clock.
    #[inline]
    pub fn charge(&mut self, c: Category, n: u64) {
        mmu::tally!(self.cycles += n);
        mmu::tally!(*self.parts.get_mut(c) += n);
        let _ = (c, n);
    }

    /// Counts an instruction that retired and its modelled cost. The build
    /// for measuring without the cost model (feature `uncounted`) keeps the
    /// instruction count, which the instruction limit needs, and advances
    /// the clock one cycle per instruction, which the devices need.
    #[inline(always)]
    pub fn retire(&mut self, cost: u32) {
        self.retire_many(1, cost as u64);
    }

    /// Counts `n` instructions that retired together, costing `cost`
    /// modelled cycles in all (see [`Stats::retire`]).
    #[inline(always)]
    pub fn retire_many(&mut self, n: u64, cost: u64) {
        self.instructions += n;
        self.cycles += Self::clock_advance(n, cost);
        if !cfg!(feature = "uncounted") {
            self.parts.instructions += cost;
        }
    }

    /// How far [`Stats::retire_many`] of `n` instructions costing `cost`
    /// advances the clock.
    #[inline(always)]
    pub fn clock_advance(n: u64, cost: u64) -> u64 {
        if cfg!(feature = "uncounted") {
            n
        } else {
            cost
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            instructions: self.instructions,
            cycles: self.cycles,
            parts: self.parts,
        }
    }
}

/// The split of the counters by level.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Levels {
    /// The level running now.
    pub current: Level,
    mark: Mark,
    /// Completed work per level (the running level's work since its last
    /// switch is not in here yet), in the order of the levels: a short list
    /// searched at each world switch ([`Levels::part`]), stored as the list
    /// of (level, counters) pairs (JSON keys are strings).
    #[serde(with = "level_pairs")]
    parts: Vec<(Level, LevelCounters)>,
    /// The translation context of the last guest left by a VM exit (for
    /// `explain-walk --level L2` after the run).
    pub last_guest: Option<(Level, mmu::TranslationContext)>,
    /// Where [`Levels::part`] last found an L2's counters in `parts` (L1's,
    /// which sort first, are at index 0 once added): L1 and one L2
    /// alternate at every world switch, so most lookups search nothing.
    /// Host-side (not saved); cleared when a part is inserted, which moves
    /// the ones after it.
    #[serde(skip)]
    last_l2: Option<(Level, u32)>,
}

impl Levels {
    /// The counters of `level`, added (empty) if it has none yet.
    #[inline]
    fn part(&mut self, level: Level) -> &mut LevelCounters {
        let i = match (level, self.parts.first(), self.last_l2) {
            (Level::L1, Some((Level::L1, _)), _) => 0,
            (Level::L2 { .. }, _, Some((l, i))) if l == level => i as usize,
            _ => {
                let i = match self.parts.binary_search_by(|(l, _)| l.cmp(&level)) {
                    Ok(i) => i,
                    Err(i) => {
                        self.parts.insert(i, (level, LevelCounters::default()));
                        self.last_l2 = None;
                        i
                    }
                };
                if matches!(level, Level::L2 { .. }) {
                    self.last_l2 = Some((level, i as u32));
                }
                i
            }
        };
        debug_assert_eq!(self.parts[i].0, level, "a stale memo of a level's counters");
        &mut self.parts[i].1
    }
}

/// [`Levels::parts`] as a list of (level, counters) pairs, in the order of
/// the levels.
mod level_pairs {
    use super::{Level, LevelCounters};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &[(Level, LevelCounters)], s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    /// Ordered by level, a level listed twice keeping its last counters.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(Level, LevelCounters)>, D::Error> {
        Ok(Vec::<(Level, LevelCounters)>::deserialize(d)?
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect())
    }
}

impl Machine {
    /// Charges the MMU work since the last charge (TLB outcomes, walk
    /// references, cache lookups) to the clock: the cost of the counters is
    /// linear in them, and the MMU keeps it as they grow ([`mmu::Mmu::cycles`],
    /// weighted by the cost model when the machine is built), so this is that
    /// cost minus what was charged of it already. Called at block boundaries
    /// and world switches.
    #[inline]
    pub fn charge_mmu(&mut self) {
        if cfg!(feature = "uncounted") {
            return;
        }
        debug_assert_eq!(
            *self.mmu.costs(),
            self.config.cost.mmu_costs(),
            "the MMU costs its counters with the machine's cost model"
        );
        let (tlb, walks) = self.mmu.cycles();
        if (tlb, walks) != self.stats.mmu_charged {
            self.charge_mmu_now(tlb, walks);
        }
    }

    #[inline(never)]
    fn charge_mmu_now(&mut self, tlb: u64, walks: u64) {
        let (t0, w0) = self.stats.mmu_charged;
        self.stats.charge(Category::Tlb, tlb - t0);
        self.stats.charge(Category::Walks, walks - w0);
        self.stats.mmu_charged = (tlb, walks);
    }

    /// MMU work not charged to the clock yet: (TLB, walks).
    fn pending_mmu(&self) -> (u64, u64) {
        let (tlb, walks) = self.mmu.cycles();
        let (t0, w0) = self.stats.mmu_charged;
        (tlb.saturating_sub(t0), walks.saturating_sub(w0))
    }

    /// The modelled cycle count now: the clock plus MMU work since the last
    /// block boundary. The TSC reads this.
    #[inline]
    pub fn cycles(&self) -> u64 {
        let (t, w) = self.pending_mmu();
        self.stats.cycles + t + w
    }

    /// Cycles by category now (see [`Machine::cycles`]).
    pub fn cycle_parts(&self) -> CycleParts {
        let (t, w) = self.pending_mmu();
        let mut p = self.stats.parts;
        p.tlb += t;
        p.walks += w;
        p
    }

    /// A world switch to level `to`. `retiring` is the cost of the
    /// instruction that switches and has not retired yet (VMRUN, VMLAUNCH):
    /// it counts for the level being left.
    pub fn switch_level(&mut self, to: Level, retiring: Option<u32>) {
        let l = &mut self.stats.levels;
        if matches!(l.current, Level::L2 { .. }) {
            l.last_guest = Some((l.current, self.tctx));
        }
        self.close_level(to, retiring.map_or((0, 0), |c| (1, c as u64)));
        self.stats.levels.part(to).entries += 1;
        if matches!(to, Level::L2 { .. }) && self.trace.wants(crate::trace::Kind::Vmentry) {
            self.trace_vmentry(to);
        }
    }

    /// Ends the running level's stretch and makes `to` the running level:
    /// charges the MMU work, and adds the work since the level's last
    /// switch, with `extra` (instructions, cycles) of a switching
    /// instruction that has not retired yet, and the MMU counters, which
    /// start again, to the level's counters. Returns the level left.
    fn close_level(&mut self, to: Level, extra: (u64, u64)) -> Level {
        self.charge_mmu();
        self.stats.mmu_charged = (0, 0);
        let mut now = self.stats.mark();
        now.instructions += extra.0;
        now.cycles += extra.1;
        now.parts.instructions += extra.1;
        let l = &mut self.stats.levels;
        // A switch back within the same instruction (an exit while VMRUN
        // injects an event) finds the switching instruction counted already.
        let now = Mark {
            instructions: now.instructions.max(l.mark.instructions),
            cycles: now.cycles.max(l.mark.cycles),
            parts: now.parts.max(&l.mark.parts),
        };
        let (mark, left) = (l.mark, l.current);
        let part = l.part(left);
        part.instructions += now.instructions - mark.instructions;
        part.cycles += now.cycles - mark.cycles;
        part.parts.add(&now.parts.since(&mark.parts));
        self.mmu.take_counters_into(&mut part.mmu);
        l.mark = now;
        l.current = to;
        left
    }

    /// Counts a VM exit out of the current level with the manual's name for
    /// its reason, and charges its world switch (the cost model's `vm_exit`,
    /// or the reason's own cost).
    pub fn count_vmexit(&mut self, reason: &'static str) {
        self.count_vmexit_info(reason, None)
    }

    /// [`Machine::count_vmexit`] with the exit information the trace shows:
    /// the exit qualification and guest-physical address (VMX) or EXITINFO1
    /// and EXITINFO2 (SVM).
    pub fn count_vmexit_info(&mut self, reason: &'static str, info: Option<(u64, u64)>) {
        if !cfg!(feature = "uncounted") {
            let cost = self.config.cost.vm_exit_for(reason) as u64;
            self.stats.charge(Category::VmExits, cost);
            let v = &mut self.stats.vmexits;
            v.total += 1;
            v.by_reason.bump(reason);
            let l = &mut self.stats.levels;
            let part = l.part(l.current);
            part.vmexits += 1;
            part.vmexits_by_reason.bump(reason);
        }
        if self.trace.wants(crate::trace::Kind::Vmexit) {
            self.trace_vmexit(reason, info);
        }
    }

    /// Charges a VM entry or VMRUN world switch.
    pub fn charge_vm_entry(&mut self) {
        let cost = self.config.cost.vm_entry as u64;
        self.stats.charge(Category::VmEntries, cost);
    }

    /// Hands the level statistics over to another vCPU running at `to` (an
    /// SMP switch): the work since the last switch goes to the level being
    /// left, as with [`Machine::switch_level`], but no entry is counted.
    /// Returns the level left.
    pub(crate) fn handover_level(&mut self, to: Level) -> Level {
        // The outgoing MMU's work is charged and taken with it.
        self.close_level(to, (0, 0))
    }

    /// The work of every level so far, the running level's current stretch
    /// included.
    pub fn level_counters(&self) -> BTreeMap<Level, LevelCounters> {
        let l = &self.stats.levels;
        let mut parts: BTreeMap<Level, LevelCounters> = l.parts.iter().cloned().collect();
        let now = parts.entry(l.current).or_default();
        now.instructions += self.stats.instructions.saturating_sub(l.mark.instructions);
        now.cycles += self.cycles().saturating_sub(l.mark.cycles);
        now.parts.add(&self.cycle_parts().since(&l.mark.parts));
        now.mmu.merge(self.mmu.counters());
        parts
    }

    /// The MMU's counters over the whole run (every level).
    pub fn mmu_totals(&self) -> MmuCounters {
        let mut t = MmuCounters::default();
        for c in self.level_counters().values() {
            t.merge(&c.mmu);
        }
        t
    }

    /// The levels section of the report.
    pub fn levels_report(&self) -> LevelsReport {
        let parts = self.level_counters();
        let mut l1 = LevelCounters::default();
        let mut l2 = LevelCounters::default();
        let mut contexts = BTreeMap::new();
        for (level, c) in &parts {
            match level {
                Level::L1 => l1.add(c),
                Level::L2 { control } => {
                    l2.add(c);
                    contexts.insert(format!("{control:#x}"), LevelReport::from(c));
                }
            }
        }
        LevelsReport {
            l1: LevelReport::from(&l1),
            l2: L2Report {
                total: LevelReport::from(&l2),
                by_control: contexts,
            },
        }
    }
}

/// TLB outcomes in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlbReport {
    /// Hits in either TLB level, instruction and data.
    pub hits: u64,
    /// Misses (walks started by a lookup).
    pub misses: u64,
    /// Hits in the first-level TLBs (instruction and data).
    pub l1_hits: u64,
    /// Hits in the second-level (shared) TLB.
    pub l2_hits: u64,
}

impl TlbReport {
    /// Hits per lookup, 0 without lookups.
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

/// Page walks in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WalkReport {
    /// Walks.
    pub count: u64,
    /// Paging-structure entries read, both dimensions.
    pub refs: u64,
    /// Entries read in the guest dimension.
    pub guest_refs: u64,
    /// Entries read in the nested (EPT/NPT) dimension.
    pub nested_refs: u64,
    /// `refs_per_walk[n]`: walks that read `n` entries.
    pub refs_per_walk: Vec<u64>,
    /// Accessed/dirty flag writes.
    pub ad_writes: u64,
    /// Walks that ended in a fault.
    pub faults: u64,
    /// Paging-structure-cache hits (guest and nested), which spared
    /// references.
    pub psc_hits: u64,
    /// Paging-structure-cache misses.
    pub psc_misses: u64,
    /// Nested-TLB hits (a guest-physical page translated with no nested
    /// references).
    pub nested_tlb_hits: u64,
}

/// Cycles by category in the report; `other` is what was added to the clock
/// outside the categories (time skipped while halted), so the six
/// categories and `other` add up to the cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CyclesReport {
    /// The categories.
    #[serde(flatten)]
    pub parts: CycleParts,
    /// Cycles outside the categories.
    pub other: u64,
}

impl CyclesReport {
    /// The split of `cycles` into `parts` and the rest.
    pub fn new(cycles: u64, parts: CycleParts) -> Self {
        Self {
            parts,
            other: cycles.saturating_sub(parts.sum()),
        }
    }
}

/// One level (or L2 context) in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// The cycles by category.
    pub cycles_by_category: CyclesReport,
    /// World switches into the level.
    pub entries: u64,
    /// VM exits out of the level.
    pub vmexits: u64,
    /// The exits by reason.
    pub vmexits_by_reason: BTreeMap<String, u64>,
    /// TLB outcomes.
    pub tlb: TlbReport,
    /// Page walks.
    pub walks: WalkReport,
}

impl From<&LevelCounters> for LevelReport {
    fn from(c: &LevelCounters) -> Self {
        let m = &c.mmu;
        Self {
            instructions: c.instructions,
            cycles: c.cycles,
            cycles_by_category: CyclesReport::new(c.cycles, c.parts),
            entries: c.entries,
            vmexits: c.vmexits,
            vmexits_by_reason: c.vmexits_by_reason.to_map(),
            tlb: TlbReport {
                hits: m.itlb.hits() + m.dtlb.hits(),
                misses: m.itlb.misses + m.dtlb.misses,
                l1_hits: m.itlb.l1_hits + m.dtlb.l1_hits,
                l2_hits: m.itlb.l2_hits + m.dtlb.l2_hits,
            },
            walks: WalkReport {
                count: m.walks,
                refs: m.refs(),
                guest_refs: m.guest_refs,
                nested_refs: m.nested_refs,
                refs_per_walk: m.refs_per_walk.to_vec(),
                ad_writes: m.ad_writes,
                faults: m.walk_faults,
                psc_hits: m.guest_psc_hits.iter().sum::<u64>()
                    + m.nested_psc_hits.iter().sum::<u64>(),
                psc_misses: m.guest_psc_misses + m.nested_psc_misses,
                nested_tlb_hits: m.nested_tlb_hits,
            },
        }
    }
}

/// The L2 part of the report: the total and each VMCS/VMCB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct L2Report {
    /// Every L2 context together.
    #[serde(flatten)]
    pub total: LevelReport,
    /// By VMCS/VMCB physical address (hex).
    pub by_control: BTreeMap<String, LevelReport>,
}

/// The `levels` section: L1 and L2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LevelsReport {
    /// Root operation / host mode.
    #[serde(rename = "L1")]
    pub l1: LevelReport,
    /// Guests.
    #[serde(rename = "L2")]
    pub l2: L2Report,
}

/// The `--stats` report: counters plus host-side facts that do not depend on
/// the host (no timings, so two runs give identical files).
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// The cycles by category.
    pub cycles_by_category: CyclesReport,
    /// The cost model's name.
    pub cost_model: &'a str,
    /// Exit status the run ended with.
    pub exit_status: i32,
    /// Why the run ended.
    pub stop: String,
    /// Events delivered by vector.
    pub events: &'a BTreeMap<String, u64>,
    /// VM exits by reason.
    pub vmexits: &'a ExitCounts,
    /// Failed VM entries by check.
    pub entry_failures: &'a BTreeMap<String, u64>,
    /// TLB outcomes, every level.
    pub tlb: TlbReport,
    /// Page walks, every level.
    pub walks: WalkReport,
    /// The split by level (the parts add up to the totals above).
    pub levels: LevelsReport,
    /// AMD-V diagnostics: failed VMRUN checks, accesses to SVM structures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svm: Option<crate::virt::svm::SvmReport<'a>>,
    /// VT-x: failed VM entries (how many, and the last one with its rule,
    /// field, value and SDM section); absent when VMX was never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmx: Option<VmxReport<'a>>,
    /// Device accesses no device claimed.
    pub unclaimed: crate::devices::UnclaimedCounts,
    /// Decoded-code cache counters.
    pub code_cache: CodeCacheCounts,
    /// Per-vCPU counters (machines with more than one vCPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smp: Option<crate::smp::SmpReport>,
}

impl<'a> Report<'a> {
    /// The report of machine `m`, stopped with `exit_status` because of `stop`.
    pub fn of(m: &'a Machine, exit_status: i32, stop: String) -> Self {
        let all = LevelReport::from(&LevelCounters {
            mmu: m.mmu_totals(),
            ..LevelCounters::default()
        });
        let cycles = m.cycles();
        Report {
            instructions: m.stats.instructions,
            cycles,
            cycles_by_category: CyclesReport::new(cycles, m.cycle_parts()),
            cost_model: &m.config.cost.name,
            exit_status,
            stop,
            events: &m.stats.events,
            vmexits: &m.stats.vmexits,
            entry_failures: &m.stats.entry_failures,
            tlb: all.tlb,
            walks: all.walks,
            levels: m.levels_report(),
            svm: m.virt.svm.report(),
            vmx: (m.virt.vmx.diag.count > 0).then(|| VmxReport {
                entry_failures: m.virt.vmx.diag.count,
                last_entry_failure: m.virt.vmx.diag.last(),
            }),
            unclaimed: m.dev.unclaimed,
            code_cache: CodeCacheCounts {
                decoded_blocks: m.code.decoded_blocks,
                invalidated_blocks: m.code.invalidated_blocks,
            },
            smp: m.smp_report(),
        }
    }
}

/// The VT-x section of the report.
#[derive(Clone, Debug, Serialize)]
pub struct VmxReport<'a> {
    /// Failed VM entries.
    pub entry_failures: u64,
    /// The last one.
    pub last_entry_failure: Option<&'a crate::virt::vmx::diag::EntryFailure>,
}

/// Decoded-code cache counters.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CodeCacheCounts {
    /// Blocks decoded.
    pub decoded_blocks: u64,
    /// Blocks dropped because their page was written.
    pub invalidated_blocks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineConfig;

    /// The levels are kept in their order whatever order they are first
    /// entered in, and stored as the list of (level, counters) pairs.
    #[test]
    fn levels_are_stored_in_order_and_round_trip() {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        for (control, reason) in [(0x9000, "CPUID"), (0x5000, "VMCALL"), (0x9000, "HLT")] {
            m.switch_level(Level::L2 { control }, Some(3));
            m.stats.charge(Category::Instructions, 10);
            m.count_vmexit(reason);
            m.switch_level(Level::L1, None);
        }
        let order: Vec<Level> = m.stats.levels.parts.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            order,
            [
                Level::L1,
                Level::L2 { control: 0x5000 },
                Level::L2 { control: 0x9000 }
            ]
        );
        let json = serde_json::to_value(&m.stats).unwrap();
        let parts = &json["levels"]["parts"];
        assert_eq!(parts[1][0], serde_json::json!({"L2": {"control": 0x5000}}));
        assert_eq!(parts[2][1]["entries"], 2);
        assert_eq!(parts[2][1]["vmexits_by_reason"]["HLT"], 1);
        let back: Stats = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }

    /// A part inserted before a remembered one (L1's counters added after
    /// an L2's) leaves no stale memo behind.
    #[test]
    fn inserting_a_level_moves_the_memo() {
        let mut l = Levels::default();
        let l2 = Level::L2 { control: 0x5000 };
        l.part(l2).entries = 7;
        l.part(Level::L1).entries = 1;
        assert_eq!(l.part(l2).entries, 7);
        assert_eq!(l.parts[0].0, Level::L1);
    }

    proptest::proptest! {
        /// Whatever order the levels are entered in (L2s of several VMCSs,
        /// new ones inserted before remembered ones), each level's entries
        /// and exits land in its own counters: the memo of where
        /// `Levels::part` found them never points at another level's.
        #[test]
        fn level_counters_follow_their_level(
            controls in proptest::collection::vec(0u64..5, 1..40),
        ) {
            let mut m = Machine::new(MachineConfig {
                mem_bytes: 1 << 20,
                ..Default::default()
            });
            let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            for c in &controls {
                let control = 0x1000 * (5 - c);
                m.switch_level(Level::L2 { control }, Some(1));
                m.count_vmexit("VMCALL");
                m.switch_level(Level::L1, None);
                let e = model.entry(control).or_default();
                e.0 += 1;
                e.1 += 1;
            }
            let l = &m.stats.levels;
            let got: BTreeMap<u64, (u64, u64)> = l
                .parts
                .iter()
                .filter_map(|(level, c)| match level {
                    Level::L2 { control } => Some((*control, (c.entries, c.vmexits))),
                    Level::L1 => None,
                })
                .collect();
            proptest::prop_assert_eq!(got, model);
            let l1 = &l.parts[0];
            proptest::prop_assert_eq!(l1.0, Level::L1);
            proptest::prop_assert_eq!(l1.1.entries, controls.len() as u64);
        }
    }

    #[test]
    fn levels_sum_to_the_totals() {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        m.stats.instructions = 10;
        m.stats.charge(Category::Instructions, 100);
        // VMLAUNCH retiring with cost 5 counts for L1.
        m.switch_level(Level::L2 { control: 0x5000 }, Some(5));
        m.stats.instructions = 32;
        m.stats.charge(Category::Instructions, 505);
        // The exit's world switch is charged to the level it leaves.
        m.count_vmexit("CPUID");
        m.switch_level(Level::L1, None);
        m.stats.instructions = 40;
        m.stats.charge(Category::Instructions, 95);
        let r = m.levels_report();
        assert_eq!(r.l1.instructions, 11 + 8);
        assert_eq!(r.l2.total.instructions, 21);
        let exit = m.config.cost.vm_exit as u64;
        assert_eq!(m.stats.cycles, 700 + exit);
        // The 5 of VMLAUNCH moved from the guest's stretch to the root's.
        assert_eq!(r.l1.cycles, 100 + 5 + 95);
        assert_eq!(r.l2.total.cycles, 505 - 5 + exit);
        assert_eq!(r.l2.total.cycles_by_category.parts.vm_exits, exit);
        assert_eq!(r.l1.cycles + r.l2.total.cycles, m.stats.cycles);
        assert_eq!(
            r.l1.instructions + r.l2.total.instructions,
            m.stats.instructions
        );
        assert_eq!(r.l2.by_control["0x5000"].vmexits, 1);
        assert_eq!(r.l2.total.entries, 1);
        assert_eq!(m.stats.vmexits.by_reason["CPUID"], 1);
    }
}
