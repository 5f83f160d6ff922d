//! SVM intercept exit codes: the one table (APM Vol. 2 appendix C, table C-1,
//! "SVM Intercept Codes").
//!
//! The EXITCODE field of the VMCB is 64 bits wide; VMEXIT_INVALID is -1. Codes
//! that come in families (CRn/DRn reads and writes, exceptions, CR write traps)
//! are listed once per member so every code has its manual name.

use serde::{Deserialize, Serialize};

/// An SVM exit code, as stored in the VMCB EXITCODE field.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExitCode(pub u64);

macro_rules! exit_codes {
    ($( $name:ident = $code:expr, $desc:literal; )*) => {
        impl ExitCode {
            $(
                #[doc = $desc]
                pub const $name: ExitCode = ExitCode($code);
            )*

            /// Every exit code of the table, in table order.
            pub const ALL: &'static [(ExitCode, &'static str, &'static str)] =
                &[ $( (ExitCode($code), stringify!($name), $desc), )* ];
        }
    };
}

exit_codes! {
    VMEXIT_CR0_READ = 0x00, "Read of CR0.";
    VMEXIT_CR1_READ = 0x01, "Read of CR1.";
    VMEXIT_CR2_READ = 0x02, "Read of CR2.";
    VMEXIT_CR3_READ = 0x03, "Read of CR3.";
    VMEXIT_CR4_READ = 0x04, "Read of CR4.";
    VMEXIT_CR5_READ = 0x05, "Read of CR5.";
    VMEXIT_CR6_READ = 0x06, "Read of CR6.";
    VMEXIT_CR7_READ = 0x07, "Read of CR7.";
    VMEXIT_CR8_READ = 0x08, "Read of CR8.";
    VMEXIT_CR9_READ = 0x09, "Read of CR9.";
    VMEXIT_CR10_READ = 0x0a, "Read of CR10.";
    VMEXIT_CR11_READ = 0x0b, "Read of CR11.";
    VMEXIT_CR12_READ = 0x0c, "Read of CR12.";
    VMEXIT_CR13_READ = 0x0d, "Read of CR13.";
    VMEXIT_CR14_READ = 0x0e, "Read of CR14.";
    VMEXIT_CR15_READ = 0x0f, "Read of CR15.";
    VMEXIT_CR0_WRITE = 0x10, "Write of CR0.";
    VMEXIT_CR1_WRITE = 0x11, "Write of CR1.";
    VMEXIT_CR2_WRITE = 0x12, "Write of CR2.";
    VMEXIT_CR3_WRITE = 0x13, "Write of CR3.";
    VMEXIT_CR4_WRITE = 0x14, "Write of CR4.";
    VMEXIT_CR5_WRITE = 0x15, "Write of CR5.";
    VMEXIT_CR6_WRITE = 0x16, "Write of CR6.";
    VMEXIT_CR7_WRITE = 0x17, "Write of CR7.";
    VMEXIT_CR8_WRITE = 0x18, "Write of CR8.";
    VMEXIT_CR9_WRITE = 0x19, "Write of CR9.";
    VMEXIT_CR10_WRITE = 0x1a, "Write of CR10.";
    VMEXIT_CR11_WRITE = 0x1b, "Write of CR11.";
    VMEXIT_CR12_WRITE = 0x1c, "Write of CR12.";
    VMEXIT_CR13_WRITE = 0x1d, "Write of CR13.";
    VMEXIT_CR14_WRITE = 0x1e, "Write of CR14.";
    VMEXIT_CR15_WRITE = 0x1f, "Write of CR15.";
    VMEXIT_DR0_READ = 0x20, "Read of DR0.";
    VMEXIT_DR1_READ = 0x21, "Read of DR1.";
    VMEXIT_DR2_READ = 0x22, "Read of DR2.";
    VMEXIT_DR3_READ = 0x23, "Read of DR3.";
    VMEXIT_DR4_READ = 0x24, "Read of DR4.";
    VMEXIT_DR5_READ = 0x25, "Read of DR5.";
    VMEXIT_DR6_READ = 0x26, "Read of DR6.";
    VMEXIT_DR7_READ = 0x27, "Read of DR7.";
    VMEXIT_DR8_READ = 0x28, "Read of DR8.";
    VMEXIT_DR9_READ = 0x29, "Read of DR9.";
    VMEXIT_DR10_READ = 0x2a, "Read of DR10.";
    VMEXIT_DR11_READ = 0x2b, "Read of DR11.";
    VMEXIT_DR12_READ = 0x2c, "Read of DR12.";
    VMEXIT_DR13_READ = 0x2d, "Read of DR13.";
    VMEXIT_DR14_READ = 0x2e, "Read of DR14.";
    VMEXIT_DR15_READ = 0x2f, "Read of DR15.";
    VMEXIT_DR0_WRITE = 0x30, "Write of DR0.";
    VMEXIT_DR1_WRITE = 0x31, "Write of DR1.";
    VMEXIT_DR2_WRITE = 0x32, "Write of DR2.";
    VMEXIT_DR3_WRITE = 0x33, "Write of DR3.";
    VMEXIT_DR4_WRITE = 0x34, "Write of DR4.";
    VMEXIT_DR5_WRITE = 0x35, "Write of DR5.";
    VMEXIT_DR6_WRITE = 0x36, "Write of DR6.";
    VMEXIT_DR7_WRITE = 0x37, "Write of DR7.";
    VMEXIT_DR8_WRITE = 0x38, "Write of DR8.";
    VMEXIT_DR9_WRITE = 0x39, "Write of DR9.";
    VMEXIT_DR10_WRITE = 0x3a, "Write of DR10.";
    VMEXIT_DR11_WRITE = 0x3b, "Write of DR11.";
    VMEXIT_DR12_WRITE = 0x3c, "Write of DR12.";
    VMEXIT_DR13_WRITE = 0x3d, "Write of DR13.";
    VMEXIT_DR14_WRITE = 0x3e, "Write of DR14.";
    VMEXIT_DR15_WRITE = 0x3f, "Write of DR15.";
    VMEXIT_EXCP0 = 0x40, "Exception vector 0 (#DE).";
    VMEXIT_EXCP1 = 0x41, "Exception vector 1 (#DB).";
    VMEXIT_EXCP2 = 0x42, "Exception vector 2 (reserved; NMI uses VMEXIT_NMI).";
    VMEXIT_EXCP3 = 0x43, "Exception vector 3 (#BP).";
    VMEXIT_EXCP4 = 0x44, "Exception vector 4 (#OF).";
    VMEXIT_EXCP5 = 0x45, "Exception vector 5 (#BR).";
    VMEXIT_EXCP6 = 0x46, "Exception vector 6 (#UD).";
    VMEXIT_EXCP7 = 0x47, "Exception vector 7 (#NM).";
    VMEXIT_EXCP8 = 0x48, "Exception vector 8 (#DF).";
    VMEXIT_EXCP9 = 0x49, "Exception vector 9 (reserved).";
    VMEXIT_EXCP10 = 0x4a, "Exception vector 10 (#TS).";
    VMEXIT_EXCP11 = 0x4b, "Exception vector 11 (#NP).";
    VMEXIT_EXCP12 = 0x4c, "Exception vector 12 (#SS).";
    VMEXIT_EXCP13 = 0x4d, "Exception vector 13 (#GP).";
    VMEXIT_EXCP14 = 0x4e, "Exception vector 14 (#PF).";
    VMEXIT_EXCP15 = 0x4f, "Exception vector 15 (reserved).";
    VMEXIT_EXCP16 = 0x50, "Exception vector 16 (#MF).";
    VMEXIT_EXCP17 = 0x51, "Exception vector 17 (#AC).";
    VMEXIT_EXCP18 = 0x52, "Exception vector 18 (#MC).";
    VMEXIT_EXCP19 = 0x53, "Exception vector 19 (#XF).";
    VMEXIT_EXCP20 = 0x54, "Exception vector 20 (reserved).";
    VMEXIT_EXCP21 = 0x55, "Exception vector 21 (#CP).";
    VMEXIT_EXCP22 = 0x56, "Exception vector 22 (reserved).";
    VMEXIT_EXCP23 = 0x57, "Exception vector 23 (reserved).";
    VMEXIT_EXCP24 = 0x58, "Exception vector 24 (reserved).";
    VMEXIT_EXCP25 = 0x59, "Exception vector 25 (reserved).";
    VMEXIT_EXCP26 = 0x5a, "Exception vector 26 (reserved).";
    VMEXIT_EXCP27 = 0x5b, "Exception vector 27 (reserved).";
    VMEXIT_EXCP28 = 0x5c, "Exception vector 28 (#HV).";
    VMEXIT_EXCP29 = 0x5d, "Exception vector 29 (#VC).";
    VMEXIT_EXCP30 = 0x5e, "Exception vector 30 (#SX).";
    VMEXIT_EXCP31 = 0x5f, "Exception vector 31 (reserved).";
    VMEXIT_INTR = 0x60, "Physical INTR (maskable interrupt).";
    VMEXIT_NMI = 0x61, "Physical NMI.";
    VMEXIT_SMI = 0x62, "Physical SMI (additional information in EXITINFO1).";
    VMEXIT_INIT = 0x63, "Physical INIT.";
    VMEXIT_VINTR = 0x64, "Virtual INTR.";
    VMEXIT_CR0_SEL_WRITE = 0x65, "Write of CR0 that changed any bits other than CR0.TS or CR0.MP.";
    VMEXIT_IDTR_READ = 0x66, "Read of IDTR.";
    VMEXIT_GDTR_READ = 0x67, "Read of GDTR.";
    VMEXIT_LDTR_READ = 0x68, "Read of LDTR.";
    VMEXIT_TR_READ = 0x69, "Read of TR.";
    VMEXIT_IDTR_WRITE = 0x6a, "Write of IDTR.";
    VMEXIT_GDTR_WRITE = 0x6b, "Write of GDTR.";
    VMEXIT_LDTR_WRITE = 0x6c, "Write of LDTR.";
    VMEXIT_TR_WRITE = 0x6d, "Write of TR.";
    VMEXIT_RDTSC = 0x6e, "RDTSC instruction.";
    VMEXIT_RDPMC = 0x6f, "RDPMC instruction.";
    VMEXIT_PUSHF = 0x70, "PUSHF instruction.";
    VMEXIT_POPF = 0x71, "POPF instruction.";
    VMEXIT_CPUID = 0x72, "CPUID instruction.";
    VMEXIT_RSM = 0x73, "RSM instruction.";
    VMEXIT_IRET = 0x74, "IRET instruction.";
    VMEXIT_SWINT = 0x75, "Software interrupt (INTn instruction).";
    VMEXIT_INVD = 0x76, "INVD instruction.";
    VMEXIT_PAUSE = 0x77, "PAUSE instruction.";
    VMEXIT_HLT = 0x78, "HLT instruction.";
    VMEXIT_INVLPG = 0x79, "INVLPG instruction.";
    VMEXIT_INVLPGA = 0x7a, "INVLPGA instruction.";
    VMEXIT_IOIO = 0x7b, "IN or OUT accessing protected port (additional information in EXITINFO1 and EXITINFO2).";
    VMEXIT_MSR = 0x7c, "RDMSR or WRMSR access to protected MSR.";
    VMEXIT_TASK_SWITCH = 0x7d, "Task switch.";
    VMEXIT_FERR_FREEZE = 0x7e, "FP legacy handling enabled, and processor is frozen in an x87/mmx instruction waiting for an interrupt.";
    VMEXIT_SHUTDOWN = 0x7f, "Shutdown.";
    VMEXIT_VMRUN = 0x80, "VMRUN instruction.";
    VMEXIT_VMMCALL = 0x81, "VMMCALL instruction.";
    VMEXIT_VMLOAD = 0x82, "VMLOAD instruction.";
    VMEXIT_VMSAVE = 0x83, "VMSAVE instruction.";
    VMEXIT_STGI = 0x84, "STGI instruction.";
    VMEXIT_CLGI = 0x85, "CLGI instruction.";
    VMEXIT_SKINIT = 0x86, "SKINIT instruction.";
    VMEXIT_RDTSCP = 0x87, "RDTSCP instruction.";
    VMEXIT_ICEBP = 0x88, "ICEBP instruction.";
    VMEXIT_WBINVD = 0x89, "WBINVD or WBNOINVD instruction.";
    VMEXIT_MONITOR = 0x8a, "MONITOR or MONITORX instruction.";
    VMEXIT_MWAIT = 0x8b, "MWAIT or MWAITX instruction.";
    VMEXIT_MWAIT_CONDITIONAL = 0x8c, "MWAIT or MWAITX instruction, if monitor hardware is armed.";
    VMEXIT_XSETBV = 0x8d, "XSETBV instruction.";
    VMEXIT_RDPRU = 0x8e, "RDPRU instruction.";
    VMEXIT_EFER_WRITE_TRAP = 0x8f, "Write of EFER MSR (occurs after guest instruction finishes).";
    VMEXIT_CR0_WRITE_TRAP = 0x90, "Write of CR0 (occurs after guest instruction finishes).";
    VMEXIT_CR1_WRITE_TRAP = 0x91, "Write of CR1 (occurs after guest instruction finishes).";
    VMEXIT_CR2_WRITE_TRAP = 0x92, "Write of CR2 (occurs after guest instruction finishes).";
    VMEXIT_CR3_WRITE_TRAP = 0x93, "Write of CR3 (occurs after guest instruction finishes).";
    VMEXIT_CR4_WRITE_TRAP = 0x94, "Write of CR4 (occurs after guest instruction finishes).";
    VMEXIT_CR5_WRITE_TRAP = 0x95, "Write of CR5 (occurs after guest instruction finishes).";
    VMEXIT_CR6_WRITE_TRAP = 0x96, "Write of CR6 (occurs after guest instruction finishes).";
    VMEXIT_CR7_WRITE_TRAP = 0x97, "Write of CR7 (occurs after guest instruction finishes).";
    VMEXIT_CR8_WRITE_TRAP = 0x98, "Write of CR8 (occurs after guest instruction finishes).";
    VMEXIT_CR9_WRITE_TRAP = 0x99, "Write of CR9 (occurs after guest instruction finishes).";
    VMEXIT_CR10_WRITE_TRAP = 0x9a, "Write of CR10 (occurs after guest instruction finishes).";
    VMEXIT_CR11_WRITE_TRAP = 0x9b, "Write of CR11 (occurs after guest instruction finishes).";
    VMEXIT_CR12_WRITE_TRAP = 0x9c, "Write of CR12 (occurs after guest instruction finishes).";
    VMEXIT_CR13_WRITE_TRAP = 0x9d, "Write of CR13 (occurs after guest instruction finishes).";
    VMEXIT_CR14_WRITE_TRAP = 0x9e, "Write of CR14 (occurs after guest instruction finishes).";
    VMEXIT_CR15_WRITE_TRAP = 0x9f, "Write of CR15 (occurs after guest instruction finishes).";
    VMEXIT_INVLPGB = 0xa0, "INVLPGB instruction.";
    VMEXIT_INVLPGB_ILLEGAL = 0xa1, "Illegal INVLPGB instruction.";
    VMEXIT_INVPCID = 0xa2, "INVPCID instruction.";
    VMEXIT_MCOMMIT = 0xa3, "MCOMMIT instruction.";
    VMEXIT_TLBSYNC = 0xa4, "TLBSYNC instruction.";
    VMEXIT_BUSLOCK = 0xa5, "Bus lock while Bus Lock Threshold Counter value is 0.";
    VMEXIT_IDLE_HLT = 0xa6, "HLT instruction if a virtual interrupt is not pending.";
    VMEXIT_NPF = 0x400, "Nested paging: host-level page fault occurred (EXITINFO1 contains fault error code; EXITINFO2 contains the guest physical address causing the fault).";
    VMEXIT_AVIC_INCOMPLETE_IPI = 0x401, "AVIC: virtual IPI delivery not completed.";
    VMEXIT_AVIC_NOACCEL = 0x402, "AVIC: attempted access by guest to vAPIC register not handled by AVIC hardware.";
    VMEXIT_VMGEXIT = 0x403, "VMGEXIT instruction.";
    VMEXIT_INVALID = u64::MAX, "Invalid guest state in VMCB (-1).";
    VMEXIT_BUSY = u64::MAX - 1, "BUSY bit was set in the encrypted VMSA (-2).";
    VMEXIT_IDLE_REQUIRED = u64::MAX - 2, "The sibling thread is not in an idle state (-3).";
    VMEXIT_INVALID_PMC = u64::MAX - 3, "Invalid PMC state (-4).";
}

