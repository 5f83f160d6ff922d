//! VMX basic exit reasons: the one table (SDM Vol. 3D appendix C, "VMX Basic Exit
//! Reasons", table C-1), with how each exit relates to instruction execution.

use serde::{Deserialize, Serialize};

/// How an exit relates to the instruction stream (SDM Vol. 3C 28.1, "Architectural
/// State Before a VM Exit").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitTiming {
    /// Fault-like: the instruction did not execute; the saved RIP references it.
    Fault,
    /// Trap-like: the instruction completed; the saved RIP references the next one.
    Trap,
    /// Caused by an event between instructions (interrupt, window, timer, signal).
    Event,
    /// A VM-entry failure (bit 31 of the exit reason is set).
    EntryFailure,
}

macro_rules! exit_reasons {
    ($( $variant:ident = $num:literal, $timing:ident, $name:literal; )*) => {
        /// A basic exit reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u16)]
        pub enum ExitReason {
            $( #[doc = $name] $variant = $num, )*
        }

        impl ExitReason {
            /// Every exit reason, in number order.
            pub const ALL: &'static [ExitReason] = &[ $( ExitReason::$variant, )* ];

            /// The manual's name (the key of `vmexits.by_reason` in `--stats`).
            pub const fn name(self) -> &'static str {
                match self { $( ExitReason::$variant => $name, )* }
            }

            /// Fault-like, trap-like, event or entry failure.
            pub const fn timing(self) -> ExitTiming {
                match self { $( ExitReason::$variant => ExitTiming::$timing, )* }
            }

            /// The exit reason with basic number `n`.
            pub const fn from_number(n: u16) -> Option<Self> {
                match n {
                    $( $num => Some(ExitReason::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

exit_reasons! {
    ExceptionOrNmi = 0, Event, "Exception or non-maskable interrupt (NMI)";
    ExternalInterrupt = 1, Event, "External interrupt";
    TripleFault = 2, Event, "Triple fault";
    InitSignal = 3, Event, "INIT signal";
    StartupIpi = 4, Event, "Start-up IPI (SIPI)";
    IoSmi = 5, Trap, "I/O system-management interrupt (SMI)";
    OtherSmi = 6, Event, "Other SMI";
    InterruptWindow = 7, Event, "Interrupt window";
    NmiWindow = 8, Event, "NMI window";
    TaskSwitch = 9, Fault, "Task switch";
    Cpuid = 10, Fault, "CPUID";
    Getsec = 11, Fault, "GETSEC";
    Hlt = 12, Fault, "HLT";
    Invd = 13, Fault, "INVD";
    Invlpg = 14, Fault, "INVLPG";
    Rdpmc = 15, Fault, "RDPMC";
    Rdtsc = 16, Fault, "RDTSC";
    Rsm = 17, Fault, "RSM";
    Vmcall = 18, Fault, "VMCALL";
    Vmclear = 19, Fault, "VMCLEAR";
    Vmlaunch = 20, Fault, "VMLAUNCH";
    Vmptrld = 21, Fault, "VMPTRLD";
    Vmptrst = 22, Fault, "VMPTRST";
    Vmread = 23, Fault, "VMREAD";
    Vmresume = 24, Fault, "VMRESUME";
    Vmwrite = 25, Fault, "VMWRITE";
    Vmxoff = 26, Fault, "VMXOFF";
    Vmxon = 27, Fault, "VMXON";
    ControlRegisterAccess = 28, Fault, "Control-register accesses";
    MovDr = 29, Fault, "MOV DR";
    IoInstruction = 30, Fault, "I/O instruction";
    Rdmsr = 31, Fault, "RDMSR";
    Wrmsr = 32, Fault, "WRMSR";
    EntryFailureGuestState = 33, EntryFailure, "VM-entry failure due to invalid guest state";
    EntryFailureMsrLoading = 34, EntryFailure, "VM-entry failure due to MSR loading";
    Mwait = 36, Fault, "MWAIT";
    MonitorTrapFlag = 37, Trap, "Monitor trap flag";
    Monitor = 39, Fault, "MONITOR";
    Pause = 40, Fault, "PAUSE";
    EntryFailureMachineCheck = 41, EntryFailure, "VM-entry failure due to machine-check event";
    TprBelowThreshold = 43, Trap, "TPR below threshold";
    ApicAccess = 44, Fault, "APIC access";
    VirtualizedEoi = 45, Trap, "Virtualized EOI";
    GdtrIdtrAccess = 46, Fault, "Access to GDTR or IDTR";
    LdtrTrAccess = 47, Fault, "Access to LDTR or TR";
    EptViolation = 48, Fault, "EPT violation";
    EptMisconfiguration = 49, Fault, "EPT misconfiguration";
    Invept = 50, Fault, "INVEPT";
    Rdtscp = 51, Fault, "RDTSCP";
    PreemptionTimerExpired = 52, Event, "VMX-preemption timer expired";
    Invvpid = 53, Fault, "INVVPID";
    Wbinvd = 54, Fault, "WBINVD or WBNOINVD";
    Xsetbv = 55, Fault, "XSETBV";
    ApicWrite = 56, Trap, "APIC write";
    Rdrand = 57, Fault, "RDRAND";
    Invpcid = 58, Fault, "INVPCID";
    Vmfunc = 59, Fault, "VMFUNC";
    Encls = 60, Fault, "ENCLS";
    Rdseed = 61, Fault, "RDSEED";
    PmlFull = 62, Fault, "Page-modification log full";
    Xsaves = 63, Fault, "XSAVES";
    Xrstors = 64, Fault, "XRSTORS";
    Pconfig = 65, Fault, "PCONFIG";
    SppEvent = 66, Fault, "SPP-related event";
    Umwait = 67, Fault, "UMWAIT";
    Tpause = 68, Fault, "TPAUSE";
    Loadiwkey = 69, Fault, "LOADIWKEY";
    Enclv = 70, Fault, "ENCLV";
    EnqcmdPasidFailure = 72, Fault, "ENQCMD PASID translation failure";
    EnqcmdsPasidFailure = 73, Fault, "ENQCMDS PASID translation failure";
    BusLock = 74, Trap, "Bus lock";
    InstructionTimeout = 75, Event, "Instruction timeout";
    Seamcall = 76, Fault, "SEAMCALL";
    Tdcall = 77, Fault, "TDCALL";
    Rdmsrlist = 78, Fault, "RDMSRLIST";
    Wrmsrlist = 79, Fault, "WRMSRLIST";
}

impl ExitReason {
    /// The basic exit reason number (bits 15:0 of the exit-reason field).
    pub const fn number(self) -> u16 {
        self as u16
    }
}

impl core::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        for r in ExitReason::ALL {
            assert_eq!(ExitReason::from_number(r.number()), Some(*r));
        }
        for reserved in [35, 38, 42, 71] {
            assert_eq!(ExitReason::from_number(reserved), None);
        }
        assert_eq!(ExitReason::EptViolation.number(), 48);
        assert_eq!(ExitReason::Xsetbv.name(), "XSETBV");
        assert_eq!(
            ExitReason::EntryFailureMsrLoading.timing(),
            ExitTiming::EntryFailure
        );
        let names: std::collections::BTreeSet<_> =
            ExitReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), ExitReason::ALL.len());
    }
}
