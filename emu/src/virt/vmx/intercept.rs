//! Instructions in VMX non-root operation (SDM Vol. 3C 26.1, "Instructions
//! That Cause VM Exits"): the handler's intercept call site reaches here after
//! the faults that outrank VM exits; `vmx-model`'s [`decide`] functions say
//! whether the instruction exits, and this file builds the exit information
//! from the decoded instruction (qualification, instruction length and
//! information, guest-linear address).

use super::bus::Bus;
use super::operands::{displacement, gpr, insn_exit, mem_operand, operand};
use super::PendingExit;
use crate::event::{Event, Flow};
use crate::machine::Machine;
use crate::virt::{Intercept, TableReg};
use iced_x86::{Instruction, Mnemonic, OpKind};
use mmu::SegReg;
use vmx_model::controls::{Proc2Controls as P2, ProcControls as P1};
use vmx_model::decide::{self, Decision, Insn};
use vmx_model::exit::insn_info::{self, AddressSize, DescriptorTableInsn, LdtrTrInsn, OperandSize};
use vmx_model::exit::qual::{self, CrAccess, IoAccess};
use vmx_model::exit::{ExitInfo, ExitReason};

/// Decides an intercept in VMX non-root operation: `Err` with the VM exit to
/// perform, `Err(#UD)` for an instruction a secondary control disables, or
/// `Ok` to execute it (with the changes of [`super::shadow`]).
pub fn intercept(m: &mut Machine, i: &Instruction, what: Intercept) -> Flow {
    if let Intercept::TaskSwitch { selector, source } = what {
        // Task switches exit unconditionally (SDM Vol. 3C 26.1.2), after the
        // checks on the gate and the new TSS descriptor.
        use crate::interp::task::TaskSource as S;
        let (src, len) = match source {
            S::Call => (0, Some(i.len() as u32)),
            S::Iret => (1, Some(i.len() as u32)),
            S::Jmp => (2, Some(i.len() as u32)),
            S::Interrupt { .. } => (3, None),
        };
        return Err(super::task_switch(m, selector, src, len));
    }
    match exit_for(m, i, what)? {
        Some(info) => Err(super::exit_event(m, PendingExit::new(info))),
        None => Ok(()),
    }
}

