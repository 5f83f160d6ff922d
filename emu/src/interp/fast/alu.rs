//! Pre-resolved integer arithmetic: the two-operand ALU instructions, INC,
//! DEC, NEG, NOT, the shifts and rotates by an immediate or CL, and the
//! two- and three-operand IMUL. Each mirrors its handler in `arith`,
//! `shift` or `muldiv` step for step (SDM Vol. 2; flags per Vol. 1
//! appendix A).

use super::operands::{ea_if, Imm, Mem, Place, Reg0, Reg1};
use super::{sized, Exec, Form, Op};
use crate::cpu::flags::{parity, sign_extend, Flags, LazyOp};
use crate::event::Flow;
use crate::interp::operand::size_mask;
use crate::machine::Machine;
use iced_x86::Instruction;
use mmu::Rflags;

/// A two-operand ALU operation: computes the result and records the flags
/// exactly as the handler's closure does.
pub trait Binary {
    /// The destination is written (false for CMP and TEST).
    const WRITE: bool;
    /// `a` and `b` are masked to the operand width `w` (bits).
    fn apply(f: &mut Flags, a: u64, b: u64, w: u8) -> u64;
}

/// The mask of a `w`-bit result.
#[inline(always)]
fn wmask(w: u8) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

macro_rules! binary {
    ($name:ident, $write:expr, |$f:ident, $a:ident, $b:ident, $w:ident| $body:block) => {
        /// See [`Binary`].
        pub struct $name;
        impl Binary for $name {
            const WRITE: bool = $write;
            #[inline(always)]
            fn apply($f: &mut Flags, $a: u64, $b: u64, $w: u8) -> u64 $body
        }
    };
}

binary!(Add, true, |f, a, b, w| {
    let r = a.wrapping_add(b) & wmask(w);
    f.set_lazy(LazyOp::Add, w, a, b, r);
    r
});
binary!(Adc, true, |f, a, b, w| {
    let c = f.cf();
    let r = a.wrapping_add(b).wrapping_add(c as u64) & wmask(w);
    let op = if c { LazyOp::Adc1 } else { LazyOp::Add };
    f.set_lazy(op, w, a, b, r);
    r
});
binary!(Sub, true, |f, a, b, w| {
    let r = a.wrapping_sub(b) & wmask(w);
    f.set_lazy(LazyOp::Sub, w, a, b, r);
    r
});
binary!(Sbb, true, |f, a, b, w| {
    let c = f.cf();
    let r = a.wrapping_sub(b).wrapping_sub(c as u64) & wmask(w);
    let op = if c { LazyOp::Sbb1 } else { LazyOp::Sub };
    f.set_lazy(op, w, a, b, r);
    r
});
binary!(Cmp, false, |f, a, b, w| {
    let r = a.wrapping_sub(b) & wmask(w);
    f.set_lazy(LazyOp::Sub, w, a, b, r);
    r
});
binary!(And, true, |f, a, b, w| {
    let r = a & b;
    f.set_lazy(LazyOp::Logic, w, a, b, r);
    r
});
binary!(Or, true, |f, a, b, w| {
    let r = a | b;
    f.set_lazy(LazyOp::Logic, w, a, b, r);
    r
});
binary!(Xor, true, |f, a, b, w| {
    let r = a ^ b;
    f.set_lazy(LazyOp::Logic, w, a, b, r);
    r
});
binary!(Test, false, |f, a, b, w| {
    let r = a & b;
    f.set_lazy(LazyOp::Logic, w, a, b, r);
    r
});

/// Which two-operand operation.
#[derive(Clone, Copy)]
pub enum Which {
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
    Test,
}

/// `arith::alu2`: read both operands, compute, record the flags, write the
/// destination unless the operation only compares.
#[inline(always)]
pub(super) fn alu<A: Binary, D: Place, S: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let mask = size_mask(N);
    let ea = ea_if::<D, S>(m, op);
    let a = if A::WRITE {
        D::read_rmw::<N>(m, op, ea)?
    } else {
        D::read::<N>(m, op, ea)?
    };
    let b = S::read::<N>(m, op, ea)?;
    let before = m.cpu.flags;
    let r = A::apply(&mut m.cpu.flags, a, b, (N * 8) as u8) & mask;
    if A::WRITE {
        D::commit::<N>(m, op, ea, r, before)?;
    }
    Ok(())
}

