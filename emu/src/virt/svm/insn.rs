//! The SVM instructions (APM Vol. 3 "VMRUN", "VMLOAD", "VMSAVE", "VMMCALL",
//! "STGI", "CLGI", "INVLPGA", "SKINIT"; APM Vol. 2 15.5, 15.17, 15.18, 15.33).
//! `svm_model::insn::execute` applies the #UD, #GP and intercept rules in
//! their architectural order (VMRUN, VMLOAD and VMSAVE check rAX for #GP
//! before the intercept; VMMCALL's intercept beats its #UD); the handlers here
//! carry out what it decides.
//!
//! RSM is handled here too on AMD models: nestemu has no SMM, so RSM is #UD,
//! except that its SVM intercept takes priority over any exception (APM Vol. 2
//! 15.9, table 15-7).

use super::{exit_event, state, vmrun};
use crate::cost::InsnClass;
use crate::event::{Event, Flow};
use crate::interp::Handler;
use crate::machine::Machine;
use crate::memory::paging::WalkMemory;
use iced_x86::{Code, Instruction, Mnemonic};
use mmu::{GuestPhysAddr, LinearAddr};
use svm_model::insn::{execute, vmload, vmsave, InsnContext, InsnOutcome, SvmInsn, VmcbAddress};
use svm_model::intercept::{simple, Intercept as SvmIntercept};
use svm_model::AddressSize;

/// The handler of an SVM instruction, if `i` is one (and RSM on AMD models).
pub fn handler_for(m: &Machine, i: &Instruction) -> Option<(Handler, InsnClass)> {
    let h: Handler = match i.mnemonic() {
        Mnemonic::Vmrun => vmrun_insn,
        Mnemonic::Vmload => vmload_insn,
        Mnemonic::Vmsave => vmsave_insn,
        Mnemonic::Vmmcall => vmmcall,
        Mnemonic::Stgi => stgi,
        Mnemonic::Clgi => clgi,
        Mnemonic::Invlpga => invlpga,
        Mnemonic::Skinit => skinit,
        Mnemonic::Rsm if m.virt.svm.cfg.features.svm => rsm,
        _ => return None,
    };
    Some((h, InsnClass::System))
}

/// The effective address size of rAX for the instruction.
fn address_size(m: &Machine, i: &Instruction) -> AddressSize {
    match i.code() {
        Code::Vmrunw | Code::Vmloadw | Code::Vmsavew | Code::Invlpgaw => AddressSize::A16,
        Code::Vmrund | Code::Vmloadd | Code::Vmsaved | Code::Invlpgad => AddressSize::A32,
        Code::Vmrunq | Code::Vmloadq | Code::Vmsaveq | Code::Invlpgaq => AddressSize::A64,
        _ => match m.cpu.mode.code_bits {
            16 => AddressSize::A16,
            32 => AddressSize::A32,
            _ => AddressSize::A64,
        },
    }
}

/// Runs the model's rules for `insn`.
fn decide(m: &Machine, i: &Instruction, insn: SvmInsn) -> InsnOutcome {
    let ctx = InsnContext {
        mode: m.cpu.mode.mode,
        cpl: m.cpu.cpl(),
        efer: m.cpu.sys.efer,
        rax: m.cpu.gpr[0],
        ecx: m.cpu.gpr[1] as u32,
        address_size: address_size(m, i),
        next_rip: m.next_rip,
        guest: m.virt.svm.controls(),
    };
    execute(&m.virt.svm.cfg, insn, &ctx)
}

/// Decides `insn` and takes the outcomes every instruction shares: a fault
/// or a #VMEXIT.
fn common(m: &mut Machine, i: &Instruction, insn: SvmInsn) -> Result<InsnOutcome, Event> {
    match decide(m, i, insn) {
        InsnOutcome::Fault(e) => Err(Event::Exception(e)),
        InsnOutcome::Exit(info) => Err(exit_event(m, info)),
        other => Ok(other),
    }
}

/// An outcome the model never gives for this instruction.
#[cold]
fn impossible(m: &Machine, o: &InsnOutcome) -> Flow {
    Err(Event::unimplemented(
        format!("SVM instruction outcome {o:?}"),
        m.cpu.rip,
    ))
}

/// VMRUN rAX.
fn vmrun_insn(m: &mut Machine, i: &Instruction) -> Flow {
    match common(m, i, SvmInsn::Vmrun)? {
        InsnOutcome::Vmrun { vmcb_pa } => vmrun::enter(m, vmcb_pa),
        o => impossible(m, &o),
    }
}

