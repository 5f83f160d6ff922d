//! #VMEXIT (APM Vol. 2 15.6): write the guest state and the exit information
//! back to the VMCB, then reload the host state VMRUN saved.
//!
//! What #VMEXIT does, in the manual's order: GIF := 0; guest state (the subset
//! VMRUN loads, with V_IRQ, V_TPR and INTERRUPT_SHADOW) written to the VMCB;
//! EXITCODE, EXITINFO1, EXITINFO2, EXITINTINFO saved; intercepts cleared; ASID
//! := 0; V_IRQ and V_INTR_MASKING cleared; TSC_OFFSET cleared; host state
//! reloaded with CR0.PE := 1, RFLAGS.VM := 0, CPL := 0 and all host
//! breakpoints disabled; PDPEs reloaded for a PAE host; the reloaded host
//! state checked, any error being a shutdown.
//!
//! The interpreter performs the parts that are its own state: it drops the
//! [`GuestControls`] (which clears intercepts, ASID, V_INTR and TSC offset in
//! one step), sets GIF to 0 and loads [`HostLoad::state`].

use crate::checks::{self, CheckId};
use crate::clean::VmcbCache;
use crate::exit_code::ExitCode;
use crate::features::SvmConfig;
use crate::guest::{GuestControls, NestedPaging};
use crate::mem::{PhysMem, SvmAccess};
use crate::state::CpuState;
use crate::vmcb::{
    write_field_bytes, EventInj, EventType, FieldList, FieldSource, IntState, Staged, VIntr,
    VmcbField, VmcbSeg, VmcbSegment, VmcbTable,
};
use crate::vmrun::{load_pdptes, load_seg, load_table, HOST_SAVE, SHARED_STATE};
use mmu::{Cr0, Cr4, Dr7, Efer, Rflags, SegReg};
use serde::{Deserialize, Serialize};

/// Guest instruction bytes for decode assists (APM Vol. 2 15.8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InsnBytes {
    /// Number of bytes fetched, 0-15 (fewer than 15 only if fetching faulted).
    pub len: u8,
    /// The bytes at guest CS:RIP.
    pub bytes: [u8; 15],
}

impl InsnBytes {
    /// Up to 15 bytes from `b`.
    pub fn new(b: &[u8]) -> Self {
        let n = b.len().min(15);
        let mut bytes = [0; 15];
        bytes[..n].copy_from_slice(&b[..n]);
        Self {
            len: n as u8,
            bytes,
        }
    }
}

/// The reason for a #VMEXIT and the information saved with it
/// (APM Vol. 2 15.7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// EXITCODE.
    pub code: ExitCode,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// EXITINTINFO: the event the guest was delivering through its IDT when
    /// the intercept occurred (APM Vol. 2 15.7.2), if any.
    pub exit_int_info: Option<EventInj>,
    /// The next sequential RIP, saved as nRIP when the preset has NRIPS, for
    /// instruction intercepts, MSR and IOIO intercepts and exceptions raised
    /// by INT3, INTO and BOUND; `None` (nRIP := 0) for every other intercept.
    pub next_rip: Option<u64>,
    /// Decode assists: the guest instruction bytes, for #PF and #NPF intercepts
    /// on data accesses. `None` clears the byte count.
    pub insn_bytes: Option<InsnBytes>,
}

impl ExitInfo {
    /// An exit with no information.
    pub const fn new(code: ExitCode) -> Self {
        Self {
            code,
            info1: 0,
            info2: 0,
            exit_int_info: None,
            next_rip: None,
            insn_bytes: None,
        }
    }

    /// An exit with EXITINFO1 and EXITINFO2.
    pub const fn with_info(code: ExitCode, info1: u64, info2: u64) -> Self {
        Self {
            info1,
            info2,
            ..Self::new(code)
        }
    }

    /// The same exit with nRIP.
    pub const fn with_next_rip(mut self, next_rip: u64) -> Self {
        self.next_rip = Some(next_rip);
        self
    }

