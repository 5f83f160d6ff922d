//! The SVM instructions' exception and intercept rules (APM Vol. 2 15.4, 15.5,
//! 15.5.2, 15.9 table 15-7, 15.17, 15.18, 15.33; APM Vol. 3 "VMRUN", "VMLOAD",
//! "VMSAVE", "VMMCALL", "STGI", "CLGI", "INVLPGA", "SKINIT"), and the state
//! VMLOAD and VMSAVE move.
//!
//! [`execute`] decides, in the architectural order, #UD, then #GP (CPL, then
//! the rAX operand), then the intercept, and otherwise what the instruction
//! does; VMMCALL's intercept instead takes priority over its #UD.

use crate::exit_code::ExitCode;
use crate::features::SvmConfig;
use crate::guest::{GuestControls, VirtVmload};
use crate::intercept::{self, Intercept};
use crate::mem::{read_bytes, PhysMem, SvmAccess};
use crate::state::AddressSize;
use crate::vmcb::{write_field, VmcbField, VmcbSeg, VmcbSegment};
use crate::vmexit::ExitInfo;
use mmu::{canonicalize, CpuMode, Efer, Exception, SegReg, SystemRegs};
use serde::{Deserialize, Serialize};

/// The SVM instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SvmInsn {
    /// VMRUN rAX.
    Vmrun,
    /// VMLOAD rAX.
    Vmload,
    /// VMSAVE rAX.
    Vmsave,
    /// VMMCALL.
    Vmmcall,
    /// STGI.
    Stgi,
    /// CLGI.
    Clgi,
    /// INVLPGA rAX, ECX.
    Invlpga,
    /// SKINIT EAX.
    Skinit,
}

/// What the instruction sees.
#[derive(Clone, Copy, Debug)]
pub struct InsnContext<'a> {
    /// Operating mode.
    pub mode: CpuMode,
    /// Current privilege level.
    pub cpl: u8,
    /// EFER.
    pub efer: Efer,
    /// rAX.
    pub rax: u64,
    /// ECX (INVLPGA's ASID).
    pub ecx: u32,
    /// The effective address size (selects how much of rAX forms an address).
    pub address_size: AddressSize,
    /// RIP of the next instruction (nRIP on intercepts).
    pub next_rip: u64,
    /// The controls of the running guest, in guest mode.
    pub guest: Option<&'a GuestControls>,
}

/// The address space a VMLOAD or VMSAVE operand lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmcbAddress {
    /// A system-physical address: use it directly.
    System(u64),
    /// A guest-physical address (virtual VMLOAD/VMSAVE, APM Vol. 2 15.33.1):
    /// translate it through the nested page tables first; a nested fault exits
    /// with VMEXIT_NPF.
    GuestPhysical(u64),
}

/// The outcome of an SVM instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsnOutcome {
    /// Raise this exception.
    Fault(Exception),
    /// #VMEXIT (the instruction is intercepted).
    Exit(ExitInfo),
    /// Perform VMRUN's world switch ([`crate::vmrun::vmrun`]) on this VMCB.
    Vmrun {
        /// The VMCB's physical address.
        vmcb_pa: u64,
    },
    /// Load state from a VMCB ([`vmload`]).
    Vmload(VmcbAddress),
    /// Save state to a VMCB ([`vmsave`]).
    Vmsave(VmcbAddress),
    /// Set (STGI) or clear (CLGI) GIF. Setting GIF lets held-pending events in.
    SetGif(bool),
    /// Set (STGI) or clear (CLGI) the guest's virtual GIF (VGIF in effect):
    /// update `GuestControls::vintr.v_gif`.
    SetVirtualGif(bool),
    /// Invalidate the TLB mapping of `linear` in `asid` (ASID 0 is the host).
    Invlpga {
        /// The linear address (rAX, address-size masked).
        linear: u64,
        /// The ASID (ECX).
        asid: u32,
    },
    /// SKINIT with the secure loader block at `slb_base` (EAX with bits 15:0
    /// cleared, APM Vol. 2 15.27.6).
    Skinit {
        /// SLB base.
        slb_base: u32,
    },
}

fn ud() -> InsnOutcome {
    InsnOutcome::Fault(Exception::ud())
}

