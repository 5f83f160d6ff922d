//! Data movement: MOV, MOVZX/MOVSX/MOVSXD, LEA, XCHG, BSWAP, MOVBE, CBW family,
//! CWD family, XLAT, CMOVcc, SETcc, NOP (SDM Vol. 2, one entry each).

use super::operand::size_mask;
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{ConditionCode, Instruction, OpKind, Register};

/// Evaluates a condition code on the current flags (SDM Vol. 1 appendix B,
/// "EFLAGS condition codes").
#[inline(always)]
pub fn condition(m: &Machine, cc: ConditionCode) -> bool {
    let f = &m.cpu.flags;
    match cc {
        ConditionCode::o => f.of(),
        ConditionCode::no => !f.of(),
        ConditionCode::b => f.cf(),
        ConditionCode::ae => !f.cf(),
        ConditionCode::e => f.zf(),
        ConditionCode::ne => !f.zf(),
        ConditionCode::be => f.cf() || f.zf(),
        ConditionCode::a => !f.cf() && !f.zf(),
        ConditionCode::s => f.sf(),
        ConditionCode::ns => !f.sf(),
        ConditionCode::p => f.pf(),
        ConditionCode::np => !f.pf(),
        ConditionCode::l => f.sf() != f.of(),
        ConditionCode::ge => f.sf() == f.of(),
        ConditionCode::le => f.zf() || f.sf() != f.of(),
        ConditionCode::g => !f.zf() && f.sf() == f.of(),
        ConditionCode::None => true,
    }
}

/// MOV r/m, r/imm and MOV r, r/m.
pub fn mov(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.read_op(i, 1)?;
    m.write_op(i, 0, v)
}

/// MOVZX.
pub fn movzx(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.read_op(i, 1)?;
    m.write_op(i, 0, v)
}

/// MOVSX, MOVSXD.
pub fn movsx(m: &mut Machine, i: &Instruction) -> Flow {
    let src_size = m.op_size(i, 1);
    if i.code() == iced_x86::Code::Movsxd_r16_rm16
        && i.op_kind(1) == OpKind::Memory
        && m.config.model.vendor == crate::cpu::cpuid::Vendor::Amd
    {
        // AMD processors read a doubleword for MOVSXD r16, m (the
        // differential tests see the fault of the upper two bytes) and keep
        // its low word; Intel documents a word source.
        let seg = m.mem_seg(i);
        let ea = m.effective_address(i);
        let v = m.read_mem(seg, ea, 4)?;
        return m.write_op(i, 0, v);
    }
    let v = m.read_op(i, 1)?;
    let v = crate::cpu::flags::sign_extend(v, (src_size * 8) as u8) as u64;
    m.write_op(i, 0, v)
}

/// LEA: the effective address, truncated to the operand size.
pub fn lea(m: &mut Machine, i: &Instruction) -> Flow {
    let ea = m.effective_address(i);
    m.write_op(i, 0, ea)
}

/// XCHG (implicitly locked with a memory operand).
pub fn xchg(m: &mut Machine, i: &Instruction) -> Flow {
    let a = m.read_op_rmw(i, 0)?;
    let b = m.read_op(i, 1)?;
    if i.op_kind(0) == OpKind::Memory {
        m.write_op(i, 0, b)?;
        m.write_op(i, 1, a)
    } else {
        m.write_op(i, 1, a)?;
        m.write_op(i, 0, b)
    }
}

/// BSWAP. With a 16-bit operand the result is undefined by the SDM; current
/// processors clear the low word, which is what this does.
pub fn bswap(m: &mut Machine, i: &Instruction) -> Flow {
    let r = i.op0_register();
    let v = m.read_gpr(r);
    let out = match super::operand::gpr_size(r) {
        8 => v.swap_bytes(),
        4 => (v as u32).swap_bytes() as u64,
        _ => 0,
    };
    m.write_gpr(r, out);
    Ok(())
}

