//! The `nestemu` command line (DESIGN.md, "Command line"): parsing, running a
//! kernel, the exit-status contract, serial output and the `--stats` report.
//! Bad input gets one line on stderr and exit status 2. QEMU's spellings
//! (`nestemu -kernel FILE ...`) are handled by [`qemu`]; the measuring
//! options (`--cost`, `--report`, `--trace`, ...) are parsed and applied by
//! [`measure`], `explain-walk` by [`explain`].

pub mod explain;
pub mod measure;
pub mod qemu;
pub mod qemu_cpu;

use crate::cpu::cpuid::CpuModel;
use crate::event::Stop;
use crate::loader::{multiboot, LoadError};
use crate::machine::{Machine, MachineConfig};
use crate::stats::Report;
use std::io::Write;

/// Exit status for bad input or usage.
pub const EXIT_USAGE: i32 = 2;

/// The help text.
pub const HELP: &str = "\
QEMU emulator version 8.2.0 (nestemu 0.1.0)
nestemu: a deterministic x86-64 machine whose CPU implements VT-x and AMD-V

USAGE:
    nestemu                         run the built-in demo
    nestemu demo [--cpu intel|amd] [--scenario nested|shadow|all] [MEASURING]
                                    run the built-in demo
    nestemu run --kernel FILE [OPTIONS]
    nestemu -kernel FILE [QEMU OPTIONS]
    nestemu cost-presets            print the cost model's table and its sources
    nestemu explain-walk [--address LA] [--guest-levels 4|5] [--nested ept|npt|none]
                 [--nested-levels 4|5] [--caches intel|amd|none] [--warm] [--svg FILE]
                                    show a 2-D page walk step by step (text, and an
                                    SVG picture with --svg), in a made-up scenario
    nestemu explain-walk --kernel FILE [RUN OPTIONS] --address LA [--at-insn N]
                 [--level L1|L2] [--access read|write|fetch] [--cold] [--svg FILE]
                                    run FILE (to its end, or N instructions), then
                                    show the walk of LA in the context it stopped in
                                    (--level L2: the last guest context)
    nestemu explain-walk --demo native|l1|nested|shadow --address LA [...]
                                    the same in a run of the demo's work

RUN OPTIONS:
    --kernel FILE     Multiboot kernel (ELF32, ELF64 or a.out kludge), as QEMU -kernel
    --flat ADDR       load FILE as a flat binary at ADDR instead (entered in 32-bit
                      protected mode like Multiboot; with --real-mode, at 0:ADDR in
                      real mode)
    --real-mode       enter a flat binary in real mode
    --cpu MODEL       intel (default; VT-x) or amd (AMD-V)
    --mem MIB         RAM in MiB (default 256)
    --append STRING   kernel command line (after the kernel path, as QEMU passes it)
    --initrd FILE     passed as the single Multiboot module
    --smp N           N vCPUs (1-64; default 1): the bootstrap processor runs the
                      kernel, the others wait for INIT-SIPI-SIPI
    --quantum CYCLES  SMP scheduling quantum in modelled cycles (default 10000):
                      vCPUs take turns, deterministically, at block boundaries
    --max-insns N     stop after N instructions (exit status 124); events delivered
                      and every 4096 iterations of a REP string instruction count
                      toward N, so no guest can escape the limit
    --stats FILE      write run statistics as JSON
    --serial FILE     write COM1 output to FILE instead of stdout
    --snapshot FILE   save the whole machine to FILE when the run stops, or with
                      --snapshot-at N at the first block boundary at or after
                      step N (the run then goes on)
    --resume FILE     continue the machine saved in FILE instead of booting a
                      kernel (--max-insns, --stats, --serial, --snapshot,
                      --report and --trace apply; counters, the cost model and
                      the cache sizes go on from the snapshot's)

QEMU-COMPATIBLE OPTIONS (so QEMU test runners can run nestemu):
    -kernel FILE -append STR -initrd FILE -m SIZE (default 128M)
    -smp [cpus=]N[,maxcpus=N,sockets=S,cores=C,threads=T]   up to 64 vCPUs
    -cpu MODEL[,+feature,-feature,phys-bits=N,host-phys-bits]
                      max, host, qemu64, IvyBridge, Skylake-Server, ...; see -cpu help
    -serial stdio|file:PATH|null|none   -nographic   -nodefaults   -no-reboot
    -display none   -vnc none   -name NAME   -machine pc,accel=...   -rtc base=DATE
    -device isa-debug-exit,iobase=0xf4,iosize=0x4   -device pc-testdev
    -device pci-testdev   -device help   -global kvm-pit.lost_tick_policy=discard
    --max-insns N   --stats FILE   --quantum CYCLES (nestemu extensions)
    Anything else is refused with a message naming it (status 2).

EXIT STATUS:
    (v << 1) | 1   the guest wrote v to isa-debug-exit (port 0xf4)
    0              the guest powered off or asked for a reset (or halted with
                   nothing to wake it); in QEMU mode with -no-reboot also a
                   triple fault
    2              bad input or usage
    4              triple fault / shutdown
    6              an instruction nestemu does not implement yet (named on stderr)
    124            instruction limit reached
";

/// Parsed `run` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Kernel path.
    pub kernel: String,
    /// Flat-binary load address.
    pub flat: Option<u64>,
    /// Enter a flat binary in real mode.
    pub real_mode: bool,
    /// CPU preset.
    pub cpu: String,
    /// RAM in MiB.
    pub mem_mib: u64,
    /// `--append`.
    pub append: String,
    /// `--initrd`.
    pub initrd: Option<String>,
    /// `--max-insns`.
    pub max_insns: Option<u64>,
    /// `--stats`.
    pub stats: Option<String>,
    /// `--serial`.
    pub serial: Option<String>,
    /// `--cost`, `--report`, `--trace`, ...
    pub measure: measure::MeasureOptions,
    /// `--snapshot`.
    pub snapshot: Option<String>,
    /// `--snapshot-at`.
    pub snapshot_at: Option<u64>,
    /// `--resume`.
    pub resume: Option<String>,
    /// `--smp N`: vCPUs (0 in a default value means 1).
    pub smp: u32,
    /// `--quantum CYCLES`.
    pub quantum: Option<u64>,
}

