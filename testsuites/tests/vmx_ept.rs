//! EPT and VPID end to end: EPT violations for reads, writes and fetches
//! with their qualification and addresses, during event delivery (with
//! IDT-vectoring information), EPT misconfigurations, INVEPT and INVVPID
//! making a changed mapping visible (SDM Vol. 3C 29.3, 29.4, 28.2.1).

mod vmx_common;

use guestkit::vmx::{at, layout, poke, vmor, vmr, vmw, VmxCase};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use vmx_common::*;
use vmx_model::controls::Proc2Controls as P2;
use vmx_model::exit::qual::EptViolation as Q;
use vmx_model::Field as F;

/// The 2-MiB region the spare EPT page table maps with 4-KiB pages.
const REGION: u64 = 0x180_0000;
/// EPT entry: read, write, execute, write-back memory type.
const RWX: u64 = 0x37;

fn pte(addr: u64) -> u64 {
    layout::EPT_PT + 8 * ((addr - REGION) >> 12)
}

/// Enables EPT and maps [`REGION`] with 4-KiB pages, all RWX, then INVEPT.
fn ept_4k(a: &mut Asm) -> AsmResult {
    vmor(
        a,
        F::SecondaryProcBasedControls,
        P2::ENABLE_EPT.bits() as u64,
    )?;
    vmw(a, F::EptPointer, layout::EPTP)?;
    let mut lp = a.label();
    a.mov(rdi, layout::EPT_PT)?;
    a.mov(rax, REGION | RWX)?;
    a.mov(ecx, 512i32)?;
    a.set(&mut lp)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(lp.l)?;
    poke(a, layout::EPT_PD + 8 * (REGION >> 21), layout::EPT_PT | 7)?;
    invept_all(a)
}

/// INVEPT of every EPTP (clobbers RAX, RDX).
fn invept_all(a: &mut Asm) -> AsmResult {
    a.mov(edx, 2i32)?;
    a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))
}

/// Sets the EPT entry of `addr` (clobbers RAX).
fn set_pte(a: &mut Asm, addr: u64, v: u64) -> AsmResult {
    poke(a, pte(addr), v)
}

/// L1 exit code: on `reason`, make `addr` RWX again, INVEPT and resume
/// (the faulting access runs again); otherwise the default.
fn repair_on(reason: u64, addr: u64) -> impl Fn(&mut Asm, &guestkit::vmx::VmxRt) -> AsmResult {
    move |a, rt| {
        let mut other = a.label();
        vmr(a, rax, F::ExitReason)?;
        a.cmp(eax, reason as i32)?;
        a.jne(other.l)?;
        set_pte(a, addr, (addr & !0xfff) | RWX)?;
        invept_all(a)?;
        a.jmp(rt.resume.l)?;
        a.set(&mut other)?;
        a.jmp(rt.default_exit.l)
    }
}

const DATA: u64 = layout::GUEST_DATA;
const LINEAR: u64 = (Q::LINEAR_ADDRESS_VALID.bits()) | Q::LINEAR_TRANSLATION.bits();