impl ExitCode {
    /// The exit code for a read (`write == false`) or write of CR`n`.
    pub const fn cr(n: u8, write: bool) -> Self {
        Self((n as u64 & 0xf) | if write { 0x10 } else { 0 })
    }
    /// The exit code for a read or write of DR`n`.
    pub const fn dr(n: u8, write: bool) -> Self {
        Self(0x20 | (n as u64 & 0xf) | if write { 0x10 } else { 0 })
    }
    /// The exit code for an intercepted exception with `vector` (0-31).
    pub const fn exception(vector: u8) -> Self {
        Self(0x40 + (vector as u64 & 0x1f))
    }
    /// The exit code for the trap-style write of CR`n` (after the write).
    pub const fn cr_write_trap(n: u8) -> Self {
        Self(0x90 + (n as u64 & 0xf))
    }

    /// The manual's name, e.g. `VMEXIT_NPF`.
    pub fn name(self) -> Option<&'static str> {
        self.row().map(|(_, n, _)| *n)
    }

    /// The code's row of [`ExitCode::ALL`]. The table starts with the codes
    /// 0, 1, 2, ... in order, so a code below its length is tried at its own
    /// index first (one comparison for every exit of a running guest);
    /// otherwise the table is searched.
    #[inline]
    fn row(self) -> Option<&'static (ExitCode, &'static str, &'static str)> {
        match usize::try_from(self.0).ok().and_then(|i| Self::ALL.get(i)) {
            Some(row) if row.0 == self => Some(row),
            _ => Self::ALL.iter().find(|(c, _, _)| *c == self),
        }
    }

    /// The manual's description.
    pub fn description(self) -> Option<&'static str> {
        self.row().map(|(_, _, d)| *d)
    }

    /// True for the exception-intercept codes VMEXIT_EXCP0..31.
    pub const fn is_exception(self) -> bool {
        self.0 >= 0x40 && self.0 < 0x60
    }

    /// What EXITINFO1 and EXITINFO2 hold for this exit (APM Vol. 2 15.8-15.14,
    /// 15.25.6); "-" where the manual leaves them undefined.
    pub const fn exit_info_meaning(self) -> (&'static str, &'static str) {
        match self.0 {
            0x00..=0x1f => ("decode assists: bit 63 set for MOV CRx, 3:0 the GPR", "-"),
            0x20..=0x3f => ("decode assists: 3:0 the GPR", "-"),
            0x4e => ("#PF error code", "faulting linear address"),
            0x48 | 0x4a..=0x4d | 0x51 | 0x55 | 0x5e => ("the exception's error code", "-"),
            0x62 => (
                "0: SMI source (1 external); 63:32 I/O information if VAL",
                "RIP of the I/O instruction if VAL",
            ),
            0x65 => ("decode assists: bit 63 set for MOV CR0, 3:0 the GPR", "-"),
            0x75 => ("decode assists: the INTn vector", "-"),
            0x79 => ("decode assists: the linear address", "-"),
            0x7b => (
                "TYPE, STR, REP, SZ, A, SEG, PORT (figure 15-2)",
                "RIP of the next instruction",
            ),
            0x7c => ("0 RDMSR, 1 WRMSR", "-"),
            0x7d => (
                "15:0 incoming TSS selector",
                "31:0 error code; 36 IRET, 38 JMP, 44 has error code, 48 RF",
            ),
            0x8f..=0x9f => ("the value written", "-"),
            0x400 => (
                "nested #PF error code; 32 final translation, 33 guest table walk",
                "guest-physical address",
            ),
            _ => ("-", "-"),
        }
    }
}

