//! Events in guest mode: exception intercepts and EXITINTINFO (APM Vol. 2
//! 15.12, 15.7.2), nested page faults (15.25.6), and what is taken at an
//! instruction boundary (15.17 GIF, 15.21 V_INTR, 15.21.10 virtual NMI, the
//! physical NMI of table 15-13, and the trap-like write intercepts of 15.9).

use super::{exit_event, exit_event_at, Delivering, PendingExit, PendingTrap};
use crate::event::{Event, Flow, SoftIntKind, Stop};
use crate::interrupt::{Delivery, Source};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use mmu::{PfErrorCode, SegReg, TranslateFault};
use svm_model::intercept::{self as icpt};
use svm_model::interrupts::{self, Routing, VirtualIntr};
use svm_model::vmcb::{EventInj, EventType};
use svm_model::{ExitInfo, InsnBytes};

/// EXITINTINFO's view of an event being delivered.
pub(crate) fn event_inj(d: &Delivery) -> EventInj {
    let typ = match d.source {
        Source::Software(SoftIntKind::IntN) => EventType::SoftwareInt,
        Source::Exception | Source::Software(_) => EventType::Exception,
        Source::External => EventType::Intr,
        Source::Nmi => EventType::Nmi,
    };
    EventInj::new(typ, d.vector, d.error_code)
}

/// Decides whether an event about to be delivered through the guest IDT
/// exits: the exception intercepts (for processor exceptions and for #BP and
/// #OF raised by INT3 and INTO; never for INTn, ICEBP, interrupts or NMI).
/// `vectoring` is the event whose delivery raised this one (EXITINTINFO).
pub fn event_intercept(m: &mut Machine, d: &Delivery, vectoring: Option<&Delivery>) -> Flow {
    let rip = match d.source {
        Source::Software(_) => Some(m.trap_rip),
        _ => None,
    };
    let svm = &mut m.virt.svm;
    let Some(g) = svm.guest.as_mut() else {
        return Ok(());
    };
    // An event is delivered instead of completing an IRET.
    g.iret = false;
    svm.delivering = Some(Delivering {
        event: event_inj(d),
        rip,
    });
    if std::mem::take(&mut svm.injecting) && vectoring.is_none() {
        // The event VMRUN injects is not checked against the intercepts.
        return Ok(());
    }
    let (trap_next, checked) = match d.source {
        Source::Exception => ((d.vector == 5).then_some(m.next_rip), true),
        Source::Software(SoftIntKind::Int3 | SoftIntKind::Into) => (Some(d.return_rip), true),
        _ => (None, false),
    };
    if !checked {
        return Ok(());
    }
    // A #DB updates DR6 before its intercept is checked: the host finds the
    // conditions in the VMCB's DR6 (APM Vol. 2 15.12); EXITINFO2 carries only
    // a #PF's address.
    if let (1, Some(dr6)) = (d.vector, d.payload) {
        m.cpu.sys.dr6 = (m.cpu.sys.dr6 & !mmu::dr6::B_MASK) | dr6;
    }
    let info2 = if d.vector == 14 {
        d.payload.unwrap_or(0)
    } else {
        0
    };
    let bytes = if d.vector == 14 && !pf_is_fetch(d) {
        insn_bytes(m)
    } else {
        None
    };
    let svm = &m.virt.svm;
    let Some(ctl) = svm.controls() else {
        return Ok(());
    };
    let Some(mut e) = icpt::exception(
        &svm.cfg,
        ctl,
        d.vector,
        d.error_code,
        info2,
        trap_next,
        bytes,
    ) else {
        return Ok(());
    };
    if let Some(v) = vectoring {
        e = e.during_delivery(event_inj(v));
    }
    // This event is not being delivered after all; the one it interrupted
    // (if any) is recorded in EXITINTINFO above.
    m.virt.svm.delivering = None;
    // #BP and #OF from INT3 and INTO are intercepted on their instruction.
    Err(exit_event_at(m, e, rip))
}

/// True for a #PF on an instruction fetch.
fn pf_is_fetch(d: &Delivery) -> bool {
    d.error_code
        .is_some_and(|c| PfErrorCode::from_bits_retain(c).contains(PfErrorCode::ID))
}

/// The guest instruction bytes at CS:RIP for decode assists (APM Vol. 2
/// 15.8.4): up to 15, fewer if fetching faults.
pub(crate) fn insn_bytes(m: &mut Machine) -> Option<InsnBytes> {
    if !m.virt.svm.cfg.features.decode_assists || m.virt.svm.fetching_bytes {
        return None;
    }
    m.virt.svm.fetching_bytes = true;
    let cs = m.cpu.seg(SegReg::Cs).base;
    let base = if m.cpu.long64() {
        m.cpu.rip
    } else {
        cs.wrapping_add(m.cpu.rip)
    };
    let mut b = [0u8; 15];
    let mut n = 0;
    while n < 15 {
        let la = m.wrap_linear(base.wrapping_add(n as u64));
        match m.translate(la, AccessKind::Execute, Privilege::Current) {
            Ok(pa) => b[n] = m.phys_read(pa, 1) as u8,
            Err(_) => break,
        }
        n += 1;
    }
    m.virt.svm.fetching_bytes = false;
    Some(InsnBytes::new(&b[..n]))
}

