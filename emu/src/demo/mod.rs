//! The built-in demo (`nestemu`, `nestemu demo`, `cargo run --release`):
//! nested virtualization, measured.
//!
//! - **nested** (the default): the same memory-heavy work ([`work`]) run
//!   three times, each on a fresh machine: natively (the work is the kernel,
//!   no hypervisor), by an L1 hypervisor itself in host mode ("L1 alone"),
//!   and as an L2 guest of that hypervisor with nested paging. The table
//!   shows where the modelled cycles went, the exits by reason and the page
//!   walks (references per walk, guest and nested) side by side.
//! - **shadow**: the classic trade-off. The same work as an L2 guest with
//!   nested paging and with shadow paging done by the L1 hypervisor in
//!   software ([`svm`]), once in a single address space and once with a
//!   context switch (MOV CR3) every few thousand iterations.
//!
//! Everything is deterministic: the same options give the same output and
//! the same `--stats` JSON, bit for bit (only the host-speed line on stderr
//! varies).
//!
//! The hypervisor is VT-x's with EPT on the Intel-like model (`--cpu intel`,
//! the default; [`vmx`]) and AMD-V's with nested page tables on the AMD-like
//! one (`--cpu amd`; [`svm`]); each run is costed with its vendor's preset.

pub mod hv;
pub mod svm;
pub mod vmx;
pub mod work;

use crate::cli::measure::MeasureOptions;
use crate::cli::EXIT_USAGE;
use crate::cpu::cpuid::{CpuModel, Vendor};
use crate::event::Stop;
use crate::machine::{Machine, MachineConfig};
use crate::report::{category_rows, histogram, num, pct};
use crate::stats::Report;
use guestkit::Program;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use work::Work;

/// Which demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scenario {
    /// Native, L1 alone, L2 with nested paging.
    #[default]
    Nested,
    /// Nested paging against shadow paging.
    Shadow,
    /// Both.
    All,
}

/// The demo's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--cpu`.
    pub cpu: String,
    /// `--scenario`.
    pub scenario: Scenario,
    /// `--stats FILE`: every run's report, as one JSON object.
    pub stats: Option<String>,
    /// `--cost`, `--caches`, `--report`, `--trace` (the trace follows the
    /// nested-paging L2 run).
    pub measure: MeasureOptions,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            cpu: "intel".into(),
            scenario: Scenario::Nested,
            stats: None,
            measure: MeasureOptions::default(),
        }
    }
}

impl DemoOptions {
    /// Options from the command line.
    pub fn new(
        cpu: String,
        scenario: Option<String>,
        stats: Option<String>,
        measure: MeasureOptions,
    ) -> Result<Self, String> {
        let scenario = match scenario.as_deref() {
            None | Some("nested") => Scenario::Nested,
            Some("shadow") => Scenario::Shadow,
            Some("all") => Scenario::All,
            Some(other) => {
                return Err(format!(
                    "--scenario must be nested, shadow or all, not '{other}'"
                ))
            }
        };
        if CpuModel::preset(&cpu).is_none() {
            return Err(format!("unknown CPU model '{cpu}' (intel or amd)"));
        }
        Ok(Self {
            cpu,
            scenario,
            stats,
            measure,
        })
    }
}

/// The work of the nested scenario: 32 MiB in 4-KiB pages, far beyond the
/// TLBs' reach, 262,144 iterations.
pub const NESTED_WORK: Work = Work {
    data_bytes: 32 << 20,
    rounds: 8,
    per_round: 32768,
    switch_every: None,
};

/// The work of the shadow scenario: the same region, 131,072 iterations,
/// in one address space or switching every 16,384 iterations.
pub fn shadow_work(switch: bool) -> Work {
    Work {
        data_bytes: 32 << 20,
        rounds: 4,
        per_round: 32768,
        switch_every: switch.then_some(16384),
    }
}

/// How a run executes the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The work is the kernel: no hypervisor.
    Native,
    /// The hypervisor does the work itself, in host mode.
    L1Alone,
    /// An L2 guest with nested paging.
    L2Nested,
    /// An L2 guest with shadow paging.
    L2Shadow,
}

