//! The sequence generator: from a seed, sequences of 1-N items drawn from a
//! group of instruction forms.
//!
//! Most groups are tables of mnemonics; every 64-bit-mode legacy or VEX form
//! of those mnemonics whose operands the generator can fill is a candidate
//! (so `ADD r/m8, imm8`, `ADD AL, imm8`, `ADD r/m64, imm8` sign-extended, the
//! `/6` alias of `SAL` and the `F6 /1` alias of `TEST` all appear). Operands
//! are filled at random: registers of every width (AH..BH included), memory
//! operands of every addressing form (base, base + displacement, SIB with
//! every scale, no base, RIP-relative, 32-bit address size) aimed at the
//! scratch window through set-up `MOV`s, and immediates biased to the edges.
//! String, stack and branch groups are built by hand.

mod special;
mod tables;
mod x87;

pub use tables::{form_counts, group_names, op0_bits, r64, INT_GROUPS, X87_GROUPS};
use tables::{forms, full, is_high8, is_shift, kind_bits, mask_of, reg_of, GPR8};

use crate::flags::{FlagEffect, Flow};
use crate::layout;
use crate::rng::Rng;
use crate::seq::{make, mov_imm, mov_pinned, Init, Insn, Item, Op, Sequence};
use iced_x86::{
    Code, Encoder, Instruction, MemoryOperand, Mnemonic, OpCodeOperandKind as K, Register,
};

/// ST(n).
fn st(n: usize) -> Register {
    [
        Register::ST0,
        Register::ST1,
        Register::ST2,
        Register::ST3,
        Register::ST4,
        Register::ST5,
        Register::ST6,
        Register::ST7,
    ][n]
}

/// Per-item generation state.
struct ItemCtx {
    /// Set-up instructions, in order.
    setups: Vec<Insn>,
    /// Registers that must not be used as base or index (implicit operands).
    reserved: Vec<Register>,
    /// The memory operand, if any, for set-ups that use it again.
    mem: Option<MemoryOperand>,
    /// Keep memory operands this far from the scratch window's edges.
    margin: u64,
}

impl ItemCtx {
    fn new() -> Self {
        Self {
            setups: Vec::new(),
            reserved: Vec::new(),
            mem: None,
            margin: 0x20,
        }
    }
}

/// The generator of one sequence.
pub struct Gen {
    rng: Rng,
    group: &'static str,
    /// Items in the sequence being built.
    n_items: usize,
}

/// The number of items a sequence has at most, by default.
pub const DEFAULT_MAX_ITEMS: usize = 6;

/// Generates sequence `index` of group `group` from `seed`.
pub fn sequence(group: &'static str, seed: u64, index: u64, max_items: usize) -> Sequence {
    let mut attempt = 0u64;
    loop {
        let s = seed
            ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ attempt.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let mut g = Gen {
            rng: Rng::new(s),
            group,
            n_items: 0,
        };
        if let Some(seq) = g.build(max_items.max(1)) {
            return seq;
        }
        attempt += 1;
    }
}

impl Gen {
    fn build(&mut self, max_items: usize) -> Option<Sequence> {
        let init = self.init();
        let n = 1 + self.rng.below(max_items as u64) as usize;
        self.n_items = n;
        let mut items: Vec<Item> = Vec::new();
        let mut guard = 0;
        while items.len() < n {
            guard += 1;
            if guard > 200 {
                return None;
            }
            let g = if self.group == "mixed" {
                self.rng.pick(INT_GROUPS)
            } else {
                self.group
            };
            if let Some(mut unit) = self.unit(g, items.len()) {
                if items.len() + unit.len() > n && !items.is_empty() {
                    continue;
                }
                items.append(&mut unit);
            }
        }
        let mut seq = Sequence {
            group: self.group,
            items,
            init,
        };
        repair(&mut seq, &mut self.rng).then_some(seq)
    }

