//! `cli`: argv from a grammar of nestemu's own command line and the
//! QEMU-compatible one, with hostile values (huge, negative, empty and
//! malformed numbers, unicode, missing values, duplicated flags) and files
//! (nonexistent, empty, a directory, random bytes, kernel images, files
//! larger than RAM) written by the fuzzer to its own temporary directory.
//!
//! Defined: parsing returns `Ok` or a `UsageError`; a parsed run is
//! prepared (files read, machine built, kernel loaded) to `Ok` or a
//! `LoadError`, then runs a few blocks. The demo never runs, nothing is
//! written but the fuzzer's own files.

use super::image;
use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use nestemu::cli::{self, qemu, Command};
use std::path::PathBuf;

/// The cli target: a private directory for the files it writes.
#[derive(Debug)]
pub struct Cli {
    dir: PathBuf,
}

impl Cli {
    /// A target with a fresh temporary directory.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nestemu-fuzz-cli-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("a-directory"));
        Self { dir }
    }
}

impl Default for Cli {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number as a user might (mis)type it.
fn number(src: &mut Source) -> String {
    match src.below(16) {
        0..=4 => src.below(300).to_string(),
        5 => format!("{:#x}", src.u32()),
        6 => src.u64().to_string(),
        7 => src
            .pick(&[
                "",
                "-1",
                "0",
                "18446744073709551615",
                "18446744073709551616",
                "99999999999999999999999",
                "0x",
                "0xffffffffffffffff",
                "0x10000000000000000",
                "1e3",
                " 5",
                "5 ",
                "+5",
                "٣",
                "0b101",
                "NaN",
            ])
            .to_string(),
        8 => format!("-{}", src.u16()),
        _ => src.string(8),
    }
}

/// A `-m` size in QEMU's syntax.
fn mem_size(src: &mut Source) -> String {
    match src.below(8) {
        0..=2 => format!("{}", 1 + src.below(256)),
        3 => format!(
            "{}{}",
            src.below(4096),
            src.pick(&["K", "M", "G", "T", "k", "g", "P", ""])
        ),
        4 => src
            .pick(&[
                "size=64M",
                "64M,slots=2,maxmem=1G",
                "1.5G",
                "0",
                "1048577",
                "99999999999G",
                "18446744073709551615T",
                "17592186044416",
                "1024T",
                "4095K",
                "-1",
                "",
            ])
            .to_string(),
        _ => number(src),
    }
}

const MODELS: &[&str] = &[
    "intel",
    "amd",
    "max",
    "host",
    "qemu64",
    "IvyBridge",
    "Skylake-Server",
    "EPYC",
    "z80",
    "",
];

/// Options and value kinds of nestemu's own command line.
const NATIVE: &[(&str, Kind)] = &[
    ("--kernel", Kind::File),
    ("--flat", Kind::Number),
    ("--real-mode", Kind::None),
    ("--cpu", Kind::Model),
    ("--mem", Kind::Number),
    ("--append", Kind::Text),
    ("--initrd", Kind::File),
    ("--max-insns", Kind::Number),
    ("--stats", Kind::Out),
    ("--serial", Kind::Out),
    ("--help", Kind::None),
    ("--address", Kind::Number),
    ("--guest-levels", Kind::Number),
    ("--nested", Kind::Text),
    ("--nested-levels", Kind::Number),
    ("--caches", Kind::Text),
    ("--warm", Kind::None),
    ("--svg", Kind::Out),
    ("--bogus", Kind::Text),
    ("--resume", Kind::File),
    ("--snapshot", Kind::Out),
    ("--snapshot-at", Kind::Number),
    ("-kernel", Kind::File),
];

/// Options and value kinds of the QEMU command line.
const QEMU: &[(&str, Kind)] = &[
    ("-kernel", Kind::File),
    ("-append", Kind::Text),
    ("-initrd", Kind::File),
    ("-m", Kind::Mem),
    ("-smp", Kind::Smp),
    ("-cpu", Kind::QemuCpu),
    ("-serial", Kind::Serial),
    ("-device", Kind::Device),
    ("-machine", Kind::Machine),
    ("-M", Kind::Machine),
    ("-accel", Kind::Text),
    ("-rtc", Kind::Rtc),
    ("-global", Kind::Text),
    ("-display", Kind::Text),
    ("-vnc", Kind::Text),
    ("-name", Kind::Text),
    ("-monitor", Kind::Text),
    ("-nographic", Kind::None),
    ("-nodefaults", Kind::None),
    ("-no-reboot", Kind::None),
    ("-enable-kvm", Kind::None),
    ("-no-hpet", Kind::None),
    ("--max-insns", Kind::Number),
    ("--stats", Kind::Out),
    ("-hda", Kind::File),
    ("-S", Kind::None),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    None,
    File,
    Out,
    Number,
    Mem,
    Text,
    Model,
    QemuCpu,
    Smp,
    Serial,
    Device,
    Machine,
    Rtc,
}

impl Cli {
    /// A file path; files with contents are written now.
    fn file(&self, src: &mut Source, ram_hint: u64) -> String {
        let p = |name: &str| self.dir.join(name).display().to_string();
        match src.below(10) {
            0 => p("does-not-exist/kernel"),
            1 => {
                let _ = std::fs::write(self.dir.join("empty.bin"), b"");
                p("empty.bin")
            }
            2 => p("a-directory"),
            3 => {
                let n = src.below(512) as usize;
                let _ = std::fs::write(self.dir.join("random.bin"), src.bytes(n));
                p("random.bin")
            }
            4 => {
                // A sparse file larger than most RAM sizes asked for.
                let f = std::fs::File::create(self.dir.join("big.bin"));
                let len = ram_hint.saturating_add(src.below(1 << 20)).min(1 << 40);
                if let Ok(f) = f {
                    let _ = f.set_len(len);
                }
                p("big.bin")
            }
            5 => String::new(),
            6 => p("ünïcødé €.bin"),
            _ => {
                let img = image::decode(src, ram_hint.max(1 << 20));
                let _ = std::fs::write(self.dir.join("kernel.bin"), img);
                p("kernel.bin")
            }
        }
    }

