//! Bit instructions: BT/BTS/BTR/BTC, BSF/BSR, POPCNT, LZCNT/TZCNT and the BMI1/
//! BMI2 group ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, PDEP, PEXT (SDM Vol. 2A/2B).

use super::operand::size_mask;
use crate::cpu::flags::parity;
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic, OpKind};
use mmu::Rflags;

const CF: u64 = Rflags::CF.bits();
const ZF: u64 = Rflags::ZF.bits();
const SF: u64 = Rflags::SF.bits();

/// BT, BTS, BTR, BTC. With a register bit offset and a memory operand the
/// offset is signed and may address outside the operand (SDM Vol. 2A BT,
/// "bit base + bit offset"); with an immediate it is taken modulo the width.
/// Only CF changes; the other flags are undefined and left as they were.
pub fn bt(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u64;
    let raw = m.read_op(i, 1)?;
    // BTS, BTR and BTC read their operand with write intent.
    let rmw = i.mnemonic() != Mnemonic::Bt;
    let (value, bit, mem) = if i.op_kind(0) == OpKind::Memory && i.op_kind(1) == OpKind::Register {
        let off = crate::cpu::flags::sign_extend(raw & size_mask(size), (size * 8) as u8);
        let seg = m.mem_seg(i);
        let byte_off = off.div_euclid(w as i64) * size as i64;
        let ea = m.effective_address(i).wrapping_add(byte_off as u64);
        let ea = ea & addr_mask(i);
        let v = if rmw {
            m.read_mem_rmw(seg, ea, size)?
        } else {
            m.read_mem(seg, ea, size)?
        };
        (v, off.rem_euclid(w as i64) as u64, Some((seg, ea)))
    } else {
        let v = if rmw {
            m.read_op_rmw(i, 0)?
        } else {
            m.read_op(i, 0)?
        };
        (v, raw & (w - 1), None)
    };
    let cf = (value >> bit) & 1 != 0;
    let new = match i.mnemonic() {
        Mnemonic::Bts => value | 1 << bit,
        Mnemonic::Btr => value & !(1 << bit),
        Mnemonic::Btc => value ^ 1 << bit,
        _ => value,
    };
    if rmw {
        match mem {
            Some((seg, ea)) => m.write_mem(seg, ea, size, new)?,
            None => m.write_op(i, 0, new)?,
        }
    }
    m.cpu.flags.assign(Rflags::CF, cf);
    Ok(())
}

/// The address-size mask of the memory operand.
fn addr_mask(i: &Instruction) -> u64 {
    let r = if i.memory_base() != iced_x86::Register::None {
        i.memory_base()
    } else {
        i.memory_index()
    };
    match super::operand::gpr_size(r) {
        2 => 0xffff,
        4 => 0xffff_ffff,
        8 => u64::MAX,
        _ => match i.memory_displ_size() {
            2 => 0xffff,
            4 => 0xffff_ffff,
            _ => u64::MAX,
        },
    }
}

/// BSF, BSR: index of the lowest/highest set bit. A zero source sets ZF and
/// leaves the destination unchanged (AMD documents this; Intel processors do
/// the same).
pub fn bsf_bsr(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let v = m.read_op(i, 1)? & size_mask(size);
    if v == 0 {
        m.cpu.flags.set_status(ZF);
        return Ok(());
    }
    let idx = if i.mnemonic() == Mnemonic::Bsf {
        v.trailing_zeros()
    } else {
        63 - v.leading_zeros()
    } as u64;
    m.cpu.flags.set_status(parity(idx));
    m.write_op(i, 0, idx)
}

/// POPCNT: ZF for a zero source, other flags cleared.
pub fn popcnt(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let v = m.read_op(i, 1)? & size_mask(size);
    m.cpu.flags.set_status(if v == 0 { ZF } else { 0 });
    m.write_op(i, 0, v.count_ones() as u64)
}

/// LZCNT, TZCNT: CF when the source is zero, ZF when the count is zero.
pub fn lzcnt_tzcnt(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u32;
    let v = m.read_op(i, 1)? & size_mask(size);
    let n = if v == 0 {
        w
    } else if i.mnemonic() == Mnemonic::Lzcnt {
        v.leading_zeros() - (64 - w)
    } else {
        v.trailing_zeros()
    } as u64;
    let mut f = parity(n);
    if v == 0 {
        f |= CF;
    }
    if n == 0 {
        f |= ZF;
    }
    m.cpu.flags.set_status(f);
    m.write_op(i, 0, n)
}

/// SF and ZF from a result, CF as given, OF cleared.
fn bmi_flags(m: &mut Machine, r: u64, size: usize, cf: bool) {
    let mut f = parity(r);
    if r & size_mask(size) == 0 {
        f |= ZF;
    }
    if (r >> (size * 8 - 1)) & 1 != 0 {
        f |= SF;
    }
    if cf {
        f |= CF;
    }
    m.cpu.flags.set_status(f);
}

/// ANDN: dest = NOT src1 AND src2.
pub fn andn(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let r = !m.read_op(i, 1)? & m.read_op(i, 2)? & size_mask(size);
    bmi_flags(m, r, size, false);
    m.write_op(i, 0, r)
}

/// BEXTR: extract the field at start src2[7:0] of length src2[15:8].
pub fn bextr(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u64;
    let v = m.read_op(i, 1)? & size_mask(size);
    let ctl = m.read_op(i, 2)?;
    let start = ctl & 0xff;
    let len = (ctl >> 8) & 0xff;
    let r = if start >= w {
        0
    } else {
        let shifted = v >> start;
        if len >= 64 {
            shifted
        } else {
            shifted & ((1u64 << len) - 1)
        }
    };
    bmi_flags(m, r, size, false);
    m.write_op(i, 0, r)
}

/// BLSI, BLSMSK, BLSR.
pub fn bls(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let v = m.read_op(i, 1)? & mask;
    let (r, cf) = match i.mnemonic() {
        Mnemonic::Blsi => (v.wrapping_neg() & v, v != 0),
        Mnemonic::Blsmsk => ((v.wrapping_sub(1) ^ v) & mask, v == 0),
        _ => (v.wrapping_sub(1) & v, v == 0),
    };
    bmi_flags(m, r & mask, size, cf);
    m.write_op(i, 0, r & mask)
}

/// BZHI: zero the bits from index src2[7:0] up; CF when the index is past
/// the operand width.
pub fn bzhi(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let w = (size * 8) as u64;
    let v = m.read_op(i, 1)? & size_mask(size);
    let n = m.read_op(i, 2)? & 0xff;
    let (r, cf) = if n < w {
        (v & ((1u64 << n) - 1), false)
    } else {
        (v, true)
    };
    bmi_flags(m, r, size, cf);
    m.write_op(i, 0, r)
}

/// PDEP, PEXT: parallel bit deposit / extract; no flags.
pub fn pdep_pext(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let src = m.read_op(i, 1)? & mask;
    let sel = m.read_op(i, 2)? & mask;
    let mut r = 0u64;
    let mut k = 0;
    for b in 0..(size * 8) {
        if (sel >> b) & 1 != 0 {
            if i.mnemonic() == Mnemonic::Pdep {
                r |= ((src >> k) & 1) << b;
            } else {
                r |= ((src >> b) & 1) << k;
            }
            k += 1;
        }
    }
    m.write_op(i, 0, r)
}
