//! Hardware task switching (SDM Vol. 3A 7.3, "Task switching"; table 7-2 for the
//! busy bit, NT flag and previous-task link): JMP and CALL to a TSS or task
//! gate, IRET with NT = 1, and interrupts and exceptions through a task gate.
//! Not available in IA-32e mode (#GP, checked by the callers).
//!
//! The switch validates everything before its commit point (the new TSS, both
//! TSSs' memory), then saves the old task, updates busy bits and the link, and
//! loads TR. Segment faults found while loading the new task's state after the
//! commit point are raised in the new task's context, as the SDM describes.

use crate::cpu::segmentation::sel_code;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::Privilege;
use crate::virt::Intercept;
use mmu::{Cr0, Descriptor, Rflags, SegReg, SegmentCache, Selector};

/// What started a task switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSource {
    /// JMP to a TSS or task gate.
    Jmp,
    /// CALL to a TSS or task gate.
    Call,
    /// IRET with RFLAGS.NT = 1 (return to the previous task).
    Iret,
    /// An interrupt or exception through a task gate; the error code is pushed
    /// on the new task's stack.
    Interrupt {
        /// Error code to push.
        error_code: Option<u32>,
        /// A fault: the EFLAGS image saved in the outgoing TSS has RF = 1
        /// (SDM Vol. 3B 18.3.1.1, as for the image a fault pushes).
        push_rf: bool,
    },
}

/// Offsets of a 32-bit TSS (SDM Vol. 3A figure 7-2).
mod tss32 {
    pub const CR3: u64 = 0x1c;
    pub const EIP: u64 = 0x20;
    pub const EFLAGS: u64 = 0x24;
    pub const EAX: u64 = 0x28;
    pub const ES: u64 = 0x48;
    pub const LDT: u64 = 0x60;
    pub const T: u64 = 0x64;
}

/// Offsets of a 16-bit TSS (SDM Vol. 3A figure 7-11).
mod tss16 {
    pub const IP: u64 = 0x0e;
    pub const FLAGS: u64 = 0x10;
    pub const AX: u64 = 0x12;
    pub const ES: u64 = 0x22;
    pub const LDT: u64 = 0x2a;
}

/// The register state a task switch reads from the new TSS.
struct TaskState {
    cr3: Option<u64>,
    eip: u64,
    eflags: u64,
    gprs: [u64; 8],
    /// ES, CS, SS, DS, FS, GS.
    segs: [u16; 6],
    ldt: u16,
    trap: bool,
}

impl Machine {
    fn sys_read(&mut self, la: u64, size: usize) -> Result<u64, Event> {
        self.read_linear(la & 0xffff_ffff, size, Privilege::System)
    }

    fn sys_write(&mut self, la: u64, size: usize, v: u64) -> Flow {
        self.write_linear(la & 0xffff_ffff, size, v, Privilege::System)
    }

    /// Sets or clears the busy bit (type bit 1) of the TSS descriptor `sel`
    /// in the GDT.
    fn set_tss_busy(&mut self, sel: Selector, busy: bool) -> Flow {
        let la = self.cpu.sys.gdtr.base.wrapping_add(sel.offset()) + 5;
        let b = self.sys_read(la, 1)?;
        let v = if busy { b | 2 } else { b & !2 };
        self.sys_write(la, 1, v)
    }

