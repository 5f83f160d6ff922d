//! Enabling SVM and the rules of the SVM instructions themselves (APM Vol. 2
//! 15.4, 15.5, 15.30, 15.31; APM Vol. 3), and the later-generation features
//! the preset advertises: VM_CR (SVMDIS, LOCK, SVM_KEY), VM_HSAVE_PA,
//! EFER.SVME; #UD and #GP of VMRUN, VMLOAD, VMSAVE, STGI, CLGI, VMMCALL,
//! INVLPGA (SVM disabled, real and virtual-8086 mode, CPL > 0, a bad rAX,
//! which VMRUN checks before its intercept); VMLOAD/VMSAVE moving state;
//! VMCB clean bits honoured as hardware may; TSC_OFFSET and the TSC ratio.

mod svm_common;

use guestkit::layout::sel;
use guestkit::svm::{self as ksvm, VMCB2};
use guestkit::Program;
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{Misc1, Misc2};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::{exception, no_exception, that};

const EFER: u32 = 0xc000_0080;
const VM_CR: u32 = 0xc001_0114;
const HSAVE_PA: u32 = 0xc001_0117;
const SVM_KEY: u32 = 0xc001_0118;
const TSC_RATIO: u32 = 0xc000_0104;

/// WRMSR ECX := `msr`, EDX:EAX := `v` (clobbers RAX, RCX, RDX).
fn wrmsr(a: &mut Asm, msr: u32, v: u64) -> AsmResult {
    a.mov(ecx, msr as i32)?;
    a.mov(eax, v as u32 as i32)?;
    a.mov(edx, (v >> 32) as u32 as i32)?;
    a.wrmsr()
}

/// RDMSR into `r` (clobbers RAX, RCX, RDX).
fn rdmsr(a: &mut Asm, msr: u32, r: AsmRegister64) -> AsmResult {
    a.mov(ecx, msr as i32)?;
    a.rdmsr()?;
    a.shl(rdx, 32i32)?;
    a.or(rax, rdx)?;
    a.mov(r, rax)
}

/// EFER.SVME := `on`.
fn svme(a: &mut Asm, on: bool) -> AsmResult {
    a.mov(ecx, EFER as i32)?;
    a.rdmsr()?;
    if on {
        a.bts(eax, 12i32)?;
    } else {
        a.btr(eax, 12i32)?;
    }
    a.wrmsr()
}

fn msrs(s: &mut Suite) {
    s.case(
        "VM_CR: reserved bits #GP",
        |a, _| wrmsr(a, VM_CR, 1 << 5),
        vec![exception(13, Some(0))],
    );
    s.case(
        "VM_CR: SVMDIS while EFER.SVME = 1 #GP",
        |a, _| wrmsr(a, VM_CR, 1 << 4),
        vec![exception(13, Some(0))],
    );
    s.case(
        "VM_CR LOCK with SVM_KEY: SVMDIS sticks, EFER.SVME #GP, the key unlocks",
        |a, _| {
            svme(a, false)?;
            wrmsr(a, SVM_KEY, 0x1234_5678)?;
            rdmsr(a, SVM_KEY, r11)?;
            wrmsr(a, VM_CR, 1 << 3 | 1 << 4)?;
            wrmsr(a, VM_CR, 0)?;
            rdmsr(a, VM_CR, r12)?;
            // EFER.SVME is MBZ now: the #GP is recorded below, so first
            // unlock and re-enable, then try it under LOCK in another case.
            wrmsr(a, SVM_KEY, 0x1234_5678)?;
            wrmsr(a, VM_CR, 0)?;
            rdmsr(a, VM_CR, r13)?;
            svme(a, true)?;
            rdmsr(a, EFER, r14)
        },
        vec![
            no_exception(),
            named("SVM_KEY reads 0", 11, 0),
            named("VM_CR under LOCK", 12, 0x18),
            named("VM_CR after the key", 13, 0),
            that("EFER.SVME set again", |r| r.gprs[14] & 1 << 12 != 0),
        ],
    );
    s.case(
        "EFER.SVME is MBZ with VM_CR.SVMDIS",
        |a, _| {
            svme(a, false)?;
            wrmsr(a, VM_CR, 1 << 4)?;
            // Leave SVMDIS set only for this instruction: the kit's handler
            // resumes at the case end, which clears it again.
            svme(a, true)
        },
        vec![exception(13, Some(0))],
    );
    s.case(
        "re-enable SVM after the SVMDIS case",
        |a, s| {
            wrmsr(a, VM_CR, 0)?;
            s.enable(a)?;
            rdmsr(a, EFER, r11)
        },
        vec![no_exception(), that("SVME", |r| r.gprs[11] & 1 << 12 != 0)],
    );
    s.case(
        "VM_HSAVE_PA: bits 11:0 #GP",
        |a, _| wrmsr(a, HSAVE_PA, ksvm::HSAVE + 0x800),
        vec![exception(13, Some(0))],
    );
    s.case(
        "VM_HSAVE_PA: at MAXPHYADDR #GP",
        |a, _| wrmsr(a, HSAVE_PA, 1 << 48),
        vec![exception(13, Some(0))],
    );
    s.case(
        "VM_HSAVE_PA reads back",
        |a, _| rdmsr(a, HSAVE_PA, r11),
        vec![no_exception(), named("VM_HSAVE_PA", 11, ksvm::HSAVE)],
    );
}

