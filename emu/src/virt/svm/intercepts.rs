//! Instruction intercepts (APM Vol. 2 15.8-15.14, table 15-7): the
//! interpreter's handlers call [`crate::Machine::intercept`] at the point the
//! architecture checks the intercept (after simple exceptions such as #UD and
//! CPL #GP, before memory and operand exceptions); this file turns the
//! [`Intercept`] into the `svm_model::intercept` decision, with the decode
//! assists (GPR of MOV CR/DR, INTn vector, INVLPG address) and nRIP.
//!
//! Where SVM orders an intercept against an exception differently from VT-x,
//! the arch-specific check is made here: MOV DR with DR7.GD raises #DB before
//! the DR intercept (all exceptions first, table 15-7), so the intercept
//! stands aside and lets the handler raise it.
//!
//! Some intercepts also change what the instruction does while the guest runs:
//! MOV CR8 goes to V_TPR (15.21.2), and CR and EFER write traps are armed to
//! exit once the write completes (15.9, "Trap Intercepts").

use super::{exit_event, state, Guest, PendingTrap};
use crate::event::Flow;
use crate::machine::Machine;
use crate::virt::{Intercept, TableReg};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use mmu::{Cr0, Dr7, SegReg};
use svm_model::intercept::{self as icpt, simple, CrRead, CrWrite, Intercept as Simple, IoAccess};
use svm_model::{AddressSize, ExitInfo};

/// Decides an intercept in SVM guest mode.
pub fn intercept(m: &mut Machine, i: &Instruction, what: Intercept) -> Flow {
    match decide(m, i, what) {
        Some(e) => Err(exit_event(m, e)),
        None => Ok(()),
    }
}

