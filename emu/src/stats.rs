//! Counters and the `--stats` JSON report (DESIGN.md, "Command line").
//!
//! Work is attributed to levels: the root (the host, L1 when it is a
//! hypervisor) and each guest it runs, keyed by the VMCS or VMCB pointer. At
//! every VM entry and exit the instructions, cycles and MMU counters since the
//! previous transition go to the level that ran ([`Stats::switch_level`]); the
//! report adds the work of the level still running, so the totals are always
//! the sum of the parts.

use mmu::MmuCounters;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// Exceptions and interrupts delivered, by vector name.
    pub events: BTreeMap<String, u64>,
    /// VM exits, by the manual's reason names.
    pub vmexits: ExitCounts,
    /// Work per level.
    #[serde(skip)]
    pub levels: Levels,
}

/// VM exits (VMX) or #VMEXITs (SVM) counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExitCounts {
    /// Every exit.
    pub total: u64,
    /// By the manual's name of the exit reason.
    pub by_reason: BTreeMap<String, u64>,
}

impl ExitCounts {
    fn add(&mut self, reason: &str) {
        self.total += 1;
        *self.by_reason.entry(reason.to_string()).or_default() += 1;
    }
    fn merge(&mut self, o: &ExitCounts) {
        self.total += o.total;
        for (k, v) in &o.by_reason {
            *self.by_reason.entry(k.clone()).or_default() += v;
        }
    }
}

/// The work of one level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelCounters {
    /// Instructions retired at this level.
    pub instructions: u64,
    /// Modelled cycles spent at this level (VM entry and exit costs go to the
    /// level that executed the transition: the entry to the root, the exit
    /// to the guest).
    pub cycles: u64,
    /// VM entries into this level (guests only).
    pub entries: u64,
    /// VM exits out of this level (guests only).
    pub vmexits: ExitCounts,
    /// TLB and walk counters of translations made at this level.
    pub mmu: MmuCounters,
}

impl LevelCounters {
    fn merge(&mut self, o: &LevelCounters) {
        self.instructions += o.instructions;
        self.cycles += o.cycles;
        self.entries += o.entries;
        self.vmexits.merge(&o.vmexits);
        self.mmu.merge(&o.mmu);
    }
}

/// Work per level: the root and each guest.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    /// The level running: `None` for the root, `Some(pointer)` for the guest
    /// of that VMCS (or VMCB).
    pub current: Option<u64>,
    mark_instructions: u64,
    mark_cycles: u64,
    /// The root.
    pub root: LevelCounters,
    /// Each guest, by VMCS or VMCB pointer.
    pub guests: BTreeMap<u64, LevelCounters>,
}

impl Levels {
    fn level_mut(&mut self, key: Option<u64>) -> &mut LevelCounters {
        match key {
            None => &mut self.root,
            Some(k) => self.guests.entry(k).or_default(),
        }
    }
}

impl Stats {
    /// Attributes the work since the last transition and the MMU counters
    /// `mmu` to the level that ran, then makes `next` the running level.
    pub fn switch_level(&mut self, next: Option<u64>, mmu: MmuCounters) {
        let (insns, cycles) = (self.instructions, self.cycles);
        let l = &mut self.levels;
        let (mi, mc) = (l.mark_instructions, l.mark_cycles);
        let cur = l.level_mut(l.current);
        cur.instructions += insns - mi;
        cur.cycles += cycles - mc;
        cur.mmu.merge(&mmu);
        l.mark_instructions = insns;
        l.mark_cycles = cycles;
        l.current = next;
        if next.is_some() {
            l.level_mut(next).entries += 1;
        }
    }

    /// Counts a VM exit (or VM-entry failure) of the guest `guest`.
    pub fn count_vmexit(&mut self, reason: &str, guest: u64) {
        self.vmexits.add(reason);
        self.levels.level_mut(Some(guest)).vmexits.add(reason);
    }

    /// The levels as they stand, with the running level's work so far and the
    /// MMU counters not yet attributed (`mmu_now`).
    pub fn levels_now(&self, mmu_now: &MmuCounters) -> Levels {
        let mut l = self.levels.clone();
        let (insns, cycles) = (self.instructions, self.cycles);
        let (mi, mc) = (l.mark_instructions, l.mark_cycles);
        let cur = l.level_mut(l.current);
        cur.instructions += insns - mi;
        cur.cycles += cycles - mc;
        cur.mmu.merge(mmu_now);
        l
    }
}

