//! The SVM-related MSRs (APM Vol. 2 15.30, "SVM Related MSRs", and 15.31,
//! "SVM-Lock"): VM_CR, VM_HSAVE_PA, SVM_KEY and the TSC ratio MSR, plus the rule
//! VM_CR.SVMDIS imposes on writes of EFER.SVME.
//!
//! [`SvmMsrs`] is the state; `rdmsr`/`wrmsr` return `None` for MSRs that are not
//! the model's, so `emu` can chain it in front of its own MSR file.

use crate::features::SvmConfig;
use bitflags::bitflags;
use mmu::msr::{AMD_SVM_KEY, AMD_TSC_RATIO, AMD_VM_CR, AMD_VM_HSAVE_PA};
use mmu::{Efer, Exception};
use serde::{Deserialize, Serialize};

bitflags! {
    /// VM_CR, MSR C001_0114h (APM Vol. 2 15.30.1, figure 15-27).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct VmCr: u64 {
        /// Disables the external hardware debug port and some internal debug features.
        const DPD = 1 << 0;
        /// Non-intercepted INIT signals are converted into #SX.
        const R_INIT = 1 << 1;
        /// Disables A20 masking.
        const DIS_A20M = 1 << 2;
        /// Writes to LOCK and SVMDIS are silently ignored.
        const LOCK = 1 << 3;
        /// EFER.SVME is MBZ.
        const SVMDIS = 1 << 4;
    }
}

/// The 8.32 fixed-point TSC ratio 1.0, the reset value (APM Vol. 2 15.30.5).
pub const TSC_RATIO_DEFAULT: u64 = 1 << 32;

/// The SVM MSR state of one logical processor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvmMsrs {
    /// VM_CR.
    pub vm_cr: VmCr,
    /// VM_HSAVE_PA: physical address of the host save area.
    pub hsave_pa: u64,
    /// The SVM key set through SVM_KEY (never readable).
    pub svm_key: u64,
    /// The TSC ratio MSR (8.32 fixed point).
    pub tsc_ratio: u64,
}

impl Default for SvmMsrs {
    fn default() -> Self {
        Self::reset()
    }
}

impl SvmMsrs {
    /// The values after RESET: everything zero, TSC ratio 1.0.
    pub fn reset() -> Self {
        Self {
            vm_cr: VmCr::empty(),
            hsave_pa: 0,
            svm_key: 0,
            tsc_ratio: TSC_RATIO_DEFAULT,
        }
    }

    /// The effect of INIT: SVMDIS is cleared if LOCK is clear; LOCK itself, the
    /// key and the other MSRs are unaffected (APM Vol. 2 15.30.1).
    pub fn init(&mut self) {
        if !self.vm_cr.contains(VmCr::LOCK) {
            self.vm_cr.remove(VmCr::SVMDIS);
        }
    }

    /// RDMSR of an SVM MSR. `None` if `index` is not one of them (or not
    /// implemented by `cfg`); `Some(Err(#GP))` where reading faults.
    pub fn rdmsr(&self, cfg: &SvmConfig, index: u32) -> Option<Result<u64, Exception>> {
        if !cfg.features.svm {
            return None;
        }
        match index {
            AMD_VM_CR => Some(Ok(self.vm_cr.bits())),
            AMD_VM_HSAVE_PA => Some(Ok(self.hsave_pa)),
            // Reading SVM_KEY always returns zero (APM Vol. 2 15.31.1).
            AMD_SVM_KEY if cfg.features.svml => Some(Ok(0)),
            AMD_TSC_RATIO if cfg.features.tsc_rate_msr => Some(Ok(self.tsc_ratio)),
            _ => None,
        }
    }

    /// WRMSR of an SVM MSR. `efer` is the current EFER (for SVMDIS). `None` if
    /// `index` is not one of the model's MSRs.
    pub fn wrmsr(
        &mut self,
        cfg: &SvmConfig,
        index: u32,
        value: u64,
        efer: Efer,
    ) -> Option<Result<(), Exception>> {
        if !cfg.features.svm {
            return None;
        }
        match index {
            AMD_VM_CR => Some(self.write_vm_cr(value, efer)),
            AMD_VM_HSAVE_PA => Some(self.write_hsave_pa(cfg, value)),
            AMD_SVM_KEY if cfg.features.svml => {
                self.write_svm_key(value);
                Some(Ok(()))
            }
            AMD_TSC_RATIO if cfg.features.tsc_rate_msr => Some(self.write_tsc_ratio(value)),
            _ => None,
        }
    }

