//! Control registers, EFER, RFLAGS, XCR0 and debug-register bits.

use bitflags::bitflags;
use serde::{Deserialize, Serialize};

bitflags! {
    /// CR0 (SDM Vol. 3A 2.5, "Control registers").
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Cr0: u64 {
        /// Protection enable.
        const PE = 1 << 0;
        /// Monitor coprocessor.
        const MP = 1 << 1;
        /// x87 emulation.
        const EM = 1 << 2;
        /// Task switched.
        const TS = 1 << 3;
        /// Extension type (reads as 1).
        const ET = 1 << 4;
        /// Numeric error: native x87 error reporting.
        const NE = 1 << 5;
        /// Write protect for supervisor writes.
        const WP = 1 << 16;
        /// Alignment mask.
        const AM = 1 << 18;
        /// Not write-through.
        const NW = 1 << 29;
        /// Cache disable.
        const CD = 1 << 30;
        /// Paging.
        const PG = 1 << 31;
    }
}

impl Cr0 {
    /// Bits 63:32 are reserved and must be zero (SDM Vol. 3A 2.5); bits 28:19, 17
    /// and 15:6 are reserved but ignored on writes. A MOV to CR0 sets ET regardless.
    pub const RESERVED_HIGH: u64 = 0xffff_ffff_0000_0000;
}

bitflags! {
    /// CR4 (SDM Vol. 3A 2.5).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Cr4: u64 {
        /// Virtual-8086 mode extensions.
        const VME = 1 << 0;
        /// Protected-mode virtual interrupts.
        const PVI = 1 << 1;
        /// Time stamp disable (RDTSC at CPL>0 faults).
        const TSD = 1 << 2;
        /// Debugging extensions.
        const DE = 1 << 3;
        /// Page size extensions (4-MiB pages in 32-bit paging).
        const PSE = 1 << 4;
        /// Physical address extension.
        const PAE = 1 << 5;
        /// Machine-check enable.
        const MCE = 1 << 6;
        /// Page global enable.
        const PGE = 1 << 7;
        /// Performance-monitoring counter enable.
        const PCE = 1 << 8;
        /// OS support for FXSAVE/FXRSTOR.
        const OSFXSR = 1 << 9;
        /// OS support for unmasked SIMD floating-point exceptions.
        const OSXMMEXCPT = 1 << 10;
        /// User-mode instruction prevention.
        const UMIP = 1 << 11;
        /// 57-bit linear addresses (5-level paging).
        const LA57 = 1 << 12;
        /// VMX enable.
        const VMXE = 1 << 13;
        /// SMX enable.
        const SMXE = 1 << 14;
        /// FSGSBASE enable.
        const FSGSBASE = 1 << 16;
        /// PCID enable.
        const PCIDE = 1 << 17;
        /// XSAVE and processor extended states enable.
        const OSXSAVE = 1 << 18;
        /// Key locker enable.
        const KL = 1 << 19;
        /// Supervisor-mode execution prevention.
        const SMEP = 1 << 20;
        /// Supervisor-mode access prevention.
        const SMAP = 1 << 21;
        /// Protection keys for user-mode pages.
        const PKE = 1 << 22;
        /// Control-flow enforcement technology.
        const CET = 1 << 23;
        /// Protection keys for supervisor-mode pages.
        const PKS = 1 << 24;
    }
}

bitflags! {
    /// IA32_EFER, MSR C000_0080H (SDM Vol. 3A 2.2.1; APM Vol. 2 3.1.7).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Efer: u64 {
        /// SYSCALL enable.
        const SCE = 1 << 0;
        /// Long mode enable.
        const LME = 1 << 8;
        /// Long mode active (read-only to software on Intel).
        const LMA = 1 << 10;
        /// No-execute enable.
        const NXE = 1 << 11;
        /// Secure virtual machine enable (AMD).
        const SVME = 1 << 12;
        /// Long mode segment limit enable (AMD).
        const LMSLE = 1 << 13;
        /// Fast FXSAVE/FXRSTOR (AMD).
        const FFXSR = 1 << 14;
        /// Translation cache extension (AMD).
        const TCE = 1 << 15;
    }
}

bitflags! {
    /// RFLAGS (SDM Vol. 1 3.4.3, "EFLAGS register").
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Rflags: u64 {
        /// Carry.
        const CF = 1 << 0;
        /// Reserved, always 1.
        const FIXED1 = 1 << 1;
        /// Parity.
        const PF = 1 << 2;
        /// Auxiliary carry.
        const AF = 1 << 4;
        /// Zero.
        const ZF = 1 << 6;
        /// Sign.
        const SF = 1 << 7;
        /// Trap (single-step).
        const TF = 1 << 8;
        /// Interrupt enable.
        const IF = 1 << 9;
        /// Direction.
        const DF = 1 << 10;
        /// Overflow.
        const OF = 1 << 11;
        /// I/O privilege level, bit 0.
        const IOPL0 = 1 << 12;
        /// I/O privilege level, bit 1.
        const IOPL1 = 1 << 13;
        /// Nested task.
        const NT = 1 << 14;
        /// Resume (suppresses instruction breakpoints once).
        const RF = 1 << 16;
        /// Virtual-8086 mode.
        const VM = 1 << 17;
        /// Alignment check / access control.
        const AC = 1 << 18;
        /// Virtual interrupt flag.
        const VIF = 1 << 19;
        /// Virtual interrupt pending.
        const VIP = 1 << 20;
        /// CPUID available.
        const ID = 1 << 21;
    }
}

