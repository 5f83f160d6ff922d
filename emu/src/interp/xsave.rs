//! The XSAVE feature set (SDM Vol. 1 chapter 13; Vol. 2 XGETBV, XSETBV,
//! XSAVE, XSAVEOPT, XSAVEC, XSAVES, XRSTOR, XRSTORS).
//!
//! nestemu manages two state components, x87 (bit 0) and SSE (bit 1), so the
//! XSAVE area is the 512-byte legacy region plus the 64-byte header: 576
//! bytes in both formats. What the implementation chose where the SDM leaves
//! a choice, all deterministic:
//!
//! - XINUSE (13.6) is exact: bit i is 0 exactly when component i is in its
//!   initial configuration (x87: FCW 037FH, FSW 0, all tags empty, FOP, FIP,
//!   FDP, FCS, FDS and ST0-ST7 zero; SSE: the XMM registers of the current
//!   mode zero and MXCSR 1F80H).
//! - XSAVEOPT and XSAVES use the init optimization (a component in its
//!   initial configuration is not written) and never the modified
//!   optimization; XSAVEC writes only components in use, as the SDM
//!   requires.
//! - Every byte an instruction will write is translated for writing before
//!   the first byte is written, so a page fault leaves memory untouched.
//! - The standard form of XRSTOR loads MXCSR whenever RFBM[1] is set; the
//!   compacted form (and XRSTORS) treats MXCSR as part of the SSE component:
//!   loaded with the XMM registers, or set to 1F80H when XSTATE_BV[1] is 0
//!   (13.8.1, 13.8.2).
//!
//! Faults come in the SDM's order: #UD (CR4.OSXSAVE = 0), #NM (CR0.TS), the
//! CPL check of XSAVES/XRSTORS, the VM exit of XSAVES/XRSTORS in VMX
//! non-root operation, 64-byte alignment (#GP(0)), segment and page checks,
//! then the header checks of XRSTOR (#GP(0)).

use super::x87::fxsave::{load_x87, load_xmm, store_mxcsr, store_x87, store_xmm, MXCSR_MASK};
use super::Handler;
use crate::cost::InsnClass;
use crate::cpu::cpuid::Feature;
use crate::cpu::FpuState;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::memory::access::{AccessKind, Privilege};
use crate::virt::Intercept;
use iced_x86::{Instruction, Mnemonic};
use mmu::{Cr0, Cr4, SegReg};

/// XCR0 bit of the x87 state component.
pub const X87: u64 = 1 << 0;
/// XCR0 bit of the SSE state component.
pub const SSE: u64 = 1 << 1;
/// The state components XCR0 may enable (CPUID.(EAX=0DH,ECX=0):EDX:EAX).
pub const SUPPORTED_XCR0: u64 = X87 | SSE;
/// The supervisor components IA32_XSS may enable (CPUID.(EAX=0DH,ECX=1):
/// EDX:ECX): none.
pub const SUPPORTED_XSS: u64 = 0;
/// Size of the XSAVE area for any set of the supported components, standard
/// or compacted: the legacy region and the header (13.4).
pub const AREA_SIZE: u32 = 576;
/// XCOMP_BV[63]: the compacted format.
const COMPACTED: u64 = 1 << 63;
/// Offset of the XSAVE header.
const HEADER: usize = 512;

/// The handler for an XSAVE-feature-set instruction.
pub fn handler_for(i: &Instruction) -> Option<(Handler, InsnClass)> {
    use Mnemonic as M;
    let h: Handler = match i.mnemonic() {
        M::Xgetbv => xgetbv,
        M::Xsetbv => xsetbv,
        M::Xsave | M::Xsave64 | M::Xsaveopt | M::Xsaveopt64 => xsave,
        M::Xsavec | M::Xsavec64 | M::Xsaves | M::Xsaves64 => xsavec,
        M::Xrstor | M::Xrstor64 | M::Xrstors | M::Xrstors64 => xrstor,
        _ => return None,
    };
    Some((h, InsnClass::System))
}

/// The initial configuration of the x87 state (SDM Vol. 1 13.6).
fn x87_init(f: &FpuState) -> bool {
    f.fcw == 0x037f
        && f.fsw == 0
        && f.abridged_tag() == 0
        && f.fop == 0
        && f.fip == 0
        && f.fdp == 0
        && f.fcs == 0
        && f.fds == 0
        && f.st.iter().all(|r| r.iter().all(|&b| b == 0))
}

/// XMM registers that belong to the SSE component in the current mode.
fn xmm_count(m: &Machine) -> usize {
    if m.cpu.long64() {
        16
    } else {
        8
    }
}