impl Setup {
    /// The column title.
    pub fn title(self) -> &'static str {
        match self {
            Setup::Native => "native",
            Setup::L1Alone => "L1 alone",
            Setup::L2Nested => "L2, nested paging",
            Setup::L2Shadow => "L2, shadow paging",
        }
    }

    /// The setup named `s` on the command line (`explain-walk --demo`).
    pub fn parse(s: &str) -> Option<Setup> {
        match s {
            "native" => Some(Setup::Native),
            "l1" | "L1" => Some(Setup::L1Alone),
            "nested" | "l2" | "L2" => Some(Setup::L2Nested),
            "shadow" => Some(Setup::L2Shadow),
            _ => None,
        }
    }

    /// The key in the `--stats` JSON.
    pub fn key(self) -> &'static str {
        match self {
            Setup::Native => "native",
            Setup::L1Alone => "l1_alone",
            Setup::L2Nested => "l2_nested_paging",
            Setup::L2Shadow => "l2_shadow_paging",
        }
    }

    fn describe(self, vendor: Vendor) -> String {
        let (hv, nested) = match vendor {
            Vendor::Intel => ("a VT-x", "EPT"),
            Vendor::Amd => ("an AMD-V", "nested page tables"),
        };
        match self {
            Setup::Native => "the work is the kernel itself, no hypervisor".into(),
            Setup::L1Alone => format!("{hv} hypervisor does the work itself, in root mode"),
            Setup::L2Nested => format!("{hv} hypervisor runs the work as its guest, {nested}"),
            Setup::L2Shadow => {
                format!("{hv} hypervisor runs the work as its guest, shadow paging in software")
            }
        }
    }
}

/// The guest program of a run on `vendor`'s hypervisor.
pub fn program(vendor: Vendor, setup: Setup, w: Work) -> Program {
    use hv::Paging::{Nested, Shadow};
    match (vendor, setup) {
        (_, Setup::Native) => native(w),
        (Vendor::Amd, Setup::L1Alone) => svm::hypervisor_alone(w),
        (Vendor::Amd, Setup::L2Nested) => svm::hypervisor(w, Nested),
        (Vendor::Amd, Setup::L2Shadow) => svm::hypervisor(w, Shadow),
        (Vendor::Intel, Setup::L1Alone) => vmx::hypervisor_alone(w),
        (Vendor::Intel, Setup::L2Nested) => vmx::hypervisor(w, Nested),
        (Vendor::Intel, Setup::L2Shadow) => vmx::hypervisor(w, Shadow),
    }
}

/// The work as the kernel itself.
fn native(w: Work) -> Program {
    let mut p = Program::new();
    p.body64(move |a, rt| work::run_here(a, rt, &w, "native:"));
    p
}

/// One finished run.
pub struct Run {
    /// How it ran.
    pub setup: Setup,
    /// The machine, stopped.
    pub machine: Machine,
    /// Why it stopped.
    pub stop: Stop,
    /// Its COM1 output.
    pub serial: String,
}

impl Run {
    /// Its `--stats` report.
    pub fn report(&self) -> Report<'_> {
        Report::of(&self.machine, self.stop.exit_status(), self.stop.describe())
    }

    /// True if the guest finished and its checksum was right.
    pub fn passed(&self) -> bool {
        self.stop == Stop::DebugExit(0)
    }
}

/// The machine configuration of the demo on `cpu`, with `measure`'s cost
/// model and caches.
pub fn config(cpu: &str, measure: &MeasureOptions) -> Result<MachineConfig, String> {
    let model =
        CpuModel::preset(cpu).ok_or_else(|| format!("unknown CPU model '{cpu}' (intel or amd)"))?;
    let mut c = MachineConfig {
        model,
        mem_bytes: hv::MEM_BYTES,
        max_insns: Some(500_000_000),
        ..MachineConfig::default()
    };
    measure.configure(&mut c).map_err(|e| e.0)?;
    Ok(c)
}

/// Builds and runs one setup of `w`.
pub fn run_one(
    setup: Setup,
    w: Work,
    config: &MachineConfig,
    measure: Option<&MeasureOptions>,
) -> Result<Run, String> {
    let built = program(config.model.vendor, setup, w).build()?;
    let mut m = Machine::new(config.clone());
    if let Some(o) = measure {
        o.attach(&mut m).map_err(|e| e.0)?;
    }
    crate::loader::multiboot::boot(&mut m, &built.image, "demo", &[]).map_err(|e| e.0)?;
    let stop = m.run();
    if let Some(o) = measure {
        let _ = o;
        m.trace
            .finish()
            .map_err(|e| format!("writing the trace failed: {e}"))?;
    }
    let serial = String::from_utf8_lossy(&m.take_serial()).into_owned();
    Ok(Run {
        setup,
        machine: m,
        stop,
        serial,
    })
}

