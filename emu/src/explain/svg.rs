//! The explained walk as an SVG picture to project: the grid with every
//! reference numbered in walk order (guest entries in orange, nested entries
//! in blue, references a cache spared in grey), the details of each
//! reference in order, the cache hits that spared the grey ones, and the
//! total.

use super::text::{describe, grid, title, total};
use super::Explained;
use mmu::paging::Dimension;
use std::fmt::Write;

const CELL_W: usize = 150;
const CELL_H: usize = 64;
const LABEL_W: usize = 190;
const TOP: usize = 118;
const LEFT: usize = 30;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the SVG document.
pub fn render(e: &Explained) -> String {
    let g = grid(e);
    let refs = e.refs();
    let cols = g.cols.len();
    let rows = g.rows.len();
    let grid_w = LABEL_W + cols * CELL_W;
    let details_top = TOP + (rows + 1) * CELL_H + 50;
    let line_h = 22;
    let t = title(e);
    let (t1, t2) = t.split_once(": ").unwrap_or((&t, ""));
    // About 11 pixels a character at the subtitle's 20 pixels.
    let width = (LEFT * 2 + grid_w).max(1200).max(LEFT * 2 + 11 * t2.len());
    let events = e.events();
    let cache_lines = if events.is_empty() {
        0
    } else {
        events.len() + 2
    };
    let height = details_top + (refs.len() + cache_lines + 3) * line_h + 40;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif">"##
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="38" font-size="26" font-weight="bold" fill="#222">{}</text>"##,
        esc(t1)
    );
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="70" font-size="20" fill="#333">{}</text>"##,
        esc(t2)
    );
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="98" font-size="20" font-weight="bold" fill="#333">{}</text>"##,
        esc(&total(e))
    );
    // Column headers.
    for (ci, c) in g.cols.iter().enumerate() {
        let x = LEFT + LABEL_W + ci * CELL_W + CELL_W / 2;
        let _ = writeln!(
            o,
            r##"<text x="{x}" y="{}" font-size="17" text-anchor="middle" font-weight="bold" fill="#222">{}</text>"##,
            TOP + CELL_H / 2 + 6,
            esc(c)
        );
    }
    for (ri, row) in g.rows.iter().enumerate() {
        let y = TOP + (ri + 1) * CELL_H;
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" font-size="17" font-weight="bold" fill="#222">{}</text>"##,
            LEFT,
            y + CELL_H / 2 + 6,
            esc(row)
        );
        for (ci, cell) in g.cells[ri].iter().enumerate() {
            let x = LEFT + LABEL_W + ci * CELL_W;
            let (fill, stroke, label) = match (cell.number, cell.r, cell.cached) {
                (Some(k), Some(r), _) => {
                    if r.dimension == Dimension::Guest {
                        ("#fdd9a8", "#d97a00", k.to_string())
                    } else {
                        ("#c9def7", "#2f6db5", k.to_string())
                    }
                }
                (_, _, true) => ("#ececec", "#aaaaaa", "cached".to_string()),
                _ if ri + 1 == rows && ci + 1 == cols => {
                    ("#e6f4e6", "#3c8c3c", format!("{:#x}", e.pa))
                }
                _ => ("#ffffff", "#dddddd", String::new()),
            };
            let _ = writeln!(
                o,
                r##"<rect x="{}" y="{}" width="{}" height="{}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="2"/>"##,
                x + 4,
                y + 4,
                CELL_W - 8,
                CELL_H - 8
            );
            let size = if label.len() > 4 { 17 } else { 28 };
            let _ = writeln!(
                o,
                r##"<text x="{}" y="{}" font-size="{size}" text-anchor="middle" font-weight="bold" fill="#222">{}</text>"##,
                x + CELL_W / 2,
                y + CELL_H / 2 + size / 3,
                esc(&label)
            );
        }
    }
    // Legend and details.
    let ly = details_top - 20;
    let _ = writeln!(
        o,
        r##"<rect x="{LEFT}" y="{}" width="22" height="22" fill="#fdd9a8" stroke="#d97a00"/><text x="{}" y="{}" font-size="16">guest paging-structure entry</text>"##,
        ly - 16,
        LEFT + 30,
        ly
    );
    let _ = writeln!(
        o,
        r##"<rect x="{}" y="{}" width="22" height="22" fill="#c9def7" stroke="#2f6db5"/><text x="{}" y="{}" font-size="16">nested (EPT/NPT) entry</text>"##,
        LEFT + 300,
        ly - 16,
        LEFT + 330,
        ly
    );
    let _ = writeln!(
        o,
        r##"<rect x="{}" y="{}" width="22" height="22" fill="#ececec" stroke="#aaaaaa"/><text x="{}" y="{}" font-size="16">spared by a cache</text>"##,
        LEFT + 560,
        ly - 16,
        LEFT + 590,
        ly
    );
    for (k, r) in refs.iter().enumerate() {
        let y = details_top + (k + 1) * line_h;
        let line = format!(
            "{:>3}  {}",
            k + 1,
            describe(r, e.scenario.nested, e.scenario.guest_levels)
        );
        let _ = writeln!(
            o,
            r##"<text x="{LEFT}" y="{y}" font-size="15" font-family="DejaVu Sans Mono, monospace" fill="#222" xml:space="preserve">{}</text>"##,
            esc(&line)
        );
    }
    // Which caches spared the grey cells.
    if !events.is_empty() {
        let top = details_top + (refs.len() + 2) * line_h;
        let _ = writeln!(
            o,
            r##"<text x="{LEFT}" y="{top}" font-size="16" font-weight="bold" fill="#222">Cache hits that spared references:</text>"##
        );
        for (k, ev) in events.iter().enumerate() {
            let _ = writeln!(
                o,
                r##"<text x="{}" y="{}" font-size="15" fill="#555">{}</text>"##,
                LEFT + 20,
                top + (k + 1) * line_h,
                esc(&ev.to_string())
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::super::{explain, Scenario};
    use super::*;

    #[test]
    fn svg_numbers_every_reference() {
        let e = explain(&Scenario {
            tlb: mmu::TlbConfig::none(),
            ..Scenario::default()
        })
        .unwrap();
        let s = render(&e);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        for k in 1..=24 {
            assert!(s.contains(&format!(">{k}</text>")), "cell {k}");
        }
        assert!(s.contains("24 references"));
        assert!(!s.contains("Cache hits"), "a cold walk has none");
    }

    #[test]
    fn svg_names_the_caches_that_spared_references() {
        let e = explain(&Scenario {
            warm: true,
            ..Scenario::default()
        })
        .unwrap();
        let events = e.events();
        assert!(!events.is_empty());
        let s = render(&e);
        assert!(s.contains("Cache hits that spared references:"));
        for ev in events {
            assert!(s.contains(&esc(&ev.to_string())), "{ev}");
        }
    }
}
