//! VMRUN (APM Vol. 2 15.5, "VMRUN Instruction"): read the VMCB, merge cached
//! state (15.15), run every consistency check (15.5.1), and only then commit:
//! save host state to the host save area, load guest state, set up the
//! controls, TLB control (15.16) and event injection (15.20).
//!
//! Nothing is written before every check has passed; a failed VMRUN writes the
//! host save area and the VMCB exit fields and returns the reloaded host state,
//! exactly as a #VMEXIT with VMEXIT_INVALID (APM Vol. 2 15.5.1, 15.6).

use crate::checks::{self, CheckId};
use crate::clean::VmcbCache;
use crate::exit_code::ExitCode;
use crate::features::SvmConfig;
use crate::guest::{GuestControls, NestedPaging, PauseFilter, VirtVmload};
use crate::mem::{read_u64, PhysMem, SvmAccess};
use crate::state::{cpu_mode, CpuState};
use crate::vmcb::{
    CleanBits, EventInj, EventType, FieldList, FieldSource, IntState, Intercepts, Staged, TlbFlush,
    VIntr, VirtExt, VmcbField, VmcbImage, VmcbSeg, VmcbSegment, VmcbTable,
};
use crate::vmexit::{reload_host_in_place, HostLoad, HostReload};
use mmu::{
    canonicalize, AccessRights, CpuMode, Cr0, Cr4, Dr7, Efer, Rflags, SegReg, TableRegister,
};
use serde::{Deserialize, Serialize};

/// An event VMRUN injects into the guest (APM Vol. 2 15.20): the interpreter
/// delivers it through the guest IDT before the first guest instruction, as
/// though it had occurred in the guest, without intercept checks for the event
/// itself (secondary exceptions during delivery are subject to intercepts and
/// to EXITINTINFO recording).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedEvent {
    /// The EVENTINJ value (record it as EXITINTINFO while delivering).
    pub raw: EventInj,
    /// INTR, NMI, exception or software interrupt.
    pub typ: EventType,
    /// The IDT vector (2 for NMI, whose VECTOR field is ignored).
    pub vector: u8,
    /// The error code to push, if EV is set.
    pub error_code: Option<u32>,
    /// The RIP pushed as return address. For software interrupts and for
    /// exceptions 3 and 4 (which behave like INT3/INTO) it is the VMCB NRIP
    /// when the preset has NRIPS; otherwise, and for every other event, the
    /// guest RIP.
    pub return_rip: u64,
    /// The gate DPL is checked against CPL (software interrupts, and
    /// exceptions 3 and 4, APM Vol. 2 15.20).
    pub dpl_checked: bool,
}

/// A successful VMRUN: the guest to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestEntry {
    /// Guest registers to load. RIP, RSP, RAX and RFLAGS come from the VMCB;
    /// registers VMRUN does not load (FS, GS, TR, LDTR, the syscall MSRs, ...)
    /// keep the host's values. GIF becomes 1.
    pub state: CpuState,
    /// Everything else VMRUN sets up.
    pub setup: GuestSetup,
}

/// What a successful VMRUN sets up besides the guest registers: all of a
/// VMRUN done in place ([`vmrun_in_place`]), whose registers are in the
/// processor state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSetup {
    /// The controls in force until #VMEXIT.
    pub controls: GuestControls,
    /// The guest starts in an interrupt shadow (VMCB INTERRUPT_SHADOW).
    pub interrupt_shadow: bool,
    /// The event to inject before the first guest instruction.
    pub inject: Option<InjectedEvent>,
    /// What to flush from the TLB before the guest runs.
    pub tlb: TlbFlush,
    /// The guest's four PDPEs, if it runs in legacy PAE paging mode without
    /// nested paging (VMRUN loads them, APM Vol. 2 15.5.1).
    pub pdptes: Option<[u64; 4]>,
    /// The clean bits VMRUN honoured (fields taken from the VMCB cache).
    pub clean: CleanBits,
}

/// The outcome of [`vmrun_in_place`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Not boxed, as VmrunOutcome: returned once per VMRUN and consumed at once.
#[allow(clippy::large_enum_variant)]
pub enum VmrunInPlace {
    /// The guest runs; its state is in the processor state.
    Entered(GuestSetup),
    /// #VMEXIT(VMEXIT_INVALID); the reloaded host state is in the processor
    /// state.
    Invalid(Box<InvalidVmrun<HostReload>>),
}

