//! The guest image both machines run: the ring-0 stub, the ring-3 driver, the
//! system tables, and a batch of sequences with their input records.
//!
//! The stub enters ring 3 once with IRETQ. The ring-3 driver then loops over
//! the batch: it loads a sequence's initial scratch contents, RFLAGS and GPRs,
//! jumps to it, and at the sequence's end (a `JMP` to the epilogue) stores the
//! final GPRs, RFLAGS and scratch contents into the output record. An
//! exception in a sequence enters the stub's handler through the IDT, which
//! records the vector, error code, RIP, RFLAGS and CR2 and returns with IRETQ
//! to the same epilogue, so the GPRs at the fault are stored too. Only
//! exceptions and the final `UD2` leave ring 3: everything else runs natively
//! under KVM.

use crate::layout::{self, input, output, sel, var};
use crate::seq::Sequence;
use guestkit::asm::{self, Asm, AsmResult};
use iced_x86::code_asm::*;
use std::sync::OnceLock;

/// Vectors whose exceptions push an error code (SDM Vol. 3A table 6-1).
const ERROR_CODE_VECTORS: [u8; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

/// An absolute memory operand (disp32, no base).
fn abs(a: u64) -> AsmMemoryOperand {
    qword_ptr(a as u32 as u64)
}

/// The fixed part of the image, built once.
#[derive(Clone, Debug)]
pub struct Harness {
    /// Physical regions: (address, bytes).
    pub regions: Vec<(u64, Vec<u8>)>,
    /// Where sequences jump when they end.
    pub seq_end: u64,
    /// The stub's entry point (ring 0).
    pub entry: u64,
}

/// The harness, built on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| build_harness().expect("the harness assembles"))
}

fn build_harness() -> Result<Harness, String> {
    let driver = asm::build(64, layout::DRIVER, emit_driver)?;
    // Label 1 of the driver is the epilogue, label 2 the final UD2 (see
    // `emit_driver`).
    let seq_end = driver.labels[1];
    let all_done = driver.labels[2];
    let stub = asm::build(64, layout::STUB, |a| emit_stub(a, seq_end, all_done))?;
    if stub.bytes.len() as u64 > layout::STUB_MAX {
        return Err("ring-0 stub too large".into());
    }
    if driver.bytes.len() as u64 > layout::VARS - layout::DRIVER {
        return Err("ring-3 driver too large".into());
    }
    let stubs = stub.labels[0];
    let mut regions = vec![
        (layout::GDT, gdt()),
        (layout::TSS, tss()),
        (layout::IDT, idt(stubs)),
        (layout::PML4, page_tables()),
        (layout::RO_PAGE, ro_page()),
    ];
    regions.push((stub.base, stub.bytes.clone()));
    regions.push((driver.base, driver.bytes.clone()));
    Ok(Harness {
        regions,
        seq_end,
        entry: stub.base,
    })
}

