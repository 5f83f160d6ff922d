//! VMRUN's consistency checks (APM Vol. 2 15.5.1 and the sections
//! `svm_model::CheckId` cites): for each check, an L1 hypervisor breaks exactly
//! that rule in an otherwise good VMCB; VMRUN must exit with VMEXIT_INVALID
//! (EXITCODE -1, EXITINFO1/2 and EVENTINJ cleared), continue after the VMRUN,
//! and the machine must name that check, alone, in its diagnostic.
//!
//! Two checks need a host without paging: NpHostPagingDisabled runs from a
//! 32-bit protected-mode L1 (which also runs a 32-bit guest, showing VMRUN and
//! #VMEXIT from legacy mode). Three cannot be violated on this CPU model and
//! have no case: EferLongModeUnsupported (without long mode, LME and LMA are
//! MBZ bits and EferMbz reports them first), SCetReserved and CetWithoutWp
//! (the model has no CET, so CR4.CET is an MBZ bit and the CET rules are not
//! active).

mod svm_common;

use guestkit::layout::{sel, GDT, IDT32};
use guestkit::svm::{self as ksvm, HSAVE, NPT_PML4};
use guestkit::Program;
use iced_x86::code_asm::*;
use nestemu::virt::svm::FailureRecord;
use svm_common::*;
use svm_model::vmcb::{Misc1, Misc2, NestedCtl};
use svm_model::{CheckId, ExitCode as X, VmcbField as F};
use testsuites::check::{no_exception, Check};

/// A page for the legacy-PAE guest's PDPT.
const PDPT: u64 = 0x43_0000;

fn set(f: F, v: u64) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    move |a| svm::set(a, VMCB, f, v)
}

fn or(f: F, v: u64) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    move |a| svm::or(a, VMCB, f, v)
}

fn nested(a: &mut Asm) -> AsmResult {
    ksvm::build_identity_npt(a)?;
    svm::set(a, VMCB, F::NestedCtl, NestedCtl::NP_ENABLE.bits())?;
    svm::set(a, VMCB, F::NCr3, NPT_PML4)
}

/// Code that breaks one rule in the template VMCB.
type Violation = Box<dyn Fn(&mut Asm) -> AsmResult>;

/// The violations, one per check.
fn violations() -> Vec<(CheckId, Violation)> {
    let b = |f: Violation| f;
    vec![
        (
            CheckId::EferSvme,
            b(Box::new(set(F::Efer, ksvm::L2_EFER & !(1 << 12)))),
        ),
        (CheckId::Cr0CdNw, b(Box::new(or(F::Cr0, 1 << 29)))),
        (CheckId::Cr0High, b(Box::new(or(F::Cr0, 1 << 32)))),
        (CheckId::Cr3Mbz, b(Box::new(or(F::Cr3, 1 << 50)))),
        (CheckId::Cr4Mbz, b(Box::new(or(F::Cr4, 1 << 15)))),
        (CheckId::Dr6High, b(Box::new(or(F::Dr6, 1 << 32)))),
        (CheckId::Dr7High, b(Box::new(or(F::Dr7, 1 << 32)))),
        (CheckId::EferMbz, b(Box::new(or(F::Efer, 1 << 2)))),
        (CheckId::LongModeNoPae, b(Box::new(set(F::Cr4, 0)))),
        (
            CheckId::LongModeNoPe,
            b(Box::new(set(F::Cr0, ksvm::L2_CR0 & !1))),
        ),
        (CheckId::LongModeCsLD, b(Box::new(set(F::CsAttrib, 0xe9b)))),
        (
            CheckId::VmrunIntercept,
            b(Box::new(set(
                F::InterceptMisc2,
                Misc2::VMMCALL.bits() as u64,
            ))),
        ),
        (
            CheckId::MsrpmBeyondMaxPhys,
            b(Box::new(set(F::MsrpmBasePa, (1 << 48) - 0x1000))),
        ),
        (
            CheckId::IopmBeyondMaxPhys,
            b(Box::new(set(F::IopmBasePa, (1 << 48) - 0x2000))),
        ),
        (
            CheckId::EventInjType,
            b(Box::new(set(F::EventInj, 1 << 31 | 1 << 8 | 0x20))),
        ),
        (
            CheckId::EventInjVector,
            b(Box::new(set(F::EventInj, 1 << 31 | 3 << 8 | 2))),
        ),
        (
            CheckId::EventInjImpossible,
            b(Box::new(set(F::EventInj, 1 << 31 | 3 << 8 | 5))),
        ),
        (CheckId::AsidZero, b(Box::new(set(F::GuestAsid, 0)))),
        (
            CheckId::NCr3Mbz,
            b(Box::new(|a| {
                nested(a)?;
                svm::set(a, VMCB, F::NCr3, NPT_PML4 | 1 << 50)
            })),
        ),
        (
            CheckId::GPatInvalid,
            b(Box::new(|a| {
                nested(a)?;
                svm::set(a, VMCB, F::GPat, 0x0007_0406_0007_0402)
            })),
        ),
        (
            CheckId::VNmiWithoutNmiIntercept,
            b(Box::new(set(F::VIntrControl, 1 << 26))),
        ),
        (
            CheckId::PdpteReserved,
            b(Box::new(|a| {
                // A 32-bit guest with legacy PAE paging, no nested paging,
                // whose first PDPE sets reserved bit 1.
                a.mov(qword_ptr(PDPT as u32 as u64), 0x43_1000 | 3)?;
                svm::set(a, VMCB, F::Efer, 1 << 12)?;
                svm::set(a, VMCB, F::Cr3, PDPT)?;
                svm::set(a, VMCB, F::CsAttrib, 0xc9b)?;
                svm::set(a, VMCB, F::CsSelector, sel::CODE32 as u64)
            })),
        ),
    ]
}

