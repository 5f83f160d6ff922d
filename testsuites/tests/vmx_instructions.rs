//! The VMX instructions in root operation: every VM-instruction error number
//! nestemu can produce (SDM Vol. 3C 31.4), VMfailInvalid, the #UD and #GP
//! conditions, discovery (CPUID, the capability MSRs) and enabling
//! (IA32_FEATURE_CONTROL and its lock, CR0/CR4 fixed bits).

mod vmx_common;

use guestkit::layout::{var as kvar, VARS as KVARS};
use guestkit::vmx::{at, layout, store_user, vmr, vmw, VmxCase};
use guestkit::{Asm, AsmResult, Program};
use iced_x86::code_asm::*;
use mmu::msr;
use testsuites::check::{exception, gpr as kgpr, no_exception, that as kthat, verify};
use testsuites::{config, run};
use vmx_common::*;
use vmx_model::Field as F;

const CF: u64 = 1;
const ZF: u64 = 0x40;
const STATUS: u64 = 0x8d5;

/// After a VMX instruction: RFLAGS to user slot 0, the VM-instruction error
/// to user slot 1 (clobbers RAX, RBX, RCX).
fn outcome(a: &mut Asm) -> AsmResult {
    a.pushfq()?;
    a.pop(rcx)?;
    store_user(a, 0, rcx)?;
    vmr(a, rcx, F::VmInstructionError)?;
    store_user(a, 1, rcx)
}

/// VMfailValid(n).
fn fail_valid(n: u64) -> Vec<Check> {
    vec![
        that("ZF set, other status flags clear", |r| {
            r.user[0] & STATUS == ZF
        }),
        user(1, n),
    ]
}

/// VMfailInvalid.
fn fail_invalid() -> Vec<Check> {
    vec![that("CF set, other status flags clear", |r| {
        r.user[0] & STATUS == CF
    })]
}

/// Two lists of checks.
fn both(mut a: Vec<Check>, b: Vec<Check>) -> Vec<Check> {
    a.extend(b);
    a
}

/// VMsucceed.
fn succeed() -> Vec<Check> {
    vec![that("status flags clear", |r| r.user[0] & STATUS == 0)]
}

/// Runs `f` with the kit's exception handler armed to resume after it.
fn may_fault(a: &mut Asm, f: impl Fn(&mut Asm) -> AsmResult) -> AsmResult {
    let mut after = a.label();
    a.lea(rax, ptr(after.l))?;
    a.mov(at(KVARS + kvar::RESUME), rax)?;
    f(a)?;
    a.set(&mut after)?;
    a.mov(at(KVARS + kvar::RESUME), 0i32)
}

/// L1 took exception `v` (with `err` if given).
fn l1_fault(v: u8, err: Option<u64>) -> Check {
    Box::new(move |r| match r.l1_exception {
        Some((x, e, _)) if x == v && err.is_none_or(|w| w == e) => Ok(()),
        other => Err(format!("L1 exception {other:x?}, expected {v} {err:x?}")),
    })
}

/// A pointer operand in scratch memory holding `value`.
fn ptr_to(a: &mut Asm, value: u64) -> AsmResult {
    a.mov(rax, value)?;
    a.mov(at(layout::SCRATCH), rax)
}

fn scratch() -> AsmMemoryOperand {
    at(layout::SCRATCH)
}

