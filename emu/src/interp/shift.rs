//! Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD, SHRD, and
//! the flagless BMI2 forms SARX, SHLX, SHRX, RORX (SDM Vol. 2B "SAL/SAR/SHL/SHR",
//! "RCL/RCR/ROL/ROR", "SHLD", "SHRD"; Vol. 2B "SARX/SHLX/SHRX", "RORX").
//!
//! The count is masked to 5 bits (6 with a 64-bit operand). A masked count of
//! 0 changes no flags. The destination is read with write intent and written
//! before the flags change, so a faulting write leaves RFLAGS as it was. OF is defined only for a count of 1; for larger counts
//! the value given is the same formula, which the differential tests mask.

use super::operand::size_mask;
use crate::cpu::flags::{sign_extend, LazyOp};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};
use mmu::Rflags;

struct Shift {
    size: usize,
    width: u32,
    mask: u64,
    value: u64,
    count: u32,
}

/// Reads the destination and the masked count.
#[inline(always)]
fn operands(m: &mut Machine, i: &Instruction, count_op: u32) -> Result<Shift, crate::event::Event> {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let value = m.read_op_rmw(i, 0)? & mask;
    let raw = if i.op_count() > count_op {
        m.read_op(i, count_op)?
    } else {
        1
    };
    let count = (raw & if size == 8 { 0x3f } else { 0x1f }) as u32;
    Ok(Shift {
        size,
        width: (size * 8) as u32,
        mask,
        value,
        count,
    })
}

/// A masked count of 0 writes nothing, except that a 32-bit register
/// destination is still zero-extended in 64-bit mode.
#[inline(always)]
fn count_zero(m: &mut Machine, i: &Instruction, s: &Shift) -> Flow {
    if s.size == 4 && i.op_kind(0) == OpKind::Register {
        m.write_op(i, 0, s.value)?;
    }
    Ok(())
}

/// SHL / SAL.
pub fn shl(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let r = if s.count >= 64 { 0 } else { s.value << s.count } & s.mask;
    m.write_op(i, 0, r)?;
    m.cpu
        .flags
        .set_lazy(LazyOp::Shl, s.width as u8, s.value, s.count as u64, r);
    Ok(())
}

/// SHR.
pub fn shr(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let r = if s.count >= 64 { 0 } else { s.value >> s.count };
    m.write_op(i, 0, r)?;
    m.cpu
        .flags
        .set_lazy(LazyOp::Shr, s.width as u8, s.value, s.count as u64, r);
    Ok(())
}

/// SAR.
pub fn sar(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let sv = sign_extend(s.value, s.width as u8);
    let r = (sv >> s.count.min(63)) as u64 & s.mask;
    m.write_op(i, 0, r)?;
    m.cpu
        .flags
        .set_lazy(LazyOp::Sar, s.width as u8, s.value, s.count as u64, r);
    Ok(())
}

/// Sets CF and OF, keeping the other status flags.
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

/// ROL: CF = LSB of the result; OF = MSB(result) XOR CF.
pub fn rol(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let r = rotl(s.value, s.count % s.width, s.width, s.mask);
    let cf = r & 1 != 0;
    let msb = (r >> (s.width - 1)) & 1 != 0;
    m.write_op(i, 0, r)?;
    set_cf_of(m, cf, msb ^ cf);
    Ok(())
}

/// ROR: CF = MSB of the result; OF = XOR of the two most-significant bits.
pub fn ror(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let n = s.count % s.width;
    let r = rotl(s.value, (s.width - n) % s.width, s.width, s.mask);
    let msb = (r >> (s.width - 1)) & 1 != 0;
    let msb1 = (r >> (s.width - 2)) & 1 != 0;
    m.write_op(i, 0, r)?;
    set_cf_of(m, msb, msb ^ msb1);
    Ok(())
}

/// RCL: rotate left through CF; the count is taken modulo width + 1.
pub fn rcl(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let n = s.count % (s.width + 1);
    let mut v = s.value as u128 | (m.cpu.flags.cf() as u128) << s.width;
    let w1 = s.width + 1;
    let full = (1u128 << w1) - 1;
    if n != 0 {
        v = ((v << n) | (v >> (w1 - n))) & full;
    }
    let r = v as u64 & s.mask;
    let cf = (v >> s.width) & 1 != 0;
    let msb = (r >> (s.width - 1)) & 1 != 0;
    m.write_op(i, 0, r)?;
    set_cf_of(m, cf, msb ^ cf);
    Ok(())
}

