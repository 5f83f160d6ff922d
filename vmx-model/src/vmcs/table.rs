//! The VMCS field table: every field of SDM Vol. 3D appendix B, once. The dense
//! [`Field`] enum, lookup by encoding, the in-memory layout, the capability MSR
//! IA32_VMX_VMCS_ENUM, VMREAD/VMWRITE and the reports all derive from it.

use super::field::{Feature, FieldInfo, Kind, Width};
use crate::controls::{
    EntryControls as En, ExitControls as Ex, PinControls as Pin, Proc2Controls as P2,
    ProcControls as P1, VmFuncControls as Vf,
};
use serde::{Deserialize, Serialize};

macro_rules! vmcs_fields {
    ($( $v:ident = $enc:literal, $w:ident, $k:ident, $feat:expr, $sec:literal, $name:literal; )*) => {
        /// A VMCS field; the discriminant is the row of [`FIELDS`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u16)]
        pub enum Field {
            $( #[doc = concat!($name, " (encoding ", stringify!($enc), ").")] $v, )*
        }

        /// The table, in [`Field`] order.
        pub static FIELDS: &[FieldInfo] = &[
            $( FieldInfo {
                field: Field::$v,
                encoding: $enc,
                width: Width::$w,
                kind: Kind::$k,
                feature: $feat,
                section: $sec,
                name: $name,
            }, )*
        ];

        impl Field {
            /// Every field, in table order.
            pub const ALL: &'static [Field] = &[ $( Field::$v, )* ];

            /// The field whose full (access type 0) encoding is `enc`.
            pub const fn from_full_encoding(enc: u32) -> Option<Field> {
                match enc {
                    $( $enc => Some(Field::$v), )*
                    _ => None,
                }
            }
        }
    };
}

/// Number of rows in the field table.
pub const FIELD_COUNT: usize = Field::ALL.len();

use Feature::{
    Always, Entry, EntryOrExit, Exit, Pin as FPin, Proc as FProc, Proc2 as FProc2, Unmodelled,
    VmFunc,
};

vmcs_fields! {
    // 16-bit control fields (table B-1).
    VirtualProcessorId = 0x0000, W16, Control, FProc2(P2::ENABLE_VPID), "25.6.12", "Virtual-processor identifier (VPID)";
    PostedInterruptNotificationVector = 0x0002, W16, Control, FPin(Pin::PROCESS_POSTED_INTERRUPTS), "25.6.8", "Posted-interrupt notification vector";
    EptpIndex = 0x0004, W16, Control, FProc2(P2::EPT_VIOLATION_VE), "25.6.18", "EPTP index";
    HlatPrefixSize = 0x0006, W16, Control, Unmodelled("enable HLAT (tertiary control)"), "25.6.23", "HLAT prefix size";
    LastPidPointerIndex = 0x0008, W16, Control, Unmodelled("IPI virtualization (tertiary control)"), "25.6.8", "Last PID-pointer index";
    // 16-bit guest-state fields (table B-2).
    GuestEsSelector = 0x0800, W16, Guest, Always, "25.4.1", "Guest ES selector";
    GuestCsSelector = 0x0802, W16, Guest, Always, "25.4.1", "Guest CS selector";
    GuestSsSelector = 0x0804, W16, Guest, Always, "25.4.1", "Guest SS selector";
    GuestDsSelector = 0x0806, W16, Guest, Always, "25.4.1", "Guest DS selector";
    GuestFsSelector = 0x0808, W16, Guest, Always, "25.4.1", "Guest FS selector";
    GuestGsSelector = 0x080a, W16, Guest, Always, "25.4.1", "Guest GS selector";
    GuestLdtrSelector = 0x080c, W16, Guest, Always, "25.4.1", "Guest LDTR selector";
    GuestTrSelector = 0x080e, W16, Guest, Always, "25.4.1", "Guest TR selector";
    GuestInterruptStatus = 0x0810, W16, Guest, FProc2(P2::VIRTUAL_INTERRUPT_DELIVERY), "25.4.2", "Guest interrupt status";
    PmlIndex = 0x0812, W16, Guest, FProc2(P2::ENABLE_PML), "25.4.2", "PML index";
    GuestUinv = 0x0814, W16, Guest, Unmodelled("user interrupts"), "25.4.2", "Guest UINV";
    // 16-bit host-state fields (table B-3).
    HostEsSelector = 0x0c00, W16, Host, Always, "25.5", "Host ES selector";
    HostCsSelector = 0x0c02, W16, Host, Always, "25.5", "Host CS selector";
    HostSsSelector = 0x0c04, W16, Host, Always, "25.5", "Host SS selector";
    HostDsSelector = 0x0c06, W16, Host, Always, "25.5", "Host DS selector";
    HostFsSelector = 0x0c08, W16, Host, Always, "25.5", "Host FS selector";
    HostGsSelector = 0x0c0a, W16, Host, Always, "25.5", "Host GS selector";
    HostTrSelector = 0x0c0c, W16, Host, Always, "25.5", "Host TR selector";
    // 64-bit control fields (table B-4).
    IoBitmapA = 0x2000, W64, Control, Always, "25.6.4", "Address of I/O bitmap A";
    IoBitmapB = 0x2002, W64, Control, Always, "25.6.4", "Address of I/O bitmap B";
    MsrBitmap = 0x2004, W64, Control, FProc(P1::USE_MSR_BITMAPS), "25.6.9", "Address of MSR bitmaps";
    ExitMsrStoreAddress = 0x2006, W64, Control, Always, "25.7.2", "VM-exit MSR-store address";
    ExitMsrLoadAddress = 0x2008, W64, Control, Always, "25.7.2", "VM-exit MSR-load address";
    EntryMsrLoadAddress = 0x200a, W64, Control, Always, "25.8.2", "VM-entry MSR-load address";
    ExecutiveVmcsPointer = 0x200c, W64, Control, Always, "25.6.10", "Executive-VMCS pointer";
    PmlAddress = 0x200e, W64, Control, FProc2(P2::ENABLE_PML), "25.6.17", "PML address";
    TscOffset = 0x2010, W64, Control, Always, "25.6.5", "TSC offset";
    VirtualApicAddress = 0x2012, W64, Control, FProc(P1::USE_TPR_SHADOW), "25.6.8", "Virtual-APIC address";
    ApicAccessAddress = 0x2014, W64, Control, FProc2(P2::VIRTUALIZE_APIC_ACCESSES), "25.6.8", "APIC-access address";
    PostedInterruptDescriptorAddress = 0x2016, W64, Control, FPin(Pin::PROCESS_POSTED_INTERRUPTS), "25.6.8", "Posted-interrupt descriptor address";
    VmFunctionControls = 0x2018, W64, Control, FProc2(P2::ENABLE_VM_FUNCTIONS), "25.6.14", "VM-function controls";
    EptPointer = 0x201a, W64, Control, FProc2(P2::ENABLE_EPT), "25.6.11", "EPT pointer (EPTP)";
    EoiExitBitmap0 = 0x201c, W64, Control, FProc2(P2::VIRTUAL_INTERRUPT_DELIVERY), "25.6.8", "EOI-exit bitmap 0 (EOI_EXIT0)";
    EoiExitBitmap1 = 0x201e, W64, Control, FProc2(P2::VIRTUAL_INTERRUPT_DELIVERY), "25.6.8", "EOI-exit bitmap 1 (EOI_EXIT1)";
    EoiExitBitmap2 = 0x2020, W64, Control, FProc2(P2::VIRTUAL_INTERRUPT_DELIVERY), "25.6.8", "EOI-exit bitmap 2 (EOI_EXIT2)";
    EoiExitBitmap3 = 0x2022, W64, Control, FProc2(P2::VIRTUAL_INTERRUPT_DELIVERY), "25.6.8", "EOI-exit bitmap 3 (EOI_EXIT3)";
    EptpListAddress = 0x2024, W64, Control, VmFunc(Vf::EPTP_SWITCHING), "25.6.14", "EPTP-list address";
    VmreadBitmapAddress = 0x2026, W64, Control, FProc2(P2::VMCS_SHADOWING), "25.6.15", "VMREAD-bitmap address";
    VmwriteBitmapAddress = 0x2028, W64, Control, FProc2(P2::VMCS_SHADOWING), "25.6.15", "VMWRITE-bitmap address";
    VeInformationAddress = 0x202a, W64, Control, FProc2(P2::EPT_VIOLATION_VE), "25.6.18", "Virtualization-exception information address";
    XssExitingBitmap = 0x202c, W64, Control, FProc2(P2::ENABLE_XSAVES), "25.6.19", "XSS-exiting bitmap";
    EnclsExitingBitmap = 0x202e, W64, Control, FProc2(P2::ENABLE_ENCLS_EXITING), "25.6.16", "ENCLS-exiting bitmap";
    SubPagePermissionTablePointer = 0x2030, W64, Control, FProc2(P2::SUB_PAGE_WRITE_PERMISSIONS), "25.6.22", "Sub-page-permission-table pointer (SPPTP)";
    TscMultiplier = 0x2032, W64, Control, FProc2(P2::USE_TSC_SCALING), "25.6.5", "TSC multiplier";
    TertiaryProcBasedControls = 0x2034, W64, Control, FProc(P1::ACTIVATE_TERTIARY_CONTROLS), "25.6.2", "Tertiary processor-based VM-execution controls";
    EnclvExitingBitmap = 0x2036, W64, Control, FProc2(P2::ENABLE_ENCLV_EXITING), "25.6.20", "ENCLV-exiting bitmap";
    LowPasidDirectoryAddress = 0x2038, W64, Control, Unmodelled("PASID translation"), "25.6.24", "Low PASID directory address";
    HighPasidDirectoryAddress = 0x203a, W64, Control, Unmodelled("PASID translation"), "25.6.24", "High PASID directory address";
    SharedEptPointer = 0x203c, W64, Control, Unmodelled("Intel TDX"), "25.6.11", "Shared EPT pointer";
    PconfigExitingBitmap = 0x203e, W64, Control, FProc2(P2::ENABLE_PCONFIG), "25.6.21", "PCONFIG-exiting bitmap";
    HlatPointer = 0x2040, W64, Control, Unmodelled("enable HLAT (tertiary control)"), "25.6.23", "Hypervisor-managed linear-address translation pointer (HLATP)";
    PidPointerTableAddress = 0x2042, W64, Control, Unmodelled("IPI virtualization (tertiary control)"), "25.6.8", "PID-pointer table address";
    SecondaryExitControls = 0x2044, W64, Control, Exit(Ex::ACTIVATE_SECONDARY_CONTROLS), "25.7.1", "Secondary VM-exit controls";
    SpecCtrlMask = 0x204a, W64, Control, Unmodelled("virtualize IA32_SPEC_CTRL (tertiary control)"), "25.6.26", "IA32_SPEC_CTRL mask";
    SpecCtrlShadow = 0x204c, W64, Control, Unmodelled("virtualize IA32_SPEC_CTRL (tertiary control)"), "25.6.26", "IA32_SPEC_CTRL shadow";
    // 64-bit read-only data field (table B-5).
    GuestPhysicalAddress = 0x2400, W64, ExitInfo, FProc2(P2::ENABLE_EPT), "25.9.1", "Guest-physical address";
    // 64-bit guest-state fields (table B-6).
    VmcsLinkPointer = 0x2800, W64, Guest, Always, "25.4.2", "VMCS link pointer";
    GuestDebugctl = 0x2802, W64, Guest, Always, "25.4.1", "Guest IA32_DEBUGCTL";
    GuestPat = 0x2804, W64, Guest, EntryOrExit(En::LOAD_PAT, Ex::SAVE_PAT), "25.4.1", "Guest IA32_PAT";
    GuestEfer = 0x2806, W64, Guest, EntryOrExit(En::LOAD_EFER, Ex::SAVE_EFER), "25.4.1", "Guest IA32_EFER";
    GuestPerfGlobalCtrl = 0x2808, W64, Guest, EntryOrExit(En::LOAD_PERF_GLOBAL_CTRL, Ex::SAVE_PERF_GLOBAL_CTRL), "25.4.1", "Guest IA32_PERF_GLOBAL_CTRL";
    GuestPdpte0 = 0x280a, W64, Guest, FProc2(P2::ENABLE_EPT), "25.4.2", "Guest PDPTE0";
    GuestPdpte1 = 0x280c, W64, Guest, FProc2(P2::ENABLE_EPT), "25.4.2", "Guest PDPTE1";
    GuestPdpte2 = 0x280e, W64, Guest, FProc2(P2::ENABLE_EPT), "25.4.2", "Guest PDPTE2";
    GuestPdpte3 = 0x2810, W64, Guest, FProc2(P2::ENABLE_EPT), "25.4.2", "Guest PDPTE3";
    GuestBndcfgs = 0x2812, W64, Guest, EntryOrExit(En::LOAD_BNDCFGS, Ex::CLEAR_BNDCFGS), "25.4.1", "Guest IA32_BNDCFGS";
    GuestRtitCtl = 0x2814, W64, Guest, EntryOrExit(En::LOAD_RTIT_CTL, Ex::CLEAR_RTIT_CTL), "25.4.1", "Guest IA32_RTIT_CTL";
    GuestLbrCtl = 0x2816, W64, Guest, EntryOrExit(En::LOAD_LBR_CTL, Ex::CLEAR_LBR_CTL), "25.4.1", "Guest IA32_LBR_CTL";
    GuestPkrs = 0x2818, W64, Guest, Entry(En::LOAD_PKRS), "25.4.1", "Guest IA32_PKRS";
    // 64-bit host-state fields (table B-7).
    HostPat = 0x2c00, W64, Host, Exit(Ex::LOAD_PAT), "25.5", "Host IA32_PAT";
    HostEfer = 0x2c02, W64, Host, Exit(Ex::LOAD_EFER), "25.5", "Host IA32_EFER";
    HostPerfGlobalCtrl = 0x2c04, W64, Host, Exit(Ex::LOAD_PERF_GLOBAL_CTRL), "25.5", "Host IA32_PERF_GLOBAL_CTRL";
    HostPkrs = 0x2c06, W64, Host, Exit(Ex::LOAD_PKRS), "25.5", "Host IA32_PKRS";
    // 32-bit control fields (table B-8).
    PinBasedControls = 0x4000, W32, Control, Always, "25.6.1", "Pin-based VM-execution controls";
    PrimaryProcBasedControls = 0x4002, W32, Control, Always, "25.6.2", "Primary processor-based VM-execution controls";
    ExceptionBitmap = 0x4004, W32, Control, Always, "25.6.3", "Exception bitmap";
    PageFaultErrorCodeMask = 0x4006, W32, Control, Always, "25.6.3", "Page-fault error-code mask";
    PageFaultErrorCodeMatch = 0x4008, W32, Control, Always, "25.6.3", "Page-fault error-code match";
    Cr3TargetCount = 0x400a, W32, Control, Always, "25.6.7", "CR3-target count";
    ExitControls = 0x400c, W32, Control, Always, "25.7.1", "Primary VM-exit controls";
    ExitMsrStoreCount = 0x400e, W32, Control, Always, "25.7.2", "VM-exit MSR-store count";
    ExitMsrLoadCount = 0x4010, W32, Control, Always, "25.7.2", "VM-exit MSR-load count";
    EntryControls = 0x4012, W32, Control, Always, "25.8.1", "VM-entry controls";
    EntryMsrLoadCount = 0x4014, W32, Control, Always, "25.8.2", "VM-entry MSR-load count";
    EntryInterruptionInfo = 0x4016, W32, Control, Always, "25.8.3", "VM-entry interruption-information field";
    EntryExceptionErrorCode = 0x4018, W32, Control, Always, "25.8.3", "VM-entry exception error code";
    EntryInstructionLength = 0x401a, W32, Control, Always, "25.8.3", "VM-entry instruction length";
    TprThreshold = 0x401c, W32, Control, FProc(P1::USE_TPR_SHADOW), "25.6.8", "TPR threshold";
    SecondaryProcBasedControls = 0x401e, W32, Control, FProc(P1::ACTIVATE_SECONDARY_CONTROLS), "25.6.2", "Secondary processor-based VM-execution controls";
    PleGap = 0x4020, W32, Control, FProc2(P2::PAUSE_LOOP_EXITING), "25.6.13", "PLE_Gap";
    PleWindow = 0x4022, W32, Control, FProc2(P2::PAUSE_LOOP_EXITING), "25.6.13", "PLE_Window";
    InstructionTimeoutControl = 0x4024, W32, Control, FProc2(P2::INSTRUCTION_TIMEOUT), "25.6.25", "Instruction-timeout control";
    // 32-bit read-only data fields (table B-9).
    VmInstructionError = 0x4400, W32, ExitInfo, Always, "25.9.5", "VM-instruction error";
    ExitReason = 0x4402, W32, ExitInfo, Always, "25.9.1", "Exit reason";
    ExitInterruptionInfo = 0x4404, W32, ExitInfo, Always, "25.9.2", "VM-exit interruption information";
    ExitInterruptionErrorCode = 0x4406, W32, ExitInfo, Always, "25.9.2", "VM-exit interruption error code";
    IdtVectoringInfo = 0x4408, W32, ExitInfo, Always, "25.9.3", "IDT-vectoring information field";
    IdtVectoringErrorCode = 0x440a, W32, ExitInfo, Always, "25.9.3", "IDT-vectoring error code";
    ExitInstructionLength = 0x440c, W32, ExitInfo, Always, "25.9.4", "VM-exit instruction length";
    ExitInstructionInfo = 0x440e, W32, ExitInfo, Always, "25.9.4", "VM-exit instruction information";
    // 32-bit guest-state fields (table B-10).
    GuestEsLimit = 0x4800, W32, Guest, Always, "25.4.1", "Guest ES limit";
    GuestCsLimit = 0x4802, W32, Guest, Always, "25.4.1", "Guest CS limit";
    GuestSsLimit = 0x4804, W32, Guest, Always, "25.4.1", "Guest SS limit";
    GuestDsLimit = 0x4806, W32, Guest, Always, "25.4.1", "Guest DS limit";
    GuestFsLimit = 0x4808, W32, Guest, Always, "25.4.1", "Guest FS limit";
    GuestGsLimit = 0x480a, W32, Guest, Always, "25.4.1", "Guest GS limit";
    GuestLdtrLimit = 0x480c, W32, Guest, Always, "25.4.1", "Guest LDTR limit";
    GuestTrLimit = 0x480e, W32, Guest, Always, "25.4.1", "Guest TR limit";
    GuestGdtrLimit = 0x4810, W32, Guest, Always, "25.4.1", "Guest GDTR limit";
    GuestIdtrLimit = 0x4812, W32, Guest, Always, "25.4.1", "Guest IDTR limit";
    GuestEsAccessRights = 0x4814, W32, Guest, Always, "25.4.1", "Guest ES access rights";
    GuestCsAccessRights = 0x4816, W32, Guest, Always, "25.4.1", "Guest CS access rights";
    GuestSsAccessRights = 0x4818, W32, Guest, Always, "25.4.1", "Guest SS access rights";
    GuestDsAccessRights = 0x481a, W32, Guest, Always, "25.4.1", "Guest DS access rights";
    GuestFsAccessRights = 0x481c, W32, Guest, Always, "25.4.1", "Guest FS access rights";
    GuestGsAccessRights = 0x481e, W32, Guest, Always, "25.4.1", "Guest GS access rights";
    GuestLdtrAccessRights = 0x4820, W32, Guest, Always, "25.4.1", "Guest LDTR access rights";
    GuestTrAccessRights = 0x4822, W32, Guest, Always, "25.4.1", "Guest TR access rights";
    GuestInterruptibility = 0x4824, W32, Guest, Always, "25.4.2", "Guest interruptibility state";
    GuestActivityState = 0x4826, W32, Guest, Always, "25.4.2", "Guest activity state";
    GuestSmbase = 0x4828, W32, Guest, Always, "25.4.1", "Guest SMBASE";
    GuestSysenterCs = 0x482a, W32, Guest, Always, "25.4.1", "Guest IA32_SYSENTER_CS";
    PreemptionTimerValue = 0x482e, W32, Guest, FPin(Pin::ACTIVATE_PREEMPTION_TIMER), "25.4.2", "VMX-preemption timer value";
    // 32-bit host-state field (table B-11).
    HostSysenterCs = 0x4c00, W32, Host, Always, "25.5", "Host IA32_SYSENTER_CS";
    // Natural-width control fields (table B-12).
    Cr0GuestHostMask = 0x6000, Natural, Control, Always, "25.6.6", "CR0 guest/host mask";
    Cr4GuestHostMask = 0x6002, Natural, Control, Always, "25.6.6", "CR4 guest/host mask";
    Cr0ReadShadow = 0x6004, Natural, Control, Always, "25.6.6", "CR0 read shadow";
    Cr4ReadShadow = 0x6006, Natural, Control, Always, "25.6.6", "CR4 read shadow";
    Cr3TargetValue0 = 0x6008, Natural, Control, Always, "25.6.7", "CR3-target value 0";
    Cr3TargetValue1 = 0x600a, Natural, Control, Always, "25.6.7", "CR3-target value 1";
    Cr3TargetValue2 = 0x600c, Natural, Control, Always, "25.6.7", "CR3-target value 2";
    Cr3TargetValue3 = 0x600e, Natural, Control, Always, "25.6.7", "CR3-target value 3";
    // Natural-width read-only data fields (table B-13).
    ExitQualification = 0x6400, Natural, ExitInfo, Always, "25.9.1", "Exit qualification";
    IoRcx = 0x6402, Natural, ExitInfo, Always, "25.9.4", "I/O RCX";
    IoRsi = 0x6404, Natural, ExitInfo, Always, "25.9.4", "I/O RSI";
    IoRdi = 0x6406, Natural, ExitInfo, Always, "25.9.4", "I/O RDI";
    IoRip = 0x6408, Natural, ExitInfo, Always, "25.9.4", "I/O RIP";
    GuestLinearAddress = 0x640a, Natural, ExitInfo, Always, "25.9.1", "Guest-linear address";
    // Natural-width guest-state fields (table B-14).
    GuestCr0 = 0x6800, Natural, Guest, Always, "25.4.1", "Guest CR0";
    GuestCr3 = 0x6802, Natural, Guest, Always, "25.4.1", "Guest CR3";
    GuestCr4 = 0x6804, Natural, Guest, Always, "25.4.1", "Guest CR4";
    GuestEsBase = 0x6806, Natural, Guest, Always, "25.4.1", "Guest ES base";
    GuestCsBase = 0x6808, Natural, Guest, Always, "25.4.1", "Guest CS base";
    GuestSsBase = 0x680a, Natural, Guest, Always, "25.4.1", "Guest SS base";
    GuestDsBase = 0x680c, Natural, Guest, Always, "25.4.1", "Guest DS base";
    GuestFsBase = 0x680e, Natural, Guest, Always, "25.4.1", "Guest FS base";
    GuestGsBase = 0x6810, Natural, Guest, Always, "25.4.1", "Guest GS base";
    GuestLdtrBase = 0x6812, Natural, Guest, Always, "25.4.1", "Guest LDTR base";
    GuestTrBase = 0x6814, Natural, Guest, Always, "25.4.1", "Guest TR base";
    GuestGdtrBase = 0x6816, Natural, Guest, Always, "25.4.1", "Guest GDTR base";
    GuestIdtrBase = 0x6818, Natural, Guest, Always, "25.4.1", "Guest IDTR base";
    GuestDr7 = 0x681a, Natural, Guest, Always, "25.4.1", "Guest DR7";
    GuestRsp = 0x681c, Natural, Guest, Always, "25.4.1", "Guest RSP";
    GuestRip = 0x681e, Natural, Guest, Always, "25.4.1", "Guest RIP";
    GuestRflags = 0x6820, Natural, Guest, Always, "25.4.1", "Guest RFLAGS";
    GuestPendingDebugExceptions = 0x6822, Natural, Guest, Always, "25.4.2", "Guest pending debug exceptions";
    GuestSysenterEsp = 0x6824, Natural, Guest, Always, "25.4.1", "Guest IA32_SYSENTER_ESP";
    GuestSysenterEip = 0x6826, Natural, Guest, Always, "25.4.1", "Guest IA32_SYSENTER_EIP";
    GuestSCet = 0x6828, Natural, Guest, Entry(En::LOAD_CET_STATE), "25.4.1", "Guest IA32_S_CET";
    GuestSsp = 0x682a, Natural, Guest, Entry(En::LOAD_CET_STATE), "25.4.1", "Guest SSP";
    GuestInterruptSspTableAddr = 0x682c, Natural, Guest, Entry(En::LOAD_CET_STATE), "25.4.1", "Guest IA32_INTERRUPT_SSP_TABLE_ADDR";
    // Natural-width host-state fields (table B-15).
    HostCr0 = 0x6c00, Natural, Host, Always, "25.5", "Host CR0";
    HostCr3 = 0x6c02, Natural, Host, Always, "25.5", "Host CR3";
    HostCr4 = 0x6c04, Natural, Host, Always, "25.5", "Host CR4";
    HostFsBase = 0x6c06, Natural, Host, Always, "25.5", "Host FS base";
    HostGsBase = 0x6c08, Natural, Host, Always, "25.5", "Host GS base";
    HostTrBase = 0x6c0a, Natural, Host, Always, "25.5", "Host TR base";
    HostGdtrBase = 0x6c0c, Natural, Host, Always, "25.5", "Host GDTR base";
    HostIdtrBase = 0x6c0e, Natural, Host, Always, "25.5", "Host IDTR base";
    HostSysenterEsp = 0x6c10, Natural, Host, Always, "25.5", "Host IA32_SYSENTER_ESP";
    HostSysenterEip = 0x6c12, Natural, Host, Always, "25.5", "Host IA32_SYSENTER_EIP";
    HostRsp = 0x6c14, Natural, Host, Always, "25.5", "Host RSP";
    HostRip = 0x6c16, Natural, Host, Always, "25.5", "Host RIP";
    HostSCet = 0x6c18, Natural, Host, Exit(Ex::LOAD_CET_STATE), "25.5", "Host IA32_S_CET";
    HostSsp = 0x6c1a, Natural, Host, Exit(Ex::LOAD_CET_STATE), "25.5", "Host SSP";
    HostInterruptSspTableAddr = 0x6c1c, Natural, Host, Exit(Ex::LOAD_CET_STATE), "25.5", "Host IA32_INTERRUPT_SSP_TABLE_ADDR";
}

impl Field {
    /// The table row.
    #[inline]
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }
    /// The full encoding.
    #[inline]
    pub fn encoding(self) -> u32 {
        self.info().encoding
    }
    /// The manual's name.
    #[inline]
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// The width.
    #[inline]
    pub fn width(self) -> Width {
        self.info().width
    }
    /// The type.
    #[inline]
    pub fn kind(self) -> Kind {
        self.info().kind
    }
    /// The dense index (table row).
    #[inline]
    pub const fn row(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({:#06x})", self.name(), self.encoding())
    }
}
