//! VMRUN consistency checks (APM Vol. 2 15.5.1, "Canonicalization and
//! Consistency Checks", with 15.10.1, 15.11, 15.20, 15.21.10 and 15.25.4).
//!
//! Each rule is a [`CheckId`]: stable, typed, naming the VMCB field, the APM
//! section and the manual's wording. VMRUN runs every rule against the merged
//! state (after VMCB clean-bit caching, as 15.5.1 requires) and fails with
//! VMEXIT_INVALID on the first that is violated; [`guest_failures`] returns all
//! of them for diagnostics. #VMEXIT applies the host-state subset
//! ([`host_failure`]); a violation there is a shutdown (APM Vol. 2 15.6).

use crate::features::SvmConfig;
use crate::state::CpuState;
use crate::vmcb::{
    EventInj, EventType, Intercepts, Misc1, Misc2, NestedCtl, VIntr, VmcbField, VmcbImage, VmcbSeg,
};
use mmu::{Cr0, Cr4, Efer};
use serde::{Deserialize, Serialize};

macro_rules! checks {
    ($( $id:ident => $field:ident, $section:literal, $desc:literal; )*) => {
        /// A VMRUN consistency check (and, for the host subset, a #VMEXIT one).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum CheckId {
            $( #[doc = $desc] $id, )*
        }

        impl CheckId {
            /// Every check, in the order VMRUN evaluates them.
            pub const ALL: &'static [CheckId] = &[ $( CheckId::$id, )* ];

            /// The VMCB field the check is about.
            pub const fn field(self) -> VmcbField {
                match self { $( CheckId::$id => VmcbField::$field, )* }
            }

            /// The APM Vol. 2 section stating the rule.
            pub const fn section(self) -> &'static str {
                match self { $( CheckId::$id => $section, )* }
            }

            /// The rule in the manual's words.
            pub const fn description(self) -> &'static str {
                match self { $( CheckId::$id => $desc, )* }
            }

            /// The stable name, e.g. `Cr0CdNw`.
            pub const fn name(self) -> &'static str {
                match self { $( CheckId::$id => stringify!($id), )* }
            }
        }
    };
}

checks! {
    EferSvme => Efer, "15.5.1", "EFER.SVME is zero.";
    Cr0CdNw => Cr0, "15.5.1", "CR0.CD is zero and CR0.NW is set.";
    Cr0High => Cr0, "15.5.1", "CR0[63:32] are not zero.";
    Cr3Mbz => Cr3, "15.5.1", "Any MBZ bit of CR3 is set (bits at or above MAXPHYADDR).";
    Cr4Mbz => Cr4, "15.5.1", "Any MBZ bit of CR4 is set (a bit the processor does not implement).";
    Dr6High => Dr6, "15.5.1", "DR6[63:32] are not zero.";
    Dr7High => Dr7, "15.5.1", "DR7[63:32] are not zero.";
    EferMbz => Efer, "15.5.1", "Any MBZ bit of EFER is set.";
    EferLongModeUnsupported => Efer, "15.5.1", "EFER.LMA or EFER.LME is non-zero and this processor does not support long mode.";
    LongModeNoPae => Cr4, "15.5.1", "EFER.LME and CR0.PG are both set and CR4.PAE is zero.";
    LongModeNoPe => Cr0, "15.5.1", "EFER.LME and CR0.PG are both non-zero and CR0.PE is zero.";
    LongModeCsLD => CsAttrib, "15.5.1", "EFER.LME, CR0.PG, CR4.PAE, CS.L, and CS.D are all non-zero.";
    VmrunIntercept => InterceptMisc2, "15.5.1", "The VMRUN intercept bit is clear.";
    MsrpmBeyondMaxPhys => MsrpmBasePa, "15.11", "The MSR permissions map extends to a physical address greater than or equal to the maximum supported physical address.";
    IopmBeyondMaxPhys => IopmBasePa, "15.10.1", "The I/O permissions map extends to a physical address greater than or equal to the maximum supported physical address.";
    EventInjType => EventInj, "15.20", "Illegal event injection: a reserved value of TYPE.";
    EventInjVector => EventInj, "15.20", "Illegal event injection: TYPE = 3 (exception) with a vector that does not correspond to an exception (including vector 2, NMI).";
    EventInjImpossible => EventInj, "15.20", "Illegal event injection: an event impossible for the guest mode (#BR or #OF in 64-bit mode).";
    AsidZero => GuestAsid, "15.5.1", "ASID is equal to zero.";
    SCetReserved => SCet, "15.5.1", "Any reserved bit is set in S_CET.";
    CetWithoutWp => Cr4, "15.5.1", "CR4.CET=1 when CR0.WP=0.";
    NpHostPagingDisabled => NestedCtl, "15.25.3", "NP_ENABLE is set and the host has paging disabled (hCR0.PG = 0).";
    NCr3Mbz => NCr3, "15.25.4", "With nested paging enabled, any MBZ bit of nCR3 is set (bits at or above MAXPHYADDR).";
    GPatInvalid => GPat, "15.25.4", "With nested paging enabled, a G_PAT.PA field has an unsupported type encoding or a reserved field is non-zero.";
    VNmiWithoutNmiIntercept => VIntrControl, "15.21.10", "V_NMI_ENABLE is set without the NMI intercept.";
    PdpteReserved => Cr3, "15.5.1", "The guest is in legacy PAE paging mode without nested paging and a PDPE has a reserved bit set.";
}

