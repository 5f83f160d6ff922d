//! The instruction intercepts (APM Vol. 2 15.8-15.14, table 15-7): an L1
//! hypervisor sets one intercept, its L2 guest executes the instruction, and
//! the #VMEXIT must carry the exit code, EXITINFO1/2 (decode assists: the GPR
//! of MOV CR/DR, the INTn vector, the INVLPG address; the IOIO fields), RIP
//! and NRIP the APM gives. Trap-like intercepts (CR and EFER write traps) exit
//! after the instruction. Cases also check that an intercept left clear lets
//! the instruction run, and the SVM-specific priorities (PUSHF/POPF/IRET and
//! VMMCALL intercepts before exceptions, the DR7.GD #DB before the DR
//! intercept).

mod svm_common;

use guestkit::svm::{self as ksvm, log, IOPM};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{Misc1, Misc2, Misc3};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::no_exception;

fn m1(b: Misc1) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    intercept(F::InterceptMisc1, b.bits() as u64)
}
fn m2(b: Misc2) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    intercept(F::InterceptMisc2, b.bits() as u64)
}

/// A simple intercept: the instruction exits fault-like with no EXITINFO.
fn simple(
    s: &mut Suite,
    name: &str,
    setup: impl Fn(&mut Asm) -> AsmResult + 'static,
    insn: impl Fn(&mut Asm) -> AsmResult + 'static,
    code_: X,
) {
    simple_pre(s, name, setup, nothing, insn, code_)
}

/// [`simple`] with L2 code before the instruction.
fn simple_pre(
    s: &mut Suite,
    name: &str,
    setup: impl Fn(&mut Asm) -> AsmResult + 'static,
    pre: impl Fn(&mut Asm) -> AsmResult + 'static,
    insn: impl Fn(&mut Asm) -> AsmResult + 'static,
    code_: X,
) {
    icase(
        s,
        name,
        setup,
        pre,
        insn,
        nothing,
        vec![no_exception(), code(code_), on_insn(), info1(0)],
    );
}

