//! Writing L1 hypervisors for AMD-V (APM Vol. 2 chapter 15) with the kit:
//! enabling SVM, building VMCBs, running an L2 guest and reading what its
//! #VMEXIT reported.
//!
//! The L2 guest runs in the L1's world: 64-bit mode at CPL 0, the kit's GDT and
//! identity-mapped page tables, its own stack ([`L2_STACK_TOP`]) and its own
//! IDT whose handlers log the event ([`log`]) and then either exit to L1 with
//! VMMCALL or return with IRETQ (when [`log::RESUME`] is set). VMCB offsets
//! come from `svm-model`'s layout table ([`VmcbField`]).
//!
//! ```text
//! 0x0040_0000  host save area (VM_HSAVE_PA)
//! 0x0040_1000  VMCB (and a second one at 0x0040_2000)
//! 0x0040_4000  I/O permissions map (12 KiB)
//! 0x0040_8000  MSR permissions map (8 KiB)
//! 0x0040_f000  L2 stack top (grows down)
//! 0x0041_1000  L2 event log
//! 0x0042_0000  nested page tables (identity, 4 GiB of 2-MiB pages)
//! 0x0045_0000  a 32-bit L2's tables, code and stack ([`legacy`])
//! ```

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{sel, GDT, PML4};
use crate::program::Program;
use crate::rt64::Rt64;
use crate::rt64::ERROR_CODE_VECTORS;
use iced_x86::code_asm::*;
use mmu::{Cr0, Cr4, Efer};
use std::cell::Cell;
use std::rc::Rc;
use svm_model::vmcb::{Intercepts, Misc2, VmcbImage, VmcbSeg, VmcbSegment, VmcbTable};
use svm_model::VmcbField;

/// The host save area.
pub const HSAVE: u64 = 0x40_0000;
/// The VMCB the cases use.
pub const VMCB: u64 = 0x40_1000;
/// A second VMCB.
pub const VMCB2: u64 = 0x40_2000;
/// The I/O permissions map.
pub const IOPM: u64 = 0x40_4000;
/// The MSR permissions map.
pub const MSRPM: u64 = 0x40_8000;
/// The L2 stack top.
pub const L2_STACK_TOP: u64 = 0x40_f000;
/// The L2 event log.
pub const L2_LOG: u64 = 0x41_1000;
/// The nested PML4; the PDPT follows, then four page directories.
pub const NPT_PML4: u64 = 0x42_0000;

/// Offsets in the L2 event log.
pub mod log {
    /// Vector + 1 of the last event the L2 IDT took (0: none).
    pub const VECTOR: u64 = 0x00;
    /// Its error code (0 if none).
    pub const ERROR: u64 = 0x08;
    /// The RIP it pushed.
    pub const RIP: u64 = 0x10;
    /// Events taken.
    pub const COUNT: u64 = 0x18;
    /// Non-zero: handlers return with IRETQ instead of exiting with VMMCALL.
    pub const RESUME: u64 = 0x20;
    /// CR2 at the event.
    pub const CR2: u64 = 0x28;
    /// The RFLAGS it pushed.
    pub const RFLAGS: u64 = 0x30;
    /// Events per vector, 8 bytes each.
    pub const PER_VECTOR: u64 = 0x100;
}

/// EFER of the L2 guest.
pub const L2_EFER: u64 = Efer::SVME
    .union(Efer::LME)
    .union(Efer::LMA)
    .union(Efer::SCE)
    .union(Efer::NXE)
    .bits();
/// CR0 of the L2 guest.
pub const L2_CR0: u64 = Cr0::PE
    .union(Cr0::ET)
    .union(Cr0::NE)
    .union(Cr0::WP)
    .union(Cr0::PG)
    .bits();

