//! Event injection and virtual interrupts (APM Vol. 2 15.20, 15.21, 15.17,
//! 15.33.2): EVENTINJ of every type delivered through the L2 IDT with the
//! right vector, error code, return RIP (NRIP for software interrupts and
//! INT3-like exceptions) and CR2; a fault while injecting exits with the
//! injected event in EXITINTINFO; V_IRQ under IF, V_TPR/V_INTR_PRIO,
//! V_IGN_TPR, the interrupt shadow, HLT, GIF (CLGI/STGI), vGIF, the VINTR
//! intercept, V_TPR through CR8 with and without V_INTR_MASKING, and
//! virtual NMIs with V_NMI_MASK until IRET. A physical NMI with the NMI
//! intercept exits and stays pending.

mod svm_common;

use guestkit::svm::{self as ksvm, log};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{EventInj, EventType, Misc1, VIntr};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::{no_exception, that, Check};

fn inject(e: EventInj) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    move |a| svm::set(a, VMCB, F::EventInj, e.0)
}

fn vintr(v: VIntr) -> impl Fn(&mut Asm) -> AsmResult + 'static {
    move |a| {
        svm::set(a, VMCB, F::VIntrControl, v.to_raw() as u64)?;
        svm::set(a, VMCB, F::VIntrVector, v.v_intr_vector as u64)
    }
}

/// A pending virtual interrupt 41h of priority `prio`.
fn virq(prio: u8) -> VIntr {
    VIntr {
        v_irq: true,
        v_intr_prio: prio,
        v_intr_vector: 0x41,
        ..VIntr::default()
    }
}

fn if_on(a: &mut Asm) -> AsmResult {
    svm::set(a, VMCB, F::Rflags, 0x202)
}

fn resume_handlers(a: &mut Asm) -> AsmResult {
    a.mov(qword_ptr((ksvm::L2_LOG + log::RESUME) as u32 as u64), 1i32)
}

/// Loads the L2 log into R11 (vector + 1), R12 (error), R13 (RIP), R14
/// (count), R15 (CR2).
fn read_log(a: &mut Asm) -> AsmResult {
    l2_log(a, r11, log::VECTOR)?;
    l2_log(a, r12, log::ERROR)?;
    l2_log(a, r13, log::RIP)?;
    l2_log(a, r14, log::COUNT)?;
    l2_log(a, r15, log::CR2)
}

fn logged(vector: u8) -> Check {
    named("L2 vector + 1", 11, vector as u64 + 1)
}

fn log_rip_is(slot: usize) -> Check {
    Box::new(move |r| {
        (r.gprs[13] == r.gprs[slot])
            .then_some(())
            .ok_or_else(|| format!("L2 RIP {:#x}, expected {:#x}", r.gprs[13], r.gprs[slot]))
    })
}

