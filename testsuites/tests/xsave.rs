//! The XSAVE feature set end to end (SDM Vol. 1 chapter 13): CPUID leaf 0DH,
//! XGETBV/XSETBV and their faults, the standard and compacted formats of
//! XSAVE, XSAVEOPT, XSAVEC and XSAVES, the header checks of XRSTOR and
//! XRSTORS, initialization of components, IA32_XSS, and XGETBV with ECX = 1.

use guestkit::layout::{var, VARS};
use guestkit::rt64::abs;
use guestkit::{enter_user, Asm, AsmResult, Program, Record};
use iced_x86::code_asm::*;
use testsuites::{config, run, Outcome};

/// Scratch memory (inside the kit's VARS page).
const DATA: u64 = VARS + var::TEST_DATA;
/// A 64-byte-aligned XSAVE area in otherwise unused, identity-mapped RAM.
const AREA: u64 = 0x90_0000;
/// A second area, for comparisons.
const AREA2: u64 = 0x90_1000;
/// An area of initial state.
const INIT_AREA: u64 = 0x90_2000;

const CR4_OSFXSR: i32 = 1 << 9;
const CR4_OSXMMEXCPT: i32 = 1 << 10;
const CR4_OSXSAVE: i32 = 1 << 18;
const CR0_TS: i32 = 1 << 3;
const CR0_EM: i32 = 1 << 2;
const IA32_XSS: i32 = 0xda0;
const SENTINEL: u64 = 0xaaaa_aaaa_aaaa_aaaa;

/// CR4.OSFXSR, OSXMMEXCPT and OSXSAVE on, CR0.TS/EM off, MXCSR 1F80H,
/// XCR0 = x87 | SSE.
fn enable(a: &mut Asm) -> AsmResult {
    a.mov(rax, cr4)?;
    a.or(rax, CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE)?;
    a.mov(cr4, rax)?;
    a.mov(rax, cr0)?;
    a.and(rax, !(CR0_TS | CR0_EM))?;
    a.mov(cr0, rax)?;
    a.mov(dword_ptr(DATA), 0x1f80i32)?;
    a.ldmxcsr(dword_ptr(DATA))?;
    a.xor(ecx, ecx)?;
    a.xor(edx, edx)?;
    a.mov(eax, 3i32)?;
    a.xsetbv()
}

/// Fills `len` bytes at `at` with `byte`.
fn fill(a: &mut Asm, at: u64, len: u32, byte: u8) -> AsmResult {
    a.mov(edi, at as u32)?;
    a.mov(ecx, len)?;
    a.mov(al, byte as u32)?;
    a.cld()?;
    a.rep().stosb()
}

/// Writes a qword at `at`.
fn poke(a: &mut Asm, at: u64, v: u64) -> AsmResult {
    a.mov(rax, v)?;
    a.mov(abs(at), rax)
}

/// A clean area: a zero header, the rest of the legacy region a sentinel.
fn clean_area(a: &mut Asm, at: u64) -> AsmResult {
    fill(a, at, 512, 0xaa)?;
    fill(a, at + 512, 64, 0)
}

/// Puts the components of `rfbm` in their initial configuration the
/// architectural way: XRSTOR of an area whose XSTATE_BV is 0 (FNINIT is not
/// enough: it leaves ST0-ST7 as they were, SDM Vol. 1 13.6). The standard
/// form loads MXCSR from the area, so the area holds 1F80H there.
fn init_components(a: &mut Asm, rfbm: i32) -> AsmResult {
    fill(a, INIT_AREA, 576, 0)?;
    a.mov(dword_ptr((INIT_AREA + 24) as u32), 0x1f80i32)?;
    a.mov(eax, rfbm)?;
    a.xor(edx, edx)?;
    a.xrstor64(ptr(INIT_AREA as u32))
}

/// Every component in its initial configuration.
fn init_state(a: &mut Asm) -> AsmResult {
    init_components(a, 3)
}

