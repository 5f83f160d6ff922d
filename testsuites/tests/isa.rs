//! The ISA guest suite: a program that boots through Multiboot, drops to real
//! mode, returns to protected mode and enters long mode, checking a broad
//! sample of the integer ISA in each (flags, shifts and rotates at count 0, 1
//! and past the width, MUL/DIV and #DE, string operations in both directions)
//! and the exceptions #DE, #UD, #GP, #PF (CR2 and error code), #BP, #DB, #SS,
//! #NP, #OF and #BR with the state they push. SSE and x87 have their own suites.

use guestkit::layout::{rec, var, GDT, VARS};
use guestkit::{Asm, AsmResult, Label, Program};
use iced_x86::code_asm::*;
use testsuites::check::{fl::*, *};
use testsuites::{config, run};

struct Suite {
    p: Program,
    table: Vec<(String, Vec<Check>)>,
}

type Body = fn(&mut Asm) -> AsmResult;

impl Suite {
    fn long(&mut self, name: &str, body: Body, checks: Vec<Check>) {
        self.p.long_case(name, body);
        self.table.push((name.into(), checks));
    }
    fn prot(&mut self, name: &str, body: Body, checks: Vec<Check>) {
        self.p.prot_case(name, body);
        self.table.push((name.into(), checks));
    }
    fn real(&mut self, name: &str, body: Body, checks: Vec<Check>) {
        self.p.real_case(name, body);
        self.table.push((name.into(), checks));
    }
}

/// Stores the address of `l` in user slot `slot` of the current record
/// (64-bit; clobbers RAX and RBX).
fn save_addr(a: &mut Asm, l: &Label, slot: u64) -> AsmResult {
    a.mov(rbx, qword_ptr(VARS + var::RECORD))?;
    a.lea(rax, ptr(l.l))?;
    a.mov(qword_ptr(rbx + (rec::USER + 8 * slot) as i32), rax)?;
    Ok(())
}

/// The scratch area for string tests.
const SCRATCH: u64 = VARS + var::TEST_DATA;

