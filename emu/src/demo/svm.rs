//! The demo's L1 hypervisor on AMD-V (APM Vol. 2 chapter 15): it builds the
//! work's page tables in its guest's memory, starts the work as an L2 guest
//! and serves its exits until the guest reports with VMMCALL that it is done.
//! The guest's memory map and the shadow-paging software TLB are shared
//! with the VT-x hypervisor ([`super::hv`]).
//!
//! Two ways to virtualize the guest's paging:
//!
//! - **Nested paging** (APM 15.25): the guest's own CR3 and page tables, and
//!   nested page tables (4-KiB pages) the processor walks for every
//!   guest-physical address: no exits for paging, 2-D walks.
//! - **Shadow paging**: no nested paging. The hypervisor keeps shadow page
//!   tables mapping guest-linear addresses straight to host-physical ones and
//!   runs the guest on them, as a software TLB: it intercepts #PF (APM 15.12)
//!   and fills the missing shadow entry from a walk of the guest's tables
//!   done in software (reflecting real guest faults back with EVENTINJ),
//!   intercepts writes of CR3 (15.9; decode assists name the register) and
//!   drops every shadow entry, as a CR3 load drops the guest's TLB entries,
//!   and intercepts INVLPG (15.8.4 gives the address) and drops the shadow
//!   entries of that 2 MiB. Guest walks are 1-D, at the price of exits.
//!
//! Both intercept CPUID and the COM1 ports, which the hypervisor emulates
//! by doing them itself, so the exits of the guest are what a real
//! hypervisor would see, and both deliver again an event whose delivery an
//! exit interrupted (EXITINTINFO). Guest registers (other than RAX and RSP, which the
//! VMCB holds) are saved to [`GREGS`] after every #VMEXIT and reloaded
//! before every VMRUN.

use super::hv::{
    build_nested, greg, work_guest, Flavour, NestedFormat, Shadow, GUEST_CR3, NESTED_ROOT,
    SHADOW_ROOT,
};
pub use super::hv::{Paging, GREGS, MEM_BYTES};
use super::work::{self, Work, WORK_PML4};
use guestkit::layout::{var, VARS};
use guestkit::svm::{self as ksvm, Svm, L2_LOG, VMCB};
use guestkit::{Asm, AsmResult, Label, Program, Rt64};
use iced_x86::code_asm::*;
use svm_model::vmcb::{Misc1, NestedCtl};
use svm_model::{ExitCode as X, VmcbField as F};

/// The guest's ASID.
const ASID: i32 = 1;

/// The AMD-V side of what the two hypervisors share.
const FLAVOUR: Flavour = Flavour {
    name: "AMD-V",
    nested: "nested paging",
    hypercall: |a| a.vmmcall(),
};

/// The L1 hypervisor running `w` as its guest.
pub fn hypervisor(w: Work, paging: Paging) -> Program {
    hypervisor_for(paging, WORK_PML4, work_guest(FLAVOUR, w, paging))
}

/// The L1 hypervisor running the guest `guest` emits: its code builds the
/// guest's page tables (rooted at `guest_cr3`) and returns the label of the
/// guest's first instruction, code that ends with VMMCALL. The guest runs at
/// CPL 0 in 64-bit mode with the kit's GDT, the kit's L2 IDT (whose handlers
/// log the event in [`L2_LOG`] and return) and the L2 stack.
pub fn hypervisor_for(
    paging: Paging,
    guest_cr3: u64,
    guest: impl Fn(&mut Asm, &Rt64) -> Result<Label, IcedError> + 'static,
) -> Program {
    let mut p = Program::new();
    p.body64(move |a, rt| {
        let mut s = Svm::new(a);
        s.enable(a)?;
        let l2 = guest(a, rt)?;
        let hv = Handlers::emit(a, rt, paging)?;
        match (paging, hv.shadow) {
            (Paging::Shadow, Some(sh)) => a.call(sh.reset.l)?,
            _ => build_nested(a, NestedFormat::Npt)?,
        }
        setup_vmcb(a, &s, &l2, paging, guest_cr3)?;
        run_loop(a, rt, &hv, paging)?;
        let mut over = a.label();
        a.jmp(over.l)?;
        s.emit(a)?;
        a.set(&mut over)
    });
    p
}

/// The same work done by the hypervisor itself, in host mode, before (and
/// instead of) starting any guest: the "L1 alone" run.
pub fn hypervisor_alone(w: Work) -> Program {
    let mut p = Program::new();
    p.body64(move |a, rt| {
        let mut s = Svm::new(a);
        s.enable(a)?;
        work::run_here(
            a,
            rt,
            &w,
            "L1: AMD-V hypervisor, doing the work itself\nL1:",
        )?;
        let mut over = a.label();
        a.jmp(over.l)?;
        s.emit(a)?;
        a.set(&mut over)
    });
    p
}