fn simple_instructions(s: &mut Suite) {
    simple(s, "CPUID", m1(Misc1::CPUID), |a| a.cpuid(), X::VMEXIT_CPUID);
    simple(s, "RDTSC", m1(Misc1::RDTSC), |a| a.rdtsc(), X::VMEXIT_RDTSC);
    simple(
        s,
        "RDTSCP",
        m2(Misc2::RDTSCP),
        |a| a.rdtscp(),
        X::VMEXIT_RDTSCP,
    );
    simple_pre(
        s,
        "RDPMC (before its #GP for a bad counter)",
        m1(Misc1::RDPMC),
        |a| a.mov(ecx, 0x1234i32),
        |a| a.rdpmc(),
        X::VMEXIT_RDPMC,
    );
    simple(
        s,
        "PUSHF",
        m1(Misc1::PUSHF),
        |a| a.pushfq(),
        X::VMEXIT_PUSHF,
    );
    simple(s, "POPF", m1(Misc1::POPF), |a| a.popfq(), X::VMEXIT_POPF);
    simple_pre(
        s,
        "IRET (before the exceptions of a bad frame)",
        m1(Misc1::IRET),
        |a| a.mov(rsp, 0x10i64),
        |a| a.iretq(),
        X::VMEXIT_IRET,
    );
    simple(s, "INVD", m1(Misc1::INVD), |a| a.invd(), X::VMEXIT_INVD);
    simple(
        s,
        "WBINVD",
        m2(Misc2::WBINVD),
        |a| a.wbinvd(),
        X::VMEXIT_WBINVD,
    );
    simple(s, "HLT", m1(Misc1::HLT), |a| a.hlt(), X::VMEXIT_HLT);
    simple(
        s,
        "HLT with idle-HLT: plain HLT first",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::HLT.bits() as u64)?;
            svm::or(a, VMCB, F::InterceptMisc3, Misc3::IDLE_HLT.bits() as u64)
        },
        |a| a.hlt(),
        X::VMEXIT_HLT,
    );
    simple(
        s,
        "idle HLT",
        intercept(F::InterceptMisc3, Misc3::IDLE_HLT.bits() as u64),
        |a| a.hlt(),
        X::VMEXIT_IDLE_HLT,
    );
    simple_pre(
        s,
        "XSETBV (before the #GP of a bad XCR0 value)",
        m2(Misc2::XSETBV),
        |a| {
            a.mov(rax, cr4)?;
            a.bts(rax, 18)?; // CR4.OSXSAVE
            a.mov(cr4, rax)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.xor(eax, eax) // clears XCR0.x87: #GP if it ran
        },
        |a| a.xsetbv(),
        X::VMEXIT_XSETBV,
    );
    simple(s, "ICEBP", m2(Misc2::ICEBP), |a| a.int1(), X::VMEXIT_ICEBP);
    simple(s, "RSM", m1(Misc1::RSM), |a| a.rsm(), X::VMEXIT_RSM);
    simple_pre(
        s,
        "VMRUN in the guest",
        nothing,
        |a| a.mov(rax, ksvm::VMCB2),
        |a| a.vmrun(),
        X::VMEXIT_VMRUN,
    );
    simple(s, "VMMCALL", |_| Ok(()), |a| a.vmmcall(), X::VMEXIT_VMMCALL);
    for (name, bit, code_, insn) in [
        ("VMLOAD", Misc2::VMLOAD, X::VMEXIT_VMLOAD, 0),
        ("VMSAVE", Misc2::VMSAVE, X::VMEXIT_VMSAVE, 1),
    ] {
        simple_pre(
            s,
            name,
            m2(bit),
            |a| a.mov(rax, ksvm::VMCB2),
            move |a| {
                if insn == 0 {
                    a.vmload()
                } else {
                    a.vmsave()
                }
            },
            code_,
        );
    }
    simple(s, "STGI", m2(Misc2::STGI), |a| a.stgi(), X::VMEXIT_STGI);
    simple(s, "CLGI", m2(Misc2::CLGI), |a| a.clgi(), X::VMEXIT_CLGI);
    simple_pre(
        s,
        "INVLPGA",
        m1(Misc1::INVLPGA),
        |a| {
            a.mov(eax, 0x5000i32)?;
            a.mov(ecx, 1i32)
        },
        |a| a.invlpga(),
        X::VMEXIT_INVLPGA,
    );
    simple_pre(
        s,
        "MONITOR",
        m2(Misc2::MONITOR),
        |a| {
            a.mov(eax, 0x5000i32)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)
        },
        |a| a.monitor(),
        X::VMEXIT_MONITOR,
    );
    simple_pre(
        s,
        "MWAIT",
        m2(Misc2::MWAIT),
        |a| {
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)
        },
        |a| a.mwait(),
        X::VMEXIT_MWAIT,
    );
    simple(
        s,
        "PAUSE with filter count 0",
        m1(Misc1::PAUSE),
        |a| a.pause(),
        X::VMEXIT_PAUSE,
    );
    for (name, bit, code_, insn) in [
        ("SIDT", Misc1::IDTR_READ, X::VMEXIT_IDTR_READ, 0),
        ("SGDT", Misc1::GDTR_READ, X::VMEXIT_GDTR_READ, 1),
        ("SLDT", Misc1::LDTR_READ, X::VMEXIT_LDTR_READ, 2),
        ("STR", Misc1::TR_READ, X::VMEXIT_TR_READ, 3),
        ("LIDT", Misc1::IDTR_WRITE, X::VMEXIT_IDTR_WRITE, 4),
        ("LGDT", Misc1::GDTR_WRITE, X::VMEXIT_GDTR_WRITE, 5),
        ("LLDT", Misc1::LDTR_WRITE, X::VMEXIT_LDTR_WRITE, 6),
        ("LTR", Misc1::TR_WRITE, X::VMEXIT_TR_WRITE, 7),
    ] {
        simple_pre(
            s,
            name,
            m1(bit),
            |a| a.xor(eax, eax),
            move |a| {
                let mem = qword_ptr(ksvm::L2_LOG as u32 as u64 + 0x800);
                match insn {
                    0 => a.sidt(mem),
                    1 => a.sgdt(mem),
                    2 => a.sldt(ax),
                    3 => a.str(ax),
                    4 => a.lidt(mem),
                    5 => a.lgdt(mem),
                    6 => a.lldt(ax),
                    _ => a.ltr(ax),
                }
            },
            code_,
        );
    }
}

