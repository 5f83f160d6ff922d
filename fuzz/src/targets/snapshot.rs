//! `snapshot`: hostile snapshot files through `Machine::from_snapshot`.
//!
//! The bases are real snapshots, taken once at a few points of `vmcs` and
//! `vmcb` L1 machines (VMX root and non-root, SVM host and guest) and of a
//! machine fresh from reset. Per input one base is damaged, in one of these
//! ways, and loaded:
//!
//! - **state**: the machine-state JSON parsed, leaves replaced (numbers by
//!   interesting values, strings, booleans, nulls), arrays cut or grown,
//!   keys dropped; the file rebuilt with a valid checksum, so the loader's
//!   checks past the checksum meet it;
//! - **pages**: page count and page indices rewritten, checksum valid;
//! - **bytes**: random bytes flipped anywhere, checksum valid;
//! - **raw**: bytes flipped or cut, checksum not fixed, header fields
//!   (version, lengths) rewritten, or random bytes after the magic.
//!
//! Defined: a `SnapshotError`, or a machine that runs a bounded slice to a
//! defined `Stop` and whose own snapshot loads again. The heap may grow by
//! the RAM the snapshot declares and [`crate::runner::HEAP_LIMIT`], no more.

use super::{stop_outcome, vmcb, vmcs};
use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use nestemu::snapshot::{MAGIC, VERSION};
use nestemu::{Machine, MachineConfig};
use serde_json::Value;

/// Instructions a loaded machine runs.
const RUN_INSNS: u64 = 20_000;
/// Offset of the state length: after the magic and the version.
const LEN_AT: usize = 20;
/// Offset of the state.
const STATE_AT: usize = 28;
/// Bytes of a page record: index and contents.
const PAGE_RECORD: usize = 8 + 4096;

/// A snapshot cut into its parts.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The machine-state JSON.
    pub state: Vec<u8>,
    /// Page records: index and contents.
    pub pages: Vec<(u64, Vec<u8>)>,
}

impl Parts {
    /// The parts of a well-formed snapshot (the bases).
    pub fn split(file: &[u8]) -> Self {
        let len = u64::from_le_bytes(file[LEN_AT..STATE_AT].try_into().expect("8 bytes")) as usize;
        let state = file[STATE_AT..STATE_AT + len].to_vec();
        let mut at = STATE_AT + len + 8;
        let mut pages = Vec::new();
        while at + PAGE_RECORD <= file.len() - 8 {
            let idx = u64::from_le_bytes(file[at..at + 8].try_into().expect("8 bytes"));
            pages.push((idx, file[at + 8..at + PAGE_RECORD].to_vec()));
            at += PAGE_RECORD;
        }
        Self { state, pages }
    }

    /// The file, with `count` as the page count and a valid checksum.
    pub fn join(&self, count: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.state.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.state);
        out.extend_from_slice(&count.to_le_bytes());
        for (i, data) in &self.pages {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(data);
        }
        seal(&mut out);
        out
    }
}

