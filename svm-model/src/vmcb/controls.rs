//! Typed views of the VMCB control fields (APM Vol. 2 appendix B, table B-1):
//! the intercept vectors, EVENTINJ/EXITINTINFO, the virtual-interrupt control
//! word, TLB_CONTROL, the clean bits and the enable words at 090h and 0B8h.

use super::image::VmcbImage;
use super::layout::{CleanBit, VmcbField};
use bitflags::bitflags;
use serde::{Deserialize, Serialize};

bitflags! {
    /// Intercept vector 3, VMCB offset 00Ch (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Misc1: u32 {
        /// Physical maskable interrupt.
        const INTR = 1 << 0;
        /// NMI.
        const NMI = 1 << 1;
        /// SMI.
        const SMI = 1 << 2;
        /// INIT.
        const INIT = 1 << 3;
        /// Virtual maskable interrupt.
        const VINTR = 1 << 4;
        /// CR0 writes that change bits other than CR0.TS or CR0.MP.
        const CR0_SEL_WRITE = 1 << 5;
        /// Reads of IDTR (SIDT).
        const IDTR_READ = 1 << 6;
        /// Reads of GDTR (SGDT).
        const GDTR_READ = 1 << 7;
        /// Reads of LDTR (SLDT).
        const LDTR_READ = 1 << 8;
        /// Reads of TR (STR).
        const TR_READ = 1 << 9;
        /// Writes of IDTR (LIDT).
        const IDTR_WRITE = 1 << 10;
        /// Writes of GDTR (LGDT).
        const GDTR_WRITE = 1 << 11;
        /// Writes of LDTR (LLDT).
        const LDTR_WRITE = 1 << 12;
        /// Writes of TR (LTR).
        const TR_WRITE = 1 << 13;
        /// RDTSC.
        const RDTSC = 1 << 14;
        /// RDPMC.
        const RDPMC = 1 << 15;
        /// PUSHF.
        const PUSHF = 1 << 16;
        /// POPF.
        const POPF = 1 << 17;
        /// CPUID.
        const CPUID = 1 << 18;
        /// RSM.
        const RSM = 1 << 19;
        /// IRET.
        const IRET = 1 << 20;
        /// INTn.
        const INTN = 1 << 21;
        /// INVD.
        const INVD = 1 << 22;
        /// PAUSE.
        const PAUSE = 1 << 23;
        /// HLT.
        const HLT = 1 << 24;
        /// INVLPG.
        const INVLPG = 1 << 25;
        /// INVLPGA.
        const INVLPGA = 1 << 26;
        /// IOIO_PROT: IN/OUT to ports selected by the IOPM.
        const IOIO_PROT = 1 << 27;
        /// MSR_PROT: RDMSR/WRMSR of MSRs selected by the MSRPM.
        const MSR_PROT = 1 << 28;
        /// Task switches.
        const TASK_SWITCH = 1 << 29;
        /// FERR_FREEZE.
        const FERR_FREEZE = 1 << 30;
        /// Shutdown events.
        const SHUTDOWN = 1 << 31;
    }
}

bitflags! {
    /// Intercept vector 4, VMCB offset 010h (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Misc2: u32 {
        /// VMRUN (must be set, APM Vol. 2 15.5.1).
        const VMRUN = 1 << 0;
        /// VMMCALL.
        const VMMCALL = 1 << 1;
        /// VMLOAD.
        const VMLOAD = 1 << 2;
        /// VMSAVE.
        const VMSAVE = 1 << 3;
        /// STGI.
        const STGI = 1 << 4;
        /// CLGI.
        const CLGI = 1 << 5;
        /// SKINIT.
        const SKINIT = 1 << 6;
        /// RDTSCP.
        const RDTSCP = 1 << 7;
        /// ICEBP.
        const ICEBP = 1 << 8;
        /// WBINVD and WBNOINVD.
        const WBINVD = 1 << 9;
        /// MONITOR/MONITORX.
        const MONITOR = 1 << 10;
        /// MWAIT/MWAITX unconditionally.
        const MWAIT = 1 << 11;
        /// MWAIT/MWAITX if monitor hardware is armed.
        const MWAIT_CONDITIONAL = 1 << 12;
        /// XSETBV.
        const XSETBV = 1 << 13;
        /// RDPRU.
        const RDPRU = 1 << 14;
        /// Writes of EFER (trap, after the instruction).
        const EFER_WRITE_TRAP = 1 << 15;
        /// Writes of CR0-15 (trap, after the instruction), bits 31:16.
        const CR_WRITE_TRAPS = 0xffff << 16;
    }
}

