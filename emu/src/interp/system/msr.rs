//! RDMSR, WRMSR, RDTSC, RDTSCP, RDPID, RDPMC (SDM Vol. 2B; MSR semantics from
//! Vol. 4 chapter 2). Every MSR the machine implements is in [`Machine::read_msr`]
//! and [`Machine::write_msr`]; any other index is #GP(0), as on hardware.

use super::require_cpl0;
use crate::cpu::cpuid::Feature;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::virt::Intercept;
use iced_x86::Instruction;
use mmu::msr::*;
use mmu::{Cr4, Efer};

/// RDMSR: EDX:EAX = MSR[ECX].
pub fn rdmsr(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let idx = m.cpu.gpr[1] as u32;
    m.intercept(i, Intercept::Rdmsr { index: idx })?;
    let v = m.read_msr(idx).ok_or_else(Event::gp0)?;
    m.cpu.gpr[0] = v & 0xffff_ffff;
    m.cpu.gpr[2] = v >> 32;
    Ok(())
}

/// WRMSR: MSR[ECX] = EDX:EAX.
pub fn wrmsr(m: &mut Machine, i: &Instruction) -> Flow {
    require_cpl0(m)?;
    let idx = m.cpu.gpr[1] as u32;
    let v = (m.cpu.gpr[2] & 0xffff_ffff) << 32 | (m.cpu.gpr[0] & 0xffff_ffff);
    m.intercept(
        i,
        Intercept::Wrmsr {
            index: idx,
            value: v,
        },
    )?;
    m.write_msr(idx, v)?;
    m.stop_block = true;
    Ok(())
}

/// The valid memory-type encodings of the PAT (SDM Vol. 3A 11.12.2).
fn pat_valid(v: u64) -> bool {
    (0..8).all(|k| matches!((v >> (8 * k)) & 0xff, 0 | 1 | 4 | 5 | 6 | 7))
}

impl Machine {
    /// The time-stamp counter: modelled cycles plus the software offset
    /// (SDM Vol. 3B 18.17), as the running guest sees it (TSC offsetting and
    /// scaling in VMX non-root operation, SDM Vol. 3C 26.3).
    pub fn tsc(&self) -> u64 {
        let host = self
            .stats
            .cycles
            .wrapping_add(self.cpu.msr.tsc_offset as u64);
        if self.in_guest() {
            self.context_tsc(host)
        } else {
            host
        }
    }

    /// Reads an MSR; `None` if it does not exist on this model (or is an
    /// x2APIC register outside x2APIC mode).
    pub fn read_msr(&self, idx: u32) -> Option<u64> {
        if let Some(v) = crate::virt::read_msr(self, idx) {
            return v;
        }
        let c = &self.cpu;
        let s = &c.sys;
        let model = &self.config.model;
        Some(match idx {
            i if (IA32_X2APIC_FIRST..=IA32_X2APIC_LAST).contains(&i) => {
                return self.dev.read_x2apic(i, self.now()).ok();
            }
            IA32_TIME_STAMP_COUNTER => self.tsc(),
            IA32_APIC_BASE => self.dev.lapic().base,
            IA32_TSC_DEADLINE if model.has(Feature::TscDeadline) => {
                self.dev.lapic().read_tsc_deadline()
            }
            IA32_FEATURE_CONTROL if model.vendor == crate::cpu::cpuid::Vendor::Intel => {
                c.msr.feature_control
            }
            IA32_TSC_ADJUST if model.has(Feature::TscAdjust) => c.msr.tsc_adjust,
            IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | IA32_MCG_CAP => 0,
            IA32_MCG_STATUS => c.msr.mcg_status,
            IA32_MISC_ENABLE => c.msr.misc_enable,
            IA32_MTRRCAP => 0x508, // 8 variable ranges, fixed ranges, write-combining
            IA32_MTRR_DEF_TYPE => c.msr.mtrr_def_type,
            i if (IA32_MTRR_PHYSBASE0..IA32_MTRR_PHYSBASE0 + 16).contains(&i) => {
                c.msr.mtrr_var[(i - IA32_MTRR_PHYSBASE0) as usize]
            }
            i if fixed_mtrr_index(i).is_some() => c.msr.mtrr_fixed[fixed_mtrr_index(i)?],
            IA32_PAT => s.pat,
            IA32_SYSENTER_CS => s.sysenter_cs,
            IA32_SYSENTER_ESP => s.sysenter_esp,
            IA32_SYSENTER_EIP => s.sysenter_eip,
            IA32_DEBUGCTL => s.debugctl,
            IA32_EFER => s.efer.bits(),
            IA32_STAR => s.star,
            IA32_LSTAR => s.lstar,
            IA32_CSTAR => s.cstar,
            IA32_FMASK => s.sfmask,
            IA32_FS_BASE => s.seg(mmu::SegReg::Fs).base,
            IA32_GS_BASE => s.seg(mmu::SegReg::Gs).base,
            IA32_KERNEL_GS_BASE => s.kernel_gs_base,
            IA32_TSC_AUX if model.has(Feature::Rdtscp) || model.has(Feature::Rdpid) => {
                c.msr.tsc_aux
            }
            IA32_XSS if model.has(Feature::Xsaves) => c.msr.xss,
            _ => return None,
        })
    }