/// A known-good VMCB for an L2 guest in the kit's world: 64-bit, CPL 0,
/// VMRUN and VMMCALL intercepted, ASID 1, the kit's permission maps, and
/// TLB_CONTROL 1 (every case reuses ASID 1 for a different guest, so VMRUN
/// flushes the TLB, as a hypervisor must when it reuses an ASID, APM Vol. 2
/// 15.16). `idt` is the L2 IDT's address; RIP is left 0 for the case to set.
pub fn l2_vmcb(idt: u64) -> VmcbImage {
    let mut img = VmcbImage::zeroed();
    Intercepts {
        misc2: Misc2::VMRUN | Misc2::VMMCALL,
        ..Intercepts::default()
    }
    .to_image(&mut img);
    img.set(VmcbField::IopmBasePa, IOPM);
    img.set(VmcbField::MsrpmBasePa, MSRPM);
    img.set(VmcbField::GuestAsid, 1);
    img.set(VmcbField::TlbControl, 1);
    img.set(VmcbField::Efer, L2_EFER);
    img.set(VmcbField::Cr0, L2_CR0);
    img.set(VmcbField::Cr3, PML4);
    img.set(VmcbField::Cr4, Cr4::PAE.bits());
    img.set(VmcbField::Dr6, 0xffff_0ff0);
    img.set(VmcbField::Dr7, 0x400);
    img.set(VmcbField::Rflags, 2);
    img.set(VmcbField::GPat, 0x0007_0406_0007_0406);
    let flat = |selector, attrib| VmcbSegment {
        selector,
        attrib,
        limit: 0xffff_ffff,
        base: 0,
    };
    img.set_seg(VmcbSeg::Cs, flat(sel::CODE64, 0xa9b));
    for s in [VmcbSeg::Ss, VmcbSeg::Ds, VmcbSeg::Es] {
        img.set_seg(s, flat(sel::DATA, 0xc93));
    }
    img.set_table(
        VmcbTable::Gdtr,
        mmu::TableRegister {
            base: GDT,
            limit: 0x67,
        },
    );
    img.set_table(
        VmcbTable::Idtr,
        mmu::TableRegister {
            base: idt,
            limit: 0xfff,
        },
    );
    img.set(VmcbField::Rsp, L2_STACK_TOP);
    img
}

/// A displacement-only operand of the right width for `f` at `base`.
fn field(base: u64, f: VmcbField) -> AsmMemoryOperand {
    let a = (base + f.offset() as u64) as u32 as u64;
    match f.width() {
        1 => byte_ptr(a),
        2 => word_ptr(a),
        4 => dword_ptr(a),
        _ => qword_ptr(a),
    }
}

/// Sets field `f` of the VMCB at `vmcb` to `v` (clobbers RAX).
pub fn set(a: &mut Asm, vmcb: u64, f: VmcbField, v: u64) -> AsmResult {
    match f.width() {
        1 => a.mov(field(vmcb, f), v as u8 as i32),
        2 => a.mov(field(vmcb, f), v as u16 as i32),
        4 => a.mov(field(vmcb, f), v as u32 as i32),
        _ => {
            a.mov(rax, v)?;
            a.mov(field(vmcb, f), rax)
        }
    }
}

/// ORs `v` into field `f` (clobbers RAX).
pub fn or(a: &mut Asm, vmcb: u64, f: VmcbField, v: u64) -> AsmResult {
    match f.width() {
        1 => a.or(field(vmcb, f), v as u8 as i32),
        2 => a.or(field(vmcb, f), v as u16 as i32),
        4 => a.or(field(vmcb, f), v as u32 as i32),
        _ => {
            a.mov(rax, v)?;
            a.or(field(vmcb, f), rax)
        }
    }
}

/// Sets a 64-bit field to the address of `l` (clobbers RAX).
pub fn set_label(a: &mut Asm, vmcb: u64, f: VmcbField, l: &Label) -> AsmResult {
    a.lea(rax, ptr(l.l))?;
    a.mov(field(vmcb, f), rax)
}

/// Loads field `f` (zero-extended) into `r`.
pub fn get(a: &mut Asm, r: AsmRegister64, vmcb: u64, f: VmcbField) -> AsmResult {
    match f.width() {
        1 => a.movzx(r, field(vmcb, f)),
        2 => a.movzx(r, field(vmcb, f)),
        4 => {
            a.mov(r, 0u64)?;
            let r32 = gpr32_of(r);
            a.mov(r32, field(vmcb, f))
        }
        _ => a.mov(r, field(vmcb, f)),
    }
}

fn gpr32_of(r: AsmRegister64) -> AsmRegister32 {
    let all64 = [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ];
    let all32 = [
        eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d,
    ];
    let k = all64.iter().position(|x| *x == r).unwrap_or(0);
    all32[k]
}

/// VMRUN of the VMCB at `vmcb` (RAX = `vmcb`).
pub fn vmrun(a: &mut Asm, vmcb: u64) -> AsmResult {
    a.mov(rax, vmcb)?;
    a.vmrun()
}

