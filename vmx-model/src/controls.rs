//! Every VMX control bit, in one place: pin-based, primary and secondary
//! processor-based VM-execution controls, VM-exit and VM-entry controls, VM-function
//! controls, and the EPT/VPID capability bits (SDM Vol. 3C 25.6.1, 25.6.2, 25.7.1,
//! 25.8.1, 25.6.14; Vol. 3D A.10). Names are the manual's.

use bitflags::bitflags;
use serde::{Deserialize, Serialize};

bitflags! {
    /// Pin-based VM-execution controls (SDM Vol. 3C 25.6.1, table 25-5).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct PinControls: u32 {
        /// External-interrupt exiting.
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        /// NMI exiting.
        const NMI_EXITING = 1 << 3;
        /// Virtual NMIs.
        const VIRTUAL_NMIS = 1 << 5;
        /// Activate VMX-preemption timer.
        const ACTIVATE_PREEMPTION_TIMER = 1 << 6;
        /// Process posted interrupts.
        const PROCESS_POSTED_INTERRUPTS = 1 << 7;
    }
}

impl PinControls {
    /// The default1 class (SDM Vol. 3D A.2): bits 1, 2 and 4.
    pub const DEFAULT1: u32 = 0x0000_0016;
}

bitflags! {
    /// Primary processor-based VM-execution controls (SDM Vol. 3C 25.6.2, table 25-6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct ProcControls: u32 {
        /// Interrupt-window exiting.
        const INTERRUPT_WINDOW_EXITING = 1 << 2;
        /// Use TSC offsetting.
        const USE_TSC_OFFSETTING = 1 << 3;
        /// HLT exiting.
        const HLT_EXITING = 1 << 7;
        /// INVLPG exiting.
        const INVLPG_EXITING = 1 << 9;
        /// MWAIT exiting.
        const MWAIT_EXITING = 1 << 10;
        /// RDPMC exiting.
        const RDPMC_EXITING = 1 << 11;
        /// RDTSC exiting.
        const RDTSC_EXITING = 1 << 12;
        /// CR3-load exiting.
        const CR3_LOAD_EXITING = 1 << 15;
        /// CR3-store exiting.
        const CR3_STORE_EXITING = 1 << 16;
        /// Activate tertiary controls.
        const ACTIVATE_TERTIARY_CONTROLS = 1 << 17;
        /// CR8-load exiting.
        const CR8_LOAD_EXITING = 1 << 19;
        /// CR8-store exiting.
        const CR8_STORE_EXITING = 1 << 20;
        /// Use TPR shadow.
        const USE_TPR_SHADOW = 1 << 21;
        /// NMI-window exiting.
        const NMI_WINDOW_EXITING = 1 << 22;
        /// MOV-DR exiting.
        const MOV_DR_EXITING = 1 << 23;
        /// Unconditional I/O exiting.
        const UNCONDITIONAL_IO_EXITING = 1 << 24;
        /// Use I/O bitmaps.
        const USE_IO_BITMAPS = 1 << 25;
        /// Monitor trap flag.
        const MONITOR_TRAP_FLAG = 1 << 27;
        /// Use MSR bitmaps.
        const USE_MSR_BITMAPS = 1 << 28;
        /// MONITOR exiting.
        const MONITOR_EXITING = 1 << 29;
        /// PAUSE exiting.
        const PAUSE_EXITING = 1 << 30;
        /// Activate secondary controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
    }
}

impl ProcControls {
    /// The default1 class (SDM Vol. 3D A.2): bits 1, 4-6, 8, 13-16 and 26.
    pub const DEFAULT1: u32 = 0x0401_e172;
    /// Default1 bits with a function whose 0-setting a processor may support (and
    /// then reports in IA32_VMX_TRUE_PROCBASED_CTLS).
    pub const DEFAULT1_FLEXIBLE: ProcControls =
        ProcControls::CR3_LOAD_EXITING.union(ProcControls::CR3_STORE_EXITING);
}

