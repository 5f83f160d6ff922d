//! Snapshots: the whole machine state in a file, taken between two slices of
//! execution, from which a run continues exactly as it would have without
//! stopping (same guest state, serial output and `--stats` counters; DESIGN.md
//! principle 1).
//!
//! What is saved is the architectural and modelled state: CPU registers and
//! event state, RAM (the non-zero pages), devices and their clocks, the MMU
//! model (TLBs, paging-structure caches and counters: their contents decide
//! hits, misses and, after a missing INVLPG, even what a guest reads), VT-x
//! and AMD-V state, debug state, the random source, the counters and the
//! configuration; on an SMP machine every vCPU's and the scheduler's. What
//! is not saved is derived and rebuilt on restore: the
//! decoded-code cache (its two counters carry on), the translation context
//! (from the registers) and the VMX capability MSRs (from the CPU model).
//!
//! The format, all integers little-endian:
//!
//! ```text
//! "NESTEMU-SNAPSHOT"          16 bytes
//! version                     u32 (this is version 1)
//! state length                u64
//! state                       JSON (human-readable: registers, devices, ...)
//! page count                  u64
//! pages                       page count x (page index u64, 4096 bytes)
//! checksum                    u64, FNV-1a of every byte before it
//! ```
//!
//! A page index counts 4-KiB pages of the RAM buffer (low RAM, then the part
//! above 4 GiB). Anything wrong with a file (not a snapshot, another version,
//! truncated, corrupt, inconsistent) is a [`SnapshotError`] naming the
//! problem, which the command line reports with exit status 2.

use crate::cost::CostModel;
use crate::cpu::cpuid::CpuModel;
use crate::cpu::Cpu;
use crate::debug::DebugState;
use crate::devices::{Devices, PlatformConfig};
use crate::machine::{Machine, MachineConfig};
use crate::memory::PAGE;
use crate::stats::Stats;
use crate::virt::Virt;
use serde::{Deserialize, Serialize};

/// The first 16 bytes of every snapshot.
pub const MAGIC: &[u8; 16] = b"NESTEMU-SNAPSHOT";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Why a snapshot cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotError(pub String);

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SnapshotError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SnapshotError> {
    Err(SnapshotError(msg.into()))
}

/// The configuration as saved.
#[derive(Serialize, Deserialize)]
struct ConfigState {
    model: CpuModel,
    mem_bytes: u64,
    max_insns: Option<u64>,
    rng_seed: u64,
    cost: CostModel,
    tlb: Option<mmu::TlbConfig>,
    platform: PlatformConfig,
}

/// Everything but RAM.
#[derive(Serialize, Deserialize)]
struct State {
    config: ConfigState,
    cpu: Cpu,
    dev: Devices,
    stats: Stats,
    mmu: mmu::Mmu,
    virt: Virt,
    dbg: DebugState,
    rng: u64,
    extra_steps: u64,
    decoded_blocks: u64,
    invalidated_blocks: u64,
    /// The parked vCPUs and the scheduler (absent from one-vCPU snapshots
    /// of earlier builds).
    #[serde(default)]
    smp: crate::smp::Smp,
}

