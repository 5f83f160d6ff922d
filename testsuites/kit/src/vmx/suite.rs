//! VMX cases and the kit program that runs them in order.

use super::{at, layout, rec, var, vmor, vmr, vmw_reg, VmxRt};
use crate::asm::{Asm, AsmResult};
use crate::program::Program;
use iced_x86::code_asm::*;
use vmx_model::controls::Proc2Controls as P2;
use vmx_model::Field as F;

/// Case code: L1 setup, L2 guest, or L1 exit code.
pub type CaseFn = Box<dyn Fn(&mut Asm, &VmxRt) -> AsmResult>;

/// One VMX case.
pub struct VmxCase {
    /// The name (for reports).
    pub name: String,
    /// L1 code run with the known-good VMCS current and the guest RIP set,
    /// just before VMLAUNCH.
    pub setup: Option<CaseFn>,
    /// The L2 guest's code (64-bit), entered by VMLAUNCH.
    pub guest: Option<CaseFn>,
    /// L1 code at each exit (RBX = the record); it must end in a jump to
    /// `resume`, `skip` or `finish`. Default: [`VmxRt::default_exit`].
    pub on_exit: Option<CaseFn>,
    /// VMLAUNCH after the setup (false for cases that only run L1 code).
    pub launch: bool,
    /// Exits after which the case ends with status 2.
    pub max_exits: u64,
}

impl core::fmt::Debug for VmxCase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmxCase").field("name", &self.name).finish()
    }
}

impl VmxCase {
    /// A case that launches an L2 guest running `guest`.
    pub fn guest(name: &str, guest: impl Fn(&mut Asm, &VmxRt) -> AsmResult + 'static) -> Self {
        Self {
            name: name.into(),
            setup: None,
            guest: Some(Box::new(guest)),
            on_exit: None,
            launch: true,
            max_exits: 32,
        }
    }

    /// A case of L1 code only (no VMLAUNCH), with the known-good VMCS current.
    pub fn root(name: &str, code: impl Fn(&mut Asm, &VmxRt) -> AsmResult + 'static) -> Self {
        Self {
            name: name.into(),
            setup: Some(Box::new(code)),
            guest: None,
            on_exit: None,
            launch: false,
            max_exits: 32,
        }
    }

    /// Sets the L1 setup code.
    pub fn setup(mut self, f: impl Fn(&mut Asm, &VmxRt) -> AsmResult + 'static) -> Self {
        self.setup = Some(Box::new(f));
        self
    }

    /// Allows up to `n` exits (default 32).
    pub fn max_exits(mut self, n: u64) -> Self {
        self.max_exits = n;
        self
    }

    /// Sets the L1 exit code.
    pub fn on_exit(mut self, f: impl Fn(&mut Asm, &VmxRt) -> AsmResult + 'static) -> Self {
        self.on_exit = Some(Box::new(f));
        self
    }

    /// The VMCALL round trip, as a case: L2 does `calls` VMCALLs; L1's exit
    /// handler reads the guest RIP and the VM-exit instruction length,
    /// writes RIP past the VMCALL and resumes. The final VMCALL (R14 = 1)
    /// goes to the kit's recording handler, so the case ends with exit
    /// reason 18 (VMCALL) and R15 = 0. With `vpid`, L2 runs with VPID 1;
    /// without, every VM entry and exit invalidates the TLB entries of
    /// VPID 0 (SDM Vol. 3C 29.4.3.1).
    pub fn vmcall_loop(calls: u64, vpid: bool) -> Self {
        Self::guest("VMCALL loop", move |a, _| {
            let mut lp = a.label();
            a.xor(r14d, r14d)?;
            a.mov(r15, calls)?;
            a.set(&mut lp)?;
            a.vmcall()?;
            a.dec(r15)?;
            a.jnz(lp.l)?;
            a.mov(r14d, 1i32)
        })
        .setup(move |a, rt| {
            // HOST_RIP: the lean handler.
            let mut lean = a.label();
            let mut over = a.label();
            a.jmp(over.l)?;
            a.set(&mut lean)?;
            a.cmp(r14d, 1i32)?;
            a.je(rt.exit_handler.l)?;
            a.mov(edx, F::GuestRip.encoding())?;
            a.vmread(rax, rdx)?;
            a.mov(edx, F::ExitInstructionLength.encoding())?;
            a.vmread(rcx, rdx)?;
            a.add(rax, rcx)?;
            a.mov(edx, F::GuestRip.encoding())?;
            a.vmwrite(rdx, rax)?;
            a.vmresume()?;
            a.ud2()?;
            a.set(&mut over)?;
            a.lea(rax, ptr(lean.l))?;
            vmw_reg(a, F::HostRip, rax)?;
            if vpid {
                vmor(
                    a,
                    F::SecondaryProcBasedControls,
                    P2::ENABLE_VPID.bits() as u64,
                )?;
            }
            Ok(())
        })
    }
}