/// The guest's VMCB: the kit's template, the work's entry, the intercepts
/// and the paging mode.
fn setup_vmcb(a: &mut Asm, s: &Svm, l2: &Label, paging: Paging, guest_cr3: u64) -> AsmResult {
    s.init_vmcb(a, VMCB)?;
    ksvm::set_label(a, VMCB, F::Rip, l2)?;
    ksvm::or(
        a,
        VMCB,
        F::InterceptMisc1,
        (Misc1::CPUID | Misc1::IOIO_PROT).bits() as u64,
    )?;
    for port in 0x3f8..=0x3ffu16 {
        ksvm::intercept_port(a, port)?;
    }
    match paging {
        Paging::Nested => {
            ksvm::set(a, VMCB, F::Cr3, guest_cr3)?;
            ksvm::set(a, VMCB, F::NestedCtl, NestedCtl::NP_ENABLE.bits())?;
            ksvm::set(a, VMCB, F::NCr3, NESTED_ROOT)?;
        }
        Paging::Shadow => {
            a.mov(rax, guest_cr3)?;
            a.mov(qword_ptr(GUEST_CR3), rax)?;
            ksvm::set(a, VMCB, F::Cr3, SHADOW_ROOT)?;
            ksvm::or(a, VMCB, F::InterceptExceptions, 1 << 14)?;
            ksvm::or(a, VMCB, F::InterceptCr, 1 << (16 + 3))?;
            ksvm::or(a, VMCB, F::InterceptMisc1, Misc1::INVLPG.bits() as u64)?;
        }
    }
    // The L2 IDT's handlers return with IRETQ.
    a.mov(qword_ptr((L2_LOG + ksvm::log::RESUME) as u32 as u64), 1i32)
}

/// Registers saved for the guest (RAX and RSP are in the VMCB).
fn saved() -> impl Iterator<Item = (usize, AsmRegister64)> {
    super::hv::GPRS.into_iter().filter(|(n, _)| *n != 0)
}

fn field(f: F) -> AsmMemoryOperand {
    qword_ptr(VMCB + f.offset() as u64)
}

/// The handlers' labels.
struct Handlers {
    cpuid: Label,
    io: Label,
    pf: Label,
    cr3: Label,
    invlpg: Label,
    shadow: Option<Shadow>,
    next_insn: Label,
    fail: Label,
    run: Label,
}

impl Handlers {
    /// Emits the handlers (jumped over).
    fn emit(a: &mut Asm, rt: &Rt64, paging: Paging) -> Result<Self, IcedError> {
        let mut h = Handlers {
            cpuid: a.label(),
            io: a.label(),
            pf: a.label(),
            cr3: a.label(),
            invlpg: a.label(),
            shadow: None,
            next_insn: a.label(),
            fail: a.label(),
            run: a.label(),
        };
        let mut over = a.label();
        a.jmp(over.l)?;
        h.emit_cpuid_io(a)?;
        if paging == Paging::Shadow {
            h.emit_shadow(a)?;
        }
        // Unexpected exits: say which and count a failure.
        a.set(&mut h.fail)?;
        work::print(a, rt, "\nL1: unexpected #VMEXIT, code 0x")?;
        a.mov(rax, field(F::ExitCode))?;
        a.call(rt.put_hex.l)?;
        work::print(a, rt, "\n")?;
        a.inc(qword_ptr((VARS + var::FAILS) as u32 as u64))?;
        a.mov(edi, 1i32)?;
        a.jmp(rt.exit.l)?;
        a.set(&mut over)?;
        Ok(h)
    }

    /// CPUID (done by the hypervisor for the guest) and byte-sized IN/OUT
    /// on the COM1 ports (passed through).
    fn emit_cpuid_io(&mut self, a: &mut Asm) -> AsmResult {
        a.set(&mut self.cpuid)?;
        a.mov(rax, field(F::Rax))?;
        a.mov(rcx, greg(1))?;
        a.cpuid()?;
        a.mov(field(F::Rax), rax)?;
        a.mov(greg(1), rcx)?;
        a.mov(greg(2), rdx)?;
        a.mov(greg(3), rbx)?;
        a.set(&mut self.next_insn)?;
        a.mov(rax, field(F::NRip))?;
        a.mov(field(F::Rip), rax)?;
        a.jmp(self.run.l)?;
        // IOIO: EXITINFO1 has the port (31:16), SZ8 (4), REP (3), STR (2),
        // TYPE (0, 1 = IN); EXITINFO2 the next RIP (APM 15.10.2).
        let mut input = a.label();
        let mut done = a.label();
        a.set(&mut self.io)?;
        a.mov(rcx, field(F::ExitInfo1))?;
        a.test(ecx, 0x0ci32)?;
        a.jnz(self.fail.l)?;
        a.test(ecx, 0x10i32)?;
        a.jz(self.fail.l)?;
        a.mov(edx, ecx)?;
        a.shr(edx, 16i32)?;
        a.test(ecx, 1i32)?;
        a.jnz(input.l)?;
        a.mov(rax, field(F::Rax))?;
        a.out(dx, al)?;
        a.jmp(done.l)?;
        a.set(&mut input)?;
        a.in_(al, dx)?;
        a.mov(byte_ptr(VMCB + F::Rax.offset() as u64), al)?;
        a.set(&mut done)?;
        a.mov(rax, field(F::ExitInfo2))?;
        a.mov(field(F::Rip), rax)?;
        a.jmp(self.run.l)
    }