/// FNV-1a, 64 bits: catches truncation and corruption, cheaply.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Machine {
    /// The snapshot of this machine. Take it between slices (after
    /// [`Machine::run_slice`] returned), never from inside an instruction.
    pub fn save_snapshot(&self) -> Vec<u8> {
        let c = &self.config;
        let state = State {
            config: ConfigState {
                model: c.model.clone(),
                mem_bytes: c.mem_bytes,
                max_insns: c.max_insns,
                rng_seed: c.rng_seed,
                cost: c.cost.clone(),
                tlb: c.tlb.clone(),
                platform: c.platform.clone(),
            },
            cpu: self.cpu.clone(),
            dev: self.dev.clone(),
            stats: self.stats.clone(),
            mmu: self.mmu.clone(),
            virt: self.virt.clone(),
            dbg: self.dbg,
            rng: self.rng,
            extra_steps: self.extra_steps,
            decoded_blocks: self.code.decoded_blocks,
            invalidated_blocks: self.code.invalidated_blocks,
            smp: self.smp.clone(),
        };
        let json = serde_json::to_vec(&state).expect("machine state serializes");
        let ram = self.ram.as_slice();
        let pages: Vec<usize> = (0..ram.len() / PAGE as usize)
            .filter(|&p| {
                ram[p * PAGE as usize..(p + 1) * PAGE as usize]
                    .iter()
                    .any(|&b| b != 0)
            })
            .collect();
        let mut out = Vec::with_capacity(48 + json.len() + pages.len() * (8 + PAGE as usize));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(pages.len() as u64).to_le_bytes());
        for p in pages {
            out.extend_from_slice(&(p as u64).to_le_bytes());
            out.extend_from_slice(&ram[p * PAGE as usize..(p + 1) * PAGE as usize]);
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The machine a snapshot holds, ready to continue.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Machine, SnapshotError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return err("not a nestemu snapshot (wrong magic bytes)");
        }
        let mut r = Reader {
            bytes,
            at: MAGIC.len(),
        };
        let version = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        if version != VERSION {
            return err(format!(
                "snapshot format version {version}; this nestemu reads version {VERSION}"
            ));
        }
        if bytes.len() < r.at + 8 + 8 + 8 {
            return err("snapshot is truncated");
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return err("snapshot is corrupt or truncated (checksum mismatch)");
        }
        let r = &mut Reader {
            bytes: body,
            at: r.at,
        };
        let json_len = r.u64()?;
        let json = r.take_len(json_len, "the machine state")?;
        let invalid =
            |e: serde_json::Error| SnapshotError(format!("snapshot machine state is invalid: {e}"));
        let value: serde_json::Value = serde_json::from_slice(json).map_err(invalid)?;
        check_counters(&value)?;
        let state: State = serde_json::from_value(value).map_err(invalid)?;
        check(&state)?;
        let page_count = r.u64()?;
        let need = page_count.checked_mul(8 + PAGE);
        if need != Some((body.len() - r.at) as u64) {
            return err(format!(
                "snapshot says {page_count} RAM pages but holds {} bytes of them",
                body.len() - r.at
            ));
        }
        let c = state.config;
        let mut m = Machine::try_new(MachineConfig {
            model: c.model,
            mem_bytes: c.mem_bytes,
            max_insns: c.max_insns,
            rng_seed: c.rng_seed,
            cost: c.cost,
            tlb: c.tlb,
            platform: c.platform,
        })
        .map_err(|e| SnapshotError(format!("cannot rebuild the machine: {e}")))?;
        let ram_pages = m.ram.size() / PAGE;
        for _ in 0..page_count {
            let p = r.u64()?;
            let data = r.take(PAGE as usize)?;
            if p >= ram_pages {
                return err(format!(
                    "snapshot page {p} lies beyond the {ram_pages} pages of RAM"
                ));
            }
            let off = (p * PAGE) as usize;
            m.ram.slice_mut(off, PAGE as usize).copy_from_slice(data);
        }
        let caps = m.virt.vmx.caps.clone();
        m.cpu = state.cpu;
        m.dev = state.dev;
        m.stats = state.stats;
        m.mmu = state.mmu;
        m.virt = state.virt;
        m.virt.vmx.caps = caps.clone();
        m.dbg = state.dbg;
        m.rng = state.rng;
        m.extra_steps = state.extra_steps;
        m.code.decoded_blocks = state.decoded_blocks;
        m.code.invalidated_blocks = state.invalidated_blocks;
        if state.smp.count() != m.dev.lapics.len() || state.smp.current >= m.dev.lapics.len() {
            return err(format!(
                "snapshot holds {} vCPUs for {} local APICs",
                state.smp.count(),
                m.dev.lapics.len()
            ));
        }
        m.smp = state.smp;
        // The MMUs' running cost is derived state, not stored.
        let costs = m.config.cost.mmu_costs();
        m.for_each_vcpu(|v| {
            v.mmu.set_costs(costs);
            v.virt.vmx.caps = caps.clone();
            v.paging_changed();
        });
        Ok(m)
    }
}

/// Counters at or above this are damage (see [`check_counters`]).
const COUNTER_LIMIT: u64 = 1 << 62;

/// The parts of the state that hold only counters.
const COUNTERS: &[&str] = &[
    "/stats",
    "/mmu/counters",
    "/extra_steps",
    "/decoded_blocks",
    "/invalidated_blocks",
    "/dev/time",
    "/dev/unclaimed",
];

