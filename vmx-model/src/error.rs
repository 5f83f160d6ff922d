//! VM-instruction error numbers: the one table (SDM Vol. 3C 31.4, "VM Instruction
//! Error Numbers", table 31-1). VMfailValid(n) stores `n` in the VM-instruction error
//! field of the current VMCS (SDM Vol. 3C 25.9.5, "VM-Instruction Error Field").

use serde::{Deserialize, Serialize};

macro_rules! vm_instruction_errors {
    ($( $variant:ident = $num:literal, $desc:literal; )*) => {
        /// A VM-instruction error number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u32)]
        pub enum VmInstructionError {
            $( #[doc = $desc] $variant = $num, )*
        }

        impl VmInstructionError {
            /// Every error of the table, in number order.
            pub const ALL: &'static [VmInstructionError] = &[ $( VmInstructionError::$variant, )* ];

            /// The manual's description.
            pub const fn describe(self) -> &'static str {
                match self {
                    $( VmInstructionError::$variant => $desc, )*
                }
            }

            /// The error number.
            pub const fn number(self) -> u32 {
                self as u32
            }

            /// The error with number `n`, if defined (14, 21 and 27 are reserved).
            pub const fn from_number(n: u32) -> Option<Self> {
                match n {
                    $( $num => Some(VmInstructionError::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

vm_instruction_errors! {
    VmcallInRoot = 1, "VMCALL executed in VMX root operation";
    VmclearInvalidAddress = 2, "VMCLEAR with invalid physical address";
    VmclearVmxonPointer = 3, "VMCLEAR with VMXON pointer";
    VmlaunchNonClear = 4, "VMLAUNCH with non-clear VMCS";
    VmresumeNonLaunched = 5, "VMRESUME with non-launched VMCS";
    VmresumeAfterVmxoff = 6, "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)";
    EntryInvalidControlField = 7, "VM entry with invalid control field(s)";
    EntryInvalidHostStateField = 8, "VM entry with invalid host-state field(s)";
    VmptrldInvalidAddress = 9, "VMPTRLD with invalid physical address";
    VmptrldVmxonPointer = 10, "VMPTRLD with VMXON pointer";
    VmptrldIncorrectRevision = 11, "VMPTRLD with incorrect VMCS revision identifier";
    UnsupportedComponent = 12, "VMREAD/VMWRITE from/to unsupported VMCS component";
    VmwriteReadOnly = 13, "VMWRITE to read-only VMCS component";
    VmxonInRoot = 15, "VMXON executed in VMX root operation";
    EntryInvalidExecutiveVmcsPointer = 16, "VM entry with invalid executive-VMCS pointer";
    EntryNonLaunchedExecutiveVmcs = 17, "VM entry with non-launched executive VMCS";
    EntryExecutiveVmcsNotVmxon = 18, "VM entry with executive-VMCS pointer not VMXON pointer (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)";
    VmcallNonClearVmcs = 19, "VMCALL with non-clear VMCS (when attempting to activate the dual-monitor treatment of SMIs and SMM)";
    VmcallInvalidExitControls = 20, "VMCALL with invalid VM-exit control fields";
    VmcallIncorrectMsegRevision = 22, "VMCALL with incorrect MSEG revision identifier (when attempting to activate the dual-monitor treatment of SMIs and SMM)";
    VmxoffUnderDualMonitor = 23, "VMXOFF under dual-monitor treatment of SMIs and SMM";
    VmcallInvalidSmmMonitorFeatures = 24, "VMCALL with invalid SMM-monitor features (when attempting to activate the dual-monitor treatment of SMIs and SMM)";
    EntryInvalidExecutiveControls = 25, "VM entry with invalid VM-execution control fields in executive VMCS (when attempting to return from SMM)";
    EntryBlockedByMovSs = 26, "VM entry with events blocked by MOV SS";
    InvalidInveptInvvpidOperand = 28, "Invalid operand to INVEPT/INVVPID";
}

impl core::fmt::Display for VmInstructionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "VM-instruction error {}: {}",
            self.number(),
            self.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::VmInstructionError as E;

    #[test]
    fn numbers_round_trip_and_reserved_are_absent() {
        for e in E::ALL {
            assert_eq!(E::from_number(e.number()), Some(*e));
        }
        assert_eq!(E::ALL.len(), 25);
        for reserved in [0, 14, 21, 27, 29] {
            assert_eq!(E::from_number(reserved), None);
        }
        assert_eq!(E::VmwriteReadOnly.number(), 13);
        assert_eq!(E::InvalidInveptInvvpidOperand.number(), 28);
    }
}
