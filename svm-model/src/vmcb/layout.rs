//! The VMCB layout: the one table of every field of the control area and the
//! state-save area (APM Vol. 2 appendix B, tables B-1 and B-2), with the VMCB
//! clean bit that covers each (APM Vol. 2 15.15.3, figure 15-4).
//!
//! Offsets are from the start of the VMCB page; the state-save area starts at
//! 400h. Accessors, the layout report ([`layout_markdown`]), the clean-bit cache
//! and the tests all derive from this table.

use serde::{Deserialize, Serialize};

/// Which half of the VMCB a field lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Area {
    /// The control area, offsets 000h-3FFh (table B-1).
    Control,
    /// The state-save area, offsets 400h-FFFh (table B-2).
    Save,
}

/// The VMCB clean bits (APM Vol. 2 15.15.3, figure 15-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum CleanBit {
    /// I: intercept vectors, TSC offset, PAUSE filter count.
    I = 0,
    /// IOPM: IOPM_BASE and MSRPM_BASE.
    Iopm = 1,
    /// ASID.
    Asid = 2,
    /// TPR: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    Tpr = 3,
    /// NP: nested paging, N_CR3 and G_PAT.
    Np = 4,
    /// CRx: CR0, CR3, CR4, EFER.
    Crx = 5,
    /// DRx: DR6, DR7.
    Drx = 6,
    /// DT: GDT/IDT limit and base.
    Dt = 7,
    /// SEG: CS/DS/SS/ES selector/base/limit/attributes, CPL.
    Seg = 8,
    /// CR2.
    Cr2 = 9,
    /// LBR: DebugCtl, br_from/to, lastint_from/to.
    Lbr = 10,
    /// AVIC: APIC_BAR, backing page, physical and logical table pointers.
    Avic = 11,
    /// CET: S_CET, SSP, ISST_ADDR.
    Cet = 12,
}

impl CleanBit {
    /// All clean bits, in bit order.
    pub const ALL: [CleanBit; 13] = [
        CleanBit::I,
        CleanBit::Iopm,
        CleanBit::Asid,
        CleanBit::Tpr,
        CleanBit::Np,
        CleanBit::Crx,
        CleanBit::Drx,
        CleanBit::Dt,
        CleanBit::Seg,
        CleanBit::Cr2,
        CleanBit::Lbr,
        CleanBit::Avic,
        CleanBit::Cet,
    ];

    /// The bit's mask in the VMCB Clean field.
    pub const fn mask(self) -> u32 {
        1 << self as u8
    }
}

macro_rules! vmcb_fields {
    ($( $id:ident = $off:literal, $width:literal, $area:ident, $clean:expr, $name:literal, $desc:literal; )*) => {
        /// A field of the VMCB (APM Vol. 2 appendix B).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum VmcbField {
            $( #[doc = $desc] $id, )*
        }

        impl VmcbField {
            /// Every field, in offset order.
            pub const ALL: &'static [VmcbField] = &[ $( VmcbField::$id, )* ];

            /// Byte offset from the start of the VMCB.
            #[inline]
            pub const fn offset(self) -> usize {
                const OFFSETS: &[u16] = &[ $( $off, )* ];
                OFFSETS[self as usize] as usize
            }

            /// Width in bytes.
            #[inline]
            pub const fn width(self) -> usize {
                const WIDTHS: &[u8] = &[ $( $width, )* ];
                WIDTHS[self as usize] as usize
            }

            /// The bytes a field's value occupies when held as a `u64`:
            /// its width, at most eight (fields wider than eight bytes take
            /// a value in their first eight).
            #[inline]
            pub const fn stored_width(self) -> usize {
                if self.width() < 8 {
                    self.width()
                } else {
                    8
                }
            }

            /// Control area or state-save area.
            pub const fn area(self) -> Area {
                match self { $( VmcbField::$id => Area::$area, )* }
            }

            /// The clean bit that lets VMRUN take this field from its cache, if any.
            pub const fn clean(self) -> Option<CleanBit> {
                match self { $( VmcbField::$id => $clean, )* }
            }

            /// The manual's name.
            pub const fn name(self) -> &'static str {
                match self { $( VmcbField::$id => $name, )* }
            }

            /// The manual's description.
            pub const fn description(self) -> &'static str {
                match self { $( VmcbField::$id => $desc, )* }
            }
        }
    };
}

