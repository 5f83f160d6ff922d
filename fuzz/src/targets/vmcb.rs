//! `vmcb`: random VMCB contents before VMRUN, two ways.
//!
//! - **Model**: `svm_model::vmrun` on a known-good long-mode,
//!   protected-mode or real-mode VMCB with random fields set and bits
//!   flipped, under the `amd` configuration or one with features removed.
//! - **Machine**: an L1 hypervisor kit program (built once, as
//!   `testsuites/tests/svm_random_vmcb.rs` does) that runs VMRUN on a VMCB
//!   the host overwrites per input, up to four times (continuing at NRIP
//!   when there is one), logging each exit code; L2 runs generated code.
//!
//! Defined: the model enters or reports a named consistency check; every
//! exit code the L1 saw is one APM Vol. 2 appendix C names; the machine
//! stops.

use super::{code, stop_outcome};
use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use guestkit::svm::{self, l2_vmcb, SvmProgram, VMCB2};
use iced_x86::code_asm::*;
use nestemu::cpu::cpuid::CpuModel;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig};
use svm_model::vmcb::{VmcbBuilder, VMCB_SIZE};
use svm_model::{
    vmrun, CpuState, ExitCode, PageMem, SvmAccess, SvmConfig, VmcbCache, VmcbField, VmcbImage,
    VmrunOutcome,
};

/// The exit log: a count, then one exit code per VMRUN.
const LOG: u64 = 0x48_0000;
/// VMRUNs per input.
const RUNS: i32 = 4;
/// Where L2 starts.
const L2_CODE: u64 = 0x49_0000;
/// Bytes of L2 code.
const L2_LEN: usize = 128;
/// Instructions per machine run.
const MAX_INSNS: u64 = 300_000;

/// The L1 program: enable SVM, then VMRUN the VMCB at [`VMCB2`] up to
/// [`RUNS`] times, logging exit codes.
fn program() -> guestkit::Program {
    let mut p = SvmProgram::new();
    p.case("fuzz VMRUN", |a, _| {
        let mut lp = a.label();
        let mut same = a.label();
        a.xor(r12d, r12d)?;
        a.set(&mut lp)?;
        svm::vmrun(a, VMCB2)?;
        svm::get(a, rax, VMCB2, VmcbField::ExitCode)?;
        a.mov(qword_ptr(r12 * 8 + (LOG + 8) as i32), rax)?;
        a.inc(r12)?;
        a.mov(qword_ptr(LOG as u32 as u64), r12)?;
        svm::get(a, rax, VMCB2, VmcbField::NRip)?;
        a.test(rax, rax)?;
        a.jz(same.l)?;
        a.mov(rcx, VMCB2 + VmcbField::Rip.offset() as u64)?;
        a.mov(qword_ptr(rcx), rax)?;
        a.set(&mut same)?;
        a.cmp(r12, RUNS)?;
        a.jb(lp.l)
    });
    p.finish()
}

/// Changes fields and flips bits of `img`.
fn scramble(src: &mut Source, img: &mut VmcbImage) {
    for _ in 0..src.below(8) {
        let f = src.pick(VmcbField::ALL);
        let v = match src.below(4) {
            0 => img.get(f) ^ 1 << src.below(64),
            1 => src.u8() as u64,
            _ => src.interesting_u64(),
        };
        img.set(f, v);
    }
    let bytes = img.as_bytes_mut();
    for _ in 0..src.below(6) {
        let at = src.below(VMCB_SIZE as u64) as usize;
        bytes[at] ^= 1 << src.below(8);
    }
}

/// The vmcb target.
#[derive(Debug)]
pub struct Vmcb {
    image: Vec<u8>,
}

impl Vmcb {
    /// Builds the L1 program.
    pub fn new() -> Self {
        let built = program().build().expect("the VMCB fuzz program assembles");
        Self { image: built.image }
    }