/// A VMRUN that failed a consistency check: #VMEXIT(VMEXIT_INVALID). `H`
/// is the host state it reloads: whole ([`HostLoad`]), or, done in place,
/// what it reloads besides the registers ([`HostReload`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidVmrun<H = HostLoad> {
    /// The check VMRUN reports (the first violated, in [`CheckId::ALL`] order).
    pub check: CheckId,
    /// Every violated check, for diagnostics.
    pub all: Vec<CheckId>,
    /// The host state to continue with, at the instruction after VMRUN, GIF = 0.
    pub host: H,
}

/// The outcome of VMRUN's world switch (after its instruction checks,
/// [`crate::insn`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Not boxed: the entry is returned once per VMRUN and consumed at once, and a
// box cost an allocation and a free per world switch.
#[allow(clippy::large_enum_variant)]
pub enum VmrunOutcome {
    /// The guest runs.
    Entered(GuestEntry),
    /// #VMEXIT(VMEXIT_INVALID).
    Invalid(Box<InvalidVmrun>),
}

impl VmrunOutcome {
    /// The failed check, if VMRUN failed.
    pub fn check(&self) -> Option<CheckId> {
        match self {
            VmrunOutcome::Entered(_) => None,
            VmrunOutcome::Invalid(i) => Some(i.check),
        }
    }
}

/// Executes VMRUN's world switch for the VMCB at `vmcb_pa`. `host` is the
/// state at VMRUN with `rip` the address of the next instruction; `hsave_pa`
/// is VM_HSAVE_PA.
pub fn vmrun<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    host: &CpuState,
    vmcb_pa: u64,
    hsave_pa: u64,
    mem: &mut M,
    cache: &mut VmcbCache,
) -> VmrunOutcome {
    let mut cpu = host.clone();
    match vmrun_in_place(cfg, &mut cpu, vmcb_pa, hsave_pa, mem, cache) {
        VmrunInPlace::Entered(setup) => VmrunOutcome::Entered(GuestEntry { state: cpu, setup }),
        VmrunInPlace::Invalid(i) => VmrunOutcome::Invalid(Box::new(InvalidVmrun {
            check: i.check,
            all: i.all,
            host: HostLoad {
                state: cpu,
                reload: i.host,
            },
        })),
    }
}

/// [`vmrun`] on the processor state itself, as the hardware does it: `cpu`
/// is the host state at VMRUN on entry (RIP the next instruction's), and on
/// return the guest state if the guest runs, or the reloaded host state if
/// VMRUN failed. The registers are not copied into a new value.
pub fn vmrun_in_place<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    cpu: &mut CpuState,
    vmcb_pa: u64,
    hsave_pa: u64,
    mem: &mut M,
    cache: &mut VmcbCache,
) -> VmrunInPlace {
    let mut merged = cache.take_spare();
    // Only the part VMRUN uses: the bytes above hold zeros in every image
    // the cache hands out ([`VmcbCache`]), and nothing reads them.
    merged.read_vmrun_part(mem, vmcb_pa, SvmAccess::VmcbRead);
    let clean = cache.merge_into(cfg, vmcb_pa, &mut merged);
    let (failures, pdptes) = validate(cfg, cpu, &merged, mem);
    // Every check has run; from here on, commit.
    save_host(mem, hsave_pa, cpu);
    let Some(&check) = failures.first() else {
        let setup = enter(cfg, cpu, vmcb_pa, hsave_pa, &merged, clean, pdptes);
        cache.store_owned(cfg, vmcb_pa, merged);
        return VmrunInPlace::Entered(setup);
    };
    cache.invalidate(vmcb_pa);
    cache.recycle(merged);
    let mut exit = Staged::new(&INVALID_EXIT);
    exit.set(VmcbField::ExitCode, ExitCode::VMEXIT_INVALID.0);
    mem.write_fields(
        vmcb_pa,
        INVALID_EXIT.layout(),
        exit.values(),
        SvmAccess::VmcbWrite,
    );
    let host = reload_host_in_place(cfg, mem, hsave_pa, cpu, None);
    VmrunInPlace::Invalid(Box::new(InvalidVmrun {
        check,
        all: failures,
        host,
    }))
}

/// The VMCB fields a failed VMRUN writes: EXITCODE (VMEXIT_INVALID), and
/// EXITINFO1, EXITINFO2 and EVENTINJ cleared (APM Vol. 2 15.5.1, 15.6).
static INVALID_EXIT: FieldList<4> = FieldList::new(&[&[
    VmcbField::ExitCode,
    VmcbField::ExitInfo1,
    VmcbField::ExitInfo2,
    VmcbField::EventInj,
]]);

