//! Running an image on nestemu, in-process.

use crate::image::{self, Image};
use crate::layout::{self, sel};
use mmu::{AccessRights, Cr0, Cr4, Efer, SegReg, SegmentCache, Selector, TableRegister};
use nestemu::cpu::cpuid::{CpuModel, Vendor};
use nestemu::{Machine, MachineConfig, Stop};

/// Instructions allowed per sequence before the run counts as hung.
const INSNS_PER_SEQUENCE: u64 = 20_000;

/// The preset to compare a host of `vendor` with.
pub fn model_for(vendor: Vendor) -> CpuModel {
    match vendor {
        Vendor::Amd => CpuModel::amd(),
        Vendor::Intel => CpuModel::intel(),
    }
}

/// A machine of `model` in the entry state with the image loaded.
pub fn machine_for(img: &Image, model: &CpuModel) -> Machine {
    let mut m = Machine::new(MachineConfig {
        model: model.clone(),
        mem_bytes: layout::RAM,
        max_insns: Some(100_000 + INSNS_PER_SEQUENCE * img.count as u64),
        ..Default::default()
    });
    for (a, b) in &img.regions {
        m.load_phys(*a, b);
    }
    // The hardware side is a KVM vCPU with no interrupt controller; here
    // the firmware hand-off leaves the 8259's IRQ 0 open with the PIT
    // ticking. Mask both chips, as a kernel that takes no device
    // interrupts does, so no sequence sees an interrupt the host cannot.
    let now = m.now();
    m.dev.port_write(0x21, 1, 0xff, now);
    m.dev.port_write(0xa1, 1, 0xff, now);
    let e = image::entry_state();
    let c = &mut m.cpu;
    c.sys.cr0 = Cr0::from_bits_retain(e.cr0);
    c.sys.cr3 = e.cr3;
    c.sys.cr4 = Cr4::from_bits_retain(e.cr4);
    c.sys.efer = Efer::from_bits_retain(e.efer);
    for s in SegReg::ALL {
        c.sys.segs[s as usize] = SegmentCache::flat(sel::KDATA, 0x3, 0, true, false);
    }
    c.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(sel::KCODE, 0xb, 0, false, true);
    c.sys.gdtr = TableRegister {
        base: layout::GDT,
        limit: image::GDT_LIMIT,
    };
    c.sys.idtr = TableRegister {
        base: layout::IDT,
        limit: 0xfff,
    };
    c.sys.tr = SegmentCache {
        selector: Selector(sel::TSS),
        base: layout::TSS,
        limit: 0x67,
        attr: AccessRights(0x8b),
    };
    c.rip = e.rip;
    c.gpr[4] = e.rsp;
    c.flags.set(2);
    c.update_mode();
    m.paging_changed();
    m
}

/// Runs the image on the AMD preset (the one the recorded regression cases,
/// taken on an AMD host, expect).
pub fn run(img: &Image) -> RunOutput {
    run_machine(img, &CpuModel::amd()).0
}

/// Runs the image on `model` and returns the machine too.
pub fn run_machine(img: &Image, model: &CpuModel) -> (RunOutput, Machine) {
    let mut m = machine_for(img, model);
    let stop = m.run();
    let mut out = vec![0u8; image::output_len(img.count)];
    m.peek_phys(layout::OUT_BASE, &mut out);
    let failed = match stop {
        Stop::DebugExit(v) if v == layout::EXIT_DONE => None,
        Stop::DebugExit(v) if v >= layout::EXIT_RING0_FAULT => Some(format!(
            "exception {} in ring 0 (the harness broke)",
            v - layout::EXIT_RING0_FAULT,
        )),
        other => Some(format!(
            "nestemu stopped: {} at rip {:#x}",
            other.describe(),
            m.cpu.rip,
        )),
    };
    let r = RunOutput {
        out,
        failed: failed.map(|f| (current(&m), f)),
    };
    (r, m)
}

fn current(m: &Machine) -> u64 {
    let mut b = [0u8; 8];
    m.peek_phys(layout::VARS + layout::var::CUR, &mut b);
    u64::from_le_bytes(b)
}

/// The result of running an image on one machine.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The output area.
    pub out: Vec<u8>,
    /// If the batch did not finish: the sequence it stopped in, and why.
    pub failed: Option<(u64, String)>,
}
