//! Far control transfer: JMP and CALL to far pointers (code segments and call
//! gates), RETF and IRET, in real, virtual-8086, protected and IA-32e modes
//! (SDM Vol. 2A CALL, JMP, IRET; Vol. 2B RET; Vol. 3A 5.8 "Privilege level
//! checking when transferring program control between code segments").
//! Task gates and TSS targets (task switches) stop with "unimplemented",
//! except in VMX non-root operation, where they exit to the hypervisor.

use super::operand::size_mask;
use super::task::TaskSource;
use crate::cpu::segmentation::{null_ss, sel_code};
use crate::event::{Event, Flow};
use crate::interrupt::NewStack;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use iced_x86::{Instruction, OpKind};
use mmu::{CpuMode, Descriptor, Rflags, SegReg, SegmentCache, Selector};

/// The far pointer operand of JMP/CALL far: (selector, offset, operand size).
fn far_target(m: &mut Machine, i: &Instruction) -> Result<(u16, u64, usize), Event> {
    match i.op0_kind() {
        OpKind::FarBranch16 => Ok((i.far_branch_selector(), i.far_branch16() as u64, 2)),
        OpKind::FarBranch32 => Ok((i.far_branch_selector(), i.far_branch32() as u64, 4)),
        _ => {
            let size = i.memory_size().size() - 2;
            let seg = m.mem_seg(i);
            let ea = m.effective_address(i);
            let off = m.read_mem(seg, ea, size)?;
            let sel = m.read_mem(seg, ea.wrapping_add(size as u64), 2)? as u16;
            Ok((sel, off, size))
        }
    }
}

impl Machine {
    /// Loads CS in real or virtual-8086 mode and jumps.
    fn far_real(&mut self, sel: u16, off: u64) -> Flow {
        if off > self.cpu.seg(SegReg::Cs).limit as u64 {
            return Err(Event::gp0());
        }
        self.cpu.sys.segs[SegReg::Cs as usize].load_real(sel);
        self.next_rip = off;
        self.stop_block = true;
        Ok(())
    }

    /// Checks an offset against a new code segment (limit, or canonical form
    /// for a 64-bit segment).
    fn check_code_offset(&self, cs: &SegmentCache, off: u64) -> Flow {
        if cs.attr.l() && self.cpu.sys.efer.contains(mmu::Efer::LMA) {
            if !mmu::is_canonical(off, self.canonical_bits()) {
                return Err(Event::gp0());
            }
        } else if off > cs.limit as u64 {
            return Err(Event::gp0());
        }
        Ok(())
    }

    /// Commits a new CS and RIP.
    fn commit_cs(&mut self, cs: SegmentCache, rip: u64) {
        self.cpu.sys.segs[SegReg::Cs as usize] = cs;
        self.next_rip = rip;
        self.cpu.update_mode();
        self.stop_block = true;
    }

    /// Validates a direct far transfer to a code segment (SDM Vol. 3A 5.8.1):
    /// conforming needs DPL <= CPL, nonconforming RPL <= CPL and DPL = CPL.
    fn direct_code(&mut self, sel: Selector, d: Descriptor) -> Result<SegmentCache, Event> {
        let cpl = self.cpu.cpl();
        let ar = d.access_rights();
        let code = sel_code(sel, false);
        let ok = if ar.conforming() {
            ar.dpl() <= cpl
        } else {
            sel.rpl() <= cpl && ar.dpl() == cpl
        };
        if !ok {
            return Err(Event::gp(code));
        }
        if !ar.present() {
            return Err(Event::np(code));
        }
        if self.cpu.sys.efer.contains(mmu::Efer::LMA) && ar.l() && ar.db() {
            return Err(Event::gp(code));
        }
        self.set_descriptor_accessed(sel, d)?;
        Ok(d.with_accessed()
            .to_cache(Selector((sel.0 & !3) | cpl as u16)))
    }