fn integer_cases(s: &mut Suite) {
    s.long(
        "add overflow",
        |a| {
            a.mov(rax, 0x7fff_ffff_ffff_ffffu64)?;
            a.add(rax, 1i32)
        },
        vec![
            gpr(0, 0x8000_0000_0000_0000),
            flags(ALL, OF | SF | AF | PF),
            no_exception(),
        ],
    );
    s.long(
        "adc carry in",
        |a| {
            a.stc()?;
            a.mov(al, 0xffu32 as i32)?;
            a.adc(al, 0i32)
        },
        vec![gpr(0, 0), flags(ALL, CF | ZF | AF | PF)],
    );
    s.long(
        "sub borrow zero-extends",
        |a| {
            a.mov(rax, -1i64)?;
            a.mov(eax, 0i32)?;
            a.sub(eax, 1i32)
        },
        vec![gpr(0, 0xffff_ffff), flags(ALL, CF | SF | AF | PF)],
    );
    s.long(
        "sbb with borrow",
        |a| {
            a.stc()?;
            a.mov(ax, 5i32)?;
            a.sbb(ax, 5i32)
        },
        vec![gpr(0, 0xffff), flags(ALL, CF | SF | AF | PF)],
    );
    s.long(
        "cmp equal",
        |a| {
            a.mov(rcx, 42i64)?;
            a.cmp(rcx, 42i32)
        },
        vec![gpr(1, 42), flags(ALL, ZF | PF)],
    );
    s.long(
        "and clears cf of",
        |a| {
            a.stc()?;
            a.mov(rax, -1i64)?;
            a.and(rax, 0xfi32)
        },
        vec![gpr(0, 0xf), flags(ALL, PF)],
    );
    s.long(
        "inc keeps cf",
        |a| {
            a.stc()?;
            a.mov(cl, 0x7fi32)?;
            a.inc(cl)
        },
        vec![gpr(1, 0x80), flags(ALL, CF | OF | SF | AF)],
    );
    s.long(
        "dec overflow",
        |a| {
            a.mov(dl, 0x80u32 as i32)?;
            a.dec(dl)
        },
        vec![gpr(2, 0x7f), flags(ALL, OF | AF)],
    );
    s.long(
        "neg",
        |a| {
            a.mov(rax, 5i64)?;
            a.neg(rax)
        },
        vec![gpr(0, (-5i64) as u64), flags(ALL, CF | SF | AF)],
    );
    s.long(
        "neg zero",
        |a| a.neg(rax),
        vec![gpr(0, 0), flags(ALL, ZF | PF)],
    );
    s.long(
        "imul truncates",
        |a| {
            a.mov(rax, 1u64 << 62)?;
            a.imul_3(rax, rax, 4i32)
        },
        vec![gpr(0, 0), flags(CF | OF, CF | OF)],
    );
    s.long(
        "mul 64",
        |a| {
            a.mov(rax, -1i64)?;
            a.mov(rcx, 2i64)?;
            a.mul(rcx)
        },
        vec![gpr(0, (-2i64) as u64), gpr(2, 1), flags(CF | OF, CF | OF)],
    );
    s.long(
        "mul 8 no overflow",
        |a| {
            a.mov(al, 10i32)?;
            a.mov(cl, 12i32)?;
            a.mul(cl)
        },
        vec![gpr(0, 120), flags(CF | OF, 0)],
    );
    s.long(
        "div 8",
        |a| {
            a.mov(ax, 0x0107i32)?;
            a.mov(cl, 0x10i32)?;
            a.div(cl)
        },
        vec![gpr(0, 0x0710), no_exception()],
    );
    s.long(
        "idiv signed",
        |a| {
            a.mov(rax, -7i64)?;
            a.cqo()?;
            a.mov(rcx, 2i64)?;
            a.idiv(rcx)
        },
        vec![gpr(0, (-3i64) as u64), gpr(2, u64::MAX)],
    );
    s.long(
        "div by zero",
        |a| {
            a.mov(rax, 1i64)?;
            a.xor(ecx, ecx)?;
            a.div(rcx)
        },
        vec![exception(0, None), gpr(0, 1)],
    );
    s.long(
        "div quotient overflow",
        |a| {
            a.mov(rdx, 1i64)?;
            a.mov(rcx, 1i64)?;
            a.div(rcx)
        },
        vec![exception(0, None)],
    );
    s.long(
        "idiv min by -1",
        |a| {
            a.mov(rax, i64::MIN)?;
            a.cqo()?;
            a.mov(rcx, -1i64)?;
            a.idiv(rcx)
        },
        vec![exception(0, None), gpr(0, 1u64 << 63)],
    );
    s.long(
        "setcc cmovcc",
        |a| {
            a.mov(rcx, 3i64)?;
            a.cmp(rcx, 4i32)?;
            a.setb(al)?;
            a.mov(rdx, 0x55i64)?;
            a.cmovae(rdx, rcx)?;
            a.cmovb(rsi, rcx)
        },
        vec![gpr(0, 1), gpr(2, 0x55), gpr(6, 3)],
    );
    s.long(
        "cmov 32 zero-extends when false",
        |a| {
            a.mov(rdx, -1i64)?;
            a.xor(eax, eax)?;
            a.cmovnz(edx, eax)
        },
        vec![gpr(2, 0xffff_ffff)],
    );
    s.long(
        "lea scaled",
        |a| {
            a.mov(rbx, 0x1000i64)?;
            a.mov(rcx, 3i64)?;
            a.lea(rax, qword_ptr(rbx + rcx * 8 + 0x10))
        },
        vec![gpr(0, 0x1028)],
    );
    s.long(
        "xadd cmpxchg",
        |a| {
            a.mov(rax, 5i64)?;
            a.mov(rcx, 7i64)?;
            a.xadd(rax, rcx)?; // rax = 12, rcx = 5
            a.mov(rdx, 12i64)?;
            a.xchg(rax, rdx)?; // rax = 12, rdx = 12
            a.mov(rbx, 99i64)?;
            a.cmpxchg(rdx, rbx) // equal: rdx = 99, ZF
        },
        vec![gpr(1, 5), gpr(2, 99), flags(ZF, ZF)],
    );
    s.long(
        "cmpxchg16b",
        |a| {
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(qword_ptr(rsi), 1i32)?;
            a.mov(qword_ptr(rsi + 8), 2i32)?;
            a.mov(rax, 1i64)?;
            a.mov(rdx, 2i64)?;
            a.mov(rbx, 3i64)?;
            a.mov(rcx, 4i64)?;
            a.cmpxchg16b(xmmword_ptr(rsi))?;
            a.mov(r8, qword_ptr(rsi))?;
            a.mov(r9, qword_ptr(rsi + 8))
        },
        vec![gpr(8, 3), gpr(9, 4), flags(ZF, ZF)],
    );
    s.long(
        "bswap movbe",
        |a| {
            a.mov(rax, 0x0102_0304_0506_0708u64)?;
            a.bswap(rax)?;
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(dword_ptr(rsi), 0x1122_3344i32)?;
            a.movbe(ecx, dword_ptr(rsi))
        },
        vec![gpr(0, 0x0807_0605_0403_0201), gpr(1, 0x4433_2211)],
    );
}

