//! The x87 guest suite: FPU programs run on the machine in real, protected
//! and long mode, checking results, status words, the environment layouts,
//! #NM (CR0.EM/TS/MP), #MF delivery with CR0.NE = 1, stack faults,
//! FXSAVE/FXRSTOR (alignment and MXCSR #GP, the REX.W form) and that a
//! faulting store leaves the FPU untouched.
//!
//! Cases run in order in one program and the FPU state carries over from
//! one case to the next; every case starts from [`fpu_on`] unless it says
//! otherwise, and a case that inspects what the previous one left says so.

use guestkit::layout::{rec, var, VARS};
use guestkit::{Asm, AsmResult, Program};
use iced_x86::code_asm::*;
use testsuites::check::{fl::*, *};
use testsuites::{config, run};

/// Scratch memory for the protected- and long-mode cases (24 MiB, in RAM,
/// identity-mapped, 16-byte aligned).
const S: u64 = 0x0180_0000;
/// Scratch memory for the real-mode cases.
const S16: u64 = 0x5000;

type Body = Box<dyn Fn(&mut Asm) -> AsmResult>;

struct Suite {
    p: Program,
    table: Vec<(String, Vec<Check>)>,
}

impl Suite {
    fn prot(
        &mut self,
        name: &str,
        body: impl Fn(&mut Asm) -> AsmResult + 'static,
        checks: Vec<Check>,
    ) {
        let b: Body = Box::new(body);
        self.p.prot_case(name, move |a| b(a));
        self.table.push((name.into(), checks));
    }
    fn real(
        &mut self,
        name: &str,
        body: impl Fn(&mut Asm) -> AsmResult + 'static,
        checks: Vec<Check>,
    ) {
        let b: Body = Box::new(body);
        self.p.real_case(name, move |a| b(a));
        self.table.push((name.into(), checks));
    }
    fn long(
        &mut self,
        name: &str,
        body: impl Fn(&mut Asm) -> AsmResult + 'static,
        checks: Vec<Check>,
    ) {
        let b: Body = Box::new(body);
        self.p.long_case(name, move |a| b(a));
        self.table.push((name.into(), checks));
    }
}

/// CR0: EM and TS clear, NE and MP set; then FNINIT (32-bit code).
fn fpu_on(a: &mut Asm) -> AsmResult {
    a.mov(eax, cr0)?;
    a.and(eax, !0xci32)?;
    a.or(eax, 0x22i32)?;
    a.mov(cr0, eax)?;
    a.fninit()?;
    a.xor(eax, eax)
}

/// The same in 64-bit code.
fn fpu_on64(a: &mut Asm) -> AsmResult {
    a.mov(rax, cr0)?;
    a.and(rax, !0xci32)?;
    a.or(rax, 0x22i32)?;
    a.mov(cr0, rax)?;
    a.fninit()?;
    a.xor(eax, eax)
}

/// Sets CR0 bits `set` (after clearing EM, TS, MP), keeping NE.
fn cr0_with(a: &mut Asm, set: i32) -> AsmResult {
    a.mov(eax, cr0)?;
    a.and(eax, !0xei32)?;
    a.or(eax, 0x20 | set)?;
    a.mov(cr0, eax)
}

/// Stores the 32-bit address `addr` in user slot `slot` of the current
/// record (protected mode; clobbers EBX).
fn save_slot32(a: &mut Asm, addr: u64, slot: u64) -> AsmResult {
    a.mov(ebx, dword_ptr(VARS + var::RECORD))?;
    a.mov(
        dword_ptr(ebx + (rec::USER + 8 * slot) as i32),
        addr as u32 as i32,
    )
}

/// Loads 32 bits at `S + off` into `r` (protected mode).
fn load(a: &mut Asm, r: AsmRegister32, off: u64) -> AsmResult {
    a.mov(r, dword_ptr(S + off))
}

/// Status word `ax` into ECX (FNSTSW AX; MOVZX ECX, AX).
fn sw_to_ecx(a: &mut Asm) -> AsmResult {
    a.fnstsw(ax)?;
    a.movzx(ecx, ax)
}