    /// Reads a call gate (8 bytes, or 16 in IA-32e mode) and validates it for
    /// a transfer through it: returns (target selector, offset, 32-bit gate,
    /// parameter count).
    fn read_call_gate(
        &mut self,
        sel: Selector,
        d: Descriptor,
    ) -> Result<(Selector, u64, bool, u8), Event> {
        let cpl = self.cpu.cpl();
        let ar = d.access_rights();
        let code = sel_code(sel, false);
        if ar.dpl() < cpl || sel.rpl() > ar.dpl() {
            return Err(Event::gp(code));
        }
        if !ar.present() {
            return Err(Event::np(code));
        }
        let lma = self.cpu.sys.efer.contains(mmu::Efer::LMA);
        let mut off = d.gate_offset();
        if lma {
            let hi = self.read_descriptor_high(sel, false)?;
            if (hi >> 40) & 0x1f != 0 {
                return Err(Event::gp(code));
            }
            off |= (hi & 0xffff_ffff) << 32;
        } else if ar.typ() == mmu::system_type::CALL_GATE16 {
            off &= 0xffff;
        }
        let gate32 = ar.typ() == mmu::system_type::CALL_GATE;
        Ok((d.gate_selector(), off, gate32, d.gate_param_count()))
    }
}

/// The TSS a JMP/CALL far reaches through a TSS descriptor or a task gate
/// (SDM Vol. 2A JMP/CALL "TASK-GATE" and "TASK-STATE-SEGMENT"): DPL >= CPL and
/// >= RPL, not busy, present; none of it in IA-32e mode.
fn task_target(
    m: &mut Machine,
    sel: Selector,
    d: Descriptor,
) -> Result<(Selector, Descriptor), Event> {
    let ar = d.access_rights();
    let code = sel_code(sel, false);
    if m.cpu.sys.efer.contains(mmu::Efer::LMA) {
        return Err(Event::gp(code));
    }
    let cpl = m.cpu.cpl();
    if ar.dpl() < cpl || ar.dpl() < sel.rpl() {
        return Err(Event::gp(code));
    }
    if ar.typ() == mmu::system_type::TASK_GATE {
        if !ar.present() {
            return Err(Event::np(code));
        }
        return m.task_gate_target(d, Event::gp);
    }
    if matches!(ar.typ(), 3 | 11) {
        return Err(Event::gp(code));
    }
    if !ar.present() {
        return Err(Event::np(code));
    }
    Ok((sel, d))
}

/// IRET with NT = 1 outside IA-32e mode: return to the task in the back link
/// (SDM Vol. 2A IRET "TASK-RETURN"): a busy TSS in the GDT, present.
fn iret_task_return(m: &mut Machine, i: &Instruction) -> Flow {
    let tr = m.cpu.sys.tr;
    let link = Selector(m.read_linear(tr.base & 0xffff_ffff, 2, Privilege::System)? as u16);
    let code = sel_code(link, false);
    if link.ti() || link.is_null() || m.descriptor_address(link).is_none() {
        return Err(Event::ts(code));
    }
    let d = m.read_descriptor(link, false)?;
    let ar = d.access_rights();
    if ar.s() || !matches!(ar.typ(), 3 | 11) {
        return Err(Event::ts(code));
    }
    if !ar.present() {
        return Err(Event::np(code));
    }
    m.cpu.events.nmi_blocked = false;
    m.task_switch(link, d, TaskSource::Iret, m.next_rip, Some(i))
}

/// JMP far.
pub fn jmp_far(m: &mut Machine, i: &Instruction) -> Flow {
    let (sel, off, _) = far_target(m, i)?;
    if matches!(m.cpu.mode.mode, CpuMode::Real | CpuMode::Virtual8086) {
        return m.far_real(sel, off);
    }
    let sel = Selector(sel);
    if sel.is_null() {
        return Err(Event::gp0());
    }
    let d = m.read_descriptor(sel, false)?;
    let ar = d.access_rights();
    if ar.is_code() {
        let cs = m.direct_code(sel, d)?;
        m.check_code_offset(&cs, off)?;
        m.commit_cs(cs, off);
        return Ok(());
    }
    if !ar.s() && is_call_gate(m, ar.typ()) {
        let (tsel, toff, _, _) = m.read_call_gate(sel, d)?;
        let cs = gate_code_segment(m, tsel, true)?;
        m.check_code_offset(&cs, toff)?;
        let cpl = m.cpu.cpl();
        m.commit_cs(
            SegmentCache {
                selector: Selector((tsel.0 & !3) | cpl as u16),
                ..cs
            },
            toff,
        );
        return Ok(());
    }
    if !ar.s() && matches!(ar.typ(), 1 | 3 | 5 | 9 | 11) {
        let (tsel, tdesc) = task_target(m, sel, d)?;
        return m.task_switch(tsel, tdesc, TaskSource::Jmp, m.next_rip, Some(i));
    }
    Err(Event::gp(sel_code(sel, false)))
}

