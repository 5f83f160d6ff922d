//! Reference walkers, written from the manuals' text in the plainest way:
//! one function per format, explicit bit positions, no code shared with the
//! crate (only its data types, to compare results).
//!
//! Order of events modelled (the crate documents the same): walk (nested
//! faults on table reads as they happen), #PF for not-present / reserved,
//! access rights, final nested translation, then A/D updates (guest entries
//! top-down, needing nested write permission on their pages).

use super::RandMem;
use mmu::paging::{EptViolation, EptViolationQual, NestedPageFault, NpfExitInfo1};
use mmu::{GuestPhysAddr, LinearAddr, PagingMode, PfErrorCode, TranslateFault};

/// Bits hi..=lo of `v`.
pub fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    if hi < lo {
        return 0;
    }
    let width = hi - lo + 1;
    let mask = if width >= 64 { !0 } else { (1u64 << width) - 1 };
    (v >> lo) & mask
}

fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// The guest state the reference needs.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub mode: PagingMode,
    pub cr3: u64,
    pub wp: bool,
    pub pse: bool,
    pub pge: bool,
    pub smep: bool,
    pub smap: bool,
    pub pke: bool,
    pub pks: bool,
    pub nxe: bool,
    pub pkru: u32,
    pub pkrs: u32,
    pub pdptes: [u64; 4],
    pub maxphy: u32,
    pub page_1g: bool,
}

/// An access: kind 0 read, 1 write, 2 fetch.
#[derive(Clone, Copy, Debug)]
pub struct Acc {
    pub kind: u8,
    pub user: bool,
    pub implicit: bool,
    pub ac: bool,
}

/// A successful reference translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefOk {
    pub pa: u64,
    pub gpa: u64,
    pub shift: u32,
    pub user: bool,
    pub writable: bool,
    pub nx: bool,
    pub global: bool,
    pub dirty: bool,
    pub pkey: u8,
    pub pat: u8,
}

/// Nested paging for the reference.
#[derive(Clone, Copy, Debug)]
pub enum RefNested {
    Ept {
        eptp: u64,
        exec_only: bool,
        page_1g: bool,
        mbec: bool,
        adv: bool,
    },
    Npt {
        ncr3: u64,
        levels: u32,
        nxe: bool,
        page_1g: bool,
    },
}

/// Result of a nested reference walk.
#[derive(Clone, Copy, Debug)]
pub struct NestedOk {
    pub hpa: u64,
    pub writable: bool,
    /// EPT R, W, X, UX ANDed (for exit qualifications).
    pub rwxu: [bool; 4],
    pub shift: u32,
}

enum NestedErr {
    NotPresent([bool; 4]),
    Reserved,
    Denied([bool; 4]),
}

/// Why the nested reference walk happens.
#[derive(Clone, Copy, Debug)]
pub enum Why {
    Table {
        la: u64,
    },
    AdWrite {
        la: u64,
    },
    Final {
        la: u64,
        user: bool,
        writable: bool,
        nx: bool,
    },
    Physical,
}

impl RefNested {
    /// Walks the nested tables for `gpa`. `kind` 0/1/2 read/write/fetch.
    pub fn translate(
        &self,
        mem: &mut RandMem,
        gpa: u64,
        kind: u8,
        why: Why,
    ) -> Result<NestedOk, TranslateFault> {
        let (read, write, fetch, user_la) = match why {
            Why::Table { .. } => {
                let write = match self {
                    RefNested::Ept { eptp, .. } => bit(*eptp, 6),
                    RefNested::Npt { .. } => true,
                };
                (true, write, false, false)
            }
            Why::AdWrite { .. } => (false, true, false, false),
            Why::Final { user, .. } => (kind == 0, kind == 1, kind == 2, user),
            Why::Physical => (kind == 0, kind == 1, kind == 2, false),
        };
        let r = match self {
            RefNested::Ept { .. } => self.ept(mem, gpa, read, write, fetch, user_la),
            RefNested::Npt { .. } => self.npt(mem, gpa, write, fetch),
        };
        r.map_err(|e| self.fault(gpa, e, read, write, fetch, why))
    }

