//! VMREAD and VMWRITE, including VMCS shadowing in VMX non-root operation (SDM Vol.
//! 3C 31.3, "VMREAD", "VMWRITE"; 25.10, "VMCS Types: Ordinary and Shadow"; 25.6.15,
//! "VMCS Shadowing Bitmap Addresses").

use super::{vmfail, InsnCtx, Outcome};
use crate::caps::VmxCaps;
use crate::controls::{Proc2Controls, ProcControls};
use crate::exit::ExitReason;
use crate::mem::{Access, PhysMem, PhysMemExt};
use crate::vmcs::{
    lookup, read_field, write_field, AccessError, Field, Kind, OperandSize, Region, Vmcs, VmxState,
    INVALID_POINTER,
};
use mmu::Exception;

/// VMREAD of the field named by `encoding` (the register operand). On success the
/// machine writes the value to the destination with the operand size of the mode.
pub fn vmread(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    encoding: u64,
) -> Outcome<u64> {
    let size = ctx.operand_size();
    if let Some(o) = checks(
        state,
        ctx,
        mem,
        encoding,
        size,
        Access::VmcsShadowingBitmap,
        false,
    ) {
        return o;
    }
    let result = if state.non_root {
        shadow_read(state, caps, mem, encoding, size)
    } else {
        let vmcs = state.vmcs().expect("checked: current VMCS is valid");
        read_field(caps, vmcs, encoding, size)
    };
    match result {
        Ok(v) => Outcome::Succeed(v),
        Err(e) => vmfail(state, e.error()),
    }
}

/// VMWRITE of the value `source` reads to the field named by `encoding`.
pub fn vmwrite(
    state: &mut VmxState,
    caps: &VmxCaps,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    encoding: u64,
    source: impl FnOnce() -> Result<u64, Exception>,
) -> Outcome {
    let size = ctx.operand_size();
    if let Some(o) = checks(
        state,
        ctx,
        mem,
        encoding,
        size,
        Access::VmcsShadowingBitmap,
        true,
    ) {
        return o;
    }
    let (field, _) = match lookup(caps, encoding, size) {
        Ok(f) => f,
        Err(e) => return vmfail(state, e.error()),
    };
    if field.kind() == Kind::ExitInfo && !caps.features.misc.vmwrite_any_field {
        return vmfail(state, AccessError::ReadOnly.error());
    }
    let value = match source() {
        Ok(v) => v,
        Err(e) => return Outcome::Fault(e),
    };
    if state.non_root {
        shadow_write(state, caps, mem, encoding, value, size);
    } else {
        let vmcs = state.vmcs_mut().expect("checked: current VMCS is valid");
        // Cannot fail: lookup and the read-only rule were checked above.
        let _ = write_field(caps, vmcs, encoding, value, size);
    }
    Outcome::Succeed(())
}

/// The shared prefix of both pseudocodes, up to the VMfailInvalid checks.
fn checks<T>(
    state: &mut VmxState,
    ctx: &InsnCtx,
    mem: &mut dyn PhysMem,
    encoding: u64,
    size: OperandSize,
    why: Access,
    write: bool,
) -> Option<Outcome<T>> {
    let reason = if write {
        ExitReason::Vmwrite
    } else {
        ExitReason::Vmread
    };
    if super::undefined(state, ctx) {
        return Some(Outcome::Fault(Exception::ud()));
    }
    if state.non_root && !shadowing_allows(state, mem, encoding, size, why, write) {
        return Some(Outcome::Exit(reason));
    }
    if ctx.cpl > 0 {
        return Some(Outcome::Fault(Exception::gp0()));
    }
    let link_invalid = state
        .vmcs()
        .is_none_or(|v| v.get(Field::VmcsLinkPointer) == INVALID_POINTER);
    if state.current.is_none() || (state.non_root && link_invalid) {
        return Some(Outcome::FailInvalid);
    }
    None
}

/// In VMX non-root operation, VMREAD/VMWRITE access the shadow VMCS instead of
/// exiting if "VMCS shadowing" is 1, the encoding sets no bit above 14 and its bit
/// in the VMREAD/VMWRITE bitmap is 0.
fn shadowing_allows(
    state: &VmxState,
    mem: &mut dyn PhysMem,
    encoding: u64,
    size: OperandSize,
    why: Access,
    write: bool,
) -> bool {
    let Some(v) = state.vmcs() else {
        return false;
    };
    if !secondary(v).contains(Proc2Controls::VMCS_SHADOWING) {
        return false;
    }
    let enc = match size {
        OperandSize::Bits32 => encoding & 0xffff_ffff,
        OperandSize::Bits64 => encoding,
    };
    if enc >> 15 != 0 {
        return false;
    }
    let bitmap = if write {
        v.get(Field::VmwriteBitmapAddress)
    } else {
        v.get(Field::VmreadBitmapAddress)
    };
    !mem.read_bit(bitmap, enc, why)
}

/// The secondary controls in effect (0 unless "activate secondary controls").
pub(crate) fn secondary(v: &Vmcs) -> Proc2Controls {
    let p = ProcControls::from_bits_retain(v.get32(Field::PrimaryProcBasedControls));
    if p.contains(ProcControls::ACTIVATE_SECONDARY_CONTROLS) {
        Proc2Controls::from_bits_retain(v.get32(Field::SecondaryProcBasedControls))
    } else {
        Proc2Controls::empty()
    }
}

fn link_pointer(state: &VmxState) -> u64 {
    state
        .vmcs()
        .map_or(INVALID_POINTER, |v| v.get(Field::VmcsLinkPointer))
}

fn shadow_read(
    state: &VmxState,
    caps: &VmxCaps,
    mem: &mut dyn PhysMem,
    encoding: u64,
    size: OperandSize,
) -> Result<u64, AccessError> {
    let (field, _) = lookup(caps, encoding, size)?;
    let pa = link_pointer(state) + Region::field_offset(field);
    let mut one = Vmcs::new();
    one.set(field, mem.read_u64(pa, Access::ShadowVmcs));
    read_field(caps, &one, encoding, size)
}

fn shadow_write(
    state: &VmxState,
    caps: &VmxCaps,
    mem: &mut dyn PhysMem,
    encoding: u64,
    value: u64,
    size: OperandSize,
) {
    let Ok((field, _)) = lookup(caps, encoding, size) else {
        return;
    };
    let pa = link_pointer(state) + Region::field_offset(field);
    let mut one = Vmcs::new();
    one.set(field, mem.read_u64(pa, Access::ShadowVmcs));
    if write_field(caps, &mut one, encoding, value, size).is_ok() {
        mem.write_u64(pa, one.get(field), Access::ShadowVmcs);
    }
}
