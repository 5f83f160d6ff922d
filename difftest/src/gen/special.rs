//! The hand-built items: XLAT, string instructions, forward branches, and the
//! stack group (PUSH/POP forms, POPF, ENTER/LEAVE, CALL/RET structures).

use super::tables::forms;
use super::{Gen, ItemCtx};
use crate::flags::{FlagEffect, Flow};
use crate::layout;
use crate::seq::{make, mov_imm, mov_pinned, Insn, Item, Op};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, Register, RepPrefixKind};

impl Gen {
    /// XLAT: AL indexes a table at RBX.
    pub(super) fn xlat_item(&mut self) -> Option<Item> {
        let mut ctx = ItemCtx::new();
        let al = self.rng.below(256);
        let t = self.target(1, 1, 0x20).wrapping_sub(al);
        ctx.setups
            .push(mov_pinned(Register::RAX, al | self.upper(8)));
        ctx.setups.push(mov_pinned(Register::RBX, t));
        let ins = decode_one(&[0xd7])?;
        let mut insns = ctx.setups;
        insns.push(Insn::new(ins));
        Some(Item { insns })
    }

    /// A string instruction with set-up pointers, count and direction.
    pub(super) fn string_item(&mut self) -> Option<Item> {
        let op = self.rng.below(5);
        let size = self.rng.pick(&[1u64, 2, 4, 8]);
        let a32 = self.rng.chance(20);
        let addr_size = if a32 { 32 } else { 64 };
        let down = self.rng.chance(40);
        let count = match self.rng.below(10) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 17 + self.rng.below(24),
            _ => 3 + self.rng.below(14),
        };
        let span = count.max(1) * size;
        let ptr = |g: &mut Self| -> u64 {
            if g.rng.chance(6) {
                // Run into a page that faults part-way.
                return if down {
                    layout::GUARD_LO + 0x1000 + g.rng.below(span)
                } else {
                    layout::RO_PAGE - g.rng.below(span) - 1
                };
            }
            let lo = layout::SCRATCH + 8;
            let hi = layout::SCRATCH + layout::SCRATCH_LEN - 8 - span - size;
            let p = lo + g.rng.below(hi.saturating_sub(lo).max(1));
            if down {
                p + span - size
            } else {
                p
            }
        };
        let rep = if self.rng.chance(30) {
            RepPrefixKind::None
        } else if matches!(op, 1 | 2) {
            self.rng.pick(&[RepPrefixKind::Repe, RepPrefixKind::Repne])
        } else {
            RepPrefixKind::Repe
        };
        let seg = if self.rng.chance(10) {
            self.rng
                .pick(&[Register::FS, Register::GS, Register::SS, Register::ES])
        } else {
            Register::None
        };
        use Instruction as I;
        let ins = match (op, size) {
            (0, 1) => I::with_movsb(addr_size, seg, rep),
            (0, 2) => I::with_movsw(addr_size, seg, rep),
            (0, 4) => I::with_movsd(addr_size, seg, rep),
            (0, _) => I::with_movsq(addr_size, seg, rep),
            (1, 1) => I::with_cmpsb(addr_size, seg, rep),
            (1, 2) => I::with_cmpsw(addr_size, seg, rep),
            (1, 4) => I::with_cmpsd(addr_size, seg, rep),
            (1, _) => I::with_cmpsq(addr_size, seg, rep),
            (2, 1) => I::with_scasb(addr_size, rep),
            (2, 2) => I::with_scasw(addr_size, rep),
            (2, 4) => I::with_scasd(addr_size, rep),
            (2, _) => I::with_scasq(addr_size, rep),
            (3, 1) => I::with_lodsb(addr_size, seg, rep),
            (3, 2) => I::with_lodsw(addr_size, seg, rep),
            (3, 4) => I::with_lodsd(addr_size, seg, rep),
            (3, _) => I::with_lodsq(addr_size, seg, rep),
            (_, 1) => I::with_stosb(addr_size, rep),
            (_, 2) => I::with_stosw(addr_size, rep),
            (_, 4) => I::with_stosd(addr_size, rep),
            (_, _) => I::with_stosq(addr_size, rep),
        }
        .ok()?;
        let bits = if a32 { 32 } else { 64 };
        let mut setups = vec![Insn::setup(
            make(if down { Code::Std } else { Code::Cld }, &[]).ok()?,
        )];
        let (s, d) = (ptr(self), ptr(self));
        let up = |g: &mut Self| g.upper(bits);
        let v = (s, up(self), d, up(self), count, up(self));
        setups.push(mov_pinned(Register::RSI, v.0 | v.1));
        setups.push(mov_pinned(Register::RDI, v.2 | v.3));
        setups.push(mov_pinned(Register::RCX, v.4 | v.5));
        if self.rng.chance(60) {
            let a = self.rng.reg_value(64);
            setups.push(mov_imm(Register::RAX, a));
        }
        let mut main = Insn::new(ins);
        if rep != RepPrefixKind::None && count == 0 {
            // No iteration: CMPS and SCAS leave the flags as they were.
            main.effect = FlagEffect::default();
        }
        setups.push(main);
        Some(Item { insns: setups })
    }

    /// Forward branches: Jcc, JMP, LOOPcc, JRCXZ.
    pub(super) fn branch_item(&mut self, at: usize) -> Option<Item> {
        let target = (at + 1 + self.rng.below(3) as usize).min(self.n_items);
        let mut insns = Vec::new();
        let (code, cond) = match self.rng.below(10) {
            0..=5 => {
                let jcc = [
                    Code::Jo_rel8_64,
                    Code::Jno_rel8_64,
                    Code::Jb_rel8_64,
                    Code::Jae_rel8_64,
                    Code::Je_rel8_64,
                    Code::Jne_rel8_64,
                    Code::Jbe_rel8_64,
                    Code::Ja_rel8_64,
                    Code::Js_rel8_64,
                    Code::Jns_rel8_64,
                    Code::Jp_rel8_64,
                    Code::Jnp_rel8_64,
                    Code::Jl_rel8_64,
                    Code::Jge_rel8_64,
                    Code::Jle_rel8_64,
                    Code::Jg_rel8_64,
                ];
                let k = self.rng.below(16) as usize;
                let c = if self.rng.chance(50) {
                    jcc[k]
                } else {
                    // The rel32 form follows rel8 in iced's Code order.
                    near_form(jcc[k])
                };
                (c, true)
            }
            6 => (
                self.rng.pick(&[Code::Jmp_rel8_64, Code::Jmp_rel32_64]),
                false,
            ),
            _ => {
                let a32 = self.rng.chance(30);
                let c = match (self.rng.below(4), a32) {
                    (0, false) => Code::Loop_rel8_64_RCX,
                    (0, true) => Code::Loop_rel8_64_ECX,
                    (1, false) => Code::Loope_rel8_64_RCX,
                    (1, true) => Code::Loope_rel8_64_ECX,
                    (2, false) => Code::Loopne_rel8_64_RCX,
                    (2, true) => Code::Loopne_rel8_64_ECX,
                    (_, false) => Code::Jrcxz_rel8_64,
                    (_, true) => Code::Jecxz_rel8_64,
                };
                let v = match self.rng.below(4) {
                    0 => 0,
                    1 => 1,
                    2 => self.rng.below(5),
                    _ => self.rng.next_u64(),
                };
                let v = if a32 && self.rng.chance(50) {
                    v | self.rng.next_u64() << 32
                } else {
                    v
                };
                insns.push(mov_imm(Register::RCX, v));
                (c, true)
            }
        };
        // The target is fixed at encoding; any address works here.
        let ins = Instruction::with_branch(code, 0).ok()?;
        insns.push(Insn::branch(ins, target, cond));
        Some(Item { insns })
    }

    /// Stack items: PUSH/POP forms, PUSHF/POPF, ENTER/LEAVE, CALL/RET.
    pub(super) fn stack_unit(&mut self, at: usize) -> Option<Vec<Item>> {
        let mut pre = Vec::new();
        if self.rng.chance(30) {
            let sp = self.stack_pointer();
            pre.push(mov_pinned(Register::RSP, sp));
        }
        let mut items = match self.rng.below(10) {
            0..=4 => {
                let t = forms("stack");
                let ms: Vec<&Mnemonic> = t.keys().collect();
                let m = *self.rng.pick(&ms);
                let code = self.rng.pick(&t[&m]);
                vec![self.table_item(code, None)?]
            }
            5 => vec![self.popf_item()?],
            6 => vec![self.enter_leave_item()?],
            _ => self.call_unit(at)?,
        };
        let first = &mut items[0].insns;
        pre.append(first);
        *first = pre;
        Some(items)
    }

    pub(super) fn popf_item(&mut self) -> Option<Item> {
        // Any flags but TF (a single-step trap would follow).
        let v = (self.rng.next_u64() as u32 & !0x100 & 0x003f_7fd5) | 2;
        let wide = self.rng.chance(70);
        let (push, popf, v) = if wide {
            (Code::Pushq_imm32, Code::Popfq, v as i32 as i64)
        } else {
            (Code::Push_imm16, Code::Popfw, (v & 0xfeff) as i64)
        };
        let p = make(push, &[Op::Imm(v)]).ok()?;
        let mut pf = Insn::new(make(popf, &[]).ok()?);
        pf.effect = FlagEffect {
            undefined: 0,
            defined: crate::flags::STATUS,
            read: 0,
        };
        Some(Item {
            insns: vec![Insn::setup(p), pf],
        })
    }

    pub(super) fn enter_leave_item(&mut self) -> Option<Item> {
        let mut insns = Vec::new();
        let bp = layout::SCRATCH + 0x100 + self.rng.below(0x200);
        insns.push(mov_pinned(Register::RBP, bp));
        let ins = if self.rng.chance(50) {
            let any = self.rng.below(64);
            let size = self.rng.pick(&[0, 8, 16, any]);
            let any = self.rng.below(32);
            let level = self.rng.pick(&[0, 1, 2, 3, any]);
            let code = if self.rng.chance(85) {
                Code::Enterq_imm16_imm8
            } else {
                Code::Enterw_imm16_imm8
            };
            make(code, &[Op::Imm(size as i64), Op::Imm(level as i64)]).ok()?
        } else {
            make(
                if self.rng.chance(85) {
                    Code::Leaveq
                } else {
                    Code::Leavew
                },
                &[],
            )
            .ok()?
        };
        insns.push(Insn::new(ins));
        Some(Item { insns })
    }

    /// `CALL L; JMP M; L: body; RET; M:` with a body of 0-2 non-stack items.
    pub(super) fn call_unit(&mut self, at: usize) -> Option<Vec<Item>> {
        let body_n = self.rng.below(3) as usize;
        let mut body = Vec::new();
        for _ in 0..body_n {
            let g = self.rng.pick(&["alu", "shift", "data", "bit"]);
            let t = forms(g);
            let ms: Vec<&Mnemonic> = t.keys().collect();
            let m = *self.rng.pick(&ms);
            let code = self.rng.pick(&t[&m]);
            body.push(self.table_item(code, None)?);
        }
        let call_t = at + 2;
        let ret_at = at + 2 + body_n;
        let after = ret_at + 1;
        let call = Instruction::with_branch(Code::Call_rel32_64, 0).ok()?;
        let jmp =
            Instruction::with_branch(self.rng.pick(&[Code::Jmp_rel8_64, Code::Jmp_rel32_64]), 0)
                .ok()?;
        let ret = if self.rng.chance(70) {
            make(Code::Retnq, &[]).ok()?
        } else {
            let any = self.rng.below(64);
            let n = self.rng.pick(&[0, 8, 16, any]);
            make(Code::Retnq_imm16, &[Op::Imm(n as i64)]).ok()?
        };
        let mut ret = Insn::new(ret);
        ret.flow = Flow::Jump(at + 1);
        let mut items = vec![
            Item {
                insns: vec![Insn::branch(call, call_t, false)],
            },
            Item {
                insns: vec![Insn::branch(jmp, after, false)],
            },
        ];
        items.append(&mut body);
        items.push(Item { insns: vec![ret] });
        Some(items)
    }
}

