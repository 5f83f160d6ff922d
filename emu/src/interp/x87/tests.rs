//! Machine-level tests of behaviour the hardware-differential and guest
//! suites cannot reach: the FERR# path with CR0.NE = 0, FOP recording,
//! FNSTSW AX, FXSAVE/FXRSTOR details, and fault precision.

use super::float::F80;
use crate::cpu::cpuid::CpuModel;
use crate::event::{Event, Flow};
use crate::machine::{Machine, MachineConfig};
use iced_x86::{Decoder, DecoderOptions};
use mmu::{Cr0, Cr4, SegReg, SegmentCache};

fn machine(bits: u32) -> Machine {
    machine_of(bits, CpuModel::intel())
}

fn machine_of(bits: u32, model: CpuModel) -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: 1 << 20,
        model,
        ..Default::default()
    });
    m.cpu.sys.cr0 = Cr0::PE | Cr0::NE | Cr0::ET | Cr0::MP;
    let long = bits == 64;
    m.cpu.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(0x08, 0xb, 0, !long, long);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        m.cpu.sys.segs[s as usize] = SegmentCache::flat(0x10, 0x3, 0, true, false);
    }
    if long {
        m.cpu.sys.efer = mmu::Efer::LME | mmu::Efer::LMA;
    }
    m.cpu.update_mode();
    m.cpu.rip = 0x1000;
    m
}

/// Decodes and executes one instruction at RIP (placed there first).
fn exec(m: &mut Machine, bytes: &[u8]) -> Flow {
    let bits = m.cpu.mode.code_bits as u32;
    let mut d = Decoder::with_ip(bits, bytes, m.cpu.rip, DecoderOptions::NONE);
    let i = d.decode();
    assert!(!i.is_invalid(), "{bytes:02x?}");
    m.load_phys(m.cpu.rip, bytes);
    m.next_rip = m.cpu.rip + i.len() as u64;
    let (h, _) = crate::interp::handler_for(m, &i);
    let r = h(m, &i);
    if r.is_ok() {
        m.cpu.rip = m.next_rip;
    }
    r
}

const FLD1: [u8; 2] = [0xd9, 0xe8];
const FLDZ: [u8; 2] = [0xd9, 0xee];
const FDIVP: [u8; 2] = [0xde, 0xf9]; // FDIVP ST(1), ST(0)
const FWAIT: [u8; 1] = [0x9b];

/// Makes a #Z pending: unmask it, divide 1 by 0.
fn pend_zero_divide(m: &mut Machine) {
    m.cpu.fpu.fcw = 0x037b;
    exec(m, &FLD1).unwrap();
    exec(m, &FLDZ).unwrap();
    exec(m, &FDIVP).unwrap();
    assert_ne!(m.cpu.fpu.fsw & 0x80, 0, "ES set");
}

#[test]
fn pending_exception_with_ne_raises_mf() {
    let mut m = machine(32);
    pend_zero_divide(&mut m);
    let r = exec(&mut m, &FWAIT);
    assert_eq!(r, Err(Event::Exception(mmu::Exception::mf())));
}

/// CR0.NE = 0 (SDM Vol. 1 appendix D.2.1): FWAIT asserts FERR# (IRQ 13)
/// and freezes; a write to port F0H lowers IRQ 13 and asserts IGNNE#, so
/// FWAIT runs again and ignores the error; FNCLEX deasserts FERR#, which
/// ends IGNNE#.
#[test]
fn pending_exception_without_ne_freezes_on_ferr() {
    let mut m = machine(32);
    pend_zero_divide(&mut m);
    m.cpu.sys.cr0.remove(Cr0::NE);
    assert_eq!(exec(&mut m, &FWAIT), Err(Event::Freeze));
    assert!(m.dev.ferr.asserted && !m.dev.ferr.ignne);
    assert!(m.dev.line(13), "IRQ 13 follows FERR#");
    let now = m.now();
    m.dev.port_write(0xf0, 1, 0, now);
    assert!(!m.dev.line(13), "port F0H clears IRQ 13");
    assert!(m.dev.ferr.ignne);
    assert_eq!(exec(&mut m, &FWAIT), Ok(()), "IGNNE#: the error is ignored");
    assert_ne!(m.cpu.fpu.fsw & 0x80, 0, "ES still set");
    exec(&mut m, &[0xdb, 0xe2]).unwrap(); // FNCLEX
    assert!(!m.dev.ferr.asserted && !m.dev.ferr.ignne);
    assert!(!m.dev.line(13));
}

