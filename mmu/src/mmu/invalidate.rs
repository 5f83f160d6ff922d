//! The architectural invalidations, each as the manual states it.
//!
//! Intel: SDM Vol. 3A 4.10.4.1, "Operations that invalidate TLBs and
//! paging-structure caches", and SDM Vol. 3C 29.4.3, "Invalidating cached
//! translation information" (operations that invalidate linear mappings do so
//! for the current VPID only, and for combined mappings of every EP4TA).
//! AMD: APM Vol. 2 15.16, "TLB control" (ASIDs, TLB_CONTROL, INVLPGA).
//!
//! Each operation invalidates at least what the manual requires; where the
//! manual allows more ("the processor is always free to invalidate additional
//! entries") the model stays close to the minimum so tests can see the rules.

use super::{Mmu, TranslationContext};
use crate::paging::Eptp;
use crate::tlb::{GlobalRule, RootSel, Scope, VpidSel};
use crate::{Cr0, Cr4, LinearAddr};
use serde::{Deserialize, Serialize};

/// INVPCID types (SDM Vol. 2A "INVPCID").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvpcidType {
    /// 0: one linear address in one PCID, except global translations.
    IndividualAddress,
    /// 1: one PCID, except global translations.
    SingleContext,
    /// 2: every PCID, global translations included.
    AllContextIncludingGlobal,
    /// 3: every PCID, except global translations.
    AllContext,
}

/// INVEPT types (SDM Vol. 3C 31.3, "INVEPT").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InveptType {
    /// 1: mappings of the EP4TA in the descriptor's EPTP.
    SingleContext,
    /// 2: mappings of every EP4TA.
    Global,
}

/// INVVPID types (SDM Vol. 3C 31.3, "INVVPID").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvvpidType {
    /// 0: one linear address in one VPID.
    IndividualAddress,
    /// 1: one VPID.
    SingleContext,
    /// 2: every VPID except 0000H.
    AllContext,
    /// 3: one VPID, except global translations.
    SingleContextRetainingGlobals,
}

/// The VMCB TLB_CONTROL field (APM Vol. 2 15.16.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlbControl {
    /// 00h: do nothing.
    DoNothing,
    /// 01h: flush the entire TLB, every ASID, global entries included.
    FlushAll,
    /// 03h: flush this guest's TLB entries.
    FlushAsid,
    /// 07h: flush this guest's non-global TLB entries.
    FlushAsidNonGlobal,
}

impl TlbControl {
    /// Decodes the field; `None` for reserved encodings (VMRUN's checks).
    pub fn from_bits(v: u8) -> Option<Self> {
        match v {
            0 => Some(TlbControl::DoNothing),
            1 => Some(TlbControl::FlushAll),
            3 => Some(TlbControl::FlushAsid),
            7 => Some(TlbControl::FlushAsidNonGlobal),
            _ => None,
        }
    }
}

impl Mmu {
    /// Applies `tlb` to the TLBs and `psc` to the guest paging-structure
    /// caches.
    fn apply(&mut self, tlb: Scope, psc: Scope) {
        crate::tally!(self.counters.invalidations += 1);
        self.flush_tlbs(&tlb);
        self.guest_psc.invalidate(&psc);
    }

    /// INVLPG `la`: TLB entries for the page in the current PCID, global
    /// entries for the page in every PCID, and every paging-structure-cache
    /// entry of the current PCID. Current VPID only; combined mappings of
    /// every EP4TA.
    pub fn invlpg(&mut self, ctx: &TranslationContext, la: LinearAddr) {
        let v = VpidSel::Only(ctx.vpid());
        let tlb = Scope {
            vpid: v,
            pcid: Some(ctx.pcid()),
            root: RootSel::Any,
            page: Some(la.0),
            globals: GlobalRule::FlushAnyPcid,
        };
        let psc = Scope {
            vpid: v,
            pcid: Some(ctx.pcid()),
            ..Scope::ALL
        };
        self.apply(tlb, psc);
    }

