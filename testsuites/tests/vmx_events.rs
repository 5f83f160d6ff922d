//! Events: exceptions against the exception bitmap (with the page-fault
//! error-code mask and match), IDT-vectoring information, triple faults,
//! event injection of every type, the interrupt and NMI windows, the monitor
//! trap flag and the VMX-preemption timer (SDM Vol. 3C 26.2, 26.5, 27.6,
//! 28.2.2-28.2.4).

mod vmx_common;

use guestkit::vmx::{store_user, vmclr, vmor, vmr, vmw, VmxCase, GUEST_EXCEPTION};
use guestkit::Asm;
use iced_x86::code_asm::*;
use vmx_common::*;
use vmx_model::controls::{ExitControls as Ex, PinControls as Pin, ProcControls as P1};
use vmx_model::Field as F;

const UD: u64 = 0x8000_0306;
const GP: u64 = 0x8000_0b0d;
const PF: u64 = 0x8000_0b0e;

/// L1 exit code: if the exit reason is `r`, clear `bits` of the primary
/// controls and resume; otherwise the default.
fn clear_on(
    r: u64,
    field: F,
    bits: u64,
) -> impl Fn(&mut Asm, &guestkit::vmx::VmxRt) -> guestkit::AsmResult {
    move |a, rt| {
        let mut other = a.label();
        vmr(a, rax, F::ExitReason)?;
        a.cmp(eax, r as i32)?;
        a.jne(other.l)?;
        vmclr(a, field, bits)?;
        a.jmp(rt.resume.l)?;
        a.set(&mut other)?;
        a.jmp(rt.default_exit.l)
    }
}

/// L1 setup: the guest RIP at entry goes to user slot 1.
fn save_entry_rip(a: &mut Asm) -> guestkit::AsmResult {
    vmr(a, rcx, F::GuestRip)?;
    store_user(a, 1, rcx)
}

/// L1 exit code: the qword at the guest's RSP + `off` goes to user slot 0,
/// then the default.
fn save_stack(off: i32) -> impl Fn(&mut Asm, &guestkit::vmx::VmxRt) -> guestkit::AsmResult {
    move |a, rt| {
        vmr(a, rcx, F::GuestRsp)?;
        a.mov(rcx, qword_ptr(rcx + off))?;
        store_user(a, 0, rcx)?;
        a.jmp(rt.default_exit.l)
    }
}