fn shift_cases(s: &mut Suite) {
    s.long(
        "shl count 0 keeps flags",
        |a| {
            a.stc()?;
            a.mov(rax, 1i64)?;
            a.xor(ecx, ecx)?; // CF = 0 now: xor clears it
            a.stc()?;
            a.shl(rax, cl)
        },
        vec![gpr(0, 1), flags(ALL, CF | PF | ZF)],
    );
    s.long(
        "shl 1",
        |a| {
            a.mov(al, 0x81u32 as i32)?;
            a.shl(al, 1i32)
        },
        vec![gpr(0, 0x02), flags(CF | OF | ZF | SF | PF, CF | OF)],
    );
    s.long(
        "shl by width",
        |a| {
            a.mov(al, 0x81u32 as i32)?;
            a.mov(cl, 8i32)?;
            a.shl(al, cl)
        },
        vec![gpr(0, 0), flags(CF | ZF | SF | PF, CF | ZF | PF)],
    );
    s.long(
        "shl past width",
        |a| {
            a.mov(al, 0xffu32 as i32)?;
            a.mov(cl, 9i32)?;
            a.shl(al, cl)
        },
        vec![gpr(0, 0), flags(ZF | SF | PF, ZF | PF)],
    );
    s.long(
        "shl 64 count masked to 0",
        |a| {
            a.mov(rax, 1i64)?;
            a.mov(cl, 64i32)?;
            a.shl(rax, cl)
            // The case prologue's XORs left ZF and PF set; a masked count of 0
            // changes no flag.
        },
        vec![gpr(0, 1), flags(ALL, ZF | PF)],
    );
    s.long(
        "shr 1",
        |a| {
            a.mov(eax, 0x8000_0001u32 as i32)?;
            a.shr(eax, 1i32)
        },
        vec![
            gpr(0, 0x4000_0000),
            flags(CF | OF | ZF | SF | PF, CF | OF | PF),
        ],
    );
    s.long(
        "sar 1",
        |a| {
            a.mov(eax, 0x8000_0000u32 as i32)?;
            a.sar(eax, 1i32)
        },
        vec![gpr(0, 0xc000_0000), flags(CF | OF | ZF | SF | PF, SF | PF)],
    );
    s.long(
        "sar 31",
        |a| {
            a.mov(eax, 0x8000_0000u32 as i32)?;
            a.sar(eax, 31i32)
        },
        vec![gpr(0, 0xffff_ffff), flags(CF | ZF | SF | PF, SF | PF)],
    );
    s.long(
        "rol 1",
        |a| {
            a.mov(al, 0x80u32 as i32)?;
            a.rol(al, 1i32)
        },
        vec![gpr(0, 1), flags(CF | OF, CF | OF)],
    );
    s.long(
        "ror by width",
        |a| {
            a.mov(al, 0x81u32 as i32)?;
            a.mov(cl, 8i32)?;
            a.ror(al, cl)
        },
        vec![gpr(0, 0x81), flags(CF, CF)],
    );
    s.long(
        "rcl 1",
        |a| {
            a.clc()?;
            a.mov(al, 0x80u32 as i32)?;
            a.rcl(al, 1i32)
        },
        vec![gpr(0, 0), flags(CF | OF, CF | OF)],
    );
    s.long(
        "rcr 1",
        |a| {
            a.stc()?;
            a.mov(al, 1i32)?;
            a.rcr(al, 1i32)
        },
        vec![gpr(0, 0x80), flags(CF | OF, CF | OF)],
    );
    s.long(
        "rcl 9 on byte",
        |a| {
            a.clc()?;
            a.mov(al, 0x81u32 as i32)?;
            a.mov(cl, 9i32)?;
            a.rcl(al, cl)
        },
        vec![gpr(0, 0x81), flags(CF, 0)],
    );
    s.long(
        "shld 8",
        |a| {
            a.mov(eax, 0x1234_5678i32)?;
            a.mov(edx, 0x9abc_def0u32 as i32)?;
            a.shld(eax, edx, 8i32)
        },
        vec![gpr(0, 0x3456_789a), flags(CF, 0)],
    );
    s.long(
        "shrd 4",
        |a| {
            a.mov(eax, 0x1234_5678i32)?;
            a.mov(edx, 0x9abc_def0u32 as i32)?;
            a.shrd(eax, edx, 4i32)
        },
        vec![gpr(0, 0x0123_4567), flags(CF, CF)],
    );
    s.long(
        "shlx sarx rorx",
        |a| {
            a.mov(rcx, 65i64)?; // masked to 1
            a.mov(rdx, -8i64)?;
            a.sarx(rax, rdx, rcx)?;
            a.shlx(rbx, rdx, rcx)?;
            a.rorx(esi, edx, 4i32)
        },
        vec![
            gpr(0, (-4i64) as u64),
            gpr(3, (-16i64) as u64),
            gpr(6, 0x8fff_ffff),
        ],
    );
}

