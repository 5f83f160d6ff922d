//! The one table of Intel SDM sections this crate cites.
//!
//! Numbers follow the Intel SDM editions from 2023 on, in which the VMX chapters of
//! Vol. 3C are 24 (introduction) to 33; older editions number the same chapters one
//! lower (VM entries are chapter 26 there, 27 here). Every citation therefore carries
//! the section title as well, which is stable across editions. Appendices (Vol. 3D
//! A, B, C) are unchanged.

macro_rules! sections {
    ($( $num:literal => $title:literal; )*) => {
        /// Every `(section, title)` pair cited by this crate.
        pub const SECTIONS: &[(&str, &str)] = &[ $( ($num, $title), )* ];

        /// The title of SDM section `num` (e.g. `"27.3.1.2"`), if this crate cites it.
        pub fn title(num: &str) -> Option<&'static str> {
            match num {
                $( $num => Some($title), )*
                _ => None,
            }
        }
    };
}

sections! {
    "24.8" => "Restrictions on VMX Operation";
    "25.2" => "Format of the VMCS Region";
    "25.4.1" => "Guest Register State";
    "25.4.2" => "Guest Non-Register State";
    "25.5" => "Host-State Area";
    "25.6.1" => "Pin-Based VM-Execution Controls";
    "25.6.2" => "Processor-Based VM-Execution Controls";
    "25.6.3" => "Exception Bitmap";
    "25.6.4" => "I/O-Bitmap Addresses";
    "25.6.5" => "Time-Stamp Counter Offset and Multiplier";
    "25.6.6" => "Guest/Host Masks and Read Shadows for CR0 and CR4";
    "25.6.7" => "CR3-Target Controls";
    "25.6.8" => "Controls for APIC Virtualization";
    "25.6.9" => "MSR-Bitmap Address";
    "25.6.10" => "Executive-VMCS Pointer";
    "25.6.11" => "Extended-Page-Table Pointer (EPTP)";
    "25.6.12" => "Virtual-Processor Identifier (VPID)";
    "25.6.13" => "Controls for PAUSE-Loop Exiting";
    "25.6.14" => "VM-Function Controls";
    "25.6.15" => "VMCS Shadowing Bitmap Addresses";
    "25.6.16" => "ENCLS-Exiting Bitmap";
    "25.6.17" => "Control Field for Page-Modification Logging";
    "25.6.18" => "Controls for Virtualization Exceptions";
    "25.6.19" => "XSS-Exiting Bitmap";
    "25.6.20" => "ENCLV-Exiting Bitmap";
    "25.6.21" => "PCONFIG-Exiting Bitmap";
    "25.6.22" => "Sub-Page-Permission-Table Pointer (SPPTP)";
    "25.6.23" => "Fields Related to Hypervisor-Managed Linear-Address Translation";
    "25.6.24" => "Fields Related to PASID Translation";
    "25.6.25" => "Instruction-Timeout Control";
    "25.6.26" => "Fields Controlling Virtualization of the IA32_SPEC_CTRL MSR";
    "25.7.1" => "VM-Exit Controls";
    "25.7.2" => "VM-Exit Controls for MSRs";
    "25.8.1" => "VM-Entry Controls";
    "25.8.2" => "VM-Entry Controls for MSRs";
    "25.8.3" => "VM-Entry Controls for Event Injection";
    "25.9.1" => "Basic VM-Exit Information";
    "25.9.2" => "Information for VM Exits Due to Vectored Events";
    "25.9.3" => "Information for VM Exits That Occur During Event Delivery";
    "25.9.4" => "Information for VM Exits Due to Instruction Execution";
    "25.9.5" => "VM-Instruction Error Field";
    "25.10" => "VMCS Types: Ordinary and Shadow";
    "25.11.1" => "Software Use of Virtual-Machine Control Structures";
    "25.11.2" => "VMREAD, VMWRITE, and Encodings of VMCS Fields";
    "26.1.2" => "Instructions That Cause VM Exits Unconditionally";
    "26.1.3" => "Instructions That Cause VM Exits Conditionally";
    "26.2" => "Other Causes of VM Exits";
    "26.3" => "Changes to Instruction Behavior in VMX Non-Root Operation";
    "26.5.1" => "VMX-Preemption Timer";
    "26.5.2" => "Monitor Trap Flag";
    "27.1" => "Basic VM-Entry Checks";
    "27.2.1.1" => "VM-Execution Control Fields";
    "27.2.1.2" => "VM-Exit Control Fields";
    "27.2.1.3" => "VM-Entry Control Fields";
    "27.2.2" => "Checks on Host Control Registers, MSRs, and SSP";
    "27.2.3" => "Checks on Host Segment and Descriptor-Table Registers";
    "27.2.4" => "Checks Related to Address-Space Size";
    "27.3.1.1" => "Checks on Guest Control Registers, Debug Registers, and MSRs";
    "27.3.1.2" => "Checks on Guest Segment Registers";
    "27.3.1.3" => "Checks on Guest Descriptor-Table Registers";
    "27.3.1.4" => "Checks on Guest RIP, RFLAGS, and SSP";
    "27.3.1.5" => "Checks on Guest Non-Register State";
    "27.3.1.6" => "Checks on Guest Page-Directory-Pointer-Table Entries";
    "27.3.2" => "Loading Guest State";
    "27.4" => "Loading MSRs";
    "27.6" => "Event Injection";
    "27.7" => "Special Features of VM Entry";
    "27.8" => "VM-Entry Failures During or After Loading Guest State";
    "28.2" => "Recording VM-Exit Information and Updating VM-Entry Control Fields";
    "28.3" => "Saving Guest State";
    "28.4" => "Saving MSRs";
    "28.5" => "Loading Host State";
    "28.6" => "Loading MSRs";
    "28.7" => "VMX Aborts";
    "31.3" => "VMX Instructions";
    "31.4" => "VM Instruction Error Numbers";
    "A.1" => "Basic VMX Information";
    "A.2" => "Reserved Controls and Default Settings";
    "A.3" => "VM-Execution Controls";
    "A.4" => "VM-Exit Controls";
    "A.5" => "VM-Entry Controls";
    "A.6" => "Miscellaneous Data";
    "A.7" => "VMX-Fixed Bits in CR0";
    "A.8" => "VMX-Fixed Bits in CR4";
    "A.9" => "VMCS Enumeration";
    "A.10" => "VPID and EPT Capabilities";
    "A.11" => "VM Functions";
    "B" => "Field Encoding in VMCS";
    "C" => "VMX Basic Exit Reasons";
}

/// `"SDM Vol. 3C 27.3.1.2 (Checks on Guest Segment Registers)"` for a cited section.
pub fn cite(num: &str) -> String {
    let vol = if num.starts_with(|c: char| c.is_ascii_alphabetic()) {
        "3D"
    } else {
        "3C"
    };
    match title(num) {
        Some(t) => format!("SDM Vol. {vol} {num} ({t})"),
        None => format!("SDM Vol. {vol} {num}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sections_are_unique_and_cited() {
        let mut seen = std::collections::BTreeSet::new();
        for (n, _) in super::SECTIONS {
            assert!(seen.insert(*n), "duplicate section {n}");
        }
        assert_eq!(
            super::cite("27.3.1.2"),
            "SDM Vol. 3C 27.3.1.2 (Checks on Guest Segment Registers)"
        );
        assert_eq!(super::cite("A.6"), "SDM Vol. 3D A.6 (Miscellaneous Data)");
    }
}
