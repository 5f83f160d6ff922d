//! The task-switch intercept (APM Vol. 2 15.14.1, "Task Switch Intercept";
//! table 15-7) with a 32-bit protected-mode L2, where hardware task switches
//! exist (APM Vol. 2 12.3; long mode has none): a far JMP and a far CALL to
//! a TSS, a CALL through a task gate, an IRET with NT = 1 and an INT n and an
//! exception through an IDT task gate each exit with #VMEXIT(TASK_SWITCH)
//! before anything of the switch happens. EXITINFO1 holds the incoming TSS's
//! selector; EXITINFO2 bit 36 marks IRET, bit 38 far JMP, bit 44 an error
//! code (in bits 31:0) and bit 48 the RF that the outgoing TSS would
//! save (set for a fault). The exit is fault-like: RIP is the instruction that switches, no
//! NRIP; a switch through the IDT also leaves the event in EXITINTINFO (the
//! field KVM reads to tell a gate from a CALL). Without the intercept the
//! switch completes in L2.

mod svm_common;

use guestkit::asm;
use guestkit::svm::legacy::{self, put, task_gate, tss_descriptor};
use guestkit::svm::{place, VMCB2};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::Misc1;
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::{no_exception, that, Check};

/// The second task's TSS, after the L2's own.
const TSS_B: u64 = legacy::TSS + 0x100;
/// Its stack top.
const STACK_B: u64 = legacy::STACK_TOP - 0x1000;
/// Task B's TSS descriptor.
const SEL_B: u16 = 0x20;
/// A task gate in the GDT naming task B.
const GATE_B: u16 = 0x28;
/// A selector past the L2 GDT's limit.
const BEYOND: u16 = 0x100;
/// What L1 writes in the outgoing TSS's EIP and task B's link before VMRUN:
/// a switch that saved the old task or linked the new one would change them.
const POISON: u32 = 0xdead_beef;
const LINK_POISON: u32 = 0x7777;

/// Record registers of the L2 state after the exit.
mod st {
    /// TR's selector in the VMCB.
    pub const TR: usize = 9;
    /// RFLAGS in the VMCB.
    pub const RFLAGS: usize = 10;
    /// CR0 in the VMCB.
    pub const CR0: usize = 11;
    /// The high dword of task B's TSS descriptor.
    pub const B_DESC: usize = 12;
    /// The EIP (low half) and EFLAGS (high half) fields of the L2's own
    /// TSS.
    pub const A_EIP: usize = 13;
    /// Task B's previous-task link.
    pub const B_LINK: usize = 14;
    /// The high dword of the L2's own TSS descriptor.
    pub const A_DESC: usize = 15;
}

/// A 32-bit L2 program at [`legacy::CODE`]: `body` gets the label of the
/// instruction under test (to set) and of task B's entry (to set). Returns
/// the bytes, that instruction's address and task B's entry.
fn l2(body: impl Fn(&mut Asm, &mut Label, &mut Label) -> AsmResult) -> (Vec<u8>, u64, u64) {
    let c = asm::build(32, legacy::CODE, |a| {
        let mut at = a.label();
        let mut entry_b = a.label();
        body(a, &mut at, &mut entry_b)
    })
    .expect("32-bit L2 code");
    (c.bytes, c.labels[0], c.labels[1])
}

/// Task B's code: exits with VMMCALL (EAX from its TSS, 0xB0B0, shows
/// where it came from).
fn task_b(a: &mut Asm, entry: &mut Label) -> AsmResult {
    a.set(entry)?;
    a.vmmcall()?;
    a.hlt()
}

/// One case: L1 builds the L2 tables, task B (TSS descriptor `b_type`, 9
/// available or 0xB busy), the task gate, poisons the fields a switch would
/// write, runs `code` with `setup` applied to the VMCB, and loads the exit
/// and the L2 state of [`st`].
fn case(
    s: &mut Suite,
    name: &str,
    code: (Vec<u8>, u64, u64),
    b_type: u8,
    setup: impl Fn(&mut Asm) -> AsmResult + 'static,
    checks: Vec<Check>,
) {
    let (bytes, _, entry_b) = code;
    s.case(
        name,
        move |a, s| {
            legacy::tables(a)?;
            put(
                a,
                legacy::GDT + u64::from(SEL_B),
                tss_descriptor(TSS_B, 0x67, b_type),
            )?;
            put(a, legacy::GDT + u64::from(GATE_B), task_gate(SEL_B, 0))?;
            let tss_b: [(u64, u32); 11] = [
                (0x00, LINK_POISON),
                (0x20, entry_b as u32),
                (0x24, 2),
                (0x28, 0xb0b0),
                (0x38, STACK_B as u32),
                (0x48, u32::from(legacy::sel::DATA)),
                (0x4c, u32::from(legacy::sel::CODE)),
                (0x50, u32::from(legacy::sel::DATA)),
                (0x54, u32::from(legacy::sel::DATA)),
                (0x58, u32::from(legacy::sel::DATA)),
                (0x5c, u32::from(legacy::sel::DATA)),
            ];
            for (off, v) in tss_b {
                a.mov(dword_ptr(TSS_B + off), v as i32)?;
            }
            a.mov(dword_ptr(legacy::TSS + 0x20), POISON as i32)?;
            place(a, legacy::CODE, &bytes)?;
            s.init_vmcb(a, VMCB)?;
            legacy::vmcb(a, VMCB, legacy::CODE)?;
            setup(a)?;
            // VMRUN does not load TR, LDTR, FS and GS; VMLOAD does (APM Vol.
            // 2 15.5.1, 15.5.2), into the processor: L1 keeps its own in
            // VMCB2 around the run, as a hypervisor does.
            a.mov(rax, VMCB2)?;
            a.vmsave()?;
            a.mov(rax, VMCB)?;
            a.vmload()?;
            svm::vmrun(a, VMCB)?;
            a.mov(rax, VMCB)?;
            a.vmsave()?;
            a.mov(rax, VMCB2)?;
            a.vmload()?;
            read_exit(a, VMCB)?;
            svm::get(a, r9, VMCB, F::TrSelector)?;
            svm::get(a, r10, VMCB, F::Rflags)?;
            svm::get(a, r11, VMCB, F::Cr0)?;
            a.mov(r12d, dword_ptr(legacy::GDT + u64::from(SEL_B) + 4))?;
            a.mov(r13, qword_ptr(legacy::TSS + 0x20))?;
            a.mov(r14d, dword_ptr(TSS_B))?;
            a.mov(
                r15d,
                dword_ptr(legacy::GDT + u64::from(legacy::sel::TSS) + 4),
            )
        },
        checks,
    );
}

