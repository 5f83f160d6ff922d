//! `paging`: random page tables in a sparse random physical memory for
//! every paging mode (32-bit with and without PSE, PAE, 4-level, 5-level),
//! with no nested paging, EPT (permission combinations, memory types,
//! A/D, execute-only, mode-based execute control, 1-GiB pages) or NPT, and
//! random CR0/CR3/CR4/EFER, address widths, protection keys, access kind,
//! privilege and address, through the `mmu` crate's walker and TLBs.
//!
//! Defined, for each input:
//! - the reference walk returns a translation or a fault, and the same
//!   answer from a pristine copy of memory (determinism);
//! - walking again after its accessed/dirty updates gives the same answer;
//! - the MMU's walk (with paging-structure caches) gives the same answer,
//!   and a TLB lookup after the fill agrees with it;
//! - a second access of another kind or privilege through the filled TLB
//!   agrees with a fresh reference walk of that access.

use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use mmu::paging::{
    load_pdptes, walk_guest, EptCaps, EptContext, Eptp, GuestConfig, NoRecord, NptContext,
    SparseMemory,
};
use mmu::{
    Access, AccessKind, AddressWidths, Cr0, Cr4, Efer, LinearAddr, Mmu, NestedPaging,
    PagingFeatures, PagingMode, PagingRegs, TlbConfig, TranslateFault, Translation,
    TranslationContext,
};

/// The paging target.
#[derive(Debug)]
pub struct Paging;

/// Where guest paging structures are drawn from (a small pool, so levels
/// alias sometimes).
const GUEST_POOL: u64 = 0x1000;
/// Where EPT/NPT structures are drawn from.
const NESTED_POOL: u64 = 0x100_0000;

/// A decoded case.
struct Case {
    regs: PagingRegs,
    widths: AddressWidths,
    features: PagingFeatures,
    nested: Option<NestedPaging>,
    vpid: u16,
    la: u64,
    access: Access,
    second: Access,
    mem: SparseMemory,
    intel: bool,
}

fn access(src: &mut Source) -> Access {
    let kind = src.pick(&[AccessKind::Read, AccessKind::Write, AccessKind::Execute]);
    let a = match src.below(4) {
        0 => Access::implicit(kind),
        1 | 2 => Access::new(kind, true),
        _ => Access::new(kind, false),
    };
    a.with_ac(src.bool())
}

/// A page address from `pool` (64 pages), or anywhere below MAXPHYADDR.
fn page(src: &mut Source, pool: u64, w: AddressWidths) -> u64 {
    if src.chance(1, 16) {
        src.interesting_u64() & w.phys_mask() & !0xfff
    } else {
        pool + 0x1000 * src.below(64)
    }
}

/// Flag bits of a guest entry: mostly present and permissive, sometimes
/// not, sometimes with a reserved bit.
fn guest_flags(src: &mut Source, wide: bool) -> u64 {
    let mut f = 0u64;
    if src.chance(15, 16) {
        f |= 1;
    }
    if src.chance(3, 4) {
        f |= 2;
    }
    if src.chance(3, 4) {
        f |= 4;
    }
    f |= (src.u8() as u64 & 0x7) << 3; // PWT, PCD, A
    if src.bool() {
        f |= 1 << 6; // D
    }
    if src.chance(1, 4) {
        f |= 1 << 8; // G
    }
    if wide {
        if src.chance(1, 4) {
            f |= 1 << 63; // XD
        }
        if src.chance(1, 4) {
            f |= (src.below(16)) << 59; // protection key
        }
    }
    if src.chance(1, 16) {
        f |= 1 << src.below(if wide { 64 } else { 32 });
    }
    f
}

/// EPT flag bits: R/W/X mostly all set, memory type mostly WB.
fn ept_flags(src: &mut Source, leaf: bool) -> u64 {
    let mut f = if src.chance(3, 4) { 7 } else { src.below(8) };
    if leaf {
        f |= if src.chance(3, 4) {
            6 << 3
        } else {
            src.below(8) << 3
        };
        if src.chance(1, 4) {
            f |= 1 << 6; // ignore PAT
        }
    }
    f |= (src.below(4)) << 8; // A, D
    if src.bool() {
        f |= 1 << 10; // user execute
    }
    if src.chance(1, 16) {
        f |= 1 << src.below(64);
    }
    f
}

