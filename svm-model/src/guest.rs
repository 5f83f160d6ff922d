//! Guest mode: the processor's internal copy of the VMCB controls between
//! VMRUN and #VMEXIT (APM Vol. 2 15.5.1, "Control Bits").
//!
//! VMRUN returns a [`GuestControls`]; the interpreter keeps it while the guest
//! runs, consults it for every intercept decision, lets the guest's execution
//! update the few fields hardware updates (V_TPR, V_IRQ, VGIF, V_NMI state, the
//! PAUSE counter) and hands it back to #VMEXIT.

use crate::vmcb::{EventInj, Intercepts, VIntr};
use mmu::{Cr0, Cr4, Efer};
use serde::{Deserialize, Serialize};

/// Nested paging as VMRUN set it up (APM Vol. 2 15.25.3, 15.25.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedPaging {
    /// nCR3: root of the nested page tables (system-physical).
    pub ncr3: u64,
    /// Host CR0 at VMRUN: the nested walk uses the paging mode the host had
    /// when it executed VMRUN (15.25.3). hCR0.WP is ignored by nested walks.
    pub host_cr0: Cr0,
    /// Host CR4 at VMRUN (PAE, PSE, ... select the nested table format).
    pub host_cr4: Cr4,
    /// Host EFER at VMRUN (LMA and NXE select format and NX).
    pub host_efer: Efer,
    /// Host PAT: the memory type of nested translations (15.25.8); restored on
    /// #VMEXIT.
    pub host_pat: u64,
}

/// How VMLOAD and VMSAVE behave in this guest when not intercepted
/// (APM Vol. 2 15.33.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VirtVmload {
    /// Not enabled: rAX is a system-physical address, as in the host.
    Off,
    /// Enabled and usable: rAX is a guest-physical address, translated
    /// through the nested page tables (an NPF exits as usual).
    On,
    /// Enabled, but the host was not in 64-bit mode or nested paging is off:
    /// VMLOAD and VMSAVE exit with their own exit codes.
    Exit,
}

/// The PAUSE filter (APM Vol. 2 15.14.4, and table 15-7 "PAUSE").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PauseFilter {
    /// The internal counter: VMRUN loads it with the filter count; each PAUSE
    /// decrements it; the intercept occurs when it would go below zero.
    pub counter: i32,
    /// The VMCB PAUSE_FILTER_COUNT (0 when the preset lacks PauseFilter).
    pub count: u16,
    /// The VMCB PAUSE_FILTER_THRESHOLD in cycles (0, count-only mode, when the
    /// preset lacks PauseFilterThreshold).
    pub threshold: u16,
}

impl PauseFilter {
    /// The filter as VMRUN loads it.
    pub const fn new(count: u16, threshold: u16) -> Self {
        Self {
            counter: count as i32,
            count,
            threshold,
        }
    }

    /// One PAUSE in the guest with the PAUSE intercept enabled: returns true if
    /// it causes #VMEXIT(PAUSE). `cycles_since_last_pause` is the modelled
    /// cycle count since the previous PAUSE (`None` if there was none since
    /// VMRUN). If the elapsed count exceeds a non-zero threshold, the counter
    /// is reloaded from the VMCB and execution continues.
    pub fn pause(&mut self, cycles_since_last_pause: Option<u64>) -> bool {
        if self.threshold != 0 {
            if let Some(c) = cycles_since_last_pause {
                if c > u64::from(self.threshold) {
                    self.counter = self.count.into();
                    return false;
                }
            }
        }
        self.counter = self.counter.saturating_sub(1);
        self.counter < 0
    }
}

