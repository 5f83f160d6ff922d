//! FNSTENV, FLDENV, FNSAVE and FRSTOR: the environment and state images in
//! their four layouts (16/32-bit operand size, real/virtual-8086 or
//! protected mode; SDM Vol. 1 8.1.10, figures 8-9 to 8-12). 64-bit mode uses
//! the 32-bit protected-mode layout.

use super::control::fcw_of;
use super::float::exc;
use super::state::{check_nm, prologue};
use super::{is_16bit_env, read_bytes_at, write_target};
use crate::event::Flow;
use crate::machine::Machine;
use crate::memory::access::Privilege;
use iced_x86::Instruction;
use mmu::CpuMode;

/// Which of the four layouts applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Real-address or virtual-8086 mode format.
    real: bool,
    /// 16-bit operand size (14-byte environment).
    bits16: bool,
}

impl Layout {
    fn of(m: &Machine, i: &Instruction) -> Self {
        Self {
            real: matches!(m.cpu.mode.mode, CpuMode::Real | CpuMode::Virtual8086),
            bits16: is_16bit_env(i),
        }
    }

    fn env_len(self) -> usize {
        if self.bits16 {
            14
        } else {
            28
        }
    }

    fn align(self) -> u64 {
        if self.bits16 {
            2
        } else {
            4
        }
    }
}

/// The environment image of the current state.
fn store_env(m: &Machine, l: Layout) -> [u8; 28] {
    let f = &m.cpu.fpu;
    let mut out = [0u8; 28];
    let tw = f.tag_word();
    let words: [u32; 7] = if l.real {
        let ip = ((f.fcs as u32) << 4).wrapping_add(f.fip as u32);
        let dp = ((f.fds as u32) << 4).wrapping_add(f.fdp as u32);
        let fop = (f.fop & 0x7ff) as u32;
        if l.bits16 {
            let w: [u16; 7] = [
                f.fcw,
                f.fsw,
                tw,
                ip as u16,
                (((ip >> 16) & 0xf) << 12) as u16 | fop as u16,
                dp as u16,
                (((dp >> 16) & 0xf) << 12) as u16,
            ];
            for (k, v) in w.iter().enumerate() {
                out[2 * k..2 * k + 2].copy_from_slice(&v.to_le_bytes());
            }
            return out;
        }
        [
            0xffff_0000 | f.fcw as u32,
            0xffff_0000 | f.fsw as u32,
            0xffff_0000 | tw as u32,
            0xffff_0000 | (ip & 0xffff),
            ((ip >> 16) << 12) | fop,
            0xffff_0000 | (dp & 0xffff),
            (dp >> 16) << 12,
        ]
    } else {
        if l.bits16 {
            let w: [u16; 7] = [f.fcw, f.fsw, tw, f.fip as u16, f.fcs, f.fdp as u16, f.fds];
            for (k, v) in w.iter().enumerate() {
                out[2 * k..2 * k + 2].copy_from_slice(&v.to_le_bytes());
            }
            return out;
        }
        [
            0xffff_0000 | f.fcw as u32,
            0xffff_0000 | f.fsw as u32,
            0xffff_0000 | tw as u32,
            f.fip as u32,
            f.fcs as u32 | ((f.fop as u32 & 0x7ff) << 16),
            f.fdp as u32,
            0xffff_0000 | f.fds as u32,
        ]
    };
    for (k, v) in words.iter().enumerate() {
        out[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Loads an environment image.
fn load_env(m: &mut Machine, l: Layout, b: &[u8]) {
    let w16 = |k: usize| u16::from_le_bytes([b[2 * k], b[2 * k + 1]]);
    let w32 = |k: usize| u32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]]);
    let (fcw, fsw, tw, fip, fcs, fop, fdp, fds) = match (l.real, l.bits16) {
        (true, true) => {
            let ip = w16(3) as u32 | ((w16(4) as u32 >> 12) << 16);
            let dp = w16(5) as u32 | ((w16(6) as u32 >> 12) << 16);
            (w16(0), w16(1), w16(2), ip, 0, w16(4) & 0x7ff, dp, 0)
        }
        (true, false) => {
            let ip = (w32(3) & 0xffff) | (((w32(4) >> 12) & 0xffff) << 16);
            let dp = (w32(5) & 0xffff) | (((w32(6) >> 12) & 0xffff) << 16);
            let fop = (w32(4) & 0x7ff) as u16;
            (
                w32(0) as u16,
                w32(1) as u16,
                w32(2) as u16,
                ip,
                0,
                fop,
                dp,
                0,
            )
        }
        (false, true) => (
            w16(0),
            w16(1),
            w16(2),
            w16(3) as u32,
            w16(4),
            0,
            w16(5) as u32,
            w16(6),
        ),
        (false, false) => {
            let sel = w32(4);
            (
                w32(0) as u16,
                w32(1) as u16,
                w32(2) as u16,
                w32(3),
                sel as u16,
                ((sel >> 16) & 0x7ff) as u16,
                w32(5),
                w32(6) as u16,
            )
        }
    };
    let f = &mut m.cpu.fpu;
    f.fcw = fcw_of(fcw);
    f.fsw = fsw;
    f.fip = fip as u64;
    f.fcs = fcs;
    f.fop = fop;
    f.fdp = fdp as u64;
    f.fds = fds;
    f.load_tag_word(tw);
    f.update_summary();
}

