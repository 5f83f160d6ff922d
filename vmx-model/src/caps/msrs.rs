//! Generation of the capability MSRs from [`VmxFeatures`] (SDM Vol. 3D A.1-A.11).

use super::VmxFeatures;
use crate::controls::{
    Allowed, EntryControls, EptVpidCap, ExitControls, PinControls, Proc2Controls, ProcControls,
    VmFuncControls,
};
use crate::vmcs::{Feature, Field, FIELDS};
use mmu::msr;
use mmu::Exception;
use serde::{Deserialize, Serialize};

/// Controls whose semantics this model implements (the rest are never advertised,
/// whatever a preset asks: "advertise only what works").
const MODELLED_PIN: PinControls = PinControls::all();
const MODELLED_PROC: ProcControls =
    ProcControls::all().difference(ProcControls::ACTIVATE_TERTIARY_CONTROLS);
const MODELLED_PROC2: Proc2Controls = Proc2Controls::VIRTUALIZE_APIC_ACCESSES
    .union(Proc2Controls::ENABLE_EPT)
    .union(Proc2Controls::DESCRIPTOR_TABLE_EXITING)
    .union(Proc2Controls::ENABLE_RDTSCP)
    .union(Proc2Controls::VIRTUALIZE_X2APIC_MODE)
    .union(Proc2Controls::ENABLE_VPID)
    .union(Proc2Controls::WBINVD_EXITING)
    .union(Proc2Controls::UNRESTRICTED_GUEST)
    .union(Proc2Controls::APIC_REGISTER_VIRTUALIZATION)
    .union(Proc2Controls::VIRTUAL_INTERRUPT_DELIVERY)
    .union(Proc2Controls::PAUSE_LOOP_EXITING)
    .union(Proc2Controls::RDRAND_EXITING)
    .union(Proc2Controls::ENABLE_INVPCID)
    .union(Proc2Controls::ENABLE_VM_FUNCTIONS)
    .union(Proc2Controls::VMCS_SHADOWING)
    .union(Proc2Controls::RDSEED_EXITING)
    .union(Proc2Controls::ENABLE_PML)
    .union(Proc2Controls::EPT_VIOLATION_VE)
    .union(Proc2Controls::ENABLE_XSAVES)
    .union(Proc2Controls::USE_TSC_SCALING);
const MODELLED_EXIT: ExitControls = ExitControls::SAVE_DEBUG_CONTROLS
    .union(ExitControls::HOST_ADDRESS_SPACE_SIZE)
    .union(ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT)
    .union(ExitControls::SAVE_PAT)
    .union(ExitControls::LOAD_PAT)
    .union(ExitControls::SAVE_EFER)
    .union(ExitControls::LOAD_EFER)
    .union(ExitControls::SAVE_PREEMPTION_TIMER);
const MODELLED_ENTRY: EntryControls = EntryControls::LOAD_DEBUG_CONTROLS
    .union(EntryControls::IA32E_MODE_GUEST)
    .union(EntryControls::LOAD_PAT)
    .union(EntryControls::LOAD_EFER);
const EPT_BITS: EptVpidCap = EptVpidCap::EXECUTE_ONLY
    .union(EptVpidCap::PAGE_WALK_4)
    .union(EptVpidCap::PAGE_WALK_5)
    .union(EptVpidCap::MEMORY_TYPE_UC)
    .union(EptVpidCap::MEMORY_TYPE_WB)
    .union(EptVpidCap::PDE_2MB_PAGES)
    .union(EptVpidCap::PDPTE_1GB_PAGES)
    .union(EptVpidCap::INVEPT)
    .union(EptVpidCap::ACCESSED_DIRTY)
    .union(EptVpidCap::INVEPT_SINGLE_CONTEXT)
    .union(EptVpidCap::INVEPT_ALL_CONTEXT);
const VPID_BITS: EptVpidCap = EptVpidCap::INVVPID
    .union(EptVpidCap::INVVPID_INDIVIDUAL_ADDRESS)
    .union(EptVpidCap::INVVPID_SINGLE_CONTEXT)
    .union(EptVpidCap::INVVPID_ALL_CONTEXT)
    .union(EptVpidCap::INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS);

/// The capability MSRs and allowed control settings of one CPU model, derived
/// once from a normalised [`VmxFeatures`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmxCaps {
    /// The features, normalised (dependencies resolved, unmodelled bits dropped).
    pub features: VmxFeatures,
    /// Pin-based controls as VM entry checks them (TRUE_ MSR if supported).
    pub pin: Allowed,
    /// Primary processor-based controls as VM entry checks them.
    pub proc: Allowed,
    /// Secondary processor-based controls.
    pub proc2: Allowed,
    /// VM-exit controls as VM entry checks them.
    pub exit: Allowed,
    /// VM-entry controls as VM entry checks them.
    pub entry: Allowed,
    legacy: [Allowed; 4],
}

