//! Typed views of the VMCS that the checks and the loading read.

use crate::caps::VmxCaps;
use crate::controls::{EntryControls, ExitControls, PinControls, Proc2Controls, ProcControls};
use crate::vmcs::{Field, Vmcs};
use mmu::{is_canonical, AccessRights, SegmentCache, Selector};

/// The control fields in effect. `proc2` is 0 unless "activate secondary controls"
/// is 1 (SDM Vol. 3C 25.6.2); `raw_proc2` is the field as written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctls {
    pub pin: PinControls,
    pub proc: ProcControls,
    pub proc2: Proc2Controls,
    pub raw_proc2: u32,
    pub exit: ExitControls,
    pub entry: EntryControls,
}

impl Ctls {
    pub fn read(v: &Vmcs) -> Self {
        let proc = ProcControls::from_bits_retain(v.get32(Field::PrimaryProcBasedControls));
        let raw_proc2 = v.get32(Field::SecondaryProcBasedControls);
        let proc2 = if proc.contains(ProcControls::ACTIVATE_SECONDARY_CONTROLS) {
            Proc2Controls::from_bits_retain(raw_proc2)
        } else {
            Proc2Controls::empty()
        };
        Self {
            pin: PinControls::from_bits_retain(v.get32(Field::PinBasedControls)),
            proc,
            proc2,
            raw_proc2,
            exit: ExitControls::from_bits_retain(v.get32(Field::ExitControls)),
            entry: EntryControls::from_bits_retain(v.get32(Field::EntryControls)),
        }
    }
    pub fn ia32e_guest(&self) -> bool {
        self.entry.contains(EntryControls::IA32E_MODE_GUEST)
    }
    pub fn host64(&self) -> bool {
        self.exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE)
    }
    pub fn unrestricted(&self) -> bool {
        self.proc2.contains(Proc2Controls::UNRESTRICTED_GUEST)
    }
}

/// The four fields of a guest segment register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegFields {
    pub selector: Field,
    pub base: Field,
    pub limit: Field,
    pub ar: Field,
}

macro_rules! seg_fields {
    ($s:ident, $b:ident, $l:ident, $a:ident) => {
        SegFields {
            selector: Field::$s,
            base: Field::$b,
            limit: Field::$l,
            ar: Field::$a,
        }
    };
}

pub(crate) const ES: SegFields = seg_fields!(
    GuestEsSelector,
    GuestEsBase,
    GuestEsLimit,
    GuestEsAccessRights
);
pub(crate) const CS: SegFields = seg_fields!(
    GuestCsSelector,
    GuestCsBase,
    GuestCsLimit,
    GuestCsAccessRights
);
pub(crate) const SS: SegFields = seg_fields!(
    GuestSsSelector,
    GuestSsBase,
    GuestSsLimit,
    GuestSsAccessRights
);
pub(crate) const DS: SegFields = seg_fields!(
    GuestDsSelector,
    GuestDsBase,
    GuestDsLimit,
    GuestDsAccessRights
);
pub(crate) const FS: SegFields = seg_fields!(
    GuestFsSelector,
    GuestFsBase,
    GuestFsLimit,
    GuestFsAccessRights
);
pub(crate) const GS: SegFields = seg_fields!(
    GuestGsSelector,
    GuestGsBase,
    GuestGsLimit,
    GuestGsAccessRights
);
pub(crate) const LDTR: SegFields = seg_fields!(
    GuestLdtrSelector,
    GuestLdtrBase,
    GuestLdtrLimit,
    GuestLdtrAccessRights
);
pub(crate) const TR: SegFields = seg_fields!(
    GuestTrSelector,
    GuestTrBase,
    GuestTrLimit,
    GuestTrAccessRights
);

/// ES, CS, SS, DS, FS, GS in encoding order (the order of `SystemRegs::segs`).
pub(crate) const SEGS: [SegFields; 6] = [ES, CS, SS, DS, FS, GS];
/// The order the SDM lists them in the checks: CS, SS, DS, ES, FS, GS.
pub(crate) const CHECK_ORDER: [SegFields; 6] = [CS, SS, DS, ES, FS, GS];

impl SegFields {
    pub fn read(&self, v: &Vmcs) -> SegmentCache {
        SegmentCache {
            selector: Selector(v.get16(self.selector)),
            base: v.get(self.base),
            limit: v.get32(self.limit),
            attr: AccessRights(v.get32(self.ar)),
        }
    }
}

/// True if `la` is canonical for this processor's linear-address width.
pub(crate) fn canonical(caps: &VmxCaps, la: u64) -> bool {
    is_canonical(la, caps.features.widths.linear_bits)
}

/// True if `pa` sets no bit at or above MAXPHYADDR.
pub(crate) fn phys_ok(caps: &VmxCaps, pa: u64) -> bool {
    !caps.features.widths.exceeds_phys(pa)
}

/// True if `pa` is 4-KByte aligned and within MAXPHYADDR.
pub(crate) fn page_ok(caps: &VmxCaps, pa: u64) -> bool {
    pa & 0xfff == 0 && phys_ok(caps, pa)
}

/// True if every byte of a PAT value is a valid memory type: 0 (UC), 1 (WC),
/// 4 (WT), 5 (WP), 6 (WB) or 7 (UC-) (SDM Vol. 3A 12.12.2, "IA32_PAT MSR").
pub(crate) fn pat_ok(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7))
}

/// The limit/granularity consistency rule of SDM Vol. 3C 27.3.1.2: G must be 0 if
/// any of limit bits 11:0 is 0, and 1 if any of limit bits 31:20 is 1.
pub(crate) fn granularity_ok(seg: &SegmentCache) -> bool {
    let g = seg.attr.g();
    let low_ones = seg.limit & 0xfff == 0xfff;
    let high_zero = seg.limit & 0xfff0_0000 == 0;
    (low_ones || !g) && (high_zero || g)
}

/// Macro for the flat lists of early returns: `ensure!(cond, Id)` or
/// `ensure!(cond, Id, field)`.
macro_rules! ensure {
    ($cond:expr, $id:ident) => {
        if !($cond) {
            return Err($crate::entry::FailedCheck::new($crate::entry::CheckId::$id));
        }
    };
    ($cond:expr, $id:ident, $field:expr) => {
        if !($cond) {
            return Err($crate::entry::FailedCheck::at(
                $crate::entry::CheckId::$id,
                $field,
            ));
        }
    };
}
pub(crate) use ensure;
