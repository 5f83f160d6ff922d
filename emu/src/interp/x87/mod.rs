//! x87 FPU instructions (SDM Vol. 1 chapter 8; Vol. 2 entries F2XM1..FYL2XP1)
//! and FXSAVE/FXRSTOR (Vol. 1 10.5).
//!
//! Files by concept: [`float`] is the soft-float (pure values, no machine),
//! [`state`] the register stack, prologue and exception reporting, and the
//! handlers are grouped as arithmetic, load/store, compare, control,
//! environment (FSTENV/FSAVE), transcendental and FXSAVE.
//!
//! Every handler checks, in this order: #NM (CR0.EM/TS), a pending unmasked
//! exception for waiting instructions (#MF), the memory operand (faults leave
//! the FPU untouched), then the stack, and only then computes and commits.

pub mod arith;
pub mod compare;
pub mod control;
pub mod env;
pub mod float;
pub mod fxsave;
pub mod loadstore;
pub mod state;
#[cfg(test)]
mod tests;
pub mod transcendental;

use super::Handler;
use crate::cost::InsnClass;
use crate::event::Event;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use iced_x86::{Code, Instruction, Mnemonic};
use mmu::{Cr0, Rflags, SegReg};

/// The handler for an x87 (or FXSAVE/FXRSTOR) instruction, or `None` if `i`
/// is not one.
pub fn handler_for(_m: &Machine, i: &Instruction) -> Option<(Handler, InsnClass)> {
    use Mnemonic as M;
    let h: Handler = match i.mnemonic() {
        M::Fadd | M::Faddp | M::Fiadd => arith::fadd,
        M::Fsub | M::Fsubp | M::Fisub => arith::fsub,
        M::Fsubr | M::Fsubrp | M::Fisubr => arith::fsubr,
        M::Fmul | M::Fmulp | M::Fimul => arith::fmul,
        M::Fdiv | M::Fdivp | M::Fidiv => arith::fdiv,
        M::Fdivr | M::Fdivrp | M::Fidivr => arith::fdivr,
        M::Fsqrt => arith::fsqrt,
        M::Fabs => arith::fabs,
        M::Fchs => arith::fchs,
        M::Frndint => arith::frndint,
        M::Fscale => arith::fscale,
        M::Fxtract => arith::fxtract,
        M::Fprem => arith::fprem,
        M::Fprem1 => arith::fprem1,
        M::Fld => loadstore::fld,
        M::Fild => loadstore::fild,
        M::Fbld => loadstore::fbld,
        M::Fst | M::Fstp | M::Fstpnce => loadstore::fst,
        M::Fist | M::Fistp | M::Fisttp => loadstore::fist,
        M::Fbstp => loadstore::fbstp,
        M::Fld1 | M::Fldz | M::Fldpi | M::Fldl2e | M::Fldl2t | M::Fldlg2 | M::Fldln2 => {
            loadstore::fld_const
        }
        M::Fxch => loadstore::fxch,
        M::Fcmovb
        | M::Fcmove
        | M::Fcmovbe
        | M::Fcmovu
        | M::Fcmovnb
        | M::Fcmovne
        | M::Fcmovnbe
        | M::Fcmovnu => loadstore::fcmov,
        M::Ffree | M::Ffreep => loadstore::ffree,
        M::Fincstp | M::Fdecstp => loadstore::fincdecstp,
        M::Fcom | M::Fcomp | M::Fcompp | M::Fucom | M::Fucomp | M::Fucompp => compare::fcom,
        M::Ficom | M::Ficomp => compare::fcom,
        M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip => compare::fcomi,
        M::Ftst => compare::ftst,
        M::Fxam => compare::fxam,
        M::Fninit => control::fninit,
        M::Fnclex => control::fnclex,
        M::Fldcw => control::fldcw,
        M::Fnstcw => control::fnstcw,
        M::Fnstsw => control::fnstsw,
        M::Wait => control::fwait,
        M::Fnop | M::Fneni | M::Fndisi | M::Fnsetpm => control::fnop,
        M::Finit
        | M::Fclex
        | M::Fstcw
        | M::Fstsw
        | M::Fstenv
        | M::Fsave
        | M::Feni
        | M::Fdisi
        | M::Fsetpm => control::waited,
        M::Fnstenv => env::fnstenv,
        M::Fldenv => env::fldenv,
        M::Fnsave => env::fnsave,
        M::Frstor => env::frstor,
        M::F2xm1 => transcendental::f2xm1,
        M::Fyl2x => transcendental::fyl2x,
        M::Fyl2xp1 => transcendental::fyl2xp1,
        M::Fsin => transcendental::fsin,
        M::Fcos => transcendental::fcos,
        M::Fsincos => transcendental::fsincos,
        M::Fptan => transcendental::fptan,
        M::Fpatan => transcendental::fpatan,
        M::Fxsave | M::Fxsave64 => fxsave::fxsave,
        M::Fxrstor | M::Fxrstor64 => fxsave::fxrstor,
        _ => return None,
    };
    Some((h, InsnClass::X87))
}