/// EDX:EAX = all ones (every component XCR0 enables).
fn all(a: &mut Asm) -> AsmResult {
    a.mov(eax, -1i32)?;
    a.mov(edx, -1i32)
}

fn program() -> Program {
    let mut p = Program::new();
    identification(&mut p);
    xcr0_cases(&mut p);
    standard_cases(&mut p);
    compacted_cases(&mut p);
    supervisor_cases(&mut p);
    p.prot_case("prot: xsave of x87 matches fxsave", |a| {
        a.mov(eax, cr4)?;
        a.or(eax, CR4_OSFXSR | CR4_OSXSAVE)?;
        a.mov(cr4, eax)?;
        a.mov(eax, cr0)?;
        a.and(eax, !(CR0_TS | CR0_EM))?;
        a.mov(cr0, eax)?;
        a.xor(ecx, ecx)?;
        a.xor(edx, edx)?;
        a.mov(eax, 3i32)?;
        a.xsetbv()?;
        a.fninit()?;
        a.fld1()?;
        a.fldpi()?;
        a.fadd_2(st0, st1)?;
        a.fxsave(ptr(AREA2 as u32))?;
        a.mov(eax, 1i32)?;
        a.xor(edx, edx)?;
        a.xsave(ptr(AREA as u32))?;
        // Compare the x87 part (bytes 0-23, 32-159).
        a.mov(esi, AREA as u32)?;
        a.mov(edi, AREA2 as u32)?;
        a.mov(ecx, 6i32)?;
        a.cld()?;
        a.repe().cmpsd()?;
        a.setne(al)?;
        a.movzx(ebx, al)?;
        a.add(ebx, ecx)?;
        a.mov(esi, (AREA + 32) as u32)?;
        a.mov(edi, (AREA2 + 32) as u32)?;
        a.mov(ecx, 32i32)?;
        a.repe().cmpsd()?;
        a.setne(al)?;
        a.movzx(eax, al)?;
        a.add(eax, ecx)?;
        // FCS.
        a.mov(edx, dword_ptr((AREA + 12) as u32))
    });
    p
}

fn identification(p: &mut Program) {
    p.long_case("cpuid leaf 0dh", |a| {
        a.mov(eax, 0xdi32)?;
        a.xor(ecx, ecx)?;
        a.cpuid()?;
        a.mov(r8, rax)?;
        a.mov(r9, rbx)?;
        a.mov(r10, rcx)?;
        a.mov(r11, rdx)?;
        a.mov(eax, 0xdi32)?;
        a.mov(ecx, 1i32)?;
        a.cpuid()?;
        a.mov(r12, rax)?;
        a.mov(r13, rbx)?;
        a.mov(r14, rcx)?;
        a.mov(r15, rdx)?;
        a.mov(eax, 0xdi32)?;
        a.mov(ecx, 2i32)?;
        a.cpuid()?;
        a.or(eax, ebx)?;
        a.or(eax, ecx)?;
        a.or(eax, edx)?;
        a.mov(esi, eax)?; // sub-leaf 2 (AVX): all zero
        a.xor(eax, eax)?;
        a.cpuid()?;
        a.mov(edi, eax)
    });
    p.long_case("cpuid osxsave follows cr4", |a| {
        a.mov(rax, cr4)?;
        a.and(eax, !CR4_OSXSAVE)?;
        a.mov(cr4, rax)?;
        a.mov(eax, 1i32)?;
        a.cpuid()?;
        a.mov(r8d, ecx)?;
        a.mov(rax, cr4)?;
        a.or(eax, CR4_OSXSAVE)?;
        a.mov(cr4, rax)?;
        a.mov(eax, 1i32)?;
        a.cpuid()?;
        a.mov(r9d, ecx)
    });
}

