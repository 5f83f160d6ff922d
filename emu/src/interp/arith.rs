//! Integer arithmetic and logic: ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST,
//! NOT, NEG, INC, DEC, XADD, CMPXCHG, CMPXCHG8B/16B, ADCX, ADOX, and the BCD
//! adjustments DAA, DAS, AAA, AAS, AAM, AAD (SDM Vol. 2, one entry each; flags
//! per Vol. 1 appendix A).

use super::operand::size_mask;
use crate::cpu::flags::{parity, LazyOp};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind, Register};
use mmu::Rflags;

/// The body every two-operand ALU instruction shares: read both operands
/// (the destination with write intent when it is written), compute, write the
/// destination unless the instruction only compares, and only then record the
/// flags lazily, so a faulting write leaves RFLAGS untouched.
#[inline(always)]
fn alu2(
    m: &mut Machine,
    i: &Instruction,
    op: impl Fn(u64, u64, bool) -> (u64, LazyOp),
    write: bool,
) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let a = if write {
        m.read_op_rmw(i, 0)?
    } else {
        m.read_op(i, 0)?
    } & mask;
    let b = m.read_op(i, 1)? & mask;
    let (r, lazy) = op(a, b, m.cpu.flags.cf());
    let r = r & mask;
    if write {
        m.write_op(i, 0, r)?;
    }
    m.cpu.flags.set_lazy(lazy, (size * 8) as u8, a, b, r);
    Ok(())
}

/// ADD.
pub fn add(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a.wrapping_add(b), LazyOp::Add), true)
}

/// ADC.
pub fn adc(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(
        m,
        i,
        |a, b, c| {
            let r = a.wrapping_add(b).wrapping_add(c as u64);
            (r, if c { LazyOp::Adc1 } else { LazyOp::Add })
        },
        true,
    )
}

/// SUB.
pub fn sub(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a.wrapping_sub(b), LazyOp::Sub), true)
}

/// SBB.
pub fn sbb(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(
        m,
        i,
        |a, b, c| {
            let r = a.wrapping_sub(b).wrapping_sub(c as u64);
            (r, if c { LazyOp::Sbb1 } else { LazyOp::Sub })
        },
        true,
    )
}

/// CMP.
pub fn cmp(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a.wrapping_sub(b), LazyOp::Sub), false)
}

/// AND.
pub fn and(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a & b, LazyOp::Logic), true)
}

/// OR.
pub fn or(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a | b, LazyOp::Logic), true)
}

/// XOR.
pub fn xor(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a ^ b, LazyOp::Logic), true)
}

/// TEST.
pub fn test(m: &mut Machine, i: &Instruction) -> Flow {
    alu2(m, i, |a, b, _| (a & b, LazyOp::Logic), false)
}

/// NOT (no flags).
pub fn not(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.read_op_rmw(i, 0)?;
    m.write_op(i, 0, !v)
}

/// NEG.
pub fn neg(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let a = m.read_op_rmw(i, 0)? & size_mask(size);
    let r = 0u64.wrapping_sub(a);
    m.write_op(i, 0, r)?;
    m.cpu.flags.set_lazy(LazyOp::Neg, (size * 8) as u8, a, 0, r);
    Ok(())
}

/// INC (CF unchanged).
pub fn inc(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let a = m.read_op_rmw(i, 0)? & size_mask(size);
    let r = a.wrapping_add(1);
    m.write_op(i, 0, r)?;
    m.cpu.flags.set_incdec(false, (size * 8) as u8, a, r);
    Ok(())
}

/// DEC (CF unchanged).
pub fn dec(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let a = m.read_op_rmw(i, 0)? & size_mask(size);
    let r = a.wrapping_sub(1);
    m.write_op(i, 0, r)?;
    m.cpu.flags.set_incdec(true, (size * 8) as u8, a, r);
    Ok(())
}

/// XADD: exchange and add; flags as ADD.
pub fn xadd(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let d = m.read_op_rmw(i, 0)? & mask;
    let s = m.read_op(i, 1)? & mask;
    let r = d.wrapping_add(s);
    // TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP (SDM Vol. 2B XADD): with
    // the same register as both operands the sum wins. A memory destination
    // is written first so a fault leaves the register unchanged.
    if i.op_kind(0) == OpKind::Memory {
        m.write_op(i, 0, r)?;
        m.write_op(i, 1, d)?;
    } else {
        m.write_op(i, 1, d)?;
        m.write_op(i, 0, r)?;
    }
    m.cpu.flags.set_lazy(LazyOp::Add, (size * 8) as u8, d, s, r);
    Ok(())
}