/// The exit for `what`, if it exits.
fn exit_for(m: &mut Machine, i: &Instruction, what: Intercept) -> Result<Option<ExitInfo>, Event> {
    let c = m.virt.vmx.guest.ctls;
    let simple = |d: Insn| decided(i, decide::instruction(&c, d), 0);
    Ok(match what {
        Intercept::Cpuid => simple(Insn::Cpuid)?,
        Intercept::Hlt => simple(Insn::Hlt)?,
        Intercept::Invd => simple(Insn::Invd)?,
        Intercept::Wbinvd => simple(Insn::Wbinvd)?,
        Intercept::Invlpg { la } => decided(i, decide::instruction(&c, Insn::Invlpg), la)?,
        Intercept::Rdpmc => simple(Insn::Rdpmc)?,
        Intercept::Rdtsc => simple(Insn::Rdtsc)?,
        Intercept::Rdtscp => simple(Insn::Rdtscp)?,
        Intercept::Rdrand | Intercept::Rdseed => rdrand(i, &c, what)?,
        Intercept::Pause => pause(m, i),
        Intercept::Monitor => simple(Insn::Monitor)?,
        Intercept::Mwait { armed } => {
            decided(i, decide::instruction(&c, Insn::Mwait), armed as u64)?
        }
        Intercept::Xsetbv => simple(Insn::Xsetbv)?,
        Intercept::Xsaves { mask } | Intercept::Xrstors { mask } => {
            let d = if matches!(what, Intercept::Xsaves { .. }) {
                Insn::Xsaves { mask }
            } else {
                Insn::Xrstors { mask }
            };
            let mut info = decided(i, decide::instruction(&c, d), displacement(m, i))?;
            if let Some(info) = &mut info {
                info.instruction_info = Some(insn_info::vmx_memory(mem_operand(i)));
            }
            info
        }
        Intercept::Invpcid => {
            let mut info = decided(
                i,
                decide::instruction(&c, Insn::Invpcid),
                displacement(m, i),
            )?;
            if let Some(info) = &mut info {
                info.instruction_info = Some(insn_info::invept_invpcid_invvpid(
                    mem_operand(i),
                    gpr(i.op0_register()),
                ));
            }
            info
        }
        Intercept::Rdmsr { index } => msr(m, i, index, false),
        Intercept::Wrmsr { index, .. } => msr(m, i, index, true),
        Intercept::Io {
            port,
            size,
            input,
            string,
            rep,
        } => io(m, i, port, size, input, string, rep),
        Intercept::CrRead { cr } => cr_read(i, &c, cr)?,
        Intercept::CrWrite { cr, value } => cr_write(i, &c, cr, value)?,
        Intercept::Clts => decide::clts_exits(&c).then(|| cr_exit(i, 0, CrAccess::Clts)),
        Intercept::Lmsw { value } => decide::lmsw_exits(&c, value).then(|| {
            let memory = i.op_kind(0) == OpKind::Memory;
            let q = qual::cr_access(
                0,
                CrAccess::Lmsw {
                    memory,
                    source: value,
                },
            );
            let mut info = insn_exit(i, ExitReason::ControlRegisterAccess, q);
            if memory {
                info.guest_linear_address = Some(memory_linear(m, i));
            }
            info
        }),
        Intercept::DrRead { dr } => mov_dr(i, &c, dr, true)?,
        Intercept::DrWrite { dr } => mov_dr(i, &c, dr, false)?,
        Intercept::DescriptorTable { reg, write } => descriptor_table(m, i, &c, reg, write)?,
        Intercept::Iret => {
            // IRET ends virtual-NMI blocking (SDM Vol. 3C 26.3, "IRET").
            m.virt.vmx.guest.virtual_nmi_blocked = false;
            None
        }
        Intercept::IntN { .. } | Intercept::Icebp => None,
        Intercept::Pushf | Intercept::Popf | Intercept::Hypercall | Intercept::FerrFreeze => None,
        // Handled before: task switches always exit.
        Intercept::TaskSwitch { .. } => None,
    })
}

/// The exit of a decision with qualification `q`; #UD for a disabled
/// instruction.
fn decided(i: &Instruction, d: Decision, q: u64) -> Result<Option<ExitInfo>, Event> {
    match d {
        Decision::Execute => Ok(None),
        Decision::Undefined => Err(Event::ud()),
        Decision::Exit(r) => Ok(Some(insn_exit(i, r, q))),
    }
}

fn rdrand(
    i: &Instruction,
    c: &decide::Controls,
    what: Intercept,
) -> Result<Option<ExitInfo>, Event> {
    let d = if what == Intercept::Rdseed {
        Insn::Rdseed
    } else {
        Insn::Rdrand
    };
    let mut info = decided(i, decide::instruction(c, d), 0)?;
    if let Some(info) = &mut info {
        let size = match i.op_register(0).size() {
            2 => OperandSize::O16,
            4 => OperandSize::O32,
            _ => OperandSize::O64,
        };
        info.instruction_info = Some(insn_info::rdrand_rdseed(gpr(i.op_register(0)), size));
    }
    Ok(info)
}

/// PAUSE: "PAUSE exiting", else PAUSE-loop exiting at CPL 0 (SDM Vol. 3C
/// 26.1.3), timed by the modelled cycle counter.
fn pause(m: &mut Machine, i: &Instruction) -> Option<ExitInfo> {
    let c = m.virt.vmx.guest.ctls;
    if c.proc.contains(P1::PAUSE_EXITING) {
        return Some(insn_exit(i, ExitReason::Pause, 0));
    }
    if c.proc2.contains(P2::PAUSE_LOOP_EXITING) && m.cpu.cpl() == 0 {
        let now = m.stats.cycles;
        if m.virt.vmx.guest.pause_loop.pause(&c, now) {
            return Some(insn_exit(i, ExitReason::Pause, 0));
        }
    }
    None
}

