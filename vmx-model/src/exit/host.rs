//! Loading host state and host MSRs (SDM Vol. 3C 28.5, "Loading Host State";
//! 28.6, "Loading MSRs"), shared by VM exits and by VM-entry failures.

use super::VmxAbort;
use crate::caps::VmxCaps;
use crate::controls::ExitControls;
use crate::entry::pdpte_ok;
use crate::mem::{Access, MsrOracle, PhysMem, PhysMemExt};
use crate::msr_area::load_area;
use crate::vmcs::{Field, Vmcs};
use mmu::{
    canonicalize, AccessRights, Cr0, Cr4, Dr7, Efer, SegmentCache, Selector, SystemRegs,
    TableRegister,
};
use serde::{Deserialize, Serialize};

/// CR0 bits VM entries and VM exits never modify: ET (4), reserved 15:6, 17 and
/// 28:19, NW (29), CD (30) (SDM Vol. 3C 27.3.2.1 and 28.5.1).
pub(crate) const CR0_KEPT: u64 = 0x7ffa_ffd0;

/// The host state a VM exit (or VM-entry failure) establishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLoad {
    /// The new system registers.
    pub regs: SystemRegs,
    /// Everything else.
    pub fields: HostFields,
}

/// The host state a VM exit establishes besides the system registers: all
/// of a load done in place ([`load_host_state_in_place`]), whose registers
/// are the processor's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFields {
    /// RIP from the host-state area.
    pub rip: u64,
    /// RSP from the host-state area.
    pub rsp: u64,
    /// RFLAGS: every bit cleared but bit 1 (28.5.3).
    pub rflags: u64,
    /// PDPTEs loaded from host CR3 when the host uses PAE paging (28.5.4).
    pub pdptes: Option<[u64; 4]>,
    /// Writes from the VM-exit MSR-load area to MSRs outside the system
    /// registers, in order.
    pub msr_writes: Vec<(u32, u64)>,
    /// True if the exit was caused by an NMI: NMIs are now blocked (28.5.5).
    /// Otherwise blocking by NMI is unchanged.
    pub block_nmi: bool,
}

/// 28.5 then 28.6, starting from the processor's registers `regs`.
pub fn load_host_state(
    v: &Vmcs,
    caps: &VmxCaps,
    regs: &SystemRegs,
    mem: &mut dyn PhysMem,
    oracle: &mut dyn MsrOracle,
) -> Result<HostLoad, VmxAbort> {
    let mut r = regs.clone();
    load_host_state_in_place(v, caps, &mut r, mem, oracle)
        .map(|fields| HostLoad { regs: r, fields })
}

/// [`load_host_state`] on the registers themselves: `regs` holds the
/// processor's registers on entry and, on success, the host's. After a VMX
/// abort they are partly loaded (the processor shuts down; nothing reads
/// them).
pub fn load_host_state_in_place(
    v: &Vmcs,
    caps: &VmxCaps,
    r: &mut SystemRegs,
    mem: &mut dyn PhysMem,
    oracle: &mut dyn MsrOracle,
) -> Result<HostFields, VmxAbort> {
    let exit = ExitControls::from_bits_retain(v.get32(Field::ExitControls));
    let host64 = exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    if r.long_mode_active() && !host64 {
        return Err(VmxAbort::HostAddressSpaceSize);
    }
    control_registers(r, v, caps, exit);
    segments(r, v, host64);
    let pdptes = host_pdptes(r, caps, mem)?;
    let loaded = load_area(
        mem,
        v.get(Field::ExitMsrLoadAddress),
        v.get32(Field::ExitMsrLoadCount),
        caps.max_msr_list(),
        r,
        oracle,
    );
    if loaded.failed.is_some() {
        return Err(VmxAbort::LoadingHostMsrs);
    }
    Ok(HostFields {
        rip: v.get(Field::HostRip),
        rsp: v.get(Field::HostRsp),
        rflags: 2,
        pdptes,
        msr_writes: loaded.other,
        block_nmi: false,
    })
}

