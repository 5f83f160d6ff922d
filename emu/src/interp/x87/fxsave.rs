//! FXSAVE, FXRSTOR and their REX.W forms FXSAVE64/FXRSTOR64 (SDM Vol. 1
//! 10.5, table 10-2 / 10-3; Vol. 2A FXSAVE, FXRSTOR).
//!
//! - The memory operand must be 16-byte aligned, else #GP(0) (whatever the
//!   segment and whether or not alignment checking is on).
//! - CR0.TS or CR0.EM gives #NM; neither instruction checks for pending x87
//!   exceptions.
//! - With CR4.OSFXSR = 0 the XMM registers are neither saved nor restored
//!   (the SDM leaves it to the implementation; Intel processors, like Bochs,
//!   skip them); MXCSR and MXCSR_MASK are always saved and MXCSR restored.
//! - FXRSTOR raises #GP(0) for MXCSR bits outside [`MXCSR_MASK`].
//! - XMM8-XMM15 take part in 64-bit mode only. Bytes 416-511 are never
//!   written.

use super::control::fcw_of;
use super::state::tag;
use crate::cpu::FpuState;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::Privilege;
use iced_x86::{Instruction, Mnemonic};
use mmu::{Cr0, Cr4, SegReg};

/// The MXCSR bits software may set (FXSAVE stores this as MXCSR_MASK):
/// FZ, RC, the masks, DAZ and the flags (SDM Vol. 1 10.2.3.1).
pub const MXCSR_MASK: u32 = 0x0000_ffff;

/// Checks #NM and 16-byte alignment, then the segment: the linear address.
fn operand(m: &Machine, i: &Instruction, write: bool) -> Result<u64, Event> {
    if m.cpu.sys.cr0.intersects(Cr0::EM | Cr0::TS) {
        return Err(Event::nm());
    }
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    let base = if m.cpu.long64() && !matches!(seg, SegReg::Fs | SegReg::Gs) {
        0
    } else {
        m.cpu.seg(seg).base
    };
    if base.wrapping_add(off) & 15 != 0 {
        return Err(Event::gp0());
    }
    m.linear(seg, off, 512, write)
}

/// True for the REX.W forms (64-bit FIP/FDP, no selectors).
fn wide(i: &Instruction) -> bool {
    matches!(i.mnemonic(), Mnemonic::Fxsave64 | Mnemonic::Fxrstor64)
}

/// How many bytes of the image take part: the x87 part, then XMM0-7 or
/// XMM0-15.
fn image_len(m: &Machine) -> usize {
    if !m.cpu.sys.cr4.contains(Cr4::OSFXSR) {
        160
    } else if m.cpu.long64() {
        416
    } else {
        288
    }
}

