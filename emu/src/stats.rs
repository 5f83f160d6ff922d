//! Counters and the `--stats` JSON report (DESIGN.md, "Command line").
//!
//! Work is attributed to nesting levels (DESIGN.md, "Cost model"): the
//! software nestemu runs directly is L1 (a hypervisor in VMX root operation or
//! SVM host mode); the guests it runs are L2, told apart by the physical
//! address of their VMCS or VMCB. The VT-x and AMD-V bindings call
//! [`Machine::switch_level`] at every world switch; instructions, cycles and
//! the MMU's counters since the previous switch go to the level being left, so
//! the totals are always the sum of the parts.

use crate::machine::Machine;
use mmu::MmuCounters;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counters of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
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
    pub by_reason: BTreeMap<String, u64>,
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
    /// World switches into the level.
    pub entries: u64,
    /// VM exits out of the level.
    pub vmexits: u64,
    /// TLB and page-walk counters.
    pub mmu: MmuCounters,
}

impl LevelCounters {
    fn add(&mut self, o: &LevelCounters) {
        self.instructions += o.instructions;
        self.cycles += o.cycles;
        self.entries += o.entries;
        self.vmexits += o.vmexits;
        self.mmu.merge(&o.mmu);
    }
}

/// The split of the counters by level.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Levels {
    /// The level running now.
    pub current: Level,
    mark_instructions: u64,
    mark_cycles: u64,
    /// Completed work per level (the running level's work since its last
    /// switch is not in here yet). A list in serialized form: JSON keys are
    /// strings.
    #[serde(with = "level_pairs")]
    pub parts: BTreeMap<Level, LevelCounters>,
}

/// [`Levels::parts`] as a list of (level, counters) pairs.
mod level_pairs {
    use super::{Level, LevelCounters};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<Level, LevelCounters>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Level, LevelCounters>, D::Error> {
        Ok(Vec::<(Level, LevelCounters)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

impl Machine {
    /// A world switch to level `to`. `retiring` is the cost of the
    /// instruction that switches and has not retired yet (VMRUN, VMLAUNCH):
    /// it counts for the level being left.
    pub fn switch_level(&mut self, to: Level, retiring: Option<u32>) {
        let (extra_i, extra_c) = retiring.map_or((0, 0), |c| (1, c as u64));
        let mmu = self.mmu.take_counters();
        let l = &mut self.stats.levels;
        // A switch back within the same instruction (an exit while VMRUN
        // injects an event) finds the switching instruction counted already.
        let insns = (self.stats.instructions + extra_i).max(l.mark_instructions);
        let cycles = (self.stats.cycles + extra_c).max(l.mark_cycles);
        let part = l.parts.entry(l.current).or_default();
        part.instructions += insns - l.mark_instructions;
        part.cycles += cycles - l.mark_cycles;
        part.mmu.merge(&mmu);
        l.mark_instructions = insns;
        l.mark_cycles = cycles;
        l.current = to;
        l.parts.entry(to).or_default().entries += 1;
    }

    /// Counts a VM exit out of the current level with the manual's name for
    /// its reason.
    pub fn count_vmexit(&mut self, reason: &str) {
        let v = &mut self.stats.vmexits;
        v.total += 1;
        match v.by_reason.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                v.by_reason.insert(reason.to_string(), 1);
            }
        }
        let l = &mut self.stats.levels;
        l.parts.entry(l.current).or_default().vmexits += 1;
    }

    /// The work of every level so far, the running level's current stretch
    /// included.
    pub fn level_counters(&self) -> BTreeMap<Level, LevelCounters> {
        let l = &self.stats.levels;
        let mut parts = l.parts.clone();
        let now = parts.entry(l.current).or_default();
        now.instructions += self.stats.instructions.saturating_sub(l.mark_instructions);
        now.cycles += self.stats.cycles.saturating_sub(l.mark_cycles);
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
}

/// One level (or L2 context) in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// World switches into the level.
    pub entries: u64,
    /// VM exits out of the level.
    pub vmexits: u64,
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
            entries: c.entries,
            vmexits: c.vmexits,
            tlb: TlbReport {
                hits: m.itlb.hits() + m.dtlb.hits(),
                misses: m.itlb.misses + m.dtlb.misses,
            },
            walks: WalkReport {
                count: m.walks,
                refs: m.refs(),
                guest_refs: m.guest_refs,
                nested_refs: m.nested_refs,
                refs_per_walk: m.refs_per_walk.clone(),
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
}

impl<'a> Report<'a> {
    /// The report of machine `m`, stopped with `exit_status` because of `stop`.
    pub fn of(m: &'a Machine, exit_status: i32, stop: String) -> Self {
        let all = LevelReport::from(&LevelCounters {
            mmu: m.mmu_totals(),
            ..LevelCounters::default()
        });
        Report {
            instructions: m.stats.instructions,
            cycles: m.stats.cycles,
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

    #[test]
    fn levels_sum_to_the_totals() {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        m.stats.instructions = 10;
        m.stats.cycles = 100;
        // VMLAUNCH retiring with cost 5 counts for L1.
        m.switch_level(Level::L2 { control: 0x5000 }, Some(5));
        m.stats.instructions = 32;
        m.stats.cycles = 605;
        m.count_vmexit("CPUID");
        m.switch_level(Level::L1, None);
        m.stats.instructions = 40;
        m.stats.cycles = 700;
        let r = m.levels_report();
        assert_eq!(r.l1.instructions, 11 + 8);
        assert_eq!(r.l2.total.instructions, 21);
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