fn arithmetic_cases(s: &mut Suite) {
    s.prot(
        "sqrt 2 rounded to double",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fld1()?;
            a.faddp(st1, st0)?;
            a.fsqrt()?;
            a.fstp(qword_ptr(S))?;
            sw_to_ecx(a)?;
            load(a, eax, 0)?;
            load(a, edx, 4)
        },
        // FSQRT rounds down (C1 = 0); FSTP m64 rounds up: C1 = 1, PE.
        vec![
            gpr(0, 0x667f_3bcd),
            gpr(2, 0x3ff6_a09e),
            gpr(1, 0x0220),
            no_exception(),
        ],
    );
    s.prot(
        "fild fdiv fist by RC",
        |a| {
            fpu_on(a)?;
            a.mov(dword_ptr(S), 7i32)?;
            a.mov(dword_ptr(S + 4), 2i32)?;
            a.fild(dword_ptr(S))?;
            a.fild(dword_ptr(S + 4))?;
            a.fdivp(st1, st0)?;
            a.fist(dword_ptr(S + 8))?;
            a.mov(word_ptr(S + 16), 0x077fi32)?;
            a.fldcw(word_ptr(S + 16))?;
            a.fistp(dword_ptr(S + 12))?;
            sw_to_ecx(a)?;
            load(a, eax, 8)?;
            load(a, edx, 12)
        },
        // 3.5 to nearest even is 4; rounded down 3; both inexact.
        vec![gpr(0, 4), gpr(2, 3), gpr(1, 0x0020), no_exception()],
    );
    s.prot(
        "fldpi rounds per RC",
        |a| {
            fpu_on(a)?;
            a.fldpi()?;
            a.fstp(tword_ptr(S))?;
            a.mov(word_ptr(S + 16), 0x077fi32)?;
            a.fldcw(word_ptr(S + 16))?;
            a.fldpi()?;
            a.fstp(tword_ptr(S + 32))?;
            load(a, eax, 0)?;
            load(a, edx, 4)?;
            a.movzx(ecx, word_ptr(S + 8))?;
            load(a, esi, 32)
        },
        vec![
            gpr(0, 0x2168_c235),
            gpr(2, 0xc90f_daa2),
            gpr(1, 0x4000),
            gpr(6, 0x2168_c234),
        ],
    );
    s.prot(
        "fbstp packs BCD",
        |a| {
            fpu_on(a)?;
            a.mov(dword_ptr(S), -1_234_567i32)?;
            a.fild(dword_ptr(S))?;
            a.fbstp(tword_ptr(S + 16))?;
            load(a, eax, 16)?;
            load(a, edx, 20)?;
            a.movzx(ecx, word_ptr(S + 24))?;
            a.fbld(tword_ptr(S + 16))?;
            a.fistp(dword_ptr(S + 32))?;
            load(a, esi, 32)
        },
        vec![
            gpr(0, 0x0123_4567),
            gpr(2, 0),
            gpr(1, 0x8000),
            gpr(6, (-1_234_567i32) as u32 as u64),
        ],
    );
    s.prot(
        "fcomi sets CF, fucomip NaN unordered",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fldz()?;
            a.fcomi(st0, st1)?;
            a.pushfd()?;
            a.pop(esi)?;
            a.fldz()?;
            a.fdiv_2(st0, st0)?; // 0/0: the real indefinite (masked #IA)
            a.fucomip(st0, st1)?;
            sw_to_ecx(a)
        },
        vec![
            that("FCOMI: CF only", |r| r.gprs[6] & ALL == CF),
            flags(ALL, ZF | PF | CF),
            gpr(1, 0x3001),
        ],
    );
    s.prot(
        "fxam of negative infinity",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fchs()?;
            a.fldz()?;
            a.fdivp(st1, st0)?;
            a.fxam()?;
            sw_to_ecx(a)
        },
        vec![gpr(1, 0x3f04)],
    );
    s.prot(
        "fprem quotient bits",
        |a| {
            fpu_on(a)?;
            a.mov(dword_ptr(S), 5i32)?;
            a.mov(dword_ptr(S + 4), 17i32)?;
            a.fild(dword_ptr(S))?;
            a.fild(dword_ptr(S + 4))?;
            a.fprem()?;
            sw_to_ecx(a)?;
            a.fistp(dword_ptr(S + 8))?;
            load(a, eax, 8)
        },
        // 17 = 3 * 5 + 2: Q1 -> C3, Q0 -> C1.
        vec![gpr(0, 2), gpr(1, 0x7200)],
    );
    s.prot(
        "fsin out of range sets C2",
        |a| {
            fpu_on(a)?;
            a.mov(dword_ptr(S), 0i32)?;
            a.mov(dword_ptr(S + 4), 0x8000_0000u32 as i32)?;
            a.mov(word_ptr(S + 8), 0x403ei32)?; // 2^63
            a.fld(tword_ptr(S))?;
            a.fsin()?;
            sw_to_ecx(a)?;
            a.fstp(tword_ptr(S + 16))?;
            load(a, edx, 20)
        },
        vec![gpr(1, 0x3c00), gpr(2, 0x8000_0000)],
    );
    s.prot(
        "fsincos and fptan",
        |a| {
            fpu_on(a)?;
            a.fldz()?;
            a.fsincos()?;
            a.fistp(dword_ptr(S))?; // cos 0 = 1
            a.fistp(dword_ptr(S + 4))?; // sin 0 = 0
            a.fldz()?;
            a.fptan()?;
            a.fistp(dword_ptr(S + 8))?; // the pushed 1.0
            a.fistp(dword_ptr(S + 12))?; // tan 0 = 0
            load(a, eax, 0)?;
            load(a, edx, 4)?;
            load(a, esi, 8)?;
            load(a, edi, 12)
        },
        vec![gpr(0, 1), gpr(2, 0), gpr(6, 1), gpr(7, 0)],
    );
}