bitflags! {
    /// Secondary processor-based VM-execution controls (SDM Vol. 3C 25.6.2,
    /// table 25-7). All other bits are reserved to 0.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct Proc2Controls: u32 {
        /// Virtualize APIC accesses.
        const VIRTUALIZE_APIC_ACCESSES = 1 << 0;
        /// Enable EPT.
        const ENABLE_EPT = 1 << 1;
        /// Descriptor-table exiting.
        const DESCRIPTOR_TABLE_EXITING = 1 << 2;
        /// Enable RDTSCP.
        const ENABLE_RDTSCP = 1 << 3;
        /// Virtualize x2APIC mode.
        const VIRTUALIZE_X2APIC_MODE = 1 << 4;
        /// Enable VPID.
        const ENABLE_VPID = 1 << 5;
        /// WBINVD exiting.
        const WBINVD_EXITING = 1 << 6;
        /// Unrestricted guest.
        const UNRESTRICTED_GUEST = 1 << 7;
        /// APIC-register virtualization.
        const APIC_REGISTER_VIRTUALIZATION = 1 << 8;
        /// Virtual-interrupt delivery.
        const VIRTUAL_INTERRUPT_DELIVERY = 1 << 9;
        /// PAUSE-loop exiting.
        const PAUSE_LOOP_EXITING = 1 << 10;
        /// RDRAND exiting.
        const RDRAND_EXITING = 1 << 11;
        /// Enable INVPCID.
        const ENABLE_INVPCID = 1 << 12;
        /// Enable VM functions.
        const ENABLE_VM_FUNCTIONS = 1 << 13;
        /// VMCS shadowing.
        const VMCS_SHADOWING = 1 << 14;
        /// Enable ENCLS exiting.
        const ENABLE_ENCLS_EXITING = 1 << 15;
        /// RDSEED exiting.
        const RDSEED_EXITING = 1 << 16;
        /// Enable PML.
        const ENABLE_PML = 1 << 17;
        /// EPT-violation #VE.
        const EPT_VIOLATION_VE = 1 << 18;
        /// Conceal VMX from PT.
        const CONCEAL_VMX_FROM_PT = 1 << 19;
        /// Enable XSAVES/XRSTORS.
        const ENABLE_XSAVES = 1 << 20;
        /// PASID translation.
        const PASID_TRANSLATION = 1 << 21;
        /// Mode-based execute control for EPT.
        const MODE_BASED_EXECUTE_CONTROL = 1 << 22;
        /// Sub-page write permissions for EPT.
        const SUB_PAGE_WRITE_PERMISSIONS = 1 << 23;
        /// Intel PT uses guest physical addresses.
        const PT_USES_GUEST_PHYSICAL = 1 << 24;
        /// Use TSC scaling.
        const USE_TSC_SCALING = 1 << 25;
        /// Enable user wait and pause.
        const ENABLE_USER_WAIT_AND_PAUSE = 1 << 26;
        /// Enable PCONFIG.
        const ENABLE_PCONFIG = 1 << 27;
        /// Enable ENCLV exiting.
        const ENABLE_ENCLV_EXITING = 1 << 28;
        /// VMM bus-lock detection.
        const VMM_BUS_LOCK_DETECTION = 1 << 30;
        /// Instruction timeout.
        const INSTRUCTION_TIMEOUT = 1 << 31;
    }
}

