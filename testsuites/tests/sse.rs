//! MMX/SSE guest suite: bare-metal cases in protected mode that check what an
//! operating system relies on — CPUID, the CR0/CR4 availability rules (#UD
//! without CR4.OSFXSR, #NM with CR0.TS, #XM or #UD by CR4.OSXMMEXCPT), #GP on a
//! misaligned MOVAPS, LDMXCSR's reserved bits, the MMX/x87 state — and a sample of arithmetic and
//! conversions whose results come back in the case's general registers.

use guestkit::layout::{var, VARS};
use guestkit::{Asm, AsmResult, Program, Record};
use iced_x86::code_asm::*;
use testsuites::{config, run, Outcome};

/// Scratch memory for the cases (inside the kit's VARS page, 16-aligned).
const DATA: u64 = VARS + var::TEST_DATA;
/// A 512-byte FXSAVE area in otherwise unused RAM.
const FXAREA: u64 = 0x80_0000;

const CR4_OSFXSR: i32 = 1 << 9;
const CR4_OSXMMEXCPT: i32 = 1 << 10;
const CR0_TS: i32 = 1 << 3;
const CR0_EM: i32 = 1 << 2;

/// Sets CR4.OSFXSR and CR4.OSXMMEXCPT, clears CR0.EM and CR0.TS, and loads
/// the default MXCSR: the state an OS that supports SSE sets up.
fn enable_sse(a: &mut Asm) -> AsmResult {
    a.mov(eax, cr4)?;
    a.or(eax, CR4_OSFXSR | CR4_OSXMMEXCPT)?;
    a.mov(cr4, eax)?;
    a.mov(eax, cr0)?;
    a.and(eax, !(CR0_TS | CR0_EM))?;
    a.mov(cr0, eax)?;
    a.mov(dword_ptr(DATA), 0x1f80i32)?;
    a.ldmxcsr(dword_ptr(DATA))?;
    a.xor(eax, eax)?;
    Ok(())
}

/// Loads a 32-bit constant into XMM register `x` (low lane; others zero);
/// EBP is the scratch register.
fn load_f32(a: &mut Asm, x: AsmRegisterXmm, v: f32) -> AsmResult {
    a.mov(ebp, v.to_bits() as i32)?;
    a.movd(x, ebp)
}

/// Loads a 64-bit constant into the low lane of `x` through memory.
fn load_f64(a: &mut Asm, x: AsmRegisterXmm, v: f64) -> AsmResult {
    let b = v.to_bits();
    a.mov(dword_ptr(DATA + 0x40), b as u32 as i32)?;
    a.mov(dword_ptr(DATA + 0x44), (b >> 32) as u32 as i32)?;
    a.movq(x, qword_ptr(DATA + 0x40))
}

/// Stores MXCSR into EDI.
fn mxcsr_to_edi(a: &mut Asm) -> AsmResult {
    a.stmxcsr(dword_ptr(DATA + 0x80))?;
    a.mov(edi, dword_ptr(DATA + 0x80))
}

