//! GIF and interrupt routing under SVM (APM Vol. 2 15.17, "Global Interrupt
//! Flag", 15.21, "Interrupt and Local APIC Support", 15.22.2, "Response to
//! SMI", 15.33.2, "Virtual GIF").
//!
//! The interpreter asks, whenever an event is pending at an instruction
//! boundary, what happens to it: held pending, discarded, a #VMEXIT, delivered
//! (to the host, or into the guest through the guest IDT), or, for INIT,
//! redirected to #SX. Physical interrupts take priority over virtual ones.

use crate::exit_code::ExitCode;
use crate::guest::GuestControls;
use crate::msr::VmCr;
use crate::vmcb::Misc1;
use crate::vmexit::ExitInfo;
use mmu::{Exception, Vector};
use serde::{Deserialize, Serialize};

/// A source of asynchronous events (APM Vol. 2 table 15-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventSource {
    /// Debug exception or trap due to a breakpoint register match.
    DebugBreakpoint,
    /// Debug trace trap due to EFLAGS.TF.
    DebugTrace,
    /// RESET.
    Reset,
    /// INIT.
    Init,
    /// NMI.
    Nmi,
    /// External SMI.
    ExternalSmi,
    /// Internal SMI (I/O trapping).
    InternalSmi,
    /// INTR (physical maskable interrupt).
    Intr,
    /// vINTR (virtual interrupt).
    Vintr,
    /// Machine check.
    MachineCheck,
    /// A20M.
    A20m,
}

/// What GIF = 0 does to an event source (APM Vol. 2 table 15-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GifZero {
    /// Normal operation: GIF has no effect.
    Normal,
    /// Held pending until GIF = 1.
    HeldPending,
    /// Ignored and discarded.
    Discarded,
    /// Held pending if possible (implementation-dependent), otherwise shutdown.
    /// This model holds machine checks pending.
    HeldPendingIfPossible,
}

/// Table 15-10, "Effect of the GIF on Interrupt Handling", as data.
pub const GIF_TABLE: &[(EventSource, GifZero)] = &[
    (EventSource::DebugBreakpoint, GifZero::Discarded),
    (EventSource::DebugTrace, GifZero::Normal),
    (EventSource::Reset, GifZero::Normal),
    (EventSource::Init, GifZero::HeldPending),
    (EventSource::Nmi, GifZero::HeldPending),
    (EventSource::ExternalSmi, GifZero::HeldPending),
    (EventSource::InternalSmi, GifZero::Discarded),
    (EventSource::Intr, GifZero::HeldPending),
    (EventSource::Vintr, GifZero::HeldPending),
    (EventSource::MachineCheck, GifZero::HeldPendingIfPossible),
    (EventSource::A20m, GifZero::Normal),
];

/// The effect of `gif` on `source`.
pub fn gif_gate(source: EventSource, gif: bool) -> GifZero {
    if gif {
        return GifZero::Normal;
    }
    GIF_TABLE
        .iter()
        .find(|(s, _)| *s == source)
        .map_or(GifZero::Normal, |(_, e)| *e)
}

/// What happens to a pending event now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Routing {
    /// Stays pending (GIF, IF, an interrupt shadow or NMI blocking masks it).
    HeldPending,
    /// Lost (internal SMI with GIF = 0).
    Discarded,
    /// #VMEXIT. INTR, NMI, INIT and external SMI stay pending for the host;
    /// an internal SMI is consumed (tables 15-12 to 15-14).
    Exit(ExitInfo),
    /// Taken normally: by the host, or in guest mode through the guest IDT
    /// (SMI: SMM entry; INIT: processor INIT).
    Deliver,
    /// INIT redirected to an exception (#SX with error code 1) in the current
    /// context; the INIT is no longer pending (APM Vol. 2 15.21.8).
    Redirect(Exception),
}