/// CMPXCHG: compare the accumulator with the destination; on equality store
/// the source, else load the accumulator. A memory destination is always
/// written (with its own value on inequality), as the locked bus cycle does
/// (SDM Vol. 2A CMPXCHG).
pub fn cmpxchg(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let d = m.read_op_rmw(i, 0)? & mask;
    let s = m.read_op(i, 1)? & mask;
    let acc = m.cpu.gpr[0] & mask;
    let r = acc.wrapping_sub(d);
    let acc_reg = match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    };
    if acc == d {
        m.write_op(i, 0, s)?;
    } else {
        if i.op_kind(0) == OpKind::Memory {
            m.write_op(i, 0, d)?;
        }
        m.write_gpr(acc_reg, d);
    }
    m.cpu
        .flags
        .set_lazy(LazyOp::Sub, (size * 8) as u8, acc, d, r);
    Ok(())
}

/// CMPXCHG8B / CMPXCHG16B (the latter needs a 16-byte aligned operand,
/// else #GP(0)).
pub fn cmpxchg8b16b(m: &mut Machine, i: &Instruction) -> Flow {
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let wide = i.mnemonic() == iced_x86::Mnemonic::Cmpxchg16b;
    let g = m.cpu.gpr;
    // Misalignment (#GP(0)) is found before a non-canonical address, as on
    // hardware; then the operand is checked with write intent, so a page
    // fault reports a write.
    if wide && ea & 15 != 0 {
        return Err(Event::gp0());
    }
    m.probe_write(seg, ea, if wide { 16 } else { 8 })?;
    let zf = if wide {
        let lo = m.read_mem(seg, ea, 8)?;
        let hi = m.read_mem(seg, ea.wrapping_add(8), 8)?;
        let eq = lo == g[0] && hi == g[2];
        let (nlo, nhi) = if eq { (g[3], g[1]) } else { (lo, hi) };
        m.write_mem(seg, ea, 8, nlo)?;
        m.write_mem(seg, ea.wrapping_add(8), 8, nhi)?;
        if !eq {
            m.cpu.gpr[0] = lo;
            m.cpu.gpr[2] = hi;
        }
        eq
    } else {
        let v = m.read_mem(seg, ea, 8)?;
        let cmp = (g[2] & 0xffff_ffff) << 32 | (g[0] & 0xffff_ffff);
        let eq = v == cmp;
        let new = if eq {
            (g[1] & 0xffff_ffff) << 32 | (g[3] & 0xffff_ffff)
        } else {
            v
        };
        m.write_mem(seg, ea, 8, new)?;
        if !eq {
            m.write_gpr(Register::EAX, v & 0xffff_ffff);
            m.write_gpr(Register::EDX, v >> 32);
        }
        eq
    };
    m.cpu.flags.assign(Rflags::ZF, zf);
    Ok(())
}

/// ADCX: add with carry, writing only CF.
pub fn adcx(m: &mut Machine, i: &Instruction) -> Flow {
    carry_only(m, i, Rflags::CF)
}

/// ADOX: add with OF as carry, writing only OF.
pub fn adox(m: &mut Machine, i: &Instruction) -> Flow {
    carry_only(m, i, Rflags::OF)
}

fn carry_only(m: &mut Machine, i: &Instruction, flag: Rflags) -> Flow {
    let size = m.op_size(i, 0);
    let mask = size_mask(size);
    let a = m.read_op(i, 0)? & mask;
    let b = m.read_op(i, 1)? & mask;
    let cin = m.cpu.flags.has(flag) as u64;
    let wide = a as u128 + b as u128 + cin as u128;
    let carry = (wide >> (size * 8)) & 1 != 0;
    m.write_op(i, 0, wide as u64 & mask)?;
    m.cpu.flags.assign(flag, carry);
    Ok(())
}

/// Sets SF, ZF, PF from an 8-bit result and CF/AF/OF as given.
fn bcd_flags(m: &mut Machine, al: u8, cf: bool, af: bool, of: bool) {
    let mut f = parity(al as u64);
    if al == 0 {
        f |= Rflags::ZF.bits();
    }
    if al & 0x80 != 0 {
        f |= Rflags::SF.bits();
    }
    if cf {
        f |= Rflags::CF.bits();
    }
    if af {
        f |= Rflags::AF.bits();
    }
    if of {
        f |= Rflags::OF.bits();
    }
    m.cpu.flags.set_status(f);
}

