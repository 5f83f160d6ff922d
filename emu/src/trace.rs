//! The event trace (`--trace FILE`): one JSON object per line for each event
//! of the chosen kinds (VM entries and exits with their reason and exit
//! information, injected events, page walks with every reference, exceptions
//! and interrupts delivered), optionally only at one level, bounded in events
//! or bytes. Deterministic: two runs of the same input write identical files
//! (no host time, no addresses of host memory).
//!
//! Every line has `seq` (the line's number from 0), `insn` (instructions
//! retired before the event), `cycle` (the modelled clock), `level` (`L1`, or
//! `L2` with `control`, the VMCS or VMCB address) and `kind`; keys are in
//! alphabetical order, addresses and entries are hex strings:
//!
//! ```text
//! {"control":"0x401000","cycle":1650,"insn":1042,"kind":"vmentry","level":"L2","seq":0}
//! {"access":"read","cache":["nested PML4E cache hit"],...,"kind":"walk","la":"0x7f1234567000",
//!  "refs":[{"addr":"0x...","dim":"nested","entry":"0x...","for_guest_level":4,"level":4,"n":1},...],
//!  "refs_count":20,"result":"0x...",...}
//! {...,"info1":"0x...","info2":"0x...","kind":"vmexit","reason":"VMEXIT_NPF",...}
//! {"dropped":52,"kind":"truncated","limit":"1000 events","written":1000}
//! ```
//!
//! Tracing costs nothing when off: every hook is behind [`Trace::wants`], a
//! mask test, and walks are recorded only on the TLB-miss path.

use crate::machine::Machine;
use crate::stats::Level;
use mmu::paging::{Dimension, RefKind, TraceItem};
use serde_json::{json, Map, Value};
use std::io::Write;

/// What can be traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// VM entries and VMRUNs.
    Vmentry,
    /// VM exits and #VMEXITs (reason and exit information).
    Vmexit,
    /// Events injected by a VM entry or VMRUN.
    Inject,
    /// Page walks (TLB misses) with every reference.
    Walk,
    /// Exceptions delivered.
    Fault,
    /// Interrupts (external, NMI, software) delivered.
    Interrupt,
}

impl Kind {
    /// Every kind, with its name on the command line.
    pub const ALL: [(Kind, &'static str); 6] = [
        (Kind::Vmentry, "vmentry"),
        (Kind::Vmexit, "vmexit"),
        (Kind::Inject, "inject"),
        (Kind::Walk, "walk"),
        (Kind::Fault, "fault"),
        (Kind::Interrupt, "interrupt"),
    ];

    const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(k, _)| *k)
    }
}

/// Only events at this level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelFilter {
    /// Root operation / host mode.
    L1,
    /// Any guest.
    L2,
}

/// How much to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many events.
    Events(u64),
    /// At most this many bytes (the truncation line comes on top).
    Bytes(u64),
}

impl Limit {
    /// Parses `N` (events) or `N` with a byte suffix (`B`, `KiB`, `MiB`,
    /// `GiB`, or `K`, `M`, `G`).
    pub fn parse(s: &str) -> Option<Limit> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult = match unit.to_ascii_lowercase().as_str() {
            "" => return Some(Limit::Events(n)),
            "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(Limit::Bytes)
    }

    fn describe(self) -> String {
        match self {
            Limit::Events(n) => format!("{n} events"),
            Limit::Bytes(n) => format!("{n} bytes"),
        }
    }
}

/// The default bound: 100 MiB.
pub const DEFAULT_LIMIT: Limit = Limit::Bytes(100 << 20);

/// What to trace (from the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    /// The kinds, as a mask of [`Kind`] bits.
    pub kinds: u32,
    /// Only this level.
    pub level: Option<LevelFilter>,
    /// The bound.
    pub limit: Limit,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            kinds: Kind::ALL.iter().fold(0, |m, (k, _)| m | k.bit()),
            level: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl TraceConfig {
    /// Parses `--trace-events` (`KIND,...` or `all`).
    pub fn parse_kinds(s: &str) -> Result<u32, String> {
        let mut mask = 0;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                mask |= Self::default().kinds;
                continue;
            }
            let k = Kind::parse(part).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown trace event '{part}' ({} or all)", names.join(", "))
            })?;
            mask |= k.bit();
        }
        if mask == 0 {
            return Err("--trace-events needs at least one kind".into());
        }
        Ok(mask)
    }

    /// Parses `--trace-level`.
    pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
        match s {
            "L1" | "l1" => Ok(LevelFilter::L1),
            "L2" | "l2" => Ok(LevelFilter::L2),
            _ => Err(format!("--trace-level must be L1 or L2, not '{s}'")),
        }
    }
}

/// The trace of a machine: off, or writing somewhere.
#[derive(Default)]
pub struct Trace {
    mask: u32,
    w: Option<Box<Writer>>,
}

impl core::fmt::Debug for Trace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Trace").field("mask", &self.mask).finish()
    }
}

struct Writer {
    out: Box<dyn Write>,
    level: Option<LevelFilter>,
    limit: Limit,
    written: u64,
    bytes: u64,
    dropped: u64,
    error: Option<std::io::Error>,
    finished: bool,
}

