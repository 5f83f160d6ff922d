//! Interrupt handling for kit programs (64-bit runtime).
//!
//! A vector whose byte in the mode table ([`var::IRQ_MODE`]) is non-zero is
//! handled as an interrupt: optionally a hook routine runs, the arrival is
//! counted ([`var::IRQ_COUNT`]) and logged in order ([`var::IRQ_LOG`]), the
//! EOIs the mode asks for are sent, and IRETQ returns to the interrupted
//! code. Hooks are called with RDI = vector and RSI = the address of the
//! pushed RIP; they may use RAX, RCX, RDX, RSI, RDI, R8-R11 and must keep the
//! other registers.

use crate::asm::{Asm, AsmResult, Label};
use crate::layout::{var, VARS};
use iced_x86::code_asm::*;

/// Count the interrupt and log its vector.
pub const COUNT: u8 = 1;
/// Send an xAPIC EOI (write 0 to FEE000B0H).
pub const EOI_XAPIC: u8 = 2;
/// Send an x2APIC EOI (WRMSR 80BH with 0).
pub const EOI_X2APIC: u8 = 4;
/// Send a non-specific EOI to the master 8259.
pub const EOI_PIC: u8 = 8;
/// Send non-specific EOIs to the slave, then the master 8259.
pub const EOI_PIC_SLAVE: u8 = 16;
/// Call the vector's hook routine first.
pub const HOOK: u8 = 32;

/// The address of the count of `vector`.
pub const fn count_addr(vector: u8) -> u64 {
    VARS + var::IRQ_COUNT + 4 * vector as u64
}

/// Emits: handle `vector` with `mode`.
pub fn set_mode(a: &mut Asm, vector: u8, mode: u8) -> AsmResult {
    a.mov(byte_ptr(VARS + var::IRQ_MODE + vector as u64), mode as u32)
}

/// Emits: `hook` is the hook routine of `vector` (clobbers RAX).
pub fn set_hook(a: &mut Asm, vector: u8, hook: &Label) -> AsmResult {
    a.lea(rax, ptr(hook.l))?;
    a.mov(qword_ptr(VARS + var::IRQ_HOOK + 8 * vector as u64), rax)
}

/// Emits: EAX = the count of `vector`.
pub fn load_count(a: &mut Asm, vector: u8) -> AsmResult {
    a.mov(eax, dword_ptr(count_addr(vector)))
}

/// Emits: clears every count and the log (clobbers RAX, RCX, RDI).
pub fn clear_counts(a: &mut Asm) -> AsmResult {
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(edi, (VARS + var::IRQ_COUNT) as u32)?;
    a.mov(ecx, 256u32)?;
    a.rep().stosd()?;
    a.mov(qword_ptr(VARS + var::IRQ_LOG_LEN), 0)
}

/// The dispatch code the common exception handler jumps to; RAX holds the
/// vector and EBX the mode; RAX and RBX are already pushed.
pub(crate) fn emit_dispatch(a: &mut Asm) -> AsmResult {
    let saved = [rcx, rdx, rsi, rdi, r8, r9, r10, r11];
    for r in saved {
        a.push(r)?;
    }
    // Stack: 8 saved, RBX, RAX, vector (+80), error, RIP (+96), ...
    let frame_vector = 80;
    let mut no_hook = a.label();
    a.test(bl, HOOK as u32)?;
    a.jz(no_hook.l)?;
    a.mov(rdi, rax)?;
    a.lea(rsi, qword_ptr(rsp + 96))?;
    a.call(qword_ptr(rax * 8 + (VARS + var::IRQ_HOOK) as u32))?;
    a.set(&mut no_hook)?;
    a.mov(rax, qword_ptr(rsp + frame_vector))?;
    let mut no_count = a.label();
    a.test(bl, COUNT as u32)?;
    a.jz(no_count.l)?;
    a.inc(dword_ptr(rax * 4 + (VARS + var::IRQ_COUNT) as u32))?;
    a.mov(rcx, qword_ptr(VARS + var::IRQ_LOG_LEN))?;
    a.cmp(rcx, var::IRQ_LOG_CAP as i32)?;
    a.jae(no_count.l)?;
    a.mov(byte_ptr(rcx + (VARS + var::IRQ_LOG) as u32), al)?;
    a.inc(qword_ptr(VARS + var::IRQ_LOG_LEN))?;
    a.set(&mut no_count)?;
    emit_eois(a)?;
    for r in saved.iter().rev() {
        a.pop(*r)?;
    }
    a.pop(rbx)?;
    a.pop(rax)?;
    a.add(rsp, 16i32)?;
    a.iretq()
}

/// The EOIs of the mode in BL.
fn emit_eois(a: &mut Asm) -> AsmResult {
    let mut skip = a.label();
    a.test(bl, EOI_XAPIC as u32)?;
    a.jz(skip.l)?;
    a.mov(rcx, 0xfee0_00b0u64)?;
    a.mov(dword_ptr(rcx), 0)?;
    a.set(&mut skip)?;
    let mut skip = a.label();
    a.test(bl, EOI_X2APIC as u32)?;
    a.jz(skip.l)?;
    a.mov(ecx, 0x80bu32)?;
    a.xor(eax, eax)?;
    a.xor(edx, edx)?;
    a.wrmsr()?;
    a.set(&mut skip)?;
    let mut skip = a.label();
    a.test(bl, EOI_PIC_SLAVE as u32)?;
    a.jz(skip.l)?;
    a.mov(al, 0x20u32)?;
    a.out(0xa0u32, al)?;
    a.set(&mut skip)?;
    let mut skip = a.label();
    a.test(bl, (EOI_PIC | EOI_PIC_SLAVE) as u32)?;
    a.jz(skip.l)?;
    a.mov(al, 0x20u32)?;
    a.out(0x20u32, al)?;
    a.set(&mut skip)
}