fn xcr0_cases(p: &mut Program) {
    p.long_case("xgetbv without osxsave is ud", |a| {
        a.mov(rax, cr4)?;
        a.and(eax, !CR4_OSXSAVE)?;
        a.mov(cr4, rax)?;
        a.xor(ecx, ecx)?;
        a.xgetbv()
    });
    p.long_case("xsetbv and xgetbv", |a| {
        enable(a)?;
        a.mov(eax, 1i32)?;
        a.xsetbv()?;
        a.xgetbv()?;
        a.mov(r8, rax)?;
        a.mov(r9, rdx)?;
        a.mov(eax, 3i32)?;
        a.xsetbv()?;
        a.xgetbv()
    });
    for (name, ecx_v, eax_v) in [
        ("xsetbv clearing x87 is gp", 0, 2),
        ("xsetbv avx bit is gp", 0, 7),
        ("xsetbv xcr1 is gp", 1, 1),
    ] {
        p.long_case(name, move |a| {
            enable(a)?;
            a.mov(ecx, ecx_v)?;
            a.mov(eax, eax_v)?;
            a.xor(edx, edx)?;
            a.xsetbv()
        });
    }
    p.long_case("xsetbv upper half is gp", |a| {
        enable(a)?;
        a.xor(ecx, ecx)?;
        a.mov(eax, 3i32)?;
        a.mov(edx, 1i32)?;
        a.xsetbv()
    });
    p.long_case("xgetbv of xcr2 is gp", |a| {
        enable(a)?;
        a.mov(ecx, 2i32)?;
        a.xgetbv()
    });
    p.long_case("xsetbv at cpl3 is gp", |a| {
        enable(a)?;
        enter_user(a)?;
        a.xor(ecx, ecx)?;
        a.mov(eax, 3i32)?;
        a.xor(edx, edx)?;
        a.xsetbv()
    });
    p.long_case("xgetbv at cpl3", |a| {
        enable(a)?;
        enter_user(a)?;
        a.xor(ecx, ecx)?;
        a.xgetbv()?;
        a.int(0x80)
    });
    p.long_case("xgetbv 1 is xinuse", |a| {
        enable(a)?;
        init_state(a)?;
        a.mov(ecx, 1i32)?;
        a.xgetbv()?;
        a.mov(r8, rax)?;
        a.fld1()?;
        a.xgetbv()?;
        a.mov(r9, rax)?;
        a.mov(ebx, 5i32)?;
        a.movd(xmm9, ebx)?;
        a.xgetbv()?;
        a.mov(r10, rax)?;
        init_components(a, 3)?;
        a.mov(dword_ptr(DATA), 0x9f80i32)?; // MXCSR alone makes SSE in use
        a.ldmxcsr(dword_ptr(DATA))?;
        a.mov(ecx, 1i32)?;
        a.xgetbv()?;
        a.mov(r11, rax)?;
        // FNINIT leaves stale registers: x87 still in use.
        a.fld1()?;
        a.fninit()?;
        a.xgetbv()?;
        a.mov(r12, rax)
    });
}

