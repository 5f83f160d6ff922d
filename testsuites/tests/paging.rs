//! Paging end to end inside the machine (issue 3): 4-KiB, 2-MiB and 1-GiB
//! pages, accessed and dirty flags, the page-fault error code of every case
//! (P, W/R, U/S, RSVD, I/D, PK) with CR2, CR0.WP, SMEP, SMAP with RFLAGS.AC,
//! EFER.NXE, protection keys, INVLPG, and MOV CR3 with global pages (SDM Vol.
//! 3A chapter 4).
//!
//! Tables: page directory 0's entry 3 points at a page table of the test's own
//! (`PT`), so the 2 MiB at `W` are 4-KiB pages the cases map at will, both in
//! the supervisor identity map and in the kit's user alias (the identity map
//! is a supervisor address range whatever the PTE says, because its PML4E has
//! U/S = 0; user-address cases use the alias).

use guestkit::layout::{rec, var, PD, PDPT, USER_ALIAS, VARS};
use guestkit::{enter_user, Asm, AsmResult, Program};
use iced_x86::code_asm::*;
use testsuites::check::*;
use testsuites::{config, run};

/// The test page table.
const PT: u64 = 0x30_0000;
/// The 2-MiB window it maps (PD[3]).
const W: u64 = 0x60_0000;
/// Physical pages with known contents.
const PHYS_A: u64 = 0x50_0000;
const PHYS_B: u64 = 0x50_1000;
const PHYS_CODE: u64 = 0x50_2000;
const A_VAL: u64 = 0xaaaa_aaaa_0000_000a;
const B_VAL: u64 = 0xbbbb_bbbb_0000_000b;

/// PTE/PDE bits.
const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const A: u64 = 0x20;
const D: u64 = 0x40;
const PS: u64 = 0x80;
const G: u64 = 0x100;
const XD: u64 = 1 << 63;

fn set_pte(a: &mut Asm, index: u64, value: u64) -> AsmResult {
    a.mov(rax, value)?;
    a.mov(qword_ptr(PT + 8 * index), rax)
}

fn invlpg(a: &mut Asm, la: u64) -> AsmResult {
    a.mov(rax, la)?;
    a.invlpg(byte_ptr(rax))
}

fn slot(a: &mut Asm, n: u64, v: AsmRegister64) -> AsmResult {
    a.mov(rbx, qword_ptr(VARS + var::RECORD))?;
    a.mov(qword_ptr(rbx + (rec::USER + 8 * n) as i32), v)
}

/// The first case: fill the physical pages, clear the page table, hook it
/// into the window, and put `ret` (C3) at PHYS_CODE.
fn setup(a: &mut Asm) -> AsmResult {
    a.mov(rax, A_VAL)?;
    a.mov(qword_ptr(PHYS_A), rax)?;
    a.mov(rax, B_VAL)?;
    a.mov(qword_ptr(PHYS_B), rax)?;
    a.mov(byte_ptr(PHYS_CODE), 0xc3i32)?;
    a.mov(rdi, PT)?;
    a.mov(ecx, 512i32)?;
    a.xor(eax, eax)?;
    a.rep().stosq()?;
    a.mov(rax, PT | P | RW | US)?;
    a.mov(qword_ptr(PD + 8 * 3), rax)?;
    invlpg(a, W)?;
    invlpg(a, USER_ALIAS + W)
}

/// What the CPU running the suite can do.
#[derive(Clone, Copy)]
struct Caps {
    /// Protection keys: without them the two PK cases are left out.
    pku: bool,
    /// STAC/CLAC set and clear RFLAGS.AC; without them (KVM's ring-0
    /// instruction emulator on a PVM host cannot emulate them) POPF does.
    stac: bool,
    /// 1-GiB pages (CPUID 80000001H EDX bit 26): without them a PDPTE with
    /// PS = 1 is a reserved-bit fault, which the 1-GiB case then expects.
    gb_pages: bool,
    /// A translation stays cached after its PTE changes until it is
    /// invalidated, as in hardware TLBs and nestemu's modelled ones. SDM
    /// Vol. 3A 4.10.4.3 lets a processor use either the old or the new
    /// entry; KVM's shadow MMU (no EPT on a PVM host) write-protects guest
    /// page tables and applies a PTE write at once, so where this is false
    /// the two stale-entry cases accept either value.
    stale_tlb: bool,
}

impl Caps {
    /// nestemu's modelled CPU.
    const NESTEMU: Caps = Caps {
        pku: true,
        stac: true,
        gb_pages: true,
        stale_tlb: true,
    };
}

