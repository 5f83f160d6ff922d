//! Guest-side checks for 64-bit kit code: each prints one line on COM1,
//! `ok NAME` or `FAIL NAME: got X want Y`, and a failure counts in
//! [`var::FAILS`] (so the program exits with 1). Suites written this way run
//! unchanged under QEMU, where only the serial output and exit status are
//! visible. `info NAME = X` lines report values that are deterministic on
//! nestemu but not comparable across emulators (timer counts, dates).
//!
//! Every check takes its value in RAX and preserves RAX; it clobbers RCX and
//! RSI.

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{var, VARS};
use crate::rt64::{abs, Rt64};
use iced_x86::code_asm::*;

/// Places a NUL-terminated string inline (jumping over it) and returns its
/// label.
pub fn string(a: &mut Asm, s: &str) -> AsmResult<Label> {
    let mut over = a.label();
    let mut l = a.label();
    a.jmp(over.l)?;
    a.set(&mut l)?;
    a.db(s.as_bytes())?;
    a.db(&[0])?;
    a.set(&mut over)?;
    Ok(l)
}

/// Emits: print the string.
pub fn print(a: &mut Asm, rt: &Rt64, s: &str) -> AsmResult {
    let l = string(a, s)?;
    a.push(rsi)?;
    a.lea(rsi, ptr(l.l))?;
    a.call(rt.puts.l)?;
    a.pop(rsi)
}

/// The common tail: on equal flags (ZF) "ok", else "FAIL" with RAX and RCX.
fn report(a: &mut Asm, rt: &Rt64, name: &str, pass: &mut Label, want: &str) -> AsmResult {
    let ok = string(a, &format!("ok {name}\n"))?;
    let fail = string(a, &format!("FAIL {name}: got "))?;
    let want_s = string(a, want)?;
    let mut done = a.label();
    a.lea(rsi, ptr(fail.l))?;
    a.call(rt.puts.l)?;
    a.call(rt.put_hex.l)?;
    a.lea(rsi, ptr(want_s.l))?;
    a.call(rt.puts.l)?;
    a.push(rax)?;
    a.mov(rax, rcx)?;
    a.call(rt.put_hex.l)?;
    a.mov(al, b'\n' as u32)?;
    a.call(rt.putc.l)?;
    a.pop(rax)?;
    a.inc(abs(VARS + var::FAILS))?;
    a.jmp(done.l)?;
    a.set(pass)?;
    a.lea(rsi, ptr(ok.l))?;
    a.call(rt.puts.l)?;
    a.set(&mut done)?;
    // One label per instruction: callers may place their own next.
    a.nop()
}

/// Emits: check RAX == `expected`.
pub fn eq(a: &mut Asm, rt: &Rt64, name: &str, expected: u64) -> AsmResult {
    let mut pass = a.label();
    a.mov(rcx, expected)?;
    a.cmp(rax, rcx)?;
    a.je(pass.l)?;
    report(a, rt, name, &mut pass, " want ")
}

/// Emits: check RAX & `mask` == `expected`.
pub fn masked(a: &mut Asm, rt: &Rt64, name: &str, mask: u64, expected: u64) -> AsmResult {
    let mut pass = a.label();
    a.push(rax)?;
    a.mov(rcx, mask)?;
    a.and(rax, rcx)?;
    a.mov(rcx, expected)?;
    a.cmp(rax, rcx)?;
    a.pop(rax)?;
    a.je(pass.l)?;
    a.mov(rcx, expected)?;
    report(a, rt, name, &mut pass, " (masked) want ")
}

/// Emits: check `lo` <= RAX <= `hi` (unsigned).
pub fn range(a: &mut Asm, rt: &Rt64, name: &str, lo: u64, hi: u64) -> AsmResult {
    let mut pass = a.label();
    let mut fail = a.label();
    a.mov(rcx, lo)?;
    a.cmp(rax, rcx)?;
    a.jb(fail.l)?;
    a.mov(rcx, hi)?;
    a.cmp(rax, rcx)?;
    a.jbe(pass.l)?;
    a.set(&mut fail)?;
    a.mov(rcx, hi)?;
    report(a, rt, name, &mut pass, &format!(" want {lo:#x}..="))
}

/// Emits: check RAX != 0.
pub fn nonzero(a: &mut Asm, rt: &Rt64, name: &str) -> AsmResult {
    let mut pass = a.label();
    a.xor(ecx, ecx)?;
    a.test(rax, rax)?;
    a.jnz(pass.l)?;
    report(a, rt, name, &mut pass, " want not ")
}

/// Emits: print `info NAME = RAX`.
pub fn info(a: &mut Asm, rt: &Rt64, name: &str) -> AsmResult {
    let l = string(a, &format!("info {name} = "))?;
    a.lea(rsi, ptr(l.l))?;
    a.call(rt.puts.l)?;
    a.call(rt.put_hex.l)?;
    a.push(rax)?;
    a.mov(al, b'\n' as u32)?;
    a.call(rt.putc.l)?;
    a.pop(rax)
}

/// Emits: run `body` expecting exception `vector`; check that it was raised
/// (execution resumes after `body` either way). Uses the test-data area as
/// the exception record.
pub fn faults(
    a: &mut Asm,
    rt: &Rt64,
    name: &str,
    vector: u8,
    body: impl Fn(&mut Asm) -> AsmResult,
) -> AsmResult {
    use crate::layout::rec;
    let record = VARS + var::TEST_DATA;
    let mut resume = a.label();
    a.mov(abs(VARS + var::RECORD), record as i32)?;
    a.mov(abs(record + rec::EXC_VECTOR), 0)?;
    a.lea(rax, ptr(resume.l))?;
    a.mov(abs(VARS + var::RESUME), rax)?;
    body(a)?;
    a.set(&mut resume)?;
    a.mov(abs(VARS + var::RESUME), 0)?;
    a.mov(abs(VARS + var::RECORD), 0)?;
    a.mov(rax, abs(record + rec::EXC_VECTOR))?;
    eq(a, rt, name, vector as u64 + 1)
}