fn is_call_gate(m: &Machine, typ: u8) -> bool {
    if m.cpu.sys.efer.contains(mmu::Efer::LMA) {
        typ == mmu::system_type::CALL_GATE
    } else {
        matches!(
            typ,
            mmu::system_type::CALL_GATE | mmu::system_type::CALL_GATE16
        )
    }
}

/// The code segment a call gate targets: null -> #GP(0), not code or DPL >
/// CPL -> #GP(sel), for JMP a nonconforming DPL must equal CPL; IA-32e gates
/// need a 64-bit segment.
fn gate_code_segment(m: &mut Machine, tsel: Selector, is_jmp: bool) -> Result<SegmentCache, Event> {
    if tsel.is_null() {
        return Err(Event::gp0());
    }
    let cd = m.read_descriptor(tsel, false)?;
    let car = cd.access_rights();
    let code = sel_code(tsel, false);
    let cpl = m.cpu.cpl();
    if !car.is_code() || car.dpl() > cpl || (is_jmp && !car.conforming() && car.dpl() != cpl) {
        return Err(Event::gp(code));
    }
    if m.cpu.sys.efer.contains(mmu::Efer::LMA) && (!car.l() || car.db()) {
        return Err(Event::gp(code));
    }
    if !car.present() {
        return Err(Event::np(code));
    }
    m.set_descriptor_accessed(tsel, cd)?;
    Ok(cd.with_accessed().to_cache(tsel))
}

/// CALL far: to a code segment, or through a call gate (possibly to a more
/// privileged level with a stack switch and parameter copy).
pub fn call_far(m: &mut Machine, i: &Instruction) -> Flow {
    let (sel, off, size) = far_target(m, i)?;
    let old_cs = m.cpu.seg(SegReg::Cs).selector.0 as u64;
    let ret = m.next_rip;
    if matches!(m.cpu.mode.mode, CpuMode::Real | CpuMode::Virtual8086) {
        let mut st = NewStack::current(m, 0);
        st.push(m, old_cs, size)?;
        st.push(m, ret & size_mask(size), size)?;
        m.far_real(sel, off)?;
        m.cpu.gpr[4] = st.rsp(m.cpu.gpr[4]);
        return Ok(());
    }
    let sel = Selector(sel);
    if sel.is_null() {
        return Err(Event::gp0());
    }
    let d = m.read_descriptor(sel, false)?;
    let ar = d.access_rights();
    if ar.is_code() {
        let cs = m.direct_code(sel, d)?;
        m.check_code_offset(&cs, off)?;
        let mut st = NewStack::current(m, 0);
        st.push(m, old_cs, size)?;
        st.push(m, ret & size_mask(size), size)?;
        m.cpu.gpr[4] = st.rsp(m.cpu.gpr[4]);
        m.commit_cs(cs, off);
        return Ok(());
    }
    if !ar.s() && is_call_gate(m, ar.typ()) {
        return call_gate(m, sel, d);
    }
    if !ar.s() && matches!(ar.typ(), 1 | 3 | 5 | 9 | 11) {
        let (tsel, tdesc) = task_target(m, sel, d)?;
        return m.task_switch(tsel, tdesc, TaskSource::Call, m.next_rip, Some(i));
    }
    Err(Event::gp(sel_code(sel, false)))
}

