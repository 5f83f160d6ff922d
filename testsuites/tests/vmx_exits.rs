//! Instruction exits: an L1 hypervisor runs a 64-bit L2 guest per case, sets
//! the control that makes one instruction exit, and the host side checks the
//! exit reason, qualification, instruction length, instruction information
//! and saved RIP (SDM Vol. 3C 26.1, 28.2.1, 28.2.5). Also the non-root
//! behaviour that is not an exit: read shadows, CR3-target values, bitmaps
//! with the bit clear, the TSC offset.

mod vmx_common;

use guestkit::vmx::{layout, poke, set_guest_gpr, store_user, vmclr, vmor, vmr, vmw, VmxCase};
use guestkit::Asm;
use iced_x86::code_asm::*;
use mmu::SegReg;
use vmx_common::*;
use vmx_model::controls::{Proc2Controls as P2, ProcControls as P1};
use vmx_model::exit::insn_info::{self as ii, AddressSize, MemOperand, Operand};
use vmx_model::exit::qual::{self, CrAccess, IoAccess};
use vmx_model::Field as F;

fn p1(a: &mut Asm, bits: P1) -> guestkit::AsmResult {
    vmor(a, F::PrimaryProcBasedControls, bits.bits() as u64)
}

fn p2(a: &mut Asm, bits: P2) -> guestkit::AsmResult {
    vmor(a, F::SecondaryProcBasedControls, bits.bits() as u64)
}

/// A memory operand through `base` in 64-bit code.
fn mem64(base: u8, seg: SegReg) -> MemOperand {
    MemOperand {
        scale: 0,
        address_size: AddressSize::A64,
        segment: seg,
        index: None,
        base: Some(base),
    }
}

/// A case whose guest executes `body` (with R13 marking the instruction
/// under test) under the primary controls `ctl`, expecting exit `r` with
/// qualification `q` and length `l` first, then the final VMCALL.
fn simple(
    t: &mut Table,
    name: &str,
    ctl: P1,
    body: fn(&mut Asm) -> guestkit::AsmResult,
    r: u64,
    q: u64,
    l: u64,
) {
    t.case(
        VmxCase::guest(name, move |a, _| {
            body(a)?;
            Ok(())
        })
        .setup(move |a, _| p1(a, ctl)),
        vec![
            reason(0, r),
            qual(0, q),
            len(0, l),
            rip_marked(0),
            ends_with_vmcall(),
            exits(2),
        ],
    );
}

