//! The VM-exit instruction-information field, per instruction family (SDM Vol. 3C
//! 25.9.4, "Information for VM Exits Due to Instruction Execution", tables "Format
//! of the VM-Exit Instruction-Information Field as Used for INS and OUTS",
//! "... for INVEPT, INVPCID, and INVVPID", "... for LIDT, LGDT, SIDT, or SGDT",
//! "... for LLDT, LTR, SLDT, and STR", "... for RDRAND, RDSEED, TPAUSE, and UMWAIT",
//! "... for VMCLEAR, VMPTRLD, VMPTRST, VMXON, XRSTORS, and XSAVES", "... for VMREAD
//! and VMWRITE"). Bits the manual calls undefined are 0 here.

use mmu::SegReg;
use serde::{Deserialize, Serialize};

/// Address size of a memory operand (bits 9:7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressSize {
    /// 16-bit.
    A16 = 0,
    /// 32-bit.
    A32 = 1,
    /// 64-bit.
    A64 = 2,
}

/// A memory operand as the instruction encoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemOperand {
    /// log2 of the index scale (0 = 1, 1 = 2, 2 = 4, 3 = 8); 0 without an index.
    pub scale: u8,
    /// Address size.
    pub address_size: AddressSize,
    /// Segment register.
    pub segment: SegReg,
    /// Index register number (0 = RAX ... 15 = R15), if any.
    pub index: Option<u8>,
    /// Base register number, if any.
    pub base: Option<u8>,
}

/// A register-or-memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operand {
    /// A general-purpose register (0 = RAX ... 15 = R15).
    Register(u8),
    /// A memory operand.
    Memory(MemOperand),
}

/// The memory-operand bits shared by every family: scaling (1:0), address size
/// (9:7), bit 10 = 0, segment (17:15), index (21:18) and index-invalid (22), base
/// (26:23) and base-invalid (27).
const fn memory_bits(m: MemOperand) -> u32 {
    let index = match m.index {
        Some(r) => ((r & 0xf) as u32) << 18,
        None => 1 << 22,
    };
    let base = match m.base {
        Some(r) => ((r & 0xf) as u32) << 23,
        None => 1 << 27,
    };
    (m.scale & 3) as u32 | (m.address_size as u32) << 7 | (m.segment as u32) << 15 | index | base
}

/// INS/OUTS (reported if IA32_VMX_BASIC bit 54 is 1): address size in 9:7 and, for
/// OUTS, the segment in 17:15 (INS always uses ES).
pub const fn ins_outs(address_size: AddressSize, segment: SegReg) -> u32 {
    (address_size as u32) << 7 | (segment as u32) << 15
}

/// INVEPT, INVPCID, INVVPID: the memory operand, and the register operand
/// (the type) in bits 31:28.
pub const fn invept_invpcid_invvpid(m: MemOperand, reg2: u8) -> u32 {
    memory_bits(m) | ((reg2 & 0xf) as u32) << 28
}

/// Which of LGDT/LIDT/SGDT/SIDT (bits 29:28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DescriptorTableInsn {
    /// SGDT.
    Sgdt = 0,
    /// SIDT.
    Sidt = 1,
    /// LGDT.
    Lgdt = 2,
    /// LIDT.
    Lidt = 3,
}

/// LIDT, LGDT, SIDT, SGDT: the memory operand, operand size in bit 11 (0 = 16-bit,
/// 1 = 32-bit; 64-bit mode reports 1), the instruction in bits 29:28.
pub const fn gdtr_idtr(which: DescriptorTableInsn, m: MemOperand, operand32: bool) -> u32 {
    memory_bits(m) | (operand32 as u32) << 11 | (which as u32) << 28
}

/// Which of LLDT/LTR/SLDT/STR (bits 29:28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LdtrTrInsn {
    /// SLDT.
    Sldt = 0,
    /// STR.
    Str = 1,
    /// LLDT.
    Lldt = 2,
    /// LTR.
    Ltr = 3,
}

