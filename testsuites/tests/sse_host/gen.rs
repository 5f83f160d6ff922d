//! Random and edge-case operands: register values, memory, MXCSR, and
//! instances of an instruction built from the operand tokens of its name.

use super::{State, MEM, STATUS};
use iced_x86::{Code, Instruction, OpKind, Register};

pub use testsuites::rng::Rng;

/// An interesting binary32 value.
fn f32_value(r: &mut Rng) -> u32 {
    let s = (r.next() as u32) & 0x8000_0000;
    let frac = r.next() as u32 & 0x7f_ffff;
    let v = match r.below(16) {
        0 => 0,
        1 => 1 + r.below(0x7f_ffff) as u32,          // denormal
        2 => 0x7f80_0000,                            // infinity
        3 => 0x7fc0_0000 | (frac & 0x3f_ffff),       // QNaN
        4 => 0x7f80_0000 | (1 + (frac & 0x3f_fffe)), // SNaN
        5 => 0x0080_0000 | (frac & 0xff),            // near the smallest normal
        6 => 0x7f7f_ffff - (r.below(4) as u32),      // near the largest
        7 => r.pick(&[
            0x4f00_0000,
            0x4eff_ffff,
            0x5f00_0000,
            0x5eff_ffff,
            0x4f00_0001,
        ]), // int limits
        8 => (r.pick(&[0x3f00_0000u32, 0x3fc0_0000, 0x4020_0000, 0x3e80_0000])) | (frac & 1), // halves
        9 => (0x3f80_0000 + r.below(0x100_0000) as u32) & 0x7fff_ffff, // near 1
        10 => (r.below(40) as u32 + 0x60) << 23 | frac,                // products that underflow
        11 => (r.below(40) as u32 + 0xc0) << 23 | frac,                // products that overflow
        _ => (r.below(0xfe) as u32 + 1) << 23 | frac,
    };
    s | v
}

/// An interesting binary64 value.
fn f64_value(r: &mut Rng) -> u64 {
    let s = r.next() & (1 << 63);
    let frac = r.next() & ((1 << 52) - 1);
    let v = match r.below(16) {
        0 => 0,
        1 => 1 + r.below((1 << 52) - 1),
        2 => 0x7ff0_0000_0000_0000,
        3 => 0x7ff8_0000_0000_0000 | (frac & ((1 << 51) - 1)),
        4 => 0x7ff0_0000_0000_0000 | (1 + (frac & ((1 << 51) - 2))),
        5 => 0x0010_0000_0000_0000 | (frac & 0xff),
        6 => 0x7fef_ffff_ffff_ffff - r.below(4),
        7 => r.pick(&[
            0x41e0_0000_0000_0000,
            0x41df_ffff_ffe0_0000,
            0x41df_ffff_fff0_0000,
            0x41e0_0000_0010_0000,
            0x43e0_0000_0000_0000,
            0x43df_ffff_ffff_ffff,
            0xc1e0_0000_0020_0000,
        ]),
        8 => {
            r.pick(&[
                0x3fe0_0000_0000_0000u64,
                0x3ff8_0000_0000_0000,
                0x4004_0000_0000_0000,
            ]) | (frac & 1)
        }
        9 => 0x3ff0_0000_0000_0000 + r.below(1 << 53),
        10 => (r.below(300) + 0x100) << 52 | frac,
        11 => (r.below(300) + 0x600) << 52 | frac,
        12 => (r.below(60) + 0x370) << 52 | frac, // converts to binary32 denormals
        13 => (r.below(20) + 0x47e) << 52 | frac, // converts to binary32 overflow
        _ => (r.below(0x7fe) + 1) << 52 | frac,
    };
    s | v
}

/// An interesting 32-bit integer.
fn i32_value(r: &mut Rng) -> u32 {
    match r.below(6) {
        0 => r.pick(&[0u32, 1, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff, 0x0100_0001]),
        1 => r.below(0x100) as u32,
        2 => (r.next() as u32) >> r.below(32),
        _ => r.next() as u32,
    }
}

/// A random 128-bit register value of one flavour.
fn vector(r: &mut Rng) -> u128 {
    match r.below(5) {
        0 | 1 => (0..4).fold(0u128, |acc, k| acc | (f32_value(r) as u128) << (32 * k)),
        2 | 3 => (f64_value(r) as u128) << 64 | f64_value(r) as u128,
        _ => (0..4).fold(0u128, |acc, k| acc | (i32_value(r) as u128) << (32 * k)),
    }
}

/// Fills a 64-bit GPR value: small lengths for PCMPESTRx, integers.
fn gpr_value(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => (r.below(41) as i64 - 20) as u64,
        1 => i32_value(r) as i32 as i64 as u64,
        2 => r.pick(&[
            0u64,
            1,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            1 << 53,
            (1 << 53) + 1,
        ]),
        _ => r.next(),
    }
}

/// A memory operand `[rbx + disp]` (16-byte aligned).
fn mem_operand(insn: &mut Instruction, n: u32, r: &mut Rng) {
    insn.set_op_kind(n, OpKind::Memory);
    insn.set_memory_base(Register::RBX);
    insn.set_memory_index(Register::None);
    insn.set_memory_index_scale(1);
    let disp = 16 * r.below((MEM / 16 - 1) as u64);
    insn.set_memory_displacement64(disp);
    insn.set_memory_displ_size(1);
}

