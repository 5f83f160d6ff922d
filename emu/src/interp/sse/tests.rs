//! Instruction-level tests: the availability checks (CR0.EM/TS, CR4.OSFXSR,
//! CR4.OSXMMEXCPT, pending x87 errors), alignment, the MMX/x87 state
//! interaction, LDMXCSR, and regression cases the hardware oracle found.

use super::handler_for;
use crate::event::Event;
use crate::machine::{Machine, MachineConfig};
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Instruction};
use mmu::{Cr0, Cr4, Efer, SegReg, SegmentCache, Vector};

/// A machine in flat 64-bit mode (paging off: a test-only state) with
/// CR4.OSFXSR and CR4.OSXMMEXCPT set.
fn machine() -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: 1 << 20,
        ..Default::default()
    });
    let sys = &mut m.cpu.sys;
    sys.cr0 = Cr0::PE | Cr0::ET | Cr0::MP | Cr0::NE;
    sys.cr4 = Cr4::OSFXSR | Cr4::OSXMMEXCPT;
    sys.efer = Efer::LME | Efer::LMA;
    sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, false, true);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss] {
        sys.segs[s as usize] = SegmentCache::flat(0x10, 0x3, 0, true, false);
    }
    m.cpu.update_mode();
    m
}

/// Assembles one instruction.
fn insn(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Instruction {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    let bytes = a.assemble(0).unwrap();
    Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode()
}

/// Runs one instruction through the SSE dispatch table.
fn run(m: &mut Machine, i: &Instruction) -> Result<(), Event> {
    let (h, _) = handler_for(m, i).expect("an SSE instruction");
    h(m, i)
}

fn vector(r: Result<(), Event>) -> Option<Vector> {
    match r {
        Ok(()) => None,
        Err(Event::Exception(e)) => Some(e.vector),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn availability_checks() {
    let addps = insn(|a| a.addps(xmm0, xmm1));
    let paddb_mm = insn(|a| a.paddb(mm0, mm1));
    let mut m = machine();
    assert_eq!(vector(run(&mut m, &addps)), None);
    // CR4.OSFXSR = 0: #UD for SSE, MMX unaffected.
    m.cpu.sys.cr4.remove(Cr4::OSFXSR);
    assert_eq!(vector(run(&mut m, &addps)), Some(Vector::UD));
    assert_eq!(vector(run(&mut m, &paddb_mm)), None);
    // CR0.TS = 1: #NM (after the #UD conditions).
    m.cpu.sys.cr0 |= Cr0::TS;
    assert_eq!(vector(run(&mut m, &addps)), Some(Vector::UD));
    assert_eq!(vector(run(&mut m, &paddb_mm)), Some(Vector::NM));
    m.cpu.sys.cr4 |= Cr4::OSFXSR;
    assert_eq!(vector(run(&mut m, &addps)), Some(Vector::NM));
    // CR0.EM = 1: #UD for both.
    m.cpu.sys.cr0 |= Cr0::EM;
    assert_eq!(vector(run(&mut m, &addps)), Some(Vector::UD));
    assert_eq!(vector(run(&mut m, &paddb_mm)), Some(Vector::UD));
}

#[test]
fn pending_x87_error_is_mf_for_mmx() {
    let mut m = machine();
    m.cpu.fpu.fsw = 0x0080; // ES
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.paddb(mm0, mm1)))),
        Some(Vector::MF)
    );
    assert_eq!(vector(run(&mut m, &insn(|a| a.emms()))), Some(Vector::MF));
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.cvtpi2ps(xmm0, mm1)))),
        Some(Vector::MF)
    );
    // SSE instructions that touch no MMX register do not care.
    assert_eq!(vector(run(&mut m, &insn(|a| a.paddb(xmm0, xmm1)))), None);
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.cvtpi2ps(xmm0, qword_ptr(0x100))))),
        None
    );
}

#[test]
fn unmasked_exception_is_xm_or_ud() {
    let mut m = machine();
    m.cpu.fpu.xmm[0] = 1.0f32.to_bits() as u128;
    m.cpu.fpu.xmm[1] = 0;
    m.cpu.fpu.mxcsr = 0x1f80 & !(1 << 9); // ZM clear
    let divss = insn(|a| a.divss(xmm0, xmm1));
    assert_eq!(vector(run(&mut m, &divss)), Some(Vector::XM));
    assert_eq!(m.cpu.fpu.mxcsr & 0x3f, 0x04, "ZE recorded");
    assert_eq!(
        m.cpu.fpu.xmm[0],
        1.0f32.to_bits() as u128,
        "no result written"
    );
    m.cpu.sys.cr4.remove(Cr4::OSXMMEXCPT);
    assert_eq!(vector(run(&mut m, &divss)), Some(Vector::UD));
    // Masked: the result and the flag.
    m.cpu.fpu.mxcsr = 0x1f80;
    assert_eq!(vector(run(&mut m, &divss)), None);
    assert_eq!(m.cpu.fpu.xmm[0] as u32, 0x7f80_0000);
    assert_eq!(m.cpu.fpu.mxcsr, 0x1f84);
}

