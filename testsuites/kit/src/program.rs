//! Assembling a kit program into a Multiboot image: the start-up path
//! (Multiboot's 32-bit entry -> real mode -> protected mode -> long mode), the
//! static system tables, and the cases of each mode.

use crate::asm::{self, Asm, AsmResult};
use crate::layout::*;
use crate::rt16::{self, Rt16, LOW_RESULTS, VARS16};
use crate::rt32::{self, abs32, Rt32};
use crate::rt64::{self, abs, Rt64};
use iced_x86::code_asm::*;

/// A case body.
pub type CaseFn = Box<dyn Fn(&mut Asm) -> AsmResult>;
/// A free-form 64-bit program part, with the runtime's labels.
pub type BodyFn = Box<dyn Fn(&mut Asm, &Rt64) -> AsmResult>;

/// A kit program under construction.
#[derive(Default)]
pub struct Program {
    real: Vec<(String, CaseFn)>,
    prot: Vec<(String, CaseFn)>,
    long: Vec<(String, CaseFn)>,
    body64: Vec<BodyFn>,
    /// Map all of memory with U/S = 1 (user-accessible).
    pub user_pages: bool,
    /// Stay in 32-bit protected mode (no paging, no long mode).
    pub no_long_mode: bool,
}

impl core::fmt::Debug for Program {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Program")
            .field("real", &self.real.len())
            .field("prot", &self.prot.len())
            .field("long", &self.long.len())
            .finish()
    }
}

/// A built program.
#[derive(Clone, Debug)]
pub struct Built {
    /// The Multiboot image (a.out kludge), loaded at [`IMAGE_BASE`].
    pub image: Vec<u8>,
    /// Case names in record order (real, then protected, then long mode).
    pub cases: Vec<String>,
}

impl Program {
    /// An empty program (it boots, reaches long mode and exits with 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a real-mode case; bodies must preserve DS, ES and SS.
    pub fn real_case(&mut self, name: &str, f: impl Fn(&mut Asm) -> AsmResult + 'static) {
        self.real.push((name.into(), Box::new(f)));
    }

    /// Adds a 32-bit protected-mode case (paging off, CPL 0, flat segments).
    pub fn prot_case(&mut self, name: &str, f: impl Fn(&mut Asm) -> AsmResult + 'static) {
        self.prot.push((name.into(), Box::new(f)));
    }

    /// Adds a 64-bit case (CPL 0, identity-mapped 4 GiB with 2-MiB pages).
    pub fn long_case(&mut self, name: &str, f: impl Fn(&mut Asm) -> AsmResult + 'static) {
        self.long.push((name.into(), Box::new(f)));
    }

    /// Adds free-form 64-bit code run after the cases.
    pub fn body64(&mut self, f: impl Fn(&mut Asm, &Rt64) -> AsmResult + 'static) {
        self.body64.push(Box::new(f));
    }