/// Sets bit `port` of the IOPM (clobbers nothing).
pub fn intercept_port(a: &mut Asm, port: u16) -> AsmResult {
    a.bts(dword_ptr(IOPM + port as u64 / 8), (port % 8) as i32)
}

/// Sets the read (`write == false`) or write bit of `msr` in the MSRPM.
pub fn intercept_msr(a: &mut Asm, msr: u32, write: bool) -> AsmResult {
    let (byte, bit) =
        svm_model::bitmaps::msrpm_position(msr).expect("an MSR of the three MSRPM ranges");
    a.bts(dword_ptr(MSRPM + byte), i32::from(bit) + i32::from(write))
}

/// The SVM part of an L1 program: the VMCB template, the L2 IDT and its
/// handlers. Create it with [`Svm::new`], use it in code, place it with
/// [`Svm::emit`] after the code.
#[derive(Clone, Copy, Debug)]
pub struct Svm {
    /// The template VMCB ([`l2_vmcb`]) as data.
    pub template: Label,
    /// The L2 IDT (256 16-byte gates).
    pub idt: Label,
    stubs: Label,
}

impl Svm {
    /// Creates the labels.
    pub fn new(a: &mut Asm) -> Self {
        Self {
            template: a.label(),
            idt: a.label(),
            stubs: a.label(),
        }
    }

    /// EFER.SVME := 1 and VM_HSAVE_PA := [`HSAVE`] (clobbers RAX, RCX, RDX).
    pub fn enable(&self, a: &mut Asm) -> AsmResult {
        a.mov(ecx, 0xc000_0080u32 as i32)?;
        a.rdmsr()?;
        a.bts(eax, 12i32)?;
        a.wrmsr()?;
        a.mov(ecx, 0xc001_0117u32 as i32)?;
        a.mov(eax, HSAVE as i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()
    }

    /// Copies the template to the VMCB at `vmcb`, clears the permission maps
    /// and the L2 log (clobbers RAX, RCX, RSI, RDI).
    pub fn init_vmcb(&self, a: &mut Asm, vmcb: u64) -> AsmResult {
        a.cld()?;
        a.lea(rsi, ptr(self.template.l))?;
        a.mov(rdi, vmcb)?;
        a.mov(ecx, 512i32)?;
        a.rep().movsq()?;
        a.xor(eax, eax)?;
        a.mov(rdi, IOPM)?;
        a.mov(ecx, ((MSRPM + 0x2000 - IOPM) / 8) as i32)?;
        a.rep().stosq()?;
        a.mov(rdi, L2_LOG)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()
    }

    /// Places the template, the L2 IDT and its handlers.
    pub fn emit(&mut self, a: &mut Asm) -> AsmResult {
        let mut common = a.label();
        a.set(&mut self.stubs)?;
        for v in 0..=255u8 {
            let mut bytes = Vec::with_capacity(16);
            if !ERROR_CODE_VECTORS.contains(&v) {
                bytes.extend_from_slice(&[0x6a, 0x00]);
            }
            bytes.push(0x68);
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
            let here = a.addr(&self.stubs) + 16 * v as u64 + bytes.len() as u64 + 5;
            let target = a.addr(&common);
            bytes.push(0xe9);
            bytes.extend_from_slice(&(target.wrapping_sub(here) as u32).to_le_bytes());
            bytes.resize(16, 0xcc);
            a.db(&bytes)?;
        }
        // Frame: vector, error code, RIP, CS, RFLAGS, RSP, SS.
        a.set(&mut common)?;
        a.push(rax)?;
        let lg = |o: u64| qword_ptr((L2_LOG + o) as u32 as u64);
        a.mov(rax, qword_ptr(rsp + 8))?;
        a.inc(qword_ptr(rax * 8 + (L2_LOG + log::PER_VECTOR) as i32))?;
        a.inc(rax)?;
        a.mov(lg(log::VECTOR), rax)?;
        a.mov(rax, qword_ptr(rsp + 16))?;
        a.mov(lg(log::ERROR), rax)?;
        a.mov(rax, qword_ptr(rsp + 24))?;
        a.mov(lg(log::RIP), rax)?;
        a.mov(rax, qword_ptr(rsp + 40))?;
        a.mov(lg(log::RFLAGS), rax)?;
        a.mov(rax, cr2)?;
        a.mov(lg(log::CR2), rax)?;
        a.inc(lg(log::COUNT))?;
        let mut resume = a.label();
        a.cmp(lg(log::RESUME), 0i32)?;
        a.jne(resume.l)?;
        a.pop(rax)?;
        a.vmmcall()?;
        a.hlt()?;
        a.set(&mut resume)?;
        a.pop(rax)?;
        a.add(rsp, 16i32)?;
        a.iretq()?;
        // The IDT: 64-bit interrupt gates, DPL 3 for INT3/INTO/INT 80h.
        a.set(&mut self.idt)?;
        let stubs = a.addr(&self.stubs);
        for v in 0..256u64 {
            let off = stubs + 16 * v;
            let dpl = if matches!(v, 3 | 4 | 0x80) { 3 } else { 0 };
            let lo = (off & 0xffff)
                | (sel::CODE64 as u64) << 16
                | (0x8e | dpl << 5) << 40
                | ((off >> 16) & 0xffff) << 48;
            a.dq(&[lo, off >> 32])?;
        }
        a.set(&mut self.template)?;
        let img = l2_vmcb(a.addr(&self.idt));
        a.db(img.as_bytes())
    }
}

/// Writes nested page tables at [`NPT_PML4`] that identity-map the first
/// 4 GiB with 2-MiB pages, present, writable, user (clobbers RAX, RCX, RDI).
pub fn build_identity_npt(a: &mut Asm) -> AsmResult {
    let pdpt = NPT_PML4 + 0x1000;
    let pd = NPT_PML4 + 0x2000;
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, NPT_PML4)?;
    a.mov(ecx, 0x6000 / 8)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(NPT_PML4), (pdpt | 7) as i32)?;
    for k in 0..4u64 {
        a.mov(qword_ptr(pdpt + 8 * k), ((pd + 0x1000 * k) | 7) as i32)?;
    }
    // PDE n = n << 21 | PS | U | W | P.
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(rax, rcx)?;
    a.shl(rax, 21i32)?;
    a.or(rax, 0x87i32)?;
    a.mov(qword_ptr(rcx * 8 + pd as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, 2048i32)?;
    a.jb(lp.l)
}