    /// Switches to the task whose TSS descriptor is `desc` (selector `sel`).
    /// `return_eip` is the EIP saved in the old task (the next instruction,
    /// or the faulting one for a fault).
    pub(crate) fn task_switch(
        &mut self,
        sel: Selector,
        desc: Descriptor,
        source: TaskSource,
        return_eip: u64,
        i: Option<&iced_x86::Instruction>,
    ) -> Flow {
        let ar = desc.access_rights();
        let new32 = matches!(ar.typ(), 9 | 11);
        let new_max = if new32 { 0x67 } else { 0x2b };
        let code = sel_code(sel, false);
        if desc.limit() < new_max {
            return Err(Event::ts(code));
        }
        // The task-switch VM exit / intercept comes after the new TSS
        // descriptor checks (SDM Vol. 3C 26.4.2; APM Vol. 2 15.14.1). Task
        // switches through an IDT task gate have no instruction of their own.
        let none = iced_x86::Instruction::default();
        self.intercept(
            i.unwrap_or(&none),
            Intercept::TaskSwitch {
                selector: sel.0,
                source,
            },
        )?;
        let old_tr = self.cpu.sys.tr;
        let old32 = matches!(old_tr.attr.typ(), 9 | 11);
        let old_max = if old32 { 0x5f } else { 0x29 };
        if old_tr.limit < old_max {
            return Err(Event::ts(sel_code(old_tr.selector, false)));
        }
        let nbase = desc.base();
        let obase = old_tr.base;
        // Everything the switch touches must be accessible before anything
        // changes (the commit point is after saving the old state).
        let new_state = self.read_task_state(nbase, new32)?;
        for (base, max) in [(obase, old_max), (nbase, new_max)] {
            let la = base & 0xffff_ffff;
            self.translate(
                la,
                crate::memory::access::AccessKind::Write,
                Privilege::System,
            )?;
            self.translate(
                (la + max as u64) & 0xffff_ffff,
                crate::memory::access::AccessKind::Write,
                Privilege::System,
            )?;
        }
        if matches!(source, TaskSource::Jmp | TaskSource::Iret) {
            self.set_tss_busy(old_tr.selector, false)?;
        }
        let mut old_flags = self.cpu.flags.get();
        if let TaskSource::Interrupt { push_rf: true, .. } = source {
            old_flags |= Rflags::RF.bits();
        }
        if source == TaskSource::Iret {
            old_flags &= !Rflags::NT.bits();
        }
        self.save_task_state(obase, old32, return_eip, old_flags)?;
        if matches!(source, TaskSource::Call | TaskSource::Interrupt { .. }) {
            self.sys_write(nbase, 2, old_tr.selector.0 as u64)?;
        }
        if source != TaskSource::Iret {
            self.set_tss_busy(sel, true)?;
        }
        // Commit point.
        let mut tr = desc.to_cache(sel);
        tr.attr = mmu::AccessRights(tr.attr.0 | 2);
        self.cpu.sys.tr = tr;
        self.cpu.sys.cr0 |= Cr0::TS;
        // A task switch clears the local breakpoint enables (SDM Vol. 3B
        // 18.2.4).
        self.cpu.sys.dr7 = mmu::Dr7::from_bits_retain(self.cpu.sys.dr7.bits() & !0x155);
        self.debug_changed();
        self.load_task_state(new_state, source, new32)?;
        if let TaskSource::Interrupt {
            error_code: Some(e),
            ..
        } = source
        {
            let size = if new32 { 4 } else { 2 };
            self.push(e as u64, size)?;
        }
        self.stop_block = true;
        Ok(())
    }

    fn read_task_state(&mut self, base: u64, is32: bool) -> Result<TaskState, Event> {
        let mut s = TaskState {
            cr3: None,
            eip: 0,
            eflags: 0,
            gprs: [0; 8],
            segs: [0; 6],
            ldt: 0,
            trap: false,
        };
        if is32 {
            if self.cpu.sys.cr0.contains(Cr0::PG) {
                s.cr3 = Some(self.sys_read(base + tss32::CR3, 4)?);
            }
            s.eip = self.sys_read(base + tss32::EIP, 4)?;
            s.eflags = self.sys_read(base + tss32::EFLAGS, 4)?;
            for (k, g) in s.gprs.iter_mut().enumerate() {
                *g = self.sys_read(base + tss32::EAX + 4 * k as u64, 4)?;
            }
            for (k, v) in s.segs.iter_mut().enumerate() {
                *v = self.sys_read(base + tss32::ES + 4 * k as u64, 2)? as u16;
            }
            s.ldt = self.sys_read(base + tss32::LDT, 2)? as u16;
            s.trap = self.sys_read(base + tss32::T, 2)? & 1 != 0;
        } else {
            s.eip = self.sys_read(base + tss16::IP, 2)?;
            s.eflags = self.sys_read(base + tss16::FLAGS, 2)?;
            // A 16-bit TSS leaves the upper halves of the registers as ones.
            for (k, g) in s.gprs.iter_mut().enumerate() {
                *g = 0xffff_0000 | self.sys_read(base + tss16::AX + 2 * k as u64, 2)?;
            }
            for (k, v) in s.segs.iter_mut().take(4).enumerate() {
                *v = self.sys_read(base + tss16::ES + 2 * k as u64, 2)? as u16;
            }
            s.ldt = self.sys_read(base + tss16::LDT, 2)? as u16;
        }
        Ok(s)
    }

