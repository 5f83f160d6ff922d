//! Debug features end to end (SDM Vol. 3B 18.2-18.3): instruction, data and
//! I/O breakpoints through DR0-DR7, general detect, the RF flag's pushed value
//! for faults, traps and interrupted REP iterations, and single-step.

use guestkit::layout::{rec, var, VARS};
use guestkit::{Asm, AsmResult, Label, Program};
use iced_x86::code_asm::*;
use testsuites::check::*;
use testsuites::{config, run};

const X: u64 = VARS + var::TEST_DATA;
const RF: u64 = 1 << 16;

fn save_addr(a: &mut Asm, l: &Label, slot: u64) -> AsmResult {
    a.mov(rbx, qword_ptr(VARS + var::RECORD))?;
    a.lea(rax, ptr(l.l))?;
    a.mov(qword_ptr(rbx + (rec::USER + 8 * slot) as i32), rax)
}

/// DR7 value enabling breakpoint `n` locally with condition `rw` and `len`
/// field `len`.
fn dr7_value(n: u32, rw: u64, len: u64) -> u64 {
    (1 << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n))
}

#[test]
fn debug_registers_and_rf() {
    let mut p = Program::new();
    let mut t: Vec<(String, Vec<Check>)> = Vec::new();
    let mut case = |name: &str, f: fn(&mut Asm) -> AsmResult, c: Vec<Check>| {
        p.long_case(name, f);
        t.push((name.into(), c));
    };
    // (The closure borrows `p` and `t` until its last use below.)
    case(
        "instruction breakpoint is a fault with RF = 0",
        |a| {
            let mut at = a.label();
            save_addr(a, &at, 0)?;
            a.lea(rax, ptr(at.l))?;
            a.mov(dr0, rax)?;
            a.mov(rax, dr7_value(0, 0, 0))?;
            a.mov(dr7, rax)?;
            a.nop()?;
            a.set(&mut at)?;
            a.mov(ecx, 1i32)
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            gpr(1, 0),
            that("DR6.B0", |r| r.dr6 & 0xf == 1),
            that("RF not pushed", |r| r.frame[1] & RF == 0),
        ],
    );
    case(
        "data write breakpoint traps after the write",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.mov(rax, X)?;
            a.mov(dr1, rax)?;
            a.mov(rax, dr7_value(1, 1, 3))?;
            a.mov(dr7, rax)?;
            a.mov(dword_ptr(X), 0x55i32)?;
            a.set(&mut after)?;
            a.mov(ecx, dword_ptr(X))
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            that("DR6.B1", |r| r.dr6 & 0xf == 2),
        ],
    );
    case(
        "write breakpoint ignores reads",
        |a| {
            a.mov(rax, X)?;
            a.mov(dr1, rax)?;
            a.mov(rax, dr7_value(1, 1, 3))?;
            a.mov(dr7, rax)?;
            a.mov(ecx, dword_ptr(X))
        },
        vec![no_exception()],
    );
    case(
        "read/write breakpoint catches an overlapping read",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.mov(rax, X + 4)?;
            a.mov(dr2, rax)?;
            a.mov(rax, dr7_value(2, 3, 0))?; // 1 byte at X+4
            a.mov(dr7, rax)?;
            a.mov(rcx, qword_ptr(X))?; // bytes X..X+8 include X+4
            a.set(&mut after)?;
            a.nop()
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            that("DR6.B2", |r| r.dr6 & 0xf == 4),
        ],
    );
    case(
        "breakpoint inside REP STOSB",
        |a| {
            let mut at = a.label();
            save_addr(a, &at, 0)?;
            a.mov(rax, X + 2)?;
            a.mov(dr3, rax)?;
            a.mov(rax, dr7_value(3, 1, 0))?;
            a.mov(dr7, rax)?;
            a.mov(rdi, X)?;
            a.mov(ecx, 8i32)?;
            a.xor(eax, eax)?;
            a.set(&mut at)?;
            a.rep().stosb()
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            gpr(1, 5), // three bytes stored, five to go
            that("RF pushed for a non-final iteration", |r| {
                r.frame[1] & RF != 0
            }),
        ],
    );
    case(
        "I/O breakpoint with CR4.DE",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.mov(rax, cr4)?;
            a.or(rax, 8i32)?;
            a.mov(cr4, rax)?;
            a.mov(rax, 0x80u64)?;
            a.mov(dr0, rax)?;
            a.mov(rax, dr7_value(0, 2, 0))?;
            a.mov(dr7, rax)?;
            a.out(0x80i32, al)?;
            a.set(&mut after)?;
            a.mov(rax, cr4)?;
            a.and(rax, !8i32)?;
            a.mov(cr4, rax)
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            that("DR6.B0", |r| r.dr6 & 0xf == 1),
        ],
    );
    case(
        "general detect",
        |a| {
            a.mov(rax, 1u64 << 13)?;
            a.mov(dr7, rax)?;
            a.mov(rax, dr0)
        },
        vec![
            exception(1, None),
            that("DR6.BD", |r| r.dr6 & (1 << 13) != 0),
        ],
    );
    case(
        "fault pushes RF = 1",
        |a| a.ud2(),
        vec![
            exception(6, None),
            that("RF pushed", |r| r.frame[1] & RF != 0),
        ],
    );
    case(
        "trap pushes RF = 0",
        |a| a.int3(),
        vec![
            exception(3, None),
            that("RF not pushed", |r| r.frame[1] & RF == 0),
        ],
    );
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(&o, &t);
}
