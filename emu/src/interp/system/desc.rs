//! Descriptor-table and segment-register instructions: LGDT, LIDT, SGDT, SIDT,
//! LLDT, LTR, SLDT, STR, LAR, LSL, VERR, VERW, ARPL, MOV/POP to a segment
//! register, LDS/LES/LFS/LGS/LSS, SWAPGS, RD/WR FS/GS BASE (SDM Vol. 2, one
//! entry each; Vol. 3A 3.5 and 7.2 for the system descriptors).

use super::{require_cpl0, require_protected, umip_check};
use crate::cpu::segmentation::sel_code;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::Privilege;
use crate::virt::{Intercept, TableReg};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use mmu::{Cr4, Descriptor, Rflags, SegReg, SegmentCache, Selector, TableRegister};

/// LGDT, LIDT: limit (2 bytes) and base (3 bytes with a 16-bit operand, 4, or
/// 8 in 64-bit mode; a non-canonical 64-bit base is #GP(0)).
pub fn lgdt_lidt(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let reg = if i.mnemonic() == Mnemonic::Lgdt {
        TableReg::Gdtr
    } else {
        TableReg::Idtr
    };
    m.intercept(i, Intercept::DescriptorTable { reg, write: true })?;
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let limit = m.read_mem(seg, ea, 2)? as u16;
    let base = if m.cpu.long64() {
        let b = m.read_mem(seg, ea.wrapping_add(2), 8)?;
        if !mmu::is_canonical(b, m.config.model.widths.linear_bits) {
            return Err(Event::gp0());
        }
        b
    } else {
        let b = m.read_mem(seg, ea.wrapping_add(2), 4)?;
        if i.code_size() == iced_x86::CodeSize::Code16 && !has_osize32(i) {
            b & 0x00ff_ffff
        } else {
            b
        }
    };
    let t = TableRegister { base, limit };
    if i.mnemonic() == Mnemonic::Lgdt {
        m.cpu.sys.gdtr = t;
    } else {
        m.cpu.sys.idtr = t;
    }
    Ok(())
}

/// True if the instruction runs with a 32-bit operand size in 16-bit code
/// (a 66H prefix); for the descriptor-table instructions iced-x86 encodes the
/// operand size in the code.
fn has_osize32(i: &Instruction) -> bool {
    matches!(
        i.code(),
        iced_x86::Code::Lgdt_m1632
            | iced_x86::Code::Lidt_m1632
            | iced_x86::Code::Sgdt_m1632
            | iced_x86::Code::Sidt_m1632
    )
}

/// SGDT, SIDT.
pub fn sgdt_sidt(m: &mut Machine, i: &Instruction) -> Flow {
    umip_check(m)?;
    let reg = if i.mnemonic() == Mnemonic::Sgdt {
        TableReg::Gdtr
    } else {
        TableReg::Idtr
    };
    m.intercept(i, Intercept::DescriptorTable { reg, write: false })?;
    let t = if i.mnemonic() == Mnemonic::Sgdt {
        m.cpu.sys.gdtr
    } else {
        m.cpu.sys.idtr
    };
    let seg = m.mem_seg(i);
    let ea = m.effective_address(i);
    let bsize = if m.cpu.long64() { 8 } else { 4 };
    // Check the whole store before writing.
    m.linear(seg, ea, 2 + bsize, true)?;
    m.write_mem(seg, ea, 2, t.limit as u64)?;
    m.write_mem(seg, ea.wrapping_add(2), bsize, t.base)
}

/// LLDT: load the LDT register from a GDT descriptor of type LDT.
pub fn lldt(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    require_cpl0(m)?;
    m.intercept(
        i,
        Intercept::DescriptorTable {
            reg: TableReg::Ldtr,
            write: true,
        },
    )?;
    let sel = Selector(m.read_op(i, 0)? as u16);
    if sel.is_null() {
        m.cpu.sys.ldtr = SegmentCache::null(sel.0);
        return Ok(());
    }
    let code = sel_code(sel, false);
    if sel.ti() {
        return Err(Event::gp(code));
    }
    let d = m.read_descriptor(sel, false)?;
    let ar = d.access_rights();
    if ar.s() || ar.typ() != mmu::system_type::LDT {
        return Err(Event::gp(code));
    }
    if !ar.present() {
        return Err(Event::np(code));
    }
    let mut cache = d.to_cache(sel);
    if m.cpu.sys.efer.contains(mmu::Efer::LMA) {
        let hi = m.read_descriptor_high(sel, false)?;
        cache.base = d.base64(hi);
    }
    m.cpu.sys.ldtr = cache;
    Ok(())
}