/// The operand size of a memory-operand x87 instruction in bytes.
#[inline]
fn mem_size(i: &Instruction) -> usize {
    i.memory_size().size()
}

/// True if an access of `size` bytes at `la` must raise #AC (CR0.AM,
/// RFLAGS.AC, CPL 3, misaligned to `align`; SDM Vol. 3A 6.15 "Interrupt
/// 17", table 6-7).
fn misaligned(m: &Machine, la: u64, align: u64) -> bool {
    align > 1
        && la & (align - 1) != 0
        && m.cpu.cpl() == 3
        && m.cpu.sys.cr0.contains(Cr0::AM)
        && m.cpu.flags.has(Rflags::AC)
}

/// Reads the bytes of the memory operand (any size) after segmentation,
/// alignment-check and paging checks.
fn read_operand_bytes(
    m: &mut Machine,
    i: &Instruction,
    buf: &mut [u8],
    align: u64,
) -> Result<(), Event> {
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    read_bytes_at(m, seg, off, buf, align)
}

/// Reads bytes at `seg:off`.
fn read_bytes_at(
    m: &mut Machine,
    seg: SegReg,
    off: u64,
    buf: &mut [u8],
    align: u64,
) -> Result<(), Event> {
    let la = m.linear(seg, off, buf.len(), false)?;
    if misaligned(m, la, align) {
        return Err(Event::Exception(mmu::Exception::ac()));
    }
    m.read_linear_bytes(la, buf, Privilege::Current)
}

/// Checks that `len` bytes at `seg:off` can be written, without writing:
/// the linear address after segmentation and alignment checks.
fn write_target(
    m: &mut Machine,
    seg: SegReg,
    off: u64,
    len: usize,
    align: u64,
) -> Result<u64, Event> {
    let la = m.linear(seg, off, len, true)?;
    if misaligned(m, la, align) {
        return Err(Event::Exception(mmu::Exception::ac()));
    }
    Ok(la)
}

/// Writes the memory operand's bytes (all pages checked before any byte is
/// written).
fn write_operand_bytes(
    m: &mut Machine,
    i: &Instruction,
    data: &[u8],
    align: u64,
) -> Result<(), Event> {
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    let la = write_target(m, seg, off, data.len(), align)?;
    m.write_linear_bytes(la, data, Privilege::Current)
}

/// Reads the memory operand as an integer of its size (at most 8 bytes).
fn read_operand(m: &mut Machine, i: &Instruction) -> Result<u64, Event> {
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    m.read_mem(seg, off, mem_size(i))
}

/// The ST(i) register number of operand `n` (ST0..ST7).
#[inline]
fn st_index(i: &Instruction, n: u32) -> usize {
    let r = i.op_register(n) as usize;
    r - iced_x86::Register::ST0 as usize
}

/// True for the FSTENV/FSAVE/FLDENV/FRSTOR 16-bit layouts.
#[inline]
fn is_16bit_env(i: &Instruction) -> bool {
    matches!(
        i.code(),
        Code::Fnstenv_m14byte
            | Code::Fstenv_m14byte
            | Code::Fldenv_m14byte
            | Code::Fnsave_m94byte
            | Code::Fsave_m94byte
            | Code::Frstor_m94byte
    )
}
