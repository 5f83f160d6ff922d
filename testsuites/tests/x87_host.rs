//! Hardware-differential tests of the x87 FPU: the same instruction bytes run
//! natively on the host CPU and in the interpreter, from the same FRSTOR
//! image, and the FNSAVE images, memory operand and EFLAGS afterwards must
//! agree.
//!
//! The native side writes `FNSAVE host; POPFQ; FRSTOR in; <insn>; FNSAVE out;
//! PUSHFQ; FRSTOR host; RET` (MXCSR saved and restored around it) into an
//! executable page; the memory operand of `<insn>` is `[rsi]`, which encodes
//! the same as `[esi]` in the interpreter's 32-bit protected mode. Initial
//! states never have a pending unmasked exception, so the waiting
//! instruction under test cannot fault.
//!
//! Everything is compared except what legitimately differs: the instruction
//! and data pointers are compared as "points at the instruction / operand"
//! (addresses and selectors differ between the two machines), FOP only when
//! both sides recorded an unmasked exception (current Intel processors store
//! FOP only then, SDM Vol. 1 8.1.9), and [`known_difference`] lists where the
//! host, an AMD processor, departs from what the SDM specifies.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]
#![allow(unsafe_code)]

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
use mmu::{Cr0, Cr4, SegReg, SegmentCache};
use nestemu::{Machine, MachineConfig, Stop};

/// The memory operand: 1 KiB, 16-byte aligned (FXSAVE).
#[repr(C, align(16))]
#[derive(Clone, Copy, PartialEq, Eq)]
struct Mem([u8; 1024]);

/// What one run produced.
struct Run {
    /// The FNSAVE image after the instruction.
    image: [u8; 108],
    /// RFLAGS after the instruction.
    rflags: u64,
    /// Where the instruction was (offset FIP must record).
    insn_at: u32,
    /// Where the memory operand was (offset FDP must record).
    mem_at: u32,
}

// ---------------------------------------------------------------- native

/// An executable page (RWX), mapped once per test, and the memory operand
/// buffer (at a fixed address, so repeated runs record the same FDP).
struct ExecPage {
    ptr: *mut u8,
    mem: std::cell::RefCell<Box<Mem>>,
}

const PAGE: usize = 4096;
/// Offset of the instruction under test in the native stub.
const NATIVE_AT: usize = 15;
/// `mov ax, 1234h`, then after the instruction `mov [rsi+3e8h], ax`: AX
/// (FNSTSW AX) lands in the compared memory. Same bytes in both modes.
const AX_IN: [u8; 4] = [0x66, 0xb8, 0x34, 0x12];
const AX_OUT: [u8; 7] = [0x66, 0x89, 0x86, 0xe8, 0x03, 0x00, 0x00];

impl ExecPage {
    fn new() -> Self {
        let ret: isize;
        // SAFETY: mmap(NULL, 4096, PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS,
        // -1, 0) through the raw Linux x86-64 system call; no memory is
        // touched by the call itself.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") 9isize => ret,
                in("rdi") 0usize,
                in("rsi") PAGE,
                in("rdx") 7usize,
                in("r10") 0x22usize,
                in("r8") -1isize,
                in("r9") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        assert!(ret > 0 && ret % PAGE as isize == 0, "mmap failed: {ret}");
        Self {
            ptr: ret as *mut u8,
            mem: std::cell::RefCell::new(Box::new(Mem([0; 1024]))),
        }
    }

    /// Runs `insn` with a copy of `mem` as its operand: the run and the
    /// operand afterwards.
    fn run_with(&self, insn: &[u8], input: &[u8; 108], mem: &Mem, flags: u64) -> (Run, Mem) {
        let mut buf = self.mem.borrow_mut();
        **buf = *mem;
        let r = self.run(insn, input, &mut buf, flags);
        (r, **buf)
    }

