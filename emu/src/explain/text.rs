//! The explained walk as text: the grid, then every reference in order.

use super::{entry_name, Explained, NestedKind};
use mmu::paging::{Dimension, RefKind, WalkEvent, WalkRef};
use std::fmt::Write;

/// One cell of the grid.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cell {
    /// The reference's number in walk order (1-based), if one was made.
    pub number: Option<usize>,
    /// The reference.
    pub r: Option<WalkRef>,
    /// The walk skipped this reference thanks to a cache.
    pub cached: bool,
}

/// The grid: rows are the guest levels from the top (then the final
/// guest-physical address in a two-dimensional walk), columns the nested
/// levels from the top, then the guest entry.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// Cells, `cells[row][col]`.
    pub cells: Vec<Vec<Cell>>,
    /// A/D-flag writes, which have no cell: (number, reference).
    pub ad_writes: Vec<(usize, WalkRef)>,
}

/// Builds the grid of an explained walk.
pub fn grid(e: &Explained) -> Grid {
    let s = &e.scenario;
    let two_d = s.nested != NestedKind::None;
    let g = s.guest_levels as usize;
    let n = if two_d { s.nested_levels as usize } else { 0 };
    let mut rows: Vec<String> = (1..=g)
        .rev()
        .map(|l| format!("guest {}", entry_name(l as u8, false, s.nested)))
        .collect();
    if two_d {
        rows.push("data page".into());
    }
    let mut cols: Vec<String> = (1..=n)
        .rev()
        .map(|l| entry_name(l as u8, true, s.nested))
        .collect();
    cols.push("guest entry".into());
    let mut cells = vec![vec![Cell::default(); cols.len()]; rows.len()];
    let row_of_level = |level: u8| g - level as usize;
    let final_row = g;
    let col_of_nested = |level: u8| n - level as usize;
    let guest_col = n;
    // The row whose table the next nested walk translates.
    let mut pending = 0usize;
    let mut ad_writes = Vec::new();
    let mut number = 0;
    for item in &e.trace.items {
        match item {
            mmu::paging::TraceItem::Ref(r) => {
                number += 1;
                if r.kind == RefKind::AdUpdate {
                    ad_writes.push((number, *r));
                    continue;
                }
                let (row, col) = match r.dimension {
                    Dimension::Guest => {
                        let row = row_of_level(r.level);
                        pending = if r.level == 1 { final_row } else { row + 1 };
                        (row, guest_col)
                    }
                    Dimension::Nested => {
                        let row = r.for_guest_level.map_or(final_row, row_of_level);
                        (row, col_of_nested(r.level))
                    }
                };
                if row < cells.len() && col < cols.len() {
                    cells[row][col] = Cell {
                        number: Some(number),
                        r: Some(*r),
                        cached: false,
                    };
                }
            }
            mmu::paging::TraceItem::Event(ev) => match *ev {
                WalkEvent::PscHit {
                    dimension: Dimension::Guest,
                    level,
                } => {
                    for l in level..=s.guest_levels {
                        let row = row_of_level(l);
                        for c in cells[row].iter_mut() {
                            c.cached = true;
                        }
                    }
                    pending = row_of_level(level) + 1;
                    // The cached entry holds the machine-physical address of
                    // the next table: its nested walk is spared too.
                    if pending < cells.len() {
                        for c in cells[pending].iter_mut().take(n) {
                            c.cached = true;
                        }
                    }
                }
                WalkEvent::PscHit {
                    dimension: Dimension::Nested,
                    level,
                } if pending < cells.len() => {
                    for l in level..=s.nested_levels {
                        cells[pending][col_of_nested(l)].cached = true;
                    }
                }
                WalkEvent::NestedTlbHit { for_guest_level } => {
                    let row = for_guest_level.map_or(final_row, row_of_level);
                    for c in cells[row].iter_mut().take(n) {
                        c.cached = true;
                    }
                }
                _ => {}
            },
        }
    }
    Grid {
        rows,
        cols,
        cells,
        ad_writes,
    }
}