fn instruction_faults(s: &mut Suite) {
    for (name, insn) in [
        ("VMRUN", 0),
        ("VMLOAD", 1),
        ("VMSAVE", 2),
        ("CLGI", 3),
        ("INVLPGA", 4),
    ] {
        s.case(
            &format!("{name} with EFER.SVME = 0 is #UD"),
            move |a, s| {
                svme(a, false)?;
                a.mov(rax, VMCB2)?;
                let r = match insn {
                    0 => a.vmrun(),
                    1 => a.vmload(),
                    2 => a.vmsave(),
                    3 => a.clgi(),
                    _ => a.invlpga(),
                };
                r?;
                s.enable(a)
            },
            vec![exception(6, None)],
        );
    }
    s.case(
        "re-enable SVM after the #UD cases",
        |a, s| s.enable(a),
        vec![no_exception()],
    );
    s.case(
        "STGI with EFER.SVME = 0 runs (SVM-Lock is advertised)",
        |a, s| {
            svme(a, false)?;
            a.stgi()?;
            s.enable(a)
        },
        vec![no_exception()],
    );
    s.case(
        "VMMCALL in the host is #UD",
        |a, _| a.vmmcall(),
        vec![exception(6, None)],
    );
    for (name, rax_, insn) in [
        ("VMRUN with rAX not page-aligned", VMCB2 + 8, 0),
        ("VMRUN with rAX at MAXPHYADDR", 1u64 << 48, 0),
        ("VMLOAD with rAX not page-aligned", VMCB2 + 0x10, 1),
        ("VMSAVE with rAX at MAXPHYADDR", 1u64 << 50, 2),
    ] {
        s.case(
            &format!("{name} is #GP(0)"),
            move |a, _| {
                a.mov(rax, rax_)?;
                match insn {
                    0 => a.vmrun(),
                    1 => a.vmload(),
                    _ => a.vmsave(),
                }
            },
            vec![exception(13, Some(0))],
        );
    }
    icase(
        s,
        "in the guest, VMRUN's rAX #GP comes before its intercept",
        intercept(F::InterceptExceptions, 1 << 13),
        |a| a.mov(rax, VMCB2 + 8),
        |a| a.vmrun(),
        nothing,
        vec![code(X::exception(13)), on_insn_no_nrip(), info1(0)],
    );
    icase(
        s,
        "in a CPL 3 guest, VMRUN is #GP and VMMCALL exits",
        |a| {
            svm::set(a, VMCB, F::InterceptExceptions, 1 << 13)?;
            svm::set(a, VMCB, F::Cpl, 3)?;
            svm::set(a, VMCB, F::CsSelector, sel::USER_CODE64 as u64)?;
            svm::set(a, VMCB, F::CsAttrib, 0xafb)?;
            svm::set(a, VMCB, F::SsSelector, sel::USER_DATA as u64)?;
            svm::set(a, VMCB, F::SsAttrib, 0xcf3)
        },
        |a| a.mov(rax, VMCB2),
        |a| a.vmrun(),
        nothing,
        vec![code(X::exception(13)), on_insn_no_nrip(), info1(0)],
    );
    icase(
        s,
        "VMMCALL at CPL 3 exits: it has no CPL check",
        |a| {
            svm::set(a, VMCB, F::Cpl, 3)?;
            svm::set(a, VMCB, F::CsSelector, sel::USER_CODE64 as u64)?;
            svm::set(a, VMCB, F::CsAttrib, 0xafb)?;
            svm::set(a, VMCB, F::SsSelector, sel::USER_DATA as u64)?;
            svm::set(a, VMCB, F::SsAttrib, 0xcf3)
        },
        nothing,
        |a| a.vmmcall(),
        nothing,
        vec![code(X::VMEXIT_VMMCALL), on_insn()],
    );
    for (name, v86) in [("real mode", false), ("virtual-8086 mode", true)] {
        s.case(
            &format!("VMRUN in a {name} guest is #UD"),
            move |a, s| {
                // 16-bit code: VMRUN (0F 01 D8) with AX.
                let l2 = l2_code(a, |a| a.db(&[0x0f, 0x01, 0xd8, 0xf4]))?;
                run_l2(a, s, &l2, |a| {
                    svm::set(a, VMCB, F::InterceptExceptions, 1 << 6)?;
                    svm::set(a, VMCB, F::Efer, 1 << 12)?;
                    svm::set(a, VMCB, F::Cr0, if v86 { 0x11 } else { 0x10 })?;
                    svm::set(a, VMCB, F::Cr4, 0)?;
                    svm::set(a, VMCB, F::Rflags, if v86 { 0x2_0002 } else { 2 })?;
                    svm::set(a, VMCB, F::CsSelector, 0)?;
                    svm::set(a, VMCB, F::CsAttrib, 0x9b)?;
                    svm::set(a, VMCB, F::CsLimit, 0xffff)?;
                    svm::set_label(a, VMCB, F::CsBase, &l2)?;
                    for (sl, at, lim) in [
                        (F::SsSelector, F::SsAttrib, F::SsLimit),
                        (F::DsSelector, F::DsAttrib, F::DsLimit),
                        (F::EsSelector, F::EsAttrib, F::EsLimit),
                    ] {
                        svm::set(a, VMCB, sl, 0)?;
                        svm::set(a, VMCB, at, 0x93)?;
                        svm::set(a, VMCB, lim, 0xffff)?;
                    }
                    svm::set(a, VMCB, F::Rsp, 0x7000)?;
                    svm::set(a, VMCB, F::Rip, 0)
                })
            },
            vec![code(X::exception(6)), named("RIP", reg::RIP, 0)],
        );
    }
}