/// VMLOAD rAX: FS, GS, TR, LDTR and the system-call MSRs from a VMCB.
fn vmload_insn(m: &mut Machine, i: &Instruction) -> Flow {
    match common(m, i, SvmInsn::Vmload)? {
        InsnOutcome::Vmload(a) => {
            let pa = vmcb_address(m, a, false)?;
            let mut regs = m.cpu.sys.clone();
            {
                let (mut mem, cfg, _) = state::split(m);
                vmload(cfg, &mut mem, pa, &mut regs);
            }
            m.cpu.sys = regs;
            m.cpu.update_mode();
            m.stop_block = true;
            Ok(())
        }
        o => impossible(m, &o),
    }
}

/// VMSAVE rAX: the state VMLOAD loads, to a VMCB.
fn vmsave_insn(m: &mut Machine, i: &Instruction) -> Flow {
    match common(m, i, SvmInsn::Vmsave)? {
        InsnOutcome::Vmsave(a) => {
            let pa = vmcb_address(m, a, true)?;
            let regs = m.cpu.sys.clone();
            let (mut mem, _, _) = state::split(m);
            vmsave(&mut mem, pa, &regs);
            Ok(())
        }
        o => impossible(m, &o),
    }
}

/// The system-physical address of a VMLOAD/VMSAVE operand: guest-physical
/// operands (virtual VMLOAD/VMSAVE, APM Vol. 2 15.33.1) go through the nested
/// page tables, and a nested fault exits with #NPF.
fn vmcb_address(m: &mut Machine, a: VmcbAddress, write: bool) -> Result<u64, Event> {
    let gpa = match a {
        VmcbAddress::System(pa) => return Ok(pa),
        VmcbAddress::GuestPhysical(gpa) => gpa,
    };
    let kind = if write {
        mmu::AccessKind::Write
    } else {
        mmu::AccessKind::Read
    };
    let mut mem = WalkMemory {
        ram: &mut m.ram,
        code: &mut m.code,
        stop_block: &mut m.stop_block,
    };
    match m
        .mmu
        .translate_gpa(&m.tctx, GuestPhysAddr(gpa), kind, &mut mem, &mut ())
    {
        Ok(pa) => Ok(pa.0),
        Err(f) => Err(m.nested_fault_exit(f)),
    }
}

/// VMMCALL: #VMEXIT if intercepted, otherwise #UD.
fn vmmcall(m: &mut Machine, i: &Instruction) -> Flow {
    let o = common(m, i, SvmInsn::Vmmcall)?;
    impossible(m, &o)
}

/// STGI and CLGI.
fn set_gif(m: &mut Machine, i: &Instruction, insn: SvmInsn) -> Flow {
    match common(m, i, insn)? {
        InsnOutcome::SetGif(v) => {
            m.virt.svm.gif = v;
            // Events held pending while GIF was 0 are taken at the next
            // boundary.
            m.stop_block = true;
            Ok(())
        }
        InsnOutcome::SetVirtualGif(v) => {
            if let Some(g) = m.virt.svm.guest.as_mut() {
                g.controls.vintr.v_gif = v;
            }
            m.stop_block = true;
            Ok(())
        }
        o => impossible(m, &o),
    }
}

/// STGI: GIF := 1.
fn stgi(m: &mut Machine, i: &Instruction) -> Flow {
    set_gif(m, i, SvmInsn::Stgi)
}

/// CLGI: GIF := 0.
fn clgi(m: &mut Machine, i: &Instruction) -> Flow {
    set_gif(m, i, SvmInsn::Clgi)
}

/// The TLB tag of an ASID (the mmu tags with 16 bits; larger ASIDs fold onto
/// non-zero tags, never onto the host's 0).
pub(crate) fn asid_tag(asid: u32) -> u16 {
    if asid <= u16::MAX as u32 {
        asid as u16
    } else {
        ((asid - 1) % u16::MAX as u32 + 1) as u16
    }
}

/// INVLPGA rAX, ECX: invalidates the page of rAX in ASID ECX.
fn invlpga(m: &mut Machine, i: &Instruction) -> Flow {
    match common(m, i, SvmInsn::Invlpga)? {
        InsnOutcome::Invlpga { linear, asid } => {
            m.mmu.invlpga(LinearAddr(linear), asid_tag(asid));
            Ok(())
        }
        o => impossible(m, &o),
    }
}

/// SKINIT: the presets do not advertise it, so the model answers #UD.
fn skinit(m: &mut Machine, i: &Instruction) -> Flow {
    let o = common(m, i, SvmInsn::Skinit)?;
    impossible(m, &o)
}

/// RSM: intercepted in guest mode (before any exception), otherwise #UD
/// (nestemu never enters SMM).
fn rsm(m: &mut Machine, _: &Instruction) -> Flow {
    if let Some(ctl) = m.virt.svm.controls() {
        if let Some(e) = simple(ctl, SvmIntercept::Rsm, m.next_rip) {
            return Err(exit_event(m, e));
        }
    }
    Err(Event::ud())
}