/// The runs of a scenario: (section title, work, setups).
pub fn plan(s: Scenario) -> Vec<(&'static str, Work, Vec<Setup>)> {
    let nested = (
        "nested: the same work native, in the L1 hypervisor, and in its L2 guest",
        NESTED_WORK,
        vec![Setup::Native, Setup::L1Alone, Setup::L2Nested],
    );
    let shadow = |switch| {
        (
            if switch {
                "shadow vs nested paging, with a context switch (MOV CR3) every 16,384 iterations"
            } else {
                "shadow vs nested paging, one address space"
            },
            shadow_work(switch),
            vec![Setup::Native, Setup::L2Nested, Setup::L2Shadow],
        )
    };
    match s {
        Scenario::Nested => vec![nested],
        Scenario::Shadow => vec![shadow(false), shadow(true)],
        Scenario::All => vec![nested, shadow(false), shadow(true)],
    }
}

/// Runs the demo and returns the exit status (0 when every run passed).
pub fn run(o: &DemoOptions) -> i32 {
    let config = match config(&o.cpu, &o.measure) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nestemu: {e}");
            return EXIT_USAGE;
        }
    };
    let start = std::time::Instant::now();
    let mut out = std::io::stdout();
    let mut json = BTreeMap::new();
    let mut all_passed = true;
    let mut insns = 0;
    let mut traced = false;
    for (section, w, setups) in plan(o.scenario) {
        let _ = writeln!(out, "== {section}");
        let mut runs = Vec::new();
        for (k, setup) in setups.iter().enumerate() {
            let _ = writeln!(
                out,
                "-- run {}/{}: {} ({})",
                k + 1,
                setups.len(),
                setup.title(),
                setup.describe(config.model.vendor)
            );
            let trace = (*setup == Setup::L2Nested && !traced).then_some(&o.measure);
            traced |= trace.is_some();
            let r = match run_one(*setup, w, &config, trace) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("nestemu: {e}");
                    return EXIT_USAGE;
                }
            };
            let _ = write!(out, "{}", r.serial);
            if !r.passed() {
                let _ = writeln!(out, "nestemu: the run ended with {}", r.stop.describe());
                all_passed = false;
            }
            if o.measure.report {
                let _ = write!(out, "{}", crate::report::summary(&r.report()));
            }
            insns += r.machine.stats.instructions;
            runs.push(r);
        }
        let _ = write!(out, "\n{}", compare(&runs, &w));
        let mut section_json = BTreeMap::new();
        for r in &runs {
            section_json.insert(
                r.setup.key(),
                serde_json::to_value(r.report()).unwrap_or_default(),
            );
        }
        json.insert(section_key(&w, o.scenario), section_json);
    }
    let _ = write!(out, "{NEXT}");
    if let Some(path) = &o.stats {
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("nestemu: cannot write stats file '{path}': {e}");
            return EXIT_USAGE;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "nestemu demo: {} instructions in {:.2} s on this host ({:.0} MIPS; the only line that varies between runs)",
        num(insns),
        secs,
        insns as f64 / secs / 1e6
    );
    if all_passed {
        0
    } else {
        1
    }
}

/// The `--stats` key of a section.
fn section_key(w: &Work, s: Scenario) -> String {
    match (s, w.switch_every) {
        (Scenario::Nested, _) => "nested".into(),
        (_, None) if *w == NESTED_WORK => "nested".into(),
        (_, None) => "shadow_one_address_space".into(),
        (_, Some(_)) => "shadow_context_switches".into(),
    }
}

