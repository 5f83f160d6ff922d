//! Explaining a walk in a real run (`nestemu explain-walk --kernel FILE
//! --address LA [--at-insn N]`): after the machine stopped, translate LA in
//! its translation context (the running level's: root, or a guest with its
//! EPT/NPT; or, with `--level L2`, the last guest context the run left) with
//! every reference recorded, through the machine's own paging-structure
//! caches as the run left them (or empty ones, `--cold`), in its own memory.
//! Nothing of the machine changes but the accessed/dirty flags the walk sets,
//! as a real access would.

use super::{Explained, NestedKind, Scenario};
use crate::cpu::cpuid::Vendor;
use crate::machine::Machine;
use crate::memory::paging::WalkMemory;
use crate::stats::Level;
use mmu::paging::{NestedPaging, PagingMode, Trace, TraceItem, WalkEvent};
use mmu::{Access, AccessKind, LinearAddr, Mmu, TranslationContext};

/// Which translation context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Which {
    /// The one the machine stopped in.
    #[default]
    Current,
    /// The last guest (L2) context: the current one if a guest runs, else
    /// the one the last VM exit left.
    LastGuest,
}

/// What to explain in a stopped machine.
#[derive(Clone, Copy, Debug)]
pub struct RunWalk {
    /// The linear address.
    pub address: u64,
    /// The access (read, write or fetch), for the rights checked.
    pub access: AccessKind,
    /// Walk with empty caches instead of the run's.
    pub cold: bool,
    /// The context.
    pub which: Which,
}

/// The levels a walk in `ctx` reads from its root (PAE's PDPTEs are
/// registers, so 2), and the nested paging.
fn shape(ctx: &TranslationContext) -> (u8, NestedKind, u8) {
    let g = match ctx.regs().mode {
        PagingMode::Disabled => 0,
        PagingMode::Legacy32 | PagingMode::Pae => 2,
        PagingMode::Level4 => 4,
        PagingMode::Level5 => 5,
    };
    match ctx.nested() {
        None => (g, NestedKind::None, 0),
        Some(NestedPaging::Ept(e)) => (g, NestedKind::Ept, e.eptp.walk_length()),
        Some(NestedPaging::Npt(n)) => (g, NestedKind::Npt, n.levels),
    }
}

/// The level's name; an L2 is named by its VMCS (VT-x) or VMCB (AMD-V).
fn level_name(l: Level, vendor: Vendor) -> String {
    let control = match vendor {
        Vendor::Intel => "VMCS",
        Vendor::Amd => "VMCB",
    };
    match l {
        Level::L1 => "L1 (root / host mode)".into(),
        Level::L2 { control: pa } => format!("L2 ({control} {pa:#x})"),
    }
}

/// Explains the walk of `w.address` in `m`.
pub fn explain_machine(m: &mut Machine, w: &RunWalk) -> Result<Explained, String> {
    let levels = &m.stats.levels;
    let (level, ctx) = match (w.which, levels.current) {
        (Which::LastGuest, Level::L1) => levels.last_guest.ok_or_else(|| {
            "the run never entered a guest (no L2 context to explain)".to_string()
        })?,
        (_, l) => (l, m.tctx),
    };
    let (guest_levels, nested, nested_levels) = shape(&ctx);
    if guest_levels == 0 && nested == NestedKind::None {
        return Err(format!(
            "paging is off in {}: linear address {:#x} is the physical address, no walk",
            level_name(level, m.config.model.vendor),
            w.address
        ));
    }
    if guest_levels > 0 {
        let bits = if guest_levels == 5 { 57 } else { 48 };
        if guest_levels >= 4 && !mmu::is_canonical(w.address, bits) {
            return Err(format!(
                "address {:#x} is not canonical for {guest_levels}-level paging",
                w.address
            ));
        }
    }
    let mut mmu = if w.cold {
        Mmu::new(m.mmu.config().clone()).map_err(|e| format!("{e:?}"))?
    } else {
        m.mmu.clone()
    };
    let access = Access::new(w.access, false);
    let mut mem = WalkMemory {
        ram: &mut m.ram,
        code: &mut m.code,
        stop_block: &mut m.stop_block,
    };
    // Would a real access walk at all? Ask a copy of the TLBs.
    let mut probe = Trace::default();
    let _ = mmu
        .clone()
        .translate(&ctx, LinearAddr(w.address), access, &mut mem, &mut probe);
    let tlb_hit = probe.items.iter().find_map(|i| match i {
        TraceItem::Event(WalkEvent::TlbHit { level }) => Some(*level),
        _ => None,
    });
    let mut trace = Trace::default();
    let tr = mmu
        .translate_walk(&ctx, LinearAddr(w.address), access, &mut mem, &mut trace)
        .map_err(|f| {
            format!(
                "the walk of {:#x} in {} faulted after {} references: {f:?}",
                w.address,
                level_name(level, m.config.model.vendor),
                trace.refs().count()
            )
        })?;
    let context = format!(
        "in {} after {} instructions",
        level_name(level, m.config.model.vendor),
        crate::report::num(m.stats.instructions)
    );
    Ok(Explained {
        scenario: Scenario {
            address: w.address,
            guest_levels,
            nested,
            nested_levels: nested_levels.max(4),
            warm: !w.cold,
            tlb: m.mmu.config().clone(),
        },
        trace,
        pa: tr.pa.0,
        gpa: tr.gpa.map(|g| g.0),
        context: Some(context),
        tlb_hit,
    })
}