fn msr(m: &mut Machine, i: &Instruction, index: u32, write: bool) -> Option<ExitInfo> {
    let c = m.virt.vmx.guest.ctls;
    let bus = Bus::new(m);
    let exits = decide::msr_exits(&c, &mut bus.mem(), index, write);
    let reason = if write {
        ExitReason::Wrmsr
    } else {
        ExitReason::Rdmsr
    };
    exits.then(|| insn_exit(i, reason, 0))
}

#[allow(clippy::too_many_arguments)]
fn io(
    m: &mut Machine,
    i: &Instruction,
    port: u16,
    size: u8,
    input: bool,
    string: bool,
    rep: bool,
) -> Option<ExitInfo> {
    let c = m.virt.vmx.guest.ctls;
    let exits = {
        let bus = Bus::new(m);
        let r = decide::io_exits(&c, &mut bus.mem(), port, size);
        r
    };
    if !exits {
        return None;
    }
    let port_op = if input { 1 } else { 0 };
    let immediate = !string && i.op_kind(port_op) == OpKind::Immediate8;
    let q = qual::io(IoAccess {
        port,
        size,
        input,
        string,
        rep,
        immediate,
    });
    let mut info = insn_exit(i, ExitReason::IoInstruction, q);
    if string {
        let (seg, idx, asize) = string_operand(i, input);
        let off = m.cpu.gpr[idx] & asize_mask(asize);
        info.guest_linear_address = Some(seg_linear(m, seg, off));
        info.instruction_info = Some(insn_info::ins_outs(asize, seg));
    }
    Some(info)
}

/// The memory operand of INS (ES:rDI) or OUTS (seg:rSI): segment, index
/// register and address size.
fn string_operand(i: &Instruction, input: bool) -> (SegReg, usize, AddressSize) {
    let kind = (0..i.op_count())
        .map(|n| i.op_kind(n))
        .find(|k| !matches!(k, OpKind::Register))
        .unwrap_or(OpKind::MemorySegRSI);
    let asize = match kind {
        OpKind::MemorySegSI | OpKind::MemoryESDI => AddressSize::A16,
        OpKind::MemorySegESI | OpKind::MemoryESEDI => AddressSize::A32,
        _ => AddressSize::A64,
    };
    if input {
        (SegReg::Es, 7, asize)
    } else {
        (crate::interp::operand::seg_of(i.memory_segment()), 6, asize)
    }
}

fn asize_mask(a: AddressSize) -> u64 {
    match a {
        AddressSize::A16 => 0xffff,
        AddressSize::A32 => 0xffff_ffff,
        AddressSize::A64 => u64::MAX,
    }
}

/// The linear address of `seg:off` without checks (exit information only).
fn seg_linear(m: &Machine, seg: SegReg, off: u64) -> u64 {
    let base = if m.cpu.long64() && !matches!(seg, SegReg::Fs | SegReg::Gs) {
        0
    } else {
        m.cpu.seg(seg).base
    };
    m.wrap_linear(base.wrapping_add(off))
}

/// The linear address of the instruction's memory operand.
fn memory_linear(m: &Machine, i: &Instruction) -> u64 {
    seg_linear(m, m.mem_seg(i), m.effective_address(i))
}

fn cr_exit(i: &Instruction, cr: u8, access: CrAccess) -> ExitInfo {
    insn_exit(
        i,
        ExitReason::ControlRegisterAccess,
        qual::cr_access(cr, access),
    )
}

