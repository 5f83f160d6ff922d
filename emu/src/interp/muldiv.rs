//! Integer multiply and divide: MUL, IMUL (one-, two- and three-operand), DIV,
//! IDIV, MULX (SDM Vol. 2A/2B, one entry each).
//!
//! MUL/IMUL set CF = OF = "the upper half is significant"; SF, ZF, AF and PF are
//! undefined and are given from the low half of the result. DIV/IDIV leave all
//! flags undefined; they are left unchanged here.

use super::operand::size_mask;
use crate::cpu::flags::{parity, sign_extend};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::Instruction;
use mmu::Rflags;

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

/// Writes the double-width product (or quotient/remainder) to the accumulator
/// pair: AX for bytes (AL low, AH high), else rDX:rAX.
fn write_pair(m: &mut Machine, size: usize, lo: u64, hi: u64) {
    if size == 1 {
        m.write_gpr_sized(0, 2, (hi & 0xff) << 8 | (lo & 0xff));
    } else {
        m.write_gpr_sized(0, size, lo);
        m.write_gpr_sized(2, size, hi);
    }
}

/// MUL r/m: unsigned rDX:rAX = rAX * r/m.
pub fn mul(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let a = m.cpu.gpr[0] & mask;
    let b = m.read_op(i, 0)? & mask;
    let p = a as u128 * b as u128;
    let lo = p as u64 & mask;
    let hi = (p >> w) as u64 & mask;
    write_pair(m, size, lo, hi);
    mul_flags(m, lo, w, hi != 0);
    Ok(())
}

/// IMUL in its three forms.
pub fn imul(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let (a, b) = match i.op_count() {
        1 => (m.cpu.gpr[0] & mask, m.read_op(i, 0)? & mask),
        2 => (m.read_op(i, 0)? & mask, m.read_op(i, 1)? & mask),
        _ => (m.read_op(i, 1)? & mask, m.read_op(i, 2)? & mask),
    };
    let p = sign_extend(a, w as u8) as i128 * sign_extend(b, w as u8) as i128;
    let lo = p as u64 & mask;
    let overflow = sign_extend(lo, w as u8) as i128 != p;
    if i.op_count() == 1 {
        let hi = (p >> w) as u64 & mask;
        write_pair(m, size, lo, hi);
    } else {
        m.write_op(i, 0, lo)?;
    }
    mul_flags(m, lo, w, overflow);
    Ok(())
}

/// DIV r/m: unsigned divide of rDX:rAX; #DE on a zero divisor or a quotient
/// that does not fit.
pub fn div(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let d = m.read_op(i, 0)? & mask;
    if d == 0 {
        return Err(Event::de());
    }
    let n: u128 = if size == 1 {
        (m.cpu.gpr[0] & 0xffff) as u128
    } else {
        ((m.cpu.gpr[2] & mask) as u128) << w | (m.cpu.gpr[0] & mask) as u128
    };
    let q = n / d as u128;
    if q > mask as u128 {
        return Err(Event::de());
    }
    let r = (n % d as u128) as u64;
    write_pair(m, size, q as u64, r);
    Ok(())
}

/// IDIV r/m: signed divide; #DE on a zero divisor or a quotient out of range
/// (including the most negative dividend divided by -1).
pub fn idiv(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let d = sign_extend(m.read_op(i, 0)? & mask, w as u8) as i128;
    if d == 0 {
        return Err(Event::de());
    }
    let n: i128 = if size == 1 {
        m.cpu.gpr[0] as u16 as i16 as i128
    } else {
        let raw = ((m.cpu.gpr[2] & mask) as u128) << w | (m.cpu.gpr[0] & mask) as u128;
        let bits = 2 * w;
        ((raw << (128 - bits)) as i128) >> (128 - bits)
    };
    let q = n.checked_div(d).ok_or_else(Event::de)?;
    let min = -(1i128 << (w - 1));
    let max = (1i128 << (w - 1)) - 1;
    if q < min || q > max {
        return Err(Event::de());
    }
    let r = n - q * d;
    write_pair(m, size, q as u64 & mask, r as u64 & mask);
    Ok(())
}

/// MULX: unsigned rDX * r/m into two destinations (high, low), no flags. When
/// both destinations are the same register it receives the high half.
pub fn mulx(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let a = m.cpu.gpr[2] & mask;
    let b = m.read_op(i, 2)? & mask;
    let p = a as u128 * b as u128;
    m.write_op(i, 1, p as u64 & mask)?;
    m.write_op(i, 0, (p >> w) as u64 & mask)
}