    /// Assembles the image.
    pub fn build(&self) -> Result<Built, String> {
        let n_real = self.real.len();
        let n_prot = self.prot.len();
        if n_real as u64 * RECORD_SIZE > 0x1_0000 {
            return Err("too many real-mode cases (256 at most)".into());
        }
        let c16 = asm::build(16, LOW16, |a| self.chunk16(a))?;
        if c16.bytes.len() as u64 > CHUNK16_MAX {
            return Err(format!(
                "16-bit chunk is {} bytes, over {CHUNK16_MAX}",
                c16.bytes.len()
            ));
        }
        // Copy only the 16-bit chunk's own bytes to LOW16: QEMU's Multiboot
        // loader leaves its information block at 9000H.
        let c16_len = c16.bytes.len() as u64;
        let c32 = asm::build(32, CHUNK32, |a| self.chunk32(a, n_real, c16_len))?;
        if c32.bytes.len() as u64 > CHUNK32_MAX {
            return Err(format!(
                "32-bit chunk is {} bytes, over {CHUNK32_MAX}",
                c32.bytes.len()
            ));
        }
        let mut stubs64 = 0;
        let mut stubs32 = 0;
        let c64 = asm::build(64, CHUNK64, |a| {
            let first = n_real + n_prot;
            self.chunk64(a, first)
        })?;
        // The stub labels are the first runtime labels created in each chunk.
        if let Some(v) = c64.labels.get(4) {
            stubs64 = *v;
        }
        if let Some(v) = c32.labels.get(3) {
            stubs32 = *v;
        }
        let mut img = vec![0u8; (CHUNK64 - IMAGE_BASE) as usize + c64.bytes.len()];
        let mut put = |at: u64, b: &[u8]| {
            let o = (at - IMAGE_BASE) as usize;
            img[o..o + b.len()].copy_from_slice(b);
        };
        put(IMAGE_BASE, &multiboot_header());
        put(CHUNK32, &c32.bytes);
        put(CHUNK16_STORE, &c16.bytes);
        put(GDT, &gdt());
        put(TSS64, &tss64());
        put(TSS32, &tss32());
        put(IDT64, &idt64(stubs64));
        put(IDT32, &idt32(stubs32));
        put(PML4, &page_tables(self.user_pages));
        put(CHUNK64, &c64.bytes);
        let cases = self
            .real
            .iter()
            .chain(&self.prot)
            .chain(&self.long)
            .map(|(n, _)| n.clone())
            .collect();
        Ok(Built { image: img, cases })
    }

    fn chunk16(&self, a: &mut Asm) -> AsmResult {
        let mut rt = Rt16::new(a);
        let mut real_entry = a.label();
        // Entered in 16-bit protected mode (CS = CODE16): load 16-bit data
        // segments, clear PE, far-jump into real mode.
        a.mov(ax, sel::DATA16 as i32)?;
        for s in [ds, es, ss, fs, gs] {
            a.mov(s, ax)?;
        }
        a.mov(eax, cr0)?;
        a.and(eax, !1i32)?;
        a.mov(cr0, eax)?;
        let target = a.addr(&real_entry) as u16;
        a.db(&[0xea, target as u8, (target >> 8) as u8, 0, 0])?;
        a.set(&mut real_entry)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(ss, ax)?;
        a.mov(sp, STACK16_TOP as i32)?;
        a.mov(ax, (LOW_RESULTS >> 4) as i32)?;
        a.mov(es, ax)?;
        rt.install(a)?;
        for (k, (_, f)) in self.real.iter().enumerate() {
            rt16::emit_case(a, k, f.as_ref())?;
        }
        // Back to protected mode through the far pointer the 32-bit code left.
        a.cli()?;
        a.mov(eax, cr0)?;
        a.or(eax, 1i32)?;
        a.mov(cr0, eax)?;
        a.jmp(fword_ptr(VARS16 + 0x10))?;
        rt.emit(a)
    }

