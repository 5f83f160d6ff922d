//! Pre-resolved operations: the interpreter's fast path for the hot
//! instructions.
//!
//! When a block is decoded, each instruction becomes an [`Op`]: its iced-x86
//! `Instruction`, its generic handler from [`super::handler_for`] (the
//! reference semantics), and an [`Exec`] function to run. For most
//! instructions `exec` just calls the handler. For the common integer forms
//! (ALU, moves, LEA, stack, near branches, shifts, IMUL, CMOVcc, SETcc with
//! register, immediate and simple memory operands) [`compile`] picks a
//! function specialized for the operation, the operand size and the operand
//! form, and stores what the handler would work out from the `Instruction`
//! on every execution: register numbers, the masked immediate, the
//! displacement, base, index, scale and address-size mask of the memory
//! operand, the branch offset.
//!
//! A specialized function does what the handler does, in the same order:
//! the same memory accesses (through [`crate::memory::fast`], which is the
//! modelled TLB's first-level hit without its search), the same faults, the
//! same lazy flag record, the same RIP. `tests` runs random instructions
//! through both and compares the whole machine.

mod alu;
mod flow;
pub mod fused;
mod moves;
mod operands;
#[cfg(test)]
mod tests;

use super::cache::DecodedInsn;
use super::{arith, control, data, muldiv, shift, stack, Handler};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

/// How an [`Op`] runs.
///
/// It returns a one-byte [`Step`] rather than a [`Flow`]: the result of
/// every instruction then comes back in a register, where a `Flow` (larger
/// than two registers) comes back through memory. The event of an
/// instruction that raised one waits in the machine
/// ([`Machine::take_raised`]); [`Op::run`] gives it back as a `Flow`.
pub type Exec = fn(&mut Machine, &Op) -> Step;

/// What an [`Exec`] returns: `Err` when the instruction raised an event.
pub type Step = Result<(), Raised>;

/// An instruction raised an event, parked in the machine until
/// [`Machine::take_raised`] takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised;

/// The [`Step`] of a [`Flow`]: its event, if any, parked in the machine.
#[inline(always)]
pub fn lift(m: &mut Machine, r: Flow) -> Step {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(m.park(e)),
    }
}

impl Machine {
    /// Parks the event an [`Exec`] raised.
    #[cold]
    #[inline(never)]
    pub(crate) fn park(&mut self, e: crate::event::Event) -> Raised {
        self.raised = Some(e);
        Raised
    }

    /// The event parked by the [`Exec`] that returned [`Raised`].
    #[cold]
    pub(crate) fn take_raised(&mut self) -> crate::event::Event {
        self.raised
            .take()
            .expect("an Exec that returns Raised has parked its event")
    }
}

/// An [`Exec`] of a function shaped like a handler (returning a [`Flow`]).
macro_rules! lifted {
    ($f:expr) => {
        (|m: &mut $crate::machine::Machine, op: &$crate::interp::fast::Op| {
            let r = $f(m, op);
            $crate::interp::fast::lift(m, r)
        }) as $crate::interp::fast::Exec
    };
}
pub(crate) use lifted;

/// "No register" in [`Op::base`] and [`Op::index`].
pub const NO_REG: u8 = 0xff;
/// [`Op::base`] of a RIP- or EIP-relative memory operand.
pub const RIP_REL: u8 = 0xfe;

/// One decoded instruction, ready to run.
#[derive(Clone, Copy)]
pub struct Op {
    /// Runs the instruction.
    pub exec: Exec,
    /// The generic handler (the reference semantics).
    pub handler: Handler,
    /// The decoded instruction.
    pub insn: Instruction,
    /// Immediate operand masked to the operand size; for relative branches
    /// the target minus the next instruction's address.
    pub imm: u64,
    /// Memory operand: displacement (for RIP-relative operands, minus the
    /// next instruction's address).
    pub disp: u64,
    /// Memory operand: address-size mask; for branches the operand-size
    /// mask of the target.
    pub amask: u64,
    /// Modelled base cost in cycles.
    pub cost: u32,
    /// Register operand 0 (GPR number 0-15).
    pub r0: u8,
    /// Register operand 1.
    pub r1: u8,
    /// Memory operand: base GPR, [`NO_REG`] or [`RIP_REL`].
    pub base: u8,
    /// Memory operand: index GPR or [`NO_REG`].
    pub index: u8,
    /// Memory operand: log2 of the scale.
    pub scale: u8,
    /// Memory operand: segment ([`mmu::SegReg`] as u8).
    pub seg: u8,
    /// Instruction length.
    pub len: u8,
    /// Offset of the instruction from the start of its block.
    pub start: u16,
}

