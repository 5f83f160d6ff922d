//! `nestemu explain-walk`: a 2-D page walk shown step by step, as text on
//! stdout and optionally an SVG picture. Two sources:
//!
//! - a made-up scenario (the default): guest tables over EPT or NPT built
//!   for the purpose, walked cold or warm ([`crate::explain::explain`]);
//! - a real run (`--kernel FILE` and the run options, or `--demo SETUP`, a
//!   run of the demo): the kernel runs to its end, or for `--at-insn N`
//!   instructions, and the walk of `--address` is explained in the
//!   translation context it stopped in, through the machine's caches as it
//!   left them ([`crate::explain::run`]).

use super::{parse_number, prepare, run_machine, Command, RunOptions, UsageError, EXIT_USAGE};
use crate::explain::run::{explain_machine, RunWalk, Which};
use crate::explain::{explain, Explained, NestedKind, Scenario};

/// Options of `explain-walk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainOptions {
    /// The linear address.
    pub address: u64,
    /// Guest levels (4 or 5).
    pub guest_levels: u8,
    /// `ept`, `npt` or `none`.
    pub nested: String,
    /// Nested levels (4 or 5).
    pub nested_levels: u8,
    /// Warm the caches first.
    pub warm: bool,
    /// `intel`, `amd` or `none` (no caches).
    pub caches: String,
    /// Write an SVG picture here.
    pub svg: Option<String>,
    /// A real run: the kernel and its options.
    pub run: Option<RunOptions>,
    /// In a real run: the context to explain in.
    pub level: Which,
    /// In a real run: empty caches instead of the run's.
    pub cold: bool,
    /// In a real run: `read`, `write` or `fetch`.
    pub access: String,
    /// A run of the demo's nested scenario instead of a kernel file.
    pub demo: Option<crate::demo::Setup>,
    /// In a real run: stop after this many instructions.
    pub at_insn: Option<u64>,
    /// For `--demo`: the CPU model.
    pub cpu: String,
    /// In a real run: `--cost` and `--caches`.
    pub measure: super::measure::MeasureOptions,
}

/// Parses the arguments after `explain-walk`.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let mut o = ExplainOptions {
        address: 0x0000_7f12_3456_7000,
        guest_levels: 4,
        nested: "ept".into(),
        nested_levels: 4,
        warm: false,
        caches: "intel".into(),
        svg: None,
        run: None,
        level: Which::Current,
        cold: false,
        access: "read".into(),
        demo: None,
        at_insn: None,
        measure: Default::default(),
        cpu: "intel".into(),
    };
    let mut r = RunOptions {
        cpu: "intel".into(),
        mem_mib: 256,
        ..Default::default()
    };
    let mut caches_given = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        let mut num = |name: &str| -> Result<u64, UsageError> { parse_number(name, &value(name)?) };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--address" => o.address = num("--address")?,
            "--guest-levels" => o.guest_levels = num("--guest-levels")? as u8,
            "--nested" => o.nested = value("--nested")?,
            "--nested-levels" => o.nested_levels = num("--nested-levels")? as u8,
            "--warm" => o.warm = true,
            "--caches" => {
                o.caches = value("--caches")?;
                caches_given = true;
            }
            "--svg" => o.svg = Some(value("--svg")?),
            // A real run.
            "--kernel" => r.kernel = value("--kernel")?,
            "--flat" => r.flat = Some(num("--flat")?),
            "--real-mode" => r.real_mode = true,
            "--cpu" => r.cpu = value("--cpu")?,
            "--mem" => r.mem_mib = num("--mem")?,
            "--append" => r.append = value("--append")?,
            "--initrd" => r.initrd = Some(value("--initrd")?),
            "--at-insn" | "--max-insns" => o.at_insn = Some(num("--at-insn")?),
            "--cost" => o.measure.cost = Some(value("--cost")?),
            "--level" => {
                o.level = match value("--level")?.as_str() {
                    "L1" | "l1" => Which::Current,
                    "L2" | "l2" => Which::LastGuest,
                    other => {
                        return Err(UsageError(format!(
                            "--level must be L1 or L2, not '{other}'"
                        )))
                    }
                }
            }
            "--cold" => o.cold = true,
            "--demo" => {
                let v = value("--demo")?;
                o.demo = Some(crate::demo::Setup::parse(&v).ok_or_else(|| {
                    UsageError(format!(
                        "--demo must be native, l1, nested or shadow, not '{v}'"
                    ))
                })?);
            }
            "--access" => o.access = value("--access")?,
            _ => {
                return Err(UsageError(format!(
                    "unknown option '{arg}' for 'explain-walk' (try --help)"
                )))
            }
        }
    }
    if !matches!(o.nested.as_str(), "ept" | "npt" | "none") {
        return Err(UsageError(format!(
            "--nested must be ept, npt or none, not '{}'",
            o.nested
        )));
    }
    if !matches!(o.caches.as_str(), "intel" | "amd" | "none") {
        return Err(UsageError(format!(
            "--caches must be intel, amd or none, not '{}'",
            o.caches
        )));
    }
    if !matches!(o.access.as_str(), "read" | "write" | "fetch") {
        return Err(UsageError(format!(
            "--access must be read, write or fetch, not '{}'",
            o.access
        )));
    }
    if caches_given {
        o.measure.caches = Some(o.caches.clone());
    }
    let real_run = !r.kernel.is_empty() || o.demo.is_some();
    o.cpu = r.cpu.clone();
    if !r.kernel.is_empty() {
        if o.demo.is_some() {
            return Err(UsageError("--kernel and --demo exclude each other".into()));
        }
        if crate::cpu::cpuid::CpuModel::preset(&r.cpu).is_none() {
            return Err(UsageError(format!(
                "unknown CPU model '{}' (intel or amd)",
                r.cpu
            )));
        }
        r.max_insns = o.at_insn;
        r.measure = o.measure.clone();
        o.run = Some(r);
    } else if (RunOptions {
        cpu: "intel".into(),
        ..r.clone()
    }) != (RunOptions {
        cpu: "intel".into(),
        mem_mib: 256,
        ..Default::default()
    }) {
        return Err(UsageError(
            "run options for explain-walk need --kernel FILE".into(),
        ));
    }
    if !real_run && (o.at_insn.is_some() || o.measure.cost.is_some() || o.cold) {
        return Err(UsageError(
            "--at-insn, --cost and --cold need a run: --kernel FILE or --demo SETUP".into(),
        ));
    }
    Ok(Command::ExplainWalk(Box::new(o)))
}