fn decode_assists(s: &mut Suite) {
    icase(
        s,
        "INTn: EXITINFO1 is the vector",
        m1(Misc1::INTN),
        nothing,
        |a| a.int(0x21),
        nothing,
        vec![code(X::VMEXIT_SWINT), on_insn(), info1(0x21)],
    );
    icase(
        s,
        "INVLPG: EXITINFO1 is the address",
        m1(Misc1::INVLPG),
        |a| a.mov(rax, 0x1234_5000u64),
        |a| a.invlpg(qword_ptr(rax)),
        nothing,
        vec![code(X::VMEXIT_INVLPG), on_insn(), info1(0x1234_5000)],
    );
    for (cr, gpr_n) in [(0u8, 3u64), (3, 1), (4, 13), (8, 0), (2, 7)] {
        let gpr = [
            rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
        ][gpr_n as usize];
        let crr = [cr0, cr1, cr2, cr3, cr4, cr5, cr6, cr7, cr8][cr as usize];
        icase(
            s,
            &format!("MOV from CR{cr}: EXITINFO1 = GPR {gpr_n}, bit 63"),
            intercept(F::InterceptCr, 1 << cr),
            nothing,
            move |a| a.mov(gpr, crr),
            nothing,
            vec![code(X::cr(cr, false)), on_insn(), info1(1 << 63 | gpr_n)],
        );
        icase(
            s,
            &format!("MOV to CR{cr}: EXITINFO1 = GPR {gpr_n}, bit 63"),
            intercept(F::InterceptCr, 1 << (16 + cr)),
            move |a| a.mov(gpr, crr),
            move |a| a.mov(crr, gpr),
            nothing,
            vec![code(X::cr(cr, true)), on_insn(), info1(1 << 63 | gpr_n)],
        );
    }
    icase(
        s,
        "CR0 selective write: only TS and MP changed, no exit",
        m1(Misc1::CR0_SEL_WRITE),
        nothing,
        |a| {
            a.mov(rax, cr0)?;
            a.xor(rax, 0xai32)?;
            a.mov(cr0, rax)
        },
        nothing,
        vec![code(X::VMEXIT_VMMCALL)],
    );
    icase(
        s,
        "CR0 selective write: ET written as 0 is no change",
        m1(Misc1::CR0_SEL_WRITE),
        nothing,
        |a| {
            a.mov(rax, cr0)?;
            a.btr(rax, 4i32)?;
            a.mov(cr0, rax)
        },
        nothing,
        vec![code(X::VMEXIT_VMMCALL)],
    );
    icase(
        s,
        "CR0 selective write: WP changed",
        m1(Misc1::CR0_SEL_WRITE),
        |a| {
            a.mov(rdx, cr0)?;
            a.btr(rdx, 16i32)
        },
        |a| a.mov(cr0, rdx),
        nothing,
        vec![code(X::VMEXIT_CR0_SEL_WRITE), on_insn(), info1(1 << 63 | 2)],
    );
    icase(
        s,
        "CR0 selective write: LMSW always",
        m1(Misc1::CR0_SEL_WRITE),
        |a| a.mov(eax, 1i32),
        |a| a.lmsw(ax),
        nothing,
        vec![code(X::VMEXIT_CR0_SEL_WRITE), on_insn(), info1(0)],
    );
    icase(
        s,
        "CR0 selective write: never CLTS",
        m1(Misc1::CR0_SEL_WRITE),
        nothing,
        |a| a.clts(),
        nothing,
        vec![code(X::VMEXIT_VMMCALL)],
    );
    for (dr, write, gpr_n) in [
        (7u8, false, 0u64),
        (0, true, 2),
        (6, false, 11),
        (3, true, 5),
    ] {
        let gpr = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11][gpr_n as usize];
        let drr = [dr0, dr1, dr2, dr3, dr4, dr5, dr6, dr7][dr as usize];
        let bit = if write { 16 + dr } else { dr };
        icase(
            s,
            &format!(
                "MOV {} DR{dr}: EXITINFO1 = GPR {gpr_n}",
                if write { "to" } else { "from" }
            ),
            intercept(F::InterceptDr, 1 << bit),
            nothing,
            move |a| {
                if write {
                    a.mov(drr, gpr)
                } else {
                    a.mov(gpr, drr)
                }
            },
            nothing,
            vec![code(X::dr(dr, write)), on_insn(), info1(gpr_n)],
        );
    }
    icase(
        s,
        "MOV DR with DR7.GD: the #DB comes before the intercept",
        |a| {
            svm::or(a, VMCB, F::InterceptDr, 1 << 7)?;
            svm::or(a, VMCB, F::Dr7, 1 << 13)
        },
        nothing,
        |a| a.mov(rax, dr7),
        |a| l2_log(a, r11, log::VECTOR),
        vec![code(X::VMEXIT_VMMCALL), named("L2 vector + 1", 11, 2)],
    );
}

