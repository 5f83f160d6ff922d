//! x87 FPU instructions (SDM Vol. 1 chapter 8; Vol. 2 entries F2XM1..FYL2XP1)
//! and FXSAVE/FXRSTOR.

pub mod float;

use super::Handler;
use crate::cost::InsnClass;
use crate::machine::Machine;
use iced_x86::Instruction;

/// The handler for an x87 (or FXSAVE/FXRSTOR) instruction, or `None` if `i`
/// is not one.
pub fn handler_for(_m: &Machine, _i: &Instruction) -> Option<(Handler, InsnClass)> {
    None
}