/// A kit [`Program`] for an L1 hypervisor: its first case enables SVM and
/// creates the [`Svm`] labels every later case uses; [`SvmProgram::finish`]
/// places the template VMCB and the L2 IDT after the cases.
pub struct SvmProgram {
    p: Program,
    svm: Rc<Cell<Option<Svm>>>,
    /// Case names in order (the enabling case first).
    pub names: Vec<String>,
}

impl core::fmt::Debug for SvmProgram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SvmProgram")
            .field("cases", &self.names.len())
            .finish()
    }
}

/// The name of the case that enables SVM.
pub const ENABLE_CASE: &str = "svm: enable";

impl SvmProgram {
    /// A program whose first 64-bit case enables SVM.
    pub fn new() -> Self {
        Self::from_program(Program::new())
    }

    /// Adds the SVM cases to `p` (which may hold real and protected-mode
    /// cases, but no 64-bit ones yet).
    pub fn from_program(mut p: Program) -> Self {
        let svm: Rc<Cell<Option<Svm>>> = Rc::new(Cell::new(None));
        let cell = svm.clone();
        p.long_case(ENABLE_CASE, move |a| {
            let s = Svm::new(a);
            cell.set(Some(s));
            s.enable(a)
        });
        Self {
            p,
            svm,
            names: vec![ENABLE_CASE.into()],
        }
    }

    /// Adds a 64-bit case that uses the SVM labels.
    pub fn case(&mut self, name: &str, f: impl Fn(&mut Asm, &Svm) -> AsmResult + 'static) {
        let cell = self.svm.clone();
        self.p.long_case(name, move |a| {
            let s = cell.get().expect("the enabling case runs first");
            f(a, &s)
        });
        self.names.push(name.into());
    }

    /// Adds free-form 64-bit code after the cases.
    pub fn body64(&mut self, f: impl Fn(&mut Asm, &Rt64, &Svm) -> AsmResult + 'static) {
        let cell = self.svm.clone();
        self.p.body64(move |a, rt| {
            let s = cell.get().expect("the enabling case runs first");
            f(a, rt, &s)
        });
    }