/// Runs `explain-walk`: the text on stdout, the SVG to a file.
pub fn run(o: &ExplainOptions) -> i32 {
    let e = match (&o.run, o.demo) {
        (Some(r), _) => prepare(r).map_err(|e| e.0).and_then(|m| explain_run(o, m)),
        (None, Some(setup)) => demo_machine(o, setup).and_then(|m| explain_run(o, m)),
        (None, None) => explain(&scenario(o)),
    };
    let e = match e {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("nestemu: {msg}");
            return EXIT_USAGE;
        }
    };
    print!("{}", crate::explain::text::render(&e));
    if let Some(path) = &o.svg {
        if let Err(err) = std::fs::write(path, crate::explain::svg::render(&e)) {
            eprintln!("nestemu: cannot write '{path}': {err}");
            return EXIT_USAGE;
        }
    }
    0
}

/// The made-up scenario of the options.
impl ExplainOptions {
    /// The made-up walk these options describe (the scenario form, without
    /// `--kernel` or `--demo`).
    pub fn scenario(&self) -> Scenario {
        scenario(self)
    }
}

fn scenario(o: &ExplainOptions) -> Scenario {
    Scenario {
        address: o.address,
        guest_levels: o.guest_levels,
        nested: match o.nested.as_str() {
            "npt" => NestedKind::Npt,
            "none" => NestedKind::None,
            _ => NestedKind::Ept,
        },
        nested_levels: o.nested_levels,
        warm: o.warm,
        tlb: mmu::TlbConfig::preset(&o.caches).unwrap_or_else(mmu::TlbConfig::intel),
    }
}

/// The machine of a demo run (`--demo`): the nested scenario's work in
/// `setup`, on the demo's configuration.
fn demo_machine(o: &ExplainOptions, setup: crate::demo::Setup) -> Result<crate::Machine, String> {
    let mut config = crate::demo::config(&o.cpu, &o.measure)?;
    config.max_insns = o.at_insn.or(config.max_insns);
    let built =
        crate::demo::program(config.model.vendor, setup, crate::demo::NESTED_WORK).build()?;
    let mut m = crate::Machine::new(config);
    crate::loader::multiboot::boot(&mut m, &built.image, "demo", &[]).map_err(|e| e.0)?;
    Ok(m)
}

/// Runs the machine (its COM1 output is dropped) and explains the walk.
fn explain_run(o: &ExplainOptions, mut m: crate::Machine) -> Result<Explained, String> {
    let stop = run_machine(&mut m, &mut std::io::sink()).map_err(|e| e.to_string())?;
    eprintln!(
        "nestemu: ran {} instructions: {}",
        crate::report::num(m.stats.instructions),
        stop.describe()
    );
    let access = match o.access.as_str() {
        "write" => mmu::AccessKind::Write,
        "fetch" => mmu::AccessKind::Execute,
        _ => mmu::AccessKind::Read,
    };
    explain_machine(
        &mut m,
        &RunWalk {
            address: o.address,
            access,
            cold: o.cold,
            which: o.level,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_real_run() {
        let Ok(Command::ExplainWalk(o)) = parse(&args(
            "--kernel k.elf --cpu amd --address 0x40001000 --at-insn 5000 --level L2 --caches none",
        )) else {
            panic!("not explain-walk")
        };
        let r = o.run.clone().unwrap();
        assert_eq!(r.kernel, "k.elf");
        assert_eq!(r.max_insns, Some(5000));
        assert_eq!(r.measure.caches.as_deref(), Some("none"));
        let Ok(Command::ExplainWalk(d)) = parse(&args("--demo nested --at-insn 9 --level L2"))
        else {
            panic!("not explain-walk")
        };
        assert_eq!(d.demo, Some(crate::demo::Setup::L2Nested));
        assert_eq!(d.at_insn, Some(9));
        assert_eq!(o.level, Which::LastGuest);
        assert_eq!(o.address, 0x4000_1000);
    }

    #[test]
    fn refuses_run_options_without_a_kernel() {
        assert!(parse(&args("--at-insn 5")).is_err());
        assert!(parse(&args("--cold")).is_err());
        assert!(parse(&args("--demo bogus")).is_err());
        assert!(parse(&args("--demo nested --kernel k")).is_err());
        assert!(parse(&args("--kernel k --level L3")).is_err());
        assert!(parse(&args("--access jump")).is_err());
        let Ok(Command::ExplainWalk(o)) = parse(&args("--warm --caches amd")) else {
            panic!("not explain-walk")
        };
        assert!(o.run.is_none() && o.demo.is_none() && o.warm);
    }
}
