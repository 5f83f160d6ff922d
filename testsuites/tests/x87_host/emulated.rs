//! The emulated side: the same bytes run in the interpreter, in flat 32-bit protected mode.

use super::*;

pub(super) const CODE: u64 = 0x1000;
pub(super) const IN: u64 = 0x2000;
pub(super) const OUT: u64 = 0x3000;
pub(super) const MEM: u64 = 0x4000;
pub(super) const GDT: u64 = 0x500;
pub(super) const IDT: u64 = 0x800;
pub(super) const STUBS: u64 = 0x5000;
/// Where an exception stub records its vector (0xffff_ffff: none).
pub(super) const TRAPPED: u64 = 0x6000;

pub(super) fn machine() -> Machine {
    let mut m = Machine::new(MachineConfig {
        mem_bytes: 1 << 20,
        max_insns: None,
        ..Default::default()
    });
    protected_flat(&mut m);
    m
}

/// Flat 32-bit protected mode with a GDT and an IDT whose handlers record
/// the vector at [`TRAPPED`] and halt.
pub(super) fn protected_flat(m: &mut Machine) {
    let gdt: [u64; 3] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
    let bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
    m.load_phys(GDT, &bytes);
    let mut idt = Vec::new();
    let mut stubs = Vec::new();
    for v in 0..256u64 {
        let off = STUBS + 16 * v;
        let d = (off & 0xffff) | 0x08 << 16 | 0x8e << 40 | ((off >> 16) & 0xffff) << 48;
        idt.extend_from_slice(&d.to_le_bytes());
        // mov byte [TRAPPED], v; pop dword [TRAPPED + 4]; hlt (the error
        // code or EIP: enough to tell what faulted)
        let mut stub = vec![0xc6, 0x05];
        stub.extend_from_slice(&(TRAPPED as u32).to_le_bytes());
        stub.push(v as u8);
        stub.extend_from_slice(&[0x8f, 0x05]);
        stub.extend_from_slice(&(TRAPPED as u32 + 4).to_le_bytes());
        stub.push(0xf4);
        stub.resize(16, 0xcc);
        stubs.extend_from_slice(&stub);
    }
    m.load_phys(IDT, &idt);
    m.load_phys(STUBS, &stubs);
    m.cpu.sys.gdtr = mmu::TableRegister {
        base: GDT,
        limit: 23,
    };
    m.cpu.sys.idtr = mmu::TableRegister {
        base: IDT,
        limit: 0x7ff,
    };
    m.cpu.sys.cr0 = Cr0::PE | Cr0::NE | Cr0::ET | Cr0::MP;
    m.cpu.sys.cr4 = Cr4::OSFXSR;
    m.cpu.sys.segs[SegReg::Cs as usize] = SegmentCache::flat(0x08, 0xb, 0, true, false);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        m.cpu.sys.segs[s as usize] = SegmentCache::flat(0x10, 0x3, 0, true, false);
    }
    m.cpu.update_mode();
}

/// Runs `insn` in the interpreter the same way.
pub(super) fn emulate(
    m: &mut Machine,
    insn: &[u8],
    input: &[u8; 108],
    mem: &mut Mem,
    flags: u64,
) -> Run {
    let mut code = Vec::new();
    code.extend_from_slice(&AX_IN);
    code.extend_from_slice(&[0xdd, 0x27]); // frstor [edi]
    code.extend_from_slice(insn);
    code.extend_from_slice(&AX_OUT);
    code.extend_from_slice(&[0xdd, 0x32]); // fnsave [edx]
    code.push(0xf4); // hlt
    m.load_phys(CODE, &code);
    m.load_phys(IN, input);
    m.load_phys(MEM, &mem.0);
    m.cpu.fpu = Default::default();
    m.cpu.rip = CODE;
    m.cpu.gpr[7] = IN; // edi
    m.cpu.gpr[6] = MEM; // esi
    m.cpu.gpr[2] = OUT; // edx
    m.cpu.gpr[4] = 0x8000; // esp
    m.cpu.flags.set(flags);
    m.cpu.events.halted = false;
    m.load_phys(TRAPPED, &u32::MAX.to_le_bytes());
    let stop = m.run();
    assert_eq!(stop, Stop::HaltForever, "emulated run stopped: {stop:?}");
    let mut v = [0u8; 8];
    m.peek_phys(TRAPPED, &mut v);
    let vector = u32::from_le_bytes(v[..4].try_into().expect("4"));
    let at = u32::from_le_bytes(v[4..].try_into().expect("4"));
    assert_eq!(
        vector,
        u32::MAX,
        "exception {}, pushed {at:#x}, code {:02x?}",
        vector & 0xff,
        &code
    );
    let mut out = [0u8; 108];
    m.peek_phys(OUT, &mut out);
    m.peek_phys(MEM, &mut mem.0);
    Run {
        image: out,
        rflags: m.cpu.flags.get(),
        insn_at: CODE as u32 + 6,
        mem_at: MEM as u32,
    }
}
