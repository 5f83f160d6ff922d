//! The MSR areas of VM entry and VM exit (SDM Vol. 3C 25.7.2 and 25.8.2, table
//! 25-16 "Format of an MSR Entry"; 27.4, "Loading MSRs"; 28.4, "Saving MSRs";
//! 28.6, "Loading MSRs") and the MSRs that live in [`SystemRegs`].
//!
//! Each entry is 16 bytes: bits 31:0 the MSR index, bits 63:32 reserved (must be
//! 0), bits 127:64 the value. Loads are returned as values: writes to MSRs held in
//! `SystemRegs` are folded into the register file, the others are listed in order
//! for the machine to apply.

use crate::mem::{Access, MsrOracle, PhysMem, PhysMemExt};
use mmu::{msr, Efer, SystemRegs};

/// IA32_SMM_MONITOR_CTL: writable only in SMM (SDM Vol. 3C 33.15.5).
pub const IA32_SMM_MONITOR_CTL: u32 = 0x9b;
/// IA32_SMBASE: readable only in SMM.
pub const IA32_SMBASE: u32 = 0x9e;

/// One entry of an MSR area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrEntry {
    /// Bits 31:0.
    pub index: u32,
    /// Bits 63:32 (reserved).
    pub reserved: u32,
    /// Bits 127:64.
    pub value: u64,
}

/// Reads entry `i` of the area at `base`.
pub fn read_entry(mem: &mut dyn PhysMem, base: u64, i: u32) -> MsrEntry {
    let pa = base.wrapping_add(16 * i as u64);
    let head = mem.read_u64(pa, Access::MsrArea);
    MsrEntry {
        index: head as u32,
        reserved: (head >> 32) as u32,
        value: mem.read_u64(pa.wrapping_add(8), Access::MsrArea),
    }
}

/// True for the x2APIC MSR range 800H-8FFH (index bits 31:8 = 000008H).
pub const fn is_x2apic(index: u32) -> bool {
    index >> 8 == 8
}

/// Why an MSR-load entry was refused, in the order the SDM lists the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadRefusal {
    /// IA32_FS_BASE or IA32_GS_BASE.
    FsGsBase,
    /// An x2APIC MSR.
    X2apic,
    /// IA32_SMM_MONITOR_CTL outside SMM.
    SmmMonitorCtl,
    /// Bits 63:32 not 0.
    Reserved,
    /// WRMSR would raise #GP.
    WrmsrFault,
}

/// The rules of 27.4 and 28.6 for one entry.
pub fn check_load(e: &MsrEntry, oracle: &mut dyn MsrOracle) -> Result<(), LoadRefusal> {
    if e.index == msr::IA32_FS_BASE || e.index == msr::IA32_GS_BASE {
        return Err(LoadRefusal::FsGsBase);
    }
    if is_x2apic(e.index) {
        return Err(LoadRefusal::X2apic);
    }
    if e.index == IA32_SMM_MONITOR_CTL {
        return Err(LoadRefusal::SmmMonitorCtl);
    }
    if e.reserved != 0 {
        return Err(LoadRefusal::Reserved);
    }
    if !oracle.can_write(e.index, e.value) {
        return Err(LoadRefusal::WrmsrFault);
    }
    Ok(())
}

/// The rules of 28.4 for one MSR-store entry; the value to store on success.
pub fn check_store(e: &MsrEntry, regs: &SystemRegs, oracle: &mut dyn MsrOracle) -> Option<u64> {
    if is_x2apic(e.index) || e.index == IA32_SMBASE || e.reserved != 0 {
        return None;
    }
    read_sysreg_msr(regs, e.index).or_else(|| oracle.read(e.index))
}

/// The value of an MSR held in [`SystemRegs`], or `None` for the others.
pub fn read_sysreg_msr(r: &SystemRegs, index: u32) -> Option<u64> {
    Some(match index {
        msr::IA32_SYSENTER_CS => r.sysenter_cs,
        msr::IA32_SYSENTER_ESP => r.sysenter_esp,
        msr::IA32_SYSENTER_EIP => r.sysenter_eip,
        msr::IA32_STAR => r.star,
        msr::IA32_LSTAR => r.lstar,
        msr::IA32_CSTAR => r.cstar,
        msr::IA32_FMASK => r.sfmask,
        msr::IA32_KERNEL_GS_BASE => r.kernel_gs_base,
        msr::IA32_PAT => r.pat,
        msr::IA32_DEBUGCTL => r.debugctl,
        msr::IA32_EFER => r.efer.bits(),
        msr::IA32_FS_BASE => r.segs[mmu::SegReg::Fs as usize].base,
        msr::IA32_GS_BASE => r.segs[mmu::SegReg::Gs as usize].base,
        _ => return None,
    })
}

