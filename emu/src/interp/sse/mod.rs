//! MMX, SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 instructions (SDM Vol. 1
//! chapters 9-12; Vol. 2 entries).

pub mod fp;

use super::Handler;
use crate::cost::InsnClass;
use crate::machine::Machine;
use iced_x86::Instruction;

/// The handler for an MMX/SSE instruction, or `None` if `i` is not one.
pub fn handler_for(_m: &Machine, _i: &Instruction) -> Option<(Handler, InsnClass)> {
    None
}
