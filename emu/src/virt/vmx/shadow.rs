//! Changes to instruction behaviour in VMX operation that are not VM exits
//! (SDM Vol. 3C 24.8, "Restrictions on VMX Operation"; 26.3, "Changes to
//! Instruction Behavior in VMX Non-Root Operation"; 30.1, "Virtual-APIC
//! State"): the CR0/CR4 read shadows and guest/host masks, the VMX-fixed bits
//! of CR0 and CR4, the TSC offset and multiplier, and the TPR shadow for MOV
//! to and from CR8.

use super::{PendingExit, VmxCpu};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::virt::GuestMode;
use mmu::Cr0;
use vmx_model::controls::{Proc2Controls, ProcControls};
use vmx_model::decide::{self, CrKind};
use vmx_model::exit::{ExitInfo, ExitReason};
use vmx_model::vmcs::Field;

fn non_root(m: &Machine) -> bool {
    m.virt.mode == GuestMode::VmxNonRoot
}

fn kind(cr: u8) -> Option<CrKind> {
    match cr {
        0 => Some(CrKind::Cr0),
        4 => Some(CrKind::Cr4),
        _ => None,
    }
}

/// MOV from CR0/CR4 and SMSW: in non-root operation, bits set in the
/// guest/host mask read from the read shadow.
pub fn cr_read(m: &Machine, cr: u8, real: u64) -> u64 {
    match kind(cr) {
        Some(k) if non_root(m) => decide::guest_cr_read(&m.virt.vmx.guest.ctls, k, real),
        _ => real,
    }
}

/// The value MOV to CR0/CR4, CLTS or LMSW actually loads in VMX operation:
/// in non-root operation bits the host owns keep their value; in any VMX
/// operation a value that breaks the VMX-fixed bits is #GP(0) (PE and PG are
/// free for an unrestricted guest).
pub fn cr_write(m: &Machine, cr: u8, value: u64) -> Result<u64, Event> {
    let Some(k) = kind(cr) else {
        return Ok(value);
    };
    if !m.virt.vmx.state.in_vmx_operation() {
        return Ok(value);
    }
    let g = &m.virt.vmx.guest;
    let old = match k {
        CrKind::Cr0 => m.cpu.sys.cr0.bits(),
        CrKind::Cr4 => m.cpu.sys.cr4.bits(),
    };
    let v = if non_root(m) {
        decide::guest_cr_write(&g.ctls, k, old, value)
    } else {
        value
    };
    if !fixed_bits_ok(&m.virt.vmx, non_root(m), k, v) {
        return Err(Event::gp0());
    }
    Ok(v)
}

fn fixed_bits_ok(vmx: &VmxCpu, non_root: bool, k: CrKind, v: u64) -> bool {
    let f = &vmx.caps.features;
    let (fixed0, fixed1) = match k {
        CrKind::Cr0 => {
            let mut f0 = f.cr0_fixed0();
            let unrestricted = vmx
                .guest
                .ctls
                .proc2
                .contains(Proc2Controls::UNRESTRICTED_GUEST);
            if non_root && unrestricted {
                f0 &= !(Cr0::PE | Cr0::PG).bits();
            }
            // CR0 bits above 31 are reserved and checked by MOV itself.
            (f0, f.cr0_fixed1 | !0xffff_ffff)
        }
        CrKind::Cr4 => (f.cr4_fixed0(), f.cr4_fixed1),
    };
    v & fixed0 == fixed0 && v & !fixed1 == 0
}

/// True if MOV to/from CR8 uses the TPR shadow: non-root operation with "use
/// TPR shadow" (the CR8-load/store exits were decided before).
fn tpr_shadow(m: &Machine) -> bool {
    non_root(m)
        && m.virt
            .vmx
            .guest
            .ctls
            .proc
            .contains(ProcControls::USE_TPR_SHADOW)
}

/// The VTPR byte (offset 80H of the virtual-APIC page).
fn vtpr_address(m: &Machine) -> Option<u64> {
    let v = m.virt.vmx.state.vmcs()?;
    Some(v.get(Field::VirtualApicAddress) + 0x80)
}

/// MOV from CR8 with the TPR shadow: VTPR bits 7:4 (SDM Vol. 3C 30.3, "Virtualizing
/// CR8-Based TPR Accesses"). `None` without it.
pub fn cr8_read(m: &mut Machine) -> Option<u64> {
    if !tpr_shadow(m) {
        return None;
    }
    let pa = vtpr_address(m)?;
    let mut b = [0u8];
    m.peek_phys(pa, &mut b);
    Some((b[0] >> 4) as u64)
}

/// MOV to CR8 with the TPR shadow: VTPR gets the value in bits 7:4 (bits 3:0
/// and bytes 81H-83H cleared), then a trap-like "TPR below threshold" exit if
/// the TPR threshold exceeds it. `None` without the TPR shadow.
pub fn cr8_write(m: &mut Machine, v: u64) -> Option<Flow> {
    if !tpr_shadow(m) {
        return None;
    }
    if v & !0xf != 0 {
        return Some(Err(Event::gp0()));
    }
    let pa = vtpr_address(m)?;
    let vtpr = decide::vtpr_from_cr8(v);
    let word = (vtpr as u32).to_le_bytes();
    if m.ram.offset(pa, 4).is_some() {
        m.load_phys(pa, &word);
    }
    if decide::tpr_below_threshold(&m.virt.vmx.guest.ctls, vtpr) {
        let info = ExitInfo::new(ExitReason::TprBelowThreshold, 0);
        m.virt.vmx.guest.pending = Some(PendingExit { info, rip: None });
    }
    m.stop_block = true;
    Some(Ok(()))
}

/// The time-stamp counter as RDTSC, RDTSCP and RDMSR see it: in non-root
/// operation with "use TSC offsetting", scaled and offset (SDM Vol. 3C 26.3,
/// "RDTSC"; 25.6.5).
pub fn guest_tsc(m: &Machine, tsc: u64) -> u64 {
    if non_root(m) {
        decide::guest_tsc(&m.virt.vmx.guest.ctls, tsc)
    } else {
        tsc
    }
}
