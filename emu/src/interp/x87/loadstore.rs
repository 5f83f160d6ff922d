//! Data transfer: FLD, FILD, FBLD, FST, FSTP, FIST, FISTP, FISTTP, FBSTP,
//! the constants FLD1..FLDZ, FXCH, FCMOVcc, FFREE(P), FINCSTP, FDECSTP
//! (SDM Vol. 1 8.3.3-8.3.4; Vol. 2A entries).

use super::float::{consts, convert, exc, Fx, F80};
use super::state::{
    amd_rules, prologue, report, stack_overflow, stack_underflow, sw, tag, update_pointers,
};
use super::{read_operand, read_operand_bytes, st_index, write_operand_bytes};
use crate::event::Flow;
use crate::machine::Machine;
use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind};
use mmu::Rflags;

/// The x87 fields a store to memory commits only after the write succeeded:
/// a fault on the write leaves the FPU as it was (SDM Vol. 1 8.1.8, faults
/// are precise).
struct Pointers {
    fsw: u16,
    fop: u16,
    fip: u64,
    fcs: u16,
    fdp: u64,
    fds: u16,
}

impl Pointers {
    fn save(m: &Machine) -> Self {
        let f = &m.cpu.fpu;
        Self {
            fsw: f.fsw,
            fop: f.fop,
            fip: f.fip,
            fcs: f.fcs,
            fdp: f.fdp,
            fds: f.fds,
        }
    }

    fn restore(self, m: &mut Machine) {
        let f = &mut m.cpu.fpu;
        f.fsw = self.fsw;
        f.fop = self.fop;
        f.fip = self.fip;
        f.fcs = self.fcs;
        f.fdp = self.fdp;
        f.fds = self.fds;
    }
}

/// Checks that the memory destination of a store can be written, before the
/// stack or the value is looked at: a segment, alignment or page fault on
/// the destination is raised even when ST(0) is empty with #IS unmasked, or
/// an unmasked numeric exception suppresses the store (faults are precise
/// and come first: SDM Vol. 1 8.1.8 and 8.6, Vol. 3A 6.9; the hardware
/// differential test shows the #PF of an FSTP, FISTP, FISTTP or FBSTP whose
/// ST(0) is empty).
fn probe_destination(m: &mut Machine, i: &Instruction) -> Flow {
    let seg = m.mem_seg(i);
    let off = m.effective_address(i);
    m.probe_write(seg, off, i.memory_size().size())
}

/// Writes the memory destination of a store; on a fault restores the status
/// and pointers saved before the instruction changed them.
fn store(m: &mut Machine, i: &Instruction, saved: Pointers, data: &[u8]) -> Flow {
    let r = if data.len() <= 8 {
        let mut b = [0u8; 8];
        b[..data.len()].copy_from_slice(data);
        let seg = m.mem_seg(i);
        let off = m.effective_address(i);
        m.write_mem(seg, off, data.len(), u64::from_le_bytes(b))
    } else {
        write_operand_bytes(m, i, data, 8)
    };
    if r.is_err() {
        saved.restore(m);
    }
    r
}

/// Pushes `v`, or signals stack overflow if ST(7) is in use.
fn push_checked(m: &mut Machine, i: &Instruction, v: F80) {
    if !m.cpu.fpu.is_empty(7) {
        stack_overflow(m, i);
        return;
    }
    m.cpu.fpu.set_c1(false);
    m.cpu.fpu.push(v);
}

