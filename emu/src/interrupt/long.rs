//! IA-32e-mode delivery through 16-byte interrupt and trap gates (SDM Vol. 3A
//! 6.14, "Exception and interrupt handling in 64-bit mode"): 64-bit pushes,
//! SS:RSP always pushed, RSP aligned to 16 bytes, IST stacks, a null SS on a
//! privilege change.

use super::{Delivery, NewStack};
use crate::cpu::segmentation::{null_ss, sel_code};
use crate::event::Event;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use mmu::{Descriptor, Rflags, SegReg, Selector};

impl Machine {
    pub(super) fn deliver_long(&mut self, d: &Delivery) -> Result<(), Event> {
        let ext = d.source.ext();
        let cpl = self.cpu.cpl();
        let idt = self.cpu.sys.idtr;
        let off = d.vector as u64 * 16;
        if off + 15 > idt.limit as u64 {
            return Err(Event::gp(d.idt_code()));
        }
        let la = idt.base.wrapping_add(off);
        let lo = Descriptor(self.read_linear(la, 8, Privilege::System)?);
        let hi = self.read_linear(la.wrapping_add(8), 8, Privilege::System)?;
        let ar = lo.access_rights();
        // Only 64-bit interrupt and trap gates; the type field of the upper
        // half must be zero.
        if ar.s() || !matches!(ar.typ(), 14 | 15) || (hi >> 40) & 0x1f != 0 {
            return Err(Event::gp(d.idt_code()));
        }
        if d.source.checks_gate_dpl() && ar.dpl() < cpl {
            return Err(Event::gp(d.idt_code()));
        }
        if !ar.present() {
            return Err(Event::np(d.idt_code()));
        }
        let offset = lo.gate_offset() | (hi & 0xffff_ffff) << 32;
        let sel = lo.gate_selector();
        let (cs, new_cpl) = self.gate_target_cs(sel, ext, cpl)?;
        if !cs.attr.l() || cs.attr.db() {
            return Err(Event::gp(sel_code(sel, ext)));
        }
        if !mmu::is_canonical(offset, self.canonical_bits()) {
            return Err(Event::gp(ext as u32));
        }
        let inter = new_cpl < cpl;
        let ist = lo.gate_ist();
        let rsp = if inter || ist != 0 {
            self.tss64_stack(new_cpl, ist, ext)?
        } else {
            self.cpu.gpr[4]
        };
        let mut stack = NewStack {
            ss: *self.cpu.seg(SegReg::Ss),
            sp: rsp & !0xf,
            long: true,
            cpl: new_cpl,
            fault_code: ext as u32,
        };
        let flags = d.pushed_flags(self.cpu.flags.get());
        let old_ss = self.cpu.seg(SegReg::Ss).selector.0 as u64;
        let old_cs = self.cpu.seg(SegReg::Cs).selector.0 as u64;
        stack.push(self, old_ss, 8)?;
        stack.push(self, self.cpu.gpr[4], 8)?;
        stack.push(self, flags, 8)?;
        stack.push(self, old_cs, 8)?;
        stack.push(self, d.return_rip, 8)?;
        if let Some(code) = d.error_code {
            stack.push(self, code as u64, 8)?;
        }
        // Commit.
        if inter {
            self.cpu.sys.segs[SegReg::Ss as usize] = null_ss(Selector(new_cpl as u16), new_cpl);
        }
        self.cpu.gpr[4] = stack.sp;
        self.cpu.sys.segs[SegReg::Cs as usize] = cs;
        for f in [Rflags::TF, Rflags::NT, Rflags::VM, Rflags::RF] {
            self.cpu.flags.assign(f, false);
        }
        if ar.typ() == 14 {
            self.cpu.flags.assign(Rflags::IF, false);
        }
        self.cpu.rip = offset;
        self.cpu.update_mode();
        Ok(())
    }

    /// RSPn or ISTn from the 64-bit TSS (SDM Vol. 3A 8.7, figure 8-11).
    fn tss64_stack(&mut self, new_cpl: u8, ist: u8, ext: bool) -> Result<u64, Event> {
        let tr = self.cpu.sys.tr;
        let off = if ist != 0 {
            0x24 + 8 * (ist as u64 - 1)
        } else {
            4 + 8 * new_cpl as u64
        };
        if off + 7 > tr.limit as u64 {
            return Err(Event::ts(sel_code(tr.selector, ext)));
        }
        self.read_linear(tr.base.wrapping_add(off), 8, Privilege::System)
    }
}
