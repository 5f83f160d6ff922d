//! The real-mode runtime: the IVT stubs and handler, and the 16-bit case
//! wrapper. Real-mode records are written at [`LOW_RESULTS`] (reachable with a
//! 64-KiB segment) and copied to the common records by the 32-bit code.

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{rec, RECORD_SIZE};
use iced_x86::code_asm::*;

/// Where real-mode case records are written (segment 0x2000).
pub const LOW_RESULTS: u64 = 0x2_0000;
/// Real-mode variables (segment 0): resume IP, record offset.
pub const VARS16: u64 = 0x6000;

/// A 16-bit absolute operand in DS.
pub fn abs16(a: u64) -> AsmMemoryOperand {
    word_ptr(a)
}

/// Labels of the real-mode runtime.
#[derive(Clone, Copy, Debug)]
pub struct Rt16 {
    /// First IVT stub (8 bytes apart), vectors 0-31.
    pub stubs: Label,
}

impl Rt16 {
    /// Creates the labels.
    pub fn new(a: &mut Asm) -> Self {
        Self { stubs: a.label() }
    }

    /// Emits the IVT stubs and the handler. The frame is IP, CS, FLAGS; the
    /// handler records the vector and the faulting IP in the current record
    /// (ES = 0x2000 holds records; DS = 0) and resumes.
    pub fn emit(&mut self, a: &mut Asm) -> AsmResult {
        let mut common = a.label();
        a.set(&mut self.stubs)?;
        for v in 0..32u8 {
            // push imm16 (68 iw), jmp rel16 (e9 cw); 6 bytes, padded to 8.
            let here = a.addr(&self.stubs) + 8 * v as u64 + 6;
            let mut b = vec![0x68, v, 0, 0xe9];
            b.extend_from_slice(&(a.addr(&common).wrapping_sub(here) as u16).to_le_bytes());
            b.resize(8, 0x90);
            a.db(&b)?;
        }
        // Stack: vector, IP, CS, FLAGS.
        a.set(&mut common)?;
        a.push(bp)?;
        a.mov(bp, sp)?;
        a.push(ax)?;
        a.push(bx)?;
        a.mov(bx, abs16(VARS16 + 2))?;
        a.mov(ax, word_ptr(bp + 2))?;
        a.inc(ax)?;
        a.mov(word_ptr(bx + rec::EXC_VECTOR as i32).es(), ax)?;
        a.mov(ax, word_ptr(bp + 4))?;
        a.mov(word_ptr(bx + rec::EXC_RIP as i32).es(), ax)?;
        a.mov(ax, abs16(VARS16))?;
        a.mov(word_ptr(bp + 4), ax)?;
        a.pop(bx)?;
        a.pop(ax)?;
        a.pop(bp)?;
        a.add(sp, 2i32)?;
        a.iret()?;
        Ok(())
    }

    /// Emits code that points IVT entries 0-31 at the stubs (CS = 0).
    pub fn install(&self, a: &mut Asm) -> AsmResult {
        for v in 0..32u64 {
            let ip = a.addr(&self.stubs) + 8 * v;
            a.mov(word_ptr(v * 4), ip as u16 as i32)?;
            a.mov(word_ptr(v * 4 + 2), 0i32)?;
        }
        Ok(())
    }
}

/// Emits one real-mode case (record `index` of the real-mode block).
pub fn emit_case(a: &mut Asm, index: usize, body: &dyn Fn(&mut Asm) -> AsmResult) -> AsmResult {
    let r = index as u64 * RECORD_SIZE;
    let mut end = a.label();
    a.mov(abs16(VARS16 + 2), r as i32)?;
    let end_ip = a.addr(&end) as u16 as i32;
    a.mov(abs16(VARS16), end_ip)?;
    a.mov(abs16(VARS16 + 4), sp)?;
    a.push(2i32)?;
    a.popfd()?;
    for reg in [eax, ecx, edx, ebx, ebp, esi, edi] {
        a.xor(reg, reg)?;
    }
    body(a)?;
    a.set(&mut end)?;
    a.mov(dword_ptr(r + 0x20).es(), esp)?;
    a.mov(sp, abs16(VARS16 + 4))?;
    a.pushfd()?;
    a.pop(dword_ptr(r + rec::RFLAGS).es())?;
    let regs = [eax, ecx, edx, ebx, esp, ebp, esi, edi];
    for (n, reg) in regs.iter().enumerate() {
        if n != 4 {
            a.mov(dword_ptr(r + 8 * n as u64).es(), *reg)?;
        }
    }
    a.mov(dword_ptr(r + rec::DONE).es(), 1i32)?;
    Ok(())
}