    /// Runs `insn` natively.
    fn run(&self, insn: &[u8], input: &[u8; 108], mem: &mut Mem, flags: u64) -> Run {
        let mut code = Vec::with_capacity(64);
        code.extend_from_slice(&[0xdd, 0x31]); // fnsave [rcx]
        code.extend_from_slice(&[0x0f, 0xae, 0x59, 0x6c]); // stmxcsr [rcx+108]
        code.extend_from_slice(&[0x41, 0x50, 0x9d]); // push r8; popfq
        code.extend_from_slice(&AX_IN);
        code.extend_from_slice(&[0xdd, 0x27]); // frstor [rdi]
        assert_eq!(code.len(), NATIVE_AT);
        code.extend_from_slice(insn);
        code.extend_from_slice(&AX_OUT);
        code.extend_from_slice(&[0xdd, 0x32]); // fnsave [rdx]
        code.extend_from_slice(&[0x9c, 0x58]); // pushfq; pop rax
        code.extend_from_slice(&[0xdd, 0x21]); // frstor [rcx]
        code.extend_from_slice(&[0x0f, 0xae, 0x51, 0x6c]); // ldmxcsr [rcx+108]
        code.push(0xc3); // ret
                         // SAFETY: the page is ours, writable and larger than the stub; it is
                         // only executed by the call below on this thread.
        unsafe {
            core::ptr::copy_nonoverlapping(code.as_ptr(), self.ptr, code.len());
        }
        let mut out = [0u8; 108];
        let mut host = [0u8; 112];
        type Stub = unsafe extern "sysv64" fn(*const u8, *mut u8, *mut u8, *mut u8, u64) -> u64;
        // SAFETY: the page holds the stub just written; it follows the SysV
        // ABI (it clobbers RAX and the caller-saved XMM registers, and saves
        // and restores the x87 state and MXCSR), and touches only the buffers
        // passed in: 108-byte images, the 112-byte host save area and the
        // 1-KiB memory operand.
        let rflags = unsafe {
            let f: Stub = core::mem::transmute(self.ptr);
            f(
                input.as_ptr(),
                mem.0.as_mut_ptr(),
                out.as_mut_ptr(),
                host.as_mut_ptr(),
                flags,
            )
        };
        Run {
            image: out,
            rflags,
            insn_at: self.ptr as u64 as u32 + NATIVE_AT as u32,
            mem_at: mem.0.as_ptr() as u64 as u32,
        }
    }
}

// ---------------------------------------------------------------- emulated

const CODE: u64 = 0x1000;
const IN: u64 = 0x2000;
const OUT: u64 = 0x3000;
const MEM: u64 = 0x4000;
const GDT: u64 = 0x500;
const IDT: u64 = 0x800;
const STUBS: u64 = 0x5000;
/// Where an exception stub records its vector (0xffff_ffff: none).
const TRAPPED: u64 = 0x6000;

