//! The QEMU-compatible command line, so test runners can point their QEMU
//! variable at `nestemu` (QEMU-COMPAT.md): `nestemu -kernel FILE -append STR
//! -initrd FILE -m MIB -smp N -cpu MODEL[,+f,-f] -serial stdio -display none
//! -nographic -vnc none -nodefaults -no-reboot -name X -machine accel=...
//! -device isa-debug-exit,iobase=0xf4,iosize=0x4 -device pc-testdev
//! -device pci-testdev -global kvm-pit.lost_tick_policy=discard`, and the
//! probes runners make (`--help`, `-h`, `-device '?'`).
//!
//! Anything not supported is refused with one line naming it and status 2:
//! silently accepting an option that changes results would make a run mean
//! something else than the runner thinks. Options that only matter to KVM or
//! to a display are accepted; those QEMU would honour differently are noted
//! on stderr in lines containing "warning" (which kvm-unit-tests' runner
//! tolerates next to a passing status).

use super::qemu_cpu;
use super::{write_stats, UsageError, EXIT_USAGE};
use crate::cpu::cpuid::CpuModel;
use crate::devices::{DebugExitPort, PlatformConfig};
use crate::event::Stop;
use crate::loader::{multiboot, LoadError};
use crate::machine::{Machine, MachineConfig};
use std::io::Write;

/// The QEMU version nestemu answers to: the interfaces modelled are those
/// of QEMU 8.2's `pc` machine.
pub const QEMU_VERSION: &str = "8.2.0";

/// The version line (`-version`, first line of `-h`).
pub fn version_line() -> String {
    format!(
        "QEMU emulator version {QEMU_VERSION} (nestemu {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Where COM1 output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serial {
    /// stdout (`-serial stdio`, or `-nographic`).
    Stdout,
    /// A file (`-serial file:PATH`).
    File(String),
    /// Nowhere (`-serial null`, or the default graphics console with no
    /// display).
    Discard,
}

/// A parsed QEMU-style run.
#[derive(Clone, Debug)]
pub struct QemuRun {
    /// `-kernel`.
    pub kernel: String,
    /// `-append`.
    pub append: String,
    /// `-initrd`.
    pub initrd: Option<String>,
    /// `-m` in MiB.
    pub mem_mib: u64,
    /// `-cpu`.
    pub model: CpuModel,
    /// Devices and clocks.
    pub platform: PlatformConfig,
    /// COM1's sink.
    pub serial: Serial,
    /// `-no-reboot`: a reset or triple fault ends the run with status 0.
    pub no_reboot: bool,
    /// Notes to print (each contains "warning").
    pub warnings: Vec<String>,
    /// nestemu extension `--max-insns N`.
    pub max_insns: Option<u64>,
    /// nestemu extension `--stats FILE`.
    pub stats: Option<String>,
}

/// What a QEMU-style command line asks for.
#[derive(Clone, Debug)]
pub enum QemuCommand {
    /// Run a kernel.
    Run(Box<QemuRun>),
    /// `-device help` / `-device '?'`.
    DeviceList,
    /// `-cpu help`.
    CpuList,
    /// `-machine help`.
    MachineList,
}

/// nestemu's own long options (its native command line).
const NATIVE: &[&str] = &[
    "--kernel",
    "--flat",
    "--real-mode",
    "--cpu",
    "--mem",
    "--append",
    "--initrd",
    "--max-insns",
    "--stats",
    "--serial",
    "--smp",
];

/// True if `args` use QEMU's spellings rather than nestemu's own.
pub fn is_qemu_invocation(args: &[String]) -> bool {
    match args.first() {
        Some(a) if a.starts_with('-') => {
            let flag = a.split('=').next().unwrap_or(a);
            !NATIVE.contains(&flag)
        }
        _ => false,
    }
}

/// Options that take a value.
const WITH_VALUE: &[&str] = &[
    "kernel",
    "append",
    "initrd",
    "m",
    "smp",
    "cpu",
    "serial",
    "display",
    "vnc",
    "name",
    "machine",
    "M",
    "accel",
    "device",
    "global",
    "monitor",
    "rtc",
    "vga",
    "net",
    "nic",
    "max-insns",
    "stats",
    "quantum",
];

struct Parser {
    run: QemuRun,
    kernel: Option<String>,
    serial: Option<Serial>,
    nographic: bool,
    nodefaults: bool,
    com1: bool,
}

/// Parses a QEMU-style command line.
pub fn parse(args: &[String]) -> Result<QemuCommand, UsageError> {
    let mut p = Parser {
        run: QemuRun {
            kernel: String::new(),
            append: String::new(),
            initrd: None,
            mem_mib: 128,
            model: qemu_cpu::parse("qemu64").map_err(UsageError)?,
            platform: PlatformConfig {
                debug_exit: None,
                ..PlatformConfig::default()
            },
            serial: Serial::Discard,
            no_reboot: false,
            warnings: Vec::new(),
            max_insns: None,
            stats: None,
        },
        kernel: None,
        serial: None,
        nographic: false,
        nodefaults: false,
        com1: true,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(UsageError(format!(
                "'{arg}': disk images are not supported (nestemu boots -kernel FILE)"
            )));
        };
        let value = if WITH_VALUE.contains(&opt) {
            Some(
                it.next()
                    .cloned()
                    .ok_or_else(|| UsageError(format!("-{opt} needs a value")))?,
            )
        } else {
            None
        };
        if let Some(cmd) = p.option(opt, value)? {
            return Ok(cmd);
        }
    }
    p.finish().map(|r| QemuCommand::Run(Box::new(r)))
}

