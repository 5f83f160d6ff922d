//! Which status flags are architecturally undefined where.
//!
//! Each instruction's effect on CF, PF, AF, ZF, SF and OF comes from iced-x86's
//! tables (`rflags_undefined` and friends, which follow SDM Vol. 1 appendix A,
//! "EFLAGS cross-reference"), refined where the effect depends on an operand
//! value the generator chose: shift and rotate counts (SDM Vol. 2B "SAL/SAR/
//! SHL/SHR", "RCL/RCR/ROL/ROR", "SHLD", "SHRD": a masked count of 0 changes no
//! flag, OF is defined only for a count of 1, CF is undefined for SHL/SHR when
//! the count is at least the operand width).
//!
//! [`analyze`] follows the sequence's control flow and finds the flags that
//! are undefined on entry to each instruction and at the end: the comparison
//! masks those. A sequence that *reads* an undefined flag (ADC after MUL, a
//! Jcc on AF after AND) would make the whole result undefined; the generator
//! never emits one and the minimizer rejects candidates that do.

use crate::seq::Sequence;
use iced_x86::{Instruction, Mnemonic, RflagsBits};

// The masks below hold RFLAGS bits and, above bit 31, the x87 condition
// codes, so one analysis follows both.

/// CF.
pub const CF: u64 = 1 << 0;
/// PF.
pub const PF: u64 = 1 << 2;
/// AF.
pub const AF: u64 = 1 << 4;
/// ZF.
pub const ZF: u64 = 1 << 6;
/// SF.
pub const SF: u64 = 1 << 7;
/// OF.
pub const OF: u64 = 1 << 11;
/// The six status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
/// The x87 condition codes, tracked in the same masks above the RFLAGS bits:
/// C0.
pub const C0: u64 = 1 << 32;
/// C1.
pub const C1: u64 = 1 << 33;
/// C2.
pub const C2: u64 = 1 << 34;
/// C3.
pub const C3: u64 = 1 << 35;
/// All four condition codes.
pub const CC: u64 = C0 | C1 | C2 | C3;

/// The FSW bits of condition codes in a mask (C0, C1, C2 at bits 8-10, C3 at
/// bit 14).
pub fn fsw_bits(mask: u64) -> u16 {
    let mut v = 0;
    for (f, b) in [(C0, 8), (C1, 9), (C2, 10), (C3, 14)] {
        if mask & f != 0 {
            v |= 1 << b;
        }
    }
    v
}

/// What an x87 instruction does to C0-C3 (SDM Vol. 2, "FPU Flags Affected"
/// of each instruction): (undefined, defined, read).
fn x87_cc(m: Mnemonic) -> (u64, u64, u64) {
    use Mnemonic as M;
    match m {
        // All four set from the result.
        M::Fcom
        | M::Fcomp
        | M::Fcompp
        | M::Fucom
        | M::Fucomp
        | M::Fucompp
        | M::Ficom
        | M::Ficomp
        | M::Ftst
        | M::Fxam
        | M::Fprem
        | M::Fprem1
        | M::Fninit
        | M::Finit => (0, CC, 0),
        // C1 only; C0, C2, C3 not affected.
        M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip => (0, C1, 0),
        // C1 and C2 (C2: operand out of range); C0, C3 undefined.
        M::Fsin | M::Fcos | M::Fsincos | M::Fptan => (C0 | C3, C1 | C2, 0),
        // C1 (round-up or stack fault); C0, C2, C3 undefined.
        M::Fadd
        | M::Faddp
        | M::Fiadd
        | M::Fsub
        | M::Fsubp
        | M::Fisub
        | M::Fsubr
        | M::Fsubrp
        | M::Fisubr
        | M::Fmul
        | M::Fmulp
        | M::Fimul
        | M::Fdiv
        | M::Fdivp
        | M::Fidiv
        | M::Fdivr
        | M::Fdivrp
        | M::Fidivr
        | M::Fsqrt
        | M::Fabs
        | M::Fchs
        | M::Frndint
        | M::Fscale
        | M::Fxtract
        | M::Fld
        | M::Fild
        | M::Fbld
        | M::Fst
        | M::Fstp
        | M::Fist
        | M::Fistp
        | M::Fisttp
        | M::Fbstp
        | M::Fld1
        | M::Fldz
        | M::Fldpi
        | M::Fldl2e
        | M::Fldl2t
        | M::Fldlg2
        | M::Fldln2
        | M::Fxch
        | M::Fcmovb
        | M::Fcmove
        | M::Fcmovbe
        | M::Fcmovu
        | M::Fcmovnb
        | M::Fcmovne
        | M::Fcmovnbe
        | M::Fcmovnu
        | M::Fincstp
        | M::Fdecstp
        | M::F2xm1
        | M::Fyl2x
        | M::Fyl2xp1
        | M::Fpatan => (C0 | C2 | C3, C1, 0),
        // All undefined.
        M::Fldcw | M::Fnstcw | M::Fstcw | M::Fnclex | M::Fclex | M::Ffree | M::Ffreep | M::Fnop => {
            (CC, 0, 0)
        }
        // The status word is stored: it reads the condition codes (which are
        // undefined afterwards).
        M::Fnstsw | M::Fstsw => (CC, 0, CC),
        _ => (0, 0, 0),
    }
}