    fn save_task_state(&mut self, base: u64, is32: bool, eip: u64, eflags: u64) -> Flow {
        let segs: [u16; 6] = SegReg::ALL.map(|s| self.cpu.seg(s).selector.0);
        if is32 {
            self.sys_write(base + tss32::EIP, 4, eip)?;
            self.sys_write(base + tss32::EFLAGS, 4, eflags)?;
            for k in 0..8 {
                self.sys_write(base + tss32::EAX + 4 * k as u64, 4, self.cpu.gpr[k])?;
            }
            for (k, v) in segs.iter().enumerate() {
                self.sys_write(base + tss32::ES + 4 * k as u64, 2, *v as u64)?;
            }
        } else {
            self.sys_write(base + tss16::IP, 2, eip)?;
            self.sys_write(base + tss16::FLAGS, 2, eflags)?;
            for k in 0..8 {
                self.sys_write(base + tss16::AX + 2 * k as u64, 2, self.cpu.gpr[k])?;
            }
            for (k, v) in segs.iter().take(4).enumerate() {
                self.sys_write(base + tss16::ES + 2 * k as u64, 2, *v as u64)?;
            }
        }
        Ok(())
    }

    /// Loads the new task's state (after the commit point): registers first,
    /// then the LDT and segment descriptors with their checks (#TS/#NP/#SS in
    /// the new task).
    fn load_task_state(&mut self, s: TaskState, source: TaskSource, is32: bool) -> Flow {
        for (k, g) in s.gprs.iter().enumerate() {
            self.cpu.gpr[k] = *g;
        }
        let mut eflags = s.eflags;
        if matches!(source, TaskSource::Call | TaskSource::Interrupt { .. }) {
            eflags |= Rflags::NT.bits();
        }
        self.cpu.flags.set(eflags & Rflags::DEFINED);
        self.next_rip = s.eip;
        self.cpu.rip = s.eip;
        // Selectors first, with empty caches: a fault below leaves them loaded.
        for (k, sel) in s.segs.iter().enumerate() {
            self.cpu.sys.segs[k] = SegmentCache::null(*sel);
        }
        self.cpu.sys.ldtr = SegmentCache::null(s.ldt);
        if let Some(cr3) = s.cr3 {
            if cr3 != self.cpu.sys.cr3 {
                self.write_cr3(cr3)?;
            }
        }
        let ldt = Selector(s.ldt);
        if ldt.ti() {
            return Err(Event::ts(sel_code(ldt, false)));
        }
        if !ldt.is_null() {
            let d = self.task_descriptor(ldt)?;
            let ar = d.access_rights();
            if ar.s() || ar.typ() != mmu::system_type::LDT || !ar.present() {
                return Err(Event::ts(sel_code(ldt, false)));
            }
            self.cpu.sys.ldtr = d.to_cache(ldt);
        }
        if eflags & Rflags::VM.bits() != 0 {
            for (k, sel) in s.segs.iter().enumerate() {
                self.cpu.sys.segs[k] = SegmentCache::real_mode(*sel, true);
            }
            self.cpu.sys.segs[SegReg::Cs as usize].attr = mmu::AccessRights(0xfb);
            self.cpu.update_mode();
        } else {
            self.load_task_segments(&s.segs)?;
        }
        if is32 && s.trap {
            return Err(Event::DebugTrap { dr6: mmu::dr6::BT });
        }
        Ok(())
    }