    fn fault(
        &self,
        gpa: u64,
        e: NestedErr,
        read: bool,
        write: bool,
        fetch: bool,
        why: Why,
    ) -> TranslateFault {
        match *self {
            RefNested::Ept { mbec, adv, .. } => {
                let rights = match e {
                    NestedErr::Reserved => {
                        return TranslateFault::EptMisconfig {
                            gpa: GuestPhysAddr(gpa),
                        }
                    }
                    NestedErr::NotPresent(r) | NestedErr::Denied(r) => r,
                };
                let mut q: u64 = 0;
                q |= read as u64;
                q |= (write as u64) << 1;
                q |= (fetch as u64) << 2;
                q |= (rights[0] as u64) << 3;
                q |= (rights[1] as u64) << 4;
                q |= (rights[2] as u64) << 5;
                if mbec {
                    q |= (rights[3] as u64) << 6;
                }
                let gla = match why {
                    Why::Table { la } | Why::AdWrite { la } => {
                        q |= 1 << 7;
                        Some(LinearAddr(la))
                    }
                    Why::Final {
                        la,
                        user,
                        writable,
                        nx,
                    } => {
                        q |= 3 << 7;
                        if adv {
                            q |= (user as u64) << 9 | (writable as u64) << 10 | (nx as u64) << 11;
                        }
                        Some(LinearAddr(la))
                    }
                    Why::Physical => None,
                };
                TranslateFault::EptViolation(EptViolation {
                    qualification: EptViolationQual::from_bits_retain(q),
                    gpa: GuestPhysAddr(gpa),
                    gla,
                })
            }
            RefNested::Npt { nxe, .. } => {
                let mut i: u64 = 1 << 2; // always a user access
                match e {
                    NestedErr::NotPresent(_) => {}
                    NestedErr::Reserved => i |= 1 | (1 << 3),
                    NestedErr::Denied(_) => i |= 1,
                }
                i |= (write as u64) << 1;
                if fetch && nxe {
                    i |= 1 << 4;
                }
                i |= match why {
                    Why::Table { .. } | Why::AdWrite { .. } => 1 << 33,
                    _ => 1 << 32,
                };
                TranslateFault::NestedPageFault(NestedPageFault {
                    exit_info1: NpfExitInfo1::from_bits_retain(i),
                    exit_info2: gpa,
                })
            }
        }
    }

    fn ept(
        &self,
        mem: &mut RandMem,
        gpa: u64,
        read: bool,
        write: bool,
        fetch: bool,
        user_la: bool,
    ) -> Result<NestedOk, NestedErr> {
        let RefNested::Ept {
            eptp,
            exec_only,
            page_1g,
            mbec,
            ..
        } = *self
        else {
            unreachable!()
        };
        let m = mem.maxphy;
        let levels = bits(eptp, 5, 3) as u32 + 1;
        let ad = bit(eptp, 6);
        let mut table = bits(eptp, m - 1, 12) << 12;
        let mut rights = [true; 4];
        let mut used: Vec<u64> = Vec::new();
        let mut level = levels;
        loop {
            let addr = table + bits(gpa, 12 + 9 * level - 1, 12 + 9 * (level - 1)) * 8;
            let e = mem.read(addr, 8);
            used.push(addr);
            let (r, w, x, u) = (bit(e, 0), bit(e, 1), bit(e, 2), bit(e, 10));
            rights[0] &= r;
            rights[1] &= w;
            rights[2] &= x;
            rights[3] &= if mbec { u } else { x };
            if !(r || w || x || (mbec && u)) {
                return Err(NestedErr::NotPresent(rights));
            }
            if w && !r {
                return Err(NestedErr::Reserved);
            }
            if !exec_only && !r && (x || (mbec && u)) {
                return Err(NestedErr::Reserved);
            }
            if bits(e, 51, m) != 0 {
                return Err(NestedErr::Reserved);
            }
            let ps = bit(e, 7);
            if level >= 4 && bits(e, 7, 3) != 0 {
                return Err(NestedErr::Reserved);
            }
            if level == 3 && ps && !page_1g {
                return Err(NestedErr::Reserved);
            }
            let leaf = level == 1 || (ps && (level == 2 || level == 3));
            if !leaf {
                if bits(e, 6, 3) != 0 {
                    return Err(NestedErr::Reserved);
                }
                table = bits(e, m - 1, 12) << 12;
                level -= 1;
                continue;
            }
            if level == 3 && bits(e, 29, 12) != 0 {
                return Err(NestedErr::Reserved);
            }
            if level == 2 && bits(e, 20, 12) != 0 {
                return Err(NestedErr::Reserved);
            }
            let mt = bits(e, 5, 3);
            if mt == 2 || mt == 3 || mt == 7 {
                return Err(NestedErr::Reserved);
            }
            let shift = 12 + 9 * (level - 1);
            let hpa = (bits(e, m - 1, shift) << shift) | bits(gpa, shift - 1, 0);
            let fetch_ok = if mbec && user_la {
                rights[3]
            } else {
                rights[2]
            };
            if (read && !rights[0]) || (write && !rights[1]) || (fetch && !fetch_ok) {
                return Err(NestedErr::Denied(rights));
            }
            if ad {
                let last = used.len() - 1;
                for (i, a) in used.iter().enumerate() {
                    let old = mem.read(*a, 8);
                    let mut new = old | (1 << 8);
                    if i == last && write {
                        new |= 1 << 9;
                    }
                    if new != old {
                        mem.write(*a, 8, new);
                    }
                }
            }
            return Ok(NestedOk {
                hpa,
                writable: rights[1],
                rwxu: rights,
                shift,
            });
        }
    }