/// A command.
#[derive(Clone, Debug, PartialEq, Eq)]
// Parsed once per process: a box would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// `nestemu run ...`.
    Run(RunOptions),
    /// `nestemu demo [--cpu ...] [--scenario ...]`.
    Demo(crate::demo::DemoOptions),
    /// `nestemu cost-presets`.
    CostPresets,
    /// `nestemu explain-walk ...`.
    ExplainWalk(Box<explain::ExplainOptions>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// A usage error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

pub(crate) fn parse_number(flag: &str, v: &str) -> Result<u64, UsageError> {
    let r = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    r.map_err(|_| UsageError(format!("{flag} needs a number, got '{v}'")))
}

/// Parses a `--quantum` value: modelled cycles, at least 1.
pub(crate) fn parse_quantum(v: &str) -> Result<u64, UsageError> {
    match parse_number("--quantum", v)? {
        0 => Err(UsageError("--quantum must be at least 1 cycle".into())),
        n => Ok(n),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let mut it = args.iter().peekable();
    let sub = match it.peek().map(|s| s.as_str()) {
        None => return Ok(Command::Demo(crate::demo::DemoOptions::default())),
        Some("cost-presets") => return Ok(Command::CostPresets),
        Some("-h" | "--help" | "-help" | "help") => return Ok(Command::Help),
        Some("-V" | "--version" | "-version") => return Ok(Command::Version),
        Some("explain-walk") => return explain::parse(&args[1..]),
        Some("run") | Some("demo") => it.next().cloned().unwrap_or_default(),
        Some(other) if other.starts_with('-') => "run".to_string(),
        Some(other) => {
            return Err(UsageError(format!(
                "unknown command '{other}' (try --help)"
            )))
        }
    };
    let mut o = RunOptions {
        cpu: "intel".into(),
        mem_mib: 256,
        ..Default::default()
    };
    let mut scenario = None;
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
        if o.measure.parse_flag(&flag, &mut value)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--cpu" => o.cpu = value("--cpu")?,
            "--scenario" if sub == "demo" => scenario = Some(value("--scenario")?),
            "--kernel" if sub == "run" => o.kernel = value("--kernel")?,
            "--flat" if sub == "run" => o.flat = Some(parse_number("--flat", &value("--flat")?)?),
            "--real-mode" if sub == "run" => o.real_mode = true,
            "--mem" if sub == "run" => o.mem_mib = parse_number("--mem", &value("--mem")?)?,
            "--append" if sub == "run" => o.append = value("--append")?,
            "--initrd" if sub == "run" => o.initrd = Some(value("--initrd")?),
            "--max-insns" => {
                o.max_insns = Some(parse_number("--max-insns", &value("--max-insns")?)?)
            }
            "--stats" => o.stats = Some(value("--stats")?),
            "--serial" => o.serial = Some(value("--serial")?),
            "--snapshot" if sub == "run" => o.snapshot = Some(value("--snapshot")?),
            "--snapshot-at" if sub == "run" => {
                o.snapshot_at = Some(parse_number("--snapshot-at", &value("--snapshot-at")?)?)
            }
            "--resume" if sub == "run" => o.resume = Some(value("--resume")?),
            "--smp" if sub == "run" => {
                let v = value("--smp")?;
                let n = parse_number("--smp", &v)?;
                let topo = crate::smp::topology::Topology::flat(n.min(u32::MAX as u64) as u32);
                if n == 0 || n > u32::MAX as u64 {
                    return Err(UsageError(format!("--smp {v}: needs 1 or more CPUs")));
                }
                topo.validate()
                    .map_err(|e| UsageError(format!("--smp {v}: {e}")))?;
                o.smp = n as u32;
            }
            "--quantum" if sub == "run" => o.quantum = Some(parse_quantum(&value("--quantum")?)?),
            _ => {
                return Err(UsageError(format!(
                    "unknown option '{arg}' for '{sub}' (try --help)"
                )))
            }
        }
    }
    o.measure.validate()?;
    if sub == "demo" {
        return crate::demo::DemoOptions::new(o.cpu, scenario, o.stats, o.measure)
            .map(Command::Demo)
            .map_err(UsageError);
    }
    if o.snapshot_at.is_some() && o.snapshot.is_none() {
        return Err(UsageError("--snapshot-at needs --snapshot FILE".into()));
    }
    if o.resume.is_some() {
        let fixed = [
            ("--kernel", !o.kernel.is_empty()),
            ("--flat", o.flat.is_some()),
            ("--real-mode", o.real_mode),
            ("--mem", o.mem_mib != 256),
            ("--cpu", o.cpu != "intel"),
            ("--append", !o.append.is_empty()),
            ("--initrd", o.initrd.is_some()),
            ("--cost", o.measure.cost.is_some()),
            ("--caches", o.measure.caches.is_some()),
            ("--smp", o.smp > 1),
            ("--quantum", o.quantum.is_some()),
        ];
        if let Some((flag, _)) = fixed.iter().find(|f| f.1) {
            return Err(UsageError(format!(
                "{flag} cannot be given with --resume: the snapshot holds the machine"
            )));
        }
        return Ok(Command::Run(o));
    }
    if o.kernel.is_empty() {
        return Err(UsageError("run needs --kernel FILE".into()));
    }
    if o.mem_mib == 0 {
        return Err(UsageError("--mem must be at least 1 MiB".into()));
    }
    if o.mem_mib > 1 << 20 {
        return Err(UsageError(format!(
            "--mem {} MiB is more than the 1 TiB nestemu supports",
            o.mem_mib
        )));
    }
    if CpuModel::preset(&o.cpu).is_none() {
        return Err(UsageError(format!(
            "unknown CPU model '{}' (intel or amd)",
            o.cpu
        )));
    }
    Ok(Command::Run(o))
}

