//! Data movement (SDM Vol. 2 MOVAPS..MOVUPD, MOVDQA/MOVDQU, LDDQU, MOVNT*,
//! MOVSS/MOVSD, MOVLPS..MOVHPD, MOVHLPS/MOVLHPS, MOVD/MOVQ, MOVQ2DQ,
//! MOVDQ2Q, MOVDDUP, MOVSHDUP/MOVSLDUP, MOVMSKPS/PD, PMOVMSKB, MASKMOVQ,
//! MASKMOVDQU, MOVNTI).

use super::lanes;
use super::operands::{mm_n, mmx_check, sse_check, sse_mmx_check, xmm_n, Mem};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use iced_x86::{Instruction, OpKind, Register};

const LO64: u128 = u64::MAX as u128;
const LO32: u128 = u32::MAX as u128;

#[inline(always)]
fn is_reg(i: &Instruction, n: u32) -> bool {
    i.op_kind(n) == OpKind::Register
}

/// A full 128-bit move, register or memory on either side.
#[inline(always)]
fn mov128(m: &mut Machine, i: &Instruction, how: Mem) -> Flow {
    sse_check(m)?;
    if is_reg(i, 0) {
        let v = m.xmm_src(i, 1, how)?;
        m.cpu.fpu.xmm[xmm_n(i.op0_register())] = v;
        Ok(())
    } else {
        let v = m.cpu.fpu.xmm[xmm_n(i.op1_register())];
        m.write_m128(i, v, how)
    }
}

/// MOVAPS, MOVAPD, MOVDQA, MOVNTPS, MOVNTPD, MOVNTDQ, MOVNTDQA: aligned
/// 16-byte moves (non-temporal hints have no effect without a cache model).
pub fn mov_aligned(m: &mut Machine, i: &Instruction) -> Flow {
    mov128(m, i, Mem::Aligned)
}

/// MOVUPS, MOVUPD, MOVDQU, LDDQU: unaligned 16-byte moves.
pub fn mov_unaligned(m: &mut Machine, i: &Instruction) -> Flow {
    mov128(m, i, Mem::Unaligned)
}

/// A scalar move of the low `mask` bits: register to register merges,
/// memory to register zero-extends, register to memory stores.
#[inline(always)]
fn mov_scalar(m: &mut Machine, i: &Instruction, mask: u128, size: usize) -> Flow {
    sse_check(m)?;
    match (is_reg(i, 0), is_reg(i, 1)) {
        (true, true) => {
            let s = m.cpu.fpu.xmm[xmm_n(i.op1_register())];
            let d = &mut m.cpu.fpu.xmm[xmm_n(i.op0_register())];
            *d = (*d & !mask) | (s & mask);
        }
        (true, false) => {
            let v = m.read_mem_op(i, size)?;
            m.cpu.fpu.xmm[xmm_n(i.op0_register())] = v as u128;
        }
        _ => {
            let v = m.cpu.fpu.xmm[xmm_n(i.op1_register())];
            m.write_mem_op(i, size, v as u64)?;
        }
    }
    Ok(())
}

/// MOVSS.
pub fn movss(m: &mut Machine, i: &Instruction) -> Flow {
    mov_scalar(m, i, LO32, 4)
}

/// MOVSD (the SSE2 move, not the string instruction).
pub fn movsd(m: &mut Machine, i: &Instruction) -> Flow {
    mov_scalar(m, i, LO64, 8)
}

/// MOVLPS, MOVLPD (memory forms) and MOVHLPS (register form, same opcode):
/// the low quadword.
pub fn movlps(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    if !is_reg(i, 0) {
        let v = m.cpu.fpu.xmm[xmm_n(i.op1_register())] as u64;
        return m.write_mem_op(i, 8, v);
    }
    let v = if is_reg(i, 1) {
        (m.cpu.fpu.xmm[xmm_n(i.op1_register())] >> 64) as u64
    } else {
        m.read_mem_op(i, 8)?
    };
    let d = &mut m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    *d = (*d & !LO64) | v as u128;
    Ok(())
}

/// MOVHPS, MOVHPD (memory forms) and MOVLHPS (register form): the high
/// quadword.
pub fn movhps(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    if !is_reg(i, 0) {
        let v = (m.cpu.fpu.xmm[xmm_n(i.op1_register())] >> 64) as u64;
        return m.write_mem_op(i, 8, v);
    }
    let v = if is_reg(i, 1) {
        m.cpu.fpu.xmm[xmm_n(i.op1_register())] as u64
    } else {
        m.read_mem_op(i, 8)?
    };
    let d = &mut m.cpu.fpu.xmm[xmm_n(i.op0_register())];
    *d = (*d & LO64) | (v as u128) << 64;
    Ok(())
}

