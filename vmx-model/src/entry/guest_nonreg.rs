//! Checks on guest non-register state and PDPTEs (SDM Vol. 3C 27.3.1.5, "Checks
//! on Guest Non-Register State"; 27.3.1.6, "Checks on Guest Page-Directory-Pointer-
//! Table Entries").

use super::inject::entry_info;
use super::view::{ensure, phys_ok, SS};
use super::{CheckResult, EntryEnv};
use crate::controls::{PinControls, Proc2Controls};
use crate::event::{ActivityState, Interruptibility, InterruptionInfo, InterruptionType};
use crate::mem::{Access, PhysMemExt};
use crate::vmcs::{Field, Region, INVALID_POINTER};
use mmu::{dr6, Cr0, Cr4, Rflags};

/// Activity state, interruptibility state, pending debug exceptions, VMCS link pointer.
pub(crate) fn non_register(env: &mut EntryEnv<'_>) -> CheckResult {
    activity(env)?;
    interruptibility(env)?;
    pending_debug(env)?;
    link_pointer(env)
}

fn activity(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let m = &env.caps.features.misc;
    let state = ActivityState::from_code(v.get32(Field::GuestActivityState));
    let supported = match state {
        Some(ActivityState::Active) => true,
        Some(ActivityState::Hlt) => m.activity_hlt,
        Some(ActivityState::Shutdown) => m.activity_shutdown,
        Some(ActivityState::WaitForSipi) => m.activity_wait_for_sipi,
        None => false,
    };
    ensure!(supported, GuestActivityStateUnsupported);
    let state = state.unwrap_or_default();
    if state == ActivityState::Hlt {
        ensure!(SS.read(v).attr.dpl() == 0, GuestActivityHltWithSsDpl);
    }
    let blocking = Interruptibility::from_bits_retain(v.get32(Field::GuestInterruptibility));
    if blocking.intersects(Interruptibility::STI | Interruptibility::MOV_SS) {
        ensure!(
            state == ActivityState::Active,
            GuestActivityNotActiveWithBlocking
        );
    }
    let info = entry_info(v);
    if info.valid() {
        ensure!(injectable_in(state, info), GuestActivityBlocksInjectedEvent);
    }
    Ok(())
}

/// The events VM entry may inject into each activity state (27.3.1.5).
fn injectable_in(state: ActivityState, info: InterruptionInfo) -> bool {
    use InterruptionType as T;
    match state {
        ActivityState::Active => true,
        ActivityState::Hlt => match info.kind() {
            T::ExternalInterrupt | T::Nmi => true,
            T::HardwareException => matches!(info.vector(), 1 | 18),
            T::OtherEvent => info.vector() == 0,
            _ => false,
        },
        ActivityState::Shutdown => match info.kind() {
            T::Nmi => true,
            T::HardwareException => info.vector() == 18,
            _ => false,
        },
        ActivityState::WaitForSipi => false,
    }
}

fn interruptibility(env: &mut EntryEnv<'_>) -> CheckResult {
    use Interruptibility as I;
    let v = env.vmcs;
    let bits = v.get32(Field::GuestInterruptibility);
    ensure!(bits >> 5 == 0, GuestInterruptibilityReserved);
    let b = I::from_bits_retain(bits);
    ensure!(
        !b.contains(I::STI | I::MOV_SS),
        GuestInterruptibilityStiAndMovSs
    );
    let rflags = Rflags::from_bits_retain(v.get(Field::GuestRflags));
    if b.contains(I::STI) {
        ensure!(
            rflags.contains(Rflags::IF),
            GuestInterruptibilityStiWithoutIf
        );
    }
    let info = entry_info(v);
    let ext = info.valid() && info.kind() == InterruptionType::ExternalInterrupt;
    let nmi = info.valid() && info.kind() == InterruptionType::Nmi;
    if ext {
        ensure!(
            !b.intersects(I::STI | I::MOV_SS),
            GuestInterruptibilityBlockingWithExternalInterrupt
        );
    }
    if nmi {
        ensure!(!b.contains(I::MOV_SS), GuestInterruptibilityMovSsWithNmi);
    }
    ensure!(!b.contains(I::SMI), GuestInterruptibilitySmiOutsideSmm);
    if nmi
        && env
            .caps
            .features
            .misc
            .nmi_injection_requires_no_sti_blocking
    {
        ensure!(!b.contains(I::STI), GuestInterruptibilityStiWithNmi);
    }
    if nmi && env.ctls.pin.contains(PinControls::VIRTUAL_NMIS) {
        ensure!(
            !b.contains(I::NMI),
            GuestInterruptibilityNmiBlockingWithVirtualNmi
        );
    }
    ensure!(!b.contains(I::ENCLAVE), GuestInterruptibilityEnclave);
    Ok(())
}

