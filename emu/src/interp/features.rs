//! Which instructions the CPU model makes available: iced-x86 reports the CPUID
//! feature(s) an instruction needs; an instruction whose feature the model does
//! not advertise raises #UD, as on a CPU without it (SDM Vol. 2A 3.1.1.5,
//! "CPUID support").

use crate::cpu::cpuid::{CpuModel, Feature};
use iced_x86::CpuidFeature as C;

/// What an iced-x86 CPUID feature needs of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: the base architecture.
    Base,
    /// A model feature.
    Feature(Feature),
    /// An extension nestemu never advertises.
    Never,
}

/// The model feature an iced-x86 CPUID feature corresponds to.
pub fn model_feature(f: C) -> Needs {
    Needs::Feature(match f {
        C::INTEL8086
        | C::INTEL186
        | C::INTEL286
        | C::INTEL386
        | C::INTEL486
        | C::X64
        | C::CPUID
        | C::MULTIBYTENOP
        | C::PAUSE
        | C::RDPMC
        // RSM exists everywhere and is #UD outside SMM, which nestemu never
        // enters; its SVM intercept precedes that #UD.
        | C::SMM => return Needs::Base,
        C::ADX => Feature::Adx,
        C::BMI1 => Feature::Bmi1,
        C::BMI2 => Feature::Bmi2,
        C::CLFLUSHOPT => Feature::Clflushopt,
        C::CLFSH => Feature::Clflush,
        C::CMOV => Feature::Cmov,
        C::CMPXCHG16B => Feature::Cx16,
        C::CX8 => Feature::Cx8,
        C::FPU | C::FPU287 | C::FPU387 => Feature::Fpu,
        C::FSGSBASE => Feature::Fsgsbase,
        C::FXSR => Feature::Fxsr,
        C::INVEPT | C::INVVPID | C::VMX => Feature::Vmx,
        C::INVPCID => Feature::Invpcid,
        C::LZCNT => Feature::Abm,
        C::MMX => Feature::Mmx,
        C::MONITOR => Feature::Monitor,
        C::MOVBE => Feature::Movbe,
        C::MSR => Feature::Msr,
        C::PCLMULQDQ => Feature::Pclmulqdq,
        C::PKU => Feature::Pku,
        C::POPCNT => Feature::Popcnt,
        C::PREFETCHW => Feature::Prefetchw,
        C::RDPID => Feature::Rdpid,
        C::RDRAND => Feature::Rdrand,
        C::RDSEED => Feature::Rdseed,
        C::RDTSCP => Feature::Rdtscp,
        C::SEP => Feature::Sep,
        // STGI is SKINIT_or_SVM: usable with either feature (APM Vol. 2 15.4).
        C::SKINIT | C::SVM | C::SKINIT_or_SVM => Feature::Svm,
        C::SMAP => Feature::Smap,
        C::SSE => Feature::Sse,
        C::SSE2 => Feature::Sse2,
        C::SSE3 => Feature::Sse3,
        C::SSSE3 => Feature::Ssse3,
        C::SSE4_1 => Feature::Sse41,
        C::SSE4_2 => Feature::Sse42,
        C::SYSCALL => Feature::Syscall,
        C::TSC => Feature::Tsc,
        C::XSAVE => Feature::Xsave,
        C::XSAVEOPT => Feature::Xsaveopt,
        C::XSAVEC => Feature::Xsavec,
        C::XSAVES => Feature::Xsaves,
        _ => return Needs::Never,
    })
}

/// True if every feature the instruction needs is advertised by `model`.
pub fn available(model: &CpuModel, needs: &[C]) -> bool {
    needs.iter().all(|&f| match model_feature(f) {
        Needs::Base => true,
        Needs::Feature(feat) => model.has(feat),
        Needs::Never => false,
    })
}