/// Walk counters in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WalkReport {
    /// Walks made.
    pub count: u64,
    /// Walks that ended in a fault.
    pub faults: u64,
    /// Paging-structure entries read, both dimensions.
    pub refs: u64,
    /// Guest-dimension entry reads.
    pub guest_refs: u64,
    /// Nested-dimension (EPT/NPT) entry reads.
    pub nested_refs: u64,
    /// `refs_per_walk[n]`: walks that read `n` entries.
    pub refs_per_walk: Vec<u64>,
}

/// TLB counters in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlbReport {
    /// Hits in either level, instruction and data.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
}

/// One level in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// VM entries into the level.
    pub entries: u64,
    /// VM exits out of the level.
    pub vmexits: ExitCounts,
    /// Page walks.
    pub walks: WalkReport,
    /// TLB lookups.
    pub tlb: TlbReport,
}

impl From<&LevelCounters> for LevelReport {
    fn from(c: &LevelCounters) -> Self {
        let m = &c.mmu;
        Self {
            instructions: c.instructions,
            cycles: c.cycles,
            entries: c.entries,
            vmexits: c.vmexits.clone(),
            walks: WalkReport {
                count: m.walks,
                faults: m.walk_faults,
                refs: m.guest_refs + m.nested_refs,
                guest_refs: m.guest_refs,
                nested_refs: m.nested_refs,
                refs_per_walk: m.refs_per_walk.clone(),
            },
            tlb: TlbReport {
                hits: m.itlb.hits() + m.dtlb.hits(),
                misses: m.itlb.misses + m.dtlb.misses,
            },
        }
    }
}

/// The levels in the report: the root, all guests together, each guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LevelsReport {
    /// The root (host / L1).
    pub root: LevelReport,
    /// Every guest together.
    pub guest: LevelReport,
    /// Each guest by VMCS/VMCB pointer (hex).
    pub guests: BTreeMap<String, LevelReport>,
}

impl LevelsReport {
    /// The report of `l`, and the totals over every level.
    pub fn new(l: &Levels) -> (Self, LevelReport) {
        let mut guest = LevelCounters::default();
        for g in l.guests.values() {
            guest.merge(g);
        }
        let mut total = l.root.clone();
        total.merge(&guest);
        let r = Self {
            root: (&l.root).into(),
            guest: (&guest).into(),
            guests: l
                .guests
                .iter()
                .map(|(k, v)| (format!("{k:#x}"), v.into()))
                .collect(),
        };
        (r, (&total).into())
    }
}

/// The `--stats` report: counters plus host-side facts that do not depend on
/// the host (no timings, so two runs give identical files).
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// Exit status the run ended with.
    pub exit_status: i32,
    /// Why the run ended.
    pub stop: String,
    /// Events delivered by vector.
    pub events: &'a BTreeMap<String, u64>,
    /// VM exits by reason.
    pub vmexits: &'a ExitCounts,
    /// Page walks, every level.
    pub walks: WalkReport,
    /// TLB lookups, every level.
    pub tlb: TlbReport,
    /// The same per level.
    pub levels: LevelsReport,
    /// Failed VM entries and the rule the last one broke.
    pub vm_entry_failures: EntryFailures,
    /// Device accesses no device claimed.
    pub unclaimed: crate::devices::UnclaimedCounts,
    /// Decoded-code cache counters.
    pub code_cache: CodeCacheCounts,
}

/// Failed VM entries in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EntryFailures {
    /// How many.
    pub count: u64,
    /// The last one, described.
    pub last: Option<crate::virt::vmx::diag::EntryFailure>,
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

    #[test]
    fn levels_sum_to_the_totals() {
        let mut s = Stats {
            instructions: 10,
            cycles: 100,
            ..Default::default()
        };
        let mmu = MmuCounters {
            walks: 3,
            ..Default::default()
        };
        s.switch_level(Some(0x5000), mmu.clone());
        s.instructions = 31;
        s.cycles = 600;
        s.count_vmexit("CPUID", 0x5000);
        s.switch_level(None, mmu.clone());
        s.instructions = 40;
        s.cycles = 700;
        let l = s.levels_now(&mmu);
        let (r, total) = LevelsReport::new(&l);
        assert_eq!(r.root.instructions, 10 + 9);
        assert_eq!(r.guest.instructions, 21);
        assert_eq!(total.instructions, s.instructions);
        assert_eq!(total.cycles, s.cycles);
        assert_eq!(total.walks.count, 9);
        assert_eq!(r.guests["0x5000"].vmexits.total, 1);
        assert_eq!(r.guest.entries, 1);
        assert_eq!(s.vmexits.by_reason["CPUID"], 1);
    }
}