    fn value(&self, src: &mut Source, kind: Kind) -> String {
        match kind {
            Kind::None => src.string(4),
            Kind::File => self.file(src, 16 << 20),
            Kind::Out => self.dir.join("out.txt").display().to_string(),
            Kind::Number => number(src),
            Kind::Mem => mem_size(src),
            Kind::Text => {
                src.pick(&["", "none", "tcg", "kvm", "ept", "npt", "amd", "x=1"])
                    .to_string()
                    + &src.string(24)
            }
            Kind::Model => src.pick(MODELS).to_string(),
            Kind::QemuCpu => {
                let mut s = src.pick(MODELS).to_string();
                for _ in 0..src.below(4) {
                    s.push(',');
                    s += src.pick(&[
                        "+vmx",
                        "-vmx",
                        "+svm",
                        "+x2apic",
                        "-sse2",
                        "+avx512f",
                        "phys-bits=",
                        "host-phys-bits",
                        "host-phys-bits-limit=",
                        "check",
                        "enforce",
                        "+",
                        "",
                    ]);
                    if s.ends_with('=') {
                        s += &number(src);
                    }
                }
                s
            }
            Kind::Smp => {
                src.pick(&["1", "2", "cpus=1,maxcpus=4", "sockets=0", "1,cores=1", ""])
                    .to_string()
                    + &number(src)
            }
            Kind::Serial => {
                let v = src.pick(&["stdio", "mon:stdio", "null", "none", "file:", "pty", ""]);
                if v == "file:" {
                    format!("file:{}", self.dir.join("serial.txt").display())
                } else {
                    v.to_string()
                }
            }
            Kind::Device => {
                let mut s = src
                    .pick(&[
                        "isa-debug-exit",
                        "pc-testdev",
                        "pci-testdev",
                        "help",
                        "?",
                        "e1000",
                        "",
                    ])
                    .to_string();
                for _ in 0..src.below(4) {
                    s.push(',');
                    s += src.pick(&["iobase=", "iosize=", "id=", "bus=", "addr=", "x="]);
                    s += &number(src);
                }
                s
            }
            Kind::Machine => src
                .pick(&[
                    "pc",
                    "q35",
                    "help",
                    "pc,accel=tcg",
                    "accel=kvm:tcg",
                    "kernel_irqchip=split",
                    "pc,usb=off",
                    "pc-i440fx-8.2",
                    ",",
                    "type=pc,x=y,",
                ])
                .to_string(),
            Kind::Rtc => {
                src.pick(&["base=", "clock=vm", "base=utc", "driftfix=slew", ""])
                    .to_string()
                    + src.pick(&[
                        "2024-01-01",
                        "2024-02-30T25:61:61",
                        "9999-12-31T23:59:59",
                        "0000-01-01",
                        "-2024-01-01",
                        "18446744073709551616-01-01",
                        "2024-1-1",
                        "",
                    ])
            }
        }
    }