    fn init(&mut self) -> Init {
        let mut gprs = [0u64; 16];
        for g in gprs.iter_mut() {
            let bits = self.rng.pick(&[8, 16, 32, 64]);
            *g = self.rng.reg_value(bits);
        }
        gprs[4] = self.stack_pointer();
        let mut rflags = layout::USER_RFLAGS;
        for f in [1u64, 4, 0x10, 0x40, 0x80, 0x800] {
            if self.rng.chance(50) {
                rflags |= f;
            }
        }
        if self.rng.chance(15) {
            rflags |= 0x400; // DF
        }
        let mut scratch = Vec::with_capacity(layout::WINDOW_BYTES as usize);
        while scratch.len() < layout::WINDOW_BYTES as usize {
            let bits = self.rng.pick(&[8, 16, 32, 64]);
            let v = self.rng.value(bits);
            scratch.extend_from_slice(&v.to_le_bytes()[..bits as usize / 8]);
        }
        scratch.truncate(layout::WINDOW_BYTES as usize);
        let (scratch, fpu) = if X87_GROUPS.contains(&self.group) {
            (self.x87_scratch(), self.x87_fpu())
        } else {
            (scratch, crate::seq::default_fpu())
        };
        Init {
            gprs,
            rflags,
            scratch,
            fpu,
        }
    }

    /// A stack pointer in the upper half of the scratch window.
    fn stack_pointer(&mut self) -> u64 {
        let base = layout::SCRATCH + layout::SCRATCH_LEN / 2 + self.rng.below(0x140);
        if self.rng.chance(90) {
            base & !7
        } else {
            base
        }
    }

    /// One unit: usually one item, several for call structures.
    fn unit(&mut self, g: &'static str, at: usize) -> Option<Vec<Item>> {
        match g {
            "string" => self.string_item().map(|i| vec![i]),
            "branch" => self.branch_item(at).map(|i| vec![i]),
            "stack" => self.stack_unit(at),
            "atomic" if self.rng.chance(30) => {
                // A locked read-modify-write of the ALU group.
                let m = self.rng.pick(&[
                    Mnemonic::Add,
                    Mnemonic::Adc,
                    Mnemonic::Sub,
                    Mnemonic::Sbb,
                    Mnemonic::And,
                    Mnemonic::Or,
                    Mnemonic::Xor,
                    Mnemonic::Inc,
                    Mnemonic::Dec,
                    Mnemonic::Neg,
                    Mnemonic::Not,
                ]);
                let codes = forms("alu").get(&m)?;
                let code = self.rng.pick(codes);
                self.table_item(code, Some(true)).map(|i| vec![i])
            }
            "data" if self.rng.chance(3) => self.xlat_item().map(|i| vec![i]),
            "x87trans" => {
                // Operands set up by loads, exchanges and sign changes, then
                // one transcendental function: its 1-ulp accuracy is what the
                // SDM states, and chaining them would compound the error.
                use Mnemonic as M;
                let ms: &[Mnemonic] = if at + 1 == self.n_items {
                    &[
                        M::F2xm1,
                        M::Fyl2x,
                        M::Fyl2xp1,
                        M::Fsin,
                        M::Fcos,
                        M::Fsincos,
                        M::Fptan,
                        M::Fpatan,
                    ]
                } else {
                    &[M::Fld, M::Fxch, M::Fchs]
                };
                let m = self.rng.pick(ms);
                let code = self.rng.pick(forms(g).get(&m)?);
                self.table_item(code, None).map(|i| vec![i])
            }
            _ => {
                let t = forms(g);
                let ms: Vec<&Mnemonic> = t.keys().collect();
                let m = *self.rng.pick(&ms);
                let code = self.rng.pick(&t[&m]);
                self.table_item(code, None).map(|i| vec![i])
            }
        }
    }

    /// An item for a form from the tables. `force_mem`: the r/m operand is
    /// memory (and locked).
    fn table_item(&mut self, code: Code, force_mem: Option<bool>) -> Option<Item> {
        for _ in 0..8 {
            if let Some(it) = self.try_table_item(code, force_mem) {
                return Some(it);
            }
        }
        None
    }