/// Ring 0: the entry to ring 3, the exception stubs and the common handler.
/// Only simple instructions, as KVM's emulator runs this code.
fn emit_stub(a: &mut Asm, seq_end: u64, all_done: u64) -> AsmResult {
    let mut stubs = a.label(); // label 0
    let mut common = a.label();
    let mut done = a.label();
    let mut ring0 = a.label();
    // Entry: IRETQ to the driver in ring 3.
    a.mov(rsp, layout::STACK0_TOP)?;
    a.push(sel::UDATA as i32)?;
    a.push(layout::DRIVER_STACK_TOP as i32)?;
    a.push(layout::USER_RFLAGS as i32)?;
    a.push(sel::UCODE as i32)?;
    a.push(layout::DRIVER as i32)?;
    a.iretq()?;
    a.set(&mut stubs)?;
    for v in 0..=255u8 {
        let mut bytes = Vec::with_capacity(16);
        if !ERROR_CODE_VECTORS.contains(&v) {
            bytes.extend_from_slice(&[0x6a, 0x00]); // push 0
        }
        bytes.extend_from_slice(&[0x68]); // push imm32
        bytes.extend_from_slice(&(v as u32).to_le_bytes());
        let here = a.addr(&stubs) + 16 * v as u64 + bytes.len() as u64 + 5;
        let target = a.addr(&common);
        bytes.push(0xe9); // jmp rel32
        bytes.extend_from_slice(&(target.wrapping_sub(here) as u32).to_le_bytes());
        bytes.resize(16, 0xcc);
        a.db(&bytes)?;
    }
    // Frame: vector, error code, RIP, CS, RFLAGS, RSP, SS.
    a.set(&mut common)?;
    a.test(byte_ptr(rsp + 24), 3i32)?;
    a.jz(ring0.l)?;
    a.cmp(qword_ptr(rsp + 16), all_done as i32)?;
    a.je(done.l)?;
    a.push(rax)?;
    a.push(rbx)?;
    a.mov(rbx, abs(layout::VARS + var::OUT))?;
    a.mov(rax, qword_ptr(rsp + 16))?;
    a.inc(rax)?;
    a.mov(qword_ptr(rbx + output::EXC_VECTOR as i32), rax)?;
    for (frame, slot) in [
        (24, output::EXC_ERROR),
        (32, output::EXC_RIP),
        (48, output::EXC_RFLAGS),
    ] {
        a.mov(rax, qword_ptr(rsp + frame))?;
        a.mov(qword_ptr(rbx + slot as i32), rax)?;
    }
    a.mov(rax, cr2)?;
    a.mov(qword_ptr(rbx + output::EXC_CR2 as i32), rax)?;
    a.mov(rax, seq_end)?;
    a.mov(qword_ptr(rsp + 32), rax)?;
    a.pop(rbx)?;
    a.pop(rax)?;
    a.add(rsp, 16i32)?;
    a.iretq()?;
    a.set(&mut done)?;
    a.mov(eax, layout::EXIT_DONE as i32)?;
    a.out(layout::EXIT_PORT as i32, eax)?;
    a.hlt()?;
    a.jmp(done.l)?;
    a.set(&mut ring0)?;
    for (k, frame) in [0, 8, 16, 24, 32, 40, 48].iter().enumerate() {
        a.mov(rax, qword_ptr(rsp + *frame))?;
        a.mov(abs(layout::VARS + var::RING0_FRAME + 8 * k as u64), rax)?;
    }
    a.mov(eax, dword_ptr(rsp))?;
    a.add(eax, layout::EXIT_RING0_FAULT as i32)?;
    a.out(layout::EXIT_PORT as i32, eax)?;
    a.hlt()?;
    a.jmp(ring0.l)?;
    Ok(())
}

