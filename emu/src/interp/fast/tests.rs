//! Differential tests: every pre-resolved operation against its generic
//! handler. Random instruction bytes (biased towards the opcodes the fast
//! path covers) are decoded; the ones [`compile`] specializes run in
//! sequence on two identical machines, one through `Op::exec`, one through
//! the handler, and after each instruction the outcome (event or not),
//! every register including the lazy flag record, the next RIP, the
//! counters of the modelled TLB and, at the end, all of RAM must agree.
//! 64-bit mode runs with 4-level paging (so the page cache serves repeated
//! accesses, and read-only, absent and code pages fault or take the slow
//! path); 32-bit and 16-bit protected modes run unpaged.

use super::{compile, Op};
use crate::interp::cache::{Block, DecodedInsn};
use crate::machine::{Machine, MachineConfig};
use iced_x86::{Decoder, DecoderOptions};
use mmu::{Cr0, Cr4, Efer, SegReg, SegmentCache};
use proptest::prelude::*;

const RAM: u64 = 8 << 20;
/// Page-table pages: PML4, PDPT, PD, two PTs (0-4 MiB in 4-KiB pages).
const PML4: u64 = 0x1000;
/// A read-only page, an absent page, a page holding decoded code.
const RO_PAGE: u64 = 0x30_0000;
const ABSENT_PAGE: u64 = 0x30_1000;
const CODE_PAGE: u64 = 0x20_1000;

/// A machine in `bits`-bit mode; 64-bit mode with paging. Registers from
/// `regs`, RAM filled from `fill`.
fn machine(bits: u32, user: bool, regs: &[u64; 16], flags: u64, fill: u64) -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: RAM,
        ..Default::default()
    });
    // Deterministic RAM contents.
    let mut x = fill | 1;
    let mut data = vec![0u8; 0x40_0000];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    m.load_phys(0, &data);
    let sys = &mut m.cpu.sys;
    sys.cr0 = Cr0::PE | Cr0::ET | Cr0::NE | Cr0::AM;
    match bits {
        64 => {
            // Identity map of 0-4 MiB in 4-KiB pages, 4 MiB-1 GiB in 2-MiB
            // pages (RAM ends at 8 MiB: the rest reads as unclaimed MMIO).
            let w = |m: &mut Machine, pa: u64, v: u64| m.load_phys(pa, &v.to_le_bytes());
            w(&mut m, PML4, 0x2000 | 7);
            w(&mut m, 0x2000, 0x3000 | 7);
            for pt in 0..2u64 {
                w(&mut m, 0x3000 + pt * 8, (0x4000 + pt * 0x1000) | 7);
            }
            for pde in 2..512u64 {
                w(&mut m, 0x3000 + pde * 8, (pde << 21) | 0x87);
            }
            for page in 0..1024u64 {
                let pa = page << 12;
                let flags = match pa {
                    RO_PAGE => 5,
                    ABSENT_PAGE => 0,
                    _ => 7,
                };
                w(&mut m, 0x4000 + page * 8, pa | flags);
            }
            let sys = &mut m.cpu.sys;
            sys.cr0 |= Cr0::PG | Cr0::WP;
            sys.cr3 = PML4;
            sys.cr4 = Cr4::PAE;
            sys.efer = Efer::LME | Efer::LMA;
            sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, false, true);
        }
        32 => {
            sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, true, false);
        }
        _ => {
            sys.segs[SegReg::Cs as usize] = SegmentCache::flat(8, 0xb, 0, false, false);
        }
    }
    let stack32 = bits != 16;
    let sys = &mut m.cpu.sys;
    let dpl = if user { 3 } else { 0 };
    let cs = &mut sys.segs[SegReg::Cs as usize];
    *cs = SegmentCache::flat(8 | dpl as u16, 0xb, dpl, cs.attr.db(), cs.attr.l());
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        sys.segs[s as usize] = SegmentCache::flat(0x10 | dpl as u16, 0x3, dpl, stack32, false);
    }
    m.cpu.gpr = *regs;
    // Status flags, DF and AC (with CR0.AM, user accesses are checked).
    m.cpu.flags.set(flags & 0x4_08d5);
    m.cpu.update_mode();
    m.paging_changed();
    // A block on CODE_PAGE: writes there take the reference path and drop it.
    let d = DecodedInsn {
        handler: crate::interp::data::nop,
        insn: iced_x86::Instruction::default(),
        cost: 1,
    };
    m.code.insert(Block {
        ops: vec![Op::generic(d)],
        start_pa: CODE_PAGE + 0x10,
        bits: 64,
    });
    m
}