/// The #VMEXIT `what` causes, if any.
fn decide(m: &mut Machine, i: &Instruction, what: Intercept) -> Option<ExitInfo> {
    let next = m.next_rip;
    let svm = &mut m.virt.svm;
    let cfg = &svm.cfg;
    let g = svm.guest.as_mut()?;
    let ctl = &g.controls;
    let one = |s: Simple| simple(ctl, s, next);
    match what {
        Intercept::Cpuid => one(Simple::Cpuid),
        Intercept::Hlt => icpt::hlt(cfg, ctl, next),
        Intercept::Invd => one(Simple::Invd),
        Intercept::Wbinvd => one(Simple::Wbinvd),
        Intercept::Invlpg { la } => icpt::invlpg(cfg, ctl, la, next),
        Intercept::Rdpmc => one(Simple::Rdpmc),
        Intercept::Rdtsc => one(Simple::Rdtsc),
        Intercept::Rdtscp => one(Simple::Rdtscp),
        Intercept::Rdrand | Intercept::Rdseed | Intercept::Hypercall => None,
        Intercept::FerrFreeze => one(Simple::FerrFreeze),
        Intercept::TaskSwitch { selector, source } => {
            use crate::interp::task::TaskSource as S;
            use svm_model::intercept::TaskSwitchSource as T;
            let (kind, error_code, fault) = match source {
                S::Call => (T::Call, None, false),
                S::Jmp => (T::Jmp, None, false),
                S::Iret => (T::Iret, None, false),
                S::Interrupt {
                    error_code,
                    push_rf,
                } => (T::Event, error_code, push_rf),
            };
            // The RF the outgoing TSS would save: set for a fault (as in the
            // image it pushes). nestemu clears RF at the start of each
            // instruction (machine.rs), so an instruction-caused switch
            // reports the RF it would save, 0.
            let rf = fault || m.cpu.flags.has(mmu::Rflags::RF);
            let g = m.virt.svm.guest.as_ref()?;
            icpt::task_switch(&g.controls, selector, kind, error_code, rf)
        }
        Intercept::Monitor => {
            let e = one(Simple::Monitor);
            // A MONITOR that runs arms the monitor hardware; MWAIT's
            // conditional intercept asks whether it is armed (table 15-7).
            g.monitor_armed |= e.is_none();
            e
        }
        Intercept::Mwait { armed } => {
            let e = icpt::mwait(ctl, armed || g.monitor_armed, next);
            if e.is_none() {
                g.monitor_armed = false;
            }
            e
        }
        Intercept::Xsetbv => one(Simple::Xsetbv),
        // AMD-V has no XSAVES/XRSTORS intercept.
        Intercept::Xsaves { .. } | Intercept::Xrstors { .. } => None,
        Intercept::Invpcid => one(Simple::Invpcid),
        Intercept::Pushf => one(Simple::Pushf),
        Intercept::Popf => one(Simple::Popf),
        Intercept::Icebp => one(Simple::Icebp),
        Intercept::IntN { vector } => icpt::intn(cfg, ctl, vector, next),
        Intercept::DescriptorTable { reg, write } => one(table_intercept(reg, write)),
        Intercept::Iret => {
            let e = one(Simple::Iret);
            // If the IRET completes, it unmasks virtual NMIs (15.21.10).
            g.iret = e.is_none() && g.controls.vnmi;
            e
        }
        Intercept::Pause => {
            let now = m.stats.cycles;
            let since = g.last_pause.map(|t| now.saturating_sub(t));
            g.last_pause = Some(now);
            icpt::pause(&mut g.controls, since, next)
        }
        Intercept::Rdmsr { index } => msr(m, index, false, next),
        Intercept::Wrmsr { index, .. } => msr(m, index, true, next),
        Intercept::Io {
            port,
            size,
            input,
            string,
            rep,
        } => {
            let io = IoAccess {
                port,
                size,
                is_in: input,
                string,
                rep,
                address_size: io_address_size(m, i, string),
                segment: if string { m.mem_seg(i) } else { SegReg::Ds },
            };
            let svm = &mut m.virt.svm;
            let ctl = svm.guest.as_ref().map(|g| g.controls.clone())?;
            let cfg = svm.cfg.clone();
            let (mut mem, _, _) = state::split(m);
            icpt::ioio(&cfg, &ctl, &mut mem, &io, next)
        }
        Intercept::CrRead { cr } => {
            let how = if i.mnemonic() == Mnemonic::Smsw {
                CrRead::Smsw
            } else {
                CrRead::Mov {
                    gpr: gpr_number(i.op0_register()),
                }
            };
            icpt::cr_read(cfg, ctl, cr, how, next)
        }
        Intercept::CrWrite { cr, value } => {
            let how = CrWrite::Mov {
                gpr: gpr_number(i.op1_register()),
            };
            // CR0.ET is fixed at 1: writing 0 there changes nothing, so the
            // selective write intercept does not see it change.
            let value = if cr == 0 {
                value | Cr0::ET.bits()
            } else {
                value
            };
            cr_write(m, cr, how, value)
        }
        Intercept::Clts => {
            let old = m.cpu.sys.cr0.bits();
            cr_write(m, 0, CrWrite::Clts, old & !Cr0::TS.bits())
        }
        Intercept::Lmsw { value } => {
            let old = m.cpu.sys.cr0.bits();
            let new = (old & !0xe) | (value as u64 & 0xf) | (old & 1);
            cr_write(m, 0, CrWrite::Lmsw, new)
        }
        Intercept::DrRead { dr } | Intercept::DrWrite { dr } => {
            // DR7.GD's #DB comes before the intercept on AMD (table 15-7).
            if m.cpu.sys.dr7.contains(Dr7::GD) {
                return None;
            }
            let write = matches!(what, Intercept::DrWrite { .. });
            let reg = if write {
                i.op1_register()
            } else {
                i.op0_register()
            };
            let svm = &m.virt.svm;
            let ctl = &svm.guest.as_ref()?.controls;
            icpt::dr_access(&svm.cfg, ctl, dr, write, gpr_number(reg), next)
        }
    }
}

