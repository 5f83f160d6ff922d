//! Operand access: registers by iced-x86 register, effective addresses, and the
//! generic read/write of an instruction's operand n.
//!
//! iced-x86 numbers its registers AL..R15L (1-20), AX..R15W (21-36),
//! EAX..R15D (37-52), RAX..R15 (53-68), EIP, RIP, ES..GS (71-76); the
//! `register_layout` test pins that so the arithmetic below stays right.

use crate::event::Event;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind, Register};
use mmu::SegReg;

/// Mask of the low `bytes` bytes.
#[inline(always)]
pub const fn size_mask(bytes: usize) -> u64 {
    if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    }
}

/// The segment register an iced segment register names.
#[inline(always)]
pub fn seg_of(r: Register) -> SegReg {
    match r {
        Register::ES => SegReg::Es,
        Register::CS => SegReg::Cs,
        Register::SS => SegReg::Ss,
        Register::FS => SegReg::Fs,
        Register::GS => SegReg::Gs,
        _ => SegReg::Ds,
    }
}

/// Width in bytes of a general-purpose register (0 for others).
#[inline(always)]
pub fn gpr_size(r: Register) -> usize {
    match r as u32 {
        1..=20 => 1,
        21..=36 => 2,
        37..=52 | 69 => 4,
        53..=68 | 70 => 8,
        _ => 0,
    }
}

impl Machine {
    /// Reads a general-purpose register (any width) zero-extended.
    #[inline(always)]
    pub fn read_gpr(&self, r: Register) -> u64 {
        let n = r as usize;
        let g = &self.cpu.gpr;
        match n {
            1..=4 => g[n - 1] & 0xff,
            5..=8 => (g[n - 5] >> 8) & 0xff,
            9..=20 => g[n - 5] & 0xff,
            21..=36 => g[n - 21] & 0xffff,
            37..=52 => g[n - 37] & 0xffff_ffff,
            53..=68 => g[n - 53],
            _ => 0,
        }
    }

    /// Writes a general-purpose register with the architectural width rules:
    /// 8- and 16-bit writes merge, 32-bit writes zero-extend (SDM Vol. 1
    /// 3.4.1.1).
    #[inline(always)]
    pub fn write_gpr(&mut self, r: Register, v: u64) {
        let n = r as usize;
        let g = &mut self.cpu.gpr;
        match n {
            1..=4 => g[n - 1] = (g[n - 1] & !0xff) | (v & 0xff),
            5..=8 => g[n - 5] = (g[n - 5] & !0xff00) | ((v & 0xff) << 8),
            9..=20 => g[n - 5] = (g[n - 5] & !0xff) | (v & 0xff),
            21..=36 => g[n - 21] = (g[n - 21] & !0xffff) | (v & 0xffff),
            37..=52 => g[n - 37] = v & 0xffff_ffff,
            53..=68 => g[n - 53] = v,
            _ => {}
        }
    }

    /// Writes `v` to general-purpose register number `idx` with width `size`
    /// bytes (no high-byte registers).
    #[inline(always)]
    pub fn write_gpr_sized(&mut self, idx: usize, size: usize, v: u64) {
        let g = &mut self.cpu.gpr[idx];
        match size {
            1 => *g = (*g & !0xff) | (v & 0xff),
            2 => *g = (*g & !0xffff) | (v & 0xffff),
            4 => *g = v & 0xffff_ffff,
            _ => *g = v,
        }
    }

    /// The effective address (offset within the segment) of the memory operand,
    /// wrapped to the address size (SDM Vol. 1 3.7.5).
    #[inline(always)]
    pub fn effective_address(&self, i: &Instruction) -> u64 {
        let base = i.memory_base();
        let index = i.memory_index();
        if base == Register::RIP || base == Register::EIP {
            // iced-x86 resolved the displacement against the IP it decoded at;
            // rebase it on the current instruction (blocks are shared by every
            // linear address of their physical page).
            let ea = i
                .memory_displacement64()
                .wrapping_sub(i.next_ip())
                .wrapping_add(self.next_rip);
            return if base == Register::EIP {
                ea & 0xffff_ffff
            } else {
                ea
            };
        }
        let mut ea = i.memory_displacement64();
        let mut asize = 0;
        if base != Register::None {
            ea = ea.wrapping_add(self.read_gpr(base));
            asize = gpr_size(base);
        }
        if index != Register::None {
            ea = ea.wrapping_add(self.read_gpr(index) << i.memory_index_scale().trailing_zeros());
            asize = gpr_size(index);
        }
        if asize == 0 {
            asize = match i.memory_displ_size() {
                2 => 2,
                4 => 4,
                _ => 8,
            };
        }
        ea & size_mask(asize)
    }