/// FNV-1a over `bytes`, as the snapshot format's checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Appends the checksum of `out`.
fn seal(out: &mut Vec<u8>) {
    let sum = fnv1a(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// The guest RAM a snapshot file declares (0 when it cannot be read).
pub fn declared_ram(file: &[u8]) -> u64 {
    let Some(len) = file.get(LEN_AT..STATE_AT) else {
        return 0;
    };
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let Some(state) = usize::try_from(len)
        .ok()
        .and_then(|n| file.get(STATE_AT..STATE_AT.checked_add(n)?))
    else {
        return 0;
    };
    serde_json::from_slice::<Value>(state)
        .ok()
        .and_then(|v| v.pointer("/config/mem_bytes")?.as_u64())
        .unwrap_or(0)
}

/// Every path to a value in `v`, depth first in key order.
pub fn paths(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                paths(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) if items.len() <= 64 => {
            for (i, child) in items.iter().enumerate() {
                paths(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// A new number for `n`: mostly of the same width, so that the state still
/// parses and the loader's own checks meet it.
fn number(src: &mut Source, n: u64) -> u64 {
    let bits = match n {
        0..=0xff => 8,
        0x100..=0xffff => 16,
        0x1_0000..=0xffff_ffff => 32,
        _ => 64,
    };
    let bits = if src.chance(1, 4) { 64 } else { bits };
    let mask = u64::MAX >> (64 - bits);
    match src.below(5) {
        0 => n ^ 1 << src.below(bits),
        1 => n.wrapping_add(src.range(1, 16)) & mask,
        2 => n.wrapping_sub(src.range(1, 16)) & mask,
        3 => src.pick(&[0, 1, 2, 0x7f, 0x80, 0xfff, 0x1000]) & mask,
        _ => src.interesting_u64() & mask,
    }
}

/// A replacement value: usually of the old value's type (numbers of its
/// width), sometimes of another.
fn value(src: &mut Source, old: &Value) -> Value {
    if src.chance(1, 8) {
        return match src.below(5) {
            0 => Value::from(src.interesting_u64() as i64),
            1 => Value::from(src.string(12)),
            2 => Value::Null,
            3 => Value::from(-(src.below(1 << 20) as f64) / 3.0),
            _ => Value::Bool(src.bool()),
        };
    }
    match old {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => Value::from(number(src, n.as_u64().unwrap_or(0))),
        Value::Array(items) if !items.is_empty() => {
            let mut items = items.clone();
            match src.below(3) {
                0 => items.truncate(src.below(items.len() as u64) as usize),
                1 => {
                    let k = src.below(items.len() as u64) as usize;
                    let copies = src.pick(&[1u64, 2, 7, 64, 4096]);
                    for _ in 0..copies {
                        items.push(items[k].clone());
                    }
                }
                _ => {
                    let last = items.len() - 1;
                    items.swap(0, last);
                }
            }
            Value::Array(items)
        }
        Value::String(_) => Value::from(src.string(12)),
        _ => Value::from(src.interesting_u64()),
    }
}

/// Damages the state JSON.
fn damage_state(src: &mut Source, parts: &mut Parts) {
    let Ok(mut v) = serde_json::from_slice::<Value>(&parts.state) else {
        return;
    };
    let mut all = Vec::new();
    paths(&v, String::new(), &mut all);
    for _ in 0..1 + src.below(4) {
        let at = all[src.below(all.len() as u64) as usize].clone();
        if src.chance(1, 8) {
            if let Some((parent, key)) = at.rsplit_once('/') {
                if let Some(Value::Object(map)) = v.pointer_mut(parent) {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
            }
            continue;
        }
        if let Some(slot) = v.pointer_mut(&at) {
            *slot = value(src, slot);
        }
    }
    parts.state = serde_json::to_vec(&v).expect("a JSON value serializes");
}

/// Rewrites page indices and the page count; returns the count.
fn damage_pages(src: &mut Source, parts: &mut Parts) -> u64 {
    for _ in 0..src.below(4) {
        if parts.pages.is_empty() {
            break;
        }
        let k = src.below(parts.pages.len() as u64) as usize;
        match src.below(3) {
            0 => parts.pages[k].0 = src.interesting_u64(),
            1 => {
                parts.pages.remove(k);
            }
            _ => {
                let dup = parts.pages[k].clone();
                parts.pages.push(dup);
            }
        }
    }
    let n = parts.pages.len() as u64;
    match src.below(4) {
        0 => src.interesting_u64(),
        1 => n.wrapping_add(src.range(1, 4)),
        2 => n.wrapping_sub(src.range(1, 4)),
        _ => n,
    }
}

/// Flips bits of `bytes[from..to]`.
fn flip(src: &mut Source, bytes: &mut [u8], from: usize, to: usize) {
    if to <= from {
        return;
    }
    for _ in 0..1 + src.below(8) {
        let at = from + src.below((to - from) as u64) as usize;
        bytes[at] ^= 1 << src.below(8);
    }
}

/// Raw damage with no checksum repair.
fn damage_raw(src: &mut Source, file: &mut Vec<u8>) {
    match src.below(5) {
        0 => {
            let n = file.len();
            flip(src, file, 0, n);
        }
        1 => file.truncate(src.below(file.len() as u64) as usize),
        2 => {
            let v = src.interesting_u64();
            file[16..20].copy_from_slice(&(v as u32).to_le_bytes());
        }
        3 => {
            let v = src.interesting_u64();
            file[LEN_AT..STATE_AT].copy_from_slice(&v.to_le_bytes());
            if src.bool() {
                file.truncate(file.len() - 8);
                seal(file);
            }
        }
        _ => {
            file.truncate(MAGIC.len());
            let n = src.remaining();
            file.extend(src.bytes(n));
        }
    }
}

/// The snapshot target: its base snapshots.
#[derive(Debug)]
pub struct Snapshot {
    /// Well-formed snapshots the inputs damage.
    pub bases: Vec<Vec<u8>>,
}

/// Runs `m` for up to `steps` instructions, stopping early if it stops.
fn advance(m: &mut Machine, steps: u64) {
    while m.steps() < steps {
        if m.run_slice().is_some() {
            break;
        }
    }
}

impl Snapshot {
    /// Takes the base snapshots.
    pub fn new() -> Self {
        let mut bases = vec![Machine::new(MachineConfig {
            mem_bytes: 2 << 20,
            ..Default::default()
        })
        .save_snapshot()];
        let vmx = vmcs::Vmcs::new();
        let svm = vmcb::Vmcb::new();
        let inputs: [&[u8]; 2] = [&[0; 64], &[0x5a; 64]];
        for input in inputs {
            for (k, at) in [2_000u64, 20_000].into_iter().enumerate() {
                let mut src = Source::new(input);
                let built = if k % 2 == 0 {
                    vmx.prepare(&mut src)
                } else {
                    svm.prepare(&mut src)
                };
                let mut m = built.expect("the kit machines build");
                advance(&mut m, at);
                bases.push(m.save_snapshot());
            }
        }
        Self { bases }
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Snapshot {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn max_len(&self) -> usize {
        256
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        let base = &self.bases[src.below(self.bases.len() as u64) as usize];
        let (how, file) = damage(&mut src, base);
        load(how, &file)
    }
}

/// A damaged copy of `base` and the name of the way it was damaged.
fn damage(src: &mut Source, base: &[u8]) -> (&'static str, Vec<u8>) {
    let way = src.below(8);
    let file = match way {
        0..=3 => {
            let mut parts = Parts::split(base);
            damage_state(src, &mut parts);
            let n = parts.pages.len() as u64;
            parts.join(n)
        }
        4 => {
            let mut parts = Parts::split(base);
            let n = damage_pages(src, &mut parts);
            parts.join(n)
        }
        5 => {
            let mut f = base.to_vec();
            let n = f.len() - 8;
            flip(src, &mut f, MAGIC.len(), n);
            f.truncate(n);
            seal(&mut f);
            f
        }
        _ => {
            let mut f = base.to_vec();
            damage_raw(src, &mut f);
            f
        }
    };
    let how = [
        "state", "state", "state", "state", "pages", "bytes", "raw", "raw",
    ][way as usize];
    (how, file)
}

/// Loads `file` and, if it loads, runs it a little and reloads its own
/// snapshot; `how` prefixes the outcome.
pub fn load(how: &str, file: &[u8]) -> Verdict {
    let ram = declared_ram(file);
    let mut m = match Machine::from_snapshot(file) {
        Ok(m) => m,
        Err(e) => {
            let msg = crate::normalize(&e.0);
            let short: String = msg.chars().take(90).collect();
            return Ok(Outcome::new(format!("{how}: SnapshotError: {short}")).with_ram(ram));
        }
    };
    m.config.max_insns = Some(m.steps().saturating_add(RUN_INSNS));
    let stop = super::run_bounded(&mut m);
    let mut o = stop_outcome(&m, stop.as_ref());
    if let Err(e) = Machine::from_snapshot(&m.save_snapshot()) {
        return Err(format!(
            "a loaded snapshot, run and saved, does not load again: {e}"
        ));
    }
    o.label = format!("{how}: loaded, {}", o.label);
    // Each reload builds the RAM afresh.
    Ok(o.with_ram(ram.saturating_mul(2)))
}