/// Builds an instance of `code` with random operands chosen from the operand
/// tokens of its name (e.g. `Addps_xmm_xmmm128`).
pub fn instance(code: Code, r: &mut Rng) -> Instruction {
    let name = format!("{code:?}");
    let mut insn = Instruction::default();
    insn.set_code(code);
    if matches!(
        code,
        Code::Maskmovq_rDI_mm_mm | Code::Maskmovdqu_rDI_xmm_xmm
    ) {
        let (a, b) = if code == Code::Maskmovq_rDI_mm_mm {
            (
                Register::MM0 as u32 + r.below(8) as u32,
                Register::MM0 as u32 + r.below(8) as u32,
            )
        } else {
            (
                Register::XMM0 as u32 + r.below(16) as u32,
                Register::XMM0 as u32 + r.below(16) as u32,
            )
        };
        let reg = |v: u32| Register::values().nth(v as usize).unwrap();
        return if code == Code::Maskmovq_rDI_mm_mm {
            Instruction::with_maskmovq(64, reg(a), reg(b), Register::None)
        } else {
            Instruction::with_maskmovdqu(64, reg(a), reg(b), Register::None)
        }
        .unwrap();
    }
    let regs = |base: Register, n: u64, r: &mut Rng| -> Register {
        Register::values()
            .nth(base as usize + r.below(n) as usize)
            .unwrap()
    };
    let gpr32 = [Register::EAX, Register::ECX, Register::EDX, Register::ESI];
    let gpr64 = [Register::RAX, Register::RCX, Register::RDX, Register::RSI];
    let gpr16 = [Register::AX, Register::CX, Register::DX, Register::SI];
    let gpr8 = [Register::AL, Register::CL, Register::DL, Register::SIL];
    for (n, tok) in name.split('_').skip(1).enumerate() {
        let n = n as u32;
        let mem_or = |insn: &mut Instruction, r: &mut Rng, reg: Register| {
            if r.chance(40) {
                mem_operand(insn, n, r);
            } else {
                insn.set_op_register(n, reg);
            }
        };
        match tok {
            "xmm" => insn.set_op_register(n, regs(Register::XMM0, 16, r)),
            "mm" => insn.set_op_register(n, regs(Register::MM0, 8, r)),
            "xmmm128" | "xmmm64" | "xmmm32" | "xmmm16" => {
                let x = regs(Register::XMM0, 16, r);
                mem_or(&mut insn, r, x)
            }
            "mmm64" | "mmm32" => {
                let x = regs(Register::MM0, 8, r);
                mem_or(&mut insn, r, x)
            }
            "r32" => insn.set_op_register(n, r.pick(&gpr32)),
            "r64" => insn.set_op_register(n, r.pick(&gpr64)),
            "rm32" | "r32m8" | "r32m16" => {
                let x = r.pick(&gpr32);
                mem_or(&mut insn, r, x)
            }
            "rm64" | "r64m8" | "r64m16" | "r64m32" => {
                let x = r.pick(&gpr64);
                mem_or(&mut insn, r, x)
            }
            "rm16" => {
                let x = r.pick(&gpr16);
                mem_or(&mut insn, r, x)
            }
            "rm8" => {
                let x = r.pick(&gpr8);
                mem_or(&mut insn, r, x)
            }
            "m32" | "m64" | "m128" => mem_operand(&mut insn, n, r),
            "imm8" => {
                insn.set_op_kind(n, OpKind::Immediate8);
                insn.set_immediate8(r.next() as u8);
            }
            other => panic!("operand token {other} of {name}"),
        }
    }
    insn
}

/// Random test memory: a mix of float and integer data.
pub fn memory(r: &mut Rng) -> [u8; MEM] {
    let mut m = [0u8; MEM];
    for c in m.chunks_mut(16) {
        c.copy_from_slice(&vector(r).to_le_bytes());
    }
    m
}

/// A random starting state. `unmasked` allows unmasked exceptions.
pub fn state(r: &mut Rng, unmasked: bool) -> State {
    let mut st = State::default();
    for x in st.xmm.iter_mut() {
        *x = vector(r);
    }
    // Equal and opposite operands make the comparisons and cancellations.
    if r.chance(15) {
        let (a, b) = (r.below(16) as usize, r.below(16) as usize);
        st.xmm[b] = if r.chance(50) {
            st.xmm[a]
        } else {
            st.xmm[a] ^ 0x8000_0000_8000_0000_8000_0000_8000_0000
        };
    }
    for x in st.mm.iter_mut() {
        *x = vector(r) as u64;
    }
    for g in st.gpr.iter_mut() {
        *g = gpr_value(r);
    }
    let mut mx = 0x1f80u32;
    mx |= (r.below(4) as u32) << 13;
    if r.chance(25) {
        mx |= 1 << 15;
    }
    if r.chance(25) {
        mx |= 1 << 6;
    }
    if r.chance(50) {
        mx |= r.below(64) as u32;
    }
    if unmasked {
        mx &= !((r.below(64) as u32) << 7);
    }
    st.mxcsr_in = mx;
    st.rflags_in = 0x202 | (r.next() & STATUS);
    st
}
