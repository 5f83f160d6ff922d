//! The demo's L1 hypervisor on VT-x (SDM Vol. 3C chapters 25-29): the
//! same hypervisor as [`super::svm`], on a VMCS. It enters VMX operation
//! with the kit's runtime (VMXON, a known-good VMCS for a 64-bit guest),
//! builds the work's page tables in its guest's memory, launches the work as
//! an L2 guest with VPID 1 and serves its exits until the guest reports with
//! VMCALL that it is done.
//!
//! - **EPT** (SDM 29.3): the guest's own CR3 and tables, 4-level EPT with
//!   4-KiB pages (the memory map of [`super::hv`]): 2-D walks, no exits for
//!   paging.
//! - **Shadow paging**: no EPT; #PF exits through the exception bitmap
//!   (26.2; the qualification is the address, 28.2.1), CR3-load exiting
//!   (26.1.3; the qualification names the register, table 28-3) and INVLPG
//!   exiting feed the software TLB of [`super::hv::Shadow`]; stale
//!   translations go with INVVPID. A fault of the guest's own goes back to it
//!   through the VM-entry interruption information (27.6.1), with CR2, which
//!   VM entry does not load, set by the hypervisor.
//!
//! Both exit on CPUID (always) and on the COM1 ports (I/O bitmap A), which
//! the hypervisor does itself, and deliver again an event whose delivery an
//! exit interrupted (IDT-vectoring information, 28.2.4). The guest's
//! registers are saved to [`GREGS`] at every exit and reloaded before every
//! VMRESUME.

use super::hv::{
    build_nested, greg, work_guest, Flavour, NestedFormat, Shadow, GPRS, GUEST_CR3, NESTED_ROOT,
};
pub use super::hv::{Paging, GREGS, SCRATCH, SHADOW_ROOT};
use super::work::{self, Work, WORK_PML4};
use guestkit::layout::{var, VARS};
use guestkit::svm::L2_STACK_TOP;
use guestkit::vmx::{layout, vmor, vmr, vmw, vmw_reg, VmxRt};
use guestkit::{Asm, AsmResult, Label, Program, Rt64};
use iced_x86::code_asm::*;
use vmx_model::controls::{Proc2Controls as P2, ProcControls as P1};
use vmx_model::Field as F;

/// The guest's VPID.
const VPID: u64 = 1;
/// Basic exit reasons (SDM Vol. 3C appendix C).
const EXCEPTION_OR_NMI: i32 = 0;
const CPUID: i32 = 10;
const INVLPG: i32 = 14;
const VMCALL: i32 = 18;
const CR_ACCESS: i32 = 28;
const IO_INSTRUCTION: i32 = 30;

/// The VT-x side of what the two hypervisors share.
const FLAVOUR: Flavour = Flavour {
    name: "VT-x",
    nested: "EPT",
    hypercall: |a| a.vmcall(),
};

/// The L1 hypervisor running `w` as its guest.
pub fn hypervisor(w: Work, paging: Paging) -> Program {
    hypervisor_for(paging, WORK_PML4, work_guest(FLAVOUR, w, paging))
}

/// The same work done by the hypervisor itself, in VMX root operation,
/// before (and instead of) launching any guest.
pub fn hypervisor_alone(w: Work) -> Program {
    let mut p = Program::new();
    p.body64(move |a, rt| {
        let mut v = VmxRt::new(a);
        a.call(v.init.l)?;
        work::run_here(a, rt, &w, "L1: VT-x hypervisor, doing the work itself\nL1:")?;
        a.vmxoff()?;
        let mut over = a.label();
        a.jmp(over.l)?;
        v.emit(a)?;
        a.set(&mut over)
    });
    p
}