fn is_help(v: &str) -> bool {
    matches!(v, "help" | "?")
}

impl Parser {
    /// Handles one option; `Some` for a listing request that ends parsing.
    fn option(
        &mut self,
        opt: &str,
        value: Option<String>,
    ) -> Result<Option<QemuCommand>, UsageError> {
        let v = value.unwrap_or_default();
        let r = &mut self.run;
        match opt {
            "kernel" => self.kernel = Some(v),
            "append" => r.append = v,
            "initrd" => r.initrd = Some(v),
            "m" => r.mem_mib = parse_mem(&v)?,
            "smp" => parse_smp(&v, &mut r.platform)?,
            "quantum" => {
                r.platform.quantum = super::parse_quantum(&v)?;
            }
            "cpu" if is_help(&v) => return Ok(Some(QemuCommand::CpuList)),
            "cpu" => r.model = qemu_cpu::parse(&v).map_err(UsageError)?,
            "serial" => self.serial_option(&v)?,
            "nographic" => self.nographic = true,
            "nodefaults" => self.nodefaults = true,
            "no-reboot" => r.no_reboot = true,
            "display" | "name" | "no-hpet" => {}
            "vnc" | "monitor" | "vga" | "net" | "nic" if v == "none" => {}
            "machine" | "M" if is_help(&v) => return Ok(Some(QemuCommand::MachineList)),
            "machine" | "M" => machine_option(&v, &mut r.warnings)?,
            "accel" => accel(&v, &mut r.warnings)?,
            "enable-kvm" => accel("kvm", &mut r.warnings)?,
            "device" if is_help(&v) => return Ok(Some(QemuCommand::DeviceList)),
            "device" => device_option(&v, &mut r.platform)?,
            "global" => global_option(&v)?,
            "rtc" => r.platform.rtc_start = rtc_option(&v)?,
            "max-insns" => {
                r.max_insns = Some(super::parse_number("--max-insns", &v)?);
            }
            "stats" => r.stats = Some(v),
            _ => {
                let shown = if v.is_empty() {
                    format!("-{opt}")
                } else {
                    format!("-{opt} {v}")
                };
                return Err(UsageError(format!(
                    "{shown}: option not supported by nestemu"
                )));
            }
        }
        Ok(None)
    }