/// Builds (or follows) the nested path for `gpa`: mostly an identity map.
fn map_nested(src: &mut Source, c: &mut Case, root: u64, levels: u8, ept: bool, gpa: u64) {
    let w = c.widths;
    let mut table = root;
    for level in (1..=levels).rev() {
        let idx = (gpa >> (12 + 9 * (level as u64 - 1))) & 0x1ff;
        let at = table + 8 * idx;
        let old = c.mem.read_u64(at);
        let is_table = if ept { old & 7 != 0 } else { old & 1 != 0 } && old & 0x80 == 0;
        if level > 1 && is_table && src.chance(7, 8) {
            table = old & w.phys_mask() & !0xfff;
            continue;
        }
        let leaf = level == 1 || (level <= 3 && src.chance(1, 6));
        if leaf {
            let shift = 12 + 9 * (level as u64 - 1);
            let frame = if src.chance(7, 8) {
                gpa >> shift << shift
            } else {
                src.u64() & w.phys_mask() & !0xfff
            };
            let flags = if ept {
                ept_flags(src, true)
            } else {
                guest_flags(src, true) | 4
            };
            let ps = if level > 1 { 0x80 } else { 0 };
            c.mem.write_u64(at, frame | flags | ps);
            return;
        }
        let next = page(src, NESTED_POOL, w);
        let flags = if ept {
            ept_flags(src, false)
        } else {
            guest_flags(src, true) | 4
        };
        c.mem.write_u64(at, next | (flags & !0x80));
        table = next;
    }
}

/// The guest's paging mode, its bits in CR0/CR4/EFER, and the width.
fn regs(src: &mut Source, w: &mut AddressWidths) -> PagingRegs {
    let extra4 = Cr4::from_bits_retain(
        src.u64()
            & (Cr4::PGE | Cr4::SMEP | Cr4::SMAP | Cr4::PKE | Cr4::PKS | Cr4::PCIDE | Cr4::CET)
                .bits(),
    );
    let mut cr0 = Cr0::PE | Cr0::PG;
    if src.bool() {
        cr0 |= Cr0::WP;
    }
    let nxe = if src.bool() { Efer::NXE } else { Efer::empty() };
    let (cr4, efer) = match src.below(10) {
        0 => (Cr4::empty(), Efer::empty()),
        1 => (Cr4::PSE, Efer::empty()),
        2 | 3 => (Cr4::PAE, nxe),
        4..=7 => (Cr4::PAE, Efer::LME | Efer::LMA | nxe),
        8 => {
            w.linear_bits = 57;
            (Cr4::PAE | Cr4::LA57, Efer::LME | Efer::LMA | nxe)
        }
        _ => {
            cr0 = Cr0::from_bits_retain(src.u64());
            (
                Cr4::from_bits_retain(src.u64()),
                Efer::from_bits_retain(src.u64()),
            )
        }
    };
    let cr3 = page(src, GUEST_POOL, *w) | ((src.u64() & 0xfff) * src.chance(1, 4) as u64);
    let mut r = PagingRegs::new(cr0, cr3, cr4 | extra4, efer);
    r.pkru = src.u32();
    r.pkrs = src.u32();
    r
}

