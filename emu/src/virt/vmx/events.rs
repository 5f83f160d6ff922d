//! Events in VMX non-root operation (SDM Vol. 3C 26.2, "Other Causes of VM
//! Exits"; 26.4.2, "Treatment of Task Switches"; 26.5, "Features of VMX
//! Non-Root Operation"; 28.2.4, "Information for VM Exits During Event
//! Delivery"): exceptions and interrupts against the exception bitmap and
//! the pin-based controls, the IDT-vectoring information of an exit during
//! delivery, the instruction-boundary exits (pending exits, monitor trap
//! flag, VMX-preemption timer, NMI window, interrupt window), triple faults
//! and task switches.

use super::{exit_event, perform_exit, PendingExit};
use crate::event::{Event, Flow, SoftIntKind, Stop};
use crate::interrupt::{Delivery, Source};
use crate::machine::Machine;
use crate::virt::{EventGate, GateExit};
use mmu::Rflags;
use vmx_model::controls::{ExitControls, PinControls, ProcControls};
use vmx_model::decide;
use vmx_model::event::{ActivityState, Interruptibility, InterruptionInfo, InterruptionType};
use vmx_model::exit::qual::{self, TaskSwitchSource};
use vmx_model::exit::{ExitEvent, ExitInfo, ExitReason};

/// The interruption type of a delivery (SDM Vol. 3C 25.9.2, table 25-19).
fn kind_of(d: &Delivery) -> InterruptionType {
    match d.source {
        Source::External => InterruptionType::ExternalInterrupt,
        Source::Nmi => InterruptionType::Nmi,
        Source::Exception => InterruptionType::HardwareException,
        Source::Software(SoftIntKind::IntN) => InterruptionType::SoftwareInterrupt,
        Source::Software(SoftIntKind::Int1) => InterruptionType::PrivilegedSoftwareException,
        Source::Software(_) => InterruptionType::SoftwareException,
    }
}

/// The delivery as an interruption-information value with its error code.
fn exit_event_of(d: &Delivery) -> ExitEvent {
    ExitEvent {
        info: InterruptionInfo::new(kind_of(d), d.vector, d.error_code.is_some()),
        error_code: d.error_code,
    }
}

/// The instruction length of a software interrupt or exception being
/// delivered (its return address minus the instruction's RIP).
fn software_len(m: &Machine, d: &Delivery) -> Option<u32> {
    matches!(d.source, Source::Software(_))
        .then(|| d.return_rip.wrapping_sub(m.trap_rip) as u32 & 0xf)
}

/// Adds the IDT-vectoring information of an exit that occurred while `d` was
/// being delivered (SDM Vol. 3C 28.2.4), and the guest RIP to save: the
/// instruction that raised a software interrupt, else the delivery's RIP.
pub(super) fn vectoring(m: &Machine, info: &mut ExitInfo, d: &Delivery) -> Option<u64> {
    info.idt_vectoring = Some(exit_event_of(d));
    if let Some(len) = software_len(m, d) {
        info.instruction_len = Some(len);
        return Some(m.trap_rip);
    }
    None
}

/// Decides whether an event about to be delivered through the guest's IDT
/// exits: exceptions by the exception bitmap (with the page-fault error-code
/// mask and match), NMIs by "NMI exiting", external interrupts by
/// "external-interrupt exiting"; INT n never. The event VM entry injects is
/// delivered without asking.
pub fn event_intercept(m: &mut Machine, d: &Delivery, vectoring_d: Option<&Delivery>) -> Flow {
    let g = &mut m.virt.vmx.guest;
    if g.injecting {
        g.injecting = false;
        return Ok(());
    }
    let c = &g.ctls;
    let exits = match d.source {
        Source::Exception | Source::Software(SoftIntKind::Int3 | SoftIntKind::Into) => {
            decide::exception_exits(c, d.vector, d.error_code)
        }
        Source::Software(SoftIntKind::Int1) => decide::exception_exits(c, 1, None),
        Source::Software(SoftIntKind::IntN) => false,
        Source::Nmi => decide::nmi_exits(c),
        Source::External => {
            return match decide::external_interrupt_exit(c, d.vector) {
                Some(info) => Err(exit_event(m, PendingExit::new(info))),
                None => Ok(()),
            }
        }
    };
    if !exits {
        return Ok(());
    }
    let q = match (d.source, d.vector) {
        (Source::Exception, 14) => d.payload.unwrap_or(0),
        (Source::Exception, 1) => qual::debug_exception(d.payload.unwrap_or(0)),
        _ => 0,
    };
    let mut info = ExitInfo::new(ExitReason::ExceptionOrNmi, q);
    info.interruption = Some(exit_event_of(d));
    let mut rip = None;
    if let Some(len) = software_len(m, d) {
        // INT3, INTO, INT1: the saved RIP references the instruction.
        info.instruction_len = Some(len);
        rip = Some(m.trap_rip);
    }
    if let Some(v) = vectoring_d {
        info.idt_vectoring = Some(exit_event_of(v));
        if let Some(len) = software_len(m, v) {
            info.instruction_len = Some(len);
            rip = Some(m.trap_rip);
        }
    }
    Err(exit_event(m, PendingExit { info, rip }))
}