fn injection(s: &mut Suite) {
    for (name, ev, vector, error) in [
        (
            "INTR 40h",
            EventInj::new(EventType::Intr, 0x40, None),
            0x40,
            0,
        ),
        (
            "NMI (vector field ignored)",
            EventInj::new(EventType::Nmi, 0x77, None),
            2,
            0,
        ),
        (
            "#GP with error code",
            EventInj::new(EventType::Exception, 13, Some(0x1234)),
            13,
            0x1234,
        ),
    ] {
        icase(
            s,
            &format!("EVENTINJ {name}"),
            inject(ev),
            nothing,
            |a| a.nop(),
            |a| {
                read_log(a)?;
                svm::get(a, r15, VMCB, F::EventInj)
            },
            vec![
                no_exception(),
                code(X::VMEXIT_VMMCALL),
                logged(vector),
                named("L2 error code", 12, error),
                named("EVENTINJ after the exit", 15, 0),
                intinfo(0),
            ],
        );
    }
    icase(
        s,
        "EVENTINJ #PF: CR2 is the VMCB's, not written by the injection",
        |a| {
            inject(EventInj::new(EventType::Exception, 14, Some(2)))(a)?;
            svm::set(a, VMCB, F::Cr2, 0x5555_5000)
        },
        nothing,
        |a| a.nop(),
        read_log,
        vec![
            logged(14),
            named("L2 error code", 12, 2),
            named("L2 CR2", 15, 0x5555_5000),
        ],
    );
    s.case(
        "EVENTINJ #BP and INT 80h return to NRIP",
        |a, s| {
            let mut skip = a.label();
            let l2 = l2_code(a, |a| {
                a.nop()?;
                a.nop()?;
                a.set(&mut skip)?;
                a.vmmcall()
            })?;
            run_l2(a, s, &l2, |a| {
                inject(EventInj::new(EventType::Exception, 3, None))(a)?;
                svm::set_label(a, VMCB, F::NRip, &skip)?;
                resume_handlers(a)
            })?;
            l2_log(a, r9, log::RIP)?;
            l2_log(a, r10, log::VECTOR)?;
            run_l2(a, s, &l2, |a| {
                inject(EventInj::new(EventType::SoftwareInt, 0x80, None))(a)?;
                svm::set_label(a, VMCB, F::NRip, &skip)?;
                resume_handlers(a)
            })?;
            read_log(a)?;
            a.lea(r15, ptr(skip.l))
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("#BP vector + 1", 10, 4),
            that("#BP returns to NRIP", |r| r.gprs[9] == r.gprs[15]),
            logged(0x80),
            that("INT 80h returns to NRIP", |r| r.gprs[13] == r.gprs[15]),
        ],
    );
    s.case(
        "a fault while injecting exits with the event in EXITINTINFO",
        |a, s| {
            let l2 = l2_code(a, |a| a.vmmcall())?;
            a.lea(rax, ptr(s.idt.l))?;
            a.btr(qword_ptr(rax + 16 * 0x50), 47i32)?;
            run_l2(a, s, &l2, |a| {
                inject(EventInj::new(EventType::Intr, 0x50, None))(a)?;
                svm::set(a, VMCB, F::InterceptExceptions, 1 << 11)
            })?;
            a.mov(r15, rax)?;
            a.lea(rax, ptr(s.idt.l))?;
            a.bts(qword_ptr(rax + 16 * 0x50), 47i32)?;
            a.mov(rax, r15)
        },
        vec![
            code(X::exception(11)),
            // Vector 50h in the IDT, EXT (an external interrupt).
            info1(0x50 << 3 | 3),
            intinfo(1 << 31 | 0x50),
        ],
    );
}