fn invalid() -> Vec<Check> {
    vec![
        no_exception(),
        code(X::VMEXIT_INVALID),
        info1(0),
        info2(0),
        named("EVENTINJ", 11, 0),
    ]
}

/// Sets a VMCB field from 32-bit code.
fn set32(a: &mut Asm, f: F, v: u64) -> AsmResult {
    let at = (VMCB + f.offset() as u64) as u32 as u64;
    match f.width() {
        1 => a.mov(byte_ptr(at), v as u8 as i32),
        2 => a.mov(word_ptr(at), v as u16 as i32),
        4 => a.mov(dword_ptr(at), v as u32 as i32),
        _ => {
            a.mov(dword_ptr(at), v as u32 as i32)?;
            a.mov(dword_ptr(at + 4), (v >> 32) as u32 as i32)
        }
    }
}

/// A 32-bit L1 without paging: enables SVM and builds a VMCB for a flat
/// 32-bit guest at `l2`.
fn prot_vmcb(a: &mut Asm, l2: u64) -> AsmResult {
    a.mov(ecx, 0xc000_0080u32 as i32)?;
    a.rdmsr()?;
    a.bts(eax, 12i32)?;
    a.wrmsr()?;
    a.mov(ecx, 0xc001_0117u32 as i32)?;
    a.mov(eax, HSAVE as i32)?;
    a.xor(edx, edx)?;
    a.wrmsr()?;
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(edi, VMCB as i32)?;
    a.mov(ecx, 1024i32)?;
    a.rep().stosd()?;
    set32(
        a,
        F::InterceptMisc2,
        (Misc2::VMRUN | Misc2::VMMCALL).bits() as u64,
    )?;
    set32(a, F::GuestAsid, 1)?;
    set32(a, F::Efer, 1 << 12)?;
    set32(a, F::Cr0, 0x31)?;
    set32(a, F::Dr6, 0xffff_0ff0)?;
    set32(a, F::Dr7, 0x400)?;
    set32(a, F::Rflags, 2)?;
    set32(a, F::GPat, 0x0007_0406_0007_0406)?;
    set32(a, F::CsSelector, sel::CODE32 as u64)?;
    set32(a, F::CsAttrib, 0xc9b)?;
    set32(a, F::CsLimit, 0xffff_ffff)?;
    for (s, l, at) in [
        (F::SsSelector, F::SsLimit, F::SsAttrib),
        (F::DsSelector, F::DsLimit, F::DsAttrib),
        (F::EsSelector, F::EsLimit, F::EsAttrib),
    ] {
        set32(a, s, sel::DATA as u64)?;
        set32(a, l, 0xffff_ffff)?;
        set32(a, at, 0xc93)?;
    }
    set32(a, F::GdtrBase, GDT)?;
    set32(a, F::GdtrLimit, 0x67)?;
    set32(a, F::IdtrBase, IDT32)?;
    set32(a, F::IdtrLimit, 0x7ff)?;
    set32(a, F::Rsp, ksvm::L2_STACK_TOP)?;
    set32(a, F::Rip, l2)
}