/// RCR: rotate right through CF; OF = MSB XOR CF before the rotation.
pub fn rcr(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 1)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let n = s.count % (s.width + 1);
    let cin = m.cpu.flags.cf();
    let of = ((s.value >> (s.width - 1)) & 1 != 0) ^ cin;
    let mut v = s.value as u128 | (cin as u128) << s.width;
    let w1 = s.width + 1;
    let full = (1u128 << w1) - 1;
    if n != 0 {
        v = ((v >> n) | (v << (w1 - n))) & full;
    }
    let r = v as u64 & s.mask;
    let cf = (v >> s.width) & 1 != 0;
    m.write_op(i, 0, r)?;
    set_cf_of(m, cf, of);
    Ok(())
}

/// Sets the flags of a double-precision shift.
fn shxd_flags(m: &mut Machine, s: &Shift, r: u64, cf: bool) {
    let w = s.width;
    let sf = (r >> (w - 1)) & 1 != 0;
    let of = ((s.value >> (w - 1)) & 1 != 0) != sf;
    let mut f = crate::cpu::flags::parity(r);
    if r == 0 {
        f |= Rflags::ZF.bits();
    }
    if sf {
        f |= Rflags::SF.bits();
    }
    if cf {
        f |= Rflags::CF.bits();
    }
    if of {
        f |= Rflags::OF.bits();
    }
    m.cpu.flags.set_status(f);
}

/// SHLD: shift left, filling from the source register. With a 16-bit operand
/// and a count above 16 the result is undefined; this shifts through the
/// 32-bit concatenation dest:src:dest as current Intel processors do.
pub fn shld(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 2)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let src = m.read_op(i, 1)? & s.mask;
    let w = s.width;
    let (r, cf) = if w == 16 {
        let cat = (s.value as u128) << 32 | (src as u128) << 16 | s.value as u128;
        let sh = cat << s.count;
        (((sh >> 32) as u64) & 0xffff, (sh >> 48) & 1 != 0)
    } else {
        // 32 and 64 bits: the masked count is below the width. CF is the last
        // bit shifted out of the destination, bit (width - count).
        let n = s.count;
        let r = (s.value << n | src >> (w - n)) & s.mask;
        (r, (s.value >> (w - n)) & 1 != 0)
    };
    m.write_op(i, 0, r)?;
    shxd_flags(m, &s, r, cf);
    Ok(())
}

/// SHRD: shift right, filling from the source register.
pub fn shrd(m: &mut Machine, i: &Instruction) -> Flow {
    let s = operands(m, i, 2)?;
    if s.count == 0 {
        return count_zero(m, i, &s);
    }
    let src = m.read_op(i, 1)? & s.mask;
    let w = s.width;
    let (r, cf) = if w == 16 {
        // Counts above 16 are undefined; shift through dest:src:dest.
        let cat = (s.value as u128) << 32 | (src as u128) << 16 | s.value as u128;
        let sh = cat >> (s.count - 1);
        (((sh >> 1) as u64) & 0xffff, sh & 1 != 0)
    } else {
        let cat = (src as u128) << w | s.value as u128;
        let sh = cat >> (s.count - 1);
        (((sh >> 1) as u64) & s.mask, sh & 1 != 0)
    };
    m.write_op(i, 0, r)?;
    shxd_flags(m, &s, r, cf);
    Ok(())
}

/// SARX, SHLX, SHRX: shift by a register count masked to the operand size; no
/// flags.
pub fn shiftx(m: &mut Machine, i: &Instruction) -> Flow {
    use iced_x86::Mnemonic as M;
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let v = m.read_op(i, 1)? & mask;
    let n = (m.read_op(i, 2)? & if size == 8 { 63 } else { 31 }) as u32;
    let r = match i.mnemonic() {
        M::Shlx => v << n,
        M::Shrx => v >> n,
        _ => (sign_extend(v, (size * 8) as u8) >> n) as u64,
    };
    m.write_op(i, 0, r & mask)
}

/// RORX: rotate right by an immediate; no flags.
pub fn rorx(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let mask = size_mask(size);
    let v = m.read_op(i, 1)? & mask;
    let n = (i.immediate8() as u32) % w;
    let r = rotl(v, (w - n) % w, w, mask);
    m.write_op(i, 0, r)
}
