//! VMLAUNCH and VMRESUME (SDM Vol. 3C 31.3; chapter 27, "VM Entries"): the
//! model runs every check and computes the guest state; this file commits it
//! to the processor (registers, interruptibility and activity, translation
//! context and TLB rules), delivers the injected event through the guest's
//! IDT, and handles the failures: VMfail with the diagnostic, or a VM-entry
//! failure exit (33/34) that loads the host state.

use super::insn::{call, launch_exit};
use super::{diag, exit, PendingExit, PreemptionTimer};
use crate::event::{Event, Flow, SoftIntKind, Stop};
use crate::interrupt::{Delivery, Source};
use crate::machine::{ip_mask, Machine};
use crate::virt::GuestMode;
use iced_x86::Instruction;
use vmx_model::controls::{Proc2Controls, ProcControls};
use vmx_model::decide::{Controls, PauseLoop};
use vmx_model::entry::{EntryFailure, GuestEntry, InjectedEvent};
use vmx_model::event::{ActivityState, Interruptibility, InterruptionType};
use vmx_model::exit::{ExitInfo, ExitReason};
use vmx_model::insn::{self, LaunchOutcome};

/// VMLAUNCH.
pub fn vmlaunch(m: &mut Machine, i: &Instruction) -> Flow {
    launch(m, i, true)
}

/// VMRESUME.
pub fn vmresume(m: &mut Machine, i: &Instruction) -> Flow {
    launch(m, i, false)
}

fn launch(m: &mut Machine, i: &Instruction, first: bool) -> Flow {
    let regs = m.cpu.sys.clone();
    let (out, _) = call(m, |state, caps, ctx, bus| {
        let (mut mem, mut msrs) = (bus.mem(), bus.msrs());
        if first {
            insn::vmlaunch(state, caps, ctx, &regs, &mut mem, &mut msrs)
        } else {
            insn::vmresume(state, caps, ctx, &regs, &mut mem, &mut msrs)
        }
    });
    let rflags = out.fail_rflags(m.cpu.flags.get());
    match out {
        LaunchOutcome::Fault(e) => Err(Event::Exception(e)),
        LaunchOutcome::Exit(reason) => Err(launch_exit(m, i, reason)),
        LaunchOutcome::FailInvalid => {
            m.cpu.flags.set(rflags);
            Ok(())
        }
        LaunchOutcome::FailValid(_, check) => {
            if let Some(check) = check {
                diag::report(m, check, 0);
            }
            m.cpu.flags.set(rflags);
            Ok(())
        }
        LaunchOutcome::Entered(g) => enter(m, &g).map_err(Event::stop),
        LaunchOutcome::EntryFailed(f) => entry_failed(m, *f).map_err(Event::stop),
    }
}

/// A VM entry that failed after the guest-state checks (SDM Vol. 3C 27.8): the
/// model recorded exit 33 or 34 in the VMCS; report it and load the host.
fn entry_failed(m: &mut Machine, f: EntryFailure) -> Result<(), Stop> {
    diag::report(m, f.check, f.qualification);
    m.count_vmexit_info(f.reason.name(), Some((f.qualification, 0)));
    match f.host {
        Ok(h) => {
            let vpid = vpid_enabled(m);
            exit::load_host(m, &h.regs, h.fields, vpid);
            Ok(())
        }
        Err(abort) => Err(exit::abort_stop(m, abort)),
    }
}

fn vpid_enabled(m: &Machine) -> bool {
    m.virt.vmx.state.vmcs().is_some_and(|v| {
        Controls::from_vmcs(v)
            .proc2
            .contains(Proc2Controls::ENABLE_VPID)
    })
}