    /// MOV to CR3 (also a task switch that loads CR3). `ctx` holds the new
    /// CR3. With CR4.PCIDE = 0: non-global entries of PCID 000H. With
    /// CR4.PCIDE = 1: non-global entries of the new PCID, unless bit 63 of the
    /// source (`no_flush`) was set, in which case nothing.
    pub fn flush_cr3(&mut self, ctx: &TranslationContext, no_flush: bool) {
        let pcide = ctx.regs().cr4.contains(Cr4::PCIDE);
        if pcide && no_flush {
            return;
        }
        let pcid = ctx.pcid();
        let v = VpidSel::Only(ctx.vpid());
        let tlb = Scope {
            vpid: v,
            pcid: Some(pcid),
            root: RootSel::Any,
            page: None,
            globals: GlobalRule::Keep,
        };
        self.apply(tlb, tlb);
    }

    /// INVPCID of `kind` with descriptor (`pcid`, `la`), in the current VPID.
    pub fn invpcid(
        &mut self,
        ctx: &TranslationContext,
        kind: InvpcidType,
        pcid: u16,
        la: LinearAddr,
    ) {
        let v = VpidSel::Only(ctx.vpid());
        let base = Scope {
            vpid: v,
            pcid: Some(pcid),
            root: RootSel::Any,
            page: None,
            globals: GlobalRule::Keep,
        };
        let (tlb, psc) = match kind {
            InvpcidType::IndividualAddress => (
                Scope {
                    page: Some(la.0),
                    ..base
                },
                base,
            ),
            InvpcidType::SingleContext => (base, base),
            InvpcidType::AllContextIncludingGlobal => {
                let s = Scope {
                    pcid: None,
                    globals: GlobalRule::Flush,
                    ..base
                };
                (s, s)
            }
            InvpcidType::AllContext => {
                let s = Scope { pcid: None, ..base };
                (s, s)
            }
        };
        self.apply(tlb, psc);
    }

    /// MOV to CR0 from `old` to `new`: clearing PG invalidates every TLB entry
    /// (global included) and paging-structure-cache entry of every PCID
    /// (current VPID).
    pub fn mov_cr0(&mut self, ctx: &TranslationContext, old: Cr0, new: Cr0) {
        if old.contains(Cr0::PG) && !new.contains(Cr0::PG) {
            let s = Scope::vpid(ctx.vpid());
            self.apply(s, s);
        }
    }

    /// MOV to CR4 from `old` to `new`: a change of PGE, or PCIDE going 1 -> 0,
    /// invalidates everything of every PCID (current VPID); a change of PAE,
    /// or SMEP going 0 -> 1, invalidates everything of the current PCID.
    /// Nothing else: the SDM's list does not include PSE, SMAP or PKE (the
    /// model checks rights against the current registers on every hit, so
    /// those need no flush; cached 4-MByte translations survive a PSE change
    /// until software invalidates them, as the SDM permits).
    pub fn mov_cr4(&mut self, ctx: &TranslationContext, old: Cr4, new: Cr4) {
        let changed = old ^ new;
        let all =
            changed.contains(Cr4::PGE) || (old.contains(Cr4::PCIDE) && !new.contains(Cr4::PCIDE));
        let current =
            changed.contains(Cr4::PAE) || (!old.contains(Cr4::SMEP) && new.contains(Cr4::SMEP));
        if all {
            let s = Scope::vpid(ctx.vpid());
            self.apply(s, s);
        } else if current {
            let s = Scope {
                pcid: Some(ctx.pcid()),
                ..Scope::vpid(ctx.vpid())
            };
            self.apply(s, s);
        }
    }