fn forms<A: Binary>(f0: Form, f1: Form, size: usize) -> Option<Exec> {
    match (f0, f1) {
        (Form::Reg(..), Form::Reg(..)) => sized!(size, alu::<A, Reg0, Reg1>),
        (Form::Reg(..), Form::Imm) => sized!(size, alu::<A, Reg0, Imm>),
        (Form::Reg(..), Form::Mem) => sized!(size, alu::<A, Reg0, Mem>),
        (Form::Mem, Form::Reg(..)) => sized!(size, alu::<A, Mem, Reg1>),
        (Form::Mem, Form::Imm) => sized!(size, alu::<A, Mem, Imm>),
        _ => None,
    }
}

/// The function for a two-operand ALU instruction of these forms.
pub fn binary(which: Which, f0: Form, f1: Form, size: usize) -> Option<Exec> {
    match which {
        Which::Add => forms::<Add>(f0, f1, size),
        Which::Or => forms::<Or>(f0, f1, size),
        Which::Adc => forms::<Adc>(f0, f1, size),
        Which::Sbb => forms::<Sbb>(f0, f1, size),
        Which::And => forms::<And>(f0, f1, size),
        Which::Sub => forms::<Sub>(f0, f1, size),
        Which::Xor => forms::<Xor>(f0, f1, size),
        Which::Cmp => forms::<Cmp>(f0, f1, size),
        Which::Test => forms::<Test>(f0, f1, size),
    }
}

/// Which one-operand operation.
#[derive(Clone, Copy)]
pub enum Unary {
    Inc,
    Dec,
    Neg,
    Not,
}

/// INC / DEC (CF kept).
#[inline(always)]
pub(super) fn incdec<D: Place, const DEC: bool, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    // The CF kept, first: nothing else is live across its out-of-line
    // cases.
    let cf = m.cpu.flags.kept_cf_bit();
    let ea = ea_if::<D, D>(m, op);
    let a = D::read_rmw::<N>(m, op, ea)?;
    let r = if DEC {
        a.wrapping_sub(1)
    } else {
        a.wrapping_add(1)
    };
    let before = m.cpu.flags;
    m.cpu.flags.set_incdec_cf(cf, DEC, (N * 8) as u8, a, r);
    D::commit::<N>(m, op, ea, r, before)
}

/// NEG.
#[inline(always)]
fn neg<D: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let ea = ea_if::<D, D>(m, op);
    let a = D::read_rmw::<N>(m, op, ea)?;
    let r = 0u64.wrapping_sub(a);
    let before = m.cpu.flags;
    m.cpu.flags.set_lazy(LazyOp::Neg, (N * 8) as u8, a, 0, r);
    D::commit::<N>(m, op, ea, r, before)
}

/// NOT (no flags).
#[inline(always)]
fn not<D: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let ea = ea_if::<D, D>(m, op);
    let v = D::read_rmw::<N>(m, op, ea)?;
    D::write::<N>(m, op, ea, !v)
}

fn unary_on<D: Place>(which: Unary, size: usize) -> Option<Exec> {
    match which {
        Unary::Inc => sized!(size, inc::<D>),
        Unary::Dec => sized!(size, dec::<D>),
        Unary::Neg => sized!(size, neg::<D>),
        Unary::Not => sized!(size, not::<D>),
    }
}

/// INC (the `sized!` macro takes type arguments only).
#[inline(always)]
fn inc<D: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    incdec::<D, false, N>(m, op)
}

/// DEC.
#[inline(always)]
fn dec<D: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    incdec::<D, true, N>(m, op)
}

/// The function for INC, DEC, NEG or NOT on `f0`.
pub fn unary(which: Unary, f0: Form, i: &Instruction) -> Option<Exec> {
    match f0 {
        Form::Reg(_, s) => unary_on::<Reg0>(which, s),
        Form::Mem => unary_on::<Mem>(which, i.memory_size().size()),
        Form::Imm => None,
    }
}