/// Stores the x87 part of the legacy image (bytes 0-23 and 32-159) into
/// `img`; `wide` selects the REX.W format (64-bit FIP/FDP, no selectors).
/// Shared with XSAVE (SDM Vol. 1 13.5.1).
pub(crate) fn store_x87(f: &FpuState, wide: bool, img: &mut [u8]) {
    img[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    img[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    img[4] = f.abridged_tag();
    img[5] = 0;
    img[6..8].copy_from_slice(&(f.fop & 0x7ff).to_le_bytes());
    if wide {
        img[8..16].copy_from_slice(&f.fip.to_le_bytes());
        img[16..24].copy_from_slice(&f.fdp.to_le_bytes());
    } else {
        img[8..12].copy_from_slice(&(f.fip as u32).to_le_bytes());
        img[12..14].copy_from_slice(&f.fcs.to_le_bytes());
        img[14..16].fill(0);
        img[16..20].copy_from_slice(&(f.fdp as u32).to_le_bytes());
        img[20..22].copy_from_slice(&f.fds.to_le_bytes());
        img[22..24].fill(0);
    }
    for k in 0..8 {
        let o = 32 + 16 * k;
        img[o..o + 10].copy_from_slice(&f.st[f.phys(k)]);
        img[o + 10..o + 16].fill(0);
    }
}

/// Stores MXCSR and MXCSR_MASK (bytes 24-31).
pub(crate) fn store_mxcsr(f: &FpuState, img: &mut [u8]) {
    img[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
}

/// Stores the first `n` XMM registers from byte 160.
pub(crate) fn store_xmm(f: &FpuState, n: usize, img: &mut [u8]) {
    for (k, x) in f.xmm[..n].iter().enumerate() {
        let o = 160 + 16 * k;
        img[o..o + 16].copy_from_slice(&x.to_le_bytes());
    }
}

/// Loads the x87 part of a legacy image (the inverse of [`store_x87`]).
pub(crate) fn load_x87(f: &mut FpuState, wide: bool, b: &[u8]) {
    let w16 = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let w32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let w64 = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    f.fcw = fcw_of(w16(0));
    f.fsw = w16(2);
    f.fop = w16(6) & 0x7ff;
    if wide {
        f.fip = w64(8);
        f.fcs = 0;
        f.fdp = w64(16);
        f.fds = 0;
    } else {
        f.fip = w32(8) as u64;
        f.fcs = w16(12);
        f.fdp = w32(16) as u64;
        f.fds = w16(20);
    }
    let top = f.top();
    for k in 0..8 {
        let o = 32 + 16 * k;
        let mut r = [0u8; 10];
        r.copy_from_slice(&b[o..o + 10]);
        f.st[(top + k) & 7] = r;
    }
    let abridged = b[4];
    for p in 0..8 {
        let t = if abridged & (1 << p) != 0 {
            f.reg(p).tag()
        } else {
            tag::EMPTY
        };
        f.set_tag(p, t);
    }
    f.update_summary();
}

/// Loads the first `n` XMM registers from byte 160.
pub(crate) fn load_xmm(f: &mut FpuState, n: usize, b: &[u8]) {
    for k in 0..n {
        let o = 160 + 16 * k;
        f.xmm[k] = u128::from_le_bytes(b[o..o + 16].try_into().expect("16 bytes"));
    }
}

/// FXSAVE / FXSAVE64 m512byte.
///
/// AMD processors store the x87 error pointers (FIP, FCS, FDP, FDS) and FOP
/// only while FSW.ES says an unmasked exception is pending, and zeros
/// otherwise (APM Vol. 2 11.4.4 "Saving Media and x87 Execution Unit
/// State", Vol. 5 FXSAVE; processors reporting CPUID Fn8000_0008_EBX[2],
/// which nestemu's AMD model does not, always store them). FXRSTOR loads
/// them whatever ES is, so FNSTENV still sees them. Intel processors always
/// store them.
pub fn fxsave(m: &mut Machine, i: &Instruction) -> Flow {
    let la = operand(m, i, true)?;
    let amd = super::state::amd_rules(m);
    let f = &m.cpu.fpu;
    let mut img = [0u8; 416];
    store_x87(f, wide(i), &mut img);
    if amd && f.fsw & super::state::sw::ES == 0 {
        img[6..24].fill(0);
    }
    store_mxcsr(f, &mut img);
    store_xmm(f, 16, &mut img);
    let n = image_len(m);
    m.write_linear_bytes(la, &img[..n], Privilege::Current)
}

/// FXRSTOR / FXRSTOR64 m512byte.
pub fn fxrstor(m: &mut Machine, i: &Instruction) -> Flow {
    let la = operand(m, i, false)?;
    let n = image_len(m);
    let mut b = [0u8; 416];
    m.read_linear_bytes(la, &mut b[..n.max(32)], Privilege::Current)?;
    let mxcsr = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    if mxcsr & !MXCSR_MASK != 0 {
        return Err(Event::gp0());
    }
    let wide = wide(i);
    let f = &mut m.cpu.fpu;
    load_x87(f, wide, &b);
    f.mxcsr = mxcsr;
    if n > 160 {
        load_xmm(f, (n - 160) / 16, &b);
    }
    Ok(())
}
