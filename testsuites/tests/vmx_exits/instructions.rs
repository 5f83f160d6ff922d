//! Exits of instructions that always exit or exit by a primary or secondary
//! processor-based control (SDM Vol. 3C 26.1.2, 26.1.3).

use super::*;

pub(crate) fn unconditional(t: &mut Table) {
    simple(
        t,
        "CPUID always exits",
        P1::empty(),
        |a| {
            a.xor(eax, eax)?;
            mark(a)?;
            a.cpuid()
        },
        10,
        0,
        2,
    );
    simple(
        t,
        "INVD always exits",
        P1::empty(),
        |a| {
            mark(a)?;
            a.invd()
        },
        13,
        0,
        2,
    );
    simple(
        t,
        "XSETBV always exits",
        P1::empty(),
        |a| {
            a.mov(rax, cr4)?;
            a.bts(rax, 18)?; // CR4.OSXSAVE
            a.mov(cr4, rax)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.mov(eax, 3i32)?;
            mark(a)?;
            a.xsetbv()
        },
        55,
        0,
        3,
    );
    simple(
        t,
        "HLT exiting",
        P1::HLT_EXITING,
        |a| {
            mark(a)?;
            a.hlt()
        },
        12,
        0,
        1,
    );
    simple(
        t,
        "INVLPG exiting reports the linear address",
        P1::INVLPG_EXITING,
        |a| {
            a.mov(rax, 0x1234_5000u64)?;
            mark(a)?;
            a.invlpg(ptr(rax + 0x10))
        },
        14,
        0x1234_5010,
        4,
    );
    simple(
        t,
        "RDPMC exiting",
        P1::RDPMC_EXITING,
        |a| {
            a.xor(ecx, ecx)?;
            mark(a)?;
            a.rdpmc()
        },
        15,
        0,
        2,
    );
    simple(
        t,
        "RDTSC exiting",
        P1::RDTSC_EXITING,
        |a| {
            mark(a)?;
            a.rdtsc()
        },
        16,
        0,
        2,
    );
    simple(
        t,
        "MWAIT exiting",
        P1::MWAIT_EXITING,
        |a| {
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)?;
            mark(a)?;
            a.mwait()
        },
        36,
        0,
        3,
    );
    simple(
        t,
        "MONITOR exiting",
        P1::MONITOR_EXITING,
        |a| {
            a.mov(rax, layout::GUEST_DATA)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            mark(a)?;
            a.monitor()
        },
        39,
        0,
        3,
    );
    simple(
        t,
        "PAUSE exiting",
        P1::PAUSE_EXITING,
        |a| {
            mark(a)?;
            a.pause()
        },
        40,
        0,
        2,
    );
    simple(
        t,
        "MOV DR exiting: MOV RAX, DR7",
        P1::MOV_DR_EXITING,
        |a| {
            mark(a)?;
            a.mov(rax, dr7)
        },
        29,
        qual::mov_dr(7, true, 0),
        3,
    );
    simple(
        t,
        "MOV DR exiting: MOV DR0, RCX",
        P1::MOV_DR_EXITING,
        |a| {
            mark(a)?;
            a.mov(dr0, rcx)
        },
        29,
        qual::mov_dr(0, false, 1),
        3,
    );
}

pub(crate) type Body = fn(&mut Asm) -> guestkit::AsmResult;