/// Which shift or rotate.
#[derive(Clone, Copy)]
pub enum Shift {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
}

/// Where the count comes from.
pub trait Count {
    /// The raw count (before masking to 5 or 6 bits).
    fn raw(m: &Machine, op: &Op) -> u64;
}
/// The count is [`Op::imm`] (an immediate, or 1).
pub struct ImmCount;
/// The count is CL.
pub struct ClCount;
impl Count for ImmCount {
    #[inline(always)]
    fn raw(_: &Machine, op: &Op) -> u64 {
        op.imm
    }
}
impl Count for ClCount {
    #[inline(always)]
    fn raw(m: &Machine, _: &Op) -> u64 {
        m.cpu.gpr[1] & 0xff
    }
}

/// A shift kind's result and flags.
pub trait ShiftKind {
    /// Computes the result of shifting `value` (masked) by `count`
    /// (1..=63, masked) at width `w` bits, and records the flags.
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, mask: u64) -> u64;
}

/// Sets CF and OF, keeping the other status flags (`shift::set_cf_of`).
#[inline(always)]
fn set_cf_of(m: &mut Machine, cf: bool, of: bool) {
    m.cpu.flags.materialize();
    m.cpu.flags.assign(Rflags::CF, cf);
    m.cpu.flags.assign(Rflags::OF, of);
}

#[inline(always)]
fn rotl(v: u64, n: u32, w: u32, mask: u64) -> u64 {
    if n == 0 {
        v
    } else {
        ((v << n) | (v >> (w - n))) & mask
    }
}

/// SHL/SAL.
pub struct ShlK;
/// SHR.
pub struct ShrK;
/// SAR.
pub struct SarK;
/// ROL.
pub struct RolK;
/// ROR.
pub struct RorK;

impl ShiftKind for ShlK {
    #[inline(always)]
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, mask: u64) -> u64 {
        let r = if count >= 64 { 0 } else { value << count } & mask;
        m.cpu
            .flags
            .set_lazy(LazyOp::Shl, w as u8, value, count as u64, r);
        r
    }
}
impl ShiftKind for ShrK {
    #[inline(always)]
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, _: u64) -> u64 {
        let r = if count >= 64 { 0 } else { value >> count };
        m.cpu
            .flags
            .set_lazy(LazyOp::Shr, w as u8, value, count as u64, r);
        r
    }
}
impl ShiftKind for SarK {
    #[inline(always)]
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, mask: u64) -> u64 {
        let sv = sign_extend(value, w as u8);
        let r = (sv >> count.min(63)) as u64 & mask;
        m.cpu
            .flags
            .set_lazy(LazyOp::Sar, w as u8, value, count as u64, r);
        r
    }
}
impl ShiftKind for RolK {
    #[inline(always)]
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, mask: u64) -> u64 {
        let r = rotl(value, count % w, w, mask);
        let cf = r & 1 != 0;
        let msb = (r >> (w - 1)) & 1 != 0;
        set_cf_of(m, cf, msb ^ cf);
        r
    }
}
impl ShiftKind for RorK {
    #[inline(always)]
    fn apply(m: &mut Machine, value: u64, count: u32, w: u32, mask: u64) -> u64 {
        let n = count % w;
        let r = rotl(value, (w - n) % w, w, mask);
        let msb = (r >> (w - 1)) & 1 != 0;
        let msb1 = (r >> (w - 2)) & 1 != 0;
        set_cf_of(m, msb, msb ^ msb1);
        r
    }
}

/// `shift::operands` and the kind's body: read the destination, then the
/// count; a masked count of 0 only zero-extends a 32-bit register.
#[inline(always)]
fn shift_op<K: ShiftKind, D: Place, C: Count, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let mask = size_mask(N);
    let ea = ea_if::<D, D>(m, op);
    let value = D::read_rmw::<N>(m, op, ea)?;
    let count = (C::raw(m, op) & if N == 8 { 0x3f } else { 0x1f }) as u32;
    if count == 0 {
        if N == 4 && !D::MEM {
            D::write::<N>(m, op, ea, value)?;
        }
        return Ok(());
    }
    let before = m.cpu.flags;
    let r = K::apply(m, value, count, (N * 8) as u32, mask);
    D::commit::<N>(m, op, ea, r, before)
}