/// Opcode starts the fast path covers (with some prefixes).
const STARTS: &[&[u8]] = &[
    &[],
    &[0x48],
    &[0x49],
    &[0x4c],
    &[0x4d],
    &[0x66],
    &[0x41],
    &[0x0f],
    &[0x48, 0x0f],
    &[0x66, 0x0f],
    &[0x44, 0x0f],
    &[0x67],
    &[0x2e],
    &[0x64],
];

const OPCODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0a, 0x0b, 0x0d, 0x10, 0x11, 0x13, 0x18, 0x19,
    0x1b, 0x20, 0x21, 0x23, 0x25, 0x28, 0x29, 0x2b, 0x2d, 0x30, 0x31, 0x33, 0x35, 0x38, 0x39, 0x3a,
    0x3b, 0x3d, 0x50, 0x53, 0x55, 0x58, 0x5b, 0x5d, 0x63, 0x68, 0x69, 0x6a, 0x6b, 0x70, 0x72, 0x74,
    0x75, 0x7c, 0x7f, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0x90,
    0x91, 0x93, 0xa8, 0xa9, 0xb0, 0xb3, 0xb8, 0xbb, 0xc0, 0xc1, 0xc2, 0xc3, 0xc6, 0xc7, 0xd0, 0xd1,
    0xd2, 0xd3, 0xe8, 0xe9, 0xeb, 0xf6, 0xf7, 0xfe, 0xff,
    // After 0x0f: CMOVcc, Jcc rel32, SETcc, IMUL, MOVZX, MOVSX.
    0x40, 0x44, 0x4c, 0x84, 0x85, 0x8f, 0x94, 0x95, 0x9c, 0xaf, 0xb6, 0xb7, 0xbe, 0xbf,
];

#[derive(Clone, Debug)]
struct Case {
    bits: u32,
    user: bool,
    regs: [u64; 16],
    flags: u64,
    fill: u64,
    insns: Vec<(usize, usize, bool, [u8; 13])>,
    /// Times the sequence runs (a loop body: the page cache then serves
    /// the repeated accesses).
    repeat: usize,
}

/// Register values: mostly addresses in the mapped data area, some small,
/// some arbitrary.
fn reg() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0x20_0000u64..0x20_3000,
        1 => 0x30_0000u64..0x30_2000,
        1 => 0x20_0000u64..0x30_2000,
        2 => 0u64..0x100,
        1 => any::<u64>(),
        1 => (0x20_0000u64..0x30_2000).prop_map(|v| v | 0xffff_ffff_0000_0000),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let insn = (
        0..STARTS.len(),
        0..OPCODES.len(),
        any::<bool>(),
        proptest::array::uniform13(any::<u8>()),
    );
    (
        prop_oneof![4 => Just(64u32), 1 => Just(32u32), 1 => Just(16u32)],
        prop_oneof![3 => Just(false), 1 => Just(true)],
        proptest::array::uniform16(reg()),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(insn, 1..48),
        prop_oneof![Just(1usize), Just(8usize)],
    )
        .prop_map(|(bits, user, mut regs, flags, fill, mut insns, repeat)| {
            if repeat > 1 {
                insns.truncate(6);
            }
            // A stack in the mapped area.
            regs[4] = 0x28_0000 + (regs[4] & 0xff8);
            Case {
                bits,
                user,
                regs,
                flags,
                fill,
                insns,
                repeat,
            }
        })
}

/// The observable state of a machine after one step.
fn state(m: &Machine) -> String {
    format!(
        "{:?} next_rip={:#x} stop_block={} {:?} {:?} {:?} insns={} cycles={}",
        m.cpu,
        m.next_rip,
        m.stop_block,
        m.mmu.counters(),
        m.dev.unclaimed,
        m.dbg.pending,
        m.stats.instructions,
        m.stats.cycles,
    )
}

