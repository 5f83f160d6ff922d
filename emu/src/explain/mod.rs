//! Explaining a two-dimensional page walk (issue 6, "Explain a walk"): build a
//! scenario (guest page tables over EPT or NPT), translate one linear address
//! through the modelled MMU while recording every memory reference, and show
//! the result as the grid of guest levels by nested levels, each reference
//! numbered in walk order with its address and entry, the cache hits that
//! spared references, and the total: as text ([`text`]) and as an SVG picture
//! ([`svg`]).
//!
//! A cold 4-level-over-4-level walk makes 24 references (each of the 4 guest
//! entries costs a 4-level nested walk of its table's address plus its own
//! read, and the final guest-physical address one more nested walk:
//! 4 x (4 + 1) + 4); 5 over 5 makes 35.

pub mod run;
pub mod svg;
pub mod text;

use mmu::paging::mem::{EntrySize, SparseMemory};
use mmu::paging::{
    Dimension, EptCaps, EptContext, Eptp, NptContext, Trace, TraceItem, WalkEvent, WalkRef,
};
use mmu::{
    Access, AddressWidths, Cr0, Cr4, Efer, LinearAddr, Mmu, NestedPaging, PagingFeatures,
    PagingRegs, PhysAddr, PhysMemory, TlbConfig, TranslationContext,
};

/// Which nested paging, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestedKind {
    /// No nested paging: a one-dimensional walk.
    None,
    /// Intel EPT.
    Ept,
    /// AMD NPT.
    Npt,
}

/// What to explain.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The linear address to translate.
    pub address: u64,
    /// Guest paging levels: 4 or 5.
    pub guest_levels: u8,
    /// Nested paging.
    pub nested: NestedKind,
    /// Nested levels: 4 or 5.
    pub nested_levels: u8,
    /// Translate a neighbouring page first, so the paging-structure caches and
    /// the nested TLB are warm, as they would be in a running guest.
    pub warm: bool,
    /// TLB and cache sizes (`TlbConfig::intel()`, `amd()`, or `none()` for no
    /// caches at all).
    pub tlb: TlbConfig,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            address: 0x0000_7f12_3456_7000,
            guest_levels: 4,
            nested: NestedKind::Ept,
            nested_levels: 4,
            warm: false,
            tlb: TlbConfig::intel(),
        }
    }
}

/// An explained walk.
#[derive(Clone, Debug)]
pub struct Explained {
    /// The scenario.
    pub scenario: Scenario,
    /// Every reference and cache event, in order.
    pub trace: Trace,
    /// The machine-physical address the walk produced.
    pub pa: u64,
    /// The guest-physical address in between (two-dimensional walks).
    pub gpa: Option<u64>,
    /// For a walk in a real run: where and when (`in L2 (VMCS 0x...)
    /// after N instructions`).
    pub context: Option<String>,
    /// For a walk in a real run: the TLB level that holds the address, if
    /// one does (a real access would not walk at all).
    pub tlb_hit: Option<u8>,
}

impl Explained {
    /// The references, in order.
    pub fn refs(&self) -> Vec<WalkRef> {
        self.trace.refs().copied().collect()
    }
    /// The cache events, in order.
    pub fn events(&self) -> Vec<WalkEvent> {
        self.trace
            .items
            .iter()
            .filter_map(|i| match i {
                TraceItem::Event(e) => Some(*e),
                TraceItem::Ref(_) => None,
            })
            .collect()
    }
    /// References in one dimension.
    pub fn count(&self, d: Dimension) -> usize {
        self.trace.reads(d)
    }
}

/// Guest-physical frames of guest tables start here.
const GUEST_TABLES: u64 = 0x1000;
/// Guest-physical frame of the data page.
const DATA_GPA: u64 = 0x80_0000;
/// Nested tables live here in machine-physical memory.
const NESTED_TABLES: u64 = 0x1000_0000;
/// Guest-physical pages sit this far up in machine-physical memory, so the
/// two kinds of address never coincide in the picture.
const GPA_TO_HPA: u64 = 0x4000_0000;