/// The L1 hypervisor running the guest `guest` emits (see
/// [`super::svm::hypervisor_for`]): its code builds the guest's tables,
/// rooted at `guest_cr3`, and returns the label of the guest's first
/// instruction; the guest ends with VMCALL. It runs at CPL 0 in 64-bit mode
/// with the kit's GDT and TSS, the kit's L2 IDT (whose stubs report an
/// exception with VMCALL, R15 = 0xE00 + vector, R14 = error code) and a
/// stack below [`L2_STACK_TOP`].
pub fn hypervisor_for(
    paging: Paging,
    guest_cr3: u64,
    guest: impl Fn(&mut Asm, &Rt64) -> Result<Label, IcedError> + 'static,
) -> Program {
    hypervisor_with(paging, guest_cr3, Levels::FOUR, guest)
}

/// Paging levels of the guest and of the EPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// 5: the guest runs with CR4.LA57 (its CR3 points to a PML5).
    pub guest: u8,
    /// 5: the EPT has a PML5 (page-walk length 5).
    pub ept: u8,
}

impl Levels {
    /// 4-level paging in both dimensions.
    pub const FOUR: Levels = Levels { guest: 4, ept: 4 };
    /// 5-level paging in both dimensions.
    pub const FIVE: Levels = Levels { guest: 5, ept: 5 };
}

/// [`hypervisor_for`] with a choice of 4- or 5-level paging in each
/// dimension.
pub fn hypervisor_with(
    paging: Paging,
    guest_cr3: u64,
    levels: Levels,
    guest: impl Fn(&mut Asm, &Rt64) -> Result<Label, IcedError> + 'static,
) -> Program {
    let ept_levels = levels.ept;
    let mut p = Program::new();
    p.body64(move |a, rt| {
        let mut v = VmxRt::new(a);
        a.call(v.init.l)?;
        let l2 = guest(a, rt)?;
        let hv = Handlers::emit(a, rt, paging)?;
        match (paging, hv.shadow) {
            (Paging::Shadow, Some(sh)) => a.call(sh.reset.l)?,
            _ => {
                build_nested(a, NestedFormat::Ept)?;
                if ept_levels == 5 {
                    // A PML5 above the PML4, in the spare page before it.
                    let pml5 = NESTED_ROOT - 0x1000;
                    a.cld()?;
                    a.xor(eax, eax)?;
                    a.mov(rdi, pml5)?;
                    a.mov(ecx, 512i32)?;
                    a.rep().stosq()?;
                    a.mov(qword_ptr(pml5), (NESTED_ROOT | 7) as i32)?;
                }
            }
        }
        a.call(v.fresh_vmcs.l)?;
        setup_vmcs(a, &l2, &hv, paging, guest_cr3, ept_levels)?;
        if levels.guest == 5 {
            vmor(a, F::GuestCr4, mmu::Cr4::LA57.bits())?;
        }
        launch(a, rt, &hv)?;
        let mut over = a.label();
        a.jmp(over.l)?;
        v.emit(a)?;
        a.set(&mut over)
    });
    p
}