    /// Options drawn from `table`, some with `--flag=value`, some with the
    /// value missing, some unknown.
    fn options(&self, src: &mut Source, table: &[(&str, Kind)], args: &mut Vec<String>) {
        let n = src.below(10);
        for _ in 0..n {
            if src.chance(1, 16) {
                args.push(src.string(12));
                continue;
            }
            let (flag, kind) = src.pick(table);
            if kind == Kind::None {
                args.push(flag.to_string());
                continue;
            }
            let v = self.value(src, kind);
            match src.below(8) {
                0 => args.push(format!("{flag}={v}")),
                1 => args.push(flag.to_string()), // value missing (maybe)
                _ => {
                    args.push(flag.to_string());
                    args.push(v);
                }
            }
        }
    }

    fn argv(&self, src: &mut Source) -> Vec<String> {
        let mut args = Vec::new();
        match src.below(8) {
            0..=3 => {
                let sub = src.pick(&[
                    "run",
                    "run",
                    "run",
                    "demo",
                    "explain-walk",
                    "help",
                    "-V",
                    "walk",
                ]);
                if src.chance(15, 16) {
                    args.push(sub.to_string());
                }
                if sub == "run" && src.chance(3, 4) {
                    args.push("--kernel".into());
                    args.push(self.file(src, 16 << 20));
                }
                self.options(src, NATIVE, &mut args);
            }
            _ => {
                if src.chance(7, 8) {
                    args.push("-kernel".into());
                    let f = self.file(src, 128 << 20);
                    args.push(f);
                }
                self.options(src, QEMU, &mut args);
            }
        }
        args
    }
}

/// A few blocks of a prepared machine (bounded: no demo, no full run).
fn touch(m: &mut nestemu::Machine) {
    for _ in 0..200 {
        if m.run_slice().is_some() {
            break;
        }
    }
}

impl Target for Cli {
    fn name(&self) -> &'static str {
        "cli"
    }

    fn max_len(&self) -> usize {
        512
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        let args = self.argv(&mut src);
        let mut ram = 0u64;
        let label = if qemu::is_qemu_invocation(&args) {
            match qemu::parse(&args) {
                Err(cli::UsageError(msg)) => format!("qemu usage: {}", crate::normalize(&msg)),
                Ok(qemu::QemuCommand::Run(q)) => {
                    ram = q.mem_mib.saturating_mul(1 << 20);
                    match qemu::prepare(&q) {
                        Ok(mut m) => {
                            touch(&mut m);
                            "qemu run: prepared".into()
                        }
                        Err(e) => format!("qemu run: LoadError: {}", crate::normalize(&e.0)),
                    }
                }
                Ok(qemu::QemuCommand::DeviceList) => {
                    format!("qemu: {} bytes", qemu::device_list().len())
                }
                Ok(qemu::QemuCommand::CpuList) => {
                    format!("qemu: cpu list {}", qemu::cpu_list().is_empty())
                }
                Ok(qemu::QemuCommand::MachineList) => {
                    format!("qemu: machine list {}", qemu::machine_list().is_empty())
                }
            }
        } else {
            match cli::parse(&args) {
                Err(cli::UsageError(msg)) => format!("usage: {}", crate::normalize(&msg)),
                Ok(Command::Run(o)) if o.resume.is_some() => {
                    let path = o.resume.as_deref().unwrap_or_default();
                    ram = super::snapshot::declared_ram(&std::fs::read(path).unwrap_or_default());
                    match nestemu::snapshot::read(path) {
                        Ok(mut m) => {
                            touch(&mut m);
                            "run: resumed".into()
                        }
                        Err(e) => format!("run: SnapshotError: {}", crate::normalize(&e.0)),
                    }
                }
                Ok(Command::Run(o)) => {
                    ram = o.mem_mib.saturating_mul(1 << 20);
                    match cli::prepare(&o) {
                        Ok(mut m) => {
                            touch(&mut m);
                            "run: prepared".into()
                        }
                        Err(e) => format!("run: LoadError: {}", crate::normalize(&e.0)),
                    }
                }
                Ok(Command::ExplainWalk(o)) => match nestemu::explain::explain(&o.scenario()) {
                    Ok(e) => {
                        let text = nestemu::explain::text::render(&e);
                        let svg = nestemu::explain::svg::render(&e);
                        format!("explain: {} {}", text.is_empty(), svg.is_empty())
                    }
                    Err(msg) => format!("explain error: {}", crate::normalize(&msg)),
                },
                Ok(Command::Demo { .. }) => "demo (not run)".into(),
                Ok(Command::Help) => "help".into(),
                Ok(Command::CostPresets) => "cost-presets".into(),
                Ok(Command::Version) => "version".into(),
            }
        };
        Ok(Outcome::new(label).with_ram(ram))
    }
}