/// XINUSE for the supported components (SDM Vol. 1 13.6).
pub fn xinuse(m: &Machine) -> u64 {
    let f = &m.cpu.fpu;
    let mut v = 0;
    if !x87_init(f) {
        v |= X87;
    }
    if f.mxcsr != 0x1f80 || f.xmm[..xmm_count(m)].iter().any(|&x| x != 0) {
        v |= SSE;
    }
    v
}

/// Puts component x87 in its initial configuration (FNINIT plus zeroed
/// pointers and registers).
fn init_x87(f: &mut FpuState) {
    let d = FpuState::default();
    f.fcw = d.fcw;
    f.fsw = d.fsw;
    f.ftw = d.ftw;
    f.fop = 0;
    f.fip = 0;
    f.fdp = 0;
    f.fcs = 0;
    f.fds = 0;
    f.st = d.st;
    f.update_summary();
}

/// #UD unless CR4.OSXSAVE (every instruction of the set).
fn require_osxsave(m: &Machine) -> Flow {
    if !m.cpu.sys.cr4.contains(Cr4::OSXSAVE) {
        return Err(Event::ud());
    }
    Ok(())
}

/// EDX:EAX.
fn edx_eax(m: &Machine) -> u64 {
    (m.cpu.gpr[2] as u32 as u64) << 32 | m.cpu.gpr[0] as u32 as u64
}

/// XGETBV: EDX:EAX = XCR[ECX]. XCR0, and with XGETBV1 the XINUSE bits of
/// XCR0 at ECX = 1; #GP(0) for any other ECX.
pub fn xgetbv(m: &mut Machine, _i: &Instruction) -> Flow {
    require_osxsave(m)?;
    let v = match m.cpu.gpr[1] as u32 {
        0 => m.cpu.sys.xcr0,
        1 if m.config.model.has(Feature::Xgetbv1) => m.cpu.sys.xcr0 & xinuse(m),
        _ => return Err(Event::gp0()),
    };
    m.cpu.gpr[0] = v as u32 as u64;
    m.cpu.gpr[2] = v >> 32;
    Ok(())
}

/// XSETBV: XCR[ECX] = EDX:EAX. CPL 0 only (so #GP(0) in virtual-8086
/// mode); only XCR0; bit 0 must stay set and no unsupported bit may be set.
/// VMX non-root operation exits unconditionally, SVM by intercept, after the
/// #UD and CPL checks and before the value checks.
pub fn xsetbv(m: &mut Machine, i: &Instruction) -> Flow {
    require_osxsave(m)?;
    if m.cpu.cpl() != 0 {
        return Err(Event::gp0());
    }
    m.intercept(i, Intercept::Xsetbv)?;
    let v = edx_eax(m);
    if m.cpu.gpr[1] as u32 != 0 || v & X87 == 0 || v & !SUPPORTED_XCR0 != 0 {
        return Err(Event::gp0());
    }
    m.cpu.sys.xcr0 = v;
    Ok(())
}

/// True for the REX.W forms (64-bit FIP/FDP in the x87 part).
fn wide(i: &Instruction) -> bool {
    use Mnemonic as M;
    matches!(
        i.mnemonic(),
        M::Xsave64 | M::Xsaveopt64 | M::Xsavec64 | M::Xsaves64 | M::Xrstor64 | M::Xrstors64
    )
}

/// Where the area is: its segment, its offset, and the address-size mask
/// offsets within it wrap at (SDM Vol. 1 3.7.5).
type Area = (SegReg, u64, u64);

/// The address-size mask of the memory operand.
fn address_mask(i: &Instruction) -> u64 {
    use iced_x86::Register as R;
    let reg = [i.memory_base(), i.memory_index()]
        .into_iter()
        .find(|&r| r != R::None && r != R::RIP && r != R::EIP);
    let bytes = match reg {
        Some(r) => r.size(),
        None if matches!(i.memory_base(), R::EIP) => 4,
        None if matches!(i.memory_base(), R::RIP) => 8,
        None => match i.memory_displ_size() {
            2 => 2,
            4 => 4,
            _ => 8,
        },
    };
    super::operand::size_mask(bytes)
}

/// The checks every save/restore shares after its own #UD/#GP/exit checks:
/// #NM for CR0.TS, then 64-byte alignment of the linear address (#GP(0)
/// whatever the segment).
fn area(m: &Machine, i: &Instruction) -> Result<Area, Event> {
    if m.cpu.sys.cr0.contains(Cr0::TS) {
        return Err(Event::nm());
    }
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    let base = if m.cpu.long64() && !matches!(seg, SegReg::Fs | SegReg::Gs) {
        0
    } else {
        m.cpu.seg(seg).base
    };
    if base.wrapping_add(off) & 63 != 0 {
        return Err(Event::gp0());
    }
    Ok((seg, off, address_mask(i)))
}