/// FLD m32fp/m64fp/m80fp and FLD ST(i).
///
/// A single or double denormal source raises #D (SDM Vol. 2A FLD). Unmasked,
/// Intel's rule for an unmasked #D applies: nothing is loaded (SDM Vol. 1
/// 8.5.2 and 4.9.2). AMD processors load the (exactly widened) value anyway
/// and set DE and ES, as the hardware differential test shows; arithmetic
/// with a denormal operand leaves its destination alone on both.
pub fn fld(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let mut fx = Fx::default();
    let v = if i.op_kind(0) == OpKind::Memory {
        let v = match i.memory_size() {
            MemorySize::Float80 => {
                let mut b = [0u8; 10];
                read_operand_bytes(m, i, &mut b, 8)?;
                F80::from_bytes(&b)
            }
            MemorySize::Float64 => {
                convert::load(convert::from_f64(read_operand(m, i)?, &mut fx), &mut fx)
            }
            _ => convert::load(
                convert::from_f32(read_operand(m, i)? as u32, &mut fx),
                &mut fx,
            ),
        };
        Some(v)
    } else {
        None
    };
    update_pointers(m, i);
    // An empty source is reported before a full destination.
    if v.is_none() && m.cpu.fpu.is_empty(st_index(i, 0)) {
        if stack_underflow(m, i, None, false) {
            m.cpu.fpu.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    if !m.cpu.fpu.is_empty(7) {
        stack_overflow(m, i);
        return Ok(());
    }
    let v = match v {
        Some(v) => v,
        None => m.cpu.fpu.read_st(st_index(i, 0)),
    };
    let denormal_load = fx.flags & exc::DE != 0 && fx.flags & exc::IE == 0;
    if report(m, i, fx, false) || (denormal_load && amd_rules(m)) {
        m.cpu.fpu.push(v);
    }
    Ok(())
}

/// FILD m16int/m32int/m64int: exact.
pub fn fild(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let mut fx = Fx::default();
    let v = super::arith::read_mem_source(m, i, &mut fx)?;
    update_pointers(m, i);
    push_checked(m, i, v);
    Ok(())
}

/// FBLD m80bcd: exact.
pub fn fbld(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let mut b = [0u8; 10];
    read_operand_bytes(m, i, &mut b, 1)?;
    update_pointers(m, i);
    push_checked(m, i, convert::from_bcd(&b));
    Ok(())
}

/// True for the popping store forms.
fn pops(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Fstp | Mnemonic::Fstpnce | Mnemonic::Fistp | Mnemonic::Fisttp | Mnemonic::Fbstp
    )
}

/// FST/FSTP to memory (m32fp, m64fp, m80fp) or to ST(i), including the
/// FSTP aliases D9 D8+i, DF D0+i and DF D8+i.
pub fn fst(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let pop = pops(i);
    if i.op_kind(0) != OpKind::Memory {
        update_pointers(m, i);
        let d = st_index(i, 0);
        if i.mnemonic() == Mnemonic::Fstpnce && m.cpu.fpu.is_empty(0) {
            // D9 D8+i, "FSTP, no check empty": an empty ST(0) is popped
            // without a stack fault and without storing.
            m.cpu.fpu.set_c1(false);
            m.cpu.fpu.pop();
            return Ok(());
        }
        if m.cpu.fpu.is_empty(0) {
            stack_underflow(m, i, Some(d), pop);
            return Ok(());
        }
        let v = m.cpu.fpu.read_st(0);
        m.cpu.fpu.set_c1(false);
        m.cpu.fpu.write_st(d, v);
        if pop {
            m.cpu.fpu.pop();
        }
        return Ok(());
    }
    probe_destination(m, i)?;
    let saved = Pointers::save(m);
    update_pointers(m, i);
    let size = i.memory_size();
    let mut fx = Fx::default();
    let (data, deliver): ([u8; 10], bool) = if m.cpu.fpu.is_empty(0) {
        if !stack_underflow(m, i, None, false) {
            return Ok(());
        }
        (indefinite_bytes(size), true)
    } else {
        let v = m.cpu.fpu.read_st(0);
        let env = m.cpu.fpu.env();
        let mut out = [0u8; 10];
        match size {
            MemorySize::Float32 => {
                out[..4].copy_from_slice(&convert::to_f32(v, env, &mut fx).to_le_bytes())
            }
            MemorySize::Float64 => {
                out[..8].copy_from_slice(&convert::to_f64(v, env, &mut fx).to_le_bytes())
            }
            _ => out = v.to_bytes(),
        }
        let ok = report(m, i, fx, true);
        (out, ok)
    };
    if deliver {
        store(m, i, saved, &data[..size.size()])?;
        if pop {
            m.cpu.fpu.pop();
        }
    }
    Ok(())
}

/// The real indefinite in a memory format.
fn indefinite_bytes(size: MemorySize) -> [u8; 10] {
    let mut out = [0u8; 10];
    match size {
        MemorySize::Float32 => out[..4].copy_from_slice(&0xffc0_0000u32.to_le_bytes()),
        MemorySize::Float64 => out[..8].copy_from_slice(&0xfff8_0000_0000_0000u64.to_le_bytes()),
        _ => out = F80::INDEFINITE.to_bytes(),
    }
    out
}

/// FIST, FISTP (by RC) and FISTTP (truncating) to m16int/m32int/m64int.
pub fn fist(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    let pop = pops(i);
    probe_destination(m, i)?;
    let saved = Pointers::save(m);
    update_pointers(m, i);
    let size = i.memory_size().size();
    let bits = 8 * size as u32;
    let value = if m.cpu.fpu.is_empty(0) {
        if !stack_underflow(m, i, None, false) {
            return Ok(());
        }
        1u64 << (bits - 1)
    } else {
        let mut fx = Fx::default();
        let truncate = i.mnemonic() == Mnemonic::Fisttp;
        let v = convert::to_int(
            m.cpu.fpu.read_st(0),
            bits,
            truncate,
            m.cpu.fpu.env(),
            &mut fx,
        );
        if !report(m, i, fx, true) {
            return Ok(());
        }
        v
    };
    store(m, i, saved, &value.to_le_bytes()[..size])?;
    if pop {
        m.cpu.fpu.pop();
    }
    Ok(())
}

/// FBSTP m80bcd.
pub fn fbstp(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    probe_destination(m, i)?;
    let saved = Pointers::save(m);
    update_pointers(m, i);
    let data = if m.cpu.fpu.is_empty(0) {
        if !stack_underflow(m, i, None, false) {
            return Ok(());
        }
        convert::BCD_INDEFINITE
    } else {
        let mut fx = Fx::default();
        let b = convert::to_bcd(m.cpu.fpu.read_st(0), m.cpu.fpu.env(), &mut fx);
        if !report(m, i, fx, true) {
            return Ok(());
        }
        b
    };
    store(m, i, saved, &data)?;
    m.cpu.fpu.pop();
    Ok(())
}

/// FLD1, FLDZ, FLDPI, FLDL2E, FLDL2T, FLDLG2, FLDLN2.
pub fn fld_const(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let rc = m.cpu.fpu.env().rc;
    let v = match i.mnemonic() {
        Mnemonic::Fld1 => F80::ONE,
        Mnemonic::Fldz => F80::ZERO,
        Mnemonic::Fldpi => convert::constant(consts::PI, rc),
        Mnemonic::Fldl2e => convert::constant(consts::L2E, rc),
        Mnemonic::Fldl2t => convert::constant(consts::L2T, rc),
        Mnemonic::Fldlg2 => convert::constant(consts::LG2, rc),
        _ => convert::constant(consts::LN2, rc),
    };
    push_checked(m, i, v);
    Ok(())
}

/// FXCH ST(i) (and the aliases DD C8+i, DF C8+i).
pub fn fxch(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let s = if i.op_count() == 2 { st_index(i, 1) } else { 1 };
    let f = &m.cpu.fpu;
    let (mut a, mut b) = (f.read_st(0), f.read_st(s));
    let (ea, eb) = (f.is_empty(0), f.is_empty(s));
    m.cpu.fpu.set_c1(false);
    if ea || eb {
        if !stack_underflow(m, i, None, false) {
            return Ok(());
        }
        if ea {
            a = F80::INDEFINITE;
        }
        if eb {
            b = F80::INDEFINITE;
        }
    }
    m.cpu.fpu.write_st(s, a);
    m.cpu.fpu.write_st(0, b);
    Ok(())
}

/// FCMOVcc ST(0), ST(i) (SDM Vol. 2A FCMOVcc: C1 is only written, to 0,
/// on stack underflow).
pub fn fcmov(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let s = st_index(i, 1);
    if m.cpu.fpu.is_empty(0) || m.cpu.fpu.is_empty(s) {
        stack_underflow(m, i, Some(0), false);
        return Ok(());
    }
    let f = &m.cpu.flags;
    let (cf, zf, pf) = (f.has(Rflags::CF), f.has(Rflags::ZF), f.has(Rflags::PF));
    let take = match i.mnemonic() {
        Mnemonic::Fcmovb => cf,
        Mnemonic::Fcmove => zf,
        Mnemonic::Fcmovbe => cf || zf,
        Mnemonic::Fcmovu => pf,
        Mnemonic::Fcmovnb => !cf,
        Mnemonic::Fcmovne => !zf,
        Mnemonic::Fcmovnbe => !cf && !zf,
        _ => !pf,
    };
    if take {
        let v = m.cpu.fpu.read_st(s);
        m.cpu.fpu.write_st(0, v);
    }
    Ok(())
}

/// FFREE ST(i), and FFREEP ST(i) (DF C0+i): free ST(i), then pop.
pub fn ffree(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let p = m.cpu.fpu.phys(st_index(i, 0));
    m.cpu.fpu.set_tag(p, tag::EMPTY);
    if i.mnemonic() == Mnemonic::Ffreep {
        m.cpu.fpu.pop();
    }
    // C0-C3 are undefined (SDM Vol. 2A FFREE); processors clear C1.
    m.cpu.fpu.set_c1(false);
    Ok(())
}

/// FINCSTP and FDECSTP: TOP +/- 1, tags untouched, C1 = 0.
pub fn fincdecstp(m: &mut Machine, i: &Instruction) -> Flow {
    prologue(m, true)?;
    update_pointers(m, i);
    let t = m.cpu.fpu.top();
    let t = if i.mnemonic() == Mnemonic::Fincstp {
        t + 1
    } else {
        t.wrapping_sub(1)
    };
    m.cpu.fpu.set_top(t);
    m.cpu.fpu.fsw &= !sw::C1;
    Ok(())
}