// One op per cache line and a half at most: the block loop walks them.
const _: () = assert!(core::mem::size_of::<Op>() <= 96);

/// Runs the generic handler.
fn generic(m: &mut Machine, op: &Op) -> Step {
    let r = (op.handler)(m, &op.insn);
    lift(m, r)
}

impl Op {
    /// The modelled cost of `ops`: the sum of their [`Op::cost`].
    pub fn total_cost(ops: &[Op]) -> u64 {
        ops.iter().map(|o| o.cost as u64).sum()
    }

    /// An operation that runs the generic handler.
    pub fn generic(d: DecodedInsn) -> Op {
        Op {
            exec: generic,
            handler: d.handler,
            insn: d.insn,
            imm: 0,
            disp: 0,
            amask: u64::MAX,
            cost: d.cost,
            r0: 0,
            r1: 0,
            base: NO_REG,
            index: NO_REG,
            scale: 0,
            seg: 0,
            len: d.insn.len() as u8,
            start: 0,
        }
    }

    /// Runs the operation, with its event (if it raised one) as a [`Flow`].
    #[inline(always)]
    pub fn run(&self, m: &mut Machine) -> Flow {
        match (self.exec)(m, self) {
            Ok(()) => Ok(()),
            Err(Raised) => Err(m.take_raised()),
        }
    }

    /// [`Op::r0`] as an index into the GPRs (masked, so the index needs no
    /// bounds check: a register number is below 16).
    #[inline(always)]
    pub fn reg0(&self) -> usize {
        (self.r0 & 15) as usize
    }

    /// [`Op::r1`] as an index into the GPRs.
    #[inline(always)]
    pub fn reg1(&self) -> usize {
        (self.r1 & 15) as usize
    }

    /// True if the operation runs a specialized function.
    pub fn is_specialized(&self) -> bool {
        !std::ptr::fn_addr_eq(self.exec, generic as Exec)
    }

    /// True if the operation runs a specialized function that reaches
    /// nothing but the general-purpose registers, the status flags and the
    /// next RIP: no memory operand (LEA and NOP only compute or name one),
    /// no stack. Such an operation reads neither the clock, the counters,
    /// the current RIP nor any device, so the run loop may count a run of
    /// them once at its end (`Machine::run_ops`).
    pub fn is_pure(&self) -> bool {
        if !self.is_specialized() {
            return false;
        }
        let i = &self.insn;
        match i.mnemonic() {
            Mnemonic::Push | Mnemonic::Pop | Mnemonic::Call | Mnemonic::Ret => false,
            Mnemonic::Lea | Mnemonic::Nop => true,
            _ => (0..i.op_count()).all(|n| i.op_kind(n) != OpKind::Memory),
        }
    }
}

/// The operation for a decoded instruction: specialized when its form is
/// one [`compile`] knows, else generic.
pub fn compile(d: DecodedInsn) -> Op {
    let mut op = Op::generic(d);
    if let Some(exec) = specialize(&mut op) {
        op.exec = exec;
    }
    op
}

/// A general-purpose register operand: its number and size in bytes. The
/// high-byte registers (AH, CH, DH, BH) are left to the generic handlers.
fn gpr(r: Register) -> Option<(u8, usize)> {
    let n = r as u32;
    match n {
        1..=4 => Some(((n - 1) as u8, 1)),
        9..=20 => Some(((n - 5) as u8, 1)),
        21..=36 => Some(((n - 21) as u8, 2)),
        37..=52 => Some(((n - 37) as u8, 4)),
        53..=68 => Some(((n - 53) as u8, 8)),
        _ => None,
    }
}

/// An operand's form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Reg(u8, usize),
    Mem,
    Imm,
}

fn form(i: &Instruction, n: u32) -> Option<Form> {
    match i.op_kind(n) {
        OpKind::Register => gpr(i.op_register(n)).map(|(r, s)| Form::Reg(r, s)),
        OpKind::Memory => Some(Form::Mem),
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Some(Form::Imm),
        _ => None,
    }
}