/// CALL through a call gate (SDM Vol. 2A CALL "CALL-GATE").
fn call_gate(m: &mut Machine, sel: Selector, d: Descriptor) -> Flow {
    let (tsel, toff, gate32, params) = m.read_call_gate(sel, d)?;
    let cs = gate_code_segment(m, tsel, false)?;
    let cpl = m.cpu.cpl();
    let lma = m.cpu.sys.efer.contains(mmu::Efer::LMA);
    let size = if lma {
        8
    } else if gate32 {
        4
    } else {
        2
    };
    m.check_code_offset(&cs, toff)?;
    let old_cs = m.cpu.seg(SegReg::Cs).selector.0 as u64;
    let old_ss = *m.cpu.seg(SegReg::Ss);
    let old_sp = m.cpu.gpr[4];
    let ret = m.next_rip;
    let new_cpl = if cs.attr.conforming() {
        cpl
    } else {
        cs.attr.dpl()
    };
    let new_cs = SegmentCache {
        selector: Selector((tsel.0 & !3) | new_cpl as u16),
        ..cs
    };
    if new_cpl < cpl {
        // More privileged: switch stacks from the TSS and copy parameters.
        let mut st = if lma {
            let tr = m.cpu.sys.tr;
            let o = 4 + 8 * new_cpl as u64;
            if o + 7 > tr.limit as u64 {
                return Err(Event::ts(sel_code(tr.selector, false)));
            }
            let rsp = m.read_linear(tr.base.wrapping_add(o), 8, Privilege::System)?;
            NewStack {
                ss: null_ss(Selector(new_cpl as u16), new_cpl),
                sp: rsp,
                long: true,
                cpl: new_cpl,
                fault_code: 0,
            }
        } else {
            // Not an event: EXT = 0 in the error codes.
            m.inner_stack(new_cpl, false)?
        };
        let mut args = Vec::new();
        if !lma {
            for k in (0..params as u64).rev() {
                let v = m.peek_stack(k * size as u64, size)?;
                args.push(v);
            }
        }
        st.push(m, old_ss.selector.0 as u64, size)?;
        st.push(m, old_sp & size_mask(size), size)?;
        for v in args {
            st.push(m, v, size)?;
        }
        st.push(m, old_cs, size)?;
        st.push(m, ret & size_mask(size), size)?;
        m.cpu.sys.segs[SegReg::Ss as usize] = st.ss;
        m.cpu.gpr[4] = st.rsp(0);
        m.commit_cs(new_cs, toff);
        return Ok(());
    }
    let mut st = NewStack::current(m, 0);
    st.push(m, old_cs, size)?;
    st.push(m, ret & size_mask(size), size)?;
    m.cpu.gpr[4] = st.rsp(m.cpu.gpr[4]);
    m.commit_cs(new_cs, toff);
    Ok(())
}

impl Machine {
    /// Validates a return CS for RETF/IRET (SDM Vol. 2B RET "PROTECTED-MODE"):
    /// RPL >= CPL, conforming DPL <= RPL, nonconforming DPL = RPL, present.
    fn return_code_segment(&mut self, sel: Selector) -> Result<SegmentCache, Event> {
        if sel.is_null() {
            return Err(Event::gp0());
        }
        let d = self.read_descriptor(sel, false)?;
        let ar = d.access_rights();
        let code = sel_code(sel, false);
        let cpl = self.cpu.cpl();
        if !ar.is_code() || sel.rpl() < cpl {
            return Err(Event::gp(code));
        }
        if (ar.conforming() && ar.dpl() > sel.rpl()) || (!ar.conforming() && ar.dpl() != sel.rpl())
        {
            return Err(Event::gp(code));
        }
        if !ar.present() {
            return Err(Event::np(code));
        }
        if self.cpu.sys.efer.contains(mmu::Efer::LMA) && ar.l() && ar.db() {
            return Err(Event::gp(code));
        }
        self.set_descriptor_accessed(sel, d)?;
        Ok(d.with_accessed().to_cache(sel))
    }

    /// Validates the SS of a return to an outer level: RPL and DPL equal the
    /// new CPL, writable data, present (a null SS only for a 64-bit return to
    /// CPL < 3).
    fn return_stack_segment(
        &mut self,
        sel: Selector,
        new_cpl: u8,
        to_64: bool,
    ) -> Result<SegmentCache, Event> {
        if sel.is_null() {
            if to_64 && new_cpl < 3 {
                return Ok(null_ss(sel, new_cpl));
            }
            return Err(Event::gp0());
        }
        let d = self.read_descriptor(sel, false)?;
        let ar = d.access_rights();
        let code = sel_code(sel, false);
        if sel.rpl() != new_cpl || ar.dpl() != new_cpl || !ar.writable() {
            return Err(Event::gp(code));
        }
        if !ar.present() {
            return Err(Event::ss(code));
        }
        self.set_descriptor_accessed(sel, d)?;
        Ok(d.with_accessed().to_cache(sel))
    }