/// DAA (SDM Vol. 2A DAA "Operation"). OF is undefined; the value given is the
/// signed overflow of the adjustment, as current Intel processors produce.
pub fn daa(m: &mut Machine, _: &Instruction) -> Flow {
    let old_al = m.cpu.gpr[0] as u8;
    let old_cf = m.cpu.flags.cf();
    let mut al = old_al;
    // The carry of the low-nibble step is superseded by the high step, which
    // sets or clears CF unconditionally.
    let af = al & 0xf > 9 || m.cpu.flags.has(Rflags::AF);
    if af {
        al = al.wrapping_add(6);
    }
    let cf = old_al > 0x99 || old_cf;
    if cf {
        al = al.wrapping_add(0x60);
    }
    let adj = al.wrapping_sub(old_al);
    let of = (old_al ^ al) & (adj ^ al) & 0x80 != 0;
    m.write_gpr(Register::AL, al as u64);
    bcd_flags(m, al, cf, af, of);
    Ok(())
}

/// DAS (SDM Vol. 2A DAS "Operation"). OF is undefined; the value given is
/// the signed overflow of the adjustment.
pub fn das(m: &mut Machine, _: &Instruction) -> Flow {
    let old_al = m.cpu.gpr[0] as u8;
    let old_cf = m.cpu.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let af = if al & 0xf > 9 || m.cpu.flags.has(Rflags::AF) {
        let (v, b) = al.overflowing_sub(6);
        al = v;
        cf = old_cf || b;
        true
    } else {
        false
    };
    if old_al > 0x99 || old_cf {
        al = al.wrapping_sub(0x60);
        cf = true;
    }
    let adj = old_al.wrapping_sub(al);
    let of = (old_al ^ adj) & (old_al ^ al) & 0x80 != 0;
    m.write_gpr(Register::AL, al as u64);
    bcd_flags(m, al, cf, af, of);
    Ok(())
}

/// AAA: AX + 106H when the low nibble needs adjusting (SDM Vol. 2A AAA).
pub fn aaa(m: &mut Machine, _: &Instruction) -> Flow {
    let ax = m.cpu.gpr[0] as u16;
    let adjust = ax & 0xf > 9 || m.cpu.flags.has(Rflags::AF);
    let ax = if adjust { ax.wrapping_add(0x106) } else { ax };
    let ax = ax & 0xff0f;
    m.write_gpr(Register::AX, ax as u64);
    bcd_flags(m, ax as u8, adjust, adjust, false);
    Ok(())
}

/// AAS (SDM Vol. 2A AAS).
pub fn aas(m: &mut Machine, _: &Instruction) -> Flow {
    let ax = m.cpu.gpr[0] as u16;
    let adjust = ax & 0xf > 9 || m.cpu.flags.has(Rflags::AF);
    let ax = if adjust {
        let al = (ax as u8).wrapping_sub(6);
        let ah = ((ax >> 8) as u8)
            .wrapping_sub(1)
            .wrapping_sub(((ax as u8) < 6) as u8);
        (ah as u16) << 8 | al as u16
    } else {
        ax
    };
    let ax = ax & 0xff0f;
    m.write_gpr(Register::AX, ax as u64);
    bcd_flags(m, ax as u8, adjust, adjust, false);
    Ok(())
}

/// AAM imm8: AH = AL / imm8, AL = AL mod imm8; #DE if imm8 = 0.
pub fn aam(m: &mut Machine, i: &Instruction) -> Flow {
    let base = i.immediate8();
    if base == 0 {
        return Err(Event::de());
    }
    let al = m.cpu.gpr[0] as u8;
    let (q, r) = (al / base, al % base);
    m.write_gpr(Register::AX, (q as u64) << 8 | r as u64);
    bcd_flags(m, r, false, false, false);
    Ok(())
}

/// AAD imm8: AL = AL + AH * imm8, AH = 0.
pub fn aad(m: &mut Machine, i: &Instruction) -> Flow {
    let base = i.immediate8();
    let ax = m.cpu.gpr[0];
    let al = ax as u8;
    let ah = (ax >> 8) as u8;
    let prod = ah.wrapping_mul(base);
    let (r, c) = al.overflowing_add(prod);
    let af = (al & 0xf) + (prod & 0xf) > 0xf;
    let of = (al ^ r) & (prod ^ r) & 0x80 != 0;
    m.write_gpr(Register::AX, r as u64);
    bcd_flags(m, r, c, af, of);
    Ok(())
}