fn errors(t: &mut Table) {
    t.case(
        VmxCase::root("VMCALL in root: error 1", |a, _| {
            a.vmcall()?;
            outcome(a)
        }),
        fail_valid(1),
    );
    t.case(
        VmxCase::root("VMCLEAR of an unaligned address: error 2", |a, _| {
            ptr_to(a, layout::VMCS2 + 8)?;
            a.vmclear(scratch())?;
            outcome(a)
        }),
        fail_valid(2),
    );
    t.case(
        VmxCase::root("VMCLEAR beyond MAXPHYADDR: error 2", |a, _| {
            ptr_to(a, 1 << 50)?;
            a.vmclear(scratch())?;
            outcome(a)
        }),
        fail_valid(2),
    );
    t.case(
        VmxCase::root("VMCLEAR of the VMXON region: error 3", |a, _| {
            ptr_to(a, layout::VMXON)?;
            a.vmclear(scratch())?;
            outcome(a)
        }),
        fail_valid(3),
    );
    t.case(
        VmxCase::guest("VMLAUNCH of a launched VMCS: error 4", |a, _| a.nop()).on_exit(|a, rt| {
            a.vmlaunch()?;
            outcome(a)?;
            a.jmp(rt.finish.l)
        }),
        fail_valid(4),
    );
    t.case(
        VmxCase::root("VMRESUME of a clear VMCS: error 5", |a, _| {
            a.vmresume()?;
            outcome(a)
        }),
        fail_valid(5),
    );
    t.case(
        VmxCase::guest("VMRESUME after VMXOFF and VMXON: error 6", |a, _| a.nop()).on_exit(
            |a, rt| {
                a.vmxoff()?;
                ptr_to(a, layout::VMXON)?;
                a.vmxon(scratch())?;
                ptr_to(a, layout::VMCS)?;
                a.vmptrld(scratch())?;
                a.vmresume()?;
                outcome(a)?;
                a.jmp(rt.finish.l)
            },
        ),
        fail_valid(6),
    );
    t.case(
        VmxCase::root("VM entry with an invalid control: error 7", |a, _| {
            vmw(a, F::Cr3TargetCount, 5)?;
            a.vmlaunch()?;
            outcome(a)
        }),
        fail_valid(7),
    );
    t.case(
        VmxCase::root("VM entry with an invalid host field: error 8", |a, _| {
            vmw(a, F::HostCsSelector, 0)?;
            a.vmlaunch()?;
            outcome(a)
        }),
        fail_valid(8),
    );
    t.case(
        VmxCase::root("VMPTRLD of an unaligned address: error 9", |a, _| {
            ptr_to(a, layout::VMCS2 | 0x800)?;
            a.vmptrld(scratch())?;
            outcome(a)
        }),
        fail_valid(9),
    );
    t.case(
        VmxCase::root("VMPTRLD of the VMXON region: error 10", |a, _| {
            ptr_to(a, layout::VMXON)?;
            a.vmptrld(scratch())?;
            outcome(a)
        }),
        fail_valid(10),
    );
    t.case(
        VmxCase::root("VMPTRLD with a wrong revision: error 11", |a, _| {
            a.mov(dword_ptr(layout::SPARE as u32 as u64), 0x7654i32)?;
            ptr_to(a, layout::SPARE)?;
            a.vmptrld(scratch())?;
            outcome(a)
        }),
        fail_valid(11),
    );
    t.case(
        VmxCase::root("VMREAD of an unsupported field: error 12", |a, _| {
            a.mov(ecx, F::PmlAddress.encoding())?;
            a.vmread(rdx, rcx)?;
            outcome(a)
        }),
        fail_valid(12),
    );
    t.case(
        VmxCase::root("VMWRITE of a bad encoding: error 12", |a, _| {
            a.mov(ecx, 0x0001i32)?;
            a.vmwrite(rcx, rdx)?;
            outcome(a)
        }),
        fail_valid(12),
    );
    t.case(
        VmxCase::root(
            "VMWRITE to an exit-information field is allowed here",
            |a, _| {
                vmw(a, F::ExitQualification, 0x55)?;
                outcome(a)?;
                vmr(a, rcx, F::ExitQualification)?;
                store_user(a, 2, rcx)
            },
        ),
        both(succeed(), vec![user(2, 0x55)]),
    );
    t.case(
        VmxCase::root("VMXON in root: error 15", |a, _| {
            ptr_to(a, layout::VMXON)?;
            a.vmxon(scratch())?;
            outcome(a)
        }),
        fail_valid(15),
    );
    t.case(
        VmxCase::root("VMLAUNCH after MOV SS: error 26", |a, _| {
            a.mov(eax, 0x10i32)?;
            a.mov(ss, ax)?;
            a.vmlaunch()?;
            outcome(a)
        }),
        fail_valid(26),
    );
    invalid_operands(t);
}

