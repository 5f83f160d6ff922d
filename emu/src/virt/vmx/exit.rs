//! Performing a VM exit (SDM Vol. 3C chapter 28, "VM Exits"): the machine's
//! guest state as a snapshot, `vmx-model`'s [`vm_exit`] (recording the exit
//! information, saving the guest, the MSR-store and MSR-load areas, the host
//! state), then loading the host state into the processor, or the VMX abort.

use super::insn::call;
use super::PendingExit;
use crate::event::Stop;
use crate::machine::Machine;
use crate::virt::GuestMode;
use mmu::SystemRegs;
use mmu::{Cr0, Cr4};
use vmx_model::event::{ActivityState, Interruptibility};
use vmx_model::exit::{vm_exit_in_place, GuestSnapshot, HostFields, VmxAbort};

/// Performs a VM exit from VMX non-root operation.
pub fn perform_exit(m: &mut Machine, e: PendingExit) -> Result<(), Stop> {
    if m.virt.mode != GuestMode::VmxNonRoot {
        return Err(Stop::Shutdown(format!(
            "VM exit {} outside VMX non-root operation",
            e.info.reason
        )));
    }
    // The guest's state, whose registers the exit turns into the host's.
    let mut guest = snapshot(m, e.rip);
    let vpid = m.virt.vmx.guest.vpid_enabled;
    // The trace shows the exit qualification and the guest-physical
    // address (EPT violations), or the guest-linear address.
    let second = e
        .info
        .guest_physical_address
        .or(e.info.guest_linear_address)
        .unwrap_or(0);
    m.count_vmexit_info(e.info.reason.name(), Some((e.info.qualification, second)));
    let (r, _) = call(m, |state, caps, _, bus| {
        vm_exit_in_place(
            state,
            caps,
            &e.info,
            &mut guest,
            &mut bus.mem(),
            &mut bus.msrs(),
        )
    });
    match r {
        Ok(h) => {
            load_host(m, &guest.regs, h, vpid);
            Ok(())
        }
        Err(abort) => Err(abort_stop(m, abort)),
    }
}

/// The guest's state at the exit (SDM Vol. 3C 28.3).
fn snapshot(m: &Machine, rip: Option<u64>) -> GuestSnapshot {
    let g = &m.virt.vmx.guest;
    let ev = &m.cpu.events;
    let mut blocking = Interruptibility::empty();
    blocking.set(Interruptibility::STI, ev.sti_blocking);
    blocking.set(Interruptibility::MOV_SS, ev.movss_blocking);
    let nmi = if g.virtual_nmis {
        g.virtual_nmi_blocked
    } else {
        ev.nmi_blocked
    };
    blocking.set(Interruptibility::NMI, nmi);
    let s = &m.cpu.sys;
    let pae = s.cr0.contains(Cr0::PG) && s.cr4.contains(Cr4::PAE) && !s.long_mode_active();
    GuestSnapshot {
        regs: s.clone(),
        rip: rip.unwrap_or(m.cpu.rip),
        rsp: m.cpu.rsp(),
        rflags: m.cpu.flags.get(),
        activity: if m.dev.lapics[m.dev.current_cpu].sipi_exits {
            ActivityState::WaitForSipi
        } else if ev.halted {
            ActivityState::Hlt
        } else {
            ActivityState::Active
        },
        interruptibility: blocking,
        pending_debug_exceptions: 0,
        preemption_timer: super::events::timer_value(m),
        pdptes: (pae && g.eptp.is_some()).then_some(m.cpu.pdptes),
    }
}

/// Loads the host state of a VM exit or VM-entry failure (SDM Vol. 3C 28.5,
/// 28.6), the registers `regs` with the rest `h`, and returns to root
/// operation.
pub(super) fn load_host(m: &mut Machine, regs: &SystemRegs, h: HostFields, vpid_enabled: bool) {
    leave_level(m);
    let cpu = &mut m.cpu;
    cpu.sys.clone_from(regs);
    cpu.rip = h.rip;
    cpu.gpr[crate::cpu::gpr::RSP] = h.rsp;
    cpu.flags.set(h.rflags);
    if let Some(p) = h.pdptes {
        cpu.pdptes = p;
    }
    cpu.events.sti_blocking = false;
    cpu.events.movss_blocking = false;
    cpu.events.halted = false;
    if h.block_nmi {
        cpu.events.nmi_blocked = true;
    }
    cpu.update_mode();
    m.virt.mode = GuestMode::Host;
    m.virt.vmx.guest.pending = None;
    for (index, value) in h.msr_writes {
        // Checked by the VM-exit MSR-load rules: WRMSR would not fault.
        let _ = m.write_msr(index, value);
    }
    m.mmu.vm_transition(vpid_enabled);
    m.paging_changed();
    m.next_rip = m.cpu.rip;
    m.stop_block = true;
}

/// Ends the guest's level in the counters.
fn leave_level(m: &mut Machine) {
    if m.virt.mode == GuestMode::VmxNonRoot {
        m.switch_level(crate::stats::Level::L1, None);
    }
}

/// A VMX abort (SDM Vol. 3C 28.7): the indicator is in the VMCS region; the
/// processor enters the VMX-abort shutdown state.
pub(super) fn abort_stop(m: &mut Machine, a: VmxAbort) -> Stop {
    leave_level(m);
    m.virt.mode = GuestMode::Host;
    Stop::Shutdown(format!(
        "VMX abort, indicator {} ({a:?}), VMCS {:#x}",
        a.indicator(),
        m.virt.vmx.state.current_ptr()
    ))
}
