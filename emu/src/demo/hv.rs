//! What the demo's two L1 hypervisors (AMD-V in [`super::svm`], VT-x in
//! [`super::vmx`]) share: the guest's memory map, the nested tables (NPT or
//! EPT format), the shadow-paging software TLB, and the work as their guest
//! ([`work_guest`]).
//!
//! Guest memory is the hypervisor's own, except the data region:
//! guest-physical [`DATA_GPA`]..+32 MiB lives at [`HOST_DATA`] in host
//! memory, so every guest-physical address really is translated (by the
//! nested tables, or by [`p2m`] when the hypervisor fills a shadow entry).
//!
//! Shadow paging keeps tables that map guest-linear addresses straight to
//! host-physical ones, filled on demand: at a #PF exit (R8 = the linear
//! address, R9 = the error code) [`emit_fill`] walks the guest's own tables in
//! software; a fault of the guest's own goes back to it, otherwise the shadow
//! entry is made and the instruction retried. Shadow entries are writable only
//! once the guest's entry is dirty, so the first write faults and sets D, as
//! the processor would have. A CR3 load drops every shadow entry (the guest's
//! TLB entries would go too); INVLPG drops those of the address's 2 MiB.

use super::work::{self, Work, DATA_GPA, MAX_DATA};
use guestkit::{Asm, AsmResult, Label, Rt64};
use iced_x86::code_asm::*;

/// Where the data region lives in host memory.
pub const HOST_DATA: u64 = 0x800_0000;
/// Guest-physical memory the nested tables map: 96 MiB.
pub const GUEST_BYTES: u64 = 96 << 20;
/// The nested PML4 (NPT or EPT); PDPT, PD and the page tables follow.
pub const NESTED_ROOT: u64 = 0x60_0000;
/// The guest's general registers, RAX..R15, saved at every exit.
pub const GREGS: u64 = 0x4f_f000;
/// Hypervisor variables.
const HV_VARS: u64 = 0x4f_e000;
/// The guest's own CR3 (shadow paging).
pub const GUEST_CR3: u64 = HV_VARS;
/// The next free shadow page.
const POOL_NEXT: u64 = HV_VARS + 8;
/// 16 bytes of scratch for descriptors (INVVPID).
pub const SCRATCH: u64 = HV_VARS + 0x10;
/// Shadow page tables: the root, then pages allocated as needed.
pub const SHADOW_ROOT: u64 = 0x80_0000;
const POOL_END: u64 = 0xf0_0000;
/// Physical-address bits of a paging entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// RAM the demo machines need (the data region's host copy ends at 160 MiB).
pub const MEM_BYTES: u64 = 192 << 20;

/// What tells the two hypervisors apart in the code they share.
#[derive(Clone, Copy, Debug)]
pub struct Flavour {
    /// The extension, in the hypervisor's messages: "VT-x", "AMD-V".
    pub name: &'static str,
    /// Its nested paging, in the messages: "EPT", "nested paging".
    pub nested: &'static str,
    /// The guest's call to the hypervisor that says it is done: VMCALL
    /// (SDM Vol. 3C 26.1.2) or VMMCALL (APM Vol. 3, "VMMCALL").
    pub hypercall: fn(&mut Asm) -> AsmResult,
}

/// The guest of `hv`'s `hypervisor_for` that does `w`: the hypervisor says
/// how it runs it, builds the work's tables, and the guest's code is the
/// work, then the hypercall ("done").
pub fn work_guest(
    hv: Flavour,
    w: Work,
    paging: Paging,
) -> impl Fn(&mut Asm, &Rt64) -> Result<Label, IcedError> + 'static {
    move |a, rt| {
        work::print(
            a,
            rt,
            &format!(
                "L1: {} hypervisor, starting the work as an L2 guest with ",
                hv.name
            ),
        )?;
        let paging = match paging {
            Paging::Nested => hv.nested,
            Paging::Shadow => "shadow paging",
        };
        work::print(a, rt, &format!("{paging}\nL2:"))?;
        work::build_tables(a, &w)?;
        let work_fn = work::emit(a, rt, &w)?;
        let mut l2 = a.label();
        let mut over = a.label();
        a.jmp(over.l)?;
        a.set(&mut l2)?;
        a.call(work_fn.l)?;
        (hv.hypercall)(a)?;
        a.hlt()?;
        a.set(&mut over)?;
        Ok(l2)
    }
}

/// How the hypervisor virtualizes the guest's paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// Nested page tables (NPT, EPT).
    Nested,
    /// Shadow page tables kept in software.
    Shadow,
}

/// The format of the nested tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestedFormat {
    /// AMD nested page tables: the long-mode format, user and writable.
    Npt,
    /// Intel EPT: read, write, execute; leaves write-back (SDM Vol. 3C 29.3.7).
    Ept,
}

/// The guest's general registers as saved, by number.
pub fn greg(n: usize) -> AsmMemoryOperand {
    qword_ptr(GREGS + 8 * n as u64)
}

