//! The 64-bit runtime: serial output, exit, exception stubs and the common
//! handler that records an exception into the current case and resumes, and
//! the case wrapper.

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{rec, sel, var, RECORD_SIZE, RESULTS, USER_ALIAS, USER_STACK_TOP, VARS};
use iced_x86::code_asm::*;

/// Labels of the 64-bit runtime routines, usable from program code.
#[derive(Clone, Copy, Debug)]
pub struct Rt64 {
    /// Prints AL on COM1.
    pub putc: Label,
    /// Prints the NUL-terminated string at RSI.
    pub puts: Label,
    /// Prints RAX as 16 hex digits.
    pub put_hex: Label,
    /// Exits through isa-debug-exit with the value in EDI.
    pub exit: Label,
    /// The 256 exception stubs' first label (stubs are 16 bytes apart).
    pub stubs: Label,
}

/// The vector user code raises (INT 0x80, a DPL-3 gate) to return to ring 0
/// at the end of its case.
pub const USER_RETURN_VECTOR: u8 = 0x80;

/// Emits a switch to ring 3 (64-bit, user selectors, the user stack) that
/// continues with the next instruction's copy in the user alias
/// ([`crate::layout::USER_ALIAS`]); the code after it runs at CPL 3 and ends
/// its case with `int 0x80` (or by faulting). Memory it reads or writes must be
/// addressed through the alias. Clobbers RAX and RCX.
pub fn enter_user(a: &mut Asm) -> AsmResult {
    let mut user = a.label();
    a.push(sel::USER_DATA as i32)?;
    a.mov(rax, USER_STACK_TOP)?;
    a.push(rax)?;
    a.push(2i32)?;
    a.push(sel::USER_CODE64 as i32)?;
    a.lea(rax, ptr(user.l))?;
    a.mov(rcx, USER_ALIAS)?;
    a.add(rax, rcx)?;
    a.push(rax)?;
    a.iretq()?;
    a.set(&mut user)
}

