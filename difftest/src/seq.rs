//! Generated sequences: items of instructions, their initial state, and how
//! they are encoded and shown.

use crate::flags::{self, FlagEffect, Flow};
use crate::layout;
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Formatter, Instruction, InstructionBlock,
    IntelFormatter, MemoryOperand, OpCodeOperandKind, Register,
};

/// One instruction of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The instruction (its IP is assigned at encoding).
    pub ins: Instruction,
    /// A near branch to the first instruction of item `t` (`t` = number of
    /// items: the end of the sequence).
    pub target: Option<usize>,
    /// What it does to the status flags, as far as the generator knows the
    /// operands (shift counts).
    pub effect: FlagEffect,
    /// Part of the item's set-up, not the instruction under test.
    pub setup: bool,
    /// Where control goes next, for the flag analysis.
    pub flow: Flow,
    /// A set-up the minimizer keeps: it aims a pointer or fixes a count the
    /// flag analysis relies on.
    pub pinned: bool,
}

impl Insn {
    /// An instruction under test with the flag effect iced-x86 states.
    pub fn new(ins: Instruction) -> Self {
        Self {
            ins,
            target: None,
            effect: FlagEffect::of(&ins),
            setup: false,
            flow: Flow::Next,
            pinned: false,
        }
    }

    /// A near branch to item `t`: conditional (`Jcc`, `LOOP`, `JRCXZ`) or not
    /// (`JMP`, `CALL`).
    pub fn branch(ins: Instruction, t: usize, conditional: bool) -> Self {
        Self {
            target: Some(t),
            flow: if conditional {
                Flow::Branch(t)
            } else {
                Flow::Jump(t)
            },
            ..Self::new(ins)
        }
    }

    /// A set-up instruction.
    pub fn setup(ins: Instruction) -> Self {
        Self {
            setup: true,
            ..Self::new(ins)
        }
    }
}

/// A unit the generator emits and the minimizer drops: set-up instructions and
/// the instruction under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The instructions.
    pub insns: Vec<Insn>,
}

/// The state a sequence starts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    /// RAX..R15.
    pub gprs: [u64; 16],
    /// RFLAGS (loaded by POPFQ in ring 3).
    pub rflags: u64,
    /// The windows' contents ([`layout::WINDOWS`], one after the other).
    pub scratch: Vec<u8>,
    /// The x87/SSE state, an FXSAVE64 image ([`layout::FPU_BYTES`] bytes).
    pub fpu: Vec<u8>,
}

/// A generated sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The group it was drawn from.
    pub group: &'static str,
    /// The items, run in order (forward branches skip some).
    pub items: Vec<Item>,
    /// Initial state.
    pub init: Init,
}

/// Where instruction IPs are placed before the block encoder relocates them:
/// far from any real address, so targets outside the block stay outside.
const FAKE_IP: u64 = 0x7000_0000_0000;

impl Sequence {
    /// The instructions in order, with the item index each belongs to.
    pub fn flat(&self) -> Vec<(usize, Insn)> {
        self.items
            .iter()
            .enumerate()
            .flat_map(|(k, it)| it.insns.iter().map(move |i| (k, *i)))
            .collect()
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.items.iter().map(|i| i.insns.len()).sum()
    }