/// The general-purpose register of MOV CR/DR.
fn mov_gpr(i: &Instruction) -> u8 {
    let r = if i.op0_register().is_gpr() {
        i.op0_register()
    } else {
        i.op1_register()
    };
    gpr(r)
}

fn cr_read(i: &Instruction, c: &decide::Controls, cr: u8) -> Result<Option<ExitInfo>, Event> {
    // SMSW and MOV from CR0/CR4 never exit: they read the shadows.
    if i.mnemonic() != Mnemonic::Mov {
        return Ok(None);
    }
    let d = match cr {
        3 => Insn::MovFromCr3,
        8 => Insn::MovFromCr8,
        _ => return Ok(None),
    };
    let access = CrAccess::MovFrom { gpr: mov_gpr(i) };
    Ok(match decide::instruction(c, d) {
        Decision::Exit(_) => Some(cr_exit(i, cr, access)),
        _ => None,
    })
}

fn cr_write(
    i: &Instruction,
    c: &decide::Controls,
    cr: u8,
    value: u64,
) -> Result<Option<ExitInfo>, Event> {
    let exits = match cr {
        0 => decide::cr0_write_exits(c, value),
        3 => decide::cr3_load_exits(c, value),
        4 => decide::cr4_write_exits(c, value),
        8 => decide::instruction(c, Insn::MovToCr8) != Decision::Execute,
        _ => false,
    };
    let access = CrAccess::MovTo { gpr: mov_gpr(i) };
    Ok(exits.then(|| cr_exit(i, cr, access)))
}

fn mov_dr(
    i: &Instruction,
    c: &decide::Controls,
    dr: u8,
    from: bool,
) -> Result<Option<ExitInfo>, Event> {
    decided(
        i,
        decide::instruction(c, Insn::MovDr),
        qual::mov_dr(dr, from, mov_gpr(i)),
    )
}

/// LGDT, LIDT, SGDT, SIDT (exit 46) and LLDT, LTR, SLDT, STR (exit 47) with
/// "descriptor-table exiting".
fn descriptor_table(
    m: &Machine,
    i: &Instruction,
    c: &decide::Controls,
    reg: TableReg,
    write: bool,
) -> Result<Option<ExitInfo>, Event> {
    let gdt_idt = matches!(reg, TableReg::Gdtr | TableReg::Idtr);
    let d = if gdt_idt {
        Insn::GdtrIdtrAccess
    } else {
        Insn::LdtrTrAccess
    };
    let mut info = decided(i, decide::instruction(c, d), displacement(m, i))?;
    if let Some(info) = &mut info {
        info.instruction_info = Some(if gdt_idt {
            let which = match (reg, write) {
                (TableReg::Gdtr, false) => DescriptorTableInsn::Sgdt,
                (TableReg::Idtr, false) => DescriptorTableInsn::Sidt,
                (TableReg::Gdtr, true) => DescriptorTableInsn::Lgdt,
                _ => DescriptorTableInsn::Lidt,
            };
            // Operand size: 32-bit unless the 16-bit form (64-bit mode reports 1).
            let op32 = m.cpu.long64() || has_osize32(i);
            insn_info::gdtr_idtr(which, mem_operand(i), op32)
        } else {
            let which = match (reg, write) {
                (TableReg::Ldtr, false) => LdtrTrInsn::Sldt,
                (TableReg::Tr, false) => LdtrTrInsn::Str,
                (TableReg::Ldtr, true) => LdtrTrInsn::Lldt,
                _ => LdtrTrInsn::Ltr,
            };
            insn_info::ldtr_tr(which, operand(i, 0))
        });
    }
    Ok(info)
}

/// True for the 32-bit-operand forms of the descriptor-table instructions.
fn has_osize32(i: &Instruction) -> bool {
    use iced_x86::Code as C;
    !matches!(
        i.code(),
        C::Lgdt_m1632_16 | C::Lidt_m1632_16 | C::Sgdt_m1632_16 | C::Sidt_m1632_16
    )
}
