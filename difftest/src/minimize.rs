//! Shrinking a failing sequence to a short reproducer: drop items, then
//! set-up instructions, then simplify the initial state, keeping each step
//! only if the machines still disagree.

use crate::gen::remove_item;
use crate::layout;
use crate::runner::{check_one, Hardware, Mismatch};
use crate::seq::Sequence;

/// Candidates tried at most.
const BUDGET: usize = 400;
/// Candidates on which a machine stopped (the hardware's watchdog, nestemu's
/// instruction limit: a candidate that never ends, such as a corrupted
/// return address leading back to the sequence's start) tolerated before
/// the minimizer gives up and reports the smallest mismatch found so far.
/// Each costs the oracle's timeout, so this bounds the minimizer's time.
const STOPPED_BUDGET: usize = 3;
/// The same, when the mismatch to shrink is itself a machine that stopped.
const STOPPED_BUDGET_FOR_STOPS: usize = 20;

/// A sequence the generator could have produced: it encodes and reads no
/// undefined flag.
fn valid(s: &Sequence) -> bool {
    !s.is_empty()
        && s.flag_analysis().bad_read.is_none()
        && s.encode(layout::CODE, layout::DRIVER).is_ok()
}

/// Shrinks `m`'s sequence; returns the smallest mismatch found.
pub fn minimize(hw: &mut dyn Hardware, m: &Mismatch) -> Mismatch {
    let mut best = m.clone();
    let mut tries = 0;
    let mut stopped = 0;
    let stop_budget = if m.stopped.is_some() {
        STOPPED_BUDGET_FOR_STOPS
    } else {
        STOPPED_BUDGET
    };
    let mut attempt = |hw: &mut dyn Hardware, cand: Sequence, best: &mut Mismatch| -> bool {
        if tries >= BUDGET || stopped >= stop_budget || !valid(&cand) {
            return false;
        }
        tries += 1;
        let r = check_one(hw, &cand);
        if matches!(&r, Ok(Some(r)) if r.stopped.is_some()) || r.is_err() {
            stopped += 1;
        }
        match r {
            Ok(Some(mut r)) if same_kind(&r, m) => {
                r.index = m.index;
                *best = r;
                true
            }
            _ => false,
        }
    };
    // Items, last first, until nothing more can go.
    loop {
        let mut changed = false;
        for k in (0..best.seq.items.len()).rev() {
            if best.seq.items.len() == 1 {
                break;
            }
            let mut c = best.seq.clone();
            remove_item(&mut c, k);
            if attempt(hw, c, &mut best) {
                changed = true;
            }
        }
        // Set-up instructions.
        for k in (0..best.seq.items.len()).rev() {
            for j in (0..best.seq.items[k].insns.len()).rev() {
                if best.seq.items.get(k).map(|i| i.insns.len()).unwrap_or(0) <= 1
                    || j >= best.seq.items[k].insns.len()
                    || !best.seq.items[k].insns[j].setup
                    || best.seq.items[k].insns[j].pinned
                {
                    continue;
                }
                let mut c = best.seq.clone();
                c.items[k].insns.remove(j);
                if attempt(hw, c, &mut best) {
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // The initial state.
    let mut c = best.seq.clone();
    c.init.scratch.iter_mut().for_each(|b| *b = 0);
    attempt(hw, c, &mut best);
    let mut c = best.seq.clone();
    c.init.rflags = layout::USER_RFLAGS;
    attempt(hw, c, &mut best);
    for n in 0..16 {
        if n == 4 || best.seq.init.gprs[n] == 0 {
            continue;
        }
        let mut c = best.seq.clone();
        c.init.gprs[n] = 0;
        attempt(hw, c, &mut best);
    }
    best
}

/// The same failure: a machine stopped in both, or the same fields differ.
fn same_kind(a: &Mismatch, b: &Mismatch) -> bool {
    match (&a.stopped, &b.stopped) {
        (Some(_), Some(_)) => true,
        (None, None) => {
            let fa: Vec<&str> = a.diffs.iter().map(|d| kind(&d.what)).collect();
            b.diffs.iter().any(|d| fa.contains(&kind(&d.what)))
        }
        _ => false,
    }
}

fn kind(what: &str) -> &str {
    if what.starts_with("mem[") {
        "mem"
    } else {
        what
    }
}

/// Shows the sequence's initial state.
pub fn show_init(s: &Sequence) -> String {
    use crate::compare::GPR_NAMES;
    let mut out = String::new();
    for (n, g) in s.init.gprs.iter().enumerate() {
        out.push_str(&format!("{:>4}={g:#018x}", GPR_NAMES[n]));
        out.push_str(if n % 4 == 3 { "\n" } else { " " });
    }
    out.push_str(&format!("  rflags={:#x}\n", s.init.rflags));
    if s.init.fpu != crate::seq::default_fpu() {
        let f = &s.init.fpu;
        let w = |o: usize| u16::from_le_bytes([f[o], f[o + 1]]);
        out.push_str(&format!(
            "  fcw={:#06x} fsw={:#06x} ftw={:#04x} (TOP {})\n",
            w(0),
            w(2),
            f[4],
            (w(2) >> 11) & 7
        ));
        for k in 0..8 {
            let o = 32 + 16 * k;
            let mant = u64::from_le_bytes(f[o..o + 8].try_into().expect("8"));
            out.push_str(&format!("  st({k})={:04x}_{mant:016x}", w(o + 8)));
            out.push_str(if k % 4 == 3 { "\n" } else { " " });
        }
    }
    out
}

/// A full report of a mismatch: disassembly, initial state, differences.
pub fn report(m: &Mismatch) -> String {
    let mut out = format!(
        "mismatch in sequence {} (group {}), {} instructions:\n",
        m.index,
        m.seq.group,
        m.seq.len()
    );
    out.push_str(&m.seq.listing(m.code_at));
    out.push_str("initial state:\n");
    out.push_str(&show_init(&m.seq));
    if let Some(s) = &m.stopped {
        out.push_str(&format!("a machine stopped: {s}\n"));
    }
    let a = m.seq.flag_analysis();
    out.push_str(&format!(
        "flags undefined at the end: {}\n",
        crate::compare::show_flags(a.end)
    ));
    for (who, o) in [("hardware", &m.hw), ("nestemu", &m.emu)] {
        if let Some(o) = o {
            out.push_str(&format!(
                "{who:>8}: rflags {:#x}, exception {}\n",
                o.rflags,
                crate::compare::show_exc(o.exception)
            ));
        }
    }
    if !m.diffs.is_empty() {
        out.push_str("differences (hardware vs nestemu):\n");
        for d in &m.diffs {
            out.push_str(&format!("  {:<14} {:>20}  {:>20}\n", d.what, d.hw, d.emu));
        }
    }
    out
}