    /// True if there are no instructions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index in [`Sequence::flat`] of each item's first instruction, and the
    /// number of instructions at the end (the target of "item n").
    pub fn item_starts(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.items.len() + 1);
        let mut n = 0;
        for it in &self.items {
            v.push(n);
            n += it.insns.len();
        }
        v.push(n);
        v
    }

    /// The instructions with IPs and branch targets resolved for the block
    /// encoder, plus the end: a `MOV` of the end mark `mark` to the driver's
    /// [`layout::var::ENDED`] (flags untouched) and a `JMP seq_end`. Branches
    /// to the end of the sequence go to the mark.
    fn block(&self, seq_end: u64, mark: u32) -> Result<Vec<Instruction>, String> {
        let starts = self.item_starts();
        let flat = self.flat();
        let ip = |k: usize| FAKE_IP + 16 * k as u64;
        let mut v = Vec::with_capacity(flat.len() + 1);
        for (k, (_, i)) in flat.iter().enumerate() {
            let mut ins = i.ins;
            ins.set_ip(ip(k));
            if let Some(t) = i.target {
                let t = starts[t.min(self.items.len())];
                ins.set_near_branch64(ip(t));
            }
            v.push(ins);
        }
        let at = MemoryOperand::with_base_displ(
            Register::None,
            (layout::VARS + layout::var::ENDED) as i64,
        );
        let mut m =
            Instruction::with2(Code::Mov_rm32_imm32, at, mark).map_err(|e| e.to_string())?;
        m.set_ip(ip(flat.len()));
        v.push(m);
        let mut j =
            Instruction::with_branch(Code::Jmp_rel32_64, seq_end).map_err(|e| e.to_string())?;
        j.set_ip(ip(flat.len() + 1));
        v.push(j);
        Ok(v)
    }

    /// Encodes the sequence at `at`, ending with a jump to `seq_end`.
    pub fn encode(&self, at: u64, seq_end: u64) -> Result<Vec<u8>, String> {
        Ok(self.encode_with_offsets(at, seq_end)?.0)
    }

    /// Encodes the sequence and returns each instruction's offset. Its end
    /// mark is the low half of `at`.
    pub fn encode_with_offsets(
        &self,
        at: u64,
        seq_end: u64,
    ) -> Result<(Vec<u8>, Vec<u32>), String> {
        let v = self.block(seq_end, at as u32)?;
        let r = BlockEncoder::encode(
            64,
            InstructionBlock::new(&v, at),
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .map_err(|e| format!("encoding: {e}"))?;
        Ok((r.code_buffer, r.new_instruction_offsets))
    }

    /// The flag analysis of the sequence.
    pub fn flag_analysis(&self) -> flags::Analysis {
        flags::analyze(self)
    }

    /// A disassembly listing at `at`.
    pub fn listing(&self, at: u64) -> String {
        let seq_end = crate::image::harness().seq_end;
        let Ok((bytes, offs)) = self.encode_with_offsets(at, seq_end) else {
            return "  (does not encode)\n".into();
        };
        let mut f = IntelFormatter::new();
        f.options_mut().set_first_operand_char_index(8);
        f.options_mut().set_hex_prefix("0x");
        f.options_mut().set_hex_suffix("");
        let flat = self.flat();
        let mut out = String::new();
        let mut dec = iced_x86::Decoder::with_ip(64, &bytes, at, iced_x86::DecoderOptions::AMD);
        let mut k = 0;
        while dec.can_decode() {
            let ins = dec.decode();
            let off = (ins.ip() - at) as usize;
            let mut text = String::new();
            f.format(&ins, &mut text);
            let hex: String = bytes[off..off + ins.len()]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let tag = match flat.get(k) {
                Some((item, i)) if offs.get(k) == Some(&(off as u32)) => {
                    format!("{item:>2}{}", if i.setup { " " } else { "*" })
                }
                _ => "   ".into(),
            };
            out.push_str(&format!("  {tag} {:#010x}  {hex:<30} {text}\n", ins.ip()));
            k += 1;
        }
        out
    }
}

/// An operand handed to [`make`].
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// A register.
    Reg(Register),
    /// A memory operand.
    Mem(MemoryOperand),
    /// An immediate (its kind comes from the opcode).
    Imm(i64),
}

