//! System instructions (SDM Vol. 2 entries; Vol. 3A chapters 2-5 for their
//! system effects), one file per concept: control and debug registers, MSRs
//! and time-stamp counter, port I/O, descriptor tables and segment loads, fast
//! system calls, and the rest.

mod cr;
mod desc;
mod fastcall;
mod io;
mod misc;
mod msr;
mod protection;

pub use cr::{clts, cr4_allowed_for, lmsw, mov_cr, mov_dr, smsw};
pub use desc::{
    arpl, fsgsbase, lar_lsl, lgdt_lidt, lldt, load_far_pointer, ltr, mov_sreg, pop_sreg, sgdt_sidt,
    sldt_str, swapgs, verr_verw,
};
pub use fastcall::{syscall, sysenter, sysexit, sysret};
pub(crate) use io::io as io_intercept;
pub use io::{in_, out};
pub use misc::{bound, clflush, cpuid, hlt, invlpg, invpcid, monitor, mwait, rdrand, wbinvd};
pub use msr::{rdmsr, rdpid, rdpmc, rdtsc, rdtscp, wrmsr};
pub use protection::{rdpkru, stac_clac, wrpkru};

use crate::event::{Event, Flow};
use crate::machine::Machine;

/// #GP(0) unless CPL = 0 (the privileged instructions of SDM Vol. 3A 5.9).
#[inline]
pub(crate) fn require_cpl0(m: &Machine) -> Flow {
    if m.cpu.cpl() != 0 {
        return Err(Event::gp0());
    }
    Ok(())
}

/// #UD outside protected mode (real-address and virtual-8086 mode), for the
/// instructions that only exist in protected mode (LLDT, LTR, LAR, ...).
#[inline]
pub(crate) fn require_protected(m: &Machine) -> Flow {
    if matches!(
        m.cpu.mode.mode,
        mmu::CpuMode::Real | mmu::CpuMode::Virtual8086
    ) {
        return Err(Event::ud());
    }
    Ok(())
}

/// #GP(0) when CR4.UMIP is set and CPL > 0 (SGDT, SIDT, SLDT, SMSW, STR;
/// SDM Vol. 3A 2.5, CR4.UMIP).
#[inline]
pub(crate) fn umip_check(m: &Machine) -> Flow {
    if m.cpu.sys.cr4.contains(mmu::Cr4::UMIP) && m.cpu.cpl() > 0 {
        return Err(Event::gp0());
    }
    Ok(())
}
