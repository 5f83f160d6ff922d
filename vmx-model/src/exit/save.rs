//! Saving guest state and guest MSRs (SDM Vol. 3C 28.3, "Saving Guest State";
//! 28.4, "Saving MSRs").

use super::{GuestSnapshot, VmxAbort};
use crate::caps::VmxCaps;
use crate::controls::{ExitControls, PinControls};
use crate::entry::view::{SegFields, LDTR, SEGS, TR};
use crate::mem::{Access, MsrOracle, PhysMem, PhysMemExt};
use crate::msr_area::{check_store, read_entry};
use crate::vmcs::{Field, Vmcs};
use mmu::{SegmentCache, SystemRegs};

/// Access-rights bits a VM exit saves: 7:0, 15:12 and the unusable bit 16; bits
/// 11:8 and 31:17 are saved as 0 (SDM Vol. 3C 28.3.2, "Saving Segment Registers
/// and Descriptor-Table Registers").
const AR_SAVED: u32 = 0x1_f0ff;

/// 28.3: the guest-state area from the snapshot.
pub(crate) fn save_guest_state(v: &mut Vmcs, g: &GuestSnapshot) {
    let r = &g.regs;
    let exit = ExitControls::from_bits_retain(v.get32(Field::ExitControls));
    v.set(Field::GuestCr0, r.cr0.bits());
    v.set(Field::GuestCr3, r.cr3);
    v.set(Field::GuestCr4, r.cr4.bits());
    if exit.contains(ExitControls::SAVE_DEBUG_CONTROLS) {
        v.set(Field::GuestDr7, r.dr7.bits());
        v.set(Field::GuestDebugctl, r.debugctl);
    }
    v.set(Field::GuestSysenterCs, r.sysenter_cs);
    v.set(Field::GuestSysenterEsp, r.sysenter_esp);
    v.set(Field::GuestSysenterEip, r.sysenter_eip);
    if exit.contains(ExitControls::SAVE_PAT) {
        v.set(Field::GuestPat, r.pat);
    }
    if exit.contains(ExitControls::SAVE_EFER) {
        v.set(Field::GuestEfer, r.efer.bits());
    }
    save_segments(v, r);
    v.set(Field::GuestRip, g.rip);
    v.set(Field::GuestRsp, g.rsp);
    v.set(Field::GuestRflags, g.rflags);
    v.set(Field::GuestActivityState, g.activity.code() as u64);
    v.set(
        Field::GuestInterruptibility,
        g.interruptibility.bits() as u64,
    );
    v.set(
        Field::GuestPendingDebugExceptions,
        g.pending_debug_exceptions,
    );
    let pin = PinControls::from_bits_retain(v.get32(Field::PinBasedControls));
    if exit.contains(ExitControls::SAVE_PREEMPTION_TIMER)
        && pin.contains(PinControls::ACTIVATE_PREEMPTION_TIMER)
    {
        if let Some(t) = g.preemption_timer {
            v.set(Field::PreemptionTimerValue, t as u64);
        }
    }
    if let Some(p) = g.pdptes {
        let fields = [
            Field::GuestPdpte0,
            Field::GuestPdpte1,
            Field::GuestPdpte2,
            Field::GuestPdpte3,
        ];
        for (f, x) in fields.into_iter().zip(p) {
            v.set(f, x);
        }
    }
}

fn save_segments(v: &mut Vmcs, r: &SystemRegs) {
    let save = |v: &mut Vmcs, f: &SegFields, s: &SegmentCache| {
        v.set(f.selector, s.selector.0 as u64);
        v.set(f.base, s.base);
        v.set(f.limit, s.limit as u64);
        v.set(f.ar, (s.attr.0 & AR_SAVED) as u64);
    };
    for (f, s) in SEGS.iter().zip(&r.segs) {
        save(v, f, s);
    }
    save(v, &LDTR, &r.ldtr);
    save(v, &TR, &r.tr);
    v.set(Field::GuestGdtrBase, r.gdtr.base);
    v.set(Field::GuestGdtrLimit, r.gdtr.limit as u64);
    v.set(Field::GuestIdtrBase, r.idtr.base);
    v.set(Field::GuestIdtrLimit, r.idtr.limit as u64);
}

/// 28.4: each entry of the VM-exit MSR-store area gets the guest value of its
/// MSR; any refused entry is a VMX abort (indicator 1).
pub(crate) fn store_msrs(
    v: &Vmcs,
    caps: &VmxCaps,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    oracle: &mut dyn MsrOracle,
) -> Result<(), VmxAbort> {
    let base = v.get(Field::ExitMsrStoreAddress);
    let count = v.get32(Field::ExitMsrStoreCount);
    for i in 0..count {
        if i >= caps.max_msr_list() {
            return Err(VmxAbort::SavingGuestMsrs);
        }
        let e = read_entry(mem, base, i);
        let value = check_store(&e, regs, oracle).ok_or(VmxAbort::SavingGuestMsrs)?;
        mem.write_u64(base + 16 * i as u64 + 8, value, Access::MsrArea);
    }
    Ok(())
}
