//! The harness that runs guest programs on nestemu in-process and hands back
//! what they did: serial output, how the machine stopped, and the case records.

pub mod check;

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