/// Runs every consistency check on the merged state, then, for a legacy-PAE
/// guest without nested paging, loads and checks its PDPEs. Reads memory only.
fn validate<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    host: &CpuState,
    merged: &VmcbImage,
    mem: &mut M,
) -> (Vec<CheckId>, Option<[u64; 4]>) {
    let mut failures = checks::guest_failures(cfg, merged, host);
    let mut pdptes = None;
    if failures.is_empty() && legacy_pae_paging(merged) && !checks::np_enabled(cfg, merged) {
        let p = load_pdptes(mem, merged.get(VmcbField::Cr3));
        if p.iter().any(|e| checks::pdpte_reserved(cfg, *e)) {
            failures.push(CheckId::PdpteReserved);
        }
        pdptes = Some(p);
    }
    (failures, pdptes)
}

/// The guest VMRUN enters once every check has passed: `cpu` is the host
/// state on entry and the guest state on return.
fn enter(
    cfg: &SvmConfig,
    cpu: &mut CpuState,
    vmcb_pa: u64,
    hsave_pa: u64,
    merged: &VmcbImage,
    clean: CleanBits,
    pdptes: Option<[u64; 4]>,
) -> GuestSetup {
    let np = checks::np_enabled(cfg, merged);
    // The controls read the host's registers: before the guest's replace them.
    let mut controls = controls(cfg, cpu, vmcb_pa, hsave_pa, merged, np);
    load_guest(cfg, cpu, merged, np);
    let inject = injection(cfg, merged, cpu);
    if inject.is_some_and(|ev| ev.typ == EventType::Nmi) && controls.vnmi {
        // Injecting an NMI with NMI virtualization sets V_NMI_MASK (15.21.10).
        controls.vintr.v_nmi_mask = true;
    }
    let tlb = TlbFlush::decode(
        merged.get(VmcbField::TlbControl) as u8,
        controls.asid,
        cfg.features.flush_by_asid,
    );
    let shadow = IntState::from_bits_retain(merged.get(VmcbField::InterruptShadow))
        .contains(IntState::INTERRUPT_SHADOW);
    GuestSetup {
        controls,
        interrupt_shadow: shadow,
        inject,
        tlb,
        pdptes,
        clean,
    }
}

/// True if the VMCB's guest runs with legacy (non-long) PAE paging.
fn legacy_pae_paging(img: &VmcbImage) -> bool {
    let cr0 = Cr0::from_bits_retain(img.get(VmcbField::Cr0));
    let cr4 = Cr4::from_bits_retain(img.get(VmcbField::Cr4));
    let efer = Efer::from_bits_retain(img.get(VmcbField::Efer));
    cr0.contains(Cr0::PG) && cr4.contains(Cr4::PAE) && !efer.contains(Efer::LME)
}

/// Reads the four PAE PDPEs at CR3 (bits 31:5 locate the table).
pub(crate) fn load_pdptes<M: PhysMem + ?Sized>(mem: &mut M, cr3: u64) -> [u64; 4] {
    let base = cr3 & 0xffff_ffe0;
    core::array::from_fn(|i| read_u64(mem, base + 8 * i as u64, SvmAccess::Pdpte))
}

/// The host state VMRUN saves, in the VMCB state-save layout at offset 400h
/// of the host save page (the layout APM Vol. 2 table B-4 gives for the SEV-ES
/// host save area). The APM leaves the format to the implementation and tells
/// software not to rely on it (15.5.1); this model keeps it in memory, as QEMU
/// does.
pub(crate) fn save_host<M: PhysMem + ?Sized>(mem: &mut M, hsave_pa: u64, host: &CpuState) {
    let mut img = Staged::new(&HOST_SAVE);
    for (seg, reg) in [
        (VmcbSeg::Es, SegReg::Es),
        (VmcbSeg::Cs, SegReg::Cs),
        (VmcbSeg::Ss, SegReg::Ss),
        (VmcbSeg::Ds, SegReg::Ds),
    ] {
        img.set_seg(seg, VmcbSegment::from_cache(host.regs.seg(reg)));
    }
    img.set_table(VmcbTable::Gdtr, host.regs.gdtr);
    img.set_table(VmcbTable::Idtr, host.regs.idtr);
    img.set(VmcbField::Efer, host.regs.efer.bits());
    img.set(VmcbField::Cr0, host.regs.cr0.bits());
    img.set(VmcbField::Cr3, host.regs.cr3);
    img.set(VmcbField::Cr4, host.regs.cr4.bits());
    img.set(VmcbField::Rflags, host.rflags.bits());
    img.set(VmcbField::Rip, host.rip);
    img.set(VmcbField::Rsp, host.rsp);
    img.set(VmcbField::Rax, host.rax);
    img.set(VmcbField::Cpl, host.cpl.into());
    img.set(VmcbField::GPat, host.regs.pat);
    mem.write_fields(
        hsave_pa,
        HOST_SAVE.layout(),
        img.values(),
        SvmAccess::HostSaveWrite,
    );
}

