//! Discovery: the SVM feature set of a CPU model and the CPUID values that
//! advertise it (APM Vol. 2 15.4, "Enabling SVM"; APM Vol. 3 appendix E,
//! CPUID Fn8000_0001_ECX and Fn8000_000A).
//!
//! [`SvmFeatures`] is a serde config: a preset names exactly the features the
//! model implements and tests (DESIGN principle 5). [`SvmConfig`] adds the rest
//! of the CPU configuration the SVM rules consult (MAXPHYADDR, long-mode support,
//! the implemented CR4 and EFER bits), so no rule reads a global.

use mmu::{AddressWidths, Cr4, Efer};
use serde::{Deserialize, Serialize};

macro_rules! edx_features {
    ($( $(#[$doc:meta])* $field:ident = $bit:literal, $name:literal, $implemented:literal; )*) => {
        /// The SVM feature set of a CPU model: CPUID Fn8000_000A and the two
        /// Fn8000_0001_ECX bits (SVM, SKINIT).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct SvmFeatures {
            /// CPUID Fn8000_0001_ECX[2] SVM: secure virtual machine supported.
            pub svm: bool,
            /// CPUID Fn8000_0001_ECX[12] SKINIT: SKINIT and STGI usable with
            /// EFER.SVME = 0 (APM Vol. 2 15.4).
            pub skinit: bool,
            /// CPUID Fn8000_000A_EAX[7:0] SvmRev.
            pub revision: u8,
            /// CPUID Fn8000_000A_EBX NASID: number of address space identifiers.
            pub nasid: u32,
            $( $(#[$doc])* pub $field: bool, )*
        }

        impl SvmFeatures {
            /// CPUID Fn8000_000A_EDX for this feature set.
            pub fn cpuid_edx(&self) -> u32 {
                let mut edx = 0;
                $( if self.$field { edx |= 1 << $bit; } )*
                edx
            }

            /// Every Fn8000_000A_EDX feature: (field, bit, APM name, implemented by
            /// this model).
            pub const EDX_TABLE: &'static [(&'static str, u32, &'static str, bool)] =
                &[ $( (stringify!($field), $bit, $name, $implemented), )* ];

            /// The names of the advertised EDX features this model does not
            /// implement; a preset must not advertise any (DESIGN principle 5).
            pub fn unimplemented(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $( if self.$field && !$implemented { v.push($name); } )*
                v
            }
        }
    };
}

edx_features! {
    /// NP: nested paging (APM Vol. 2 15.25).
    np = 0, "NP", true;
    /// LbrVirt: LBR virtualization (APM Vol. 2 15.23.1).
    lbr_virt = 1, "LbrVirt", false;
    /// SVML: SVM lock and the SVM_KEY MSR (APM Vol. 2 15.31).
    svml = 2, "SVML", true;
    /// NRIPS: next RIP saved on #VMEXIT (APM Vol. 2 15.7.1).
    nrips = 3, "NRIPS", true;
    /// TscRateMsr: the TSC ratio MSR (APM Vol. 2 15.30.5).
    tsc_rate_msr = 4, "TscRateMsr", true;
    /// VmcbClean: VMCB clean bits (APM Vol. 2 15.15).
    vmcb_clean = 5, "VmcbClean", true;
    /// FlushByAsid: TLB_CONTROL encodings 3 and 7 (APM Vol. 2 15.16.1).
    flush_by_asid = 6, "FlushByAsid", true;
    /// DecodeAssists: decode assists (APM Vol. 2 15.8).
    decode_assists = 7, "DecodeAssists", true;
    /// PauseFilter: the PAUSE filter count (APM Vol. 2 15.14.4).
    pause_filter = 10, "PauseFilter", true;
    /// PauseFilterThreshold: the PAUSE filter cycle threshold (APM Vol. 2 15.14.4).
    pause_filter_threshold = 12, "PauseFilterThreshold", true;
    /// AVIC: advanced virtual interrupt controller (APM Vol. 2 15.29).
    avic = 13, "AVIC", false;
    /// VMSAVEvirt: virtualized VMSAVE and VMLOAD (APM Vol. 2 15.33.1).
    vmsave_virt = 15, "VMSAVEvirt", true;
    /// VGIF: virtualized global interrupt flag (APM Vol. 2 15.33.2).
    vgif = 16, "VGIF", true;
    /// GMET: guest mode execute trap (APM Vol. 2 15.25.13).
    gmet = 17, "GMET", false;
    /// x2AVIC: AVIC for the x2APIC interface (APM Vol. 2 15.29.10).
    x2avic = 18, "x2AVIC", false;
    /// SSSCheck: supervisor shadow stack restrictions (APM Vol. 2 15.25.14).
    sss_check = 19, "SSSCheck", false;
    /// SpecCtrl: SPEC_CTRL virtualization.
    spec_ctrl = 20, "SpecCtrl", false;
    /// ROGPT: read-only guest page tables (APM Vol. 2 15.25.5).
    rogpt = 21, "ROGPT", false;
    /// HOST_MCE_OVERRIDE (APM Vol. 2 15.12.18).
    host_mce_override = 23, "HOST_MCE_OVERRIDE", false;
    /// TlbiCtl: INVLPGB/TLBSYNC enable and intercepts.
    tlbi_ctl = 24, "TlbiCtl", false;
    /// VNMI: NMI virtualization (APM Vol. 2 15.21.10).
    vnmi = 25, "VNMI", true;
    /// IbsVirt: IBS virtualization.
    ibs_virt = 26, "IbsVirt", false;
    /// ExtLvtAvicAccessChg (APM Vol. 2 15.29.3.1).
    ext_lvt_avic_access_chg = 27, "ExtLvtAvicAccessChg", false;
    /// NestedVirtVmcbAddrChk: VMCB address check for nested virtualization.
    nested_virt_vmcb_addr_chk = 28, "NestedVirtVmcbAddrChk", false;
    /// BusLockThreshold (APM Vol. 2 15.14.5).
    bus_lock_threshold = 29, "BusLockThreshold", false;
    /// IdleHltIntercept: the idle-HLT intercept (APM Vol. 2 15.9).
    idle_hlt = 30, "IdleHltIntercept", true;
}

impl Default for SvmFeatures {
    /// No SVM at all (an Intel-like CPU).
    fn default() -> Self {
        Self::none()
    }
}

impl SvmFeatures {
    /// No SVM: CPUID reports the SVM bit clear and leaf 8000_000A as zeros.
    pub fn none() -> Self {
        Self {
            svm: false,
            skinit: false,
            revision: 0,
            nasid: 0,
            np: false,
            lbr_virt: false,
            svml: false,
            nrips: false,
            tsc_rate_msr: false,
            vmcb_clean: false,
            flush_by_asid: false,
            decode_assists: false,
            pause_filter: false,
            pause_filter_threshold: false,
            avic: false,
            vmsave_virt: false,
            vgif: false,
            gmet: false,
            x2avic: false,
            sss_check: false,
            spec_ctrl: false,
            rogpt: false,
            host_mce_override: false,
            tlbi_ctl: false,
            vnmi: false,
            ibs_virt: false,
            ext_lvt_avic_access_chg: false,
            nested_virt_vmcb_addr_chk: false,
            bus_lock_threshold: false,
            idle_hlt: false,
        }
    }

    /// The first SVM generation: revision 1, 64 ASIDs, no optional features
    /// (no nested paging, no NRIP save, no decode assists).
    pub fn first_generation() -> Self {
        Self {
            svm: true,
            revision: 1,
            nasid: 64,
            ..Self::none()
        }
    }

    /// The `amd` preset: every feature this model implements and tests.
    pub fn amd() -> Self {
        Self {
            svm: true,
            revision: 1,
            nasid: 32768,
            np: true,
            svml: true,
            nrips: true,
            tsc_rate_msr: true,
            vmcb_clean: true,
            flush_by_asid: true,
            decode_assists: true,
            pause_filter: true,
            pause_filter_threshold: true,
            vmsave_virt: true,
            vgif: true,
            vnmi: true,
            idle_hlt: true,
            ..Self::none()
        }
    }

    /// CPUID Fn8000_0001_ECX bits this feature set contributes: SVM (bit 2) and
    /// SKINIT (bit 12).
    pub fn cpuid_80000001_ecx(&self) -> u32 {
        (u32::from(self.svm) << 2) | (u32::from(self.skinit) << 12)
    }

    /// CPUID Fn8000_000A: (EAX, EBX, ECX, EDX). All zero when SVM is not
    /// advertised (APM Vol. 3 E.4.9).
    pub fn cpuid_8000000a(&self) -> [u32; 4] {
        if !self.svm {
            return [0; 4];
        }
        [u32::from(self.revision), self.nasid, 0, self.cpuid_edx()]
    }
}

/// The CPU configuration the SVM rules consult.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SvmConfig {
    /// The SVM features advertised and implemented.
    pub features: SvmFeatures,
    /// MAXPHYADDR and the linear-address width.
    pub widths: AddressWidths,
    /// CPUID Fn8000_0001_EDX[LM]: long mode supported.
    pub long_mode: bool,
    /// The CR4 bits this CPU implements; every other bit is MBZ (APM Vol. 2 3.1.3).
    pub cr4_allowed: u64,
    /// The EFER bits this CPU implements; every other bit is MBZ (APM Vol. 2 3.1.7).
    pub efer_allowed: u64,
}

impl Default for SvmConfig {
    fn default() -> Self {
        Self::amd()
    }
}

impl SvmConfig {
    /// The `amd` preset: [`SvmFeatures::amd`], MAXPHYADDR 48, 48-bit linear
    /// addresses, long mode, and the CR4/EFER bits of an x86-64-v2 AMD core.
    pub fn amd() -> Self {
        Self {
            features: SvmFeatures::amd(),
            widths: AddressWidths {
                phys_bits: 48,
                linear_bits: 48,
            },
            long_mode: true,
            cr4_allowed: Self::AMD_CR4.bits(),
            efer_allowed: Self::AMD_EFER.bits(),
        }
    }

    /// A first-generation SVM CPU: the same core with none of the optional
    /// SVM features, MAXPHYADDR 40.
    pub fn first_generation() -> Self {
        Self {
            features: SvmFeatures::first_generation(),
            widths: AddressWidths {
                phys_bits: 40,
                linear_bits: 48,
            },
            ..Self::amd()
        }
    }

    /// CR4 bits of the `amd` preset.
    pub const AMD_CR4: Cr4 = Cr4::VME
        .union(Cr4::PVI)
        .union(Cr4::TSD)
        .union(Cr4::DE)
        .union(Cr4::PSE)
        .union(Cr4::PAE)
        .union(Cr4::MCE)
        .union(Cr4::PGE)
        .union(Cr4::PCE)
        .union(Cr4::OSFXSR)
        .union(Cr4::OSXMMEXCPT)
        .union(Cr4::UMIP)
        .union(Cr4::FSGSBASE)
        .union(Cr4::PCIDE)
        .union(Cr4::OSXSAVE)
        .union(Cr4::SMEP)
        .union(Cr4::SMAP);

    /// EFER bits of the `amd` preset (LMSLE is not implemented, as on Zen 3 and
    /// later).
    pub const AMD_EFER: Efer = Efer::SCE
        .union(Efer::LME)
        .union(Efer::LMA)
        .union(Efer::NXE)
        .union(Efer::SVME)
        .union(Efer::FFXSR)
        .union(Efer::TCE);

    /// Rejects a configuration that advertises features the model does not
    /// implement, or an impossible MAXPHYADDR.
    pub fn validate(&self) -> Result<(), String> {
        let missing = self.features.unimplemented();
        if !missing.is_empty() {
            return Err(format!(
                "SVM features advertised but not implemented: {}",
                missing.join(", ")
            ));
        }
        if !(32..=52).contains(&self.widths.phys_bits) {
            return Err(format!(
                "MAXPHYADDR {} outside 32..=52",
                self.widths.phys_bits
            ));
        }
        if !matches!(self.widths.linear_bits, 48 | 57) {
            return Err(format!(
                "linear-address width {} is neither 48 nor 57",
                self.widths.linear_bits
            ));
        }
        if self.features.svm && !self.long_mode {
            // Not architecturally required, but the model's VMCB and state
            // handling assume a 64-bit capable processor.
            return Err("SVM preset without long mode".into());
        }
        Ok(())
    }

    /// Mask of the physical-address bits at or above MAXPHYADDR.
    pub fn phys_reserved(&self) -> u64 {
        !self.widths.phys_mask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_preset_cpuid() {
        let f = SvmFeatures::amd();
        let [eax, ebx, ecx, edx] = f.cpuid_8000000a();
        assert_eq!(eax, 1);
        assert_eq!(ebx, 32768);
        assert_eq!(ecx, 0);
        // NP, SVML, NRIPS, TscRateMsr, VmcbClean, FlushByAsid, DecodeAssists,
        // PauseFilter, PFThreshold, VMSAVEvirt, VGIF, VNMI, IdleHltIntercept.
        let want = (1 << 0)
            | (1 << 2)
            | (1 << 3)
            | (1 << 4)
            | (1 << 5)
            | (1 << 6)
            | (1 << 7)
            | (1 << 10)
            | (1 << 12)
            | (1 << 15)
            | (1 << 16)
            | (1 << 25)
            | (1 << 30);
        assert_eq!(edx, want);
        assert_eq!(f.cpuid_80000001_ecx(), 1 << 2);
        assert!(SvmConfig::amd().validate().is_ok());
        assert!(SvmConfig::first_generation().validate().is_ok());
    }

    #[test]
    fn no_svm_zeroes_the_leaf() {
        assert_eq!(SvmFeatures::none().cpuid_8000000a(), [0; 4]);
        assert_eq!(SvmFeatures::none().cpuid_80000001_ecx(), 0);
    }

    #[test]
    fn edx_bits_are_unique() {
        let mut seen = 0u32;
        for (field, bit, _, _) in SvmFeatures::EDX_TABLE {
            assert_eq!(seen & (1 << bit), 0, "{field}");
            seen |= 1 << bit;
        }
    }

    #[test]
    fn unimplemented_features_are_refused() {
        let mut c = SvmConfig::amd();
        c.features.avic = true;
        assert!(c.validate().unwrap_err().contains("AVIC"));
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let c = SvmConfig::amd();
        let s = serde_json::to_string(&c).unwrap();
        let back: SvmConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        let partial: SvmFeatures = serde_json::from_str(r#"{"svm":true,"np":true}"#).unwrap();
        assert!(partial.np && !partial.nrips);
        assert!(serde_json::from_str::<SvmFeatures>(r#"{"bogus":true}"#).is_err());
    }
}