    fn chunk32(&self, a: &mut Asm, n_real: usize, c16_len: u64) -> AsmResult {
        let mut rt = Rt32::new(a);
        let mut gdt_ptr = a.label();
        let mut idt_ptr = a.label();
        let mut reload = a.label();
        let mut back16 = a.label();
        a.cli()?;
        a.mov(esp, STACK_TOP as i32)?;
        a.mov(abs32(VARS + var::MBI), ebx)?;
        // The 8259 masks the firmware left, kept for the PIC suite; then
        // both chips masked, as kvm-unit-tests' start-up does
        // (mask_pic_interrupts): SeaBIOS leaves IRQ 0 open with the PIT
        // ticking, which a kernel that enables interrupts would take
        // through LINT0 (ExtINT) at vector 08H.
        a.in_(al, 0x21)?;
        a.mov(byte_ptr(VARS + var::FIRMWARE_PIC_MASKS), al)?;
        a.in_(al, 0xa1)?;
        a.mov(byte_ptr(VARS + var::FIRMWARE_PIC_MASKS + 1), al)?;
        a.mov(al, 0xffu32)?;
        a.out(0x21, al)?;
        a.out(0xa1, al)?;
        let gp = a.addr(&gdt_ptr);
        a.lgdt(fword_ptr(gp as u32 as u64))?;
        a.mov(ax, sel::DATA as i32)?;
        for s in [ds, es, ss, fs, gs] {
            a.mov(s, ax)?;
        }
        let r = a.addr(&reload) as u32;
        a.jmp_far(sel::CODE32, r)?;
        a.set(&mut reload)?;
        a.cld()?;
        a.mov(esi, CHUNK16_STORE as i32)?;
        a.mov(edi, LOW16 as i32)?;
        a.mov(ecx, c16_len.div_ceil(4) as i32)?;
        a.rep().movsd()?;
        if n_real > 0 {
            let b = a.addr(&back16) as u32 as i32;
            a.mov(dword_ptr(VARS16 + 0x10), b)?;
            a.mov(word_ptr(VARS16 + 0x14), sel::CODE32 as i32)?;
            a.jmp_far(sel::CODE16, LOW16 as u32)?;
            a.set(&mut back16)?;
            a.mov(ax, sel::DATA as i32)?;
            for s in [ds, es, ss, fs, gs] {
                a.mov(s, ax)?;
            }
            a.mov(esp, STACK_TOP as i32)?;
            a.cld()?;
            a.mov(esi, LOW_RESULTS as i32)?;
            a.mov(edi, RESULTS as i32)?;
            a.mov(ecx, (n_real as u64 * RECORD_SIZE / 4) as i32)?;
            a.rep().movsd()?;
        }
        let ip = a.addr(&idt_ptr);
        a.lidt(fword_ptr(ip as u32 as u64))?;
        for (k, (_, f)) in self.prot.iter().enumerate() {
            rt32::emit_case(a, n_real + k, f.as_ref())?;
        }
        if self.no_long_mode {
            a.mov(edi, 0i32)?;
            a.cmp(abs32(VARS + var::FAILS), 0i32)?;
            a.setne(dil_or_bl())?;
            a.jmp(rt.exit.l)?;
        } else {
            a.mov(eax, cr4)?;
            a.or(eax, 0x20i32)?;
            a.mov(cr4, eax)?;
            a.mov(eax, PML4 as i32)?;
            a.mov(cr3, eax)?;
            a.mov(ecx, 0xc000_0080u32 as i32)?;
            a.rdmsr()?;
            a.or(eax, 0x901i32)?;
            a.wrmsr()?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x8000_0001u32 as i32)?;
            a.mov(cr0, eax)?;
            a.jmp_far(sel::CODE64, CHUNK64 as u32)?;
        }
        rt.emit(a)?;
        a.set(&mut gdt_ptr)?;
        a.dw(&[0x67])?;
        a.dd(&[GDT as u32])?;
        a.set(&mut idt_ptr)?;
        a.dw(&[0x7ff])?;
        a.dd(&[IDT32 as u32])?;
        Ok(())
    }

    fn chunk64(&self, a: &mut Asm, first_case: usize) -> AsmResult {
        let mut rt = Rt64::new(a);
        let mut idt_ptr = a.label();
        let mut done_msg = a.label();
        a.mov(ax, sel::DATA as i32)?;
        for s in [ds, es, ss, fs, gs] {
            a.mov(s, ax)?;
        }
        a.mov(rsp, STACK_TOP)?;
        a.lidt(ptr(idt_ptr.l))?;
        a.mov(ax, sel::TSS64 as i32)?;
        a.ltr(ax)?;
        for (k, (_, f)) in self.long.iter().enumerate() {
            rt64::emit_case(a, first_case + k, f.as_ref())?;
        }
        for f in &self.body64 {
            f(a, &rt)?;
        }
        a.lea(rsi, ptr(done_msg.l))?;
        a.call(rt.puts.l)?;
        a.xor(edi, edi)?;
        a.cmp(abs(VARS + var::FAILS), 0i32)?;
        a.setne(dil)?;
        a.jmp(rt.exit.l)?;
        rt.emit(a)?;
        a.set(&mut idt_ptr)?;
        a.dw(&[0xfff])?;
        a.dq(&[IDT64])?;
        a.set(&mut done_msg)?;
        a.db(b"kit: done\n\0")?;
        Ok(())
    }
}

/// In 32-bit code DIL does not exist; the fail flag goes through BL.
fn dil_or_bl() -> iced_x86::code_asm::AsmRegister8 {
    bl
}