    /// The same exit, occurring while the guest delivered `event` (EXITINTINFO).
    pub const fn during_delivery(mut self, event: EventInj) -> Self {
        self.exit_int_info = Some(event);
        self
    }
}

/// The host state #VMEXIT (or a failed VMRUN) reloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLoad {
    /// The host registers, at the instruction after VMRUN, CPL 0. Registers
    /// VMRUN does not save (FS, GS, TR, LDTR, CR2, DR0-3, DR6, the syscall
    /// MSRs, ...) keep the values they had in the guest.
    pub state: CpuState,
    /// Everything else the reload says.
    pub reload: HostReload,
}

/// What #VMEXIT (or a failed VMRUN) reloads besides the registers: all of
/// a reload done in place ([`vmexit_in_place`]), whose registers are in
/// the processor state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReload {
    /// The reloaded host state (or its PAE PDPEs) is illegal: the processor
    /// shuts down (APM Vol. 2 15.6).
    pub shutdown: Option<CheckId>,
    /// The host's PDPEs, reloaded when the host uses legacy PAE paging.
    pub pdptes: Option<[u64; 4]>,
    /// Host RFLAGS.TF was set: a #DB trap follows the completed VMRUN
    /// (APM Vol. 2 15.5.1, "VMRUN and TF/RF Bits in EFLAGS").
    pub single_step: bool,
}

/// Performs #VMEXIT from the guest running under `ctl`: `guest` is the guest
/// state at the intercept (RIP of the intercepted instruction for faults, of
/// the next instruction for traps), `interrupt_shadow` whether the guest is in
/// an interrupt shadow.
pub fn vmexit<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    guest: &CpuState,
    interrupt_shadow: bool,
    exit: &ExitInfo,
    mem: &mut M,
    cache: &mut VmcbCache,
) -> HostLoad {
    let mut cpu = guest.clone();
    let reload = vmexit_in_place(cfg, ctl, &mut cpu, interrupt_shadow, exit, mem, cache);
    HostLoad { state: cpu, reload }
}

/// [`vmexit`] on the processor state itself, as the hardware does it: `cpu`
/// is the guest state at the intercept on entry and the reloaded host state
/// on return, so the registers are not copied into a new value (the world
/// switch is the interpreter's most frequent big copy otherwise).
pub fn vmexit_in_place<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    ctl: &GuestControls,
    cpu: &mut CpuState,
    interrupt_shadow: bool,
    exit: &ExitInfo,
    mem: &mut M,
    cache: &mut VmcbCache,
) -> HostReload {
    let guest = &*cpu;
    let list = &EXIT_LISTS[exit_list_index(
        ctl.nested.is_some(),
        cfg.features.nrips,
        cfg.features.decode_assists,
    )];
    let mut img = Staged::new(list);
    let mut vintr = ctl.vintr;
    if ctl.vnmi
        && exit
            .exit_int_info
            .is_some_and(|e| e.typ() == Some(EventType::Nmi))
    {
        // A #VMEXIT while delivering the virtual NMI saves V_NMI_MASK as 0
        // (15.21.10); with NMI virtualization, physical NMIs are intercepted,
        // so an NMI being delivered is the virtual (or injected) one.
        vintr.v_nmi_mask = false;
    }
    save_guest(&mut img, vintr, ctl, guest, interrupt_shadow);
    img.set(VmcbField::ExitCode, exit.code.0);
    img.set(VmcbField::ExitInfo1, exit.info1);
    img.set(VmcbField::ExitInfo2, exit.info2);
    img.set(
        VmcbField::ExitIntInfo,
        exit.exit_int_info.map_or(0, |e| e.0 | EventInj::VALID),
    );
    img.set(VmcbField::EventInj, 0);
    if cfg.features.nrips {
        img.set(VmcbField::NRip, exit.next_rip.unwrap_or(0));
    }
    if cfg.features.decode_assists {
        let b = exit.insn_bytes.unwrap_or_default();
        img.set(VmcbField::GuestInsnBytesFetched, b.len.into());
        if exit.insn_bytes.is_some() {
            write_field_bytes(
                mem,
                ctl.vmcb_pa,
                VmcbField::GuestInsnBytes,
                &b.bytes,
                SvmAccess::VmcbWrite,
            );
        }
    }
    mem.write_fields(
        ctl.vmcb_pa,
        list.layout(),
        img.values(),
        SvmAccess::VmcbWrite,
    );
    if let Some(c) = cache.image_mut(ctl.vmcb_pa) {
        c.set_staged(&img);
    }
    reload_host_in_place(cfg, mem, ctl.hsave_pa, cpu, ctl.nested.as_ref())
}