/// The state both the host save area and the guest state #VMEXIT writes
/// back begin with (APM Vol. 2 15.5.1, 15.6): ES, CS, SS and DS, GDTR and
/// IDTR, CPL, EFER, CR4, CR3 and CR0.
pub(crate) const SHARED_STATE: &[VmcbField] = {
    use VmcbField as F;
    &[
        F::EsSelector,
        F::EsAttrib,
        F::EsLimit,
        F::EsBase,
        F::CsSelector,
        F::CsAttrib,
        F::CsLimit,
        F::CsBase,
        F::SsSelector,
        F::SsAttrib,
        F::SsLimit,
        F::SsBase,
        F::DsSelector,
        F::DsAttrib,
        F::DsLimit,
        F::DsBase,
        F::GdtrLimit,
        F::GdtrBase,
        F::IdtrLimit,
        F::IdtrBase,
        F::Cpl,
        F::Efer,
        F::Cr4,
        F::Cr3,
        F::Cr0,
    ]
};

/// The fields of the host save area (every one is staged by [`save_host`]).
pub(crate) static HOST_SAVE: FieldList<30> = {
    use VmcbField as F;
    FieldList::new(&[SHARED_STATE, &[F::Rflags, F::Rip, F::Rsp, F::Rax, F::GPat]])
};

/// Loads a segment or descriptor-table register from a VMCB image, with bases
/// canonicalized (APM Vol. 2 15.5.1).
pub(crate) fn load_seg(img: &impl FieldSource, seg: VmcbSeg, linear_bits: u8) -> mmu::SegmentCache {
    img.seg(seg).to_cache(seg, linear_bits)
}

pub(crate) fn load_table(img: &impl FieldSource, t: VmcbTable, linear_bits: u8) -> TableRegister {
    let r = img.table(t);
    TableRegister {
        base: canonicalize(r.base, linear_bits),
        limit: r.limit,
    }
}

/// The guest registers VMRUN loads (APM Vol. 2 15.5.1, "Loading Guest
/// State"), into `cpu`: the registers VMRUN does not load keep the host's
/// values.
fn load_guest(cfg: &SvmConfig, cpu: &mut CpuState, img: &VmcbImage, np: bool) {
    let bits = cfg.widths.linear_bits;
    let regs = &mut cpu.regs;
    let cr0 = Cr0::from_bits_retain(img.get(VmcbField::Cr0) | Cr0::ET.bits());
    let mut efer = Efer::from_bits_retain(img.get(VmcbField::Efer));
    // EFER.LMA follows EFER.LME and CR0.PG.
    efer.set(Efer::LMA, efer.contains(Efer::LME) && cr0.contains(Cr0::PG));
    regs.cr0 = cr0;
    regs.cr2 = img.get(VmcbField::Cr2);
    regs.cr3 = img.get(VmcbField::Cr3);
    regs.cr4 = Cr4::from_bits_retain(img.get(VmcbField::Cr4));
    regs.efer = efer;
    regs.dr6 = img.get(VmcbField::Dr6);
    regs.dr7 = Dr7::from_bits_retain(img.get(VmcbField::Dr7)) | Dr7::FIXED1;
    for (seg, reg) in [
        (VmcbSeg::Es, SegReg::Es),
        (VmcbSeg::Cs, SegReg::Cs),
        (VmcbSeg::Ss, SegReg::Ss),
        (VmcbSeg::Ds, SegReg::Ds),
    ] {
        *regs.seg_mut(reg) = load_seg(img, seg, bits);
    }
    regs.gdtr = load_table(img, VmcbTable::Gdtr, bits);
    regs.idtr = load_table(img, VmcbTable::Idtr, bits);
    if np {
        regs.pat = img.get(VmcbField::GPat);
    }
    let rflags = Rflags::from_bits_retain(
        (img.get(VmcbField::Rflags) & Rflags::DEFINED) | Rflags::FIXED1.bits(),
    );
    // CPL: forced to 0 in real mode and 3 in virtual-8086 mode.
    let mode = cpu_mode(regs, rflags);
    let cpl = match mode {
        CpuMode::Real => 0,
        CpuMode::Virtual8086 => 3,
        _ => img.get(VmcbField::Cpl) as u8 & 3,
    };
    if matches!(mode, CpuMode::Real | CpuMode::Virtual8086) {
        // Real and virtual-8086 segments are always usable.
        for reg in SegReg::ALL {
            regs.seg_mut(reg).attr.0 &= !AccessRights::UNUSABLE;
        }
    }
    // The workspace derives CPL from SS.DPL; keep it equal to the VMCB CPL.
    let ss = regs.seg_mut(SegReg::Ss);
    ss.attr.0 = (ss.attr.0 & !0x60) | u32::from(cpl) << 5;
    cpu.rip = img.get(VmcbField::Rip);
    cpu.rsp = img.get(VmcbField::Rsp);
    cpu.rax = img.get(VmcbField::Rax);
    cpu.rflags = rflags;
    cpu.cpl = cpl;
}