/// The TASK_SWITCH intercept bit.
fn intercepted(a: &mut Asm) -> AsmResult {
    svm::or(a, VMCB, F::InterceptMisc1, Misc1::TASK_SWITCH.bits() as u64)
}

/// The type field of a descriptor's high dword.
fn desc_type(hi: u64) -> u64 {
    (hi >> 8) & 0xf
}

/// The exit of an intercepted switch at `at` with the given EXITINFO2 and
/// EXITINTINFO; nothing of the switch happened: TR, CR0.TS, both busy bits
/// (`b_type` is task B's), the outgoing TSS and task B's link unchanged,
/// RFLAGS.NT as `nt` left it.
fn intercepted_checks(at: u64, info_2: u64, int_info: u64, b_type: u64, nt: bool) -> Vec<Check> {
    vec![
        no_exception(),
        code(X::VMEXIT_TASK_SWITCH),
        info1(u64::from(SEL_B)),
        info2(info_2),
        intinfo(int_info),
        named("RIP (the switching instruction)", reg::RIP, at),
        named("NRIP (none for a task switch)", reg::NRIP, 0),
        named("TR", st::TR, u64::from(legacy::sel::TSS)),
        that("CR0.TS clear", |r| r.gprs[st::CR0] & 8 == 0),
        that("RFLAGS.NT unchanged", move |r| {
            (r.gprs[st::RFLAGS] & 0x4000 != 0) == nt
        }),
        that("task B's busy bit unchanged", move |r| {
            desc_type(r.gprs[st::B_DESC]) == b_type
        }),
        that("the L2's own TSS still busy", |r| {
            desc_type(r.gprs[st::A_DESC]) == 0xb
        }),
        named(
            "outgoing TSS's EIP and EFLAGS not saved",
            st::A_EIP,
            u64::from(POISON),
        ),
        named(
            "task B's link not written",
            st::B_LINK,
            u64::from(LINK_POISON),
        ),
    ]
}

