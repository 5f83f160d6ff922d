//! Exception and interrupt vectors, their classes and error codes
//! (SDM Vol. 3A 6.3, "Sources of interrupts", table 6-1, and 6.15, "Exception and
//! interrupt reference").

use bitflags::bitflags;
use serde::{Deserialize, Serialize};

/// An interrupt vector number, 0-255.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Vector(pub u8);

macro_rules! vectors {
    ($( $name:ident = $num:literal, $mnemonic:literal, $class:ident, $err:literal, $desc:literal; )*) => {
        impl Vector {
            $(
                #[doc = $desc]
                pub const $name: Vector = Vector($num);
            )*

            /// The manual's mnemonic (`#GP`, `#PF`, ...), or `None` for vectors
            /// with no architectural meaning.
            pub const fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $( $num => Some($mnemonic), )*
                    _ => None,
                }
            }

            /// The class for double-fault detection (SDM Vol. 3A table 6-4).
            pub const fn class(self) -> ExceptionClass {
                match self.0 {
                    $( $num => ExceptionClass::$class, )*
                    _ => ExceptionClass::Benign,
                }
            }

            /// True if the processor pushes an error code when delivering this
            /// vector as an exception (SDM Vol. 3A table 6-1).
            pub const fn has_error_code(self) -> bool {
                match self.0 {
                    $( $num => $err, )*
                    _ => false,
                }
            }
        }
    };
}

vectors! {
    DE = 0, "#DE", Contributory, false, "Divide error.";
    DB = 1, "#DB", Benign, false, "Debug exception.";
    NMI = 2, "NMI", Benign, false, "Non-maskable interrupt.";
    BP = 3, "#BP", Benign, false, "Breakpoint (INT3).";
    OF = 4, "#OF", Benign, false, "Overflow (INTO).";
    BR = 5, "#BR", Benign, false, "BOUND range exceeded.";
    UD = 6, "#UD", Benign, false, "Invalid opcode.";
    NM = 7, "#NM", Benign, false, "Device not available.";
    DF = 8, "#DF", DoubleFault, true, "Double fault.";
    TS = 10, "#TS", Contributory, true, "Invalid TSS.";
    NP = 11, "#NP", Contributory, true, "Segment not present.";
    SS = 12, "#SS", Contributory, true, "Stack-segment fault.";
    GP = 13, "#GP", Contributory, true, "General protection.";
    PF = 14, "#PF", PageFault, true, "Page fault.";
    MF = 16, "#MF", Benign, false, "x87 floating-point error.";
    AC = 17, "#AC", Benign, true, "Alignment check.";
    MC = 18, "#MC", Benign, false, "Machine check.";
    XM = 19, "#XM", Benign, false, "SIMD floating-point exception.";
    VE = 20, "#VE", PageFault, false, "Virtualization exception.";
    CP = 21, "#CP", Contributory, true, "Control protection.";
}

impl core::fmt::Debug for Vector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "vector {}", self.0),
        }
    }
}

/// Exception classes for the double-fault rule (SDM Vol. 3A 6.15, "Interrupt 8").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// Benign exceptions and interrupts.
    Benign,
    /// Contributory exceptions (#DE, #TS, #NP, #SS, #GP, #CP).
    Contributory,
    /// Page faults (and #VE).
    PageFault,
    /// #DF itself.
    DoubleFault,
}

/// What happens when a second exception is detected while delivering a first
/// (SDM Vol. 3A table 6-5, "Conditions for generating a double fault").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondException {
    /// Deliver the second exception serially.
    Serial,
    /// Deliver #DF.
    DoubleFault,
    /// A fault while delivering #DF: shutdown.
    TripleFault,
}

/// Applies table 6-5 to a first exception (being delivered) and a second one.
pub const fn combine(first: Vector, second: Vector) -> SecondException {
    use ExceptionClass::*;
    match (first.class(), second.class()) {
        (DoubleFault, _) => SecondException::TripleFault,
        (Contributory, Contributory) => SecondException::DoubleFault,
        (PageFault, Contributory) | (PageFault, PageFault) => SecondException::DoubleFault,
        _ => SecondException::Serial,
    }
}