fn bit_cases(s: &mut Suite) {
    s.long(
        "bts bt",
        |a| {
            a.bts(rax, 63i32)?;
            a.setc(cl)?;
            a.bt(rax, 63i32)
        },
        vec![gpr(0, 1 << 63), gpr(1, 0), flags(CF, CF)],
    );
    s.long(
        "bt memory with register offset",
        |a| {
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(qword_ptr(rsi + 8), 0x10i32)?;
            a.mov(rcx, 68i64)?; // bit 4 of the second qword
            a.bt(qword_ptr(rsi), rcx)
        },
        vec![flags(CF, CF)],
    );
    s.long(
        "bsf bsr",
        |a| {
            a.mov(rcx, 0x90i64)?;
            a.bsf(rax, rcx)?;
            a.bsr(rdx, rcx)
        },
        vec![gpr(0, 4), gpr(2, 7), flags(ZF, 0)],
    );
    s.long(
        "bsf zero keeps destination",
        |a| {
            a.mov(rax, 0x1234i64)?;
            a.bsf(rax, rcx)
        },
        vec![gpr(0, 0x1234), flags(ZF, ZF)],
    );
    s.long(
        "popcnt lzcnt tzcnt",
        |a| {
            a.mov(rcx, 0x00ff_00ffi64)?;
            a.popcnt(rax, rcx)?;
            a.mov(rdx, 1i64)?;
            a.lzcnt(rbx, rdx)?;
            a.xor(edi, edi)?;
            a.tzcnt(rsi, rdi)
        },
        vec![gpr(0, 16), gpr(3, 63), gpr(6, 64), flags(CF | ZF, CF)],
    );
    s.long(
        "bmi1",
        |a| {
            a.mov(rcx, 0b1011_0000i64)?;
            a.blsr(rax, rcx)?; // 0b1010_0000
            a.blsi(rdx, rcx)?; // 0b0001_0000
            a.blsmsk(rbx, rcx)?; // 0b0001_1111
            a.mov(r8, 0x0804i64)?; // start 4, length 8
            a.mov(r9, 0xabcdi64)?;
            a.bextr(rsi, r9, r8)?; // 0xbc
            a.andn(rdi, rcx, r9) // ~0xb0 & 0xabcd = 0xab4d
        },
        vec![
            gpr(0, 0xa0),
            gpr(2, 0x10),
            gpr(3, 0x1f),
            gpr(6, 0xbc),
            gpr(7, 0xab4d),
        ],
    );
    s.long(
        "bmi2",
        |a| {
            a.mov(rcx, 0xff00i64)?;
            a.mov(rdx, 0xabi64)?;
            a.pdep(rax, rdx, rcx)?; // 0xab00
            a.mov(rdx, 0x1234i64)?;
            a.pext(rbx, rdx, rcx)?; // 0x12
            a.mov(rsi, -1i64)?;
            a.mov(r8, 12i64)?;
            a.bzhi(rdi, rsi, r8)?; // 0xfff
            a.mov(rdx, 3i64)?;
            a.mov(r9, 5i64)?;
            a.mulx(r10, r11, r9) // 15: hi 0 lo 15
        },
        vec![
            gpr(0, 0xab00),
            gpr(3, 0x12),
            gpr(7, 0xfff),
            gpr(10, 0),
            gpr(11, 15),
        ],
    );
    s.long(
        "adcx adox",
        |a| {
            a.stc()?;
            a.mov(rax, -1i64)?;
            a.mov(rcx, 0i64)?;
            a.adcx(rcx, rax)?; // 0 + -1 + 1 = 0, CF = 1
            a.mov(rdx, 1i64)?;
            a.adox(rdx, rax) // OF was 0: 1 + -1 = 0, OF = 1
        },
        vec![gpr(1, 0), gpr(2, 0), flags(CF | OF, CF | OF)],
    );
}