fn io_and_msr(s: &mut Suite) {
    icase(
        s,
        "OUT imm8, AL: IOIO fields, EXITINFO2 = next RIP",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::IOIO_PROT.bits() as u64)?;
            ksvm::intercept_port(a, 0x80)
        },
        nothing,
        |a| a.out(0x80, al),
        |a| a.mov(r11, r10),
        vec![
            code(X::VMEXIT_IOIO),
            on_insn(),
            info1(0x80 << 16 | 1 << 4 | 1 << 9),
            Box::new(|r| {
                (r.gprs[reg::INFO2] == r.gprs[at::NEXT])
                    .then_some(())
                    .ok_or_else(|| "EXITINFO2 is not the next RIP".into())
            }),
        ],
    );
    icase(
        s,
        "IN EAX, DX: a 4-byte access checks every port bit",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::IOIO_PROT.bits() as u64)?;
            ksvm::intercept_port(a, 0x1003)
        },
        |a| a.mov(edx, 0x1000i32),
        |a| a.in_(eax, dx),
        nothing,
        vec![
            code(X::VMEXIT_IOIO),
            on_insn(),
            info1(0x1000 << 16 | 1 << 6 | 1 << 9 | 1),
        ],
    );
    icase(
        s,
        "REP OUTSB: STR, REP, segment",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::IOIO_PROT.bits() as u64)?;
            ksvm::intercept_port(a, 0x3f8)
        },
        |a| {
            a.mov(edx, 0x3f8i32)?;
            a.mov(ecx, 2i32)?;
            a.mov(rsi, ksvm::L2_LOG + 0x800)
        },
        |a| a.rep().outsb(),
        nothing,
        vec![
            code(X::VMEXIT_IOIO),
            on_insn(),
            // Port, SEG = DS (3), A64, SZ8, REP, STR, OUT.
            info1(0x3f8 << 16 | 3 << 10 | 1 << 9 | 1 << 4 | 1 << 3 | 1 << 2),
        ],
    );
    icase(
        s,
        "IOIO: a port whose bit is clear is not intercepted",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::IOIO_PROT.bits() as u64)?;
            ksvm::intercept_port(a, 0x81)
        },
        nothing,
        |a| a.out(0x80, al),
        |a| a.mov(r11, qword_ptr(IOPM as u32 as u64)),
        vec![code(X::VMEXIT_VMMCALL)],
    );
    icase(
        s,
        "RDMSR of EFER: EXITINFO1 = 0",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::MSR_PROT.bits() as u64)?;
            ksvm::intercept_msr(a, 0xc000_0080, false)
        },
        |a| a.mov(ecx, 0xc000_0080u32 as i32),
        |a| a.rdmsr(),
        nothing,
        vec![code(X::VMEXIT_MSR), on_insn(), info1(0)],
    );
    icase(
        s,
        "WRMSR of STAR: EXITINFO1 = 1; the read bit does not matter",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::MSR_PROT.bits() as u64)?;
            ksvm::intercept_msr(a, 0xc000_0081, true)
        },
        |a| {
            a.mov(ecx, 0xc000_0081u32 as i32)?;
            a.rdmsr()
        },
        |a| a.wrmsr(),
        nothing,
        vec![code(X::VMEXIT_MSR), on_insn(), info1(1)],
    );
    icase(
        s,
        "RDMSR outside the MSRPM ranges is always intercepted",
        m1(Misc1::MSR_PROT),
        |a| a.mov(ecx, 0x4000_0000i32),
        |a| a.rdmsr(),
        nothing,
        vec![code(X::VMEXIT_MSR), on_insn(), info1(0)],
    );
}