fn run_case(c: &Case) -> Result<usize, TestCaseError> {
    let mut fast = machine(c.bits, c.user, &c.regs, c.flags, c.fill);
    let mut slow = machine(c.bits, c.user, &c.regs, c.flags, c.fill);
    let mut specialized = 0;
    let rip = 0x20_0800u64;
    let steps = c.insns.iter().cycle().take(c.insns.len() * c.repeat);
    for (start, opcode, near, tail) in steps {
        let mut bytes = STARTS[*start].to_vec();
        bytes.push(OPCODES[*opcode]);
        let mut tail = *tail;
        if *near && tail[0] & 7 != 4 {
            // A ModRM of [register + disp8]: an address near a register's.
            tail[0] = 0x40 | (tail[0] & 0x3f);
        }
        bytes.extend_from_slice(&tail);
        let mut dec = Decoder::with_ip(c.bits, &bytes, rip, DecoderOptions::NONE);
        let insn = dec.decode();
        if insn.is_invalid() {
            continue;
        }
        let d = fast.decoded(insn);
        let op = compile(d);
        if !op.is_specialized() {
            continue;
        }
        specialized += 1;
        for m in [&mut fast, &mut slow] {
            m.cpu.rip = rip;
            m.next_rip = rip.wrapping_add(op.len as u64) & crate::machine::ip_mask(c.bits as u8);
        }
        let a = op.run(&mut fast);
        let b = (op.handler)(&mut slow, &op.insn);
        prop_assert_eq!(&a, &b, "{} ({:02x?})", insn, bytes);
        prop_assert_eq!(state(&fast), state(&slow), "{} ({:02x?})", insn, bytes);
    }
    prop_assert!(fast.ram.as_slice() == slow.ram.as_slice(), "RAM differs");
    prop_assert_eq!(fast.code.invalidated_blocks, slow.code.invalidated_blocks);
    Ok(specialized)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Pre-resolved operations do exactly what their handlers do.
    #[test]
    fn fast_ops_equal_handlers(c in case()) {
        run_case(&c)?;
    }
}

/// The generator reaches the fast path often enough to mean something.
#[test]
fn generator_covers_the_fast_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = 0;
    for _ in 0..64 {
        let c = case().new_tree(&mut runner).unwrap().current();
        total += run_case(&c).unwrap();
    }
    eprintln!("specialized: {total}");
    assert!(total > 500, "only {total} specialized instructions");
}

/// A page that becomes a code page after the page cache learned it as
/// writable: the next write still drops the page's blocks.
#[test]
fn writes_to_new_code_pages_invalidate() {
    let mut regs = [0u64; 16];
    regs[3] = 0x20_2100;
    regs[4] = 0x28_0000;
    let mut m = machine(64, false, &regs, 0, 5);
    // mov [rbx], rax
    let bytes = [0x48u8, 0x89, 0x03];
    let insn = Decoder::with_ip(64, &bytes, 0x20_0800, DecoderOptions::NONE).decode();
    let op = compile(m.decoded(insn));
    assert!(op.is_specialized());
    let step = |m: &mut Machine| {
        m.next_rip = 0x20_0803;
        op.run(m).unwrap();
    };
    step(&mut m);
    step(&mut m);
    let hits = m.mmu.counters().dtlb.l1_hits;
    assert!(hits >= 1, "the second write hit");
    let d = DecodedInsn {
        handler: crate::interp::data::nop,
        insn: iced_x86::Instruction::default(),
        cost: 1,
    };
    m.code.insert(Block {
        ops: vec![Op::generic(d)],
        start_pa: 0x20_2000,
        bits: 64,
    });
    let before = m.code.invalidated_blocks;
    step(&mut m);
    assert_eq!(m.code.invalidated_blocks, before + 1);
    assert!(m.stop_block);
}

