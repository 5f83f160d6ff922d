//! Shared by the SVM guest suites (`svm_*.rs`): an L1 hypervisor program on
//! the `amd` preset whose cases each run an L2 guest and leave what its
//! #VMEXIT reported in their record's registers.
#![allow(dead_code)]

use guestkit::svm::{self, Svm, SvmProgram, ENABLE_CASE, VMCB};
use guestkit::{Asm, AsmResult, Label};
use iced_x86::code_asm::*;
use nestemu::cpu::cpuid::CpuModel;
use nestemu::MachineConfig;
use svm_model::VmcbField as F;
use testsuites::check::{self, Check};
use testsuites::Outcome;

/// Record registers the exit fields land in (see [`read_exit`]).
pub mod reg {
    /// EXITCODE.
    pub const CODE: usize = 0; // RAX
    /// EXITINFO1.
    pub const INFO1: usize = 3; // RBX
    /// EXITINFO2.
    pub const INFO2: usize = 1; // RCX
    /// NRIP.
    pub const NRIP: usize = 2; // RDX
    /// EXITINTINFO.
    pub const INTINFO: usize = 6; // RSI
    /// Guest RIP in the VMCB.
    pub const RIP: usize = 7; // RDI
    /// Guest RAX in the VMCB.
    pub const GUEST_RAX: usize = 8; // R8
    /// Free for the case (R9-R15).
    pub const R9: usize = 9;
    /// R10.
    pub const R10: usize = 10;
    /// R11.
    pub const R11: usize = 11;
    /// R12.
    pub const R12: usize = 12;
    /// R13.
    pub const R13: usize = 13;
    /// R14.
    pub const R14: usize = 14;
    /// R15.
    pub const R15: usize = 15;
}

/// Loads the exit fields of the VMCB at `vmcb` into the registers of [`reg`].
/// Clobbers RAX, RBX, RCX, RDX, RSI, RDI, R8.
pub fn read_exit(a: &mut Asm, vmcb: u64) -> AsmResult {
    svm::get(a, rbx, vmcb, F::ExitInfo1)?;
    svm::get(a, rcx, vmcb, F::ExitInfo2)?;
    svm::get(a, rdx, vmcb, F::NRip)?;
    svm::get(a, rsi, vmcb, F::ExitIntInfo)?;
    svm::get(a, rdi, vmcb, F::Rip)?;
    svm::get(a, r8, vmcb, F::Rax)?;
    svm::get(a, rax, vmcb, F::ExitCode)
}

/// A table of cases and their checks.
pub struct Suite {
    pub p: SvmProgram,
    pub table: Vec<(String, Vec<Check>)>,
}

impl Suite {
    pub fn new() -> Self {
        let mut s = Self {
            p: SvmProgram::new(),
            table: Vec::new(),
        };
        s.table
            .push((ENABLE_CASE.into(), vec![check::no_exception()]));
        s
    }

    /// A case whose body sees the SVM labels.
    pub fn case(
        &mut self,
        name: &str,
        body: impl Fn(&mut Asm, &Svm) -> AsmResult + 'static,
        checks: Vec<Check>,
    ) {
        self.p.case(name, body);
        self.table.push((name.into(), checks));
    }

    /// Builds and runs the program on the `amd` preset and checks every case.
    pub fn run(self) -> Outcome {
        let Suite { p, table } = self;
        let o = testsuites::run(&p.finish(), amd());
        check::verify(&o, &table);
        assert!(o.passed(), "stop {:?}\nserial:\n{}", o.stop, o.serial);
        o
    }
}

/// A machine with the `amd` preset.
pub fn amd() -> MachineConfig {
    MachineConfig {
        model: CpuModel::amd(),
        ..testsuites::config()
    }
}

/// Runs the standard L2 setup: template VMCB, `extra` changes, RIP := `l2`,
/// VMRUN, then the exit fields into the record registers.
pub fn run_l2(
    a: &mut Asm,
    s: &Svm,
    l2: &Label,
    extra: impl Fn(&mut Asm) -> AsmResult,
) -> AsmResult {
    s.init_vmcb(a, VMCB)?;
    svm::set_label(a, VMCB, F::Rip, l2)?;
    extra(a)?;
    svm::vmrun(a, VMCB)?;
    read_exit(a, VMCB)
}

/// Emits L2 code inline (jumped over) and returns its label.
pub fn l2_code(a: &mut Asm, code: impl Fn(&mut Asm) -> AsmResult) -> Result<Label, IcedError> {
    let mut l2 = a.label();
    let mut over = a.label();
    a.jmp(over.l)?;
    a.set(&mut l2)?;
    code(a)?;
    a.set(&mut over)?;
    Ok(l2)
}

/// GPR `n` equals `v`.
pub fn eq(n: usize, v: u64) -> Check {
    check::gpr(n, v)
}

/// The exit code equals `code`.
pub fn code(c: svm_model::ExitCode) -> Check {
    Box::new(move |r| {
        let got = r.gprs[reg::CODE];
        (got == c.0).then_some(()).ok_or_else(|| {
            format!(
                "exit code {got:#x} ({}), expected {:#x} ({}); info1 {:#x} info2 {:#x} intinfo {:#x} rip {:#x}",
                svm_model::ExitCode(got).name().unwrap_or("?"),
                c.0,
                c.name().unwrap_or("?"),
                r.gprs[reg::INFO1],
                r.gprs[reg::INFO2],
                r.gprs[reg::INTINFO],
                r.gprs[reg::RIP],
            )
        })
    })
}
