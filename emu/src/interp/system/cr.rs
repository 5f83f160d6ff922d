//! MOV to/from control and debug registers, LMSW, SMSW, CLTS (SDM Vol. 2B
//! "MOV—Move to/from Control Registers", "MOV—Move to/from Debug Registers";
//! Vol. 3A 2.5 "Control registers", 4.1.1 "Paging-mode enabling", 9.8.5
//! "Initializing IA-32e mode", 18.2 "Debug registers").

use super::{require_cpl0, umip_check};
use crate::cpu::cpuid::Feature;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::virt::Intercept;
use iced_x86::{Instruction, Register};
use mmu::{Cr0, Cr4, Dr7, Efer, SegReg};

/// MOV CRn, r / MOV r, CRn.
pub fn mov_cr(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let to_cr = i.op0_register().is_cr();
    let (cr, gpr) = if to_cr {
        (i.op0_register(), i.op1_register())
    } else {
        (i.op1_register(), i.op0_register())
    };
    if !matches!(
        cr,
        Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4 | Register::CR8
    ) {
        return Err(Event::ud());
    }
    let crn = (cr as u32 - Register::CR0 as u32) as u8;
    if !to_cr {
        m.intercept(i, Intercept::CrRead { cr: crn })?;
        let v = match cr {
            Register::CR0 => crate::virt::cr_read(m, 0, m.cpu.sys.cr0.bits()),
            Register::CR2 => m.cpu.sys.cr2,
            Register::CR3 => m.cpu.sys.cr3,
            Register::CR4 => crate::virt::cr_read(m, 4, m.cpu.sys.cr4.bits()),
            _ => crate::virt::cr8_read(m).unwrap_or_else(|| m.dev.lapic().cr8()),
        };
        m.write_gpr(gpr, v);
        return Ok(());
    }
    let v = m.read_gpr(gpr);
    m.intercept(i, Intercept::CrWrite { cr: crn, value: v })?;
    match cr {
        Register::CR0 => {
            let v = crate::virt::cr_write(m, 0, v)?;
            m.write_cr0(v)
        }
        Register::CR2 => {
            m.cpu.sys.cr2 = v;
            Ok(())
        }
        Register::CR3 => m.write_cr3(v),
        Register::CR4 => {
            let v = crate::virt::cr_write(m, 4, v)?;
            m.write_cr4(v)
        }
        _ => {
            if let Some(r) = crate::virt::cr8_write(m, v) {
                return r;
            }
            if v & !0xf != 0 {
                return Err(Event::gp0());
            }
            m.dev.write_cr8(v);
            m.stop_block = true;
            Ok(())
        }
    }
}

/// The CR4 bits a CPU model lets software set (SDM Vol. 3A 2.5: setting a bit
/// for an unsupported feature is #GP(0)).
pub fn cr4_allowed_for(model: &crate::cpu::cpuid::CpuModel) -> Cr4 {
    let mut a = Cr4::TSD | Cr4::DE | Cr4::MCE | Cr4::PCE;
    let feat = [
        (Feature::Pse, Cr4::PSE),
        (Feature::Pae, Cr4::PAE),
        (Feature::Pge, Cr4::PGE),
        (Feature::Fxsr, Cr4::OSFXSR),
        (Feature::Sse, Cr4::OSXMMEXCPT),
        (Feature::Umip, Cr4::UMIP),
        (Feature::La57, Cr4::LA57),
        (Feature::Vmx, Cr4::VMXE),
        (Feature::Fsgsbase, Cr4::FSGSBASE),
        (Feature::Pcid, Cr4::PCIDE),
        (Feature::Xsave, Cr4::OSXSAVE),
        (Feature::Smep, Cr4::SMEP),
        (Feature::Smap, Cr4::SMAP),
        (Feature::Pku, Cr4::PKE),
        (Feature::Vme, Cr4::VME | Cr4::PVI),
    ];
    for (f, bits) in feat {
        if model.has(f) {
            a |= bits;
        }
    }
    a
}

