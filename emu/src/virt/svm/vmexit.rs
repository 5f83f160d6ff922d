//! #VMEXIT (APM Vol. 2 15.6): `svm_model::vmexit` writes the guest state and
//! the exit information (EXITCODE, EXITINFO1/2, EXITINTINFO, NRIP, the
//! decode-assist bytes) to the VMCB and returns the host state from the host
//! save area; this file leaves guest mode and loads it. GIF is 0 afterwards.

use super::state;
use super::PendingExit;
use crate::event::Stop;
use crate::machine::Machine;
use crate::stats::Level;
use crate::virt::GuestMode;
use svm_model::{vmexit_in_place, HostReload};

/// Performs a #VMEXIT from the running guest.
pub fn perform_exit(m: &mut Machine, e: PendingExit) -> Result<(), Stop> {
    let mut info = e.info;
    let delivering = m.virt.svm.delivering.take();
    let Some(g) = m.virt.svm.guest.take() else {
        return Err(Stop::Shutdown(format!(
            "#VMEXIT {:?} outside SVM guest mode",
            info.code
        )));
    };
    let mut rip = e.rip.unwrap_or(m.cpu.rip);
    if let Some(d) = delivering {
        // The exit interrupted the delivery of an event: EXITINTINFO holds it
        // (APM Vol. 2 15.7.2), and a software interrupt is saved on its
        // instruction.
        info.exit_int_info.get_or_insert(d.event);
        if let (Some(r), None) = (d.rip, e.rip) {
            rip = r;
        }
    }
    // The guest state, which #VMEXIT turns into the host's in place.
    state::fill_world(m, rip);
    let ev = m.cpu.events;
    let shadow = ev.sti_blocking || ev.movss_blocking;
    m.count_vmexit_info(
        info.code.name().unwrap_or("VMEXIT_UNKNOWN"),
        Some((info.info1, info.info2)),
    );
    let host = {
        let (mut mem, cfg, cache, cpu) = state::split_world(m);
        vmexit_in_place(cfg, &g.controls, cpu, shadow, &info, &mut mem, cache)
    };
    m.switch_level(Level::L1, None);
    let single_step = host.single_step;
    load_host(m, host, Some(g.host_cr8))?;
    if single_step {
        // The host single-stepped VMRUN: its #DB trap follows the #VMEXIT
        // that completes it (APM Vol. 2 15.5.1, "VMRUN and TF/RF Bits").
        m.trap_rip = m.cpu.rip;
        return m.deliver_event(crate::event::Event::DebugTrap { dr6: mmu::dr6::BS });
    }
    Ok(())
}

/// Loads the host state of a #VMEXIT or a failed VMRUN, the world-switch
/// state with the rest of the reload `h` (`host_cr8`: the host TPR to
/// restore when leaving a guest). Leaves guest mode with GIF = 0.
pub(crate) fn load_host(m: &mut Machine, h: HostReload, host_cr8: Option<u64>) -> Result<(), Stop> {
    m.virt.mode = GuestMode::Host;
    m.virt.svm.guest = None;
    m.virt.svm.gif = false;
    m.virt.svm.delivering = None;
    if let Some(cr8) = host_cr8 {
        m.dev.write_cr8(cr8);
    }
    if let Some(c) = h.shutdown {
        return Err(Stop::Shutdown(format!(
            "#VMEXIT loaded an illegal host state from the host save area: {} ({})",
            c.name(),
            c.description()
        )));
    }
    if let Some(p) = h.pdptes {
        m.cpu.pdptes = p;
    }
    state::load_world(m);
    let ev = &mut m.cpu.events;
    ev.sti_blocking = false;
    ev.movss_blocking = false;
    ev.halted = false;
    Ok(())
}
