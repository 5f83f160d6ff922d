//! The x87 register stack, tag word and status word as instructions see them
//! (SDM Vol. 1 8.1), on top of the FXSAVE-shaped [`FpuState`]; the
//! instruction prologue (#NM, pending #MF) and the reporting of numeric
//! exceptions (Vol. 1 8.4-8.7).

use super::float::{exc, Env, Fx, F80};
use crate::cpu::cpuid::Vendor;
use crate::cpu::FpuState;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use iced_x86::{Instruction, OpKind};
use mmu::{Cr0, SegReg};

/// Status word bits (SDM Vol. 1 figure 8-4).
pub mod sw {
    /// Stack fault.
    pub const SF: u16 = 0x40;
    /// Exception summary.
    pub const ES: u16 = 0x80;
    /// Condition code C0.
    pub const C0: u16 = 0x100;
    /// Condition code C1.
    pub const C1: u16 = 0x200;
    /// Condition code C2.
    pub const C2: u16 = 0x400;
    /// TOP, bits 11-13.
    pub const TOP: u16 = 0x3800;
    /// Condition code C3.
    pub const C3: u16 = 0x4000;
    /// FPU busy (mirrors ES on processors since the 387).
    pub const B: u16 = 0x8000;
    /// All four condition codes.
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// Tag values (SDM Vol. 1 figure 8-7).
pub mod tag {
    /// Valid.
    pub const VALID: u16 = 0;
    /// Zero.
    pub const ZERO: u16 = 1;
    /// Special: NaN, infinity, denormal, unsupported.
    pub const SPECIAL: u16 = 2;
    /// Empty.
    pub const EMPTY: u16 = 3;
}

impl FpuState {
    /// TOP.
    #[inline]
    pub fn top(&self) -> usize {
        ((self.fsw >> 11) & 7) as usize
    }

    /// Sets TOP.
    #[inline]
    pub fn set_top(&mut self, t: usize) {
        self.fsw = (self.fsw & !sw::TOP) | (((t & 7) as u16) << 11);
    }

    /// The physical register of ST(i).
    #[inline]
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    /// The 2-bit tag of physical register `p`.
    #[inline]
    pub fn tag_of(&self, p: usize) -> u16 {
        (self.ftw >> (2 * p)) & 3
    }

    /// Sets the tag of physical register `p`.
    #[inline]
    pub fn set_tag(&mut self, p: usize, t: u16) {
        self.ftw = (self.ftw & !(3 << (2 * p))) | ((t & 3) << (2 * p));
    }

    /// True if ST(i) is empty.
    #[inline]
    pub fn is_empty(&self, i: usize) -> bool {
        self.tag_of(self.phys(i)) == tag::EMPTY
    }

    /// The value of physical register `p`.
    #[inline]
    pub fn reg(&self, p: usize) -> F80 {
        F80::from_bytes(&self.st[p])
    }

    /// The value of ST(i) (whatever an empty register holds).
    #[inline]
    pub fn read_st(&self, i: usize) -> F80 {
        self.reg(self.phys(i))
    }

    /// Writes ST(i) and tags it by its value.
    #[inline]
    pub fn write_st(&mut self, i: usize, v: F80) {
        let p = self.phys(i);
        self.st[p] = v.to_bytes();
        self.set_tag(p, v.tag());
    }

    /// Decrements TOP and writes the new ST(0).
    #[inline]
    pub fn push(&mut self, v: F80) {
        let t = self.top().wrapping_sub(1);
        self.set_top(t);
        self.write_st(0, v);
    }

    /// Marks ST(0) empty and increments TOP.
    #[inline]
    pub fn pop(&mut self) {
        let p = self.phys(0);
        self.set_tag(p, tag::EMPTY);
        self.set_top(self.top() + 1);
    }

    /// The full tag word as FSTENV/FSAVE store it: empty registers stay empty,
    /// the others are tagged from their contents (SDM Vol. 1 8.1.7).
    pub fn tag_word(&self) -> u16 {
        (0..8).fold(0, |w, p| {
            let t = if self.tag_of(p) == tag::EMPTY {
                tag::EMPTY
            } else {
                self.reg(p).tag()
            };
            w | (t << (2 * p))
        })
    }

