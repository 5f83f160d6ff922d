//! The measuring options of `run` and `demo` (issue 6): the cost model
//! (`--cost FILE`), cache sizes (`--caches`), the human-readable report on
//! stderr (`--report`) and the event trace (`--trace FILE`, `--trace-events`,
//! `--trace-level`, `--trace-limit`). Kept apart from the rest of the command
//! line so both stay small.

use super::UsageError;
use crate::cost::CostModel;
use crate::event::Stop;
use crate::loader::LoadError;
use crate::machine::{Machine, MachineConfig};
use crate::trace::{LevelFilter, Limit, Trace, TraceConfig};

/// The help text of these options.
pub const HELP: &str = "\
MEASURING (run, demo and explain-walk):
    --cost FILE       cost model: JSON naming a base preset and rows to change,
                      e.g. {\"base\": \"amd\", \"nested_ref\": 120}; see `nestemu cost-presets`
                      (default: the preset of the CPU's vendor)
    --caches PRESET   TLB and paging-structure-cache sizes: intel, amd or none
                      (none: every access walks, every walk is cold)
    --report          print where the cycles went on stderr at exit
    --trace FILE      write events as JSON lines
    --trace-events K,...   vmentry, vmexit, inject, walk, fault, interrupt, all (default all)
    --trace-level L1|L2    only events at that level
    --trace-limit N   at most N events, or N bytes with a suffix (64KiB, 10MiB);
                      default 100MiB; a last line says when the trace was truncated
";

/// The parsed measuring options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasureOptions {
    /// `--cost FILE`.
    pub cost: Option<String>,
    /// `--caches PRESET`.
    pub caches: Option<String>,
    /// `--report`.
    pub report: bool,
    /// `--trace FILE`.
    pub trace: Option<String>,
    /// `--trace-events`, as a kind mask.
    pub trace_kinds: Option<u32>,
    /// `--trace-level`.
    pub trace_level: Option<LevelFilter>,
    /// `--trace-limit`.
    pub trace_limit: Option<Limit>,
}

impl MeasureOptions {
    /// Takes `flag` if it is one of these options (`value` fetches its
    /// argument); `Ok(false)` if it is not.
    pub fn parse_flag(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut(&str) -> Result<String, UsageError>,
    ) -> Result<bool, UsageError> {
        match flag {
            "--cost" => self.cost = Some(value(flag)?),
            "--caches" => {
                let v = value(flag)?;
                if mmu::TlbConfig::preset(&v).is_none() {
                    return Err(UsageError(format!(
                        "--caches must be intel, amd or none, not '{v}'"
                    )));
                }
                self.caches = Some(v);
            }
            "--report" => self.report = true,
            "--trace" => self.trace = Some(value(flag)?),
            "--trace-events" => {
                self.trace_kinds =
                    Some(TraceConfig::parse_kinds(&value(flag)?).map_err(UsageError)?)
            }
            "--trace-level" => {
                self.trace_level =
                    Some(TraceConfig::parse_level(&value(flag)?).map_err(UsageError)?)
            }
            "--trace-limit" => {
                let v = value(flag)?;
                self.trace_limit = Some(Limit::parse(&v).ok_or_else(|| {
                    UsageError(format!(
                        "--trace-limit needs a count or a size like 64KiB, got '{v}'"
                    ))
                })?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks combinations: the trace filters need `--trace`.
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.trace.is_none()
            && (self.trace_kinds.is_some()
                || self.trace_level.is_some()
                || self.trace_limit.is_some())
        {
            return Err(UsageError(
                "--trace-events, --trace-level and --trace-limit need --trace FILE".into(),
            ));
        }
        Ok(())
    }

    /// Sets the cost model (the vendor's preset, or `--cost`) and the cache
    /// sizes of `config`.
    pub fn configure(&self, config: &mut MachineConfig) -> Result<(), LoadError> {
        let vendor = match config.model.vendor {
            crate::cpu::cpuid::Vendor::Intel => "intel",
            crate::cpu::cpuid::Vendor::Amd => "amd",
        };
        config.cost = match &self.cost {
            None => CostModel::preset(vendor).unwrap_or_default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| LoadError(format!("cannot read cost file '{path}': {e}")))?;
                CostModel::from_json(&text, vendor)
                    .map_err(|e| LoadError(format!("cost file '{path}': {e}")))?
            }
        };
        if let Some(c) = &self.caches {
            config.tlb = mmu::TlbConfig::preset(c);
        }
        Ok(())
    }

    /// Opens the trace file and attaches the trace to `m`.
    pub fn attach(&self, m: &mut Machine) -> Result<(), LoadError> {
        let Some(path) = &self.trace else {
            return Ok(());
        };
        let f = std::fs::File::create(path)
            .map_err(|e| LoadError(format!("cannot create trace file '{path}': {e}")))?;
        let defaults = TraceConfig::default();
        let config = TraceConfig {
            kinds: self.trace_kinds.unwrap_or(defaults.kinds),
            level: self.trace_level,
            limit: self.trace_limit.unwrap_or(defaults.limit),
        };
        m.trace = Trace::new(&config, Box::new(std::io::BufWriter::new(f)));
        Ok(())
    }

    /// At the end of a run: closes the trace and prints the report.
    pub fn finish(&self, m: &mut Machine, stop: &Stop) -> Result<(), String> {
        let traced = m.trace.finish();
        if self.report {
            let r = crate::stats::Report::of(m, stop.exit_status(), stop.describe());
            eprint!("{}", crate::report::summary(&r));
        }
        match (traced, &self.trace) {
            (Err(e), Some(path)) => Err(format!("writing trace file '{path}' failed: {e}")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MeasureOptions, UsageError> {
        let mut o = MeasureOptions::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .map(|s| s.to_string())
                    .ok_or_else(|| UsageError(format!("{name} needs a value")))
            };
            if !o.parse_flag(flag, &mut value)? {
                return Err(UsageError(format!("unknown {flag}")));
            }
        }
        o.validate()?;
        Ok(o)
    }

    #[test]
    fn parses_the_measuring_flags() {
        let o = parse(&[
            "--report",
            "--trace",
            "t.jsonl",
            "--trace-events",
            "vmexit,walk",
            "--trace-level",
            "L2",
            "--trace-limit",
            "10KiB",
            "--caches",
            "none",
        ])
        .unwrap();
        assert!(o.report);
        assert_eq!(o.trace.as_deref(), Some("t.jsonl"));
        assert_eq!(o.trace_level, Some(LevelFilter::L2));
        assert_eq!(o.trace_limit, Some(Limit::Bytes(10 << 10)));
        assert_eq!(o.caches.as_deref(), Some("none"));
    }

    #[test]
    fn refuses_bad_combinations_and_values() {
        assert!(parse(&["--trace-level", "L1"]).is_err());
        assert!(parse(&["--caches", "huge"]).is_err());
        assert!(parse(&["--trace", "t", "--trace-events", "nope"]).is_err());
        assert!(parse(&["--trace", "t", "--trace-limit", "x"]).is_err());
    }

    #[test]
    fn the_cost_model_follows_the_vendor() {
        let mut c = MachineConfig {
            model: crate::cpu::cpuid::CpuModel::amd(),
            ..MachineConfig::default()
        };
        MeasureOptions::default().configure(&mut c).unwrap();
        assert_eq!(c.cost, CostModel::amd());
        assert!(c.tlb.is_none());
        let bad = MeasureOptions {
            cost: Some("/nonexistent/cost.json".into()),
            ..MeasureOptions::default()
        };
        assert!(bad.configure(&mut c).unwrap_err().0.contains("cannot read"));
    }
}