/// LLDT, LTR, SLDT, STR: the operand (register in bits 6:3 and bit 10 = 1, or
/// memory) and the instruction in bits 29:28.
pub const fn ldtr_tr(which: LdtrTrInsn, operand: Operand) -> u32 {
    let op = match operand {
        Operand::Register(r) => ((r & 0xf) as u32) << 3 | 1 << 10,
        Operand::Memory(m) => memory_bits(m),
    };
    op | (which as u32) << 28
}

/// Operand size of RDRAND/RDSEED (bits 12:11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperandSize {
    /// 16-bit.
    O16 = 0,
    /// 32-bit.
    O32 = 1,
    /// 64-bit.
    O64 = 2,
}

/// RDRAND, RDSEED: destination register in bits 6:3, operand size in 12:11.
pub const fn rdrand_rdseed(dest: u8, size: OperandSize) -> u32 {
    ((dest & 0xf) as u32) << 3 | (size as u32) << 11
}

/// VMCLEAR, VMPTRLD, VMPTRST, VMXON, XRSTORS, XSAVES: the memory operand.
pub const fn vmx_memory(m: MemOperand) -> u32 {
    memory_bits(m)
}

/// VMREAD, VMWRITE: the register-or-memory operand (the destination of VMREAD, the
/// source of VMWRITE) and the encoding register in bits 31:28.
pub const fn vmread_vmwrite(operand: Operand, reg2: u8) -> u32 {
    let op = match operand {
        Operand::Register(r) => ((r & 0xf) as u32) << 3 | 1 << 10,
        Operand::Memory(m) => memory_bits(m),
    };
    op | ((reg2 & 0xf) as u32) << 28
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(base: Option<u8>, index: Option<u8>, scale: u8) -> MemOperand {
        MemOperand {
            scale,
            address_size: AddressSize::A64,
            segment: SegReg::Ds,
            index,
            base,
        }
    }

    #[test]
    fn vmx_family_layouts() {
        // VMPTRLD [rax]: 64-bit address size, DS, no index, base RAX.
        assert_eq!(vmx_memory(mem(Some(0), None, 0)), 0x0041_8100);
        // VMCLEAR [rsp+rbx*8] through SS.
        let m = MemOperand {
            segment: SegReg::Ss,
            ..mem(Some(4), Some(3), 3)
        };
        assert_eq!(vmx_memory(m), 0x020d_0103);
        // VMREAD rbx, rcx (register destination RBX, encoding in RCX).
        assert_eq!(vmread_vmwrite(Operand::Register(3), 1), 0x1000_0418);
        // VMWRITE r15, [rdi]: memory source, encoding register R15.
        let w = vmread_vmwrite(Operand::Memory(mem(Some(7), None, 0)), 15);
        assert_eq!(w, 0xf3c1_8100);
    }

    #[test]
    fn other_family_layouts() {
        // INVEPT rdx, [rsi]: type in RDX (reg2 = 2).
        assert_eq!(
            invept_invpcid_invvpid(mem(Some(6), None, 0), 2),
            0x2341_8100
        );
        // LGDT [rbx] in 64-bit mode: operand size bit set, identity 2.
        assert_eq!(
            gdtr_idtr(DescriptorTableInsn::Lgdt, mem(Some(3), None, 0), true),
            0x21c1_8900
        );
        // LTR ax: register 0, identity 3.
        assert_eq!(ldtr_tr(LdtrTrInsn::Ltr, Operand::Register(0)), 0x3000_0400);
        // RDRAND r9 (64-bit).
        assert_eq!(rdrand_rdseed(9, OperandSize::O64), 0x1048);
        // OUTSB with a 32-bit address size through FS.
        assert_eq!(ins_outs(AddressSize::A32, SegReg::Fs), 0x0002_0080);
    }
}