use CleanBit as C;

vmcb_fields! {
    // ---- Control area (table B-1) ----
    InterceptCr = 0x000, 4, Control, Some(C::I), "INTERCEPT_CR", "Vector 0: intercept reads (15:0) and writes (31:16) of CR0-15.";
    InterceptDr = 0x004, 4, Control, Some(C::I), "INTERCEPT_DR", "Vector 1: intercept reads (15:0) and writes (31:16) of DR0-15.";
    InterceptExceptions = 0x008, 4, Control, Some(C::I), "INTERCEPT_EXCEPTIONS", "Vector 2: intercept exception vectors 0-31.";
    InterceptMisc1 = 0x00c, 4, Control, Some(C::I), "INTERCEPT_VECTOR3", "Vector 3: INTR, NMI, SMI, INIT, VINTR, CR0 selective write, descriptor-table accesses, RDTSC ... SHUTDOWN.";
    InterceptMisc2 = 0x010, 4, Control, Some(C::I), "INTERCEPT_VECTOR4", "Vector 4: VMRUN ... RDPRU, EFER write trap (15), CR0-15 write traps (31:16).";
    InterceptMisc3 = 0x014, 4, Control, Some(C::I), "INTERCEPT_VECTOR5", "Vector 5: INVLPGB, illegal INVLPGB, INVPCID, MCOMMIT, TLBSYNC, bus lock, idle HLT.";
    PauseFilterThreshold = 0x03c, 2, Control, None, "PAUSE_FILTER_THRESHOLD", "PAUSE filter threshold (cycles).";
    PauseFilterCount = 0x03e, 2, Control, Some(C::I), "PAUSE_FILTER_COUNT", "PAUSE filter count.";
    IopmBasePa = 0x040, 8, Control, Some(C::Iopm), "IOPM_BASE_PA", "Physical base address of the IOPM (bits 11:0 ignored).";
    MsrpmBasePa = 0x048, 8, Control, Some(C::Iopm), "MSRPM_BASE_PA", "Physical base address of the MSRPM (bits 11:0 ignored).";
    TscOffset = 0x050, 8, Control, Some(C::I), "TSC_OFFSET", "Added to the TSC by RDTSC and RDTSCP in the guest.";
    GuestAsid = 0x058, 4, Control, Some(C::Asid), "GUEST_ASID", "Guest ASID.";
    TlbControl = 0x05c, 1, Control, None, "TLB_CONTROL", "TLB control: 00h nothing, 01h flush all, 03h flush this guest, 07h flush this guest's non-global entries.";
    TlbControlExt = 0x05d, 1, Control, None, "ALLOW_LARGER_RAP/CLEAR_RAP", "Bits 40-41 of the qword at 058h: RAP size and clear (not modelled).";
    VIntrControl = 0x060, 4, Control, Some(C::Tpr), "V_INTR_CONTROL", "V_TPR (7:0), V_IRQ (8), VGIF (9), V_NMI (11), V_NMI_MASK (12), V_INTR_PRIO (19:16), V_IGN_TPR (20), V_INTR_MASKING (24), VGIF enable (25), V_NMI_ENABLE (26), x2AVIC (30), AVIC (31).";
    VIntrVector = 0x064, 1, Control, Some(C::Tpr), "V_INTR_VECTOR", "Vector to use for the virtual interrupt.";
    InterruptShadow = 0x068, 8, Control, None, "INTERRUPT_SHADOW", "INTERRUPT_SHADOW (0), GUEST_INTERRUPT_MASK (1).";
    ExitCode = 0x070, 8, Control, None, "EXITCODE", "Exit code.";
    ExitInfo1 = 0x078, 8, Control, None, "EXITINFO1", "Exit information 1.";
    ExitInfo2 = 0x080, 8, Control, None, "EXITINFO2", "Exit information 2.";
    ExitIntInfo = 0x088, 8, Control, None, "EXITINTINFO", "Event being delivered when the intercept occurred.";
    NestedCtl = 0x090, 8, Control, None, "NP_ENABLE", "NP_ENABLE (0), SEV (1), SEV-ES (2), GMET (3), SSSCheckEn (4), VTE (5), ROGPT (6), INVLPGB/TLBSYNC enable (7).";
    AvicApicBar = 0x098, 8, Control, Some(C::Avic), "AVIC_APIC_BAR", "AVIC guest APIC base address (not modelled).";
    GhcbPa = 0x0a0, 8, Control, None, "GHCB_PA", "Guest physical address of the GHCB (SEV-ES, not modelled).";
    EventInj = 0x0a8, 8, Control, None, "EVENTINJ", "Event injection.";
    NCr3 = 0x0b0, 8, Control, Some(C::Np), "N_CR3", "Nested page table CR3.";
    VirtExt = 0x0b8, 8, Control, None, "LBR_VIRTUALIZATION_ENABLE", "LBR virtualization (0), VMSAVE/VMLOAD virtualization (1), IBS (2), PMC (3).";
    VmcbClean = 0x0c0, 4, Control, None, "VMCB_CLEAN", "VMCB clean bits.";
    NRip = 0x0c8, 8, Control, None, "NRIP", "Next sequential instruction pointer.";
    GuestInsnBytesFetched = 0x0d0, 1, Control, None, "GUEST_INSTR_BYTES_FETCHED", "Number of guest instruction bytes fetched (decode assists).";
    GuestInsnBytes = 0x0d1, 15, Control, None, "GUEST_INSTR_BYTES", "Guest instruction bytes (decode assists).";
    AvicBackingPage = 0x0e0, 8, Control, Some(C::Avic), "AVIC_APIC_BACKING_PAGE", "AVIC backing page pointer (not modelled).";
    AvicLogicalTable = 0x0f0, 8, Control, Some(C::Avic), "AVIC_LOGICAL_TABLE", "AVIC logical table pointer (not modelled).";
    AvicPhysicalTable = 0x0f8, 8, Control, Some(C::Avic), "AVIC_PHYSICAL_TABLE", "AVIC physical table pointer and max index (not modelled).";
    VmsaPtr = 0x108, 8, Control, None, "VMSA_POINTER", "VMSA pointer (SEV-ES, not modelled).";
    VmgexitRax = 0x110, 8, Control, None, "VMGEXIT_RAX", "VMGEXIT RAX (SEV-ES, not modelled).";
    VmgexitCpl = 0x118, 1, Control, None, "VMGEXIT_CPL", "VMGEXIT CPL (SEV-ES, not modelled).";
    BusLockCounter = 0x120, 2, Control, None, "BUS_LOCK_THRESHOLD_COUNTER", "Bus lock threshold counter (not modelled).";
    // ---- State-save area (table B-2), at 400h ----
    EsSelector = 0x400, 2, Save, Some(C::Seg), "ES.selector", "ES selector.";
    EsAttrib = 0x402, 2, Save, Some(C::Seg), "ES.attrib", "ES attributes.";
    EsLimit = 0x404, 4, Save, Some(C::Seg), "ES.limit", "ES limit.";
    EsBase = 0x408, 8, Save, Some(C::Seg), "ES.base", "ES base.";
    CsSelector = 0x410, 2, Save, Some(C::Seg), "CS.selector", "CS selector.";
    CsAttrib = 0x412, 2, Save, Some(C::Seg), "CS.attrib", "CS attributes.";
    CsLimit = 0x414, 4, Save, Some(C::Seg), "CS.limit", "CS limit.";
    CsBase = 0x418, 8, Save, Some(C::Seg), "CS.base", "CS base.";
    SsSelector = 0x420, 2, Save, Some(C::Seg), "SS.selector", "SS selector.";
    SsAttrib = 0x422, 2, Save, Some(C::Seg), "SS.attrib", "SS attributes.";
    SsLimit = 0x424, 4, Save, Some(C::Seg), "SS.limit", "SS limit.";
    SsBase = 0x428, 8, Save, Some(C::Seg), "SS.base", "SS base.";
    DsSelector = 0x430, 2, Save, Some(C::Seg), "DS.selector", "DS selector.";
    DsAttrib = 0x432, 2, Save, Some(C::Seg), "DS.attrib", "DS attributes.";
    DsLimit = 0x434, 4, Save, Some(C::Seg), "DS.limit", "DS limit.";
    DsBase = 0x438, 8, Save, Some(C::Seg), "DS.base", "DS base.";
    FsSelector = 0x440, 2, Save, None, "FS.selector", "FS selector (VMLOAD/VMSAVE).";
    FsAttrib = 0x442, 2, Save, None, "FS.attrib", "FS attributes (VMLOAD/VMSAVE).";
    FsLimit = 0x444, 4, Save, None, "FS.limit", "FS limit (VMLOAD/VMSAVE).";
    FsBase = 0x448, 8, Save, None, "FS.base", "FS base (VMLOAD/VMSAVE).";
    GsSelector = 0x450, 2, Save, None, "GS.selector", "GS selector (VMLOAD/VMSAVE).";
    GsAttrib = 0x452, 2, Save, None, "GS.attrib", "GS attributes (VMLOAD/VMSAVE).";
    GsLimit = 0x454, 4, Save, None, "GS.limit", "GS limit (VMLOAD/VMSAVE).";
    GsBase = 0x458, 8, Save, None, "GS.base", "GS base (VMLOAD/VMSAVE).";
    GdtrLimit = 0x464, 4, Save, Some(C::Dt), "GDTR.limit", "GDTR limit (only bits 15:0 implemented).";
    GdtrBase = 0x468, 8, Save, Some(C::Dt), "GDTR.base", "GDTR base.";
    LdtrSelector = 0x470, 2, Save, None, "LDTR.selector", "LDTR selector (VMLOAD/VMSAVE).";
    LdtrAttrib = 0x472, 2, Save, None, "LDTR.attrib", "LDTR attributes (VMLOAD/VMSAVE).";
    LdtrLimit = 0x474, 4, Save, None, "LDTR.limit", "LDTR limit (VMLOAD/VMSAVE).";
    LdtrBase = 0x478, 8, Save, None, "LDTR.base", "LDTR base (VMLOAD/VMSAVE).";
    IdtrLimit = 0x484, 4, Save, Some(C::Dt), "IDTR.limit", "IDTR limit (only bits 15:0 implemented).";
    IdtrBase = 0x488, 8, Save, Some(C::Dt), "IDTR.base", "IDTR base.";
    TrSelector = 0x490, 2, Save, None, "TR.selector", "TR selector (VMLOAD/VMSAVE).";
    TrAttrib = 0x492, 2, Save, None, "TR.attrib", "TR attributes (VMLOAD/VMSAVE).";
    TrLimit = 0x494, 4, Save, None, "TR.limit", "TR limit (VMLOAD/VMSAVE).";
    TrBase = 0x498, 8, Save, None, "TR.base", "TR base (VMLOAD/VMSAVE).";
    Cpl = 0x4cb, 1, Save, Some(C::Seg), "CPL", "CPL (forced to 0 in real mode and 3 in virtual-8086 mode).";
    Efer = 0x4d0, 8, Save, Some(C::Crx), "EFER", "EFER.";
    PerfCtl0 = 0x4e0, 8, Save, None, "PERF_CTL0", "Performance counter control 0 (PMC virtualization, not modelled).";
    PerfCtr0 = 0x4e8, 8, Save, None, "PERF_CTR0", "Performance counter 0 (not modelled).";
    PerfCtl1 = 0x4f0, 8, Save, None, "PERF_CTL1", "Performance counter control 1 (not modelled).";
    PerfCtr1 = 0x4f8, 8, Save, None, "PERF_CTR1", "Performance counter 1 (not modelled).";
    PerfCtl2 = 0x500, 8, Save, None, "PERF_CTL2", "Performance counter control 2 (not modelled).";
    PerfCtr2 = 0x508, 8, Save, None, "PERF_CTR2", "Performance counter 2 (not modelled).";
    PerfCtl3 = 0x510, 8, Save, None, "PERF_CTL3", "Performance counter control 3 (not modelled).";
    PerfCtr3 = 0x518, 8, Save, None, "PERF_CTR3", "Performance counter 3 (not modelled).";
    PerfCtl4 = 0x520, 8, Save, None, "PERF_CTL4", "Performance counter control 4 (not modelled).";
    PerfCtr4 = 0x528, 8, Save, None, "PERF_CTR4", "Performance counter 4 (not modelled).";
    PerfCtl5 = 0x530, 8, Save, None, "PERF_CTL5", "Performance counter control 5 (not modelled).";
    PerfCtr5 = 0x538, 8, Save, None, "PERF_CTR5", "Performance counter 5 (not modelled).";
    Cr4 = 0x548, 8, Save, Some(C::Crx), "CR4", "CR4.";
    Cr3 = 0x550, 8, Save, Some(C::Crx), "CR3", "CR3.";
    Cr0 = 0x558, 8, Save, Some(C::Crx), "CR0", "CR0.";
    Dr7 = 0x560, 8, Save, Some(C::Drx), "DR7", "DR7.";
    Dr6 = 0x568, 8, Save, Some(C::Drx), "DR6", "DR6.";
    Rflags = 0x570, 8, Save, None, "RFLAGS", "RFLAGS.";
    Rip = 0x578, 8, Save, None, "RIP", "RIP.";
    InstrRetiredCtr = 0x5c0, 8, Save, None, "INSTR_RETIRED_CTR", "Instructions retired counter (not modelled).";
    PerfCtrGlobalSts = 0x5c8, 8, Save, None, "PERF_CTR_GLOBAL_STS", "Global performance counter status (not modelled).";
    PerfCtrGlobalCtl = 0x5d0, 4, Save, None, "PERF_CTR_GLOBAL_CTL", "Global performance counter control (not modelled).";
    Rsp = 0x5d8, 8, Save, None, "RSP", "RSP.";
    SCet = 0x5e0, 8, Save, Some(C::Cet), "S_CET", "Supervisor CET MSR.";
    Ssp = 0x5e8, 8, Save, Some(C::Cet), "SSP", "Shadow stack pointer.";
    IsstAddr = 0x5f0, 8, Save, Some(C::Cet), "ISST_ADDR", "Interrupt SSP table address.";
    Rax = 0x5f8, 8, Save, None, "RAX", "RAX.";
    Star = 0x600, 8, Save, None, "STAR", "STAR (VMLOAD/VMSAVE).";
    Lstar = 0x608, 8, Save, None, "LSTAR", "LSTAR (VMLOAD/VMSAVE).";
    Cstar = 0x610, 8, Save, None, "CSTAR", "CSTAR (VMLOAD/VMSAVE).";
    Sfmask = 0x618, 8, Save, None, "SFMASK", "SFMASK (VMLOAD/VMSAVE).";
    KernelGsBase = 0x620, 8, Save, None, "KernelGsBase", "KernelGsBase (VMLOAD/VMSAVE).";
    SysenterCs = 0x628, 8, Save, None, "SYSENTER_CS", "SYSENTER_CS (VMLOAD/VMSAVE).";
    SysenterEsp = 0x630, 8, Save, None, "SYSENTER_ESP", "SYSENTER_ESP (VMLOAD/VMSAVE).";
    SysenterEip = 0x638, 8, Save, None, "SYSENTER_EIP", "SYSENTER_EIP (VMLOAD/VMSAVE).";
    Cr2 = 0x640, 8, Save, Some(C::Cr2), "CR2", "CR2.";
    GPat = 0x668, 8, Save, Some(C::Np), "G_PAT", "Guest PAT (only used if nested paging is enabled).";
    DbgCtl = 0x670, 8, Save, Some(C::Lbr), "DBGCTL", "Guest DebugCtl MSR (LBR virtualization).";
    BrFrom = 0x678, 8, Save, Some(C::Lbr), "BR_FROM", "Guest LastBranchFromIP MSR (LBR virtualization).";
    BrTo = 0x680, 8, Save, Some(C::Lbr), "BR_TO", "Guest LastBranchToIP MSR (LBR virtualization).";
    LastExcpFrom = 0x688, 8, Save, Some(C::Lbr), "LASTEXCPFROM", "Guest LastIntFromIP MSR (LBR virtualization).";
    LastExcpTo = 0x690, 8, Save, Some(C::Lbr), "LASTEXCPTO", "Guest LastIntToIP MSR (LBR virtualization).";
    DbgExtnCtl = 0x698, 8, Save, None, "DBGEXTNCTL", "Guest DebugExtnCtl MSR (LBR stack virtualization, not modelled).";
    SpecCtrl = 0x6e0, 8, Save, None, "SPEC_CTRL", "Guest SPEC_CTRL (not modelled).";
}