/// The VMCB controls in force while a guest runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestControls {
    /// Physical address of the VMCB (#VMEXIT writes here).
    pub vmcb_pa: u64,
    /// VM_HSAVE_PA at VMRUN (#VMEXIT reloads host state from here).
    pub hsave_pa: u64,
    /// The intercept vectors.
    pub intercepts: Intercepts,
    /// IOPM base, page-aligned.
    pub iopm_base: u64,
    /// MSRPM base, page-aligned.
    pub msrpm_base: u64,
    /// TSC_OFFSET.
    pub tsc_offset: u64,
    /// Guest ASID (the TLB tag while the guest runs).
    pub asid: u32,
    /// The virtual-interrupt state. V_TPR, V_IRQ, VGIF and V_NMI/V_NMI_MASK are
    /// live: the interpreter updates them as the guest runs; #VMEXIT writes
    /// them back.
    pub vintr: VIntr,
    /// VGIF is in effect (preset has VGIF and the VMCB enables it).
    pub vgif: bool,
    /// NMI virtualization is in effect (preset has VNMI and V_NMI_ENABLE).
    pub vnmi: bool,
    /// Host RFLAGS.IF at VMRUN: with V_INTR_MASKING it masks physical
    /// interrupts while the guest runs (APM Vol. 2 15.21.1).
    pub host_if: bool,
    /// Nested paging, if enabled.
    pub nested: Option<NestedPaging>,
    /// The PAUSE filter.
    pub pause: PauseFilter,
    /// Virtual VMLOAD/VMSAVE behaviour.
    pub virt_vmload: VirtVmload,
    /// EVENTINJ as loaded (the event VMRUN injected, if valid).
    pub event_inj: EventInj,
    /// The VMCB NRIP loaded by VMRUN (return address of injected software
    /// interrupts with NRIPS).
    pub nrip: u64,
    /// Host EFER.LMA at VMRUN (64-bit host).
    pub host_long_mode: bool,
}

impl GuestControls {
    /// True if guest CR8 accesses go to V_TPR only (V_INTR_MASKING = 1,
    /// APM Vol. 2 15.21.2); otherwise CR8 writes update both the APIC TPR and
    /// V_TPR, and CR8 reads return the APIC TPR.
    pub fn cr8_is_virtual(&self) -> bool {
        self.vintr.v_intr_masking
    }

    /// A guest write of CR8 (after intercept checks): updates V_TPR (always,
    /// 15.21.2). Returns true if the APIC TPR must be written as well.
    pub fn write_cr8(&mut self, value: u8) -> bool {
        self.vintr.v_tpr = value & 0xf;
        !self.vintr.v_intr_masking
    }

    /// The value a guest CR8 read returns when CR8 is virtual.
    pub fn read_cr8(&self) -> u8 {
        self.vintr.v_tpr & 0xf
    }

    /// The effective VGIF: the guest's virtual GIF if VGIF is in effect,
    /// otherwise always set.
    pub fn virtual_gif(&self) -> bool {
        !self.vgif || self.vintr.v_gif
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_count_only() {
        // Count 0: the first PAUSE exits (table 15-7).
        let mut p = PauseFilter::new(0, 0);
        assert!(p.pause(None));
        // Count 3: three PAUSEs are filtered, the fourth exits.
        let mut p = PauseFilter::new(3, 0);
        assert!(!p.pause(Some(1)));
        assert!(!p.pause(Some(1)));
        assert!(!p.pause(Some(1)));
        assert!(p.pause(Some(1)));
    }

    #[test]
    fn pause_threshold_reloads() {
        let mut p = PauseFilter::new(1, 100);
        assert!(!p.pause(None)); // 1 -> 0
        assert!(!p.pause(Some(101))); // too far apart: reload to 1
        assert_eq!(p.counter, 1);
        assert!(!p.pause(Some(50))); // 1 -> 0
        assert!(p.pause(Some(100))); // not greater than threshold: 0 -> -1
    }

    #[test]
    fn cr8_virtualization() {
        let mut c = GuestControls {
            vmcb_pa: 0,
            hsave_pa: 0,
            intercepts: Intercepts::default(),
            iopm_base: 0,
            msrpm_base: 0,
            tsc_offset: 0,
            asid: 1,
            vintr: VIntr::default(),
            vgif: false,
            vnmi: false,
            host_if: true,
            nested: None,
            pause: PauseFilter::default(),
            virt_vmload: VirtVmload::Off,
            event_inj: EventInj(0),
            nrip: 0,
            host_long_mode: true,
        };
        assert!(c.write_cr8(0x1f)); // also the APIC TPR
        assert_eq!(c.vintr.v_tpr, 0xf);
        c.vintr.v_intr_masking = true;
        assert!(!c.write_cr8(3));
        assert_eq!(c.read_cr8(), 3);
        assert!(c.virtual_gif());
        c.vgif = true;
        assert!(!c.virtual_gif());
    }
}