/// The controls VMRUN loads (APM Vol. 2 15.5.1, "Control Bits").
fn controls(
    cfg: &SvmConfig,
    host: &CpuState,
    vmcb_pa: u64,
    hsave_pa: u64,
    img: &VmcbImage,
    np: bool,
) -> GuestControls {
    let f = &cfg.features;
    let vintr = VIntr::from_image(img);
    let nested = np.then(|| NestedPaging {
        ncr3: img.get(VmcbField::NCr3),
        host_cr0: host.regs.cr0,
        host_cr4: host.regs.cr4,
        host_efer: host.regs.efer,
        host_pat: host.regs.pat,
    });
    let host_long_mode = host.regs.efer.contains(Efer::LMA);
    let virt_vmload = if f.vmsave_virt
        && VirtExt::from_bits_retain(img.get(VmcbField::VirtExt))
            .contains(VirtExt::VMSAVE_VMLOAD_VIRT)
    {
        if np && host_long_mode {
            VirtVmload::On
        } else {
            VirtVmload::Exit
        }
    } else {
        VirtVmload::Off
    };
    let count = if f.pause_filter {
        img.get(VmcbField::PauseFilterCount) as u16
    } else {
        0
    };
    let threshold = if f.pause_filter_threshold {
        img.get(VmcbField::PauseFilterThreshold) as u16
    } else {
        0
    };
    GuestControls {
        vmcb_pa,
        hsave_pa,
        intercepts: Intercepts::from_image(img),
        iopm_base: img.get(VmcbField::IopmBasePa) & !0xfff,
        msrpm_base: img.get(VmcbField::MsrpmBasePa) & !0xfff,
        tsc_offset: img.get(VmcbField::TscOffset),
        asid: img.get(VmcbField::GuestAsid) as u32,
        vintr,
        vgif: f.vgif && vintr.vgif_enable,
        vnmi: f.vnmi && vintr.vnmi_enable,
        host_if: host.rflags.contains(Rflags::IF),
        nested,
        pause: PauseFilter::new(count, threshold),
        virt_vmload,
        event_inj: EventInj(img.get(VmcbField::EventInj)),
        nrip: img.get(VmcbField::NRip),
        host_long_mode,
    }
}

/// The event EVENTINJ asks for, if valid (checked legal by then).
fn injection(cfg: &SvmConfig, img: &VmcbImage, guest: &CpuState) -> Option<InjectedEvent> {
    let ev = EventInj(img.get(VmcbField::EventInj));
    if !ev.valid() {
        return None;
    }
    let typ = ev.typ()?;
    let trap_like = match typ {
        EventType::SoftwareInt => true,
        EventType::Exception => matches!(ev.vector(), 3 | 4),
        _ => false,
    };
    let return_rip = if trap_like && cfg.features.nrips {
        img.get(VmcbField::NRip)
    } else {
        guest.rip
    };
    Some(InjectedEvent {
        raw: ev,
        typ,
        vector: if typ == EventType::Nmi {
            2
        } else {
            ev.vector()
        },
        error_code: ev.ev().then(|| ev.error_code()),
        return_rip,
        dpl_checked: trap_like,
    })
}
