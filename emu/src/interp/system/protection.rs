//! Instructions of the paging protection features: STAC and CLAC (SMAP),
//! RDPKRU and WRPKRU (protection keys) (SDM Vol. 2B entries; Vol. 3A 4.6).
//! INVPCID lives with INVLPG in `misc`.

use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic};
use mmu::{Cr4, Rflags};

/// STAC, CLAC: set or clear RFLAGS.AC; #UD at CPL > 0.
pub fn stac_clac(m: &mut Machine, i: &Instruction) -> Flow {
    if m.cpu.cpl() > 0 {
        return Err(Event::ud());
    }
    m.cpu
        .flags
        .assign(Rflags::AC, i.mnemonic() == Mnemonic::Stac);
    m.cpu.update_mode();
    Ok(())
}

/// RDPKRU: EAX = PKRU, EDX = 0; #UD without CR4.PKE, #GP(0) if ECX != 0.
pub fn rdpkru(m: &mut Machine, _: &Instruction) -> Flow {
    if !m.cpu.sys.cr4.contains(Cr4::PKE) {
        return Err(Event::ud());
    }
    if m.cpu.gpr[1] as u32 != 0 {
        return Err(Event::gp0());
    }
    m.cpu.gpr[0] = m.cpu.pkru as u64;
    m.cpu.gpr[2] = 0;
    Ok(())
}

/// WRPKRU: PKRU = EAX; #UD without CR4.PKE, #GP(0) if ECX or EDX != 0.
pub fn wrpkru(m: &mut Machine, _: &Instruction) -> Flow {
    if !m.cpu.sys.cr4.contains(Cr4::PKE) {
        return Err(Event::ud());
    }
    if m.cpu.gpr[1] as u32 != 0 || m.cpu.gpr[2] as u32 != 0 {
        return Err(Event::gp0());
    }
    m.cpu.pkru = m.cpu.gpr[0] as u32;
    m.paging_changed();
    Ok(())
}