    /// Loads a full tag word (FLDENV, FRSTOR): only empty / non-empty
    /// matters; non-empty registers are re-tagged from their contents.
    pub fn load_tag_word(&mut self, w: u16) {
        for p in 0..8 {
            let t = if (w >> (2 * p)) & 3 == tag::EMPTY {
                tag::EMPTY
            } else {
                self.reg(p).tag()
            };
            self.set_tag(p, t);
        }
    }

    /// The abridged tag byte of FXSAVE: bit p set if R(p) is not empty (SDM
    /// Vol. 1 10.5.1.1).
    pub fn abridged_tag(&self) -> u8 {
        (0..8).fold(0, |b, p| b | (((self.tag_of(p) != tag::EMPTY) as u8) << p))
    }

    /// Sets C0-C3 from bits (any other bits ignored).
    #[inline]
    pub fn set_cc(&mut self, cc: u16) {
        self.fsw = (self.fsw & !sw::CC) | (cc & sw::CC);
    }

    /// Sets or clears C1.
    #[inline]
    pub fn set_c1(&mut self, on: bool) {
        self.fsw = (self.fsw & !sw::C1) | if on { sw::C1 } else { 0 };
    }

    /// Recomputes ES and B from the exception flags and masks (after FLDCW,
    /// FLDENV, FRSTOR, FXRSTOR: SDM Vol. 1 8.1.3.x and the FLDCW entry).
    pub fn update_summary(&mut self) {
        let pending = (self.fsw as u8) & !(self.fcw as u8) & exc::ALL;
        if pending != 0 {
            self.fsw |= sw::ES | sw::B;
        } else {
            self.fsw &= !(sw::ES | sw::B);
        }
    }

    /// The FNINIT state of the x87 part (SDM Vol. 2A FINIT: control 037FH,
    /// status 0, tags empty, pointers and opcode 0). MXCSR and XMM are not
    /// touched.
    pub fn init_x87(&mut self) {
        self.fcw = 0x037f;
        self.fsw = 0;
        self.ftw = 0xffff;
        self.fop = 0;
        self.fip = 0;
        self.fcs = 0;
        self.fdp = 0;
        self.fds = 0;
    }

    /// The rounding environment of the control word.
    #[inline]
    pub fn env(&self) -> Env {
        Env::from_fcw(self.fcw)
    }
}

/// #NM for x87 instructions: CR0.EM or CR0.TS (SDM Vol. 3A 6.15 "Interrupt
/// 7"; Vol. 2 "Protected Mode Exceptions" of each x87 entry).
#[inline]
pub fn check_nm(m: &Machine) -> Flow {
    if m.cpu.sys.cr0.intersects(Cr0::EM | Cr0::TS) {
        return Err(Event::nm());
    }
    Ok(())
}

/// A pending unmasked x87 exception at a waiting instruction: #MF with
/// CR0.NE = 1 (SDM Vol. 1 8.7, Vol. 3A 6.15 "Interrupt 16"). With NE = 0,
/// the legacy ("MS-DOS compatibility") mode of SDM Vol. 1 8.7.2 and appendix
/// D.2.1: the processor asserts FERR#, which the platform routes to IRQ 13
/// ([`crate::devices::Ferr`]); if IGNNE# is asserted the error is ignored
/// and the instruction runs (`Ok`), otherwise the processor freezes on the
/// instruction until an interrupt arrives ([`Event::Freeze`]), unless an
/// SVM hypervisor intercepts that (FERR_FREEZE, APM Vol. 2 15.14).
#[cold]
pub fn pending_error(m: &mut Machine) -> Flow {
    if m.cpu.sys.cr0.contains(Cr0::NE) {
        return Err(Event::Exception(mmu::Exception::mf()));
    }
    m.dev.set_ferr(true);
    if m.dev.ferr.ignne {
        return Ok(());
    }
    m.intercept(&Instruction::default(), crate::virt::Intercept::FerrFreeze)?;
    Err(Event::Freeze)
}

/// FERR# follows ES: once the error is cleared (FNCLEX, FNINIT, or a state
/// load seen at the next waiting instruction) it goes inactive, which also
/// ends IGNNE#.
#[cold]
pub fn release_ferr(m: &mut Machine) {
    m.dev.set_ferr(false);
}

/// The prologue of every x87 instruction but FWAIT: #NM, then, for waiting
/// instructions, a pending unmasked exception (SDM Vol. 1 8.6 "x87 FPU
/// Exception Synchronization": only FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV
/// and FNSAVE do not wait).
#[inline]
pub fn prologue(m: &mut Machine, waiting: bool) -> Flow {
    check_nm(m)?;
    if waiting {
        if m.cpu.fpu.fsw & sw::ES != 0 {
            return pending_error(m);
        }
        if m.dev.ferr.asserted {
            release_ferr(m);
        }
    }
    Ok(())
}

/// True if the instruction has a memory operand.
#[inline]
pub fn has_mem(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory)
}