/// Resolves the memory operand into `op`; false if its form is not one the
/// fast path computes (a vector index, an odd base).
fn resolve_mem(op: &mut Op) -> bool {
    let i = &op.insn;
    let base = i.memory_base();
    let index = i.memory_index();
    // As `Machine::mem_seg`: in 64-bit code only FS and GS overrides count;
    // the others fall back to the default segment of the base.
    let seg = i.memory_segment();
    op.seg = if i.code_size() == iced_x86::CodeSize::Code64
        && !matches!(seg, Register::FS | Register::GS)
    {
        match base {
            Register::RSP | Register::RBP | Register::ESP | Register::EBP => mmu::SegReg::Ss,
            _ => mmu::SegReg::Ds,
        }
    } else {
        super::operand::seg_of(seg)
    } as u8;
    if base == Register::RIP || base == Register::EIP {
        if index != Register::None {
            return false;
        }
        op.base = RIP_REL;
        op.disp = i.memory_displacement64().wrapping_sub(i.next_ip());
        op.amask = if base == Register::EIP {
            0xffff_ffff
        } else {
            u64::MAX
        };
        return true;
    }
    // The address size, as `Machine::effective_address` derives it.
    let mut asize = 0;
    op.base = NO_REG;
    op.index = NO_REG;
    if base != Register::None {
        let Some((r, s)) = gpr(base).filter(|&(_, s)| s >= 2) else {
            return false;
        };
        op.base = r;
        asize = s;
    }
    if index != Register::None {
        let Some((r, s)) = gpr(index).filter(|&(_, s)| s >= 2) else {
            return false;
        };
        op.index = r;
        op.scale = i.memory_index_scale().trailing_zeros() as u8;
        asize = s;
    }
    if asize == 0 {
        asize = match i.memory_displ_size() {
            2 => 2,
            4 => 4,
            _ => 8,
        };
    }
    op.disp = i.memory_displacement64();
    op.amask = super::operand::size_mask(asize);
    true
}

fn is(h: Handler, f: Handler) -> bool {
    std::ptr::fn_addr_eq(h, f)
}

