//! Reporting every memory reference of a walk, in order, so a cost model can
//! charge them and a viewer can draw the two-dimensional grid.

use crate::{GuestPhysAddr, PhysAddr};
use serde::{Deserialize, Serialize};

/// Which paging dimension a reference belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dimension {
    /// The guest's (or the host's own) paging structures: linear to
    /// (guest-)physical.
    Guest,
    /// EPT or nested page tables: guest-physical to machine-physical.
    Nested,
}

/// What the processor did with the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefKind {
    /// Read the entry during the walk.
    Read,
    /// Wrote the entry to set its accessed and/or dirty flag (SDM Vol. 3A 4.8,
    /// SDM Vol. 3C 29.3.4, "Accessed and dirty flags for EPT").
    AdUpdate,
}

/// One memory reference made by a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkRef {
    /// Guest or nested dimension.
    pub dimension: Dimension,
    /// Read or A/D update.
    pub kind: RefKind,
    /// The level of the entry in its own structure: 5 = PML5E, 4 = PML4E,
    /// 3 = PDPTE, 2 = PDE, 1 = PTE.
    pub level: u8,
    /// Machine-physical address of the entry.
    pub addr: PhysAddr,
    /// For guest-dimension references of a two-dimensional walk: the
    /// guest-physical address of the entry.
    pub gpa: Option<GuestPhysAddr>,
    /// The entry's value as read (for `Read`) or as written (`AdUpdate`).
    pub entry: u64,
    /// For nested references: the guest level whose paging-structure entry
    /// this nested walk translates (`Some(level)`), or `None` when it
    /// translates the final guest-physical address (or a guest-physical access
    /// made outside a linear translation). `None` for guest references.
    pub for_guest_level: Option<u8>,
}

/// Something noteworthy that is not a memory reference: cache hits that made
/// references unnecessary. Viewers show them; cost models use the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalkEvent {
    /// A TLB hit at `level` (1 = L1, 2 = L2): no walk at all.
    TlbHit {
        /// 1 for the first-level (instruction or data) TLB, 2 for the shared one.
        level: u8,
    },
    /// A paging-structure-cache hit: the walk starts below `level`, whose entry
    /// (and those above) came from the cache.
    PscHit {
        /// Which dimension's cache.
        dimension: Dimension,
        /// Level of the cached entry (4 = PML4E cache, 2 = PDE cache, ...).
        level: u8,
    },
    /// The nested TLB (guest-physical mappings) translated a guest-physical
    /// page with no nested references.
    NestedTlbHit {
        /// Guest level whose table was translated, `None` for the final address.
        for_guest_level: Option<u8>,
    },
}

/// Receives a walk's memory references in order. The no-op implementations
/// (`()` and [`NoRecord`]) compile away on the fast path.
pub trait WalkRecorder {
    /// One memory reference.
    fn reference(&mut self, r: WalkRef);
    /// A cache event; ignored unless overridden.
    #[inline]
    fn event(&mut self, _e: WalkEvent) {}
}

/// Records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRecord;

impl WalkRecorder for NoRecord {
    #[inline(always)]
    fn reference(&mut self, _r: WalkRef) {}
}

impl WalkRecorder for () {
    #[inline(always)]
    fn reference(&mut self, _r: WalkRef) {}
}

impl WalkRecorder for Vec<WalkRef> {
    fn reference(&mut self, r: WalkRef) {
        self.push(r);
    }
}

impl<R: WalkRecorder + ?Sized> WalkRecorder for &mut R {
    #[inline]
    fn reference(&mut self, r: WalkRef) {
        (**self).reference(r)
    }
    #[inline]
    fn event(&mut self, e: WalkEvent) {
        (**self).event(e)
    }
}

/// A full trace: references and events, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Every reference and event in order.
    pub items: Vec<TraceItem>,
}

/// One item of a [`Trace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceItem {
    /// A memory reference.
    Ref(WalkRef),
    /// A cache event.
    Event(WalkEvent),
}

impl Trace {
    /// The references only.
    pub fn refs(&self) -> impl Iterator<Item = &WalkRef> {
        self.items.iter().filter_map(|i| match i {
            TraceItem::Ref(r) => Some(r),
            TraceItem::Event(_) => None,
        })
    }
    /// Number of entry reads in `dimension`.
    pub fn reads(&self, dimension: Dimension) -> usize {
        self.refs()
            .filter(|r| r.kind == RefKind::Read && r.dimension == dimension)
            .count()
    }
}

/// The manual's name of the entry at `level`.
pub const fn level_name(level: u8) -> &'static str {
    match level {
        5 => "PML5E",
        4 => "PML4E",
        3 => "PDPTE",
        2 => "PDE",
        1 => "PTE",
        _ => "entry",
    }
}

impl core::fmt::Display for WalkRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.kind {
            RefKind::Read => "read ",
            RefKind::AdUpdate => "A/D  ",
        };
        match self.dimension {
            Dimension::Guest => write!(f, "{what}guest  {:<5}", level_name(self.level))?,
            Dimension::Nested => {
                write!(f, "{what}nested {:<5}", level_name(self.level))?;
                match self.for_guest_level {
                    Some(l) => write!(f, " for guest {:<5}", level_name(l))?,
                    None => write!(f, " for final addr ")?,
                }
            }
        }
        if let Some(g) = self.gpa {
            write!(f, " gpa {:#x}", g.0)?;
        }
        write!(f, " at {:#x} = {:#018x}", self.addr.0, self.entry)
    }
}

impl core::fmt::Display for WalkEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalkEvent::TlbHit { level } => write!(f, "TLB hit in the L{level} TLB"),
            WalkEvent::PscHit { dimension, level } => write!(
                f,
                "{} {} cache hit",
                match dimension {
                    Dimension::Guest => "guest",
                    Dimension::Nested => "nested",
                },
                level_name(*level)
            ),
            WalkEvent::NestedTlbHit { for_guest_level } => match for_guest_level {
                Some(l) => write!(f, "nested TLB hit for guest {}", level_name(*l)),
                None => write!(f, "nested TLB hit for the final address"),
            },
        }
    }
}

impl Trace {
    /// One line per item, references numbered from 1 (the "reference n of
    /// 24" a teacher points at).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut n = 0;
        for item in &self.items {
            match item {
                TraceItem::Ref(r) => {
                    if r.kind == RefKind::Read {
                        n += 1;
                        out += &format!("{n:>3}  {r}\n");
                    } else {
                        out += &format!("     {r}\n");
                    }
                }
                TraceItem::Event(e) => out += &format!("     ({e})\n"),
            }
        }
        out
    }
}

impl WalkRecorder for Trace {
    fn reference(&mut self, r: WalkRef) {
        self.items.push(TraceItem::Ref(r));
    }
    fn event(&mut self, e: WalkEvent) {
        self.items.push(TraceItem::Event(e));
    }
}