/// Applies the rules of `insn` in context `ctx`.
pub fn execute(cfg: &SvmConfig, insn: SvmInsn, ctx: &InsnContext<'_>) -> InsnOutcome {
    if insn == SvmInsn::Vmmcall {
        // 15.18: no CPL check; the intercept takes priority over the #UD.
        return match ctx
            .guest
            .and_then(|g| intercept::simple(g, Intercept::Vmmcall, ctx.next_rip))
        {
            Some(e) => InsnOutcome::Exit(e),
            None => ud(),
        };
    }
    if let Some(fault) = fault(cfg, insn, ctx) {
        return InsnOutcome::Fault(fault);
    }
    let simple = intercept_of(insn);
    if let Some(e) = ctx
        .guest
        .and_then(|g| intercept::simple(g, simple, ctx.next_rip))
    {
        return InsnOutcome::Exit(e);
    }
    perform(insn, ctx)
}

/// The exceptions checked before the intercept, in order: #UD (SVM or SKINIT
/// absent, real or virtual-8086 mode, not enabled), #GP(0) for CPL > 0, #GP(0)
/// for a misaligned or beyond-MAXPHYADDR VMCB address.
fn fault(cfg: &SvmConfig, insn: SvmInsn, ctx: &InsnContext<'_>) -> Option<Exception> {
    let f = &cfg.features;
    if !f.svm || (insn == SvmInsn::Skinit && !f.skinit) {
        return Some(Exception::ud());
    }
    // Only recognized in protected mode (APM Vol. 3).
    if matches!(ctx.mode, CpuMode::Real | CpuMode::Virtual8086) {
        return Some(Exception::ud());
    }
    // 15.4: STGI and SKINIT are usable with SVME = 0 when SKINIT (or SVM-Lock,
    // 15.31) is supported; the others need EFER.SVME.
    let enabled = ctx.efer.contains(Efer::SVME)
        || (matches!(insn, SvmInsn::Stgi | SvmInsn::Skinit) && (f.skinit || f.svml));
    if !enabled {
        return Some(Exception::ud());
    }
    if ctx.cpl != 0 {
        return Some(Exception::gp0());
    }
    let addr = ctx.address_size.mask(ctx.rax);
    if matches!(insn, SvmInsn::Vmrun | SvmInsn::Vmload | SvmInsn::Vmsave)
        && (addr & 0xfff != 0 || addr & cfg.phys_reserved() != 0)
    {
        return Some(Exception::gp0());
    }
    None
}

/// The intercept an SVM instruction checks.
const fn intercept_of(insn: SvmInsn) -> Intercept {
    match insn {
        SvmInsn::Vmrun => Intercept::Vmrun,
        SvmInsn::Vmload => Intercept::Vmload,
        SvmInsn::Vmsave => Intercept::Vmsave,
        SvmInsn::Stgi => Intercept::Stgi,
        SvmInsn::Clgi => Intercept::Clgi,
        SvmInsn::Invlpga => Intercept::Invlpga,
        SvmInsn::Skinit => Intercept::Skinit,
        SvmInsn::Vmmcall => Intercept::Vmmcall,
    }
}

/// What a non-faulting, non-intercepted SVM instruction does.
fn perform(insn: SvmInsn, ctx: &InsnContext<'_>) -> InsnOutcome {
    let addr = ctx.address_size.mask(ctx.rax);
    match insn {
        SvmInsn::Vmrun => InsnOutcome::Vmrun { vmcb_pa: addr },
        SvmInsn::Vmload | SvmInsn::Vmsave => {
            let a = match ctx.guest.map_or(VirtVmload::Off, |g| g.virt_vmload) {
                VirtVmload::Off => VmcbAddress::System(addr),
                VirtVmload::On => VmcbAddress::GuestPhysical(addr),
                VirtVmload::Exit => {
                    let code = intercept_of(insn).exit_code();
                    return InsnOutcome::Exit(ExitInfo::new(code).with_next_rip(ctx.next_rip));
                }
            };
            if insn == SvmInsn::Vmload {
                InsnOutcome::Vmload(a)
            } else {
                InsnOutcome::Vmsave(a)
            }
        }
        SvmInsn::Stgi | SvmInsn::Clgi => {
            let value = insn == SvmInsn::Stgi;
            if ctx.guest.is_some_and(|g| g.vgif) {
                InsnOutcome::SetVirtualGif(value)
            } else {
                InsnOutcome::SetGif(value)
            }
        }
        SvmInsn::Invlpga => InsnOutcome::Invlpga {
            linear: addr,
            asid: ctx.ecx,
        },
        SvmInsn::Skinit => InsnOutcome::Skinit {
            slb_base: (ctx.rax as u32) & 0xffff_0000,
        },
        SvmInsn::Vmmcall => ud(),
    }
}

/// The segment-like registers VMLOAD and VMSAVE move.
const VMLOAD_SEGS: [VmcbSeg; 4] = [VmcbSeg::Fs, VmcbSeg::Gs, VmcbSeg::Tr, VmcbSeg::Ldtr];