fn program() -> Program {
    let mut p = Program::new();

    p.prot_case("cpuid advertises the set", |a| {
        a.mov(eax, 1i32)?;
        a.cpuid()
    });
    p.prot_case("sse without osfxsr is ud", |a| {
        enable_sse(a)?;
        a.mov(eax, cr4)?;
        a.and(eax, !CR4_OSFXSR)?;
        a.mov(cr4, eax)?;
        a.addps(xmm0, xmm1)
    });
    p.prot_case("mmx without osfxsr runs", |a| {
        enable_sse(a)?;
        a.mov(eax, cr4)?;
        a.and(eax, !CR4_OSFXSR)?;
        a.mov(cr4, eax)?;
        a.mov(eax, 0x0102_0304i32)?;
        a.movd(mm0, eax)?;
        a.paddb(mm0, mm0)?;
        a.movd(eax, mm0)?;
        a.emms()
    });
    p.prot_case("cr0.em is ud", |a| {
        enable_sse(a)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_EM)?;
        a.mov(cr0, eax)?;
        a.pxor(mm0, mm0)
    });
    p.prot_case("cr0.ts is nm", |a| {
        enable_sse(a)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_TS)?;
        a.mov(cr0, eax)?;
        a.mulps(xmm0, xmm1)
    });
    p.prot_case("unmasked zero divide is xm", |a| {
        enable_sse(a)?;
        a.mov(dword_ptr(DATA), 0x1f80 & !(1 << 9))?;
        a.ldmxcsr(dword_ptr(DATA))?;
        load_f32(a, xmm0, 1.0)?;
        a.xorps(xmm1, xmm1)?;
        a.divss(xmm0, xmm1)
    });
    p.prot_case("xm without osxmmexcpt is ud", |a| {
        enable_sse(a)?;
        a.mov(eax, cr4)?;
        a.and(eax, !CR4_OSXMMEXCPT)?;
        a.mov(cr4, eax)?;
        a.mov(dword_ptr(DATA), 0x1f80 & !(1 << 9))?;
        a.ldmxcsr(dword_ptr(DATA))?;
        load_f32(a, xmm0, 1.0)?;
        a.xorps(xmm1, xmm1)?;
        a.divss(xmm0, xmm1)
    });
    p.prot_case("flags of the faulting divide", |a| {
        // After the #XM case: MXCSR kept ZE, XMM0 still 1.0.
        a.stmxcsr(dword_ptr(DATA + 0x80))?;
        a.mov(edi, dword_ptr(DATA + 0x80))?;
        a.movd(eax, xmm0)
    });
    p.prot_case("misaligned movaps is gp", |a| {
        enable_sse(a)?;
        a.movaps(xmm0, xmmword_ptr(DATA + 8))
    });
    p.prot_case("misaligned movups is fine", |a| {
        enable_sse(a)?;
        a.mov(dword_ptr(DATA + 8), 0x1234_5678i32)?;
        a.movups(xmm0, xmmword_ptr(DATA + 8))?;
        a.movd(eax, xmm0)
    });
    p.prot_case("ldmxcsr reserved bit is gp", |a| {
        enable_sse(a)?;
        a.mov(dword_ptr(DATA), 0x0002_1f80i32)?;
        a.ldmxcsr(dword_ptr(DATA))
    });
    p.prot_case("mmx makes the x87 transition", |a| {
        enable_sse(a)?;
        a.fninit()?;
        a.fld1()?; // TOP = 7, one register in use
        a.movq(mm1, mm2)?; // TOP = 0, every tag valid
        a.fxsave(ptr(FXAREA))?;
        a.movzx(eax, byte_ptr(FXAREA + 4))?; // abridged tag word
        a.movzx(ebx, word_ptr(FXAREA + 2))?; // FSW
        a.emms()?; // every tag empty
        a.fxsave(ptr(FXAREA))?;
        a.movzx(ecx, byte_ptr(FXAREA + 4))
    });
    p.prot_case("single precision", |a| {
        enable_sse(a)?;
        // sqrt(2 * 1.5 + 6) = 3; 1/3 rounds; 3 → int.
        load_f32(a, xmm0, 2.0)?;
        load_f32(a, xmm1, 1.5)?;
        a.mulss(xmm0, xmm1)?;
        load_f32(a, xmm2, 6.0)?;
        a.addss(xmm0, xmm2)?;
        a.sqrtss(xmm0, xmm0)?;
        a.cvttss2si(edx, xmm0)?;
        load_f32(a, xmm3, 1.0)?;
        a.divss(xmm3, xmm0)?;
        a.movd(ebx, xmm3)?;
        mxcsr_to_edi(a)
    });
    p.prot_case("double precision and rounding control", |a| {
        enable_sse(a)?;
        load_f64(a, xmm0, 2.5)?;
        a.cvtsd2si(eax, xmm0)?; // nearest even: 2
        a.mov(dword_ptr(DATA), 0x7f80i32)?; // round toward zero (RC = 3)
        a.ldmxcsr(dword_ptr(DATA))?;
        load_f64(a, xmm1, -2.75)?;
        a.cvtsd2si(ebx, xmm1)?; // -2
        a.mov(dword_ptr(DATA), 0x3f80i32)?; // round down (RC = 1)
        a.ldmxcsr(dword_ptr(DATA))?;
        a.cvtsd2si(ecx, xmm1)?; // -3
        load_f64(a, xmm2, 1e300)?;
        a.mulsd(xmm2, xmm2)?; // overflow, rounding down: largest finite
        a.movq(qword_ptr(DATA + 0x40), xmm2)?;
        a.mov(edx, dword_ptr(DATA + 0x44))?;
        mxcsr_to_edi(a)
    });
    p.prot_case("nan rules and indefinites", |a| {
        enable_sse(a)?;
        a.mov(eax, 0x7f80_0001i32)?; // SNaN
        a.movd(xmm0, eax)?;
        a.mov(eax, 0x7fc0_0002i32)?; // QNaN
        a.movd(xmm1, eax)?;
        a.addss(xmm0, xmm1)?; // first operand's NaN, quieted
        a.movd(eax, xmm0)?;
        a.xorps(xmm2, xmm2)?;
        a.mulss(xmm2, xmm1)?; // 0 * QNaN: the QNaN
        a.pcmpeqd(xmm3, xmm3)?;
        a.psrld(xmm3, 9)?; // 007fffffH: a denormal
        a.cvtdq2ps(xmm4, xmm3)?;
        a.cvttps2dq(xmm5, xmm1)?; // NaN: integer indefinite
        a.movd(ebx, xmm5)?;
        a.xorps(xmm6, xmm6)?;
        a.subss(xmm6, xmm6)?;
        a.sqrtss(xmm6, xmm6)?;
        load_f32(a, xmm7, -1.0)?;
        a.sqrtss(xmm7, xmm7)?; // invalid: the QNaN indefinite
        a.movd(ecx, xmm7)?;
        mxcsr_to_edi(a)
    });
    p.prot_case("ftz and daz", |a| {
        enable_sse(a)?;
        a.mov(dword_ptr(DATA), 0x1f80 | 0x8000 | 0x40)?;
        a.ldmxcsr(dword_ptr(DATA))?;
        a.mov(eax, 1i32)?; // smallest denormal
        a.movd(xmm0, eax)?;
        load_f32(a, xmm1, 1.0)?;
        a.addss(xmm1, xmm0)?; // DAZ: exactly 1.0, no DE, no PE
        a.movd(eax, xmm1)?;
        a.mov(ebx, 0x0080_0000i32)?; // smallest normal
        a.movd(xmm2, ebx)?;
        load_f32(a, xmm3, 0.5)?;
        a.mulss(xmm2, xmm3)?; // tiny: flushed to +0 with UE, PE
        a.movd(ebx, xmm2)?;
        mxcsr_to_edi(a)
    });
    p.prot_case("comiss and ucomiss", |a| {
        enable_sse(a)?;
        load_f32(a, xmm0, 1.0)?;
        load_f32(a, xmm1, 2.0)?;
        a.comiss(xmm0, xmm1)?; // less: CF
        a.pushfd()?;
        a.pop(ebx)?;
        a.mov(eax, 0x7fc0_0000i32)?;
        a.movd(xmm2, eax)?;
        a.ucomiss(xmm2, xmm1)?; // unordered, quiet: ZF PF CF, no IE
        a.pushfd()?;
        a.pop(ecx)?;
        mxcsr_to_edi(a)
    });
    p.prot_case("integer sample", |a| {
        enable_sse(a)?;
        // PSHUFB reverses bytes; PMADDWD; PSADBW; PCMPISTRI finds 'l'.
        for (k, v) in [0x0302_0100u32, 0x0706_0504, 0x0b0a_0908, 0x0f0e_0d0c]
            .iter()
            .enumerate()
        {
            a.mov(dword_ptr(DATA + 4 * k as u64), *v as i32)?;
        }
        a.movdqa(xmm0, xmmword_ptr(DATA))?;
        a.pcmpeqb(xmm1, xmm1)?;
        a.pxor(xmm2, xmm2)?;
        a.psubb(xmm2, xmm1)?; // all bytes 1
        a.pmaddwd(xmm2, xmm2)?; // 0101H * 0101H * 2 = 00020402H
        a.movd(ebx, xmm2)?;
        a.pxor(xmm3, xmm3)?;
        a.psadbw(xmm3, xmm0)?; // 0 + 1 + ... + 7 = 28
        a.movd(ecx, xmm3)?;
        for (k, s) in [b"hell", b"o wo", b"rld\0", b"\0\0\0\0"].iter().enumerate() {
            a.mov(
                dword_ptr(DATA + 0x20 + 4 * k as u64),
                u32::from_le_bytes(**s) as i32,
            )?;
        }
        a.mov(eax, i32::from(b'l'))?;
        a.movd(xmm4, eax)?;
        a.pcmpistri(xmm4, xmmword_ptr(DATA + 0x20), 0)?; // first 'l': 2
        a.mov(edx, ecx)?;
        a.movd(ecx, xmm3)?;
        a.pshufd(xmm5, xmm0, 0x1b)?;
        a.movd(eax, xmm5)?; // dword 3
        a.mov(esi, 0xffff_ffffu32 as i32)?;
        a.crc32(esi, byte_ptr(DATA))
    });
    long_cases(&mut p);
    p
}