/// FNSTENV m14/28byte: stores the environment, then masks all exceptions
/// (no wait).
pub fn fnstenv(m: &mut Machine, i: &Instruction) -> Flow {
    check_nm(m)?;
    let l = Layout::of(m, i);
    let img = store_env(m, l);
    write_image(m, i, &img[..l.env_len()], l.align())?;
    m.cpu.fpu.fcw |= exc::ALL as u16;
    m.cpu.fpu.update_summary();
    Ok(())
}

fn write_image(m: &mut Machine, i: &Instruction, data: &[u8], align: u64) -> Flow {
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    let la = write_target(m, seg, off, data.len(), align)?;
    m.write_linear_bytes(la, data, Privilege::Current)
}

/// FLDENV m14/28byte.
pub fn fldenv(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let l = Layout::of(m, i);
    let mut b = [0u8; 28];
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    read_bytes_at(m, seg, off, &mut b[..l.env_len()], l.align())?;
    load_env(m, l, &b);
    Ok(())
}

/// FNSAVE m94/108byte: the environment and ST(0)..ST(7), then FNINIT (no
/// wait).
pub fn fnsave(m: &mut Machine, i: &Instruction) -> Flow {
    check_nm(m)?;
    let l = Layout::of(m, i);
    let n = l.env_len();
    let mut img = [0u8; 108];
    img[..n].copy_from_slice(&store_env(m, l)[..n]);
    for k in 0..8 {
        let v = m.cpu.fpu.read_st(k).to_bytes();
        img[n + 10 * k..n + 10 * k + 10].copy_from_slice(&v);
    }
    write_image(m, i, &img[..n + 80], l.align())?;
    m.cpu.fpu.init_x87();
    Ok(())
}

/// FRSTOR m94/108byte.
pub fn frstor(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let l = Layout::of(m, i);
    let n = l.env_len();
    let mut b = [0u8; 108];
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    read_bytes_at(m, seg, off, &mut b[..n + 80], l.align())?;
    // Registers first (stack order relative to the new TOP), then the
    // environment, whose tag word is re-derived from them.
    let fsw = if l.bits16 {
        u16::from_le_bytes([b[2], b[3]])
    } else {
        u16::from_le_bytes([b[4], b[5]])
    };
    let top = ((fsw >> 11) & 7) as usize;
    for k in 0..8 {
        let mut r = [0u8; 10];
        r.copy_from_slice(&b[n + 10 * k..n + 10 * k + 10]);
        m.cpu.fpu.st[(top + k) & 7] = r;
    }
    load_env(m, l, &b[..n]);
    Ok(())
}