    /// The shadow-paging handlers: #PF, CR3 writes, INVLPG.
    fn emit_shadow(&mut self, a: &mut Asm) -> AsmResult {
        let sh = Shadow::emit(a, &self.fail)?;
        self.shadow = Some(sh);
        let invlpga = |a: &mut Asm| -> AsmResult {
            a.mov(ecx, ASID)?;
            a.invlpga()
        };
        // #PF: EXITINFO1 is the error code, EXITINFO2 the address (15.12).
        let mut reflect = a.label();
        a.set(&mut self.pf)?;
        a.mov(r8, field(F::ExitInfo2))?;
        a.mov(r9, field(F::ExitInfo1))?;
        sh.emit_fill(a, &reflect, &self.run, &invlpga)?;
        // A fault of the guest's own: inject #PF with its error code and CR2.
        a.set(&mut reflect)?;
        a.mov(rax, r9)?;
        a.shl(rax, 32i32)?;
        a.mov(rcx, 14u64 | 3 << 8 | 1 << 11 | 1 << 31)?;
        a.or(rax, rcx)?;
        a.mov(field(F::EventInj), rax)?;
        a.mov(field(F::Cr2), r8)?;
        a.jmp(self.run.l)?;
        // MOV to CR3: EXITINFO1 bit 63 set, bits 3:0 the register (15.8.4).
        let mut got = a.label();
        let mut not_rax = a.label();
        let mut not_rsp = a.label();
        a.set(&mut self.cr3)?;
        a.mov(rcx, field(F::ExitInfo1))?;
        a.bt(rcx, 63i32)?;
        a.jnc(self.fail.l)?;
        a.and(ecx, 15i32)?;
        a.mov(rax, field(F::Rax))?;
        a.test(ecx, ecx)?;
        a.jnz(not_rax.l)?;
        a.jmp(got.l)?;
        a.set(&mut not_rax)?;
        a.mov(rax, field(F::Rsp))?;
        a.cmp(ecx, 4i32)?;
        a.jne(not_rsp.l)?;
        a.jmp(got.l)?;
        a.set(&mut not_rsp)?;
        a.mov(rax, qword_ptr(rcx * 8 + GREGS as i32))?;
        a.set(&mut got)?;
        a.mov(qword_ptr(GUEST_CR3), rax)?;
        a.call(sh.reset.l)?;
        // Flush this guest's TLB entries at the next VMRUN.
        ksvm::set(a, VMCB, F::TlbControl, 3)?;
        a.jmp(self.next_insn.l)?;
        // INVLPG: EXITINFO1 is the address (decode assists).
        a.set(&mut self.invlpg)?;
        a.mov(r8, field(F::ExitInfo1))?;
        sh.emit_zap(a)?;
        a.mov(rax, r8)?;
        invlpga(a)?;
        a.jmp(self.next_insn.l)
    }
}

/// The exit loop: reload the guest's registers, VMRUN, save them, dispatch
/// on EXITCODE. Falls through when the guest is done (VMMCALL).
fn run_loop(a: &mut Asm, rt: &Rt64, h: &Handlers, paging: Paging) -> AsmResult {
    let mut run = h.run;
    let mut done = a.label();
    a.set(&mut run)?;
    for (n, r) in saved() {
        a.mov(r, greg(n))?;
    }
    ksvm::vmrun(a, VMCB)?;
    for (n, r) in saved() {
        a.mov(greg(n), r)?;
    }
    // The first VMRUN flushed the TLB (TLB_CONTROL 1); later ones keep it:
    // the ASID is this guest's alone.
    ksvm::set(a, VMCB, F::TlbControl, 0)?;
    // An exit during event delivery (a #PF on an unshadowed stack while an
    // interrupt is delivered): deliver the event again on the next VMRUN
    // (APM 15.7.2: EXITINTINFO has EVENTINJ's format).
    let mut no_event = a.label();
    a.mov(rax, field(F::ExitIntInfo))?;
    a.bt(rax, 31i32)?;
    a.jnc(no_event.l)?;
    a.mov(field(F::EventInj), rax)?;
    a.set(&mut no_event)?;
    a.mov(rax, field(F::ExitCode))?;
    let mut dispatch = vec![
        (X::VMEXIT_CPUID, h.cpuid),
        (X::VMEXIT_IOIO, h.io),
        (X::VMEXIT_VMMCALL, done),
    ];
    if paging == Paging::Shadow {
        dispatch.extend([
            (X::VMEXIT_EXCP14, h.pf),
            (X::VMEXIT_CR3_WRITE, h.cr3),
            (X::VMEXIT_INVLPG, h.invlpg),
        ]);
    }
    for (code, target) in dispatch {
        a.cmp(rax, code.0 as i32)?;
        a.je(target.l)?;
    }
    a.jmp(h.fail.l)?;
    a.set(&mut done)?;
    work::print(a, rt, "L1: the guest is done\n")
}