pub(crate) fn secondary(t: &mut Table) {
    let cases: [(&str, P2, Body, u64, u64); 4] = [
        (
            "WBINVD exiting",
            P2::WBINVD_EXITING,
            |a| {
                mark(a)?;
                a.wbinvd()
            },
            54,
            2,
        ),
        (
            "RDRAND exiting",
            P2::RDRAND_EXITING,
            |a| {
                mark(a)?;
                a.rdrand(ecx)
            },
            57,
            3,
        ),
        (
            "RDSEED exiting",
            P2::RDSEED_EXITING,
            |a| {
                mark(a)?;
                a.rdseed(r9)
            },
            61,
            4,
        ),
        (
            "RDTSCP with RDTSC exiting",
            P2::ENABLE_RDTSCP,
            |a| {
                mark(a)?;
                a.rdtscp()
            },
            51,
            3,
        ),
    ];
    for (name, ctl, body, r, l) in cases {
        let mut checks = vec![reason(0, r), len(0, l), rip_marked(0), ends_with_vmcall()];
        if r == 57 {
            checks.push(info(0, ii::rdrand_rdseed(1, ii::OperandSize::O32) as u64));
        }
        if r == 61 {
            checks.push(info(0, ii::rdrand_rdseed(9, ii::OperandSize::O64) as u64));
        }
        t.case(
            VmxCase::guest(name, move |a, _| body(a)).setup(move |a, _| {
                p2(a, ctl)?;
                if r == 51 {
                    p1(a, P1::RDTSC_EXITING)?;
                }
                Ok(())
            }),
            checks,
        );
    }
    t.case(
        VmxCase::guest("RDTSCP without \"enable RDTSCP\" is #UD", |a, _| a.rdtscp()),
        vec![reason(0, 18), gpr(15, 0xe06), exits(1)],
    );
    t.case(
        VmxCase::guest("INVPCID with INVLPG exiting", |a, _| {
            a.mov(eax, 2i32)?;
            mark(a)?;
            a.invpcid(rax, ptr(rsp + 0x10))
        })
        .setup(|a, _| {
            p2(a, P2::ENABLE_INVPCID)?;
            p1(a, P1::INVLPG_EXITING)
        }),
        vec![
            reason(0, 58),
            qual(0, 0x10),
            len(0, 7),
            info(
                0,
                ii::invept_invpcid_invvpid(mem64(4, SegReg::Ss), 0) as u64,
            ),
            rip_marked(0),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest("INVPCID without \"enable INVPCID\" is #UD", |a, _| {
            a.mov(eax, 2i32)?;
            a.invpcid(rax, ptr(rsp))
        }),
        vec![reason(0, 18), gpr(15, 0xe06), exits(1)],
    );
    t.case(
        VmxCase::guest("INVPCID enabled runs; a bad type is #GP", |a, _| {
            a.mov(eax, 2i32)?;
            a.invpcid(rax, ptr(rsp))?;
            a.mov(r12d, 1i32)?;
            a.mov(eax, 4i32)?;
            a.invpcid(rax, ptr(rsp))
        })
        .setup(|a, _| p2(a, P2::ENABLE_INVPCID)),
        vec![reason(0, 18), gpr(12, 1), gpr(15, 0xe0d), exits(1)],
    );
    t.case(
        VmxCase::guest("XSETBV without CR4.OSXSAVE is #UD, not an exit", |a, _| {
            a.xor(ecx, ecx)?;
            a.mov(eax, 1i32)?;
            a.xsetbv()
        }),
        vec![reason(0, 18), gpr(15, 0xe06), exits(1)],
    );
    // XSAVES exits only for EDX:EAX & IA32_XSS & the XSS-exiting bitmap;
    // IA32_XSS can enable no component on this model, so the instruction
    // runs even with every bitmap bit set (SDM Vol. 3C 26.1.3).
    t.case(
        VmxCase::guest("XSAVES without \"enable XSAVES/XRSTORS\" is #UD", |a, _| {
            a.mov(rax, cr4)?;
            a.bts(rax, 18)?;
            a.mov(cr4, rax)?;
            a.mov(eax, -1i32)?;
            a.mov(edx, -1i32)?;
            a.xsaves64(ptr(rsp - 0x1000))
        }),
        vec![reason(0, 18), gpr(15, 0xe06), exits(1)],
    );
    t.case(
        VmxCase::guest("XSAVES and XRSTORS enabled run", |a, _| {
            a.mov(rax, cr4)?;
            a.bts(rax, 18)?;
            a.mov(cr4, rax)?;
            a.mov(rbx, rsp)?;
            a.sub(rbx, 0x1000i32)?;
            a.and(rbx, -64i32)?;
            a.mov(eax, -1i32)?;
            a.mov(edx, -1i32)?;
            a.xsaves64(ptr(rbx))?;
            a.xrstors64(ptr(rbx))?;
            a.mov(r12, qword_ptr(rbx + 520))
        })
        .setup(|a, _| {
            p2(a, P2::ENABLE_XSAVES)?;
            vmw(a, F::XssExitingBitmap, u64::MAX)
        }),
        // XCR0 is not part of the VMCS: L2 runs with L1's, still x87 only
        // since reset, so XCOMP_BV = bit 63 | bit 0.
        vec![gpr(12, 0x8000_0000_0000_0001), exits(1)],
    );
    t.case(
        VmxCase::guest("RDRAND without exiting runs", |a, _| {
            a.xor(ecx, ecx)?;
            a.rdrand(rax)?;
            a.setc(cl)
        }),
        vec![gpr(1, 1), exits(1)],
    );
}