/// A physical maskable interrupt (INTR) is pending. `ctl` is `Some` in guest
/// mode; `rflags_if` is the current (guest, in guest mode) RFLAGS.IF.
/// With V_INTR_MASKING the host's IF at VMRUN masks physical interrupts, not
/// the guest's (15.21.1); the interrupt shadow does not hold back the
/// #VMEXIT (as KVM's nested SVM models it).
pub fn intr(ctl: Option<&GuestControls>, gif: bool, rflags_if: bool, shadow: bool) -> Routing {
    if gif_gate(EventSource::Intr, gif) == GifZero::HeldPending {
        return Routing::HeldPending;
    }
    let Some(ctl) = ctl else {
        return if rflags_if && !shadow {
            Routing::Deliver
        } else {
            Routing::HeldPending
        };
    };
    let enabled = if ctl.vintr.v_intr_masking {
        ctl.host_if
    } else {
        rflags_if
    };
    if !enabled {
        Routing::HeldPending
    } else if ctl.intercepts.misc1.contains(Misc1::INTR) {
        Routing::Exit(ExitInfo::new(ExitCode::VMEXIT_INTR))
    } else if shadow {
        Routing::HeldPending
    } else {
        Routing::Deliver
    }
}

/// A physical NMI is pending (table 15-13). `blocked`: NMIs are blocked in the
/// current context (an NMI handler is running, or the interrupt shadow).
pub fn nmi(ctl: Option<&GuestControls>, gif: bool, blocked: bool) -> Routing {
    if gif_gate(EventSource::Nmi, gif) == GifZero::HeldPending {
        return Routing::HeldPending;
    }
    if let Some(ctl) = ctl {
        if ctl.intercepts.misc1.contains(Misc1::NMI) {
            return Routing::Exit(ExitInfo::new(ExitCode::VMEXIT_NMI));
        }
    }
    if blocked {
        Routing::HeldPending
    } else {
        Routing::Deliver
    }
}

/// An SMI is pending (table 15-14). EXITINFO1 bit 0 tells external (1) from
/// internal I/O-trapping (0) SMIs (15.13.3).
pub fn smi(ctl: Option<&GuestControls>, gif: bool, external: bool) -> Routing {
    let source = if external {
        EventSource::ExternalSmi
    } else {
        EventSource::InternalSmi
    };
    match gif_gate(source, gif) {
        GifZero::HeldPending => return Routing::HeldPending,
        GifZero::Discarded => return Routing::Discarded,
        _ => {}
    }
    if let Some(ctl) = ctl {
        if ctl.intercepts.misc1.contains(Misc1::SMI) {
            return Routing::Exit(ExitInfo::with_info(
                ExitCode::VMEXIT_SMI,
                external.into(),
                0,
            ));
        }
    }
    Routing::Deliver
}

/// An INIT is pending (table 15-12): intercepted INIT exits and stays pending;
/// otherwise VM_CR.R_INIT redirects it to #SX (error code 1).
pub fn init(ctl: Option<&GuestControls>, gif: bool, vm_cr: VmCr) -> Routing {
    if gif_gate(EventSource::Init, gif) == GifZero::HeldPending {
        return Routing::HeldPending;
    }
    if let Some(ctl) = ctl {
        if ctl.intercepts.misc1.contains(Misc1::INIT) {
            return Routing::Exit(ExitInfo::new(ExitCode::VMEXIT_INIT));
        }
    }
    if vm_cr.contains(VmCr::R_INIT) {
        Routing::Redirect(Exception::with_code(Vector(30), 1))
    } else {
        Routing::Deliver
    }
}

/// The state of the virtual interrupt (APM Vol. 2 15.21.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VirtualIntr {
    /// No virtual interrupt is pending (V_IRQ = 0, or AVIC owns delivery).
    NotPending,
    /// Pending but not deliverable now (priority, IF, GIF, VGIF or shadow).
    Masked,
    /// The VINTR intercept triggers just before the virtual interrupt would be
    /// taken; V_IRQ stays set (15.13.5).
    Exit(ExitInfo),
    /// Take it: deliver `vector` through the guest IDT after
    /// [`take_virtual_intr`] clears V_IRQ.
    Deliver {
        /// V_INTR_VECTOR.
        vector: u8,
    },
}