/// An exception as a value: vector and, where the vector has one, an error code
/// (SDM Vol. 3A 6.13, "Error code").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exception {
    /// The vector.
    pub vector: Vector,
    /// The error code pushed on delivery, if any.
    pub error_code: Option<u32>,
}

impl Exception {
    /// An exception without error code.
    pub const fn new(vector: Vector) -> Self {
        Self {
            vector,
            error_code: None,
        }
    }
    /// An exception with an error code.
    pub const fn with_code(vector: Vector, code: u32) -> Self {
        Self {
            vector,
            error_code: Some(code),
        }
    }
    /// `#GP(0)`.
    pub const fn gp0() -> Self {
        Self::with_code(Vector::GP, 0)
    }
    /// `#GP(selector)` with the selector error-code format.
    pub const fn gp(code: u32) -> Self {
        Self::with_code(Vector::GP, code)
    }
    /// `#UD`.
    pub const fn ud() -> Self {
        Self::new(Vector::UD)
    }
    /// `#SS(code)`.
    pub const fn ss(code: u32) -> Self {
        Self::with_code(Vector::SS, code)
    }
    /// `#NP(code)`.
    pub const fn np(code: u32) -> Self {
        Self::with_code(Vector::NP, code)
    }
    /// `#TS(code)`.
    pub const fn ts(code: u32) -> Self {
        Self::with_code(Vector::TS, code)
    }
    /// `#DE`.
    pub const fn de() -> Self {
        Self::new(Vector::DE)
    }
    /// `#NM`.
    pub const fn nm() -> Self {
        Self::new(Vector::NM)
    }
    /// `#AC(0)`.
    pub const fn ac() -> Self {
        Self::with_code(Vector::AC, 0)
    }
    /// `#MF`.
    pub const fn mf() -> Self {
        Self::new(Vector::MF)
    }
    /// `#XM`.
    pub const fn xm() -> Self {
        Self::new(Vector::XM)
    }
}

/// Builds a selector error code (SDM Vol. 3A 6.13, figure 6-7): EXT (bit 0),
/// IDT (bit 1), TI (bit 2), and the selector index.
pub const fn selector_error_code(index_and_ti: u16, idt: bool, ext: bool) -> u32 {
    (index_and_ti as u32 & 0xfffc) | ((idt as u32) << 1) | ext as u32
}

/// The error code naming IDT entry `vector` (IDT bit set).
pub const fn idt_error_code(vector: u8, ext: bool) -> u32 {
    ((vector as u32) << 3) | 2 | ext as u32
}

bitflags! {
    /// Page-fault error code (SDM Vol. 3A 4.7, figure 4-12).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct PfErrorCode: u32 {
        /// The fault was caused by a protection violation (0: not present).
        const P = 1 << 0;
        /// The access was a write.
        const W = 1 << 1;
        /// The access was a user-mode access.
        const U = 1 << 2;
        /// A reserved bit was set in a paging-structure entry.
        const RSVD = 1 << 3;
        /// The access was an instruction fetch.
        const ID = 1 << 4;
        /// Protection-key violation.
        const PK = 1 << 5;
        /// Shadow-stack access.
        const SS = 1 << 6;
        /// HLAT paging.
        const HLAT = 1 << 7;
        /// SGX violation.
        const SGX = 1 << 15;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_fault_table() {
        assert_eq!(
            combine(Vector::GP, Vector::NP),
            SecondException::DoubleFault
        );
        assert_eq!(
            combine(Vector::PF, Vector::PF),
            SecondException::DoubleFault
        );
        assert_eq!(
            combine(Vector::PF, Vector::GP),
            SecondException::DoubleFault
        );
        assert_eq!(combine(Vector::GP, Vector::PF), SecondException::Serial);
        assert_eq!(combine(Vector::DB, Vector::GP), SecondException::Serial);
        assert_eq!(
            combine(Vector::DF, Vector::UD),
            SecondException::TripleFault
        );
    }

    #[test]
    fn error_codes() {
        assert!(Vector::GP.has_error_code());
        assert!(Vector::AC.has_error_code());
        assert!(!Vector::UD.has_error_code());
        assert_eq!(idt_error_code(13, false), 13 * 8 + 2);
        assert_eq!(selector_error_code(0x2b, false, true), 0x29);
        assert_eq!(format!("{:?}", Vector::PF), "#PF");
    }
}
