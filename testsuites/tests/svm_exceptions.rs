//! Exception intercepts (APM Vol. 2 15.12) and EXITINTINFO (15.7.2): each
//! exception the L2 guest raises exits when its bit is set, with the error
//! code in EXITINFO1, the #PF address in EXITINFO2 (CR2 untouched) and the
//! instruction bytes (decode assists, 15.8.4); #BP from INT3 saves NRIP; an
//! exception raised while delivering another event records that event in
//! EXITINTINFO; a triple fault is the SHUTDOWN intercept.

mod svm_common;

use guestkit::svm::log;
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::Misc1;
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::{no_exception, that};

fn exceptions(s: &mut Suite) {
    icase(
        s,
        "#DE",
        intercept(F::InterceptExceptions, 1 << 0),
        |a| {
            a.xor(ecx, ecx)?;
            a.mov(eax, 1i32)
        },
        |a| a.div(ecx),
        nothing,
        vec![
            no_exception(),
            code(X::exception(0)),
            on_insn_no_nrip(),
            info1(0),
        ],
    );
    icase(
        s,
        "#UD",
        intercept(F::InterceptExceptions, 1 << 6),
        nothing,
        |a| a.ud2(),
        nothing,
        vec![code(X::exception(6)), on_insn_no_nrip(), info1(0)],
    );
    icase(
        s,
        "#GP(0): EXITINFO1 is the error code",
        intercept(F::InterceptExceptions, 1 << 13),
        |a| a.mov(rax, 0x8000_0000_0000_0000u64),
        |a| a.mov(rbx, qword_ptr(rax)),
        nothing,
        vec![code(X::exception(13)), on_insn_no_nrip(), info1(0)],
    );
    icase(
        s,
        "#BP from INT3: RIP on INT3, NRIP after it",
        intercept(F::InterceptExceptions, 1 << 3),
        nothing,
        |a| a.int3(),
        nothing,
        vec![code(X::exception(3)), on_insn(), info1(0)],
    );
    icase(
        s,
        "#PF: EXITINFO1 error code, EXITINFO2 address, CR2 kept, bytes",
        |a| {
            svm::set(a, VMCB, F::InterceptExceptions, 1 << 14)?;
            svm::set(a, VMCB, F::Cr2, 0xdead_0000)
        },
        |a| a.mov(rax, 0x1_0000_0000u64),
        |a| a.mov(qword_ptr(rax + 8), rbx),
        |a| {
            svm::get(a, r11, VMCB, F::Cr2)?;
            svm::get(a, r12, VMCB, F::GuestInsnBytesFetched)?;
            a.mov(
                r13,
                qword_ptr((VMCB + F::GuestInsnBytes.offset() as u64) as u32 as u64),
            )?;
            a.mov(r14, qword_ptr(r9))
        },
        vec![
            code(X::exception(14)),
            on_insn_no_nrip(),
            // Not present, write, supervisor.
            info1(2),
            info2(0x1_0000_0008),
            named("VMCB CR2", 11, 0xdead_0000),
            named("bytes fetched", 12, 15),
            that("the bytes are the instruction's", |r| {
                r.gprs[13] == r.gprs[14]
            }),
        ],
    );
    icase(
        s,
        "#PF not intercepted is delivered with CR2",
        nothing,
        |a| a.mov(rax, 0x1_0000_0000u64),
        |a| a.mov(rbx, qword_ptr(rax)),
        |a| {
            l2_log(a, r11, log::VECTOR)?;
            l2_log(a, r12, log::CR2)?;
            l2_log(a, r13, log::ERROR)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("L2 vector + 1", 11, 15),
            named("L2 CR2", 12, 0x1_0000_0000),
            named("L2 error code", 13, 0),
        ],
    );
}

/// Makes the L2 IDT gate of `vector` not present (and present again with
/// `restore`).
fn gate_present(a: &mut Asm, s: &Svm, vector: u64, present: bool) -> AsmResult {
    a.lea(rax, ptr(s.idt.l))?;
    if present {
        a.bts(qword_ptr(rax + (16 * vector) as i32), 47i32)
    } else {
        a.btr(qword_ptr(rax + (16 * vector) as i32), 47i32)
    }
}

fn during_delivery(s: &mut Suite) {
    s.case(
        "#NP while delivering INT 50h: EXITINTINFO holds the INTn",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.nop()?;
                a.int(0x50)?;
                a.vmmcall()
            })?;
            gate_present(a, s, 0x50, false)?;
            run_l2(a, s, &l2, |a| {
                svm::set(a, VMCB, F::InterceptExceptions, 1 << 11)
            })?;
            a.lea(r9, ptr(l2.l))?;
            a.inc(r9)?;
            a.mov(r15, rax)?;
            gate_present(a, s, 0x50, true)?;
            a.mov(rax, r15)
        },
        vec![
            code(X::exception(11)),
            // Vector 50h in the IDT, IDT bit set, EXT clear.
            info1(0x50 << 3 | 2),
            // Valid, type 4 (INTn), vector 50h.
            intinfo(1 << 31 | 4 << 8 | 0x50),
            that("RIP is the INT 50h", |r| r.gprs[reg::RIP] == r.gprs[9]),
        ],
    );
    s.case(
        "#DF while delivering #NP: EXITINTINFO holds the #NP",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.int(0x50)?;
                a.vmmcall()
            })?;
            gate_present(a, s, 0x50, false)?;
            gate_present(a, s, 11, false)?;
            run_l2(a, s, &l2, |a| {
                svm::set(a, VMCB, F::InterceptExceptions, 1 << 8)
            })?;
            a.mov(r15, rax)?;
            gate_present(a, s, 0x50, true)?;
            gate_present(a, s, 11, true)?;
            a.mov(rax, r15)
        },
        vec![
            code(X::exception(8)),
            info1(0),
            // Valid, type 3 (exception), vector 11, with the error code of
            // the #NP that INT 50h raised (vector 50h in the IDT).
            intinfo(0x282 << 32 | 1 << 31 | 1 << 11 | 3 << 8 | 11),
        ],
    );
    s.case(
        "triple fault: the SHUTDOWN intercept",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.ud2()?;
                a.vmmcall()
            })?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::SHUTDOWN.bits() as u64)?;
                svm::set(a, VMCB, F::IdtrLimit, 0)
            })
        },
        vec![
            no_exception(),
            code(X::VMEXIT_SHUTDOWN),
            named("NRIP", reg::NRIP, 0),
        ],
    );
}

#[test]
fn exception_intercepts() {
    let mut s = Suite::new();
    exceptions(&mut s);
    during_delivery(&mut s);
    s.run();
}