    /// The segment of the memory operand (after overrides and defaults). In
    /// 64-bit mode only FS and GS overrides apply; CS, DS, ES and SS
    /// overrides are ignored, so the default stays: SS for an RSP or RBP base,
    /// DS otherwise. It decides between #SS(0) and #GP(0) for a non-canonical
    /// address (SDM Vol. 1 3.3.7.1, "Canonical addressing").
    #[inline(always)]
    pub fn mem_seg(&self, i: &Instruction) -> SegReg {
        let s = i.memory_segment();
        if self.cpu.long64() && !matches!(s, Register::FS | Register::GS) {
            return match i.memory_base() {
                Register::RSP | Register::RBP | Register::ESP | Register::EBP => SegReg::Ss,
                _ => SegReg::Ds,
            };
        }
        seg_of(s)
    }

    /// The operand size in bytes of operand `n` (register or memory).
    #[inline(always)]
    pub fn op_size(&self, i: &Instruction, n: u32) -> usize {
        match i.op_kind(n) {
            OpKind::Register => gpr_size(i.op_register(n)),
            OpKind::Memory => i.memory_size().size(),
            OpKind::Immediate8 => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            _ => 8,
        }
    }

    /// Reads operand `n`: register, memory or immediate (zero-extended from
    /// its size; immediates sign-extended as encoded, then masked by callers).
    #[inline(always)]
    pub fn read_op(&mut self, i: &Instruction, n: u32) -> Result<u64, Event> {
        match i.op_kind(n) {
            OpKind::Register => Ok(self.read_gpr(i.op_register(n))),
            OpKind::Memory => {
                let seg = self.mem_seg(i);
                let ea = self.effective_address(i);
                self.read_mem(seg, ea, i.memory_size().size())
            }
            _ => Ok(i.immediate(n)),
        }
    }

    /// Reads operand `n` as the destination of a read-modify-write: a memory
    /// operand is checked for writing before it is read (see
    /// [`Machine::read_mem_rmw`]).
    #[inline(always)]
    pub fn read_op_rmw(&mut self, i: &Instruction, n: u32) -> Result<u64, Event> {
        match i.op_kind(n) {
            OpKind::Memory => {
                let seg = self.mem_seg(i);
                let ea = self.effective_address(i);
                self.read_mem_rmw(seg, ea, i.memory_size().size())
            }
            _ => self.read_op(i, n),
        }
    }

    /// Writes operand `n` (register or memory).
    #[inline(always)]
    pub fn write_op(&mut self, i: &Instruction, n: u32, v: u64) -> Result<(), Event> {
        match i.op_kind(n) {
            OpKind::Register => {
                self.write_gpr(i.op_register(n), v);
                Ok(())
            }
            _ => {
                let seg = self.mem_seg(i);
                let ea = self.effective_address(i);
                self.write_mem(seg, ea, i.memory_size().size(), v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_layout() {
        assert_eq!(Register::AL as u32, 1);
        assert_eq!(Register::BL as u32, 4);
        assert_eq!(Register::AH as u32, 5);
        assert_eq!(Register::SPL as u32, 9);
        assert_eq!(Register::R8L as u32, 13);
        assert_eq!(Register::R15L as u32, 20);
        assert_eq!(Register::AX as u32, 21);
        assert_eq!(Register::EAX as u32, 37);
        assert_eq!(Register::RAX as u32, 53);
        assert_eq!(Register::R15 as u32, 68);
        assert_eq!(Register::EIP as u32, 69);
        assert_eq!(Register::RIP as u32, 70);
        assert_eq!(Register::ES as u32, 71);
        assert_eq!(Register::GS as u32, 76);
    }

    #[test]
    fn gpr_width_rules() {
        let mut m = Machine::new(crate::machine::MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        m.cpu.gpr[0] = 0x1122_3344_5566_7788;
        m.write_gpr(Register::AH, 0xaa);
        assert_eq!(m.cpu.gpr[0], 0x1122_3344_5566_aa88);
        m.write_gpr(Register::AX, 0xbbcc);
        assert_eq!(m.cpu.gpr[0], 0x1122_3344_5566_bbcc);
        m.write_gpr(Register::EAX, 0xdead_beef);
        assert_eq!(m.cpu.gpr[0], 0xdead_beef);
        m.cpu.gpr[6] = 0x1ff;
        assert_eq!(m.read_gpr(Register::SIL), 0xff);
        assert_eq!(m.read_gpr(Register::DH), 0);
    }
}