    fn npt(
        &self,
        mem: &mut RandMem,
        gpa: u64,
        write: bool,
        fetch: bool,
    ) -> Result<NestedOk, NestedErr> {
        let RefNested::Npt {
            ncr3,
            levels,
            nxe,
            page_1g,
        } = *self
        else {
            unreachable!()
        };
        let m = mem.maxphy;
        let mut table = bits(ncr3, m - 1, 12) << 12;
        let (mut rw, mut us, mut xd) = (true, true, false);
        let mut used: Vec<u64> = Vec::new();
        let mut level = levels;
        loop {
            let addr = table + bits(gpa, 12 + 9 * level - 1, 12 + 9 * (level - 1)) * 8;
            let e = mem.read(addr, 8);
            used.push(addr);
            if !bit(e, 0) {
                return Err(NestedErr::NotPresent([false; 4]));
            }
            if bits(e, 51, m) != 0 || (!nxe && bit(e, 63)) {
                return Err(NestedErr::Reserved);
            }
            rw &= bit(e, 1);
            us &= bit(e, 2);
            xd |= nxe && bit(e, 63);
            let ps = bit(e, 7);
            if ps && level >= 4 {
                return Err(NestedErr::Reserved);
            }
            if ps && level == 3 && (!page_1g || bits(e, 29, 13) != 0) {
                return Err(NestedErr::Reserved);
            }
            if ps && level == 2 && bits(e, 20, 13) != 0 {
                return Err(NestedErr::Reserved);
            }
            if !(level == 1 || ps) {
                table = bits(e, m - 1, 12) << 12;
                level -= 1;
                continue;
            }
            let shift = 12 + 9 * (level - 1);
            let hpa = (bits(e, m - 1, shift) << shift) | bits(gpa, shift - 1, 0);
            if !us || (write && !rw) || (fetch && xd) {
                return Err(NestedErr::Denied([false; 4]));
            }
            let last = used.len() - 1;
            for (i, a) in used.iter().enumerate() {
                let old = mem.read(*a, 8);
                let mut new = old | (1 << 5);
                if i == last && write {
                    new |= 1 << 6;
                }
                if new != old {
                    mem.write(*a, 8, new);
                }
            }
            return Ok(NestedOk {
                hpa,
                writable: rw && us,
                rwxu: [false; 4],
                shift,
            });
        }
    }
}

/// One guest entry used by a walk: where it is and what it holds.
struct Used {
    gpa: u64,
    hpa: u64,
    bytes: u32,
    value: u64,
    has_a: bool,
    writable: bool,
    rwxu: [bool; 4],
}

/// Reads a guest entry at guest-physical `gpa`, through `nested` if any.
fn read_entry(
    mem: &mut RandMem,
    nested: Option<&RefNested>,
    gpa: u64,
    bytes: u32,
    la: u64,
) -> Result<(u64, u64, bool, [bool; 4]), TranslateFault> {
    match nested {
        None => Ok((mem.read(gpa, bytes), gpa, true, [true; 4])),
        Some(n) => {
            let t = n.translate(mem, gpa, 0, Why::Table { la })?;
            Ok((mem.read(t.hpa, bytes), t.hpa, t.writable, t.rwxu))
        }
    }
}