/// The guest state #VMEXIT writes back (the subset VMRUN loads, APM Vol. 2
/// 15.6) after [`SHARED_STATE`], with the exit information, in the order
/// [`save_guest`] and [`vmexit`] stage them; G_PAT (nested paging), NRIP
/// (NRIPS) and the decode-assist byte count (decode assists) follow when
/// they apply.
const EXIT_FIELDS: &[VmcbField] = {
    use VmcbField as F;
    &[
        F::Dr7,
        F::Dr6,
        F::Rflags,
        F::Rip,
        F::Rsp,
        F::Rax,
        F::Cr2,
        F::VIntrControl,
        F::InterruptShadow,
        F::ExitCode,
        F::ExitInfo1,
        F::ExitInfo2,
        F::ExitIntInfo,
        F::EventInj,
    ]
};

/// The most fields one #VMEXIT writes: [`SHARED_STATE`], [`EXIT_FIELDS`]
/// and the three that depend on the configuration.
const EXIT_MAX: usize = SHARED_STATE.len() + EXIT_FIELDS.len() + 3;

/// The index in [`EXIT_LISTS`] of the list for a guest with nested paging
/// (`nested`) on a processor with NRIPS and decode assists.
const fn exit_list_index(nested: bool, nrips: bool, decode_assists: bool) -> usize {
    nested as usize | (nrips as usize) << 1 | (decode_assists as usize) << 2
}

/// The fields #VMEXIT writes, for each combination of
/// [`exit_list_index`]'s conditions.
static EXIT_LISTS: [FieldList<EXIT_MAX>; 8] = {
    use VmcbField as F;
    const fn variant(i: usize) -> FieldList<EXIT_MAX> {
        let all = [F::GPat, F::NRip, F::GuestInsnBytesFetched];
        let mut extra = [F::GPat; 3];
        let (mut n, mut b) = (0, 0);
        while b < 3 {
            if i & (1 << b) != 0 {
                extra[n] = all[b];
                n += 1;
            }
            b += 1;
        }
        let (extra, _) = extra.split_at(n);
        FieldList::new(&[SHARED_STATE, EXIT_FIELDS, extra])
    }
    [
        variant(0),
        variant(1),
        variant(2),
        variant(3),
        variant(4),
        variant(5),
        variant(6),
        variant(7),
    ]
};

/// Stages the guest state #VMEXIT writes back (the subset VMRUN loads).
fn save_guest<const N: usize>(
    img: &mut Staged<'_, N>,
    vintr: VIntr,
    ctl: &GuestControls,
    guest: &CpuState,
    shadow: bool,
) {
    let r = &guest.regs;
    for (seg, reg) in [
        (VmcbSeg::Es, SegReg::Es),
        (VmcbSeg::Cs, SegReg::Cs),
        (VmcbSeg::Ss, SegReg::Ss),
        (VmcbSeg::Ds, SegReg::Ds),
    ] {
        img.set_seg(seg, VmcbSegment::from_cache(r.seg(reg)));
    }
    img.set_table(VmcbTable::Gdtr, r.gdtr);
    img.set_table(VmcbTable::Idtr, r.idtr);
    img.set(VmcbField::Cpl, guest.cpl.into());
    img.set(VmcbField::Efer, r.efer.bits());
    img.set(VmcbField::Cr4, r.cr4.bits());
    img.set(VmcbField::Cr3, r.cr3);
    img.set(VmcbField::Cr0, r.cr0.bits());
    img.set(VmcbField::Dr7, r.dr7.bits());
    img.set(VmcbField::Dr6, r.dr6);
    img.set(VmcbField::Rflags, guest.rflags.bits());
    img.set(VmcbField::Rip, guest.rip);
    img.set(VmcbField::Rsp, guest.rsp);
    img.set(VmcbField::Rax, guest.rax);
    img.set(VmcbField::Cr2, r.cr2);
    if ctl.nested.is_some() {
        img.set(VmcbField::GPat, r.pat);
    }
    img.set(VmcbField::VIntrControl, vintr.to_raw().into());
    let mut st = IntState::empty();
    st.set(IntState::INTERRUPT_SHADOW, shadow);
    st.set(
        IntState::GUEST_INTERRUPT_MASK,
        guest.rflags.contains(Rflags::IF),
    );
    img.set(VmcbField::InterruptShadow, st.bits());
}