/// Decodes a case: registers, the guest path to the address, the nested
/// paths of every guest-physical page the walk touches, and noise.
fn decode(input: &[u8]) -> Case {
    let mut src = Source::new(input);
    let src = &mut src;
    let mut widths = AddressWidths {
        phys_bits: match src.below(8) {
            0..=5 => src.pick(&[36, 39, 46, 46, 48, 52]),
            _ => 36 + src.below(17) as u8,
        },
        linear_bits: 48,
    };
    let regs = regs(src, &mut widths);
    let features = PagingFeatures {
        page_1g: src.chance(3, 4),
    };
    let mode = regs.mode;
    let la = match mode {
        PagingMode::Legacy32 | PagingMode::Pae | PagingMode::Disabled => src.u32() as u64,
        _ => mmu::canonicalize(src.u64(), widths.linear_bits),
    };
    let mut c = Case {
        regs,
        widths,
        features,
        nested: None,
        vpid: src.u16() & 0xfff,
        la,
        access: access(src),
        second: access(src),
        mem: SparseMemory::new(),
        intel: src.bool(),
    };
    // The guest dimension.
    let mut touched = vec![c.regs.cr3 & !0xfff];
    let (levels, wide) = match mode {
        PagingMode::Disabled => (0, true),
        PagingMode::Legacy32 => (2u8, false),
        PagingMode::Pae => (3, true),
        PagingMode::Level4 => (4, true),
        PagingMode::Level5 => (5, true),
    };
    let mut table = if mode == PagingMode::Pae {
        c.regs.cr3 & 0xffff_ffe0
    } else {
        c.regs.cr3 & widths.phys_mask() & !0xfff
    };
    for level in (1..=levels).rev() {
        let (shift, esize) = if wide {
            (12 + 9 * (level as u64 - 1), 8)
        } else {
            (12 + 10 * (level as u64 - 1), 4)
        };
        let idx_mask = if mode == PagingMode::Pae && level == 3 {
            3
        } else if wide {
            0x1ff
        } else {
            0x3ff
        };
        let at = table + esize * ((la >> shift) & idx_mask);
        let large_ok = (level == 2 && (wide || c.regs.cr4.contains(Cr4::PSE)))
            || (level == 3 && mode != PagingMode::Pae);
        let leaf = level == 1 || (large_ok && src.chance(1, 4));
        let mut flags = guest_flags(src, wide);
        if mode == PagingMode::Pae && level == 3 && src.chance(7, 8) {
            flags &= 0x19; // a PDPTE: P, PWT, PCD only
        }
        let target = if leaf {
            let frame = src.u64() & widths.phys_mask();
            if level > 1 {
                flags |= 0x80;
                frame & !((1u64 << shift) - 1) | (src.chance(1, 8) as u64) << 12
            } else {
                frame & !0xfff
            }
        } else {
            flags &= !0x80;
            page(src, GUEST_POOL, widths)
        };
        let v = target | flags;
        if esize == 4 {
            c.mem.write_u32(at, v as u32);
        } else {
            c.mem.write_u64(at, v);
        }
        touched.push(target & !0xfff);
        if leaf {
            break;
        }
        table = target;
    }
    if mode == PagingMode::Pae {
        c.regs.pdptes = if src.chance(7, 8) {
            load_pdptes(c.regs.cr3, widths, &mut c.mem).unwrap_or_default()
        } else {
            [src.u64(), src.u64(), src.u64(), src.u64()]
        };
    }
    // Noise in the pools.
    for _ in 0..src.below(4) {
        let pool = if src.bool() { GUEST_POOL } else { NESTED_POOL };
        let at = pool + 8 * src.below(64 * 512);
        let v = src.interesting_u64();
        c.mem.write_u64(at, v);
    }
    // The nested dimension.
    match src.below(3) {
        0 => {}
        1 => {
            let root = page(src, NESTED_POOL, widths);
            let levels = if src.chance(1, 4) { 5 } else { 4 };
            let eptp = if src.chance(15, 16) {
                Eptp(
                    root | ((levels as u64 - 1) << 3)
                        | (src.below(2) << 6)
                        | src.pick(&[6, 6, 0, 7]),
                )
            } else {
                Eptp(src.interesting_u64())
            };
            let ctx = EptContext {
                eptp,
                caps: EptCaps {
                    exec_only: src.bool(),
                    page_1g: src.bool(),
                    advanced_exit_info: src.bool(),
                },
                mbec: src.chance(1, 4),
            };
            for gpa in touched.clone() {
                map_nested(src, &mut c, root, levels, true, gpa);
            }
            c.nested = Some(NestedPaging::Ept(ctx));
        }
        _ => {
            let root = page(src, NESTED_POOL, widths);
            let ctx = NptContext {
                ncr3: root | ((src.chance(1, 8) as u64 * src.u64()) & 0xfff),
                levels: if src.chance(1, 4) { 5 } else { 4 },
                nxe: src.bool(),
                page_1g: src.bool(),
            };
            for gpa in touched.clone() {
                map_nested(src, &mut c, root, ctx.levels, false, gpa);
            }
            c.nested = Some(NestedPaging::Npt(ctx));
        }
    }
    c
}