/// Vectors that push an error code.
pub const ERROR_CODE_VECTORS: [u8; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

/// Absolute address operand (identity-mapped, below 2 GiB).
pub fn abs(a: u64) -> AsmMemoryOperand {
    qword_ptr(a as u32 as u64)
}

impl Rt64 {
    /// Creates the labels; [`Rt64::emit`] places the routines.
    pub fn new(a: &mut Asm) -> Self {
        Self {
            putc: a.label(),
            puts: a.label(),
            put_hex: a.label(),
            exit: a.label(),
            stubs: a.label(),
        }
    }

    /// Emits the routines, the exception stubs and the common handler.
    pub fn emit(&mut self, a: &mut Asm) -> AsmResult {
        // putc: AL -> COM1, polling LSR.THRE.
        a.set(&mut self.putc)?;
        a.push(rdx)?;
        a.push(rax)?;
        let mut wait = a.label();
        a.set(&mut wait)?;
        a.mov(dx, 0x3fdi32)?;
        a.in_(al, dx)?;
        a.test(al, 0x20i32)?;
        a.jz(wait.l)?;
        a.pop(rax)?;
        a.mov(dx, 0x3f8i32)?;
        a.out(dx, al)?;
        a.pop(rdx)?;
        a.ret()?;
        // puts: RSI -> string.
        a.set(&mut self.puts)?;
        a.push(rax)?;
        a.push(rsi)?;
        let mut lp = a.label();
        let mut done = a.label();
        a.set(&mut lp)?;
        a.mov(al, byte_ptr(rsi))?;
        a.test(al, al)?;
        a.jz(done.l)?;
        a.call(self.putc.l)?;
        a.inc(rsi)?;
        a.jmp(lp.l)?;
        a.set(&mut done)?;
        a.pop(rsi)?;
        a.pop(rax)?;
        a.ret()?;
        // put_hex: RAX as 16 digits.
        a.set(&mut self.put_hex)?;
        a.push(rax)?;
        a.push(rcx)?;
        a.push(rdx)?;
        a.mov(rdx, rax)?;
        a.mov(ecx, 16i32)?;
        let mut digit = a.label();
        let mut num = a.label();
        a.set(&mut digit)?;
        a.rol(rdx, 4i32)?;
        a.mov(eax, edx)?;
        a.and(eax, 0xfi32)?;
        a.add(eax, b'0' as i32)?;
        a.cmp(eax, b'9' as i32)?;
        a.jbe(num.l)?;
        a.add(eax, 7i32)?;
        a.set(&mut num)?;
        a.call(self.putc.l)?;
        a.dec(ecx)?;
        a.jnz(digit.l)?;
        a.pop(rdx)?;
        a.pop(rcx)?;
        a.pop(rax)?;
        a.ret()?;
        // exit: EDI -> port 0xf4; never returns.
        a.set(&mut self.exit)?;
        a.mov(eax, edi)?;
        a.out(0xf4i32, eax)?;
        let mut stop = a.label();
        a.set(&mut stop)?;
        a.cli()?;
        a.hlt()?;
        a.jmp(stop.l)?;
        self.emit_handlers(a)
    }

    fn emit_handlers(&mut self, a: &mut Asm) -> AsmResult {
        let mut common = a.label();
        a.set(&mut self.stubs)?;
        for v in 0..=255u8 {
            // Each stub is padded to 16 bytes so stub v is at stubs + 16 v.
            let mut bytes = Vec::with_capacity(16);
            if !ERROR_CODE_VECTORS.contains(&v) {
                bytes.extend_from_slice(&[0x6a, 0x00]);
            }
            bytes.push(0x68);
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
            // mov eax, imm32 placeholder is avoided: jump through a register-free
            // absolute address is not encodable, so use JMP rel32 computed from
            // the stub's position once addresses are known.
            let here = a.addr(&self.stubs) + 16 * v as u64 + bytes.len() as u64 + 5;
            let target = a.addr(&common);
            bytes.push(0xe9);
            bytes.extend_from_slice(&(target.wrapping_sub(here) as u32).to_le_bytes());
            bytes.resize(16, 0xcc);
            a.db(&bytes)?;
        }
        // Frame on the IST stack: vector, error code, RIP, CS, RFLAGS, RSP, SS.
        a.set(&mut common)?;
        a.push(rax)?;
        a.push(rbx)?;
        // Vectors with an interrupt mode are handled and return.
        let mut interrupt = a.label();
        a.mov(rax, qword_ptr(rsp + 16))?;
        a.movzx(ebx, byte_ptr(rax + (VARS + var::IRQ_MODE) as u32))?;
        a.test(ebx, ebx)?;
        a.jnz(interrupt.l)?;
        a.inc(abs(VARS + var::EXC_COUNT))?;
        a.mov(rbx, abs(VARS + var::RECORD))?;
        a.test(rbx, rbx)?;
        let mut no_case = a.label();
        a.jz(no_case.l)?;
        // INT 0x80 from user code is the way back to ring 0, not an event
        // the case recorded.
        a.cmp(qword_ptr(rsp + 16), USER_RETURN_VECTOR as i32)?;
        a.je(no_case.l)?;
        // Under PVM (the paging-based KVM a suite may run on, see
        // `testsuites::kvm`) INT n from ring 3 raises #UD instead: a #UD in
        // user code on an `int 0x80` in the user alias is the same way back.
        // Only RAX is free here; the alias maps the identity range, so its
        // bytes are read through the identity map (RIP with bit 39 clear).
        let mut record = a.label();
        a.cmp(qword_ptr(rsp + 16), 6i32)?;
        a.jne(record.l)?;
        a.test(byte_ptr(rsp + 40), 3i32)?;
        a.jz(record.l)?;
        a.mov(rax, qword_ptr(rsp + 32))?;
        a.btr(rax, USER_ALIAS.trailing_zeros() as i32)?;
        a.jnc(record.l)?;
        a.cmp(rax, 0x4000_0000i32)?;
        a.jae(record.l)?;
        a.cmp(word_ptr(rax), 0x80cdi32)?;
        a.je(no_case.l)?;
        a.set(&mut record)?;
        for (frame, slot) in [
            (16, rec::EXC_VECTOR),
            (24, rec::EXC_ERROR),
            (32, rec::EXC_RIP),
            (40, rec::EXC_CS),
            (48, rec::EXC_RFLAGS),
            (56, rec::EXC_RSP),
            (64, rec::EXC_SS),
        ] {
            a.mov(rax, qword_ptr(rsp + frame))?;
            if slot == rec::EXC_VECTOR {
                a.inc(rax)?;
            }
            a.mov(qword_ptr(rbx + slot as i32), rax)?;
        }
        a.mov(rax, cr2)?;
        a.mov(qword_ptr(rbx + rec::EXC_CR2 as i32), rax)?;
        a.mov(rax, dr6)?;
        a.mov(qword_ptr(rbx + rec::EXC_DR6 as i32), rax)?;
        a.set(&mut no_case)?;
        a.mov(rax, abs(VARS + var::RESUME))?;
        a.test(rax, rax)?;
        let mut unexpected = a.label();
        a.jz(unexpected.l)?;
        a.mov(qword_ptr(abs_u(VARS + var::RESUME)), 0i32)?;
        a.mov(qword_ptr(rsp + 32), rax)?;
        // Resume without single-stepping or resume flag.
        a.and(qword_ptr(rsp + 48), !0x1_0100i32)?;
        // Resume in ring 0 whatever ring the exception came from.
        a.mov(qword_ptr(rsp + 40), sel::CODE64 as i32)?;
        a.mov(qword_ptr(rsp + 64), sel::DATA as i32)?;
        a.pop(rbx)?;
        a.pop(rax)?;
        a.add(rsp, 16i32)?;
        a.iretq()?;
        a.set(&mut unexpected)?;
        let msg = a.label();
        a.lea(rsi, ptr(msg.l))?;
        a.call(self.puts.l)?;
        a.mov(rax, qword_ptr(rsp + 16))?;
        a.call(self.put_hex.l)?;
        a.mov(al, b' ' as i32)?;
        a.call(self.putc.l)?;
        a.mov(rax, qword_ptr(rsp + 24))?;
        a.call(self.put_hex.l)?;
        a.mov(al, b' ' as i32)?;
        a.call(self.putc.l)?;
        a.mov(rax, qword_ptr(rsp + 32))?;
        a.call(self.put_hex.l)?;
        a.mov(al, b'\n' as i32)?;
        a.call(self.putc.l)?;
        a.mov(edi, 3i32)?;
        a.jmp(self.exit.l)?;
        let mut msg = msg;
        a.set(&mut msg)?;
        a.db(b"kit: unexpected exception (vector error rip): \0")?;
        a.set(&mut interrupt)?;
        crate::irq::emit_dispatch(a)
    }
}

/// A raw address as a displacement-only memory operand.
pub fn abs_u(a: u64) -> u64 {
    a as u32 as u64
}

/// Emits one 64-bit case: record `index`, state reset, `body`, state dump.
pub fn emit_case(a: &mut Asm, index: usize, body: &dyn Fn(&mut Asm) -> AsmResult) -> AsmResult {
    let r = RESULTS + index as u64 * RECORD_SIZE;
    let mut end = a.label();
    a.mov(abs(VARS + var::RECORD), r as i32)?;
    a.lea(rax, ptr(end.l))?;
    a.mov(abs(VARS + var::RESUME), rax)?;
    a.mov(abs(VARS + var::SAVED_SP), rsp)?;
    a.push(2i32)?;
    a.popfq()?;
    for reg in [
        eax, ecx, edx, ebx, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d,
    ] {
        a.xor(reg, reg)?;
    }
    body(a)?;
    a.set(&mut end)?;
    a.mov(abs(r + 0x20), rsp)?;
    a.mov(rsp, abs(VARS + var::SAVED_SP))?;
    a.pushfq()?;
    a.pop(abs(r + rec::RFLAGS))?;
    let regs = [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ];
    for (n, reg) in regs.iter().enumerate() {
        if n != 4 {
            a.mov(abs(r + 8 * n as u64), *reg)?;
        }
    }
    a.mov(abs(VARS + var::RESUME), 0i32)?;
    a.mov(abs(VARS + var::RECORD), 0i32)?;
    a.mov(abs(r + rec::DONE), 1i32)?;
    // No breakpoint outlives its case.
    a.xor(eax, eax)?;
    a.mov(dr7, rax)?;
    Ok(())
}