/// 28.5.1: control registers, debug registers, MSRs.
fn control_registers(r: &mut SystemRegs, v: &Vmcs, caps: &VmxCaps, exit: ExitControls) {
    let f = &caps.features;
    let host64 = exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    let cr0 = v.get(Field::HostCr0) & !CR0_KEPT | r.cr0.bits() & CR0_KEPT;
    r.cr0 = Cr0::from_bits_retain(cr0);
    r.cr3 = v.get(Field::HostCr3);
    let mut cr4 = (v.get(Field::HostCr4) | f.cr4_fixed0()) & f.cr4_fixed1;
    if host64 {
        cr4 |= Cr4::PAE.bits();
    } else {
        cr4 &= !Cr4::PCIDE.bits();
    }
    r.cr4 = Cr4::from_bits_retain(cr4);
    r.dr7 = Dr7::from_bits_retain(0x400);
    r.debugctl = 0;
    let bits = f.widths.linear_bits;
    r.sysenter_cs = v.get(Field::HostSysenterCs);
    r.sysenter_esp = canonicalize(v.get(Field::HostSysenterEsp), bits);
    r.sysenter_eip = canonicalize(v.get(Field::HostSysenterEip), bits);
    if exit.contains(ExitControls::LOAD_EFER) {
        r.efer = Efer::from_bits_retain(v.get(Field::HostEfer));
    } else {
        r.efer.set(Efer::LMA | Efer::LME, host64);
    }
    if exit.contains(ExitControls::LOAD_PAT) {
        r.pat = v.get(Field::HostPat);
    }
}

/// 28.5.2: segment and descriptor-table registers.
fn segments(r: &mut SystemRegs, v: &Vmcs, host64: bool) {
    const G: u32 = 0x8000;
    const DB: u32 = 0x4000;
    const L: u32 = 0x2000;
    let data = |sel: u64, base: u64| {
        let mut attr = 0x93 | DB | G;
        if sel == 0 {
            attr |= AccessRights::UNUSABLE;
        }
        SegmentCache {
            selector: Selector(sel as u16),
            base,
            limit: 0xffff_ffff,
            attr: AccessRights(attr),
        }
    };
    let cs_attr = 0x9b | G | if host64 { L } else { DB };
    r.segs = [
        data(v.get(Field::HostEsSelector), 0),
        SegmentCache {
            selector: Selector(v.get16(Field::HostCsSelector)),
            base: 0,
            limit: 0xffff_ffff,
            attr: AccessRights(cs_attr),
        },
        data(v.get(Field::HostSsSelector), 0),
        data(v.get(Field::HostDsSelector), 0),
        data(v.get(Field::HostFsSelector), v.get(Field::HostFsBase)),
        data(v.get(Field::HostGsSelector), v.get(Field::HostGsBase)),
    ];
    r.tr = SegmentCache {
        selector: Selector(v.get16(Field::HostTrSelector)),
        base: v.get(Field::HostTrBase),
        limit: 0x67,
        attr: AccessRights(0x8b),
    };
    r.ldtr = SegmentCache::null(0);
    r.gdtr = TableRegister {
        base: v.get(Field::HostGdtrBase),
        limit: 0xffff,
    };
    r.idtr = TableRegister {
        base: v.get(Field::HostIdtrBase),
        limit: 0xffff,
    };
}

/// 28.5.4: a host using PAE paging (CR0.PG, CR4.PAE, not IA-32e) loads its PDPTEs
/// from CR3; an invalid one is a VMX abort (indicator 2).
fn host_pdptes(
    r: &SystemRegs,
    caps: &VmxCaps,
    mem: &mut dyn PhysMem,
) -> Result<Option<[u64; 4]>, VmxAbort> {
    let pae = r.cr0.contains(Cr0::PG) && r.cr4.contains(Cr4::PAE) && !r.long_mode_active();
    if !pae {
        return Ok(None);
    }
    let base = r.cr3 & 0xffff_ffe0;
    let p: [u64; 4] = core::array::from_fn(|i| mem.read_u64(base + 8 * i as u64, Access::Pdpte));
    if p.iter()
        .all(|&e| pdpte_ok(e, caps.features.widths.phys_bits))
    {
        Ok(Some(p))
    } else {
        Err(VmxAbort::HostPdptes)
    }
}
