//! The VMX instructions (SDM Vol. 3C 31.3, "VMX Instructions"): the handlers
//! read their operands where the model's pseudocode reads them, call
//! `vmx-model`, and apply the outcome: RFLAGS for VMsucceed / VMfailInvalid /
//! VMfailValid(n), a fault, a result to store, a TLB invalidation, or the VM
//! exit the instruction causes in VMX non-root operation.

use super::bus::{insn_ctx, Bus};
use super::operands::{displacement, gpr, insn_exit, mem_operand, operand};
use super::{ept, exit_event, has_vmx, PendingExit};
use crate::cost::InsnClass;
use crate::event::{Event, Flow};
use crate::interp::Handler;
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic, OpKind};
use vmx_model::exit::insn_info;
use vmx_model::exit::ExitReason;
use vmx_model::insn::{self, InsnCtx, Outcome};
use vmx_model::{VmxCaps, VmxState};

/// The handler of a VMX instruction, if `i` is one.
pub fn handler_for(m: &Machine, i: &Instruction) -> Option<(Handler, InsnClass)> {
    use Mnemonic as M;
    let h: Handler = match i.mnemonic() {
        M::Vmxon => vmxon,
        M::Vmxoff => vmxoff,
        M::Vmclear => vmclear,
        M::Vmptrld => vmptrld,
        M::Vmptrst => vmptrst,
        M::Vmread => vmread,
        M::Vmwrite => vmwrite,
        M::Vmlaunch => super::entry::vmlaunch,
        M::Vmresume => super::entry::vmresume,
        M::Invept => invept,
        M::Invvpid => invvpid,
        M::Vmcall => vmcall,
        // No VM function is advertised: VMFUNC is #UD in every mode.
        M::Vmfunc => crate::interp::invalid_opcode,
        _ => return None,
    };
    has_vmx(m).then_some((h, InsnClass::System))
}

/// Calls the model with the VMX state taken out of the machine and the
/// machine lent as its bus; returns the result and the event a memory operand
/// raised, if any.
pub(super) fn call<T>(
    m: &mut Machine,
    f: impl FnOnce(&mut VmxState, &VmxCaps, &InsnCtx, &Bus<'_>) -> T,
) -> (T, Option<Event>) {
    let ctx = insn_ctx(m);
    let caps = m.virt.vmx.caps.clone();
    let mut state = core::mem::take(&mut m.virt.vmx.state);
    let (r, fault) = {
        let bus = Bus::new(m);
        let r = f(&mut state, &caps, &ctx, &bus);
        (r, bus.take_fault())
    };
    m.virt.vmx.state = state;
    (r, fault)
}

/// Applies an outcome: `ok` consumes a VMsucceed result (and may fault, in
/// which case RFLAGS is left alone), VMfail sets RFLAGS, faults and exits
/// become events.
fn apply<T>(
    m: &mut Machine,
    i: &Instruction,
    out: Outcome<T>,
    fault: Option<Event>,
    ok: impl FnOnce(&mut Machine, T) -> Flow,
) -> Flow {
    let rflags = out.rflags(m.cpu.flags.get());
    match out {
        Outcome::Succeed(v) => {
            ok(m, v)?;
            m.cpu.flags.set(rflags);
            Ok(())
        }
        Outcome::FailInvalid | Outcome::FailValid(_) => {
            m.cpu.flags.set(rflags);
            Ok(())
        }
        Outcome::Fault(e) => Err(fault.unwrap_or(Event::Exception(e))),
        Outcome::Exit(reason) => Err(vmx_insn_exit(m, i, reason)),
    }
}

/// The VM exit a VMX instruction causes in non-root operation, with the
/// instruction information and displacement qualification of SDM Vol. 3C
/// 28.2.1 and 28.2.5.
pub(super) fn vmx_insn_exit(m: &mut Machine, i: &Instruction, reason: ExitReason) -> Event {
    use ExitReason as R;
    let mut info = insn_exit(i, reason, displacement(m, i));
    info.instruction_info = match reason {
        R::Vmclear | R::Vmptrld | R::Vmptrst | R::Vmxon => {
            Some(insn_info::vmx_memory(mem_operand(i)))
        }
        R::Vmread => Some(insn_info::vmread_vmwrite(
            operand(i, 0),
            gpr(i.op_register(1)),
        )),
        R::Vmwrite => Some(insn_info::vmread_vmwrite(
            operand(i, 1),
            gpr(i.op_register(0)),
        )),
        R::Invept | R::Invvpid => Some(insn_info::invept_invpcid_invvpid(
            mem_operand(i),
            gpr(i.op_register(0)),
        )),
        _ => None,
    };
    exit_event(m, PendingExit::new(info))
}

/// The segment and offset of the memory operand.
fn mem(m: &Machine, i: &Instruction) -> (mmu::SegReg, u64) {
    (m.mem_seg(i), m.effective_address(i))
}

fn vmxon(m: &mut Machine, i: &Instruction) -> Flow {
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::vmxon(state, caps, ctx, &mut bus.mem(), || bus.read(seg, ea, 8))
    });
    apply(m, i, out, fault, |_, ()| Ok(()))
}

