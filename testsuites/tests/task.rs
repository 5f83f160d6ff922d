//! Hardware task switching in protected mode (SDM Vol. 3A 7.3): CALL and IRET
//! through the previous-task link, JMP, and an interrupt through a task gate,
//! with the busy bits, NT and the link the SDM's table 7-2 prescribes.

use guestkit::layout::{sel, var, GDT, IDT32, VARS};
use guestkit::rt32::store_user32;
use guestkit::{Asm, AsmResult, Program};
use iced_x86::code_asm::*;
use testsuites::check::*;
use testsuites::{config, run};

/// The second task's TSS and stack.
const TSS_B: u64 = VARS + 0x400;
const STACK_B: u64 = VARS + 0xc00;
const MARK: u64 = VARS + var::TEST_DATA;
/// A free GDT slot for task B's TSS descriptor.
const SEL_B: u16 = 0x60;

/// Writes task B's TSS (EIP = `entry`) and its available-TSS descriptor, and
/// loads TR with the kit's 32-bit TSS (task A).
fn setup(a: &mut Asm, entry: u64) -> AsmResult {
    let d = (0x67u64) | (TSS_B & 0xff_ffff) << 16 | 0x89u64 << 40 | ((TSS_B >> 24) & 0xff) << 56;
    a.mov(dword_ptr(GDT + SEL_B as u64), d as u32 as i32)?;
    a.mov(dword_ptr(GDT + SEL_B as u64 + 4), (d >> 32) as u32 as i32)?;
    // Make sure task A's descriptor is available before LTR (cases may run
    // after another task test).
    a.and(dword_ptr(GDT + sel::TSS32 as u64 + 4), !0x200i32)?;
    a.mov(ax, sel::TSS32 as i32)?;
    a.ltr(ax)?;
    let fields: [(u64, u32); 12] = [
        (0x20, entry as u32),
        (0x24, 2),
        (0x38, STACK_B as u32),
        (0x48, sel::DATA as u32),
        (0x4c, sel::CODE32 as u32),
        (0x50, sel::DATA as u32),
        (0x54, sel::DATA as u32),
        (0x58, sel::DATA as u32),
        (0x5c, sel::DATA as u32),
        (0x60, 0),
        (0x64, 0),
        (0x00, 0),
    ];
    for (off, v) in fields {
        a.mov(dword_ptr(TSS_B + off), v as i32)?;
    }
    a.mov(dword_ptr(MARK), 0i32)
}

#[test]
fn task_switches() {
    let mut p = Program::new();
    p.no_long_mode = true;
    p.prot_case("call and iret", |a| {
        let mut task_b = a.label();
        let mut back = a.label();
        let entry = a.addr(&task_b);
        setup(a, entry)?;
        a.call_far(SEL_B, 0)?;
        a.jmp(back.l)?;
        a.set(&mut task_b)?;
        a.mov(dword_ptr(MARK), 0xabcdi32)?;
        a.pushfd()?;
        a.pop(dword_ptr(MARK + 4))?; // task B's EFLAGS: NT set
        a.iretd()?;
        a.set(&mut back)?;
        a.mov(eax, dword_ptr(MARK))?;
        a.mov(edx, dword_ptr(MARK + 4))?;
        store_user32(a, 0, dword_ptr(TSS_B))?; // the back link
        store_user32(a, 1, dword_ptr(GDT + SEL_B as u64 + 4))?; // B's type after IRET
        store_user32(a, 2, dword_ptr(GDT + sel::TSS32 as u64 + 4))?; // A's type
        a.str(si)
    });
    p.prot_case("jmp there and back", |a| {
        let mut task_b = a.label();
        let mut back = a.label();
        let entry = a.addr(&task_b);
        setup(a, entry)?;
        a.jmp_far(SEL_B, 0)?;
        // Task A resumes here when B jumps back.
        a.jmp(back.l)?;
        a.set(&mut task_b)?;
        a.mov(dword_ptr(MARK), 0x1234i32)?;
        a.pushfd()?;
        a.pop(dword_ptr(MARK + 4))?; // NT clear after JMP
        a.jmp_far(sel::TSS32, 0)?; // back to A, resuming after its JMP
        a.set(&mut back)?;
        a.mov(eax, dword_ptr(MARK))?;
        a.mov(edx, dword_ptr(MARK + 4))?;
        store_user32(a, 1, dword_ptr(GDT + SEL_B as u64 + 4))?;
        store_user32(a, 2, dword_ptr(GDT + sel::TSS32 as u64 + 4))?;
        a.mov(ecx, cr0)
    });
    p.prot_case("int through a task gate", |a| {
        let mut task_b = a.label();
        let entry = a.addr(&task_b);
        let mut after = a.label();
        setup(a, entry)?;
        // IDT vector 0x41: a task gate for task B, DPL 0.
        a.mov(dword_ptr(IDT32 + 0x41 * 8), ((SEL_B as u32) << 16) as i32)?;
        a.mov(dword_ptr(IDT32 + 0x41 * 8 + 4), 0x8500i32)?;
        a.int(0x41)?;
        a.jmp(after.l)?;
        a.set(&mut task_b)?;
        a.mov(dword_ptr(MARK), 0x4141i32)?;
        a.iretd()?;
        a.set(&mut after)?;
        a.mov(eax, dword_ptr(MARK))
    });
    p.prot_case("jmp to a busy TSS is #GP", |a| {
        setup(a, 0)?;
        // Task A is busy after LTR: jumping to it is #GP(selector).
        a.jmp_far(sel::TSS32, 0)
    });
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    let table: Vec<(String, Vec<Check>)> = vec![
        (
            "call and iret".into(),
            vec![
                no_exception(),
                gpr(0, 0xabcd),
                that("task B ran with NT set", |r| r.gprs[2] & 0x4000 != 0),
                that("B's link is A", |r| r.user[0] & 0xffff == sel::TSS32 as u64),
                that("B is available after IRET", |r| (r.user[1] >> 8) & 0xf == 9),
                that("A is busy", |r| (r.user[2] >> 8) & 0xf == 0xb),
                that("TR is A again", |r| r.gprs[6] & 0xffff == sel::TSS32 as u64),
            ],
        ),
        (
            "jmp there and back".into(),
            vec![
                no_exception(),
                gpr(0, 0x1234),
                that("JMP leaves NT clear", |r| r.gprs[2] & 0x4000 == 0),
                that("B available again", |r| (r.user[1] >> 8) & 0xf == 9),
                that("A busy again", |r| (r.user[2] >> 8) & 0xf == 0xb),
                that("CR0.TS set by the switch", |r| r.gprs[1] & 8 != 0),
            ],
        ),
        (
            "int through a task gate".into(),
            vec![no_exception(), gpr(0, 0x4141)],
        ),
        (
            "jmp to a busy TSS is #GP".into(),
            vec![exception(13, Some(sel::TSS32 as u64))],
        ),
    ];
    verify(&o, &table);
}