    /// After a return to an outer level, data segment registers the new CPL
    /// may not use are loaded with null (SDM Vol. 2B RET, "RETURN-TO-OUTER-
    /// PRIVILEGE-LEVEL").
    fn invalidate_inaccessible_segments(&mut self) {
        let cpl = self.cpu.cpl();
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let c = self.cpu.seg(s);
            let ar = c.attr;
            if !ar.unusable() && (ar.is_data() || !ar.conforming()) && ar.dpl() < cpl {
                self.cpu.sys.segs[s as usize] = SegmentCache::null(0);
            }
        }
    }
}

/// RETF [imm16].
pub fn retf(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.code() {
        iced_x86::Code::Retfw | iced_x86::Code::Retfw_imm16 => 2,
        iced_x86::Code::Retfd | iced_x86::Code::Retfd_imm16 => 4,
        _ => 8,
    };
    let release = if i.op_count() > 0 {
        i.immediate16() as u64
    } else {
        0
    };
    let off = m.peek_stack(0, size)? & size_mask(size);
    let sel = m.peek_stack(size as u64, size)? as u16;
    if matches!(m.cpu.mode.mode, CpuMode::Real | CpuMode::Virtual8086) {
        m.far_real(sel, off)?;
        let sp = m.cpu.gpr[4].wrapping_add(2 * size as u64 + release);
        m.set_sp(sp);
        return Ok(());
    }
    let sel = Selector(sel);
    let cs = m.return_code_segment(sel)?;
    let cpl = m.cpu.cpl();
    m.check_code_offset(&cs, off)?;
    if sel.rpl() == cpl {
        let sp = m.cpu.gpr[4].wrapping_add(2 * size as u64 + release);
        m.set_sp(sp);
        m.commit_cs(cs, off);
        return Ok(());
    }
    let base = 2 * size as u64 + release;
    let new_sp = m.peek_stack(base, size)?;
    let ss_sel = Selector(m.peek_stack(base + size as u64, size)? as u16);
    let to_64 = cs.attr.l() && m.cpu.sys.efer.contains(mmu::Efer::LMA);
    let ss = m.return_stack_segment(ss_sel, sel.rpl(), to_64)?;
    m.cpu.sys.segs[SegReg::Ss as usize] = ss;
    m.commit_cs(cs, off);
    let sp = if ss.attr.db() || to_64 {
        new_sp
    } else {
        (m.cpu.gpr[4] & !0xffff) | (new_sp & 0xffff)
    };
    m.cpu.gpr[4] = sp.wrapping_add(release)
        & if to_64 {
            u64::MAX
        } else if ss.attr.db() {
            0xffff_ffff
        } else {
            u64::MAX
        };
    m.invalidate_inaccessible_segments();
    Ok(())
}

/// The RFLAGS bits IRET may change at the current privilege (SDM Vol. 2A IRET
/// "Operation": IOPL only at CPL 0, IF only at CPL <= IOPL; VIF/VIP/VM never
/// in this path; a 16-bit IRET changes only the low word).
fn iret_flag_mask(m: &Machine, size: usize) -> u64 {
    let mut mask = Rflags::DEFINED & !(Rflags::VM | Rflags::VIF | Rflags::VIP).bits();
    let cpl = m.cpu.cpl();
    let iopl = m.cpu.flags.rflags().iopl();
    if m.cpu.mode.mode != CpuMode::Real && cpl > 0 {
        mask &= !Rflags::IOPL.bits();
    }
    if m.cpu.mode.mode != CpuMode::Real && cpl > iopl {
        mask &= !Rflags::IF.bits();
    }
    if size == 2 {
        mask &= 0xffff;
    }
    mask
}

