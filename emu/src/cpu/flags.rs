//! RFLAGS with lazily computed status flags.
//!
//! Arithmetic instructions record their operands and result instead of computing
//! CF, PF, AF, ZF, SF and OF (SDM Vol. 1 3.4.3.1 and appendix A, "EFLAGS cross-
//! reference"); the flags are derived only when something reads them (a Jcc,
//! PUSHF, an exception push, ...). Most results are overwritten before anyone
//! looks, so the interpreter's hot path never pays for them.
//!
//! Flags that an instruction leaves architecturally undefined take the value the
//! formulas below give; the differential tests mask them.

use mmu::Rflags;
use serde::{Deserialize, Serialize};

/// How the status flags of the last flag-writing instruction are derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum LazyOp {
    /// The status flags are materialized in `bits`.
    None,
    /// `r = a + b` (ADD, and ADC with carry-in 0, XADD).
    Add,
    /// `r = a + b + 1` (ADC with carry-in 1).
    Adc1,
    /// `r = a - b` (SUB, CMP, SBB with borrow-in 0, CMPS, SCAS, CMPXCHG).
    Sub,
    /// `r = a - b - 1` (SBB with borrow-in 1).
    Sbb1,
    /// AND, OR, XOR, TEST: CF = OF = 0, AF = 0.
    Logic,
    /// `r = a + 1`; CF is kept in `bits`.
    Inc,
    /// `r = a - 1`; CF is kept in `bits`.
    Dec,
    /// `r = 0 - a` (NEG).
    Neg,
    /// SHL/SAL by `b` (1..=63) bits: CF = last bit shifted out.
    Shl,
    /// SHR by `b` bits.
    Shr,
    /// SAR by `b` bits.
    Sar,
}

/// The RFLAGS register with lazy status flags.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Flags {
    /// Every flag; the status flags are valid only when `op` is [`LazyOp::None`]
    /// (and CF also for [`LazyOp::Inc`] / [`LazyOp::Dec`]).
    bits: u64,
    op: LazyOp,
    /// Operand width in bits: 8, 16, 32 or 64.
    width: u8,
    a: u64,
    b: u64,
    r: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Self::new(Rflags::FIXED1.bits())
    }
}

impl PartialEq for Flags {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl Eq for Flags {}

impl Flags {
    /// Why this state is not one the model reaches (a damaged snapshot),
    /// if it is not: the lazy operand width must be 8, 16, 32 or 64.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !matches!(self.width, 8 | 16 | 32 | 64) {
            return Err(format!("flags of a {}-bit operation", self.width));
        }
        Ok(())
    }
}

#[inline]
const fn sign_bit(width: u8) -> u64 {
    1u64 << (width - 1)
}

#[inline]
const fn width_mask(width: u8) -> u64 {
    u64::MAX >> (64 - width as u32)
}

const STATUS: u64 = Rflags::STATUS.bits();
const CF: u64 = Rflags::CF.bits();
const PF: u64 = Rflags::PF.bits();
const AF: u64 = Rflags::AF.bits();
const ZF: u64 = Rflags::ZF.bits();
const SF: u64 = Rflags::SF.bits();
const OF: u64 = Rflags::OF.bits();