/// Allocates and fills page tables in a sparse memory.
struct Tables {
    mem: SparseMemory,
    next_guest: u64,
    next_nested: u64,
    guest_frames: Vec<u64>,
}

impl Tables {
    fn index(addr: u64, level: u8) -> u64 {
        (addr >> (12 + 9 * (level as u64 - 1))) & 0x1ff
    }

    /// Maps guest-physical `gpa` to `frame` in the nested tree at `root`.
    fn map_nested(&mut self, root: u64, levels: u8, gpa: u64, frame: u64, table: u64, leaf: u64) {
        let mut t = root;
        for level in (2..=levels).rev() {
            let slot = t + 8 * Self::index(gpa, level);
            let e = self.mem.read_entry(PhysAddr(slot), EntrySize::Eight);
            t = if e & 1 != 0 {
                e & 0x000f_ffff_ffff_f000
            } else {
                let next = self.alloc(false);
                self.mem.write_u64(slot, next | table);
                next
            };
        }
        self.mem
            .write_u64(t + 8 * Self::index(gpa, 1), frame | leaf);
    }

    fn alloc(&mut self, guest: bool) -> u64 {
        let next = if guest {
            &mut self.next_guest
        } else {
            &mut self.next_nested
        };
        let f = *next;
        *next += 0x1000;
        if guest {
            self.guest_frames.push(f);
        }
        f
    }
}

/// Builds the scenario's tables and walks its address.
pub fn explain(s: &Scenario) -> Result<Explained, String> {
    let (mut mem, ctx) = tables(s)?;
    let page = s.address & !0xfff;
    let mut mmu = Mmu::new(s.tlb.clone()).map_err(|e| format!("{e:?}"))?;
    if s.warm {
        mmu.translate(
            &ctx,
            LinearAddr(page ^ 0x1000),
            Access::read(false),
            &mut mem,
            &mut (),
        )
        .map_err(|f| format!("warming walk faulted: {f:?}"))?;
    }
    let mut trace = Trace::default();
    let tr = mmu
        .translate_walk(
            &ctx,
            LinearAddr(s.address),
            Access::read(false),
            &mut mem,
            &mut trace,
        )
        .map_err(|f| format!("the walk faulted: {f:?}"))?;
    Ok(Explained {
        scenario: s.clone(),
        trace,
        pa: tr.pa.0,
        gpa: tr.gpa.map(|g| g.0),
        context: None,
        tlb_hit: None,
    })
}