/// MOVBE: move with byte swap (register <-> memory only).
pub fn movbe(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let v = m.read_op(i, 1)?;
    let swapped = match size {
        2 => (v as u16).swap_bytes() as u64,
        4 => (v as u32).swap_bytes() as u64,
        _ => v.swap_bytes(),
    };
    m.write_op(i, 0, swapped)
}

/// CBW, CWDE, CDQE: sign-extend the accumulator's lower half.
pub fn cbw(m: &mut Machine, i: &Instruction) -> Flow {
    use iced_x86::Mnemonic as M;
    let a = m.cpu.gpr[0];
    let (reg, v) = match i.mnemonic() {
        M::Cbw => (Register::AX, a as u8 as i8 as u64),
        M::Cwde => (Register::EAX, a as u16 as i16 as u64),
        _ => (Register::RAX, a as u32 as i32 as u64),
    };
    m.write_gpr(reg, v);
    Ok(())
}

/// CWD, CDQ, CQO: fill DX/EDX/RDX with the accumulator's sign.
pub fn cwd(m: &mut Machine, i: &Instruction) -> Flow {
    use iced_x86::Mnemonic as M;
    let a = m.cpu.gpr[0];
    let (reg, neg) = match i.mnemonic() {
        M::Cwd => (Register::DX, (a as i16) < 0),
        M::Cdq => (Register::EDX, (a as i32) < 0),
        _ => (Register::RDX, (a as i64) < 0),
    };
    m.write_gpr(reg, if neg { u64::MAX } else { 0 });
    Ok(())
}

/// XLAT: AL = [seg:rBX + AL].
pub fn xlat(m: &mut Machine, i: &Instruction) -> Flow {
    let seg = m.mem_seg(i);
    let base = i.memory_base();
    let mask = size_mask(super::operand::gpr_size(base));
    let ea = (m.read_gpr(base).wrapping_add(m.cpu.gpr[0] & 0xff)) & mask;
    let v = m.read_mem(seg, ea, 1)?;
    m.write_gpr(Register::AL, v);
    Ok(())
}

/// NOP and the hint instructions that do nothing architecturally here (PAUSE,
/// prefetches, fences: the machine is sequentially consistent).
pub fn nop(_: &mut Machine, _: &Instruction) -> Flow {
    Ok(())
}

/// WAIT/FWAIT without an x87 FPU model: #NM when CR0.MP and CR0.TS are both
/// set (SDM Vol. 2B WAIT/FWAIT), else nothing (no x87 exception can be
/// pending). The x87 family replaces this when it is present.
pub fn wait(m: &mut Machine, _: &Instruction) -> Flow {
    let cr0 = m.cpu.sys.cr0;
    if cr0.contains(mmu::Cr0::MP) && cr0.contains(mmu::Cr0::TS) {
        return Err(crate::event::Event::nm());
    }
    Ok(())
}

/// PAUSE: a spin-loop hint, interceptable by a hypervisor.
pub fn pause(m: &mut Machine, i: &Instruction) -> Flow {
    m.intercept(i, crate::virt::Intercept::Pause)
}

/// CMOVcc. The source is always read (and may fault); a 32-bit destination is
/// zero-extended in 64-bit mode even when the condition is false (SDM Vol. 2A
/// CMOVcc, "Operation").
pub fn cmovcc(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.read_op(i, 1)?;
    let take = condition(m, i.condition_code());
    let dst = i.op0_register();
    if take {
        m.write_gpr(dst, v);
    } else if super::operand::gpr_size(dst) == 4 {
        let cur = m.read_gpr(dst);
        m.write_gpr(dst, cur);
    }
    Ok(())
}

/// SETcc.
pub fn setcc(m: &mut Machine, i: &Instruction) -> Flow {
    let v = condition(m, i.condition_code()) as u64;
    m.write_op(i, 0, v)
}