fn pending_debug(env: &mut EntryEnv<'_>) -> CheckResult {
    let v = env.vmcs;
    let pde = v.get(Field::GuestPendingDebugExceptions);
    // Bits 11:4, 13, 15 and 63:17 are reserved; bit 16 (RTM) needs RTM support.
    const RESERVED: u64 = 0xffff_ffff_ffff_aff0;
    ensure!(pde & RESERVED == 0, GuestPendingDebugReserved);
    let blocking = Interruptibility::from_bits_retain(v.get32(Field::GuestInterruptibility));
    let hlt = v.get32(Field::GuestActivityState) == ActivityState::Hlt.code();
    if blocking.intersects(Interruptibility::STI | Interruptibility::MOV_SS) || hlt {
        let tf = v.get(Field::GuestRflags) & Rflags::TF.bits() != 0;
        let btf = v.get(Field::GuestDebugctl) & 2 != 0;
        let bs = pde & dr6::BS != 0;
        if tf && !btf {
            ensure!(bs, GuestPendingDebugBsWithTf);
        } else {
            ensure!(!bs, GuestPendingDebugBsWithoutTf);
        }
    }
    Ok(())
}

fn link_pointer(env: &mut EntryEnv<'_>) -> CheckResult {
    let link = env.vmcs.get(Field::VmcsLinkPointer);
    if link == INVALID_POINTER {
        return Ok(());
    }
    ensure!(link & 0xfff == 0, GuestLinkPointerAlignment);
    ensure!(phys_ok(env.caps, link), GuestLinkPointerWidth);
    let (rev, shadow) = Region::read_header(env.mem, link, Access::ShadowVmcs);
    ensure!(
        rev == env.caps.features.revision_id,
        GuestLinkPointerRevision
    );
    let shadowing = env.ctls.proc2.contains(Proc2Controls::VMCS_SHADOWING);
    ensure!(shadow == shadowing, GuestLinkPointerShadowIndicator);
    ensure!(link != env.current_ptr, GuestLinkPointerIsCurrent);
    Ok(())
}

/// True if the guest will use PAE paging: CR0.PG, CR4.PAE and not IA-32e mode.
pub(crate) fn pae_paging(env: &EntryEnv<'_>) -> bool {
    let v = env.vmcs;
    v.get(Field::GuestCr0) & Cr0::PG.bits() != 0
        && v.get(Field::GuestCr4) & Cr4::PAE.bits() != 0
        && !env.ctls.ia32e_guest()
}

/// The guest's PDPTEs: the VMCS fields with EPT, else the four entries at CR3.
pub(crate) fn guest_pdptes(env: &mut EntryEnv<'_>) -> [u64; 4] {
    let v = env.vmcs;
    if env.ctls.proc2.contains(Proc2Controls::ENABLE_EPT) {
        return PDPTE_FIELDS.map(|f| v.get(f));
    }
    let base = v.get(Field::GuestCr3) & 0xffff_ffe0;
    core::array::from_fn(|i| env.mem.read_u64(base + 8 * i as u64, Access::Pdpte))
}

const PDPTE_FIELDS: [Field; 4] = [
    Field::GuestPdpte0,
    Field::GuestPdpte1,
    Field::GuestPdpte2,
    Field::GuestPdpte3,
];

/// True if a PAE PDPTE is valid: not present, or with reserved bits 2:1, 8:5 and
/// 63:MAXPHYADDR clear (SDM Vol. 3A 4.4.1, "PDPTE Registers").
pub fn pdpte_ok(pdpte: u64, phys_bits: u8) -> bool {
    let reserved = 0x1e6 | !((1u64 << phys_bits) - 1);
    pdpte & 1 == 0 || pdpte & reserved == 0
}

/// 27.3.1.6: the PDPTEs of a guest using PAE paging.
pub(crate) fn pdptes(env: &mut EntryEnv<'_>) -> CheckResult {
    if !pae_paging(env) {
        return Ok(());
    }
    let ept = env.ctls.proc2.contains(Proc2Controls::ENABLE_EPT);
    let phys_bits = env.caps.features.widths.phys_bits;
    for (i, p) in guest_pdptes(env).into_iter().enumerate() {
        let field = if ept {
            PDPTE_FIELDS[i]
        } else {
            Field::GuestCr3
        };
        ensure!(pdpte_ok(p, phys_bits), GuestPdpteReserved, field);
    }
    Ok(())
}
