//! Architectural events as values (DESIGN.md principle 2): what an instruction
//! handler returns instead of completing normally.

use mmu::{Exception, PfErrorCode};

/// An event raised while executing one instruction.
///
/// Faults leave RIP at the faulting instruction; software interrupts return to
/// the next one. The machine delivers the event through the IDT (or, later, as a
/// VM exit when the hypervisor intercepts it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A fault or abort with its error code (SDM Vol. 3A 6.5).
    Exception(Exception),
    /// A page fault with its error code and the linear address for CR2
    /// (SDM Vol. 3A 4.7).
    PageFault {
        /// The error code pushed on delivery.
        code: PfErrorCode,
        /// The faulting linear address.
        linear: u64,
    },
    /// INT n, INT3, INTO or INT1 (ICEBP): delivered with the next instruction's
    /// address as the return address (SDM Vol. 3A 6.4.2, 6.12.1.1).
    SoftwareInterrupt {
        /// The vector.
        vector: u8,
        /// Which instruction raised it (decides the privilege check).
        kind: SoftIntKind,
    },
    /// A debug trap after the instruction completed (single step, data breakpoint,
    /// task-switch trap): DR6 bits to set (SDM Vol. 3B 18.2.3).
    DebugTrap {
        /// Bits to OR into DR6.
        dr6: u64,
    },
    /// A VM exit to the hypervisor (VMX) or #VMEXIT (SVM). The exit itself
    /// waits in the machine ([`crate::machine::Machine::guest_exit`] put it
    /// there), so raising one allocates nothing.
    GuestExit,
    /// The processor freezes on the current instruction until an interrupt
    /// arrives: a waiting x87 instruction with an unmasked exception pending
    /// while CR0.NE = 0 and IGNNE# is inactive (SDM Vol. 1 appendix D.2.1;
    /// APM Vol. 2 15.14 "FERR_FREEZE"). The interrupt handler returns to
    /// the instruction, which runs again.
    Freeze,
    /// The machine stops.
    Stop(Box<Stop>),
}

/// Which instruction raised a software interrupt (SDM Vol. 3A 6.12.1.1: the
/// gate-DPL check applies to INT n, INT3 and INTO, not to INT1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SoftIntKind {
    /// INT n (CD ib).
    IntN,
    /// INT3 (CC).
    Int3,
    /// INTO (CE).
    Into,
    /// INT1 / ICEBP (F1).
    Int1,
}

/// Why the machine stops; maps to the process exit status of DESIGN.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest wrote `value` to isa-debug-exit: status `(value << 1) | 1`.
    DebugExit(u32),
    /// The guest powered the machine off: status 0.
    PowerOff,
    /// The guest asked for a reset (reset control register, keyboard
    /// controller, port 92H): status 0, as QEMU with `-no-reboot` ends.
    Reset(String),
    /// A triple fault or shutdown: status 4.
    Shutdown(String),
    /// The guest halted with no way to wake up (interrupts disabled and no NMI
    /// source, or no interrupt source at all): status 0, noted on stderr.
    HaltForever,
    /// An instruction that should work but is not implemented yet: status 6.
    Unimplemented {
        /// The instruction's mnemonic or a description.
        what: String,
        /// CS base + RIP of the instruction.
        address: u64,
    },
    /// The instruction limit was reached: status 124.
    InstructionLimit,
}

impl Stop {
    /// The process exit status (DESIGN.md, "Command line").
    pub fn exit_status(&self) -> i32 {
        match self {
            Stop::DebugExit(v) => (((*v as u64) << 1 | 1) & 0xff) as i32,
            Stop::PowerOff | Stop::Reset(_) | Stop::HaltForever => 0,
            Stop::Shutdown(_) => 4,
            Stop::Unimplemented { .. } => 6,
            Stop::InstructionLimit => 124,
        }
    }

    /// A one-line description for stderr.
    pub fn describe(&self) -> String {
        match self {
            Stop::DebugExit(v) => format!("guest exit via isa-debug-exit, value {v:#x}"),
            Stop::PowerOff => "guest powered off".into(),
            Stop::Reset(why) => format!("guest requested a reset: {why}"),
            Stop::Shutdown(why) => format!("shutdown: {why}"),
            Stop::HaltForever => "guest halted with no interrupt able to wake it".into(),
            Stop::Unimplemented { what, address } => {
                format!("unimplemented: {what} at {address:#x}")
            }
            Stop::InstructionLimit => "instruction limit reached".into(),
        }
    }
}

impl Event {
    /// `#GP(0)`.
    #[inline]
    pub fn gp0() -> Self {
        Event::Exception(Exception::gp0())
    }
    /// `#GP(code)`.
    #[inline]
    pub fn gp(code: u32) -> Self {
        Event::Exception(Exception::gp(code))
    }
    /// `#UD`.
    #[inline]
    pub fn ud() -> Self {
        Event::Exception(Exception::ud())
    }
    /// `#SS(code)`.
    #[inline]
    pub fn ss(code: u32) -> Self {
        Event::Exception(Exception::ss(code))
    }
    /// `#NP(code)`.
    #[inline]
    pub fn np(code: u32) -> Self {
        Event::Exception(Exception::np(code))
    }
    /// `#TS(code)`.
    #[inline]
    pub fn ts(code: u32) -> Self {
        Event::Exception(Exception::ts(code))
    }
    /// `#DE`.
    #[inline]
    pub fn de() -> Self {
        Event::Exception(Exception::de())
    }
    /// `#NM`.
    #[inline]
    pub fn nm() -> Self {
        Event::Exception(Exception::nm())
    }
    /// An exception without error code.
    #[inline]
    pub fn exc(v: mmu::Vector) -> Self {
        Event::Exception(Exception::new(v))
    }
    /// Stop: unimplemented.
    #[cold]
    pub fn unimplemented(what: impl Into<String>, address: u64) -> Self {
        Event::Stop(Box::new(Stop::Unimplemented {
            what: what.into(),
            address,
        }))
    }
    /// Stop with a reason.
    #[cold]
    pub fn stop(s: Stop) -> Self {
        Event::Stop(Box::new(s))
    }
}

impl From<Exception> for Event {
    fn from(e: Exception) -> Self {
        Event::Exception(e)
    }
}

/// The result of an instruction handler.
pub type Flow = Result<(), Event>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert_eq!(Stop::DebugExit(0).exit_status(), 1);
        assert_eq!(Stop::DebugExit(1).exit_status(), 3);
        assert_eq!(Stop::DebugExit(38).exit_status(), 77);
        assert_eq!(Stop::DebugExit(63).exit_status(), 127);
        assert_eq!(Stop::Shutdown(String::new()).exit_status(), 4);
        assert_eq!(Stop::InstructionLimit.exit_status(), 124);
    }

    #[test]
    fn event_stays_small() {
        assert!(core::mem::size_of::<Event>() <= 24);
    }
}
