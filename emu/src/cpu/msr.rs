//! The MSRs that live outside [`mmu::SystemRegs`] (SDM Vol. 4 chapter 2).
//! IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC registers belong to the
//! local APIC (`devices::lapic`).
//! Which MSRs exist and how RDMSR/WRMSR treat them is decided in
//! `interp::system::msr`; this is their storage.

use serde::{Deserialize, Serialize};

/// Storage for MSRs not held in the system-register file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsrFile {
    /// IA32_TSC_ADJUST; the TSC reads as modelled cycles plus this offset
    /// (SDM Vol. 3B 18.17.3).
    pub tsc_offset: i64,
    /// IA32_TSC_ADJUST as software sees it.
    pub tsc_adjust: u64,
    /// IA32_FEATURE_CONTROL.
    pub feature_control: u64,
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    /// IA32_MTRR_DEF_TYPE.
    pub mtrr_def_type: u64,
    /// IA32_MTRR_PHYSBASEn / PHYSMASKn, interleaved as in the MSR space.
    pub mtrr_var: [u64; 16],
    /// The eleven fixed-range MTRRs.
    pub mtrr_fixed: [u64; 11],
    /// IA32_TSC_AUX.
    pub tsc_aux: u64,
    /// IA32_SPEC_CTRL.
    pub spec_ctrl: u64,
    /// IA32_XSS.
    pub xss: u64,
    /// IA32_MCG_STATUS.
    pub mcg_status: u64,
    /// AMD VM_CR.
    pub vm_cr: u64,
    /// AMD VM_HSAVE_PA.
    pub vm_hsave_pa: u64,
}

impl Default for MsrFile {
    fn default() -> Self {
        Self {
            tsc_offset: 0,
            tsc_adjust: 0,
            feature_control: 0,
            // Fast-strings enable (bit 0) as firmware leaves it.
            misc_enable: 1,
            mtrr_def_type: 0,
            mtrr_var: [0; 16],
            mtrr_fixed: [0; 11],
            tsc_aux: 0,
            spec_ctrl: 0,
            xss: 0,
            mcg_status: 0,
            vm_cr: 0,
            vm_hsave_pa: 0,
        }
    }
}