bitflags! {
    /// Primary VM-exit controls (SDM Vol. 3C 25.7.1, table 25-13).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct ExitControls: u32 {
        /// Save debug controls.
        const SAVE_DEBUG_CONTROLS = 1 << 2;
        /// Host address-space size.
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        /// Load IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 12;
        /// Acknowledge interrupt on exit.
        const ACKNOWLEDGE_INTERRUPT_ON_EXIT = 1 << 15;
        /// Save IA32_PAT.
        const SAVE_PAT = 1 << 18;
        /// Load IA32_PAT.
        const LOAD_PAT = 1 << 19;
        /// Save IA32_EFER.
        const SAVE_EFER = 1 << 20;
        /// Load IA32_EFER.
        const LOAD_EFER = 1 << 21;
        /// Save VMX-preemption timer value.
        const SAVE_PREEMPTION_TIMER = 1 << 22;
        /// Clear IA32_BNDCFGS.
        const CLEAR_BNDCFGS = 1 << 23;
        /// Conceal VMX from PT.
        const CONCEAL_VMX_FROM_PT = 1 << 24;
        /// Clear IA32_RTIT_CTL.
        const CLEAR_RTIT_CTL = 1 << 25;
        /// Clear IA32_LBR_CTL.
        const CLEAR_LBR_CTL = 1 << 26;
        /// Clear UINV.
        const CLEAR_UINV = 1 << 27;
        /// Load CET state.
        const LOAD_CET_STATE = 1 << 28;
        /// Load PKRS.
        const LOAD_PKRS = 1 << 29;
        /// Save IA32_PERF_GLOBAL_CTRL.
        const SAVE_PERF_GLOBAL_CTRL = 1 << 30;
        /// Activate secondary controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
    }
}

impl ExitControls {
    /// The default1 class (SDM Vol. 3D A.2): bits 0-8, 10, 11, 13, 14, 16 and 17.
    pub const DEFAULT1: u32 = 0x0003_6dff;
    /// Default1 bits with a function whose 0-setting a processor may support.
    pub const DEFAULT1_FLEXIBLE: ExitControls = ExitControls::SAVE_DEBUG_CONTROLS;
}

bitflags! {
    /// VM-entry controls (SDM Vol. 3C 25.8.1, table 25-15).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct EntryControls: u32 {
        /// Load debug controls.
        const LOAD_DEBUG_CONTROLS = 1 << 2;
        /// IA-32e mode guest.
        const IA32E_MODE_GUEST = 1 << 9;
        /// Entry to SMM.
        const ENTRY_TO_SMM = 1 << 10;
        /// Deactivate dual-monitor treatment.
        const DEACTIVATE_DUAL_MONITOR = 1 << 11;
        /// Load IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 13;
        /// Load IA32_PAT.
        const LOAD_PAT = 1 << 14;
        /// Load IA32_EFER.
        const LOAD_EFER = 1 << 15;
        /// Load IA32_BNDCFGS.
        const LOAD_BNDCFGS = 1 << 16;
        /// Conceal VMX from PT.
        const CONCEAL_VMX_FROM_PT = 1 << 17;
        /// Load IA32_RTIT_CTL.
        const LOAD_RTIT_CTL = 1 << 18;
        /// Load UINV.
        const LOAD_UINV = 1 << 19;
        /// Load CET state.
        const LOAD_CET_STATE = 1 << 20;
        /// Load guest IA32_LBR_CTL.
        const LOAD_LBR_CTL = 1 << 21;
        /// Load PKRS.
        const LOAD_PKRS = 1 << 22;
    }
}

impl EntryControls {
    /// The default1 class (SDM Vol. 3D A.2): bits 0-8 and 12.
    pub const DEFAULT1: u32 = 0x0000_11ff;
    /// Default1 bits with a function whose 0-setting a processor may support.
    pub const DEFAULT1_FLEXIBLE: EntryControls = EntryControls::LOAD_DEBUG_CONTROLS;
}

bitflags! {
    /// VM-function controls (SDM Vol. 3C 25.6.14, table 25-10).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct VmFuncControls: u64 {
        /// EPTP switching (VM function 0).
        const EPTP_SWITCHING = 1 << 0;
    }
}