    fn serial_option(&mut self, v: &str) -> Result<(), UsageError> {
        if self.serial.is_some() || !self.com1 {
            return Err(UsageError(
                "-serial given twice: nestemu models COM1 only".into(),
            ));
        }
        match v {
            "stdio" | "mon:stdio" => self.serial = Some(Serial::Stdout),
            "null" => self.serial = Some(Serial::Discard),
            "none" => self.com1 = false,
            f if f.starts_with("file:") => {
                self.serial = Some(Serial::File(f["file:".len()..].to_string()))
            }
            _ => {
                return Err(UsageError(format!(
                    "-serial {v}: only stdio, file:PATH, null and none are supported"
                )))
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<QemuRun, UsageError> {
        let r = &mut self.run;
        r.kernel = self.kernel.ok_or_else(|| {
            UsageError("nestemu needs -kernel FILE (there is no BIOS to boot a disk)".into())
        })?;
        // COM1: -serial decides; otherwise -nographic sends it to stdio,
        // -nodefaults removes it, and QEMU's default (a graphics console)
        // shows nothing without a display.
        r.serial = match self.serial {
            Some(s) => s,
            None if self.nographic => Serial::Stdout,
            None => {
                if self.nodefaults {
                    self.com1 = false;
                }
                Serial::Discard
            }
        };
        r.platform.com1 = self.com1;
        r.platform.nographic = self.nographic;
        if r.mem_mib == 0 || r.mem_mib > 1 << 20 {
            return Err(UsageError(format!(
                "-m {}: nestemu supports 1 MiB to 1 TiB",
                r.mem_mib
            )));
        }
        Ok(self.run)
    }
}

/// `-m [size=]N[K|M|G|T]` in MiB (QEMU's default unit is MiB).
fn parse_mem(v: &str) -> Result<u64, UsageError> {
    let bad = || UsageError(format!("-m {v}: expected a size such as 256, 512M or 2G"));
    let s = v.strip_prefix("size=").unwrap_or(v);
    if s.contains(',') {
        return Err(UsageError(format!(
            "-m {v}: only the size is supported (no slots or maxmem)"
        )));
    }
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "M"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let bytes = match unit {
        "K" | "k" => n << 10,
        "M" | "m" => n << 20,
        "G" | "g" => n << 30,
        "T" | "t" => n << 40,
        _ => return Err(bad()),
    };
    if bytes % (1 << 20) != 0 {
        return Err(UsageError(format!("-m {v}: must be a whole number of MiB")));
    }
    Ok(bytes >> 20)
}

/// `-smp [cpus=]N[,maxcpus=M][,sockets=S][,dies=1][,clusters=1][,cores=C][,threads=T]`,
/// with QEMU's rules for what is left out (hw/core/machine-smp.c on a
/// current `pc` machine, where cores are preferred over sockets): missing
/// sockets and threads are 1, missing cores fill up maxcpus, maxcpus
/// defaults to cpus and cpus to maxcpus; the product of the topology must
/// be maxcpus. CPU hotplug (maxcpus above cpus) and more than one die or
/// cluster per socket are refused.
fn parse_smp(v: &str, platform: &mut PlatformConfig) -> Result<(), UsageError> {
    use crate::smp::topology::Topology;
    let bad = |why: String| UsageError(format!("-smp {v}: {why}"));
    let (mut cpus, mut maxcpus, mut sockets, mut cores, mut threads) = (0u64, 0, 0, 0, 0);
    for (k, item) in v.split(',').enumerate() {
        let (key, val) = match item.split_once('=') {
            Some((a, b)) => (a, b),
            None if k == 0 => ("cpus", item),
            None => return Err(bad(format!("cannot parse '{item}'"))),
        };
        let n: u64 = val
            .parse()
            .map_err(|_| bad(format!("'{val}' is not a number")))?;
        match key {
            "cpus" => cpus = n,
            "maxcpus" => maxcpus = n,
            "sockets" => sockets = n,
            "cores" => cores = n,
            "threads" => threads = n,
            "dies" | "clusters" | "books" | "drawers" if n <= 1 => {}
            "dies" | "clusters" | "books" | "drawers" => {
                return Err(bad(format!("{key} above 1 are not supported")))
            }
            _ => return Err(bad(format!("unknown property '{key}'"))),
        }
    }
    let big = |n: u64| n > u32::MAX as u64;
    if [cpus, maxcpus, sockets, cores, threads]
        .into_iter()
        .any(big)
    {
        return Err(bad("a count is out of range".into()));
    }
    sockets = sockets.max(1);
    threads = threads.max(1);
    if cores == 0 {
        let max = if maxcpus > 0 { maxcpus } else { cpus.max(1) };
        cores = (max / (sockets * threads)).max(1);
    }
    let total = sockets * cores * threads;
    if maxcpus == 0 {
        maxcpus = if cpus > 0 { cpus } else { total };
    }
    if cpus == 0 {
        cpus = maxcpus;
    }
    if total != maxcpus {
        return Err(bad(format!(
            "the topology has {total} CPUs (sockets x cores x threads), but maxcpus is {maxcpus}"
        )));
    }
    if maxcpus < cpus {
        return Err(bad(format!("maxcpus ({maxcpus}) is below cpus ({cpus})")));
    }
    if maxcpus > cpus {
        return Err(bad(format!(
            "maxcpus ({maxcpus}) above cpus ({cpus}) asks for CPU hotplug, which nestemu does not support"
        )));
    }
    let topo = Topology {
        sockets: sockets as u32,
        cores: cores as u32,
        threads: threads as u32,
    };
    topo.validate().map_err(bad)?;
    platform.cpus = topo.cpus();
    platform.topology = Some(topo);
    Ok(())
}

/// `-machine [type,]key=value,...`.
fn machine_option(v: &str, warnings: &mut Vec<String>) -> Result<(), UsageError> {
    for (k, item) in v.split(',').enumerate() {
        let (key, val) = match item.split_once('=') {
            Some(kv) => kv,
            None if k == 0 => ("type", item),
            None => return Err(UsageError(format!("-machine {v}: cannot parse '{item}'"))),
        };
        match (key, val) {
            ("type", t) if t == "pc" || t.starts_with("pc-i440fx") => {}
            ("type", t) => {
                return Err(UsageError(format!(
                    "-machine {t}: nestemu models the i440FX 'pc' machine only"
                )))
            }
            ("accel", a) => accel(a, warnings)?,
            ("kernel_irqchip", "on" | "off" | "split") => {
                warnings.push(format!(
                    "nestemu: warning: -machine kernel_irqchip={val} only applies to KVM; the interrupt controllers are nestemu's own"
                ));
            }
            ("usb" | "vmport" | "smm" | "hpet" | "sata" | "pit" | "pic", "off") => {}
            ("vmport", "auto") | ("pit" | "pic", "on") => {}
            _ => {
                return Err(UsageError(format!(
                    "-machine {item}: not supported by nestemu"
                )))
            }
        }
    }
    Ok(())
}

/// `-accel`/`-machine accel=`: nestemu is the accelerator; KVM-only
/// behaviour is noted.
fn accel(v: &str, warnings: &mut Vec<String>) -> Result<(), UsageError> {
    for a in v.split([':', ',']) {
        match a.split('=').next().unwrap_or(a) {
            "tcg" | "thread" | "tb-size" => {}
            "kvm" | "hvf" | "whpx" | "nvmm" => warnings.push(format!(
                "nestemu: warning: accel={a}: nestemu interprets every instruction (no host virtualization); results follow the architecture, not {a}"
            )),
            other => {
                return Err(UsageError(format!(
                    "-accel {other}: unknown accelerator"
                )))
            }
        }
    }
    Ok(())
}

/// `-device NAME[,prop=value...]`.
fn device_option(v: &str, platform: &mut PlatformConfig) -> Result<(), UsageError> {
    let mut parts = v.split(',');
    let name = parts.next().unwrap_or_default();
    let props: Vec<(&str, &str)> = parts
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let bad_prop = |p: &str| {
        UsageError(format!(
            "-device {name}: property '{p}' is not supported by nestemu"
        ))
    };
    match name {
        "isa-debug-exit" => {
            let mut port = DebugExitPort {
                base: 0x501,
                size: 2,
            };
            for (k, val) in props {
                let n = parse_int(val).ok_or_else(|| bad_prop(k))?;
                match k {
                    "iobase" if n <= 0xffff => port.base = n as u16,
                    "iosize" if (1..=0x10000).contains(&n) => port.size = n as u16,
                    _ => return Err(bad_prop(k)),
                }
            }
            platform.debug_exit = Some(port);
        }
        "pc-testdev" | "pci-testdev" => {
            if let Some((k, _)) = props
                .iter()
                .find(|(k, _)| !matches!(*k, "id" | "bus" | "addr"))
            {
                return Err(bad_prop(k));
            }
            if name == "pc-testdev" {
                platform.pc_testdev = true;
            } else {
                platform.pci_testdev = true;
            }
        }
        _ => {
            return Err(UsageError(format!(
                "-device {name}: nestemu does not model this device (it has isa-debug-exit, pc-testdev, pci-testdev)"
            )))
        }
    }
    Ok(())
}

fn parse_int(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `-global DRIVER.PROP=VALUE`: the KVM in-kernel PIT's properties only
/// matter to KVM (there is no such device without it, as in QEMU's TCG).
fn global_option(v: &str) -> Result<(), UsageError> {
    if v.starts_with("kvm-pit.") {
        return Ok(());
    }
    Err(UsageError(format!("-global {v}: not supported by nestemu")))
}

/// `-rtc base=DATE[,clock=vm]`: the RTC's start; host-time bases would make
/// runs differ, so they are refused.
fn rtc_option(v: &str) -> Result<i64, UsageError> {
    let mut start = crate::devices::rtc::DEFAULT_START;
    for item in v.split(',') {
        match item.split_once('=') {
            Some(("base", b)) => {
                start = crate::devices::rtc::DateTime::parse(b)
                    .map(|d| d.to_unix())
                    .ok_or_else(|| {
                        UsageError(format!(
                            "-rtc base={b}: nestemu needs a fixed date YYYY-MM-DD[THH:MM:SS] (host time would make runs differ)"
                        ))
                    })?;
            }
            Some(("clock", "vm")) | Some(("driftfix", "none" | "slew")) => {}
            _ => return Err(UsageError(format!("-rtc {item}: not supported by nestemu"))),
        }
    }
    Ok(start)
}

/// `-device help`, in QEMU's format (runners grep for the quoted names).
pub fn device_list() -> String {
    "Misc devices:\n\
     name \"isa-debug-exit\", bus ISA\n\
     name \"pc-testdev\", bus ISA\n\
     name \"pci-testdev\", bus PCI, desc \"PCI Test Device\"\n"
        .into()
}

/// `-cpu help`.
pub fn cpu_list() -> String {
    let mut s = String::from("Available CPUs:\n");
    for n in qemu_cpu::model_names() {
        s.push_str(&format!("  {n}\n"));
    }
    s.push_str("\nRecognized CPUID flags (implemented by nestemu):\n ");
    for (_, name, _, _, implemented) in crate::cpu::cpuid::FEATURES {
        if *implemented {
            s.push(' ');
            s.push_str(name);
        }
    }
    s.push('\n');
    s
}

/// `-machine help`.
pub fn machine_list() -> String {
    "Supported machines are:\npc                   Standard PC (i440FX + PIIX), as modelled by nestemu (default)\n".into()
}

/// A file-read error without Rust's "(os error N)" suffix, as QEMU words it.
fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Reads a kernel or initrd of at most `limit` bytes (the guest RAM it
/// must fit in), refusing a larger file before reading it.
fn read_bounded(path: &str, what: &str, limit: u64) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("could not load {what} '{path}': {}", os_error(&e));
    let len = std::fs::metadata(path).map_err(cannot)?.len();
    if len > limit {
        return Err(format!(
            "could not load {what} '{path}': its {len} bytes do not fit in the {} MiB of guest RAM",
            limit >> 20
        ));
    }
    std::fs::read(path).map_err(cannot)
}

/// Reads the kernel and initrd of `q`.
fn read_inputs(q: &QemuRun) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let limit = q.mem_mib << 20;
    let image = read_bounded(&q.kernel, "kernel", limit)?;
    let initrd = match &q.initrd {
        Some(p) => Some(read_bounded(p, "initrd", limit)?),
        None => None,
    };
    Ok((image, initrd))
}

/// Reads the files of `q` and builds its machine as a run does, without
/// running it: for tools and the fuzzer. Errors are bad input (status 2).
pub fn prepare(q: &QemuRun) -> Result<Machine, LoadError> {
    let (image, initrd) = read_inputs(q).map_err(LoadError)?;
    build(q, &image, &initrd, q.max_insns)
        .map_err(|e| LoadError(format!("error loading kernel '{}': {e}", q.kernel)))
}

/// Builds and loads a machine for `q`.
fn build(
    q: &QemuRun,
    image: &[u8],
    initrd: &Option<Vec<u8>>,
    max_insns: Option<u64>,
) -> Result<Machine, String> {
    let mut m = Machine::try_new(MachineConfig {
        model: q.model.clone(),
        mem_bytes: q.mem_mib << 20,
        max_insns,
        platform: q.platform.clone(),
        ..Default::default()
    })?;
    let modules: Vec<multiboot::Module> = match (initrd, &q.initrd) {
        (Some(data), Some(path)) => vec![multiboot::Module {
            string: path.clone(),
            data: data.clone(),
        }],
        _ => Vec::new(),
    };
    // QEMU passes "<kernel> <append>" (hw/i386/multiboot.c).
    let cmdline = format!("{} {}", q.kernel, q.append);
    multiboot::boot(&mut m, image, &cmdline, &modules).map_err(|e| e.0)?;
    Ok(m)
}

/// Runs `q`; returns the exit status.
pub fn run(q: &QemuRun) -> i32 {
    let (image, initrd) = match read_inputs(q) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("nestemu: {e}");
            return EXIT_USAGE;
        }
    };
    for w in &q.warnings {
        eprintln!("{w}");
    }
    let mut sink: Box<dyn Write> = match &q.serial {
        Serial::Stdout => Box::new(std::io::stdout()),
        Serial::Discard => Box::new(std::io::sink()),
        Serial::File(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!(
                    "nestemu: could not open serial file '{path}': {}",
                    os_error(&e)
                );
                return EXIT_USAGE;
            }
        },
    };
    run_loop(q, &image, &initrd, &mut *sink)
}