/// Counters only ever count up, one event at a time: no run reaches 2^62
/// (73 years of cycles at 2 GHz), and below it the sums the machine forms
/// with them cannot overflow. Checked on the parsed JSON so that every
/// counter is covered, present and future.
fn check_counters(state: &serde_json::Value) -> Result<(), SnapshotError> {
    fn walk(v: &serde_json::Value, at: &str) -> Result<(), SnapshotError> {
        match v {
            serde_json::Value::Number(n) if !matches!(n.as_u64(), Some(n) if n < COUNTER_LIMIT) => {
                err(format!(
                    "snapshot machine state is invalid: the counter {at} is {n}"
                ))
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(|i| walk(i, at)),
            serde_json::Value::Object(map) => map.values().try_for_each(|i| walk(i, at)),
            _ => Ok(()),
        }
    }
    COUNTERS
        .iter()
        .filter_map(|p| Some((p, state.pointer(p)?)))
        .try_for_each(|(p, v)| walk(v, p))
}

/// The invariants of the machine state that the rest of the emulator relies
/// on and that a damaged or hostile file could break (a well-formed state
/// always keeps them): checked before anything is built from it.
fn check(state: &State) -> Result<(), SnapshotError> {
    let mode = &state.cpu.mode;
    let width_ok = |bits: u8| matches!(bits, 16 | 32 | 64);
    if !width_ok(mode.code_bits) || !width_ok(mode.stack_bits) || mode.cpl > 3 {
        return err(format!(
            "snapshot machine state is invalid: CPU mode with {}-bit code, {}-bit stack, CPL {}",
            mode.code_bits, mode.stack_bits, mode.cpl
        ));
    }
    if (mode.mode == mmu::CpuMode::Long64) != (mode.code_bits == 64) {
        return err(format!(
            "snapshot machine state is invalid: {:?} mode with {}-bit code",
            mode.mode, mode.code_bits
        ));
    }
    let invalid =
        |what: String| SnapshotError(format!("snapshot machine state is invalid: {what}"));
    state.cpu.flags.check().map_err(invalid)?;
    state.dev.pic.master.check().map_err(invalid)?;
    state.dev.pic.slave.check().map_err(invalid)?;
    let dev = &state.dev;
    if dev.config != state.config.platform {
        return err(
            "snapshot machine state is invalid: the devices' platform differs from the machine's",
        );
    }
    if dev.lapics.is_empty() || dev.lapics.len() > 64 || dev.current_cpu >= dev.lapics.len() {
        return err(format!(
            "snapshot machine state is invalid: {} local APICs, current {}",
            dev.lapics.len(),
            dev.current_cpu
        ));
    }
    if dev.clock.tsc_hz == 0 {
        return err("snapshot machine state is invalid: a TSC frequency of 0 Hz");
    }
    if dev.ioapic.redir.len() != crate::devices::ioapic::PINS {
        return Err(invalid(format!(
            "an I/O APIC with {} redirection entries",
            dev.ioapic.redir.len()
        )));
    }
    Ok(())
}

/// A cursor over the snapshot bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(s) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(s)
            }
            _ => err("snapshot is truncated"),
        }
    }

    fn take_len(&mut self, n: u64, what: &str) -> Result<&'a [u8], SnapshotError> {
        if n > (self.bytes.len() - self.at) as u64 {
            return err(format!("snapshot is truncated ({what})"));
        }
        self.take(n as usize)
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Writes the snapshot of `m` to `path`.
pub fn write(m: &Machine, path: &str) -> std::io::Result<()> {
    std::fs::write(path, m.save_snapshot())
}