/// Where a pending physical maskable interrupt goes in VMX non-root
/// operation (SDM Vol. 3C 26.2, "Other Causes of VM Exits"; 26.4.1, "Event
/// Blocking"): with
/// "external-interrupt exiting" RFLAGS.IF does not block it, only blocking
/// by STI or MOV SS does, and it causes a VM exit. With "acknowledge
/// interrupt on exit" the interrupt is acknowledged and its delivery turns
/// into the exit that carries the vector ([`event_intercept`]); without, the
/// exit happens with the interrupt still pending in the controller. Without
/// the control the guest's RFLAGS.IF and shadow decide and it goes through
/// the guest's IDT.
pub(crate) fn intr_gate(m: &Machine) -> EventGate {
    let ev = &m.cpu.events;
    let shadow = ev.sti_blocking || ev.movss_blocking;
    let c = &m.virt.vmx.guest.ctls;
    if shadow {
        return EventGate::Hold;
    }
    if c.pin.contains(PinControls::EXTERNAL_INTERRUPT_EXITING) {
        if c.exit.contains(ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT) {
            return EventGate::Take;
        }
        let info = ExitInfo::new(ExitReason::ExternalInterrupt, 0);
        return EventGate::Exit(GateExit::Vmx(info));
    }
    if m.cpu.flags.has(Rflags::IF) {
        EventGate::Take
    } else {
        EventGate::Hold
    }
}

/// Where a pending physical NMI goes in VMX non-root operation. With "NMI
/// exiting" it exits (as its delivery, [`event_intercept`]) unless blocked
/// by MOV SS or, without virtual NMIs, by an NMI the guest is handling (an
/// injected one); blocking by STI does not block NMIs on this model (SDM
/// Vol. 3C 25.4.2, table "Format of Interruptibility State": implementation
/// specific). Without the control, the guest's NMI blocking and shadow
/// decide.
pub(crate) fn nmi_gate(m: &Machine) -> EventGate {
    let ev = &m.cpu.events;
    let g = &m.virt.vmx.guest;
    let blocked = if decide::nmi_exits(&g.ctls) {
        ev.movss_blocking || (!g.virtual_nmis && ev.nmi_blocked)
    } else {
        ev.nmi_blocked || ev.sti_blocking || ev.movss_blocking
    };
    if blocked {
        EventGate::Hold
    } else {
        EventGate::Take
    }
}

/// True if a maskable interrupt would be taken or exit once pending: what a
/// halted guest's wake-up depends on.
pub(crate) fn intr_enabled(m: &Machine) -> bool {
    m.virt
        .vmx
        .guest
        .ctls
        .pin
        .contains(PinControls::EXTERNAL_INTERRUPT_EXITING)
        || m.cpu.flags.has(Rflags::IF)
}

/// The current value of the VMX-preemption timer, if active.
pub(super) fn timer_value(m: &Machine) -> Option<u32> {
    let t = m.virt.vmx.guest.timer?;
    let rate = m.virt.vmx.caps.features.misc.preemption_timer_rate;
    let ticks = decide::preemption_timer_decrements(rate, t.start_cycles, m.stats.cycles);
    Some((t.start_value as u64).saturating_sub(ticks) as u32)
}