/// The value of a general-purpose register or memory operand `n` of
/// `size` bytes.
#[inline(always)]
fn gpr_or_mem(m: &mut Machine, i: &Instruction, n: u32, size: usize) -> Result<u64, Event> {
    if is_reg(i, n) {
        Ok(m.read_gpr(i.op_register(n)))
    } else {
        m.read_mem_op(i, size)
    }
}

/// Writes a general-purpose register or memory operand 0 of `size` bytes.
#[inline(always)]
fn set_gpr_or_mem(m: &mut Machine, i: &Instruction, size: usize, v: u64) -> Flow {
    if is_reg(i, 0) {
        m.write_gpr(i.op0_register(), v);
        Ok(())
    } else {
        m.write_mem_op(i, size, v)
    }
}

/// MOVD/MOVQ in all their forms: between MMX or XMM registers and general
/// registers or memory, and the quadword register moves `MOVQ mm, mm/m64`,
/// `MOVQ xmm, xmm/m64` (zeroing the upper quadword) and `MOVQ xmm/m64, xmm`.
pub fn movd_movq(m: &mut Machine, i: &Instruction) -> Flow {
    let size = if i.op_kind(0) == OpKind::Memory || i.op_kind(1) == OpKind::Memory {
        i.memory_size().size()
    } else {
        (0..2)
            .map(|n| i.op_register(n))
            .find(|r| r.is_gpr())
            .map_or(8, |r| r.size())
    };
    let r0 = i.op0_register();
    let r1 = i.op1_register();
    if r0.is_mm() || r1.is_mm() {
        mmx_check(m)?;
        if r0.is_mm() {
            let v = if r1.is_mm() {
                m.mm(mm_n(r1))
            } else {
                gpr_or_mem(m, i, 1, size)?
            };
            m.mmx_enter();
            m.set_mm(mm_n(r0), v);
            return Ok(());
        }
        let v = m.mm(mm_n(r1));
        let v = if size == 4 { v & 0xffff_ffff } else { v };
        set_gpr_or_mem(m, i, size, v)?;
        m.mmx_enter();
        return Ok(());
    }
    sse_check(m)?;
    if r0.is_xmm() {
        let v = if r1.is_xmm() {
            m.cpu.fpu.xmm[xmm_n(r1)] as u64
        } else {
            gpr_or_mem(m, i, 1, size)?
        };
        let v = if size == 4 { v & 0xffff_ffff } else { v };
        m.cpu.fpu.xmm[xmm_n(r0)] = v as u128;
        return Ok(());
    }
    let v = m.cpu.fpu.xmm[xmm_n(r1)] as u64;
    let v = if size == 4 { v & 0xffff_ffff } else { v };
    set_gpr_or_mem(m, i, size, v)
}

/// MOVQ2DQ: `xmm ← mm`, upper quadword zeroed.
pub fn movq2dq(m: &mut Machine, i: &Instruction) -> Flow {
    sse_mmx_check(m)?;
    let v = m.mm(mm_n(i.op1_register()));
    m.mmx_enter();
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = v as u128;
    Ok(())
}

/// MOVDQ2Q: `mm ← xmm[63:0]`.
pub fn movdq2q(m: &mut Machine, i: &Instruction) -> Flow {
    sse_mmx_check(m)?;
    let v = m.cpu.fpu.xmm[xmm_n(i.op1_register())] as u64;
    m.mmx_enter();
    m.set_mm(mm_n(i.op0_register()), v);
    Ok(())
}

/// MOVNTQ: `m64 ← mm`.
pub fn movntq(m: &mut Machine, i: &Instruction) -> Flow {
    mmx_check(m)?;
    let v = m.mm(mm_n(i.op1_register()));
    m.write_mem_op(i, 8, v)?;
    m.mmx_enter();
    Ok(())
}

/// MOVNTI: `m32/m64 ← r32/r64`.
pub fn movnti(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.read_gpr(i.op1_register());
    m.write_mem_op(i, i.memory_size().size(), v)
}