#[test]
fn fop_is_recorded_only_for_unmasked_exceptions() {
    let mut m = machine(32);
    m.cpu.fpu.fcw = 0x037f;
    exec(&mut m, &FLDZ).unwrap();
    exec(&mut m, &FLD1).unwrap();
    // Masked 1/0: FOP stays 0.
    exec(&mut m, &[0xd8, 0xf1]).unwrap(); // FDIV ST(0), ST(1)
    assert_eq!(m.cpu.fpu.fop, 0);
    exec(&mut m, &FLD1).unwrap();
    // Unmasked #Z from a memory form behind prefixes: DS override and
    // operand size (FDIV dword [esi] = D8 /6, ModR/M 36H).
    m.cpu.fpu.fcw = 0x037b;
    m.cpu.gpr[6] = 0x3000;
    m.load_phys(0x3000, &0u32.to_le_bytes());
    exec(&mut m, &[0x3e, 0x66, 0xd8, 0x36]).unwrap();
    assert_eq!(m.cpu.fpu.fop, 0x036);
    assert_eq!(m.cpu.fpu.fdp, 0x3000);
    assert_eq!(m.cpu.fpu.fds, 0x10);
    assert_eq!(m.cpu.fpu.fip, 0x1008);
}

#[test]
fn fnstsw_ax_writes_only_ax() {
    let mut m = machine(32);
    m.cpu.gpr[0] = 0xdead_beef;
    exec(&mut m, &FLD1).unwrap();
    exec(&mut m, &[0xdf, 0xe0]).unwrap();
    assert_eq!(m.cpu.gpr[0], 0xdead_3800);
}

#[test]
fn control_instructions_leave_the_pointers() {
    let mut m = machine(32);
    exec(&mut m, &FLD1).unwrap();
    let fip = m.cpu.fpu.fip;
    m.cpu.gpr[6] = 0x3000;
    exec(&mut m, &[0xd9, 0x3e]).unwrap(); // FNSTCW [esi]
    exec(&mut m, &[0xd9, 0x2e]).unwrap(); // FLDCW [esi]
    exec(&mut m, &[0xdb, 0xe2]).unwrap(); // FNCLEX
    assert_eq!(m.cpu.fpu.fip, fip);
    assert_eq!(m.cpu.fpu.fdp, 0);
}

#[test]
fn fxsave_without_osfxsr_skips_xmm() {
    let mut m = machine(32);
    m.cpu.fpu.xmm[0] = u128::MAX;
    m.load_phys(0x3000, &[0x5a; 512]);
    m.cpu.gpr[6] = 0x3000;
    exec(&mut m, &[0x0f, 0xae, 0x06]).unwrap(); // FXSAVE [esi]
    let mut b = [0u8; 512];
    m.peek_phys(0x3000, &mut b);
    assert_eq!(&b[160..176], &[0x5a; 16], "XMM0 not saved");
    assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 0x1f80);
    m.cpu.sys.cr4 |= Cr4::OSFXSR;
    exec(&mut m, &[0x0f, 0xae, 0x06]).unwrap();
    m.peek_phys(0x3000, &mut b);
    assert_eq!(&b[160..176], &[0xff; 16], "XMM0 saved");
    assert_eq!(&b[288..300], &[0x5a; 12], "XMM8-15 only in 64-bit mode");
}

