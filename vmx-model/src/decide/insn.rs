//! Instructions that exit unconditionally or by a VM-execution control (SDM Vol.
//! 3C 26.1.2, "Instructions That Cause VM Exits Unconditionally"; 26.1.3,
//! "Instructions That Cause VM Exits Conditionally"; 26.3 for the instructions a
//! secondary control enables). Control-register, I/O, MSR and PAUSE-loop decisions
//! have their own functions; the VMX instructions exit in [`crate::insn`].

use super::Controls;
use crate::controls::{Proc2Controls as P2, ProcControls as P1};
use crate::exit::ExitReason;
use serde::{Deserialize, Serialize};

/// An instruction whose execution in VMX non-root operation may exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Insn {
    /// CPUID (always exits).
    Cpuid,
    /// GETSEC; #UD unless CR4.SMXE, else always exits.
    Getsec {
        /// CR4.SMXE.
        smxe: bool,
    },
    /// INVD (always exits).
    Invd,
    /// XSETBV (always exits).
    Xsetbv,
    /// HLT.
    Hlt,
    /// INVLPG.
    Invlpg,
    /// INVPCID (#UD unless "enable INVPCID").
    Invpcid,
    /// MWAIT.
    Mwait,
    /// MONITOR.
    Monitor,
    /// RDPMC.
    Rdpmc,
    /// RDTSC.
    Rdtsc,
    /// RDTSCP (#UD unless "enable RDTSCP").
    Rdtscp,
    /// RDRAND.
    Rdrand,
    /// RDSEED.
    Rdseed,
    /// WBINVD or WBNOINVD.
    Wbinvd,
    /// PAUSE (the "PAUSE exiting" control; see [`super::PauseLoop`] for PLE).
    Pause,
    /// MOV to or from DR0-DR7.
    MovDr,
    /// MOV from CR3.
    MovFromCr3,
    /// MOV to CR8.
    MovToCr8,
    /// MOV from CR8.
    MovFromCr8,
    /// LGDT, LIDT, SGDT, SIDT.
    GdtrIdtrAccess,
    /// LLDT, LTR, SLDT, STR.
    LdtrTrAccess,
    /// XSAVES (#UD unless "enable XSAVES/XRSTORS"); `mask` is
    /// EDX:EAX AND IA32_XSS.
    Xsaves {
        /// The requested-feature bitmap ANDed with IA32_XSS.
        mask: u64,
    },
    /// XRSTORS, like XSAVES.
    Xrstors {
        /// The requested-feature bitmap ANDed with IA32_XSS.
        mask: u64,
    },
}

/// What the instruction does in VMX non-root operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// It executes normally.
    Execute,
    /// It raises #UD (a secondary control disables it).
    Undefined,
    /// It causes a VM exit with this reason.
    Exit(ExitReason),
}

fn exit_if(cond: bool, reason: ExitReason) -> Decision {
    if cond {
        Decision::Exit(reason)
    } else {
        Decision::Execute
    }
}

/// Decides `insn` under the controls `c`.
pub fn instruction(c: &Controls, insn: Insn) -> Decision {
    use ExitReason as R;
    let p = |b: P1| c.proc.contains(b);
    let p2 = |b: P2| c.proc2.contains(b);
    match insn {
        Insn::Cpuid => Decision::Exit(R::Cpuid),
        Insn::Getsec { smxe: false } => Decision::Undefined,
        Insn::Getsec { smxe: true } => Decision::Exit(R::Getsec),
        Insn::Invd => Decision::Exit(R::Invd),
        Insn::Xsetbv => Decision::Exit(R::Xsetbv),
        Insn::Hlt => exit_if(p(P1::HLT_EXITING), R::Hlt),
        Insn::Invlpg => exit_if(p(P1::INVLPG_EXITING), R::Invlpg),
        Insn::Invpcid if !p2(P2::ENABLE_INVPCID) => Decision::Undefined,
        Insn::Invpcid => exit_if(p(P1::INVLPG_EXITING), R::Invpcid),
        Insn::Mwait => exit_if(p(P1::MWAIT_EXITING), R::Mwait),
        Insn::Monitor => exit_if(p(P1::MONITOR_EXITING), R::Monitor),
        Insn::Rdpmc => exit_if(p(P1::RDPMC_EXITING), R::Rdpmc),
        Insn::Rdtsc => exit_if(p(P1::RDTSC_EXITING), R::Rdtsc),
        Insn::Rdtscp if !p2(P2::ENABLE_RDTSCP) => Decision::Undefined,
        Insn::Rdtscp => exit_if(p(P1::RDTSC_EXITING), R::Rdtscp),
        Insn::Rdrand => exit_if(p2(P2::RDRAND_EXITING), R::Rdrand),
        Insn::Rdseed => exit_if(p2(P2::RDSEED_EXITING), R::Rdseed),
        Insn::Wbinvd => exit_if(p2(P2::WBINVD_EXITING), R::Wbinvd),
        Insn::Pause => exit_if(p(P1::PAUSE_EXITING), R::Pause),
        Insn::MovDr => exit_if(p(P1::MOV_DR_EXITING), R::MovDr),
        Insn::MovFromCr3 => exit_if(p(P1::CR3_STORE_EXITING), R::ControlRegisterAccess),
        Insn::MovToCr8 => exit_if(p(P1::CR8_LOAD_EXITING), R::ControlRegisterAccess),
        Insn::MovFromCr8 => exit_if(p(P1::CR8_STORE_EXITING), R::ControlRegisterAccess),
        Insn::GdtrIdtrAccess => exit_if(p2(P2::DESCRIPTOR_TABLE_EXITING), R::GdtrIdtrAccess),
        Insn::LdtrTrAccess => exit_if(p2(P2::DESCRIPTOR_TABLE_EXITING), R::LdtrTrAccess),
        Insn::Xsaves { .. } | Insn::Xrstors { .. } if !p2(P2::ENABLE_XSAVES) => Decision::Undefined,
        Insn::Xsaves { mask } => exit_if(c.xss_exiting_bitmap & mask != 0, R::Xsaves),
        Insn::Xrstors { mask } => exit_if(c.xss_exiting_bitmap & mask != 0, R::Xrstors),
    }
}