/// `gpr n` is `old` (the stale cached translation was used) or, where the
/// CPU may have applied the PTE write at once, `new`.
fn stale(caps: Caps, n: usize, old: u64, new: u64) -> Check {
    if caps.stale_tlb {
        return gpr(n, old);
    }
    that("stale or new translation", move |r| {
        r.gprs[n] == old || r.gprs[n] == new
    })
}

/// Sets RFLAGS.AC with STAC, or with PUSHF/BTS/POPF.
fn set_ac(a: &mut Asm, stac: bool) -> AsmResult {
    if stac {
        return a.stac();
    }
    a.pushfq()?;
    a.bts(qword_ptr(rsp), 18i32)?;
    a.popfq()
}

/// Clears RFLAGS.AC with CLAC, or with PUSHF/BTR/POPF.
fn clear_ac(a: &mut Asm, stac: bool) -> AsmResult {
    if stac {
        return a.clac();
    }
    a.pushfq()?;
    a.btr(qword_ptr(rsp), 18i32)?;
    a.popfq()
}

/// The suite's cases and their checks for a CPU with `caps`.
fn suite(caps: Caps) -> (Program, Table) {
    let mut p = Program::new();
    let mut t: Vec<(String, Vec<Check>)> = Vec::new();
    macro_rules! case {
        ($name:expr, $f:expr, $c:expr $(,)?) => {{
            p.long_case($name, $f);
            t.push(($name.into(), $c));
        }};
    }
    case!("setup", setup, vec![no_exception()]);
    case!(
        "4-KiB page maps where its PTE says",
        |a| {
            set_pte(a, 0, PHYS_A | P | RW)?;
            invlpg(a, W)?;
            a.mov(rcx, qword_ptr(W))?;
            set_pte(a, 0, PHYS_B | P | RW)?;
            invlpg(a, W)?;
            a.mov(rdx, qword_ptr(W))
        },
        vec![no_exception(), gpr(1, A_VAL), gpr(2, B_VAL)],
    );
    case!(
        "a cached translation is used until INVLPG",
        |a| {
            set_pte(a, 1, PHYS_A | P | RW)?;
            invlpg(a, W + 0x1000)?;
            a.mov(rcx, qword_ptr(W + 0x1000))?;
            set_pte(a, 1, PHYS_B | P | RW)?;
            a.mov(rdx, qword_ptr(W + 0x1000))?; // the TLB still maps A
            invlpg(a, W + 0x1000)?;
            a.mov(rsi, qword_ptr(W + 0x1000))
        },
        vec![gpr(1, A_VAL), stale(caps, 2, A_VAL, B_VAL), gpr(6, B_VAL)],
    );
    case!(
        "MOV CR3 flushes non-global entries, keeps global ones",
        |a| {
            a.mov(rax, cr4)?;
            a.or(rax, 0x80i32)?; // PGE
            a.mov(cr4, rax)?;
            set_pte(a, 2, PHYS_A | P | RW | G)?;
            set_pte(a, 3, PHYS_A | P | RW)?;
            invlpg(a, W + 0x2000)?;
            invlpg(a, W + 0x3000)?;
            a.mov(rcx, qword_ptr(W + 0x2000))?;
            a.mov(rcx, qword_ptr(W + 0x3000))?;
            set_pte(a, 2, PHYS_B | P | RW | G)?;
            set_pte(a, 3, PHYS_B | P | RW)?;
            a.mov(rax, cr3)?;
            a.mov(cr3, rax)?;
            a.mov(rcx, qword_ptr(W + 0x2000))?; // global: still A (or B, see Caps)
            a.mov(rdx, qword_ptr(W + 0x3000))?; // flushed: B
            invlpg(a, W + 0x2000)?;
            a.mov(rsi, qword_ptr(W + 0x2000))
        },
        vec![stale(caps, 1, A_VAL, B_VAL), gpr(2, B_VAL), gpr(6, B_VAL)],
    );
    case!(
        "2-MiB page",
        |a| {
            a.mov(rax, 0x40_0000 | P | RW | PS)?;
            a.mov(qword_ptr(PD + 8 * 5), rax)?;
            invlpg(a, 0xa0_0000)?;
            a.mov(rcx, qword_ptr(0xa0_0000 + (PHYS_A - 0x40_0000)))
        },
        vec![no_exception(), gpr(1, A_VAL)],
    );
    case!(
        "1-GiB page",
        |a| {
            a.mov(rax, P | RW | PS)?; // PA 0
            a.mov(qword_ptr(PDPT + 8 * 4), rax)?;
            a.mov(rbx, (4u64 << 30) + PHYS_B)?;
            a.invlpg(byte_ptr(rbx))?;
            a.mov(rcx, qword_ptr(rbx))
        },
        if caps.gb_pages {
            vec![no_exception(), gpr(1, B_VAL)]
        } else {
            // P = 1, RSVD = 1 (SDM Vol. 3A 4.7).
            vec![exception(14, Some(0x9))]
        },
    );
    case!(
        "accessed and dirty flags",
        |a| {
            set_pte(a, 4, PHYS_A | P | RW)?;
            invlpg(a, W + 0x4000)?;
            a.mov(rcx, qword_ptr(W + 0x4000))?;
            a.mov(rdx, qword_ptr(PT + 8 * 4))?;
            slot(a, 0, rdx)?;
            a.mov(qword_ptr(W + 0x4008), rcx)?;
            a.mov(rdx, qword_ptr(PT + 8 * 4))?;
            slot(a, 1, rdx)
        },
        vec![
            that("read sets A only", |r| r.user[0] & (A | D) == A),
            that("write sets D", |r| r.user[1] & (A | D) == A | D),
        ],
    );
    case!(
        "#PF not present, read",
        |a| {
            set_pte(a, 5, 0)?;
            invlpg(a, W + 0x5000)?;
            a.mov(rcx, qword_ptr(W + 0x5010))
        },
        vec![exception(14, Some(0)), that("CR2", |r| r.cr2 == W + 0x5010)],
    );
    case!(
        "#PF not present, write",
        |a| a.mov(qword_ptr(W + 0x5020), rcx),
        vec![exception(14, Some(2)), that("CR2", |r| r.cr2 == W + 0x5020)],
    );
    case!(
        "#PF not present, fetch (I/D with NXE)",
        |a| {
            a.mov(rax, W + 0x5000)?;
            a.call(rax)
        },
        vec![
            exception(14, Some(0x10)),
            that("CR2", |r| r.cr2 == W + 0x5000),
        ],
    );
    case!(
        "#PF reserved bit",
        |a| {
            set_pte(a, 6, PHYS_A | P | RW | (1 << 51))?;
            invlpg(a, W + 0x6000)?;
            a.mov(rcx, qword_ptr(W + 0x6000))
        },
        vec![exception(14, Some(0x9))],
    );
    case!(
        "#PF execute-disable page",
        |a| {
            set_pte(a, 7, PHYS_CODE | P | RW | XD)?;
            invlpg(a, W + 0x7000)?;
            a.mov(rax, W + 0x7000)?;
            a.call(rax)
        },
        vec![exception(14, Some(0x11))],
    );
    case!(
        "executable page runs",
        |a| {
            set_pte(a, 7, PHYS_CODE | P | RW)?;
            invlpg(a, W + 0x7000)?;
            a.mov(rax, W + 0x7000)?;
            a.call(rax)?;
            a.mov(ecx, 1i32)
        },
        vec![no_exception(), gpr(1, 1)],
    );
    case!(
        "user read of a user page",
        |a| {
            set_pte(a, 8, PHYS_A | P | RW | US)?;
            invlpg(a, USER_ALIAS + W + 0x8000)?;
            enter_user(a)?;
            a.mov(rdx, USER_ALIAS + W + 0x8000)?;
            a.mov(rdx, qword_ptr(rdx))?;
            a.int(0x80)
        },
        vec![no_exception(), gpr(2, A_VAL)],
    );
    case!(
        "#PF user read of a supervisor page",
        |a| {
            set_pte(a, 9, PHYS_A | P | RW)?;
            invlpg(a, USER_ALIAS + W + 0x9000)?;
            enter_user(a)?;
            a.mov(rdx, USER_ALIAS + W + 0x9000)?;
            a.mov(rdx, qword_ptr(rdx))?;
            a.int(0x80)
        },
        vec![exception(14, Some(0x5))],
    );
    case!(
        "#PF user write to a read-only user page",
        |a| {
            set_pte(a, 10, PHYS_A | P | US)?;
            invlpg(a, USER_ALIAS + W + 0xa000)?;
            enter_user(a)?;
            a.mov(rdx, USER_ALIAS + W + 0xa000)?;
            a.mov(qword_ptr(rdx), rcx)?;
            a.int(0x80)
        },
        vec![exception(14, Some(0x7))],
    );
    case!(
        "#PF user read of a not-present page",
        |a| {
            set_pte(a, 11, 0)?;
            invlpg(a, USER_ALIAS + W + 0xb000)?;
            enter_user(a)?;
            a.mov(rdx, USER_ALIAS + W + 0xb000)?;
            a.mov(rdx, qword_ptr(rdx))?;
            a.int(0x80)
        },
        vec![exception(14, Some(0x4))],
    );
    case!(
        "#PF SMEP: supervisor fetch from a user page",
        |a| {
            set_pte(a, 12, PHYS_CODE | P | RW | US)?;
            invlpg(a, USER_ALIAS + W + 0xc000)?;
            a.mov(rax, cr4)?;
            a.bts(rax, 20i32)?;
            a.mov(cr4, rax)?;
            a.mov(rax, USER_ALIAS + W + 0xc000)?;
            a.call(rax)
        },
        vec![exception(14, Some(0x11))],
    );
    case!(
        "SMEP off again: the user page runs",
        |a| {
            a.mov(rax, cr4)?;
            a.btr(rax, 20i32)?;
            a.mov(cr4, rax)?;
            a.mov(rax, USER_ALIAS + W + 0xc000)?;
            a.call(rax)?;
            a.mov(ecx, 2i32)
        },
        vec![no_exception(), gpr(1, 2)],
    );
    case!(
        "#PF SMAP: supervisor read of a user page",
        move |a| {
            set_pte(a, 13, PHYS_A | P | RW | US)?;
            invlpg(a, USER_ALIAS + W + 0xd000)?;
            a.mov(rax, cr4)?;
            a.bts(rax, 21i32)?;
            a.mov(cr4, rax)?;
            clear_ac(a, caps.stac)?;
            a.mov(rax, USER_ALIAS + W + 0xd000)?;
            a.mov(rcx, qword_ptr(rax))
        },
        vec![exception(14, Some(0x1))],
    );
    case!(
        "SMAP with STAC allows the read",
        move |a| {
            set_ac(a, caps.stac)?;
            a.mov(rax, USER_ALIAS + W + 0xd000)?;
            a.mov(rcx, qword_ptr(rax))?;
            clear_ac(a, caps.stac)?;
            a.mov(rax, cr4)?;
            a.btr(rax, 21i32)?;
            a.mov(cr4, rax)
        },
        vec![no_exception(), gpr(1, A_VAL)],
    );
    if !caps.pku {
        return (p, t);
    }
    case!(
        "#PF protection key",
        |a| {
            set_pte(a, 14, PHYS_A | P | RW | US | (1 << 59))?;
            invlpg(a, USER_ALIAS + W + 0xe000)?;
            a.mov(rax, cr4)?;
            a.bts(rax, 22i32)?;
            a.mov(cr4, rax)?;
            a.mov(eax, 0b0100i32)?; // key 1: access disable
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.wrpkru()?;
            a.mov(rax, USER_ALIAS + W + 0xe000)?;
            a.mov(rcx, qword_ptr(rax))
        },
        vec![exception(14, Some(0x21))],
    );
    case!(
        "protection key cleared",
        |a| {
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)?;
            a.xor(edx, edx)?;
            a.wrpkru()?;
            a.rdpkru()?;
            a.mov(rsi, rax)?;
            a.mov(rax, USER_ALIAS + W + 0xe000)?;
            a.mov(rcx, qword_ptr(rax))?;
            a.mov(rax, cr4)?;
            a.btr(rax, 22i32)?;
            a.mov(cr4, rax)
        },
        vec![no_exception(), gpr(1, A_VAL), gpr(6, 0)],
    );
    (p, t)
}

type Table = Vec<(String, Vec<Check>)>;

#[test]
fn paging_suite() {
    let (p, t) = suite(Caps::NESTEMU);
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(&o, &t);
    // The walks happened in the modelled MMU.
    assert!(o.machine.mmu.counters().walks > 20);
}

/// The same suite on the host CPU through `/dev/kvm` (issue 3 asks for the
/// same results there). Skipped with a notice where `/dev/kvm` is missing.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn paging_suite_on_kvm() {
    let caps = Caps {
        pku: testsuites::kvm::cpuid(7, 0)[2] & (1 << 3) != 0,
        stac: false,
        gb_pages: testsuites::kvm::cpuid(0x8000_0001, 0)[3] & (1 << 26) != 0,
        stale_tlb: false,
    };
    let (p, t) = suite(caps);
    let o = match testsuites::kvm::run(&p, config()) {
        Ok(o) => o,
        Err(e) if e.contains("not available") => {
            eprintln!("notice: paging suite not run on KVM: {e}");
            return;
        }
        Err(e) => panic!("KVM run: {e}"),
    };
    if !caps.pku {
        eprintln!("notice: the host CPU lacks protection keys; those 2 cases ran on nestemu only");
    }
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    verify(&o, &t);
}