/// An ordered set of VMX cases.
#[derive(Debug, Default)]
pub struct VmxSuite {
    /// The cases, in record order.
    pub cases: Vec<VmxCase>,
}

/// The record address of case `k`.
pub fn record(k: usize) -> u64 {
    layout::RECORDS + k as u64 * layout::RECORD_SIZE
}

impl VmxSuite {
    /// An empty suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a case.
    pub fn push(&mut self, c: VmxCase) {
        self.cases.push(c);
    }

    /// Case names in record order.
    pub fn names(&self) -> Vec<String> {
        self.cases.iter().map(|c| c.name.clone()).collect()
    }

    /// The kit program that runs every case.
    pub fn into_program(self) -> Program {
        let mut p = Program::new();
        p.body64(move |a, _| {
            let mut rt = VmxRt::new(a);
            let mut start = a.label();
            a.jmp(start.l)?;
            rt.emit(a)?;
            a.set(&mut start)?;
            a.mov(rsp, layout::HOST_STACK_TOP)?;
            a.call(rt.init.l)?;
            for (k, c) in self.cases.iter().enumerate() {
                emit_case(a, &rt, k, c)?;
            }
            Ok(())
        });
        p
    }
}

/// The kit runtime's exception-recording variables.
fn kit_var(off: u64) -> AsmMemoryOperand {
    at(crate::layout::VARS + off)
}

fn emit_case(a: &mut Asm, rt: &VmxRt, k: usize, c: &VmxCase) -> AsmResult {
    let r = record(k);
    let mut done = a.label();
    let mut handler = a.label();
    let mut guest = a.label();
    a.mov(rax, r)?;
    a.mov(at(layout::VARS + var::RECORD), rax)?;
    a.mov(rax, r + rec::L1_EXCEPTION)?;
    a.mov(kit_var(crate::layout::var::RECORD), rax)?;
    a.lea(rax, ptr(done.l))?;
    a.mov(at(layout::VARS + var::DONE), rax)?;
    if c.on_exit.is_some() {
        a.lea(rax, ptr(handler.l))?;
    } else {
        a.lea(rax, ptr(rt.default_exit.l))?;
    }
    a.mov(at(layout::VARS + var::HANDLER), rax)?;
    a.mov(rax, c.max_exits)?;
    a.mov(at(layout::VARS + var::EXIT_LIMIT), rax)?;
    a.mov(rsp, layout::HOST_STACK_TOP)?;
    a.call(rt.fresh_vmcs.l)?;
    a.lea(rax, ptr(guest.l))?;
    vmw_reg(a, F::GuestRip, rax)?;
    if let Some(f) = &c.setup {
        f(a, rt)?;
    }
    if c.launch {
        a.vmlaunch()?;
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        a.mov(qword_ptr(rbx + rec::LAUNCH_RFLAGS as i32), rax)?;
        vmr(a, rax, F::VmInstructionError)?;
        a.mov(rbx, at(layout::VARS + var::RECORD))?;
        a.mov(qword_ptr(rbx + rec::LAUNCH_ERROR as i32), rax)?;
    }
    a.jmp(rt.finish.l)?;
    a.set(&mut handler)?;
    if let Some(f) = &c.on_exit {
        f(a, rt)?;
    }
    a.jmp(rt.finish.l)?;
    a.set(&mut guest)?;
    if let Some(f) = &c.guest {
        f(a, rt)?;
    }
    // An L2 guest that runs off its end calls the hypervisor.
    a.vmcall()?;
    a.ud2()?;
    a.set(&mut done)?;
    a.mov(kit_var(crate::layout::var::RECORD), 0i32)?;
    a.mov(kit_var(crate::layout::var::RESUME), 0i32)?;
    Ok(())
}