/// Reloads the host state from the host save area at `hsave_pa` into `cpu`,
/// whose registers #VMEXIT does not reload stay as they are; `nested` is the
/// nested paging state of the guest being left (the host PAT comes back
/// with it).
pub(crate) fn reload_host_in_place<M: PhysMem + ?Sized>(
    cfg: &SvmConfig,
    mem: &mut M,
    hsave_pa: u64,
    cpu: &mut CpuState,
    nested: Option<&NestedPaging>,
) -> HostReload {
    let mut img = Staged::new(&HOST_SAVE);
    mem.read_fields(
        hsave_pa,
        HOST_SAVE.layout(),
        img.values_mut(),
        SvmAccess::HostSaveRead,
    );
    let bits = cfg.widths.linear_bits;
    let regs = &mut cpu.regs;
    for (seg, reg) in [
        (VmcbSeg::Es, SegReg::Es),
        (VmcbSeg::Cs, SegReg::Cs),
        (VmcbSeg::Ss, SegReg::Ss),
        (VmcbSeg::Ds, SegReg::Ds),
    ] {
        *regs.seg_mut(reg) = load_seg(&img, seg, bits);
    }
    regs.gdtr = load_table(&img, VmcbTable::Gdtr, bits);
    regs.idtr = load_table(&img, VmcbTable::Idtr, bits);
    regs.efer = Efer::from_bits_retain(img.get(VmcbField::Efer));
    regs.cr0 = Cr0::from_bits_retain(img.get(VmcbField::Cr0)) | Cr0::PE;
    regs.cr3 = img.get(VmcbField::Cr3);
    regs.cr4 = Cr4::from_bits_retain(img.get(VmcbField::Cr4));
    // "Disables all breakpoints in the host DR7 register": DR7 := 400h, as
    // KVM and Bochs do.
    regs.dr7 = Dr7::FIXED1;
    if nested.is_some() {
        regs.pat = img.get(VmcbField::GPat);
    }
    let ss = regs.seg_mut(SegReg::Ss);
    ss.attr.0 &= !0x60;
    let rflags = Rflags::from_bits_retain(
        img.get(VmcbField::Rflags) & Rflags::DEFINED & !(Rflags::VM | Rflags::RF).bits(),
    ) | Rflags::FIXED1;
    cpu.rip = img.get(VmcbField::Rip);
    cpu.rsp = img.get(VmcbField::Rsp);
    cpu.rax = img.get(VmcbField::Rax);
    cpu.rflags = rflags;
    cpu.cpl = 0;
    let state = &*cpu;
    let mut shutdown = checks::host_failure(cfg, state);
    let r = &state.regs;
    let pdptes =
        (r.cr0.contains(Cr0::PG) && r.cr4.contains(Cr4::PAE) && !r.efer.contains(Efer::LMA))
            .then(|| load_pdptes(mem, r.cr3));
    if shutdown.is_none()
        && pdptes.is_some_and(|p| p.iter().any(|e| checks::pdpte_reserved(cfg, *e)))
    {
        shutdown = Some(CheckId::PdpteReserved);
    }
    HostReload {
        single_step: state.rflags.contains(Rflags::TF),
        shutdown,
        pdptes,
    }
}