    /// The finished program: the SVM data is placed (jumped over) after the
    /// cases and bodies.
    pub fn finish(mut self) -> Program {
        let cell = self.svm.clone();
        self.p.body64(move |a, _| {
            let mut s = cell.get().expect("the enabling case runs first");
            let mut over = a.label();
            a.jmp(over.l)?;
            s.emit(a)?;
            a.set(&mut over)
        });
        self.p
    }
}

impl Default for SvmProgram {
    fn default() -> Self {
        Self::new()
    }
}

/// A program with one case, `name`, that runs `l2` in an L2 under the kit's
/// identity NPT ([`build_identity_npt`]; ASID 1, the TLB kept across
/// VMRUNs), with `l1` after each #VMEXIT, until L2 ends: after `l2` it sets
/// R14 = 1 and exits with VMMCALL. `l1` runs with RAX free.
pub fn npt_guest_program(
    name: &str,
    l2: impl Fn(&mut Asm) -> AsmResult + 'static,
    l1: impl Fn(&mut Asm) -> AsmResult + 'static,
) -> Program {
    use svm_model::vmcb::NestedCtl;
    let mut s = SvmProgram::new();
    s.case(name, move |a: &mut Asm, svm: &Svm| {
        let mut code = a.label();
        let mut over = a.label();
        a.jmp(over.l)?;
        a.set(&mut code)?;
        l2(a)?;
        a.mov(r14d, 1i32)?;
        a.vmmcall()?;
        a.hlt()?;
        a.set(&mut over)?;
        build_identity_npt(a)?;
        svm.init_vmcb(a, VMCB)?;
        set_label(a, VMCB, VmcbField::Rip, &code)?;
        set(a, VMCB, VmcbField::NestedCtl, NestedCtl::NP_ENABLE.bits())?;
        set(a, VMCB, VmcbField::NCr3, NPT_PML4)?;
        a.xor(r14d, r14d)?;
        let mut lp = a.label();
        let mut done = a.label();
        a.set(&mut lp)?;
        vmrun(a, VMCB)?;
        set(a, VMCB, VmcbField::TlbControl, 0)?;
        a.cmp(r14d, 1i32)?;
        a.je(done.l)?;
        l1(a)?;
        a.jmp(lp.l)?;
        a.set(&mut done)?;
        a.nop()
    });
    s.finish()
}

/// L1's resumption of an L2 that exited with VMMCALL, without NRIP: the
/// VMCB's RIP advances past the 3-byte instruction (0F 01 D9; APM Vol. 3,
/// "VMMCALL"). Uses RAX.
pub fn skip_vmmcall(a: &mut Asm) -> AsmResult {
    let rip = (VMCB + VmcbField::Rip.offset() as u64) as u32 as u64;
    a.mov(rax, qword_ptr(rip))?;
    a.add(rax, 3i32)?;
    a.mov(qword_ptr(rip), rax)
}

/// A 32-bit protected-mode L2 guest (legacy mode: EFER.LME = 0, paging off),
/// for what long mode does not have, hardware task switches among them (APM
/// Vol. 2 12.3, "Hardware Task-Management in Legacy Mode"). The guest has its
/// own GDT, IDT and TSS in the region below; its code is assembled with
/// [`crate::asm::build`] as 32-bit code at [`legacy::CODE`] and copied there
/// with [`place`].
///
/// ```text
/// 0x0045_0000  L2 GDT (32 entries; null, code, data, the TSS, then free)
/// 0x0045_1000  L2 IDT (256 8-byte gates, all not present)
/// 0x0045_2000  the L2's TSS (TR), 32-bit; free TSS room up to 0x0045_3000
/// 0x0045_4000  L2 code
/// 0x0045_8000  L2 stack top
/// ```
pub mod legacy {
    use super::{set, VmcbField as F};
    use crate::asm::{Asm, AsmResult};
    use iced_x86::code_asm::*;

    /// The L2 GDT.
    pub const GDT: u64 = 0x45_0000;
    /// The L2 GDT's limit (32 entries).
    pub const GDT_LIMIT: u64 = 0xff;
    /// The L2 IDT (8-byte gates).
    pub const IDT: u64 = 0x45_1000;
    /// The L2's TSS (32-bit, loaded in TR).
    pub const TSS: u64 = 0x45_2000;
    /// Where the L2 code is copied.
    pub const CODE: u64 = 0x45_4000;
    /// The L2 stack top.
    pub const STACK_TOP: u64 = 0x45_8000;