/// The registers the state checks look at, gathered from a VMCB (guest) or a
/// reloaded host state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateView {
    /// CR0, all 64 bits.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4, all 64 bits.
    pub cr4: u64,
    /// EFER, all 64 bits.
    pub efer: u64,
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// CS.L.
    pub cs_l: bool,
    /// CS.D.
    pub cs_d: bool,
    /// S_CET, where the state has one.
    pub s_cet: u64,
}

impl StateView {
    /// The guest state of a VMCB.
    pub fn from_vmcb(img: &VmcbImage) -> Self {
        let cs = img.seg(VmcbSeg::Cs);
        Self {
            cr0: img.get(VmcbField::Cr0),
            cr3: img.get(VmcbField::Cr3),
            cr4: img.get(VmcbField::Cr4),
            efer: img.get(VmcbField::Efer),
            dr6: img.get(VmcbField::Dr6),
            dr7: img.get(VmcbField::Dr7),
            cs_l: cs.l(),
            cs_d: cs.db(),
            s_cet: img.get(VmcbField::SCet),
        }
    }

    /// A processor state (for the host reloaded by #VMEXIT).
    pub fn from_state(s: &CpuState) -> Self {
        let cs = s.regs.seg(mmu::SegReg::Cs).attr;
        Self {
            cr0: s.regs.cr0.bits(),
            cr3: s.regs.cr3,
            cr4: s.regs.cr4.bits(),
            efer: s.regs.efer.bits(),
            dr6: s.regs.dr6,
            dr7: s.regs.dr7.bits(),
            cs_l: cs.l(),
            cs_d: cs.db(),
            s_cet: 0,
        }
    }

    /// EFER.LME and CR0.PG: the state is (or enters) long mode.
    pub fn long_mode(&self) -> bool {
        self.efer & Efer::LME.bits() != 0 && self.cr0 & Cr0::PG.bits() != 0
    }
}

/// S_CET bits 9:6 are reserved (SDM Vol. 1 17.3, the CET MSRs).
const S_CET_RESERVED: u64 = 0x3c0;

/// The exception vectors AMD64 defines (APM Vol. 2 table 8-1): 0-1, 3-8, 10-14,
/// 16-19, 21, 28-30. Vector 2 is NMI; 9, 15, 20, 22-27 and 31 are reserved.
pub const EXCEPTION_VECTORS: u32 = 0x7020_0000 | 0x000f_7dfb;