/// Long-mode cases: XMM8-XMM15, REX.W forms and RIP-relative operands,
/// the exception rules again under paging.
fn long_cases(p: &mut Program) {
    p.long_case("long: high registers and 64-bit forms", |a| {
        enable_sse64(a)?;
        a.mov(rax, -3i64)?;
        a.cvtsi2sd(xmm8, rax)?; // -3.0
        a.mov(rcx, 0x4000_0000_0000_0000i64)?; // 2.0
        a.movq(xmm15, rcx)?;
        a.mulsd(xmm8, xmm15)?; // -6.0
        a.cvttsd2si(rdx, xmm8)?;
        a.movq(rbx, xmm8)?;
        a.mov(rsi, 0x1122_3344_5566_7788i64)?;
        a.pinsrq(xmm9, rsi, 1)?;
        a.pextrq(rdi, xmm9, 1)?;
        a.mov(r8, -1i64)?;
        a.crc32(r8, r8)?;
        a.stmxcsr(dword_ptr(DATA + 0x80))?;
        a.mov(r9d, dword_ptr(DATA + 0x80))
    });
    p.long_case("long: rip-relative operand", |a| {
        enable_sse64(a)?;
        let mut data = a.label();
        let mut over = a.label();
        a.movups(xmm10, xmmword_ptr(data.l))?;
        a.movq(rax, xmm10)?;
        a.jmp(over.l)?;
        a.set(&mut data)?;
        a.dq(&[0x0123_4567_89ab_cdef, 0])?;
        a.set(&mut over)?;
        a.nop()
    });
    p.long_case("long: misaligned movdqa is gp", |a| {
        enable_sse64(a)?;
        a.mov(rax, (DATA + 4) as i64)?;
        a.movdqa(xmm11, xmmword_ptr(rax))
    });
    p.long_case("long: cr0.ts is nm", |a| {
        enable_sse64(a)?;
        a.mov(rax, cr0)?;
        a.or(rax, CR0_TS)?;
        a.mov(cr0, rax)?;
        a.pxor(xmm12, xmm12)
    });
    p.long_case("long: unmasked invalid is xm", |a| {
        enable_sse64(a)?;
        a.mov(dword_ptr(DATA), 0x1f80 & !(1 << 7))?;
        a.ldmxcsr(dword_ptr(DATA))?;
        a.xorps(xmm13, xmm13)?;
        a.divps(xmm13, xmm13) // 0/0
    });
}