/// The #VMEXIT for a nested page fault (APM Vol. 2 15.25.6): EXITINFO1 the
/// fault code with the walk stage, EXITINFO2 the guest-physical address, and
/// the instruction bytes for data accesses.
pub fn nested_fault(m: &mut Machine, f: TranslateFault) -> Event {
    let TranslateFault::NestedPageFault(n) = f else {
        return Event::stop(Stop::Shutdown(format!(
            "nested-paging fault {f:?} in SVM guest mode"
        )));
    };
    let fetch = n.exit_info1.contains(mmu::paging::NpfExitInfo1::ID);
    let bytes = if fetch { None } else { insn_bytes(m) };
    let info = icpt::npf(&m.virt.svm.cfg, n.exit_info1.bits(), n.exit_info2, bytes);
    exit_event(m, info)
}

/// Work at an instruction boundary in guest mode, before the halt check: a
/// completed write trap exits; a physical NMI is routed; a virtual NMI or a
/// virtual interrupt is taken (or exits with VINTR) when GIF, VGIF, IF, the
/// priority and the interrupt shadow allow.
pub fn boundary(m: &mut Machine) -> Result<(), Stop> {
    let svm = &mut m.virt.svm;
    svm.delivering = None;
    let gif = svm.gif;
    let Some(g) = svm.guest.as_mut() else {
        return Ok(());
    };
    if std::mem::take(&mut g.iret) {
        interrupts::virtual_nmi_iret(&mut g.controls);
    }
    if let Some(t) = g.trap.take() {
        if m.cpu.rip == t.next_rip {
            return trap_exit(m, t);
        }
    }
    let ev = m.cpu.events;
    let shadow = ev.sti_blocking || ev.movss_blocking;
    let guest_if = m.cpu.flags.iflag();
    if ev.nmi_pending {
        let blocked = ev.nmi_blocked || shadow;
        let ctl = m.virt.svm.controls();
        match interrupts::nmi(ctl, gif, blocked) {
            Routing::Exit(e) => return exit_now(m, e),
            Routing::Deliver => {
                m.cpu.events.nmi_pending = false;
                m.cpu.events.nmi_blocked = true;
                return take(m, 2, Source::Nmi);
            }
            _ => {}
        }
    }
    let Some(g) = m.virt.svm.guest.as_mut() else {
        return Ok(());
    };
    let ctl = &mut g.controls;
    if interrupts::virtual_nmi_deliverable(ctl, gif, shadow) {
        interrupts::take_virtual_nmi(ctl);
        return take(m, 2, Source::Nmi);
    }
    match interrupts::virtual_intr(ctl, gif, guest_if, shadow) {
        VirtualIntr::Exit(e) => exit_now(m, e),
        VirtualIntr::Deliver { .. } => {
            let vector = interrupts::take_virtual_intr(ctl);
            take(m, vector, Source::External)
        }
        VirtualIntr::NotPending | VirtualIntr::Masked => Ok(()),
    }
}

/// True if [`boundary`] would do nothing at this boundary and change
/// nothing, with no interrupt shadow: no event being delivered, no guest
/// IRET to note, no pending intercept trap, no pending NMI, no virtual NMI
/// or virtual interrupt pending (APM Vol. 2 15.21.4, 15.21.5). The run
/// loop's quick path takes guest-mode boundaries only then.
#[inline]
pub fn boundary_quiet(m: &Machine) -> bool {
    let svm = &m.virt.svm;
    let Some(g) = svm.guest.as_ref() else {
        return svm.delivering.is_none();
    };
    let virtual_nmi = g.controls.vnmi && g.controls.vintr.v_nmi;
    !(svm.delivering.is_some()
        || g.iret
        || g.trap.is_some()
        || m.cpu.events.nmi_pending
        || virtual_nmi
        || g.controls.vintr.v_irq)
}

/// Delivers an interrupt-like event through the guest IDT; it wakes a
/// halted guest.
fn take(m: &mut Machine, vector: u8, source: Source) -> Result<(), Stop> {
    m.cpu.events.halted = false;
    let d = Delivery {
        vector,
        error_code: None,
        source,
        return_rip: m.cpu.rip,
        payload: None,
        push_rf: false,
    };
    m.deliver(d)
}

/// A #VMEXIT at the boundary.
fn exit_now(m: &mut Machine, info: ExitInfo) -> Result<(), Stop> {
    super::perform_exit(m, PendingExit { info, rip: None })
}

/// The trap-like #VMEXIT of a completed CR or EFER write: EXITINFO1 holds the
/// new value; the guest RIP and nRIP are the next instruction.
fn trap_exit(m: &mut Machine, t: PendingTrap) -> Result<(), Stop> {
    let Some(ctl) = m.virt.svm.controls() else {
        return Ok(());
    };
    let e = match t.cr {
        Some(cr) => {
            let v = match cr {
                0 => m.cpu.sys.cr0.bits(),
                2 => m.cpu.sys.cr2,
                3 => m.cpu.sys.cr3,
                4 => m.cpu.sys.cr4.bits(),
                8 => m.dev.lapic().cr8(),
                _ => 0,
            };
            icpt::cr_write_trap(ctl, cr, v, t.next_rip)
        }
        None => icpt::efer_write_trap(ctl, m.cpu.sys.efer.bits(), t.next_rip),
    };
    match e {
        Some(info) => exit_now(m, info),
        None => Ok(()),
    }
}

/// A shutdown in guest mode (a triple fault): #VMEXIT(SHUTDOWN) if
/// intercepted (APM Vol. 2 15.14.2; the guest state saved is undefined by the
/// APM, here it is the state at the fault), else the machine shuts down.
pub fn shutdown(m: &mut Machine, why: String) -> Result<(), Stop> {
    let e = m
        .virt
        .svm
        .controls()
        .and_then(|c| icpt::simple(c, icpt::Intercept::Shutdown, 0));
    match e {
        Some(info) => exit_now(m, info),
        None => Err(Stop::Shutdown(why)),
    }
}