fn virtual_interrupts(s: &mut Suite) {
    icase(
        s,
        "V_IRQ is taken at the first boundary; V_IRQ cleared",
        |a| {
            vintr(virq(0xf))(a)?;
            if_on(a)
        },
        nothing,
        |a| a.nop(),
        |a| {
            read_log(a)?;
            svm::get(a, r9, VMCB, F::VIntrControl)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            logged(0x41),
            that("V_IRQ cleared", |r| r.gprs[9] & 0x100 == 0),
        ],
    );
    icase(
        s,
        "V_IRQ is held while IF = 0",
        vintr(virq(0xf)),
        nothing,
        |a| a.nop(),
        |a| {
            read_log(a)?;
            svm::get(a, r9, VMCB, F::VIntrControl)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("events taken", 14, 0),
            that("V_IRQ still pending", |r| r.gprs[9] & 0x100 != 0),
        ],
    );
    icase(
        s,
        "V_IRQ is held while V_INTR_PRIO <= V_TPR",
        |a| {
            vintr(VIntr {
                v_tpr: 3,
                ..virq(3)
            })(a)?;
            if_on(a)
        },
        nothing,
        |a| a.nop(),
        read_log,
        vec![code(X::VMEXIT_VMMCALL), named("events taken", 14, 0)],
    );
    icase(
        s,
        "V_IGN_TPR takes it regardless of V_TPR",
        |a| {
            vintr(VIntr {
                v_tpr: 3,
                v_ign_tpr: true,
                ..virq(3)
            })(a)?;
            if_on(a)
        },
        nothing,
        |a| a.nop(),
        read_log,
        vec![code(X::VMEXIT_VMMCALL), logged(0x41)],
    );
    icase(
        s,
        "VINTR intercept: exits before taking it, V_IRQ kept",
        |a| {
            vintr(virq(0xf))(a)?;
            if_on(a)?;
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::VINTR.bits() as u64)
        },
        nothing,
        |a| a.nop(),
        |a| svm::get(a, r11, VMCB, F::VIntrControl),
        vec![
            code(X::VMEXIT_VINTR),
            info1(0),
            that("V_IRQ still pending", |r| r.gprs[11] & 0x100 != 0),
        ],
    );
    icase(
        s,
        "STI; HLT: the virtual interrupt wakes the guest after HLT",
        |a| {
            vintr(virq(0xf))(a)?;
            resume_handlers(a)
        },
        |a| a.sti(),
        |a| a.hlt(),
        read_log,
        vec![code(X::VMEXIT_VMMCALL), logged(0x41), log_rip_is(at::NEXT)],
    );
    icase(
        s,
        "the VMCB interrupt shadow holds it for one instruction",
        |a| {
            vintr(virq(0xf))(a)?;
            if_on(a)?;
            svm::set(a, VMCB, F::InterruptShadow, 1)?;
            resume_handlers(a)
        },
        nothing,
        |a| a.nop(),
        read_log,
        // The template's L2 code starts with a NOP (the case's `pre`): the
        // interrupt is taken after it, at the instruction under test.
        vec![logged(0x41), log_rip_is(at::INSN)],
    );
    icase(
        s,
        "V_TPR through CR8 with V_INTR_MASKING: the host TPR is untouched",
        vintr(VIntr {
            v_intr_masking: true,
            ..VIntr::default()
        }),
        |a| a.mov(eax, 5i32),
        |a| {
            a.mov(cr8, rax)?;
            a.mov(r11, cr8)
        },
        |a| {
            svm::get(a, r12, VMCB, F::VIntrControl)?;
            a.mov(r13, cr8)
        },
        vec![
            named("guest CR8", 11, 5),
            that("V_TPR = 5", |r| r.gprs[12] & 0xff == 5),
            named("host CR8", 13, 0),
        ],
    );
    icase(
        s,
        "CR8 without V_INTR_MASKING writes the host TPR and V_TPR",
        nothing,
        |a| a.mov(eax, 7i32),
        |a| a.mov(cr8, rax),
        |a| {
            svm::get(a, r12, VMCB, F::VIntrControl)?;
            a.mov(r13, cr8)?;
            a.xor(eax, eax)?;
            a.mov(cr8, rax)
        },
        vec![
            that("V_TPR = 7", |r| r.gprs[12] & 0xff == 7),
            named("host CR8", 13, 7),
        ],
    );
}

fn gif(s: &mut Suite) {
    icase(
        s,
        "CLGI in the guest holds V_IRQ until STGI",
        |a| {
            vintr(virq(0xf))(a)?;
            resume_handlers(a)
        },
        |a| {
            a.clgi()?;
            a.sti()?;
            a.nop()?;
            a.nop()?;
            l2_log(a, r11, log::COUNT)?;
            a.stgi()
        },
        |a| a.nop(),
        |a| l2_log(a, r12, log::COUNT),
        vec![
            code(X::VMEXIT_VMMCALL),
            named("taken before STGI", 11, 0),
            named("taken after STGI", 12, 1),
        ],
    );
    icase(
        s,
        "vGIF: the guest's STGI/CLGI set V_GIF, which holds V_IRQ",
        |a| {
            vintr(VIntr {
                vgif_enable: true,
                ..virq(0xf)
            })(a)?;
            if_on(a)?;
            resume_handlers(a)
        },
        |a| {
            a.nop()?;
            l2_log(a, r11, log::COUNT)?;
            a.stgi()?;
            a.nop()?;
            l2_log(a, r12, log::COUNT)
        },
        |a| a.clgi(),
        |a| svm::get(a, r13, VMCB, F::VIntrControl),
        vec![
            code(X::VMEXIT_VMMCALL),
            named("taken while V_GIF = 0", 11, 0),
            named("taken after STGI", 12, 1),
            that("V_GIF clear after CLGI", |r| r.gprs[13] & 0x200 == 0),
        ],
    );
}