impl Machine {
    /// The CR4 bits this CPU model lets software set (SDM Vol. 3A 2.5: setting
    /// a bit for an unsupported feature is #GP(0)).
    pub fn cr4_allowed(&self) -> Cr4 {
        cr4_allowed_for(&self.config.model)
    }

    /// MOV to CR0 with the checks of SDM Vol. 2B MOV CR and the IA-32e
    /// activation of Vol. 3A 9.8.5.
    pub fn write_cr0(&mut self, v: u64) -> Flow {
        if v & Cr0::RESERVED_HIGH != 0 {
            return Err(Event::gp0());
        }
        let new = Cr0::from_bits_retain(v & 0xe005_003f) | Cr0::ET;
        let old = self.cpu.sys.cr0;
        if new.contains(Cr0::PG) && !new.contains(Cr0::PE) {
            return Err(Event::gp0());
        }
        if new.contains(Cr0::NW) && !new.contains(Cr0::CD) {
            return Err(Event::gp0());
        }
        let pg_on = new.contains(Cr0::PG) && !old.contains(Cr0::PG);
        let pg_off = !new.contains(Cr0::PG) && old.contains(Cr0::PG);
        let mut efer = self.cpu.sys.efer;
        if pg_on && efer.contains(Efer::LME) {
            if !self.cpu.sys.cr4.contains(Cr4::PAE) || self.cpu.seg(SegReg::Cs).attr.l() {
                return Err(Event::gp0());
            }
            efer |= Efer::LMA;
        }
        if pg_off {
            if self.cpu.long64() || self.cpu.sys.cr4.contains(Cr4::PCIDE) {
                return Err(Event::gp0());
            }
            efer.remove(Efer::LMA);
        }
        if pg_on && !efer.contains(Efer::LME) && self.cpu.sys.cr4.contains(Cr4::PAE) {
            self.load_pdptes(self.cpu.sys.cr3)?;
        }
        self.cpu.sys.cr0 = new;
        self.cpu.sys.efer = efer;
        let before = self.tctx;
        self.paging_changed();
        self.mmu.mov_cr0(&before, old, new);
        self.cpu.update_mode();
        self.stop_block = true;
        Ok(())
    }

    /// MOV to CR3 (SDM Vol. 3A 4.10.4.1 for the TLB effects; bit 63 is the
    /// "no flush" bit when CR4.PCIDE = 1).
    pub fn write_cr3(&mut self, v: u64) -> Flow {
        let pcide = self.cpu.sys.cr4.contains(Cr4::PCIDE);
        let no_flush = pcide && v & (1 << 63) != 0;
        let v = if pcide { v & !(1 << 63) } else { v };
        if self.cpu.sys.efer.contains(Efer::LMA)
            && self.config.model.widths.exceeds_phys(v & !0xfff)
        {
            return Err(Event::gp0());
        }
        let pae_legacy = self.cpu.sys.cr0.contains(Cr0::PG)
            && self.cpu.sys.cr4.contains(Cr4::PAE)
            && !self.cpu.sys.efer.contains(Efer::LMA);
        if pae_legacy {
            self.load_pdptes(v)?;
        }
        self.cpu.sys.cr3 = if self.cpu.sys.efer.contains(Efer::LMA) {
            v
        } else {
            v & 0xffff_ffff
        };
        self.paging_changed();
        self.mmu.flush_cr3(&self.tctx, no_flush);
        self.stop_block = true;
        Ok(())
    }