bitflags! {
    /// IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D A.10, "VPID and EPT Capabilities").
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct EptVpidCap: u64 {
        /// EPT supports execute-only translations.
        const EXECUTE_ONLY = 1 << 0;
        /// Page-walk length of 4.
        const PAGE_WALK_4 = 1 << 6;
        /// Page-walk length of 5.
        const PAGE_WALK_5 = 1 << 7;
        /// EPT paging-structure memory type uncacheable (UC) allowed.
        const MEMORY_TYPE_UC = 1 << 8;
        /// EPT paging-structure memory type write-back (WB) allowed.
        const MEMORY_TYPE_WB = 1 << 14;
        /// EPT PDEs may map 2-MByte pages.
        const PDE_2MB_PAGES = 1 << 16;
        /// EPT PDPTEs may map 1-GByte pages.
        const PDPTE_1GB_PAGES = 1 << 17;
        /// INVEPT is supported.
        const INVEPT = 1 << 20;
        /// Accessed and dirty flags for EPT.
        const ACCESSED_DIRTY = 1 << 21;
        /// Advanced VM-exit information for EPT violations.
        const ADVANCED_EXIT_INFO = 1 << 22;
        /// Supervisor shadow-stack control.
        const SUPERVISOR_SHADOW_STACK = 1 << 23;
        /// Single-context INVEPT type.
        const INVEPT_SINGLE_CONTEXT = 1 << 25;
        /// All-context INVEPT type.
        const INVEPT_ALL_CONTEXT = 1 << 26;
        /// INVVPID is supported.
        const INVVPID = 1 << 32;
        /// Individual-address INVVPID type.
        const INVVPID_INDIVIDUAL_ADDRESS = 1 << 40;
        /// Single-context INVVPID type.
        const INVVPID_SINGLE_CONTEXT = 1 << 41;
        /// All-context INVVPID type.
        const INVVPID_ALL_CONTEXT = 1 << 42;
        /// Single-context-retaining-globals INVVPID type.
        const INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS = 1 << 43;
    }
}

/// The four settings of a control under a pair of capability MSRs (SDM Vol. 3D
/// A.3): bits that must be 1 (`allowed0` has them set) and bits that may be 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Allowed {
    /// Bits 31:0 of the capability MSR: a 1 here means the control must be 1.
    pub must_be_one: u32,
    /// Bits 63:32 of the capability MSR: a 0 here means the control must be 0.
    pub may_be_one: u32,
}

impl Allowed {
    /// The capability MSR value: allowed 0-settings in 31:0, allowed 1-settings in 63:32.
    pub const fn msr(self) -> u64 {
        self.must_be_one as u64 | (self.may_be_one as u64) << 32
    }
    /// True if `value` honours both halves.
    pub const fn permits(self, value: u32) -> bool {
        value & self.must_be_one == self.must_be_one && value & !self.may_be_one == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default1_classes_match_appendix_a2() {
        // Pin-based bits 1, 2, 4.
        assert_eq!(PinControls::DEFAULT1, (1 << 1) | (1 << 2) | (1 << 4));
        // Primary bits 1, 4-6, 8, 13-16, 26.
        let p = [1, 4, 5, 6, 8, 13, 14, 15, 16, 26]
            .iter()
            .fold(0u32, |a, b| a | 1 << b);
        assert_eq!(ProcControls::DEFAULT1, p);
        // Exit bits 0-8, 10, 11, 13, 14, 16, 17.
        let e = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 14, 16, 17]
            .iter()
            .fold(0u32, |a, b| a | 1 << b);
        assert_eq!(ExitControls::DEFAULT1, e);
        // Entry bits 0-8, 12.
        let n = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12]
            .iter()
            .fold(0u32, |a, b| a | 1 << b);
        assert_eq!(EntryControls::DEFAULT1, n);
        // Flexible bits are inside their class.
        assert_eq!(
            ProcControls::DEFAULT1_FLEXIBLE.bits() & !ProcControls::DEFAULT1,
            0
        );
    }

    #[test]
    fn allowed_permits() {
        let a = Allowed {
            must_be_one: 0x16,
            may_be_one: 0x7f,
        };
        assert!(a.permits(0x17));
        assert!(!a.permits(0x06));
        assert!(!a.permits(0x96));
        assert_eq!(a.msr(), 0x0000_007f_0000_0016);
    }
}