/// Reads a host file of at most `limit` bytes (the guest RAM it must fit).
fn read_file(path: &str, what: &str, limit: u64) -> Result<Vec<u8>, LoadError> {
    let len = std::fs::metadata(path)
        .map_err(|e| LoadError(format!("cannot read {what} '{path}': {e}")))?
        .len();
    if len > limit {
        return Err(LoadError(format!(
            "{what} '{path}' is {len} bytes, more than the {limit} bytes of guest RAM it must fit in"
        )));
    }
    std::fs::read(path).map_err(|e| LoadError(format!("cannot read {what} '{path}': {e}")))
}

/// Builds and loads the machine for `o`.
pub fn prepare(o: &RunOptions) -> Result<Machine, LoadError> {
    let model = CpuModel::preset(&o.cpu)
        .ok_or_else(|| LoadError(format!("unknown CPU model '{}'", o.cpu)))?;
    let mem_bytes = o.mem_mib << 20;
    let image = read_file(&o.kernel, "kernel", mem_bytes)?;
    let mut platform = crate::devices::PlatformConfig {
        cpus: o.smp.max(1),
        ..Default::default()
    };
    if let Some(q) = o.quantum {
        platform.quantum = q;
    }
    let mut config = MachineConfig {
        model,
        mem_bytes,
        max_insns: o.max_insns,
        platform,
        ..Default::default()
    };
    o.measure.configure(&mut config)?;
    let mut m = Machine::try_new(config).map_err(LoadError)?;
    o.measure.attach(&mut m)?;
    if let Some(addr) = o.flat {
        if image.is_empty() {
            return Err(LoadError("the kernel file is empty".into()));
        }
        crate::loader::check_ram(&m, addr, image.len() as u64, "the flat binary")?;
        m.load_phys(addr, &image);
        if o.real_mode {
            m.enter_real(addr);
        } else {
            let gdt = (addr + image.len() as u64 + 0xfff) & !0xfff;
            crate::loader::check_ram(&m, gdt, 32, "the boot GDT")?;
            m.enter_protected_flat(addr, gdt);
        }
        return Ok(m);
    }
    let mut modules = Vec::new();
    if let Some(path) = &o.initrd {
        modules.push(multiboot::Module {
            string: path.clone(),
            data: read_file(path, "initrd", mem_bytes)?,
        });
    }
    let cmdline = if o.append.is_empty() {
        o.kernel.clone()
    } else {
        format!("{} {}", o.kernel, o.append)
    };
    multiboot::boot(&mut m, &image, &cmdline, &modules)?;
    Ok(m)
}

