//! The human-readable report (`--report`, and the demo): where the cycles
//! went, by level and by category; VM exits by reason; page-walk references
//! in the guest and nested dimensions with the histogram of references per
//! walk; TLB hit rates. It is drawn from the same [`Report`] the `--stats`
//! JSON is, so the two always agree.

use crate::cost::Category;
use crate::stats::{CyclesReport, LevelReport, Report, TlbReport, WalkReport};
use std::fmt::Write;

/// `n` with thousands separators.
pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    let mut left = s.len();
    for c in s.chars() {
        if left < s.len() && left.is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
        left -= 1;
    }
    out
}

/// `part` of `whole` as a percentage with one decimal.
pub fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// The rows of the cycles table: each category, then `other`.
pub fn category_rows(c: &CyclesReport) -> Vec<(&'static str, u64)> {
    let mut rows: Vec<(&'static str, u64)> = Category::ALL
        .iter()
        .map(|&k| (label(k), c.parts.get(k)))
        .collect();
    rows.push(("other (halted)", c.other));
    rows
}

/// The report label of a category.
pub fn label(c: Category) -> &'static str {
    match c {
        Category::Instructions => "instructions",
        Category::Tlb => "TLB lookups",
        Category::Walks => "page walks",
        Category::VmEntries => "VM entries",
        Category::VmExits => "VM exits",
        Category::Deliveries => "event delivery",
    }
}

/// The summary of one run.
pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "nestemu report: {} instructions, {} modelled cycles (cost model '{}'); {}",
        num(r.instructions),
        num(r.cycles),
        r.cost_model,
        r.stop
    );
    let l1 = &r.levels.l1;
    let l2 = &r.levels.l2.total;
    let nested = l2.entries > 0 || l2.instructions > 0;
    o += "\nwhere the cycles went\n";
    if nested {
        let _ = writeln!(
            o,
            "  {:<16} {:>15} {:>7} {:>15} {:>15}",
            "", "total", "", "L1 (host)", "L2 (guests)"
        );
    }
    let total_rows = category_rows(&r.cycles_by_category);
    let l1_rows = category_rows(&l1.cycles_by_category);
    let l2_rows = category_rows(&l2.cycles_by_category);
    for (i, (name, v)) in total_rows.iter().enumerate() {
        if *v == 0 && i > 0 {
            continue;
        }
        let _ = write!(o, "  {:<16} {:>15} {:>7}", name, num(*v), pct(*v, r.cycles));
        if nested {
            let _ = write!(o, " {:>15} {:>15}", num(l1_rows[i].1), num(l2_rows[i].1));
        }
        o.push('\n');
    }
    let _ = write!(o, "  {:<16} {:>15} {:>7}", "total", num(r.cycles), "");
    if nested {
        let _ = write!(o, " {:>15} {:>15}", num(l1.cycles), num(l2.cycles));
    }
    o.push('\n');
    if nested {
        let _ = writeln!(
            o,
            "  {:<16} {:>15} {:>7} {:>15} {:>15}",
            "instructions",
            num(r.instructions),
            "",
            num(l1.instructions),
            num(l2.instructions)
        );
        if r.levels.l2.by_control.len() > 1 {
            for (control, c) in &r.levels.l2.by_control {
                let _ = writeln!(
                    o,
                    "  L2 at {control}: {} instructions, {} cycles, {} entries, {} exits",
                    num(c.instructions),
                    num(c.cycles),
                    num(c.entries),
                    num(c.vmexits)
                );
            }
        }
    }
    exits(&mut o, r.vmexits.total, &r.vmexits.by_reason, l2);
    walks(&mut o, "walks", &r.walks);
    if nested {
        walks(&mut o, "  at L1", &l1.walks);
        walks(&mut o, "  at L2", &l2.walks);
    }
    tlb(&mut o, "TLB", &r.tlb);
    if nested {
        tlb(&mut o, "  at L1", &l1.tlb);
        tlb(&mut o, "  at L2", &l2.tlb);
    }
    o
}

fn exits(o: &mut String, total: u64, by_reason: &crate::stats::ReasonCounts, l2: &LevelReport) {
    if total == 0 {
        return;
    }
    let _ = writeln!(
        o,
        "\nVM exits: {} ({} modelled cycles of world switches, {} per exit)",
        num(total),
        num(l2.cycles_by_category.parts.vm_exits),
        num(l2.cycles_by_category.parts.vm_exits / total.max(1))
    );
    let mut rows: Vec<(&str, &u64)> = by_reason.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, n) in rows {
        let _ = writeln!(o, "  {:<28} {:>12} {:>7}", reason, num(*n), pct(*n, total));
    }
}

/// The walk summary and the histogram of references per walk.
pub fn walks(o: &mut String, title: &str, w: &WalkReport) {
    if w.count == 0 {
        return;
    }
    let _ = writeln!(
        o,
        "\n{title}: {} walks, {} references ({} guest, {} nested), {:.2} per walk; {} paging-structure-cache hits",
        num(w.count),
        num(w.refs),
        num(w.guest_refs),
        num(w.nested_refs),
        w.refs as f64 / w.count as f64,
        num(w.psc_hits)
    );
    histogram(o, &w.refs_per_walk);
}

/// Bars of `h[n]` walks with `n` references.
pub fn histogram(o: &mut String, h: &[u64]) {
    let max = h.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return;
    }
    let total: u64 = h.iter().sum();
    for (n, &c) in h.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let bar = ((c as f64 / max as f64) * 40.0).ceil() as usize;
        let _ = writeln!(
            o,
            "    {:>2} refs {:>12} {:>7} {}",
            n,
            num(c),
            pct(c, total),
            "#".repeat(bar.max(1))
        );
    }
}

fn tlb(o: &mut String, title: &str, t: &TlbReport) {
    if t.hits + t.misses == 0 {
        return;
    }
    let _ = writeln!(
        o,
        "{}{title}: {} lookups, {:.2}% hits ({} in the first level, {} in the second), {} misses",
        if title == "TLB" { "\n" } else { "" },
        num(t.hits + t.misses),
        t.hit_rate() * 100.0,
        num(t.l1_hits),
        num(t.l2_hits),
        num(t.misses)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(pct(1, 4), "25.0%");
        assert_eq!(pct(1, 0), "-");
    }

    #[test]
    fn the_histogram_skips_empty_buckets() {
        let mut o = String::new();
        histogram(&mut o, &[0, 0, 0, 0, 10, 0, 5]);
        let lines: Vec<&str> = o.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(" 4 refs") && lines[0].ends_with(&"#".repeat(40)));
        assert!(lines[1].contains(" 6 refs") && lines[1].ends_with(&"#".repeat(20)));
    }
}