/// A fusable head: prefix, opcode, ModRM register form, immediate.
fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(vec![]),
        Just(vec![0x48]),
        Just(vec![0x49]),
        Just(vec![0x4d]),
        Just(vec![0x41])
    ];
    let opcode = prop_oneof![
        Just((0xffu8, 0u8)),
        Just((0x01, 0)),
        Just((0x29, 0)),
        Just((0x39, 0)),
        Just((0x85, 0)),
        Just((0x21, 0)),
        Just((0x09, 0)),
        Just((0x31, 0)),
        Just((0x83, 1)),
        Just((0xf7, 4)),
    ];
    (prefix, opcode, any::<u8>(), any::<[u8; 4]>()).prop_map(|(mut b, (opc, imm), modrm, i)| {
        let modrm = 0xc0 | (modrm & 0x3f);
        // FF: INC (/0) or DEC (/1); F7: TEST (/0).
        let modrm = match opc {
            0xff => modrm & 0xcf,
            0xf7 => modrm & 0xc7,
            // Not ADC (/2) or SBB (/3), which are not fused.
            0x83 if matches!((modrm >> 3) & 7, 2 | 3) => modrm & 0xe7,
            _ => modrm,
        };
        b.extend([opc, modrm]);
        b.extend_from_slice(&i[..imm as usize]);
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    /// A fused pair does what its two operations do one after the other;
    /// one whose branch would fault declines, having changed nothing.
    #[test]
    fn fused_pairs_equal_their_operations(
        bits in prop_oneof![3 => Just(64u32), 1 => Just(32u32)],
        regs in proptest::array::uniform16(reg()),
        flags: u64,
        head in head_bytes(),
        cc in 0u8..16,
        rel: i8,
        near_edge: bool,
    ) {
        let mut bytes = head;
        let jcc_at = bytes.len();
        bytes.extend([0x70 + cc, rel as u8]);
        let rip = match (bits, near_edge) {
            (64, true) => 0x0000_7fff_ffff_ff80u64,
            (32, true) => 0xffff_ff80,
            _ => 0x20_0800,
        };
        let mut fast = machine(bits, false, &regs, flags, 1);
        let mut slow = machine(bits, false, &regs, flags, 1);
        let mut dec = Decoder::with_ip(bits, &bytes, rip, DecoderOptions::NONE);
        let x = dec.decode();
        let j = dec.decode();
        prop_assume!(!x.is_invalid() && !j.is_invalid() && x.len() == jcc_at);
        let (x, j) = (compile(fast.decoded(x)), compile(fast.decoded(j)));
        let fused = super::fused::fuse(&x, &j);
        prop_assert!(fused.is_some(), "{:02x?} not fused", bytes);
        let fused = fused.unwrap();
        let mask = crate::machine::ip_mask(bits as u8);
        let pair_next = (rip + bytes.len() as u64) & mask;
        fast.cpu.rip = rip;
        fast.next_rip = pair_next;
        let before = state(&fast);
        let r = (fused.exec)(&mut fast, &fused);
        if r.is_err() && fast.raised.is_none() {
            // Declined: nothing changed, and the Jcc would fault if taken
            // (the run loop then runs the pair unfused).
            prop_assert_eq!(state(&fast), before);
            let target = j.imm.wrapping_add(pair_next) & j.amask;
            prop_assert!(!slow.near_target_ok(target), "{:02x?}: declined a good target", bytes);
            return Ok(());
        }
        prop_assert!(r.is_ok());
        for (op, at) in [(&x, rip), (&j, rip + x.len as u64)] {
            slow.cpu.rip = at;
            slow.next_rip = (at + op.len as u64) & mask;
            let h = (op.handler)(&mut slow, &op.insn);
            prop_assert!(h.is_ok());
        }
        slow.cpu.rip = rip;
        prop_assert_eq!(state(&fast), state(&slow), "{:02x?}", bytes);
        prop_assert_eq!(fused.len as usize, bytes.len());
        prop_assert_eq!(fused.cost, x.cost + j.cost);
    }
}

/// A fused DEC/JNZ whose branch leaves the CS limit declines, and the
/// block then runs its pair unfused: the Jcc faults where the generic
/// handlers fault, and the run ends as a run of the generic handlers.
#[test]
fn declined_pair_runs_unfused() {
    let run = |specialize: bool| {
        let mut m = machine(32, false, &[0; 16], 0, 3);
        m.code.specialize = specialize;
        m.cpu.sys.segs[SegReg::Cs as usize].limit = 0x1fff;
        // mov ecx, 3; L: add eax, ecx; dec ecx; jnz +0x7f (past the limit)
        let code = [
            0xb9, 3, 0, 0, 0, 0x01, 0xc8, 0x49, 0x0f, 0x85, 0x00, 0x10, 0, 0,
        ];
        m.load_phys(0x1f00, &code);
        m.cpu.rip = 0x1f00;
        let mut stop = None;
        for _ in 0..16 {
            stop = m.run_slice();
            if stop.is_some() {
                break;
            }
        }
        (format!("{stop:?}"), state(&m), m.cpu.gpr[0], m.stats.cycles)
    };
    let fast = run(true);
    let reference = run(false);
    assert_eq!(fast, reference);
    assert_eq!(fast.2, 3, "one ADD ran before the Jcc faulted");
}
