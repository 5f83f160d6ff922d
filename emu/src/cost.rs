//! The cost model: modelled cycles per event (DESIGN.md, "Cost model").
//!
//! These are modelled cycles: a table calibrated against published figures,
//! not a microarchitecture simulation. Nothing here times the host, so the
//! same run gives the same cycle count on every host.
//!
//! Every cost is a row of one table ([`ROWS`], declared once by the
//! `cost_table!` macro below): its name (the JSON key), the category the
//! report files it under, the Intel-like and AMD-like preset values and where
//! those come from. [`CostModel`] is generated from it, the two presets
//! ([`CostModel::intel`], [`CostModel::amd`]) are its columns, and
//! `nestemu cost-presets` prints it. A user's file (`--cost FILE`, JSON) names
//! a base preset and overrides any rows:
//!
//! ```json
//! { "base": "amd", "name": "slow-dram", "guest_ref": 120, "nested_ref": 120 }
//! ```
//!
//! How costs are charged (DESIGN.md principle 7: from tags and walk records,
//! never inside instruction semantics):
//!
//! - an instruction's class cost is looked up once, when its block is decoded
//!   (`DecodedInsn::cost`), and added when it retires;
//! - TLB outcomes, paging-structure-cache outcomes and walk references are
//!   charged from the MMU's counters ([`mmu::MmuCounters`]): the cost of the
//!   counters is linear in them, so the machine adds the difference since the
//!   last charge at every block boundary and world switch
//!   (`Machine::charge_mmu`), and nothing is looked up per access;
//! - world switches and event deliveries are charged where the machine
//!   performs them.

use mmu::{MmuCosts, MmuCounters};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Instruction classes with distinct modelled costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsnClass {
    /// Simple integer, moves, logic, branches.
    Simple,
    /// Integer multiply.
    Multiply,
    /// Integer divide.
    Divide,
    /// String instruction iteration.
    String,
    /// x87 arithmetic.
    X87,
    /// SSE arithmetic.
    Sse,
    /// Serializing or system instruction (CPUID, MOV CR, WRMSR, ...).
    System,
    /// I/O port access.
    Io,
}

/// Where the report files a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Instructions retiring (their class cost, string iterations).
    Instructions,
    /// TLB lookups: hits in the first- and second-level TLBs, misses.
    Tlb,
    /// Page walks: entry references in both dimensions, accessed/dirty
    /// writes, paging-structure-cache and nested-TLB lookups.
    Walks,
    /// VM entries and VMRUNs (the world switch into a guest).
    VmEntries,
    /// VM exits and #VMEXITs (the world switch out of a guest).
    VmExits,
    /// Exception and interrupt delivery.
    Deliveries,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 6] = [
        Category::Instructions,
        Category::Tlb,
        Category::Walks,
        Category::VmEntries,
        Category::VmExits,
        Category::Deliveries,
    ];

    /// The JSON key and report label.
    pub const fn name(self) -> &'static str {
        match self {
            Category::Instructions => "instructions",
            Category::Tlb => "tlb",
            Category::Walks => "walks",
            Category::VmEntries => "vm_entries",
            Category::VmExits => "vm_exits",
            Category::Deliveries => "deliveries",
        }
    }
}

/// One row of the cost table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostRow {
    /// The field and JSON key.
    pub name: &'static str,
    /// What the report files it under.
    pub category: Category,
    /// Cycles in the Intel-like preset.
    pub intel: u32,
    /// Cycles in the AMD-like preset.
    pub amd: u32,
    /// What is charged.
    pub what: &'static str,
    /// Where the preset values come from.
    pub source: &'static str,
}

