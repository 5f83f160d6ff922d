//! Loading segment registers: descriptor fetch and the protection checks of
//! MOV/POP to a segment register and of LDS/LES/LFS/LGS/LSS (SDM Vol. 3A 3.4.5
//! and 5.5-5.8; Vol. 2B MOV "Operation", "IF SS is loaded ..."). Far transfers
//! and interrupt delivery use the same descriptor access.

use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::Privilege;
use mmu::{AccessRights, CpuMode, Descriptor, SegReg, SegmentCache, Selector};

impl Machine {
    /// The linear address of `sel`'s descriptor, or `None` if it is outside
    /// the GDT or LDT limit (or the LDT is unusable).
    pub fn descriptor_address(&self, sel: Selector) -> Option<u64> {
        let (base, limit) = if sel.ti() {
            let ldt = &self.cpu.sys.ldtr;
            if ldt.attr.unusable() || ldt.selector.is_null() {
                return None;
            }
            (ldt.base, ldt.limit as u64)
        } else {
            (self.cpu.sys.gdtr.base, self.cpu.sys.gdtr.limit as u64)
        };
        let off = sel.offset();
        (off + 7 <= limit).then(|| self.wrap_linear(base.wrapping_add(off)))
    }

    /// Reads the 8-byte descriptor `sel` names; `#GP(sel)` (with `ext`) if it is
    /// outside its table.
    pub fn read_descriptor(&mut self, sel: Selector, ext: bool) -> Result<Descriptor, Event> {
        let la = self
            .descriptor_address(sel)
            .ok_or_else(|| Event::gp(sel_code(sel, ext)))?;
        Ok(Descriptor(self.read_linear(la, 8, Privilege::System)?))
    }

    /// Reads the upper half of a 16-byte system descriptor (IA-32e mode).
    pub fn read_descriptor_high(&mut self, sel: Selector, ext: bool) -> Result<u64, Event> {
        let la = self
            .descriptor_address(sel)
            .ok_or_else(|| Event::gp(sel_code(sel, ext)))?;
        let limit_ok = if sel.ti() {
            sel.offset() + 15 <= self.cpu.sys.ldtr.limit as u64
        } else {
            sel.offset() + 15 <= self.cpu.sys.gdtr.limit as u64
        };
        if !limit_ok {
            return Err(Event::gp(sel_code(sel, ext)));
        }
        self.read_linear(self.wrap_linear(la + 8), 8, Privilege::System)
    }

    /// Sets the accessed bit of a code/data descriptor in memory (a locked
    /// update; SDM Vol. 3A 3.4.5.1).
    pub fn set_descriptor_accessed(&mut self, sel: Selector, d: Descriptor) -> Flow {
        if d.access_rights().s() && !d.access_rights().accessed() {
            if let Some(la) = self.descriptor_address(sel) {
                self.write_linear(la + 5, 1, (d.0 >> 40) | 1, Privilege::System)?;
            }
        }
        Ok(())
    }

    /// Loads a data segment register or SS with `sel` as MOV, POP and LxS do,
    /// in the current mode.
    pub fn load_segment(&mut self, seg: SegReg, sel: u16) -> Flow {
        let cache = match self.cpu.mode.mode {
            CpuMode::Real => {
                let mut c = *self.cpu.seg(seg);
                c.load_real(sel);
                c
            }
            CpuMode::Virtual8086 => SegmentCache::real_mode(sel, true),
            _ => self.protected_segment(seg, Selector(sel))?,
        };
        self.cpu.sys.segs[seg as usize] = cache;
        if seg == SegReg::Ss {
            self.cpu.update_mode();
        }
        Ok(())
    }

    /// The checks of SDM Vol. 2B MOV for a protected-mode segment load.
    fn protected_segment(&mut self, seg: SegReg, sel: Selector) -> Result<SegmentCache, Event> {
        let cpl = self.cpu.cpl();
        let code = sel.0 as u32 & 0xfffc;
        if sel.is_null() {
            if seg == SegReg::Ss {
                // 64-bit mode allows a null SS below CPL 3 when RPL = CPL.
                if !(self.cpu.long64() && cpl < 3 && sel.rpl() == cpl) {
                    return Err(Event::gp0());
                }
                return Ok(null_ss(sel, cpl));
            }
            let mut c = SegmentCache::null(sel.0);
            // Intel clears the base of FS/GS on a null load in 64-bit mode;
            // AMD keeps it.
            if self.config.model.vendor == crate::cpu::cpuid::Vendor::Amd {
                c.base = self.cpu.seg(seg).base;
            }
            return Ok(c);
        }
        let d = self.read_descriptor(sel, false)?;
        let ar = d.access_rights();
        if seg == SegReg::Ss {
            if sel.rpl() != cpl || !ar.writable() || ar.dpl() != cpl {
                return Err(Event::gp(code));
            }
            if !ar.present() {
                return Err(Event::ss(code));
            }
        } else {
            if !(ar.is_data() || (ar.is_code() && ar.readable())) {
                return Err(Event::gp(code));
            }
            if (ar.is_data() || !ar.conforming()) && (sel.rpl() > ar.dpl() || cpl > ar.dpl()) {
                return Err(Event::gp(code));
            }
            if !ar.present() {
                return Err(Event::np(code));
            }
        }
        self.set_descriptor_accessed(sel, d)?;
        Ok(d.with_accessed().to_cache(sel))
    }
}

/// The SS of 64-bit mode after a null load or a privilege change through an
/// interrupt gate: selector RPL = CPL, unusable, DPL = CPL so CPL stays
/// readable from SS.DPL (SDM Vol. 3A 6.14.4; the VMCS records it this way).
pub fn null_ss(sel: Selector, cpl: u8) -> SegmentCache {
    SegmentCache {
        selector: sel,
        base: 0,
        limit: 0,
        attr: AccessRights(AccessRights::UNUSABLE | 0x13 | ((cpl as u32) << 5)),
    }
}

/// A selector error code: the selector with RPL replaced by EXT (SDM Vol. 3A
/// 6.13).
pub fn sel_code(sel: Selector, ext: bool) -> u32 {
    (sel.0 as u32 & 0xfffc) | ext as u32
}
