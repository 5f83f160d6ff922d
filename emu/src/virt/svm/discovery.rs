//! Discovery and enabling (APM Vol. 2 15.4, "Enabling SVM"; 15.30, "SVM
//! Related MSRs"; APM Vol. 3 appendix E, CPUID Fn8000_0001_ECX[SVM] and
//! Fn8000_000A): the SVM configuration of the CPU model, the CPUID leaves,
//! VM_CR, VM_HSAVE_PA, SVM_KEY, the TSC ratio, and the rule VM_CR.SVMDIS puts
//! on EFER.SVME.

use crate::cpu::cpuid::{cpuid as base_cpuid, CpuidDynamic, Feature};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use mmu::msr::IA32_EFER;
use mmu::Efer;
use svm_model::{SvmConfig, SvmFeatures};

/// The SVM features this binding implements and the guest suite tests
/// (`testsuites/tests/svm_*.rs`): what the `amd` preset advertises. Not
/// advertised: SKINIT (no secure loader), and everything `svm-model` does not
/// model (LBR virtualization, AVIC, SEV, ...).
pub fn implemented() -> SvmFeatures {
    SvmFeatures {
        svm: true,
        revision: 1,
        // ASIDs tag the TLB as 16-bit VPIDs in the mmu crate.
        nasid: 32768,
        np: true,
        svml: true,
        nrips: true,
        tsc_rate_msr: true,
        vmcb_clean: true,
        flush_by_asid: true,
        decode_assists: true,
        pause_filter: true,
        pause_filter_threshold: true,
        vmsave_virt: true,
        vgif: true,
        vnmi: true,
        idle_hlt: true,
        ..SvmFeatures::none()
    }
}

/// The SVM configuration of machine `m`'s CPU model: the implemented features
/// if the model has SVM, its address widths and long-mode support, and the
/// CR4 and EFER bits the interpreter implements (every other bit is MBZ for
/// VMRUN's consistency checks, APM Vol. 2 15.5.1).
pub fn config(m: &Machine) -> SvmConfig {
    let model = &m.config.model;
    let features = if model.has(Feature::Svm) {
        implemented()
    } else {
        SvmFeatures::none()
    };
    SvmConfig {
        features,
        widths: model.widths,
        long_mode: model.has(Feature::Lm),
        cr4_allowed: m.cr4_allowed().bits(),
        efer_allowed: (m.efer_writable() | Efer::LMA).bits(),
    }
}

/// CPUID: the SVM leaf Fn8000_000A, and Fn8000_0000 raised to reach it.
/// Fn8000_0001_ECX[SVM] comes from the feature table.
pub fn cpuid(m: &Machine, leaf: u32, sub: u32) -> Option<[u32; 4]> {
    let f = &m.virt.svm.cfg.features;
    if !f.svm {
        return None;
    }
    match leaf {
        0x8000_0000 => {
            let mut r = base_cpuid(&m.config.model, CpuidDynamic::default(), leaf, sub);
            r[0] = r[0].max(0x8000_000a);
            Some(r)
        }
        0x8000_0009 => Some([0; 4]),
        0x8000_000a => Some(f.cpuid_8000000a()),
        _ => None,
    }
}

/// RDMSR of VM_CR, VM_HSAVE_PA, SVM_KEY or the TSC ratio.
pub fn read_msr(m: &Machine, idx: u32) -> Option<Option<u64>> {
    let s = &m.virt.svm;
    s.msrs.rdmsr(&s.cfg, idx).map(|r| r.ok())
}

/// WRMSR of an SVM MSR; for EFER, the SVMDIS rule (the interpreter applies
/// EFER's other rules after it).
pub fn write_msr(m: &mut Machine, idx: u32, v: u64) -> Option<Flow> {
    let s = &mut m.virt.svm;
    if idx == IA32_EFER {
        if !s.cfg.features.svm {
            return None;
        }
        return match s.msrs.efer_write(&s.cfg, Efer::from_bits_retain(v)) {
            Ok(()) => None,
            Err(e) => Some(Err(Event::Exception(e))),
        };
    }
    let efer = m.cpu.sys.efer;
    s.msrs
        .wrmsr(&s.cfg, idx, v, efer)
        .map(|r| r.map_err(Event::Exception))
}

/// The TSC as the current context reads it: in guest mode scaled by the TSC
/// ratio and offset by the VMCB TSC_OFFSET (APM Vol. 2 15.30.5, 15.12.3).
pub fn tsc(m: &Machine, host_tsc: u64) -> u64 {
    let s = &m.virt.svm;
    match s.controls() {
        Some(ctl) => s.msrs.guest_tsc(&s.cfg, host_tsc, ctl.tsc_offset),
        None => host_tsc,
    }
}
