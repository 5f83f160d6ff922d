//! The hardware oracle for MMX/SSE: every legacy-encoded instruction nestemu
//! implements runs natively on the host CPU and in the interpreter from the
//! same registers, MXCSR and memory, over random and edge operands (signed
//! zeros, denormals, infinities, SNaN/QNaN payloads, integer-conversion
//! boundaries, every rounding mode, FTZ/DAZ on and off, masked and unmasked
//! exceptions); results, MXCSR, RFLAGS and memory must agree bit for bit.
//!
//! Native execution: the instruction is placed in a small routine in an
//! executable page that loads the state, runs it and stores the state back.
//! An unmasked SIMD exception arrives as SIGFPE; the handler records MXCSR and
//! resumes after the instruction, which is how the test sees #XM.
//!
//! RCPPS/RSQRTPS are implementation-specific (nestemu gives Intel's results;
//! the host may be another vendor's), so for them the test checks the SDM's
//! error bound and special cases instead of bits.
#![cfg(all(target_arch = "x86_64", unix))]
#![allow(unsafe_code)]

mod gen;
mod native;

use gen::{instance, memory, state, Rng};
use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, Encoder, EncodingKind, Instruction, OpKind,
    Register,
};
use native::Native;
use nestemu::cpu::Flags;
use nestemu::interp::sse;
use nestemu::{Event, Machine, MachineConfig};
use std::collections::BTreeMap;

/// The register and flag state one case starts from and ends in.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    xmm: [u128; 16],
    mm: [u64; 8],
    /// RAX, RCX, RDX, RSI, RDI, RBX.
    gpr: [u64; 6],
    mxcsr_in: u32,
    mxcsr_out: u32,
    rflags_out: u64,
    rflags_in: u64,
}

const OFF_MM: i32 = 256;
const OFF_GPR: i32 = 320;
const OFF_MXIN: i32 = 368;
const OFF_MXOUT: i32 = 372;
const OFF_RFOUT: i32 = 376;
const OFF_RFIN: i32 = 384;
const GPRS: [Register; 6] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::RBX,
];
/// Bytes of test memory (RBX and RDI point at it).
const MEM: usize = 256;
/// Where the test memory lives in the guest.
const GUEST_MEM: u64 = 0x1_0000;

/// The status flags.
const STATUS: u64 = 0x8d5;

/// Runs one instruction in the interpreter.
struct Emu {
    m: Machine,
}

impl Emu {
    fn new() -> Self {
        let mut m = Machine::new(MachineConfig {
            mem_bytes: 1 << 20,
            ..Default::default()
        });
        // 64-bit mode with paging off: not an architectural state, but it lets
        // handlers run on flat identity-mapped memory before paging exists.
        let sys = &mut m.cpu.sys;
        sys.cr0 = mmu::Cr0::PE | mmu::Cr0::ET | mmu::Cr0::MP | mmu::Cr0::NE;
        sys.cr4 = mmu::Cr4::OSFXSR | mmu::Cr4::OSXMMEXCPT;
        sys.efer = mmu::Efer::LME | mmu::Efer::LMA;
        sys.segs[mmu::SegReg::Cs as usize] = mmu::SegmentCache::flat(8, 0xb, 0, false, true);
        for s in [mmu::SegReg::Ds, mmu::SegReg::Es, mmu::SegReg::Ss] {
            sys.segs[s as usize] = mmu::SegmentCache::flat(0x10, 0x3, 0, true, false);
        }
        m.cpu.update_mode();
        Self { m }
    }