fn stack_cases(s: &mut Suite) {
    s.prot(
        "stack overflow, masked",
        |a| {
            fpu_on(a)?;
            for _ in 0..9 {
                a.fld1()?;
            }
            sw_to_ecx(a)?;
            a.fstp(qword_ptr(S))?;
            load(a, eax, 0)?;
            load(a, edx, 4)
        },
        // IE | SF, C1 = 1 (overflow), TOP = 7; ST(0) the real indefinite.
        vec![gpr(1, 0x3a41), gpr(0, 0), gpr(2, 0xfff8_0000)],
    );
    s.prot(
        "stack underflow, masked",
        |a| {
            fpu_on(a)?;
            a.fadd_2(st0, st1)?;
            sw_to_ecx(a)
        },
        vec![gpr(1, 0x0041)],
    );
    s.prot(
        "stack underflow, unmasked, then #MF",
        |a| {
            fpu_on(a)?;
            a.mov(word_ptr(S), 0x037ei32)?;
            a.fldcw(word_ptr(S))?;
            a.fadd_2(st0, st1)?;
            sw_to_ecx(a)?;
            let mut at = a.label();
            let addr = a.addr(&at);
            save_slot32(a, addr, 0)?;
            a.set(&mut at)?;
            a.wait()
        },
        vec![gpr(1, 0x80c1), exception(16, None), exc_rip_is_slot(0)],
    );
}

fn exception_cases(s: &mut Suite) {
    s.prot(
        "#NM: CR0.TS",
        |a| {
            fpu_on(a)?;
            cr0_with(a, 0x8 | 0x2)?;
            let mut at = a.label();
            let addr = a.addr(&at);
            save_slot32(a, addr, 0)?;
            a.set(&mut at)?;
            a.fld1()
        },
        vec![exception(7, None), exc_rip_is_slot(0)],
    );
    s.prot(
        "#NM: CR0.EM, even for FNINIT",
        |a| {
            cr0_with(a, 0x4)?;
            a.fninit()
        },
        vec![exception(7, None)],
    );
    s.prot(
        "#NM: FWAIT with TS and MP",
        |a| {
            cr0_with(a, 0x8 | 0x2)?;
            a.wait()
        },
        vec![exception(7, None)],
    );
    s.prot(
        "FWAIT with TS, MP clear: no #NM",
        |a| {
            cr0_with(a, 0x8)?;
            a.wait()?;
            a.clts()
        },
        vec![no_exception()],
    );
    s.prot(
        "#NM: FXSAVE with TS",
        |a| {
            cr0_with(a, 0x8 | 0x2)?;
            a.fxsave(ptr(S))
        },
        vec![exception(7, None)],
    );
    s.prot(
        "#MF at the next waiting instruction",
        |a| {
            fpu_on(a)?;
            a.mov(word_ptr(S), 0x037bi32)?; // #Z unmasked
            a.fldcw(word_ptr(S))?;
            a.fld1()?;
            a.fldz()?;
            a.fdivp(st1, st0)?; // 1/0: pending, no result, no pop
            sw_to_ecx(a)?; // FNSTSW does not wait
            let mut at = a.label();
            let addr = a.addr(&at);
            save_slot32(a, addr, 0)?;
            a.set(&mut at)?;
            a.wait()
        },
        vec![gpr(1, 0xb084), exception(16, None), exc_rip_is_slot(0)],
    );
    s.prot(
        "the pending exception stays until FNCLEX (uses the previous case)",
        |a| {
            sw_to_ecx(a)?;
            a.fnclex()?;
            a.wait()?;
            a.fnstsw(ax)?;
            a.movzx(edx, ax)
        },
        vec![gpr(1, 0xb084), gpr(2, 0x3000), no_exception()],
    );
    s.prot(
        "#MF at an arithmetic instruction",
        |a| {
            fpu_on(a)?;
            a.mov(word_ptr(S), 0x037bi32)?;
            a.fldcw(word_ptr(S))?;
            a.fld1()?;
            a.fldz()?;
            a.fdivp(st1, st0)?;
            let mut at = a.label();
            let addr = a.addr(&at);
            save_slot32(a, addr, 0)?;
            a.set(&mut at)?;
            a.fadd_2(st0, st0)
        },
        vec![exception(16, None), exc_rip_is_slot(0)],
    );
    s.prot(
        "FLDCW unmasking a raised flag makes it pending",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fldz()?;
            a.fdivp(st1, st0)?; // masked: +inf, ZE set
            a.mov(word_ptr(S), 0x037bi32)?;
            a.fldcw(word_ptr(S))?;
            sw_to_ecx(a)?;
            a.wait()
        },
        vec![gpr(1, 0xb884), exception(16, None)],
    );
    s.prot(
        "FXSAVE misaligned: #GP(0)",
        |a| {
            fpu_on(a)?;
            a.fxsave(ptr(S + 8))
        },
        vec![exception(13, Some(0))],
    );
    s.prot(
        "FXRSTOR with a reserved MXCSR bit: #GP(0)",
        |a| {
            fpu_on(a)?;
            a.fxsave(ptr(S))?;
            a.mov(dword_ptr(S + 24), 0x1_1f80i32)?;
            a.fxrstor(ptr(S))
        },
        vec![exception(13, Some(0))],
    );
}

