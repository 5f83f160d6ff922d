//! INVEPT and INVVPID (SDM Vol. 3C 31.3, "INVEPT", "INVVPID"). The model decides
//! the outcome; the invalidation itself is a value the machine hands to its TLBs.

use super::{prologue, vmfail, InsnCtx, Outcome};
use crate::caps::VmxCaps;
use crate::controls::EptVpidCap;
use crate::ept::Eptp;
use crate::error::VmInstructionError;
use crate::exit::ExitReason;
use crate::vmcs::VmxState;
use mmu::{is_canonical, Exception};
use serde::{Deserialize, Serialize};

/// What to invalidate (SDM Vol. 3C, "Invalidating Cached Translation Information",
/// in the chapter "VMX Support for Address Translation").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Invalidation {
    /// INVEPT type 1: mappings derived from the EPT rooted at `eptp[51:12]`.
    EptSingleContext {
        /// The EPTP from the descriptor.
        eptp: u64,
    },
    /// INVEPT type 2: mappings derived from every EPTP.
    EptAllContext,
    /// INVVPID type 0: the linear address `address` tagged with `vpid`.
    VpidIndividualAddress {
        /// The VPID.
        vpid: u16,
        /// The linear address.
        address: u64,
    },
    /// INVVPID type 1: every mapping tagged with `vpid`.
    VpidSingleContext {
        /// The VPID.
        vpid: u16,
    },
    /// INVVPID type 2: every mapping tagged with any non-zero VPID.
    VpidAllContext,
    /// INVVPID type 3: mappings tagged with `vpid` except global translations.
    VpidSingleContextRetainingGlobals {
        /// The VPID.
        vpid: u16,
    },
}

/// INVEPT with type `kind` (the register operand) and the 128-bit descriptor that
/// `descriptor` reads as (bits 63:0, bits 127:64).
pub fn invept(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    kind: u64,
    descriptor: impl FnOnce() -> Result<(u64, u64), Exception>,
) -> Outcome<Invalidation> {
    let cap = caps.features.ept_vpid;
    if !cap.contains(EptVpidCap::INVEPT) {
        return Outcome::Fault(Exception::ud());
    }
    if let Some(o) = prologue(state, ctx, ExitReason::Invept) {
        return o;
    }
    let supported = match kind {
        1 => cap.contains(EptVpidCap::INVEPT_SINGLE_CONTEXT),
        2 => cap.contains(EptVpidCap::INVEPT_ALL_CONTEXT),
        _ => false,
    };
    if !supported {
        return vmfail(state, VmInstructionError::InvalidInveptInvvpidOperand);
    }
    let (eptp, _) = match descriptor() {
        Ok(d) => d,
        Err(e) => return Outcome::Fault(e),
    };
    if kind == 2 {
        return Outcome::Succeed(Invalidation::EptAllContext);
    }
    if Eptp(eptp).validate(caps).is_err() {
        return vmfail(state, VmInstructionError::InvalidInveptInvvpidOperand);
    }
    Outcome::Succeed(Invalidation::EptSingleContext { eptp })
}

/// INVVPID with type `kind` and the 128-bit descriptor (bits 63:0, bits 127:64).
pub fn invvpid(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    kind: u64,
    descriptor: impl FnOnce() -> Result<(u64, u64), Exception>,
) -> Outcome<Invalidation> {
    let cap = caps.features.ept_vpid;
    if !cap.contains(EptVpidCap::INVVPID) {
        return Outcome::Fault(Exception::ud());
    }
    if let Some(o) = prologue(state, ctx, ExitReason::Invvpid) {
        return o;
    }
    let supported = match kind {
        0 => cap.contains(EptVpidCap::INVVPID_INDIVIDUAL_ADDRESS),
        1 => cap.contains(EptVpidCap::INVVPID_SINGLE_CONTEXT),
        2 => cap.contains(EptVpidCap::INVVPID_ALL_CONTEXT),
        3 => cap.contains(EptVpidCap::INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS),
        _ => false,
    };
    let bad = VmInstructionError::InvalidInveptInvvpidOperand;
    if !supported {
        return vmfail(state, bad);
    }
    let (low, high) = match descriptor() {
        Ok(d) => d,
        Err(e) => return Outcome::Fault(e),
    };
    if low >> 16 != 0 {
        return vmfail(state, bad);
    }
    let vpid = low as u16;
    let inv = match kind {
        2 => Invalidation::VpidAllContext,
        _ if vpid == 0 => return vmfail(state, bad),
        0 if !is_canonical(high, caps.features.widths.linear_bits) => return vmfail(state, bad),
        0 => Invalidation::VpidIndividualAddress {
            vpid,
            address: high,
        },
        1 => Invalidation::VpidSingleContext { vpid },
        _ => Invalidation::VpidSingleContextRetainingGlobals { vpid },
    };
    Outcome::Succeed(inv)
}