/// Reads the machine a snapshot file holds.
pub fn read(path: &str) -> Result<Machine, SnapshotError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SnapshotError(format!("cannot read snapshot '{path}': {e}")))?;
    Machine::from_snapshot(&bytes).map_err(|e| SnapshotError(format!("'{path}': {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small machine's snapshot.
    fn base() -> Vec<u8> {
        Machine::new(MachineConfig {
            mem_bytes: 2 << 20,
            max_insns: Some(1000),
            ..Default::default()
        })
        .save_snapshot()
    }

    /// `file` with its machine state edited by `edit` and the checksum
    /// made valid again: damage that only the checks past the checksum see.
    fn edited(file: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let len = u64::from_le_bytes(file[20..28].try_into().unwrap()) as usize;
        let mut v: serde_json::Value = serde_json::from_slice(&file[28..28 + len]).unwrap();
        edit(&mut v);
        let json = serde_json::to_vec(&v).unwrap();
        let mut out = file[..20].to_vec();
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&file[28 + len..file.len() - 8]);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn set(file: &[u8], pointer: &str, value: serde_json::Value) -> Vec<u8> {
        edited(file, |v| {
            *v.pointer_mut(pointer).expect("the field exists") = value
        })
    }

    fn load_err(file: &[u8]) -> String {
        match Machine::from_snapshot(file) {
            Ok(_) => panic!("a damaged snapshot loaded"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn round_trip_of_an_unedited_state() {
        let file = edited(&base(), |_| {});
        let mut m = Machine::from_snapshot(&file).expect("loads");
        m.run();
    }

    /// Found by the `snapshot` fuzz target: a code size the decoder does
    /// not take panicked in iced-x86 on the first fetch.
    #[test]
    fn an_impossible_cpu_mode_is_an_error() {
        let e = load_err(&set(&base(), "/cpu/mode/code_bits", 3.into()));
        assert!(e.contains("3-bit code"), "{e}");
        let e = load_err(&set(&base(), "/cpu/mode/cpl", 7.into()));
        assert!(e.contains("CPL 7"), "{e}");
        let e = load_err(&set(&base(), "/cpu/mode/code_bits", 64.into()));
        assert!(e.contains("Real mode with 64-bit code"), "{e}");
    }

    /// Found by the snapshot sweep: a processor count of 2^31 built a
    /// 2^31-entry MADT before the machine could even start.
    #[test]
    fn a_huge_processor_count_builds_a_bounded_machine() {
        let file = edited(&base(), |v| {
            *v.pointer_mut("/config/platform/cpus").unwrap() = (1u64 << 31).into();
            *v.pointer_mut("/dev/config/cpus").unwrap() = (1u64 << 31).into();
        });
        let m = Machine::from_snapshot(&file).expect("loads");
        let madt: usize = m.dev.acpi_tables().iter().map(|(_, b)| b.len()).sum();
        assert!(madt < 64 << 10, "{madt} bytes of ACPI tables");
    }

    #[test]
    fn inconsistent_devices_are_an_error() {
        let e = load_err(&set(&base(), "/dev/current_cpu", 5.into()));
        assert!(e.contains("1 local APICs, current 5"), "{e}");
        let e = load_err(&set(&base(), "/dev/lapics", serde_json::json!([])));
        assert!(e.contains("0 local APICs"), "{e}");
        let e = load_err(&set(&base(), "/dev/clock/tsc_hz", 0.into()));
        assert!(e.contains("0 Hz"), "{e}");
        let e = load_err(&set(&base(), "/dev/config/cpus", 2.into()));
        assert!(e.contains("platform differs"), "{e}");
    }

    /// Found by the snapshot sweep: each of these overflowed a shift or a
    /// sum on the first instructions.
    #[test]
    fn out_of_range_values_are_errors() {
        let cases: [(&str, u64, &str); 12] = [
            ("/mmu/counters/walks", u64::MAX, "counter /mmu/counters is"),
            ("/extra_steps", 1 << 62, "counter /extra_steps is"),
            ("/mmu/dtlb/small/ways", 0, "16 sets of 0 ways"),
            ("/mmu/stlb/small/set_bits", 255, "255 set bits"),
            ("/mmu/itlb/small/fifo/0", 255, "a pointer past the last way"),
            ("/cpu/flags/width", 0, "flags of a 0-bit operation"),
            ("/dev/pic/master/priority_add", 255, "lowest priority 255"),
            ("/stats/cycles", u64::MAX, "counter /stats is"),
            ("/decoded_blocks", u64::MAX, "counter /decoded_blocks is"),
            (
                "/dev/unclaimed/mmio_reads",
                1 << 63,
                "counter /dev/unclaimed is",
            ),
            ("/config/model/widths/phys_bits", 255, "255 physical"),
            ("/config/model/widths/linear_bits", 0, "0 linear"),
        ];
        let file = base();
        for (pointer, value, needle) in cases {
            let e = load_err(&set(&file, pointer, value.into()));
            assert!(e.contains(needle), "{pointer} = {value}: {e}");
        }
    }

    #[test]
    fn inconsistent_arrays_are_errors() {
        let file = base();
        let e = load_err(&set(&file, "/mmu/dtlb/small/slots", serde_json::json!([])));
        assert!(e.contains("0 slots"), "{e}");
        let e = load_err(&set(&file, "/dev/ioapic/redir", serde_json::json!([])));
        assert!(e.contains("0 redirection entries"), "{e}");
        // A valid TLB entry whose frame lies past any physical address.
        let e = load_err(&edited(&file, |v| {
            let slot = v.pointer_mut("/mmu/dtlb/small/slots/0").unwrap();
            slot["key"] = 1.into();
            slot["guest_shift"] = 12.into();
            slot["frame"] = u64::MAX.into();
        }));
        assert!(e.contains("an entry no fill makes"), "{e}");
    }

    #[test]
    fn damaged_framing_is_an_error() {
        let file = base();
        let mut bad = file.clone();
        bad[16] = 9;
        assert!(load_err(&bad).contains("version 9"));
        assert!(load_err(&file[..file.len() - 1]).contains("checksum"));
        assert!(
            load_err(&file[..30]).contains("truncated")
                || load_err(&file[..30]).contains("checksum")
        );
        // A state length past the end, with a valid checksum.
        let mut bad = file[..file.len() - 8].to_vec();
        bad[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        let sum = fnv1a(&bad);
        bad.extend_from_slice(&sum.to_le_bytes());
        assert!(load_err(&bad).contains("truncated"));
    }
}