fn state_cases(s: &mut Suite) {
    s.prot(
        "FXSAVE image",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fldpi()?;
            a.fxsave(ptr(S))?;
            load(a, eax, 0)?; // FCW, FSW
            a.movzx(ecx, byte_ptr(S + 4))?; // abridged tag
            load(a, edx, 24)?; // MXCSR
            load(a, esi, 32 + 4)?; // ST(0) significand high
            a.movzx(edi, word_ptr(S + 48 + 8))?; // ST(1) sign/exponent
            Ok(())
        },
        vec![
            gpr(0, 0x3000_037f),
            gpr(1, 0xc0),
            gpr(2, 0x1f80),
            gpr(6, 0xc90f_daa2),
            gpr(7, 0x3fff),
        ],
    );
    s.prot(
        "FXRSTOR brings back stack and tags",
        |a| {
            fpu_on(a)?;
            a.fld1()?;
            a.fldpi()?;
            a.fxsave(ptr(S))?;
            a.fninit()?;
            a.fxrstor(ptr(S))?;
            a.faddp(st1, st0)?;
            a.fstp(qword_ptr(S + 512))?;
            sw_to_ecx(a)?;
            load(a, edx, 512 + 4)
        },
        // 1 + pi = 4.14159..., as a double 0x4010_90fd_aa22_168c.
        vec![
            gpr(2, 0x4010_90fd),
            that("TOP back to 0", |r| r.gprs[1] & 0x3800 == 0),
        ],
    );
    s.prot(
        "FNSTENV 32-bit protected layout",
        |a| {
            fpu_on(a)?;
            let mut at = a.label();
            let addr = a.addr(&at);
            save_slot32(a, addr, 0)?;
            a.set(&mut at)?;
            a.fld1()?;
            a.fnstenv(ptr(S))?;
            load(a, eax, 0)?; // FCW | FFFF0000
            load(a, ecx, 8)?; // tags
            load(a, edx, 12)?; // FIP
            load(a, esi, 16)?; // FCS | FOP << 16
            a.fnstcw(word_ptr(S + 64))?;
            a.movzx(edi, word_ptr(S + 64))
        },
        vec![
            gpr(0, 0xffff_037f),
            gpr(1, 0xffff_3fff),
            that("FIP is the FLD1", |r| r.gprs[2] == r.user[0]),
            gpr(6, 0x18),
            gpr(7, 0x037f),
        ],
    );
    s.prot(
        "FNSAVE then FRSTOR",
        |a| {
            fpu_on(a)?;
            a.fldpi()?;
            a.fld1()?;
            a.fnsave(ptr(S))?;
            sw_to_ecx(a)?; // FNSAVE reinitialized
            a.frstor(ptr(S))?;
            a.fsubp(st1, st0)?; // pi - 1
            a.fstp(qword_ptr(S + 128))?;
            load(a, edx, 128 + 4)
        },
        vec![gpr(1, 0), gpr(2, 0x4001_21fb)],
    );
}