/// iced-x86's flag bits as RFLAGS bits (status flags only).
pub fn from_iced(b: u32) -> u64 {
    let mut r = 0;
    for (i, f) in [
        (RflagsBits::CF, CF),
        (RflagsBits::PF, PF),
        (RflagsBits::AF, AF),
        (RflagsBits::ZF, ZF),
        (RflagsBits::SF, SF),
        (RflagsBits::OF, OF),
    ] {
        if b & i != 0 {
            r |= f;
        }
    }
    r
}

/// What one instruction does to the status flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlagEffect {
    /// Flags it leaves undefined.
    pub undefined: u64,
    /// Flags it sets to defined values.
    pub defined: u64,
    /// Flags it reads.
    pub read: u64,
}

impl FlagEffect {
    /// The effect iced-x86 states for the instruction.
    pub fn of(i: &Instruction) -> Self {
        let undefined = from_iced(i.rflags_undefined());
        let written = from_iced(i.rflags_written() | i.rflags_cleared() | i.rflags_set());
        let (cu, cd, cr) = x87_cc(i.mnemonic());
        Self {
            undefined: undefined | cu,
            defined: (written & !undefined) | cd,
            read: from_iced(i.rflags_read()) | cr,
        }
    }

    /// The effect of a shift, rotate or double shift whose count operand is
    /// `count` (before masking), for an operand of `width` bits.
    pub fn of_shift(i: &Instruction, count: u64, width: u32) -> Self {
        let base = Self::of(i);
        let masked = count & if width == 64 { 63 } else { 31 };
        if masked == 0 {
            // SDM: "If the masked count is 0, the flags are not affected."
            return Self {
                undefined: 0,
                defined: 0,
                read: base.read,
            };
        }
        let of = if masked == 1 { 0 } else { OF };
        let (undefined, defined) = match i.mnemonic() {
            Mnemonic::Rol | Mnemonic::Ror => (of, CF | (OF & !of)),
            Mnemonic::Rcl | Mnemonic::Rcr => {
                // The rotate runs (masked MOD (width + 1)) times; CF changes only
                // if that is non-zero.
                let turns = if width < 32 {
                    masked % (width as u64 + 1)
                } else {
                    masked
                };
                let cf = if turns != 0 { CF } else { 0 };
                (of, cf | (OF & !of))
            }
            Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr => {
                let cf_undef = if masked >= width as u64 { CF } else { 0 };
                let u = of | AF | cf_undef;
                (u, STATUS & !u)
            }
            Mnemonic::Sar => {
                let u = of | AF;
                (u, STATUS & !u)
            }
            Mnemonic::Shld | Mnemonic::Shrd => {
                // Counts above the width leave everything undefined (16-bit
                // operands only; the generator keeps counts <= 16 there).
                let u = if masked > width as u64 {
                    STATUS
                } else {
                    of | AF
                };
                (u, STATUS & !u)
            }
            _ => (base.undefined, base.defined),
        };
        Self {
            undefined,
            defined,
            read: base.read,
        }
    }
}

/// How control leaves an instruction, for the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// To the next instruction.
    Next,
    /// To the next instruction or to item `t`.
    Branch(usize),
    /// Only to item `t` (JMP, CALL, RET).
    Jump(usize),
}

/// The result of [`analyze`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Status flags undefined on entry to each instruction (flat order).
    pub before: Vec<u64>,
    /// Status flags undefined at the end of the sequence.
    pub end: u64,
    /// The first instruction that reads an undefined flag.
    pub bad_read: Option<usize>,
}

impl Analysis {
    /// The undefined flags when control is at flat instruction `k` (`k` =
    /// length: the end).
    pub fn at(&self, k: usize) -> u64 {
        self.before.get(k).copied().unwrap_or(self.end)
    }

    /// Every flag undefined anywhere.
    pub fn any(&self) -> u64 {
        self.before.iter().fold(self.end, |a, b| a | b)
    }
}

/// Forward data-flow over the sequence: the union over all paths.
pub fn analyze(s: &Sequence) -> Analysis {
    let flat = s.flat();
    let starts = s.item_starts();
    let n = flat.len();
    let mut inn = vec![0u64; n + 1];
    // Backward edges (RET to after a CALL) need a fixed point; a few passes do.
    for _ in 0..8 {
        let mut changed = false;
        for (k, (_, i)) in flat.iter().enumerate() {
            let e = i.effect;
            let out = (inn[k] & !e.defined) | e.undefined;
            let mut to = |j: usize| {
                if inn[j] | out != inn[j] {
                    inn[j] |= out;
                    changed = true;
                }
            };
            match i.flow {
                Flow::Next => to(k + 1),
                Flow::Branch(t) => {
                    to(k + 1);
                    to(starts[t.min(s.items.len())]);
                }
                Flow::Jump(t) => to(starts[t.min(s.items.len())]),
            }
        }
        if !changed {
            break;
        }
    }
    let bad_read = flat
        .iter()
        .enumerate()
        .find(|(k, (_, i))| i.effect.read & inn[*k] != 0)
        .map(|(k, _)| k);
    let end = inn[n];
    inn.truncate(n);
    Analysis {
        before: inn,
        end,
        bad_read,
    }
}