/// The guest's VMCS: the kit's known-good one, the guest's entry and stack,
/// the exits and the paging mode.
fn setup_vmcs(
    a: &mut Asm,
    l2: &Label,
    hv: &Handlers,
    paging: Paging,
    guest_cr3: u64,
    ept_levels: u8,
) -> AsmResult {
    a.lea(rax, ptr(l2.l))?;
    vmw_reg(a, F::GuestRip, rax)?;
    a.lea(rax, ptr(hv.exit.l))?;
    vmw_reg(a, F::HostRip, rax)?;
    vmw(a, F::GuestRsp, L2_STACK_TOP)?;
    // The guest kernel write-protects (CR0.WP), as the AMD-V guest does: its
    // supervisor writes honour read-only pages, which shadow paging relies on
    // to see the first write to a page and set its dirty flag.
    vmor(a, F::GuestCr0, mmu::Cr0::WP.bits())?;
    vmw(a, F::VirtualProcessorId, VPID)?;
    vmor(
        a,
        F::PrimaryProcBasedControls,
        P1::USE_IO_BITMAPS.bits() as u64,
    )?;
    for port in 0x3f8..=0x3ffu64 {
        a.bts(
            dword_ptr((layout::IO_BITMAP_A + port / 8) as u32 as u64),
            (port % 8) as i32,
        )?;
    }
    match paging {
        Paging::Nested => {
            vmor(
                a,
                F::SecondaryProcBasedControls,
                (P2::ENABLE_EPT | P2::ENABLE_VPID).bits() as u64,
            )?;
            // Write-back structures, the walk length, the root (29.3.2).
            let eptp = if ept_levels == 5 {
                (NESTED_ROOT - 0x1000) | 4 << 3 | 6
            } else {
                NESTED_ROOT | 3 << 3 | 6
            };
            vmw(a, F::EptPointer, eptp)?;
            vmw(a, F::GuestCr3, guest_cr3)?;
        }
        Paging::Shadow => {
            vmor(
                a,
                F::SecondaryProcBasedControls,
                P2::ENABLE_VPID.bits() as u64,
            )?;
            vmor(
                a,
                F::PrimaryProcBasedControls,
                (P1::INVLPG_EXITING | P1::CR3_LOAD_EXITING).bits() as u64,
            )?;
            vmw(a, F::ExceptionBitmap, 1 << 14)?;
            a.mov(rax, guest_cr3)?;
            a.mov(qword_ptr(GUEST_CR3), rax)?;
            vmw(a, F::GuestCr3, SHADOW_ROOT)?;
        }
    }
    Ok(())
}

/// The handlers' labels.
struct Handlers {
    /// HOST_RIP: saves the guest's registers, dispatches.
    exit: Label,
    /// Reloads the guest's registers and resumes it.
    resume: Label,
    /// Advances the guest's RIP past the exiting instruction, resumes.
    skip: Label,
    /// The guest is done.
    done: Label,
    /// Says what went wrong and ends the program.
    fail: Label,
    shadow: Option<Shadow>,
}

impl Handlers {
    /// Emits the exit path (jumped over).
    fn emit(a: &mut Asm, rt: &Rt64, paging: Paging) -> Result<Self, IcedError> {
        let mut h = Handlers {
            exit: a.label(),
            resume: a.label(),
            skip: a.label(),
            done: a.label(),
            fail: a.label(),
            shadow: None,
        };
        let mut over = a.label();
        a.jmp(over.l)?;
        let mut cpuid = a.label();
        let mut io = a.label();
        let mut pf = a.label();
        let mut cr = a.label();
        let mut invlpg = a.label();
        // The exit: the guest's registers are live (only RSP, RIP and RFLAGS
        // are in the VMCS): save them first.
        a.set(&mut h.exit)?;
        for (n, r) in GPRS {
            a.mov(greg(n), r)?;
        }
        h.emit_reinject(a)?;
        vmr(a, rax, F::ExitReason)?;
        a.movzx(eax, ax)?;
        let mut dispatch = vec![
            (CPUID, &mut cpuid),
            (IO_INSTRUCTION, &mut io),
            (VMCALL, &mut h.done),
        ];
        if paging == Paging::Shadow {
            dispatch.extend([
                (EXCEPTION_OR_NMI, &mut pf),
                (CR_ACCESS, &mut cr),
                (INVLPG, &mut invlpg),
            ]);
        }
        for (reason, target) in dispatch {
            a.cmp(eax, reason)?;
            a.je(target.l)?;
        }
        a.jmp(h.fail.l)?;
        // CPUID, done by the hypervisor with the guest's EAX and ECX.
        a.set(&mut cpuid)?;
        a.mov(rax, greg(0))?;
        a.mov(rcx, greg(1))?;
        a.cpuid()?;
        for (n, r) in [(0, rax), (1, rcx), (2, rdx), (3, rbx)] {
            a.mov(greg(n), r)?;
        }
        a.jmp(h.skip.l)?;
        h.emit_io(a, &mut io)?;
        if paging == Paging::Shadow {
            h.emit_shadow(a, &mut pf, &mut cr, &mut invlpg)?;
        }
        // Advance past the instruction and resume.
        a.set(&mut h.skip)?;
        vmr(a, rax, F::GuestRip)?;
        vmr(a, rcx, F::ExitInstructionLength)?;
        a.add(rax, rcx)?;
        vmw_reg(a, F::GuestRip, rax)?;
        a.set(&mut h.resume)?;
        for (n, r) in GPRS {
            a.mov(r, greg(n))?;
        }
        a.vmresume()?;
        a.jmp(h.fail.l)?;
        // Failures: the exit reason (or a VMfail's error), then stop.
        a.set(&mut h.fail)?;
        work::print(a, rt, "\nL1: unexpected VM exit or VMfail, reason 0x")?;
        vmr(a, rax, F::ExitReason)?;
        a.call(rt.put_hex.l)?;
        work::print(a, rt, ", VM-instruction error 0x")?;
        vmr(a, rax, F::VmInstructionError)?;
        a.call(rt.put_hex.l)?;
        work::print(a, rt, "\n")?;
        a.inc(qword_ptr((VARS + var::FAILS) as u32 as u64))?;
        a.mov(edi, 1i32)?;
        a.jmp(rt.exit.l)?;
        a.set(&mut over)?;
        Ok(h)
    }

