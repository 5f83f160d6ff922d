//! Nested paging and ASIDs (APM Vol. 2 15.25, 15.16): an L1 hypervisor with
//! nested page tables remaps guest-physical memory, takes #NPF with its
//! EXITINFO1 (present, write, user, final translation or guest table walk)
//! and EXITINFO2, sees a #NPF during event delivery recorded in EXITINTINFO,
//! relies on ASID tagging and TLB_CONTROL, and uses virtual VMSAVE/VMLOAD
//! whose operand is guest-physical.

mod svm_common;

use guestkit::svm::{self as ksvm, log, NPT_PML4};
use iced_x86::code_asm::*;
use svm_common::*;
use svm_model::vmcb::{EventInj, EventType, Misc2, NestedCtl, VirtExt};
use svm_model::{ExitCode as X, VmcbField as F};
use testsuites::check::{no_exception, that};

/// The nested page directory covering guest-physical 0-1 GiB.
const NPT_PD: u64 = NPT_PML4 + 0x2000;
/// A guest-physical 2-MiB page the cases remap.
const GPA: u64 = 0x60_0000;
/// Where it goes.
const HPA: u64 = 0x80_0000;
/// Another host page.
const HPA2: u64 = 0xa0_0000;
/// A guest-physical 2-MiB page left unmapped.
const HOLE: u64 = 0xc0_0000;

fn pde(gpa: u64) -> AsmMemoryOperand {
    qword_ptr((NPT_PD + (gpa >> 21) * 8) as u32 as u64)
}

/// Identity NPT with GPA -> HPA and HOLE not present, nested paging on.
fn npt(a: &mut Asm) -> AsmResult {
    ksvm::build_identity_npt(a)?;
    a.mov(pde(GPA), (HPA | 0x87) as i32)?;
    a.mov(pde(HOLE), 0i32)?;
    svm::set(a, VMCB, F::NestedCtl, NestedCtl::NP_ENABLE.bits())?;
    svm::set(a, VMCB, F::NCr3, NPT_PML4)
}

fn remapping(s: &mut Suite) {
    icase(
        s,
        "NPT remaps guest-physical memory",
        |a| {
            npt(a)?;
            a.mov(rax, 0x1111_2222_3333_4444u64)?;
            a.mov(qword_ptr(HPA as u32 as u64), rax)?;
            a.mov(qword_ptr(GPA as u32 as u64), 0i32)
        },
        |a| a.mov(rax, GPA),
        |a| {
            a.mov(r11, qword_ptr(rax))?;
            a.mov(qword_ptr(rax + 8), 0x77i32)
        },
        |a| {
            a.mov(r12, qword_ptr((HPA + 8) as u32 as u64))?;
            // L1's own view of the same linear address is untranslated.
            a.mov(r13, qword_ptr(GPA as u32 as u64))
        },
        vec![
            no_exception(),
            code(X::VMEXIT_VMMCALL),
            named("L2 read", 11, 0x1111_2222_3333_4444),
            named("L2 write at the host page", 12, 0x77),
            named("L1 view", 13, 0),
        ],
    );
}

fn npf(s: &mut Suite) {
    icase(
        s,
        "#NPF on a read: not present, user, final translation",
        npt,
        |a| a.mov(rax, HOLE + 0x123),
        |a| a.mov(rbx, qword_ptr(rax)),
        |a| {
            svm::get(a, r11, VMCB, F::GuestInsnBytesFetched)?;
            a.mov(
                r12,
                qword_ptr((VMCB + F::GuestInsnBytes.offset() as u64) as u32 as u64),
            )?;
            a.mov(r13, qword_ptr(r9))
        },
        vec![
            code(X::VMEXIT_NPF),
            on_insn_no_nrip(),
            info1(1 << 32 | 4),
            info2(HOLE + 0x123),
            named("bytes fetched", 11, 15),
            that("bytes are the instruction's", |r| r.gprs[12] == r.gprs[13]),
        ],
    );
    icase(
        s,
        "#NPF on a write to a read-only nested page: present, write",
        |a| {
            npt(a)?;
            a.btr(pde(GPA), 1i32)
        },
        |a| a.mov(rax, GPA),
        |a| a.mov(qword_ptr(rax), rbx),
        nothing,
        vec![
            code(X::VMEXIT_NPF),
            on_insn_no_nrip(),
            info1(1 << 32 | 7),
            info2(GPA),
        ],
    );
    icase(
        s,
        "#NPF walking the guest's page tables: table bit, write",
        |a| {
            npt(a)?;
            // The guest's CR3 points into the hole.
            svm::set(a, VMCB, F::Cr3, HOLE)
        },
        nothing,
        |a| a.nop(),
        nothing,
        vec![code(X::VMEXIT_NPF), info1(1 << 33 | 6), info2(HOLE)],
    );
    icase(
        s,
        "#NPF while delivering an injected interrupt: EXITINTINFO",
        |a| {
            npt(a)?;
            svm::set(a, VMCB, F::IdtrBase, HOLE)?;
            svm::set(
                a,
                VMCB,
                F::EventInj,
                EventInj::new(EventType::Intr, 0x40, None).0,
            )
        },
        nothing,
        |a| a.nop(),
        nothing,
        vec![
            code(X::VMEXIT_NPF),
            info2(HOLE + 0x400),
            intinfo(1 << 31 | 0x40),
        ],
    );
    icase(
        s,
        "#NPF while delivering a guest #UD: EXITINTINFO holds the #UD",
        |a| {
            npt(a)?;
            svm::set(a, VMCB, F::IdtrBase, HOLE)
        },
        nothing,
        |a| a.ud2(),
        nothing,
        vec![
            code(X::VMEXIT_NPF),
            on_insn_no_nrip(),
            info2(HOLE + 0x60),
            intinfo(1 << 31 | 3 << 8 | 6),
        ],
    );
}

