//! Near control transfer: JMP, Jcc, JrCXZ, LOOPcc, CALL, RET, and the software
//! interrupts INT n, INT3, INTO, INT1 (SDM Vol. 2A/2B, one entry each). Far
//! transfers and IRET live in `far`.

use super::data::condition;
use super::operand::size_mask;
use super::stack::stack_size;
use crate::event::{Event, Flow, SoftIntKind};
use crate::machine::Machine;
use crate::virt::Intercept;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};
use mmu::{CpuMode, SegReg};

pub use super::far::{call_far, iret, jmp_far, retf};

impl Machine {
    /// Transfers control to `target` (an offset in CS), with the checks of a
    /// near branch: the CS limit outside 64-bit mode, canonical form in it
    /// (SDM Vol. 2A JMP "Operation": #GP(0) if the target is beyond the limit
    /// or non-canonical; the fault is taken on the branch).
    #[inline(always)]
    pub fn branch_near(&mut self, target: u64) -> Flow {
        if !self.near_target_ok(target) {
            return Err(Event::gp0());
        }
        self.next_rip = target;
        Ok(())
    }

    /// True if a near branch to `target` does not fault: canonical in
    /// 64-bit mode, within the CS limit otherwise.
    #[inline(always)]
    pub(crate) fn near_target_ok(&self, target: u64) -> bool {
        if self.cpu.long64() {
            mmu::is_canonical(target, self.canonical_bits())
        } else {
            target <= self.cpu.seg(SegReg::Cs).limit as u64
        }
    }
}

/// The target of a relative branch, rebased on the current instruction and
/// wrapped to the operand size.
#[inline(always)]
fn rel_target(m: &Machine, i: &Instruction) -> u64 {
    let t = i
        .near_branch64()
        .wrapping_sub(i.next_ip())
        .wrapping_add(m.next_rip);
    match i.op0_kind() {
        OpKind::NearBranch16 => t & 0xffff,
        OpKind::NearBranch32 => t & 0xffff_ffff,
        _ => t,
    }
}

/// JMP near (relative or indirect).
pub fn jmp(m: &mut Machine, i: &Instruction) -> Flow {
    let t = match i.op0_kind() {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => rel_target(m, i),
        _ => {
            let size = m.op_size(i, 0);
            m.read_op(i, 0)? & size_mask(size)
        }
    };
    m.branch_near(t)
}

/// Jcc.
pub fn jcc(m: &mut Machine, i: &Instruction) -> Flow {
    if condition(m, i.condition_code()) {
        let t = rel_target(m, i);
        return m.branch_near(t);
    }
    Ok(())
}

/// JCXZ, JECXZ, JRCXZ.
pub fn jcxz(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.mnemonic() {
        Mnemonic::Jrcxz => 8,
        Mnemonic::Jecxz => 4,
        _ => 2,
    };
    if m.cpu.gpr[1] & size_mask(size) == 0 {
        let t = rel_target(m, i);
        return m.branch_near(t);
    }
    Ok(())
}

/// LOOP, LOOPE, LOOPNE: decrement the counter (address-size wide) and branch.
pub fn loop_(m: &mut Machine, i: &Instruction) -> Flow {
    let size = loop_counter_size(i.code());
    let mask = size_mask(size);
    let c = m.cpu.gpr[1].wrapping_sub(1) & mask;
    let take = c != 0
        && match i.mnemonic() {
            Mnemonic::Loope => m.cpu.flags.zf(),
            Mnemonic::Loopne => !m.cpu.flags.zf(),
            _ => true,
        };
    let t = rel_target(m, i);
    if take {
        m.branch_near(t)?;
    }
    m.write_gpr_sized(1, size, c);
    Ok(())
}

/// The counter width of a LOOPcc encoding.
fn loop_counter_size(code: Code) -> usize {
    use Code as C;
    match code {
        C::Loop_rel8_16_RCX
        | C::Loop_rel8_64_RCX
        | C::Loope_rel8_16_RCX
        | C::Loope_rel8_64_RCX
        | C::Loopne_rel8_16_RCX
        | C::Loopne_rel8_64_RCX => 8,
        C::Loop_rel8_16_ECX
        | C::Loop_rel8_32_ECX
        | C::Loop_rel8_64_ECX
        | C::Loope_rel8_16_ECX
        | C::Loope_rel8_32_ECX
        | C::Loope_rel8_64_ECX
        | C::Loopne_rel8_16_ECX
        | C::Loopne_rel8_32_ECX
        | C::Loopne_rel8_64_ECX => 4,
        _ => 2,
    }
}

/// CALL near: push the return address, branch.
pub fn call(m: &mut Machine, i: &Instruction) -> Flow {
    let size = stack_size(i);
    let t = match i.op0_kind() {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => rel_target(m, i),
        _ => m.read_op(i, 0)? & size_mask(size),
    };
    let ret = m.next_rip;
    // Check the target before pushing so a bad target leaves RSP unchanged.
    m.branch_near(t)?;
    if let Err(e) = m.push(ret & size_mask(size), size) {
        m.next_rip = ret;
        return Err(e);
    }
    Ok(())
}

/// RET near, optionally releasing imm16 bytes.
pub fn ret(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.code() {
        Code::Retnw | Code::Retnw_imm16 => 2,
        Code::Retnd | Code::Retnd_imm16 => 4,
        _ => 8,
    };
    let t = m.peek_stack(0, size)?;
    m.branch_near(t)?;
    let release = if i.op_count() > 0 {
        i.immediate16() as u64
    } else {
        0
    };
    let sp = m.cpu.gpr[4].wrapping_add(size as u64 + release);
    m.set_sp(sp);
    Ok(())
}

/// INT n, INT3, INTO, INT1. In virtual-8086 mode INT n with IOPL < 3 is
/// #GP(0) (SDM Vol. 3A 20.3.3, no VME).
pub fn int(m: &mut Machine, i: &Instruction) -> Flow {
    let (vector, kind) = match i.mnemonic() {
        Mnemonic::Int3 => (3, SoftIntKind::Int3),
        Mnemonic::Into => {
            if !m.cpu.flags.of() {
                return Ok(());
            }
            (4, SoftIntKind::Into)
        }
        Mnemonic::Int1 => (1, SoftIntKind::Int1),
        _ => (i.immediate8(), SoftIntKind::IntN),
    };
    let what = match kind {
        SoftIntKind::Int1 => Some(Intercept::Icebp),
        SoftIntKind::IntN => Some(Intercept::IntN { vector }),
        _ => None,
    };
    if let Some(what) = what {
        m.intercept(i, what)?;
    }
    if kind == SoftIntKind::IntN
        && m.cpu.mode.mode == CpuMode::Virtual8086
        && m.cpu.flags.rflags().iopl() < 3
    {
        return Err(Event::gp0());
    }
    Err(Event::SoftwareInterrupt { vector, kind })
}