fn standard_cases(p: &mut Program) {
    p.long_case("xsave64 and xrstor64 round trip", |a| {
        enable(a)?;
        clean_area(a, AREA)?;
        a.fninit()?;
        a.fld1()?;
        a.fldpi()?;
        a.mov(rax, 0x1111_2222_3333_4444u64)?;
        a.movq(xmm0, rax)?;
        a.mov(rax, 0x5555_6666_7777_8888u64)?;
        a.movq(xmm15, rax)?;
        a.mov(dword_ptr(DATA), 0x3f80i32)?; // RC = down
        a.ldmxcsr(dword_ptr(DATA))?;
        all(a)?;
        a.xsave64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?; // XSTATE_BV
        a.mov(r9, abs(AREA + 520))?; // XCOMP_BV
        a.mov(r10d, dword_ptr((AREA + 24) as u32))?; // MXCSR
        a.mov(r11, abs(AREA + 160 + 16 * 15))?; // XMM15
        a.mov(r12, abs(AREA + 416))?; // untouched
        a.movzx(r13d, word_ptr(AREA as u32))?; // FCW
        init_state(a)?;
        all(a)?;
        a.xrstor64(ptr(AREA as u32))?;
        a.movq(rax, xmm0)?;
        a.movq(rbx, xmm15)?;
        a.stmxcsr(dword_ptr(DATA))?;
        a.mov(ecx, dword_ptr(DATA))?;
        a.fnstsw(ax)?;
        a.movzx(edx, ax)?;
        a.movq(rax, xmm0)
    });
    p.long_case("xsave with rfbm x87 only", |a| {
        enable(a)?;
        clean_area(a, AREA)?;
        a.fninit()?;
        a.fld1()?;
        a.mov(ebx, 7i32)?;
        a.movd(xmm1, ebx)?;
        a.mov(eax, 1i32)?;
        a.xor(edx, edx)?;
        a.xsave64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?;
        a.mov(r9d, dword_ptr((AREA + 24) as u32))?; // MXCSR not written
                                                    // XMM1 not written.
        a.mov(r10, abs(AREA + 176))?;
        a.movzx(r11d, word_ptr(AREA as u32))
    });
    p.long_case("xsave keeps xstate_bv bits outside rfbm", |a| {
        enable(a)?;
        clean_area(a, AREA)?;
        poke(a, AREA + 512, 2)?;
        init_state(a)?;
        a.fld1()?;
        a.mov(eax, 1i32)?;
        a.xor(edx, edx)?;
        a.xsave64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))
    });
    p.long_case("xrstor initializes components not in xstate_bv", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0)?;
        a.mov(dword_ptr((AREA + 24) as u32), 0x9f80i32)?; // loaded anyway
        a.fld1()?;
        a.mov(ebx, 9i32)?;
        a.movd(xmm0, ebx)?;
        a.movd(xmm12, ebx)?;
        all(a)?;
        a.xrstor64(ptr(AREA as u32))?;
        a.movq(r8, xmm0)?;
        a.movq(r9, xmm12)?;
        a.stmxcsr(dword_ptr(DATA))?;
        a.mov(r10d, dword_ptr(DATA))?;
        a.fnstcw(word_ptr(DATA))?;
        a.movzx(r11d, word_ptr(DATA))?;
        a.fnstsw(ax)?;
        a.movzx(r12d, ax)?;
        // The tag word.
        a.fnstenv(ptr(DATA))?;
        a.movzx(r13d, word_ptr(DATA + 8))
    });
    let header_gp: [(&str, u64, u64, u64); 4] = [
        ("xrstor xstate_bv outside xcr0 is gp", 4, 0, 0),
        ("xrstor standard with xcomp_bv is gp", 1, 1, 0),
        ("xrstor reserved header bytes are gp", 1, 0, 1),
        ("xrstor mxcsr reserved bit is gp", 2, 0, 0),
    ];
    for (name, bv, comp, rsvd) in header_gp {
        p.long_case(name, move |a| {
            enable(a)?;
            fill(a, AREA, 576, 0)?;
            poke(a, AREA + 512, bv)?;
            poke(a, AREA + 520, comp)?;
            poke(a, AREA + 528, rsvd)?;
            a.mov(dword_ptr((AREA + 24) as u32), 0x1_0000i32)?;
            a.mov(ebx, 0x77i32)?;
            a.movd(xmm0, ebx)?;
            all(a)?;
            a.xrstor64(ptr(AREA as u32))
        });
    }
    p.long_case("xrstor fault leaves state", |a| {
        // After the MXCSR case: XMM0 still 0x77.
        a.movq(rax, xmm0)
    });
    p.long_case("xsave misaligned is gp", |a| {
        enable(a)?;
        all(a)?;
        a.xsave64(ptr((AREA + 32) as u32))
    });
    p.long_case("xsave with cr0.ts is nm", |a| {
        enable(a)?;
        a.mov(rax, cr0)?;
        a.or(eax, CR0_TS)?;
        a.mov(cr0, rax)?;
        all(a)?;
        a.xsave64(ptr(AREA as u32))
    });
    p.long_case("xsaveopt skips components in init state", |a| {
        enable(a)?;
        clean_area(a, AREA)?;
        init_state(a)?;
        a.mov(ebx, 5i32)?;
        a.movd(xmm2, ebx)?;
        all(a)?;
        a.xsaveopt64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?;
        a.mov(r9, abs(AREA))?; // x87 not written
        a.mov(r10, abs(AREA + 160 + 32))?; // XMM2
        a.mov(r11d, dword_ptr((AREA + 24) as u32))
    });
}

