//! The harness that runs guest programs on nestemu in-process and hands back
//! what they did: serial output, how the machine stopped, and the case records.

pub mod check;
pub mod platform;
pub mod rng;

use guestkit::layout::{MIN_RAM, RECORD_SIZE, RESULTS};
use guestkit::{Built, Program, Record};
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig, Stop};

/// The outcome of a run.
#[derive(Debug)]
pub struct Outcome {
    /// COM1 output.
    pub serial: String,
    /// Why the machine stopped.
    pub stop: Stop,
    /// Case records, by case name.
    pub records: Vec<(String, Record)>,
    /// The machine afterwards.
    pub machine: Machine,
}

impl Outcome {
    /// The record of case `name`; panics with the serial output if missing.
    pub fn record(&self, name: &str) -> &Record {
        &self
            .records
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no case named {name}"))
            .1
    }

    /// True if the program exited through isa-debug-exit with 0.
    pub fn passed(&self) -> bool {
        self.stop == Stop::DebugExit(0)
    }

    /// The vectors the kit's interrupt handler counted, in arrival order
    /// (`guestkit::irq`).
    pub fn irq_log(&self) -> Vec<u8> {
        use guestkit::layout::{var, VARS};
        let mut n = [0u8; 8];
        self.machine.peek_phys(VARS + var::IRQ_LOG_LEN, &mut n);
        let n = u64::from_le_bytes(n).min(var::IRQ_LOG_CAP) as usize;
        let mut log = vec![0u8; n];
        self.machine.peek_phys(VARS + var::IRQ_LOG, &mut log);
        log
    }
}

/// A machine configuration with enough RAM for kit programs.
pub fn config() -> MachineConfig {
    MachineConfig {
        mem_bytes: MIN_RAM.max(64 << 20),
        max_insns: Some(200_000_000),
        ..Default::default()
    }
}

/// Builds `p` and runs it on a machine made from `cfg`.
pub fn run(p: &Program, cfg: MachineConfig) -> Outcome {
    let built = p
        .build()
        .unwrap_or_else(|e| panic!("building the guest: {e}"));
    run_built(&built, cfg)
}

/// Runs an already built program.
pub fn run_built(built: &Built, cfg: MachineConfig) -> Outcome {
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "kit", &[]).unwrap_or_else(|e| panic!("loading: {e}"));
    let stop = m.run();
    outcome(built, m, stop)
}

/// Runs an already built program, stopping at the first slice boundary at
/// or after step `at` to take a snapshot, and continuing on a machine
/// restored from it (the serial output before the snapshot is kept).
pub fn run_built_via_snapshot(built: &Built, cfg: MachineConfig, at: u64) -> Outcome {
    let mut m = Machine::new(cfg);
    multiboot::boot(&mut m, &built.image, "kit", &[]).unwrap_or_else(|e| panic!("loading: {e}"));
    while m.steps() < at {
        if let Some(stop) = m.run_slice() {
            panic!("the run ended ({stop:?}) before step {at}");
        }
    }
    let before = m.take_serial();
    let bytes = m.save_snapshot();
    drop(m);
    let mut m = Machine::from_snapshot(&bytes).unwrap_or_else(|e| panic!("restoring: {e}"));
    assert_eq!(
        m.save_snapshot(),
        bytes,
        "a restored machine saves the same snapshot"
    );
    let stop = m.run();
    let mut o = outcome(built, m, stop);
    o.serial = String::from_utf8_lossy(&before).into_owned() + &o.serial;
    o
}

fn outcome(built: &Built, mut m: Machine, stop: nestemu::Stop) -> Outcome {
    let serial = String::from_utf8_lossy(&m.take_serial()).into_owned();
    fingerprint(&built.image, &m, &stop, &serial);
    let records = built
        .cases
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut b = vec![0u8; RECORD_SIZE as usize];
            m.peek_phys(RESULTS + k as u64 * RECORD_SIZE, &mut b);
            (name.clone(), Record::parse(&b))
        })
        .collect();
    Outcome {
        serial,
        stop,
        records,
        machine: m,
    }
}

/// FNV-1a over bytes, continuing from `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// With `NESTEMU_FINGERPRINT=FILE` set, appends one line per run to FILE: a
/// hash of the guest image, then a hash of everything the run produced (the
/// `--stats` report, serial output, final register state, RAM) and the
/// instruction and cycle counts. Two builds of nestemu that run the suites
/// to the same lines are observably identical on them: a tool for changes
/// that must not change behaviour (the interpreter's fast paths). Reading the
/// variable happens after the run, outside the simulation.
fn fingerprint(image: &[u8], m: &Machine, stop: &Stop, serial: &str) {
    let Some(path) = std::env::var_os("NESTEMU_FINGERPRINT") else {
        return;
    };
    let report = nestemu::stats::Report::of(m, stop.exit_status(), stop.describe());
    let mut h = 0xcbf2_9ce4_8422_2325;
    h = fnv(
        h,
        serde_json::to_string(&report).expect("report").as_bytes(),
    );
    h = fnv(h, serial.as_bytes());
    h = fnv(h, serde_json::to_string(&m.cpu).expect("cpu").as_bytes());
    for chunk in m.ram.as_slice().chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    let line = format!(
        "{:016x} {h:016x} {} {}\n",
        fnv(0xcbf2_9ce4_8422_2325, image),
        m.stats.instructions,
        m.stats.cycles
    );
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the fingerprint file opens");
    f.write_all(line.as_bytes())
        .expect("the fingerprint is written");
}

/// Running a suite on the host CPU through `/dev/kvm`, for comparison.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod kvm {
    use super::*;

    /// Builds `p`, loads it with nestemu's Multiboot loader into a machine
    /// made from `cfg`, and runs it on the host CPU through `/dev/kvm`
    /// instead of nestemu's interpreter (`difftest::boot`). `Err` when
    /// `/dev/kvm` is missing or the run could not be set up or ended in an
    /// exit the runner does not model.
    pub fn run(p: &Program, cfg: MachineConfig) -> Result<Outcome, String> {
        if !difftest::boot::available() {
            return Err("/dev/kvm is not available".into());
        }
        let built = p.build().map_err(|e| format!("building the guest: {e}"))?;
        let mut m = Machine::new(cfg);
        multiboot::boot(&mut m, &built.image, "kit", &[]).map_err(|e| format!("loading: {e}"))?;
        let run = difftest::boot::run_prepared(&mut m, std::time::Duration::from_secs(120))?;
        let mut o = outcome(&built, m, run.stop);
        o.serial = String::from_utf8_lossy(&run.serial).into_owned();
        Ok(o)
    }

    /// CPUID leaf `function`, subleaf `index` (EAX, EBX, ECX, EDX) of the
    /// CPU a KVM run gets (zeros where `/dev/kvm` is missing).
    pub fn cpuid(function: u32, index: u32) -> [u32; 4] {
        difftest::boot::supported_cpuid(function, index).unwrap_or_default()
    }
}
