//! Architectural definitions shared by every crate (SDM Vol. 3A chapters 2-6).

pub mod addr;
pub mod exception;
pub mod msr;
pub mod regs;
pub mod segment;
pub mod state;

pub use addr::*;
pub use exception::*;
pub use regs::*;
pub use segment::*;
pub use state::*;