    fn try_table_item(&mut self, code: Code, force_mem: Option<bool>) -> Option<Item> {
        let oc = code.op_code();
        let kinds: Vec<K> = oc.op_kinds().to_vec();
        let m = code.mnemonic();
        let mut ctx = ItemCtx::new();
        // Implicit registers the item sets up.
        let shift_cl = kinds.contains(&K::cl) && is_shift(m);
        if shift_cl {
            ctx.reserved.push(Register::RCX);
        }
        if matches!(
            m,
            Mnemonic::Mul | Mnemonic::Imul | Mnemonic::Div | Mnemonic::Idiv
        ) && kinds.len() == 1
        {
            ctx.reserved.extend([Register::RAX, Register::RDX]);
        }
        if m == Mnemonic::Mulx {
            ctx.reserved.push(Register::RDX);
        }
        if matches!(m, Mnemonic::Cmpxchg) {
            ctx.reserved.push(Register::RAX);
        }
        if matches!(m, Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b) {
            ctx.reserved
                .extend([Register::RAX, Register::RDX, Register::RBX, Register::RCX]);
        }
        let bt_reg = matches!(
            m,
            Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
        ) && matches!(kinds.get(1), Some(K::r16_reg | K::r32_reg | K::r64_reg));
        if bt_reg {
            ctx.margin = 0x90;
        }
        let stack_group = self.group == "stack";
        let use_mem = match force_mem {
            Some(b) => b,
            None => self.rng.chance(40),
        };
        // Registers first (BT's offset register is reserved from addressing).
        let mut ops: Vec<Option<Op>> = vec![None; kinds.len()];
        for (n, k) in kinds.iter().enumerate() {
            let r = match k {
                K::al => Register::AL,
                K::cl => Register::CL,
                K::ax => Register::AX,
                K::eax => Register::EAX,
                K::rax => Register::RAX,
                K::st0 => Register::ST0,
                K::sti_opcode => st(self.rng.below(8) as usize),
                K::r8_reg | K::r8_opcode => self.reg(8, stack_group),
                K::r16_reg | K::r16_rm | K::r16_opcode => self.reg(16, stack_group),
                K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv => self.reg(32, stack_group),
                K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv => self.reg(64, stack_group),
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem if !use_mem => {
                    self.reg(kind_bits(*k), stack_group)
                }
                _ => continue,
            };
            ops[n] = Some(Op::Reg(r));
        }
        let mut bt_offset = None;
        if bt_reg && use_mem {
            if let Some(Op::Reg(r)) = ops[1] {
                ctx.reserved.push(full(r));
                bt_offset = Some(r);
            }
        }
        // Values for register operands.
        for op in ops.iter().flatten() {
            if let Op::Reg(r) = op {
                if r.is_gpr() && self.rng.chance(20) && full(*r) != Register::RSP {
                    let bits = (r.size() * 8) as u32;
                    let v = self.rng.reg_value(bits);
                    let v = if is_high8(*r) { v << 8 } else { v };
                    ctx.setups.push(mov_imm(full(*r), v));
                }
            }
        }
        // BT's bit offset reaches at most 64 bytes either way from the operand.
        if let Some(r) = bt_offset {
            let bits = (r.size() * 8) as u32;
            let off = self.rng.range(-512, 511) as u64;
            let v = (off & mask_of(bits)) | self.upper(bits);
            ctx.setups.push(mov_pinned(full(r), v));
        }
        // The memory operand.
        for (n, k) in kinds.iter().enumerate() {
            let is_mem = matches!(k, K::mem)
                || (use_mem
                    && matches!(
                        k,
                        K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem
                    ));
            if is_mem && ops[n].is_none() {
                let size = match oc.memory_size().size() {
                    0 => 1,
                    s => s as u64,
                };
                let align = if m == Mnemonic::Cmpxchg16b && self.rng.chance(90) {
                    16
                } else {
                    1
                };
                let mo = self.mem_operand(size, align, &mut ctx);
                ops[n] = Some(Op::Mem(mo));
            }
        }
        // Immediates.
        let width = kinds.first().map(|k| kind_bits(*k)).unwrap_or(64);
        for (n, k) in kinds.iter().enumerate() {
            let v = match k {
                K::imm8_const_1 => 1,
                K::imm8 if is_shift(m) => self.shift_count(m, width) as i64,
                K::imm8 => self.rng.value(8) as i64,
                K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => self.rng.value(8) as i8 as i64,
                K::imm16 => self.rng.value(16) as i64,
                K::imm32 => self.rng.value(32) as i64,
                K::imm32sex64 => self.rng.value(32) as i32 as i64,
                K::imm64 => self.rng.value(64) as i64,
                _ => continue,
            };
            ops[n] = Some(Op::Imm(v));
        }
        let ops: Vec<Op> = ops.into_iter().collect::<Option<Vec<_>>>()?;
        let mut ins = make(code, &ops).ok()?;
        let has_mem = ops.iter().any(|o| matches!(o, Op::Mem(_)));
        if oc.can_use_lock_prefix() {
            let lock = match force_mem {
                Some(true) => true,
                _ if has_mem => self.rng.chance(20),
                _ => self.rng.chance(1),
            };
            ins.set_has_lock_prefix(lock);
        }
        // Implicit operands.
        let mut effect = FlagEffect::of(&ins);
        if shift_cl {
            let count = self.shift_count(m, op0_bits(&ins));
            let v = (self.rng.next_u64() & !0xff) | count;
            ctx.setups.push(mov_pinned(Register::RCX, v));
            effect = FlagEffect::of_shift(&ins, count, op0_bits(&ins));
        } else if is_shift(m) {
            let count = if kinds.contains(&K::imm8_const_1) {
                1
            } else {
                ins.immediate8() as u64
            };
            effect = FlagEffect::of_shift(&ins, count, op0_bits(&ins));
        }
        self.implicit_setups(m, &ins, &ops, &mut ctx);
        encodes(&ins).then_some(())?;
        for s in &ctx.setups {
            encodes(&s.ins).then_some(())?;
        }
        let mut insns = ctx.setups;
        insns.push(Insn {
            effect,
            ..Insn::new(ins)
        });
        Some(Item { insns })
    }

