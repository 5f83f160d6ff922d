//! Descriptor-table exits, VMX instructions in non-root operation, and the
//! non-root behaviour that is not an exit (SDM Vol. 3C 26.1.2, 26.1.3, 26.3).

use super::*;
use crate::instructions::Body;

pub(crate) fn descriptor_tables(t: &mut Table) {
    t.case(
        VmxCase::guest("SGDT with descriptor-table exiting", |a, _| {
            mark(a)?;
            a.sgdt(ptr(rsp - 16))
        })
        .setup(|a, _| p2(a, P2::DESCRIPTOR_TABLE_EXITING)),
        vec![
            reason(0, 46),
            qual(0, (-16i64) as u64),
            len(0, 5),
            info(
                0,
                ii::gdtr_idtr(ii::DescriptorTableInsn::Sgdt, mem64(4, SegReg::Ss), true) as u64,
            ),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("LIDT with descriptor-table exiting", |a, _| {
            a.mov(rax, layout::GUEST_DATA)?;
            mark(a)?;
            a.lidt(ptr(rax))
        })
        .setup(|a, _| p2(a, P2::DESCRIPTOR_TABLE_EXITING)),
        vec![
            reason(0, 46),
            qual(0, 0),
            info(
                0,
                ii::gdtr_idtr(ii::DescriptorTableInsn::Lidt, mem64(0, SegReg::Ds), true) as u64,
            ),
        ],
    );
    t.case(
        VmxCase::guest("STR with descriptor-table exiting", |a, _| {
            mark(a)?;
            a.str(dx)
        })
        .setup(|a, _| p2(a, P2::DESCRIPTOR_TABLE_EXITING)),
        vec![
            reason(0, 47),
            info(
                0,
                ii::ldtr_tr(ii::LdtrTrInsn::Str, Operand::Register(2)) as u64,
            ),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("LLDT with descriptor-table exiting", |a, _| {
            a.xor(eax, eax)?;
            mark(a)?;
            a.lldt(ax)
        })
        .setup(|a, _| p2(a, P2::DESCRIPTOR_TABLE_EXITING)),
        vec![
            reason(0, 47),
            info(
                0,
                ii::ldtr_tr(ii::LdtrTrInsn::Lldt, Operand::Register(0)) as u64,
            ),
        ],
    );
}

pub(crate) fn vmx_instructions(t: &mut Table) {
    let m = |base| ii::vmx_memory(mem64(base, SegReg::Ds)) as u64;
    type Row = (&'static str, Body, u64, u64, u64, Option<u64>);
    let cases: [Row; 8] = [
        (
            "VMCLEAR in L2",
            |a| a.vmclear(ptr(rsi + 8)),
            19,
            8,
            5,
            Some(m(6)),
        ),
        (
            "VMPTRLD in L2",
            |a| a.vmptrld(ptr(rsi + 8)),
            21,
            8,
            4,
            Some(m(6)),
        ),
        (
            "VMPTRST in L2",
            |a| a.vmptrst(ptr(rsi - 8)),
            22,
            (-8i64) as u64,
            4,
            Some(m(6)),
        ),
        ("VMXON in L2", |a| a.vmxon(ptr(rsi)), 27, 0, 4, Some(m(6))),
        ("VMXOFF in L2", |a| a.vmxoff(), 26, 0, 3, None),
        ("VMLAUNCH in L2", |a| a.vmlaunch(), 20, 0, 3, None),
        ("VMRESUME in L2", |a| a.vmresume(), 24, 0, 3, None),
        ("VMCALL in L2", |a| a.vmcall(), 18, 0, 3, None),
    ];
    for (name, body, r, q, l, inf) in cases {
        let mut checks = vec![reason(0, r), qual(0, q), len(0, l), rip_marked(0)];
        if let Some(i) = inf {
            checks.push(info(0, i));
        }
        t.case(
            VmxCase::guest(name, move |a, _| {
                a.mov(rsi, layout::GUEST_DATA)?;
                mark(a)?;
                body(a)
            }),
            checks,
        );
    }
    t.case(
        VmxCase::guest("VMREAD and VMWRITE in L2", |a, _| {
            a.mov(ecx, F::GuestRip.encoding())?;
            mark(a)?;
            a.vmread(rdx, rcx)?;
            a.vmwrite(rcx, qword_ptr(rdi + 0x18))
        })
        .on_exit(|a, rt| {
            vmr(a, rax, F::ExitReason)?;
            a.cmp(eax, 23i32)?;
            a.jne(rt.default_exit.l)?;
            // Emulate the VMREAD: RDX = 0x77, then skip it.
            set_guest_gpr(a, 2, 0x77)?;
            a.jmp(rt.skip.l)
        }),
        vec![
            reason(0, 23),
            info(0, ii::vmread_vmwrite(Operand::Register(2), 1) as u64),
            rip_marked(0),
            gpr(2, 0x77),
            reason(1, 25),
            qual(1, 0x18),
            info(
                1,
                ii::vmread_vmwrite(Operand::Memory(mem64(7, SegReg::Ds)), 1) as u64,
            ),
            ends_with_vmcall(),
        ],
    );
    t.case(
        VmxCase::guest("INVEPT and INVVPID in L2", |a, _| {
            a.mov(rax, 1u64)?;
            mark(a)?;
            a.invept(rax, ptr(rsp + 0x20))?;
            a.invvpid(rax, ptr(rsp))
        }),
        vec![
            reason(0, 50),
            qual(0, 0x20),
            info(
                0,
                ii::invept_invpcid_invvpid(mem64(4, SegReg::Ss), 0) as u64,
            ),
            rip_marked(0),
            reason(1, 53),
            info(
                1,
                ii::invept_invpcid_invvpid(mem64(4, SegReg::Ss), 0) as u64,
            ),
            ends_with_vmcall(),
        ],
    );
}

pub(crate) fn non_root_behaviour(t: &mut Table) {
    t.case(
        VmxCase::guest("TSC offsetting adds the offset to RDTSC", |a, _| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r8, rax)
        })
        .setup(|a, _| {
            p1(a, P1::USE_TSC_OFFSETTING)?;
            vmw(a, F::TscOffset, 1 << 50)?;
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            store_user(a, 0, rax)
        }),
        vec![
            exits(1),
            that("RDTSC in L2 = L1's TSC + 2^50 + a little", |r| {
                let d = r.gprs[8].wrapping_sub(r.user[0]);
                d > 1 << 50 && d < (1 << 50) + 100_000
            }),
        ],
    );
    t.case(
        VmxCase::guest("PAUSE-loop exiting ends a long PAUSE loop", |a, _| {
            let mut lp = a.label();
            a.xor(ecx, ecx)?;
            a.set(&mut lp)?;
            a.inc(ecx)?;
            a.pause()?;
            a.jmp(lp.l)
        })
        .setup(|a, _| {
            p2(a, P2::PAUSE_LOOP_EXITING)?;
            vmw(a, F::PleGap, 1000)?;
            vmw(a, F::PleWindow, 2000)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 40),
            len(0, 2),
            that("the loop ran a while first", |r| r.gprs[1] > 3),
        ],
    );
}