/// The reference translation of linear address `la`.
pub fn translate(
    mem: &mut RandMem,
    s: &Setup,
    nested: Option<&RefNested>,
    la: u64,
    acc: Acc,
) -> Result<RefOk, TranslateFault> {
    let write = acc.kind == 1;
    let fetch = acc.kind == 2;
    let pae_like = matches!(
        s.mode,
        PagingMode::Pae | PagingMode::Level4 | PagingMode::Level5
    );
    let mut code_access: u32 = 0;
    if write {
        code_access |= 2;
    }
    if acc.user {
        code_access |= 4;
    }
    if fetch && (s.smep || (pae_like && s.nxe)) {
        code_access |= 16;
    }
    let pf = |code: u32| TranslateFault::PageFault {
        error_code: PfErrorCode::from_bits_retain(code),
        linear: la,
    };
    if s.mode == PagingMode::Disabled {
        let mut ok = RefOk {
            pa: la,
            gpa: la,
            shift: 12,
            user: true,
            writable: true,
            nx: false,
            global: false,
            dirty: true,
            pkey: 0,
            pat: 0,
        };
        if let Some(n) = nested {
            let why = Why::Final {
                la,
                user: false,
                writable: true,
                nx: false,
            };
            ok.pa = n.translate(mem, la, acc.kind, why)?.hpa;
        }
        return Ok(ok);
    }
    let m = s.maxphy;
    let mut used: Vec<Used> = Vec::new();
    let (mut rw_all, mut us_all, mut xd_any) = (true, true, false);
    let leaf_value;
    let pa_base;
    let shift;
    macro_rules! take {
        ($gpa:expr, $bytes:expr, $has_a:expr) => {{
            let (v, hpa, writable, rwxu) = read_entry(mem, nested, $gpa, $bytes, la)?;
            used.push(Used {
                gpa: $gpa,
                hpa,
                bytes: $bytes,
                value: v,
                has_a: $has_a,
                writable,
                rwxu,
            });
            v
        }};
    }
    match s.mode {
        PagingMode::Legacy32 => {
            let pde = take!((s.cr3 & 0xffff_f000) | (bits(la, 31, 22) << 2), 4, true);
            if !bit(pde, 0) {
                return Err(pf(code_access));
            }
            rw_all &= bit(pde, 1);
            us_all &= bit(pde, 2);
            if s.pse && bit(pde, 7) {
                let mm = m.min(40);
                if bits(pde, 21, mm - 19) != 0 {
                    return Err(pf(code_access | 1 | 8));
                }
                leaf_value = pde;
                pa_base = (bits(pde, 31, 22) << 22) | (bits(pde, mm - 20, 13) << 32);
                shift = 22;
            } else {
                let pte = take!((pde & 0xffff_f000) | (bits(la, 21, 12) << 2), 4, true);
                if !bit(pte, 0) {
                    return Err(pf(code_access));
                }
                rw_all &= bit(pte, 1);
                us_all &= bit(pte, 2);
                leaf_value = pte;
                pa_base = pte & 0xffff_f000;
                shift = 12;
            }
        }
        _ => {
            // PAE and IA-32e share the 64-bit entry layout.
            let ia32e = s.mode != PagingMode::Pae;
            let reserved = |e: u64| -> bool {
                let high = if ia32e {
                    bits(e, 51, m)
                } else {
                    bits(e, 62, m)
                };
                high != 0 || (!s.nxe && bit(e, 63))
            };
            let mut level: u8;
            let mut table: u64;
            if s.mode == PagingMode::Pae {
                let idx = bits(la, 31, 30) as usize;
                let pdpte = match nested {
                    Some(RefNested::Npt { .. }) => {
                        let e = take!((s.cr3 & 0xffff_ffe0) + idx as u64 * 8, 8, false);
                        if bit(e, 0)
                            && (bits(e, 2, 1) != 0 || bits(e, 8, 5) != 0 || bits(e, 63, m) != 0)
                        {
                            return Err(pf(code_access | 1 | 8));
                        }
                        e
                    }
                    _ => s.pdptes[idx],
                };
                if !bit(pdpte, 0) {
                    return Err(pf(code_access));
                }
                table = bits(pdpte, m - 1, 12) << 12;
                level = 2;
            } else {
                level = if s.mode == PagingMode::Level5 { 5 } else { 4 };
                table = bits(s.cr3, m - 1, 12) << 12;
            }
            loop {
                let lo = 12 + 9 * (level as u32 - 1);
                let e = take!(table + bits(la, lo + 8, lo) * 8, 8, true);
                if !bit(e, 0) {
                    return Err(pf(code_access));
                }
                if reserved(e) {
                    return Err(pf(code_access | 1 | 8));
                }
                let ps = bit(e, 7);
                if ps && level >= 4 {
                    return Err(pf(code_access | 1 | 8));
                }
                if ps && level == 3 && (!s.page_1g || bits(e, 29, 13) != 0) {
                    return Err(pf(code_access | 1 | 8));
                }
                if ps && level == 2 && bits(e, 20, 13) != 0 {
                    return Err(pf(code_access | 1 | 8));
                }
                rw_all &= bit(e, 1);
                us_all &= bit(e, 2);
                xd_any |= s.nxe && bit(e, 63);
                if level == 1 || ps {
                    leaf_value = e;
                    shift = lo;
                    pa_base = bits(e, m - 1, lo) << lo;
                    break;
                }
                table = bits(e, m - 1, 12) << 12;
                level -= 1;
            }
        }
    }
    // Access rights, SDM Vol. 3A 4.6.1, clause by clause.
    let user_addr = us_all;
    let allowed = if acc.user {
        match acc.kind {
            0 => user_addr,
            1 => user_addr && rw_all,
            _ => user_addr && !xd_any,
        }
    } else {
        match acc.kind {
            0 => !(user_addr && s.smap && (acc.implicit || !acc.ac)),
            1 => {
                if user_addr && s.smap && (acc.implicit || !acc.ac) {
                    false
                } else {
                    !s.wp || rw_all
                }
            }
            _ => {
                let fetch_ok = !xd_any;
                let smep_blocks = user_addr && s.smep;
                fetch_ok && !smep_blocks
            }
        }
    };
    // Protection keys, SDM Vol. 3A 4.6.2 and the PK flag of 4.7.
    let ia32e = matches!(s.mode, PagingMode::Level4 | PagingMode::Level5);
    let pkey = if ia32e {
        bits(leaf_value, 62, 59) as u32
    } else {
        0
    };
    let pk = ia32e && !fetch && {
        let reg = if user_addr && s.pke {
            Some(s.pkru)
        } else if !user_addr && s.pks {
            Some(s.pkrs)
        } else {
            None
        };
        match reg {
            None => false,
            Some(r) => {
                let ad = (r >> (2 * pkey)) & 1 == 1;
                let wd = (r >> (2 * pkey + 1)) & 1 == 1;
                ad || (write && wd && (acc.user || s.wp))
            }
        }
    };
    if !allowed || pk {
        return Err(pf(code_access | 1 | if pk { 32 } else { 0 }));
    }
    let gpa = pa_base | bits(la, shift - 1, 0);
    let mut pa = gpa;
    if let Some(n) = nested {
        let why = Why::Final {
            la,
            user: user_addr,
            writable: rw_all,
            nx: xd_any,
        };
        let t = n.translate(mem, gpa, acc.kind, why)?;
        pa = t.hpa;
    }
    // A/D updates: A in every entry used (not PAE PDPTEs), D in the leaf.
    let last = used.len() - 1;
    let mut writes: Vec<(usize, u64)> = Vec::new();
    for (i, u) in used.iter().enumerate() {
        let mut new = u.value;
        if u.has_a {
            new |= 1 << 5;
        }
        if i == last && write {
            new |= 1 << 6;
        }
        if new != u.value {
            writes.push((i, new));
        }
    }
    for (i, _) in &writes {
        let u = &used[*i];
        if !u.writable {
            let n = nested.expect("only nested tables can be read-only");
            return Err(n.ad_fault(u.gpa, u.rwxu, la));
        }
    }
    for (i, new) in &writes {
        let u = &used[*i];
        mem.write(u.hpa, u.bytes, *new);
    }
    let pat_bit = if shift == 12 {
        bit(leaf_value, 7)
    } else {
        bit(leaf_value, 12)
    };
    Ok(RefOk {
        pa,
        gpa,
        shift,
        user: user_addr,
        writable: rw_all,
        nx: xd_any,
        global: s.pge && bit(leaf_value, 8),
        dirty: write || bit(leaf_value, 6),
        pkey: pkey as u8,
        pat: ((pat_bit as u8) << 2) | bits(leaf_value, 4, 3) as u8,
    })
}

impl RefNested {
    /// The fault for writing guest A/D flags to a read-only table page.
    fn ad_fault(&self, gpa: u64, rwxu: [bool; 4], la: u64) -> TranslateFault {
        match *self {
            RefNested::Ept { mbec, .. } => {
                let mut q: u64 = 2 | (1 << 7);
                q |= (rwxu[0] as u64) << 3 | (rwxu[1] as u64) << 4 | (rwxu[2] as u64) << 5;
                if mbec {
                    q |= (rwxu[3] as u64) << 6;
                }
                TranslateFault::EptViolation(EptViolation {
                    qualification: EptViolationQual::from_bits_retain(q),
                    gpa: GuestPhysAddr(gpa),
                    gla: Some(LinearAddr(la)),
                })
            }
            RefNested::Npt { .. } => TranslateFault::NestedPageFault(NestedPageFault {
                exit_info1: NpfExitInfo1::from_bits_retain(1 | 2 | 4 | (1 << 33)),
                exit_info2: gpa,
            }),
        }
    }
}