/// Every general register but RSP, by number.
pub const GPRS: [(usize, AsmRegister64); 15] = [
    (0, rax),
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

/// Nested tables with 4-KiB pages for the first [`GUEST_BYTES`] of
/// guest-physical memory: identity, but the data region moved to
/// [`HOST_DATA`] (clobbers RAX, RCX, RDX, RDI).
pub fn build_nested(a: &mut Asm, format: NestedFormat) -> AsmResult {
    let (pdpt, pd, pt) = (
        NESTED_ROOT + 0x1000,
        NESTED_ROOT + 0x2000,
        NESTED_ROOT + 0x3000,
    );
    let (table, leaf): (u64, i32) = match format {
        NestedFormat::Npt => (7, 7),
        NestedFormat::Ept => (7, 0x37),
    };
    let pts = GUEST_BYTES >> 21;
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, NESTED_ROOT)?;
    a.mov(ecx, ((pt + pts * 4096 - NESTED_ROOT) / 8) as i32)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(NESTED_ROOT), (pdpt | table) as i32)?;
    a.mov(qword_ptr(pdpt), (pd | table) as i32)?;
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(eax, ecx)?;
    a.shl(eax, 12i32)?;
    a.add(eax, (pt | table) as i32)?;
    a.mov(qword_ptr(rcx * 8 + pd as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, pts as i32)?;
    a.jb(lp.l)?;
    // PT[f] = p2m(f << 12) | the leaf's rights.
    let mut lp = a.label();
    let mut ident = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(rax, rcx)?;
    a.shl(rax, 12i32)?;
    p2m(a, rax, rdx, &mut ident)?;
    a.or(rax, leaf)?;
    a.mov(qword_ptr(rcx * 8 + pt as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, (GUEST_BYTES >> 12) as i32)?;
    a.jb(lp.l)
}

/// `r := p2m(r)`: guest-physical to host-physical (clobbers `tmp`; `skip`
/// is a fresh label this places).
pub fn p2m(a: &mut Asm, r: AsmRegister64, tmp: AsmRegister64, skip: &mut Label) -> AsmResult {
    a.mov(tmp, r)?;
    a.sub(tmp, DATA_GPA as i32)?;
    a.cmp(tmp, MAX_DATA as i32)?;
    a.jae(skip.l)?;
    a.add(r, (HOST_DATA - DATA_GPA) as i32)?;
    a.set(skip)
}

/// The shadow tables' helpers.
#[derive(Clone, Copy, Debug)]
pub struct Shadow {
    /// Empties the root and the pool (call; clobbers RAX, RCX, RDI).
    pub reset: Label,
    /// RAX := a zeroed page from the pool (call; clobbers RCX, RDI). Jumps
    /// to the hypervisor's failure path when the pool is used up.
    pub alloc: Label,
}

impl Shadow {
    /// Emits the helpers (the caller jumps over them).
    pub fn emit(a: &mut Asm, fail: &Label) -> Result<Self, IcedError> {
        let mut s = Shadow {
            reset: a.label(),
            alloc: a.label(),
        };
        a.set(&mut s.reset)?;
        a.cld()?;
        a.xor(eax, eax)?;
        a.mov(rdi, SHADOW_ROOT)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()?;
        a.mov(qword_ptr(POOL_NEXT), (SHADOW_ROOT + 0x1000) as i32)?;
        a.ret()?;
        a.set(&mut s.alloc)?;
        a.mov(rax, qword_ptr(POOL_NEXT))?;
        a.cmp(rax, POOL_END as i32)?;
        a.jae(fail.l)?;
        a.lea(rcx, qword_ptr(rax + 0x1000))?;
        a.mov(qword_ptr(POOL_NEXT), rcx)?;
        a.push(rax)?;
        a.mov(rdi, rax)?;
        a.xor(eax, eax)?;
        a.mov(ecx, 512i32)?;
        a.rep().stosq()?;
        a.pop(rax)?;
        a.ret()?;
        Ok(s)
    }

    /// The #PF handler's body, R8 = the linear address, R9 = the error code.
    /// Walks the guest's tables from [`GUEST_CR3`]: a fault of the guest's
    /// own jumps to `reflect` (R8, R9 kept); otherwise fills the shadow path
    /// and jumps to `resume`, after `invalidate` (RAX = the address) when an
    /// entry the TLB may hold changed. Clobbers every register but RSP.
    pub fn emit_fill(
        &self,
        a: &mut Asm,
        reflect: &Label,
        resume: &Label,
        invalidate: &dyn Fn(&mut Asm) -> AsmResult,
    ) -> AsmResult {
        let mut frame_done = a.label();
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
        for bit in [2i32, 4] {
            let mut ok = a.label();
            a.test(r9d, bit)?;
            a.jz(ok.l)?;
            a.test(r11d, bit)?;
            a.jz(reflect.l)?;
            a.set(&mut ok)?;
        }
        // Accessed, and dirty on a write, in the guest's leaf entry.
        let mut read = a.label();
        a.or(qword_ptr(r12), 0x20i32)?;
        a.test(r9d, 2i32)?;
        a.jz(read.l)?;
        a.or(qword_ptr(r12), 0x40i32)?;
        a.set(&mut read)?;
        // The shadow leaf: writable only once the guest's entry is dirty.
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
            a.call(self.alloc.l)?;
            a.or(rax, 7i32)?;
            a.mov(qword_ptr(r15), rax)?;
            a.set(&mut have)?;
            a.mov(r10, rax)?;
            a.and(r10, rbp)?;
        }
        a.mov(rcx, r8)?;
        a.shr(rcx, 12i32)?;
        a.and(ecx, 511i32)?;
        a.lea(r15, qword_ptr(r10 + rcx * 8))?;
        a.mov(rax, qword_ptr(r15))?;
        a.mov(qword_ptr(r15), r14)?;
        a.test(al, 1i32)?;
        a.jz(resume.l)?;
        // The entry changed (made writable): drop the old translation.
        a.mov(rax, r8)?;
        invalidate(a)?;
        a.jmp(resume.l)
    }

    /// INVLPG of R8: drops the shadow page table of its 2 MiB (which also
    /// covers a guest 2-MiB page shadowed by 4-KiB entries). Clobbers RAX,
    /// RCX, RBP, R10.
    pub fn emit_zap(&self, a: &mut Asm) -> AsmResult {
        let mut done = a.label();
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
        a.set(&mut done)
    }
}