fn machine() -> Machine {
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
fn protected_flat(m: &mut Machine) {
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
fn emulate(m: &mut Machine, insn: &[u8], input: &[u8; 108], mem: &mut Mem, flags: u64) -> Run {
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

// ---------------------------------------------------------------- inputs

/// xorshift64*: a fixed-seed generator so every run tests the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_cent: u64) -> bool {
        self.below(100) < per_cent
    }
}

/// An 80-bit value from the interesting classes.
fn value(r: &mut Rng) -> (u64, u16) {
    let sign = (r.below(2) as u16) << 15;
    let j = 1u64 << 63;
    let sig = match r.below(6) {
        0 => j,
        1 => j | (r.next() >> 1),
        2 => j | (r.next() >> r.below(64)) & !1,
        3 => u64::MAX,
        4 => j | (r.next() >> 1) & 0xffff_ff00_0000_0000 | (r.below(4) << 38),
        _ => j | (r.next() >> 1) & !0x7ff | (r.below(8) << 9),
    };
    let near = |r: &mut Rng, c: i64, w: i64| (c + r.below(2 * w as u64 + 1) as i64 - w) as u16;
    match r.below(40) {
        0 => (0, sign),
        1 => (j, sign | 0x7fff),                           // infinity
        2 => (j | 1 << 62 | r.next() >> 2, sign | 0x7fff), // QNaN
        3 => (j | (r.next() >> 2).max(1), sign | 0x7fff),  // SNaN
        4 => (0xc000_0000_0000_0000, 0xffff),              // indefinite
        5 => (r.next() >> 1 >> r.below(63), sign),         // denormal
        6 => (j | r.next() >> 1, sign),                    // pseudo-denormal
        7 => (r.next() >> 1, sign | (1 + r.below(0x7ffe)) as u16), // unnormal
        8 => (r.next() >> 1, sign | 0x7fff),               // pseudo-NaN/-infinity
        9 => (sig, sign | near(r, 1, 2)),
        10 => (sig, sign | near(r, 0x7ffe, 2)),
        11 => (sig, sign | near(r, 0x3fff - 16382 + 64, 70).max(1)),
        12 => (sig, sign | near(r, 0x3fff + 16383 - 64, 70).min(0x7ffe)),
        13..=15 => (sig, sign | near(r, 0x3fff - 126, 30)),
        16..=17 => (sig, sign | near(r, 0x3fff - 1022, 60)),
        18..=19 => (sig, sign | near(r, 0x3fff + 1023, 4)),
        20 => (sig, sign | near(r, 0x3fff + 127, 4)),
        21..=24 => {
            // A small integer or an integer-and-a-half.
            let bits = r.below(20);
            let n = r.below(1 << bits).max(1);
            let lz = n.leading_zeros();
            let half = if r.chance(30) {
                1u64 << (62 - (63 - lz))
            } else {
                0
            };
            ((n << lz) | half, sign | (0x3fff + 63 - lz) as u16)
        }
        25..=27 => (sig, sign | near(r, 0x3fff + 62, 3)),
        _ => (sig, sign | near(r, 0x3fff, 64)),
    }
}

/// A random FRSTOR image (32-bit protected layout) with no pending unmasked
/// exception.
fn state(r: &mut Rng, full_stack: bool) -> [u8; 108] {
    let mut b = [0u8; 108];
    let masks = if r.chance(75) {
        0x3f
    } else {
        r.below(64) as u16
    };
    let pc = [0, 2, 3, 3, 3][r.below(5) as usize];
    let rc = r.below(4) as u16;
    let fcw = 0x40 | masks | pc << 8 | rc << 10;
    let top = r.below(8) as u16;
    // Only masked exception flags may be set, so nothing is pending.
    let flags = (r.next() as u16) & masks & 0x3f;
    let cc = r.next() as u16 & 0x4700;
    let fsw = flags | cc | top << 11;
    let mut ftw = 0u16;
    for p in 0..8 {
        let empty = !full_stack && r.chance(12);
        ftw |= if empty { 3 } else { 0 } << (2 * p);
    }
    let w = |b: &mut [u8; 108], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    w(&mut b, 0, 0xffff_0000 | fcw as u32);
    w(&mut b, 4, 0xffff_0000 | fsw as u32);
    w(&mut b, 8, 0xffff_0000 | ftw as u32);
    for k in 0..8 {
        let (sig, se) = value(r);
        let o = 28 + 10 * k;
        b[o..o + 8].copy_from_slice(&sig.to_le_bytes());
        b[o + 8..o + 10].copy_from_slice(&se.to_le_bytes());
    }
    b
}

/// A random memory operand for `code`.
fn operand(r: &mut Rng, code: Code) -> Mem {
    let mut m = Mem([0u8; 1024]);
    for x in m.0.iter_mut() {
        *x = r.next() as u8;
    }
    let name = format!("{code:?}");
    let m8 = &mut m.0;
    let f32s = [
        0u32,
        0x8000_0000,
        0x3f80_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0001,
        0x7f80_0001,
        0x0000_0001,
        0x807f_ffff,
        0x7f7f_ffff,
        0x0080_0000,
    ];
    let f64s = [
        0u64,
        0x3ff0_0000_0000_0000,
        0x7ff0_0000_0000_0000,
        0x7ff8_0000_0000_0001,
        0x7ff0_0000_0000_0001,
        1,
        0x800f_ffff_ffff_ffff,
        0x7fef_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
    ];
    if name.contains("m32fp") {
        let v = if r.chance(30) {
            f32s[r.below(f32s.len() as u64) as usize]
        } else {
            let e = [0x7f, 0x80, 0x60, 0x01, 0xfe, 0x00, 0x9e][r.below(7) as usize];
            (r.next() as u32 & 0x807f_ffff) | e << 23
        };
        m8[..4].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("m64fp") {
        let v = if r.chance(30) {
            f64s[r.below(f64s.len() as u64) as usize]
        } else {
            let e: u64 = [0x3ff, 0x400, 0x3c0, 0x001, 0x7fe, 0x000, 0x43e][r.below(7) as usize];
            (r.next() & 0x800f_ffff_ffff_ffff) | e << 52
        };
        m8[..8].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("int") {
        let v: u64 = match r.below(4) {
            0 => r.below(5).wrapping_sub(2),
            1 => 1 << r.below(64),
            2 => (1u64 << r.below(64)).wrapping_neg(),
            _ => r.next() >> r.below(64),
        };
        m8[..8].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("bcd") {
        // Mostly valid digits; sometimes nibbles above 9 and stray bits in
        // the sign byte (undefined by the SDM: taken at face value).
        let wild = r.chance(10);
        for x in m8.iter_mut().take(9) {
            *x = if wild {
                r.next() as u8
            } else {
                ((r.below(10) << 4) | r.below(10)) as u8
            };
        }
        m8[9] = if wild {
            r.next() as u8
        } else if r.chance(50) {
            0x80
        } else {
            0
        };
    } else if name.contains("m80fp") {
        let (sig, se) = value(r);
        m8[..8].copy_from_slice(&sig.to_le_bytes());
        m8[8..10].copy_from_slice(&se.to_le_bytes());
    } else if name.contains("m2byte") {
        // A control word: any bits, reserved ones included; masks mostly set.
        let v = r.next() as u16 | if r.chance(60) { 0x3f } else { 0 };
        m8[..2].copy_from_slice(&v.to_le_bytes());
    } else if name.contains("m108byte") || name.contains("m28byte") {
        let s = state(r, false);
        m8[..108].copy_from_slice(&s);
        // Any flags, masks, tags and pointers, even a pending exception.
        m8[4] = r.next() as u8;
        if r.chance(30) {
            m8[0] = r.next() as u8;
            m8[1] = r.next() as u8;
            m8[8] = r.next() as u8;
            m8[9] = r.next() as u8;
        }
        m8[12..28].iter_mut().for_each(|x| *x = r.next() as u8);
    } else if name.contains("m94byte") || name.contains("m14byte") {
        let s = state(r, false);
        m8[0..2].copy_from_slice(&s[0..2]);
        m8[2..4].copy_from_slice(&s[4..6]);
        m8[4..6].copy_from_slice(&s[8..10]);
        m8[14..94].copy_from_slice(&s[28..108]);
    } else if name.starts_with("Fxrstor") {
        let s = state(r, false);
        m8[0..2].copy_from_slice(&s[0..2]);
        m8[2..4].copy_from_slice(&s[4..6]);
        m8[4] = r.next() as u8; // abridged tag
        m8[5] = 0;
        let fop = r.next() as u16 & 0x7ff;
        m8[6..8].copy_from_slice(&fop.to_le_bytes());
        let mxcsr = 0x1f80u32 | (r.next() as u32 & 0x3f);
        m8[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        for k in 0..8 {
            m8[32 + 16 * k..42 + 16 * k].copy_from_slice(&s[28 + 10 * k..38 + 10 * k]);
        }
    }
    m
}

// ---------------------------------------------------------------- compare

/// The instruction encoded for the test: memory operand `[rsi]`, or ST(i).
fn encode(code: Code, st: u32) -> Vec<u8> {
    let sti = Register::ST0 as u32 + st;
    let sti = iced_x86::Register::values()
        .find(|r| *r as u32 == sti)
        .expect("ST register");
    let mem = MemoryOperand::with_base(Register::RSI);
    let name = format!("{code:?}");
    let ins = if name.contains("_m") {
        Instruction::with1(code, mem)
    } else if name.contains("_st0_sti") {
        Instruction::with2(code, Register::ST0, sti)
    } else if name.contains("_sti_st0") {
        Instruction::with2(code, sti, Register::ST0)
    } else if name.ends_with("_sti") || name.contains("_sti_") {
        Instruction::with1(code, sti)
    } else if name.ends_with("_AX") {
        Instruction::with1(code, Register::AX)
    } else {
        Ok(Instruction::with(code))
    }
    .expect("operands");
    let mut e = Encoder::new(64);
    e.encode(&ins, 0).expect("encodable");
    e.take_buffer()
}

fn w16(x: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([x[o], x[o + 1]])
}

fn w32(x: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(x[o..o + 4].try_into().expect("4"))
}

/// The differences between two runs of `code` from `input`.
fn diff(code: Code, input: &[u8; 108], a: &Run, b: &Run) -> Vec<String> {
    let (x, y) = (&a.image, &b.image);
    let mut out = Vec::new();
    for (o, name) in [
        (0, "FCW"),
        (2, "FCW.hi"),
        (4, "FSW"),
        (6, "FSW.hi"),
        (8, "FTW"),
        (10, "FTW.hi"),
        (26, "FDS.hi"),
    ] {
        if w16(x, o) != w16(y, o) {
            out.push(format!("{name} {:04x} vs {:04x}", w16(x, o), w16(y, o)));
        }
    }
    let es = |i: &[u8; 108]| w16(i, 4) & 0x80 != 0;
    if es(x) && es(y) && w16(x, 18) & 0x7ff != w16(y, 18) & 0x7ff {
        out.push(format!(
            "FOP {:03x} vs {:03x}",
            w16(x, 18) & 0x7ff,
            w16(y, 18) & 0x7ff
        ));
    }
    // FIP: "records this instruction" must agree; otherwise the value.
    let fip = |r: &Run| (w32(&r.image, 12) == r.insn_at, w32(&r.image, 12));
    let (fa, fb) = (fip(a), fip(b));
    if fa.0 != fb.0 || (!fa.0 && fa.1 != fb.1) {
        out.push(format!(
            "FIP {:x} vs {:x} (insn at {:x} / {:x})",
            fa.1, fb.1, a.insn_at, b.insn_at
        ));
    }
    let fdp = |r: &Run| (w32(&r.image, 20) == r.mem_at, w32(&r.image, 20));
    let (da, db) = (fdp(a), fdp(b));
    if da.0 != db.0 || (!da.0 && da.1 != db.1) {
        out.push(format!(
            "FDP {:x} vs {:x} (operand at {:x} / {:x})",
            da.1, db.1, a.mem_at, b.mem_at
        ));
    }
    let _ = (code, input);
    for k in 0..8 {
        let o = 28 + 10 * k;
        if x[o..o + 10] != y[o..o + 10] {
            let v = |i: &[u8; 108]| {
                format!(
                    "{:04x}:{:016x}",
                    w16(i, o + 8),
                    u64::from_le_bytes(i[o..o + 8].try_into().expect("8"))
                )
            };
            out.push(format!("ST{k} {} vs {}", v(x), v(y)));
        }
    }
    out
}

/// Memory bytes that legitimately differ after `code`: pointers and the
/// parts of the FXSAVE image that come from host state.
fn memory_mask(code: Code) -> Vec<core::ops::Range<usize>> {
    let name = format!("{code:?}");
    if name.contains("m28byte") || name.contains("m108byte") {
        vec![12..18, 20..26]
    } else if name.contains("m14byte") || name.contains("m94byte") {
        vec![6..10, 10..14]
    } else if name.starts_with("Fxsave") {
        vec![8..16, 16..24, 28..32, 160..1024]
    } else {
        vec![]
    }
}

fn show(img: &[u8; 108]) -> String {
    let mut s = format!(
        "cw={:04x} sw={:04x} tw={:04x} |",
        w16(img, 0),
        w16(img, 4),
        w16(img, 8)
    );
    for k in 0..8 {
        let o = 28 + 10 * k;
        s += &format!(
            " {:04x}:{:016x}",
            w16(img, o + 8),
            u64::from_le_bytes(img[o..o + 8].try_into().expect("8"))
        );
    }
    s
}

/// A documented way the host (an AMD processor) differs from what the SDM
/// specifies for Intel processors; cases it explains are counted apart.
/// Returns the reason, or `None` if the difference is unexplained.
fn known_difference(
    code: Code,
    input: &[u8; 108],
    mem: &Mem,
    host: &[u8; 108],
    emu: &[u8; 108],
) -> Option<&'static str> {
    use Code as C;
    let fcw = w16(input, 0);
    let same_but = |mask: u16| {
        let mut h = *host;
        let mut e = *emu;
        for x in [&mut h, &mut e] {
            let sw = w16(x, 4) & !mask;
            x[4..6].copy_from_slice(&sw.to_le_bytes());
            x[12..26].fill(0);
        }
        h == e
    };
    match code {
        // SDM Vol. 2A FCOMI/FCOMIP/FUCOMI/FUCOMIP: "C1 Set to 0"; AMD
        // processors leave C1 as it was.
        C::Fcomi_st0_sti | C::Fcomip_st0_sti | C::Fucomi_st0_sti | C::Fucomip_st0_sti
            if same_but(0x0200) && w16(emu, 4) & 0x200 == 0 =>
        {
            Some("FCOMI family: C1 left unchanged by AMD, set to 0 by the SDM")
        }
        // SDM Vol. 1 8.5.2: an unmasked #D leaves TOP unchanged; AMD loads a
        // denormal single or double anyway.
        C::Fld_m32fp | C::Fld_m64fp if fcw & 2 == 0 => {
            let denormal = if code == C::Fld_m32fp {
                let v = w32(&mem.0, 0);
                v & 0x7f80_0000 == 0 && v & 0x007f_ffff != 0
            } else {
                let v = u64::from_le_bytes(mem.0[..8].try_into().expect("8"));
                v & 0x7ff0_0000_0000_0000 == 0 && v & 0x000f_ffff_ffff_ffff != 0
            };
            denormal.then_some(
                "FLD m32/m64 of a denormal with #D unmasked: AMD pushes, the SDM keeps TOP",
            )
        }
        _ => None,
    }
}

/// The ordering key of an 80-bit magnitude: adjacent representable values
/// differ by 1 (across binades too).
fn ulp_key(img: &[u8; 108], k: usize) -> (bool, u128) {
    let o = 28 + 10 * k;
    let sig = u64::from_le_bytes(img[o..o + 8].try_into().expect("8")) as u128;
    let se = w16(img, o + 8);
    let e = (se & 0x7fff) as u128;
    let key = if e == 0 {
        sig
    } else {
        (e << 63) | (sig & !(1 << 63))
    };
    (se & 0x8000 != 0, key)
}

/// For the transcendental instructions, the SDM promises results within
/// one ulp (Vol. 1 8.3.10); the host's and the interpreter's algorithms
/// differ. True if the runs differ only in results one ulp apart and in C1
/// (which reports the rounding direction of each one's own approximation).
fn within_ulp(code: Code, a: &[u8; 108], b: &[u8; 108]) -> bool {
    if !transcendental_forms().contains(&code) {
        return false;
    }
    let (mut x, mut y) = (*a, *b);
    for img in [&mut x, &mut y] {
        let sw = w16(img, 4) & !0x0200;
        img[4..6].copy_from_slice(&sw.to_le_bytes());
        img[12..26].fill(0);
    }
    for k in 0..8 {
        let (sa, ka) = ulp_key(&x, k);
        let (sb, kb) = ulp_key(&y, k);
        if sa == sb && ka.abs_diff(kb) == 1 {
            let o = 28 + 10 * k;
            let src: [u8; 10] = x[o..o + 10].try_into().expect("10");
            y[o..o + 10].copy_from_slice(&src);
        }
    }
    x == y
}

/// Statistics of one differential run.
#[derive(Default)]
struct Tally {
    cases: u64,
    mismatches: u64,
    within_ulp: u64,
    reruns: u64,
    explained: std::collections::BTreeMap<&'static str, u64>,
    report: Vec<String>,
}

/// Runs `n` random cases of `code` (ST(i) operand chosen at random).
fn differential(page: &ExecPage, m: &mut Machine, r: &mut Rng, code: Code, n: u64, t: &mut Tally) {
    let mut shown = 0;
    let before = t.mismatches;
    let mask = memory_mask(code);
    for _ in 0..n {
        let st = r.below(8) as u32;
        let insn = encode(code, st);
        let input = state(r, false);
        let mem0 = operand(r, code);
        let flags = 0x2 | (r.next() & 0x8d5);
        let mut me = mem0;
        let mut native = page.run_with(&insn, &input, &mem0, flags);
        let emu = emulate(m, &insn, &input, &mut me, flags);
        if !diff(code, &input, &native.0, &emu).is_empty() || native.1 != me {
            // A preemption between the instruction and FNSAVE can clear the
            // host's FIP/FDP (the kernel's XSAVE/XRSTOR on this processor does
            // not keep them unless ES is set): take the result two of three
            // native runs agree on.
            let n2 = page.run_with(&insn, &input, &mem0, flags);
            let n3 = page.run_with(&insn, &input, &mem0, flags);
            if n2.0.image == n3.0.image && n2.1 == n3.1 && n2.0.image != native.0.image {
                t.reruns += 1;
                native = n2;
            }
        }
        let (native, mut mn) = native;
        t.cases += 1;
        let mut d = diff(code, &input, &native, &emu);
        for rg in &mask {
            mn.0[rg.clone()].fill(0);
            me.0[rg.clone()].fill(0);
        }
        let mem_same = mn == me;
        if !mem_same {
            let first = (0..1024).find(|&k| mn.0[k] != me.0[k]).unwrap_or(0);
            let end = (first + 16).min(1024);
            d.push(format!(
                "mem+{first:#x} {:02x?} vs {:02x?}",
                &mn.0[first..end],
                &me.0[first..end]
            ));
        }
        let flags_same = native.rflags & 0x8d5 == emu.rflags & 0x8d5;
        if !flags_same {
            d.push(format!(
                "rflags {:03x} vs {:03x}",
                native.rflags & 0x8d5,
                emu.rflags & 0x8d5
            ));
        }
        if !d.is_empty() && mem_same && flags_same && within_ulp(code, &native.image, &emu.image) {
            t.within_ulp += 1;
            continue;
        }
        if !d.is_empty() && mem_same && flags_same {
            if let Some(why) = known_difference(code, &input, &mem0, &native.image, &emu.image) {
                *t.explained.entry(why).or_default() += 1;
                continue;
            }
        }
        if !d.is_empty() {
            t.mismatches += 1;
            if shown < 4 {
                shown += 1;
                t.report.push(format!(
                    "{code:?} st{st}: {}\n    in   {}\n    mem  {:02x?}\n    host {}\n    emu  {}",
                    d.join("; "),
                    show(&input),
                    &mem0.0[..16],
                    show(&native.image),
                    show(&emu.image)
                ));
            }
        }
    }
    if t.mismatches > before {
        t.report
            .push(format!("{code:?}: {} of {n} differ", t.mismatches - before));
    }
}

fn summarize(what: &str, t: &Tally) {
    eprintln!(
        "{what}: {} cases, {} mismatches, {} within 1 ulp ({} host runs repeated after a preemption)",
        t.cases, t.mismatches, t.within_ulp, t.reruns
    );
    for (why, n) in &t.explained {
        eprintln!("  explained ({n}): {why}");
    }
    for line in t.report.iter().take(2000) {
        eprintln!("{line}");
    }
}

/// Every x87 instruction form the interpreter implements and the host runs
/// without side effects beyond the FPU, its memory operand and EFLAGS.
fn forms() -> Vec<Code> {
    use Code as C;
    vec![
        C::Fadd_m32fp,
        C::Fmul_m32fp,
        C::Fcom_m32fp,
        C::Fcomp_m32fp,
        C::Fsub_m32fp,
        C::Fsubr_m32fp,
        C::Fdiv_m32fp,
        C::Fdivr_m32fp,
        C::Fadd_st0_sti,
        C::Fmul_st0_sti,
        C::Fcom_st0_sti,
        C::Fcomp_st0_sti,
        C::Fsub_st0_sti,
        C::Fsubr_st0_sti,
        C::Fdiv_st0_sti,
        C::Fdivr_st0_sti,
        C::Fld_m32fp,
        C::Fst_m32fp,
        C::Fstp_m32fp,
        C::Fld_sti,
        C::Fxch_st0_sti,
        C::Fnop,
        C::Fstpnce_sti,
        C::Fchs,
        C::Fabs,
        C::Ftst,
        C::Fxam,
        C::Fld1,
        C::Fldl2t,
        C::Fldl2e,
        C::Fldpi,
        C::Fldlg2,
        C::Fldln2,
        C::Fldz,
        C::Fxtract,
        C::Fprem1,
        C::Fdecstp,
        C::Fincstp,
        C::Fprem,
        C::Fsqrt,
        C::Frndint,
        C::Fscale,
        C::Fiadd_m32int,
        C::Fimul_m32int,
        C::Ficom_m32int,
        C::Ficomp_m32int,
        C::Fisub_m32int,
        C::Fisubr_m32int,
        C::Fidiv_m32int,
        C::Fidivr_m32int,
        C::Fcmovb_st0_sti,
        C::Fcmove_st0_sti,
        C::Fcmovbe_st0_sti,
        C::Fcmovu_st0_sti,
        C::Fucompp,
        C::Fild_m32int,
        C::Fist_m32int,
        C::Fistp_m32int,
        C::Fld_m80fp,
        C::Fstp_m80fp,
        C::Fcmovnb_st0_sti,
        C::Fcmovne_st0_sti,
        C::Fcmovnbe_st0_sti,
        C::Fcmovnu_st0_sti,
        C::Fnclex,
        C::Fucomi_st0_sti,
        C::Fcomi_st0_sti,
        C::Fadd_m64fp,
        C::Fmul_m64fp,
        C::Fcom_m64fp,
        C::Fcomp_m64fp,
        C::Fsub_m64fp,
        C::Fsubr_m64fp,
        C::Fdiv_m64fp,
        C::Fdivr_m64fp,
        C::Fadd_sti_st0,
        C::Fmul_sti_st0,
        C::Fcom_st0_sti_DCD0,
        C::Fcomp_st0_sti_DCD8,
        C::Fsubr_sti_st0,
        C::Fsub_sti_st0,
        C::Fdivr_sti_st0,
        C::Fdiv_sti_st0,
        C::Fld_m64fp,
        C::Fst_m64fp,
        C::Fstp_m64fp,
        C::Ffree_sti,
        C::Fxch_st0_sti_DDC8,
        C::Fst_sti,
        C::Fstp_sti,
        C::Fucom_st0_sti,
        C::Fucomp_st0_sti,
        C::Fiadd_m16int,
        C::Fimul_m16int,
        C::Ficom_m16int,
        C::Ficomp_m16int,
        C::Fisub_m16int,
        C::Fisubr_m16int,
        C::Fidiv_m16int,
        C::Fidivr_m16int,
        C::Faddp_sti_st0,
        C::Fmulp_sti_st0,
        C::Fcomp_st0_sti_DED0,
        C::Fcompp,
        C::Fsubrp_sti_st0,
        C::Fsubp_sti_st0,
        C::Fdivrp_sti_st0,
        C::Fdivp_sti_st0,
        C::Fild_m16int,
        C::Fist_m16int,
        C::Fistp_m16int,
        C::Fbld_m80bcd,
        C::Fild_m64int,
        C::Fbstp_m80bcd,
        C::Fistp_m64int,
        C::Ffreep_sti,
        C::Fxch_st0_sti_DFC8,
        C::Fstp_sti_DFD0,
        C::Fstp_sti_DFD8,
        C::Fucomip_st0_sti,
        C::Fcomip_st0_sti,
        C::Fisttp_m16int,
        C::Fisttp_m32int,
        C::Fisttp_m64int,
        C::Fldcw_m2byte,
        C::Fnstcw_m2byte,
        C::Fnstsw_m2byte,
        C::Fninit,
        C::Fnstenv_m28byte,
        C::Fnstenv_m14byte,
        C::Fldenv_m28byte,
        C::Fldenv_m14byte,
        C::Fnsave_m108byte,
        C::Fnsave_m94byte,
        C::Frstor_m108byte,
        C::Frstor_m94byte,
        C::Fxsave_m512byte,
        C::Fxrstor_m512byte,
        C::Fneni,
        C::Fndisi,
        C::Fnsetpm,
        C::Fnstsw_AX,
    ]
}

/// The transcendental forms (compared separately: see `transcendentals`).
fn transcendental_forms() -> Vec<Code> {
    use Code as C;
    vec![
        C::F2xm1,
        C::Fyl2x,
        C::Fyl2xp1,
        C::Fptan,
        C::Fpatan,
        C::Fsin,
        C::Fcos,
        C::Fsincos,
    ]
}

#[test]
fn x87_matches_host() {
    let page = ExecPage::new();
    let mut m = machine();
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut t = Tally::default();
    for code in forms() {
        if format!("{code:?}").starts_with("Fisttp")
            && !nestemu::cpu::cpuid::Feature::Sse3.implemented()
        {
            // FISTTP is an SSE3 instruction: #UD until SSE3 is advertised.
            continue;
        }
        differential(&page, &mut m, &mut r, code, 3000, &mut t);
    }
    summarize("x87 differential", &t);
    assert_eq!(t.mismatches, 0);
}

#[test]
fn transcendentals_match_host() {
    let page = ExecPage::new();
    let mut m = machine();
    let mut r = Rng(0x0bad_cafe_f00d_0001);
    let mut t = Tally::default();
    for code in transcendental_forms() {
        differential(&page, &mut m, &mut r, code, 20_000, &mut t);
    }
    summarize("x87 transcendental differential", &t);
    assert_eq!(t.mismatches, 0);
}
