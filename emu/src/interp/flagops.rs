//! Flag instructions: CLC, STC, CMC, CLD, STD, CLI, STI, LAHF, SAHF, SALC
//! (SDM Vol. 2A/2B, one entry each).

use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Instruction, Mnemonic, Register};
use mmu::{CpuMode, Rflags};

/// CLC, STC, CMC, CLD, STD.
pub fn flag_op(m: &mut Machine, i: &Instruction) -> Flow {
    let f = &mut m.cpu.flags;
    match i.mnemonic() {
        Mnemonic::Clc => f.assign(Rflags::CF, false),
        Mnemonic::Stc => f.assign(Rflags::CF, true),
        Mnemonic::Cmc => {
            let c = f.cf();
            f.assign(Rflags::CF, !c)
        }
        Mnemonic::Cld => f.assign(Rflags::DF, false),
        _ => f.assign(Rflags::DF, true),
    }
    Ok(())
}

/// True if the current privilege may change IF directly: real mode, or
/// CPL <= IOPL (virtual-8086 mode: IOPL = 3). SDM Vol. 2A CLI/STI; the VME/PVI
/// virtual-interrupt paths are not advertised.
fn may_change_if(m: &Machine) -> bool {
    let iopl = m.cpu.flags.rflags().iopl();
    match m.cpu.mode.mode {
        CpuMode::Real => true,
        CpuMode::Virtual8086 => iopl == 3,
        _ => m.cpu.cpl() <= iopl,
    }
}

/// CLI.
pub fn cli(m: &mut Machine, _: &Instruction) -> Flow {
    if !may_change_if(m) {
        return Err(Event::gp0());
    }
    m.cpu.flags.assign(Rflags::IF, false);
    Ok(())
}

/// STI: sets IF; interrupts stay blocked until after the next instruction
/// (SDM Vol. 2B STI, Vol. 3A 6.8.3), when IF was clear.
pub fn sti(m: &mut Machine, _: &Instruction) -> Flow {
    if !may_change_if(m) {
        return Err(Event::gp0());
    }
    if !m.cpu.flags.iflag() {
        m.cpu.flags.assign(Rflags::IF, true);
        m.cpu.events.sti_blocking = true;
        m.stop_block = true;
    }
    Ok(())
}

/// LAHF: AH = SF:ZF:0:AF:0:PF:1:CF.
pub fn lahf(m: &mut Machine, _: &Instruction) -> Flow {
    let v = m.cpu.flags.get() & 0xd7 | 2;
    m.write_gpr(Register::AH, v);
    Ok(())
}

/// SAHF: SF, ZF, AF, PF, CF from AH.
pub fn sahf(m: &mut Machine, _: &Instruction) -> Flow {
    let ah = m.read_gpr(Register::AH);
    let mask = Rflags::SF | Rflags::ZF | Rflags::AF | Rflags::PF | Rflags::CF;
    m.cpu.flags.set_masked(ah, mask.bits());
    Ok(())
}

/// SALC (undocumented D6, outside 64-bit mode): AL = CF ? FFH : 00H.
pub fn salc(m: &mut Machine, _: &Instruction) -> Flow {
    let v = if m.cpu.flags.cf() { 0xff } else { 0 };
    m.write_gpr(Register::AL, v);
    Ok(())
}