    /// Returns the event if the instruction raised one.
    fn run(&mut self, st: &mut State, mem: &mut [u8; MEM], insn: &Instruction) -> Option<Event> {
        let m = &mut self.m;
        m.cpu.fpu.xmm = st.xmm;
        for (k, v) in st.mm.iter().enumerate() {
            m.set_mm(k, *v);
        }
        st.gpr[4] = GUEST_MEM;
        st.gpr[5] = GUEST_MEM;
        for (k, r) in GPRS.iter().enumerate() {
            m.write_gpr(*r, st.gpr[k]);
        }
        m.cpu.fpu.mxcsr = st.mxcsr_in;
        m.cpu.flags = Flags::new(st.rflags_in);
        m.load_phys(GUEST_MEM, mem);
        let (h, _) = sse::handler_for(m, insn).expect("a handler");
        let ev = h(m, insn).err();
        st.xmm = m.cpu.fpu.xmm;
        for (k, v) in st.mm.iter_mut().enumerate() {
            *v = m.mm(k);
        }
        for (k, r) in GPRS.iter().enumerate() {
            st.gpr[k] = m.read_gpr(*r);
        }
        st.mxcsr_out = m.cpu.fpu.mxcsr;
        st.rflags_out = m.cpu.rflags();
        m.peek_phys(GUEST_MEM, mem);
        ev
    }
}

/// The report groups instructions by extension (the CPUID feature iced-x86
/// names for the code), and within it by kind.
fn group(code: Code) -> String {
    let ext = match code.cpuid_features().first() {
        Some(CpuidFeature::MMX) => "MMX",
        Some(CpuidFeature::SSE) => "SSE",
        Some(CpuidFeature::SSE2) => "SSE2",
        Some(CpuidFeature::SSE3) => "SSE3",
        Some(CpuidFeature::SSSE3) => "SSSE3",
        Some(CpuidFeature::SSE4_1) => "SSE4.1",
        Some(CpuidFeature::SSE4_2) => "SSE4.2",
        Some(CpuidFeature::PCLMULQDQ) => "PCLMULQDQ",
        _ => "other",
    };
    let n = format!("{code:?}").to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    let mnemonic = n.split('_').next().unwrap_or("");
    let float = !mnemonic.starts_with('p')
        && ["ps", "pd", "ss", "sd"]
            .iter()
            .any(|s| mnemonic.ends_with(s))
        && ![
            "mov", "shuf", "unpck", "blend", "and", "or", "xor", "extract", "insert",
        ]
        .iter()
        .any(|s| mnemonic.starts_with(s));
    let kind = if has("cvt") {
        "conversions"
    } else if has("pcmpestr") || has("pcmpistr") {
        "string compares"
    } else if float {
        "floating point"
    } else {
        "integer, moves, shuffles"
    };
    format!("{ext:9} {kind}")
}

/// True if the bits may legitimately differ between vendors.
fn approximate(code: Code) -> bool {
    matches!(
        code,
        Code::Rcpps_xmm_xmmm128
            | Code::Rcpss_xmm_xmmm32
            | Code::Rsqrtps_xmm_xmmm128
            | Code::Rsqrtss_xmm_xmmm32
    )
}

/// RCP/RSQRT: every lane of the destination must hold the same special
/// value (zero, infinity, NaN) on both sides or values within twice the
/// SDM's bound (1.5 × 2^-12 each) of each other; everything else must match.
fn approx_ok(code: Code, host: &State, emu: &State, insn: &Instruction) -> bool {
    let d = (insn.op0_register() as usize) - Register::XMM0 as usize;
    let lanes = if matches!(code, Code::Rcpss_xmm_xmmm32 | Code::Rsqrtss_xmm_xmmm32) {
        1
    } else {
        4
    };
    for k in 0..lanes {
        let h = f32::from_bits((host.xmm[d] >> (32 * k)) as u32);
        let e = f32::from_bits((emu.xmm[d] >> (32 * k)) as u32);
        if !h.is_normal() || !e.is_normal() {
            if h.to_bits() != e.to_bits() && !(h.is_nan() && e.is_nan()) {
                return false;
            }
            continue;
        }
        if (e as f64 / h as f64 - 1.0).abs() > 3.0 / 4096.0 {
            return false;
        }
    }
    let (mut h2, mut e2) = (*host, *emu);
    h2.xmm[d] = 0;
    e2.xmm[d] = 0;
    h2 == e2
}

#[derive(Default)]
struct Tally {
    cases: u64,
    faults: u64,
    mismatches: u64,
}