fn unconditional(t: &mut Table) {
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

type Body = fn(&mut Asm) -> guestkit::AsmResult;

fn secondary(t: &mut Table) {
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

fn control_registers(t: &mut Table) {
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

fn io_and_msrs(t: &mut Table) {
    let out_imm = IoAccess {
        port: 0x80,
        size: 1,
        input: false,
        string: false,
        rep: false,
        immediate: true,
    };
    simple(
        t,
        "Unconditional I/O exiting: OUT imm8",
        P1::UNCONDITIONAL_IO_EXITING,
        |a| {
            mark(a)?;
            a.out(0x80i32, al)
        },
        30,
        qual::io(out_imm),
        2,
    );
    let in_dx = IoAccess {
        port: 0x71,
        size: 4,
        input: true,
        string: false,
        rep: false,
        immediate: false,
    };
    t.case(
        VmxCase::guest("I/O bitmap A bit set: IN EAX, DX", |a, _| {
            a.mov(edx, 0x70i32)?;
            a.in_(al, dx)?;
            a.mov(edx, 0x71i32)?;
            mark(a)?;
            a.in_(eax, dx)
        })
        .setup(|a, _| {
            p1(a, P1::USE_IO_BITMAPS | P1::UNCONDITIONAL_IO_EXITING)?;
            a.mov(
                byte_ptr((layout::IO_BITMAP_A + 0x71 / 8) as u32 as u64),
                2i32,
            )
        }),
        vec![
            reason(0, 30),
            qual(0, qual::io(in_dx)),
            len(0, 1),
            rip_marked(0),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest("I/O bitmap B and a port straddling both", |a, _| {
            a.mov(edx, 0x7fffi32)?;
            mark(a)?;
            a.out(dx, ax)
        })
        .setup(|a, _| {
            p1(a, P1::USE_IO_BITMAPS)?;
            a.mov(byte_ptr(layout::IO_BITMAP_B as u32 as u64), 1i32)
        }),
        vec![reason(0, 30), rip_marked(0), exits(2)],
    );
    let outs = IoAccess {
        port: 0x3f8,
        size: 1,
        input: false,
        string: true,
        rep: true,
        immediate: false,
    };
    t.case(
        VmxCase::guest("REP OUTSB reports the linear address", |a, _| {
            a.mov(edx, 0x3f8i32)?;
            a.mov(rsi, layout::GUEST_DATA + 0x10)?;
            a.mov(ecx, 4i32)?;
            mark(a)?;
            a.rep().outsb()
        })
        .setup(|a, _| p1(a, P1::UNCONDITIONAL_IO_EXITING)),
        vec![
            reason(0, 30),
            qual(0, qual::io(outs)),
            len(0, 2),
            field(
                0,
                "guest-linear address",
                |e| e.guest_linear,
                layout::GUEST_DATA + 0x10,
            ),
            info(0, ii::ins_outs(AddressSize::A64, SegReg::Ds) as u64),
        ],
    );
    t.case(
        VmxCase::guest("INSW reports ES:RDI", |a, _| {
            a.mov(edx, 0x60i32)?;
            a.mov(rdi, layout::GUEST_DATA + 0x20)?;
            mark(a)?;
            a.insw()
        })
        .setup(|a, _| p1(a, P1::UNCONDITIONAL_IO_EXITING)),
        vec![
            reason(0, 30),
            qual(
                0,
                qual::io(IoAccess {
                    port: 0x60,
                    size: 2,
                    input: true,
                    string: true,
                    rep: false,
                    immediate: false,
                }),
            ),
            field(
                0,
                "guest-linear address",
                |e| e.guest_linear,
                layout::GUEST_DATA + 0x20,
            ),
            info(0, ii::ins_outs(AddressSize::A64, SegReg::Es) as u64),
        ],
    );
    t.case(
        VmxCase::guest("RDMSR exits without MSR bitmaps", |a, _| {
            a.mov(ecx, 0x10i32)?;
            mark(a)?;
            a.rdmsr()
        })
        .setup(|a, _| {
            vmclr(
                a,
                F::PrimaryProcBasedControls,
                P1::USE_MSR_BITMAPS.bits() as u64,
            )
        }),
        vec![reason(0, 31), len(0, 2), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest(
            "MSR bitmaps: read-high bit of EFER, write-low clear",
            |a, _| {
                a.mov(ecx, 0x1d9i32)?;
                a.xor(eax, eax)?;
                a.xor(edx, edx)?;
                a.wrmsr()?;
                a.mov(ecx, 0xc000_0080u32 as i32)?;
                mark(a)?;
                a.rdmsr()
            },
        )
        .setup(|a, _| {
            p1(a, P1::USE_MSR_BITMAPS)?;
            a.mov(
                byte_ptr((layout::MSR_BITMAP + 0x400 + 0x80 / 8) as u32 as u64),
                1i32,
            )
        }),
        vec![reason(0, 31), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest("MSR bitmaps: WRMSR of a bit set in write-low", |a, _| {
            a.mov(ecx, 0x1d9i32)?;
            a.xor(eax, eax)?;
            a.xor(edx, edx)?;
            mark(a)?;
            a.wrmsr()
        })
        .setup(|a, _| {
            p1(a, P1::USE_MSR_BITMAPS)?;
            a.mov(
                byte_ptr((layout::MSR_BITMAP + 0x800 + 0x1d9 / 8) as u32 as u64),
                2i32,
            )
        }),
        vec![reason(0, 32), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest("MSR bitmaps: an index outside both ranges exits", |a, _| {
            a.mov(ecx, 0x4000_0000i32)?;
            mark(a)?;
            a.rdmsr()
        })
        .setup(|a, _| p1(a, P1::USE_MSR_BITMAPS)),
        vec![reason(0, 31), rip_marked(0)],
    );
}

fn descriptor_tables(t: &mut Table) {
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

fn vmx_instructions(t: &mut Table) {
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

fn non_root_behaviour(t: &mut Table) {
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

#[test]
fn instruction_exits() {
    let mut t = Table::default();
    unconditional(&mut t);
    secondary(&mut t);
    control_registers(&mut t);
    io_and_msrs(&mut t);
    descriptor_tables(&mut t);
    vmx_instructions(&mut t);
    non_root_behaviour(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx instruction exits: {n} cases passed");
}