#[test]
fn task_switches_exit_with_the_intercept() {
    let mut s = Suite::new();

    // Far JMP and CALL to task B's TSS, and CALL through a task gate to it:
    // EXITINFO1 names the TSS the gate points at, not the gate; EXITINFO2
    // has bit 38 for a JMP.
    type Far = fn(&mut Asm) -> AsmResult;
    let far: [(&str, Far, u64); 3] = [
        ("far JMP to a TSS", |a| a.jmp_far(SEL_B, 0), 1 << 38),
        ("far CALL to a TSS", |a| a.call_far(SEL_B, 0), 0),
        ("far CALL through a task gate", |a| a.call_far(GATE_B, 0), 0),
    ];
    for (name, insn, info2) in far {
        let c = l2(|a, at, b| {
            a.nop()?;
            a.set(at)?;
            insn(a)?;
            a.hlt()?;
            task_b(a, b)
        });
        let at = c.1;
        case(
            &mut s,
            name,
            c,
            9,
            intercepted,
            intercepted_checks(at, info2, 0, 9, false),
        );
    }

    // Task B is busy and the L2's TSS links to it: IRET with NT = 1 returns
    // there.
    let c = l2(|a, at, b| {
        a.pushfd()?;
        a.or(dword_ptr(esp), 0x4000)?;
        a.popfd()?;
        a.set(at)?;
        a.iretd()?;
        a.hlt()?;
        task_b(a, b)
    });
    let at = c.1;
    case(
        &mut s,
        "IRET with NT = 1",
        c,
        0xb,
        |a| {
            intercepted(a)?;
            a.mov(dword_ptr(legacy::TSS), i32::from(SEL_B))
        },
        {
            let mut v = intercepted_checks(at, 1 << 36, 0, 0xb, true);
            // The L2's TSS link was set for the IRET; nothing else moved.
            v.push(that("CR0 as VMRUN loaded it", |r| r.gprs[st::CR0] == 0x31));
            v
        },
    );

    // INT 41H through an IDT task gate: no error code; EXITINTINFO holds
    // the INTn (valid, type 4).
    let c = l2(|a, at, b| {
        a.nop()?;
        a.set(at)?;
        a.int(0x41)?;
        a.hlt()?;
        task_b(a, b)
    });
    let at = c.1;
    case(
        &mut s,
        "INT 41H through an IDT task gate",
        c,
        9,
        |a| {
            intercepted(a)?;
            put(a, legacy::IDT + 0x41 * 8, task_gate(SEL_B, 0))
        },
        intercepted_checks(at, 0, 1 << 31 | 4 << 8 | 0x41, 9, false),
    );

    // #GP(100H) (a selector past the GDT limit) through an IDT task gate:
    // the error code goes to EXITINFO2 with bit 44, bit 48 is set (a fault
    // saves RF = 1 in the outgoing TSS, SDM Vol. 3B 18.3.1.1), and
    // EXITINTINFO holds the exception with its error code.
    let c = l2(|a, at, b| {
        a.mov(eax, u32::from(BEYOND))?;
        a.set(at)?;
        a.mov(ds, ax)?;
        a.hlt()?;
        task_b(a, b)
    });
    let at = c.1;
    case(
        &mut s,
        "#GP through an IDT task gate",
        c,
        9,
        |a| {
            intercepted(a)?;
            put(a, legacy::IDT + 13 * 8, task_gate(SEL_B, 0))
        },
        intercepted_checks(
            at,
            1 << 48 | 1 << 44 | u64::from(BEYOND),
            u64::from(BEYOND) << 32 | 1 << 31 | 1 << 11 | 3 << 8 | 13,
            9,
            false,
        ),
    );

    // Without the intercept the CALL switches tasks in L2: task B runs
    // (EAX from its TSS) with NT set, its link naming the L2's TSS, TR on
    // B, CR0.TS set, and the outgoing EIP saved past the CALL.
    let c = l2(|a, at, b| {
        a.nop()?;
        a.set(at)?;
        a.call_far(SEL_B, 0)?;
        a.hlt()?;
        task_b(a, b)
    });
    let (at, entry_b) = (c.1, c.2);
    case(
        &mut s,
        "without the intercept the switch completes in L2",
        c,
        9,
        |_| Ok(()),
        vec![
            no_exception(),
            code(X::VMEXIT_VMMCALL),
            named("RIP (task B's VMMCALL)", reg::RIP, entry_b),
            named("EAX from task B's TSS", reg::GUEST_RAX, 0xb0b0),
            named("TR", st::TR, u64::from(SEL_B)),
            that("RFLAGS.NT set by the CALL", |r| {
                r.gprs[st::RFLAGS] & 0x4000 != 0
            }),
            that("CR0.TS set", |r| r.gprs[st::CR0] & 8 != 0),
            that("task B busy", |r| desc_type(r.gprs[st::B_DESC]) == 0xb),
            that("the L2's TSS still busy (CALL)", |r| {
                desc_type(r.gprs[st::A_DESC]) == 0xb
            }),
            named(
                "outgoing EIP past the 7-byte CALL, EFLAGS 2",
                st::A_EIP,
                2 << 32 | (at + 7),
            ),
            named("task B's link", st::B_LINK, u64::from(legacy::sel::TSS)),
        ],
    );

    // And a fault through a task gate: the outgoing TSS holds the faulting
    // EIP with RF = 1, task B finds the error code on its stack.
    let c = l2(|a, at, b| {
        a.mov(eax, u32::from(BEYOND))?;
        a.set(at)?;
        a.mov(ds, ax)?;
        a.hlt()?;
        a.set(b)?;
        a.pop(eax)?;
        a.vmmcall()?;
        a.hlt()
    });
    let at = c.1;
    case(
        &mut s,
        "without the intercept a fault switches through the task gate",
        c,
        9,
        |a| put(a, legacy::IDT + 13 * 8, task_gate(SEL_B, 0)),
        vec![
            no_exception(),
            code(X::VMEXIT_VMMCALL),
            named(
                "the error code on task B's stack",
                reg::GUEST_RAX,
                u64::from(BEYOND),
            ),
            named("TR", st::TR, u64::from(SEL_B)),
            that("RFLAGS.NT set (nested task)", |r| {
                r.gprs[st::RFLAGS] & 0x4000 != 0
            }),
            named(
                "outgoing EIP the fault's, EFLAGS with RF",
                st::A_EIP,
                0x1_0002 << 32 | at,
            ),
            named("task B's link", st::B_LINK, u64::from(legacy::sel::TSS)),
        ],
    );

    let o = s.run();
    let by = &o.machine.stats.vmexits.by_reason;
    assert_eq!(by.get("VMEXIT_TASK_SWITCH"), Some(&6), "{by:?}");
}
