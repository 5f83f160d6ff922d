//! The whole-run workloads of issue 7, as guest programs built with the kit:
//! (a) an integer loop, (b) a memory loop over more 4-KiB pages than the
//! TLBs hold, (c) that loop in an L2 under EPT, (d) in an L2 under NPT,
//! (e) an L2 VMCALL loop with an L1 handler that does a few VMREADs and a
//! VMRESUME, (f) the same on SVM with VMMCALL and VMRUN, (g) the built-in
//! demo.
//!
//! Each program ends by writing "Shutdown" to port 8900H (Bochs' shutdown
//! port; nothing on nestemu or QEMU) and then exits through isa-debug-exit,
//! so the same image ends a run on every emulator the comparison drives.

use guestkit::svm as ksvm;
use guestkit::vmx::{vmor, VmxCase, VmxSuite};
use guestkit::{Asm, AsmResult, Program};
use iced_x86::code_asm::*;
use vmx_model::controls::Proc2Controls as P2;
use vmx_model::Field as F;

/// Linear address of the memory loop's data (GiB 1, mapped with 4-KiB
/// pages by the loop itself).
const DATA_VA: u64 = 0x4000_0000;
/// Physical address of the memory loop's page tables.
const DATA_PT: u64 = 0x300_0000;
/// Physical address of the memory loop's data.
const DATA_PA: u64 = 0x400_0000;
/// Pages the memory loop touches: more than any TLB level of the presets
/// holds, so every access misses.
pub const MEM_PAGES: u64 = 4096;
/// The kit's page directory of GiB 1.
const PD_GIB1: u64 = guestkit::layout::PD + 0x1000;

/// Instructions one round of the memory loop retires per page.
pub const MEM_INSNS_PER_PAGE: u64 = 4;

/// Writes "Shutdown" to port 8900H (clobbers EAX, EDX, ESI, ECX).
fn bochs_shutdown(a: &mut Asm) -> AsmResult {
    a.mov(edx, 0x8900i32)?;
    for b in b"Shutdown" {
        a.mov(al, *b as u32)?;
        a.out(dx, al)?;
    }
    Ok(())
}

/// (a) `iterations` rounds of five ALU/branch instructions.
pub fn integer_loop(iterations: u64) -> Program {
    let mut p = Program::new();
    p.body64(move |a, _rt| {
        let mut top = a.label();
        a.mov(rcx, iterations)?;
        a.xor(eax, eax)?;
        a.mov(rbx, 0x1234_5678u64)?;
        a.set(&mut top)?;
        a.add(rax, rcx)?;
        a.xor(rdx, rax)?;
        a.sub(rbx, 1i32)?;
        a.dec(rcx)?;
        a.jnz(top.l)?;
        bochs_shutdown(a)
    });
    p
}

/// The memory loop: maps [`MEM_PAGES`] 4-KiB pages at [`DATA_VA`] through
/// page tables it writes into the kit's page directory of GiB 1, then reads
/// one qword of every page per round, `rounds` times (clobbers RAX, RCX,
/// RSI, RDI, R8, R9).
fn memory_loop(a: &mut Asm, rounds: u64) -> AsmResult {
    // PTEs: page i at DATA_PA + i * 4 KiB, present, writable.
    let mut fill = a.label();
    a.mov(rdi, DATA_PT)?;
    a.mov(rax, DATA_PA | 3)?;
    a.mov(ecx, MEM_PAGES as i32)?;
    a.set(&mut fill)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(fill.l)?;
    // PDEs of GiB 1 point at the page tables.
    let mut pde = a.label();
    a.mov(rdi, PD_GIB1)?;
    a.mov(rax, DATA_PT | 3)?;
    a.mov(ecx, (MEM_PAGES / 512) as i32)?;
    a.set(&mut pde)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(pde.l)?;
    // The loop: one read per page, every page per round.
    let mut round = a.label();
    let mut page = a.label();
    a.xor(eax, eax)?;
    a.mov(r9, rounds)?;
    a.set(&mut round)?;
    a.mov(rsi, DATA_VA)?;
    a.mov(ecx, MEM_PAGES as i32)?;
    a.set(&mut page)?;
    a.add(rax, qword_ptr(rsi))?;
    a.add(rsi, 0x1000i32)?;
    a.dec(ecx)?;
    a.jnz(page.l)?;
    a.dec(r9)?;
    a.jnz(round.l)
}

/// (b) The memory loop with paging on.
pub fn memory(rounds: u64) -> Program {
    let mut p = Program::new();
    p.body64(move |a, _rt| {
        memory_loop(a, rounds)?;
        bochs_shutdown(a)
    });
    p
}

