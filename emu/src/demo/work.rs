//! The demo's work: a memory-heavy loop with paging on, the same bytes
//! whether it runs as the kernel itself (native), inside the L1 hypervisor,
//! or as an L2 guest.
//!
//! The work has its own 4-level page tables ([`build_tables`]): the low
//! gigabyte identity-mapped with the kit's 2-MiB pages (code, stacks, the
//! kit's tables), and a data region at [`DATA_VA`] mapped with 4-KiB pages to
//! a permutation of the frames from [`DATA_GPA`], so neighbouring pages of
//! the loop are scattered in (guest-)physical memory. The loop walks the
//! region with a stride of a page plus 8 bytes, so once the region is larger
//! than the TLBs reach nearly every access misses and walks: the cost of
//! paging is what the demo measures.
//!
//! Each round ends with CPUID and a progress dot on COM1, which a
//! hypervisor intercepts (CPUID and I/O exits), and the run ends by printing
//! the checksum and comparing it with the one computed here in Rust.
//! Optionally the loop moves CR3 between two address spaces (two PML4s with
//! the same mappings, as two processes sharing memory) every few
//! iterations: a context switch, which flushes the TLB, and which a
//! shadow-paging hypervisor must intercept.

use guestkit::layout::{var, PD, VARS};
use guestkit::{Asm, AsmResult, Rt64};
use iced_x86::code_asm::*;

/// The linear address of the data region.
pub const DATA_VA: u64 = 0x4000_0000;
/// The (guest-)physical address of its first frame.
pub const DATA_GPA: u64 = 0x400_0000;
/// The work's PML4 (address space A).
pub const WORK_PML4: u64 = 0x50_0000;
/// The second address space's PML4 (B): the same mappings.
pub const WORK_PML4_B: u64 = 0x50_1000;
/// The PDPT both PML4s point to.
pub const WORK_PDPT: u64 = 0x50_2000;
/// The page directory of the data region.
pub const WORK_PD: u64 = 0x50_3000;
/// The first page table of the data region (one per 2 MiB).
pub const WORK_PT: u64 = 0x50_4000;
/// The largest data region.
pub const MAX_DATA: u64 = 32 << 20;
/// The page permutation's multiplier (odd: a bijection of any power of two).
const PERM: u64 = 167;
/// The loop's stride: a page and a word.
pub const STRIDE: u64 = 4104;

// The work's tables end below the hypervisor's nested tables.
const _: () = assert!(WORK_PT + (MAX_DATA >> 21) * 4096 <= super::hv::NESTED_ROOT);

/// How much work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// Bytes of the data region (a power of two, 2 MiB to [`MAX_DATA`]).
    pub data_bytes: u64,
    /// Rounds (each ends with CPUID and a dot).
    pub rounds: u32,
    /// Loop iterations per round.
    pub per_round: u32,
    /// Move CR3 to the other address space every this many iterations.
    pub switch_every: Option<u32>,
}

impl Work {
    /// 4-KiB pages in the data region.
    pub fn pages(&self) -> u64 {
        self.data_bytes >> 12
    }

    /// Loop iterations in all.
    pub fn iterations(&self) -> u64 {
        self.rounds as u64 * self.per_round as u64
    }

    /// The checksum the loop computes, and the data it leaves (by word of
    /// the linear region).
    pub fn expected(&self) -> u64 {
        let mut mem = vec![0u64; (self.data_bytes / 8) as usize];
        let mut sum = 0u64;
        for i in 0..self.iterations() {
            let off = (i.wrapping_mul(STRIDE) & (self.data_bytes - 8)) as usize / 8;
            let v = mem[off].wrapping_mul(31).wrapping_add(i);
            mem[off] = v;
            sum = sum.wrapping_add(v);
        }
        sum
    }

    /// The guest-physical frame of data page `page`.
    pub fn frame_of(&self, page: u64) -> u64 {
        DATA_GPA + ((page * PERM) & (self.pages() - 1)) * 4096
    }

    fn check(&self) {
        assert!(
            self.data_bytes.is_power_of_two() && (2 << 20..=MAX_DATA).contains(&self.data_bytes),
            "the data region is a power of two from 2 MiB to 32 MiB"
        );
    }
}

/// Emits code that builds the work's page tables (clobbers RAX, RCX, RDI).
pub fn build_tables(a: &mut Asm, w: &Work) -> AsmResult {
    w.check();
    let pts = w.data_bytes >> 21;
    a.cld()?;
    a.xor(eax, eax)?;
    a.mov(rdi, WORK_PML4)?;
    a.mov(ecx, ((WORK_PT + pts * 4096 - WORK_PML4) / 8) as i32)?;
    a.rep().stosq()?;
    a.mov(qword_ptr(WORK_PML4), (WORK_PDPT | 3) as i32)?;
    a.mov(qword_ptr(WORK_PML4_B), (WORK_PDPT | 3) as i32)?;
    a.mov(qword_ptr(WORK_PDPT), (PD | 3) as i32)?;
    a.mov(
        qword_ptr(WORK_PDPT + 8 * (DATA_VA >> 30)),
        (WORK_PD | 3) as i32,
    )?;
    for k in 0..pts {
        a.mov(
            qword_ptr(WORK_PD + 8 * k),
            ((WORK_PT + 4096 * k) | 3) as i32,
        )?;
    }
    // PT[p] = frame_of(p) | P | W.
    let mut lp = a.label();
    a.xor(ecx, ecx)?;
    a.set(&mut lp)?;
    a.imul_3(eax, ecx, PERM as i32)?;
    a.and(eax, (w.pages() - 1) as i32)?;
    a.shl(eax, 12i32)?;
    a.add(eax, (DATA_GPA | 3) as i32)?;
    a.mov(qword_ptr(rcx * 8 + WORK_PT as i32), rax)?;
    a.inc(ecx)?;
    a.cmp(ecx, w.pages() as i32)?;
    a.jb(lp.l)
}

