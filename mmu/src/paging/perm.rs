//! Access rights of a valid translation and the page-fault error code
//! (SDM Vol. 3A 4.6, "Access rights", 4.6.2, "Protection keys", and 4.7,
//! "Page-fault exceptions").
//!
//! The check is a pure function of the rights accumulated by a walk (or held
//! in a TLB entry), the access, and a [`PermPolicy`] derived once from the
//! registers, so the TLB hit path and the walker share it.

use super::format::{Rights, RIGHT_U, RIGHT_W, RIGHT_X};
use super::{Access, AccessKind, PagingMode, PagingRegs};
use crate::{Cr0, Cr4, Efer, PfErrorCode};
use serde::{Deserialize, Serialize};

/// The paging-mode modifiers of SDM Vol. 3A 4.1.3, resolved for one paging
/// mode: which checks apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PermPolicy {
    /// CR0.WP: supervisor-mode writes honour R/W.
    pub wp: bool,
    /// CR4.SMEP: no supervisor-mode fetches from user-mode addresses.
    pub smep: bool,
    /// CR4.SMAP: no supervisor-mode data accesses to user-mode addresses
    /// (unless explicit with RFLAGS.AC = 1).
    pub smap: bool,
    /// CR4.PKE in IA-32e paging: PKRU governs user-mode addresses.
    pub pke: bool,
    /// CR4.PKS in IA-32e paging: IA32_PKRS governs supervisor-mode addresses.
    pub pks: bool,
    /// PKRU.
    pub pkru: u32,
    /// IA32_PKRS.
    pub pkrs: u32,
    /// Instruction fetches set the I/D flag of the error code: CR4.SMEP = 1,
    /// or CR4.PAE = 1 with IA32_EFER.NXE = 1 (SDM Vol. 3A 4.7).
    pub fetch_sets_id: bool,
}

impl PermPolicy {
    /// The policy for these registers.
    pub fn from_regs(regs: &PagingRegs) -> Self {
        let paging = regs.mode != PagingMode::Disabled;
        let ia32e = regs.mode.is_ia32e();
        let pae_like = matches!(
            regs.mode,
            PagingMode::Pae | PagingMode::Level4 | PagingMode::Level5
        );
        Self {
            wp: regs.cr0.contains(Cr0::WP),
            smep: paging && regs.cr4.contains(Cr4::SMEP),
            smap: paging && regs.cr4.contains(Cr4::SMAP),
            pke: ia32e && regs.cr4.contains(Cr4::PKE),
            pks: ia32e && regs.cr4.contains(Cr4::PKS),
            pkru: regs.pkru,
            pkrs: regs.pkrs,
            fetch_sets_id: paging
                && (regs.cr4.contains(Cr4::SMEP) || (pae_like && regs.efer.contains(Efer::NXE))),
        }
    }

    /// The error-code bits that describe the access itself: W/R, U/S, I/D
    /// (SDM Vol. 3A 4.7: "This flag describes the access causing the
    /// page-fault exception, not the access rights specified by paging").
    #[inline]
    pub fn access_bits(&self, access: Access) -> PfErrorCode {
        let mut c = PfErrorCode::empty();
        if access.is_write() {
            c |= PfErrorCode::W;
        }
        if access.user {
            c |= PfErrorCode::U;
        }
        if access.is_fetch() && self.fetch_sets_id {
            c |= PfErrorCode::ID;
        }
        c
    }

    /// Error code of a page fault for a not-present entry (P = 0).
    #[inline]
    pub fn not_present(&self, access: Access) -> PfErrorCode {
        self.access_bits(access)
    }

    /// Error code of a page fault for a reserved bit (P = 1, RSVD = 1).
    #[inline]
    pub fn reserved(&self, access: Access) -> PfErrorCode {
        self.access_bits(access) | PfErrorCode::P | PfErrorCode::RSVD
    }

    /// Checks `access` against a valid translation with `rights` and protection
    /// key `pkey`. Returns the page-fault error code when it is not allowed.
    #[inline]
    pub fn check(&self, rights: Rights, pkey: u8, access: Access) -> Result<(), PfErrorCode> {
        let denied = self.denied(rights, access);
        let pk = self.key_denies(rights, pkey, access);
        if !denied && !pk {
            return Ok(());
        }
        let mut code = self.access_bits(access) | PfErrorCode::P;
        if pk {
            code |= PfErrorCode::PK;
        }
        Err(code)
    }

    /// The access-rights rules of SDM Vol. 3A 4.6.1 (protection keys aside).
    #[inline]
    pub fn denied(&self, rights: Rights, access: Access) -> bool {
        let user_page = rights & RIGHT_U != 0;
        let writable = rights & RIGHT_W != 0;
        let executable = rights & RIGHT_X != 0;
        if access.user {
            // User-mode accesses: only to user-mode addresses; writes need
            // R/W = 1 everywhere regardless of CR0.WP; fetches need XD = 0.
            return !user_page
                || match access.kind {
                    AccessKind::Read => false,
                    AccessKind::Write => !writable,
                    AccessKind::Execute => !executable,
                };
        }
        // Supervisor-mode accesses.
        match access.kind {
            AccessKind::Execute => !executable || (self.smep && user_page),
            AccessKind::Read | AccessKind::Write => {
                if user_page && self.smap && (access.implicit_supervisor || !access.ac) {
                    return true;
                }
                access.is_write() && self.wp && !writable
            }
        }
    }