/// Work at an instruction boundary in VMX non-root operation, in priority
/// order: a pending exit (TPR below threshold after VM entry, a pending MTF
/// exit), the monitor trap flag (SDM Vol. 3C 26.5.2, "Monitor Trap Flag"),
/// then the VMX-preemption timer, the NMI window and the interrupt window
/// (26.2, "Other Causes of VM Exits", which states each one's priority).
/// Returns true if the next slice must be a single instruction (the monitor
/// trap flag is set).
pub fn boundary(m: &mut Machine) -> Result<bool, Stop> {
    if let Some(e) = m.virt.vmx.guest.pending.take() {
        perform_exit(m, e)?;
        return Ok(false);
    }
    let c = m.virt.vmx.guest.ctls;
    let mtf = c.proc.contains(ProcControls::MONITOR_TRAP_FLAG);
    if mtf && m.virt.vmx.guest.ran {
        let info = ExitInfo::new(ExitReason::MonitorTrapFlag, 0);
        perform_exit(m, PendingExit::new(info))?;
        return Ok(false);
    }
    if timer_expired(m) {
        let info = ExitInfo::new(ExitReason::PreemptionTimerExpired, 0);
        perform_exit(m, PendingExit::new(info))?;
        return Ok(false);
    }
    let ev = m.cpu.events;
    let mut blocking = Interruptibility::empty();
    blocking.set(Interruptibility::STI, ev.sti_blocking);
    blocking.set(Interruptibility::MOV_SS, ev.movss_blocking);
    let g = &m.virt.vmx.guest;
    blocking.set(
        Interruptibility::NMI,
        if g.virtual_nmis {
            g.virtual_nmi_blocked
        } else {
            ev.nmi_blocked
        },
    );
    let activity = if ev.halted {
        ActivityState::Hlt
    } else {
        ActivityState::Active
    };
    let window = if decide::nmi_window_exit(&c, blocking, activity) {
        Some(ExitReason::NmiWindow)
    } else if decide::interrupt_window_exit(&c, m.cpu.flags.has(Rflags::IF), blocking, activity) {
        Some(ExitReason::InterruptWindow)
    } else {
        None
    };
    if let Some(r) = window {
        perform_exit(m, PendingExit::new(ExitInfo::new(r, 0)))?;
        return Ok(false);
    }
    m.virt.vmx.guest.ran = true;
    Ok(mtf)
}

/// True if [`boundary`] would do nothing at this boundary and change
/// nothing: no pending exit, no monitor trap flag, no VMX-preemption timer,
/// no NMI- or interrupt-window exiting (SDM Vol. 3C 26.2, 27.5.2, 27.7.4),
/// and the guest has run since the VM entry. (With those clear, `boundary`
/// takes none of its exits and its only write, `ran = true`, is already
/// made.) The run loop's quick path takes guest-mode boundaries only then.
#[inline]
pub fn boundary_quiet(m: &Machine) -> bool {
    let g = &m.virt.vmx.guest;
    let quiet_ctls = ProcControls::MONITOR_TRAP_FLAG
        | ProcControls::NMI_WINDOW_EXITING
        | ProcControls::INTERRUPT_WINDOW_EXITING;
    g.pending.is_none() && g.ran && g.timer.is_none() && !g.ctls.proc.intersects(quiet_ctls)
}

/// True if the VMX-preemption timer has counted down to 0. A halted guest
/// waits for it: the cycle counter advances to the expiry.
fn timer_expired(m: &mut Machine) -> bool {
    let Some(t) = m.virt.vmx.guest.timer else {
        return false;
    };
    if !m
        .virt
        .vmx
        .guest
        .ctls
        .pin
        .contains(PinControls::ACTIVATE_PREEMPTION_TIMER)
    {
        return false;
    }
    if timer_value(m) == Some(0) {
        return true;
    }
    if m.cpu.events.halted {
        let rate = m.virt.vmx.caps.features.misc.preemption_timer_rate as u32;
        let expiry = ((t.start_cycles >> rate) + t.start_value as u64) << rate;
        m.stats.cycles = m.stats.cycles.max(expiry);
        return true;
    }
    false
}

/// A triple fault in VMX non-root operation exits (reason 2) instead of
/// shutting the processor down (SDM Vol. 3C 26.2).
pub fn triple_fault(m: &mut Machine) -> Result<(), Stop> {
    perform_exit(m, PendingExit::new(decide::triple_fault_exit()))
}

/// A task switch in VMX non-root operation (SDM Vol. 3C 26.4.2, "Treatment of
/// Task Switches") exits after the checks on the task gate and TSS descriptor
/// the caller made; the qualification names the new TSS and the source.
pub fn task_switch(m: &mut Machine, selector: u16, source: u8, insn_len: Option<u32>) -> Event {
    let src = match source {
        0 => TaskSwitchSource::Call,
        1 => TaskSwitchSource::Iret,
        2 => TaskSwitchSource::Jmp,
        _ => TaskSwitchSource::TaskGate,
    };
    let mut info = decide::task_switch_exit(selector, src, insn_len);
    let mut rip = None;
    if let Some(d) = m.virt.delivering {
        rip = vectoring(m, &mut info, &d);
    }
    exit_event(m, PendingExit { info, rip })
}
