//! Shared by the SVM guest suites (`svm_*.rs`): an L1 hypervisor program on
//! the `amd` preset whose cases each run an L2 guest and leave what its
//! #VMEXIT reported in their record's registers.
#![allow(dead_code)]

pub use guestkit::svm::{self, Svm, SvmProgram, ENABLE_CASE, VMCB};
pub use guestkit::{Asm, AsmResult, Label};
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
        self.run_with(amd())
    }

    /// As [`Suite::run`] on a machine made from `cfg`.
    pub fn run_with(self, cfg: MachineConfig) -> Outcome {
        let Suite { p, table } = self;
        let o = testsuites::run(&p.finish(), cfg);
        // The exits the suite produced, by name (`--nocapture` shows them: the
        // coverage table of intercepts).
        eprintln!(
            "svm exits by reason: {:?}",
            o.machine.stats.vmexits.by_reason
        );
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
pub fn l2_code(
    a: &mut Asm,
    mut code: impl FnMut(&mut Asm) -> AsmResult,
) -> Result<Label, IcedError> {
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

/// Registers holding the L2 addresses of the instruction under test
/// ([`icase`]).
pub mod at {
    /// The instruction's address.
    pub const INSN: usize = 9;
    /// The next instruction's address.
    pub const NEXT: usize = 10;
}

/// One instruction-intercept case: `setup` changes the template VMCB (and
/// the permission maps), the L2 guest runs `pre`, then the instruction under
/// test `insn` (at [`at::INSN`]), then VMMCALL (at [`at::NEXT`]). After the
/// exit `post` may load more into R11-R15.
pub fn icase(
    s: &mut Suite,
    name: &str,
    setup: impl Fn(&mut Asm) -> AsmResult + 'static,
    pre: impl Fn(&mut Asm) -> AsmResult + 'static,
    insn: impl Fn(&mut Asm) -> AsmResult + 'static,
    post: impl Fn(&mut Asm) -> AsmResult + 'static,
    checks: Vec<Check>,
) {
    s.case(
        name,
        move |a, s| {
            let mut l2 = a.label();
            let mut at = a.label();
            let mut next = a.label();
            let mut over = a.label();
            a.jmp(over.l)?;
            a.set(&mut l2)?;
            a.nop()?;
            pre(a)?;
            a.set(&mut at)?;
            insn(a)?;
            a.set(&mut next)?;
            a.vmmcall()?;
            a.hlt()?;
            a.set(&mut over)?;
            run_l2(a, s, &l2, &setup)?;
            a.lea(r9, ptr(at.l))?;
            a.lea(r10, ptr(next.l))?;
            post(a)
        },
        checks,
    );
}

/// No setup, no pre-code or no post-code.
pub fn nothing(_: &mut Asm) -> AsmResult {
    Ok(())
}

/// The exit was taken on the instruction under test (fault-like): RIP is
/// the instruction, NRIP the next one.
pub fn on_insn() -> Check {
    Box::new(|r| {
        let (rip, nrip) = (r.gprs[reg::RIP], r.gprs[reg::NRIP]);
        let (i, n) = (r.gprs[at::INSN], r.gprs[at::NEXT]);
        (rip == i && nrip == n)
            .then_some(())
            .ok_or_else(|| format!("RIP {rip:#x} NRIP {nrip:#x}, expected RIP {i:#x} NRIP {n:#x}"))
    })
}

/// The exit was taken after the instruction (trap-like): RIP and NRIP are
/// the next instruction.
pub fn after_insn() -> Check {
    Box::new(|r| {
        let (rip, nrip) = (r.gprs[reg::RIP], r.gprs[reg::NRIP]);
        let n = r.gprs[at::NEXT];
        (rip == n && nrip == n)
            .then_some(())
            .ok_or_else(|| format!("RIP {rip:#x} NRIP {nrip:#x}, expected both {n:#x}"))
    })
}

/// EXITINFO1 equals `v`.
pub fn info1(v: u64) -> Check {
    named("EXITINFO1", reg::INFO1, v)
}

/// EXITINFO2 equals `v`.
pub fn info2(v: u64) -> Check {
    named("EXITINFO2", reg::INFO2, v)
}

/// EXITINTINFO equals `v`.
pub fn intinfo(v: u64) -> Check {
    named("EXITINTINFO", reg::INTINFO, v)
}

/// Register `n` (described as `what`) equals `v`.
pub fn named(what: &'static str, n: usize, v: u64) -> Check {
    Box::new(move |r| {
        (r.gprs[n] == v)
            .then_some(())
            .ok_or_else(|| format!("{what} = {:#x}, expected {v:#x}", r.gprs[n]))
    })
}

/// Sets intercept bits in the VMCB: `f` |= `bits`.
pub fn intercept(f: F, bits: u64) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    move |a| svm::or(a, VMCB, f, bits)
}

/// Loads the L2 log's `off` into `r`.
pub fn l2_log(a: &mut Asm, r: AsmRegister64, off: u64) -> AsmResult {
    a.mov(r, qword_ptr((svm::L2_LOG + off) as u32 as u64))
}

/// An event-like exit on the instruction under test: RIP is the
/// instruction, NRIP is 0 (APM Vol. 2 15.7.1: nRIP is saved only for
/// instruction intercepts and INT3/INTO/BOUND exceptions).
pub fn on_insn_no_nrip() -> Check {
    Box::new(|r| {
        let (rip, nrip) = (r.gprs[reg::RIP], r.gprs[reg::NRIP]);
        let i = r.gprs[at::INSN];
        (rip == i && nrip == 0)
            .then_some(())
            .ok_or_else(|| format!("RIP {rip:#x} NRIP {nrip:#x}, expected RIP {i:#x} NRIP 0"))
    })
}