fn traps(s: &mut Suite) {
    icase(
        s,
        "EFER write trap: after WRMSR, EXITINFO1 = new EFER",
        m2(Misc2::EFER_WRITE_TRAP),
        |a| {
            a.mov(ecx, 0xc000_0080u32 as i32)?;
            a.rdmsr()
        },
        |a| a.wrmsr(),
        nothing,
        vec![
            code(X::VMEXIT_EFER_WRITE_TRAP),
            after_insn(),
            info1(ksvm::L2_EFER),
        ],
    );
    icase(
        s,
        "CR4 write trap: after MOV, EXITINFO1 = new CR4",
        intercept(F::InterceptMisc2, 1 << (16 + 4)),
        |a| {
            a.mov(rax, cr4)?;
            a.bts(rax, 7i32)
        },
        |a| a.mov(cr4, rax),
        nothing,
        vec![code(X::cr_write_trap(4)), after_insn(), info1(0xa0)],
    );
    icase(
        s,
        "CR0 write trap after CLTS",
        intercept(F::InterceptMisc2, 1 << 16),
        nothing,
        |a| a.clts(),
        nothing,
        vec![code(X::cr_write_trap(0)), after_insn(), info1(ksvm::L2_CR0)],
    );
    icase(
        s,
        "a faulting CR4 write takes no trap",
        intercept(F::InterceptMisc2, 1 << (16 + 4)),
        |a| a.mov(rax, 1u64 << 40),
        |a| a.mov(cr4, rax),
        |a| l2_log(a, r11, log::VECTOR),
        vec![code(X::VMEXIT_VMMCALL), named("L2 vector + 1", 11, 14)],
    );
}