fn real_cases(s: &mut Suite) {
    s.real(
        "real-mode FNSTENV: 20-bit linear FIP",
        |a| {
            a.fninit()?;
            let mut at = a.label();
            let addr = a.addr(&at);
            a.mov(ecx, addr as u32 as i32)?;
            a.set(&mut at)?;
            a.fld1()?;
            a.fnstenv(ptr(S16))?;
            a.mov(ax, word_ptr(S16 + 6))?; // FIP 15:0
            a.mov(dx, word_ptr(S16 + 8))?; // FIP 19:16 << 12 | FOP
            a.mov(bx, word_ptr(S16 + 4))?; // tags
            a.fninit()
        },
        vec![
            that("FIP 15:0", |r| r.gprs[0] & 0xffff == r.gprs[1] & 0xffff),
            that("FIP 19:16", |r| {
                (r.gprs[2] >> 12) & 0xf == (r.gprs[1] >> 16) & 0xf
            }),
            gpr(3, 0x3fff),
        ],
    );
    s.real(
        "real-mode FNSAVE/FRSTOR, 32-bit operand size",
        |a| {
            a.fninit()?;
            a.fldpi()?;
            a.db(&[0x66])?;
            a.fnsave(ptr(S16))?;
            a.db(&[0x66])?;
            a.frstor(ptr(S16))?;
            a.fistp(word_ptr(S16 + 0x100))?;
            a.mov(ax, word_ptr(S16 + 0x100))?;
            a.fninit()
        },
        vec![gpr(0, 3)],
    );
}

fn long_cases(s: &mut Suite) {
    s.long(
        "FXSAVE64: 64-bit FIP",
        |a| {
            fpu_on64(a)?;
            let mut at = a.label();
            a.lea(r9, ptr(at.l))?;
            a.set(&mut at)?;
            a.fld1()?;
            a.mov(rax, S)?;
            a.fxsave64(ptr(rax))?;
            a.mov(r8, qword_ptr(rax + 8))?;
            a.fxsave(ptr(rax + 512))?;
            a.mov(r10d, dword_ptr(rax + 512 + 8))?;
            a.movzx(r11d, word_ptr(rax + 512 + 12))
        },
        vec![
            that("FXSAVE64 FIP", |r| r.gprs[8] == r.gprs[9]),
            that("FXSAVE FIP low half", |r| {
                r.gprs[10] == r.gprs[9] & 0xffff_ffff
            }),
            gpr(11, 0x08),
        ],
    );
    s.long(
        "FSTP to a non-canonical address: #GP, nothing popped",
        |a| {
            fpu_on64(a)?;
            a.fld1()?;
            a.mov(rax, 0x8000_0000_0000_0000u64)?;
            a.fstp(qword_ptr(rax))
        },
        vec![exception(13, Some(0))],
    );
    s.long(
        "... and the FPU is as before the FSTP (uses the previous case)",
        |a| {
            a.fnstsw(ax)?;
            a.movzx(ecx, ax)
        },
        vec![gpr(1, 0x3800)],
    );
    s.long(
        "long-mode arithmetic: 10 / 4 with FIDIV",
        |a| {
            fpu_on64(a)?;
            a.mov(rax, S)?;
            a.mov(dword_ptr(rax), 4i32)?;
            a.mov(dword_ptr(rax + 4), 10i32)?;
            a.fild(dword_ptr(rax + 4))?;
            a.fidiv(dword_ptr(rax))?;
            a.fstp(qword_ptr(rax + 8))?;
            a.mov(rdx, qword_ptr(rax + 8))
        },
        vec![gpr(2, 0x4004_0000_0000_0000)],
    );
}

#[test]
fn x87_suite_real_protected_long() {
    let mut s = Suite {
        p: Program::new(),
        table: Vec::new(),
    };
    real_cases(&mut s);
    arithmetic_cases(&mut s);
    stack_cases(&mut s);
    exception_cases(&mut s);
    state_cases(&mut s);
    long_cases(&mut s);
    let o = run(&s.p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(&o, &s.table);
    eprintln!("x87 suite: {} cases passed", s.table.len());
}