bitflags! {
    /// Intercept vector 5, VMCB offset 014h (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Misc3: u32 {
        /// All INVLPGB instructions.
        const INVLPGB = 1 << 0;
        /// Only illegally specified INVLPGB instructions.
        const INVLPGB_ILLEGAL = 1 << 1;
        /// INVPCID.
        const INVPCID = 1 << 2;
        /// MCOMMIT.
        const MCOMMIT = 1 << 3;
        /// TLBSYNC.
        const TLBSYNC = 1 << 4;
        /// Bus lock when the bus lock threshold counter is 0.
        const BUSLOCK = 1 << 5;
        /// HLT if a virtual interrupt is not pending.
        const IDLE_HLT = 1 << 6;
    }
}

/// The intercept vectors 0-5 (VMCB offsets 000h-017h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Intercepts {
    /// Reads of CR0-15.
    pub cr_read: u16,
    /// Writes of CR0-15.
    pub cr_write: u16,
    /// Reads of DR0-15.
    pub dr_read: u16,
    /// Writes of DR0-15.
    pub dr_write: u16,
    /// Exception vectors 0-31.
    pub exceptions: u32,
    /// Vector 3.
    pub misc1: Misc1,
    /// Vector 4.
    pub misc2: Misc2,
    /// Vector 5.
    pub misc3: Misc3,
}

impl Intercepts {
    /// Decodes the intercept vectors of a VMCB.
    pub fn from_image(img: &VmcbImage) -> Self {
        let cr = img.get(VmcbField::InterceptCr);
        let dr = img.get(VmcbField::InterceptDr);
        Self {
            cr_read: cr as u16,
            cr_write: (cr >> 16) as u16,
            dr_read: dr as u16,
            dr_write: (dr >> 16) as u16,
            exceptions: img.get(VmcbField::InterceptExceptions) as u32,
            misc1: Misc1::from_bits_retain(img.get(VmcbField::InterceptMisc1) as u32),
            misc2: Misc2::from_bits_retain(img.get(VmcbField::InterceptMisc2) as u32),
            misc3: Misc3::from_bits_retain(img.get(VmcbField::InterceptMisc3) as u32),
        }
    }

    /// Encodes the intercept vectors into a VMCB.
    pub fn to_image(&self, img: &mut VmcbImage) {
        img.set(
            VmcbField::InterceptCr,
            u64::from(self.cr_read) | u64::from(self.cr_write) << 16,
        );
        img.set(
            VmcbField::InterceptDr,
            u64::from(self.dr_read) | u64::from(self.dr_write) << 16,
        );
        img.set(VmcbField::InterceptExceptions, self.exceptions.into());
        img.set(VmcbField::InterceptMisc1, self.misc1.bits().into());
        img.set(VmcbField::InterceptMisc2, self.misc2.bits().into());
        img.set(VmcbField::InterceptMisc3, self.misc3.bits().into());
    }
}

/// The TYPE field of EVENTINJ and EXITINTINFO (APM Vol. 2 tables 15-1, 15-11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EventType {
    /// External or virtual interrupt (INTR).
    Intr = 0,
    /// NMI.
    Nmi = 2,
    /// Exception (fault or trap).
    Exception = 3,
    /// Software interrupt (INTn instruction).
    SoftwareInt = 4,
}