/// Emits code that does the work where it stands, with no guest: prints
/// `announce`, builds the work's tables, calls the work on them and puts
/// the caller's CR3 back (the native run and the hypervisors' "L1 alone").
pub fn run_here(a: &mut Asm, rt: &Rt64, w: &Work, announce: &str) -> AsmResult {
    print(a, rt, announce)?;
    build_tables(a, w)?;
    let work_fn = emit(a, rt, w)?;
    a.mov(rax, cr3)?;
    a.push(rax)?;
    a.mov(eax, WORK_PML4 as i32)?;
    a.mov(cr3, rax)?;
    a.call(work_fn.l)?;
    a.pop(rax)?;
    a.mov(cr3, rax)
}

/// Emits a string inline (jumped over) and prints it.
pub fn print(a: &mut Asm, rt: &Rt64, text: &str) -> AsmResult {
    let mut msg = a.label();
    let mut over = a.label();
    a.lea(rsi, ptr(msg.l))?;
    a.call(rt.puts.l)?;
    a.jmp(over.l)?;
    a.set(&mut msg)?;
    let mut b = text.as_bytes().to_vec();
    b.push(0);
    a.db(&b)?;
    a.set(&mut over)
}

/// Emits the work as a subroutine and returns its label. The caller has
/// loaded CR3 with [`WORK_PML4`]. Clobbers every general register but RSP;
/// counts a wrong checksum in the kit's failure count.
pub fn emit(a: &mut Asm, rt: &Rt64, w: &Work) -> Result<guestkit::Label, IcedError> {
    w.check();
    let mut work = a.label();
    let mut over = a.label();
    let mut round = a.label();
    let mut inner = a.label();
    let mut good = a.label();
    a.jmp(over.l)?;
    a.set(&mut work)?;
    a.xor(ebx, ebx)?;
    a.xor(r8d, r8d)?;
    a.mov(r12d, w.rounds as i32)?;
    a.mov(r11d, WORK_PML4 as i32)?;
    a.mov(r10d, w.switch_every.unwrap_or(u32::MAX) as i32)?;
    a.set(&mut round)?;
    a.mov(r9d, w.per_round as i32)?;
    a.set(&mut inner)?;
    // v = [DATA_VA + (i * STRIDE mod size)] * 31 + i; store; sum += v.
    a.imul_3(rdi, r8, STRIDE as i32)?;
    a.and(edi, (w.data_bytes - 8) as i32)?;
    a.add(rdi, DATA_VA as i32)?;
    a.imul_3(rdx, qword_ptr(rdi), 31)?;
    a.add(rdx, r8)?;
    a.mov(qword_ptr(rdi), rdx)?;
    a.add(rbx, rdx)?;
    a.inc(r8)?;
    if let Some(n) = w.switch_every {
        // A context switch every `n` iterations.
        let mut stay = a.label();
        a.dec(r10d)?;
        a.jnz(stay.l)?;
        a.mov(r10d, n as i32)?;
        a.xor(r11d, (WORK_PML4 ^ WORK_PML4_B) as i32)?;
        a.mov(cr3, r11)?;
        a.set(&mut stay)?;
    }
    a.dec(r9d)?;
    a.jnz(inner.l)?;
    // End of round: ask the platform (CPUID) and show progress.
    a.mov(r14, rbx)?;
    a.xor(eax, eax)?;
    a.cpuid()?;
    a.mov(rbx, r14)?;
    a.mov(al, b'.' as i32)?;
    a.call(rt.putc.l)?;
    a.dec(r12d)?;
    a.jnz(round.l)?;
    print(a, rt, " checksum 0x")?;
    a.mov(rax, rbx)?;
    a.call(rt.put_hex.l)?;
    a.mov(rcx, w.expected())?;
    a.cmp(rbx, rcx)?;
    a.je(good.l)?;
    a.inc(qword_ptr((VARS + var::FAILS) as u32 as u64))?;
    print(a, rt, " WRONG\n")?;
    a.ret()?;
    a.set(&mut good)?;
    print(a, rt, " (right)\n")?;
    a.ret()?;
    a.set(&mut over)?;
    Ok(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_is_a_bijection() {
        let w = Work {
            data_bytes: 4 << 20,
            rounds: 1,
            per_round: 1,
            switch_every: None,
        };
        let mut seen = std::collections::BTreeSet::new();
        for p in 0..w.pages() {
            let f = w.frame_of(p);
            assert!((DATA_GPA..DATA_GPA + w.data_bytes).contains(&f));
            assert!(seen.insert(f));
        }
    }
}