fn invalid_operands(t: &mut Table) {
    let descriptor = |a: &mut Asm, lo: u64, hi: u64| -> AsmResult {
        a.mov(rax, lo)?;
        a.mov(at(layout::SCRATCH + 0x10), rax)?;
        a.mov(rax, hi)?;
        a.mov(at(layout::SCRATCH + 0x18), rax)
    };
    type Row = (&'static str, bool, u64, u64, u64);
    let rows: [Row; 7] = [
        ("INVEPT type 0: error 28", true, 0, layout::EPTP, 0),
        ("INVEPT type 3: error 28", true, 3, layout::EPTP, 0),
        (
            "INVEPT single with a bad EPTP: error 28",
            true,
            1,
            layout::EPT_PML4 | 0x1f,
            0,
        ),
        ("INVVPID type 4: error 28", false, 4, 1, 0),
        ("INVVPID single of VPID 0: error 28", false, 1, 0, 0),
        (
            "INVVPID with bits 63:16 set: error 28",
            false,
            2,
            1 << 16,
            0,
        ),
        (
            "INVVPID address not canonical: error 28",
            false,
            0,
            1,
            1 << 56, // not canonical at 57 bits either
        ),
    ];
    for (name, ept, kind, lo, hi) in rows {
        t.case(
            VmxCase::root(name, move |a, _| {
                descriptor(a, lo, hi)?;
                a.mov(rdx, kind)?;
                if ept {
                    a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
                } else {
                    a.invvpid(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
                }
                outcome(a)
            }),
            fail_valid(28),
        );
    }
    type Ok = (&'static str, bool, u64, u64, u64);
    let rows: [Ok; 6] = [
        ("INVEPT single context", true, 1, layout::EPTP, 0),
        ("INVEPT all contexts", true, 2, 0, 0),
        ("INVVPID individual address", false, 0, 1, 0x1000),
        ("INVVPID single context", false, 1, 1, 0),
        ("INVVPID all contexts", false, 2, 0, 0),
        ("INVVPID single context retaining globals", false, 3, 1, 0),
    ];
    for (name, ept, kind, lo, hi) in rows {
        t.case(
            VmxCase::root(name, move |a, _| {
                descriptor(a, lo, hi)?;
                a.mov(rdx, kind)?;
                if ept {
                    a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
                } else {
                    a.invvpid(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))?;
                }
                outcome(a)
            }),
            succeed(),
        );
    }
}

fn fail_invalid_and_faults(t: &mut Table) {
    t.case(
        VmxCase::root(
            "VMCLEAR of the current VMCS: VMPTRST gives all ones",
            |a, _| {
                ptr_to(a, layout::VMCS)?;
                a.vmclear(scratch())?;
                a.vmptrst(at(layout::SCRATCH + 8))?;
                a.mov(rcx, at(layout::SCRATCH + 8))?;
                store_user(a, 2, rcx)?;
                a.vmread(rdx, rcx)?;
                outcome(a)
            },
        ),
        both(fail_invalid(), vec![user(2, u64::MAX)]),
    );
    t.case(
        VmxCase::root("VMLAUNCH without a current VMCS: VMfailInvalid", |a, _| {
            ptr_to(a, layout::VMCS)?;
            a.vmclear(scratch())?;
            a.vmlaunch()?;
            outcome(a)
        }),
        fail_invalid(),
    );
    t.case(
        VmxCase::root("VMPTRST stores the current-VMCS pointer", |a, _| {
            a.vmptrst(at(layout::SCRATCH + 8))?;
            outcome(a)?;
            a.mov(rcx, at(layout::SCRATCH + 8))?;
            store_user(a, 2, rcx)
        }),
        both(succeed(), vec![user(2, layout::VMCS)]),
    );
    t.case(
        VmxCase::root("VMPTRLD of an unmapped operand is #PF", |a, _| {
            may_fault(a, |a| {
                a.mov(rax, 0x1_0000_0000u64)?;
                a.vmptrld(ptr(rax))
            })
        }),
        vec![l1_fault(14, Some(0))],
    );
    t.case(
        VmxCase::root(
            "MOV to CR4 clearing VMXE in VMX operation is #GP",
            |a, _| {
                may_fault(a, |a| {
                    a.mov(rax, cr4)?;
                    a.and(eax, !0x2000i32)?;
                    a.mov(cr4, rax)
                })
            },
        ),
        vec![l1_fault(13, Some(0))],
    );
    t.case(
        VmxCase::root("MOV to CR0 clearing NE in VMX operation is #GP", |a, _| {
            may_fault(a, |a| {
                a.mov(rax, cr0)?;
                a.and(eax, !0x20i32)?;
                a.mov(cr0, rax)
            })
        }),
        vec![l1_fault(13, Some(0))],
    );
    t.case(
        VmxCase::root("VMXOFF, then VMREAD is #UD, then VMXON again", |a, _| {
            a.vmxoff()?;
            may_fault(a, |a| a.vmread(rdx, rcx))?;
            ptr_to(a, layout::VMXON)?;
            a.vmxon(scratch())?;
            outcome(a)
        }),
        both(succeed(), vec![l1_fault(6, None)]),
    );
    t.case(
        VmxCase::root("VMXON with a wrong revision: VMfailInvalid", |a, _| {
            a.vmxoff()?;
            a.mov(dword_ptr(layout::SPARE as u32 as u64), 0x7654i32)?;
            ptr_to(a, layout::SPARE)?;
            a.vmxon(scratch())?;
            a.pushfq()?;
            a.pop(rcx)?;
            store_user(a, 0, rcx)?;
            ptr_to(a, layout::VMXON)?;
            a.vmxon(scratch())
        }),
        fail_invalid(),
    );
    t.case(
        VmxCase::root("capability MSRs: VMFUNC absent, BASIC read-only", |a, _| {
            may_fault(a, |a| {
                a.mov(ecx, msr::IA32_VMX_VMFUNC)?;
                a.rdmsr()
            })?;
            a.mov(ecx, msr::IA32_VMX_PROCBASED_CTLS2)?;
            a.rdmsr()?;
            store_user(a, 2, rdx)?;
            a.mov(ecx, msr::IA32_VMX_EPT_VPID_CAP)?;
            a.rdmsr()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            store_user(a, 3, rax)?;
            a.mov(eax, 1i32)?;
            a.cpuid()?;
            store_user(a, 4, rcx)
        }),
        vec![
            l1_fault(13, Some(0)),
            that("secondary controls: EPT, VPID, unrestricted guest", |r| {
                r.user[2] & 0xa2 == 0xa2
            }),
            that("INVEPT and INVVPID advertised", |r| {
                r.user[3] & (1 << 20) != 0 && r.user[3] & (1 << 32) != 0
            }),
            that("CPUID.1:ECX.VMX", |r| r.user[4] & (1 << 5) != 0),
        ],
    );
}

#[test]
fn vm_instruction_errors_and_faults() {
    let mut t = Table::default();
    errors(&mut t);
    fail_invalid_and_faults(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx instructions: {n} cases passed");
}

/// A CPU model whose VMWRITE cannot write exit-information fields.
#[test]
fn vmwrite_to_a_read_only_field_is_error_13_when_the_preset_says_so() {
    let mut cfg = config();
    let mut f = vmx_model::VmxFeatures::intel();
    f.misc.vmwrite_any_field = false;
    cfg.model.vmx = Some(f);
    let mut t = Table::default();
    t.case(
        VmxCase::root("VMWRITE to the exit qualification: error 13", |a, _| {
            vmw(a, F::ExitQualification, 0x55)?;
            outcome(a)
        }),
        fail_valid(13),
    );
    t.run_with(cfg);
}

/// Before VMXON: #UD outside VMX operation, #GP while IA32_FEATURE_CONTROL is
/// unlocked or CR0.NE is clear, and the lock itself.
#[test]
fn enabling_vmx_operation() {
    let mut p = Program::new();
    p.long_case("VMREAD outside VMX operation is #UD", |a| {
        a.vmread(rdx, rcx)
    });
    p.long_case("VMXON with CR4.VMXE clear is #UD", |a| {
        a.mov(rax, layout::VMXON)?;
        a.mov(at(layout::SCRATCH), rax)?;
        a.vmxon(at(layout::SCRATCH))
    });
    p.long_case("VMXON with IA32_FEATURE_CONTROL unlocked is #GP", |a| {
        a.mov(rax, cr0)?;
        a.or(eax, 0x20i32)?;
        a.mov(cr0, rax)?;
        a.mov(rax, cr4)?;
        a.or(eax, 0x2000i32)?;
        a.mov(cr4, rax)?;
        a.vmxon(at(layout::SCRATCH))
    });
    p.long_case("IA32_FEATURE_CONTROL: reserved bit is #GP", |a| {
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.mov(eax, 0x8i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()
    });
    p.long_case("IA32_FEATURE_CONTROL: lock with VMX outside SMX", |a| {
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.mov(eax, 5i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.rdmsr()
    });
    p.long_case("IA32_FEATURE_CONTROL: locked, a write is #GP", |a| {
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.mov(eax, 5i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()
    });
    p.long_case("VMXON with CR0.NE clear is #GP", |a| {
        a.mov(rax, cr0)?;
        a.and(eax, !0x20i32)?;
        a.mov(cr0, rax)?;
        a.mov(ecx, msr::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.mov(dword_ptr(layout::VMXON as u32 as u64), eax)?;
        a.vmxon(at(layout::SCRATCH))
    });
    p.long_case("VMXON succeeds with CR0.NE set", |a| {
        a.mov(rax, cr0)?;
        a.or(eax, 0x20i32)?;
        a.mov(cr0, rax)?;
        a.vmxon(at(layout::SCRATCH))?;
        a.pushfq()?;
        a.pop(rbx)?;
        a.vmxoff()
    });
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(
        &o,
        &[
            (
                "VMREAD outside VMX operation is #UD".into(),
                vec![exception(6, None)],
            ),
            (
                "VMXON with CR4.VMXE clear is #UD".into(),
                vec![exception(6, None)],
            ),
            (
                "VMXON with IA32_FEATURE_CONTROL unlocked is #GP".into(),
                vec![exception(13, Some(0))],
            ),
            (
                "IA32_FEATURE_CONTROL: reserved bit is #GP".into(),
                vec![exception(13, Some(0))],
            ),
            (
                "IA32_FEATURE_CONTROL: lock with VMX outside SMX".into(),
                vec![no_exception(), kgpr(0, 5)],
            ),
            (
                "IA32_FEATURE_CONTROL: locked, a write is #GP".into(),
                vec![exception(13, Some(0))],
            ),
            (
                "VMXON with CR0.NE clear is #GP".into(),
                vec![exception(13, Some(0))],
            ),
            (
                "VMXON succeeds with CR0.NE set".into(),
                vec![
                    no_exception(),
                    kthat("VMsucceed", |r| r.gprs[3] & STATUS == 0),
                ],
            ),
        ],
    );
}