#[test]
fn alignment() {
    let mut m = machine();
    m.write_gpr(iced_x86::Register::RAX, 0x1008);
    let movaps = insn(|a| a.movaps(xmm0, xmmword_ptr(rax)));
    let movups = insn(|a| a.movups(xmm0, xmmword_ptr(rax)));
    let addss = insn(|a| a.addss(xmm0, dword_ptr(rax)));
    let pcmpistri = insn(|a| a.pcmpistri(xmm0, xmmword_ptr(rax), 0));
    assert_eq!(vector(run(&mut m, &movaps)), Some(Vector::GP));
    assert_eq!(vector(run(&mut m, &movups)), None);
    assert_eq!(vector(run(&mut m, &addss)), None);
    assert_eq!(vector(run(&mut m, &pcmpistri)), None);
    m.write_gpr(iced_x86::Register::RAX, 0x1010);
    assert_eq!(vector(run(&mut m, &movaps)), None);
}

#[test]
fn mmx_state_transitions() {
    let mut m = machine();
    m.cpu.fpu.fsw = 5 << 11; // TOP = 5
    m.cpu.fpu.ftw = 0xffff;
    assert_eq!(vector(run(&mut m, &insn(|a| a.movq(mm3, rax)))), None);
    assert_eq!(m.cpu.fpu.fsw >> 11 & 7, 0, "TOP = 0");
    assert_eq!(m.cpu.fpu.ftw, 0, "all tags valid");
    assert_eq!(m.cpu.fpu.st[3][8..], [0xff, 0xff], "exponent all ones");
    assert_eq!(vector(run(&mut m, &insn(|a| a.emms()))), None);
    assert_eq!(m.cpu.fpu.ftw, 0xffff, "EMMS empties the tags");
    // A memory-source CVTPI2PS touches no MMX register: no transition.
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.cvtpi2ps(xmm0, qword_ptr(0x100))))),
        None
    );
    assert_eq!(m.cpu.fpu.ftw, 0xffff);
    assert_eq!(vector(run(&mut m, &insn(|a| a.cvtpi2ps(xmm0, mm1)))), None);
    assert_eq!(m.cpu.fpu.ftw, 0);
}

#[test]
fn ldmxcsr_reserved_bits() {
    let mut m = machine();
    let ld = insn(|a| a.ldmxcsr(dword_ptr(0x200)));
    m.load_phys(0x200, &0x0001_1f80u32.to_le_bytes());
    assert_eq!(vector(run(&mut m, &ld)), Some(Vector::GP));
    assert_eq!(m.cpu.fpu.mxcsr, 0x1f80);
    m.load_phys(0x200, &0xffffu32.to_le_bytes());
    assert_eq!(vector(run(&mut m, &ld)), None);
    assert_eq!(m.cpu.fpu.mxcsr, 0xffff);
    let st = insn(|a| a.stmxcsr(dword_ptr(0x300)));
    assert_eq!(vector(run(&mut m, &st)), None);
    let mut b = [0u8; 4];
    m.peek_phys(0x300, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0xffff);
}

/// Found by the hardware oracle: DPPS runs its multiplications, pairwise
/// sums and final sum as separate stages. Here the pairwise sums raise
/// masked flags and the final sum an unmasked one; the pairwise stage's
/// flags are recorded in full.
#[test]
fn dpps_stages() {
    let mut m = machine();
    m.cpu.fpu.xmm[13] = 0xff80_0000_8731_c6f5_e4b5_c9d3_ff80_0000;
    m.cpu.fpu.xmm[5] = 0xf2cb_81b5_37f1_77c0_8080_0087_3a7c_c000;
    m.cpu.fpu.mxcsr = 0x1a38;
    let dpps = insn(|a| a.dpps(xmm13, xmm5, 0xd1));
    assert_eq!(vector(run(&mut m, &dpps)), Some(Vector::XM));
    assert_eq!(m.cpu.fpu.mxcsr, 0x1a3a);
}

#[test]
fn scalar_forms_keep_upper_lanes() {
    let mut m = machine();
    m.cpu.fpu.xmm[0] = 0x1111_1111_2222_2222_3333_3333_3f80_0000;
    m.cpu.fpu.xmm[1] = 0x4000_0000;
    assert_eq!(vector(run(&mut m, &insn(|a| a.addss(xmm0, xmm1)))), None);
    assert_eq!(m.cpu.fpu.xmm[0], 0x1111_1111_2222_2222_3333_3333_4040_0000);
    // MOVSS from memory zeroes the upper lanes, between registers it merges.
    m.load_phys(0x400, &0x4080_0000u32.to_le_bytes());
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.movss(xmm0, dword_ptr(0x400))))),
        None
    );
    assert_eq!(m.cpu.fpu.xmm[0], 0x4080_0000);
}