fn compacted_cases(p: &mut Program) {
    p.long_case("xsavec of init state", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0xaa)?;
        init_state(a)?;
        all(a)?;
        a.xsavec64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?;
        a.mov(r9, abs(AREA + 520))?;
        a.mov(r10, abs(AREA))?; // x87 not written
        a.mov(r11d, dword_ptr((AREA + 24) as u32))?; // MXCSR written
        a.mov(r12, abs(AREA + 160))?; // XMM not written
                                      // The rest of the header is untouched.
        a.mov(r13, abs(AREA + 528))
    });
    p.long_case("xsavec and xrstor compacted round trip", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0)?;
        init_state(a)?;
        a.mov(ebx, 0x1234i32)?;
        a.movd(xmm3, ebx)?;
        a.mov(eax, 2i32)?;
        a.xor(edx, edx)?;
        a.xsavec64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?;
        a.mov(r9, abs(AREA + 520))?;
        a.pxor(xmm3, xmm3)?;
        a.mov(eax, 2i32)?;
        a.xrstor64(ptr(AREA as u32))?;
        a.movq(r10, xmm3)
    });
    p.long_case("xrstor compacted init sets mxcsr", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0)?;
        poke(a, AREA + 520, 0x8000_0000_0000_0003)?;
        a.mov(dword_ptr((AREA + 24) as u32), 0x9f80i32)?; // not loaded
        a.mov(dword_ptr(DATA), 0x3f80i32)?;
        a.ldmxcsr(dword_ptr(DATA))?;
        all(a)?;
        a.xrstor64(ptr(AREA as u32))?;
        a.stmxcsr(dword_ptr(DATA))?;
        a.mov(r8d, dword_ptr(DATA))
    });
    let header_gp: [(&str, u64, u64, u64); 3] = [
        (
            "xrstor compacted xstate_bv outside xcomp_bv is gp",
            2,
            0x8000_0000_0000_0001,
            0,
        ),
        (
            "xrstor compacted xcomp_bv outside xcr0 is gp",
            0,
            0x8000_0000_0000_0004,
            0,
        ),
        (
            "xrstor compacted reserved header bytes are gp",
            0,
            0x8000_0000_0000_0003,
            1,
        ),
    ];
    for (name, bv, comp, rsvd_24) in header_gp {
        p.long_case(name, move |a| {
            enable(a)?;
            fill(a, AREA, 576, 0)?;
            poke(a, AREA + 512, bv)?;
            poke(a, AREA + 520, comp)?;
            poke(a, AREA + 536, rsvd_24)?;
            all(a)?;
            a.xrstor64(ptr(AREA as u32))
        });
    }
}

fn supervisor_cases(p: &mut Program) {
    p.long_case("ia32_xss reads zero", |a| {
        a.mov(ecx, IA32_XSS)?;
        a.rdmsr()
    });
    p.long_case("ia32_xss unsupported bit is gp", |a| {
        a.mov(ecx, IA32_XSS)?;
        a.mov(eax, 1i32 << 8)?;
        a.xor(edx, edx)?;
        a.wrmsr()
    });
    p.long_case("xsaves and xrstors round trip", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0)?;
        init_state(a)?;
        a.fld1()?;
        all(a)?;
        a.xsaves64(ptr(AREA as u32))?;
        a.mov(r8, abs(AREA + 512))?;
        a.mov(r9, abs(AREA + 520))?;
        a.fninit()?;
        all(a)?;
        a.xrstors64(ptr(AREA as u32))?;
        a.fnstsw(ax)?;
        a.movzx(r10d, ax)?;
        a.xor(eax, eax)
    });
    p.long_case("xrstors standard form is gp", |a| {
        enable(a)?;
        fill(a, AREA, 576, 0)?;
        all(a)?;
        a.xrstors64(ptr(AREA as u32))
    });
    p.long_case("xsaves at cpl3 is gp", |a| {
        enable(a)?;
        enter_user(a)?;
        a.mov(eax, -1i32)?;
        a.mov(edx, -1i32)?;
        a.xsaves64(ptr(AREA as u32))
    });
}

