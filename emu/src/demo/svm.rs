//! The demo's L1 hypervisor on AMD-V (APM Vol. 2 chapter 15): it builds the
//! work's page tables in its guest's memory, starts the work as an L2 guest
//! and serves its exits until the guest reports with VMMCALL that it is done.
//! Guest memory is the hypervisor's own, except the data region: guest-
//! physical [`DATA_GPA`]..+32 MiB lives at [`HOST_DATA`] in host memory, so
//! every guest-physical address really is translated.
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

use super::work::{self, Work, DATA_GPA, MAX_DATA, WORK_PML4};
use guestkit::layout::{var, VARS};
use guestkit::svm::{self as ksvm, Svm, L2_LOG, VMCB};
use guestkit::{Asm, AsmResult, Label, Program, Rt64};
use iced_x86::code_asm::*;
use svm_model::vmcb::{Misc1, NestedCtl};
use svm_model::{ExitCode as X, VmcbField as F};

/// Where the data region lives in host memory.
pub const HOST_DATA: u64 = 0x800_0000;
/// Guest-physical memory the nested tables map: 96 MiB.
const GUEST_BYTES: u64 = 96 << 20;
/// The nested PML4; PDPT, PD and the page tables follow.
pub const NPT_ROOT: u64 = 0x60_0000;
/// The guest's general registers, RAX..R15 (RAX and RSP unused).
pub const GREGS: u64 = 0x4f_f000;
/// Hypervisor variables: the guest's CR3, the next free shadow page, exits.
const HV_VARS: u64 = 0x4f_e000;
const GUEST_CR3: u64 = HV_VARS;
const POOL_NEXT: u64 = HV_VARS + 8;
/// Shadow page tables: the root, then pages allocated as needed.
pub const SHADOW_ROOT: u64 = 0x80_0000;
const POOL_END: u64 = 0xf0_0000;
/// Physical-address bits of a paging entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The guest's ASID.
const ASID: i32 = 1;

/// How the hypervisor virtualizes the guest's paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Nested page tables.
    Nested,
    /// Shadow page tables kept in software.
    Shadow,
}

/// RAM the demo machines need (the data region's host copy ends at 160 MiB).
pub const MEM_BYTES: u64 = 192 << 20;

/// The L1 hypervisor running `w` as its guest.
pub fn hypervisor(w: Work, paging: Paging) -> Program {
    hypervisor_for(paging, WORK_PML4, move |a, rt| {
        work::print(
            a,
            rt,
            "L1: AMD-V hypervisor, starting the work as an L2 guest with ",
        )?;
        work::print(
            a,
            rt,
            match paging {
                Paging::Nested => "nested paging\nL2:",
                Paging::Shadow => "shadow paging\nL2:",
            },
        )?;
        work::build_tables(a, &w)?;
        let work_fn = work::emit(a, rt, &w)?;
        l2_entry(a, &work_fn)
    })
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
        match paging {
            Paging::Nested => build_npt(a)?,
            Paging::Shadow => a.call(hv.shadow_reset.l)?,
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
        work::print(a, rt, "L1: AMD-V hypervisor, doing the work itself\nL1:")?;
        work::build_tables(a, &w)?;
        let work_fn = work::emit(a, rt, &w)?;
        a.mov(rax, cr3)?;
        a.push(rax)?;
        a.mov(eax, WORK_PML4 as i32)?;
        a.mov(cr3, rax)?;
        a.call(work_fn.l)?;
        a.pop(rax)?;
        a.mov(cr3, rax)?;
        let mut over = a.label();
        a.jmp(over.l)?;
        s.emit(a)?;
        a.set(&mut over)
    });
    p
}

/// The L2 guest's code: the work, then VMMCALL ("done").
pub fn l2_entry(a: &mut Asm, work_fn: &Label) -> Result<Label, IcedError> {
    let mut l2 = a.label();
    let mut over = a.label();
    a.jmp(over.l)?;
    a.set(&mut l2)?;
    a.call(work_fn.l)?;
    a.vmmcall()?;
    a.hlt()?;
    a.set(&mut over)?;
    Ok(l2)
}

