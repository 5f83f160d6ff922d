//! Events, windows, timers and the TSC in VMX non-root operation (SDM Vol. 3C
//! 26.2, "Other Causes of VM Exits"; 26.3 for RDTSC; 26.5.1, "VMX-Preemption
//! Timer"; 26.1.3 for PAUSE-loop exiting).

use super::Controls;
use crate::controls::{ExitControls, PinControls, Proc2Controls, ProcControls};
use crate::event::{ActivityState, Interruptibility, InterruptionInfo, InterruptionType};
use crate::exit::{ExitEvent, ExitInfo, ExitReason};
use serde::{Deserialize, Serialize};

/// True if an exception exits. `vector` is a hardware exception, a privileged
/// software exception (INT1) or a software exception (INT3, INTO); software
/// interrupts (INT n) and NMIs are not governed by the exception bitmap. A page
/// fault exits iff bit 14 of the bitmap equals `(error_code & mask) == match`.
pub fn exception_exits(c: &Controls, vector: u8, error_code: Option<u32>) -> bool {
    if vector >= 32 {
        return false;
    }
    let bit = c.exception_bitmap & (1 << vector) != 0;
    if vector == 14 {
        let ec = error_code.unwrap_or(0);
        return bit == (ec & c.pf_mask == c.pf_match);
    }
    bit
}

/// NMIs exit iff "NMI exiting" is 1.
pub fn nmi_exits(c: &Controls) -> bool {
    c.pin.contains(PinControls::NMI_EXITING)
}

/// An unblocked external interrupt exits iff "external-interrupt exiting" is 1
/// (RFLAGS.IF does not block it then). Returns the exit to take: with "acknowledge
/// interrupt on exit" the machine acknowledges the interrupt controller and
/// `vector` is recorded as a valid external interrupt in the VM-exit
/// interruption-information field; otherwise that field is invalid.
pub fn external_interrupt_exit(c: &Controls, vector: u8) -> Option<ExitInfo> {
    if !c.pin.contains(PinControls::EXTERNAL_INTERRUPT_EXITING) {
        return None;
    }
    let mut info = ExitInfo::new(ExitReason::ExternalInterrupt, 0);
    if c.exit.contains(ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT) {
        info.interruption = Some(ExitEvent {
            info: InterruptionInfo::new(InterruptionType::ExternalInterrupt, vector, false),
            error_code: None,
        });
    }
    Some(info)
}

/// An interrupt-window exit occurs before the next instruction if "interrupt-window
/// exiting" is 1, RFLAGS.IF is 1 and there is no blocking by STI or MOV SS. It
/// wakes HLT; it does not occur in the shutdown or wait-for-SIPI states.
pub fn interrupt_window_exit(
    c: &Controls,
    rflags_if: bool,
    blocking: Interruptibility,
    activity: ActivityState,
) -> bool {
    c.proc.contains(ProcControls::INTERRUPT_WINDOW_EXITING)
        && rflags_if
        && !blocking.intersects(Interruptibility::STI | Interruptibility::MOV_SS)
        && matches!(activity, ActivityState::Active | ActivityState::Hlt)
}

/// An NMI-window exit occurs if "NMI-window exiting" is 1, there is no virtual-NMI
/// blocking (bit 3 of `blocking`) and no blocking by MOV SS. The SDM lets a
/// processor also hold it off under blocking by STI; this model does. It does not
/// occur in the wait-for-SIPI state.
pub fn nmi_window_exit(c: &Controls, blocking: Interruptibility, activity: ActivityState) -> bool {
    c.proc.contains(ProcControls::NMI_WINDOW_EXITING)
        && !blocking
            .intersects(Interruptibility::NMI | Interruptibility::MOV_SS | Interruptibility::STI)
        && activity != ActivityState::WaitForSipi
}