fn label(c: &Case, r: &Result<Translation, TranslateFault>) -> String {
    let mode = format!("{:?}", c.regs.mode);
    let nested = match c.nested {
        None => "",
        Some(NestedPaging::Ept(_)) => "+EPT",
        Some(NestedPaging::Npt(_)) => "+NPT",
    };
    let what = match r {
        Ok(t) => format!("{:?}", t.page_size),
        Err(TranslateFault::PageFault { error_code, .. }) => {
            format!("#PF {:#x}", error_code.bits())
        }
        Err(TranslateFault::EptViolation(_)) => "EPT violation".into(),
        Err(TranslateFault::EptMisconfig { .. }) => "EPT misconfiguration".into(),
        Err(TranslateFault::NestedPageFault(_)) => "#NPF".into(),
    };
    format!("{mode}{nested} {:?}: {what}", c.access.kind)
}

impl Target for Paging {
    fn name(&self) -> &'static str {
        "paging"
    }

    fn max_len(&self) -> usize {
        512
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let c = decode(input);
        let cfg = GuestConfig {
            regs: c.regs,
            widths: c.widths,
            features: c.features,
        };
        let nested = c.nested.as_ref();
        let walk = |mem: &mut SparseMemory, a: Access| {
            walk_guest(&cfg, nested, c.la, a, mem, &mut NoRecord)
        };
        let mut after = c.mem.clone();
        let first = walk(&mut after, c.access);
        let again = walk(&mut c.mem.clone(), c.access);
        if again != first {
            return Err(format!(
                "two walks of the same memory differ: {first:?} then {again:?}"
            ));
        }
        let rewalk = walk(&mut after.clone(), c.access);
        if rewalk != first {
            return Err(format!(
                "re-walking after the A/D updates differs: {first:?} then {rewalk:?}"
            ));
        }
        let tlb = if c.intel {
            TlbConfig::intel()
        } else {
            TlbConfig::amd()
        };
        let mut mmu = Mmu::new(tlb).map_err(|e| format!("TLB preset invalid: {e:?}"))?;
        let mut ctx = TranslationContext::new(c.regs, c.widths, c.features).with_vpid(c.vpid);
        if let Some(n) = c.nested {
            ctx = ctx.with_nested(n);
        }
        let mut mem = c.mem.clone();
        let la = LinearAddr(c.la);
        let filled = mmu.translate_walk(&ctx, la, c.access, &mut mem, &mut NoRecord);
        if filled != first {
            return Err(format!(
                "the MMU's walk {filled:?} differs from the reference {first:?}"
            ));
        }
        let looked_up = mmu.translate(&ctx, la, c.access, &mut mem, &mut NoRecord);
        if looked_up != first.map(|t| t.pa) {
            return Err(format!(
                "after the fill the TLB gives {looked_up:?}, the walk {:?}",
                first.map(|t| t.pa)
            ));
        }
        let reference = walk(&mut mem.clone(), c.second);
        let second = mmu.translate(&ctx, la, c.second, &mut mem, &mut NoRecord);
        if second != reference.map(|t| t.pa) {
            return Err(format!(
                "{:?} through the filled TLB gives {second:?}, a fresh walk {:?}",
                c.second,
                reference.map(|t| t.pa)
            ));
        }
        Ok(Outcome::new(label(&c, &first)))
    }
}
