//! Exit information built from the decoded instruction (SDM Vol. 3C 28.2.1,
//! "Basic VM-Exit Information", and 28.2.5 / 25.9.4, "Information for VM Exits
//! Due to Instruction Execution"): the memory operand as the instruction
//! encoded it, the displacement the exit qualification reports, register
//! numbers. iced-x86 types stop here; `vmx-model` builds the field values.

use crate::machine::Machine;
use iced_x86::{Instruction, OpKind, Register};
use vmx_model::exit::insn_info::{AddressSize, MemOperand, Operand};
use vmx_model::exit::ExitInfo;
use vmx_model::exit::ExitReason;

/// The number of a general-purpose register (RAX = 0 ... R15 = 15).
pub(super) fn gpr(r: Register) -> u8 {
    (r.full_register().number() & 0xf) as u8
}

/// The address size of the memory operand: from the base or index register,
/// else from the displacement size (SDM Vol. 2A 2.2.1.3).
pub(super) fn address_size(i: &Instruction) -> AddressSize {
    let of_reg = |r: Register| match r {
        Register::RIP => Some(AddressSize::A64),
        Register::EIP => Some(AddressSize::A32),
        r if r.is_gpr64() => Some(AddressSize::A64),
        r if r.is_gpr32() => Some(AddressSize::A32),
        r if r.is_gpr16() => Some(AddressSize::A16),
        _ => None,
    };
    of_reg(i.memory_base())
        .or_else(|| of_reg(i.memory_index()))
        .unwrap_or(match i.memory_displ_size() {
            2 => AddressSize::A16,
            4 => AddressSize::A32,
            _ => AddressSize::A64,
        })
}

/// The memory operand for the instruction-information field.
pub(super) fn mem_operand(i: &Instruction) -> MemOperand {
    let reg = |r: Register| match r {
        Register::None | Register::RIP | Register::EIP => None,
        r => Some(gpr(r)),
    };
    let index = reg(i.memory_index());
    MemOperand {
        scale: if index.is_some() {
            i.memory_index_scale().trailing_zeros() as u8
        } else {
            0
        },
        address_size: address_size(i),
        segment: crate::interp::operand::seg_of(i.memory_segment()),
        index,
        base: reg(i.memory_base()),
    }
}

/// Operand `n` as a register or a memory operand.
pub(super) fn operand(i: &Instruction, n: u32) -> Operand {
    match i.op_kind(n) {
        OpKind::Register => Operand::Register(gpr(i.op_register(n))),
        _ => Operand::Memory(mem_operand(i)),
    }
}

/// True if the instruction has a memory operand.
pub(super) fn has_memory(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory)
}

/// The exit qualification of instructions that report their displacement
/// (VMX instructions, LGDT ... STR, INVEPT/INVVPID/INVPCID): the displacement
/// sign-extended to 64 bits, 0 without a memory operand; for RIP-relative
/// addressing the displacement plus the RIP of the next instruction (SDM Vol.
/// 3C 28.2.1, table "Exit Qualification for ... VMX Instructions").
pub(super) fn displacement(m: &Machine, i: &Instruction) -> u64 {
    if !has_memory(i) {
        return 0;
    }
    let d = i.memory_displacement64();
    match i.memory_base() {
        // iced-x86 resolved the displacement against the IP it decoded at.
        Register::RIP => d.wrapping_sub(i.next_ip()).wrapping_add(m.next_rip),
        Register::EIP => d.wrapping_sub(i.next_ip()).wrapping_add(m.next_rip) & 0xffff_ffff,
        _ => match address_size(i) {
            AddressSize::A16 => d as u16 as i16 as i64 as u64,
            AddressSize::A32 => d as u32 as i32 as i64 as u64,
            AddressSize::A64 => d,
        },
    }
}

/// An instruction-caused exit of `reason` with the instruction's length.
pub(super) fn insn_exit(i: &Instruction, reason: ExitReason, qualification: u64) -> ExitInfo {
    ExitInfo::instruction(reason, qualification, i.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};
    use mmu::SegReg;

    fn decode(bits: u32, bytes: &[u8]) -> Instruction {
        Decoder::with_ip(bits, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn memory_operands_as_the_instruction_information_reports_them() {
        // vmptrld [rsp+rbx*8+0x10]
        let i = decode(64, &[0x0f, 0xc7, 0x74, 0xdc, 0x10]);
        let m = mem_operand(&i);
        assert_eq!(m.base, Some(4));
        assert_eq!(m.index, Some(3));
        assert_eq!(m.scale, 3);
        assert_eq!(m.segment, SegReg::Ss);
        assert_eq!(m.address_size, AddressSize::A64);
        // vmclear [eax-8] (67 prefix): 32-bit address size, displacement -8.
        let i = decode(64, &[0x67, 0x66, 0x0f, 0xc7, 0x70, 0xf8]);
        assert_eq!(address_size(&i), AddressSize::A32);
        assert_eq!(mem_operand(&i).base, Some(0));
        // vmread rbx, rcx: register destination.
        let i = decode(64, &[0x0f, 0x78, 0xcb]);
        assert_eq!(operand(&i, 0), Operand::Register(3));
        assert_eq!(gpr(i.op_register(1)), 1);
        assert!(!has_memory(&i));
    }
}
