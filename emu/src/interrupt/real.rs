//! Real-address-mode delivery through the interrupt vector table (SDM Vol. 3A
//! 20.1.4, "Interrupt and exception handling"; Vol. 2A INT n "REAL-ADDRESS-MODE").

use super::Delivery;
use crate::event::Event;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use mmu::{Rflags, SegReg};

impl Machine {
    pub(super) fn deliver_real(&mut self, d: &Delivery) -> Result<(), Event> {
        let entry = d.vector as u64 * 4;
        if entry + 3 > self.cpu.sys.idtr.limit as u64 {
            return Err(Event::gp0());
        }
        let la = self.cpu.sys.idtr.base.wrapping_add(entry) & 0xffff_ffff;
        let vec = self.read_linear(la, 4, Privilege::System)?;
        let flags = d.pushed_flags(self.cpu.flags.get());
        let cs = self.cpu.seg(SegReg::Cs).selector.0 as u64;
        let old_sp = self.cpu.gpr[4];
        let pushed = (|| {
            self.push(flags & 0xffff, 2)?;
            self.push(cs, 2)?;
            self.push(d.return_rip & 0xffff, 2)
        })();
        if let Err(e) = pushed {
            self.cpu.gpr[4] = old_sp;
            return Err(e);
        }
        for f in [Rflags::IF, Rflags::TF, Rflags::AC, Rflags::RF] {
            self.cpu.flags.assign(f, false);
        }
        self.cpu.sys.segs[SegReg::Cs as usize].load_real((vec >> 16) as u16);
        self.cpu.rip = vec & 0xffff;
        Ok(())
    }
}
