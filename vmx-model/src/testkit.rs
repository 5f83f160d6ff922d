//! A known-good starting point for tests and property tests: flat memory with the
//! VMX structures laid out, an MSR oracle, and a VMCS describing a 64-bit guest and
//! a 64-bit host that passes every VM-entry check. Tests change one field to break
//! exactly one rule.

use crate::caps::VmxCaps;
use crate::controls::{EntryControls, ExitControls, ProcControls};
use crate::insn::{self, InsnCtx, LaunchOutcome, Outcome};
use crate::mem::{Access, FlatMem, MsrOracle, PhysMemExt};
use crate::vmcs::{Field, Vmcs, VmxState, INVALID_POINTER};
use mmu::{msr, AccessRights, Cr0, Cr4, Efer, SegmentCache, Selector, SystemRegs, TableRegister};
use std::collections::{BTreeMap, BTreeSet};

/// Physical addresses of the structures in [`Machine::mem`].
pub mod addr {
    /// VMXON region.
    pub const VMXON: u64 = 0x1000;
    /// The VMCS.
    pub const VMCS: u64 = 0x2000;
    /// A second VMCS region (link pointer, shadow VMCS, second guest).
    pub const VMCS2: u64 = 0x3000;
    /// I/O bitmap A.
    pub const IO_BITMAP_A: u64 = 0x4000;
    /// I/O bitmap B.
    pub const IO_BITMAP_B: u64 = 0x5000;
    /// MSR bitmaps.
    pub const MSR_BITMAP: u64 = 0x6000;
    /// Virtual-APIC page.
    pub const VIRTUAL_APIC: u64 = 0x7000;
    /// APIC-access page.
    pub const APIC_ACCESS: u64 = 0x8000;
    /// VM-entry MSR-load area.
    pub const ENTRY_MSR_LOAD: u64 = 0x9000;
    /// VM-exit MSR-store area.
    pub const EXIT_MSR_STORE: u64 = 0xa000;
    /// VM-exit MSR-load area.
    pub const EXIT_MSR_LOAD: u64 = 0xb000;
    /// EPT PML4.
    pub const EPT_PML4: u64 = 0x10000;
    /// Guest CR3 (also a PAE PDPT for 32-bit PAE guests).
    pub const GUEST_CR3: u64 = 0x11000;
    /// Host CR3.
    pub const HOST_CR3: u64 = 0x12000;
    /// VMREAD bitmap.
    pub const VMREAD_BITMAP: u64 = 0x13000;
    /// VMWRITE bitmap.
    pub const VMWRITE_BITMAP: u64 = 0x14000;
    /// PML log.
    pub const PML: u64 = 0x15000;
    /// #VE information area.
    pub const VE_INFO: u64 = 0x16000;
    /// EPTP list.
    pub const EPTP_LIST: u64 = 0x17000;
    /// Posted-interrupt descriptor.
    pub const PI_DESC: u64 = 0x18000;
    /// Size of the flat memory.
    pub const MEM_SIZE: usize = 0x40_0000;
}

/// An MSR file for tests: every MSR reads as its recorded value (0 if none) unless
/// listed unreadable; every write succeeds unless its index is refused.
#[derive(Clone, Debug, Default)]
pub struct TestMsrs {
    /// Values returned by RDMSR.
    pub values: BTreeMap<u32, u64>,
    /// MSRs whose RDMSR raises #GP.
    pub unreadable: BTreeSet<u32>,
    /// MSRs whose WRMSR raises #GP.
    pub unwritable: BTreeSet<u32>,
}

impl MsrOracle for TestMsrs {
    fn read(&mut self, index: u32) -> Option<u64> {
        (!self.unreadable.contains(&index)).then(|| self.values.get(&index).copied().unwrap_or(0))
    }
    fn can_write(&mut self, index: u32, _value: u64) -> bool {
        !self.unwritable.contains(&index)
    }
}

