//! Protected-mode and virtual-8086-mode delivery through 8-byte interrupt and
//! trap gates (SDM Vol. 3A 6.12, "Exception and interrupt handling", and 20.3.1;
//! Vol. 2A INT n "PROTECTED-MODE" pseudocode).

use super::{Delivery, NewStack};
use crate::cpu::segmentation::sel_code;
use crate::event::Event;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use mmu::{Descriptor, Rflags, SegReg, SegmentCache, Selector};

impl Machine {
    pub(super) fn deliver_protected(&mut self, d: &Delivery) -> Result<(), Event> {
        let ext = d.source.ext();
        let cpl = self.cpu.cpl();
        let idt = self.cpu.sys.idtr;
        let off = d.vector as u64 * 8;
        if off + 7 > idt.limit as u64 {
            return Err(Event::gp(d.idt_code()));
        }
        let gate = Descriptor(self.read_linear(
            idt.base.wrapping_add(off) & 0xffff_ffff,
            8,
            Privilege::System,
        )?);
        let ar = gate.access_rights();
        if ar.s() || !matches!(ar.typ(), 5 | 6 | 7 | 14 | 15) {
            return Err(Event::gp(d.idt_code()));
        }
        if d.source.checks_gate_dpl() && ar.dpl() < cpl {
            return Err(Event::gp(d.idt_code()));
        }
        if !ar.present() {
            return Err(Event::np(d.idt_code()));
        }
        if ar.typ() == 5 {
            let (sel, desc) = self.task_gate_target(gate, Event::gp)?;
            return self.task_switch(
                sel,
                desc,
                crate::interp::task::TaskSource::Interrupt {
                    error_code: d.error_code,
                    push_rf: d.push_rf,
                },
                d.return_rip,
                None,
            );
        }
        let gate32 = ar.typ() >= 14;
        let interrupt_gate = matches!(ar.typ(), 6 | 14);
        let sel = gate.gate_selector();
        let offset = if gate32 {
            gate.gate_offset()
        } else {
            gate.gate_offset() & 0xffff
        };
        let (cs, new_cpl) = self.gate_target_cs(sel, ext, cpl)?;
        let vm = self.cpu.flags.has(Rflags::VM);
        let inter = new_cpl < cpl;
        if vm && (!inter || new_cpl != 0) {
            return Err(Event::gp(sel_code(sel, ext)));
        }
        if offset > cs.limit as u64 {
            return Err(Event::gp(ext as u32));
        }
        let size = if gate32 { 4 } else { 2 };
        let flags = d.pushed_flags(self.cpu.flags.get());
        let mut stack = if inter {
            self.inner_stack(new_cpl, ext)?
        } else {
            NewStack::current(self, ext as u32)
        };
        if inter {
            let old_ss = self.cpu.seg(SegReg::Ss).selector.0 as u64;
            if vm {
                for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                    let v = self.cpu.seg(s).selector.0 as u64;
                    stack.push(self, v, size)?;
                }
            }
            stack.push(self, old_ss, size)?;
            stack.push(self, self.cpu.gpr[4] & mask(size), size)?;
        }
        stack.push(self, flags & mask(size), size)?;
        let old_cs = self.cpu.seg(SegReg::Cs).selector.0 as u64;
        stack.push(self, old_cs, size)?;
        stack.push(self, d.return_rip & mask(size), size)?;
        if let Some(code) = d.error_code {
            stack.push(self, code as u64, size)?;
        }
        // Commit.
        if vm {
            for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                self.cpu.sys.segs[s as usize] = SegmentCache::null(0);
            }
        }
        if inter {
            self.cpu.sys.segs[SegReg::Ss as usize] = stack.ss;
        }
        self.cpu.gpr[4] = stack.rsp(self.cpu.gpr[4]);
        self.cpu.sys.segs[SegReg::Cs as usize] = cs;
        for f in [Rflags::TF, Rflags::NT, Rflags::VM, Rflags::RF] {
            self.cpu.flags.assign(f, false);
        }
        if interrupt_gate {
            self.cpu.flags.assign(Rflags::IF, false);
        }
        self.cpu.rip = offset;
        self.cpu.update_mode();
        Ok(())
    }

    /// Validates the code segment a gate points to (SDM Vol. 2A INT n: null ->
    /// #GP(EXT); not code or DPL > CPL -> #GP(sel); not present -> #NP(sel)) and
    /// returns its cache (RPL = new CPL) and the new CPL.
    pub(crate) fn gate_target_cs(
        &mut self,
        sel: Selector,
        ext: bool,
        cpl: u8,
    ) -> Result<(SegmentCache, u8), Event> {
        if sel.is_null() {
            return Err(Event::gp(ext as u32));
        }
        let cd = self.read_descriptor(sel, ext)?;
        let car = cd.access_rights();
        if !car.is_code() || car.dpl() > cpl {
            return Err(Event::gp(sel_code(sel, ext)));
        }
        if !car.present() {
            return Err(Event::np(sel_code(sel, ext)));
        }
        let new_cpl = if car.conforming() { cpl } else { car.dpl() };
        self.set_descriptor_accessed(sel, cd)?;
        let cache = cd
            .with_accessed()
            .to_cache(Selector((sel.0 & !3) | new_cpl as u16));
        Ok((cache, new_cpl))
    }

    /// The inner-level stack from a 16- or 32-bit TSS for `new_cpl`, with
    /// the #TS/#SS checks of SDM Vol. 2A INT n "INTER-PRIVILEGE-LEVEL-INTERRUPT"
    /// (`ext`: the event is external) and CALL through a call gate to a more
    /// privileged level (the same checks, EXT = 0).
    pub(crate) fn inner_stack(&mut self, new_cpl: u8, ext: bool) -> Result<NewStack, Event> {
        let tr = self.cpu.sys.tr;
        let tr_code = sel_code(tr.selector, ext);
        let tss32 = matches!(tr.attr.typ(), 9 | 11);
        let (sp_off, ss_off, sp_size) = if tss32 {
            (4 + 8 * new_cpl as u64, 8 + 8 * new_cpl as u64, 4)
        } else {
            (2 + 4 * new_cpl as u64, 4 + 4 * new_cpl as u64, 2)
        };
        if ss_off + 1 > tr.limit as u64 {
            return Err(Event::ts(tr_code));
        }
        let sp = self.read_linear(
            tr.base.wrapping_add(sp_off) & 0xffff_ffff,
            sp_size,
            Privilege::System,
        )?;
        let ss_sel = Selector(self.read_linear(
            tr.base.wrapping_add(ss_off) & 0xffff_ffff,
            2,
            Privilege::System,
        )? as u16);
        let ss_code = sel_code(ss_sel, ext);
        if ss_sel.is_null() {
            return Err(Event::ts(ext as u32));
        }
        if self.descriptor_address(ss_sel).is_none() {
            return Err(Event::ts(ss_code));
        }
        let sd = self.read_descriptor(ss_sel, ext)?;
        let sar = sd.access_rights();
        if ss_sel.rpl() != new_cpl || sar.dpl() != new_cpl || !sar.writable() {
            return Err(Event::ts(ss_code));
        }
        if !sar.present() {
            return Err(Event::ss(ss_code));
        }
        self.set_descriptor_accessed(ss_sel, sd)?;
        Ok(NewStack {
            ss: sd.with_accessed().to_cache(ss_sel),
            sp,
            long: false,
            cpl: new_cpl,
            fault_code: ss_code,
        })
    }
}

fn mask(size: usize) -> u64 {
    crate::interp::operand::size_mask(size)
}
