//! MXCSR access and the MMX state instruction (SDM Vol. 2 LDMXCSR, STMXCSR,
//! EMMS).

use super::fp::mxcsr;
use super::operands::{mmx_check, sse_check};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::Instruction;

/// LDMXCSR m32: #GP(0) if a reserved bit (outside MXCSR_MASK) is set (SDM
/// Vol. 1 11.6.6). Setting a flag together with clearing its mask raises
/// nothing now; only a later instruction that detects the condition does.
pub fn ldmxcsr(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let v = m.read_mem_op(i, 4)? as u32;
    if v & !mxcsr::WRITABLE != 0 {
        return Err(Event::gp0());
    }
    m.cpu.fpu.mxcsr = v;
    Ok(())
}

/// STMXCSR m32.
pub fn stmxcsr(m: &mut Machine, i: &Instruction) -> Flow {
    sse_check(m)?;
    let v = m.cpu.fpu.mxcsr as u64;
    m.write_mem_op(i, 4, v)
}

/// EMMS: marks every x87 register empty.
pub fn emms(m: &mut Machine, _: &Instruction) -> Flow {
    mmx_check(m)?;
    m.mmx_leave();
    Ok(())
}
