//! The instruction-form tables: which mnemonics each group draws from, every
//! 64-bit legacy (and, for BMI, VEX) form of them whose operands the generator
//! can fill, and register helpers.

use iced_x86::{Code, EncodingKind, Instruction, Mnemonic, OpCodeOperandKind as K, Register};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The integer groups, in the order `int` rotates through them.
pub const INT_GROUPS: &[&str] = &[
    "alu", "shift", "muldiv", "bit", "bmi", "data", "atomic", "string", "stack", "branch",
];

/// The x87 groups: exact results, and the transcendental functions (whose
/// last bit the SDM leaves to the implementation: compared within 1 ulp).
pub const X87_GROUPS: &[&str] = &["x87", "x87trans"];

/// Every group name the generator accepts.
pub fn group_names() -> Vec<&'static str> {
    let mut v = INT_GROUPS.to_vec();
    v.push("mixed");
    v.extend_from_slice(X87_GROUPS);
    v
}

/// The CPU model nestemu runs the sequences on.
pub fn model() -> &'static nestemu::cpu::cpuid::CpuModel {
    static M: OnceLock<nestemu::cpu::cpuid::CpuModel> = OnceLock::new();
    M.get_or_init(nestemu::cpu::cpuid::CpuModel::amd)
}

/// Every group that draws from a form table.
fn table_groups() -> impl Iterator<Item = &'static str> {
    INT_GROUPS.iter().chain(X87_GROUPS).copied()
}

#[rustfmt::skip]
pub(super) fn mnemonics(group: &str) -> &'static [Mnemonic] {
    use Mnemonic as M;
    match group {
        "alu" => &[M::Add, M::Adc, M::Sub, M::Sbb, M::And, M::Or, M::Xor, M::Cmp, M::Test,
            M::Inc, M::Dec, M::Neg, M::Not],
        "shift" => &[M::Shl, M::Sal, M::Shr, M::Sar, M::Rol, M::Ror, M::Rcl, M::Rcr, M::Shld,
            M::Shrd],
        "muldiv" => &[M::Mul, M::Imul, M::Div, M::Idiv],
        "bit" => &[M::Bt, M::Bts, M::Btr, M::Btc, M::Bsf, M::Bsr, M::Popcnt, M::Lzcnt, M::Tzcnt],
        "bmi" => &[M::Andn, M::Bextr, M::Blsi, M::Blsmsk, M::Blsr, M::Bzhi, M::Mulx, M::Pdep,
            M::Pext, M::Rorx, M::Sarx, M::Shlx, M::Shrx, M::Adcx, M::Adox],
        "data" => &[M::Mov, M::Movzx, M::Movsx, M::Movsxd,
            M::Cmovo, M::Cmovno, M::Cmovb, M::Cmovae, M::Cmove, M::Cmovne, M::Cmovbe, M::Cmova,
            M::Cmovs, M::Cmovns, M::Cmovp, M::Cmovnp, M::Cmovl, M::Cmovge, M::Cmovle, M::Cmovg,
            M::Seto, M::Setno, M::Setb, M::Setae, M::Sete, M::Setne, M::Setbe, M::Seta,
            M::Sets, M::Setns, M::Setp, M::Setnp, M::Setl, M::Setge, M::Setle, M::Setg,
            M::Xchg, M::Bswap, M::Lea, M::Cbw, M::Cwde, M::Cdqe, M::Cwd, M::Cdq, M::Cqo,
            M::Lahf, M::Sahf, M::Cmc, M::Clc, M::Stc, M::Movbe, M::Nop],
        "atomic" => &[M::Cmpxchg, M::Xadd, M::Xchg, M::Cmpxchg8b, M::Cmpxchg16b],
        "stack" => &[M::Push, M::Pop, M::Pushf, M::Pushfq],
        "x87" => &[M::Fadd, M::Faddp, M::Fiadd, M::Fsub, M::Fsubp, M::Fisub, M::Fsubr,
            M::Fsubrp, M::Fisubr, M::Fmul, M::Fmulp, M::Fimul, M::Fdiv, M::Fdivp, M::Fidiv,
            M::Fdivr, M::Fdivrp, M::Fidivr, M::Fsqrt, M::Fabs, M::Fchs, M::Frndint, M::Fscale,
            M::Fxtract, M::Fprem, M::Fprem1, M::Fld, M::Fild, M::Fbld, M::Fst, M::Fstp,
            M::Fist, M::Fistp, M::Fisttp, M::Fbstp, M::Fld1, M::Fldz, M::Fldpi, M::Fldl2e,
            M::Fldl2t, M::Fldlg2, M::Fldln2, M::Fxch, M::Fcmovb, M::Fcmove, M::Fcmovbe,
            M::Fcmovu, M::Fcmovnb, M::Fcmovne, M::Fcmovnbe, M::Fcmovnu, M::Ffree, M::Ffreep,
            M::Fincstp, M::Fdecstp, M::Fcom, M::Fcomp, M::Fcompp, M::Fucom, M::Fucomp,
            M::Fucompp, M::Ficom, M::Ficomp, M::Fcomi, M::Fcomip, M::Fucomi, M::Fucomip,
            M::Ftst, M::Fxam, M::Fninit, M::Fnclex, M::Fldcw, M::Fnstcw, M::Fnstsw, M::Wait,
            M::Fnop],
        "x87trans" => &[M::F2xm1, M::Fyl2x, M::Fyl2xp1, M::Fsin, M::Fcos, M::Fsincos,
            M::Fptan, M::Fpatan, M::Fld, M::Fxch, M::Fchs],
        _ => &[],
    }
}