/// The rel32 form of a rel8 Jcc.
fn near_form(c: Code) -> Code {
    match c {
        Code::Jo_rel8_64 => Code::Jo_rel32_64,
        Code::Jno_rel8_64 => Code::Jno_rel32_64,
        Code::Jb_rel8_64 => Code::Jb_rel32_64,
        Code::Jae_rel8_64 => Code::Jae_rel32_64,
        Code::Je_rel8_64 => Code::Je_rel32_64,
        Code::Jne_rel8_64 => Code::Jne_rel32_64,
        Code::Jbe_rel8_64 => Code::Jbe_rel32_64,
        Code::Ja_rel8_64 => Code::Ja_rel32_64,
        Code::Js_rel8_64 => Code::Js_rel32_64,
        Code::Jns_rel8_64 => Code::Jns_rel32_64,
        Code::Jp_rel8_64 => Code::Jp_rel32_64,
        Code::Jnp_rel8_64 => Code::Jnp_rel32_64,
        Code::Jl_rel8_64 => Code::Jl_rel32_64,
        Code::Jge_rel8_64 => Code::Jge_rel32_64,
        Code::Jle_rel8_64 => Code::Jle_rel32_64,
        Code::Jg_rel8_64 => Code::Jg_rel32_64,
        other => other,
    }
}

fn decode_one(bytes: &[u8]) -> Option<Instruction> {
    let mut d = Decoder::new(64, bytes, DecoderOptions::AMD);
    let i = d.decode();
    (!i.is_invalid()).then_some(i)
}