/// EVENTINJ and EXITINTINFO share one format (APM Vol. 2 figures 15-1, 15-5):
/// VECTOR 7:0, TYPE 10:8, EV 11, V 31, ERRORCODE 63:32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventInj(pub u64);

impl EventInj {
    /// The V (valid) bit.
    pub const VALID: u64 = 1 << 31;
    /// The EV (error code valid) bit.
    pub const EV: u64 = 1 << 11;
    /// Bits 30:12, reserved (SBZ).
    pub const RESERVED: u64 = 0x7fff_f000;

    /// A valid event of `typ` with `vector` and optional error code.
    pub const fn new(typ: EventType, vector: u8, error_code: Option<u32>) -> Self {
        let mut v = Self::VALID | (typ as u64) << 8 | vector as u64;
        if let Some(e) = error_code {
            v |= Self::EV | (e as u64) << 32;
        }
        Self(v)
    }
    /// V.
    pub const fn valid(self) -> bool {
        self.0 & Self::VALID != 0
    }
    /// VECTOR.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }
    /// The raw TYPE field.
    pub const fn type_bits(self) -> u8 {
        ((self.0 >> 8) & 7) as u8
    }
    /// TYPE, if it is one of the defined values.
    pub const fn typ(self) -> Option<EventType> {
        match self.type_bits() {
            0 => Some(EventType::Intr),
            2 => Some(EventType::Nmi),
            3 => Some(EventType::Exception),
            4 => Some(EventType::SoftwareInt),
            _ => None,
        }
    }
    /// EV.
    pub const fn ev(self) -> bool {
        self.0 & Self::EV != 0
    }
    /// ERRORCODE (meaningful when EV is set).
    pub const fn error_code(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl core::fmt::Debug for EventInj {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !self.valid() {
            return write!(f, "EventInj(invalid, {:#x})", self.0);
        }
        write!(f, "EventInj({:?} vector {}", self.typ(), self.vector())?;
        if self.ev() {
            write!(f, " error {:#x}", self.error_code())?;
        }
        f.write_str(")")
    }
}

/// The virtual-interrupt control word at VMCB 060h-064h (table B-1; APM Vol. 2
/// 15.21.4, 15.21.10, 15.33.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct VIntr {
    /// V_TPR, bits 3:0 used.
    pub v_tpr: u8,
    /// V_IRQ: a virtual interrupt is pending.
    pub v_irq: bool,
    /// VGIF value (used when `vgif_enable`).
    pub v_gif: bool,
    /// V_NMI: a virtual NMI is pending (used when `vnmi_enable`).
    pub v_nmi: bool,
    /// V_NMI_MASK: virtual NMIs are masked.
    pub v_nmi_mask: bool,
    /// V_INTR_PRIO, 4 bits.
    pub v_intr_prio: u8,
    /// V_IGN_TPR.
    pub v_ign_tpr: bool,
    /// V_INTR_MASKING.
    pub v_intr_masking: bool,
    /// Virtual GIF enabled for this guest.
    pub vgif_enable: bool,
    /// V_NMI_ENABLE.
    pub vnmi_enable: bool,
    /// x2AVIC enable (not modelled).
    pub x2avic_enable: bool,
    /// AVIC enable (not modelled).
    pub avic_enable: bool,
    /// V_INTR_VECTOR.
    pub v_intr_vector: u8,
}

impl VIntr {
    /// Decodes the control dword at 060h and the vector byte at 064h.
    pub const fn from_raw(ctl: u32, vector: u8) -> Self {
        Self {
            v_tpr: ctl as u8,
            v_irq: ctl & (1 << 8) != 0,
            v_gif: ctl & (1 << 9) != 0,
            v_nmi: ctl & (1 << 11) != 0,
            v_nmi_mask: ctl & (1 << 12) != 0,
            v_intr_prio: ((ctl >> 16) & 0xf) as u8,
            v_ign_tpr: ctl & (1 << 20) != 0,
            v_intr_masking: ctl & (1 << 24) != 0,
            vgif_enable: ctl & (1 << 25) != 0,
            vnmi_enable: ctl & (1 << 26) != 0,
            x2avic_enable: ctl & (1 << 30) != 0,
            avic_enable: ctl & (1 << 31) != 0,
            v_intr_vector: vector,
        }
    }

