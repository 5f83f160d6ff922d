//! Loading guest state (SDM Vol. 3C 27.3.2, "Loading Guest State") and the special
//! features of VM entry that set up the first instruction boundary (27.7).

use super::guest_nonreg::{guest_pdptes, pae_paging};
use super::inject::injected;
use super::view::{LDTR, SEGS, TR};
use super::{EntryEnv, GuestEntry};
use crate::controls::{EntryControls, PinControls, Proc2Controls, ProcControls};
use crate::event::{ActivityState, Interruptibility};
use crate::exit::host::CR0_KEPT;
use crate::mem::{Access, PhysMemExt};
use crate::vmcs::Field;
use mmu::{Cr0, Cr4, Dr7, Efer, SystemRegs, TableRegister};

/// 27.3.2.1: control registers, debug registers and MSRs; 27.3.2.2: segment and
/// descriptor-table registers. Every field is loaded, including those of
/// unusable registers (which the SDM leaves undefined).
pub(crate) fn registers(env: &EntryEnv<'_>, old: &SystemRegs) -> SystemRegs {
    let v = env.vmcs;
    let c = env.ctls;
    let mut r = old.clone();
    let cr0 = v.get(Field::GuestCr0) & !CR0_KEPT | old.cr0.bits() & CR0_KEPT;
    r.cr0 = Cr0::from_bits_retain(cr0);
    r.cr3 = v.get(Field::GuestCr3);
    r.cr4 = Cr4::from_bits_retain(v.get(Field::GuestCr4));
    if c.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS) {
        r.dr7 = Dr7::from_bits_retain(v.get(Field::GuestDr7) & !0xd000 | 0x400);
        r.debugctl = v.get(Field::GuestDebugctl);
    }
    r.sysenter_cs = v.get(Field::GuestSysenterCs);
    r.sysenter_esp = v.get(Field::GuestSysenterEsp);
    r.sysenter_eip = v.get(Field::GuestSysenterEip);
    if c.entry.contains(EntryControls::LOAD_EFER) {
        r.efer = Efer::from_bits_retain(v.get(Field::GuestEfer));
    } else {
        let ia32e = c.ia32e_guest();
        r.efer.set(Efer::LMA, ia32e);
        // With CR0.PG = 0 and neither "IA-32e mode guest" nor "load IA32_EFER",
        // VM entry leaves LME unmodified (27.3.2.1).
        if ia32e || r.cr0.contains(Cr0::PG) {
            r.efer.set(Efer::LME, ia32e);
        }
    }
    if c.entry.contains(EntryControls::LOAD_PAT) {
        r.pat = v.get(Field::GuestPat);
    }
    for (i, s) in SEGS.iter().enumerate() {
        r.segs[i] = s.read(v);
    }
    r.ldtr = LDTR.read(v);
    r.tr = TR.read(v);
    r.gdtr = TableRegister {
        base: v.get(Field::GuestGdtrBase),
        limit: v.get16(Field::GuestGdtrLimit),
    };
    r.idtr = TableRegister {
        base: v.get(Field::GuestIdtrBase),
        limit: v.get16(Field::GuestIdtrLimit),
    };
    r
}

/// The whole of guest loading: registers, RIP/RSP/RFLAGS (27.3.2.3), PDPTEs
/// (27.3.2.4), non-register state (27.3.2.5, 27.7.1-27.7.4), the event to inject
/// (27.6) and an immediate TPR-below-threshold exit (27.7.7).
pub(crate) fn guest(env: &mut EntryEnv<'_>, old: &SystemRegs) -> GuestEntry {
    let regs = registers(env, old);
    let pdptes = pae_paging(env).then(|| guest_pdptes(env));
    let v = env.vmcs;
    let c = env.ctls;
    let (event, pending_mtf) = injected(v);
    let vectoring = event.is_some();
    let mut activity =
        ActivityState::from_code(v.get32(Field::GuestActivityState)).unwrap_or_default();
    let mut blocking = Interruptibility::from_bits_retain(v.get32(Field::GuestInterruptibility));
    let mut pending_debug_exceptions = v.get(Field::GuestPendingDebugExceptions);
    if vectoring {
        // 27.7.1: no blocking by STI or MOV SS after a vectoring VM entry; the
        // event wakes the processor and supersedes pending debug exceptions.
        blocking.remove(Interruptibility::STI | Interruptibility::MOV_SS);
        activity = ActivityState::Active;
        pending_debug_exceptions = 0;
    }
    let preemption_timer = c
        .pin
        .contains(PinControls::ACTIVATE_PREEMPTION_TIMER)
        .then(|| v.get32(Field::PreemptionTimerValue));
    let vpid = if c.proc2.contains(Proc2Controls::ENABLE_VPID) {
        v.get16(Field::VirtualProcessorId)
    } else {
        0
    };
    let eptp = c
        .proc2
        .contains(Proc2Controls::ENABLE_EPT)
        .then(|| v.get(Field::EptPointer));
    let tpr_below_threshold = tpr_threshold_exit(env);
    GuestEntry {
        regs,
        rip: env.vmcs.get(Field::GuestRip),
        rsp: env.vmcs.get(Field::GuestRsp),
        rflags: env.vmcs.get(Field::GuestRflags),
        activity,
        interruptibility: blocking,
        virtual_nmis: c.pin.contains(PinControls::VIRTUAL_NMIS),
        pending_debug_exceptions,
        pdptes,
        msr_writes: Vec::new(),
        event,
        pending_mtf,
        preemption_timer,
        vpid,
        eptp,
        tpr_below_threshold,
    }
}

/// 27.7.7: with "use TPR shadow" 1 and "virtual-interrupt delivery" 0, a VM exit
/// occurs right after VM entry if TPR threshold bits 3:0 exceed VTPR bits 7:4.
fn tpr_threshold_exit(env: &mut EntryEnv<'_>) -> bool {
    let c = env.ctls;
    if !c.proc.contains(ProcControls::USE_TPR_SHADOW)
        || c.proc2.contains(Proc2Controls::VIRTUAL_INTERRUPT_DELIVERY)
    {
        return false;
    }
    let vtpr = env.mem.read_u8(
        env.vmcs.get(Field::VirtualApicAddress) + 0x80,
        Access::VirtualApic,
    );
    env.vmcs.get32(Field::TprThreshold) & 0xf > (vtpr >> 4) as u32
}