fn exceptions(t: &mut Table) {
    t.case(
        VmxCase::guest("#UD in the exception bitmap", |a, _| {
            mark(a)?;
            a.ud2()
        })
        .setup(|a, _| vmw(a, F::ExceptionBitmap, 1 << 6))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 0),
            intr(0, UD),
            rip_marked(0),
            qual(0, 0),
            exits(1),
        ],
    );
    t.case(
        VmxCase::guest("#GP(0) with its error code", |a, _| {
            a.mov(rax, 0x8000_0000_0000u64)?;
            mark(a)?;
            a.mov(rbx, qword_ptr(rax))
        })
        .setup(|a, _| vmw(a, F::ExceptionBitmap, 1 << 13))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 0),
            intr(0, GP),
            field(0, "error code", |e| e.intr_error, 0),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest(
            "#PF exit reports the address and leaves CR2 alone",
            |a, _| {
                a.mov(eax, 0x5555i32)?;
                a.mov(cr2, rax)?;
                a.mov(rax, 0x1_0000_0008u64)?;
                mark(a)?;
                a.mov(rbx, qword_ptr(rax))
            },
        )
        .setup(|a, _| vmw(a, F::ExceptionBitmap, 1 << 14))
        .on_exit(|a, rt| {
            a.mov(rcx, cr2)?;
            store_user(a, 0, rcx)?;
            a.jmp(rt.finish.l)
        }),
        vec![
            reason(0, 0),
            intr(0, PF),
            qual(0, 0x1_0000_0008),
            field(0, "error code", |e| e.intr_error, 0),
            rip_marked(0),
            user(0, 0x5555),
        ],
    );
    t.case(
        VmxCase::guest(
            "#PF error-code mask/match: no exit, delivered to L2",
            |a, _| {
                a.mov(rax, 0x1_0000_0008u64)?;
                a.mov(rbx, qword_ptr(rax))
            },
        )
        .setup(|a, _| {
            vmw(a, F::ExceptionBitmap, 1 << 14)?;
            vmw(a, F::PageFaultErrorCodeMask, 1)?;
            vmw(a, F::PageFaultErrorCodeMatch, 1)
        })
        .on_exit(|a, rt| {
            a.mov(rcx, cr2)?;
            store_user(a, 0, rcx)?;
            a.jmp(rt.finish.l)
        }),
        vec![
            reason(0, 18),
            gpr(15, GUEST_EXCEPTION + 14),
            gpr(14, 0),
            user(0, 0x1_0000_0008),
        ],
    );
    t.case(
        VmxCase::guest(
            "#PF bit clear with match: a mismatching fault exits",
            |a, _| {
                a.mov(rax, 0x1_0000_0008u64)?;
                a.mov(rbx, qword_ptr(rax))
            },
        )
        .setup(|a, _| {
            vmw(a, F::PageFaultErrorCodeMask, 1)?;
            vmw(a, F::PageFaultErrorCodeMatch, 1)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![reason(0, 0), intr(0, PF)],
    );
    t.case(
        VmxCase::guest(
            "INT3 exits as a software exception with its length",
            |a, _| {
                mark(a)?;
                a.int3()
            },
        )
        .setup(|a, _| vmw(a, F::ExceptionBitmap, 1 << 3))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![reason(0, 0), intr(0, 0x8000_0603), len(0, 1), rip_marked(0)],
    );
    t.case(
        VmxCase::guest("INT1 exits as a privileged software exception", |a, _| {
            mark(a)?;
            a.int1()
        })
        .setup(|a, _| vmw(a, F::ExceptionBitmap, 1 << 1))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![reason(0, 0), intr(0, 0x8000_0501), len(0, 1), rip_marked(0)],
    );
    t.case(
        VmxCase::guest("INT n is not in the exception bitmap", |a, _| {
            a.int(0x80i32)
        })
        .setup(|a, _| vmw(a, F::ExceptionBitmap, u32::MAX as u64 & !(1 << 14))),
        vec![reason(0, 18), gpr(15, GUEST_EXCEPTION + 0x80), exits(1)],
    );
    t.case(
        VmxCase::guest(
            "#GP during INT n delivery: IDT-vectoring information",
            |a, _| {
                mark(a)?;
                a.int(0x40i32)
            },
        )
        .setup(|a, _| {
            vmw(a, F::ExceptionBitmap, 1 << 13)?;
            vmw(a, F::GuestIdtrLimit, 0x1ff)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 0),
            intr(0, GP),
            field(0, "error code", |e| e.intr_error, 0x40 * 8 + 2),
            field(0, "IDT-vectoring", |e| e.idt_info, 0x8000_0440),
            len(0, 2),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("#GP during #UD delivery: hardware vectoring", |a, _| {
            mark(a)?;
            a.ud2()
        })
        .setup(|a, _| {
            vmw(a, F::ExceptionBitmap, 1 << 13)?;
            vmw(a, F::GuestIdtrLimit, 0x3f)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 0),
            intr(0, GP),
            field(0, "error code", |e| e.intr_error, 6 * 8 + 3),
            field(0, "IDT-vectoring", |e| e.idt_info, UD),
            rip_marked(0),
        ],
    );
    t.case(
        VmxCase::guest("a triple fault exits with reason 2", |a, _| {
            mark(a)?;
            a.ud2()
        })
        .setup(|a, _| vmw(a, F::GuestIdtrLimit, 0))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![reason(0, 2), rip_marked(0), exits(1)],
    );
}

fn injection(t: &mut Table) {
    type Row = (&'static str, u64, u64, u64, u64);
    // (name, interruption information, error code, instruction length,
    // vector); software types return past the instruction length.
    let rows: [Row; 6] = [
        ("inject an external interrupt", 0x8000_0040, 0, 0, 0x40),
        ("inject an NMI", 0x8000_0202, 0, 0, 2),
        ("inject #GP with an error code", GP, 0x1234, 0, 13),
        (
            "inject INT 0x80 (software interrupt)",
            0x8000_0480,
            0,
            2,
            0x80,
        ),
        ("inject INT3 (software exception)", 0x8000_0603, 0, 1, 3),
        (
            "inject INT1 (privileged software exception)",
            0x8000_0501,
            0,
            1,
            1,
        ),
    ];
    for (name, info, code, l, vec) in rows {
        let error = info & (1 << 11) != 0;
        let mut checks = vec![
            reason(0, 18),
            gpr(15, GUEST_EXCEPTION + vec),
            exits(1),
            that("the pushed RIP", move |r| r.user[0] == r.user[1] + l),
        ];
        if error {
            checks.push(gpr(14, code));
        }
        if vec == 2 {
            checks.push(field(0, "interruptibility", |e| e.interruptibility & 8, 8));
        }
        t.case(
            VmxCase::guest(name, |a, _| a.ud2())
                .setup(move |a, _| {
                    save_entry_rip(a)?;
                    vmw(a, F::GuestRflags, 0x202)?;
                    vmw(a, F::EntryInterruptionInfo, info)?;
                    vmw(a, F::EntryExceptionErrorCode, code)?;
                    vmw(a, F::EntryInstructionLength, l)
                })
                // The stub popped an error code: the return RIP is at RSP.
                .on_exit(save_stack(0)),
            checks,
        );
    }
    t.case(
        VmxCase::guest("inject #PF: CR2 is the hypervisor's to set", |a, _| a.ud2())
            .setup(|a, _| {
                a.mov(eax, 0x7777i32)?;
                a.mov(cr2, rax)?;
                vmw(a, F::EntryInterruptionInfo, PF)?;
                vmw(a, F::EntryExceptionErrorCode, 2)
            })
            .on_exit(|a, rt| {
                a.mov(rcx, cr2)?;
                store_user(a, 0, rcx)?;
                a.jmp(rt.finish.l)
            }),
        vec![gpr(15, GUEST_EXCEPTION + 14), gpr(14, 2), user(0, 0x7777)],
    );
    t.case(
        VmxCase::guest("inject a pending MTF exit", |a, _| a.ud2())
            .setup(|a, _| {
                save_entry_rip(a)?;
                vmw(a, F::EntryInterruptionInfo, 0x8000_0700)
            })
            .on_exit(|a, rt| {
                vmr(a, rcx, F::GuestRip)?;
                store_user(a, 0, rcx)?;
                a.jmp(rt.finish.l)
            }),
        vec![
            reason(0, 37),
            that("RIP is the entry RIP", |r| r.user[0] == r.user[1]),
            exits(1),
        ],
    );
    t.case(
        VmxCase::guest(
            "the VM exit clears the entry injection valid bit",
            |a, _| a.ud2(),
        )
        .setup(|a, _| {
            vmw(a, F::GuestRflags, 0x202)?;
            vmw(a, F::EntryInterruptionInfo, 0x8000_0040)
        })
        .on_exit(|a, rt| {
            vmr(a, rcx, F::EntryInterruptionInfo)?;
            store_user(a, 0, rcx)?;
            a.jmp(rt.finish.l)
        }),
        vec![user(0, 0x40)],
    );
}

fn windows_and_timers(t: &mut Table) {
    let iw = P1::INTERRUPT_WINDOW_EXITING.bits() as u64;
    t.case(
        VmxCase::guest("interrupt window with IF = 1 exits at once", |a, _| a.nop())
            .setup(move |a, _| {
                save_entry_rip(a)?;
                vmw(a, F::GuestRflags, 0x202)?;
                vmor(a, F::PrimaryProcBasedControls, iw)
            })
            .on_exit(clear_on(7, F::PrimaryProcBasedControls, iw)),
        vec![
            reason(0, 7),
            that("before the first instruction", |r| {
                r.exits[0].rip == r.user[1]
            }),
            ends_with_vmcall(),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest("interrupt window opens after the STI shadow", |a, _| {
            let mut l = a.label();
            a.lea(r13, ptr(l.l))?;
            a.sti()?;
            a.nop()?;
            a.set(&mut l)?;
            a.nop()
        })
        .setup(move |a, _| vmor(a, F::PrimaryProcBasedControls, iw))
        .on_exit(clear_on(7, F::PrimaryProcBasedControls, iw)),
        vec![reason(0, 7), rip_marked(0), ends_with_vmcall()],
    );
    let nw = P1::NMI_WINDOW_EXITING.bits() as u64;
    let vnmi = (Pin::NMI_EXITING | Pin::VIRTUAL_NMIS).bits() as u64;
    t.case(
        VmxCase::guest("NMI window without virtual-NMI blocking", |a, _| a.nop())
            .setup(move |a, _| {
                vmor(a, F::PinBasedControls, vnmi)?;
                vmor(a, F::PrimaryProcBasedControls, nw)
            })
            .on_exit(clear_on(8, F::PrimaryProcBasedControls, nw)),
        vec![reason(0, 8), ends_with_vmcall(), exits(2)],
    );
    t.case(
        VmxCase::guest("NMI window opens at IRET", |a, _| {
            let mut after = a.label();
            a.mov(eax, 0x10i32)?;
            a.push(rax)?;
            a.push(rsp)?;
            a.add(qword_ptr(rsp), 8i32)?;
            a.pushfq()?;
            a.push(8i32)?;
            a.lea(r13, ptr(after.l))?;
            a.push(r13)?;
            a.iretq()?;
            a.set(&mut after)?;
            a.nop()
        })
        .setup(move |a, _| {
            vmor(a, F::PinBasedControls, vnmi)?;
            vmor(a, F::PrimaryProcBasedControls, nw)?;
            vmw(a, F::GuestInterruptibility, 8)
        })
        .on_exit(clear_on(8, F::PrimaryProcBasedControls, nw)),
        vec![reason(0, 8), rip_marked(0), ends_with_vmcall(), exits(2)],
    );
    let mtf = P1::MONITOR_TRAP_FLAG.bits() as u64;
    t.case(
        VmxCase::guest("monitor trap flag after one instruction", |a, _| {
            mark(a)?;
            a.nop()
        })
        .setup(move |a, _| vmor(a, F::PrimaryProcBasedControls, mtf))
        .on_exit(clear_on(37, F::PrimaryProcBasedControls, mtf)),
        vec![reason(0, 37), rip_marked(0), ends_with_vmcall(), exits(2)],
    );
    let timer = Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64;
    t.case(
        VmxCase::guest(
            "preemption timer of 0 exits before any instruction",
            |a, _| a.nop(),
        )
        .setup(move |a, _| {
            save_entry_rip(a)?;
            vmor(a, F::PinBasedControls, timer)?;
            vmw(a, F::PreemptionTimerValue, 0)
        })
        .on_exit(clear_on(52, F::PinBasedControls, timer)),
        vec![
            reason(0, 52),
            that("RIP is the entry RIP", |r| r.exits[0].rip == r.user[1]),
            ends_with_vmcall(),
        ],
    );
    t.case(
        VmxCase::guest("preemption timer counts the guest's cycles", |a, _| {
            let mut lp = a.label();
            a.xor(ecx, ecx)?;
            a.set(&mut lp)?;
            a.inc(rcx)?;
            a.jmp(lp.l)
        })
        .setup(move |a, _| {
            vmor(a, F::PinBasedControls, timer)?;
            vmw(a, F::PreemptionTimerValue, 100)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 52),
            that("the loop ran about 100 << 5 cycles", |r| {
                (1000..=1700).contains(&r.gprs[1])
            }),
        ],
    );
    t.case(
        VmxCase::guest("preemption timer wakes a halted guest", |a, _| {
            mark(a)?;
            a.hlt()
        })
        .setup(move |a, _| {
            vmor(a, F::PinBasedControls, timer)?;
            vmw(a, F::PreemptionTimerValue, 50)
        })
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 52),
            field(0, "activity state", |e| e.activity, 1),
            that("RIP after the HLT", |r| r.exits[0].rip == r.gprs[13] + 1),
        ],
    );
    t.case(
        VmxCase::guest("save VMX-preemption timer value", |a, _| a.cpuid())
            .setup(move |a, _| {
                vmor(a, F::PinBasedControls, timer)?;
                vmor(a, F::ExitControls, Ex::SAVE_PREEMPTION_TIMER.bits() as u64)?;
                vmw(a, F::PreemptionTimerValue, 1_000_000)
            })
            .on_exit(|a, rt| {
                vmr(a, rcx, F::PreemptionTimerValue)?;
                store_user(a, 0, rcx)?;
                a.jmp(rt.finish.l)
            }),
        vec![
            reason(0, 10),
            that("the saved value went down a little", |r| {
                r.user[0] < 1_000_000 && r.user[0] > 999_000
            }),
        ],
    );
}

#[test]
fn events() {
    let mut t = Table::default();
    exceptions(&mut t);
    injection(&mut t);
    windows_and_timers(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx events: {n} cases passed");
}