/// The register-state rules of 15.5.1, in the manual's order, pushed to `out`.
fn state_rules(cfg: &SvmConfig, s: &StateView, out: &mut Vec<CheckId>) {
    let cr0 = Cr0::from_bits_retain(s.cr0);
    let cr4 = Cr4::from_bits_retain(s.cr4);
    let efer = Efer::from_bits_retain(s.efer);
    if !efer.contains(Efer::SVME) {
        out.push(CheckId::EferSvme);
    }
    if !cr0.contains(Cr0::CD) && cr0.contains(Cr0::NW) {
        out.push(CheckId::Cr0CdNw);
    }
    if s.cr0 >> 32 != 0 {
        out.push(CheckId::Cr0High);
    }
    if s.cr3 & cfg.phys_reserved() != 0 {
        out.push(CheckId::Cr3Mbz);
    }
    if s.cr4 & !cfg.cr4_allowed != 0 {
        out.push(CheckId::Cr4Mbz);
    }
    if s.dr6 >> 32 != 0 {
        out.push(CheckId::Dr6High);
    }
    if s.dr7 >> 32 != 0 {
        out.push(CheckId::Dr7High);
    }
    if s.efer & !cfg.efer_allowed != 0 {
        out.push(CheckId::EferMbz);
    }
    if efer.intersects(Efer::LMA | Efer::LME) && !cfg.long_mode {
        out.push(CheckId::EferLongModeUnsupported);
    }
    if s.long_mode() {
        if !cr4.contains(Cr4::PAE) {
            out.push(CheckId::LongModeNoPae);
        }
        if !cr0.contains(Cr0::PE) {
            out.push(CheckId::LongModeNoPe);
        }
        if cr4.contains(Cr4::PAE) && s.cs_l && s.cs_d {
            out.push(CheckId::LongModeCsLD);
        }
    }
}

/// The CET rules of 15.5.1, active only on a processor that implements CR4.CET.
fn cet_rules(cfg: &SvmConfig, s: &StateView, out: &mut Vec<CheckId>) {
    if cfg.cr4_allowed & Cr4::CET.bits() == 0 {
        return;
    }
    if s.s_cet & S_CET_RESERVED != 0 {
        out.push(CheckId::SCetReserved);
    }
    if s.cr4 & Cr4::CET.bits() != 0 && s.cr0 & Cr0::WP.bits() == 0 {
        out.push(CheckId::CetWithoutWp);
    }
}

/// True if a PAT value has a reserved field or unsupported type (APM Vol. 2
/// 7.8.1: each byte's bits 7:3 are reserved; types 2 and 3 are unsupported).
pub const fn pat_invalid(pat: u64) -> bool {
    let mut i = 0;
    while i < 8 {
        let b = (pat >> (8 * i)) as u8;
        if b & 0xf8 != 0 || b == 2 || b == 3 {
            return true;
        }
        i += 1;
    }
    false
}

/// The IOPM is 12 KiB, the MSRPM 8 KiB (APM Vol. 2 15.10.1, 15.11).
pub const IOPM_SIZE: u64 = 0x3000;
/// Size of the MSR permissions map.
pub const MSRPM_SIZE: u64 = 0x2000;

/// True if a permission map of `size` bytes at `base` (bits 11:0 ignored) has
/// its last byte at or above MAXPHYADDR.
fn map_beyond_maxphys(cfg: &SvmConfig, base: u64, size: u64) -> bool {
    match (base & !0xfff).checked_add(size - 1) {
        Some(last) => last & cfg.phys_reserved() != 0,
        None => true,
    }
}

/// Event-injection rules (APM Vol. 2 15.20). `long64`: the guest will run in
/// 64-bit mode.
pub fn event_injection_failure(ev: EventInj, long64: bool) -> Option<CheckId> {
    if !ev.valid() {
        return None;
    }
    match ev.typ() {
        None => Some(CheckId::EventInjType),
        Some(EventType::Exception) => {
            let v = ev.vector();
            if v >= 32 || EXCEPTION_VECTORS & (1 << v) == 0 {
                Some(CheckId::EventInjVector)
            } else if long64 && (v == 4 || v == 5) {
                // INTO and BOUND are invalid in 64-bit mode, so #OF and #BR
                // cannot arise there (15.20 names #BR as the example).
                Some(CheckId::EventInjImpossible)
            } else {
                None
            }
        }
        Some(_) => None,
    }
}

