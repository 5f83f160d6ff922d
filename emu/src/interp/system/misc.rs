//! CPUID, HLT, INVLPG, WBINVD/INVD, CLFLUSH, RDRAND/RDSEED, MONITOR/MWAIT,
//! BOUND (SDM Vol. 2, one entry each).

use super::require_cpl0;
use crate::cpu::cpuid::{cpuid as cpuid_leaf, CpuidDynamic};
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use crate::virt::Intercept;
use iced_x86::{Instruction, Mnemonic};
use mmu::{Cr4, Rflags, Vector};

/// CPUID: EAX = leaf, ECX = subleaf; results zero-extend into RAX..RDX.
pub fn cpuid(m: &mut Machine, i: &Instruction) -> Flow {
    m.intercept(i, Intercept::Cpuid)?;
    let leaf = m.cpu.gpr[0] as u32;
    let sub = m.cpu.gpr[1] as u32;
    let dynamic = CpuidDynamic {
        osxsave: m.cpu.sys.cr4.contains(Cr4::OSXSAVE),
        ospke: m.cpu.sys.cr4.contains(Cr4::PKE),
        apic_enabled: m.dev.lapic().hw_enabled(),
        apic_id: m.dev.lapic().initial_id,
        topology: m.config.platform.topology(),
    };
    let r = crate::virt::cpuid(m, leaf, sub)
        .unwrap_or_else(|| cpuid_leaf(&m.config.model, dynamic, leaf, sub));
    for (k, reg) in [0usize, 3, 1, 2].iter().enumerate() {
        m.cpu.gpr[*reg] = r[k] as u64;
    }
    Ok(())
}

/// HLT: enter the halt state until an interrupt (SDM Vol. 2A HLT).
pub fn hlt(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    m.intercept(i, Intercept::Hlt)?;
    m.cpu.events.halted = true;
    m.stop_block = true;
    Ok(())
}

/// INVLPG: invalidate TLB entries for the page of the operand.
pub fn invlpg(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let base = if m.cpu.long64() && !matches!(seg, mmu::SegReg::Fs | mmu::SegReg::Gs) {
        0
    } else {
        m.cpu.seg(seg).base
    };
    let la = m.wrap_linear(base.wrapping_add(ea));
    m.intercept(i, Intercept::Invlpg { la })?;
    m.invalidate_page(la);
    Ok(())
}

/// INVPCID: invalidates mappings by process-context identifier (SDM Vol. 2A
/// INVPCID). The type is the register operand, the 128-bit descriptor (PCID
/// in bits 11:0, bits 63:12 reserved, a linear address in 127:64) the
/// memory operand.
pub fn invpcid(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    m.intercept(i, Intercept::Invpcid)?;
    let kind = match m.read_gpr(i.op0_register()) {
        0 => mmu::InvpcidType::IndividualAddress,
        1 => mmu::InvpcidType::SingleContext,
        2 => mmu::InvpcidType::AllContextIncludingGlobal,
        3 => mmu::InvpcidType::AllContext,
        _ => return Err(Event::gp0()),
    };
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    m.linear(seg, ea, 16, false)?;
    let desc = m.read_mem(seg, ea, 8)?;
    let la = m.read_mem(seg, ea.wrapping_add(8), 8)?;
    let pcid = (desc & 0xfff) as u16;
    let per_pcid = matches!(
        kind,
        mmu::InvpcidType::IndividualAddress | mmu::InvpcidType::SingleContext
    );
    if desc >> 12 != 0
        || (kind == mmu::InvpcidType::IndividualAddress
            && !mmu::is_canonical(la, m.config.model.widths.linear_bits))
        || (per_pcid && pcid != 0 && !m.cpu.sys.cr4.contains(Cr4::PCIDE))
    {
        return Err(Event::gp0());
    }
    m.mmu.invpcid(&m.tctx, kind, pcid, mmu::LinearAddr(la));
    Ok(())
}

/// WBINVD, INVD: caches are not modelled; privileged.
pub fn wbinvd(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let what = if i.mnemonic() == Mnemonic::Invd {
        Intercept::Invd
    } else {
        Intercept::Wbinvd
    };
    m.intercept(i, what)
}

/// CLFLUSH, CLFLUSHOPT: no cache to flush, but the address is checked as a
/// read would be (segmentation and paging faults; SDM Vol. 2A CLFLUSH).
pub fn clflush(m: &mut Machine, i: &Instruction) -> Flow {
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let la = m.linear(seg, ea, 1, false)?;
    m.translate(la, AccessKind::Read, Privilege::Current)?;
    Ok(())
}

/// RDRAND, RDSEED: a value from the deterministic source, CF = 1, OF, SF, ZF,
/// AF, PF = 0 (SDM Vol. 2B RDRAND).
pub fn rdrand(m: &mut Machine, i: &Instruction) -> Flow {
    let what = if i.mnemonic() == Mnemonic::Rdseed {
        Intercept::Rdseed
    } else {
        Intercept::Rdrand
    };
    m.intercept(i, what)?;
    let v = m.next_random();
    m.write_op(i, 0, v)?;
    m.cpu.flags.set_status(Rflags::CF.bits());
    Ok(())
}

/// MONITOR: arms address monitoring; only the checks matter here (no memory
/// is touched; ECX extensions must be zero, SDM Vol. 2B MONITOR).
pub fn monitor(m: &mut Machine, i: &Instruction) -> Flow {
    if m.cpu.cpl() != 0 {
        return Err(Event::ud());
    }
    m.intercept(i, Intercept::Monitor)?;
    if m.cpu.gpr[1] as u32 != 0 {
        return Err(Event::gp0());
    }
    Ok(())
}

/// MWAIT: returns at once, a wake-up the architecture permits at any time
/// (SDM Vol. 2B MWAIT: software must check its condition again), so a store
/// by another vCPU to the monitored range is never missed; an unsupported
/// ECX extension is #GP(0).
pub fn mwait(m: &mut Machine, i: &Instruction) -> Flow {
    if m.cpu.cpl() != 0 {
        return Err(Event::ud());
    }
    m.intercept(i, Intercept::Mwait { armed: false })?;
    if m.cpu.gpr[1] as u32 & !1 != 0 {
        return Err(Event::gp0());
    }
    Ok(())
}

/// BOUND: #BR if the index is outside [lower, upper] (signed).
pub fn bound(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let idx = crate::cpu::flags::sign_extend(m.read_op(i, 0)?, (size * 8) as u8);
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let lo = crate::cpu::flags::sign_extend(m.read_mem(seg, ea, size)?, (size * 8) as u8);
    let hi = crate::cpu::flags::sign_extend(
        m.read_mem(seg, ea.wrapping_add(size as u64), size)?,
        (size * 8) as u8,
    );
    if idx < lo || idx > hi {
        return Err(Event::exc(Vector::BR));
    }
    Ok(())
}