/// The host (L1) register file the known-good VMCS mirrors: 64-bit, CPL 0.
pub fn host_regs() -> SystemRegs {
    let mut r = SystemRegs {
        cr0: Cr0::PE | Cr0::MP | Cr0::ET | Cr0::NE | Cr0::WP | Cr0::PG,
        cr3: addr::HOST_CR3,
        cr4: Cr4::PAE | Cr4::VMXE,
        efer: Efer::LME | Efer::LMA | Efer::SCE,
        pat: SystemRegs::PAT_RESET,
        ..Default::default()
    };
    r.segs = [
        SegmentCache::flat(0x10, 3, 0, true, false),
        SegmentCache::flat(0x08, 11, 0, false, true),
        SegmentCache::flat(0x10, 3, 0, true, false),
        SegmentCache::flat(0x10, 3, 0, true, false),
        SegmentCache::flat(0x10, 3, 0, true, false),
        SegmentCache::flat(0x10, 3, 0, true, false),
    ];
    r.tr = SegmentCache {
        selector: Selector(0x18),
        base: 0x22000,
        limit: 0x67,
        attr: AccessRights(0x8b),
    };
    r.ldtr = SegmentCache::null(0);
    r.gdtr = TableRegister {
        base: 0x20000,
        limit: 0x27,
    };
    r.idtr = TableRegister {
        base: 0x21000,
        limit: 0xfff,
    };
    r
}

/// A VMCS with a 64-bit guest and a 64-bit host that passes every VM-entry check
/// under `caps`.
pub fn good_vmcs(caps: &VmxCaps) -> Vmcs {
    let mut v = Vmcs::new();
    let proc = caps.proc.must_be_one | ProcControls::ACTIVATE_SECONDARY_CONTROLS.bits();
    let exit = caps.exit.must_be_one | ExitControls::HOST_ADDRESS_SPACE_SIZE.bits();
    let entry = caps.entry.must_be_one | EntryControls::IA32E_MODE_GUEST.bits();
    for (f, x) in [
        (Field::PinBasedControls, caps.pin.must_be_one as u64),
        (
            Field::PrimaryProcBasedControls,
            (proc & caps.proc.may_be_one) as u64,
        ),
        (Field::ExitControls, exit as u64),
        (Field::EntryControls, entry as u64),
        (Field::VmcsLinkPointer, INVALID_POINTER),
    ] {
        v.set(f, x);
    }
    host_state(&mut v);
    guest_state(&mut v);
    v
}

fn host_state(v: &mut Vmcs) {
    let r = host_regs();
    for (f, x) in [
        (Field::HostCr0, r.cr0.bits()),
        (Field::HostCr3, r.cr3),
        (Field::HostCr4, r.cr4.bits()),
        (Field::HostCsSelector, 0x08),
        (Field::HostSsSelector, 0x10),
        (Field::HostDsSelector, 0x10),
        (Field::HostEsSelector, 0x10),
        (Field::HostFsSelector, 0x10),
        (Field::HostGsSelector, 0x10),
        (Field::HostTrSelector, 0x18),
        (Field::HostTrBase, r.tr.base),
        (Field::HostGdtrBase, r.gdtr.base),
        (Field::HostIdtrBase, r.idtr.base),
        (Field::HostRsp, 0x8_0000),
        (Field::HostRip, 0x10_0000),
        (Field::HostPat, SystemRegs::PAT_RESET),
        (Field::HostEfer, r.efer.bits()),
    ] {
        v.set(f, x);
    }
}

