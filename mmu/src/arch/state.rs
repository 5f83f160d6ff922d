//! The system-register file: the architectural state VM entry, VM exit, VMRUN,
//! #VMEXIT, VMLOAD and VMSAVE load and store (SDM Vol. 3C 25.4, "Guest-state area",
//! and 25.5, "Host-state area"; APM Vol. 2 appendix B, "VMCB layout").
//!
//! `emu` keeps its CPU's system registers in exactly this type, and the VMX and
//! SVM models take and return it, so there is one definition of "the state" that
//! every crate agrees on.

use crate::{Cr0, Cr4, Dr7, Efer, SegmentCache, TableRegister};
use serde::{Deserialize, Serialize};

/// The six segment registers, in the order of their instruction encodings
/// (ES=0, CS=1, SS=2, DS=3, FS=4, GS=5; SDM Vol. 2A table 3-1 "Sreg").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum SegReg {
    /// ES.
    Es = 0,
    /// CS.
    Cs = 1,
    /// SS.
    Ss = 2,
    /// DS.
    Ds = 3,
    /// FS.
    Fs = 4,
    /// GS.
    Gs = 5,
}

impl SegReg {
    /// All six, in encoding order.
    pub const ALL: [SegReg; 6] = [
        SegReg::Es,
        SegReg::Cs,
        SegReg::Ss,
        SegReg::Ds,
        SegReg::Fs,
        SegReg::Gs,
    ];

    /// The assembler name.
    pub const fn name(self) -> &'static str {
        match self {
            SegReg::Es => "es",
            SegReg::Cs => "cs",
            SegReg::Ss => "ss",
            SegReg::Ds => "ds",
            SegReg::Fs => "fs",
            SegReg::Gs => "gs",
        }
    }
}

/// The system registers of one logical processor.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemRegs {
    /// CR0.
    pub cr0: Cr0,
    /// CR2, the page-fault linear address.
    pub cr2: u64,
    /// CR3, the paging-structure root (with PCID or PWT/PCD bits).
    pub cr3: u64,
    /// CR4.
    pub cr4: Cr4,
    /// IA32_EFER.
    pub efer: Efer,
    /// DR0-DR3, breakpoint linear addresses.
    pub dr: [u64; 4],
    /// DR6, debug status.
    pub dr6: u64,
    /// DR7, debug control.
    pub dr7: Dr7,
    /// ES, CS, SS, DS, FS, GS indexed by [`SegReg`].
    pub segs: [SegmentCache; 6],
    /// LDTR.
    pub ldtr: SegmentCache,
    /// TR.
    pub tr: SegmentCache,
    /// GDTR.
    pub gdtr: TableRegister,
    /// IDTR.
    pub idtr: TableRegister,
    /// IA32_SYSENTER_CS.
    pub sysenter_cs: u64,
    /// IA32_SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// IA32_SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// IA32_STAR.
    pub star: u64,
    /// IA32_LSTAR.
    pub lstar: u64,
    /// IA32_CSTAR.
    pub cstar: u64,
    /// IA32_FMASK (SFMASK).
    pub sfmask: u64,
    /// IA32_KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_DEBUGCTL.
    pub debugctl: u64,
    /// XCR0.
    pub xcr0: u64,
}

impl SystemRegs {
    /// A segment register.
    #[inline]
    pub fn seg(&self, r: SegReg) -> &SegmentCache {
        &self.segs[r as usize]
    }
    /// A segment register, mutably.
    #[inline]
    pub fn seg_mut(&mut self, r: SegReg) -> &mut SegmentCache {
        &mut self.segs[r as usize]
    }
    /// The current privilege level: CS.DPL in protected mode (SS.DPL equals it
    /// after any architectural load), 3 in virtual-8086 mode, 0 in real mode.
    /// Callers that know RFLAGS.VM use [`SystemRegs::cpl_with_vm`].
    #[inline]
    pub fn cpl(&self) -> u8 {
        if !self.cr0.contains(Cr0::PE) {
            0
        } else {
            self.segs[SegReg::Ss as usize].attr.dpl()
        }
    }
    /// The current privilege level given RFLAGS.VM.
    #[inline]
    pub fn cpl_with_vm(&self, vm: bool) -> u8 {
        if vm && self.cr0.contains(Cr0::PE) {
            3
        } else {
            self.cpl()
        }
    }
    /// True when IA-32e mode is active (EFER.LMA).
    #[inline]
    pub fn long_mode_active(&self) -> bool {
        self.efer.contains(Efer::LMA)
    }
    /// The IA32_PAT value at reset (SDM Vol. 3A 11.12.4).
    pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
}