fn violations(t: &mut Table) {
    let page = DATA + 0x4000;
    t.case(
        VmxCase::guest("EPT violation: read of a not-present page", move |a, _| {
            a.mov(rax, page + 0x18)?;
            mark(a)?;
            a.mov(rbx, qword_ptr(rax))
        })
        .setup(move |a, _| {
            ept_4k(a)?;
            set_pte(a, page, 0)?;
            invept_all(a)
        })
        .on_exit(repair_on(48, page)),
        vec![
            reason(0, 48),
            qual(0, Q::READ.bits() | LINEAR | Q::READ_WRITE_LINEAR.bits()),
            field(0, "guest-physical", |e| e.guest_physical, page + 0x18),
            field(0, "guest-linear", |e| e.guest_linear, page + 0x18),
            rip_marked(0),
            ends_with_vmcall(),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest("EPT violation: write to a read-only page", move |a, _| {
            a.mov(rax, page + 0x20)?;
            mark(a)?;
            a.mov(qword_ptr(rax), rbx)
        })
        .setup(move |a, _| {
            ept_4k(a)?;
            set_pte(a, page, page | 0x35)?;
            invept_all(a)
        })
        .on_exit(repair_on(48, page)),
        vec![
            reason(0, 48),
            qual(
                0,
                (Q::WRITE | Q::READABLE | Q::EXECUTABLE | Q::READ_WRITE_LINEAR).bits() | LINEAR,
            ),
            field(0, "guest-physical", |e| e.guest_physical, page + 0x20),
            rip_marked(0),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "EPT violation: fetch from a non-executable page",
            move |a, _| {
                a.mov(rax, page + 0x100)?;
                a.mov(byte_ptr(rax), 0xc3i32)?;
                a.call(rax)
            },
        )
        .setup(move |a, _| {
            ept_4k(a)?;
            set_pte(a, page, page | 0x33)?;
            invept_all(a)
        })
        .on_exit(repair_on(48, page)),
        vec![
            reason(0, 48),
            qual(
                0,
                (Q::FETCH | Q::READABLE | Q::WRITABLE | Q::READ_WRITE_LINEAR).bits() | LINEAR,
            ),
            field(0, "guest-physical", |e| e.guest_physical, page + 0x100),
            field(0, "RIP", |e| e.rip, page + 0x100),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest(
            "EPT misconfiguration: writable, not readable",
            move |a, _| {
                a.mov(rax, page + 0x8)?;
                mark(a)?;
                a.mov(rbx, qword_ptr(rax))
            },
        )
        .setup(move |a, _| {
            ept_4k(a)?;
            set_pte(a, page, page | 0x32)?;
            invept_all(a)
        })
        .on_exit(repair_on(49, page)),
        vec![
            reason(0, 49),
            field(0, "guest-physical", |e| e.guest_physical, page + 0x8),
            rip_marked(0),
            exits(2),
        ],
    );
    let stack = layout::GUEST_STACK_TOP - 0x1000;
    t.case(
        VmxCase::guest("EPT violation while delivering INT n", |a, _| {
            mark(a)?;
            a.int(0x80i32)
        })
        .setup(move |a, _| {
            ept_4k(a)?;
            set_pte(a, stack, stack | 0x35)?;
            invept_all(a)
        })
        .on_exit(repair_on(48, stack)),
        vec![
            reason(0, 48),
            field(0, "IDT-vectoring", |e| e.idt_info, 0x8000_0480),
            len(0, 2),
            rip_marked(0),
            that("a write to the stack", |r| {
                r.exits[0].qualification & 2 != 0
            }),
            that("the L2 handler ran after the repair", |r| {
                r.gprs[15] == 0xe80
            }),
        ],
    );
}

fn invalidation(t: &mut Table) {
    let x = DATA + 0x6000;
    let y = DATA + 0x7000;
    t.case(
        VmxCase::guest(
            "INVEPT makes a remapped guest-physical page visible",
            move |a, _| {
                a.mov(rax, x)?;
                a.mov(r8, qword_ptr(rax))?;
                a.vmcall()?;
                a.mov(rax, x)?;
                a.mov(r9, qword_ptr(rax))
            },
        )
        .setup(move |a, _| {
            ept_4k(a)?;
            poke(a, x, 0x1111)?;
            poke(a, y, 0x2222)
        })
        .on_exit(move |a, rt| {
            a.mov(rbx, at(layout::VARS))?;
            a.cmp(qword_ptr(rbx + 0x18), 1i32)?;
            a.jne(rt.finish.l)?;
            set_pte(a, x, y | RWX)?;
            a.mov(rax, layout::EPTP)?;
            a.mov(at(layout::SCRATCH + 0x10), rax)?;
            a.mov(edx, 1i32)?;
            a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
            a.jmp(rt.skip.l)
        }),
        vec![gpr(8, 0x1111), gpr(9, 0x2222), exits(2)],
    );
    // L2 uses L1's page tables; L1 points the 2-MiB page at VA 0x8000_0000
    // somewhere else while L2 runs with VPID 1.
    let pde = guestkit::layout::PD + 8 * 1024;
    let target = 0x1a0_0000;
    t.case(
        VmxCase::guest("INVVPID makes a changed guest mapping visible", |a, _| {
            a.mov(eax, 0x8000_0000u32 as i32)?;
            a.mov(r8, qword_ptr(rax))?;
            a.vmcall()?;
            a.mov(eax, 0x8000_0000u32 as i32)?;
            a.mov(r9, qword_ptr(rax))
        })
        .setup(move |a, _| {
            vmor(
                a,
                F::SecondaryProcBasedControls,
                P2::ENABLE_VPID.bits() as u64,
            )?;
            vmw(a, F::VirtualProcessorId, 1)?;
            poke(a, target, 0x3333)
        })
        .on_exit(move |a, rt| {
            let mut done = a.label();
            a.mov(rbx, at(layout::VARS))?;
            a.cmp(qword_ptr(rbx + 0x18), 1i32)?;
            a.jne(done.l)?;
            poke(a, pde, target | 0x83)?;
            a.mov(rax, 1u64)?;
            a.mov(at(layout::SCRATCH + 0x10), rax)?;
            a.mov(edx, 1i32)?;
            a.invvpid(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
            a.jmp(rt.skip.l)?;
            a.set(&mut done)?;
            poke(a, pde, 0x8000_0000 | 0x83)?;
            a.jmp(rt.finish.l)
        }),
        vec![gpr(8, u64::MAX), gpr(9, 0x3333), exits(2)],
    );
}

#[test]
fn ept_violations_misconfigurations_and_invalidations() {
    let mut t = Table::default();
    violations(&mut t);
    invalidation(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx EPT: {n} cases passed");
}