impl Default for VmxCaps {
    fn default() -> Self {
        Self::new(VmxFeatures::default())
    }
}

fn allowed(default1: u32, flexible: u32, supported: u32, true_msr: bool) -> Allowed {
    let may_be_one = default1 | supported;
    let must_be_one = if true_msr {
        default1 & !(flexible & supported)
    } else {
        default1
    };
    Allowed {
        must_be_one,
        may_be_one,
    }
}

fn normalise(mut f: VmxFeatures) -> VmxFeatures {
    use Proc2Controls as P2;
    f.revision_id &= 0x7fff_ffff;
    f.pin &= MODELLED_PIN;
    f.proc &= MODELLED_PROC;
    f.proc2 &= MODELLED_PROC2;
    f.exit &= MODELLED_EXIT;
    f.entry &= MODELLED_ENTRY;
    if f.proc2.is_empty() || !f.proc.contains(ProcControls::ACTIVATE_SECONDARY_CONTROLS) {
        f.proc.remove(ProcControls::ACTIVATE_SECONDARY_CONTROLS);
        f.proc2 = P2::empty();
    }
    if !f.proc2.contains(P2::ENABLE_EPT) {
        f.proc2 &= !(P2::UNRESTRICTED_GUEST | P2::ENABLE_PML | P2::EPT_VIOLATION_VE);
        f.vmfunc.remove(VmFuncControls::EPTP_SWITCHING);
        f.ept_vpid &= !EPT_BITS;
    }
    if !f.proc2.contains(P2::ENABLE_VPID) {
        f.ept_vpid &= !VPID_BITS;
    }
    if !f.proc2.contains(P2::ENABLE_VM_FUNCTIONS) {
        f.vmfunc = VmFuncControls::empty();
    }
    if !f.pin.contains(PinControls::ACTIVATE_PREEMPTION_TIMER) {
        f.exit.remove(ExitControls::SAVE_PREEMPTION_TIMER);
    }
    f.cr4_fixed1 |= f.cr4_fixed0();
    f.cr0_fixed1 |= f.cr0_fixed0();
    f.misc.cr3_target_count = f.misc.cr3_target_count.min(4);
    f.misc.preemption_timer_rate &= 0x1f;
    f.misc.msr_list_size_code &= 7;
    f
}

impl VmxCaps {
    /// Derives the capability MSRs of `features`.
    pub fn new(features: VmxFeatures) -> Self {
        let f = normalise(features);
        let t = f.true_controls;
        let pin = |tr| allowed(PinControls::DEFAULT1, 0, f.pin.bits(), tr);
        let proc = |tr| {
            let flex = ProcControls::DEFAULT1_FLEXIBLE.bits();
            allowed(ProcControls::DEFAULT1, flex, f.proc.bits(), tr)
        };
        let exit = |tr| {
            let flex = ExitControls::DEFAULT1_FLEXIBLE.bits();
            allowed(ExitControls::DEFAULT1, flex, f.exit.bits(), tr)
        };
        let entry = |tr| {
            let flex = EntryControls::DEFAULT1_FLEXIBLE.bits();
            allowed(EntryControls::DEFAULT1, flex, f.entry.bits(), tr)
        };
        Self {
            pin: pin(t),
            proc: proc(t),
            proc2: Allowed {
                must_be_one: 0,
                may_be_one: f.proc2.bits(),
            },
            exit: exit(t),
            entry: entry(t),
            legacy: [pin(false), proc(false), exit(false), entry(false)],
            features: f,
        }
    }

    /// IA32_VMX_BASIC (SDM Vol. 3D A.1): revision identifier, 4-KByte VMCS region,
    /// write-back memory type, INS/OUTS instruction information, TRUE_ MSRs.
    pub fn basic(&self) -> u64 {
        const REGION_SIZE: u64 = 0x1000;
        const MEMTYPE_WB: u64 = 6;
        self.features.revision_id as u64
            | REGION_SIZE << 32
            | MEMTYPE_WB << 50
            | 1 << 54
            | (self.features.true_controls as u64) << 55
    }

    /// IA32_VMX_MISC (SDM Vol. 3D A.6).
    pub fn misc(&self) -> u64 {
        let m = &self.features.misc;
        m.preemption_timer_rate as u64
            | (m.store_lma_on_exit as u64) << 5
            | (m.activity_hlt as u64) << 6
            | (m.activity_shutdown as u64) << 7
            | (m.activity_wait_for_sipi as u64) << 8
            | (m.cr3_target_count as u64) << 16
            | (m.msr_list_size_code as u64) << 25
            | (m.vmwrite_any_field as u64) << 29
            | (m.zero_length_injection as u64) << 30
    }

