//! The 32-bit runtime: the Multiboot entry's helpers, exception stubs and
//! handler for protected mode, and the 32-bit case wrapper.

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{rec, var, RECORD_SIZE, RESULTS, VARS};
use crate::rt64::ERROR_CODE_VECTORS;
use iced_x86::code_asm::*;

/// A 32-bit absolute memory operand.
pub fn abs32(a: u64) -> AsmMemoryOperand {
    dword_ptr(a as u32 as u64)
}

/// Emits, in a protected-mode case body: user slot `slot` of the current
/// record = the dword at `src` (clobbers EBX and ECX).
pub fn store_user32(a: &mut Asm, slot: u64, src: AsmMemoryOperand) -> AsmResult {
    a.mov(ecx, src)?;
    a.mov(ebx, dword_ptr(VARS + var::RECORD))?;
    a.mov(dword_ptr(ebx + (rec::USER + 8 * slot) as i32), ecx)
}

/// Labels of the 32-bit runtime.
#[derive(Clone, Copy, Debug)]
pub struct Rt32 {
    /// Prints AL.
    pub putc: Label,
    /// Prints the string at ESI.
    pub puts: Label,
    /// Exits with EDI.
    pub exit: Label,
    /// First exception stub (16 bytes apart).
    pub stubs: Label,
}

impl Rt32 {
    /// Creates the labels.
    pub fn new(a: &mut Asm) -> Self {
        Self {
            putc: a.label(),
            puts: a.label(),
            exit: a.label(),
            stubs: a.label(),
        }
    }

    /// Emits the routines and the exception handling.
    pub fn emit(&mut self, a: &mut Asm) -> AsmResult {
        a.set(&mut self.putc)?;
        a.push(edx)?;
        a.push(eax)?;
        let mut wait = a.label();
        a.set(&mut wait)?;
        a.mov(dx, 0x3fdi32)?;
        a.in_(al, dx)?;
        a.test(al, 0x20i32)?;
        a.jz(wait.l)?;
        a.pop(eax)?;
        a.mov(dx, 0x3f8i32)?;
        a.out(dx, al)?;
        a.pop(edx)?;
        a.ret()?;
        a.set(&mut self.puts)?;
        a.push(eax)?;
        a.push(esi)?;
        let mut lp = a.label();
        let mut done = a.label();
        a.set(&mut lp)?;
        a.mov(al, byte_ptr(esi))?;
        a.test(al, al)?;
        a.jz(done.l)?;
        a.call(self.putc.l)?;
        a.inc(esi)?;
        a.jmp(lp.l)?;
        a.set(&mut done)?;
        a.pop(esi)?;
        a.pop(eax)?;
        a.ret()?;
        a.set(&mut self.exit)?;
        a.mov(eax, edi)?;
        a.out(0xf4i32, eax)?;
        let mut stop = a.label();
        a.set(&mut stop)?;
        a.cli()?;
        a.hlt()?;
        a.jmp(stop.l)?;
        // Stubs, 16 bytes each.
        let mut common = a.label();
        a.set(&mut self.stubs)?;
        for v in 0..=255u8 {
            let mut bytes = Vec::with_capacity(16);
            if !ERROR_CODE_VECTORS.contains(&v) {
                bytes.extend_from_slice(&[0x6a, 0x00]);
            }
            bytes.push(0x68);
            bytes.extend_from_slice(&(v as u32).to_le_bytes());
            let here = a.addr(&self.stubs) + 16 * v as u64 + bytes.len() as u64 + 5;
            bytes.push(0xe9);
            bytes.extend_from_slice(&(a.addr(&common).wrapping_sub(here) as u32).to_le_bytes());
            bytes.resize(16, 0xcc);
            a.db(&bytes)?;
        }
        // Frame: vector, error code, EIP, CS, EFLAGS.
        a.set(&mut common)?;
        a.push(eax)?;
        a.push(ebx)?;
        a.inc(abs32(VARS + var::EXC_COUNT))?;
        a.mov(ebx, abs32(VARS + var::RECORD))?;
        a.test(ebx, ebx)?;
        let mut no_case = a.label();
        a.jz(no_case.l)?;
        for (frame, slot) in [
            (8, rec::EXC_VECTOR),
            (12, rec::EXC_ERROR),
            (16, rec::EXC_RIP),
            (20, rec::EXC_CS),
            (24, rec::EXC_RFLAGS),
        ] {
            a.mov(eax, dword_ptr(esp + frame))?;
            if slot == rec::EXC_VECTOR {
                a.inc(eax)?;
            }
            a.mov(dword_ptr(ebx + slot as i32), eax)?;
        }
        a.mov(eax, cr2)?;
        a.mov(dword_ptr(ebx + rec::EXC_CR2 as i32), eax)?;
        a.set(&mut no_case)?;
        a.mov(eax, abs32(VARS + var::RESUME))?;
        a.test(eax, eax)?;
        let mut unexpected = a.label();
        a.jz(unexpected.l)?;
        a.mov(abs32(VARS + var::RESUME), 0i32)?;
        a.mov(dword_ptr(esp + 16), eax)?;
        a.and(dword_ptr(esp + 24), !0x1_0100i32)?;
        a.pop(ebx)?;
        a.pop(eax)?;
        a.add(esp, 8i32)?;
        a.iretd()?;
        a.set(&mut unexpected)?;
        let mut msg = a.label();
        let m = a.addr(&msg) as u32 as i32;
        a.mov(esi, m)?;
        a.call(self.puts.l)?;
        a.mov(edi, 3i32)?;
        a.jmp(self.exit.l)?;
        a.set(&mut msg)?;
        a.db(b"kit: unexpected exception in 32-bit code\n\0")?;
        Ok(())
    }
}

/// Emits one 32-bit case.
pub fn emit_case(a: &mut Asm, index: usize, body: &dyn Fn(&mut Asm) -> AsmResult) -> AsmResult {
    let r = RESULTS + index as u64 * RECORD_SIZE;
    let mut end = a.label();
    a.mov(abs32(VARS + var::RECORD), r as i32)?;
    let end_addr = a.addr(&end) as u32 as i32;
    a.mov(abs32(VARS + var::RESUME), end_addr)?;
    a.mov(abs32(VARS + var::SAVED_SP), esp)?;
    a.push(2i32)?;
    a.popfd()?;
    for reg in [eax, ecx, edx, ebx, ebp, esi, edi] {
        a.xor(reg, reg)?;
    }
    body(a)?;
    a.set(&mut end)?;
    a.mov(abs32(r + 0x20), esp)?;
    a.mov(esp, abs32(VARS + var::SAVED_SP))?;
    a.pushfd()?;
    a.pop(abs32(r + rec::RFLAGS))?;
    let regs = [eax, ecx, edx, ebx, esp, ebp, esi, edi];
    for (n, reg) in regs.iter().enumerate() {
        if n != 4 {
            a.mov(abs32(r + 8 * n as u64), *reg)?;
        }
    }
    a.mov(abs32(VARS + var::RESUME), 0i32)?;
    a.mov(abs32(VARS + var::RECORD), 0i32)?;
    a.mov(abs32(r + rec::DONE), 1i32)?;
    Ok(())
}