/// CVTPI2PS rounds under MXCSR and keeps the upper half of the destination;
/// CVTPI2PD is exact and writes all of it; each enters the MMX state from a
/// register source only (SDM Vol. 2A CVTPI2PS, CVTPI2PD).
#[test]
fn cvtpi2ps_and_cvtpi2pd() {
    let mut m = machine();
    // 2^24 + 1 is inexact as a single, exact as a double.
    let src = (0x0100_0001u64 << 32) | (-3i32 as u32 as u64);
    m.set_mm(1, src);
    m.load_phys(0x100, &src.to_le_bytes());
    let upper = 0x1111_1111_2222_2222u128 << 64;
    let singles = (16_777_216f32.to_bits() as u128) << 32 | (-3f32).to_bits() as u128;
    let doubles = (16_777_217f64.to_bits() as u128) << 64 | (-3f64).to_bits() as u128;
    // (instruction, XMM0 after, MXCSR after, x87 tags after)
    let cases = [
        (insn(|a| a.cvtpi2ps(xmm0, mm1)), upper | singles, 0x1fa0, 0),
        (
            insn(|a| a.cvtpi2ps(xmm0, qword_ptr(0x100))),
            upper | singles,
            0x1fa0,
            0xffff,
        ),
        (insn(|a| a.cvtpi2pd(xmm0, mm1)), doubles, 0x1f80, 0),
        (
            insn(|a| a.cvtpi2pd(xmm0, qword_ptr(0x100))),
            doubles,
            0x1f80,
            0xffff,
        ),
    ];
    for (i, result, mxcsr, tags) in cases {
        m.cpu.fpu.ftw = 0xffff;
        m.cpu.fpu.mxcsr = 0x1f80;
        m.cpu.fpu.xmm[0] = upper;
        assert_eq!(vector(run(&mut m, &i)), None);
        assert_eq!(m.cpu.fpu.xmm[0], result);
        assert_eq!(m.cpu.fpu.mxcsr, mxcsr, "PE for singles only");
        assert_eq!(m.cpu.fpu.ftw, tags);
    }
    // Precision unmasked: CVTPI2PS faults and leaves the destination, CVTPI2PD
    // does not fault.
    m.cpu.fpu.mxcsr = 0x1f80 & !(1 << 12);
    m.cpu.fpu.xmm[0] = upper;
    assert_eq!(
        vector(run(&mut m, &insn(|a| a.cvtpi2ps(xmm0, mm1)))),
        Some(Vector::XM)
    );
    assert_eq!(m.cpu.fpu.xmm[0], upper);
    assert_eq!(vector(run(&mut m, &insn(|a| a.cvtpi2pd(xmm0, mm1)))), None);
    assert_eq!(m.cpu.fpu.xmm[0], doubles);
}

mod fast_path {
    use super::super::farith::{Add, BinOp, Div, Mul, Sqrt, Sub};
    use super::super::fp::{self, flag, Env, Format, F32, F64};
    use proptest::prelude::*;

    /// The environment in which the fast path may run: round to nearest,
    /// precision masked and already flagged.
    fn env(fast: bool) -> Env {
        let mut e = Env::new(0x1f80 | flag::PE);
        e.fast = fast;
        e
    }

    /// The fast path gives the soft core's result, and the soft core raises
    /// nothing beyond the PE that is already set.
    fn agree<F: Format, O: BinOp>(a: u64, b: u64, soft: fn(&mut Env, u64, u64) -> u64) -> bool {
        let mut fast = env(true);
        let mut slow = env(false);
        let r = O::op::<F>(&mut fast, a, b);
        let s = soft(&mut slow, a, b);
        r == s && fast.flags & !flag::PE == slow.flags & !flag::PE
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn binary32(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (a as u64, b as u64);
            prop_assert!(agree::<F32, Add>(a, b, fp::add::<F32>));
            prop_assert!(agree::<F32, Sub>(a, b, fp::sub::<F32>));
            prop_assert!(agree::<F32, Mul>(a, b, fp::mul::<F32>));
            prop_assert!(agree::<F32, Div>(a, b, fp::div::<F32>));
            prop_assert!(agree::<F32, Sqrt>(a, b, |e, _, y| fp::sqrt::<F32>(e, y)));
        }

        #[test]
        fn binary64(a in any::<u64>(), b in any::<u64>(), near in any::<bool>()) {
            // Half the cases use operands of close exponents, so sums cancel
            // and products stay in range.
            let b = if near { (a & 0xfff0_0000_0000_0000) | (b & 0x000f_ffff_ffff_ffff) } else { b };
            prop_assert!(agree::<F64, Add>(a, b, fp::add::<F64>));
            prop_assert!(agree::<F64, Sub>(a, b, fp::sub::<F64>));
            prop_assert!(agree::<F64, Mul>(a, b, fp::mul::<F64>));
            prop_assert!(agree::<F64, Div>(a, b, fp::div::<F64>));
            prop_assert!(agree::<F64, Sqrt>(a, b, |e, _, y| fp::sqrt::<F64>(e, y)));
        }
    }
}