pub(super) fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_rm
            | K::r32_opcode
            | K::r32_vvvv
            | K::r64_reg
            | K::r64_rm
            | K::r64_opcode
            | K::r64_vvvv
            | K::mem
            | K::al
            | K::cl
            | K::ax
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::st0
            | K::sti_opcode
    )
}

/// The forms of each table group: mnemonic -> codes.
pub(super) fn forms(group: &str) -> &'static BTreeMap<Mnemonic, Vec<Code>> {
    static TABLES: OnceLock<BTreeMap<&'static str, BTreeMap<Mnemonic, Vec<Code>>>> =
        OnceLock::new();
    let t = TABLES.get_or_init(|| {
        let mut t = BTreeMap::new();
        for g in table_groups() {
            let ms = mnemonics(g);
            let mut by: BTreeMap<Mnemonic, Vec<Code>> = BTreeMap::new();
            for code in Code::values() {
                let oc = code.op_code();
                if !oc.is_instruction()
                    || !oc.mode64()
                    || !matches!(code.encoding(), EncodingKind::Legacy | EncodingKind::VEX)
                    || !ms.contains(&code.mnemonic())
                    || !oc.op_kinds().iter().all(|k| supported_kind(*k))
                {
                    continue;
                }
                // VEX forms only for BMI1/BMI2 (iced also lists VEX encodings
                // of TZCNT and friends from other architectures).
                if code.encoding() == EncodingKind::VEX && (g != "bmi" || oc.l() != 0) {
                    continue;
                }
                // Forms the CPU model does not advertise are #UD on nestemu
                // by design (FISTTP until SSE3, for one): left out.
                if !nestemu::interp::features::available(model(), code.cpuid_features()) {
                    continue;
                }
                by.entry(code.mnemonic()).or_default().push(code);
            }
            t.insert(g, by);
        }
        t
    });
    t.get(group).expect("a table group")
}

/// Number of forms in each table group (for the README and tests).
pub fn form_counts() -> Vec<(&'static str, usize)> {
    table_groups()
        .map(|g| (g, forms(g).values().map(Vec::len).sum()))
        .collect()
}

#[rustfmt::skip]
pub(super) const GPR8: [Register; 20] = [
    Register::AL, Register::CL, Register::DL, Register::BL,
    Register::AH, Register::CH, Register::DH, Register::BH,
    Register::SPL, Register::BPL, Register::SIL, Register::DIL,
    Register::R8L, Register::R9L, Register::R10L, Register::R11L,
    Register::R12L, Register::R13L, Register::R14L, Register::R15L,
];

/// The 64-bit register numbered `n` (0 = RAX).
pub fn r64(n: usize) -> Register {
    [
        Register::RAX,
        Register::RCX,
        Register::RDX,
        Register::RBX,
        Register::RSP,
        Register::RBP,
        Register::RSI,
        Register::RDI,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ][n]
}

/// The register of `bits` width numbered `n`.
pub(super) fn reg_of(n: usize, bits: u32) -> Register {
    let full = r64(n);
    match bits {
        64 => full,
        32 => Register::EAX.wrapping_add(full as u32 - Register::RAX as u32),
        16 => Register::AX.wrapping_add(full as u32 - Register::RAX as u32),
        _ => GPR8[if n < 4 { n } else { n + 4 }],
    }
}

trait RegAdd {
    fn wrapping_add(self, n: u32) -> Register;
}

impl RegAdd for Register {
    fn wrapping_add(self, n: u32) -> Register {
        Register::values()
            .nth(self as usize + n as usize)
            .expect("a register")
    }
}

/// The full register of a GPR of any width.
pub(super) fn full(r: Register) -> Register {
    r.full_register()
}

pub(super) fn kind_bits(k: K) -> u32 {
    match k {
        K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al | K::cl => 8,
        K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode | K::ax => 16,
        K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv | K::eax => 32,
        _ => 64,
    }
}

/// The operand width of an instruction's first operand in bits.
pub fn op0_bits(i: &Instruction) -> u32 {
    if i.op0_kind() == iced_x86::OpKind::Memory {
        (i.memory_size().size() * 8) as u32
    } else {
        (i.op0_register().size() * 8) as u32
    }
}

pub(super) fn is_shift(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shld
            | Mnemonic::Shrd
    )
}

pub(super) fn mask_of(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

pub(super) fn is_high8(r: Register) -> bool {
    matches!(r, Register::AH | Register::CH | Register::DH | Register::BH)
}
