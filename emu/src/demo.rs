//! The built-in demo (`nestemu`, `nestemu demo`, `cargo run --release`).
//!
//! Until the nested (L1 hypervisor + L2 guest) demo exists, it boots a bundled
//! guest that shows the machine working: Multiboot entry, real mode, protected
//! mode and long mode with paging; a sieve of Eratosthenes over 8 MiB of
//! memory; CPUID; output on COM1; and a summary of what the run cost.

use crate::cli::EXIT_USAGE;
use crate::cpu::cpuid::CpuModel;
use crate::event::Stop;
use crate::machine::{Machine, MachineConfig};
use guestkit::{Asm, AsmResult, Program, Rt64};
use iced_x86::code_asm::*;

/// Bytes the sieve covers.
pub const SIEVE_BYTES: u64 = 8 << 20;
/// Where the sieve lives.
const SIEVE_BASE: u64 = 0x200_0000;

/// Emits a string inline (jumping over it) and prints it.
fn print(a: &mut Asm, rt: &Rt64, text: &str) -> AsmResult {
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

/// The demo guest.
pub fn program() -> Program {
    let mut p = Program::new();
    p.real_case("real mode", |a| {
        a.mov(ax, 0x1234i32)?;
        a.add(ax, ax)
    });
    p.prot_case("protected mode", |a| {
        a.mov(eax, 0x1234_5678i32)?;
        a.bswap(eax)
    });
    p.body64(|a, rt| {
        print(
            a,
            rt,
            "nestemu demo: Multiboot -> real mode -> protected mode -> long mode\n",
        )?;
        // CPUID vendor string.
        print(a, rt, "CPU vendor: ")?;
        a.xor(eax, eax)?;
        a.cpuid()?;
        for r in [ebx, edx, ecx] {
            for k in 0..4 {
                a.mov(eax, r)?;
                if k > 0 {
                    a.shr(eax, 8 * k)?;
                }
                a.call(rt.putc.l)?;
            }
        }
        print(
            a,
            rt,
            "\nsieve of Eratosthenes over 8 MiB with paging on...\n",
        )?;
        // Clear the sieve: byte k stands for the number k.
        a.mov(rdi, SIEVE_BASE)?;
        a.mov(rcx, SIEVE_BYTES)?;
        a.xor(eax, eax)?;
        a.rep().stosb()?;
        // for i in 2.. while i*i < N: if !s[i] { for j in i*i..N step i: s[j] = 1 }
        let mut outer = a.label();
        let mut inner = a.label();
        let mut next = a.label();
        let mut count = a.label();
        let mut count_loop = a.label();
        let mut skip = a.label();
        a.mov(rbx, SIEVE_BASE)?;
        a.mov(r8, 2u64)?;
        a.set(&mut outer)?;
        a.mov(rax, r8)?;
        a.imul_2(rax, r8)?;
        a.cmp(rax, SIEVE_BYTES as i32)?;
        a.jae(count.l)?;
        a.cmp(byte_ptr(rbx + r8), 0i32)?;
        a.jne(next.l)?;
        a.set(&mut inner)?;
        a.mov(byte_ptr(rbx + rax), 1i32)?;
        a.add(rax, r8)?;
        a.cmp(rax, SIEVE_BYTES as i32)?;
        a.jb(inner.l)?;
        a.set(&mut next)?;
        a.inc(r8)?;
        a.jmp(outer.l)?;
        // Count the primes.
        a.set(&mut count)?;
        a.xor(edx, edx)?;
        a.mov(rcx, 2u64)?;
        a.set(&mut count_loop)?;
        a.cmp(byte_ptr(rbx + rcx), 0i32)?;
        a.jne(skip.l)?;
        a.inc(rdx)?;
        a.set(&mut skip)?;
        a.inc(rcx)?;
        a.cmp(rcx, SIEVE_BYTES as i32)?;
        a.jb(count_loop.l)?;
        print(a, rt, "primes below 8388608: 0x")?;
        a.mov(rax, rdx)?;
        a.call(rt.put_hex.l)?;
        print(a, rt, " (expected 0x0000000000089BC3)\n")
    });
    p
}

/// The number of primes below [`SIEVE_BYTES`], which the guest prints.
pub const PRIMES_BELOW: u64 = 564_163;

/// Builds the demo machine for a CPU preset.
pub fn machine(cpu: &str) -> Result<Machine, String> {
    let model = CpuModel::preset(cpu).ok_or_else(|| format!("unknown CPU model '{cpu}'"))?;
    let built = program().build()?;
    let mut m = Machine::new(MachineConfig {
        model,
        mem_bytes: 64 << 20,
        max_insns: Some(2_000_000_000),
        ..Default::default()
    });
    crate::loader::multiboot::boot(&mut m, &built.image, "demo", &[]).map_err(|e| e.0)?;
    Ok(m)
}

/// Runs the demo and returns the exit status (0 when the guest passed).
pub fn run(cpu: &str) -> i32 {
    let mut m = match machine(cpu) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("nestemu: {e}");
            return EXIT_USAGE;
        }
    };
    let start = std::time::Instant::now();
    let mut out = std::io::stdout();
    let stop = match crate::cli::run_machine(&mut m, &mut out) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nestemu: writing output failed: {e}");
            return EXIT_USAGE;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "nestemu demo: {} instructions, {} modelled cycles, {} TLB misses; {:.0} MIPS on this host ({:.2} s)",
        m.stats.instructions,
        m.stats.cycles,
        m.mmu.counters().dtlb.misses + m.mmu.counters().itlb.misses,
        m.stats.instructions as f64 / secs / 1e6,
        secs
    );
    match stop {
        Stop::DebugExit(0) => 0,
        other => {
            eprintln!("nestemu: demo ended unexpectedly: {}", other.describe());
            other.exit_status().max(1)
        }
    }
}