/// Guest segments of the known-good VMCS: (selector, base, limit, access rights)
/// fields and values, ES..GS in check order CS, SS, DS, ES, FS, GS, then LDTR and
/// TR. CS is 64-bit code, the data segments flat, LDTR unusable, TR a busy 64-bit TSS.
const GUEST_SEGS: [([Field; 4], [u64; 4]); 8] = {
    use Field as F;
    let data = [0x10, 0, 0xffff_ffff, 0xc093];
    [
        (
            [
                F::GuestCsSelector,
                F::GuestCsBase,
                F::GuestCsLimit,
                F::GuestCsAccessRights,
            ],
            [0x08, 0, 0xffff_ffff, 0xa09b],
        ),
        (
            [
                F::GuestSsSelector,
                F::GuestSsBase,
                F::GuestSsLimit,
                F::GuestSsAccessRights,
            ],
            data,
        ),
        (
            [
                F::GuestDsSelector,
                F::GuestDsBase,
                F::GuestDsLimit,
                F::GuestDsAccessRights,
            ],
            data,
        ),
        (
            [
                F::GuestEsSelector,
                F::GuestEsBase,
                F::GuestEsLimit,
                F::GuestEsAccessRights,
            ],
            data,
        ),
        (
            [
                F::GuestFsSelector,
                F::GuestFsBase,
                F::GuestFsLimit,
                F::GuestFsAccessRights,
            ],
            data,
        ),
        (
            [
                F::GuestGsSelector,
                F::GuestGsBase,
                F::GuestGsLimit,
                F::GuestGsAccessRights,
            ],
            data,
        ),
        (
            [
                F::GuestLdtrSelector,
                F::GuestLdtrBase,
                F::GuestLdtrLimit,
                F::GuestLdtrAccessRights,
            ],
            [0, 0, 0, 0x1_0000],
        ),
        (
            [
                F::GuestTrSelector,
                F::GuestTrBase,
                F::GuestTrLimit,
                F::GuestTrAccessRights,
            ],
            [0x18, 0x23000, 0x67, 0x8b],
        ),
    ]
};

fn guest_state(v: &mut Vmcs) {
    use Field as F;
    for (fields, values) in GUEST_SEGS {
        for (f, x) in fields.into_iter().zip(values) {
            v.set(f, x);
        }
    }
    let cr0 = (Cr0::PE | Cr0::MP | Cr0::ET | Cr0::NE | Cr0::WP | Cr0::PG).bits();
    for (f, x) in [
        (F::GuestCr0, cr0),
        (F::GuestCr3, addr::GUEST_CR3),
        (F::GuestCr4, (Cr4::PAE | Cr4::VMXE).bits()),
        (F::GuestDr7, 0x400),
        (F::GuestGdtrBase, 0x24000),
        (F::GuestGdtrLimit, 0x27),
        (F::GuestIdtrBase, 0x25000),
        (F::GuestIdtrLimit, 0xfff),
        (F::GuestRflags, 0x2),
        (F::GuestRip, 0x20_0000),
        (F::GuestRsp, 0x30_0000),
        (F::GuestPat, SystemRegs::PAT_RESET),
        (F::GuestEfer, (Efer::LME | Efer::LMA).bits()),
    ] {
        v.set(f, x);
    }
}

/// A processor in VMX root operation with the known-good VMCS current at
/// [`addr::VMCS`], plus memory, MSRs and the context of the L1 hypervisor.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The VMX state.
    pub state: VmxState,
    /// The capabilities.
    pub caps: VmxCaps,
    /// Physical memory.
    pub mem: FlatMem,
    /// The MSR file.
    pub msrs: TestMsrs,
    /// The instruction context (64-bit, CPL 0).
    pub ctx: InsnCtx,
    /// The processor's registers before VM entry.
    pub regs: SystemRegs,
}

impl Machine {
    /// VMXON, VMCLEAR and VMPTRLD done; the current VMCS is [`good_vmcs`].
    pub fn new(caps: VmxCaps) -> Self {
        let mut mem = FlatMem::new(addr::MEM_SIZE);
        let rev = caps.features.revision_id;
        for region in [addr::VMXON, addr::VMCS, addr::VMCS2] {
            mem.write_u32(region, rev, Access::Vmcs);
        }
        let mut m = Self {
            state: VmxState::default(),
            caps,
            mem,
            msrs: TestMsrs::default(),
            ctx: InsnCtx::long_mode_cpl0(),
            regs: host_regs(),
        };
        let on = insn::vmxon(&mut m.state, &m.caps, &m.ctx, &mut m.mem, || {
            Ok(addr::VMXON)
        });
        assert_eq!(on, Outcome::Succeed(()));
        let clear = insn::vmclear(&mut m.state, &m.caps, &m.ctx, &mut m.mem, || Ok(addr::VMCS));
        assert_eq!(clear, Outcome::Succeed(()));
        let ld = insn::vmptrld(&mut m.state, &m.caps, &m.ctx, &mut m.mem, || Ok(addr::VMCS));
        assert_eq!(ld, Outcome::Succeed(()));
        let good = good_vmcs(&m.caps);
        *m.vmcs() = good;
        m
    }