fn vmload_vmsave(s: &mut Suite) {
    s.case(
        "VMSAVE then VMLOAD move FS, GS, KernelGsBase and the syscall MSRs",
        |a, _| {
            wrmsr(a, 0xc000_0100, 0x1111_0000)?; // FS.base
            wrmsr(a, 0xc000_0102, 0x2222_0000)?; // KernelGsBase
            wrmsr(a, 0xc000_0082, 0x3333_0000)?; // LSTAR
            a.mov(rax, VMCB2)?;
            a.vmsave()?;
            svm::get(a, r11, VMCB2, F::FsBase)?;
            svm::get(a, r12, VMCB2, F::KernelGsBase)?;
            svm::get(a, r13, VMCB2, F::Lstar)?;
            svm::set(a, VMCB2, F::KernelGsBase, 0x4444_0000)?;
            svm::set(a, VMCB2, F::FsBase, 0)?;
            a.mov(rax, VMCB2)?;
            a.vmload()?;
            rdmsr(a, 0xc000_0102, r14)?;
            rdmsr(a, 0xc000_0100, r15)
        },
        vec![
            no_exception(),
            named("saved FS.base", 11, 0x1111_0000),
            named("saved KernelGsBase", 12, 0x2222_0000),
            named("saved LSTAR", 13, 0x3333_0000),
            named("loaded KernelGsBase", 14, 0x4444_0000),
            named("loaded FS.base", 15, 0),
        ],
    );
}