/// LTR: load the task register from an available TSS descriptor and mark it
/// busy.
pub fn ltr(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    require_cpl0(m)?;
    m.intercept(
        i,
        Intercept::DescriptorTable {
            reg: TableReg::Tr,
            write: true,
        },
    )?;
    let sel = Selector(m.read_op(i, 0)? as u16);
    if sel.is_null() {
        return Err(Event::gp0());
    }
    let code = sel_code(sel, false);
    if sel.ti() {
        return Err(Event::gp(code));
    }
    let d = m.read_descriptor(sel, false)?;
    let ar = d.access_rights();
    let lma = m.cpu.sys.efer.contains(mmu::Efer::LMA);
    let ok_type = if lma {
        ar.typ() == mmu::system_type::TSS_AVAILABLE
    } else {
        matches!(
            ar.typ(),
            mmu::system_type::TSS_AVAILABLE | mmu::system_type::TSS16_AVAILABLE
        )
    };
    if ar.s() || !ok_type {
        return Err(Event::gp(code));
    }
    if !ar.present() {
        return Err(Event::np(code));
    }
    let mut cache = d.to_cache(sel);
    if lma {
        let hi = m.read_descriptor_high(sel, false)?;
        cache.base = d.base64(hi);
    }
    // Mark busy (type bit 1) in the descriptor and the cache.
    let busy = Descriptor(d.0 | 1 << 41);
    let la = m.descriptor_address(sel).ok_or_else(|| Event::gp(code))?;
    m.write_linear(la + 5, 1, busy.0 >> 40, Privilege::System)?;
    cache.attr = mmu::AccessRights(cache.attr.0 | 2);
    m.cpu.sys.tr = cache;
    Ok(())
}

/// SLDT, STR: the selector, zero-extended in a register, 16 bits in memory.
pub fn sldt_str(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    umip_check(m)?;
    let reg = if i.mnemonic() == Mnemonic::Sldt {
        TableReg::Ldtr
    } else {
        TableReg::Tr
    };
    m.intercept(i, Intercept::DescriptorTable { reg, write: false })?;
    let sel = if i.mnemonic() == Mnemonic::Sldt {
        m.cpu.sys.ldtr.selector.0
    } else {
        m.cpu.sys.tr.selector.0
    };
    m.write_op(i, 0, sel as u64)
}

/// The descriptor `sel` names if it is visible to LAR/LSL/VERR/VERW at the
/// current CPL and RPL (SDM Vol. 2A LAR "Operation"), with its type allowed by
/// `system_ok`.
fn visible_descriptor(
    m: &mut Machine,
    sel: Selector,
    system_ok: fn(u8, bool) -> bool,
) -> Result<Option<Descriptor>, Event> {
    if sel.is_null() || m.descriptor_address(sel).is_none() {
        return Ok(None);
    }
    let d = m.read_descriptor(sel, false)?;
    let ar = d.access_rights();
    let lma = m.cpu.sys.efer.contains(mmu::Efer::LMA);
    if !ar.s() && !system_ok(ar.typ(), lma) {
        return Ok(None);
    }
    let cpl = m.cpu.cpl();
    let conforming = ar.is_code() && ar.conforming();
    if !conforming && (ar.dpl() < cpl || ar.dpl() < sel.rpl()) {
        return Ok(None);
    }
    Ok(Some(d))
}

/// LAR, LSL: access rights or limit of a visible descriptor, ZF = 1; else
/// ZF = 0 and the destination is unchanged.
pub fn lar_lsl(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    let sel = Selector(m.read_op(i, 1)? as u16);
    let lar = i.mnemonic() == Mnemonic::Lar;
    let ok_types: fn(u8, bool) -> bool = if lar {
        |t, lma| {
            if lma {
                matches!(t, 2 | 9 | 11 | 12)
            } else {
                matches!(t, 1..=5 | 9 | 11 | 12)
            }
        }
    } else {
        |t, lma| {
            if lma {
                matches!(t, 2 | 9 | 11)
            } else {
                matches!(t, 1 | 2 | 3 | 9 | 11)
            }
        }
    };
    match visible_descriptor(m, sel, ok_types)? {
        Some(d) => {
            let v = if lar {
                (d.0 >> 32) & 0x00f0_ff00
            } else {
                d.limit() as u64
            };
            m.write_op(i, 0, v)?;
            m.cpu.flags.assign(Rflags::ZF, true);
        }
        None => m.cpu.flags.assign(Rflags::ZF, false),
    }
    Ok(())
}

/// VERR, VERW: ZF = 1 if the segment is visible and readable / writable.
pub fn verr_verw(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    let sel = Selector(m.read_op(i, 0)? as u16);
    let d = visible_descriptor(m, sel, |_, _| false)?;
    let ok = d.is_some_and(|d| {
        let ar = d.access_rights();
        if i.mnemonic() == Mnemonic::Verr {
            ar.readable()
        } else {
            ar.writable()
        }
    });
    m.cpu.flags.assign(Rflags::ZF, ok);
    Ok(())
}