/// 32-bit L1 cases: a 32-bit guest runs; NP_ENABLE without host paging fails.
fn prot_cases(p: &mut Program) {
    for np in [false, true] {
        let name = if np {
            "32-bit host: NpHostPagingDisabled"
        } else {
            "32-bit host runs a 32-bit guest"
        };
        p.prot_case(name, move |a| {
            let mut l2 = a.label();
            let mut over = a.label();
            a.jmp(over.l)?;
            a.set(&mut l2)?;
            a.mov(eax, 0x32i32)?;
            a.vmmcall()?;
            a.hlt()?;
            a.set(&mut over)?;
            let target = a.addr(&l2);
            prot_vmcb(a, target)?;
            if np {
                set32(a, F::NestedCtl, 1)?;
                set32(a, F::NCr3, NPT_PML4)?;
            }
            a.mov(eax, VMCB as i32)?;
            a.vmrun()?;
            let r = |f: F| dword_ptr((VMCB + f.offset() as u64) as u32 as u64);
            a.mov(ebx, r(F::Rax))?;
            a.mov(ecx, r(F::ExitInfo1))?;
            a.mov(eax, r(F::ExitCode))
        });
    }
}

#[test]
fn each_check_violated_alone_is_vmexit_invalid() {
    let mut p = Program::new();
    prot_cases(&mut p);
    let mut s = Suite {
        p: svm::SvmProgram::from_program(p),
        table: vec![
            (
                "32-bit host runs a 32-bit guest".into(),
                vec![
                    no_exception(),
                    named("exit code", 0, X::VMEXIT_VMMCALL.0),
                    named("guest EAX", 3, 0x32),
                ],
            ),
            (
                "32-bit host: NpHostPagingDisabled".into(),
                vec![no_exception(), named("exit code", 0, 0xffff_ffff)],
            ),
            (svm::ENABLE_CASE.into(), vec![no_exception()]),
        ],
    };
    let checks = violations();
    let ids: Vec<CheckId> = checks.iter().map(|(c, _)| *c).collect();
    for (c, setup) in checks {
        s.case(
            c.name(),
            move |a, s| {
                let l2 = l2_code(a, |a| a.vmmcall())?;
                run_l2(a, s, &l2, |a| setup(a))?;
                svm::get(a, r11, VMCB, F::EventInj)
            },
            invalid(),
        );
    }
    s.case(
        "a good VMCB after the failures still runs",
        |a, s| {
            let l2 = l2_code(a, |a| a.vmmcall())?;
            run_l2(a, s, &l2, |a| {
                svm::or(a, VMCB, F::InterceptMisc1, Misc1::CPUID.bits() as u64)
            })
        },
        vec![code(X::VMEXIT_VMMCALL)],
    );
    let o = s.run();
    let failures = &o.machine.virt.svm.failures.by_check;
    let mut expected = ids.clone();
    expected.push(CheckId::NpHostPagingDisabled);
    for c in &expected {
        let rec: &FailureRecord = failures
            .get(c)
            .unwrap_or_else(|| panic!("{} was not reported", c.name()));
        assert_eq!(rec.count, 1, "{}", c.name());
        assert_eq!(rec.all, vec![c.name()], "{} violated alone", c.name());
        assert_eq!(rec.section, c.section());
    }
    assert_eq!(failures.len(), expected.len(), "no other check failed");
    let covered: std::collections::BTreeSet<CheckId> = expected.into_iter().collect();
    let uncovered: Vec<&str> = CheckId::ALL
        .iter()
        .filter(|c| !covered.contains(c))
        .map(|c| c.name())
        .collect();
    assert_eq!(
        uncovered,
        ["EferLongModeUnsupported", "SCetReserved", "CetWithoutWp"],
        "only the checks this CPU model cannot violate lack a case"
    );
    assert_eq!(
        o.machine.stats.vmexits.by_reason["VMEXIT_INVALID"],
        failures.len() as u64
    );
    // --stats keeps the diagnostic.
    let report = nestemu::stats::Report::of(&o.machine, 1, "done".into());
    let json = serde_json::to_value(&report).unwrap();
    let last = &json["svm"]["vmrun_failures"]["last"];
    assert_eq!(last["name"], "PdpteReserved");
    assert_eq!(last["section"], "15.5.1");
    assert_eq!(
        json["svm"]["vmrun_failures"]["by_check"]["Cr0CdNw"]["count"],
        1
    );
    assert_eq!(json["entry_failures"]["svm:AsidZero"], 1);
}