/// Commits a successful VM entry (SDM Vol. 3C 27.3.2-27.7).
fn enter(m: &mut Machine, g: &GuestEntry) -> Result<(), Stop> {
    let vmcs_ptr = m.virt.vmx.state.current_ptr();
    let ctls = m
        .virt
        .vmx
        .state
        .vmcs()
        .map(Controls::from_vmcs)
        .unwrap_or_default();
    // The entry's cost and the VMLAUNCH/VMRESUME instruction itself count for
    // the root (as VMRUN does for SVM); from here on the work is the guest's,
    // beginning with delivering the injected event.
    m.charge_vm_entry();
    let insn_cost = m.config.cost.insn(crate::cost::InsnClass::System);
    m.switch_level(
        crate::stats::Level::L2 { control: vmcs_ptr },
        Some(insn_cost),
    );
    load_guest(m, g);
    m.virt.mode = GuestMode::VmxNonRoot;
    m.virt.vmx.guest = super::NonRoot {
        ctls,
        vpid: g.vpid,
        vpid_enabled: ctls.proc2.contains(Proc2Controls::ENABLE_VPID),
        eptp: g.eptp,
        virtual_nmis: g.virtual_nmis,
        virtual_nmi_blocked: g.virtual_nmis && g.interruptibility.contains(Interruptibility::NMI),
        timer: g.preemption_timer.map(|v| PreemptionTimer {
            start_value: v,
            start_cycles: m.stats.cycles,
        }),
        pause_loop: PauseLoop::default(),
        pending: None,
        ran: false,
        injecting: false,
        vmcs: vmcs_ptr,
    };
    for &(index, value) in &g.msr_writes {
        // Checked by the VM-entry MSR-load rules: WRMSR would not fault.
        let _ = m.write_msr(index, value);
    }
    m.mmu
        .vm_transition(ctls.proc2.contains(Proc2Controls::ENABLE_VPID));
    m.paging_changed();
    m.stop_block = true;
    m.next_rip = m.cpu.rip;
    let pending = if g.tpr_below_threshold {
        Some(ExitReason::TprBelowThreshold)
    } else if g.pending_mtf {
        Some(ExitReason::MonitorTrapFlag)
    } else {
        None
    };
    m.virt.vmx.guest.pending = pending.map(|r| PendingExit::new(ExitInfo::new(r, 0)));
    if g.activity == ActivityState::WaitForSipi {
        // The processor waits for a SIPI; the exits VM entry may leave
        // pending "do not occur if the logical processor just entered ...
        // the wait-for-SIPI state" (SDM Vol. 3C 27.7.7, 27.7.8), and no
        // event is injected (27.3.1.5 checks it).
        m.virt.vmx.guest.pending = None;
        let a = &mut m.dev.lapics[m.dev.current_cpu];
        a.wait_for_sipi = true;
        a.sipi_exits = true;
        a.sipi = None;
        m.smp.switch_at = 0;
    }
    if let Some(ev) = g.event {
        inject(m, g, ev)?;
        if m.virt.mode == GuestMode::VmxNonRoot
            && ctls.proc.contains(ProcControls::MONITOR_TRAP_FLAG)
        {
            // An MTF VM exit is pending after the injected event is delivered
            // (SDM Vol. 3C 26.5.2, "Monitor Trap Flag").
            let info = ExitInfo::new(ExitReason::MonitorTrapFlag, 0);
            m.virt
                .vmx
                .guest
                .pending
                .get_or_insert(PendingExit::new(info));
        }
        m.next_rip = m.cpu.rip;
    }
    Ok(())
}

/// Loads the guest's registers, blocking and activity (27.3.2, 27.7.1).
fn load_guest(m: &mut Machine, g: &GuestEntry) {
    let cpu = &mut m.cpu;
    cpu.sys.clone_from(&g.regs);
    cpu.rip = g.rip;
    cpu.gpr[crate::cpu::gpr::RSP] = g.rsp;
    cpu.flags.set(g.rflags);
    if let Some(p) = g.pdptes {
        cpu.pdptes = p;
    }
    let b = g.interruptibility;
    cpu.events.sti_blocking = b.contains(Interruptibility::STI);
    cpu.events.movss_blocking = b.contains(Interruptibility::MOV_SS);
    if !g.virtual_nmis {
        cpu.events.nmi_blocked = b.contains(Interruptibility::NMI);
    }
    cpu.events.halted = matches!(g.activity, ActivityState::Hlt | ActivityState::WaitForSipi);
    cpu.update_mode();
}

/// Delivers the event VM entry injects (SDM Vol. 3C 27.6.1) "as if it
/// occurred immediately after VM entry", through the normal delivery path:
/// the guest's IDT or IVT, its stack, the double-fault rules; a software
/// interrupt or exception returns past the VM-entry instruction length.
fn inject(m: &mut Machine, g: &GuestEntry, ev: InjectedEvent) -> Result<(), Stop> {
    let (source, len) = match ev.kind {
        InterruptionType::ExternalInterrupt => (Source::External, 0),
        InterruptionType::Nmi => (Source::Nmi, 0),
        InterruptionType::SoftwareInterrupt => {
            (Source::Software(SoftIntKind::IntN), ev.instruction_len)
        }
        InterruptionType::PrivilegedSoftwareException => {
            (Source::Software(SoftIntKind::Int1), ev.instruction_len)
        }
        InterruptionType::SoftwareException => {
            let kind = if ev.vector == 4 {
                SoftIntKind::Into
            } else {
                SoftIntKind::Int3
            };
            (Source::Software(kind), ev.instruction_len)
        }
        _ => (Source::Exception, 0),
    };
    if ev.kind == InterruptionType::Nmi {
        if g.virtual_nmis {
            m.virt.vmx.guest.virtual_nmi_blocked = true;
        } else {
            m.cpu.events.nmi_blocked = true;
        }
    }
    let mask = ip_mask(m.cpu.mode.code_bits);
    if m.trace.wants(crate::trace::Kind::Inject) {
        m.trace_inject(&format!("{:?}", ev.kind), ev.vector, ev.error_code);
    }
    m.trap_rip = g.rip;
    m.virt.vmx.guest.injecting = true;
    let r = m.deliver(Delivery {
        vector: ev.vector,
        error_code: ev.error_code,
        source,
        return_rip: g.rip.wrapping_add(len as u64) & mask,
        payload: None,
        push_rf: false,
    });
    m.virt.vmx.guest.injecting = false;
    r
}