/// Writes an MSR held in [`SystemRegs`]; false if `index` is not one of them.
/// EFER.LMA is not writable by WRMSR: it keeps its value.
pub fn write_sysreg_msr(r: &mut SystemRegs, index: u32, value: u64) -> bool {
    match index {
        msr::IA32_SYSENTER_CS => r.sysenter_cs = value,
        msr::IA32_SYSENTER_ESP => r.sysenter_esp = value,
        msr::IA32_SYSENTER_EIP => r.sysenter_eip = value,
        msr::IA32_STAR => r.star = value,
        msr::IA32_LSTAR => r.lstar = value,
        msr::IA32_CSTAR => r.cstar = value,
        msr::IA32_FMASK => r.sfmask = value,
        msr::IA32_KERNEL_GS_BASE => r.kernel_gs_base = value,
        msr::IA32_PAT => r.pat = value,
        msr::IA32_DEBUGCTL => r.debugctl = value,
        msr::IA32_EFER => {
            let lma = r.efer & Efer::LMA;
            r.efer = Efer::from_bits_retain(value & !Efer::LMA.bits()) | lma;
        }
        _ => return false,
    }
    true
}

/// A refused MSR-load entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadFailure {
    /// The 1-based index of the entry (the exit qualification of exit 34).
    pub index: u32,
    /// Why; `None` when the entry lies beyond the area size IA32_VMX_MISC allows.
    pub why: Option<LoadRefusal>,
}

/// The outcome of processing a load area.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadResult {
    /// Writes to MSRs outside `SystemRegs`, in order, up to any failure.
    pub other: Vec<(u32, u64)>,
    /// The first refused entry, if any.
    pub failed: Option<LoadFailure>,
}

/// Applies the entries `0..count` of a load area in order, stopping at the first
/// refused one; writes to MSRs of `SystemRegs` are folded into `regs`.
pub fn load_area(
    mem: &mut dyn PhysMem,
    base: u64,
    count: u32,
    max: u32,
    regs: &mut SystemRegs,
    oracle: &mut dyn MsrOracle,
) -> LoadResult {
    let mut r = LoadResult::default();
    for i in 0..count {
        let refused = if i >= max {
            Some(None)
        } else {
            let e = read_entry(mem, base, i);
            match check_load(&e, oracle) {
                Err(why) => Some(Some(why)),
                Ok(()) => {
                    if !write_sysreg_msr(regs, e.index, e.value) {
                        r.other.push((e.index, e.value));
                    }
                    None
                }
            }
        };
        if let Some(why) = refused {
            r.failed = Some(LoadFailure { index: i + 1, why });
            return r;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FlatMem;

    struct AllOk;
    impl MsrOracle for AllOk {
        fn read(&mut self, index: u32) -> Option<u64> {
            (index != 0xdead).then_some(index as u64 * 3)
        }
        fn can_write(&mut self, index: u32, _: u64) -> bool {
            index != 0xdead
        }
    }

    fn put(m: &mut FlatMem, base: u64, i: u64, index: u32, hi: u32, value: u64) {
        m.write_u64(
            base + 16 * i,
            index as u64 | (hi as u64) << 32,
            Access::MsrArea,
        );
        m.write_u64(base + 16 * i + 8, value, Access::MsrArea);
    }

    #[test]
    fn load_area_folds_and_stops_at_first_refusal() {
        let mut m = FlatMem::new(0x2000);
        put(&mut m, 0x1000, 0, msr::IA32_PAT, 0, 0x0606_0606_0606_0606);
        put(&mut m, 0x1000, 1, msr::IA32_TSC_AUX, 0, 7);
        put(&mut m, 0x1000, 2, 0x808, 0, 0);
        let mut regs = SystemRegs::default();
        let r = load_area(&mut m, 0x1000, 3, 512, &mut regs, &mut AllOk);
        assert_eq!(regs.pat, 0x0606_0606_0606_0606);
        assert_eq!(r.other, vec![(msr::IA32_TSC_AUX, 7)]);
        let x2apic = LoadFailure {
            index: 3,
            why: Some(LoadRefusal::X2apic),
        };
        assert_eq!(r.failed, Some(x2apic));
        let r = load_area(&mut m, 0x1000, 2, 1, &mut regs, &mut AllOk);
        assert_eq!(
            r.failed,
            Some(LoadFailure {
                index: 2,
                why: None
            })
        );
    }

    #[test]
    fn load_rules_in_order() {
        let e = |index, reserved| MsrEntry {
            index,
            reserved,
            value: 0,
        };
        let o = &mut AllOk;
        assert_eq!(
            check_load(&e(msr::IA32_GS_BASE, 1), o),
            Err(LoadRefusal::FsGsBase)
        );
        assert_eq!(check_load(&e(0x8ff, 1), o), Err(LoadRefusal::X2apic));
        assert_eq!(check_load(&e(0x9b, 0), o), Err(LoadRefusal::SmmMonitorCtl));
        assert_eq!(check_load(&e(0x10, 1), o), Err(LoadRefusal::Reserved));
        assert_eq!(check_load(&e(0xdead, 0), o), Err(LoadRefusal::WrmsrFault));
        assert_eq!(check_load(&e(0x10, 0), o), Ok(()));
        let regs = SystemRegs {
            star: 42,
            ..Default::default()
        };
        assert_eq!(check_store(&e(msr::IA32_STAR, 0), &regs, o), Some(42));
        assert_eq!(check_store(&e(0x10, 0), &regs, o), Some(0x30));
        assert_eq!(check_store(&e(IA32_SMBASE, 0), &regs, o), None);
        assert_eq!(check_store(&e(0xdead, 0), &regs, o), None);
    }
}