/// Ring 3: the loop over the batch.
fn emit_driver(a: &mut Asm) -> AsmResult {
    let mut next = a.label(); // label 0
    let mut seq_end = a.label(); // label 1
    let mut all_done = a.label();
    a.set(&mut next)?;
    a.mov(rax, abs(layout::VARS + var::CUR))?;
    a.cmp(rax, abs(layout::VARS + var::COUNT))?;
    a.jae(all_done.l)?;
    a.imul_3(rbx, rax, layout::IN_SIZE as i32)?;
    a.add(rbx, layout::IN_BASE as i32)?;
    a.imul_3(rcx, rax, layout::OUT_SIZE as i32)?;
    a.add(rcx, layout::OUT_BASE as i32)?;
    a.mov(abs(layout::VARS + var::OUT), rcx)?;
    a.lea(rsi, qword_ptr(rbx + input::WINDOWS as i32))?;
    a.cld()?;
    for (at, len) in layout::WINDOWS {
        a.mov(rdi, at)?;
        a.mov(ecx, (len / 8) as i32)?;
        a.rep().movsq()?;
    }
    a.fxrstor64(ptr(rbx + input::FPU as i32))?;
    a.mov(
        dword_ptr(layout::VARS + var::ENDED),
        layout::NOT_ENDED as i32,
    )?;
    a.mov(rax, qword_ptr(rbx + input::ENTRY as i32))?;
    a.mov(abs(layout::VARS + var::ENTRY), rax)?;
    a.push(qword_ptr(rbx + input::RFLAGS as i32))?;
    a.popfq()?;
    for (n, r) in gpr64().iter().enumerate() {
        if n != 3 && n != 4 {
            a.mov(*r, qword_ptr(rbx + (8 * n) as i32))?;
        }
    }
    a.mov(rsp, qword_ptr(rbx + 0x20))?;
    a.mov(rbx, qword_ptr(rbx + 0x18))?;
    a.jmp(abs(layout::VARS + var::ENTRY))?;
    // The epilogue: sequences end here, exceptions return here.
    a.set(&mut seq_end)?;
    a.mov(abs(layout::VARS + var::SAVED_RSP), rsp)?;
    a.mov(rsp, layout::DRIVER_STACK_TOP)?;
    a.pushfq()?;
    a.push(rax)?;
    a.mov(rax, abs(layout::VARS + var::OUT))?;
    for (n, r) in gpr64().iter().enumerate() {
        if n != 0 && n != 4 {
            a.mov(qword_ptr(rax + (8 * n) as i32), *r)?;
        }
    }
    a.pop(rcx)?;
    a.mov(qword_ptr(rax), rcx)?;
    a.pop(rcx)?;
    a.mov(qword_ptr(rax + output::RFLAGS as i32), rcx)?;
    a.mov(rcx, abs(layout::VARS + var::SAVED_RSP))?;
    a.mov(qword_ptr(rax + 0x20), rcx)?;
    a.fxsave64(ptr(rax + output::FPU as i32))?;
    a.mov(ecx, dword_ptr(layout::VARS + var::ENDED))?;
    a.mov(dword_ptr(rax + output::ENDED as i32), ecx)?;
    a.cld()?;
    a.lea(rdi, qword_ptr(rax + output::WINDOWS as i32))?;
    for (at, len) in layout::WINDOWS {
        a.mov(rsi, at)?;
        a.mov(ecx, (len / 8) as i32)?;
        a.rep().movsq()?;
    }
    a.mov(qword_ptr(rax + output::DONE as i32), 1i32)?;
    a.inc(abs(layout::VARS + var::CUR))?;
    a.jmp(next.l)?;
    // The batch is done: the stub recognizes this UD2 by its address (INT n
    // from ring 3 raises #UD under PVM, so it cannot be the signal).
    a.set(&mut all_done)?;
    a.ud2()?;
    Ok(())
}

/// RAX..R15 in encoding order.
pub fn gpr64() -> [AsmRegister64; 16] {
    [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ]
}