fn not_intercepted(s: &mut Suite) {
    icase(
        s,
        "CPUID runs when not intercepted",
        nothing,
        |a| a.mov(eax, 0x8000_0001u32 as i32),
        |a| {
            a.cpuid()?;
            a.mov(r11, rcx)
        },
        nothing,
        vec![
            code(X::VMEXIT_VMMCALL),
            testsuites::check::that("guest sees ECX.SVM", |r| r.gprs[11] & 4 != 0),
        ],
    );
    icase(
        s,
        "VMMCALL not intercepted is #UD in the guest",
        |a| {
            svm::set(a, VMCB, F::InterceptMisc2, Misc2::VMRUN.bits() as u64)?;
            svm::set(a, VMCB, F::InterceptExceptions, 1 << 6)
        },
        nothing,
        |a| a.vmmcall(),
        nothing,
        vec![code(X::exception(6)), on_insn_no_nrip(), info1(0)],
    );
    icase(
        s,
        "PAUSE filter: three PAUSEs pass, the fourth exits",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::PAUSE.bits() as u64)?;
            svm::set(a, VMCB, F::PauseFilterCount, 3)
        },
        |a| {
            a.pause()?;
            a.pause()?;
            a.pause()
        },
        |a| a.pause(),
        nothing,
        vec![code(X::VMEXIT_PAUSE), on_insn()],
    );
    icase(
        s,
        "MWAIT_CONDITIONAL: exits once MONITOR armed the monitor",
        m2(Misc2::MWAIT_CONDITIONAL),
        |a| {
            a.mov(eax, 0x5000i32)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.monitor()?;
            a.xor(eax, eax)
        },
        |a| a.mwait(),
        nothing,
        vec![code(X::VMEXIT_MWAIT_CONDITIONAL), on_insn()],
    );
    icase(
        s,
        "MWAIT_CONDITIONAL: no exit while the monitor is not armed",
        m2(Misc2::MWAIT_CONDITIONAL),
        |a| {
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)
        },
        |a| a.mwait(),
        nothing,
        vec![code(X::VMEXIT_VMMCALL)],
    );
    icase(
        s,
        "PAUSE filter threshold: a PAUSE long after the last reloads the count",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::PAUSE.bits() as u64)?;
            svm::set(a, VMCB, F::PauseFilterCount, 1)?;
            svm::set(a, VMCB, F::PauseFilterThreshold, 100)
        },
        |a| {
            a.pause()?;
            let mut lp = a.label();
            a.mov(ecx, 200i32)?;
            a.set(&mut lp)?;
            a.dec(ecx)?;
            a.jnz(lp.l)?;
            a.pause()?;
            a.pause()
        },
        |a| a.pause(),
        nothing,
        vec![code(X::VMEXIT_PAUSE), on_insn()],
    );
    icase(
        s,
        "PAUSE filter without the threshold's reload: the second PAUSE exits",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::PAUSE.bits() as u64)?;
            svm::set(a, VMCB, F::PauseFilterCount, 1)
        },
        |a| {
            a.pause()?;
            let mut lp = a.label();
            a.mov(ecx, 200i32)?;
            a.set(&mut lp)?;
            a.dec(ecx)?;
            a.jnz(lp.l)
        },
        |a| a.pause(),
        nothing,
        vec![code(X::VMEXIT_PAUSE), on_insn()],
    );
    icase(
        s,
        "an exit in the STI shadow saves INTERRUPT_SHADOW",
        m1(Misc1::CPUID),
        |a| a.sti(),
        |a| a.cpuid(),
        |a| svm::get(a, r11, VMCB, F::InterruptShadow),
        vec![
            code(X::VMEXIT_CPUID),
            on_insn(),
            named("INTERRUPT_SHADOW, GUEST_INTERRUPT_MASK", 11, 3),
        ],
    );
    icase(
        s,
        "an exit after the shadow saves none",
        m1(Misc1::CPUID),
        |a| {
            a.sti()?;
            a.nop()
        },
        |a| a.cpuid(),
        |a| svm::get(a, r11, VMCB, F::InterruptShadow),
        vec![
            code(X::VMEXIT_CPUID),
            named("INTERRUPT_SHADOW, GUEST_INTERRUPT_MASK", 11, 2),
        ],
    );
    icase(
        s,
        "SKINIT is #UD before its intercept: the preset does not advertise it",
        |a| {
            svm::or(a, VMCB, F::InterceptMisc2, Misc2::SKINIT.bits() as u64)?;
            svm::set(a, VMCB, F::InterceptExceptions, 1 << 6)
        },
        nothing,
        |a| a.skinit(),
        nothing,
        vec![code(X::exception(6)), on_insn_no_nrip()],
    );
}

#[test]
fn instruction_intercepts() {
    let mut s = Suite::new();
    simple_instructions(&mut s);
    decode_assists(&mut s);
    io_and_msr(&mut s);
    traps(&mut s);
    not_intercepted(&mut s);
    s.run();
}