    /// An exit in the middle of delivering an event (a #PF on an
    /// unshadowed stack while an interrupt is delivered): inject it again
    /// at the next VM entry (SDM Vol. 3C 28.2.4, 27.6.1).
    fn emit_reinject(&mut self, a: &mut Asm) -> AsmResult {
        let mut none = a.label();
        let mut no_code = a.label();
        vmr(a, rax, F::IdtVectoringInfo)?;
        a.bt(eax, 31i32)?;
        a.jnc(none.l)?;
        a.and(eax, 0x8000_0fffu32 as i32)?;
        vmw_reg(a, F::EntryInterruptionInfo, rax)?;
        a.bt(eax, 11i32)?;
        a.jnc(no_code.l)?;
        vmr(a, rax, F::IdtVectoringErrorCode)?;
        vmw_reg(a, F::EntryExceptionErrorCode, rax)?;
        a.set(&mut no_code)?;
        vmr(a, rax, F::ExitInstructionLength)?;
        vmw_reg(a, F::EntryInstructionLength, rax)?;
        a.set(&mut none)
    }

    /// I/O: byte IN and OUT on the COM1 ports, done by the hypervisor. The
    /// qualification has the size less 1 (2:0), IN (3), string (4), REP (5)
    /// and the port (31:16) (SDM Vol. 3C table 28-5).
    fn emit_io(&mut self, a: &mut Asm, io: &mut Label) -> AsmResult {
        let mut input = a.label();
        a.set(io)?;
        vmr(a, rcx, F::ExitQualification)?;
        a.test(ecx, 0x37i32)?;
        a.jnz(self.fail.l)?;
        a.mov(edx, ecx)?;
        a.shr(edx, 16i32)?;
        a.test(ecx, 8i32)?;
        a.jnz(input.l)?;
        a.mov(rax, greg(0))?;
        a.out(dx, al)?;
        a.jmp(self.skip.l)?;
        a.set(&mut input)?;
        a.in_(al, dx)?;
        a.mov(byte_ptr(GREGS as u32 as u64), al)?;
        a.jmp(self.skip.l)
    }