#[test]
fn fxrstor64_clears_the_selectors() {
    let mut m = machine(64);
    m.cpu.fpu.fcs = 0x1234;
    m.cpu.fpu.fds = 0x5678;
    let mut img = [0u8; 512];
    img[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    img[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    img[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    m.load_phys(0x3000, &img);
    m.cpu.gpr[6] = 0x3000;
    exec(&mut m, &[0x48, 0x0f, 0xae, 0x0e]).unwrap(); // FXRSTOR64 [rsi]
    assert_eq!(m.cpu.fpu.fip, 0x1122_3344_5566_7788);
    assert_eq!((m.cpu.fpu.fcs, m.cpu.fpu.fds), (0, 0));
    assert_eq!(m.cpu.fpu.ftw, 0xffff, "abridged tag 0: all empty");
}

#[test]
fn faulting_store_changes_nothing() {
    let mut m = machine(32);
    exec(&mut m, &FLD1).unwrap();
    let before = m.cpu.fpu.clone();
    // FSTP qword [esi] with ESI past the 4-GiB limit of a 32-bit segment.
    m.cpu.sys.segs[SegReg::Ds as usize].limit = 0xfff;
    m.cpu.gpr[6] = 0x2000;
    let r = exec(&mut m, &[0xdd, 0x1e]);
    assert_eq!(r, Err(Event::gp0()));
    assert_eq!(m.cpu.fpu, before);
}

#[test]
fn lock_prefix_is_ud() {
    let m = machine(32);
    let mut d = Decoder::with_ip(32, &[0xf0, 0xd9, 0xe8], 0x1000, DecoderOptions::NONE);
    let i = d.decode();
    assert!(i.is_invalid(), "the decoder rejects LOCK on x87");
    let (h, _) = crate::interp::handler_for(&m, &i);
    let mut m = m;
    assert_eq!(h(&mut m, &i), Err(Event::ud()));
}

#[test]
fn mmx_style_registers_alias_physical_registers() {
    // MMn is the low 64 bits of physical register Rn, whatever TOP is.
    let mut m = machine(32);
    exec(&mut m, &FLD1).unwrap(); // TOP = 7: ST(0) is R7
    assert_eq!(F80::from_bytes(&m.cpu.fpu.st[7]), F80::ONE);
    assert_eq!(m.cpu.fpu.phys(0), 7);
}

/// A real-mode machine with CS = 0100H (base 1000H), IP = 10H.
fn real_machine() -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: 1 << 20,
        ..Default::default()
    });
    m.cpu.sys.cr0 = Cr0::NE | Cr0::ET;
    m.cpu.sys.segs[SegReg::Cs as usize] = SegmentCache::real_mode(0x100, false);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss] {
        m.cpu.sys.segs[s as usize] = SegmentCache::real_mode(0, false);
    }
    m.cpu.update_mode();
    m.cpu.rip = 0x10;
    m
}

/// Executes at CS:IP (the code is placed at the linear address).
fn exec_real(m: &mut Machine, bytes: &[u8]) -> Flow {
    let ip = m.cpu.rip;
    let base = m.cpu.seg(SegReg::Cs).base;
    let mut d = Decoder::with_ip(16, bytes, ip, DecoderOptions::NONE);
    let i = d.decode();
    m.load_phys(base + ip, bytes);
    m.next_rip = ip + i.len() as u64;
    let (h, _) = crate::interp::handler_for(m, &i);
    let r = h(m, &i);
    if r.is_ok() {
        m.cpu.rip = m.next_rip;
    }
    r
}