fn virtual_nmi(s: &mut Suite) {
    icase(
        s,
        "virtual NMI: taken, V_NMI cleared, V_NMI_MASK set",
        |a| {
            vintr(VIntr {
                vnmi_enable: true,
                v_nmi: true,
                ..VIntr::default()
            })(a)?;
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::NMI.bits() as u64)
        },
        nothing,
        |a| a.nop(),
        |a| {
            read_log(a)?;
            svm::get(a, r9, VMCB, F::VIntrControl)
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            logged(2),
            that("V_NMI 0, V_NMI_MASK 1", |r| r.gprs[9] & 0x1800 == 0x1000),
        ],
    );
    icase(
        s,
        "virtual NMI held by V_NMI_MASK until IRET",
        |a| {
            vintr(VIntr {
                vnmi_enable: true,
                v_nmi: true,
                v_nmi_mask: true,
                ..VIntr::default()
            })(a)?;
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::NMI.bits() as u64)?;
            resume_handlers(a)
        },
        |a| {
            a.nop()?;
            l2_log(a, r11, log::COUNT)?;
            // IRETQ to the next instruction.
            let mut back = a.label();
            a.mov(rax, rsp)?;
            a.push(sel_data())?;
            a.push(rax)?;
            a.pushfq()?;
            a.push(sel_code())?;
            a.lea(rax, ptr(back.l))?;
            a.push(rax)?;
            a.iretq()?;
            a.set(&mut back)?;
            a.nop()
        },
        |a| a.nop(),
        |a| l2_log(a, r12, log::COUNT),
        vec![
            code(X::VMEXIT_VMMCALL),
            named("taken before IRET", 11, 0),
            named("taken after IRET", 12, 1),
        ],
    );
}

fn sel_data() -> i32 {
    guestkit::layout::sel::DATA as i32
}

fn sel_code() -> i32 {
    guestkit::layout::sel::CODE64 as i32
}

#[test]
fn injection_and_virtual_interrupts() {
    let mut s = Suite::new();
    injection(&mut s);
    virtual_interrupts(&mut s);
    gif(&mut s);
    virtual_nmi(&mut s);
    s.run();
}

/// A physical NMI arriving while L2 runs with the NMI intercept: #VMEXIT(NMI)
/// at the next boundary, and the NMI stays pending for the host (APM Vol. 2
/// 15.13.2, table 15-13). The platform has no NMI source, so the test raises
/// the NMI line itself once the guest runs.
#[test]
fn physical_nmi_exits_and_stays_pending() {
    use nestemu::loader::multiboot;
    use nestemu::virt::GuestMode;
    let mut p = svm_common::svm::SvmProgram::new();
    p.case("spin until an NMI", |a, s| {
        let l2 = l2_code(a, |a| {
            let mut lp = a.label();
            a.nop()?;
            a.set(&mut lp)?;
            a.pause()?;
            a.jmp(lp.l)
        })?;
        run_l2(a, s, &l2, |a| {
            svm::or(a, VMCB, F::InterceptMisc1, Misc1::NMI.bits() as u64)
        })
    });
    let names = p.names.clone();
    let built = p.finish().build().expect("assembles");
    let mut m = nestemu::Machine::new(amd());
    multiboot::boot(&mut m, &built.image, "kit", &[]).expect("loads");
    let mut slices = 0;
    while m.virt.mode != GuestMode::SvmGuest || slices < 50 {
        if m.virt.mode == GuestMode::SvmGuest {
            slices += 1;
        }
        assert!(m.run_slice().is_none(), "stopped before the guest ran");
    }
    m.cpu.events.nmi_pending = true;
    let stop = m.run();
    assert_eq!(stop, nestemu::Stop::DebugExit(0));
    let idx = names.iter().position(|n| n == "spin until an NMI").unwrap();
    let mut b = vec![0u8; guestkit::layout::RECORD_SIZE as usize];
    m.peek_phys(
        guestkit::layout::RESULTS + idx as u64 * guestkit::layout::RECORD_SIZE,
        &mut b,
    );
    let r = guestkit::Record::parse(&b);
    assert!(r.done);
    assert_eq!(r.gprs[reg::CODE], X::VMEXIT_NMI.0);
    assert_eq!(r.gprs[reg::INFO1], 0);
    assert!(
        m.cpu.events.nmi_pending,
        "the NMI stays pending for the host"
    );
    assert_eq!(m.stats.vmexits.by_reason["VMEXIT_NMI"], 1);
}