fn vmxoff(m: &mut Machine, i: &Instruction) -> Flow {
    let (out, fault) = call(m, |state, _, ctx, bus| {
        insn::vmxoff(state, ctx, &mut bus.mem())
    });
    apply(m, i, out, fault, |_, ()| Ok(()))
}

fn vmclear(m: &mut Machine, i: &Instruction) -> Flow {
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::vmclear(state, caps, ctx, &mut bus.mem(), || bus.read(seg, ea, 8))
    });
    apply(m, i, out, fault, |_, ()| Ok(()))
}

fn vmptrld(m: &mut Machine, i: &Instruction) -> Flow {
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::vmptrld(state, caps, ctx, &mut bus.mem(), || bus.read(seg, ea, 8))
    });
    apply(m, i, out, fault, |_, ()| Ok(()))
}

fn vmptrst(m: &mut Machine, i: &Instruction) -> Flow {
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, _, ctx, _| insn::vmptrst(state, ctx));
    apply(m, i, out, fault, |m, ptr| m.write_mem(seg, ea, 8, ptr))
}

/// The VMREAD/VMWRITE operand size: 64 bits in 64-bit mode, else 32.
fn rw_size(m: &Machine) -> usize {
    if m.cpu.long64() {
        8
    } else {
        4
    }
}

fn vmread(m: &mut Machine, i: &Instruction) -> Flow {
    let encoding = m.read_gpr(i.op_register(1));
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::vmread(state, caps, ctx, &mut bus.mem(), encoding)
    });
    apply(m, i, out, fault, |m, v| m.write_op(i, 0, v))
}

fn vmwrite(m: &mut Machine, i: &Instruction) -> Flow {
    let encoding = m.read_gpr(i.op_register(0));
    let size = rw_size(m);
    let source = match i.op_kind(1) {
        OpKind::Register => Err(m.read_gpr(i.op_register(1))),
        _ => Ok(mem(m, i)),
    };
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::vmwrite(
            state,
            caps,
            ctx,
            &mut bus.mem(),
            encoding,
            || match source {
                Err(v) => Ok(v),
                Ok((seg, ea)) => bus.read(seg, ea, size),
            },
        )
    });
    apply(m, i, out, fault, |_, ()| Ok(()))
}

fn invept(m: &mut Machine, i: &Instruction) -> Flow {
    let kind = m.read_gpr(i.op_register(0));
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::invept(state, caps, ctx, kind, || bus.read128(seg, ea))
    });
    apply(m, i, out, fault, |m, inv| {
        ept::invalidate(m, inv);
        Ok(())
    })
}

fn invvpid(m: &mut Machine, i: &Instruction) -> Flow {
    let kind = m.read_gpr(i.op_register(0));
    let (seg, ea) = mem(m, i);
    let (out, fault) = call(m, |state, caps, ctx, bus| {
        insn::invvpid(state, caps, ctx, kind, || bus.read128(seg, ea))
    });
    apply(m, i, out, fault, |m, inv| {
        ept::invalidate(m, inv);
        Ok(())
    })
}

fn vmcall(m: &mut Machine, i: &Instruction) -> Flow {
    let (out, fault) = call(m, |state, _, ctx, _| insn::vmcall(state, ctx));
    apply(m, i, out, fault, |_, ()| Ok(()))
}

/// VMLAUNCH/VMRESUME exits in non-root operation carry only the length.
pub(super) fn launch_exit(m: &mut Machine, i: &Instruction, reason: ExitReason) -> Event {
    exit_event(m, PendingExit::new(insn_exit(i, reason, 0)))
}