/// Every legacy code the interpreter claims, except the few tested apart.
fn codes() -> Vec<Code> {
    let m = Emu::new();
    Code::values()
        .filter(|c| c.encoding() == EncodingKind::Legacy)
        .filter(|&c| {
            let mut i = Instruction::default();
            i.set_code(c);
            sse::handler_for(&m.m, &i).is_some()
        })
        // LDMXCSR faults on reserved bits and changes the host's mode; it is
        // covered by the guest suite and unit tests.
        .filter(|&c| c != Code::Ldmxcsr_m32)
        .collect()
}

fn differential(cases_per_code: u64, unmasked: bool, seed: u64) {
    let mut native = Native::new();
    let mut emu = Emu::new();
    let seed = std::env::var("SSE_HOST_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(seed);
    let mut r = Rng(seed);
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut enc = Encoder::new(64);
    // SSE_HOST_ONLY=substring narrows the run to matching codes,
    // SSE_HOST_CASES=n overrides the case count and SSE_HOST_SEED=hex the
    // seed (for investigations and longer runs).
    let only = std::env::var("SSE_HOST_ONLY").unwrap_or_default();
    let cases_per_code = std::env::var("SSE_HOST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases_per_code);
    for code in codes()
        .into_iter()
        .filter(|c| format!("{c:?}").contains(only.as_str()))
    {
        let name = format!("{code:?}");
        if std::env::var("SSE_HOST_VERBOSE").is_ok() {
            eprintln!("{name}");
        }
        let t = groups.entry(group(code)).or_default();
        for _ in 0..cases_per_code {
            let insn = instance(code, &mut r);
            enc.encode(&insn, 0)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let bytes = enc.take_buffer();
            let decoded = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
            assert_eq!(decoded.code(), code, "{name} round trip");
            native.load(&bytes);
            let st0 = state(&mut r, unmasked);
            let mem0 = memory(&mut r);
            t.cases += 1;
            match compare(&mut native, &mut emu, &decoded, &st0, &mem0) {
                Ok(faulted) => t.faults += faulted as u64,
                Err(e) => {
                    t.mismatches += 1;
                    if failures.len() < 40 {
                        failures.push(e);
                    }
                }
            }
        }
    }
    let mut report = String::new();
    for (g, t) in &groups {
        report += &format!(
            "  {g:32} {:7} cases {:6} #XM {:4} mismatches\n",
            t.cases, t.faults, t.mismatches
        );
    }
    eprintln!("SSE hardware differential (unmasked = {unmasked}):\n{report}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs the loaded instruction natively and `insn` in the interpreter from
/// the same state; `Ok(true)` if both raised #XM alike, `Ok(false)` if both
/// completed alike, otherwise a description of the difference.
fn compare(
    native: &mut Native,
    emu: &mut Emu,
    insn: &Instruction,
    st0: &State,
    mem0: &[u8; MEM],
) -> Result<bool, String> {
    let code = insn.code();
    let (mut hs, mut hm) = (*st0, *mem0);
    let fault = native.run(&mut hs, &mut hm);
    let (mut es, mut em) = (*st0, *mem0);
    let ev = emu.run(&mut es, &mut em, insn);
    // The host's pointers differ from the guest's; RBX/RDI are inputs.
    hs.gpr[4..].copy_from_slice(&es.gpr[4..]);
    let ok = match (fault, &ev) {
        (None, None) => {
            let same_flags = hs.rflags_out & STATUS == es.rflags_out & STATUS;
            if approximate(code) {
                approx_ok(code, &hs, &es, insn) && hm == em && hs.mxcsr_out == es.mxcsr_out
            } else {
                hs.xmm == es.xmm
                    && hs.mm == es.mm
                    && hs.gpr == es.gpr
                    && hs.mxcsr_out == es.mxcsr_out
                    && same_flags
                    && hm == em
            }
        }
        // No destination written; MXCSR holds the recorded flags.
        (Some(mx), Some(Event::Exception(e))) if e.vector == mmu::Vector::XM => {
            mx == es.mxcsr_out && es.xmm == st0.xmm && em == *mem0
        }
        _ => false,
    };
    if ok {
        Ok(fault.is_some())
    } else {
        Err(describe(insn, st0, mem0, &hs, &es, fault, &ev))
    }
}

fn describe(
    insn: &Instruction,
    st0: &State,
    mem0: &[u8; MEM],
    hs: &State,
    es: &State,
    fault: Option<u32>,
    ev: &Option<Event>,
) -> String {
    let mut s = format!("{insn} ({:?}) mxcsr_in {:#x}\n", insn.code(), st0.mxcsr_in);
    let mut regs = Vec::new();
    for n in 0..insn.op_count() {
        if insn.op_kind(n) == OpKind::Register {
            regs.push(insn.op_register(n));
        } else if insn.op_kind(n) == OpKind::Memory {
            let o = insn.memory_displacement64() as usize;
            s += &format!(
                "   mem[{o:#x}] = {:032x}\n",
                u128::from_le_bytes(mem0[o..o + 16].try_into().unwrap())
            );
        }
    }
    for r in regs {
        if r.is_xmm() {
            let k = r as usize - Register::XMM0 as usize;
            s += &format!(
                "   {r:?}: in {:032x} host {:032x} emu {:032x}\n",
                st0.xmm[k], hs.xmm[k], es.xmm[k]
            );
        }
        if r.is_mm() {
            let k = r as usize - Register::MM0 as usize;
            s += &format!(
                "   {r:?}: in {:016x} host {:016x} emu {:016x}\n",
                st0.mm[k], hs.mm[k], es.mm[k]
            );
        }
    }
    s += &format!(
        "   mxcsr host {:#x} emu {:#x}; rflags host {:#x} emu {:#x}; gpr host {:x?} emu {:x?}; host #XM {:x?}, emu {:?}",
        hs.mxcsr_out,
        es.mxcsr_out,
        hs.rflags_out & STATUS,
        es.rflags_out & STATUS,
        &hs.gpr[..4],
        &es.gpr[..4],
        fault,
        ev
    );
    s
}

#[test]
fn masked_exceptions() {
    differential(3000, false, 0x5eed_0001);
}

#[test]
fn unmasked_exceptions() {
    differential(1500, true, 0x5eed_0002);
}

/// binary32 values at the edges: zeros, denormals, around the smallest
/// normal (tininess before/after rounding), around one, the largest finite,
/// infinity, NaNs, halves (ties) and the 32-bit integer limits.
const EDGE_F32: [u32; 24] = [
    0x0000_0000,
    0x0000_0001,
    0x0040_0000,
    0x0040_0001,
    0x007f_ffff,
    0x0080_0000,
    0x0080_0001,
    0x0080_000f,
    0x3f00_0000,
    0x3f7f_fffd,
    0x3f7f_fffe,
    0x3f7f_ffff,
    0x3f80_0000,
    0x3f80_0001,
    0x3fc0_0000,
    0x4020_0000,
    0x4f00_0000,
    0x4eff_ffff,
    0x7f7f_fffe,
    0x7f7f_ffff,
    0x7f80_0000,
    0x7fc0_0001,
    0x7f80_0001,
    0x3400_0000,
];

/// binary64 values at the edges, including those that convert to binary32
/// at its underflow and overflow thresholds.
const EDGE_F64: [u64; 26] = [
    0x0000_0000_0000_0000,
    0x0000_0000_0000_0001,
    0x000f_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x0010_0000_0000_0001,
    0x3fe0_0000_0000_0000,
    0x3fef_ffff_ffff_fffe,
    0x3fef_ffff_ffff_ffff,
    0x3ff0_0000_0000_0000,
    0x3ff0_0000_0000_0001,
    0x3ff8_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
    0x7ff0_0000_0000_0000,
    0x7ff8_0000_0000_0001,
    0x7ff0_0000_0000_0001,
    0x41e0_0000_0000_0000, // 2^31
    0x41df_ffff_ffe0_0000, // 2^31 - 1
    0x41df_ffff_fff0_0000, // 2^31 - 0.5
    0x43e0_0000_0000_0000, // 2^63
    0x380f_ffff_f000_0000, // 2^-126 (1 - 2^-25)
    0x380f_ffff_e000_0000, // 2^-126 (1 - 2^-24)
    0x380f_ffff_efff_ffff, // just below 2^-126 (1 - 2^-25)
    0x36a0_0000_0000_0000, // 2^-149
    0x3690_0000_0000_0000, // 2^-150
    0x47ef_ffff_f000_0000, // the binary32 maximum, rounded up half an ulp
    0x47ef_ffff_efff_ffff, // just below it
];

/// Exhaustive pairs of edge operands for the scalar instructions whose
/// rounding, tininess, overflow, NaN and conversion rules matter most, under
/// every rounding mode, FTZ and DAZ, all exceptions masked or unmasked.
#[test]
fn edge_operands() {
    use iced_x86::code_asm::*;
    let mut native = Native::new();
    let mut emu = Emu::new();
    let mut failures = Vec::new();
    let (mut cases, mut faults) = (0u64, 0u64);
    type Gen = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let f32_ops: [Gen; 11] = [
        |a| a.mulss(xmm0, xmm1),
        |a| a.divss(xmm0, xmm1),
        |a| a.addss(xmm0, xmm1),
        |a| a.subss(xmm0, xmm1),
        |a| a.sqrtss(xmm0, xmm1),
        |a| a.minss(xmm0, xmm1),
        |a| a.cvtss2sd(xmm0, xmm1),
        |a| a.cvtss2si(eax, xmm1),
        |a| a.cvttss2si(rax, xmm1),
        |a| a.roundss(xmm0, xmm1, 4),
        |a| a.comiss(xmm0, xmm1),
    ];
    let f64_ops: [Gen; 9] = [
        |a| a.mulsd(xmm0, xmm1),
        |a| a.divsd(xmm0, xmm1),
        |a| a.addsd(xmm0, xmm1),
        |a| a.sqrtsd(xmm0, xmm1),
        |a| a.maxsd(xmm0, xmm1),
        |a| a.cvtsd2ss(xmm0, xmm1),
        |a| a.cvtsd2si(eax, xmm1),
        |a| a.cvttsd2si(rax, xmm1),
        |a| a.roundsd(xmm0, xmm1, 1),
    ];
    let signed32: Vec<u64> = EDGE_F32
        .iter()
        .flat_map(|&v| [v as u64, (v ^ 0x8000_0000) as u64])
        .collect();
    let signed64: Vec<u64> = EDGE_F64.iter().flat_map(|&v| [v, v ^ (1 << 63)]).collect();
    let mut mxcsrs = Vec::new();
    for rc in 0..4u32 {
        for mode in [0, 0x8000, 0x40, 0x8040] {
            for masks in [0x1f80u32, 0] {
                mxcsrs.push(masks | rc << 13 | mode);
            }
        }
    }
    let groups: [(&[Gen], &[u64]); 2] = [(&f32_ops, &signed32), (&f64_ops, &signed64)];
    for (ops, values) in groups {
        for op in ops {
            let mut a = CodeAssembler::new(64).unwrap();
            op(&mut a).unwrap();
            let bytes = a.assemble(0).unwrap();
            let insn = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
            native.load(&bytes);
            for &x in values {
                for &y in values {
                    for &mx in &mxcsrs {
                        let st = State {
                            xmm: [
                                x as u128, y as u128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            ],
                            mxcsr_in: mx,
                            rflags_in: 0x202,
                            ..State::default()
                        };
                        cases += 1;
                        match compare(&mut native, &mut emu, &insn, &st, &[0; MEM]) {
                            Ok(f) => faults += f as u64,
                            Err(e) if failures.len() < 40 => failures.push(e),
                            Err(_) => {}
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "SSE edge operands: {cases} cases, {faults} #XM, {} mismatches",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