/// Runs `q` with COM1 captured (as `run` with `-serial stdio` would print
/// it): the exit status and the serial bytes. For tests of the QEMU command
/// line that stay in one process.
pub fn run_captured(q: &QemuRun) -> (i32, Vec<u8>) {
    let Ok((image, initrd)) = read_inputs(q) else {
        return (EXIT_USAGE, Vec::new());
    };
    let mut out = Vec::new();
    let status = run_loop(q, &image, &initrd, &mut out);
    (status, out)
}

/// Runs, rebooting on reset requests unless `-no-reboot` (QEMU reboots by
/// reloading the kernel; so does nestemu).
fn run_loop(q: &QemuRun, image: &[u8], initrd: &Option<Vec<u8>>, sink: &mut dyn Write) -> i32 {
    let mut used = 0u64;
    loop {
        let limit = q.max_insns.map(|n| n.saturating_sub(used));
        let mut m = match build(q, image, initrd, limit) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("nestemu: error loading kernel '{}': {e}", q.kernel);
                return EXIT_USAGE;
            }
        };
        let stop = match super::run_machine(&mut m, sink) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("nestemu: writing serial output failed: {e}");
                return EXIT_USAGE;
            }
        };
        used += m.stats.instructions;
        let reset = matches!(stop, Stop::Reset(_) | Stop::Shutdown(_));
        if reset && !q.no_reboot && limit != Some(0) {
            continue;
        }
        return finish(q, &m, &stop);
    }
}