/// Runs a loaded machine, streaming COM1 to `serial`, and returns the stop.
pub fn run_machine(m: &mut Machine, serial: &mut dyn Write) -> std::io::Result<Stop> {
    loop {
        if let Some(stop) = m.run_slices(4096) {
            serial.write_all(&m.take_serial())?;
            serial.flush()?;
            return Ok(stop);
        }
        if !m.dev.com1.output.is_empty() {
            serial.write_all(&m.take_serial())?;
        }
    }
}

/// Writes the `--stats` report.
pub fn write_stats(m: &Machine, stop: &Stop, path: &str) -> std::io::Result<()> {
    let report = Report::of(m, stop.exit_status(), stop.describe());
    let mut text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// Runs `o` and returns the exit status.
pub fn run(o: &RunOptions) -> i32 {
    let prepared = match &o.resume {
        Some(path) => crate::snapshot::read(path).map_err(|e| e.to_string()),
        None => prepare(o).map_err(|e| e.to_string()),
    };
    let mut m = match prepared {
        Ok(m) => m,
        Err(e) => {
            eprintln!("nestemu: {e}");
            return EXIT_USAGE;
        }
    };
    if o.resume.is_some() {
        if o.max_insns.is_some() {
            m.config.max_insns = o.max_insns;
        }
        // The trace is output, not machine state: a resumed run starts its own.
        if let Err(e) = o.measure.attach(&mut m) {
            eprintln!("nestemu: {e}");
            return EXIT_USAGE;
        }
    }
    let mut serial: Box<dyn Write> = match &o.serial {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("nestemu: cannot create serial file '{path}': {e}");
                return EXIT_USAGE;
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let Some(path) = &o.snapshot else {
        return finish_measured(&mut m, &mut *serial, o.stats.as_deref(), &o.measure);
    };
    // Run to the snapshot point (or the end), save, and go on.
    let at = o.snapshot_at.unwrap_or(u64::MAX);
    let mut stop = None;
    while stop.is_none() && m.steps() < at {
        stop = m.run_slice();
        // Output before the snapshot goes out now, so a resumed run does
        // not print it again.
        let flush = m.dev.com1.output.len() >= 4096 || stop.is_some() || m.steps() >= at;
        if flush {
            if let Err(e) = serial
                .write_all(&m.take_serial())
                .and_then(|()| serial.flush())
            {
                eprintln!("nestemu: writing serial output failed: {e}");
                return EXIT_USAGE;
            }
        }
    }
    if let (Some(_), Some(at)) = (&stop, o.snapshot_at) {
        eprintln!("nestemu: the run stopped before step {at}; no snapshot written");
    } else if let Err(e) = crate::snapshot::write(&m, path) {
        eprintln!("nestemu: cannot write snapshot '{path}': {e}");
        return EXIT_USAGE;
    }
    match stop {
        Some(stop) => conclude(&mut m, stop, o.stats.as_deref(), &o.measure),
        None => finish_measured(&mut m, &mut *serial, o.stats.as_deref(), &o.measure),
    }
}

/// Runs a prepared machine to its end: serial, stderr message, stats, status.
pub fn finish(m: &mut Machine, serial: &mut dyn Write, stats: Option<&str>) -> i32 {
    finish_measured(m, serial, stats, &measure::MeasureOptions::default())
}

/// [`finish`], then the trace and `--report`.
pub fn finish_measured(
    m: &mut Machine,
    serial: &mut dyn Write,
    stats: Option<&str>,
    measuring: &measure::MeasureOptions,
) -> i32 {
    let stop = match run_machine(m, serial) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nestemu: writing serial output failed: {e}");
            return EXIT_USAGE;
        }
    };
    conclude(m, stop, stats, measuring)
}