/// MOVDDUP: the low double of the source in both halves (m64 source).
pub fn movddup(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let v = m.xmm_src(i, 1, Mem::Aligned)? as u64;
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = lanes::from_q([v, v]);
    Ok(())
}

/// MOVSHDUP: odd singles duplicated.
pub fn movshdup(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let s = lanes::d(m.xmm_src(i, 1, Mem::Aligned)?);
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = lanes::from_d([s[1], s[1], s[3], s[3]]);
    Ok(())
}

/// MOVSLDUP: even singles duplicated.
pub fn movsldup(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let s = lanes::d(m.xmm_src(i, 1, Mem::Aligned)?);
    m.cpu.fpu.xmm[xmm_n(i.op0_register())] = lanes::from_d([s[0], s[0], s[2], s[2]]);
    Ok(())
}

/// MOVMSKPS: the four sign bits into a general register (zero-extended).
pub fn movmskps(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let v = lanes::d(m.cpu.fpu.xmm[xmm_n(i.op1_register())]);
    let r = (0..4).fold(0u64, |acc, k| acc | ((v[k] >> 31) as u64) << k);
    m.write_gpr(i.op0_register(), r);
    Ok(())
}

/// MOVMSKPD: the two sign bits.
pub fn movmskpd(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let v = m.cpu.fpu.xmm[xmm_n(i.op1_register())];
    let r = ((v >> 63) & 1) as u64 | (((v >> 127) & 1) as u64) << 1;
    m.write_gpr(i.op0_register(), r);
    Ok(())
}

/// PMOVMSKB: the byte sign bits.
pub fn pmovmskb(m: &mut Machine, i: &Instruction) -> Flow {
    let r1 = i.op1_register();
    let (v, n) = if r1.is_mm() {
        mmx_check(m)?;
        (m.mm(mm_n(r1)) as u128, 8)
    } else {
        sse_check(m)?;
        (m.cpu.fpu.xmm[xmm_n(r1)], 16)
    };
    let b = lanes::b(v);
    let r = (0..n).fold(0u64, |acc, k| acc | ((b[k] >> 7) as u64) << k);
    if r1.is_mm() {
        m.mmx_enter();
    }
    m.write_gpr(i.op0_register(), r);
    Ok(())
}

/// MASKMOVQ, MASKMOVDQU: stores the bytes of the first register whose mask
/// byte (second register) has its top bit set, at DS:rDI (segment override
/// allowed). The whole operand's segment and paging checks come first, so
/// a fault writes nothing; an all-zero mask writes nothing and faults on
/// nothing (SDM Vol. 2 "MASKMOVDQU": exceptions with a zero mask are
/// implementation-specific).
pub fn maskmov(m: &mut Machine, i: &Instruction) -> Flow {
    let r1 = i.op1_register();
    let (data, mask, len) = if r1.is_mm() {
        mmx_check(m)?;
        let r2 = i.op2_register();
        (m.mm(mm_n(r1)) as u128, m.mm(mm_n(r2)) as u128, 8)
    } else {
        sse_check(m)?;
        let r2 = i.op2_register();
        let x = &m.cpu.fpu.xmm;
        (x[xmm_n(r1)], x[xmm_n(r2)], 16)
    };
    let bytes = lanes::b(data);
    let sel = lanes::b(mask);
    if sel[..len].iter().any(|b| b & 0x80 != 0) {
        let (reg, amask) = match i.op_kind(0) {
            OpKind::MemorySegDI => (Register::DI, 0xffff),
            OpKind::MemorySegEDI => (Register::EDI, 0xffff_ffff),
            _ => (Register::RDI, u64::MAX),
        };
        let ea = m.read_gpr(reg) & amask;
        let seg = m.mem_seg(i);
        let la = m.linear(seg, ea, len, true)?;
        let first = m.translate(la, AccessKind::Write, Privilege::Current)?;
        let split = (0x1000 - (la & 0xfff)) as usize;
        let second = if split < len {
            let la2 = m.wrap_linear(la + split as u64);
            Some(m.translate(la2, AccessKind::Write, Privilege::Current)?)
        } else {
            None
        };
        for k in 0..len {
            if sel[k] & 0x80 != 0 {
                let pa = match second {
                    Some(p) if k >= split => p + (k - split) as u64,
                    _ => first + k as u64,
                };
                m.phys_write(pa, 1, bytes[k] as u64)?;
            }
        }
    }
    if r1.is_mm() {
        m.mmx_enter();
    }
    Ok(())
}
