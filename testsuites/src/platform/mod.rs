//! The PC platform guest suites: self-checking kit programs, one per device
//! group, whose checks run in the guest and print `ok NAME` / `FAIL NAME`
//! lines on COM1 ([`guestkit::checks`]). Because the verdicts travel over
//! the serial port and the exit status, the same images run unchanged under
//! QEMU (`-device pc-testdev -device pci-testdev -device isa-debug-exit`),
//! which is how the closing comparison was made.
//!
//! Values that are exact on nestemu but differ on other emulators (timer
//! cycle counts, dates) print as `info NAME = VALUE` lines; the host tests
//! assert them exactly, since nestemu is deterministic.

pub mod firmware;
pub mod ioapic;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod smp;

use crate::Outcome;
use guestkit::{Built, Program};
use nestemu::devices::PlatformConfig;
use nestemu::{MachineConfig, Stop};

/// Builds a suite program.
pub type Builder = fn() -> Program;

/// Every suite: its name and program builder.
pub const SUITES: &[(&str, Builder)] = &[
    ("lapic", lapic::program),
    ("lapic_timer", lapic::timer_program),
    ("x2apic", lapic::x2apic_program),
    ("ioapic", ioapic::program),
    ("pic", pic::program),
    ("pit", pit::program),
    ("rtc", rtc::program),
    ("pci", pci::program),
    ("firmware", firmware::program),
];

/// Emits the start every suite shares, as kvm-unit-tests' start-up does
/// it: both 8259s masked (QEMU's firmware leaves IRQ 0, 1, 2 and 6 open
/// with the PIT ticking), the local APIC software-enabled with LINT0/LINT1
/// masked and TPR 0. The APIC is not globally disabled here: QEMU's TCG
/// cannot re-enable it afterwards, which would hide everything else.
pub fn setup(a: &mut guestkit::Asm) -> guestkit::AsmResult {
    use guestkit::platform::{lapic_enable, lapic_write, out};
    out(a, 0x21, 1, 0xff)?;
    out(a, 0xa1, 1, 0xff)?;
    lapic_enable(a)?;
    lapic_write(a, 0x350, 0x1_0000)?;
    lapic_write(a, 0x360, 0x1_0000)?;
    lapic_write(a, 0x80, 0)
}

/// Emits: unless CPUID.`leaf`:`reg` bit `bit` is set, print `SKIP what` and
/// jump past `body` (as kvm-unit-tests skips what the CPU does not have).
pub fn if_cpuid(
    a: &mut guestkit::Asm,
    rt: &guestkit::Rt64,
    leaf: u32,
    reg: u8,
    bit: u32,
    what: &str,
    body: impl Fn(&mut guestkit::Asm) -> guestkit::AsmResult,
) -> guestkit::AsmResult {
    use iced_x86::code_asm::*;
    let mut have = a.label();
    let mut done = a.label();
    guestkit::platform::cpuid(a, leaf, reg)?;
    a.bt(eax, bit)?;
    a.jc(have.l)?;
    guestkit::checks::print(a, rt, &format!("SKIP {what}: not advertised\n"))?;
    a.jmp(done.l)?;
    a.set(&mut have)?;
    body(a)?;
    a.set(&mut done)?;
    a.nop()
}

/// The machine configuration the suites need: kit RAM plus the QEMU test
/// devices, as `-device pc-testdev -device pci-testdev` gives.
pub fn config() -> MachineConfig {
    MachineConfig {
        platform: PlatformConfig {
            pc_testdev: true,
            pci_testdev: true,
            ..PlatformConfig::default()
        },
        ..crate::config()
    }
}

/// The verdict lines of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Names of passed checks.
    pub ok: Vec<String>,
    /// Failed checks, whole lines.
    pub failed: Vec<String>,
    /// `info` values by name.
    pub info: Vec<(String, u64)>,
}

impl Verdicts {
    /// Parses the serial output.
    pub fn parse(serial: &str) -> Self {
        let mut v = Self::default();
        for line in serial.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(n) = line.strip_prefix("ok ") {
                v.ok.push(n.to_string());
            } else if line.starts_with("FAIL ") {
                v.failed.push(line.to_string());
            } else if let Some(rest) = line.strip_prefix("info ") {
                if let Some((n, x)) = rest.split_once(" = ") {
                    if let Ok(x) = u64::from_str_radix(x.trim(), 16) {
                        v.info.push((n.to_string(), x));
                    }
                }
            }
        }
        v
    }

    /// An `info` value; panics if absent.
    pub fn info(&self, name: &str) -> u64 {
        self.info
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no info line {name}: {self:?}"))
            .1
    }
}

/// Runs a suite program and checks that every guest check passed; returns
/// the outcome and its verdicts.
pub fn run_suite(p: &Program) -> (Outcome, Verdicts) {
    let o = crate::run(p, config());
    let v = Verdicts::parse(&o.serial);
    assert!(
        v.failed.is_empty() && o.stop == Stop::DebugExit(0),
        "stop {:?}; failures:\n{}\nserial:\n{}",
        o.stop,
        v.failed.join("\n"),
        o.serial
    );
    assert!(!v.ok.is_empty(), "no checks ran:\n{}", o.serial);
    assert!(
        !o.serial.contains("SKIP "),
        "nestemu skips nothing:\n{}",
        o.serial
    );
    (o, v)
}

/// Builds a suite's image.
pub fn build(p: &Program) -> Built {
    p.build()
        .unwrap_or_else(|e| panic!("building the guest: {e}"))
}

/// Writes every suite's image to `$NESTEMU_DUMP_KERNELS` if set (for running
/// them on QEMU).
pub fn dump_images() {
    let Ok(dir) = std::env::var("NESTEMU_DUMP_KERNELS") else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("create the dump directory");
    for (name, f) in SUITES {
        let b = build(&f());
        std::fs::write(format!("{dir}/platform_{name}.bin"), &b.image).expect("write an image");
    }
    // The SMP suite, built for a vCPU count the file name carries
    // (`.smpN`; the comparison script passes `-smp N`).
    for cpus in SMP_DUMPS {
        let b = build(&smp::program(cpus));
        std::fs::write(format!("{dir}/platform_smp.smp{cpus}.bin"), &b.image)
            .expect("write an image");
    }
}

/// The vCPU counts the SMP suite is dumped and run with by runners.
pub const SMP_DUMPS: [u64; 2] = [2, 4];
