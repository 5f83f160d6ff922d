//! CRC32 (SSE4.2) and PCLMULQDQ (SDM Vol. 2A "CRC32", Vol. 2B "PCLMULQDQ").

use super::operands::{sse_check, xmm_n, Mem};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind};

/// The CRC-32C (Castagnoli) polynomial 11EDC6F41H, bit-reflected.
const CRC32C_REFLECTED: u32 = 0x82f6_3b78;

/// Accumulates `len` bytes of `data` (least significant first) into a
/// CRC-32C value, as CRC32 does: no initial or final inversion.
pub fn crc32c(mut crc: u32, data: u64, len: usize) -> u32 {
    for k in 0..len {
        crc ^= (data >> (8 * k)) as u8 as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (CRC32C_REFLECTED & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// CRC32 r32/r64, r/m8/16/32/64. The 64-bit destination form zero-extends
/// the 32-bit result. No CR0/CR4 conditions apply (it is a general-purpose
/// instruction).
pub fn crc32(m: &mut Machine, i: &Instruction) -> Flow {
    let size = if i.op_kind(1) == OpKind::Register {
        i.op1_register().size()
    } else {
        i.memory_size().size()
    };
    let data = m.read_op(i, 1)?;
    let acc = m.read_gpr(i.op0_register()) as u32;
    let r = crc32c(acc, data, size);
    m.write_gpr(i.op0_register(), r as u64);
    Ok(())
}

/// The carry-less product of two quadwords.
pub fn clmul(a: u64, b: u64) -> u128 {
    (0..64).fold(0u128, |acc, k| {
        if b >> k & 1 != 0 {
            acc ^ (a as u128) << k
        } else {
            acc
        }
    })
}

/// PCLMULQDQ: imm8[0] selects the destination's quadword, imm8[4] the
/// source's.
pub fn pclmulqdq(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let src = m.xmm_src(i, 1, Mem::Aligned)?;
    let dn = xmm_n(i.op0_register());
    let imm = i.immediate8();
    let a = (m.cpu.fpu.xmm[dn] >> (64 * (imm & 1) as u32)) as u64;
    let b = (src >> (64 * ((imm >> 4) & 1) as u32)) as u64;
    m.cpu.fpu.xmm[dn] = clmul(a, b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value: "123456789" → E3069283H, with the usual
        // initial value FFFFFFFFH and final inversion applied around CRC32.
        let s = b"123456789";
        let mut c = !0u32;
        for &b in s {
            c = crc32c(c, b as u64, 1);
        }
        assert_eq!(!c, 0xe306_9283);
    }

    #[test]
    fn carry_less() {
        assert_eq!(clmul(0b11, 0b11), 0b101);
        assert_eq!(clmul(u64::MAX, 2), (u64::MAX as u128) << 1);
    }
}