fn string_cases(s: &mut Suite) {
    s.long(
        "rep movsb forward",
        |a| {
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(rax, 0x0005_0403_0201_u64)?;
            a.mov(qword_ptr(rsi), rax)?;
            a.lea(rdi, qword_ptr(rsi + 0x40))?;
            a.mov(ecx, 5i32)?;
            a.rep().movsb()?;
            a.mov(rax, qword_ptr(SCRATCH + 0x40))
        },
        vec![
            gpr(0, 0x0005_0403_0201),
            gpr(1, 0),
            gpr(6, SCRATCH + 5),
            gpr(7, SCRATCH + 0x45),
        ],
    );
    s.long(
        "rep movsb backward",
        |a| {
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(rax, 0x0005_0403_0201_u64)?;
            a.mov(qword_ptr(rsi), rax)?;
            a.add(rsi, 4i32)?;
            a.lea(rdi, qword_ptr(rsi + 0x40))?;
            a.mov(ecx, 5i32)?;
            a.std()?;
            a.rep().movsb()?;
            a.cld()?;
            a.mov(rax, qword_ptr(SCRATCH + 0x40))
        },
        vec![
            gpr(0, 0x0005_0403_0201),
            gpr(6, SCRATCH - 1),
            gpr(7, SCRATCH + 0x3f),
        ],
    );
    s.long(
        "repne scasb",
        |a| {
            a.mov(rdi, SCRATCH as i64)?;
            a.mov(rax, 0x4433_2211u64)?;
            a.mov(qword_ptr(rdi), rax)?;
            a.mov(al, 0x33i32)?;
            a.mov(ecx, 8i32)?;
            a.repne().scasb()
        },
        vec![gpr(1, 5), gpr(7, SCRATCH + 3), flags(ZF, ZF)],
    );
    s.long(
        "repe cmpsb stops at mismatch",
        |a| {
            a.mov(rsi, SCRATCH as i64)?;
            a.mov(rax, 0x0403_0201u64)?;
            a.mov(qword_ptr(rsi), rax)?;
            a.mov(rax, 0x0903_0201u64)?;
            a.mov(qword_ptr(rsi + 0x10), rax)?;
            a.lea(rdi, qword_ptr(rsi + 0x10))?;
            a.mov(ecx, 8i32)?;
            a.repe().cmpsb()
        },
        vec![gpr(1, 4), gpr(6, SCRATCH + 4), flags(ZF | CF, CF)],
    );
    s.long(
        "rep stosq lodsw",
        |a| {
            a.mov(rdi, SCRATCH as i64)?;
            a.mov(rax, 0x1111_2222_3333_4444u64)?;
            a.mov(ecx, 3i32)?;
            a.rep().stosq()?;
            a.mov(rsi, (SCRATCH + 16) as i64)?;
            a.xor(eax, eax)?;
            a.lodsw()
        },
        vec![gpr(0, 0x4444), gpr(7, SCRATCH + 24), gpr(6, SCRATCH + 18)],
    );
    s.long(
        "rep with zero count",
        |a| {
            a.mov(rdi, SCRATCH as i64)?;
            a.xor(ecx, ecx)?;
            a.rep().stosb()
        },
        vec![gpr(7, SCRATCH), gpr(1, 0)],
    );
}