/// Runs the L2 code at `l2` again after changing the nested mapping of GPA
/// to HPA2, with `tlb` and `asid`; R11 := what the guest read the first
/// time, R12 the second time.
fn remap_again(a: &mut Asm, s: &Svm, tlb: u64, asid: u64) -> AsmResult {
    let l2 = l2_code(a, |a| {
        a.mov(rax, GPA)?;
        a.mov(r11, qword_ptr(rax))?;
        a.vmmcall()
    })?;
    a.mov(qword_ptr(HPA as u32 as u64), 1i32)?;
    a.mov(qword_ptr(HPA2 as u32 as u64), 2i32)?;
    run_l2(a, s, &l2, npt)?;
    a.mov(r13, r11)?;
    a.mov(pde(GPA), (HPA2 | 0x87) as i32)?;
    svm::set_label(a, VMCB, F::Rip, &l2)?;
    svm::set(a, VMCB, F::TlbControl, tlb)?;
    svm::set(a, VMCB, F::GuestAsid, asid)?;
    ksvm::vmrun(a, VMCB)?;
    a.mov(r12, r11)?;
    a.mov(r11, r13)?;
    read_exit(a, VMCB)
}

fn tlb(s: &mut Suite) {
    for (name, tlb, asid, second) in [
        (
            "no flush: the ASID's cached translation is still used",
            0,
            1,
            1,
        ),
        ("TLB_CONTROL 1 flushes everything", 1, 1, 2),
        ("TLB_CONTROL 3 flushes the guest's ASID", 3, 1, 2),
        ("TLB_CONTROL 7 flushes its non-global entries", 7, 1, 2),
        ("another ASID has no cached translation", 0, 2, 2),
    ] {
        s.case(
            name,
            move |a, s| remap_again(a, s, tlb, asid),
            vec![
                code(X::VMEXIT_VMMCALL),
                named("first read", 11, 1),
                named("second read", 12, second),
            ],
        );
    }
    s.case(
        "INVLPGA from L1 drops the guest's translation",
        |a, s| {
            let l2 = l2_code(a, |a| {
                a.mov(rax, GPA)?;
                a.mov(r11, qword_ptr(rax))?;
                a.vmmcall()
            })?;
            a.mov(qword_ptr(HPA as u32 as u64), 1i32)?;
            a.mov(qword_ptr(HPA2 as u32 as u64), 2i32)?;
            run_l2(a, s, &l2, npt)?;
            a.mov(r13, r11)?;
            a.mov(pde(GPA), (HPA2 | 0x87) as i32)?;
            a.mov(rax, GPA)?;
            a.mov(ecx, 1i32)?;
            a.invlpga()?;
            svm::set_label(a, VMCB, F::Rip, &l2)?;
            ksvm::vmrun(a, VMCB)?;
            a.mov(r12, r11)?;
            a.mov(r11, r13)?;
            read_exit(a, VMCB)
        },
        vec![named("first read", 11, 1), named("second read", 12, 2)],
    );
}

fn virtual_vmsave(s: &mut Suite) {
    icase(
        s,
        "virtual VMSAVE/VMLOAD: the operand is guest-physical",
        |a| {
            npt(a)?;
            svm::set(a, VMCB, F::VirtExt, VirtExt::VMSAVE_VMLOAD_VIRT.bits())?;
            a.mov(
                qword_ptr(HPA as u32 as u64 + F::KernelGsBase.offset() as u64),
                0i32,
            )
        },
        |a| {
            // KernelGsBase := 0x5a5a000, VMSAVE to GPA, which lands at HPA.
            a.mov(ecx, 0xc000_0102u32 as i32)?;
            a.mov(eax, 0x5a5_a000i32)?;
            a.xor(edx, edx)?;
            a.wrmsr()?;
            a.mov(rax, GPA)
        },
        |a| a.vmsave(),
        |a| {
            a.mov(
                r11,
                qword_ptr(HPA as u32 as u64 + F::KernelGsBase.offset() as u64),
            )
        },
        vec![
            code(X::VMEXIT_VMMCALL),
            named("saved at the host page", 11, 0x5a5_a000),
        ],
    );
    icase(
        s,
        "virtual VMSAVE without nested paging exits with its own code",
        |a| svm::set(a, VMCB, F::VirtExt, VirtExt::VMSAVE_VMLOAD_VIRT.bits()),
        |a| a.mov(rax, GPA),
        |a| a.vmsave(),
        nothing,
        vec![code(X::VMEXIT_VMSAVE), on_insn()],
    );
    icase(
        s,
        "VMSAVE intercept beats virtual VMSAVE",
        |a| {
            npt(a)?;
            svm::set(a, VMCB, F::VirtExt, VirtExt::VMSAVE_VMLOAD_VIRT.bits())?;
            svm::or(a, VMCB, F::InterceptMisc2, Misc2::VMSAVE.bits() as u64)
        },
        |a| a.mov(rax, GPA),
        |a| a.vmsave(),
        nothing,
        vec![code(X::VMEXIT_VMSAVE), on_insn()],
    );
    let _ = log::COUNT;
}

#[test]
fn nested_paging_and_asids() {
    let mut s = Suite::new();
    remapping(&mut s);
    npf(&mut s);
    tlb(&mut s);
    virtual_vmsave(&mut s);
    s.run();
}
