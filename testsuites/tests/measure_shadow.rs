//! The demo's shadow-paging hypervisors are correct software TLBs (issue 6),
//! on AMD-V and on VT-x: an L2 guest that reads, writes, remaps a page and
//! invalidates it with INVLPG, then touches an unmapped page, sees the same
//! under shadow paging as under nested paging (NPT, EPT): the new mapping
//! after INVLPG, its accessed and dirty flags set, and its own #PF (error
//! code, CR2) for the unmapped page. The #PF reaches the guest while its IDT
//! and stack may be unshadowed: the exits during its delivery must not turn
//! it into a double fault. Under shadow paging the guest costs #PF and
//! INVLPG exits; under nested paging none.

use guestkit::svm::{log, L2_LOG};
use guestkit::{Asm, Label, Rt64};
use iced_x86::code_asm::*;
use nestemu::cli::measure::MeasureOptions;
use nestemu::demo::hv::{Paging, GREGS};
use nestemu::stats::Report;

const TABLES: u64 = 0x50_0000;
const PDPT: u64 = TABLES + 0x1000;
const PD0: u64 = TABLES + 0x2000;
const PD1: u64 = TABLES + 0x3000;
const PT1: u64 = TABLES + 0x4000;
/// Sixteen page tables identity-mapping the low 32 MiB (code, the kit's
/// tables, the L2 stacks, IDTs and event log).
const PT0: u64 = TABLES + 0x5000;
const IDENTITY_PAGES: u64 = 16 * 512;
const DATA_LA: u64 = 0x4000_0000;
const FRAME_A: u64 = 0x70_0000;
const FRAME_B: u64 = 0x71_0000;

/// 4-level tables with 4-KiB pages only: the low 32 MiB identity-mapped,
/// linear DATA_LA to FRAME_A, DATA_LA + 4 KiB not present. Markers in both
/// frames.
fn tables(a: &mut Asm) -> Result<(), IcedError> {
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, TABLES)?;
    a.mov(ecx, ((PT0 - TABLES) / 8 + IDENTITY_PAGES) as i32)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(TABLES), (PDPT | 3) as i32)?;
    a.mov(qword_ptr(PDPT), (PD0 | 3) as i32)?;
    for k in 0..IDENTITY_PAGES / 512 {
        a.mov(qword_ptr(PD0 + 8 * k), ((PT0 + 0x1000 * k) | 3) as i32)?;
    }
    a.mov(qword_ptr(PDPT + 8), (PD1 | 3) as i32)?;
    a.mov(qword_ptr(PD1), (PT1 | 3) as i32)?;
    a.mov(qword_ptr(PT1), (FRAME_A | 3) as i32)?;
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.mov(eax, ecx)?;
    a.shl(eax, 12i32)?;
    a.or(eax, 3i32)?;
    a.mov(qword_ptr(rcx * 8 + PT0 as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, IDENTITY_PAGES as i32)?;
    a.jb(lp.l)?;
    a.mov(qword_ptr(FRAME_A), 0x1111i32)?;
    a.mov(qword_ptr(FRAME_B), 0x2222i32)
}

/// R12 := the first read, R13 := what a write left, RSI := the read after
/// the remap and INVLPG; then a read of an unmapped page, whose #PF the L2
/// IDT reports to L1 (AMD-V: logged in L2_LOG, then VMMCALL; VT-x: VMCALL
/// with R15 = 0xE0E, R14 = the error code).
fn guest(a: &mut Asm, _rt: &Rt64) -> Result<Label, IcedError> {
    tables(a)?;
    let mut l2 = a.label();
    let mut over = a.label();
    a.jmp(over.l)?;
    a.set(&mut l2)?;
    a.mov(eax, DATA_LA as i32)?;
    a.mov(r12, qword_ptr(rax))?;
    a.mov(qword_ptr(rax), 0x3333i32)?;
    a.mov(r13, qword_ptr(rax))?;
    a.mov(qword_ptr(PT1), (FRAME_B | 3) as i32)?;
    a.invlpg(byte_ptr(rax))?;
    a.mov(rsi, qword_ptr(rax))?;
    a.mov(qword_ptr((L2_LOG + log::RESUME) as u32 as u64), 0i32)?;
    a.mov(r15, qword_ptr(rax + 0x1000))?;
    a.hlt()?;
    a.set(&mut over)?;
    Ok(l2)
}