/// How much the VMX-preemption timer counts down while the TSC goes from
/// `tsc_before` to `tsc_after`: once each time bit `rate` (IA32_VMX_MISC bits 4:0)
/// of the TSC changes. The timer exits when it reaches 0.
pub fn preemption_timer_decrements(rate: u8, tsc_before: u64, tsc_after: u64) -> u64 {
    (tsc_after >> rate).wrapping_sub(tsc_before >> rate)
}

/// The value RDTSC/RDTSCP return in non-root operation (when they do not exit):
/// with "use TSC offsetting", the TSC (times the TSC multiplier >> 48 with "use
/// TSC scaling") plus the TSC offset; otherwise the TSC.
pub fn guest_tsc(c: &Controls, tsc: u64) -> u64 {
    if !c.proc.contains(ProcControls::USE_TSC_OFFSETTING) {
        return tsc;
    }
    let scaled = if c.proc2.contains(Proc2Controls::USE_TSC_SCALING) {
        ((tsc as u128 * c.tsc_multiplier as u128) >> 48) as u64
    } else {
        tsc
    };
    scaled.wrapping_add(c.tsc_offset)
}

/// PAUSE-loop exiting state (SDM Vol. 3C 26.1.3, PAUSE): the TSC of the last PAUSE
/// at CPL 0 and of the first PAUSE of the current loop. VM entry resets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseLoop {
    last: Option<u64>,
    first: u64,
}

impl PauseLoop {
    /// A PAUSE at CPL 0 at time `tsc` with "PAUSE-loop exiting" 1 (and "PAUSE
    /// exiting" 0). A PAUSE more than PLE_Gap after the previous one starts a new
    /// loop; the PAUSE exits if the loop has lasted more than PLE_Window.
    pub fn pause(&mut self, c: &Controls, tsc: u64) -> bool {
        let new_loop = self
            .last
            .is_none_or(|last| tsc.wrapping_sub(last) > c.ple_gap as u64);
        if new_loop {
            self.first = tsc;
        }
        self.last = Some(tsc);
        tsc.wrapping_sub(self.first) > c.ple_window as u64
    }
}

/// A VM exit caused by the monitor trap flag occurs after an instruction (or event
/// delivery) completes in non-root operation if "monitor trap flag" is 1 (SDM Vol.
/// 3C 26.5.2, "Monitor Trap Flag"), with the priorities the machine applies.
pub fn monitor_trap_flag(c: &Controls) -> bool {
    c.proc.contains(ProcControls::MONITOR_TRAP_FLAG)
}

/// INIT signals always exit in VMX non-root operation, except in the wait-for-SIPI
/// state where they are blocked (SDM Vol. 3C 26.2).
pub fn init_signal_exits(activity: ActivityState) -> bool {
    activity != ActivityState::WaitForSipi
}

/// A start-up IPI exits only in the wait-for-SIPI state; the exit qualification is
/// its vector (SDM Vol. 3C 26.2). Elsewhere SIPIs are blocked and discarded.
pub fn sipi_exit(activity: ActivityState, vector: u8) -> Option<ExitInfo> {
    (activity == ActivityState::WaitForSipi)
        .then(|| ExitInfo::new(ExitReason::StartupIpi, vector as u64))
}

/// A triple fault in non-root operation always exits (reason 2) instead of
/// shutting down (SDM Vol. 3C 26.2).
pub fn triple_fault_exit() -> ExitInfo {
    ExitInfo::new(ExitReason::TripleFault, 0)
}

/// Task switches always exit in non-root operation (SDM Vol. 3C 26.4.2,
/// "Treatment of Task Switches"), after the checks on the task gate and TSS
/// descriptor the machine performs; the qualification names the new TSS and the
/// source, and an instruction-caused switch records the instruction length.
pub fn task_switch_exit(
    selector: u16,
    source: crate::exit::qual::TaskSwitchSource,
    instruction_len: Option<u32>,
) -> ExitInfo {
    ExitInfo {
        instruction_len,
        ..ExitInfo::new(
            ExitReason::TaskSwitch,
            crate::exit::qual::task_switch(selector, source),
        )
    }
}