    /// SS and CS, then the data segments, with the checks of SDM Vol. 3A 7.3
    /// step 12 and table 7-1 ("Exception conditions checked during a task
    /// switch").
    fn load_task_segments(&mut self, segs: &[u16; 6]) -> Flow {
        let cs = Selector(segs[SegReg::Cs as usize]);
        let ss = Selector(segs[SegReg::Ss as usize]);
        let ts = |s: Selector| Event::ts(sel_code(s, false));
        if ss.is_null() {
            return Err(ts(ss));
        }
        let d = self.task_descriptor(ss)?;
        let ar = d.access_rights();
        if !ar.writable() {
            return Err(ts(ss));
        }
        if !ar.present() {
            return Err(Event::ss(sel_code(ss, false)));
        }
        if ar.dpl() != cs.rpl() || ar.dpl() != ss.rpl() {
            return Err(ts(ss));
        }
        self.set_descriptor_accessed(ss, d)?;
        self.cpu.sys.segs[SegReg::Ss as usize] = d.with_accessed().to_cache(ss);
        if cs.is_null() {
            return Err(ts(cs));
        }
        let d = self.task_descriptor(cs)?;
        let ar = d.access_rights();
        if !ar.is_code()
            || (!ar.conforming() && ar.dpl() != cs.rpl())
            || (ar.conforming() && ar.dpl() > cs.rpl())
        {
            return Err(ts(cs));
        }
        if !ar.present() {
            return Err(Event::np(sel_code(cs, false)));
        }
        self.set_descriptor_accessed(cs, d)?;
        self.cpu.sys.segs[SegReg::Cs as usize] = d.with_accessed().to_cache(cs);
        self.cpu.update_mode();
        for seg in [SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs] {
            let sel = Selector(segs[seg as usize]);
            if sel.is_null() {
                continue;
            }
            let d = self.task_descriptor(sel)?;
            let ar = d.access_rights();
            if !(ar.is_data() || (ar.is_code() && ar.readable())) {
                return Err(ts(sel));
            }
            if (ar.is_data() || !ar.conforming()) && (sel.rpl() > ar.dpl() || cs.rpl() > ar.dpl()) {
                return Err(ts(sel));
            }
            if !ar.present() {
                return Err(Event::np(sel_code(sel, false)));
            }
            self.set_descriptor_accessed(sel, d)?;
            self.cpu.sys.segs[seg as usize] = d.with_accessed().to_cache(sel);
        }
        Ok(())
    }

    /// A descriptor read while loading a new task: outside its table is
    /// #TS(selector); paging faults stay what they are.
    fn task_descriptor(&mut self, sel: Selector) -> Result<Descriptor, Event> {
        if self.descriptor_address(sel).is_none() {
            return Err(Event::ts(sel_code(sel, false)));
        }
        self.read_descriptor(sel, false)
    }

    /// Resolves the TSS a task gate names (SDM Vol. 3A 7.3 step 1 and 7.2.5):
    /// in the GDT, an available (or, for `busy_ok`, busy) TSS, present.
    pub(crate) fn task_gate_target(
        &mut self,
        gate: Descriptor,
        fault: fn(u32) -> Event,
    ) -> Result<(Selector, Descriptor), Event> {
        let sel = gate.gate_selector();
        let code = sel_code(sel, false);
        if sel.ti() || sel.is_null() {
            return Err(fault(code));
        }
        if self.descriptor_address(sel).is_none() {
            return Err(fault(code));
        }
        let d = self.read_descriptor(sel, false)?;
        let ar = d.access_rights();
        if ar.s() || !matches!(ar.typ(), 1 | 9) {
            return Err(fault(code));
        }
        if !ar.present() {
            return Err(Event::np(code));
        }
        Ok((sel, d))
    }
}
