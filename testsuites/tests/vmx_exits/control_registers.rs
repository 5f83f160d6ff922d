//! CR access exits, read shadows and CR3-target values (SDM Vol. 3C 26.1.3,
//! 26.3, 28.2.1 table "Exit Qualification for Control-Register Accesses").

use super::*;

pub(crate) fn control_registers(t: &mut Table) {
    t.case(
        VmxCase::guest("MOV to CR0 changing a host-owned bit", |a, _| {
            a.mov(rcx, cr0)?;
            a.or(rcx, 8i32)?;
            mark(a)?;
            a.mov(cr0, rcx)
        })
        .setup(|a, _| vmw(a, F::Cr0GuestHostMask, 8)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(0, CrAccess::MovTo { gpr: 1 })),
            len(0, 3),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest(
            "MOV to CR0 keeping host-owned bits does not exit",
            |a, _| {
                a.mov(rcx, cr0)?;
                a.or(rcx, 2i32)?;
                a.mov(cr0, rcx)?;
                a.mov(rdx, cr0)
            },
        )
        .setup(|a, _| vmw(a, F::Cr0GuestHostMask, 8)),
        vec![exits(1), that("CR0.MP set", |r| r.gprs[2] & 2 != 0)],
    );
    t.case(
        VmxCase::guest("MOV from CR0 and SMSW read the shadow", |a, _| {
            a.mov(rax, cr0)?;
            a.smsw(ecx)
        })
        .setup(|a, _| {
            vmw(a, F::Cr0GuestHostMask, 8)?;
            vmw(a, F::Cr0ReadShadow, 8)
        }),
        vec![
            exits(1),
            that("CR0.TS from the shadow", |r| r.gprs[0] & 8 != 0),
            that("SMSW TS from the shadow", |r| r.gprs[1] & 8 != 0),
        ],
    );
    t.case(
        VmxCase::guest("MOV from CR4 hides VMXE behind the shadow", |a, _| {
            a.mov(rax, cr4)
        })
        .setup(|a, _| vmw(a, F::Cr4GuestHostMask, 0x2000)),
        vec![
            exits(1),
            that("CR4.VMXE hidden", |r| r.gprs[0] & 0x2000 == 0),
        ],
    );
    t.case(
        VmxCase::guest("MOV to CR4 setting a host-owned bit", |a, _| {
            a.mov(rax, cr4)?;
            a.or(eax, 0x2000i32)?;
            mark(a)?;
            a.mov(cr4, rax)
        })
        .setup(|a, _| vmw(a, F::Cr4GuestHostMask, 0x2000)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(4, CrAccess::MovTo { gpr: 0 })),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("CR3-load exiting", |a, _| {
            a.mov(rax, cr3)?;
            mark(a)?;
            a.mov(cr3, rax)
        })
        .setup(|a, _| p1(a, P1::CR3_LOAD_EXITING)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(3, CrAccess::MovTo { gpr: 0 })),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("CR3-target value does not exit", |a, _| {
            a.mov(rax, cr3)?;
            a.mov(cr3, rax)
        })
        .setup(|a, _| {
            p1(a, P1::CR3_LOAD_EXITING)?;
            a.mov(rax, cr3)?;
            guestkit::vmx::vmw_reg(a, F::Cr3TargetValue1, rax)?;
            vmw(a, F::Cr3TargetCount, 2)
        }),
        vec![exits(1)],
    );
    t.case(
        VmxCase::guest("CR3-store exiting", |a, _| {
            mark(a)?;
            a.mov(rdx, cr3)
        })
        .setup(|a, _| p1(a, P1::CR3_STORE_EXITING)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(3, CrAccess::MovFrom { gpr: 2 })),
        ],
    );
    t.case(
        VmxCase::guest("CR8-load exiting", |a, _| {
            a.mov(r9, 2u64)?;
            mark(a)?;
            a.mov(cr8, r9)
        })
        .setup(|a, _| p1(a, P1::CR8_LOAD_EXITING)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(8, CrAccess::MovTo { gpr: 9 })),
            len(0, 4),
        ],
    );
    t.case(
        VmxCase::guest("CR8-store exiting", |a, _| {
            mark(a)?;
            a.mov(rbx, cr8)
        })
        .setup(|a, _| p1(a, P1::CR8_STORE_EXITING)),
        vec![
            reason(0, 28),
            qual(0, qual::cr_access(8, CrAccess::MovFrom { gpr: 3 })),
        ],
    );
    t.case(
        VmxCase::guest("CLTS with TS owned and shadowed", |a, _| {
            mark(a)?;
            a.clts()
        })
        .setup(|a, _| {
            vmw(a, F::Cr0GuestHostMask, 8)?;
            vmw(a, F::Cr0ReadShadow, 8)
        }),
        vec![reason(0, 28), qual(0, qual::cr_access(0, CrAccess::Clts))],
    );
    t.case(
        VmxCase::guest("LMSW changing an owned bit", |a, _| {
            a.mov(eax, 0x3i32)?;
            mark(a)?;
            a.lmsw(ax)
        })
        .setup(|a, _| vmw(a, F::Cr0GuestHostMask, 2)),
        vec![
            reason(0, 28),
            qual(
                0,
                qual::cr_access(
                    0,
                    CrAccess::Lmsw {
                        memory: false,
                        source: 3,
                    },
                ),
            ),
        ],
    );
    t.case(
        VmxCase::guest("TPR below threshold after MOV to CR8", |a, _| {
            // The exit is trap-like: the saved RIP is the next instruction.
            let mut next = a.label();
            a.mov(eax, 2i32)?;
            a.lea(r13, ptr(next.l))?;
            a.mov(cr8, rax)?;
            a.set(&mut next)?;
            a.mov(rbx, cr8)
        })
        .setup(|a, _| {
            p1(a, P1::USE_TPR_SHADOW)?;
            vmw(a, F::VirtualApicAddress, layout::VIRTUAL_APIC)?;
            poke(a, layout::VIRTUAL_APIC + 0x80, 0x50)?;
            vmw(a, F::TprThreshold, 4)
        })
        .on_exit(|a, rt| {
            // The exit is trap-like: resume at the saved RIP.
            let mut other = a.label();
            vmr(a, rax, F::ExitReason)?;
            a.cmp(eax, 43i32)?;
            a.jne(other.l)?;
            // Lower the threshold, as the TPR-threshold check requires.
            vmw(a, F::TprThreshold, 0)?;
            a.jmp(rt.resume.l)?;
            a.set(&mut other)?;
            a.jmp(rt.default_exit.l)
        }),
        vec![reason(0, 43), rip_marked(0), gpr(3, 2), exits(2)],
    );
}