    /// IA32_VMX_VMCS_ENUM (SDM Vol. 3D A.9): bits 9:1 hold the highest index of
    /// any supported field encoding.
    pub fn vmcs_enum(&self) -> u64 {
        let max = FIELDS
            .iter()
            .filter(|i| self.field_exists(i.field))
            .map(|i| i.index())
            .max()
            .unwrap_or(0);
        (max as u64) << 1
    }

    /// The maximum number of entries of an MSR-load or MSR-store area
    /// (SDM Vol. 3D A.6: 512 * (N + 1)).
    pub fn max_msr_list(&self) -> u32 {
        512 * (self.features.misc.msr_list_size_code as u32 + 1)
    }

    /// True if the processor supports the 1-setting of `c` (secondary controls).
    pub fn has2(&self, c: Proc2Controls) -> bool {
        self.proc2.may_be_one & c.bits() == c.bits()
    }

    /// True if field `f` exists on this processor (SDM Vol. 3D appendix B).
    pub fn field_exists(&self, f: Field) -> bool {
        let feat = &self.features;
        match f.info().feature {
            Feature::Always => true,
            Feature::Pin(c) => feat.pin.contains(c),
            Feature::Proc(c) => feat.proc.contains(c),
            Feature::Proc2(c) => feat.proc2.contains(c),
            Feature::Exit(c) => feat.exit.contains(c),
            Feature::Entry(c) => feat.entry.contains(c),
            Feature::EntryOrExit(n, x) => feat.entry.contains(n) || feat.exit.contains(x),
            Feature::VmFunc(c) => feat.vmfunc.contains(c),
            Feature::Unmodelled(_) => false,
        }
    }

    /// The value RDMSR returns for VMX capability MSR `index`, or `None` if this
    /// processor does not implement it (RDMSR raises #GP).
    pub fn read_msr(&self, index: u32) -> Option<u64> {
        let f = &self.features;
        let has2 = self.proc.may_be_one & ProcControls::ACTIVATE_SECONDARY_CONTROLS.bits() != 0;
        let true_ok = f.true_controls;
        let ept_or_vpid =
            has2 && (self.has2(Proc2Controls::ENABLE_EPT) || self.has2(Proc2Controls::ENABLE_VPID));
        let vmfunc_ok = has2 && self.has2(Proc2Controls::ENABLE_VM_FUNCTIONS);
        let [pin, proc, exit, entry] = self.legacy;
        Some(match index {
            msr::IA32_VMX_BASIC => self.basic(),
            msr::IA32_VMX_PINBASED_CTLS => pin.msr(),
            msr::IA32_VMX_PROCBASED_CTLS => proc.msr(),
            msr::IA32_VMX_EXIT_CTLS => exit.msr(),
            msr::IA32_VMX_ENTRY_CTLS => entry.msr(),
            msr::IA32_VMX_MISC => self.misc(),
            msr::IA32_VMX_CR0_FIXED0 => f.cr0_fixed0(),
            msr::IA32_VMX_CR0_FIXED1 => f.cr0_fixed1,
            msr::IA32_VMX_CR4_FIXED0 => f.cr4_fixed0(),
            msr::IA32_VMX_CR4_FIXED1 => f.cr4_fixed1,
            msr::IA32_VMX_VMCS_ENUM => self.vmcs_enum(),
            msr::IA32_VMX_PROCBASED_CTLS2 if has2 => self.proc2.msr(),
            msr::IA32_VMX_EPT_VPID_CAP if ept_or_vpid => f.ept_vpid.bits(),
            msr::IA32_VMX_TRUE_PINBASED_CTLS if true_ok => self.pin.msr(),
            msr::IA32_VMX_TRUE_PROCBASED_CTLS if true_ok => self.proc.msr(),
            msr::IA32_VMX_TRUE_EXIT_CTLS if true_ok => self.exit.msr(),
            msr::IA32_VMX_TRUE_ENTRY_CTLS if true_ok => self.entry.msr(),
            msr::IA32_VMX_VMFUNC if vmfunc_ok => f.vmfunc.bits(),
            _ => return None,
        })
    }
}

/// IA32_FEATURE_CONTROL, MSR 3AH, as far as VMX is concerned (SDM Vol. 3C 24.7,
/// "Enabling and Entering VMX Operation"; Vol. 4 table 2-2): once the lock bit is
/// set, writes raise #GP until reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureControl(pub u64);

impl FeatureControl {
    /// Bit 0: lock.
    pub const LOCK: u64 = 1 << 0;
    /// Bit 1: enable VMX inside SMX operation (SMX is not modelled: reserved here).
    pub const VMX_INSIDE_SMX: u64 = 1 << 1;
    /// Bit 2: enable VMX outside SMX operation.
    pub const VMX_OUTSIDE_SMX: u64 = 1 << 2;
    /// The bits this model implements.
    pub const VALID: u64 = Self::LOCK | Self::VMX_OUTSIDE_SMX;