/// PF for a result: set when the low byte has an even number of 1 bits.
#[inline]
pub const fn parity(r: u64) -> u64 {
    if (r as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

impl Flags {
    /// Flags with every bit materialized.
    pub const fn new(bits: u64) -> Self {
        Self {
            bits: bits | Rflags::FIXED1.bits(),
            op: LazyOp::None,
            width: 64,
            a: 0,
            b: 0,
            r: 0,
        }
    }

    /// Records a lazy result. `a`, `b` and `r` need not be masked.
    #[inline(always)]
    pub fn set_lazy(&mut self, op: LazyOp, width: u8, a: u64, b: u64, r: u64) {
        self.op = op;
        self.width = width;
        self.a = a;
        self.b = b;
        self.r = r;
    }

    /// Records INC/DEC: CF is preserved, the rest lazy.
    #[inline(always)]
    pub fn set_incdec(&mut self, dec: bool, width: u8, a: u64, r: u64) {
        let cf = self.kept_cf_bit();
        self.set_incdec_cf(cf, dec, width, a, r);
    }

    /// [`Flags::set_incdec`] with the CF it keeps already computed by
    /// [`Flags::kept_cf_bit`] (on these flags).
    #[inline(always)]
    pub fn set_incdec_cf(&mut self, cf: u64, dec: bool, width: u8, a: u64, r: u64) {
        self.bits = (self.bits & !STATUS) | cf;
        self.set_lazy(if dec { LazyOp::Dec } else { LazyOp::Inc }, width, a, 1, r);
    }

    /// The full RFLAGS value.
    #[inline]
    pub fn get(&self) -> u64 {
        if self.op == LazyOp::None {
            self.bits
        } else {
            (self.bits & !STATUS) | self.status()
        }
    }

    /// The full RFLAGS value as bitflags.
    #[inline]
    pub fn rflags(&self) -> Rflags {
        Rflags::from_bits_retain(self.get())
    }

    /// Replaces every flag (bit 1 forced to 1).
    #[inline]
    pub fn set(&mut self, bits: u64) {
        self.bits = bits | Rflags::FIXED1.bits();
        self.op = LazyOp::None;
    }

    /// Replaces the flags selected by `mask` with those of `value`.
    #[inline]
    pub fn set_masked(&mut self, value: u64, mask: u64) {
        let cur = self.get();
        self.set((cur & !mask) | (value & mask));
    }

    /// Materializes the status flags, then sets the six status flags to `status`.
    #[inline]
    pub fn set_status(&mut self, status: u64) {
        self.bits = (self.get() & !STATUS) | (status & STATUS);
        self.op = LazyOp::None;
    }

    /// Tests a non-status flag (IF, DF, TF, AC, ...), or any flag.
    #[inline(always)]
    pub fn has(&self, f: Rflags) -> bool {
        if f.bits() & STATUS == 0 {
            self.bits & f.bits() != 0
        } else {
            self.get() & f.bits() != 0
        }
    }

    /// Sets or clears non-status flags.
    #[inline(always)]
    pub fn assign(&mut self, f: Rflags, on: bool) {
        if f.bits() & STATUS != 0 {
            self.materialize();
        }
        if on {
            self.bits |= f.bits();
        } else {
            self.bits &= !f.bits();
        }
    }

    /// Computes and stores the status flags.
    #[inline]
    pub fn materialize(&mut self) {
        if self.op != LazyOp::None {
            self.bits = self.get();
            self.op = LazyOp::None;
        }
    }

    /// The carry flag, computed only for CF.
    #[inline(always)]
    pub fn cf(&self) -> bool {
        self.cf_bit() != 0
    }

    /// ZF.
    #[inline(always)]
    pub fn zf(&self) -> bool {
        match self.op {
            LazyOp::None => self.bits & ZF != 0,
            _ => self.r & width_mask(self.width) == 0,
        }
    }

    /// SF.
    #[inline(always)]
    pub fn sf(&self) -> bool {
        match self.op {
            LazyOp::None => self.bits & SF != 0,
            _ => self.r & sign_bit(self.width) != 0,
        }
    }

    /// OF.
    #[inline(always)]
    pub fn of(&self) -> bool {
        self.get() & OF != 0
    }

    /// PF.
    #[inline(always)]
    pub fn pf(&self) -> bool {
        match self.op {
            LazyOp::None => self.bits & PF != 0,
            _ => parity(self.r) != 0,
        }
    }

    /// DF.
    #[inline(always)]
    pub fn df(&self) -> bool {
        self.bits & Rflags::DF.bits() != 0
    }

    /// IF.
    #[inline(always)]
    pub fn iflag(&self) -> bool {
        self.bits & Rflags::IF.bits() != 0
    }

    /// [`Flags::cf_bit`] for INC and DEC, which keep CF: the records they
    /// most often follow (SUB and CMP, ADD) are computed inline, the others
    /// out of line, so the common case takes no jump table.
    #[inline(always)]
    pub fn kept_cf_bit(&self) -> u64 {
        let m = width_mask(self.width);
        match self.op {
            LazyOp::Sub => ((self.a & m) < (self.b & m)) as u64,
            LazyOp::Add => ((self.r & m) < (self.a & m)) as u64,
            _ => self.cf_bit_out_of_line(),
        }
    }

    #[inline(never)]
    fn cf_bit_out_of_line(&self) -> u64 {
        self.cf_bit()
    }

    #[inline(always)]
    fn cf_bit(&self) -> u64 {
        let m = width_mask(self.width);
        let (a, b, r) = (self.a & m, self.b & m, self.r & m);
        match self.op {
            LazyOp::None | LazyOp::Inc | LazyOp::Dec => self.bits & CF,
            LazyOp::Add => (r < a) as u64,
            LazyOp::Adc1 => (r <= a) as u64,
            LazyOp::Sub => (a < b) as u64,
            LazyOp::Sbb1 => (a <= b) as u64,
            LazyOp::Logic => 0,
            LazyOp::Neg => (a != 0) as u64,
            LazyOp::Shl => {
                let w = self.width as u64;
                if b > w {
                    0
                } else {
                    (a >> (w - b)) & 1
                }
            }
            LazyOp::Shr => {
                if b > 64 {
                    0
                } else {
                    (a >> (b - 1)) & 1
                }
            }
            LazyOp::Sar => {
                let sa = sign_extend(a, self.width);
                ((sa >> (b - 1).min(63)) & 1) as u64
            }
        }
    }

    /// The six status flags of the recorded result.
    fn status(&self) -> u64 {
        let w = self.width;
        let m = width_mask(w);
        let sb = sign_bit(w);
        let (a, b, r) = (self.a & m, self.b & m, self.r & m);
        let mut f = self.cf_bit() | parity(r);
        if r == 0 {
            f |= ZF;
        }
        if r & sb != 0 {
            f |= SF;
        }
        let (af, of) = match self.op {
            LazyOp::None => return self.bits & STATUS,
            LazyOp::Add | LazyOp::Adc1 => ((a ^ b ^ r) & 0x10 != 0, (a ^ r) & (b ^ r) & sb != 0),
            LazyOp::Sub | LazyOp::Sbb1 => ((a ^ b ^ r) & 0x10 != 0, (a ^ b) & (a ^ r) & sb != 0),
            LazyOp::Logic => (false, false),
            LazyOp::Inc => (r & 0xf == 0, r == sb),
            LazyOp::Dec => (r & 0xf == 0xf, r == sb - 1),
            LazyOp::Neg => (a & 0xf != 0, r == sb && a == sb),
            // Shifts: AF undefined (0 here); OF defined for count 1 only, and
            // the value below is what the hardware gives for count 1.
            LazyOp::Shl => (false, ((r & sb != 0) as u64 ^ (f & CF)) != 0),
            LazyOp::Shr => (false, b == 1 && a & sb != 0),
            LazyOp::Sar => (false, false),
        };
        if af {
            f |= AF;
        }
        if of {
            f |= OF;
        }
        f
    }
}

/// Sign-extends the low `width` bits of `v`.
#[inline(always)]
pub const fn sign_extend(v: u64, width: u8) -> i64 {
    let s = 64 - width as u32;
    ((v << s) as i64) >> s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(op: LazyOp, w: u8, a: u64, b: u64, r: u64) -> u64 {
        let mut f = Flags::default();
        f.set_lazy(op, w, a, b, r);
        f.get() & STATUS
    }

    #[test]
    fn add_flags() {
        // 0x7f + 1 = 0x80: OF, SF, AF.
        assert_eq!(st(LazyOp::Add, 8, 0x7f, 1, 0x80), OF | SF | AF);
        // 0xff + 1 = 0x00: CF, ZF, PF, AF.
        assert_eq!(st(LazyOp::Add, 8, 0xff, 1, 0x100), CF | ZF | PF | AF);
        // ADC 0xff + 0xff + 1 = 0x1ff: CF, SF, PF, AF.
        assert_eq!(st(LazyOp::Adc1, 8, 0xff, 0xff, 0x1ff), CF | SF | PF | AF);
        // ADC 0 + 0xffffffff + 1 wraps to 0 with CF.
        assert_eq!(st(LazyOp::Adc1, 32, 0, 0xffff_ffff, 0) & (CF | ZF), CF | ZF);
    }

    #[test]
    fn sub_flags() {
        // 0 - 1 = 0xff: CF, SF, PF, AF.
        assert_eq!(st(LazyOp::Sub, 8, 0, 1, 0xff), CF | SF | PF | AF);
        // 0x80 - 1 = 0x7f: OF, AF.
        assert_eq!(st(LazyOp::Sub, 8, 0x80, 1, 0x7f), OF | AF);
        // SBB 5 - 5 - 1 = -1: CF.
        assert_eq!(st(LazyOp::Sbb1, 16, 5, 5, 0xffff) & CF, CF);
    }

    #[test]
    fn inc_dec_keep_cf() {
        let mut f = Flags::new(CF);
        f.set_incdec(false, 32, 0x7fff_ffff, 0x8000_0000);
        assert_eq!(f.get() & STATUS, CF | OF | SF | AF | PF);
        let mut f = Flags::new(0);
        f.set_incdec(true, 8, 0x80, 0x7f);
        assert_eq!(f.get() & STATUS, OF | AF);
    }

    #[test]
    fn neg_and_shifts() {
        assert_eq!(st(LazyOp::Neg, 8, 0x80, 0, 0x80) & (CF | OF), CF | OF);
        assert_eq!(st(LazyOp::Neg, 8, 0, 0, 0) & (CF | ZF), ZF);
        // SHL 0x80 by 1 -> 0: CF=1, OF = MSB(r) ^ CF = 1.
        assert_eq!(
            st(LazyOp::Shl, 8, 0x80, 1, 0x100) & (CF | OF | ZF),
            CF | OF | ZF
        );
        // SHR 0x81 by 1: CF=1, OF=MSB(original)=1.
        assert_eq!(st(LazyOp::Shr, 8, 0x81, 1, 0x40) & (CF | OF), CF | OF);
        // SAR 0x80 by 7: result 0xff, CF = bit 6 = 0.
        assert_eq!(st(LazyOp::Sar, 8, 0x80, 7, 0xff) & (CF | SF), SF);
        // SAR 0x80 (8-bit) by 9: CF = sign.
        assert_eq!(st(LazyOp::Sar, 8, 0x80, 9, 0xff) & CF, CF);
    }

    proptest::proptest! {
        /// The inline CF of INC/DEC is CF of every record.
        #[test]
        fn kept_cf_is_cf(op in 0u8..12, w in 0usize..4, a: u64, b in proptest::prelude::any::<u64>(), r: u64, bits: u64) {
            let ops = [
                LazyOp::None, LazyOp::Add, LazyOp::Adc1, LazyOp::Sub, LazyOp::Sbb1, LazyOp::Logic,
                LazyOp::Inc, LazyOp::Dec, LazyOp::Neg, LazyOp::Shl, LazyOp::Shr, LazyOp::Sar,
            ];
            let width = [8u8, 16, 32, 64][w];
            let op = ops[op as usize];
            // Shift counts are 1..=63, as the shift handlers record them.
            let b = if matches!(op, LazyOp::Shl | LazyOp::Shr | LazyOp::Sar) { b % 63 + 1 } else { b };
            let mut f = Flags::new(bits);
            if op != LazyOp::None {
                f.set_lazy(op, width, a, b, r);
            }
            proptest::prop_assert_eq!(f.kept_cf_bit(), f.cf_bit());
        }
    }

    #[test]
    fn non_status_flags_survive() {
        let mut f = Flags::new(Rflags::IF.bits() | Rflags::DF.bits());
        f.set_lazy(LazyOp::Logic, 64, 0, 0, 0);
        assert!(f.iflag() && f.df() && f.zf() && !f.cf());
        f.assign(Rflags::CF, true);
        assert!(f.cf() && f.zf());
    }
}