/// Size of the VMCB page.
pub const VMCB_SIZE: usize = 4096;

/// Renders the layout table as Markdown: the generated document
/// `svm-model/docs/vmcb-layout.md` is this string.
pub fn layout_markdown() -> String {
    let mut s = String::from(
        "# VMCB layout\n\n<!-- Generated by svm_model::vmcb::layout_markdown(); do not edit. -->\n\n\
         Source: AMD APM Vol. 2 appendix B, tables B-1 and B-2; clean bits from 15.15.3.\n\n\
         | Offset | Width | Area | Field | Clean bit | Description |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for f in VmcbField::ALL {
        let clean = f.clean().map_or("-".to_string(), |c| format!("{c:?}"));
        s.push_str(&format!(
            "| {:03X}h | {} | {:?} | {} | {} | {} |\n",
            f.offset(),
            f.width(),
            f.area(),
            f.name(),
            clean,
            f.description()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap_and_stay_in_their_area() {
        let mut fields: Vec<_> = VmcbField::ALL.to_vec();
        fields.sort_by_key(|f| f.offset());
        for w in fields.windows(2) {
            assert!(
                w[0].offset() + w[0].width() <= w[1].offset(),
                "{:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
        for f in VmcbField::ALL {
            assert!(
                f.width() > 0 && f.offset() + f.width() <= VMCB_SIZE,
                "{f:?}"
            );
            match f.area() {
                Area::Control => assert!(f.offset() + f.width() <= 0x400, "{f:?}"),
                Area::Save => assert!(f.offset() >= 0x400, "{f:?}"),
            }
        }
    }

    #[test]
    fn table_is_in_offset_order_with_unique_names() {
        for w in VmcbField::ALL.windows(2) {
            assert!(w[0].offset() < w[1].offset(), "{:?} / {:?}", w[0], w[1]);
        }
        let names: std::collections::BTreeSet<_> =
            VmcbField::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), VmcbField::ALL.len());
    }

    #[test]
    fn known_offsets_match_the_manual() {
        // Spot checks against APM tables B-1 and B-2 (and KVM's svm.h).
        assert_eq!(VmcbField::TlbControl.offset(), 0x5c);
        assert_eq!(VmcbField::EventInj.offset(), 0xa8);
        assert_eq!(VmcbField::NCr3.offset(), 0xb0);
        assert_eq!(VmcbField::NRip.offset(), 0xc8);
        assert_eq!(VmcbField::Cpl.offset(), 0x4cb);
        assert_eq!(VmcbField::Efer.offset(), 0x4d0);
        assert_eq!(VmcbField::Cr4.offset(), 0x548);
        assert_eq!(VmcbField::Rsp.offset(), 0x5d8);
        assert_eq!(VmcbField::Rax.offset(), 0x5f8);
        assert_eq!(VmcbField::KernelGsBase.offset(), 0x620);
        assert_eq!(VmcbField::GPat.offset(), 0x668);
    }

    #[test]
    fn every_clean_bit_covers_some_field() {
        for c in CleanBit::ALL {
            assert!(VmcbField::ALL.iter().any(|f| f.clean() == Some(c)), "{c:?}");
        }
    }

    #[test]
    fn generated_layout_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/vmcb-layout.md");
        let want = layout_markdown();
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != want {
            if std::env::var_os("SVM_MODEL_BLESS").is_some() {
                std::fs::write(path, &want).unwrap();
            } else {
                panic!("docs/vmcb-layout.md is stale; rerun with SVM_MODEL_BLESS=1");
            }
        }
    }
}