/// Builds an instruction of `code` from explicit operands.
pub fn make(code: Code, ops: &[Op]) -> Result<Instruction, String> {
    let info = code.op_code();
    let imm = |n: usize, v: i64| -> ImmV {
        match info.op_kind(n as u32) {
            OpCodeOperandKind::imm64 => ImmV::U64(v as u64),
            OpCodeOperandKind::imm32sex64 | OpCodeOperandKind::imm8sex64 => ImmV::I32(v as i32),
            OpCodeOperandKind::imm8sex16 | OpCodeOperandKind::imm8sex32 => ImmV::I32(v as i32),
            _ => ImmV::U32(v as u32),
        }
    };
    use ImmV::*;
    use Op::*;
    let r = match ops {
        [] => Ok(Instruction::with(code)),
        [Reg(a)] => Instruction::with1(code, *a),
        [Mem(a)] => Instruction::with1(code, *a),
        [Imm(a)] => match imm(0, *a) {
            I32(v) => Instruction::with1(code, v),
            U32(v) => Instruction::with1(code, v),
            U64(v) => Instruction::with1(code, v as u32),
        },
        [Reg(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Mem(b)] => Instruction::with2(code, *a, *b),
        [Mem(a), Reg(b)] => Instruction::with2(code, *a, *b),
        [Reg(a), Imm(b)] => match imm(1, *b) {
            I32(v) => Instruction::with2(code, *a, v),
            U32(v) => Instruction::with2(code, *a, v),
            U64(v) => Instruction::with2(code, *a, v),
        },
        [Mem(a), Imm(b)] => match imm(1, *b) {
            I32(v) => Instruction::with2(code, *a, v),
            U32(v) => Instruction::with2(code, *a, v),
            U64(v) => Instruction::with2(code, *a, v as u32),
        },
        [Imm(a), Imm(b)] => Instruction::with2(code, *a as u32, *b as u32),
        [Reg(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Reg(b), Mem(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Mem(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Mem(a), Reg(b), Reg(c)] => Instruction::with3(code, *a, *b, *c),
        [Reg(a), Reg(b), Imm(c)] => match imm(2, *c) {
            I32(v) => Instruction::with3(code, *a, *b, v),
            U32(v) => Instruction::with3(code, *a, *b, v),
            U64(v) => Instruction::with3(code, *a, *b, v as u32),
        },
        [Reg(a), Mem(b), Imm(c)] => match imm(2, *c) {
            I32(v) => Instruction::with3(code, *a, *b, v),
            U32(v) => Instruction::with3(code, *a, *b, v),
            U64(v) => Instruction::with3(code, *a, *b, v as u32),
        },
        [Mem(a), Reg(b), Imm(c)] => match imm(2, *c) {
            I32(v) => Instruction::with3(code, *a, *b, v),
            U32(v) => Instruction::with3(code, *a, *b, v),
            U64(v) => Instruction::with3(code, *a, *b, v as u32),
        },
        _ => return Err(format!("{code:?}: unsupported operand pattern {ops:?}")),
    };
    r.map_err(|e| format!("{code:?} {ops:?}: {e}"))
}

#[derive(Clone, Copy)]
enum ImmV {
    I32(i32),
    U32(u32),
    U64(u64),
}

/// A `mov r64, imm64` set-up instruction.
pub fn mov_imm(r: Register, v: u64) -> Insn {
    Insn::setup(Instruction::with2(Code::Mov_r64_imm64, r, v).expect("mov r64, imm64"))
}

/// A pinned `mov r64, imm64` set-up (a pointer or a count).
pub fn mov_pinned(r: Register, v: u64) -> Insn {
    Insn {
        pinned: true,
        ..mov_imm(r, v)
    }
}

/// The x87/SSE state after FNINIT and reset: FCW 037FH, all registers
/// empty, MXCSR 1F80H.
pub fn default_fpu() -> Vec<u8> {
    let mut v = vec![0u8; layout::FPU_BYTES as usize];
    v[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    v[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    v
}

/// Zeroed windows.
pub fn zero_scratch() -> Vec<u8> {
    vec![0; layout::WINDOW_BYTES as usize]
}