    /// Set-ups for the implicit operands of MUL/DIV, CMPXCHG and friends.
    fn implicit_setups(&mut self, m: Mnemonic, ins: &Instruction, ops: &[Op], ctx: &mut ItemCtx) {
        match m {
            Mnemonic::Div | Mnemonic::Idiv => self.div_setups(m == Mnemonic::Idiv, ins, ops, ctx),
            Mnemonic::Mul | Mnemonic::Imul | Mnemonic::Mulx
                if (ops.len() == 1 || m == Mnemonic::Mulx) && self.rng.chance(50) =>
            {
                // The implicit multiplicand: RAX, or RDX for MULX.
                let r = if m == Mnemonic::Mulx {
                    Register::RDX
                } else {
                    Register::RAX
                };
                let v = self.rng.reg_value(64);
                ctx.setups.push(mov_imm(r, v));
            }
            Mnemonic::Cmpxchg => {
                // Half the time the accumulator equals the destination.
                let bits = op0_bits(ins);
                let acc = reg_of(0, bits);
                if self.rng.chance(50) {
                    let code = match bits {
                        8 => Code::Mov_r8_rm8,
                        16 => Code::Mov_r16_rm16,
                        32 => Code::Mov_r32_rm32,
                        _ => Code::Mov_r64_rm64,
                    };
                    if let Ok(i) = make(code, &[Op::Reg(acc), ops[0]]) {
                        ctx.setups.push(Insn::setup(i));
                    }
                } else if self.rng.chance(30) {
                    let v = self.rng.reg_value(64);
                    ctx.setups.push(mov_imm(Register::RAX, v));
                }
            }
            Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b => {
                let wide = m == Mnemonic::Cmpxchg16b;
                for r in [Register::RBX, Register::RCX] {
                    if self.rng.chance(50) {
                        let v = self.rng.reg_value(64);
                        ctx.setups.push(mov_imm(r, v));
                    }
                }
                if let (true, Some(mo)) = (self.rng.chance(50), ctx.mem) {
                    // Load the comparand from the destination itself.
                    let (code, lo, hi, step) = if wide {
                        (Code::Mov_r64_rm64, Register::RAX, Register::RDX, 8)
                    } else {
                        (Code::Mov_r32_rm32, Register::EAX, Register::EDX, 4)
                    };
                    let mut mhi = mo;
                    mhi.displacement = mhi.displacement.wrapping_add(step);
                    for (r, o) in [(lo, mo), (hi, mhi)] {
                        if let Ok(i) = make(code, &[Op::Reg(r), Op::Mem(o)]) {
                            ctx.setups.push(Insn::setup(i));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// DIV/IDIV: a divisor and dividend that mostly do not overflow.
    fn div_setups(&mut self, signed: bool, ins: &Instruction, ops: &[Op], ctx: &mut ItemCtx) {
        let bits = op0_bits(ins);
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let safe = self.rng.chance(80);
        let mut d = self.rng.value(bits);
        if safe && d == 0 {
            d = 1 + self.rng.below(mask.min(1000));
        }
        // The divisor.
        match ops[0] {
            Op::Reg(r) if !matches!(full(r), Register::RAX | Register::RDX) => {
                let v = if is_high8(r) { d << 8 } else { d };
                ctx.setups.push(mov_imm(
                    full(r),
                    v | self.upper(bits + 8 * is_high8(r) as u32),
                ));
            }
            Op::Mem(mo) if safe => {
                let code = match bits {
                    8 => Code::Mov_rm8_imm8,
                    16 => Code::Mov_rm16_imm16,
                    32 => Code::Mov_rm32_imm32,
                    _ => Code::Mov_rm64_imm32,
                };
                if bits == 64 {
                    d = d as i32 as i64 as u64;
                    if d == 0 {
                        d = 7;
                    }
                }
                if let Ok(i) = make(code, &[Op::Mem(mo), Op::Imm(d as i64)]) {
                    ctx.setups.push(Insn::setup(i));
                }
            }
            _ => {}
        }
        if !self.rng.chance(85) {
            return;
        }
        // The dividend.
        let (hi, lo) = if signed {
            let lo = self.rng.value(bits);
            let neg = lo & (1 << (bits - 1)) != 0;
            (if neg { mask } else { 0 }, lo)
        } else {
            let hi = if safe && d != 0 {
                self.rng.below(d)
            } else {
                self.rng.value(bits)
            };
            (hi, self.rng.value(bits))
        };
        if bits == 8 {
            let ax = (hi << 8) | lo;
            ctx.setups.push(mov_imm(Register::RAX, ax | self.upper(16)));
        } else {
            ctx.setups
                .push(mov_imm(Register::RAX, lo | self.upper(bits)));
            ctx.setups
                .push(mov_imm(Register::RDX, hi | self.upper(bits)));
        }
    }

    /// Random bits above `bits` (or none).
    fn upper(&mut self, bits: u32) -> u64 {
        if bits >= 64 || self.rng.chance(50) {
            0
        } else {
            self.rng.next_u64() << bits
        }
    }

    fn shift_count(&mut self, m: Mnemonic, width: u32) -> u64 {
        let w = width as u64;
        let c = match self.rng.below(8) {
            0 => 0,
            1 => 1,
            2 => w - 1,
            3 => w,
            4 => w + 1,
            5 => self.rng.pick(&[8, 16, 17, 31, 32, 33, 63, 64, 65, 255]),
            _ => self.rng.below(w),
        };
        if matches!(m, Mnemonic::Shld | Mnemonic::Shrd) && width == 16 && (c & 31) > 16 {
            // SDM: SHLD/SHRD of 16 bits by more than 16 leave the result
            // undefined.
            return c & 15;
        }
        c & 0xff
    }

    /// A random register of `bits`; RSP rarely (often in the stack group).
    fn reg(&mut self, bits: u32, stack_group: bool) -> Register {
        loop {
            let n = self.rng.below(if bits == 8 { 20 } else { 16 }) as usize;
            let r = if bits == 8 { GPR8[n] } else { reg_of(n, bits) };
            let sp = full(r) == Register::RSP;
            if !sp || self.rng.chance(if stack_group { 10 } else { 3 }) {
                return r;
            }
        }
    }

    /// A target address for a `size`-byte access: usually in the scratch
    /// window (often straddling its page boundary), sometimes somewhere that
    /// faults.
    fn target(&mut self, size: u64, align: u64, margin: u64) -> u64 {
        let boundary = layout::SCRATCH + 0x200;
        let t = match self.rng.below(100) {
            0..=69 => {
                let lo = layout::SCRATCH + margin;
                let hi = layout::SCRATCH + layout::SCRATCH_LEN - margin - size.max(16);
                lo + self.rng.below(hi - lo)
            }
            70..=89 => boundary - self.rng.below(size.max(2)) - 1 + self.rng.below(2),
            90..=92 => layout::GUARD_LO + 0x1000 - self.rng.below(size.max(2)),
            93..=94 => layout::RO_PAGE + self.rng.below(0x100),
            95 => layout::GUARD_HI - self.rng.below(size.max(2)),
            96 => 0x1f_f000 + self.rng.below(0x1000),
            97 => 0x8000_0000_0000 + self.rng.below(0x1000),
            98 => 0xffff_8000_0000_0000 - 0x10 + self.rng.below(0x20),
            99 if self.rng.chance(50) => {
                layout::TOP_WINDOW + self.rng.below(layout::TOP_WINDOW_LEN - size.max(8))
            }
            _ => 0x8000_0000_0000 - self.rng.below(size.max(2) + 1),
        };
        if align > 1 {
            t & !(align - 1)
        } else {
            t
        }
    }

    /// A memory operand of some addressing form aimed at `target`, with the
    /// base and index set up in `ctx`.
    fn mem_operand(&mut self, size: u64, align: u64, ctx: &mut ItemCtx) -> MemoryOperand {
        let target = self.target(size, align, ctx.margin);
        let a32 = target < (1 << 32) && self.rng.chance(15);
        let bits = if a32 { 32 } else { 64 };
        let amask = if a32 { 0xffff_ffffu64 } else { u64::MAX };
        let seg = if self.rng.chance(8) {
            self.rng.pick(&[
                Register::ES,
                Register::CS,
                Register::SS,
                Register::DS,
                Register::FS,
                Register::GS,
            ])
        } else {
            Register::None
        };
        let pick_reg = |g: &mut Self, ctx: &ItemCtx, not: Option<Register>, index: bool| loop {
            let n = g.rng.below(16) as usize;
            let r = r64(n);
            if ctx.reserved.contains(&r) || Some(r) == not {
                continue;
            }
            if r == Register::RSP && (index || !g.rng.chance(15)) {
                continue;
            }
            return r;
        };
        let form = if target >= (1 << 31) && !a32 {
            // Out of disp32 reach: base (+ index).
            self.rng.pick(&[0, 1, 2, 3])
        } else {
            self.rng.below(7)
        };
        let disp: i64 = match form {
            1 => self.rng.range(-128, 127),
            2..=4 => {
                if self.rng.chance(50) {
                    self.rng.range(-128, 127)
                } else {
                    self.rng.next_u64() as i32 as i64
                }
            }
            _ => 0,
        };
        let mut mo = match form {
            // [base], [base + disp8], [base + disp32]
            0..=2 => {
                let b = pick_reg(self, ctx, None, false);
                let v = target.wrapping_sub(disp as u64) & amask;
                ctx.setups.push(mov_pinned(b, v | self.upper(bits)));
                let br = if a32 {
                    reg_of(b as usize - Register::RAX as usize, 32)
                } else {
                    b
                };
                MemoryOperand::with_base_displ(br, disp)
            }
            // [base + index * scale + disp]
            3 => {
                let b = pick_reg(self, ctx, None, false);
                let x = pick_reg(self, ctx, Some(b), true);
                let scale = self.rng.pick(&[1u32, 2, 4, 8]);
                let iv = self.rng.range(-64, 64) as u64;
                let bv = target
                    .wrapping_sub(disp as u64)
                    .wrapping_sub(iv.wrapping_mul(scale as u64))
                    & amask;
                ctx.setups.push(mov_pinned(b, bv | self.upper(bits)));
                ctx.setups
                    .push(mov_pinned(x, (iv & amask) | self.upper(bits)));
                let (br, xr) = if a32 {
                    (
                        reg_of(b as usize - Register::RAX as usize, 32),
                        reg_of(x as usize - Register::RAX as usize, 32),
                    )
                } else {
                    (b, x)
                };
                MemoryOperand::with_base_index_scale_displ_size(br, xr, scale, disp, 1)
            }
            // [index * scale + disp32]
            4 => {
                let x = pick_reg(self, ctx, None, true);
                let scale = self.rng.pick(&[1u32, 2, 4, 8]);
                let iv = self.rng.range(0, 64) as u64;
                let d = target.wrapping_sub(iv * scale as u64) as i64;
                ctx.setups.push(mov_pinned(x, iv | self.upper(bits)));
                let xr = if a32 {
                    reg_of(x as usize - Register::RAX as usize, 32)
                } else {
                    x
                };
                MemoryOperand::with_base_index_scale_displ_size(Register::None, xr, scale, d, 4)
            }
            // [disp32]
            5 => MemoryOperand::with_displ(target, 4),
            // [rip + disp32]
            _ => MemoryOperand::with_base_displ(
                if a32 { Register::EIP } else { Register::RIP },
                target as i64,
            ),
        };
        mo.segment_prefix = seg;
        ctx.mem = Some(mo);
        mo
    }
}

/// True if the instruction encodes on its own.
fn encodes(i: &Instruction) -> bool {
    let mut i = *i;
    if i.is_ip_rel_memory_operand() {
        return Encoder::new(64).encode(&i, layout::CODE).is_ok();
    }
    if matches!(
        i.op0_kind(),
        iced_x86::OpKind::NearBranch64 | iced_x86::OpKind::NearBranch32
    ) {
        i.set_near_branch64(layout::CODE + 2);
    }
    Encoder::new(64).encode(&i, layout::CODE).is_ok()
}

/// Inserts a flag-defining `CMP` before every item that reads a flag the
/// analysis finds undefined. False if the sequence cannot be repaired.
pub fn repair(seq: &mut Sequence, rng: &mut Rng) -> bool {
    for _ in 0..32 {
        let a = seq.flag_analysis();
        let Some(bad) = a.bad_read else {
            return seq.encode(layout::CODE, layout::DRIVER).is_ok();
        };
        let (item, insn) = seq.flat()[bad];
        if insn.effect.read & crate::flags::CC & a.at(bad) != 0 {
            // FXAM defines C0-C3 and touches nothing else.
            let Ok(fxam) = make(Code::Fxam, &[]) else {
                return false;
            };
            insert_item(
                seq,
                item,
                Item {
                    insns: vec![Insn::setup(fxam)],
                },
            );
            continue;
        }
        let r = r64(rng.below(16) as usize);
        let r = if r == Register::RSP { Register::RAX } else { r };
        let v = rng.value(32) as i32 as i64;
        let Ok(cmp) = make(Code::Cmp_rm64_imm32, &[Op::Reg(r), Op::Imm(v)]) else {
            return false;
        };
        insert_item(
            seq,
            item,
            Item {
                insns: vec![Insn::setup(cmp)],
            },
        );
    }
    false
}

/// Inserts `it` before item `at`; branches to `at` (and returns to it) now
/// reach the new item.
pub fn insert_item(seq: &mut Sequence, at: usize, it: Item) {
    for item in &mut seq.items {
        for i in &mut item.insns {
            let fix = |t: usize| if t > at { t + 1 } else { t };
            i.target = i.target.map(fix);
            i.flow = match i.flow {
                Flow::Next => Flow::Next,
                Flow::Branch(t) => Flow::Branch(fix(t)),
                Flow::Jump(t) => Flow::Jump(fix(t)),
            };
        }
    }
    seq.items.insert(at, it);
}

/// Removes item `at`; branches to it now reach the item after it.
pub fn remove_item(seq: &mut Sequence, at: usize) {
    seq.items.remove(at);
    for item in &mut seq.items {
        for i in &mut item.insns {
            let fix = |t: usize| if t > at { t - 1 } else { t };
            i.target = i.target.map(fix);
            i.flow = match i.flow {
                Flow::Next => Flow::Next,
                Flow::Branch(t) => Flow::Branch(fix(t)),
                Flow::Jump(t) => Flow::Jump(fix(t)),
            };
        }
    }
}