    /// With the default (`intel`) capabilities.
    pub fn intel() -> Self {
        Self::new(VmxCaps::default())
    }

    /// The current VMCS.
    pub fn vmcs(&mut self) -> &mut Vmcs {
        self.state.vmcs_mut().expect("a current VMCS")
    }

    /// Sets a field of the current VMCS.
    pub fn set(&mut self, f: Field, v: u64) -> &mut Self {
        self.vmcs().set(f, v);
        self
    }

    /// Reads a field of the current VMCS.
    pub fn get(&mut self, f: Field) -> u64 {
        self.vmcs().get(f)
    }

    /// ORs bits into a field.
    pub fn or(&mut self, f: Field, bits: u64) -> &mut Self {
        let x = self.get(f);
        self.set(f, x | bits)
    }

    /// Clears bits of a field.
    pub fn clear_bits(&mut self, f: Field, bits: u64) -> &mut Self {
        let x = self.get(f);
        self.set(f, x & !bits)
    }

    /// VMLAUNCH.
    pub fn launch(&mut self) -> LaunchOutcome {
        insn::vmlaunch(
            &mut self.state,
            &self.caps,
            &self.ctx,
            &self.regs,
            &mut self.mem,
            &mut self.msrs,
        )
    }

    /// VMRESUME.
    pub fn resume(&mut self) -> LaunchOutcome {
        insn::vmresume(
            &mut self.state,
            &self.caps,
            &self.ctx,
            &self.regs,
            &mut self.mem,
            &mut self.msrs,
        )
    }

    /// Writes an entry of an MSR area.
    pub fn msr_entry(&mut self, area: u64, i: u64, index: u32, value: u64) {
        self.mem
            .write_u64(area + 16 * i, index as u64, Access::MsrArea);
        self.mem
            .write_u64(area + 16 * i + 8, value, Access::MsrArea);
    }

    /// Puts the guest in 32-bit protected mode with PAE paging (not IA-32e).
    pub fn make_pae_guest(&mut self) {
        let ia32e = EntryControls::IA32E_MODE_GUEST.bits() as u64;
        self.clear_bits(Field::EntryControls, ia32e);
        self.set(Field::GuestEfer, 0);
        self.set(Field::GuestCsAccessRights, 0xc09b);
        // Valid PDPTEs at guest CR3: present, pointing at page directories.
        for i in 0..4u64 {
            self.mem.write_u64(
                addr::GUEST_CR3 + 8 * i,
                (0x30_0000 + (i << 12)) | 1,
                Access::Pdpte,
            );
        }
    }
}

impl Machine {
    /// Sets bits in the secondary processor-based controls.
    pub fn enable2(&mut self, bits: crate::controls::Proc2Controls) -> &mut Self {
        self.or(Field::SecondaryProcBasedControls, bits.bits() as u64)
    }

    /// Enables EPT with a valid EPTP (4-level, write-back) at [`addr::EPT_PML4`].
    pub fn enable_ept(&mut self) -> &mut Self {
        self.enable2(crate::controls::Proc2Controls::ENABLE_EPT);
        self.set(Field::EptPointer, addr::EPT_PML4 | 0x1e)
    }

    /// Enables "unrestricted guest" (and EPT, which it requires).
    pub fn enable_unrestricted(&mut self) -> &mut Self {
        self.enable_ept();
        self.enable2(crate::controls::Proc2Controls::UNRESTRICTED_GUEST)
    }

    /// Puts the guest in virtual-8086 mode under 32-bit PAE paging: RFLAGS.VM,
    /// segments with base = selector * 16, limit FFFFH, access rights F3H.
    pub fn make_v86_guest(&mut self) {
        self.make_pae_guest();
        self.set(Field::GuestRflags, 0x2_0002);
        for (i, (f, _)) in GUEST_SEGS[..6].iter().enumerate() {
            let sel = 0x1000 + 0x100 * i as u64;
            self.set(f[0], sel)
                .set(f[1], sel << 4)
                .set(f[2], 0xffff)
                .set(f[3], 0xf3);
        }
        self.set(Field::GuestRip, 0x100);
    }
}

/// The IA32_EFER index, re-exported for tests.
pub const IA32_EFER: u32 = msr::IA32_EFER;