    fn model(&self, src: &mut Source) -> Verdict {
        let mut img = match src.below(4) {
            0 => VmcbBuilder::protected_mode(),
            1 => VmcbBuilder::real_mode(),
            _ => VmcbBuilder::long_mode(),
        }
        .build();
        scramble(src, &mut img);
        let mut cfg = SvmConfig::amd();
        if src.chance(1, 4) {
            cfg.long_mode = src.bool();
            cfg.cr4_allowed ^= 1 << src.below(32);
        }
        let host = CpuState::long_mode_host(0xffff_8000_0000_1234);
        let mut mem = PageMem::new();
        const VMCB: u64 = 0x5000;
        const HSAVE: u64 = 0x6000;
        img.write(&mut mem, VMCB, SvmAccess::VmcbWrite);
        let mut cache = VmcbCache::default();
        let out = vmrun(&cfg, &host, VMCB, HSAVE, &mut mem, &mut cache);
        // A second VMRUN of the same VMCB with clean bits: the cache path.
        let again = vmrun(&cfg, &host, VMCB, HSAVE, &mut mem, &mut cache);
        let label = |o: &VmrunOutcome| match o {
            VmrunOutcome::Entered(_) => "entered".to_string(),
            VmrunOutcome::Invalid(i) => format!("VMEXIT_INVALID ({:?})", i.check),
        };
        Ok(Outcome::new(format!(
            "model: {}, again {}",
            label(&out),
            label(&again)
        )))
    }

    /// The L1 machine for an input, loaded and not yet run (also the
    /// starting point of `snapshot` inputs).
    pub fn prepare(&self, src: &mut Source) -> Result<Machine, String> {
        let mut img = l2_vmcb(0);
        img.set(VmcbField::Rip, L2_CODE);
        scramble(src, &mut img);
        let l2 = if src.chance(1, 4) {
            vec![0x0f, 0x01, 0xd9, 0xf4] // vmmcall; hlt
        } else {
            code::stream(src, 64, L2_LEN)
        };
        let mut m = Machine::new(MachineConfig {
            model: CpuModel::amd(),
            mem_bytes: 64 << 20,
            max_insns: Some(MAX_INSNS),
            ..Default::default()
        });
        multiboot::boot(&mut m, &self.image, "fuzz", &[])
            .map_err(|e| format!("the kit image does not load: {e}"))?;
        m.load_phys(VMCB2, img.as_bytes());
        m.load_phys(L2_CODE, &l2);
        Ok(m)
    }

    fn machine(&self, src: &mut Source) -> Verdict {
        let mut m = self.prepare(src)?;
        let stop = super::run_bounded(&mut m);
        let mut o = stop_outcome(&m, stop.as_ref());
        let mut n = [0u8; 8];
        m.peek_phys(LOG, &mut n);
        let n = u64::from_le_bytes(n).min(RUNS as u64);
        let mut codes = Vec::new();
        for k in 0..n {
            let mut c = [0u8; 8];
            m.peek_phys(LOG + 8 + 8 * k, &mut c);
            let code = ExitCode(u64::from_le_bytes(c));
            let name = code
                .name()
                .ok_or_else(|| format!("#VMEXIT with undefined exit code {:#x}", code.0))?;
            codes.push(name);
        }
        o.signal = o.signal << 32
            ^ codes
                .iter()
                .fold(n, |h, c| h.wrapping_mul(31).wrapping_add(c.len() as u64));
        o.label = format!(
            "machine: {} exit(s), first {}; {}",
            n,
            codes.first().copied().unwrap_or("-"),
            o.label
        );
        Ok(o)
    }
}

impl Default for Vmcb {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Vmcb {
    fn name(&self) -> &'static str {
        "vmcb"
    }

    fn max_len(&self) -> usize {
        512
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        if src.bool() {
            self.model(&mut src)
        } else {
            self.machine(&mut src)
        }
    }
}