/// A one-line title of the walk.
pub fn title(e: &Explained) -> String {
    let s = &e.scenario;
    let nested = match s.nested {
        NestedKind::None => "no nested paging".to_string(),
        NestedKind::Ept => format!("{}-level EPT", s.nested_levels),
        NestedKind::Npt => format!("{}-level NPT", s.nested_levels),
    };
    let caches = match (&e.context, s.warm) {
        _ if s.tlb == mmu::TlbConfig::none() => "no caches",
        (Some(_), true) => "the run's caches",
        (_, true) => "warm caches",
        (_, false) => "cold caches",
    };
    let guest = match s.guest_levels {
        0 => "paging off in the guest".to_string(),
        2 => "2-level (32-bit or PAE) guest paging".to_string(),
        n => format!("{n}-level guest paging"),
    };
    let nested = if s.nested == NestedKind::None {
        String::new()
    } else {
        format!(" over {nested}")
    };
    let context = e
        .context
        .as_ref()
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    format!(
        "Walk of linear address {:#018x}: {guest}{nested} ({caches}){context}",
        s.address
    )
}

/// The total line.
pub fn total(e: &Explained) -> String {
    let refs = e.refs();
    format!(
        "{} references: {} guest, {} nested; result {:#x}{}",
        refs.len(),
        e.count(Dimension::Guest),
        e.count(Dimension::Nested),
        e.pa,
        e.gpa
            .map(|g| format!(" (guest-physical {g:#x})"))
            .unwrap_or_default()
    )
}

/// One reference described in the manual's terms.
pub fn describe(r: &WalkRef, kind: NestedKind, guest_levels: u8) -> String {
    match r.dimension {
        Dimension::Guest => format!(
            "guest {:<6} at {}{:#x} = {:#018x}",
            entry_name(r.level, false, kind),
            r.gpa
                .map(|g| format!("gpa {:#x}, hpa ", g.0))
                .unwrap_or_default(),
            r.addr.0,
            r.entry
        ),
        Dimension::Nested => {
            let what = match r.for_guest_level {
                Some(l) if l == guest_levels => "the guest's root table".to_string(),
                Some(l) => format!("the guest table holding its {}", entry_name(l, false, kind)),
                None => "the data page".to_string(),
            };
            format!(
                "{:<12} at {:#x} = {:#018x}  (translating {what})",
                entry_name(r.level, true, kind),
                r.addr.0,
                r.entry
            )
        }
    }
}

/// The whole explanation as text.
pub fn render(e: &Explained) -> String {
    let g = grid(e);
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", title(e));
    let w0 = g.rows.iter().map(|r| r.len()).max().unwrap_or(0) + 2;
    let wc = g.cols.iter().map(|c| c.len()).max().unwrap_or(0).max(6) + 2;
    let _ = write!(out, "{:w0$}", "");
    for c in &g.cols {
        let _ = write!(out, "|{c:^wc$}");
    }
    out.push('\n');
    for (ri, row) in g.rows.iter().enumerate() {
        let _ = write!(out, "{row:<w0$}");
        for cell in &g.cells[ri] {
            let text = match (cell.number, cell.cached) {
                (Some(k), _) => k.to_string(),
                (None, true) => "cached".to_string(),
                (None, false) => "-".to_string(),
            };
            let _ = write!(out, "|{text:^wc$}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nReferences in walk order:");
    for (k, r) in e.refs().iter().enumerate() {
        let what = if r.kind == RefKind::AdUpdate {
            format!(
                "A/D write: {}",
                describe(r, e.scenario.nested, e.scenario.guest_levels)
            )
        } else {
            describe(r, e.scenario.nested, e.scenario.guest_levels)
        };
        let _ = writeln!(out, "{:>4}  {what}", k + 1);
    }
    let events = e.events();
    if !events.is_empty() {
        let _ = writeln!(out, "\nCache hits that spared references:");
        for ev in events {
            let _ = writeln!(out, "      {ev}");
        }
    }
    let _ = writeln!(out, "\n{}", total(e));
    if let Some(level) = e.tlb_hit {
        let _ = writeln!(
            out,
            "(The level-{level} TLB holds this page: the run's next access to it would not walk \
             at all. Above is the walk a miss would make.)"
        );
    }
    out
}