    /// Encodes the control dword at 060h (the vector byte is `v_intr_vector`).
    pub const fn to_raw(self) -> u32 {
        self.v_tpr as u32
            | (self.v_irq as u32) << 8
            | (self.v_gif as u32) << 9
            | (self.v_nmi as u32) << 11
            | (self.v_nmi_mask as u32) << 12
            | ((self.v_intr_prio & 0xf) as u32) << 16
            | (self.v_ign_tpr as u32) << 20
            | (self.v_intr_masking as u32) << 24
            | (self.vgif_enable as u32) << 25
            | (self.vnmi_enable as u32) << 26
            | (self.x2avic_enable as u32) << 30
            | (self.avic_enable as u32) << 31
    }

    /// Reads it from a VMCB image.
    pub fn from_image(img: &VmcbImage) -> Self {
        Self::from_raw(
            img.get(VmcbField::VIntrControl) as u32,
            img.get(VmcbField::VIntrVector) as u8,
        )
    }

    /// Writes it into a VMCB image.
    pub fn to_image(self, img: &mut VmcbImage) {
        img.set(VmcbField::VIntrControl, self.to_raw().into());
        img.set(VmcbField::VIntrVector, self.v_intr_vector.into());
    }
}

/// What TLB_CONTROL asks VMRUN to flush (APM Vol. 2 15.16.1, table 15-9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlbFlush {
    /// Do not flush.
    None,
    /// Flush the entire TLB: all entries, all ASIDs.
    All,
    /// Flush this guest's entries (global and non-global) for the ASID.
    Asid(u32),
    /// Flush this guest's non-global entries for the ASID.
    AsidNonGlobal(u32),
}

impl TlbFlush {
    /// Interprets a TLB_CONTROL byte for guest `asid`. Without FlushByAsid only
    /// bit 0 exists (the first two encodings are on all SVM processors). With
    /// FlushByAsid, encodings 00h, 01h, 03h and 07h are defined; the model
    /// treats the reserved ones as a full flush, the only choice that can
    /// never expose a stale translation.
    pub const fn decode(tlb_control: u8, asid: u32, flush_by_asid: bool) -> Self {
        if !flush_by_asid {
            return if tlb_control & 1 != 0 {
                TlbFlush::All
            } else {
                TlbFlush::None
            };
        }
        match tlb_control {
            0x00 => TlbFlush::None,
            0x03 => TlbFlush::Asid(asid),
            0x07 => TlbFlush::AsidNonGlobal(asid),
            _ => TlbFlush::All,
        }
    }
}

/// The VMCB Clean field (APM Vol. 2 15.15.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CleanBits(pub u32);

impl CleanBits {
    /// True if `bit` is set.
    pub const fn contains(self, bit: CleanBit) -> bool {
        self.0 & bit.mask() != 0
    }
}

bitflags! {
    /// The enables at VMCB 090h (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct NestedCtl: u64 {
        /// NP_ENABLE: nested paging.
        const NP_ENABLE = 1 << 0;
        /// Secure encrypted virtualization (not modelled).
        const SEV = 1 << 1;
        /// SEV encrypted state (not modelled).
        const SEV_ES = 1 << 2;
        /// Guest mode execute trap (not modelled).
        const GMET = 1 << 3;
        /// Supervisor shadow stack check (not modelled).
        const SSS_CHECK = 1 << 4;
        /// Virtual transparent encryption (not modelled).
        const VTE = 1 << 5;
        /// Read-only guest page tables (not modelled).
        const ROGPT = 1 << 6;
        /// INVLPGB/TLBSYNC enable (not modelled).
        const INVLPGB_ENABLE = 1 << 7;
    }
}

