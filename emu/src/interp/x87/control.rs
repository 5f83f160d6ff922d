//! Control instructions: FNINIT, FNCLEX, FLDCW, FNSTCW, FNSTSW, FWAIT,
//! FNOP and the no-op legacy FNENI/FNDISI/FNSETPM (SDM Vol. 1 8.3.11-8.3.13;
//! Vol. 2A entries). The FWAIT-prefixed forms (FINIT, FCLEX, FSTCW, FSTSW,
//! FSTENV, FSAVE) decode as WAIT followed by the FN instruction.

use super::float::exc;
use super::read_operand;
use super::state::{check_nm, pending_error, prologue, release_ferr, sw, update_pointers};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, OpKind, Register};
use mmu::Cr0;

/// FCW bits that read back as written (the rest of 7, 13-15 read 0); bit 6
/// reads as 1 (SDM Vol. 1 figure 8-6, reserved bits).
pub const FCW_WRITABLE: u16 = 0x1f3f;
/// FCW bit 6, reserved, always 1.
pub const FCW_ONE: u16 = 0x0040;

/// The control word as stored after loading `v`.
pub fn fcw_of(v: u16) -> u16 {
    (v & FCW_WRITABLE) | FCW_ONE
}

/// FNINIT: the initial x87 state (no wait).
pub fn fninit(m: &mut Machine, _: &Instruction) -> Flow {
    check_nm(m)?;
    m.cpu.fpu.init_x87();
    if m.dev.ferr.asserted {
        release_ferr(m);
    }
    Ok(())
}

/// FNCLEX: clears the exception flags, SF, ES and B (no wait).
pub fn fnclex(m: &mut Machine, _: &Instruction) -> Flow {
    check_nm(m)?;
    m.cpu.fpu.fsw &= !(exc::ALL as u16 | sw::SF | sw::ES | sw::B);
    if m.dev.ferr.asserted {
        release_ferr(m);
    }
    Ok(())
}

/// FLDCW m2byte: a newly unmasked pending flag makes ES set, to be reported
/// at the next waiting instruction (SDM Vol. 2A FLDCW).
pub fn fldcw(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let v = read_operand(m, i)? as u16;
    m.cpu.fpu.fcw = fcw_of(v);
    m.cpu.fpu.update_summary();
    Ok(())
}

/// FNSTCW m2byte (no wait).
pub fn fnstcw(m: &mut Machine, i: &Instruction) -> Flow {
    check_nm(m)?;
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    m.write_mem(seg, off, 2, m.cpu.fpu.fcw as u64)
}

/// FNSTSW AX / m2byte (no wait).
pub fn fnstsw(m: &mut Machine, i: &Instruction) -> Flow {
    check_nm(m)?;
    let v = m.cpu.fpu.fsw as u64;
    if i.op_kind(0) == OpKind::Register {
        m.write_gpr(Register::AX, v);
        return Ok(());
    }
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    m.write_mem(seg, off, 2, v)
}

/// FWAIT/WAIT: #NM only when CR0.MP and CR0.TS are both set (SDM Vol. 3A
/// table 2-2), then any pending unmasked exception.
pub fn fwait(m: &mut Machine, _: &Instruction) -> Flow {
    let cr0 = m.cpu.sys.cr0;
    if cr0.contains(Cr0::MP | Cr0::TS) {
        return Err(crate::event::Event::nm());
    }
    if m.cpu.fpu.fsw & sw::ES != 0 {
        return pending_error(m);
    }
    if m.dev.ferr.asserted {
        release_ferr(m);
    }
    Ok(())
}

/// FNOP (a waiting, non-control instruction: it records FIP), and the 8087
/// and 287 leftovers FNENI, FNDISI, FNSETPM, which do nothing on 387 and
/// later FPUs (SDM Vol. 1 8.3.13).
pub fn fnop(m: &mut Machine, i: &Instruction) -> Flow {
    if i.mnemonic() == iced_x86::Mnemonic::Fnop {
        prologue(m, true)?;
        update_pointers(m, i);
        return Ok(());
    }
    check_nm(m)
}

/// The FWAIT-prefixed forms FINIT, FCLEX, FSTCW, FSTSW, FSTENV, FSAVE, FENI,
/// FDISI and FSETPM as single instructions: the WAIT, then the no-wait form.
/// (The decoder delivers 9B and the FN instruction separately; these codes
/// come only from callers that build instructions themselves.)
pub fn waited(m: &mut Machine, i: &Instruction) -> Flow {
    use iced_x86::Mnemonic as M;
    fwait(m, i)?;
    match i.mnemonic() {
        M::Finit => fninit(m, i),
        M::Fclex => fnclex(m, i),
        M::Fstcw => fnstcw(m, i),
        M::Fstsw => fnstsw(m, i),
        M::Fstenv => super::env::fnstenv(m, i),
        M::Fsave => super::env::fnsave(m, i),
        _ => check_nm(m),
    }
}