fn read_field<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, f: VmcbField) -> u64 {
    let mut b = [0u8; 8];
    read_bytes(
        mem,
        pa + f.offset() as u64,
        &mut b[..f.width()],
        SvmAccess::VmloadRead,
    );
    u64::from_le_bytes(b)
}

/// VMLOAD from the VMCB at system-physical `pa` (APM Vol. 2 15.5.2): FS, GS, TR
/// and LDTR with their hidden state, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK
/// and SYSENTER_CS/ESP/EIP. Segment bases and KernelGsBase are canonicalized.
pub fn vmload<M: PhysMem + ?Sized>(cfg: &SvmConfig, mem: &mut M, pa: u64, regs: &mut SystemRegs) {
    let bits = cfg.widths.linear_bits;
    for seg in VMLOAD_SEGS {
        let [sel, attrib, limit, base] = seg.fields();
        let v = VmcbSegment {
            selector: read_field(mem, pa, sel) as u16,
            attrib: read_field(mem, pa, attrib) as u16,
            limit: read_field(mem, pa, limit) as u32,
            base: read_field(mem, pa, base),
        };
        let cache = v.to_cache(seg, bits);
        match seg {
            VmcbSeg::Fs => *regs.seg_mut(SegReg::Fs) = cache,
            VmcbSeg::Gs => *regs.seg_mut(SegReg::Gs) = cache,
            VmcbSeg::Tr => regs.tr = cache,
            _ => regs.ldtr = cache,
        }
    }
    regs.kernel_gs_base = canonicalize(read_field(mem, pa, VmcbField::KernelGsBase), bits);
    regs.star = read_field(mem, pa, VmcbField::Star);
    regs.lstar = read_field(mem, pa, VmcbField::Lstar);
    regs.cstar = read_field(mem, pa, VmcbField::Cstar);
    regs.sfmask = read_field(mem, pa, VmcbField::Sfmask);
    regs.sysenter_cs = read_field(mem, pa, VmcbField::SysenterCs);
    regs.sysenter_esp = read_field(mem, pa, VmcbField::SysenterEsp);
    regs.sysenter_eip = read_field(mem, pa, VmcbField::SysenterEip);
}

/// VMSAVE to the VMCB at system-physical `pa`: the state [`vmload`] loads.
pub fn vmsave<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, regs: &SystemRegs) {
    for seg in VMLOAD_SEGS {
        let cache = match seg {
            VmcbSeg::Fs => regs.seg(SegReg::Fs),
            VmcbSeg::Gs => regs.seg(SegReg::Gs),
            VmcbSeg::Tr => &regs.tr,
            _ => &regs.ldtr,
        };
        let v = VmcbSegment::from_cache(cache);
        let [sel, attrib, limit, base] = seg.fields();
        for (f, x) in [
            (sel, u64::from(v.selector)),
            (attrib, v.attrib.into()),
            (limit, v.limit.into()),
            (base, v.base),
        ] {
            write_field(mem, pa, f, x, SvmAccess::VmsaveWrite);
        }
    }
    for (f, x) in [
        (VmcbField::KernelGsBase, regs.kernel_gs_base),
        (VmcbField::Star, regs.star),
        (VmcbField::Lstar, regs.lstar),
        (VmcbField::Cstar, regs.cstar),
        (VmcbField::Sfmask, regs.sfmask),
        (VmcbField::SysenterCs, regs.sysenter_cs),
        (VmcbField::SysenterEsp, regs.sysenter_esp),
        (VmcbField::SysenterEip, regs.sysenter_eip),
    ] {
        write_field(mem, pa, f, x, SvmAccess::VmsaveWrite);
    }
}

/// The exit code of an intercepted SVM instruction (for reports).
pub const fn exit_code(insn: SvmInsn) -> ExitCode {
    match insn {
        SvmInsn::Vmrun => ExitCode::VMEXIT_VMRUN,
        SvmInsn::Vmload => ExitCode::VMEXIT_VMLOAD,
        SvmInsn::Vmsave => ExitCode::VMEXIT_VMSAVE,
        SvmInsn::Vmmcall => ExitCode::VMEXIT_VMMCALL,
        SvmInsn::Stgi => ExitCode::VMEXIT_STGI,
        SvmInsn::Clgi => ExitCode::VMEXIT_CLGI,
        SvmInsn::Invlpga => ExitCode::VMEXIT_INVLPGA,
        SvmInsn::Skinit => ExitCode::VMEXIT_SKINIT,
    }
}