    /// Selectors of the L2 GDT.
    pub mod sel {
        /// 32-bit flat code, DPL 0.
        pub const CODE: u16 = 0x08;
        /// Flat data, DPL 0.
        pub const DATA: u16 = 0x10;
        /// The L2's TSS (busy once VMRUN loads TR).
        pub const TSS: u16 = 0x18;
    }

    /// A TSS descriptor: `base`, `limit`, `typ` (9 available or 0xB busy
    /// 32-bit TSS), present, DPL 0 (APM Vol. 2 4.8.3, "System Descriptors").
    pub fn tss_descriptor(base: u64, limit: u32, typ: u8) -> u64 {
        let limit = u64::from(limit);
        (limit & 0xffff)
            | (base & 0xff_ffff) << 16
            | (0x80 | u64::from(typ)) << 40
            | ((limit >> 16) & 0xf) << 48
            | ((base >> 24) & 0xff) << 56
    }

    /// A task gate (type 5, present) naming the TSS `tss` at `dpl`.
    pub fn task_gate(tss: u16, dpl: u8) -> u64 {
        u64::from(tss) << 16 | (0x85 | u64::from(dpl & 3) << 5) << 40
    }

    /// Writes the 8-byte descriptor `d` at linear address `at` (clobbers
    /// RAX).
    pub fn put(a: &mut Asm, at: u64, d: u64) -> AsmResult {
        a.mov(rax, d)?;
        a.mov(qword_ptr(at as u32 as u64), rax)
    }

    /// Builds the L2 GDT and clears the L2 IDT and TSS (clobbers RAX, RCX,
    /// RDI).
    pub fn tables(a: &mut Asm) -> AsmResult {
        a.cld()?;
        a.xor(eax, eax)?;
        a.mov(rdi, GDT)?;
        a.mov(ecx, 0x3000 / 8)?;
        a.rep().stosq()?;
        put(a, GDT + u64::from(sel::CODE), 0x00cf_9b00_0000_ffff)?;
        put(a, GDT + u64::from(sel::DATA), 0x00cf_9300_0000_ffff)?;
        put(a, GDT + u64::from(sel::TSS), tss_descriptor(TSS, 0x67, 0xb))
    }

    /// Makes the VMCB at `vmcb` (a copy of the template) run a flat 32-bit
    /// protected-mode guest at `rip`: EFER = SVME, CR0 = PE | ET | NE, CR3 =
    /// CR4 = 0, the L2 GDT, IDT and TSS, the L2 stack (clobbers RAX).
    pub fn vmcb(a: &mut Asm, vmcb: u64, rip: u64) -> AsmResult {
        let fields: [(F, u64); 27] = [
            (F::Efer, 1 << 12),
            (F::Cr0, 0x31),
            (F::Cr3, 0),
            (F::Cr4, 0),
            (F::CsSelector, u64::from(sel::CODE)),
            (F::CsAttrib, 0xc9b),
            (F::SsSelector, u64::from(sel::DATA)),
            (F::SsAttrib, 0xc93),
            (F::DsSelector, u64::from(sel::DATA)),
            (F::DsAttrib, 0xc93),
            (F::EsSelector, u64::from(sel::DATA)),
            (F::EsAttrib, 0xc93),
            (F::FsSelector, u64::from(sel::DATA)),
            (F::FsAttrib, 0xc93),
            (F::FsLimit, 0xffff_ffff),
            (F::GsSelector, u64::from(sel::DATA)),
            (F::GsAttrib, 0xc93),
            (F::GsLimit, 0xffff_ffff),
            (F::GdtrBase, GDT),
            (F::GdtrLimit, GDT_LIMIT),
            (F::IdtrBase, IDT),
            (F::IdtrLimit, 0x7ff),
            (F::TrSelector, u64::from(sel::TSS)),
            (F::TrAttrib, 0x8b),
            (F::TrLimit, 0x67),
            (F::TrBase, TSS),
            (F::Rsp, STACK_TOP),
        ];
        for (f, v) in fields {
            set(a, vmcb, f, v)?;
        }
        set(a, vmcb, F::Rip, rip)
    }
}

pub use crate::asm::place;