    /// The EFER bits software may set on this model.
    pub(crate) fn efer_writable(&self) -> Efer {
        let model = &self.config.model;
        let mut e = Efer::empty();
        if model.has(Feature::Syscall) {
            e |= Efer::SCE;
        }
        if model.has(Feature::Lm) {
            e |= Efer::LME;
        }
        if model.has(Feature::Nx) {
            e |= Efer::NXE;
        }
        if model.has(Feature::Svm) {
            e |= Efer::SVME;
        }
        e
    }

    /// Writes an MSR with its reserved-bit and consistency checks (#GP(0)).
    pub fn write_msr(&mut self, idx: u32, v: u64) -> Flow {
        if let Some(r) = crate::virt::write_msr(self, idx, v) {
            return r;
        }
        let canonical = |v: u64| mmu::is_canonical(v, self.config.model.widths.linear_bits);
        let gp = Err(Event::gp0());
        match idx {
            IA32_TIME_STAMP_COUNTER => {
                self.cpu.msr.tsc_offset = v.wrapping_sub(self.stats.cycles) as i64;
                // The TSC-deadline timer's expiry moves with the TSC.
                self.dev.touch();
            }
            IA32_APIC_BASE => {
                let mask = self.config.model.widths.phys_mask();
                if self.dev.write_apic_base(v, mask).is_err() {
                    return gp;
                }
            }
            IA32_TSC_DEADLINE if self.config.model.has(Feature::TscDeadline) => {
                let now = self.now();
                self.dev.write_tsc_deadline(v, now);
            }
            i if (IA32_X2APIC_FIRST..=IA32_X2APIC_LAST).contains(&i) => {
                let now = self.now();
                if self.dev.write_x2apic(i, v, now).is_err() {
                    return gp;
                }
            }
            IA32_FEATURE_CONTROL
                if self.config.model.vendor == crate::cpu::cpuid::Vendor::Intel =>
            {
                if self.cpu.msr.feature_control & 1 != 0 {
                    return gp;
                }
                self.cpu.msr.feature_control = v;
            }
            IA32_TSC_ADJUST if self.config.model.has(Feature::TscAdjust) => {
                let delta = v.wrapping_sub(self.cpu.msr.tsc_adjust);
                self.cpu.msr.tsc_adjust = v;
                self.cpu.msr.tsc_offset = self.cpu.msr.tsc_offset.wrapping_add(delta as i64);
                self.dev.touch();
            }
            IA32_BIOS_SIGN_ID => {}
            IA32_MCG_STATUS => {
                if v != 0 {
                    return gp;
                }
            }
            // Only the supervisor components nestemu has may be enabled
            // (SDM Vol. 1 13.3; CPUID.(EAX=0DH,ECX=1):EDX:ECX).
            IA32_XSS if self.config.model.has(Feature::Xsaves) => {
                if v & !crate::interp::xsave::SUPPORTED_XSS != 0 {
                    return gp;
                }
                self.cpu.msr.xss = v;
            }
            IA32_MISC_ENABLE => self.cpu.msr.misc_enable = v,
            IA32_MTRR_DEF_TYPE => {
                if v & !0xcff != 0 {
                    return gp;
                }
                self.cpu.msr.mtrr_def_type = v;
            }
            i if (IA32_MTRR_PHYSBASE0..IA32_MTRR_PHYSBASE0 + 16).contains(&i) => {
                self.cpu.msr.mtrr_var[(i - IA32_MTRR_PHYSBASE0) as usize] = v;
            }
            i if fixed_mtrr_index(i).is_some() => {
                self.cpu.msr.mtrr_fixed[fixed_mtrr_index(i).unwrap_or(0)] = v;
            }
            IA32_PAT => {
                if !pat_valid(v) {
                    return gp;
                }
                self.cpu.sys.pat = v;
            }
            IA32_SYSENTER_CS => self.cpu.sys.sysenter_cs = v & 0xffff,
            IA32_SYSENTER_ESP | IA32_SYSENTER_EIP => {
                if !canonical(v) {
                    return gp;
                }
                if idx == IA32_SYSENTER_ESP {
                    self.cpu.sys.sysenter_esp = v;
                } else {
                    self.cpu.sys.sysenter_eip = v;
                }
            }
            IA32_DEBUGCTL => {
                // Only BTF (bit 1) and LBR (bit 0) are architectural; neither is
                // modelled, so only zero is accepted.
                if v != 0 {
                    return gp;
                }
            }
            IA32_EFER => {
                let new = Efer::from_bits_retain(v);
                let writable = self.efer_writable();
                if !writable.union(Efer::LMA).contains(new) {
                    return gp;
                }
                let old = self.cpu.sys.efer;
                if (old ^ new).contains(Efer::LME) && self.cpu.sys.cr0.contains(mmu::Cr0::PG) {
                    return gp;
                }
                self.cpu.sys.efer = (new & writable) | (old & Efer::LMA);
                if (old ^ new).contains(Efer::NXE) {
                    // Cached translations hold the XD bits they were built
                    // with; NXE changes their meaning.
                    self.mmu.flush_all();
                }
                self.paging_changed();
            }
            IA32_STAR => self.cpu.sys.star = v,
            IA32_LSTAR | IA32_CSTAR | IA32_FS_BASE | IA32_GS_BASE | IA32_KERNEL_GS_BASE => {
                if !canonical(v) {
                    return gp;
                }
                match idx {
                    IA32_LSTAR => self.cpu.sys.lstar = v,
                    IA32_CSTAR => self.cpu.sys.cstar = v,
                    IA32_FS_BASE => self.cpu.sys.segs[mmu::SegReg::Fs as usize].base = v,
                    IA32_GS_BASE => self.cpu.sys.segs[mmu::SegReg::Gs as usize].base = v,
                    _ => self.cpu.sys.kernel_gs_base = v,
                }
            }
            IA32_FMASK => self.cpu.sys.sfmask = v & 0xffff_ffff,
            IA32_TSC_AUX
                if self.config.model.has(Feature::Rdtscp)
                    || self.config.model.has(Feature::Rdpid) =>
            {
                if v >> 32 != 0 {
                    return gp;
                }
                self.cpu.msr.tsc_aux = v;
            }
            _ => return gp,
        }
        Ok(())
    }
}