fn exception_cases(s: &mut Suite) {
    s.long(
        "#UD pushes the instruction",
        |a| {
            let mut at = a.label();
            save_addr(a, &at, 0)?;
            a.set(&mut at)?;
            a.ud2()
        },
        vec![
            exception(6, Some(0)),
            exc_rip_is_slot(0),
            that("CS 08", |r| r.frame[0] == 8),
        ],
    );
    s.long(
        "#BP pushes the next instruction",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.int3()?;
            a.set(&mut after)?;
            a.nop()
        },
        vec![exception(3, None), exc_rip_is_slot(0)],
    );
    s.long(
        "#DB single step",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.pushfq()?;
            a.or(qword_ptr(rsp), 0x100i32)?;
            a.popfq()?;
            a.nop()?;
            a.set(&mut after)?;
            a.nop()
        },
        vec![
            exception(1, None),
            exc_rip_is_slot(0),
            that("DR6.BS", |r| r.dr6 & (1 << 14) != 0),
            that("pushed RFLAGS has TF", |r| r.frame[1] & 0x100 != 0),
        ],
    );
    s.long(
        "#DB from INT1",
        |a| {
            let mut after = a.label();
            save_addr(a, &after, 0)?;
            a.int1()?;
            a.set(&mut after)?;
            a.nop()
        },
        vec![exception(1, None), exc_rip_is_slot(0)],
    );
    s.long(
        "#GP selector beyond GDT",
        |a| {
            a.mov(ax, 0x1000i32)?;
            a.mov(ds, ax)
        },
        vec![exception(13, Some(0x1000))],
    );
    s.long(
        "#NP not-present data segment",
        |a| {
            // GDT slot 0x60 is free: a data descriptor with P = 0.
            a.mov(rax, 0x00cf_1300_0000_ffffu64)?;
            a.mov(qword_ptr(GDT + 0x60), rax)?;
            a.mov(ax, 0x60i32)?;
            a.mov(es, ax)
        },
        vec![exception(11, Some(0x60))],
    );
    s.long(
        "#PF not present write",
        |a| {
            a.mov(rax, 0x1_0000_1000u64)?;
            a.mov(qword_ptr(rax), rcx)
        },
        vec![
            exception(14, Some(2)),
            that("CR2", |r| r.cr2 == 0x1_0000_1000),
        ],
    );
    s.long(
        "supervisor write to read-only page with CR0.WP = 0",
        |a| {
            a.mov(rax, qword_ptr(guestkit::layout::PD + 8 * 20))?;
            a.and(rax, !2i32)?;
            a.mov(qword_ptr(guestkit::layout::PD + 8 * 20), rax)?;
            a.mov(rbx, 0x0280_0020u64)?;
            a.invlpg(qword_ptr(rbx))?;
            a.mov(dword_ptr(rbx), 7i32)?;
            a.mov(ecx, dword_ptr(rbx))
        },
        vec![no_exception(), gpr(1, 7)],
    );
    s.long(
        "#PF write to read-only page",
        |a| {
            // Make the 2-MiB page at 40 MiB read-only, then write to it. CR0.WP
            // makes supervisor writes honour R/W (SDM Vol. 3A 4.6.1).
            a.mov(rax, cr0)?;
            a.or(rax, 0x1_0000i32)?;
            a.mov(cr0, rax)?;
            a.mov(rax, qword_ptr(guestkit::layout::PD + 8 * 20))?;
            a.and(rax, !2i32)?;
            a.mov(qword_ptr(guestkit::layout::PD + 8 * 20), rax)?;
            a.mov(rbx, 0x0280_0010u64)?;
            a.invlpg(qword_ptr(rbx))?;
            a.mov(dword_ptr(rbx), 1i32)
        },
        vec![
            exception(14, Some(3)),
            that("CR2", |r| r.cr2 == 0x0280_0010),
        ],
    );
    s.long(
        "#SS non-canonical stack",
        |a| {
            // The push writes at 8000_0000_0000H, the first non-canonical address.
            a.mov(rsp, 0x8000_0000_0008u64)?;
            a.push(rax)
        },
        vec![exception(12, Some(0))],
    );
    s.long(
        "#GP non-canonical data",
        |a| {
            a.mov(rax, 0xffff_0000_0000_0000u64)?;
            a.mov(rbx, qword_ptr(rax))
        },
        vec![exception(13, Some(0))],
    );
    s.long(
        "#GP privileged at CPL0 is fine",
        |a| {
            a.mov(rax, cr0)?;
            a.mov(cr0, rax)
        },
        vec![no_exception()],
    );
    s.prot(
        "prot #OF from INTO",
        |a| {
            a.mov(al, 0x7fi32)?;
            a.add(al, 1i32)?;
            iced_x86::code_asm::asm_traits::CodeAsmInto::into(&mut a.a)
        },
        vec![exception(4, None)],
    );
    s.prot(
        "prot #BR from BOUND",
        |a| {
            a.mov(esi, SCRATCH as i32)?;
            a.mov(dword_ptr(esi), 10i32)?;
            a.mov(dword_ptr(esi + 4), 20i32)?;
            a.mov(eax, 21i32)?;
            a.bound(eax, qword_ptr(esi))
        },
        vec![exception(5, None)],
    );
}