#[test]
fn real_mode_environments_carry_linear_pointers() {
    for (store, load, len) in [
        (
            &[0xd9u8, 0x36, 0x00, 0x30][..],
            &[0xd9u8, 0x26, 0x00, 0x30][..],
            14,
        ),
        (
            &[0x66, 0xd9, 0x36, 0x00, 0x30][..],
            &[0x66, 0xd9, 0x26, 0x00, 0x30][..],
            28,
        ),
    ] {
        let mut m = real_machine();
        // FLD1 at 0100:0010 (linear 1010H), FDIV by a zero word at DS:2000H
        // so FOP and FDP are recorded, with #Z unmasked.
        m.cpu.fpu.fcw = 0x037b;
        exec_real(&mut m, &FLD1).unwrap();
        exec_real(&mut m, &[0xde, 0x36, 0x00, 0x20]).unwrap(); // FIDIV word [2000H]
        let fip = m.cpu.fpu.fip;
        assert_eq!(fip, 0x12);
        exec_real(&mut m, store).unwrap(); // FNSTENV [3000H]
        let mut img = [0u8; 28];
        m.peek_phys(0x3000, &mut img[..len]);
        let w16 = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
        let (ip_lo, ip_hi_fop, dp_lo) = if len == 14 {
            (w16(6), w16(8), w16(10))
        } else {
            (w16(12), w16(16), w16(20))
        };
        assert_eq!(ip_lo, 0x1012, "FIP: linear address of the FIDIV");
        assert_eq!(ip_hi_fop & 0x7ff, 0x636, "FOP of DE /6, ModR/M 36H");
        assert_eq!(dp_lo, 0x2000);
        // Load it back: FIP is the linear address, FCS 0; storing again
        // gives the same image.
        m.cpu.fpu.init_x87();
        exec_real(&mut m, load).unwrap();
        assert_eq!((m.cpu.fpu.fip, m.cpu.fpu.fcs), (0x1012, 0));
        assert_eq!(m.cpu.fpu.fop, 0x636);
        assert_ne!(m.cpu.fpu.fsw & 0x80, 0, "#Z still pending");
        let mut again = [0u8; 28];
        exec_real(&mut m, store).unwrap(); // FNSTENV does not wait
        m.peek_phys(0x3000, &mut again[..len]);
        assert_eq!(again[..len], img[..len]);
    }
}

#[test]
fn fisttp_truncates_whatever_rc() {
    // FISTTP is an SSE3 instruction (dispatch gives #UD until SSE3 is
    // advertised); its handler is exercised directly.
    let mut m = machine(32);
    m.cpu.fpu.fcw = 0x037f; // round to nearest
    m.cpu.gpr[6] = 0x3000;
    exec(&mut m, &FLD1).unwrap();
    exec(&mut m, &FLD1).unwrap();
    exec(&mut m, &[0xde, 0xc1]).unwrap(); // FADDP: 2
    exec(&mut m, &FLD1).unwrap();
    exec(&mut m, &[0xde, 0xc1]).unwrap(); // FADDP: 3
    exec(&mut m, &[0xd9, 0xfa]).unwrap(); // FSQRT: 1.732, nearest would be 2
    let mut d = Decoder::with_ip(32, &[0xdb, 0x0e], m.cpu.rip, DecoderOptions::NONE);
    let i = d.decode();
    m.next_rip = m.cpu.rip + 2;
    super::loadstore::fist(&mut m, &i).unwrap(); // FISTTP dword [esi]
    let mut b = [0u8; 4];
    m.peek_phys(0x3000, &mut b);
    assert_eq!(u32::from_le_bytes(b), 1);
    assert!(m.cpu.fpu.is_empty(0), "popped");
}

#[test]
fn amd_records_fop_for_every_non_control_instruction() {
    let mut m = machine_of(32, CpuModel::amd());
    exec(&mut m, &FLD1).unwrap();
    assert_eq!(m.cpu.fpu.fop, 0x1e8, "D9 E8");
    exec(&mut m, &[0xd9, 0xc9]).unwrap(); // FXCH ST(1): non-control
    assert_eq!(m.cpu.fpu.fop, 0x1c9);
    m.cpu.gpr[6] = 0x3000;
    exec(&mut m, &[0xd9, 0x3e]).unwrap(); // FNSTCW [esi]
    exec(&mut m, &[0xd9, 0x2e]).unwrap(); // FLDCW [esi]
    exec(&mut m, &[0xdb, 0xe2]).unwrap(); // FNCLEX
    exec(&mut m, &FWAIT).unwrap();
    assert_eq!(m.cpu.fpu.fop, 0x1c9, "control instructions keep it");
    // Intel keeps the opcode of the last unmasked exception only.
    let mut m = machine(32);
    exec(&mut m, &FLD1).unwrap();
    assert_eq!(m.cpu.fpu.fop, 0);
}

