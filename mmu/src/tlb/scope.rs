//! What an invalidation selects. Every architectural invalidation (INVLPG,
//! MOV to CR3, INVPCID, INVVPID, INVEPT, INVLPGA, TLB_CONTROL, ...) is one
//! [`Scope`] applied to the TLBs and one applied to the paging-structure
//! caches; [`crate::Mmu`] builds them from the manual's rules.

use super::entry::{TlbEntry, GLOBAL};
use serde::{Deserialize, Serialize};

/// Which VPIDs (or ASIDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VpidSel {
    /// All.
    Any,
    /// Just this one.
    Only(u16),
    /// All but 0 (INVVPID all-context).
    NonZero,
}

/// Which roots (EP4TA / nCR3; 0 for linear mappings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSel {
    /// Linear and combined mappings of every root.
    Any,
    /// Combined mappings of this root.
    Only(u64),
    /// Combined mappings of every root (INVEPT all-context).
    Combined,
}

/// What happens to global entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalRule {
    /// Global entries survive.
    Keep,
    /// Global entries are invalidated when their PCID matches like any other.
    Flush,
    /// Global entries are invalidated whatever their PCID (INVLPG: "also
    /// invalidates any global TLB entries with that page number, regardless of
    /// PCID").
    FlushAnyPcid,
}

/// A selection of cached translations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// VPIDs / ASIDs.
    pub vpid: VpidSel,
    /// PCID, or every PCID.
    pub pcid: Option<u16>,
    /// Roots.
    pub root: RootSel,
    /// Only translations of this linear page (TLBs only; paging-structure
    /// caches ignore it).
    pub page: Option<u64>,
    /// Global entries.
    pub globals: GlobalRule,
}

impl Scope {
    /// Everything.
    pub const ALL: Scope = Scope {
        vpid: VpidSel::Any,
        pcid: None,
        root: RootSel::Any,
        page: None,
        globals: GlobalRule::Flush,
    };

    /// Every mapping of one VPID/ASID, global ones included.
    pub const fn vpid(v: u16) -> Scope {
        Scope {
            vpid: VpidSel::Only(v),
            ..Scope::ALL
        }
    }

    /// True if the scope selects everything.
    pub fn is_everything(&self) -> bool {
        *self == Scope::ALL
    }

    /// `Some(v)` if the scope selects exactly every mapping of VPID/ASID `v`
    /// (every PCID, every root, global ones included).
    pub fn whole_vpid(&self) -> Option<u16> {
        match self.vpid {
            VpidSel::Only(v) if *self == Scope::vpid(v) => Some(v),
            _ => None,
        }
    }

    #[inline]
    fn vpid_ok(&self, v: u16) -> bool {
        match self.vpid {
            VpidSel::Any => true,
            VpidSel::Only(x) => x == v,
            VpidSel::NonZero => v != 0,
        }
    }

    #[inline]
    fn root_ok(&self, r: u64) -> bool {
        match self.root {
            RootSel::Any => true,
            RootSel::Only(x) => x == r,
            RootSel::Combined => r != 0,
        }
    }

    /// True if the scope selects TLB entry `e` (ignoring `page`, which the
    /// TLB applies itself).
    #[inline]
    pub fn selects_tlb(&self, e: &TlbEntry) -> bool {
        if !self.vpid_ok(e.vpid) || !self.root_ok(e.root) {
            return false;
        }
        let pcid_ok = |p: u16| self.pcid.is_none_or_eq(p);
        if e.global() {
            match self.globals {
                GlobalRule::Keep => false,
                GlobalRule::Flush => pcid_ok(e.pcid & !GLOBAL),
                GlobalRule::FlushAnyPcid => true,
            }
        } else {
            pcid_ok(e.pcid)
        }
    }

    /// True if the scope selects a paging-structure-cache entry with these
    /// tags.
    #[inline]
    pub fn selects_psc(&self, vpid: u16, pcid: u16, root: u64) -> bool {
        self.vpid_ok(vpid) && self.root_ok(root) && self.pcid.is_none_or_eq(pcid)
    }
}

trait NoneOrEq {
    fn is_none_or_eq(&self, v: u16) -> bool;
}

impl NoneOrEq for Option<u16> {
    #[inline]
    fn is_none_or_eq(&self, v: u16) -> bool {
        match self {
            None => true,
            Some(x) => *x == v,
        }
    }
}
