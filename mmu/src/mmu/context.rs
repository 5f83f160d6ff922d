//! The translation context: everything about the current processor state that
//! a translation (and a TLB lookup) depends on, resolved once.

use crate::paging::perm::PermPolicy;
use crate::paging::{GuestConfig, NestedPaging, PagingFeatures, PagingMode, PagingRegs};
use crate::tlb::Tag;
use crate::AddressWidths;
use serde::{Deserialize, Serialize};

/// Registers, CPU features, VPID/ASID and nested paging for translations.
///
/// Built by `emu` whenever a register that paging depends on changes (or per
/// access; it is cheap): the permission policy and the TLB tag are derived
/// here, not on every lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslationContext {
    cfg: GuestConfig,
    policy: PermPolicy,
    nested: Option<NestedPaging>,
    tag: Tag,
}

impl TranslationContext {
    /// A context for `regs` outside any guest: VPID/ASID 0, no nested paging.
    pub fn new(regs: PagingRegs, widths: AddressWidths, features: PagingFeatures) -> Self {
        Self {
            cfg: GuestConfig {
                regs,
                widths,
                features,
            },
            policy: PermPolicy::from_regs(&regs),
            nested: None,
            tag: Tag {
                vpid: 0,
                pcid: regs.pcid(),
                root: 0,
            },
        }
    }

    /// The same context tagged with a VPID (VMX non-root operation with
    /// "enable VPID") or an ASID (SVM guest mode). 0 means untagged: the host,
    /// or VMX non-root operation without VPIDs.
    pub fn with_vpid(mut self, vpid: u16) -> Self {
        self.tag.vpid = vpid;
        self
    }

    /// The same context with nested paging: translations become
    /// two-dimensional and are cached as combined mappings tagged by the
    /// EP4TA or nCR3.
    pub fn with_nested(mut self, nested: NestedPaging) -> Self {
        self.tag.root = nested.root_tag();
        self.nested = Some(nested);
        self
    }

    /// The paging registers.
    #[inline]
    pub fn regs(&self) -> &PagingRegs {
        &self.cfg.regs
    }

    /// Registers, widths and features together.
    #[inline]
    pub fn config(&self) -> &GuestConfig {
        &self.cfg
    }

    /// MAXPHYADDR and linear width.
    #[inline]
    pub fn widths(&self) -> AddressWidths {
        self.cfg.widths
    }

    /// The resolved access-rights policy.
    #[inline]
    pub fn policy(&self) -> &PermPolicy {
        &self.policy
    }

    /// Nested paging, if any.
    #[inline]
    pub fn nested(&self) -> Option<&NestedPaging> {
        self.nested.as_ref()
    }

    /// The TLB tag of translations made in this context.
    #[inline]
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// The current PCID.
    #[inline]
    pub fn pcid(&self) -> u16 {
        self.tag.pcid
    }

    /// The VPID or ASID.
    #[inline]
    pub fn vpid(&self) -> u16 {
        self.tag.vpid
    }

    /// The tags of nested structures: (root, VPID). Guest-physical mappings
    /// are tagged by EP4TA only (SDM Vol. 3C 29.4.1); NPT ones also by ASID.
    #[inline]
    pub(crate) fn nested_tag(&self) -> (u64, u16) {
        match self.nested {
            Some(NestedPaging::Npt(_)) => (self.tag.root, self.tag.vpid),
            _ => (self.tag.root, 0),
        }
    }

    /// True when linear addresses are machine-physical addresses: paging off
    /// and no nested paging.
    #[inline]
    pub fn is_identity(&self) -> bool {
        self.cfg.regs.mode == PagingMode::Disabled && self.nested.is_none()
    }
}