    /// A VM entry or VM exit with the "enable VPID" control 0: linear and
    /// combined mappings of VPID 0000H (every EP4TA) are invalidated (SDM
    /// Vol. 3C 29.4.3.1). With VPIDs enabled, transitions invalidate nothing.
    pub fn vm_transition(&mut self, vpid_enabled: bool) {
        if !vpid_enabled {
            let s = Scope::vpid(0);
            self.apply(s, s);
        }
    }

    /// INVEPT: guest-physical and combined mappings of one EP4TA (any VPID),
    /// or of every EP4TA.
    pub fn invept(&mut self, kind: InveptType, eptp: Eptp) {
        let root = match kind {
            InveptType::SingleContext => RootSel::Only(eptp.ep4ta()),
            InveptType::Global => RootSel::Combined,
        };
        let s = Scope { root, ..Scope::ALL };
        self.apply(s, s);
        let ep4ta = eptp.ep4ta();
        let keep = |r: u64| kind == InveptType::SingleContext && r != ep4ta;
        self.nested_tlb.invalidate(|r, _| !keep(r));
        self.nested_psc.invalidate(|r, _| !keep(r));
    }

    /// INVVPID: linear and combined mappings (every EP4TA) of the selected
    /// VPIDs; guest-physical mappings are untouched.
    pub fn invvpid(&mut self, kind: InvvpidType, vpid: u16, la: LinearAddr) {
        let one = Scope::vpid(vpid);
        let (tlb, psc) = match kind {
            InvvpidType::IndividualAddress => (
                Scope {
                    page: Some(la.0),
                    ..one
                },
                one,
            ),
            InvvpidType::SingleContext => (one, one),
            InvvpidType::AllContext => {
                let s = Scope {
                    vpid: VpidSel::NonZero,
                    ..Scope::ALL
                };
                (s, s)
            }
            InvvpidType::SingleContextRetainingGlobals => {
                let s = Scope {
                    globals: GlobalRule::Keep,
                    ..one
                };
                (s, s)
            }
        };
        self.apply(tlb, psc);
    }

    /// INVLPGA: the translations of page `la` in ASID `asid`, global ones
    /// included (APM Vol. 2 15.16.3). The paging-structure caches of the ASID
    /// are flushed too (the APM leaves them unspecified; flushing is safe).
    pub fn invlpga(&mut self, la: LinearAddr, asid: u16) {
        let one = Scope::vpid(asid);
        self.apply(
            Scope {
                page: Some(la.0),
                ..one
            },
            one,
        );
    }

    /// Flushes everything tagged with `asid` (TLB_CONTROL 03h), nested
    /// translations of the ASID included.
    pub fn flush_asid(&mut self, asid: u16) {
        let s = Scope::vpid(asid);
        self.apply(s, s);
        self.nested_tlb.invalidate(|_, v| v == asid);
        self.nested_psc.invalidate(|_, v| v == asid);
    }

    /// Flushes the non-global translations of `asid` (TLB_CONTROL 07h).
    pub fn flush_asid_non_global(&mut self, asid: u16) {
        let s = Scope {
            globals: GlobalRule::Keep,
            ..Scope::vpid(asid)
        };
        self.apply(s, s);
        self.nested_tlb.invalidate(|_, v| v == asid);
        self.nested_psc.invalidate(|_, v| v == asid);
    }

    /// Flushes every TLB and cache (TLB_CONTROL 01h, or a reset).
    pub fn flush_all(&mut self) {
        self.apply(Scope::ALL, Scope::ALL);
        self.nested_tlb.invalidate(|_, _| true);
        self.nested_psc.invalidate(|_, _| true);
    }

    /// Applies a VMRUN's TLB_CONTROL for the guest's `asid`.
    pub fn tlb_control(&mut self, ctl: TlbControl, asid: u16) {
        match ctl {
            TlbControl::DoNothing => {}
            TlbControl::FlushAll => self.flush_all(),
            TlbControl::FlushAsid => self.flush_asid(asid),
            TlbControl::FlushAsidNonGlobal => self.flush_asid_non_global(asid),
        }
    }
}