impl Trace {
    /// A trace writing to `out`.
    pub fn new(config: &TraceConfig, out: Box<dyn Write>) -> Self {
        Self {
            mask: config.kinds,
            w: Some(Box::new(Writer {
                out,
                level: config.level,
                limit: config.limit,
                written: 0,
                bytes: 0,
                dropped: 0,
                error: None,
                finished: false,
            })),
        }
    }

    /// True if events of kind `k` are traced.
    #[inline(always)]
    pub fn wants(&self, k: Kind) -> bool {
        self.mask & k.bit() != 0
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.w.as_ref().map_or(0, |w| w.written)
    }

    /// Writes the truncation line if events were dropped, flushes, and
    /// reports the first write error.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        w.finish();
        match w.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn emit(&mut self, level: Level, fields: Map<String, Value>) {
        let Some(w) = self.w.as_mut() else { return };
        if let Some(f) = w.level {
            let at = match level {
                Level::L1 => LevelFilter::L1,
                Level::L2 { .. } => LevelFilter::L2,
            };
            if at != f {
                return;
            }
        }
        w.emit(fields);
    }
}

impl Writer {
    fn emit(&mut self, fields: Map<String, Value>) {
        if self.finished || self.error.is_some() {
            return;
        }
        let mut line = serde_json::to_string(&Value::Object(fields)).unwrap_or_default();
        line.push('\n');
        let full = match self.limit {
            Limit::Events(n) => self.written >= n,
            Limit::Bytes(n) => self.bytes + line.len() as u64 > n,
        };
        if full {
            self.dropped += 1;
            return;
        }
        if let Err(e) = self.out.write_all(line.as_bytes()) {
            self.error = Some(e);
            return;
        }
        self.written += 1;
        self.bytes += line.len() as u64;
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.dropped > 0 && self.error.is_none() {
            let line = json!({
                "kind": "truncated",
                "limit": self.limit.describe(),
                "written": self.written,
                "dropped": self.dropped,
            });
            if let Err(e) = writeln!(self.out, "{line}") {
                self.error = Some(e);
            }
        }
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn hex(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

impl Machine {
    /// The fields every line starts with.
    fn trace_head(&self, seq_level: Level, kind: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.trace.written()));
        m.insert("insn".into(), json!(self.stats.instructions));
        m.insert("cycle".into(), json!(self.cycles()));
        match seq_level {
            Level::L1 => {
                m.insert("level".into(), json!("L1"));
            }
            Level::L2 { control } => {
                m.insert("level".into(), json!("L2"));
                m.insert("control".into(), hex(control));
            }
        }
        m.insert("kind".into(), json!(kind));
        m
    }

    /// A VM exit out of the current level (before the switch back).
    #[cold]
    pub(crate) fn trace_vmexit(&mut self, reason: &str, info: Option<(u64, u64)>) {
        let level = self.stats.levels.current;
        let mut m = self.trace_head(level, "vmexit");
        m.insert("reason".into(), json!(reason));
        if let Some((q, i2)) = info {
            m.insert("info1".into(), hex(q));
            m.insert("info2".into(), hex(i2));
        }
        m.insert("rip".into(), hex(self.cpu.rip));
        self.trace.emit(level, m);
    }

    /// A VM entry into `level` (after the switch).
    #[cold]
    pub(crate) fn trace_vmentry(&mut self, level: Level) {
        let m = self.trace_head(level, "vmentry");
        self.trace.emit(level, m);
    }

    /// An event a VM entry or VMRUN injects (`what`: the manual's type name).
    #[cold]
    pub fn trace_inject(&mut self, what: &str, vector: u8, error_code: Option<u32>) {
        if !self.trace.wants(Kind::Inject) {
            return;
        }
        let level = self.stats.levels.current;
        let mut m = self.trace_head(level, "inject");
        m.insert("type".into(), json!(what));
        m.insert("vector".into(), json!(vector));
        if let Some(e) = error_code {
            m.insert("error_code".into(), hex(e as u64));
        }
        self.trace.emit(level, m);
    }

    /// An exception or interrupt being delivered through the IDT/IVT.
    #[cold]
    pub(crate) fn trace_delivery(&mut self, d: &crate::interrupt::Delivery) {
        use crate::interrupt::Source;
        let (kind, k) = match d.source {
            Source::Exception => (Kind::Fault, "fault"),
            _ => (Kind::Interrupt, "interrupt"),
        };
        if !self.trace.wants(kind) {
            return;
        }
        let level = self.stats.levels.current;
        let mut m = self.trace_head(level, k);
        m.insert("vector".into(), json!(d.vector));
        m.insert(
            "name".into(),
            json!(crate::interrupt::vector_name(d.vector)),
        );
        m.insert(
            "source".into(),
            json!(match d.source {
                Source::Exception => "exception",
                Source::External => "external",
                Source::Nmi => "nmi",
                Source::Software(_) => "software",
            }),
        );
        if let Some(e) = d.error_code {
            m.insert("error_code".into(), hex(e as u64));
        }
        match (d.vector, d.payload) {
            (14, Some(cr2)) => {
                m.insert("cr2".into(), hex(cr2));
            }
            (1, Some(dr6)) => {
                m.insert("dr6".into(), hex(dr6));
            }
            _ => {}
        }
        m.insert("rip".into(), hex(d.return_rip));
        self.trace.emit(level, m);
    }

    /// A page walk (a TLB miss) of `la`, with its references and cache hits.
    #[cold]
    pub(crate) fn trace_walk(
        &mut self,
        la: u64,
        access: &str,
        walk: &mmu::paging::Trace,
        result: Result<u64, &mmu::TranslateFault>,
    ) {
        let level = self.stats.levels.current;
        let mut m = self.trace_head(level, "walk");
        m.insert("la".into(), hex(la));
        m.insert("access".into(), json!(access));
        match result {
            Ok(pa) => m.insert("result".into(), hex(pa)),
            Err(f) => m.insert("fault".into(), json!(format!("{f:?}"))),
        };
        let mut refs = Vec::new();
        let mut cache = Vec::new();
        let mut n = 0;
        for item in &walk.items {
            match item {
                TraceItem::Ref(r) => {
                    let mut o = Map::new();
                    if r.kind == RefKind::Read {
                        n += 1;
                        o.insert("n".into(), json!(n));
                    } else {
                        o.insert("ad_update".into(), json!(true));
                    }
                    o.insert(
                        "dim".into(),
                        json!(match r.dimension {
                            Dimension::Guest => "guest",
                            Dimension::Nested => "nested",
                        }),
                    );
                    o.insert("level".into(), json!(r.level));
                    if let Some(g) = r.for_guest_level {
                        o.insert("for_guest_level".into(), json!(g));
                    }
                    o.insert("addr".into(), hex(r.addr.0));
                    if let Some(g) = r.gpa {
                        o.insert("gpa".into(), hex(g.0));
                    }
                    o.insert("entry".into(), hex(r.entry));
                    refs.push(Value::Object(o));
                }
                TraceItem::Event(e) => cache.push(json!(e.to_string())),
            }
        }
        m.insert("refs_count".into(), json!(n));
        m.insert("refs".into(), Value::Array(refs));
        if !cache.is_empty() {
            m.insert("cache".into(), Value::Array(cache));
        }
        self.trace.emit(level, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(n: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("n".into(), json!(n));
        m
    }

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("1000"), Some(Limit::Events(1000)));
        assert_eq!(Limit::parse("64KiB"), Some(Limit::Bytes(64 << 10)));
        assert_eq!(Limit::parse("2M"), Some(Limit::Bytes(2 << 20)));
        assert_eq!(Limit::parse("12b"), Some(Limit::Bytes(12)));
        assert_eq!(Limit::parse("lots"), None);
        assert_eq!(Limit::parse("5 furlongs"), None);
    }

    #[test]
    fn kinds_parse() {
        let all = TraceConfig::default().kinds;
        assert_eq!(TraceConfig::parse_kinds("all"), Ok(all));
        let m = TraceConfig::parse_kinds("vmexit,walk").unwrap();
        assert_eq!(m, Kind::Vmexit.bit() | Kind::Walk.bit());
        assert!(TraceConfig::parse_kinds("vmexit,bogus").is_err());
        assert!(TraceConfig::parse_kinds("").is_err());
        assert_eq!(TraceConfig::parse_level("L2"), Ok(LevelFilter::L2));
        assert!(TraceConfig::parse_level("L3").is_err());
    }

    #[test]
    fn an_event_limit_truncates_with_a_final_line() {
        let buf = Shared::default();
        let cfg = TraceConfig {
            limit: Limit::Events(2),
            ..TraceConfig::default()
        };
        let mut t = Trace::new(&cfg, Box::new(buf.clone()));
        for n in 0..5 {
            t.emit(Level::L1, line(n));
        }
        t.finish().unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], r#"{"n":0}"#);
        assert_eq!(
            lines[2],
            r#"{"dropped":3,"kind":"truncated","limit":"2 events","written":2}"#
        );
    }

    #[test]
    fn a_byte_limit_never_splits_a_line_and_the_level_filter_drops() {
        let buf = Shared::default();
        let cfg = TraceConfig {
            limit: Limit::Bytes(20),
            level: Some(LevelFilter::L2),
            ..TraceConfig::default()
        };
        let mut t = Trace::new(&cfg, Box::new(buf.clone()));
        t.emit(Level::L1, line(0));
        for n in 1..5 {
            t.emit(Level::L2 { control: 0x1000 }, line(n));
        }
        t.finish().unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..2], &[r#"{"n":1}"#, r#"{"n":2}"#]);
        assert!(lines[2].contains(r#""dropped":2"#), "{text}");
    }

    #[test]
    fn an_untruncated_trace_has_no_final_line() {
        let buf = Shared::default();
        let mut t = Trace::new(&TraceConfig::default(), Box::new(buf.clone()));
        t.emit(Level::L1, line(0));
        t.finish().unwrap();
        assert_eq!(&*buf.0.lock().unwrap(), b"{\"n\":0}\n");
    }
}