impl Rflags {
    /// The six status flags written by arithmetic instructions.
    pub const STATUS: Rflags = Rflags::CF
        .union(Rflags::PF)
        .union(Rflags::AF)
        .union(Rflags::ZF)
        .union(Rflags::SF)
        .union(Rflags::OF);
    /// IOPL field mask.
    pub const IOPL: Rflags = Rflags::IOPL0.union(Rflags::IOPL1);
    /// Every bit software can ever see set.
    pub const DEFINED: u64 = 0x003f_7fd5;

    /// The I/O privilege level.
    #[inline]
    pub const fn iopl(self) -> u8 {
        ((self.bits() >> 12) & 3) as u8
    }
}

bitflags! {
    /// XCR0, the XSAVE feature-enabled mask (SDM Vol. 1 13.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Xcr0: u64 {
        /// x87 state (must be 1).
        const X87 = 1 << 0;
        /// SSE state.
        const SSE = 1 << 1;
        /// AVX state.
        const AVX = 1 << 2;
    }
}

bitflags! {
    /// DR7, debug control (SDM Vol. 3B 18.2.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Dr7: u64 {
        /// Local enable, breakpoint 0.
        const L0 = 1 << 0;
        /// Global enable, breakpoint 0.
        const G0 = 1 << 1;
        /// Local enable, breakpoint 1.
        const L1 = 1 << 2;
        /// Global enable, breakpoint 1.
        const G1 = 1 << 3;
        /// Local enable, breakpoint 2.
        const L2 = 1 << 4;
        /// Global enable, breakpoint 2.
        const G2 = 1 << 5;
        /// Local enable, breakpoint 3.
        const L3 = 1 << 6;
        /// Global enable, breakpoint 3.
        const G3 = 1 << 7;
        /// Local exact breakpoint.
        const LE = 1 << 8;
        /// Global exact breakpoint.
        const GE = 1 << 9;
        /// Reserved, reads as 1.
        const FIXED1 = 1 << 10;
        /// Restricted transactional memory.
        const RTM = 1 << 11;
        /// General detect.
        const GD = 1 << 13;
        /// R/W and LEN fields of all four breakpoints.
        const RW_LEN = 0xffff_0000;
    }
}

impl Dr7 {
    /// Condition field (R/Wn) of breakpoint `n`: 0 execute, 1 write, 2 I/O, 3 read/write.
    #[inline]
    pub const fn rw(self, n: usize) -> u8 {
        ((self.bits() >> (16 + 4 * n)) & 3) as u8
    }
    /// Length field (LENn) of breakpoint `n` in bytes: 1, 2, 8 or 4.
    #[inline]
    pub const fn len_bytes(self, n: usize) -> u64 {
        match (self.bits() >> (18 + 4 * n)) & 3 {
            0 => 1,
            1 => 2,
            2 => 8,
            _ => 4,
        }
    }
    /// True if breakpoint `n` is enabled locally or globally.
    #[inline]
    pub const fn enabled(self, n: usize) -> bool {
        (self.bits() >> (2 * n)) & 3 != 0
    }
}

/// DR6 bits (SDM Vol. 3B 18.2.3).
pub mod dr6 {
    /// Breakpoint conditions detected, B0..B3.
    pub const B_MASK: u64 = 0xf;
    /// Debug register access detected.
    pub const BD: u64 = 1 << 13;
    /// Single step.
    pub const BS: u64 = 1 << 14;
    /// Task switch.
    pub const BT: u64 = 1 << 15;
    /// RTM (active low).
    pub const RTM: u64 = 1 << 16;
    /// Value DR6 holds after reset; bits 31:16 and 11:4 read as 1.
    pub const INIT: u64 = 0xffff_0ff0;
}

/// The current privilege level's relation to the mode of the processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CpuMode {
    /// Real-address mode (CR0.PE = 0).
    Real,
    /// Protected mode, 16- or 32-bit code segment.
    Protected,
    /// Virtual-8086 mode (protected mode with RFLAGS.VM = 1).
    Virtual8086,
    /// IA-32e compatibility mode (EFER.LMA = 1, CS.L = 0).
    Compatibility,
    /// IA-32e 64-bit mode (EFER.LMA = 1, CS.L = 1).
    Long64,
}