/// The scenario's page tables and the translation context that uses them:
/// the scenario's address and its neighbouring page are mapped.
pub fn tables(s: &Scenario) -> Result<(SparseMemory, TranslationContext), String> {
    if !matches!(s.guest_levels, 4 | 5) {
        return Err(format!(
            "guest levels must be 4 or 5, not {}",
            s.guest_levels
        ));
    }
    if s.nested != NestedKind::None && !matches!(s.nested_levels, 4 | 5) {
        return Err(format!(
            "nested levels must be 4 or 5, not {}",
            s.nested_levels
        ));
    }
    let bits = if s.guest_levels == 5 { 57 } else { 48 };
    if !mmu::is_canonical(s.address, bits) {
        return Err(format!(
            "address {:#x} is not canonical for {}-level paging",
            s.address, s.guest_levels
        ));
    }
    let nested_on = s.nested != NestedKind::None;
    let mut t = Tables {
        mem: SparseMemory::new(),
        next_guest: GUEST_TABLES,
        next_nested: NESTED_TABLES,
        guest_frames: Vec::new(),
    };
    // Guest tables (written at their machine-physical address).
    let groot = t.alloc(true);
    let page = s.address & !0xfff;
    let warm_page = page ^ 0x1000;
    let hpa = |g: u64| if nested_on { g + GPA_TO_HPA } else { g };
    for (va, frame) in [(page, DATA_GPA), (warm_page, DATA_GPA + 0x1000)] {
        let mut slot_t = groot;
        for level in (2..=s.guest_levels).rev() {
            let slot = slot_t + 8 * Tables::index(va, level);
            let e = t.mem.read_entry(PhysAddr(hpa(slot)), EntrySize::Eight);
            slot_t = if e & 1 != 0 {
                e & 0x000f_ffff_ffff_f000
            } else {
                let next = t.alloc(true);
                t.mem.write_u64(hpa(slot), next | 0x27);
                next
            };
        }
        t.mem
            .write_u64(hpa(slot_t + 8 * Tables::index(va, 1)), frame | 0x67);
    }
    let (cr4, efer) = if s.guest_levels == 5 {
        (Cr4::PAE | Cr4::LA57, Efer::LME | Efer::LMA)
    } else {
        (Cr4::PAE, Efer::LME | Efer::LMA)
    };
    let regs = PagingRegs::new(Cr0::PG | Cr0::PE | Cr0::WP, groot, cr4, efer);
    let widths = AddressWidths {
        phys_bits: 46,
        linear_bits: 57,
    };
    let mut ctx = TranslationContext::new(regs, widths, PagingFeatures::default());
    if nested_on {
        let nroot = t.alloc(false);
        let (table, leaf) = match s.nested {
            NestedKind::Ept => (0x107, 0x337),
            _ => (0x27, 0x67),
        };
        let mut frames = t.guest_frames.clone();
        frames.extend([DATA_GPA, DATA_GPA + 0x1000]);
        for g in frames {
            t.map_nested(nroot, s.nested_levels, g, g + GPA_TO_HPA, table, leaf);
        }
        let nested = match s.nested {
            NestedKind::Ept => NestedPaging::Ept(EptContext {
                eptp: Eptp::new(nroot, s.nested_levels, false),
                caps: EptCaps::default(),
                mbec: false,
            }),
            _ => NestedPaging::Npt(NptContext {
                ncr3: nroot,
                levels: s.nested_levels,
                nxe: true,
                page_1g: true,
            }),
        };
        ctx = ctx.with_vpid(1).with_nested(nested);
    }
    Ok((t.mem, ctx))
}

/// The name of an entry at `level` of a structure with `levels` levels.
pub fn entry_name(level: u8, nested: bool, kind: NestedKind) -> String {
    let base = match level {
        5 => "PML5E",
        4 => "PML4E",
        3 => "PDPTE",
        2 => "PDE",
        _ => "PTE",
    };
    match (nested, kind) {
        (true, NestedKind::Ept) => format!("EPT {base}"),
        (true, _) => format!("nested {base}"),
        _ => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_walks_make_24_and_35_references() {
        for (g, n, total) in [(4, 4, 24), (5, 5, 35), (4, 5, 29)] {
            for nested in [NestedKind::Ept, NestedKind::Npt] {
                let e = explain(&Scenario {
                    guest_levels: g,
                    nested_levels: n,
                    nested,
                    tlb: TlbConfig::none(),
                    address: if g == 5 {
                        0x00ff_1234_5678_9000
                    } else {
                        0x7f12_3456_7000
                    },
                    ..Scenario::default()
                })
                .unwrap();
                assert_eq!(e.refs().len(), total, "{g} over {n} {nested:?}");
                assert_eq!(e.count(Dimension::Guest), g as usize);
                assert_eq!(e.pa, DATA_GPA + GPA_TO_HPA);
            }
        }
    }

    #[test]
    fn warm_caches_reduce_references() {
        let cold = explain(&Scenario::default()).unwrap();
        let warm = explain(&Scenario {
            warm: true,
            ..Scenario::default()
        })
        .unwrap();
        assert!(warm.refs().len() < cold.refs().len());
        assert!(!warm.events().is_empty(), "the cache hits are reported");
    }

    #[test]
    fn one_dimensional_walk() {
        let e = explain(&Scenario {
            nested: NestedKind::None,
            tlb: TlbConfig::none(),
            ..Scenario::default()
        })
        .unwrap();
        assert_eq!(e.refs().len(), 4);
        assert_eq!(e.pa, DATA_GPA);
    }
}