fn clean_bits(s: &mut Suite) {
    s.case(
        "VMCB clean bits: a set bit keeps the cached intercepts",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.cpuid()?;
                a.vmmcall()
            })?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::CPUID.bits() as u64)
            })?;
            a.mov(r11, rax)?;
            // Drop the CPUID intercept but claim the intercepts are clean.
            svm::set(a, VMCB, F::InterceptMisc1, 0)?;
            svm::set(a, VMCB, F::VmcbClean, 1)?;
            svm::set(a, VMCB, F::TlbControl, 0)?;
            svm::set_label(a, VMCB, F::Rip, &l2)?;
            ksvm::vmrun(a, VMCB)?;
            ksvm::get(a, r12, VMCB, F::ExitCode)?;
            // Now tell the truth.
            svm::set(a, VMCB, F::VmcbClean, 0)?;
            svm::set_label(a, VMCB, F::Rip, &l2)?;
            ksvm::vmrun(a, VMCB)?;
            read_exit(a, VMCB)
        },
        vec![
            named("first exit", 11, X::VMEXIT_CPUID.0),
            named("stale intercepts", 12, X::VMEXIT_CPUID.0),
            code(X::VMEXIT_VMMCALL),
        ],
    );
}

fn tsc(s: &mut Suite) {
    icase(
        s,
        "TSC_OFFSET is added to the guest's RDTSC",
        |a| svm::set(a, VMCB, F::TscOffset, 1 << 40),
        nothing,
        |a| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r11, rax)
        },
        |a| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r12, rax)?;
            ksvm::get(a, rax, VMCB, F::ExitCode)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            that("guest TSC is offset", |r| {
                r.gprs[11] > 1 << 40 && r.gprs[11] - (1 << 40) <= r.gprs[12]
            }),
        ],
    );
    icase(
        s,
        "the TSC ratio scales the guest's TSC",
        |a| wrmsr(a, TSC_RATIO, 4 << 32),
        nothing,
        |a| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r11, rax)
        },
        |a| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r12, rax)?;
            wrmsr(a, TSC_RATIO, 1 << 32)?;
            ksvm::get(a, rax, VMCB, F::ExitCode)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            that("guest TSC about 4x the host's", |r| {
                r.gprs[11] > 3 * r.gprs[12] && r.gprs[11] < 4 * r.gprs[12]
            }),
        ],
    );
    let _ = Misc2::VMRUN;
}

fn single_step(s: &mut Suite) {
    s.case(
        "a single-stepped VMRUN traps after the #VMEXIT, in the host",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.nop()?;
                a.vmmcall()
            })?;
            s.init_vmcb(a, VMCB)?;
            svm::set_label(a, VMCB, F::Rip, &l2)?;
            let mut after = a.label();
            a.mov(
                rbx,
                qword_ptr(guestkit::layout::VARS + guestkit::layout::var::RECORD),
            )?;
            a.lea(rax, ptr(after.l))?;
            a.mov(qword_ptr(rbx + guestkit::layout::rec::USER as i32), rax)?;
            a.mov(rax, VMCB)?;
            a.pushfq()?;
            a.or(qword_ptr(rsp), 0x100i32)?;
            a.popfq()?;
            a.vmrun()?;
            a.set(&mut after)?;
            a.nop()
        },
        vec![
            exception(1, None),
            testsuites::check::exc_rip_is_slot(0),
            named("host RAX reloaded", 0, VMCB),
        ],
    );
    s.case(
        "... and the guest ran to its VMMCALL without a #DB",
        |a, _| {
            l2_log(a, r11, guestkit::svm::log::COUNT)?;
            read_exit(a, VMCB)
        },
        vec![code(X::VMEXIT_VMMCALL), named("L2 events", 11, 0)],
    );
}

#[test]
fn enabling_instruction_rules_and_features() {
    let mut p = Program::new();
    p.user_pages = true;
    let mut s = Suite {
        p: ksvm::SvmProgram::from_program(p),
        table: vec![(ksvm::ENABLE_CASE.into(), vec![no_exception()])],
    };
    msrs(&mut s);
    instruction_faults(&mut s);
    vmload_vmsave(&mut s);
    clean_bits(&mut s);
    tsc(&mut s);
    single_step(&mut s);
    s.run();
}