fn gdt() -> Vec<u8> {
    let mut d: Vec<u64> = vec![
        0,
        0x00af_9b00_0000_ffff, // 0x08 kernel code64
        0x00cf_9300_0000_ffff, // 0x10 kernel data
        0x00cf_fb00_0000_ffff, // 0x18 user code32
        0x00cf_f300_0000_ffff, // 0x20 user data
        0x00af_fb00_0000_ffff, // 0x28 user code64
    ];
    let (base, limit) = (layout::TSS, 0x67u64);
    d.push(
        (limit & 0xffff)
            | (base & 0xff_ffff) << 16
            | 0x8b << 40 // present, busy 64-bit TSS
            | ((base >> 24) & 0xff) << 56,
    );
    d.push(base >> 32);
    d.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The GDT limit.
pub const GDT_LIMIT: u16 = 8 * 8 - 1;

fn tss() -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    t[4..12].copy_from_slice(&layout::STACK0_TOP.to_le_bytes());
    t[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    t
}

fn idt(stubs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for v in 0..256u64 {
        let off = stubs + 16 * v;
        // INT3 and INTO may be raised from ring 3.
        let dpl = if matches!(v, 3 | 4) { 3 } else { 0 };
        let lo = (off & 0xffff)
            | (sel::KCODE as u64) << 16
            | (0x8e | dpl << 5) << 40
            | ((off >> 16) & 0xffff) << 48;
        out.extend_from_slice(&lo.to_le_bytes());
        out.extend_from_slice(&(off >> 32).to_le_bytes());
    }
    out
}

/// PML4, PDPT, PD (0-1 GiB in 2-MiB pages), the PT for 2-4 MiB, and the
/// tables mapping [`layout::TOP_PAGE`].
fn page_tables() -> Vec<u8> {
    const P: u64 = 1;
    const W: u64 = 2;
    const U: u64 = 4;
    const PS: u64 = 0x80;
    let mut t = vec![0u64; 512 * 7];
    t[0] = layout::PDPT | P | W | U;
    let top = layout::TOP_PAGE;
    t[((top >> 39) & 511) as usize] = layout::PDPT_HI | P | W | U;
    t[2048 + ((top >> 30) & 511) as usize] = layout::PD_HI | P | W | U;
    t[2560 + ((top >> 21) & 511) as usize] = layout::PT_HI | P | W | U;
    t[3072 + ((top >> 12) & 511) as usize] = layout::TOP_PAGE_PHYS | P | W | U;
    t[512] = layout::PD | P | W | U;
    let pd = 1024;
    t[pd] = P | W | PS; // 0-2 MiB: supervisor
    t[pd + 1] = layout::PT | P | W | U;
    for i in 2..(layout::RAM >> 21) as usize {
        t[pd + i] = (i as u64) << 21 | P | W | U | PS;
    }
    let pt = 1536;
    for (page, flags) in [
        (layout::SCRATCH & !0xfff, P | W | U),
        ((layout::SCRATCH & !0xfff) + 0x1000, P | W | U),
        (layout::RO_PAGE, P | U),
    ] {
        t[pt + ((page >> 12) & 511) as usize] = page | flags;
    }
    t.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The read-only page holds a recognizable pattern.
fn ro_page() -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 24) as u8)
        .collect()
}

/// A complete image: the harness, the batch's code and input records, and the
/// driver variables.
#[derive(Clone, Debug)]
pub struct Image {
    /// Physical regions: (address, bytes).
    pub regions: Vec<(u64, Vec<u8>)>,
    /// Sequences in the batch.
    pub count: usize,
    /// Where each sequence's code is and where its instructions start.
    pub code: Vec<crate::compare::CodeMap>,
}

