//! Instructions of the paging protection features: STAC and CLAC (SMAP),
//! RDPKRU and WRPKRU (protection keys), INVPCID (process-context identifiers)
//! (SDM Vol. 2B entries; Vol. 3A 4.6 and 4.10.1).

use super::require_cpl0;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::virt::Intercept;
use iced_x86::{Instruction, Mnemonic};
use mmu::{Cr4, InvpcidType, LinearAddr, Rflags};

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

/// INVPCID type, m128 (SDM Vol. 2A INVPCID): #GP(0) for CPL > 0, a type above
/// 3, descriptor bits 63:12 set, a non-canonical address for type 0, or a
/// non-zero PCID for types 0-1 with CR4.PCIDE = 0.
pub fn invpcid(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    m.intercept(i, Intercept::Invpcid)?;
    let kind = m.read_gpr(i.op0_register());
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let lo = m.read_mem(seg, ea, 8)?;
    let la = m.read_mem(seg, ea.wrapping_add(8), 8)?;
    let pcid = (lo & 0xfff) as u16;
    if lo >> 12 != 0 {
        return Err(Event::gp0());
    }
    let kind = match kind {
        0 => InvpcidType::IndividualAddress,
        1 => InvpcidType::SingleContext,
        2 => InvpcidType::AllContextIncludingGlobal,
        3 => InvpcidType::AllContext,
        _ => return Err(Event::gp0()),
    };
    let by_pcid = matches!(
        kind,
        InvpcidType::IndividualAddress | InvpcidType::SingleContext
    );
    if by_pcid && pcid != 0 && !m.cpu.sys.cr4.contains(Cr4::PCIDE) {
        return Err(Event::gp0());
    }
    if kind == InvpcidType::IndividualAddress
        && !mmu::is_canonical(la, m.config.model.widths.linear_bits)
    {
        return Err(Event::gp0());
    }
    let ctx = m.tctx;
    m.mmu.invpcid(&ctx, kind, pcid, LinearAddr(la));
    Ok(())
}