/// The slot of a fixed-range MTRR.
fn fixed_mtrr_index(i: u32) -> Option<usize> {
    match i {
        IA32_MTRR_FIX64K_00000 => Some(0),
        IA32_MTRR_FIX16K_80000 => Some(1),
        IA32_MTRR_FIX16K_A0000 => Some(2),
        IA32_MTRR_FIX4K_C0000..=IA32_MTRR_FIX4K_F8000 => {
            Some(3 + (i - IA32_MTRR_FIX4K_C0000) as usize)
        }
        _ => None,
    }
}

/// RDTSC: #GP(0) at CPL > 0 when CR4.TSD is set.
pub fn rdtsc(m: &mut Machine, i: &Instruction) -> Flow {
    if m.cpu.sys.cr4.contains(Cr4::TSD) && m.cpu.cpl() > 0 {
        return Err(Event::gp0());
    }
    let what = if i.mnemonic() == iced_x86::Mnemonic::Rdtscp {
        Intercept::Rdtscp
    } else {
        Intercept::Rdtsc
    };
    m.intercept(i, what)?;
    let t = m.tsc();
    m.cpu.gpr[0] = t & 0xffff_ffff;
    m.cpu.gpr[2] = t >> 32;
    Ok(())
}

/// RDTSCP: RDTSC plus ECX = IA32_TSC_AUX.
pub fn rdtscp(m: &mut Machine, i: &Instruction) -> Flow {
    rdtsc(m, i)?;
    m.cpu.gpr[1] = m.cpu.msr.tsc_aux & 0xffff_ffff;
    Ok(())
}

/// RDPID: the register gets IA32_TSC_AUX.
pub fn rdpid(m: &mut Machine, i: &Instruction) -> Flow {
    let v = m.cpu.msr.tsc_aux;
    m.write_op(i, 0, v)
}

/// RDPMC: the model has no performance counters (CPUID leaf 0AH reports none),
/// so every counter index is invalid: #GP(0) (SDM Vol. 2B RDPMC).
pub fn rdpmc(m: &mut Machine, i: &Instruction) -> Flow {
    if !m.cpu.sys.cr4.contains(Cr4::PCE) && m.cpu.cpl() > 0 {
        return Err(Event::gp0());
    }
    m.intercept(i, Intercept::Rdpmc)?;
    Err(Event::gp0())
}