    /// The shadow-paging exits: #PF, MOV to CR3, INVLPG.
    fn emit_shadow(
        &mut self,
        a: &mut Asm,
        pf: &mut Label,
        cr: &mut Label,
        invlpg: &mut Label,
    ) -> AsmResult {
        let sh = Shadow::emit(a, &self.fail)?;
        self.shadow = Some(sh);
        // INVVPID of one address (type 0) for the guest's VPID; RAX = the
        // address (SDM Vol. 3C 30.3, "INVVPID").
        let invvpid_addr = |a: &mut Asm| -> AsmResult {
            a.mov(qword_ptr(SCRATCH), VPID as i32)?;
            a.mov(qword_ptr(SCRATCH + 8), rax)?;
            a.xor(ecx, ecx)?;
            a.invvpid(rcx, xmmword_ptr(SCRATCH as u32 as u64))
        };
        // #PF: the qualification is the address, the exit interruption
        // error code the error code (SDM Vol. 3C 28.2.1, 28.2.2).
        let mut reflect = a.label();
        a.set(pf)?;
        vmr(a, rax, F::ExitInterruptionInfo)?;
        a.cmp(al, 14i32)?;
        a.jne(self.fail.l)?;
        vmr(a, r8, F::ExitQualification)?;
        vmr(a, r9, F::ExitInterruptionErrorCode)?;
        sh.emit_fill(a, &reflect, &self.resume, &invvpid_addr)?;
        // The guest's own fault: inject #PF with its error code; VM entry
        // does not load CR2, so the hypervisor sets it (27.6.1).
        a.set(&mut reflect)?;
        vmw(a, F::EntryInterruptionInfo, 14 | 3 << 8 | 1 << 11 | 1 << 31)?;
        vmw_reg(a, F::EntryExceptionErrorCode, r9)?;
        a.mov(cr2, r8)?;
        a.jmp(self.resume.l)?;
        // MOV to CR3: CR number (3:0), access type (5:4, 0 = MOV to CR), the
        // register (11:8) (SDM Vol. 3C table 28-3).
        let mut not_rsp = a.label();
        let mut got = a.label();
        a.set(cr)?;
        vmr(a, rcx, F::ExitQualification)?;
        a.mov(eax, ecx)?;
        a.and(eax, 0x3fi32)?;
        a.cmp(eax, 3i32)?;
        a.jne(self.fail.l)?;
        a.shr(ecx, 8i32)?;
        a.and(ecx, 15i32)?;
        a.cmp(ecx, 4i32)?;
        a.jne(not_rsp.l)?;
        vmr(a, rax, F::GuestRsp)?;
        a.jmp(got.l)?;
        a.set(&mut not_rsp)?;
        a.mov(rax, qword_ptr(rcx * 8 + GREGS as i32))?;
        a.set(&mut got)?;
        a.mov(qword_ptr(GUEST_CR3), rax)?;
        a.call(sh.reset.l)?;
        // Every translation of the guest goes (single-context INVVPID).
        a.mov(qword_ptr(SCRATCH), VPID as i32)?;
        a.mov(ecx, 1i32)?;
        a.invvpid(rcx, xmmword_ptr(SCRATCH as u32 as u64))?;
        a.jmp(self.skip.l)?;
        // INVLPG: the qualification is the address.
        a.set(invlpg)?;
        vmr(a, r8, F::ExitQualification)?;
        sh.emit_zap(a)?;
        a.mov(rax, r8)?;
        invvpid_addr(a)?;
        a.jmp(self.skip.l)
    }
}

/// The first VM entry (the guest's registers start at 0), and the end.
fn launch(a: &mut Asm, rt: &Rt64, h: &Handlers) -> AsmResult {
    for (n, r) in GPRS {
        a.mov(r, greg(n))?;
    }
    a.vmlaunch()?;
    a.jmp(h.fail.l)?;
    let mut done = h.done;
    a.set(&mut done)?;
    a.mov(rsp, layout::HOST_STACK_TOP)?;
    a.vmclear(qword_ptr((layout::SCRATCH + 0xff8) as u32 as u64))?;
    a.vmxoff()?;
    work::print(a, rt, "L1: the guest is done\n")
}