/// Nested page tables with 4-KiB pages for the first [`GUEST_BYTES`] of
/// guest-physical memory: identity, but the data region moved to
/// [`HOST_DATA`] (clobbers RAX, RCX, RDX, RDI).
fn build_npt(a: &mut Asm) -> AsmResult {
    let (pdpt, pd, pt) = (NPT_ROOT + 0x1000, NPT_ROOT + 0x2000, NPT_ROOT + 0x3000);
    let pts = GUEST_BYTES >> 21;
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, NPT_ROOT)?;
    a.mov(ecx, ((pt + pts * 4096 - NPT_ROOT) / 8) as i32)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(NPT_ROOT), (pdpt | 7) as i32)?;
    a.mov(qword_ptr(pdpt), (pd | 7) as i32)?;
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(eax, ecx)?;
    a.shl(eax, 12i32)?;
    a.add(eax, (pt | 7) as i32)?;
    a.mov(qword_ptr(rcx * 8 + pd as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, pts as i32)?;
    a.jb(lp.l)?;
    // PT[f] = p2m(f << 12) | P | W | U.
    let mut lp = a.label();
    let mut ident = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(rax, rcx)?;
    a.shl(rax, 12i32)?;
    p2m(a, rax, rdx, &mut ident)?;
    a.or(rax, 7i32)?;
    a.mov(qword_ptr(rcx * 8 + pt as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, (GUEST_BYTES >> 12) as i32)?;
    a.jb(lp.l)
}

/// `r := p2m(r)`: guest-physical to host-physical (clobbers `tmp`; `skip`
/// is a fresh label this places).
fn p2m(a: &mut Asm, r: AsmRegister64, tmp: AsmRegister64, skip: &mut Label) -> AsmResult {
    a.mov(tmp, r)?;
    a.sub(tmp, DATA_GPA as i32)?;
    a.cmp(tmp, MAX_DATA as i32)?;
    a.jae(skip.l)?;
    a.add(r, (HOST_DATA - DATA_GPA) as i32)?;
    a.set(skip)
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
            ksvm::set(a, VMCB, F::NCr3, NPT_ROOT)?;
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

/// Registers saved for the guest, by number (RAX and RSP are in the VMCB).
const SAVED: [(usize, AsmRegister64); 14] = [
    (1, rcx),
    (2, rdx),
    (3, rbx),
    (5, rbp),
    (6, rsi),
    (7, rdi),
    (8, r8),
    (9, r9),
    (10, r10),
    (11, r11),
    (12, r12),
    (13, r13),
    (14, r14),
    (15, r15),
];

fn greg(n: usize) -> AsmMemoryOperand {
    qword_ptr(GREGS + 8 * n as u64)
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
    shadow_reset: Label,
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
            shadow_reset: a.label(),
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

    /// The shadow-paging handlers and their helpers.
    fn emit_shadow(&mut self, a: &mut Asm) -> AsmResult {
        let mut alloc = a.label();
        // shadow_reset: an empty root, an empty pool (clobbers RAX, RCX, RDI).
        a.set(&mut self.shadow_reset)?;
        a.cld()?;
        a.xor(eax, eax)?;
        a.mov(rdi, SHADOW_ROOT)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()?;
        a.mov(qword_ptr(POOL_NEXT), (SHADOW_ROOT + 0x1000) as i32)?;
        a.ret()?;
        // alloc: RAX := a zeroed page from the pool (clobbers RCX, RDI).
        a.set(&mut alloc)?;
        a.mov(rax, qword_ptr(POOL_NEXT))?;
        a.cmp(rax, POOL_END as i32)?;
        a.jae(self.fail.l)?;
        a.lea(rcx, qword_ptr(rax + 0x1000))?;
        a.mov(qword_ptr(POOL_NEXT), rcx)?;
        a.push(rax)?;
        a.mov(rdi, rax)?;
        a.xor(eax, eax)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()?;
        a.pop(rax)?;
        a.ret()?;
        self.emit_pf(a, &alloc)?;
        self.emit_cr3_invlpg(a)
    }

    /// The #PF intercept: R8 = the address (EXITINFO2), R9 = the error code
    /// (EXITINFO1). Walks the guest's tables in software; a real guest fault
    /// goes back to the guest; otherwise the shadow entry is filled and the
    /// instruction retried.
    fn emit_pf(&mut self, a: &mut Asm, alloc: &Label) -> AsmResult {
        let mut reflect = a.label();
        let mut frame_done = a.label();
        a.set(&mut self.pf)?;
        a.mov(r8, field(F::ExitInfo2))?;
        a.mov(r9, field(F::ExitInfo1))?;
        a.mov(rbp, ADDR_MASK)?;
        a.mov(r10, qword_ptr(GUEST_CR3))?;
        a.and(r10, rbp)?;
        a.mov(r11d, 6i32)?; // rights so far: W (bit 1), U (bit 2)
        for (level, shift) in [(4u8, 39i32), (3, 30), (2, 21), (1, 12)] {
            a.mov(rcx, r8)?;
            a.shr(rcx, shift)?;
            a.and(ecx, 511i32)?;
            a.lea(r12, qword_ptr(r10 + rcx * 8))?;
            a.mov(rax, qword_ptr(r12))?;
            a.test(al, 1i32)?;
            a.jz(reflect.l)?;
            a.and(r11d, eax)?;
            if level == 2 {
                // A 2-MiB page: the 4-KiB frame of the address within it.
                let mut small = a.label();
                a.test(al, 0x80i32)?;
                a.jz(small.l)?;
                a.mov(r13, rax)?;
                a.and(r13, rbp)?;
                a.and(r13, !0x1f_ffffi32)?;
                a.mov(rcx, r8)?;
                a.and(ecx, 0x1f_f000i32)?;
                a.add(r13, rcx)?;
                a.jmp(frame_done.l)?;
                a.set(&mut small)?;
            }
            if level > 1 {
                a.mov(r10, rax)?;
                a.and(r10, rbp)?;
            } else {
                a.mov(r13, rax)?;
                a.and(r13, rbp)?;
            }
        }
        a.set(&mut frame_done)?;
        // The guest's own rights (CR0.WP = 1): a write to a read-only page or
        // a user access to a supervisor page is the guest's fault.
        let mut w_ok = a.label();
        a.test(r9d, 2i32)?;
        a.jz(w_ok.l)?;
        a.test(r11d, 2i32)?;
        a.jz(reflect.l)?;
        a.set(&mut w_ok)?;
        let mut u_ok = a.label();
        a.test(r9d, 4i32)?;
        a.jz(u_ok.l)?;
        a.test(r11d, 4i32)?;
        a.jz(reflect.l)?;
        a.set(&mut u_ok)?;
        // Accessed, and dirty on a write, in the guest's leaf entry.
        let mut read = a.label();
        a.or(qword_ptr(r12), 0x20i32)?;
        a.test(r9d, 2i32)?;
        a.jz(read.l)?;
        a.or(qword_ptr(r12), 0x40i32)?;
        a.set(&mut read)?;
        // The shadow leaf: writable only once the guest's entry is dirty, so
        // the first write faults and sets D.
        let mut ident = a.label();
        p2m(a, r13, rcx, &mut ident)?;
        a.mov(r14, r13)?;
        a.or(r14, 1i32)?;
        let mut no_w = a.label();
        a.test(r11d, 2i32)?;
        a.jz(no_w.l)?;
        a.test(qword_ptr(r12), 0x40i32)?;
        a.jz(no_w.l)?;
        a.or(r14, 2i32)?;
        a.set(&mut no_w)?;
        a.mov(eax, r11d)?;
        a.and(eax, 4i32)?;
        a.or(r14, rax)?;
        // The shadow path, allocating tables as needed.
        a.mov(r10, SHADOW_ROOT)?;
        for shift in [39i32, 30, 21] {
            let mut have = a.label();
            a.mov(rcx, r8)?;
            a.shr(rcx, shift)?;
            a.and(ecx, 511i32)?;
            a.lea(r15, qword_ptr(r10 + rcx * 8))?;
            a.mov(rax, qword_ptr(r15))?;
            a.test(al, 1i32)?;
            a.jnz(have.l)?;
            a.call(alloc.l)?;
            a.or(rax, 7i32)?;
            a.mov(qword_ptr(r15), rax)?;
            a.set(&mut have)?;
            a.mov(r10, rax)?;
            a.and(r10, rbp)?;
        }
        let mut fresh = a.label();
        a.mov(rcx, r8)?;
        a.shr(rcx, 12i32)?;
        a.and(ecx, 511i32)?;
        a.lea(r15, qword_ptr(r10 + rcx * 8))?;
        a.mov(rax, qword_ptr(r15))?;
        a.mov(qword_ptr(r15), r14)?;
        a.test(al, 1i32)?;
        a.jz(fresh.l)?;
        // The entry changed (made writable): drop the old translation.
        a.mov(rax, r8)?;
        a.mov(ecx, ASID)?;
        a.invlpga()?;
        a.set(&mut fresh)?;
        a.jmp(self.run.l)?;
        // A fault of the guest's own: inject #PF with its error code and CR2.
        a.set(&mut reflect)?;
        a.mov(rax, r9)?;
        a.shl(rax, 32i32)?;
        a.mov(rcx, 14u64 | 3 << 8 | 1 << 11 | 1 << 31)?;
        a.or(rax, rcx)?;
        a.mov(field(F::EventInj), rax)?;
        a.mov(field(F::Cr2), r8)?;
        a.jmp(self.run.l)
    }

    /// The CR3-write and INVLPG intercepts.
    fn emit_cr3_invlpg(&mut self, a: &mut Asm) -> AsmResult {
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
        a.call(self.shadow_reset.l)?;
        // Flush this guest's TLB entries at the next VMRUN.
        ksvm::set(a, VMCB, F::TlbControl, 3)?;
        a.jmp(self.next_insn.l)?;
        // INVLPG: EXITINFO1 is the address; drop the shadow page table of
        // its 2 MiB (covering a guest 2-MiB page too) and the TLB's entry.
        let mut done = a.label();
        a.set(&mut self.invlpg)?;
        a.mov(r8, field(F::ExitInfo1))?;
        a.mov(rbp, ADDR_MASK)?;
        a.mov(r10, SHADOW_ROOT)?;
        for shift in [39i32, 30] {
            a.mov(rcx, r8)?;
            a.shr(rcx, shift)?;
            a.and(ecx, 511i32)?;
            a.mov(rax, qword_ptr(r10 + rcx * 8))?;
            a.test(al, 1i32)?;
            a.jz(done.l)?;
            a.mov(r10, rax)?;
            a.and(r10, rbp)?;
        }
        a.mov(rcx, r8)?;
        a.shr(rcx, 21i32)?;
        a.and(ecx, 511i32)?;
        a.mov(qword_ptr(r10 + rcx * 8), 0i32)?;
        a.set(&mut done)?;
        a.mov(rax, r8)?;
        a.mov(ecx, ASID)?;
        a.invlpga()?;
        a.jmp(self.next_insn.l)
    }
}

/// The exit loop: reload the guest's registers, VMRUN, save them, dispatch
/// on EXITCODE. Falls through when the guest is done (VMMCALL).
fn run_loop(a: &mut Asm, rt: &Rt64, h: &Handlers, paging: Paging) -> AsmResult {
    let mut run = h.run;
    let mut done = a.label();
    a.set(&mut run)?;
    for (n, r) in SAVED {
        a.mov(r, greg(n))?;
    }
    ksvm::vmrun(a, VMCB)?;
    for (n, r) in SAVED {
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