/// ARPL: raise the destination selector's RPL to the source's.
pub fn arpl(m: &mut Machine, i: &Instruction) -> Flow {
    require_protected(m)?;
    let d = m.read_op(i, 0)? as u16;
    let s = m.read_op(i, 1)? as u16;
    if d & 3 < s & 3 {
        m.write_op(i, 0, ((d & !3) | (s & 3)) as u64)?;
        m.cpu.flags.assign(Rflags::ZF, true);
    } else {
        m.cpu.flags.assign(Rflags::ZF, false);
    }
    Ok(())
}

impl Machine {
    /// Loads a segment register and applies the effects of an SS load: the
    /// MOV-SS interrupt shadow (SDM Vol. 3A 6.8.3).
    fn load_segment_with_shadow(&mut self, seg: SegReg, sel: u16) -> Flow {
        self.load_segment(seg, sel)?;
        if seg == SegReg::Ss {
            self.cpu.events.movss_blocking = true;
        }
        self.stop_block = true;
        Ok(())
    }
}

/// MOV Sreg, r/m16 and MOV r/m, Sreg. Loading CS is #UD.
pub fn mov_sreg(m: &mut Machine, i: &Instruction) -> Flow {
    if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() {
        let seg = super::super::operand::seg_of(i.op0_register());
        if seg == SegReg::Cs {
            return Err(Event::ud());
        }
        let sel = m.read_op(i, 1)? as u16;
        return m.load_segment_with_shadow(seg, sel);
    }
    let seg = super::super::operand::seg_of(i.op1_register());
    let sel = m.cpu.seg(seg).selector.0 as u64;
    if i.op0_kind() == OpKind::Memory {
        let s = m.mem_seg(i);
        let ea = m.effective_address(i);
        return m.write_mem(s, ea, 2, sel);
    }
    // A register destination gets the selector zero-extended to its size.
    let r = i.op0_register();
    if super::super::operand::gpr_size(r) == 2 {
        m.write_gpr(r, sel);
    } else {
        m.write_gpr(r.full_register32(), sel);
    }
    Ok(())
}

/// POP DS/ES/SS/FS/GS.
pub fn pop_sreg(m: &mut Machine, i: &Instruction) -> Flow {
    let size = super::super::stack::stack_size(i);
    let seg = super::super::operand::seg_of(i.op0_register());
    let old = m.cpu.gpr[4];
    let sel = m.pop(size)? as u16;
    if let Err(e) = m.load_segment_with_shadow(seg, sel) {
        m.cpu.gpr[4] = old;
        return Err(e);
    }
    Ok(())
}

/// LDS, LES, LFS, LGS, LSS: load a far pointer (offset then selector).
pub fn load_far_pointer(m: &mut Machine, i: &Instruction) -> Flow {
    let seg = match i.mnemonic() {
        Mnemonic::Lds => SegReg::Ds,
        Mnemonic::Les => SegReg::Es,
        Mnemonic::Lfs => SegReg::Fs,
        Mnemonic::Lgs => SegReg::Gs,
        _ => SegReg::Ss,
    };
    let size = super::super::operand::gpr_size(i.op0_register());
    let s = m.mem_seg(i);
    let ea = m.effective_address(i);
    let off = m.read_mem(s, ea, size)?;
    let sel = m.read_mem(s, ea.wrapping_add(size as u64), 2)? as u16;
    m.load_segment_with_shadow(seg, sel)?;
    if seg != SegReg::Ss {
        m.cpu.events.movss_blocking = false;
    }
    m.write_gpr(i.op0_register(), off);
    Ok(())
}

/// SWAPGS: exchange GS.base and IA32_KERNEL_GS_BASE (64-bit mode, CPL 0).
pub fn swapgs(m: &mut Machine, _: &Instruction) -> Flow {
    if !m.cpu.long64() {
        return Err(Event::ud());
    }
    require_cpl0(m)?;
    let gs = &mut m.cpu.sys.segs[SegReg::Gs as usize].base;
    std::mem::swap(gs, &mut m.cpu.sys.kernel_gs_base);
    Ok(())
}

/// RDFSBASE, RDGSBASE, WRFSBASE, WRGSBASE (64-bit mode, CR4.FSGSBASE).
pub fn fsgsbase(m: &mut Machine, i: &Instruction) -> Flow {
    if !m.cpu.long64() || !m.cpu.sys.cr4.contains(Cr4::FSGSBASE) {
        return Err(Event::ud());
    }
    let seg = match i.mnemonic() {
        Mnemonic::Rdfsbase | Mnemonic::Wrfsbase => SegReg::Fs,
        _ => SegReg::Gs,
    };
    let r: Register = i.op0_register();
    if matches!(i.mnemonic(), Mnemonic::Rdfsbase | Mnemonic::Rdgsbase) {
        let v = m.cpu.seg(seg).base;
        m.write_gpr(r, v);
    } else {
        let v = m.read_gpr(r);
        if !mmu::is_canonical(v, m.config.model.widths.linear_bits) {
            return Err(Event::gp0());
        }
        m.cpu.sys.segs[seg as usize].base = v;
    }
    Ok(())
}