/// The intercept of a descriptor-table access.
fn table_intercept(reg: TableReg, write: bool) -> Simple {
    match (reg, write) {
        (TableReg::Idtr, false) => Simple::IdtrRead,
        (TableReg::Gdtr, false) => Simple::GdtrRead,
        (TableReg::Ldtr, false) => Simple::LdtrRead,
        (TableReg::Tr, false) => Simple::TrRead,
        (TableReg::Idtr, true) => Simple::IdtrWrite,
        (TableReg::Gdtr, true) => Simple::GdtrWrite,
        (TableReg::Ldtr, true) => Simple::LdtrWrite,
        (TableReg::Tr, true) => Simple::TrWrite,
    }
}

/// The encoding number (0-15) of a general-purpose register operand.
fn gpr_number(r: Register) -> u8 {
    if r.is_gpr() {
        r.number() as u8
    } else {
        0
    }
}

/// The guest's controls, mutably.
fn guest(m: &mut Machine) -> Option<&mut Guest> {
    m.virt.svm.guest.as_mut()
}

/// RDMSR/WRMSR through the MSR permissions map; a WRMSR of EFER that is not
/// intercepted arms the EFER write trap.
fn msr(m: &mut Machine, index: u32, write: bool, next: u64) -> Option<ExitInfo> {
    let svm = &mut m.virt.svm;
    let ctl = svm.guest.as_ref().map(|g| g.controls.clone())?;
    let e = {
        let (mut mem, _, _) = state::split(m);
        icpt::msr(&ctl, &mut mem, index, write, next)
    };
    if e.is_none() && write && index == mmu::msr::IA32_EFER {
        let armed = ctl
            .intercepts
            .misc2
            .contains(svm_model::vmcb::Misc2::EFER_WRITE_TRAP);
        arm_trap(m, armed, None, next);
    }
    e
}

/// A write of CR`cr`: the fault-like intercepts (generic, then CR0 selective),
/// else the write trap is armed; CR8 writes update V_TPR.
fn cr_write(m: &mut Machine, cr: u8, how: CrWrite, new: u64) -> Option<ExitInfo> {
    let next = m.next_rip;
    let old = m.cpu.sys.cr0.bits();
    let svm = &mut m.virt.svm;
    let g = svm.guest.as_mut()?;
    let e = icpt::cr_write(&svm.cfg, &g.controls, cr, how, old, new, next);
    if e.is_some() {
        return e;
    }
    if cr == 8 && new <= 0xf && g.controls.write_cr8(new as u8) {
        // Without V_INTR_MASKING the write reaches the host's TPR too.
        g.host_cr8 = new;
    }
    let armed = g.controls.intercepts.misc2.bits() & (1 << (16 + (cr & 0xf))) != 0;
    arm_trap(m, armed, Some(cr), next);
    None
}

/// Arms a write trap, taken after the instruction completes.
fn arm_trap(m: &mut Machine, armed: bool, cr: Option<u8>, next_rip: u64) {
    if !armed {
        return;
    }
    if let Some(g) = guest(m) {
        g.trap = Some(PendingTrap { cr, next_rip });
        m.stop_block = true;
    }
}

/// The effective address size of an I/O instruction for EXITINFO1: of the
/// string instruction's index register, else the mode's default.
fn io_address_size(m: &Machine, i: &Instruction, string: bool) -> AddressSize {
    let bits = if string && i.op_count() > 0 {
        let r = (0..i.op_count())
            .find(|&n| {
                matches!(
                    i.op_kind(n),
                    OpKind::MemorySegSI
                        | OpKind::MemorySegESI
                        | OpKind::MemorySegRSI
                        | OpKind::MemoryESDI
                        | OpKind::MemoryESEDI
                        | OpKind::MemoryESRDI
                )
            })
            .map(|n| i.op_kind(n));
        match r {
            Some(OpKind::MemorySegSI | OpKind::MemoryESDI) => 16,
            Some(OpKind::MemorySegESI | OpKind::MemoryESEDI) => 32,
            Some(_) => 64,
            None => m.cpu.mode.code_bits,
        }
    } else {
        m.cpu.mode.code_bits
    };
    match bits {
        16 => AddressSize::A16,
        32 => AddressSize::A32,
        _ => AddressSize::A64,
    }
}
