//! Exit decisions: given the controls of the current VMCS and the event or
//! instruction at hand, does the processor in VMX non-root operation exit to the
//! VMM (SDM Vol. 3C 26.1, "Instructions That Cause VM Exits"; 26.2, "Other Causes
//! of VM Exits"; 26.3, "Changes to Instruction Behavior in VMX Non-Root
//! Operation")? Every function is pure; bitmaps are read through [`crate::PhysMem`].
//!
//! The machine still applies, before asking, the faults that take priority over
//! VM exits (SDM Vol. 3C 26.1.1, "Relative Priority of Faults and VM Exits"):
//! #UD, privilege-level #GP (e.g. RDTSC with CR4.TSD at CPL > 0, RDMSR at CPL > 0)
//! and I/O-permission #GP.

mod cr;
mod events;
mod insn;
mod io_msr;

pub use cr::{
    clts_exits, cr0_write_exits, cr3_load_exits, cr4_write_exits, guest_cr_read, guest_cr_write,
    lmsw_exits, lmsw_value, tpr_below_threshold, vtpr_from_cr8, CrKind,
};
pub use events::{
    exception_exits, external_interrupt_exit, guest_tsc, init_signal_exits, interrupt_window_exit,
    monitor_trap_flag, nmi_exits, nmi_window_exit, preemption_timer_decrements, sipi_exit,
    task_switch_exit, triple_fault_exit, PauseLoop,
};
pub use insn::{instruction, Decision, Insn};
pub use io_msr::{io_exits, msr_exits};

use crate::controls::{ExitControls, PinControls, Proc2Controls, ProcControls};
use crate::vmcs::{Field, Vmcs};
use serde::{Deserialize, Serialize};

/// The VM-execution controls that decide exits, read once from the current VMCS.
/// `proc2` is 0 unless "activate secondary controls" is 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    /// Pin-based controls.
    pub pin: PinControls,
    /// Primary processor-based controls.
    pub proc: ProcControls,
    /// Secondary processor-based controls in effect.
    pub proc2: Proc2Controls,
    /// VM-exit controls (acknowledge interrupt on exit).
    pub exit: ExitControls,
    /// Exception bitmap.
    pub exception_bitmap: u32,
    /// Page-fault error-code mask.
    pub pf_mask: u32,
    /// Page-fault error-code match.
    pub pf_match: u32,
    /// CR0 guest/host mask.
    pub cr0_mask: u64,
    /// CR0 read shadow.
    pub cr0_shadow: u64,
    /// CR4 guest/host mask.
    pub cr4_mask: u64,
    /// CR4 read shadow.
    pub cr4_shadow: u64,
    /// CR3-target count.
    pub cr3_target_count: u32,
    /// CR3-target values 0-3.
    pub cr3_targets: [u64; 4],
    /// I/O bitmap A and B addresses.
    pub io_bitmaps: [u64; 2],
    /// MSR-bitmap address.
    pub msr_bitmap: u64,
    /// TSC offset.
    pub tsc_offset: u64,
    /// TSC multiplier.
    pub tsc_multiplier: u64,
    /// TPR threshold.
    pub tpr_threshold: u32,
    /// PLE_Gap.
    pub ple_gap: u32,
    /// PLE_Window.
    pub ple_window: u32,
    /// XSS-exiting bitmap.
    pub xss_exiting_bitmap: u64,
}

impl Controls {
    /// Reads the controls of `v`.
    pub fn from_vmcs(v: &Vmcs) -> Self {
        let proc = ProcControls::from_bits_retain(v.get32(Field::PrimaryProcBasedControls));
        let proc2 = if proc.contains(ProcControls::ACTIVATE_SECONDARY_CONTROLS) {
            Proc2Controls::from_bits_retain(v.get32(Field::SecondaryProcBasedControls))
        } else {
            Proc2Controls::empty()
        };
        Self {
            pin: PinControls::from_bits_retain(v.get32(Field::PinBasedControls)),
            proc,
            proc2,
            exit: ExitControls::from_bits_retain(v.get32(Field::ExitControls)),
            exception_bitmap: v.get32(Field::ExceptionBitmap),
            pf_mask: v.get32(Field::PageFaultErrorCodeMask),
            pf_match: v.get32(Field::PageFaultErrorCodeMatch),
            cr0_mask: v.get(Field::Cr0GuestHostMask),
            cr0_shadow: v.get(Field::Cr0ReadShadow),
            cr4_mask: v.get(Field::Cr4GuestHostMask),
            cr4_shadow: v.get(Field::Cr4ReadShadow),
            cr3_target_count: v.get32(Field::Cr3TargetCount),
            cr3_targets: [
                v.get(Field::Cr3TargetValue0),
                v.get(Field::Cr3TargetValue1),
                v.get(Field::Cr3TargetValue2),
                v.get(Field::Cr3TargetValue3),
            ],
            io_bitmaps: [v.get(Field::IoBitmapA), v.get(Field::IoBitmapB)],
            msr_bitmap: v.get(Field::MsrBitmap),
            tsc_offset: v.get(Field::TscOffset),
            tsc_multiplier: v.get(Field::TscMultiplier),
            tpr_threshold: v.get32(Field::TprThreshold),
            ple_gap: v.get32(Field::PleGap),
            ple_window: v.get32(Field::PleWindow),
            xss_exiting_bitmap: v.get(Field::XssExitingBitmap),
        }
    }
}

#[cfg(test)]
mod tests;
