//! Tests of the run loop's handling of block ends around events.

use super::{Machine, MachineConfig};
use mmu::SegReg;

/// A real-mode machine at 0:1000H running `code`, with `handler` at
/// 0:2000H as the handler of vector 3 (the IVT entry at 0CH).
fn real_mode(code: &[u8], handler: &[u8]) -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: 1 << 20,
        ..Default::default()
    });
    m.load_phys(0x1000, code);
    m.load_phys(0x2000, handler);
    // IVT entry 3: offset 2000H, segment 0.
    m.load_phys(0x0c, &[0x00, 0x20, 0x00, 0x00]);
    let cs = &mut m.cpu.sys.segs[SegReg::Cs as usize];
    cs.load_real(0);
    let ss = &mut m.cpu.sys.segs[SegReg::Ss as usize];
    ss.load_real(0);
    m.cpu.gpr[4] = 0x8000;
    m.cpu.rip = 0x1000;
    m.cpu.update_mode();
    m
}

/// An event ends the block that raised it, and the block it leads to runs
/// whole: after INT3 is delivered, the next slice runs the handler's four
/// instructions (three INCs and the JMP that ends the block), not only its
/// first (which a block-end mark left over from the delivery would cause).
#[test]
fn the_block_an_event_leads_to_runs_whole() {
    // int3; then the handler: inc ax; inc bx; inc cx; jmp $.
    let mut m = real_mode(&[0xcc], &[0x40, 0x43, 0x41, 0xeb, 0xfe]);
    assert!(m.run_slice().is_none());
    assert_eq!(m.cpu.rip, 0x2000, "INT3 delivered");
    let before = m.stats.instructions;
    assert!(m.run_slice().is_none());
    assert_eq!(
        m.stats.instructions - before,
        4,
        "the handler's block ran whole"
    );
    assert_eq!((m.cpu.gpr[0], m.cpu.gpr[3], m.cpu.gpr[1]), (1, 1, 1));
    assert_eq!(m.cpu.rip, 0x2003);
}