    /// MOV to CR4.
    pub fn write_cr4(&mut self, v: u64) -> Flow {
        let new = Cr4::from_bits_retain(v);
        if !self.cr4_allowed().contains(new) {
            return Err(Event::gp0());
        }
        let old = self.cpu.sys.cr4;
        let lma = self.cpu.sys.efer.contains(Efer::LMA);
        if lma && !new.contains(Cr4::PAE) {
            return Err(Event::gp0());
        }
        if lma && (old ^ new).contains(Cr4::LA57) {
            return Err(Event::gp0());
        }
        if new.contains(Cr4::PCIDE)
            && !old.contains(Cr4::PCIDE)
            && (!lma || self.cpu.sys.cr3 & 0xfff != 0)
        {
            return Err(Event::gp0());
        }
        if self.cpu.sys.cr0.contains(Cr0::PG)
            && !lma
            && new.contains(Cr4::PAE)
            && (old ^ new).intersects(Cr4::PAE | Cr4::PSE | Cr4::PGE | Cr4::SMEP | Cr4::SMAP)
        {
            self.load_pdptes(self.cpu.sys.cr3)?;
        }
        self.cpu.sys.cr4 = new;
        let before = self.tctx;
        self.paging_changed();
        self.mmu.mov_cr4(&before, old, new);
        self.debug_changed();
        self.cpu.update_mode();
        self.stop_block = true;
        Ok(())
    }
}

/// MOV DRn, r / MOV r, DRn (SDM Vol. 3B 18.2; DR4/DR5 alias DR6/DR7 unless
/// CR4.DE, then #UD; DR7.GD makes any access a #DB with DR6.BD).
pub fn mov_dr(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let to_dr = i.op0_register().is_dr();
    let (dr, gpr) = if to_dr {
        (i.op0_register(), i.op1_register())
    } else {
        (i.op1_register(), i.op0_register())
    };
    let mut n = dr as u32 - Register::DR0 as u32;
    if n == 4 || n == 5 {
        if m.cpu.sys.cr4.contains(Cr4::DE) {
            return Err(Event::ud());
        }
        n += 2;
    }
    if n > 7 {
        return Err(Event::ud());
    }
    let what = if to_dr {
        Intercept::DrWrite { dr: n as u8 }
    } else {
        Intercept::DrRead { dr: n as u8 }
    };
    m.intercept(i, what)?;
    if m.cpu.sys.dr7.contains(Dr7::GD) {
        m.cpu.sys.dr7.remove(Dr7::GD);
        m.cpu.sys.dr6 |= mmu::dr6::BD;
        return Err(Event::exc(mmu::Vector::DB));
    }
    if !to_dr {
        let v = match n {
            0..=3 => m.cpu.sys.dr[n as usize],
            6 => m.cpu.sys.dr6,
            _ => m.cpu.sys.dr7.bits(),
        };
        m.write_gpr(gpr, v);
        return Ok(());
    }
    let v = m.read_gpr(gpr);
    match n {
        0..=3 => m.cpu.sys.dr[n as usize] = v,
        6 | 7 if v >> 32 != 0 => return Err(Event::gp0()),
        6 => m.cpu.sys.dr6 = (v & 0x0001_e00f) | mmu::dr6::INIT,
        _ => m.cpu.sys.dr7 = Dr7::from_bits_retain((v & 0xffff_2bff) | Dr7::FIXED1.bits()),
    }
    m.debug_changed();
    m.stop_block = true;
    Ok(())
}

/// LMSW: loads CR0 bits 3:0 (PE, MP, EM, TS); PE can be set but not cleared.
pub fn lmsw(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let src = m.read_op(i, 0)?;
    m.intercept(i, Intercept::Lmsw { value: src as u16 })?;
    let v = src & 0xf;
    let cr0 = m.cpu.sys.cr0.bits();
    let new = (cr0 & !0xe) | (v & 0xe) | (cr0 & 1) | (v & 1);
    let new = crate::virt::cr_write(m, 0, new)?;
    m.write_cr0(new)
}

/// SMSW: stores CR0 (the low word to memory; register width otherwise).
pub fn smsw(m: &mut Machine, i: &Instruction) -> Flow {
    umip_check(m)?;
    m.intercept(i, Intercept::CrRead { cr: 0 })?;
    let v = crate::virt::cr_read(m, 0, m.cpu.sys.cr0.bits());
    m.write_op(i, 0, v)
}

/// CLTS: clears CR0.TS.
pub fn clts(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    m.intercept(i, Intercept::Clts)?;
    let v = crate::virt::cr_write(m, 0, (m.cpu.sys.cr0 - Cr0::TS).bits())?;
    m.cpu.sys.cr0 = Cr0::from_bits_retain(v);
    Ok(())
}