/// Builds the image for a batch.
pub fn build(seqs: &[Sequence]) -> Result<Image, String> {
    if seqs.len() > layout::MAX_BATCH {
        return Err(format!(
            "batch of {} over {}",
            seqs.len(),
            layout::MAX_BATCH
        ));
    }
    let h = harness();
    let mut regions = h.regions.clone();
    let mut code = Vec::with_capacity(seqs.len());
    let mut code_bytes = Vec::new();
    let mut inputs = vec![0u8; seqs.len() * layout::IN_SIZE as usize];
    for (k, s) in seqs.iter().enumerate() {
        let at = layout::CODE + code_bytes.len() as u64;
        let (bytes, offsets) = s.encode_with_offsets(at, h.seq_end)?;
        if at + bytes.len() as u64 > layout::CODE_END {
            return Err("sequence code area full".into());
        }
        code.push(crate::compare::CodeMap { base: at, offsets });
        code_bytes.extend_from_slice(&bytes);
        code_bytes.resize(code_bytes.len().next_multiple_of(16), 0xcc);
        let rec = &mut inputs[k * layout::IN_SIZE as usize..][..layout::IN_SIZE as usize];
        for (n, g) in s.init.gprs.iter().enumerate() {
            rec[8 * n..8 * n + 8].copy_from_slice(&g.to_le_bytes());
        }
        let put = |rec: &mut [u8], off: u64, v: u64| {
            rec[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        put(rec, input::RFLAGS, s.init.rflags);
        put(rec, input::ENTRY, at);
        rec[input::WINDOWS as usize..][..layout::WINDOW_BYTES as usize]
            .copy_from_slice(&s.init.scratch);
        rec[input::FPU as usize..][..layout::FPU_BYTES as usize].copy_from_slice(&s.init.fpu);
    }
    let mut vars = vec![0u8; 0x40];
    vars[var::COUNT as usize..][..8].copy_from_slice(&(seqs.len() as u64).to_le_bytes());
    regions.push((layout::VARS, vars));
    regions.push((layout::CODE, code_bytes));
    regions.push((layout::IN_BASE, inputs));
    Ok(Image {
        regions,
        count: seqs.len(),
        code,
    })
}

/// The ring-0 state both machines start in (64-bit mode, paging on).
#[derive(Clone, Copy, Debug)]
pub struct EntryState {
    /// CR0: PE, MP, ET, NE, WP, PG.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4: PAE, OSFXSR, OSXMMEXCPT.
    pub cr4: u64,
    /// EFER: SCE, LME, LMA, NXE.
    pub efer: u64,
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
}

/// The entry state.
pub fn entry_state() -> EntryState {
    EntryState {
        cr0: 0x8005_0033,
        cr3: layout::PML4,
        cr4: 0x620,
        efer: 0xd01,
        rip: harness().entry,
        rsp: layout::STACK0_TOP,
    }
}

/// Reads an output record's bytes from `mem` (the whole output area).
pub fn output_record(out_area: &[u8], k: usize) -> &[u8] {
    &out_area[k * layout::OUT_SIZE as usize..][..layout::OUT_SIZE as usize]
}

/// Size of the output area for `count` sequences.
pub fn output_len(count: usize) -> usize {
    count * layout::OUT_SIZE as usize
}

/// The frame the stub stored for an exception in ring 0 (vector, error code,
/// RIP, CS, RFLAGS, RSP, SS), read from guest memory.
pub fn ring0_frame(mem: &[u8]) -> [u64; 7] {
    let mut f = [0; 7];
    for (k, v) in f.iter_mut().enumerate() {
        let a = (layout::VARS + var::RING0_FRAME) as usize + 8 * k;
        *v = u64::from_le_bytes(mem[a..a + 8].try_into().expect("8 bytes"));
    }
    f
}

/// The guest memory sequences may write outside their windows and records:
/// the 4-KiB pages around the windows, and user memory except the driver
/// variables and the output records (which hold masked values). After a batch
/// both machines must agree on all of it; a difference is a write that no
/// window caught.
pub fn checked_ranges(count: usize) -> [(u64, u64); 4] {
    let out_end = layout::OUT_BASE + output_len(count) as u64;
    [
        (layout::GUARD_LO, layout::TOP_PAGE_PHYS + 0x1000),
        (layout::DRIVER, layout::VARS),
        (layout::DRIVER_STACK_TOP, layout::OUT_BASE),
        (out_end.next_multiple_of(0x1000), layout::RAM),
    ]
}

/// The first page in [`checked_ranges`] where `a` and `b` (whole guest RAM)
/// differ.
pub fn first_difference(a: &[u8], b: &[u8], count: usize) -> Option<u64> {
    for (lo, hi) in checked_ranges(count) {
        let mut p = lo;
        while p < hi {
            let e = (p + 0x10_0000).min(hi);
            if a[p as usize..e as usize] != b[p as usize..e as usize] {
                let mut q = p;
                while a[q as usize..q as usize + 0x1000] == b[q as usize..q as usize + 0x1000] {
                    q += 0x1000;
                }
                return Some(q);
            }
            p = e;
        }
    }
    None
}