    /// VM_CR write (APM Vol. 2 15.30.1): bits 63:5 are MBZ (#GP); setting
    /// SVMDIS while EFER.SVME = 1 is #GP regardless of LOCK; with LOCK set,
    /// writes to LOCK and SVMDIS are silently ignored.
    fn write_vm_cr(&mut self, value: u64, efer: Efer) -> Result<(), Exception> {
        if value & !VmCr::all().bits() != 0 {
            return Err(Exception::gp0());
        }
        let new = VmCr::from_bits_truncate(value);
        if new.contains(VmCr::SVMDIS) && efer.contains(Efer::SVME) {
            return Err(Exception::gp0());
        }
        let locked_bits = VmCr::LOCK | VmCr::SVMDIS;
        self.vm_cr = if self.vm_cr.contains(VmCr::LOCK) {
            (new - locked_bits) | (self.vm_cr & locked_bits)
        } else {
            new
        };
        Ok(())
    }

    /// VM_HSAVE_PA write (APM Vol. 2 15.30.4): #GP if any of bits 11:0 is set
    /// or the address is at or above MAXPHYADDR.
    fn write_hsave_pa(&mut self, cfg: &SvmConfig, value: u64) -> Result<(), Exception> {
        if value & 0xfff != 0 || value & cfg.phys_reserved() != 0 {
            return Err(Exception::gp0());
        }
        self.hsave_pa = value;
        Ok(())
    }

    /// SVM_KEY write (APM Vol. 2 15.31.1): with LOCK clear, sets the key; with
    /// LOCK set, a matching non-zero key clears LOCK, anything else is ignored.
    fn write_svm_key(&mut self, value: u64) {
        if !self.vm_cr.contains(VmCr::LOCK) {
            self.svm_key = value;
        } else if self.svm_key != 0 && value == self.svm_key {
            self.vm_cr.remove(VmCr::LOCK);
        }
    }

    /// TSC ratio write (APM Vol. 2 15.30.5): bits 63:40 are MBZ.
    fn write_tsc_ratio(&mut self, value: u64) -> Result<(), Exception> {
        if value >> 40 != 0 {
            return Err(Exception::gp0());
        }
        self.tsc_ratio = value;
        Ok(())
    }

    /// Whether a WRMSR to EFER that sets SVME is allowed: with VM_CR.SVMDIS set,
    /// EFER.SVME is MBZ (#GP) (APM Vol. 2 15.30.1). Clearing SVME is always
    /// allowed by this rule; the interpreter applies EFER's other rules.
    pub fn efer_write(&self, cfg: &SvmConfig, new: Efer) -> Result<(), Exception> {
        if new.contains(Efer::SVME) && (!cfg.features.svm || self.vm_cr.contains(VmCr::SVMDIS)) {
            return Err(Exception::gp0());
        }
        Ok(())
    }