fn shift_on<K: ShiftKind, D: Place>(cl: bool, size: usize) -> Option<Exec> {
    if cl {
        sized!(size, shift_op::<K, D, ClCount>)
    } else {
        sized!(size, shift_op::<K, D, ImmCount>)
    }
}

fn shift_kind<K: ShiftKind>(f0: Form, cl: bool, size: usize) -> Option<Exec> {
    match f0 {
        Form::Reg(..) => shift_on::<K, Reg0>(cl, size),
        Form::Mem => shift_on::<K, Mem>(cl, size),
        Form::Imm => None,
    }
}

/// The function for SHL/SHR/SAR/ROL/ROR by an immediate, 1 or CL.
pub fn shift(which: Shift, op: &mut Op, f0: Form) -> Option<Exec> {
    let i = op.insn;
    let size = match f0 {
        Form::Reg(_, s) => s,
        Form::Mem => i.memory_size().size(),
        Form::Imm => return None,
    };
    let cl = if i.op_count() > 1 {
        match super::form(&i, 1)? {
            Form::Imm => {
                op.imm = i.immediate(1);
                false
            }
            Form::Reg(1, 1) => true,
            _ => return None,
        }
    } else {
        op.imm = 1;
        false
    };
    match which {
        Shift::Shl => shift_kind::<ShlK>(f0, cl, size),
        Shift::Shr => shift_kind::<ShrK>(f0, cl, size),
        Shift::Sar => shift_kind::<SarK>(f0, cl, size),
        Shift::Rol => shift_kind::<RolK>(f0, cl, size),
        Shift::Ror => shift_kind::<RorK>(f0, cl, size),
    }
}

/// `muldiv::mul_flags`: CF = OF = overflow; SF, ZF, PF from the low half.
#[inline(always)]
fn mul_flags(m: &mut Machine, lo: u64, width: u32, overflow: bool) {
    let mut f = parity(lo);
    if overflow {
        f |= Rflags::CF.bits() | Rflags::OF.bits();
    }
    if lo & size_mask((width / 8) as usize) == 0 {
        f |= Rflags::ZF.bits();
    }
    if (lo >> (width - 1)) & 1 != 0 {
        f |= Rflags::SF.bits();
    }
    m.cpu.flags.set_status(f);
}

/// IMUL r, r/m and IMUL r, r/m, imm: `a` and `b` are the factors' places,
/// the product goes to [`Op::r0`].
#[inline(always)]
fn imul_op<A: Place, B: Place, const N: usize>(m: &mut Machine, op: &Op) -> Flow {
    let w = (N * 8) as u32;
    let mask = size_mask(N);
    let ea = ea_if::<A, B>(m, op);
    let a = A::read::<N>(m, op, ea)?;
    let b = B::read::<N>(m, op, ea)?;
    let p = sign_extend(a, w as u8) as i128 * sign_extend(b, w as u8) as i128;
    let lo = p as u64 & mask;
    let overflow = sign_extend(lo, w as u8) as i128 != p;
    m.write_gpr_sized(op.reg0(), N, lo);
    mul_flags(m, lo, w, overflow);
    Ok(())
}

/// The function for the two- and three-operand IMUL.
pub fn imul(op: &mut Op, f0: Form, f1: Form) -> Option<Exec> {
    let i = op.insn;
    let Form::Reg(_, size) = f0 else {
        return None;
    };
    if size == 1 {
        return None;
    }
    match (i.op_count(), f1) {
        (2, Form::Reg(_, s)) if s == size => sized!(size, imul_op::<Reg0, Reg1>),
        (2, Form::Mem) => sized!(size, imul_op::<Reg0, Mem>),
        (3, Form::Reg(_, s)) if s == size => {
            op.imm = i.immediate(2) & size_mask(size);
            sized!(size, imul_op::<Reg1, Imm>)
        }
        (3, Form::Mem) => {
            op.imm = i.immediate(2) & size_mask(size);
            sized!(size, imul_op::<Mem, Imm>)
        }
        _ => None,
    }
}