/// The specialized function for `op`, with its operand fields filled, or
/// `None`.
fn specialize(op: &mut Op) -> Option<Exec> {
    let i = op.insn;
    if i.has_lock_prefix() || i.is_invalid() {
        return None;
    }
    let h = op.handler;
    let mnemonic = i.mnemonic();
    let nops = i.op_count();
    // Operand forms, register numbers and sizes.
    let f0 = if nops > 0 { form(&i, 0) } else { None };
    let f1 = if nops > 1 { form(&i, 1) } else { None };
    if let Some(Form::Reg(r, _)) = f0 {
        op.r0 = r;
    }
    if let Some(Form::Reg(r, _)) = f1 {
        op.r1 = r;
    }
    let mem = matches!(f0, Some(Form::Mem)) || matches!(f1, Some(Form::Mem));
    if mem && !resolve_mem(op) {
        return None;
    }
    use Mnemonic as M;
    let alu = |op: &mut Op, which: alu::Which| -> Option<Exec> {
        let (f0, f1) = (f0?, f1?);
        let size = match f0 {
            Form::Reg(_, s) => s,
            Form::Mem => i.memory_size().size(),
            Form::Imm => return None,
        };
        if let Form::Reg(_, s) = f1 {
            if s != size {
                return None;
            }
        }
        if f1 == Form::Imm {
            op.imm = i.immediate(1) & super::operand::size_mask(size);
        }
        alu::binary(which, f0, f1, size)
    };
    match mnemonic {
        M::Add if is(h, arith::add) => alu(op, alu::Which::Add),
        M::Or if is(h, arith::or) => alu(op, alu::Which::Or),
        M::Adc if is(h, arith::adc) => alu(op, alu::Which::Adc),
        M::Sbb if is(h, arith::sbb) => alu(op, alu::Which::Sbb),
        M::And if is(h, arith::and) => alu(op, alu::Which::And),
        M::Sub if is(h, arith::sub) => alu(op, alu::Which::Sub),
        M::Xor if is(h, arith::xor) => alu(op, alu::Which::Xor),
        M::Cmp if is(h, arith::cmp) => alu(op, alu::Which::Cmp),
        M::Test if is(h, arith::test) => alu(op, alu::Which::Test),
        M::Inc if is(h, arith::inc) => alu::unary(alu::Unary::Inc, f0?, &i),
        M::Dec if is(h, arith::dec) => alu::unary(alu::Unary::Dec, f0?, &i),
        M::Neg if is(h, arith::neg) => alu::unary(alu::Unary::Neg, f0?, &i),
        M::Not if is(h, arith::not) => alu::unary(alu::Unary::Not, f0?, &i),
        M::Shl | M::Sal if is(h, shift::shl) => alu::shift(alu::Shift::Shl, op, f0?),
        M::Shr if is(h, shift::shr) => alu::shift(alu::Shift::Shr, op, f0?),
        M::Sar if is(h, shift::sar) => alu::shift(alu::Shift::Sar, op, f0?),
        M::Rol if is(h, shift::rol) => alu::shift(alu::Shift::Rol, op, f0?),
        M::Ror if is(h, shift::ror) => alu::shift(alu::Shift::Ror, op, f0?),
        M::Imul if is(h, muldiv::imul) => alu::imul(op, f0?, f1?),
        M::Mov if is(h, data::mov) => moves::mov(op, f0?, f1?),
        M::Movzx if is(h, data::movzx) => moves::extend(op, f0?, f1?, false),
        M::Movsx | M::Movsxd if is(h, data::movsx) => moves::extend(op, f0?, f1?, true),
        M::Lea if is(h, data::lea) => moves::lea(op, f0?),
        M::Xchg if is(h, data::xchg) => moves::xchg(f0?, f1?),
        M::Nop if is(h, data::nop) => Some(moves::nop as Exec),
        M::Jmp if is(h, control::jmp) => flow::jmp(op),
        M::Call if is(h, control::call) => flow::call(op),
        M::Ret if is(h, control::ret) => flow::ret(op),
        M::Push if is(h, stack::push) => flow::push(op, f0?),
        M::Pop if is(h, stack::pop) => flow::pop(op, f0?),
        _ if is(h, control::jcc) => flow::jcc(op),
        _ if is(h, data::cmovcc) => moves::cmovcc(op, f0?, f1?),
        _ if is(h, data::setcc) => moves::setcc(op, f0?),
        _ => None,
    }
}

/// Monomorphizes `$f::<..., S>` for the operand size `$size` (1, 2, 4, 8).
macro_rules! sized {
    ($size:expr, $f:ident $(:: < $($g:ident),* >)?) => {
        match $size {
            1 => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 1>)),
            2 => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 2>)),
            4 => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 4>)),
            8 => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 8>)),
            _ => None,
        }
    };
}
pub(crate) use sized;

/// Monomorphizes `$f::<..., CC>` for a condition code (numbered as
/// [`cond`] reads them).
macro_rules! by_cc {
    ($cc:expr, $f:ident $(:: < $($g:ident),* >)?) => {{
        use iced_x86::ConditionCode as C;
        match $cc {
            C::o => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 1>)),
            C::no => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 2>)),
            C::b => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 3>)),
            C::ae => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 4>)),
            C::e => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 5>)),
            C::ne => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 6>)),
            C::be => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 7>)),
            C::a => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 8>)),
            C::s => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 9>)),
            C::ns => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 10>)),
            C::p => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 11>)),
            C::np => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 12>)),
            C::l => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 13>)),
            C::ge => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 14>)),
            C::le => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 15>)),
            C::g => Some($crate::interp::fast::lifted!($f::<$($($g,)*)? 16>)),
            _ => None,
        }
    }};
}
pub(crate) use by_cc;

/// Evaluates condition `CC` (numbered as [`by_cc`] assigns them) with the
/// handlers' `data::condition`.
#[inline(always)]
pub fn cond<const CC: u8>(m: &Machine) -> bool {
    use iced_x86::ConditionCode as C;
    let cc = match CC {
        1 => C::o,
        2 => C::no,
        3 => C::b,
        4 => C::ae,
        5 => C::e,
        6 => C::ne,
        7 => C::be,
        8 => C::a,
        9 => C::s,
        10 => C::ns,
        11 => C::p,
        12 => C::np,
        13 => C::l,
        14 => C::ge,
        15 => C::le,
        _ => C::g,
    };
    data::condition(m, cc)
}