/// True if the CPU model follows AMD's x87 rules where the vendors differ
/// (the last opcode, FXSAVE's pointers, FCOMI's C1, denormal loads).
#[inline]
pub fn amd_rules(m: &Machine) -> bool {
    m.config.model.vendor == Vendor::Amd
}

/// Records the last non-control instruction's pointers (SDM Vol. 1 8.1.8):
/// FIP/FCS always, FDP/FDS when it has a memory operand.
///
/// FOP is where the vendors differ. Intel processors since the Pentium 4
/// store it only for an instruction that raises an unmasked exception
/// (SDM Vol. 1 8.1.9.1, fopcode compatibility mode off), which [`report`]
/// and the stack-fault paths do. AMD processors store it together with FIP
/// for every non-control instruction (APM Vol. 1 6.2.5 "Pointers and Opcode
/// State"), as the hardware differential test shows: FNSTENV after FLD1,
/// FXCH, FFREE or FNOP holds their opcodes.
pub fn update_pointers(m: &mut Machine, i: &Instruction) {
    let cs = m.cpu.seg(SegReg::Cs).selector.0;
    m.cpu.fpu.fip = m.cpu.rip;
    m.cpu.fpu.fcs = cs;
    if has_mem(i) {
        let seg = m.mem_seg(i);
        let ea = m.effective_address(i);
        let sel = m.cpu.seg(seg).selector.0;
        m.cpu.fpu.fdp = ea;
        m.cpu.fpu.fds = sel;
    }
    if amd_rules(m) {
        m.cpu.fpu.fop = opcode_of(m, i);
    }
}

/// The x87 opcode of the current instruction as FOP holds it: the low three
/// bits of the D8H-DFH byte and the ModR/M byte (SDM Vol. 1 8.1.9, figure
/// 8-8), read back from the instruction bytes.
fn opcode_of(m: &mut Machine, i: &Instruction) -> u16 {
    let base = if m.cpu.long64() {
        0
    } else {
        m.cpu.seg(SegReg::Cs).base
    };
    let mut prev: Option<u8> = None;
    for k in 0..i.len() as u64 {
        let la = m.wrap_linear(base.wrapping_add(m.cpu.rip).wrapping_add(k));
        let Ok(pa) = m.translate(la, AccessKind::Execute, Privilege::Current) else {
            break;
        };
        let b = m.phys_read(pa, 1) as u8;
        if let Some(op) = prev {
            return (((op & 7) as u16) << 8) | b as u16;
        }
        if (0xd8..=0xdf).contains(&b) {
            prev = Some(b);
        }
    }
    0
}