macro_rules! cost_table {
    ($( $field:ident : $cat:ident = $intel:literal, $amd:literal;
        $what:literal; $source:literal; )*) => {
        /// Cycles per event: one field per row of [`ROWS`], plus the per-reason
        /// VM-exit overrides. Serialized flat (`{"name": ..., "simple": 1, ...}`).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct CostModel {
            /// Preset name.
            pub name: String,
            $(
                #[doc = $what]
                pub $field: u32,
            )*
            /// VM exits whose world switch costs other than `vm_exit`, by the
            /// manual's reason name (`VMEXIT_NPF`, `EPT_VIOLATION`, ...).
            #[serde(default)]
            pub vm_exit_by_reason: BTreeMap<String, u32>,
        }

        /// The cost table: every row, in order.
        pub const ROWS: &[CostRow] = &[
            $( CostRow {
                name: stringify!($field),
                category: Category::$cat,
                intel: $intel,
                amd: $amd,
                what: $what,
                source: $source,
            }, )*
        ];

        impl CostModel {
            fn column(name: &str, amd: bool) -> Self {
                Self {
                    name: name.into(),
                    $( $field: if amd { $amd } else { $intel }, )*
                    vm_exit_by_reason: BTreeMap::new(),
                }
            }

            /// The value of the row named `row`.
            pub fn get(&self, row: &str) -> Option<u32> {
                match row {
                    $( stringify!($field) => Some(self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

cost_table! {
    simple: Instructions = 1, 1;
        "A simple integer instruction: moves, logic, add/sub, branches.";
        "Agner Fog's instruction tables (Skylake, Zen 2): latency 1, most at several per cycle.";
    multiply: Instructions = 3, 3;
        "An integer multiply.";
        "Agner Fog: IMUL r64 latency 3 on Skylake and Zen 2.";
    divide: Instructions = 26, 20;
        "An integer divide.";
        "Agner Fog: DIV r32 26 on Skylake; Zen 2 DIV 14-46, value-dependent (we take 20).";
    string: Instructions = 1, 1;
        "Each iteration of a string instruction after the first.";
        "Fast-string microcode moves about a word per cycle; modelled as 1.";
    x87: Instructions = 4, 5;
        "An x87 arithmetic instruction.";
        "Agner Fog: FADD/FMUL latency 3-5.";
    sse: Instructions = 4, 3;
        "An SSE arithmetic instruction.";
        "Agner Fog: ADDPS/MULPS latency 4 (Skylake), 3 (Zen 2).";
    system: Instructions = 100, 120;
        "A serializing or system instruction (CPUID, MOV CR, WRMSR, INVLPG, VMRUN, ...).";
        "Agner Fog: CPUID 100-250, MOV CR3 and WRMSR in the low hundreds.";
    io: Instructions = 1000, 1000;
        "A port I/O access (IN, OUT, INS, OUTS).";
        "An uncached bus transaction to a legacy device is on the order of 1 us; modelled.";
    tlb_l1_hit: Tlb = 0, 0;
        "A hit in the first-level (instruction or data) TLB.";
        "Part of the load-to-use latency the instruction cost already has.";
    tlb_l2_hit: Tlb = 9, 7;
        "A miss in the first-level TLB that hits the second-level (shared) TLB.";
        "Measured STLB hit penalties: 9-12 cycles on Skylake/Haswell, about 7 on Zen 2.";
    tlb_miss: Tlb = 10, 10;
        "A miss in both TLB levels: the fixed start of a page walk (the references are charged apart).";
        "Modelled: the page-miss handler's start-up before its first load.";
    guest_ref: Walks = 20, 20;
        "Each paging-structure entry a walk reads in the guest (or only) dimension.";
        "A load that misses L1 and hits L2 or L3 (Intel optimization manual, Skylake: L2 12, L3 44; Zen 2: L2 12, L3 39).";
    nested_ref: Walks = 20, 20;
        "Each EPT / nested-page-table entry a walk reads in the nested dimension.";
        "As guest_ref: entries are usually cached; a cold walk to DRAM would cost 10x more.";
    ad_update: Walks = 20, 20;
        "Each accessed/dirty flag update a walk writes back (a locked read-modify-write).";
        "Agner Fog: LOCK CMPXCHG about 18-20 cycles on Skylake.";
    psc_hit: Walks = 1, 1;
        "A paging-structure-cache hit (guest or nested): the walk skips the cached levels.";
        "Modelled as one lookup cycle; the saving shows as references not made.";
    psc_miss: Walks = 1, 1;
        "A paging-structure-cache miss.";
        "Modelled as one lookup cycle.";
    nested_tlb_hit: Walks = 1, 1;
        "A nested-TLB hit: a guest-physical page translated with no nested references.";
        "Modelled as one lookup cycle.";
    nested_tlb_miss: Walks = 1, 1;
        "A nested-TLB miss.";
        "Modelled as one lookup cycle.";
    vm_entry: VmEntries = 400, 650;
        "A VM entry (VMLAUNCH, VMRESUME) or VMRUN world switch, on top of the instruction's own cost.";
        "Part of a null-exit round trip: about 1,000 cycles for a VMCALL on Skylake-class Intel parts (KVM unit tests' vmexit suite); about 1,350 between VMRUN and the #VMEXIT on a 2020 AMD EPYC (KVM SVM, LKML).";
    vm_exit: VmExits = 600, 700;
        "A VM exit or #VMEXIT world switch (the handler's work is the hypervisor's own instructions).";
        "The rest of the round trip above: the exit saves more state than the entry loads.";
    exception: Deliveries = 200, 200;
        "Delivering an exception through the IDT (or IVT), including the stack switch.";
        "Published #PF round trips (fault, handler entry, IRET) are a few hundred cycles; modelled.";
    interrupt: Deliveries = 150, 150;
        "Delivering an external interrupt, NMI or software interrupt (INT n).";
        "Modelled as an exception delivery without the fault's pipeline flush.";
}

impl Default for CostModel {
    fn default() -> Self {
        Self::intel()
    }
}

/// A cost file could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostError(pub String);

impl core::fmt::Display for CostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CostModel {
    /// The Intel-like preset (Skylake-class figures; see [`ROWS`]).
    pub fn intel() -> Self {
        Self::column("intel", false)
    }

    /// The AMD-like preset (Zen 2-class figures; see [`ROWS`]).
    pub fn amd() -> Self {
        Self::column("amd", true)
    }

    /// The built-in preset `name` (`intel` or `amd`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "intel" => Some(Self::intel()),
            "amd" => Some(Self::amd()),
            _ => None,
        }
    }

    /// Reads a cost file: a JSON object with an optional `base` preset
    /// (default `default_base`) and any rows to override.
    pub fn from_json(text: &str, default_base: &str) -> Result<Self, CostError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CostError(format!("not JSON: {e}")))?;
        let serde_json::Value::Object(mut over) = v else {
            return Err(CostError("a cost file is a JSON object".into()));
        };
        let base = match over.remove("base") {
            None => default_base.to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(CostError(format!("\"base\" must be a string, not {other}")))
            }
        };
        let preset = Self::preset(&base)
            .ok_or_else(|| CostError(format!("unknown base preset '{base}' (intel or amd)")))?;
        let serde_json::Value::Object(mut merged) =
            serde_json::to_value(&preset).map_err(|e| CostError(e.to_string()))?
        else {
            return Err(CostError("a preset is an object".into()));
        };
        if !over.contains_key("name") {
            merged.insert("name".into(), format!("{base} (modified)").into());
        }
        for (k, v) in over {
            if !merged.contains_key(&k) {
                return Err(CostError(format!(
                    "unknown cost '{k}' (nestemu cost-presets lists them)"
                )));
            }
            merged.insert(k, v);
        }
        serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| CostError(format!("bad cost value: {e}")))
    }

    /// The cost of one instruction of `class`.
    #[inline]
    pub fn insn(&self, class: InsnClass) -> u32 {
        match class {
            InsnClass::Simple => self.simple,
            InsnClass::Multiply => self.multiply,
            InsnClass::Divide => self.divide,
            InsnClass::String => self.string,
            InsnClass::X87 => self.x87,
            InsnClass::Sse => self.sse,
            InsnClass::System => self.system,
            InsnClass::Io => self.io,
        }
    }

    /// The world-switch cost of a VM exit with the manual's reason name.
    pub fn vm_exit_for(&self, reason: &str) -> u32 {
        self.vm_exit_by_reason
            .get(reason)
            .copied()
            .unwrap_or(self.vm_exit)
    }

    /// The modelled cycles of the MMU work in `c`: (TLB, walks). Linear in
    /// the counters, so the cost of the work between two snapshots is the
    /// difference of their costs.
    pub fn mmu_cycles(&self, c: &MmuCounters) -> (u64, u64) {
        self.mmu_costs().cycles(c)
    }

    /// The MMU's rows, with which the MMU keeps the cost of its counters
    /// ([`mmu::Mmu::set_costs`]).
    pub fn mmu_costs(&self) -> MmuCosts {
        MmuCosts {
            tlb_l1_hit: self.tlb_l1_hit as u64,
            tlb_l2_hit: self.tlb_l2_hit as u64,
            tlb_miss: self.tlb_miss as u64,
            guest_ref: self.guest_ref as u64,
            nested_ref: self.nested_ref as u64,
            ad_update: self.ad_update as u64,
            psc_hit: self.psc_hit as u64,
            psc_miss: self.psc_miss as u64,
            nested_tlb_hit: self.nested_tlb_hit as u64,
            nested_tlb_miss: self.nested_tlb_miss as u64,
        }
    }

    /// The table with both presets, as `nestemu cost-presets` prints it.
    pub fn table_text() -> String {
        let mut out = String::from(
            "nestemu cost presets: modelled cycles, calibrated against published figures\n\
             (not a microarchitecture simulation). Load your own with --cost FILE.json:\n\
             {\"base\": \"amd\", \"nested_ref\": 120, ...}  (rows not named keep the base's value)\n\n",
        );
        out += &format!(
            "{:<16} {:<13} {:>6} {:>6}  what, and where the values come from\n",
            "row", "category", "intel", "amd"
        );
        for r in ROWS {
            out += &format!(
                "{:<16} {:<13} {:>6} {:>6}  {}\n{:<44}{}\n",
                r.name,
                r.category.name(),
                r.intel,
                r.amd,
                r.what,
                "",
                r.source
            );
        }
        out += "\nvm_exit_by_reason: {\"VMEXIT_NPF\": 900, ...} overrides vm_exit per reason (empty in\n\
                both presets: published round trips do not separate reasons, and the handler's\n\
                work is the hypervisor's own instructions, counted as such).\n";
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_the_table_columns() {
        let (i, a) = (CostModel::intel(), CostModel::amd());
        for r in ROWS {
            assert_eq!(i.get(r.name), Some(r.intel), "{}", r.name);
            assert_eq!(a.get(r.name), Some(r.amd), "{}", r.name);
        }
        assert_eq!(i.insn(InsnClass::Divide), 26);
        assert_eq!(a.insn(InsnClass::Divide), 20);
    }

    #[test]
    fn presets_round_trip_through_json() {
        for p in [CostModel::intel(), CostModel::amd()] {
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(CostModel::from_json(&text, "intel").unwrap(), p);
        }
    }

    #[test]
    fn a_file_overrides_rows_of_its_base() {
        let c = CostModel::from_json(
            r#"{"base": "amd", "nested_ref": 120, "vm_exit_by_reason": {"VMEXIT_NPF": 900}}"#,
            "intel",
        )
        .unwrap();
        assert_eq!(c.nested_ref, 120);
        assert_eq!(c.guest_ref, CostModel::amd().guest_ref);
        assert_eq!(c.name, "amd (modified)");
        assert_eq!(c.vm_exit_for("VMEXIT_NPF"), 900);
        assert_eq!(c.vm_exit_for("VMEXIT_CPUID"), c.vm_exit);
        let d = CostModel::from_json(r#"{"name": "mine"}"#, "amd").unwrap();
        assert_eq!(d.vm_entry, CostModel::amd().vm_entry);
        assert_eq!(d.name, "mine");
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, needle) in [
            ("[1]", "object"),
            ("{", "not JSON"),
            (r#"{"base": "z80"}"#, "unknown base"),
            (r#"{"guest_refs": 3}"#, "unknown cost 'guest_refs'"),
            (r#"{"simple": -1}"#, "bad cost value"),
        ] {
            let e = CostModel::from_json(text, "intel").unwrap_err();
            assert!(e.0.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn mmu_cycles_are_linear_in_the_counters() {
        let c = CostModel::intel();
        let mut a = MmuCounters::default();
        a.dtlb.l2_hits = 3;
        a.dtlb.misses = 2;
        a.guest_refs = 5;
        a.nested_refs = 11;
        a.guest_psc_hits[2] = 1;
        let mut b = a.clone();
        b.merge(&a);
        let (ta, wa) = c.mmu_cycles(&a);
        assert_eq!(ta, 3 * 9 + 2 * 10);
        assert_eq!(wa, 5 * 20 + 11 * 20 + 1);
        assert_eq!(c.mmu_cycles(&b), (2 * ta, 2 * wa));
    }

    /// Each MMU row of the table costs its own counter, in its own
    /// category: one event of each kind, with every row a distinct cost,
    /// costs exactly that row.
    #[test]
    fn the_mmu_costs_are_the_table_rows() {
        type Event = fn(&mut MmuCounters);
        let events: [(&str, Event); 10] = [
            ("tlb_l1_hit", |c| c.itlb.l1_hits += 1),
            ("tlb_l2_hit", |c| c.dtlb.l2_hits += 1),
            ("tlb_miss", |c| c.itlb.misses += 1),
            ("guest_ref", |c| c.guest_refs += 1),
            ("nested_ref", |c| c.nested_refs += 1),
            ("ad_update", |c| c.ad_writes += 1),
            ("psc_hit", |c| c.nested_psc_hits[3] += 1),
            ("psc_miss", |c| c.guest_psc_misses += 1),
            ("nested_tlb_hit", |c| c.nested_tlb_hits += 1),
            ("nested_tlb_miss", |c| c.nested_tlb_misses += 1),
        ];
        let mut text = String::from("{");
        for (i, r) in ROWS.iter().enumerate() {
            text += &format!("\"{}\": {}, ", r.name, 1000 + 7 * i);
        }
        text += "\"name\": \"distinct\"}";
        let model = CostModel::from_json(&text, "intel").unwrap();
        let mmu_rows = ROWS
            .iter()
            .filter(|r| matches!(r.category, Category::Tlb | Category::Walks));
        assert_eq!(mmu_rows.count(), events.len());
        for (row, event) in events {
            let r = ROWS.iter().find(|r| r.name == row).unwrap();
            let mut c = MmuCounters::default();
            event(&mut c);
            let cost = model.get(row).unwrap() as u64;
            let want = match r.category {
                Category::Tlb => (cost, 0),
                _ => (0, cost),
            };
            assert_eq!(model.mmu_cycles(&c), want, "{row}");
        }
    }

    #[test]
    fn the_table_text_names_every_row() {
        let t = CostModel::table_text();
        for r in ROWS {
            assert!(t.contains(r.name));
        }
    }
}