/// Linear address of bytes `lo..hi` of the area, after the segment checks.
fn span(
    m: &Machine,
    (seg, off, mask): Area,
    lo: usize,
    hi: usize,
    write: bool,
) -> Result<u64, Event> {
    let o = off.wrapping_add(lo as u64) & mask;
    m.linear(seg, o, hi - lo, write)
}

/// Reads bytes `lo..hi` of the area into `img[lo..hi]`.
fn read(m: &mut Machine, a: Area, img: &mut [u8], lo: usize, hi: usize) -> Flow {
    let la = span(m, a, lo, hi, false)?;
    m.read_linear_bytes(la, &mut img[lo..hi], Privilege::Current)
}

/// Writes the byte ranges `parts` of `img` to the area, after translating
/// every page they touch for writing, so a fault writes nothing.
fn write(m: &mut Machine, a: Area, img: &[u8], parts: &[(usize, usize)]) -> Flow {
    let lo = parts.iter().map(|p| p.0).min().unwrap_or(0);
    let hi = parts.iter().map(|p| p.1).max().unwrap_or(0);
    if lo >= hi {
        return Ok(());
    }
    let la = span(m, a, lo, hi, true)?;
    m.translate(la, AccessKind::Write, Privilege::Current)?;
    let last = m.wrap_linear(la.wrapping_add((hi - lo - 1) as u64));
    m.translate(last, AccessKind::Write, Privilege::Current)?;
    for &(l, h) in parts {
        if l < h {
            let la = span(m, a, l, h, true)?;
            m.write_linear_bytes(la, &img[l..h], Privilege::Current)?;
        }
    }
    Ok(())
}

/// XSAVE and XSAVEOPT: the standard format. For each component of RFBM =
/// XCR0 & EDX:EAX the state is written (XSAVEOPT skips components in their
/// initial configuration), MXCSR whenever RFBM[1] is set, and XSTATE_BV
/// bits of RFBM become XINUSE (13.7, 13.9).
pub fn xsave(m: &mut Machine, i: &Instruction) -> Flow {
    require_osxsave(m)?;
    let a = area(m, i)?;
    let opt = matches!(i.mnemonic(), Mnemonic::Xsaveopt | Mnemonic::Xsaveopt64);
    let rfbm = m.cpu.sys.xcr0 & edx_eax(m);
    let inuse = xinuse(m);
    let mut img = [0u8; AREA_SIZE as usize];
    read(m, a, &mut img, HEADER, HEADER + 8)?;
    let old_bv = u64::from_le_bytes(img[HEADER..HEADER + 8].try_into().expect("8 bytes"));
    let f = &m.cpu.fpu;
    let n = xmm_count(m);
    let mut parts = Vec::with_capacity(5);
    if rfbm & X87 != 0 && (!opt || inuse & X87 != 0) {
        store_x87(f, wide(i), &mut img);
        parts.extend([(0, 24), (32, 160)]);
    }
    if rfbm & SSE != 0 {
        store_mxcsr(f, &mut img);
        parts.push((24, 32));
        if !opt || inuse & SSE != 0 {
            store_xmm(f, n, &mut img);
            parts.push((160, 160 + 16 * n));
        }
    }
    let bv = (old_bv & !rfbm) | (inuse & rfbm);
    img[HEADER..HEADER + 8].copy_from_slice(&bv.to_le_bytes());
    parts.push((HEADER, HEADER + 8));
    write(m, a, &img, &parts)
}

/// XSAVEC and XSAVES: the compacted format. XSTATE_BV = RFBM & XINUSE,
/// XCOMP_BV = RFBM | bit 63; only components in use are written, MXCSR
/// whenever RFBM[1] is set. XSAVES is CPL 0 only, adds IA32_XSS to RFBM and
/// needs "enable XSAVES/XRSTORS" in VMX non-root operation (13.10, 13.11).
pub fn xsavec(m: &mut Machine, i: &Instruction) -> Flow {
    require_osxsave(m)?;
    let supervisor = matches!(i.mnemonic(), Mnemonic::Xsaves | Mnemonic::Xsaves64);
    let a = if supervisor {
        supervisor_checks(m, i, false)?
    } else {
        area(m, i)?
    };
    let mut mask = m.cpu.sys.xcr0;
    if supervisor {
        mask |= m.cpu.msr.xss;
    }
    let rfbm = mask & edx_eax(m);
    let inuse = xinuse(m);
    let mut img = [0u8; AREA_SIZE as usize];
    let f = &m.cpu.fpu;
    let n = xmm_count(m);
    let mut parts = Vec::with_capacity(5);
    if rfbm & X87 & inuse != 0 {
        store_x87(f, wide(i), &mut img);
        parts.extend([(0, 24), (32, 160)]);
    }
    if rfbm & SSE != 0 {
        store_mxcsr(f, &mut img);
        parts.push((24, 32));
        if inuse & SSE != 0 {
            store_xmm(f, n, &mut img);
            parts.push((160, 160 + 16 * n));
        }
    }
    img[HEADER..HEADER + 8].copy_from_slice(&(rfbm & inuse).to_le_bytes());
    img[HEADER + 8..HEADER + 16].copy_from_slice(&(rfbm | COMPACTED).to_le_bytes());
    parts.push((HEADER, HEADER + 16));
    write(m, a, &img, &parts)
}