/// Is the pending virtual interrupt deliverable now? Taken if V_IRQ is set, its
/// priority V_INTR_PRIO is greater than V_TPR (unless V_IGN_TPR), the guest's
/// RFLAGS.IF is set, GIF (and VGIF when in effect) is set and the guest is not
/// in an interrupt shadow. Physical interrupts are decided first.
pub fn virtual_intr(ctl: &GuestControls, gif: bool, guest_if: bool, shadow: bool) -> VirtualIntr {
    let v = &ctl.vintr;
    if !v.v_irq {
        return VirtualIntr::NotPending;
    }
    let priority_ok = v.v_ign_tpr || (v.v_intr_prio & 0xf) > (v.v_tpr & 0xf);
    if !priority_ok || !guest_if || !gif || !ctl.virtual_gif() || shadow {
        return VirtualIntr::Masked;
    }
    if ctl.intercepts.misc1.contains(Misc1::VINTR) {
        return VirtualIntr::Exit(ExitInfo::new(ExitCode::VMEXIT_VINTR));
    }
    VirtualIntr::Deliver {
        vector: v.v_intr_vector,
    }
}

/// Dispatching the virtual interrupt: V_IRQ is cleared after the intercept
/// check and before the IDT is accessed (15.21.4). Returns the vector.
pub fn take_virtual_intr(ctl: &mut GuestControls) -> u8 {
    ctl.vintr.v_irq = false;
    ctl.vintr.v_intr_vector
}

/// Is a virtual NMI deliverable now (APM Vol. 2 15.21.10)? Requires NMI
/// virtualization, V_NMI set and V_NMI_MASK clear, GIF and VGIF set and no
/// interrupt shadow. Physical NMIs take priority.
pub fn virtual_nmi_deliverable(ctl: &GuestControls, gif: bool, shadow: bool) -> bool {
    ctl.vnmi && ctl.vintr.v_nmi && !ctl.vintr.v_nmi_mask && gif && ctl.virtual_gif() && !shadow
}

/// Taking a virtual NMI: V_NMI := 0 and V_NMI_MASK := 1 before the IDT is
/// accessed.
pub fn take_virtual_nmi(ctl: &mut GuestControls) {
    ctl.vintr.v_nmi = false;
    ctl.vintr.v_nmi_mask = true;
}

/// A guest IRET completed: it unmasks virtual NMIs.
pub fn virtual_nmi_iret(ctl: &mut GuestControls) {
    if ctl.vnmi {
        ctl.vintr.v_nmi_mask = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_table_matches_15_10() {
        use EventSource::*;
        assert_eq!(gif_gate(Intr, false), GifZero::HeldPending);
        assert_eq!(gif_gate(Vintr, false), GifZero::HeldPending);
        assert_eq!(gif_gate(Nmi, false), GifZero::HeldPending);
        assert_eq!(gif_gate(Init, false), GifZero::HeldPending);
        assert_eq!(gif_gate(ExternalSmi, false), GifZero::HeldPending);
        assert_eq!(gif_gate(InternalSmi, false), GifZero::Discarded);
        assert_eq!(gif_gate(DebugBreakpoint, false), GifZero::Discarded);
        assert_eq!(gif_gate(DebugTrace, false), GifZero::Normal);
        assert_eq!(gif_gate(Reset, false), GifZero::Normal);
        for (s, _) in GIF_TABLE {
            assert_eq!(gif_gate(*s, true), GifZero::Normal);
        }
    }

    #[test]
    fn init_table_15_12() {
        assert_eq!(init(None, false, VmCr::R_INIT), Routing::HeldPending);
        assert_eq!(init(None, true, VmCr::empty()), Routing::Deliver);
        assert_eq!(
            init(None, true, VmCr::R_INIT),
            Routing::Redirect(Exception::with_code(Vector(30), 1))
        );
    }

    #[test]
    fn smi_table_15_14() {
        assert_eq!(smi(None, false, false), Routing::Discarded);
        assert_eq!(smi(None, false, true), Routing::HeldPending);
        assert_eq!(smi(None, true, true), Routing::Deliver);
    }
}