/// Renders the exit-code table as Markdown (the generated `docs/exit-codes.md`).
pub fn exit_codes_markdown() -> String {
    let mut s = String::from(
        "# SVM exit codes\n\n<!-- Generated by svm_model::exit_code::exit_codes_markdown(); do not edit. -->\n\n\
         Source: AMD APM Vol. 2 appendix C, table C-1; exit information from 15.8-15.14 and 15.25.6.\n\n\
         | Code | Name | Meaning | EXITINFO1 | EXITINFO2 |\n| --- | --- | --- | --- | --- |\n",
    );
    for (c, n, d) in ExitCode::ALL {
        let code = if c.0 >= 1 << 63 {
            format!("{}", c.0 as i64)
        } else {
            format!("{:#x}", c.0)
        };
        let (i1, i2) = c.exit_info_meaning();
        s.push_str(&format!("| {code} | `{n}` | {d} | {i1} | {i2} |\n"));
    }
    s
}

impl core::fmt::Debug for ExitCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({:#x})", self.0),
            None => write!(f, "ExitCode({:#x})", self.0),
        }
    }
}

impl core::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_index_match_the_table_search() {
        let search = |c: ExitCode| ExitCode::ALL.iter().find(|(x, _, _)| *x == c);
        let probes = ExitCode::ALL
            .iter()
            .map(|(c, _, _)| *c)
            .chain((0..0x500).map(ExitCode))
            .chain([ExitCode(u64::MAX - 9), ExitCode(1 << 40)]);
        for c in probes {
            assert_eq!(c.name(), search(c).map(|r| r.1), "{:#x}", c.0);
            assert_eq!(c.description(), search(c).map(|r| r.2), "{:#x}", c.0);
        }
        // The fast path hits for the dense start of the table.
        assert_eq!(ExitCode::ALL[0x81].0, ExitCode::VMEXIT_VMMCALL);
    }

    #[test]
    fn codes_are_unique_and_named() {
        let mut seen = std::collections::BTreeSet::new();
        for (c, n, _) in ExitCode::ALL {
            assert!(seen.insert(c.0), "{n} duplicates {:#x}", c.0);
            assert!(n.starts_with("VMEXIT_"));
        }
        assert_eq!(ExitCode::VMEXIT_INVALID.0 as i64, -1);
        assert_eq!(format!("{:?}", ExitCode::VMEXIT_NPF), "VMEXIT_NPF(0x400)");
        assert_eq!(ExitCode::VMEXIT_IOIO.to_string(), "VMEXIT_IOIO");
    }

    #[test]
    fn generated_exit_code_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exit-codes.md");
        let want = exit_codes_markdown();
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != want {
            if std::env::var_os("SVM_MODEL_BLESS").is_some() {
                std::fs::write(path, &want).unwrap();
            } else {
                panic!("docs/exit-codes.md is stale; rerun with SVM_MODEL_BLESS=1");
            }
        }
    }

    #[test]
    fn family_helpers_match_the_table() {
        assert_eq!(ExitCode::cr(3, false), ExitCode::VMEXIT_CR3_READ);
        assert_eq!(ExitCode::cr(8, true), ExitCode::VMEXIT_CR8_WRITE);
        assert_eq!(ExitCode::dr(7, true), ExitCode::VMEXIT_DR7_WRITE);
        assert_eq!(ExitCode::dr(0, false), ExitCode::VMEXIT_DR0_READ);
        assert_eq!(ExitCode::exception(14), ExitCode::VMEXIT_EXCP14);
        assert_eq!(ExitCode::cr_write_trap(4), ExitCode::VMEXIT_CR4_WRITE_TRAP);
        for n in 0..16u8 {
            assert!(ExitCode::cr(n, true).name().is_some());
            assert!(ExitCode::dr(n, false).name().is_some());
        }
        for v in 0..32u8 {
            assert!(ExitCode::exception(v).is_exception());
            assert!(ExitCode::exception(v).name().is_some());
        }
    }
}