/// XSAVES/XRSTORS: #NM, then #GP(0) unless CPL 0, then the VM exit (or #UD)
/// in VMX non-root operation for EDX:EAX & IA32_XSS & the XSS-exiting
/// bitmap (SDM Vol. 3C 26.1.3), then alignment.
fn supervisor_checks(m: &mut Machine, i: &Instruction, restore: bool) -> Result<Area, Event> {
    if m.cpu.sys.cr0.contains(Cr0::TS) {
        return Err(Event::nm());
    }
    if m.cpu.cpl() != 0 {
        return Err(Event::gp0());
    }
    let mask = edx_eax(m) & m.cpu.msr.xss;
    m.intercept(
        i,
        if restore {
            Intercept::Xrstors { mask }
        } else {
            Intercept::Xsaves { mask }
        },
    )?;
    area(m, i)
}

/// XRSTOR and XRSTORS (13.8, 13.12). The header is checked first (#GP(0)):
/// byte 16-23 must be zero; the standard form needs XCOMP_BV = 0 and
/// XSTATE_BV within XCR0; the compacted form (XCOMP_BV[63] set, the only
/// form of XRSTORS) needs XCOMP_BV[62:0] within XCR0 (| IA32_XSS),
/// XSTATE_BV within XCOMP_BV and bytes 24-63 zero. Then each component of
/// RFBM is loaded if its XSTATE_BV bit is set and initialized if not.
pub fn xrstor(m: &mut Machine, i: &Instruction) -> Flow {
    require_osxsave(m)?;
    let supervisor = matches!(i.mnemonic(), Mnemonic::Xrstors | Mnemonic::Xrstors64);
    let a = if supervisor {
        supervisor_checks(m, i, true)?
    } else {
        area(m, i)?
    };
    let mut img = [0u8; AREA_SIZE as usize];
    read(m, a, &mut img, HEADER, HEADER + 64)?;
    let q = |k: usize| {
        let o = HEADER + 8 * k;
        u64::from_le_bytes(img[o..o + 8].try_into().expect("8 bytes"))
    };
    let (bv, comp) = (q(0), q(1));
    let mut mask = m.cpu.sys.xcr0;
    if supervisor {
        mask |= m.cpu.msr.xss;
    }
    let compacted = comp & COMPACTED != 0;
    let header_ok = q(2) == 0
        && if compacted {
            comp & !COMPACTED & !mask == 0 && bv & !comp == 0 && (3..8).all(|k| q(k) == 0)
        } else {
            !supervisor && comp == 0 && bv & !mask == 0
        };
    if !header_ok {
        return Err(Event::gp0());
    }
    let rfbm = mask & edx_eax(m);
    let n = xmm_count(m);
    if rfbm & X87 & bv != 0 {
        read(m, a, &mut img, 0, 160)?;
    }
    let load_mxcsr = rfbm & SSE != 0 && (!compacted || bv & SSE != 0);
    if load_mxcsr {
        read(m, a, &mut img, 24, 32)?;
    }
    if rfbm & SSE & bv != 0 {
        read(m, a, &mut img, 160, 160 + 16 * n)?;
    }
    let mxcsr = u32::from_le_bytes(img[24..28].try_into().expect("4 bytes"));
    if load_mxcsr && mxcsr & !MXCSR_MASK != 0 {
        return Err(Event::gp0());
    }
    let wide = wide(i);
    let f = &mut m.cpu.fpu;
    if rfbm & X87 != 0 {
        if bv & X87 != 0 {
            load_x87(f, wide, &img);
        } else {
            init_x87(f);
        }
    }
    if rfbm & SSE != 0 {
        if load_mxcsr {
            f.mxcsr = mxcsr;
        } else if compacted {
            f.mxcsr = 0x1f80;
        }
        if bv & SSE != 0 {
            load_xmm(f, n, &img);
        } else {
            f.xmm[..n].fill(0);
        }
    }
    Ok(())
}