/// FXSAVE [esi] into a page of 5AH bytes; the image.
fn fxsave_image(m: &mut Machine) -> [u8; 512] {
    m.load_phys(0x3000, &[0x5a; 512]);
    m.cpu.gpr[6] = 0x3000;
    exec(m, &[0x0f, 0xae, 0x06]).unwrap();
    let mut b = [0u8; 512];
    m.peek_phys(0x3000, &mut b);
    b
}

#[test]
fn amd_fxsave_stores_the_pointers_only_with_es() {
    let mut m = machine_of(32, CpuModel::amd());
    exec(&mut m, &FLD1).unwrap();
    let b = fxsave_image(&mut m);
    assert_eq!(&b[6..24], &[0; 18], "FOP, FIP, FCS, FDP, FDS zero");
    assert_eq!(m.cpu.fpu.fip, 0x1000, "kept inside");
    pend_zero_divide(&mut m);
    let b = fxsave_image(&mut m);
    assert_eq!(u16::from_le_bytes([b[6], b[7]]), 0x6f9, "DE F9");
    assert_eq!(
        u32::from_le_bytes(b[8..12].try_into().unwrap()),
        0x1009,
        "the FDIVP"
    );
    // Intel stores them whatever ES is.
    let mut m = machine(32);
    exec(&mut m, &FLD1).unwrap();
    let b = fxsave_image(&mut m);
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 0x1000);
}

#[test]
fn fcomi_c1_by_vendor() {
    // FLD1; FLD1; FCHS; FXAM (C1 = 1, the sign); FCOMI ST(0), ST(1).
    let code: [&[u8]; 5] = [&FLD1, &FLD1, &[0xd9, 0xe0], &[0xd9, 0xe5], &[0xdb, 0xf1]];
    for (model, c1) in [(CpuModel::amd(), 0x200), (CpuModel::intel(), 0)] {
        let mut m = machine_of(32, model);
        for c in code {
            exec(&mut m, c).unwrap();
        }
        assert_eq!(m.cpu.fpu.fsw & 0x200, c1);
        assert!(m.cpu.flags.has(mmu::Rflags::CF), "-1 < 1");
    }
}

#[test]
fn fld_of_a_denormal_with_de_unmasked_by_vendor() {
    for (model, loaded) in [(CpuModel::amd(), true), (CpuModel::intel(), false)] {
        let mut m = machine_of(32, model);
        m.cpu.fpu.fcw = 0x037d; // #D unmasked
        m.load_phys(0x3000, &3u32.to_le_bytes());
        m.cpu.gpr[6] = 0x3000;
        exec(&mut m, &[0xd9, 0x06]).unwrap(); // FLD dword [esi]
        assert_eq!(m.cpu.fpu.fsw & 0x82, 0x82, "DE and ES");
        assert_eq!(!m.cpu.fpu.is_empty(0), loaded);
        if loaded {
            // 3 * 2^-149, exactly: exponent 3FFFH - 148, J and the next bit.
            let v = m.cpu.fpu.read_st(0).to_bytes();
            assert_eq!(u16::from_le_bytes([v[8], v[9]]), 0x3fff - 148);
            assert_eq!(u64::from_le_bytes(v[..8].try_into().unwrap()), 0xc000 << 48);
        }
    }
}

#[test]
fn store_fault_comes_before_stack_underflow() {
    for model in [CpuModel::amd(), CpuModel::intel()] {
        let mut m = machine_of(32, model);
        m.cpu.fpu.fcw = 0x037e; // #IS unmasked, ST(0) empty
        let before = m.cpu.fpu.clone();
        m.cpu.sys.segs[SegReg::Ds as usize].limit = 0xfff;
        m.cpu.gpr[6] = 0x2000;
        for store in [
            &[0xd9, 0x1e][..], // FSTP dword [esi]
            &[0xdf, 0x3e][..], // FISTP qword [esi]
            &[0xdf, 0x36][..], // FBSTP [esi]
        ] {
            assert_eq!(exec(&mut m, store), Err(Event::gp0()), "{store:02x?}");
            assert_eq!(m.cpu.fpu, before);
        }
    }
}