fn run(cpu: &str, paging: Paging) -> testsuites::Outcome {
    let cfg = nestemu::demo::config(cpu, &MeasureOptions::default()).unwrap();
    let program = match cpu {
        "amd" => nestemu::demo::svm::hypervisor_for(paging, TABLES, guest),
        _ => nestemu::demo::vmx::hypervisor_for(paging, TABLES, guest),
    };
    let o = testsuites::run(&program, cfg);
    assert!(o.passed(), "{cpu} {paging:?}: {:?}\n{}", o.stop, o.serial);
    o
}

fn peek(o: &testsuites::Outcome, pa: u64) -> u64 {
    let mut b = [0u8; 8];
    o.machine.peek_phys(pa, &mut b);
    u64::from_le_bytes(b)
}

#[test]
fn shadow_paging_behaves_as_nested_paging_does() {
    for cpu in ["amd", "intel"] {
        for paging in [Paging::Nested, Paging::Shadow] {
            let o = run(cpu, paging);
            let what = format!("{cpu} {paging:?}");
            assert_eq!(peek(&o, GREGS + 12 * 8), 0x1111, "{what}: first read");
            assert_eq!(peek(&o, GREGS + 13 * 8), 0x3333, "{what}: the write");
            assert_eq!(
                peek(&o, GREGS + 6 * 8),
                0x2222,
                "{what}: after the remap and INVLPG the new frame"
            );
            assert_eq!(peek(&o, FRAME_A), 0x3333);
            assert_eq!(peek(&o, PT1) & !0xfff, FRAME_B);
            // The guest's own #PF: not present, read, supervisor.
            if cpu == "amd" {
                assert_eq!(peek(&o, L2_LOG + log::VECTOR), 15, "{what}: #PF taken");
                assert_eq!(peek(&o, L2_LOG + log::CR2), DATA_LA + 0x1000);
                assert_eq!(peek(&o, L2_LOG + log::ERROR), 0);
            } else {
                assert_eq!(peek(&o, GREGS + 15 * 8), 0xe0e, "{what}: #PF taken");
                assert_eq!(peek(&o, GREGS + 14 * 8), 0, "{what}: error code");
                assert_eq!(o.machine.cpu.sys.cr2, DATA_LA + 0x1000, "{what}: CR2");
            }
            let report = Report::of(&o.machine, 1, String::new());
            let exits = &report.vmexits.by_reason;
            let (pf, invlpg) = if cpu == "amd" {
                ("VMEXIT_EXCP14", "VMEXIT_INVLPG")
            } else {
                ("Exception or non-maskable interrupt (NMI)", "INVLPG")
            };
            match paging {
                Paging::Nested => {
                    assert!(!exits.contains_key(pf), "{what}: {exits:?}");
                    assert!(report.levels.l2.total.walks.nested_refs > 0);
                }
                Paging::Shadow => {
                    // Read, write (dirty), refill after INVLPG, code, stack,
                    // IDT pages, and the guest's own fault.
                    assert!(exits[pf] >= 4, "{what}: {exits:?}");
                    assert_eq!(exits[invlpg], 1, "{what}: {exits:?}");
                    assert_eq!(report.levels.l2.total.walks.nested_refs, 0);
                }
            }
        }
    }
}

#[test]
fn the_shadow_fill_sets_the_guests_accessed_and_dirty_flags() {
    // As the processor does in the guest's own tables under nested paging:
    // the pages the guest touched (code, stack, the log it wrote, its page
    // table) have A set, the written ones D too; untouched ones neither.
    for cpu in ["amd", "intel"] {
        for paging in [Paging::Nested, Paging::Shadow] {
            let o = run(cpu, paging);
            let entries: Vec<u64> = (0..IDENTITY_PAGES).map(|i| peek(&o, PT0 + 8 * i)).collect();
            let accessed = entries.iter().filter(|e| *e & 0x20 != 0).count();
            let dirty = entries.iter().filter(|e| *e & 0x40 != 0).count();
            assert!(
                (3..100).contains(&accessed),
                "{cpu} {paging:?}: {accessed} accessed"
            );
            assert!((2..100).contains(&dirty), "{cpu} {paging:?}: {dirty} dirty");
            let log_page = entries[(L2_LOG >> 12) as usize];
            assert_eq!(
                log_page & 0x60,
                0x60,
                "{cpu} {paging:?}: the log page was written"
            );
            let pt_page = entries[(PT1 >> 12) as usize];
            assert_eq!(
                pt_page & 0x60,
                0x60,
                "{cpu} {paging:?}: the page table was written"
            );
        }
    }
}