/// (c) The memory loop in an L2 under EPT (the kit's identity EPT, 2-MiB
/// pages over 0-4 GiB, whose pointer the kit's VMCS holds; VPID 1). The
/// case sets "enable EPT" itself: the kit's guest controls leave it clear.
pub fn memory_ept(rounds: u64) -> Program {
    let mut s = VmxSuite::new();
    s.push(
        VmxCase::guest("memory loop under EPT", move |a, _| memory_loop(a, rounds)).setup(
            |a, _| {
                vmor(
                    a,
                    F::SecondaryProcBasedControls,
                    (P2::ENABLE_VPID | P2::ENABLE_EPT).bits() as u64,
                )
            },
        ),
    );
    let mut p = s.into_program();
    p.body64(|a, _| bochs_shutdown(a));
    p
}

/// [`ksvm::npt_guest_program`], ending with the Bochs shutdown.
fn svm_guest(
    l2: impl Fn(&mut Asm) -> AsmResult + 'static,
    l1: impl Fn(&mut Asm) -> AsmResult + 'static,
) -> Program {
    let mut p = ksvm::npt_guest_program("svm workload", l2, l1);
    p.body64(|a, _| bochs_shutdown(a));
    p
}

/// (d) The memory loop in an L2 under NPT.
pub fn memory_npt(rounds: u64) -> Program {
    svm_guest(move |a| memory_loop(a, rounds), |_| Ok(()))
}

/// (e) [`VmxCase::vmcall_loop`] with VPID 1: L2 does `calls` VMCALLs; L1's
/// exit handler reads the guest RIP and the instruction length, writes RIP
/// past the VMCALL and resumes.
pub fn vmcall_loop(calls: u64) -> Program {
    let mut s = VmxSuite::new();
    s.push(VmxCase::vmcall_loop(calls, true));
    let mut p = s.into_program();
    p.body64(|a, _| bochs_shutdown(a));
    p
}

/// (f) L2 does `calls` VMMCALLs; L1 reads the guest RIP from the VMCB,
/// advances it past the 3-byte VMMCALL, writes it back and runs VMRUN again.
///
/// L1 does not read NRIP: QEMU's TCG (7.2) does not implement NRIP saving,
/// so an NRIP-reading L1 resumed its guest at address 0 there and the QEMU
/// figures measured nothing. RIP + 3 is the same VMCB traffic (one read,
/// one write) on every emulator.
pub fn vmmcall_loop(calls: u64) -> Program {
    svm_guest(
        move |a| {
            let mut lp = a.label();
            a.mov(r15, calls)?;
            a.set(&mut lp)?;
            a.vmmcall()?;
            a.dec(r15)?;
            a.jnz(lp.l)
        },
        ksvm::skip_vmmcall,
    )
}

/// (g) The built-in demo's work, run natively (no hypervisor).
pub fn demo() -> Program {
    let mut p = nestemu::demo::program(
        nestemu::cpu::cpuid::Vendor::Intel,
        nestemu::demo::Setup::Native,
        nestemu::demo::NESTED_WORK,
    );
    p.body64(|a, _| bochs_shutdown(a));
    p
}

/// Writes one qword in every 4-KiB page of `bytes` from physical (and
/// identity-linear) address `base`: the memory bench's 100 MiB.
pub fn touch(base: u64, bytes: u64) -> Program {
    let mut p = Program::new();
    p.body64(move |a, _rt| {
        let mut lp = a.label();
        a.mov(rdi, base)?;
        a.mov(rcx, bytes / 4096)?;
        a.set(&mut lp)?;
        a.mov(qword_ptr(rdi), rcx)?;
        a.add(rdi, 4096i32)?;
        a.dec(rcx)?;
        a.jnz(lp.l)
    });
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestemu::cpu::cpuid::CpuModel;
    use nestemu::loader::multiboot;
    use nestemu::Machine;

    /// Runs `p` and returns the machine's MMU totals: (walks, guest
    /// references, nested references).
    fn walks(p: &Program, amd: bool) -> (u64, u64, u64) {
        let built = p.build().expect("the workload builds");
        let mut cfg = crate::config();
        cfg.mem_bytes = 256 << 20;
        if amd {
            cfg.model = CpuModel::preset("amd").expect("the amd preset");
        }
        let mut m = Machine::new(cfg);
        multiboot::boot(&mut m, &built.image, "bench", &[]).expect("loads");
        let stop = m.run();
        assert!(crate::ended(&stop), "{stop:?}");
        let t = m.mmu_totals();
        (t.walks, t.guest_refs, t.nested_refs)
    }

    /// The nested memory loops (c) and (d) make a 2-D walk on their TLB
    /// misses: each of the loop's walks adds nested references, which a
    /// loop run without EPT or NPT would not.
    #[test]
    fn nested_memory_loops_walk_in_two_dimensions() {
        for (name, p, amd) in [
            ("(c) EPT", memory_ept(2), false),
            ("(d) NPT", memory_npt(2), true),
        ] {
            let (walks, guest, nested) = walks(&p, amd);
            let pages = 2 * MEM_PAGES;
            assert!(walks >= pages, "{name}: {walks} walks");
            assert!(guest >= pages, "{name}: {guest} guest references");
            assert!(nested >= pages, "{name}: {nested} nested references");
        }
        let (_, _, plain) = walks(&memory(2), false);
        assert_eq!(plain, 0, "(b) makes no nested references");
    }
}