/// Every consistency check the VMCB `img` violates for a VMRUN executed from
/// `host`, in evaluation order. The legacy-PAE PDPE check needs memory and is
/// done by VMRUN itself ([`crate::vmrun`]).
pub fn guest_failures(cfg: &SvmConfig, img: &VmcbImage, host: &CpuState) -> Vec<CheckId> {
    let mut out = Vec::new();
    let s = StateView::from_vmcb(img);
    state_rules(cfg, &s, &mut out);

    let intercepts = Intercepts::from_image(img);
    if !intercepts.misc2.contains(Misc2::VMRUN) {
        out.push(CheckId::VmrunIntercept);
    }
    if map_beyond_maxphys(cfg, img.get(VmcbField::MsrpmBasePa), MSRPM_SIZE) {
        out.push(CheckId::MsrpmBeyondMaxPhys);
    }
    if map_beyond_maxphys(cfg, img.get(VmcbField::IopmBasePa), IOPM_SIZE) {
        out.push(CheckId::IopmBeyondMaxPhys);
    }
    let long64 = s.long_mode() && s.cs_l;
    if let Some(c) = event_injection_failure(EventInj(img.get(VmcbField::EventInj)), long64) {
        out.push(c);
    }
    if img.get(VmcbField::GuestAsid) == 0 {
        out.push(CheckId::AsidZero);
    }
    cet_rules(cfg, &s, &mut out);

    if np_enabled(cfg, img) {
        if !host.regs.cr0.contains(Cr0::PG) {
            out.push(CheckId::NpHostPagingDisabled);
        }
        if img.get(VmcbField::NCr3) & cfg.phys_reserved() != 0 {
            out.push(CheckId::NCr3Mbz);
        }
        if pat_invalid(img.get(VmcbField::GPat)) {
            out.push(CheckId::GPatInvalid);
        }
    }
    let vintr = VIntr::from_image(img);
    if cfg.features.vnmi && vintr.vnmi_enable && !intercepts.misc1.contains(Misc1::NMI) {
        out.push(CheckId::VNmiWithoutNmiIntercept);
    }
    out
}

/// The first violated check, if any (what VMRUN reports).
pub fn guest_failure(cfg: &SvmConfig, img: &VmcbImage, host: &CpuState) -> Option<CheckId> {
    guest_failures(cfg, img, host).into_iter().next()
}

/// True if the VMCB enables nested paging on a processor that implements it
/// (NP_ENABLE is ignored where NP is not advertised, as KVM and Bochs do).
pub fn np_enabled(cfg: &SvmConfig, img: &VmcbImage) -> bool {
    cfg.features.np
        && NestedCtl::from_bits_retain(img.get(VmcbField::NestedCtl)).contains(NestedCtl::NP_ENABLE)
}

/// The host-state subset #VMEXIT checks after reloading the host (APM Vol. 2
/// 15.6): the register rules of 15.5.1. A violation shuts the processor down.
pub fn host_failure(cfg: &SvmConfig, host: &CpuState) -> Option<CheckId> {
    let mut out = Vec::new();
    state_rules(cfg, &StateView::from_state(host), &mut out);
    out.into_iter().next()
}

/// Reserved bits of a legacy-PAE PDPE that is present (APM Vol. 2 5.3.2, figure
/// 5-10): bits 2:1, 8:5 and 63:MAXPHYADDR.
pub fn pdpte_reserved(cfg: &SvmConfig, pdpte: u64) -> bool {
    pdpte & 1 != 0 && pdpte & (0x1e6 | cfg.phys_reserved()) != 0
}