    /// WRMSR semantics: #GP(0) if locked or if a reserved bit is set.
    pub fn write(&mut self, value: u64) -> Result<(), Exception> {
        if self.locked() || value & !Self::VALID != 0 {
            return Err(Exception::gp0());
        }
        self.0 = value;
        Ok(())
    }
    /// True if the lock bit is set.
    pub const fn locked(self) -> bool {
        self.0 & Self::LOCK != 0
    }
    /// True if VMXON is allowed outside SMX operation: locked and enabled.
    pub const fn vmxon_allowed(self) -> bool {
        self.locked() && self.0 & Self::VMX_OUTSIDE_SMX != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_misc_layout() {
        let c = VmxCaps::default();
        let b = c.basic();
        assert_eq!(b & 0x7fff_ffff, 0x12);
        assert_eq!((b >> 32) & 0x1fff, 0x1000);
        assert_eq!((b >> 50) & 0xf, 6);
        assert_ne!(b & (1 << 55), 0);
        assert_eq!(b & (1 << 48), 0, "no 32-bit physical-address limit");
        let m = c.misc();
        assert_eq!(m & 0x1f, 5);
        assert_eq!((m >> 16) & 0x1ff, 4);
        assert_ne!(m & (1 << 29), 0);
    }

    #[test]
    fn true_controls_relax_only_flexible_default1_bits() {
        let c = VmxCaps::default();
        let legacy = c.read_msr(msr::IA32_VMX_PROCBASED_CTLS).unwrap() as u32;
        let tru = c.read_msr(msr::IA32_VMX_TRUE_PROCBASED_CTLS).unwrap() as u32;
        assert_eq!(legacy, ProcControls::DEFAULT1);
        assert_eq!(tru, ProcControls::DEFAULT1 & !(3 << 15));
        let exit = c.read_msr(msr::IA32_VMX_TRUE_EXIT_CTLS).unwrap() as u32;
        assert_eq!(exit, 0x36dfb);
        let entry = c.read_msr(msr::IA32_VMX_TRUE_ENTRY_CTLS).unwrap() as u32;
        assert_eq!(entry, 0x11fb);
        let pin = c.read_msr(msr::IA32_VMX_TRUE_PINBASED_CTLS).unwrap() as u32;
        assert_eq!(pin, 0x16);
    }

    #[test]
    fn first_generation_has_no_secondary_or_true_msrs() {
        let c = VmxCaps::new(VmxFeatures::first_generation());
        assert_eq!(c.read_msr(msr::IA32_VMX_PROCBASED_CTLS2), None);
        assert_eq!(c.read_msr(msr::IA32_VMX_TRUE_PROCBASED_CTLS), None);
        assert_eq!(c.read_msr(msr::IA32_VMX_EPT_VPID_CAP), None);
        assert!(!c.field_exists(Field::EptPointer));
        assert!(!c.field_exists(Field::SecondaryProcBasedControls));
        assert!(c.field_exists(Field::GuestCr0));
        assert_eq!(c.proc.must_be_one, ProcControls::DEFAULT1);
    }

    #[test]
    fn normalisation_drops_dependents() {
        let mut f = VmxFeatures::intel();
        f.proc2.remove(Proc2Controls::ENABLE_EPT);
        let c = VmxCaps::new(f);
        assert!(!c.has2(Proc2Controls::UNRESTRICTED_GUEST));
        assert!(!c.features.ept_vpid.contains(EptVpidCap::INVEPT));
        assert!(c.features.ept_vpid.contains(EptVpidCap::INVVPID));
    }

    #[test]
    fn vmcs_enum_tracks_supported_fields() {
        let c = VmxCaps::default();
        // The intel preset's highest index is the TSC multiplier / PLE_Window family.
        let e = c.vmcs_enum();
        assert_eq!(e & 1, 0);
        let idx = (e >> 1) as u32;
        assert!(FIELDS
            .iter()
            .any(|i| c.field_exists(i.field) && i.index() == idx));
        assert!(FIELDS
            .iter()
            .all(|i| !c.field_exists(i.field) || i.index() <= idx));
    }

    #[test]
    fn feature_control_lock() {
        let mut fc = FeatureControl::default();
        assert!(!fc.vmxon_allowed());
        assert_eq!(fc.write(1 << 3), Err(Exception::gp0()));
        fc.write(FeatureControl::LOCK | FeatureControl::VMX_OUTSIDE_SMX)
            .unwrap();
        assert!(fc.vmxon_allowed());
        assert_eq!(fc.write(0), Err(Exception::gp0()));
    }
}