bitflags! {
    /// The enables at VMCB 0B8h (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct VirtExt: u64 {
        /// LBR virtualization (not modelled).
        const LBR_VIRT = 1 << 0;
        /// VMSAVE/VMLOAD virtualization (APM Vol. 2 15.33.1).
        const VMSAVE_VMLOAD_VIRT = 1 << 1;
        /// IBS virtualization (not modelled).
        const IBS_VIRT = 1 << 2;
        /// PMC virtualization (not modelled).
        const PMC_VIRT = 1 << 3;
    }
}

bitflags! {
    /// The interrupt-state word at VMCB 068h (table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct IntState: u64 {
        /// The guest is in an interrupt shadow.
        const INTERRUPT_SHADOW = 1 << 0;
        /// The guest's RFLAGS.IF, written back on #VMEXIT.
        const GUEST_INTERRUPT_MASK = 1 << 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercepts_round_trip() {
        let i = Intercepts {
            cr_read: 0x0119,
            cr_write: 0x8001,
            dr_read: 0xff,
            dr_write: 0xff00,
            exceptions: 0x4000_2042,
            misc1: Misc1::INTR | Misc1::IOIO_PROT | Misc1::SHUTDOWN,
            misc2: Misc2::VMRUN | Misc2::VMMCALL | Misc2::CR_WRITE_TRAPS,
            misc3: Misc3::INVPCID,
        };
        let mut img = VmcbImage::zeroed();
        i.to_image(&mut img);
        assert_eq!(img.get(VmcbField::InterceptCr), 0x8001_0119);
        assert_eq!(Intercepts::from_image(&img), i);
    }

    #[test]
    fn misc_bits_match_kvm_numbering() {
        // KVM numbers intercepts as bit offsets from VMCB 000h: INTERCEPT_INTR
        // is 96 (word 3, bit 0) and INTERCEPT_VMRUN is 128 (word 4, bit 0).
        assert_eq!(Misc1::SHUTDOWN.bits(), 1 << (127 - 96));
        assert_eq!(Misc1::IOIO_PROT.bits(), 1 << (123 - 96));
        assert_eq!(Misc2::XSETBV.bits(), 1 << (141 - 128));
        assert_eq!(Misc2::EFER_WRITE_TRAP.bits(), 1 << (143 - 128));
    }

    #[test]
    fn event_inj_fields() {
        let e = EventInj::new(EventType::Exception, 14, Some(0x6));
        assert_eq!(e.0, 0x0000_0006_8000_0b0e);
        assert!(e.valid() && e.ev());
        assert_eq!(e.typ(), Some(EventType::Exception));
        assert_eq!(e.error_code(), 6);
        assert_eq!(EventInj(0x8000_0100).typ(), None);
        assert_eq!(
            format!("{e:?}"),
            "EventInj(Some(Exception) vector 14 error 0x6)"
        );
    }

    #[test]
    fn vintr_round_trip() {
        for raw in [0u32, 0x0f, 0x100, 0x0117_0305, 0x0700_1a0c, 0xc000_0000] {
            let v = VIntr::from_raw(raw, 0x41);
            let mask = 0xc71f_1bffu32; // the defined bits
            assert_eq!(v.to_raw(), raw & mask, "{raw:#x}");
        }
    }

    #[test]
    fn tlb_control_encodings() {
        assert_eq!(TlbFlush::decode(0, 5, true), TlbFlush::None);
        assert_eq!(TlbFlush::decode(1, 5, true), TlbFlush::All);
        assert_eq!(TlbFlush::decode(3, 5, true), TlbFlush::Asid(5));
        assert_eq!(TlbFlush::decode(7, 5, true), TlbFlush::AsidNonGlobal(5));
        assert_eq!(TlbFlush::decode(2, 5, true), TlbFlush::All);
        assert_eq!(TlbFlush::decode(3, 5, false), TlbFlush::All);
        assert_eq!(TlbFlush::decode(2, 5, false), TlbFlush::None);
    }
}