/// Renders the check table as Markdown (the generated `docs/vmrun-checks.md`).
pub fn checks_markdown() -> String {
    let mut s = String::from(
        "# VMRUN consistency checks\n\n<!-- Generated by svm_model::checks::checks_markdown(); do not edit. -->\n\n\
         Each rule violated alone makes VMRUN exit with VMEXIT_INVALID and this check id.\n\n\
         | # | CheckId | VMCB field | APM Vol. 2 | Rule |\n| --- | --- | --- | --- | --- |\n",
    );
    for (i, c) in CheckId::ALL.iter().enumerate() {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            i + 1,
            c.name(),
            c.field().name(),
            c.section(),
            c.description()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_vector_set() {
        let defined: Vec<u8> = (0..32)
            .filter(|v| EXCEPTION_VECTORS & (1 << v) != 0)
            .collect();
        assert_eq!(
            defined,
            [0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 21, 28, 29, 30]
        );
    }

    #[test]
    fn pat_rules() {
        assert!(!pat_invalid(mmu::SystemRegs::PAT_RESET));
        assert!(pat_invalid(0x02));
        assert!(pat_invalid(0x0300));
        assert!(pat_invalid(0x08 << 56));
        assert!(!pat_invalid(0x0706_0504_0100_0706));
    }

    #[test]
    fn map_limits() {
        let cfg = SvmConfig::amd(); // MAXPHYADDR 48
        let top = 1u64 << 48;
        assert!(!map_beyond_maxphys(&cfg, top - IOPM_SIZE, IOPM_SIZE));
        assert!(map_beyond_maxphys(&cfg, top - 0x2000, IOPM_SIZE));
        // Bits 11:0 are ignored.
        assert!(!map_beyond_maxphys(
            &cfg,
            top - MSRPM_SIZE + 0xfff,
            MSRPM_SIZE
        ));
        assert!(map_beyond_maxphys(&cfg, u64::MAX, MSRPM_SIZE));
    }

    #[test]
    fn event_injection_rules() {
        let ex = |v| EventInj::new(EventType::Exception, v, None);
        assert_eq!(
            event_injection_failure(ex(2), false),
            Some(CheckId::EventInjVector)
        );
        assert_eq!(
            event_injection_failure(ex(32), false),
            Some(CheckId::EventInjVector)
        );
        assert_eq!(
            event_injection_failure(ex(15), false),
            Some(CheckId::EventInjVector)
        );
        assert_eq!(event_injection_failure(ex(14), false), None);
        assert_eq!(
            event_injection_failure(ex(5), true),
            Some(CheckId::EventInjImpossible)
        );
        assert_eq!(event_injection_failure(ex(5), false), None);
        assert_eq!(
            event_injection_failure(EventInj(0x8000_0100), false),
            Some(CheckId::EventInjType)
        );
        assert_eq!(event_injection_failure(EventInj(0x0000_0700), false), None);
        let nmi = EventInj::new(EventType::Nmi, 0x77, None);
        assert_eq!(event_injection_failure(nmi, true), None);
    }

    #[test]
    fn pdpte_rules() {
        let cfg = SvmConfig::amd();
        assert!(!pdpte_reserved(&cfg, 0x1000 | 1));
        assert!(pdpte_reserved(&cfg, 0x1000 | 1 | 2));
        assert!(pdpte_reserved(&cfg, 0x1000 | 1 | 0x20));
        assert!(pdpte_reserved(&cfg, 1 | 1 << 50));
        assert!(!pdpte_reserved(&cfg, 0xffff_ffff_ffff_fffe));
    }

    #[test]
    fn ids_are_unique_and_documented() {
        let names: std::collections::BTreeSet<_> = CheckId::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), CheckId::ALL.len());
        for c in CheckId::ALL {
            assert!(c.section().starts_with("15."));
            assert!(c.description().ends_with('.'));
        }
    }

    #[test]
    fn generated_checks_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/vmrun-checks.md");
        let want = checks_markdown();
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != want {
            if std::env::var_os("SVM_MODEL_BLESS").is_some() {
                std::fs::write(path, &want).unwrap();
            } else {
                panic!("docs/vmrun-checks.md is stale; rerun with SVM_MODEL_BLESS=1");
            }
        }
    }
}