fn outcome() -> Outcome {
    let o = run(&program(), config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    o
}

fn exception(r: &Record) -> Option<(u8, u64)> {
    r.exception.map(|e| (e.0, e.1))
}

const GP: Option<(u8, u64)> = Some((13, 0));

#[test]
fn xsave_guest_suite() {
    let o = outcome();
    let rec = |n: &str| o.record(n);
    let g = |n: &str, k: usize| rec(n).gprs[k];
    let ok = |n: &str| {
        let r = rec(n);
        assert_eq!(exception(r), None, "{n}: {:x?}", r.exception);
        r
    };

    // CPUID.(0DH,0): x87|SSE, 576 bytes; (0DH,1): XSAVEOPT, XSAVEC, XGETBV1,
    // XSAVES, 576 compacted, no IA32_XSS bits; leaf 0 reaches 0DH.
    let r = ok("cpuid leaf 0dh");
    assert_eq!(&r.gprs[8..12], &[3, 576, 576, 0]);
    assert_eq!(&r.gprs[12..16], &[0xf, 576, 0, 0]);
    assert_eq!(r.gprs[6], 0, "no AVX sub-leaf");
    assert!(r.gprs[7] >= 0xd, "max basic leaf {:#x}", r.gprs[7]);
    let r = ok("cpuid osxsave follows cr4");
    assert_ne!(r.gprs[8] & 1 << 26, 0, "XSAVE");
    assert_eq!(r.gprs[8] & 1 << 27, 0, "OSXSAVE off");
    assert_ne!(r.gprs[9] & 1 << 27, 0, "OSXSAVE on");

    assert_eq!(
        exception(rec("xgetbv without osxsave is ud")).map(|e| e.0),
        Some(6)
    );
    let r = ok("xsetbv and xgetbv");
    assert_eq!((r.gprs[8], r.gprs[9]), (1, 0));
    assert_eq!((r.gprs[0], r.gprs[2]), (3, 0));
    for n in [
        "xsetbv clearing x87 is gp",
        "xsetbv avx bit is gp",
        "xsetbv xcr1 is gp",
        "xsetbv upper half is gp",
        "xgetbv of xcr2 is gp",
        "xsetbv at cpl3 is gp",
    ] {
        assert_eq!(exception(rec(n)), GP, "{n}");
    }
    assert_eq!(g("xgetbv at cpl3", 0), 3);
    let r = ok("xgetbv 1 is xinuse");
    assert_eq!(&r.gprs[8..13], &[0, 1, 3, 2, 3]);

    let r = ok("xsave64 and xrstor64 round trip");
    assert_eq!(r.gprs[8], 3, "XSTATE_BV");
    assert_eq!(r.gprs[9], 0, "XCOMP_BV");
    assert_eq!(r.gprs[10], 0x3f80, "MXCSR");
    assert_eq!(r.gprs[11], 0x5555_6666_7777_8888, "XMM15");
    assert_eq!(r.gprs[12], SENTINEL, "bytes 416-511 untouched");
    assert_eq!(r.gprs[13], 0x37f, "FCW");
    assert_eq!(r.gprs[0], 0x1111_2222_3333_4444, "XMM0 back");
    assert_eq!(r.gprs[3], 0x5555_6666_7777_8888, "XMM15 back");
    assert_eq!(r.gprs[1], 0x3f80, "MXCSR back");
    assert_eq!(r.gprs[2] >> 11 & 7, 6, "TOP back: two loads");

    let r = ok("xsave with rfbm x87 only");
    assert_eq!(r.gprs[8], 1);
    assert_eq!(r.gprs[9], SENTINEL as u32 as u64, "MXCSR not written");
    assert_eq!(r.gprs[10], SENTINEL, "XMM1 not written");
    assert_eq!(r.gprs[11], 0x37f);
    assert_eq!(g("xsave keeps xstate_bv bits outside rfbm", 8), 3);

    let r = ok("xrstor initializes components not in xstate_bv");
    assert_eq!((r.gprs[8], r.gprs[9]), (0, 0), "XMM0, XMM12 zero");
    assert_eq!(r.gprs[10], 0x9f80, "standard form loads MXCSR");
    assert_eq!(r.gprs[11], 0x37f, "FCW");
    assert_eq!(r.gprs[12], 0, "FSW");
    assert_eq!(r.gprs[13], 0xffff, "all tags empty");

    for n in [
        "xrstor xstate_bv outside xcr0 is gp",
        "xrstor standard with xcomp_bv is gp",
        "xrstor reserved header bytes are gp",
        "xrstor mxcsr reserved bit is gp",
        "xsave misaligned is gp",
        "xrstor compacted xstate_bv outside xcomp_bv is gp",
        "xrstor compacted xcomp_bv outside xcr0 is gp",
        "xrstor compacted reserved header bytes are gp",
        "ia32_xss unsupported bit is gp",
        "xrstors standard form is gp",
        "xsaves at cpl3 is gp",
    ] {
        assert_eq!(exception(rec(n)), GP, "{n}");
    }
    assert_eq!(g("xrstor fault leaves state", 0), 0x77);
    assert_eq!(
        exception(rec("xsave with cr0.ts is nm")).map(|e| e.0),
        Some(7)
    );

    let r = ok("xsaveopt skips components in init state");
    assert_eq!(r.gprs[8], 2, "XSTATE_BV = XINUSE");
    assert_eq!(r.gprs[9], SENTINEL, "x87 in init state: not written");
    assert_eq!(r.gprs[10], 5, "XMM2");
    assert_eq!(r.gprs[11], 0x1f80, "MXCSR");

    let r = ok("xsavec of init state");
    assert_eq!(r.gprs[8], 0, "XSTATE_BV");
    assert_eq!(r.gprs[9], 0x8000_0000_0000_0003, "XCOMP_BV");
    assert_eq!(r.gprs[10], SENTINEL, "x87 not written");
    assert_eq!(r.gprs[11], 0x1f80, "MXCSR written");
    assert_eq!(r.gprs[12], SENTINEL, "XMM not written");
    assert_eq!(r.gprs[13], SENTINEL, "header bytes 16-23 untouched");
    let r = ok("xsavec and xrstor compacted round trip");
    assert_eq!(r.gprs[8], 2);
    assert_eq!(r.gprs[9], 0x8000_0000_0000_0002);
    assert_eq!(r.gprs[10], 0x1234);
    assert_eq!(g("xrstor compacted init sets mxcsr", 8), 0x1f80);

    let r = ok("ia32_xss reads zero");
    assert_eq!((r.gprs[0], r.gprs[2]), (0, 0));
    let r = ok("xsaves and xrstors round trip");
    assert_eq!(r.gprs[8], 1, "XSTATE_BV: x87 in use");
    assert_eq!(r.gprs[9], 0x8000_0000_0000_0003);
    assert_eq!(r.gprs[10] >> 11 & 7, 7, "TOP back after one load");

    let r = ok("prot: xsave of x87 matches fxsave");
    assert_eq!(r.gprs[3], 0, "bytes 0-23 equal");
    assert_eq!(r.gprs[0], 0, "bytes 32-159 equal");
    assert_ne!(r.gprs[2] & 0xffff, 0, "FCS recorded");
}
