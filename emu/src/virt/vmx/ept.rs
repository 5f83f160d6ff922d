//! EPT and VPID (SDM Vol. 3C chapter 29, "VMX Support for Address
//! Translation") through the `mmu` crate: the running guest's translation
//! context (EPT as the nested dimension, the VPID as the TLB tag), EPT
//! violations and misconfigurations as VM exits, and the invalidations INVEPT
//! and INVVPID perform.

use super::events::vectoring;
use super::{exit_event, PendingExit};
use crate::event::{Event, Stop};
use crate::machine::Machine;
use mmu::paging::{EptCaps, EptContext, Eptp};
use mmu::{InveptType, InvvpidType, LinearAddr, NestedPaging, TranslateFault, TranslationContext};
use vmx_model::controls::EptVpidCap;
use vmx_model::exit::{ExitInfo, ExitReason};
use vmx_model::insn::Invalidation;

/// Adds the running guest's EPT and VPID to a translation context.
pub fn translation_context(m: &Machine, ctx: TranslationContext) -> TranslationContext {
    let g = &m.virt.vmx.guest;
    let ctx = ctx.with_vpid(g.vpid);
    let Some(eptp) = g.eptp else {
        return ctx;
    };
    let cap = m.virt.vmx.caps.features.ept_vpid;
    ctx.with_nested(NestedPaging::Ept(EptContext {
        eptp: Eptp(eptp),
        caps: EptCaps {
            exec_only: cap.contains(EptVpidCap::EXECUTE_ONLY),
            page_1g: cap.contains(EptVpidCap::PDPTE_1GB_PAGES),
            advanced_exit_info: cap.contains(EptVpidCap::ADVANCED_EXIT_INFO),
        },
        mbec: false,
    }))
}

/// The VM exit for an EPT violation (reason 48: qualification, guest-physical
/// and guest-linear address) or misconfiguration (49: guest-physical address),
/// with the IDT-vectoring information if it interrupted an event delivery
/// (SDM Vol. 3C 29.3.3, 28.2.1, 28.2.4).
pub fn nested_fault(m: &mut Machine, f: TranslateFault) -> Event {
    let mut info = match f {
        TranslateFault::EptViolation(v) => {
            let mut i = ExitInfo::new(ExitReason::EptViolation, v.qualification.bits());
            i.guest_physical_address = Some(v.gpa.0);
            i.guest_linear_address = v.gla.map(|l| l.0);
            i
        }
        TranslateFault::EptMisconfig { gpa } => {
            let mut i = ExitInfo::new(ExitReason::EptMisconfiguration, 0);
            i.guest_physical_address = Some(gpa.0);
            i
        }
        other => {
            return Event::stop(Stop::Shutdown(format!(
                "{other:?} in VMX non-root operation"
            )))
        }
    };
    let mut rip = None;
    if let Some(d) = m.virt.delivering {
        rip = vectoring(m, &mut info, &d);
    }
    exit_event(m, PendingExit { info, rip })
}

/// Applies the invalidation an INVEPT or INVVPID decided.
pub(super) fn invalidate(m: &mut Machine, inv: Invalidation) {
    let mmu = &mut m.mmu;
    match inv {
        Invalidation::EptSingleContext { eptp } => {
            mmu.invept(InveptType::SingleContext, Eptp(eptp))
        }
        Invalidation::EptAllContext => mmu.invept(InveptType::Global, Eptp(0)),
        Invalidation::VpidIndividualAddress { vpid, address } => {
            mmu.invvpid(InvvpidType::IndividualAddress, vpid, LinearAddr(address))
        }
        Invalidation::VpidSingleContext { vpid } => {
            mmu.invvpid(InvvpidType::SingleContext, vpid, LinearAddr(0))
        }
        Invalidation::VpidAllContext => mmu.invvpid(InvvpidType::AllContext, 0, LinearAddr(0)),
        Invalidation::VpidSingleContextRetainingGlobals { vpid } => mmu.invvpid(
            InvvpidType::SingleContextRetainingGlobals,
            vpid,
            LinearAddr(0),
        ),
    }
}