fn mode_cases(s: &mut Suite) {
    s.real(
        "real 16-bit arithmetic",
        |a| {
            a.mov(ax, 0x7fffi32)?;
            a.add(ax, 1i32)?;
            a.mov(bx, ax)
        },
        vec![gpr(3, 0x8000), flags(ALL, OF | SF | AF | PF)],
    );
    s.real(
        "real daa",
        |a| {
            a.mov(al, 0x79i32)?;
            a.add(al, 0x35i32)?;
            a.daa()
        },
        vec![gpr(0, 0x14), flags(CF | AF | PF | ZF | SF, CF | AF | PF)],
    );
    s.real(
        "real #DE through the IVT",
        |a| {
            a.xor(cl, cl)?;
            a.div(cl)
        },
        vec![exception(0, None)],
    );
    s.real(
        "real push pop far",
        |a| {
            a.mov(ax, 0x1234i32)?;
            a.push(ax)?;
            a.pop(dx)
        },
        vec![gpr(2, 0x1234)],
    );
    s.prot(
        "prot daa aam",
        |a| {
            a.mov(al, 0x79i32)?;
            a.add(al, 0x35i32)?;
            a.daa()?;
            a.mov(bl, al)?;
            a.mov(al, 75i32)?;
            a.aam(10i32)
        },
        vec![gpr(3, 0x14), gpr(0, 0x0705)],
    );
    s.prot(
        "prot aaa aas",
        |a| {
            a.mov(ax, 0x0009i32)?;
            a.add(al, 8i32)?;
            a.aaa()?; // 0x0107
            a.mov(cx, ax)?;
            a.mov(ax, 0x0201i32)?;
            a.sub(al, 5i32)?;
            a.aas() // 0x0106
        },
        vec![gpr(1, 0x0107), gpr(0, 0x0106)],
    );
    s.prot(
        "prot pushad popad",
        |a| {
            a.mov(eax, 1i32)?;
            a.mov(ecx, 2i32)?;
            a.mov(edx, 3i32)?;
            a.pushad()?;
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.popad()
        },
        vec![gpr(0, 1), gpr(1, 2), gpr(2, 3)],
    );
    s.prot(
        "prot 32-bit shifts",
        |a| {
            a.mov(eax, 0x8000_0000u32 as i32)?;
            a.mov(cl, 32i32)?; // masked to 0
            a.shr(eax, cl)
        },
        vec![gpr(0, 0x8000_0000)],
    );
}

#[test]
fn isa_suite_real_protected_long() {
    let mut s = Suite {
        p: Program::new(),
        table: Vec::new(),
    };
    integer_cases(&mut s);
    shift_cases(&mut s);
    bit_cases(&mut s);
    string_cases(&mut s);
    exception_cases(&mut s);
    mode_cases(&mut s);
    let o = run(&s.p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(&o, &s.table);
    eprintln!("isa suite: {} cases passed", s.table.len());
}