/// Reports the exceptions of a numeric operation in the status word and
/// decides whether its result is delivered (SDM Vol. 1 4.9.2, 8.4-8.5,
/// table 4-10 and 8.5.x "masked/unmasked response"):
///
/// - #IA (with #D if both were detected) and #Z are reported without the
///   post-computation exceptions and suppress the result when unmasked;
/// - #D is reported; unmasked, it suppresses the result and hides the
///   post-computation exceptions;
/// - #O and #U unmasked deliver the exponent-adjusted result to a register,
///   but store nothing to memory (then #P is not reported and C1 is 0);
/// - #P never suppresses the result; C1 then says whether it was rounded up.
///
/// An unmasked exception sets ES and B and records FOP.
pub fn report(m: &mut Machine, i: &Instruction, fx: Fx, mem_dest: bool) -> bool {
    let masks = m.cpu.fpu.fcw as u8 & exc::ALL;
    let mut flags = fx.flags & exc::ALL;
    let mut c1 = false;
    let mut deliver = true;
    if flags & (exc::IE | exc::ZE) != 0 {
        flags &= if flags & exc::IE != 0 {
            exc::IE | exc::DE
        } else {
            exc::ZE
        };
        deliver = flags & !masks & (exc::IE | exc::ZE) == 0;
    } else if flags & exc::DE != 0 && masks & exc::DE == 0 {
        flags = exc::DE;
        deliver = false;
    } else {
        c1 = fx.up && flags & exc::PE != 0;
        let ou = flags & !masks & (exc::OE | exc::UE);
        if ou != 0 && mem_dest {
            deliver = false;
            c1 = false;
            flags &= !exc::PE;
        }
    }
    let mut unmasked = flags & !masks;
    if flags & (exc::IE | exc::ZE) != 0 {
        unmasked &= exc::IE | exc::ZE;
    }
    let fpu = &mut m.cpu.fpu;
    fpu.fsw |= flags as u16;
    fpu.set_c1(c1);
    if unmasked != 0 {
        fpu.fsw |= sw::ES | sw::B;
        m.cpu.fpu.fop = opcode_of(m, i);
    }
    deliver
}

/// Stack underflow: #IS with C1 = 0 (SDM Vol. 1 8.5.1.1). Masked, the
/// destination ST(`dest`) gets the real indefinite (and the stack pops if
/// the instruction pops); unmasked, nothing changes. Returns true if masked.
pub fn stack_underflow(m: &mut Machine, i: &Instruction, dest: Option<usize>, pop: bool) -> bool {
    let masked = m.cpu.fpu.fcw as u8 & exc::IE != 0;
    if masked {
        if let Some(d) = dest {
            m.cpu.fpu.write_st(d, F80::INDEFINITE);
        }
        if pop {
            m.cpu.fpu.pop();
        }
    }
    stack_fault(m, i, false);
    masked
}

/// Stack overflow: #IS with C1 = 1. Masked, the real indefinite is pushed.
pub fn stack_overflow(m: &mut Machine, i: &Instruction) -> bool {
    let masked = m.cpu.fpu.fcw as u8 & exc::IE != 0;
    if masked {
        m.cpu.fpu.push(F80::INDEFINITE);
    }
    stack_fault(m, i, true);
    masked
}

/// Reports a stack fault without touching registers; returns true if #IS is
/// masked (the caller then applies its own masked response).
pub fn stack_fault_flags(m: &mut Machine, i: &Instruction, overflow: bool) -> bool {
    stack_fault(m, i, overflow);
    m.cpu.fpu.fcw as u8 & exc::IE != 0
}

fn stack_fault(m: &mut Machine, i: &Instruction, overflow: bool) {
    let masks = m.cpu.fpu.fcw as u8;
    let fpu = &mut m.cpu.fpu;
    fpu.fsw |= exc::IE as u16 | sw::SF;
    fpu.set_c1(overflow);
    if masks & exc::IE == 0 {
        fpu.fsw |= sw::ES | sw::B;
        m.cpu.fpu.fop = opcode_of(m, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_and_tags() {
        let mut f = FpuState::default();
        assert!(f.is_empty(0));
        f.push(F80::ONE);
        assert_eq!(f.top(), 7);
        assert_eq!(f.tag_of(7), tag::VALID);
        f.push(F80::ZERO);
        assert_eq!(f.read_st(1), F80::ONE);
        assert_eq!(f.tag_word(), 0x1fff);
        assert_eq!(f.abridged_tag(), 0xc0);
        f.pop();
        assert_eq!(f.read_st(0), F80::ONE);
        assert!(f.is_empty(7));
    }
}