/// The side-by-side table of a section's runs.
pub fn compare(runs: &[Run], w: &Work) -> String {
    let reports: Vec<Report<'_>> = runs.iter().map(Run::report).collect();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "The work: {} iterations over {} MiB in 4-KiB pages{}; modelled cycles, cost model '{}'.",
        num(w.iterations()),
        w.data_bytes >> 20,
        match w.switch_every {
            Some(n) => format!(", MOV CR3 every {} iterations", num(n as u64)),
            None => String::new(),
        },
        reports.first().map_or("", |r| r.cost_model)
    );
    // The label column fits the longest exit reason (VT-x's names are long).
    let width = reports
        .iter()
        .flat_map(|r| r.vmexits.by_reason.keys())
        .map(|k| k.len() + 2)
        .max()
        .unwrap_or(0)
        .max(24);
    let head = |o: &mut String, title: &str| {
        let _ = write!(o, "{title:<width$}");
        for r in runs {
            let _ = write!(o, " {:>19}", r.setup.title());
        }
        o.push('\n');
    };
    let row = |o: &mut String, name: &str, vals: &mut dyn Iterator<Item = String>| {
        let _ = write!(o, "{name:<width$}");
        for v in vals {
            let _ = write!(o, " {v:>19}");
        }
        o.push('\n');
    };
    head(&mut o, "");
    let base = reports.first().map_or(1, |r| r.cycles.max(1));
    row(
        &mut o,
        "modelled cycles",
        &mut reports.iter().map(|r| num(r.cycles)),
    );
    row(
        &mut o,
        "  relative to native",
        &mut reports
            .iter()
            .map(|r| format!("x{:.2}", r.cycles as f64 / base as f64)),
    );
    row(
        &mut o,
        "  of which in L2",
        &mut reports.iter().map(|r| num(r.levels.l2.total.cycles)),
    );
    let names: Vec<&str> = category_rows(&reports[0].cycles_by_category)
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for (k, name) in names.iter().enumerate() {
        let vals: Vec<u64> = reports
            .iter()
            .map(|r| category_rows(&r.cycles_by_category)[k].1)
            .collect();
        if vals.iter().all(|&v| v == 0) {
            continue;
        }
        row(
            &mut o,
            &format!("  {name}"),
            &mut reports
                .iter()
                .zip(&vals)
                .map(|(r, &v)| format!("{} {:>6}", num(v), pct(v, r.cycles))),
        );
    }
    row(
        &mut o,
        "instructions",
        &mut reports.iter().map(|r| num(r.instructions)),
    );
    row(
        &mut o,
        "  of which in L2",
        &mut reports.iter().map(|r| num(r.levels.l2.total.instructions)),
    );
    row(
        &mut o,
        "VM exits",
        &mut reports.iter().map(|r| num(r.vmexits.total)),
    );
    let mut reasons: Vec<&str> = reports
        .iter()
        .flat_map(|r| r.vmexits.by_reason.keys())
        .collect();
    reasons.sort();
    reasons.dedup();
    for reason in reasons {
        row(
            &mut o,
            &format!("  {reason}"),
            &mut reports
                .iter()
                .map(|r| num(r.vmexits.by_reason.get(reason).copied().unwrap_or(0))),
        );
    }
    row(
        &mut o,
        "page walks",
        &mut reports.iter().map(|r| num(r.walks.count)),
    );
    row(
        &mut o,
        "  references",
        &mut reports.iter().map(|r| num(r.walks.refs)),
    );
    row(
        &mut o,
        "    guest dimension",
        &mut reports.iter().map(|r| num(r.walks.guest_refs)),
    );
    row(
        &mut o,
        "    nested dimension",
        &mut reports.iter().map(|r| num(r.walks.nested_refs)),
    );
    row(
        &mut o,
        "  references per walk",
        &mut reports
            .iter()
            .map(|r| format!("{:.2}", r.walks.refs as f64 / r.walks.count.max(1) as f64)),
    );
    row(
        &mut o,
        "  most in one walk",
        &mut reports
            .iter()
            .map(|r| (r.walks.refs_per_walk.len().saturating_sub(1)).to_string()),
    );
    row(
        &mut o,
        "TLB hit rate",
        &mut reports
            .iter()
            .map(|r| format!("{:.2}%", r.tlb.hit_rate() * 100.0)),
    );
    for r in reports.iter().zip(runs) {
        let (rep, run) = r;
        if rep.levels.l2.total.walks.nested_refs > 0 {
            let _ = writeln!(
                o,
                "\nreferences per walk in the L2 guest ({}): a cold 4-over-4 walk makes 24",
                run.setup.title()
            );
            histogram(&mut o, &rep.levels.l2.total.walks.refs_per_walk);
        }
    }
    o.push('\n');
    o
}

/// What to try next, after the tables.
pub const NEXT: &str = "\
Try: nestemu demo --caches none        (no TLBs or paging-structure caches: every walk cold)
     nestemu demo --scenario shadow    (nested paging against shadow paging done by the L1)
     nestemu demo --report             (each run's full report)
     nestemu explain-walk --demo nested --address 0x40123000 --at-insn 1000000 --svg walk.svg
";