/// IRET, IRETD, IRETQ.
pub fn iret(m: &mut Machine, i: &Instruction) -> Flow {
    let size = match i.mnemonic() {
        iced_x86::Mnemonic::Iret => 2,
        iced_x86::Mnemonic::Iretd => 4,
        _ => 8,
    };
    m.intercept(i, crate::virt::Intercept::Iret)?;
    let mode = m.cpu.mode.mode;
    if mode == CpuMode::Virtual8086 && m.cpu.flags.rflags().iopl() < 3 {
        return Err(Event::gp0());
    }
    let off = m.peek_stack(0, size)? & size_mask(size);
    let sel = m.peek_stack(size as u64, size)? as u16;
    let flags = m.peek_stack(2 * size as u64, size)?;
    // IRET unblocks NMIs (SDM Vol. 3A 6.7.1).
    let unblock_nmi = |m: &mut Machine| m.cpu.events.nmi_blocked = false;
    if matches!(mode, CpuMode::Real | CpuMode::Virtual8086) {
        m.far_real(sel, off)?;
        let sp = m.cpu.gpr[4].wrapping_add(3 * size as u64);
        m.set_sp(sp);
        let mut mask = iret_flag_mask(m, size);
        if mode == CpuMode::Virtual8086 {
            mask &= !Rflags::IOPL.bits();
        }
        m.cpu.flags.set_masked(flags, mask);
        unblock_nmi(m);
        m.cpu.update_mode();
        return Ok(());
    }
    let lma = m.cpu.sys.efer.contains(mmu::Efer::LMA);
    if m.cpu.flags.has(Rflags::NT) {
        if lma {
            return Err(Event::gp0());
        }
        return iret_task_return(m, i);
    }
    if !lma && flags & Rflags::VM.bits() != 0 && m.cpu.cpl() == 0 && size == 4 {
        return iret_to_v86(m, off, sel, flags);
    }
    let sel = Selector(sel);
    let cs = m.return_code_segment(sel)?;
    let cpl = m.cpu.cpl();
    let to_64 = lma && cs.attr.l();
    m.check_code_offset(&cs, off)?;
    let mask = iret_flag_mask(m, size);
    if sel.rpl() > cpl || m.cpu.long64() {
        let new_sp = m.peek_stack(3 * size as u64, size)?;
        let ss_sel = Selector(m.peek_stack(4 * size as u64, size)? as u16);
        let ss = m.return_stack_segment(ss_sel, sel.rpl(), to_64)?;
        m.cpu.sys.segs[SegReg::Ss as usize] = ss;
        m.cpu.gpr[4] = if size == 2 {
            (m.cpu.gpr[4] & !0xffff) | (new_sp & 0xffff)
        } else {
            new_sp & size_mask(size)
        };
        m.cpu.flags.set_masked(flags, mask);
        m.commit_cs(cs, off);
        if sel.rpl() > cpl {
            m.invalidate_inaccessible_segments();
        }
    } else {
        let sp = m.cpu.gpr[4].wrapping_add(3 * size as u64);
        m.set_sp(sp);
        m.cpu.flags.set_masked(flags, mask);
        m.commit_cs(cs, off);
    }
    unblock_nmi(m);
    m.cpu.update_mode();
    Ok(())
}

/// IRET from CPL 0 to virtual-8086 mode (SDM Vol. 2A IRET "RETURN-TO-VIRTUAL-
/// 8086-MODE"): pops ESP, SS, ES, DS, FS, GS and loads them as 8086 segments.
fn iret_to_v86(m: &mut Machine, off: u64, sel: u16, flags: u64) -> Flow {
    let mut vals = [0u64; 6];
    for (k, v) in vals.iter_mut().enumerate() {
        *v = m.peek_stack(12 + 4 * k as u64, 4)?;
    }
    let [esp, ss, es, ds, fs, gs] = vals;
    m.cpu.flags.set(flags & Rflags::DEFINED);
    for (s, v) in [
        (SegReg::Cs, sel as u64),
        (SegReg::Ss, ss),
        (SegReg::Es, es),
        (SegReg::Ds, ds),
        (SegReg::Fs, fs),
        (SegReg::Gs, gs),
    ] {
        m.cpu.sys.segs[s as usize] = SegmentCache::real_mode(v as u16, true);
    }
    m.cpu.sys.segs[SegReg::Cs as usize].attr = mmu::AccessRights(0xfb);
    m.cpu.gpr[4] = esp & 0xffff_ffff;
    m.next_rip = off & 0xffff;
    m.cpu.events.nmi_blocked = false;
    m.cpu.update_mode();
    m.stop_block = true;
    Ok(())
}