    /// Protection-key rule (SDM Vol. 3A 4.6.2) and the PK flag (4.7): a data
    /// access to a user-mode address with PKRU.AD = 1 for its key, or a write
    /// with PKRU.WD = 1 that is a user-mode access or made with CR0.WP = 1;
    /// likewise IA32_PKRS for supervisor-mode addresses. Fetches are never
    /// subject to protection keys.
    #[inline]
    pub fn key_denies(&self, rights: Rights, pkey: u8, access: Access) -> bool {
        if access.is_fetch() {
            return false;
        }
        let user_page = rights & RIGHT_U != 0;
        let reg = if user_page && self.pke {
            self.pkru
        } else if !user_page && self.pks {
            self.pkrs
        } else {
            return false;
        };
        let bits = reg >> (2 * (pkey as u32 & 0xf));
        let ad = bits & 1 != 0;
        let wd = bits & 2 != 0;
        ad || (access.is_write() && wd && (access.user || self.wp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(wp: bool, smep: bool, smap: bool) -> PermPolicy {
        PermPolicy {
            wp,
            smep,
            smap,
            fetch_sets_id: true,
            ..Default::default()
        }
    }

    const ALL: Rights = RIGHT_W | RIGHT_U | RIGHT_X;

    #[test]
    fn supervisor_write_to_read_only_depends_on_wp() {
        let ro = RIGHT_U | RIGHT_X;
        assert!(policy(false, false, false)
            .check(ro, 0, Access::write(false))
            .is_ok());
        assert_eq!(
            policy(true, false, false).check(ro, 0, Access::write(false)),
            Err(PfErrorCode::P | PfErrorCode::W)
        );
        // User writes never ignore R/W.
        assert_eq!(
            policy(false, false, false).check(ro, 0, Access::write(true)),
            Err(PfErrorCode::P | PfErrorCode::W | PfErrorCode::U)
        );
    }

    #[test]
    fn smap_and_ac_and_implicit() {
        let p = policy(true, false, true);
        assert!(p.check(ALL, 0, Access::read(false)).is_err());
        assert!(p.check(ALL, 0, Access::read(false).with_ac(true)).is_ok());
        let implicit = Access::implicit(AccessKind::Read).with_ac(true);
        assert!(p.check(ALL, 0, implicit).is_err());
        // Supervisor page: SMAP irrelevant.
        assert!(p.check(RIGHT_W | RIGHT_X, 0, implicit).is_ok());
    }

    #[test]
    fn smep_and_nx() {
        let p = policy(true, true, false);
        assert_eq!(
            p.check(ALL, 0, Access::execute(false)),
            Err(PfErrorCode::P | PfErrorCode::ID)
        );
        assert!(p.check(ALL, 0, Access::execute(true)).is_ok());
        assert!(p
            .check(RIGHT_W | RIGHT_U, 0, Access::execute(true))
            .is_err());
        assert!(p.check(RIGHT_W, 0, Access::execute(false)).is_err());
        assert!(p
            .check(RIGHT_W | RIGHT_X, 0, Access::execute(false))
            .is_ok());
    }

    #[test]
    fn protection_keys() {
        let mut p = policy(false, false, false);
        p.pke = true;
        p.pkru = 0b01 << 6 | 0b10 << 8; // key 3: AD; key 4: WD
        assert_eq!(
            p.check(ALL, 3, Access::read(true)),
            Err(PfErrorCode::P | PfErrorCode::U | PfErrorCode::PK)
        );
        assert!(p.check(ALL, 3, Access::execute(true)).is_ok());
        assert!(p.check(ALL, 4, Access::read(true)).is_ok());
        assert!(p.check(ALL, 4, Access::write(true)).is_err());
        // Supervisor write with WD: only when CR0.WP = 1.
        let sup_write = Access::write(false).with_ac(true);
        assert!(p.check(ALL, 4, sup_write).is_ok());
        p.wp = true;
        assert!(p.check(ALL, 4, sup_write).is_err());
        // PKRU does not apply to supervisor-mode addresses.
        assert!(p.check(RIGHT_W | RIGHT_X, 3, Access::read(false)).is_ok());
        p.pks = true;
        p.pkrs = 0b01 << 6;
        assert!(p.check(RIGHT_W | RIGHT_X, 3, Access::read(false)).is_err());
    }

    #[test]
    fn policy_from_regs() {
        let mut r = PagingRegs::new(
            Cr0::PG | Cr0::PE | Cr0::WP,
            0,
            Cr4::PAE | Cr4::PKE,
            Efer::NXE,
        );
        let p = PermPolicy::from_regs(&r);
        assert!(p.wp && !p.pke && p.fetch_sets_id); // PAE: no protection keys
        r.mode = PagingMode::Legacy32;
        assert!(!PermPolicy::from_regs(&r).fetch_sets_id);
        r.mode = PagingMode::Level4;
        assert!(PermPolicy::from_regs(&r).pke);
    }
}