/// Reports the end of a run and returns QEMU's exit status for it.
fn finish(q: &QemuRun, m: &Machine, stop: &Stop) -> i32 {
    if !matches!(stop, Stop::DebugExit(_) | Stop::PowerOff) {
        eprintln!("nestemu: {}", stop.describe());
    }
    if let Some(path) = &q.stats {
        if let Err(e) = write_stats(m, stop, path) {
            eprintln!("nestemu: cannot write stats file '{path}': {e}");
            return EXIT_USAGE;
        }
    }
    match stop {
        // With -no-reboot QEMU exits normally on a reset or triple fault.
        Stop::Reset(_) | Stop::Shutdown(_) => 0,
        s => s.exit_status(),
    }
}

/// The QEMU-style entry point.
pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(QemuCommand::Run(q)) => run(&q),
        Ok(QemuCommand::DeviceList) => {
            print!("{}", device_list());
            0
        }
        Ok(QemuCommand::CpuList) => {
            print!("{}", cpu_list());
            0
        }
        Ok(QemuCommand::MachineList) => {
            print!("{}", machine_list());
            0
        }
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

    fn run_of(s: &str) -> QemuRun {
        match parse(&args(s)) {
            Ok(QemuCommand::Run(r)) => *r,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn err_of(s: &str) -> String {
        match parse(&args(s)) {
            Err(UsageError(m)) => m,
            other => panic!("{s}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn kvm_unit_tests_command_line() {
        let r = run_of(
            "--no-reboot -nodefaults -global kvm-pit.lost_tick_policy=discard -device pc-testdev \
             -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
             -device pci-testdev -machine accel=tcg -kernel x86/vmx.flat -smp 1 -cpu max \
             -m 2560 -append test -initrd env",
        );
        assert_eq!(r.kernel, "x86/vmx.flat");
        assert_eq!(r.mem_mib, 2560);
        assert!(r.no_reboot && r.platform.pc_testdev && r.platform.pci_testdev);
        assert_eq!(
            r.platform.debug_exit,
            Some(DebugExitPort {
                base: 0xf4,
                size: 4
            })
        );
        assert_eq!(r.serial, Serial::Stdout);
        assert!(r.platform.com1);
        assert!(r.warnings.is_empty(), "accel=tcg is what nestemu is");
    }

    #[test]
    fn serial_defaults() {
        assert_eq!(run_of("-kernel k -nographic").serial, Serial::Stdout);
        let r = run_of("-kernel k -nodefaults");
        assert!(!r.platform.com1);
        assert!(run_of("-kernel k").platform.com1);
        assert_eq!(
            run_of("-kernel k -serial file:out").serial,
            Serial::File("out".into())
        );
        assert!(!run_of("-kernel k -serial none").platform.com1);
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("2G").unwrap(), 2048);
        assert_eq!(parse_mem("size=512M").unwrap(), 512);
        assert_eq!(parse_mem("300").unwrap(), 300);
        assert!(parse_mem("1G,slots=2").is_err());
        assert!(parse_mem("lots").is_err());
    }

    #[test]
    fn refusals_name_the_option() {
        assert!(err_of("-kernel k -smp 300").contains("exceeds nestemu's maximum of 64"));
        assert!(err_of("-kernel k -smp 2,maxcpus=4").contains("hotplug"));
        assert!(err_of("-kernel k -smp 4,sockets=3").contains("maxcpus is 4"));
        assert!(err_of("-kernel k -smp 4,dies=2").contains("dies"));
        assert!(err_of("-kernel k -smp 0x4").contains("not a number"));
        assert!(err_of("-kernel k -hda disk.img").contains("-hda"));
        assert!(err_of("-kernel k -device e1000").contains("e1000"));
        assert!(err_of("-kernel k -machine q35").contains("q35"));
        assert!(err_of("-kernel k -global e1000.mac=x").contains("-global"));
        assert!(err_of("-kernel k -rtc base=utc").contains("fixed date"));
        assert!(err_of("-kernel k -serial tcp::4444").contains("-serial"));
        assert!(err_of("-nodefaults").contains("-kernel"));
        assert!(err_of("-kernel k -cpu max,+avx512f").contains("avx512f"));
        assert!(err_of("-kernel k -S").contains("-S"));
    }

    #[test]
    fn smp_topologies() {
        use crate::smp::topology::Topology;
        let topo = |s: &str| {
            let r = run_of(&format!("-kernel k -smp {s}"));
            (r.platform.cpus, r.platform.topology.unwrap())
        };
        let t = |sockets, cores, threads| Topology {
            sockets,
            cores,
            threads,
        };
        assert_eq!(topo("4"), (4, t(1, 4, 1)), "cores preferred");
        assert_eq!(topo("cpus=4,maxcpus=4"), (4, t(1, 4, 1)));
        assert_eq!(topo("8,sockets=2"), (8, t(2, 4, 1)));
        assert_eq!(topo("sockets=2,cores=2,threads=2"), (8, t(2, 2, 2)));
        assert_eq!(topo("6,threads=2"), (6, t(1, 3, 2)));
        assert_eq!(run_of("-kernel k").platform.cpus, 1);
        assert_eq!(run_of("-kernel k --quantum 5000").platform.quantum, 5000);
    }

    #[test]
    fn accepted_and_noted() {
        let r = run_of("-kernel k -machine accel=kvm,kernel_irqchip=split -smp cpus=1,maxcpus=1");
        assert_eq!(r.warnings.len(), 2);
        assert!(r.warnings.iter().all(|w| w.contains("warning")));
        let r = run_of("-kernel k -enable-kvm -vnc none -name t -no-hpet -rtc base=2020-02-02");
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(
            r.platform.rtc_start,
            crate::devices::rtc::DateTime::parse("2020-02-02")
                .unwrap()
                .to_unix()
        );
    }

    #[test]
    fn probes() {
        assert!(matches!(
            parse(&args("-device ?")),
            Ok(QemuCommand::DeviceList)
        ));
        assert!(matches!(
            parse(&args("-cpu help")),
            Ok(QemuCommand::CpuList)
        ));
        assert!(device_list().contains("name \"pc-testdev\", bus ISA"));
        assert!(version_line().starts_with("QEMU emulator version "));
        assert!(is_qemu_invocation(&args("-kernel k")));
        assert!(is_qemu_invocation(&args("--no-reboot -kernel k")));
        assert!(!is_qemu_invocation(&args("--kernel k")));
        assert!(!is_qemu_invocation(&args("run --kernel k")));
    }
}
