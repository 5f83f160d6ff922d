//! Event-related formats shared by VM entry and VM exit: the interruption-information
//! format (VM-entry interruption information, VM-exit interruption information and
//! IDT-vectoring information: SDM Vol. 3C 25.8.3 table 25-17, 25.9.2 table 25-19,
//! 25.9.3 table 25-20), the interruptibility state (25.4.2 table 25-3) and the
//! activity state (25.4.2).

use bitflags::bitflags;
use mmu::Vector;
use serde::{Deserialize, Serialize};

/// Interruption type, bits 10:8 of the interruption-information format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InterruptionType {
    /// 0: external interrupt.
    ExternalInterrupt,
    /// 1: reserved.
    Reserved,
    /// 2: non-maskable interrupt.
    Nmi,
    /// 3: hardware exception.
    HardwareException,
    /// 4: software interrupt (INT n).
    SoftwareInterrupt,
    /// 5: privileged software exception (INT1).
    PrivilegedSoftwareException,
    /// 6: software exception (INT3, INTO).
    SoftwareException,
    /// 7: other event (vector 0: pending MTF VM exit).
    OtherEvent,
}

impl InterruptionType {
    /// The 3-bit type code.
    pub const fn code(self) -> u32 {
        self as u32
    }
    /// The type with code `c & 7`.
    pub const fn from_code(c: u32) -> Self {
        match c & 7 {
            0 => Self::ExternalInterrupt,
            1 => Self::Reserved,
            2 => Self::Nmi,
            3 => Self::HardwareException,
            4 => Self::SoftwareInterrupt,
            5 => Self::PrivilegedSoftwareException,
            6 => Self::SoftwareException,
            _ => Self::OtherEvent,
        }
    }
    /// Types that carry an instruction length (software interrupts and exceptions).
    pub const fn is_software(self) -> bool {
        matches!(
            self,
            Self::SoftwareInterrupt | Self::PrivilegedSoftwareException | Self::SoftwareException
        )
    }
}

/// A value in the interruption-information format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InterruptionInfo(pub u32);

impl InterruptionInfo {
    /// Bit 11: an error code is delivered (entry) or was pushed (exit).
    pub const ERROR_CODE_VALID: u32 = 1 << 11;
    /// Bit 12 (exit interruption information only): NMI unblocking due to IRET.
    pub const NMI_UNBLOCKING_DUE_TO_IRET: u32 = 1 << 12;
    /// Bit 31: valid.
    pub const VALID: u32 = 1 << 31;

    /// A valid interruption of `kind` with `vector`.
    pub const fn new(kind: InterruptionType, vector: u8, error_code: bool) -> Self {
        Self(
            vector as u32
                | kind.code() << 8
                | if error_code {
                    Self::ERROR_CODE_VALID
                } else {
                    0
                }
                | Self::VALID,
        )
    }
    /// Bit 31.
    pub const fn valid(self) -> bool {
        self.0 & Self::VALID != 0
    }
    /// Bits 7:0.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }
    /// Bits 10:8.
    pub const fn kind(self) -> InterruptionType {
        InterruptionType::from_code(self.0 >> 8)
    }
    /// Bit 11.
    pub const fn error_code_valid(self) -> bool {
        self.0 & Self::ERROR_CODE_VALID != 0
    }
    /// Bit 12.
    pub const fn nmi_unblocking(self) -> bool {
        self.0 & Self::NMI_UNBLOCKING_DUE_TO_IRET != 0
    }
    /// The value with bit 12 set as given.
    pub const fn with_nmi_unblocking(self, on: bool) -> Self {
        if on {
            Self(self.0 | Self::NMI_UNBLOCKING_DUE_TO_IRET)
        } else {
            Self(self.0 & !Self::NMI_UNBLOCKING_DUE_TO_IRET)
        }
    }
}

/// Hardware exceptions that deliver an error code, for the VM-entry injection
/// check (SDM Vol. 3C 27.2.1.3: 8, 10-14 and 17; #CP is added only on processors
/// with CET, which this model lacks).
pub const fn exception_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// The vector of an NMI.
pub const NMI_VECTOR: u8 = Vector::NMI.0;

bitflags! {
    /// Guest interruptibility state (SDM Vol. 3C 25.4.2, table 25-3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct Interruptibility: u32 {
        /// Blocking by STI.
        const STI = 1 << 0;
        /// Blocking by MOV SS.
        const MOV_SS = 1 << 1;
        /// Blocking by SMI.
        const SMI = 1 << 2;
        /// Blocking by NMI.
        const NMI = 1 << 3;
        /// Enclave interruption.
        const ENCLAVE = 1 << 4;
    }
}

/// Guest activity state (SDM Vol. 3C 25.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ActivityState {
    /// 0: executing instructions.
    #[default]
    Active,
    /// 1: halted by HLT.
    Hlt,
    /// 2: shutdown after a triple fault.
    Shutdown,
    /// 3: waiting for a start-up IPI.
    WaitForSipi,
}

impl ActivityState {
    /// The field encoding.
    pub const fn code(self) -> u32 {
        self as u32
    }
    /// The state with field value `c`, if defined.
    pub const fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::Active,
            1 => Self::Hlt,
            2 => Self::Shutdown,
            3 => Self::WaitForSipi,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interruption_info_layout() {
        // #PF with error code: vector 14, type 3, bit 11, bit 31 (SDM table 25-17).
        let pf = InterruptionInfo::new(InterruptionType::HardwareException, 14, true);
        assert_eq!(pf.0, 0x8000_0b0e);
        assert!(pf.valid() && pf.error_code_valid());
        assert_eq!(pf.kind(), InterruptionType::HardwareException);
        // External interrupt 0x20.
        assert_eq!(
            InterruptionInfo::new(InterruptionType::ExternalInterrupt, 0x20, false).0,
            0x8000_0020
        );
        // NMI: vector 2, type 2.
        assert_eq!(
            InterruptionInfo::new(InterruptionType::Nmi, 2, false).0,
            0x8000_0202
        );
        assert_eq!(pf.with_nmi_unblocking(true).0, 0x8000_1b0e);
        assert!(exception_has_error_code(17) && !exception_has_error_code(21));
    }
}