/// The end of a run: the stop on stderr, the stats file, the trace and
/// `--report`, the exit status.
fn conclude(
    m: &mut Machine,
    stop: Stop,
    stats: Option<&str>,
    measuring: &measure::MeasureOptions,
) -> i32 {
    if !matches!(stop, Stop::DebugExit(_) | Stop::PowerOff) {
        eprintln!("nestemu: {}", stop.describe());
    }
    if let Some(path) = stats {
        if let Err(e) = write_stats(m, &stop, path) {
            eprintln!("nestemu: cannot write stats file '{path}': {e}");
            return EXIT_USAGE;
        }
    }
    if let Err(e) = measuring.finish(m, &stop) {
        eprintln!("nestemu: {e}");
        return EXIT_USAGE;
    }
    stop.exit_status()
}

/// The process entry point: returns the exit status.
pub fn main_with_args(args: &[String]) -> i32 {
    let first = args.first().map(String::as_str);
    let probe = matches!(
        first,
        Some("-h" | "--help" | "-help" | "-V" | "--version" | "-version")
    );
    if !probe && qemu::is_qemu_invocation(args) {
        return qemu::main(args);
    }
    match parse(args) {
        Ok(Command::Help) => {
            print!("{HELP}\n{}", measure::HELP);
            0
        }
        Ok(Command::CostPresets) => {
            print!("{}", crate::cost::CostModel::table_text());
            0
        }
        Ok(Command::Version) => {
            println!("{}", qemu::version_line());
            0
        }
        Ok(Command::Run(o)) => run(&o),
        Ok(Command::Demo(o)) => crate::demo::run(&o),
        Ok(Command::ExplainWalk(o)) => explain::run(&o),
        Err(UsageError(msg)) => {
            eprintln!("nestemu: {msg}");
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_run() {
        let c = parse(&args(
            "run --kernel k.elf --mem 64 --cpu amd --max-insns 0x100 --stats=s.json",
        ))
        .unwrap();
        let Command::Run(o) = c else {
            panic!("not run")
        };
        assert_eq!(o.kernel, "k.elf");
        assert_eq!(o.mem_mib, 64);
        assert_eq!(o.cpu, "amd");
        assert_eq!(o.max_insns, Some(256));
        assert_eq!(o.stats.as_deref(), Some("s.json"));
    }

    #[test]
    fn help_starts_with_the_version_line() {
        assert_eq!(HELP.lines().next(), Some(qemu::version_line().as_str()));
        assert!(HELP.contains("QEMU"));
    }

    #[test]
    fn bad_usage() {
        assert!(parse(&args("run --kernel k --mem 0")).is_err());
        assert!(parse(&args("run --kernel k --bogus")).is_err());
        assert!(parse(&args("run")).is_err());
        assert!(parse(&args("run --kernel k --cpu z80")).is_err());
        assert!(parse(&args("run --kernel k --mem lots")).is_err());
        assert_eq!(
            parse(&[]).unwrap(),
            Command::Demo(crate::demo::DemoOptions::default())
        );
        assert!(parse(&args("demo --scenario nope")).is_err());
        assert!(parse(&args("run --kernel k --trace-level L2")).is_err());
    }
}