/// [`enable_sse`] for 64-bit code.
fn enable_sse64(a: &mut Asm) -> AsmResult {
    a.mov(rax, cr4)?;
    a.or(rax, CR4_OSFXSR | CR4_OSXMMEXCPT)?;
    a.mov(cr4, rax)?;
    a.mov(rax, cr0)?;
    a.and(rax, !(CR0_TS | CR0_EM))?;
    a.mov(cr0, rax)?;
    a.mov(dword_ptr(DATA), 0x1f80i32)?;
    a.ldmxcsr(dword_ptr(DATA))?;
    a.xor(eax, eax)
}

fn outcome() -> Outcome {
    let o = run(&program(), config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    o
}

fn exception(r: &Record) -> Option<u8> {
    r.exception.map(|e| e.0)
}

#[test]
fn sse_guest_suite() {
    let o = outcome();
    let rec = |n: &str| o.record(n);

    let r = rec("cpuid advertises the set");
    let (leaf1_ecx, leaf1_edx) = (r.gprs[1] as u32, r.gprs[2] as u32);
    for bit in [23, 25, 26] {
        assert_ne!(
            leaf1_edx & (1 << bit),
            0,
            "CPUID.1:EDX[{bit}] (MMX, SSE, SSE2)"
        );
    }
    for bit in [0, 1, 9, 19, 20] {
        assert_ne!(
            leaf1_ecx & (1 << bit),
            0,
            "CPUID.1:ECX[{bit}] (SSE3, PCLMULQDQ, SSSE3, SSE4.1/4.2)"
        );
    }
    assert_eq!(leaf1_ecx & (1 << 28), 0, "no AVX");

    assert_eq!(exception(rec("sse without osfxsr is ud")), Some(6));
    let r = rec("mmx without osfxsr runs");
    assert_eq!(exception(r), None);
    assert_eq!(r.gprs[0] as u32, 0x0204_0608);
    assert_eq!(exception(rec("cr0.em is ud")), Some(6));
    assert_eq!(exception(rec("cr0.ts is nm")), Some(7));
    assert_eq!(exception(rec("unmasked zero divide is xm")), Some(19));
    assert_eq!(exception(rec("xm without osxmmexcpt is ud")), Some(6));
    let r = rec("flags of the faulting divide");
    assert_eq!(r.gprs[7] as u32 & 0x3f, 0x04, "ZE");
    assert_eq!(r.gprs[0] as u32, 1.0f32.to_bits(), "destination unchanged");
    let r = rec("misaligned movaps is gp");
    assert_eq!(r.exception.map(|e| (e.0, e.1)), Some((13, 0)));
    assert_eq!(rec("misaligned movups is fine").gprs[0] as u32, 0x1234_5678);
    assert_eq!(exception(rec("ldmxcsr reserved bit is gp")), Some(13));

    let r = rec("mmx makes the x87 transition");
    assert_eq!(exception(r), None);
    assert_eq!(r.gprs[0], 0xff, "all tags valid after MOVQ");
    assert_eq!(r.gprs[3] >> 11 & 7, 0, "TOP = 0");
    assert_eq!(r.gprs[1], 0, "all tags empty after EMMS");

    let r = rec("single precision");
    assert_eq!(r.gprs[2], 3);
    assert_eq!(r.gprs[3] as u32, (1.0f32 / 3.0).to_bits());
    assert_eq!(r.gprs[7] as u32, 0x1f80 | 0x20, "PE only");

    let r = rec("double precision and rounding control");
    assert_eq!(r.gprs[0] as i32, 2);
    assert_eq!(r.gprs[3] as i32, -2);
    assert_eq!(r.gprs[1] as i32, -3);
    assert_eq!(
        r.gprs[2] as u32, 0x7fef_ffff,
        "largest finite when rounding down"
    );
    assert_eq!(r.gprs[7] as u32 & 0x3f, 0x28, "OE PE");

    let r = rec("nan rules and indefinites");
    assert_eq!(r.gprs[0] as u32, 0x7fc0_0001);
    assert_eq!(r.gprs[3] as u32, 0x8000_0000);
    assert_eq!(r.gprs[1] as u32, 0xffc0_0000);
    assert_eq!(
        r.gprs[7] as u32 & 0x3f,
        0x01,
        "IE (and nothing from the denormal source of an integer conversion)"
    );

    let r = rec("ftz and daz");
    assert_eq!(r.gprs[0] as u32, 1.0f32.to_bits());
    assert_eq!(r.gprs[3] as u32, 0);
    assert_eq!(r.gprs[7] as u32 & 0x3f, 0x30, "UE PE");

    let r = rec("comiss and ucomiss");
    assert_eq!(r.gprs[3] & 0x8d5, 0x001, "CF");
    assert_eq!(r.gprs[1] & 0x8d5, 0x045, "ZF PF CF");
    assert_eq!(r.gprs[7] as u32 & 0x3f, 0, "no IE for a quiet compare");

    let r = rec("integer sample");
    assert_eq!(exception(r), None);
    assert_eq!(r.gprs[3] as u32, 0x0002_0402, "PMADDWD");
    assert_eq!(r.gprs[1] as u32, 28, "PSADBW");
    assert_eq!(r.gprs[2] as u32, 2, "PCMPISTRI");
    assert_eq!(r.gprs[0] as u32, 0x0f0e_0d0c, "PSHUFD");
    let crc = nestemu_crc(0xffff_ffff, 0x00);
    assert_eq!(r.gprs[6] as u32, crc, "CRC32");

    let r = rec("long: high registers and 64-bit forms");
    assert_eq!(exception(r), None);
    assert_eq!(r.gprs[2] as i64, -6);
    assert_eq!(r.gprs[3], (-6.0f64).to_bits());
    assert_eq!(r.gprs[7], 0x1122_3344_5566_7788);
    let crc = (0..8).fold(0xffff_ffffu32, |c, _| nestemu_crc(c, 0xff));
    assert_eq!(r.gprs[8], crc as u64, "CRC32 r64 zero-extends");
    assert_eq!(r.gprs[9] as u32, 0x1f80, "all exact");
    let r = rec("long: rip-relative operand");
    assert_eq!(exception(r), None);
    assert_eq!(r.gprs[0], 0x0123_4567_89ab_cdef);
    let r = rec("long: misaligned movdqa is gp");
    assert_eq!(r.exception.map(|e| (e.0, e.1)), Some((13, 0)));
    assert_eq!(exception(rec("long: cr0.ts is nm")), Some(7));
    assert_eq!(exception(rec("long: unmasked invalid is xm")), Some(19));
}

/// CRC-32C of one byte, bit by bit (the reference for the CRC32 case).
fn nestemu_crc(mut c: u32, b: u8) -> u32 {
    c ^= b as u32;
    for _ in 0..8 {
        c = if c & 1 != 0 {
            (c >> 1) ^ 0x82f6_3b78
        } else {
            c >> 1
        };
    }
    c
}
