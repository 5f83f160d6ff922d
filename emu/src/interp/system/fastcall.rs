//! SYSCALL, SYSRET, SYSENTER, SYSEXIT (SDM Vol. 2B, one entry each; Vol. 3A
//! 5.8.7 and 5.8.8). The segments they load are fixed flat descriptors
//! derived from IA32_STAR or IA32_SYSENTER_CS; the GDT is not read.

use super::require_cpl0;
use crate::cpu::cpuid::Vendor;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::{Code, Instruction};
use mmu::{CpuMode, Efer, Rflags, SegReg, SegmentCache};

fn set_flat(m: &mut Machine, cs_sel: u16, ss_sel: u16, dpl: u8, long: bool) {
    m.cpu.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(cs_sel, 0xb, dpl, !long, long);
    m.cpu.sys.segs[SegReg::Ss as usize] = SegmentCache::flat(ss_sel, 0x3, dpl, true, false);
    m.cpu.update_mode();
    m.stop_block = true;
}

/// SYSCALL: 64-bit mode with EFER.SCE (Intel: #UD elsewhere).
pub fn syscall(m: &mut Machine, _: &Instruction) -> Flow {
    if !m.cpu.sys.efer.contains(Efer::SCE) || !m.cpu.sys.efer.contains(Efer::LMA) {
        return Err(Event::ud());
    }
    if !m.cpu.long64() && m.config.model.vendor == Vendor::Intel {
        return Err(Event::ud());
    }
    let star = m.cpu.sys.star;
    let sel = ((star >> 32) & 0xfffc) as u16;
    m.cpu.gpr[1] = m.next_rip;
    let flags = m.cpu.flags.get() & !Rflags::RF.bits();
    m.cpu.gpr[11] = flags;
    let target = if m.cpu.long64() {
        m.cpu.sys.lstar
    } else {
        m.cpu.sys.cstar
    };
    m.cpu
        .flags
        .set(flags & !m.cpu.sys.sfmask & !Rflags::RF.bits());
    set_flat(m, sel, sel.wrapping_add(8), 0, true);
    m.next_rip = target;
    Ok(())
}

/// SYSRET to 64-bit (REX.W) or compatibility mode at CPL 3.
pub fn sysret(m: &mut Machine, i: &Instruction) -> Flow {
    if !m.cpu.sys.efer.contains(Efer::SCE) {
        return Err(Event::ud());
    }
    if !m.cpu.long64() {
        return Err(Event::ud());
    }
    require_cpl0(m)?;
    let star = m.cpu.sys.star;
    let base = ((star >> 48) & 0xfffc) as u16;
    let to64 = i.code() == Code::Sysretq;
    let rip = if to64 {
        m.cpu.gpr[1]
    } else {
        m.cpu.gpr[1] & 0xffff_ffff
    };
    if to64 && !mmu::is_canonical(rip, m.canonical_bits()) {
        return Err(Event::gp0());
    }
    let flags = (m.cpu.gpr[11] & 0x3c_7fd7) | 2;
    m.cpu.flags.set(flags);
    let cs = if to64 { base.wrapping_add(16) } else { base } | 3;
    set_flat(m, cs, base.wrapping_add(8) | 3, 3, to64);
    m.next_rip = rip;
    Ok(())
}

/// SYSENTER: to CPL 0 at IA32_SYSENTER_EIP/ESP; #GP(0) in real mode or with
/// IA32_SYSENTER_CS = 0.
pub fn sysenter(m: &mut Machine, _: &Instruction) -> Flow {
    if m.cpu.mode.mode == CpuMode::Real || m.cpu.sys.sysenter_cs & 0xfffc == 0 {
        return Err(Event::gp0());
    }
    let lma = m.cpu.sys.efer.contains(Efer::LMA);
    let cs = (m.cpu.sys.sysenter_cs & 0xfffc) as u16;
    for f in [Rflags::VM, Rflags::IF, Rflags::RF] {
        m.cpu.flags.assign(f, false);
    }
    set_flat(m, cs, cs.wrapping_add(8), 0, lma);
    let (rip, rsp) = (m.cpu.sys.sysenter_eip, m.cpu.sys.sysenter_esp);
    if lma {
        m.next_rip = rip;
        m.cpu.gpr[4] = rsp;
    } else {
        m.next_rip = rip & 0xffff_ffff;
        m.cpu.gpr[4] = rsp & 0xffff_ffff;
    }
    Ok(())
}

/// SYSEXIT: to CPL 3 at RDX/RCX (EDX/ECX without REX.W).
pub fn sysexit(m: &mut Machine, i: &Instruction) -> Flow {
    if m.cpu.mode.mode == CpuMode::Real || m.cpu.sys.sysenter_cs & 0xfffc == 0 {
        return Err(Event::gp0());
    }
    require_cpl0(m)?;
    let to64 = i.code() == Code::Sysexitq;
    let base = (m.cpu.sys.sysenter_cs & 0xfffc) as u16;
    let (rip, rsp) = if to64 {
        let (r, s) = (m.cpu.gpr[2], m.cpu.gpr[1]);
        let bits = m.canonical_bits();
        if !mmu::is_canonical(r, bits) || !mmu::is_canonical(s, bits) {
            return Err(Event::gp0());
        }
        (r, s)
    } else {
        (m.cpu.gpr[2] & 0xffff_ffff, m.cpu.gpr[1] & 0xffff_ffff)
    };
    let (cs, ss) = if to64 {
        (base.wrapping_add(32), base.wrapping_add(40))
    } else {
        (base.wrapping_add(16), base.wrapping_add(24))
    };
    set_flat(m, cs | 3, ss | 3, 3, to64);
    m.next_rip = rip;
    m.cpu.gpr[4] = rsp;
    Ok(())
}