    /// The TSC a guest reads (APM Vol. 2 15.30.5): `host_tsc` scaled by the TSC
    /// ratio (when the preset has the MSR) plus the VMCB TSC_OFFSET, wrapping.
    pub fn guest_tsc(&self, cfg: &SvmConfig, host_tsc: u64, tsc_offset: u64) -> u64 {
        let scaled = if cfg.features.tsc_rate_msr {
            ((u128::from(host_tsc) * u128::from(self.tsc_ratio)) >> 32) as u64
        } else {
            host_tsc
        };
        scaled.wrapping_add(tsc_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SvmConfig {
        SvmConfig::amd()
    }

    #[test]
    fn vm_cr_reserved_bits_fault() {
        let mut m = SvmMsrs::reset();
        assert_eq!(
            m.wrmsr(&cfg(), AMD_VM_CR, 1 << 5, Efer::empty()),
            Some(Err(Exception::gp0()))
        );
        assert_eq!(m.wrmsr(&cfg(), AMD_VM_CR, 0x7, Efer::empty()), Some(Ok(())));
        assert_eq!(m.vm_cr, VmCr::DPD | VmCr::R_INIT | VmCr::DIS_A20M);
    }

    #[test]
    fn svmdis_with_svme_faults_even_when_locked() {
        let mut m = SvmMsrs::reset();
        assert!(m
            .wrmsr(&cfg(), AMD_VM_CR, VmCr::SVMDIS.bits(), Efer::SVME)
            .unwrap()
            .is_err());
        m.vm_cr = VmCr::LOCK;
        assert!(m
            .wrmsr(
                &cfg(),
                AMD_VM_CR,
                (VmCr::SVMDIS | VmCr::LOCK).bits(),
                Efer::SVME
            )
            .unwrap()
            .is_err());
    }

    #[test]
    fn lock_ignores_lock_and_svmdis_writes() {
        let mut m = SvmMsrs::reset();
        m.wrmsr(
            &cfg(),
            AMD_VM_CR,
            (VmCr::LOCK | VmCr::SVMDIS).bits(),
            Efer::empty(),
        )
        .unwrap()
        .unwrap();
        // Clearing both is silently ignored; DPD still writes.
        m.wrmsr(&cfg(), AMD_VM_CR, VmCr::DPD.bits(), Efer::empty())
            .unwrap()
            .unwrap();
        assert_eq!(m.vm_cr, VmCr::LOCK | VmCr::SVMDIS | VmCr::DPD);
        // INIT keeps SVMDIS while locked.
        m.init();
        assert!(m.vm_cr.contains(VmCr::SVMDIS));
        // SVMDIS makes EFER.SVME MBZ.
        assert!(m.efer_write(&cfg(), Efer::SVME).is_err());
        assert!(m.efer_write(&cfg(), Efer::LME).is_ok());
    }

    #[test]
    fn init_clears_svmdis_when_unlocked() {
        let mut m = SvmMsrs::reset();
        m.vm_cr = VmCr::SVMDIS;
        m.init();
        assert!(m.vm_cr.is_empty());
    }

    #[test]
    fn svm_key_unlocks() {
        let mut m = SvmMsrs::reset();
        let c = cfg();
        m.wrmsr(&c, AMD_SVM_KEY, 0x1234, Efer::empty())
            .unwrap()
            .unwrap();
        assert_eq!(m.rdmsr(&c, AMD_SVM_KEY), Some(Ok(0)));
        m.wrmsr(&c, AMD_VM_CR, VmCr::LOCK.bits(), Efer::empty())
            .unwrap()
            .unwrap();
        // Wrong key: ignored.
        m.wrmsr(&c, AMD_SVM_KEY, 0x1, Efer::empty())
            .unwrap()
            .unwrap();
        assert!(m.vm_cr.contains(VmCr::LOCK));
        m.wrmsr(&c, AMD_SVM_KEY, 0x1234, Efer::empty())
            .unwrap()
            .unwrap();
        assert!(!m.vm_cr.contains(VmCr::LOCK));
    }

    #[test]
    fn zero_key_never_unlocks() {
        let mut m = SvmMsrs::reset();
        let c = cfg();
        m.wrmsr(&c, AMD_VM_CR, VmCr::LOCK.bits(), Efer::empty())
            .unwrap()
            .unwrap();
        m.wrmsr(&c, AMD_SVM_KEY, 0, Efer::empty()).unwrap().unwrap();
        assert!(m.vm_cr.contains(VmCr::LOCK));
    }

    #[test]
    fn svm_key_absent_without_svml() {
        let c = SvmConfig::first_generation();
        let mut m = SvmMsrs::reset();
        assert_eq!(m.rdmsr(&c, AMD_SVM_KEY), None);
        assert_eq!(m.wrmsr(&c, AMD_SVM_KEY, 1, Efer::empty()), None);
        assert_eq!(m.rdmsr(&c, AMD_TSC_RATIO), None);
    }

    #[test]
    fn hsave_pa_rules() {
        let mut m = SvmMsrs::reset();
        let c = cfg();
        assert!(m
            .wrmsr(&c, AMD_VM_HSAVE_PA, 0x1000_0800, Efer::empty())
            .unwrap()
            .is_err());
        assert!(m
            .wrmsr(&c, AMD_VM_HSAVE_PA, 1 << 48, Efer::empty())
            .unwrap()
            .is_err());
        assert!(m
            .wrmsr(&c, AMD_VM_HSAVE_PA, (1 << 48) - 0x1000, Efer::empty())
            .unwrap()
            .is_ok());
        assert_eq!(m.rdmsr(&c, AMD_VM_HSAVE_PA), Some(Ok((1 << 48) - 0x1000)));
    }

    #[test]
    fn tsc_ratio() {
        let mut m = SvmMsrs::reset();
        let c = cfg();
        assert!(m
            .wrmsr(&c, AMD_TSC_RATIO, 1 << 40, Efer::empty())
            .unwrap()
            .is_err());
        m.wrmsr(&c, AMD_TSC_RATIO, 2 << 32, Efer::empty())
            .unwrap()
            .unwrap();
        assert_eq!(m.guest_tsc(&c, 100, 5), 205);
        m.tsc_ratio = 1 << 31; // 0.5
        assert_eq!(m.guest_tsc(&c, 101, 0), 50);
    }

    #[test]
    fn no_svm_no_msrs() {
        let c = SvmConfig {
            features: crate::features::SvmFeatures::none(),
            ..SvmConfig::amd()
        };
        assert_eq!(SvmMsrs::reset().rdmsr(&c, AMD_VM_CR), None);
        assert!(SvmMsrs::reset().efer_write(&c, Efer::SVME).is_err());
    }
}