fn multiboot_header() -> Vec<u8> {
    const MAGIC: u32 = 0x1bad_b002;
    const FLAGS: u32 = 1 << 16;
    let mut v = Vec::new();
    for w in [
        MAGIC,
        FLAGS,
        0u32.wrapping_sub(MAGIC).wrapping_sub(FLAGS),
        IMAGE_BASE as u32,
        IMAGE_BASE as u32,
        0,
        0,
        CHUNK32 as u32,
    ] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

fn gdt() -> Vec<u8> {
    let mut d: Vec<u64> = vec![
        0,
        0x00af_9b00_0000_ffff, // 0x08 code64
        0x00cf_9300_0000_ffff, // 0x10 data
        0x00cf_9b00_0000_ffff, // 0x18 code32
        0x0000_9b00_0000_ffff, // 0x20 code16
        0x0000_9300_0000_ffff, // 0x28 data16
        0x00af_fb00_0000_ffff, // 0x30 user code64
        0x00cf_f300_0000_ffff, // 0x38 user data
        0x00cf_fb00_0000_ffff, // 0x40 user code32
    ];
    d.extend(system_descriptor(TSS64, 0x67, 0x89));
    d.push(system_descriptor(TSS32, 0x67, 0x89)[0]);
    d.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A 16-byte system descriptor (the second half is only used in IA-32e mode).
fn system_descriptor(base: u64, limit: u32, access: u8) -> [u64; 2] {
    let lo = (limit as u64 & 0xffff)
        | (base & 0xff_ffff) << 16
        | (access as u64) << 40
        | ((limit as u64 >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [lo, base >> 32]
}

fn tss64() -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    t[4..12].copy_from_slice(&STACK_TOP.to_le_bytes());
    t[0x24..0x2c].copy_from_slice(&IST_TOP.to_le_bytes());
    t[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    t
}

fn tss32() -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    t[4..8].copy_from_slice(&(STACK_TOP as u32).to_le_bytes());
    t[8..10].copy_from_slice(&sel::DATA.to_le_bytes());
    t[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    t
}

/// Gate DPL: 3 for the vectors user code may raise with INT3, INTO, INT 0x80.
fn gate_dpl(v: u64) -> u64 {
    if matches!(v, 3 | 4 | 0x80) {
        3
    } else {
        0
    }
}

fn idt64(stubs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for v in 0..256u64 {
        let off = stubs + 16 * v;
        let lo = (off & 0xffff)
            | (sel::CODE64 as u64) << 16
            | 1 << 32 // IST1
            | (0x8e | gate_dpl(v) << 5) << 40
            | ((off >> 16) & 0xffff) << 48;
        out.extend_from_slice(&lo.to_le_bytes());
        out.extend_from_slice(&(off >> 32).to_le_bytes());
    }
    out
}

fn idt32(stubs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    for v in 0..256u64 {
        let off = stubs + 16 * v;
        let d = (off & 0xffff)
            | (sel::CODE32 as u64) << 16
            | (0x8e | gate_dpl(v) << 5) << 40
            | ((off >> 16) & 0xffff) << 48;
        out.extend_from_slice(&d.to_le_bytes());
    }
    out
}

/// PML4, PDPT and four PDs identity-mapping 4 GiB with 2-MiB pages, and the
/// same 4 GiB again at [`USER_ALIAS`] as user pages. The PDPT and PD entries
/// are user entries; PML4E 0 decides whether the identity map is (U/S is the
/// AND of all levels, SDM Vol. 3A 4.6.1).
fn page_tables(user: bool) -> Vec<u8> {
    let u = if user { 4 } else { 0 };
    let mut t = vec![0u64; 512 * 6];
    t[0] = PDPT | 3 | u;
    t[(USER_ALIAS >> 39) as usize] = PDPT | 7;
    for i in 0..4 {
        t[512 + i] = (PD + 4096 * i as u64) | 7;
    }
    for i in 0..2048u64 {
        t[1024 + i as usize] = (i << 21) | 0x87;
    }
    t.iter().flat_map(|x| x.to_le_bytes()).collect()
}
