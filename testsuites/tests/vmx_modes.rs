//! L2 guests outside 64-bit mode: 32-bit protected mode with PAE paging
//! (PDPTEs loaded by VM entry), 32-bit protected mode without paging and
//! real mode (both with "unrestricted guest" on EPT), task switches (which
//! always exit, SDM Vol. 3C 26.4.2), and event injection through the
//! real-mode IVT.

mod vmx_common;

use guestkit::asm;
use guestkit::layout::{sel, GDT, TSS32};
use guestkit::vmx::{layout, place, poke, vmor, vmw, VmxCase};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use vmx_common::*;
use vmx_model::controls::{EntryControls as En, Proc2Controls as P2};
use vmx_model::exit::qual::{self, TaskSwitchSource};
use vmx_model::Field as F;

const PDPT: u64 = layout::GUEST32_TABLES;
const PD: u64 = layout::GUEST32_TABLES + 0x1000;
/// L2's copy of the kit GDT with an available 32-bit TSS at 68H.
const GDT2: u64 = layout::SPARE;
const NEW_TSS: u16 = 0x68;

/// 32-bit L2 code at [`layout::CODE32`].
fn code32(f: impl Fn(&mut Asm) -> AsmResult) -> Vec<u8> {
    asm::build(32, layout::CODE32, |a| f(a))
        .expect("32-bit guest code")
        .bytes
}

/// Real-mode L2 code at CS:0 with CS base [`layout::CODE16`].
fn code16(f: impl Fn(&mut Asm) -> AsmResult) -> Vec<u8> {
    asm::build(16, 0, |a| f(a))
        .expect("16-bit guest code")
        .bytes
}

/// Guest segments: (selector, base, limit, access rights) for CS, then SS,
/// DS, ES, FS, GS alike.
fn segments(a: &mut Asm, code: [u64; 4], data: [u64; 4]) -> AsmResult {
    let cs_f = [
        F::GuestCsSelector,
        F::GuestCsBase,
        F::GuestCsLimit,
        F::GuestCsAccessRights,
    ];
    for (f, v) in cs_f.into_iter().zip(code) {
        vmw(a, f, v)?;
    }
    for fields in [
        [
            F::GuestSsSelector,
            F::GuestSsBase,
            F::GuestSsLimit,
            F::GuestSsAccessRights,
        ],
        [
            F::GuestDsSelector,
            F::GuestDsBase,
            F::GuestDsLimit,
            F::GuestDsAccessRights,
        ],
        [
            F::GuestEsSelector,
            F::GuestEsBase,
            F::GuestEsLimit,
            F::GuestEsAccessRights,
        ],
        [
            F::GuestFsSelector,
            F::GuestFsBase,
            F::GuestFsLimit,
            F::GuestFsAccessRights,
        ],
        [
            F::GuestGsSelector,
            F::GuestGsBase,
            F::GuestGsLimit,
            F::GuestGsAccessRights,
        ],
    ] {
        for (f, v) in fields.into_iter().zip(data) {
            vmw(a, f, v)?;
        }
    }
    Ok(())
}

/// Leaves IA-32e mode for the guest: no "IA-32e mode guest", EFER 0, a
/// 32-bit busy TSS and L2's GDT copy.
fn not_ia32e(a: &mut Asm) -> AsmResult {
    vmw(a, F::GuestEfer, 0)?;
    guestkit::vmx::vmclr(a, F::EntryControls, En::IA32E_MODE_GUEST.bits() as u64)?;
    vmw(a, F::GuestTrSelector, sel::TSS32 as u64)?;
    vmw(a, F::GuestTrBase, TSS32)?;
    vmw(a, F::GuestTrAccessRights, 0x8b)?;
    // L2's GDT: the kit's plus an available 32-bit TSS (type 9).
    a.cld()?;
    a.mov(rsi, GDT)?;
    a.mov(rdi, GDT2)?;
    a.mov(ecx, 0x68i32)?;
    a.rep().movsb()?;
    let tss = (0x67u64) | (TSS32 & 0xff_ffff) << 16 | 0x89u64 << 40 | (TSS32 >> 24) << 56;
    poke(a, GDT2 + NEW_TSS as u64, tss)?;
    vmw(a, F::GuestGdtrBase, GDT2)?;
    vmw(a, F::GuestGdtrLimit, 0x6f)?;
    vmw(a, F::GuestIdtrLimit, 0)
}

/// 32-bit protected mode with PAE paging: 2-MiB identity pages for 0-1 GiB.
fn pae32(a: &mut Asm, code: &[u8]) -> AsmResult {
    not_ia32e(a)?;
    place(a, layout::CODE32, code)?;
    for i in 0..4 {
        poke(a, PDPT + 8 * i, 0)?;
    }
    poke(a, PDPT, PD | 1)?;
    let mut lp = a.label();
    a.mov(rdi, PD)?;
    a.mov(eax, 0x83i32)?;
    a.mov(ecx, 512i32)?;
    a.set(&mut lp)?;
    a.mov(qword_ptr(rdi), rax)?;
    a.add(rdi, 8i32)?;
    a.add(rax, 0x20_0000i32)?;
    a.dec(ecx)?;
    a.jnz(lp.l)?;
    vmw(a, F::GuestCr3, PDPT)?;
    segments(
        a,
        [sel::CODE32 as u64, 0, 0xffff_ffff, 0xc09b],
        [sel::DATA as u64, 0, 0xffff_ffff, 0xc093],
    )?;
    vmw(a, F::GuestRip, layout::CODE32)
}

fn unrestricted(a: &mut Asm) -> AsmResult {
    vmor(
        a,
        F::SecondaryProcBasedControls,
        (P2::ENABLE_EPT | P2::UNRESTRICTED_GUEST).bits() as u64,
    )?;
    vmw(a, F::EptPointer, layout::EPTP)
}

/// Real mode at CS = 9000H (base [`layout::CODE16`]), SS = 9000H, SP FFF0H.
fn real_mode(a: &mut Asm, code: &[u8]) -> AsmResult {
    not_ia32e(a)?;
    unrestricted(a)?;
    place(a, layout::CODE16, code)?;
    let seg = layout::CODE16 >> 4;
    segments(
        a,
        [seg, layout::CODE16, 0xffff, 0x9b],
        [seg, layout::CODE16, 0xffff, 0x93],
    )?;
    vmw(a, F::GuestCr0, 0x30)?;
    vmw(a, F::GuestCr4, 0x2000)?;
    vmw(a, F::GuestRip, 0)?;
    vmw(a, F::GuestRsp, 0xfff0)?;
    vmw(a, F::GuestIdtrBase, 0)?;
    vmw(a, F::GuestIdtrLimit, 0x3ff)
}

fn protected(t: &mut Table) {
    let code = code32(|a| {
        a.mov(ebx, dword_ptr(layout::GUEST_DATA))?;
        a.mov(eax, 0x1234i32)?;
        a.cpuid()?;
        a.mov(rcx_as32(), cr4)?;
        a.vmcall()
    });
    t.case(
        VmxCase::guest("32-bit L2 with PAE paging", |a, _| a.ud2()).setup(move |a, _| {
            poke(a, layout::GUEST_DATA, 0x5a5a)?;
            pae32(a, &code)
        }),
        vec![
            reason(0, 10),
            field(0, "RIP", |e| e.rip, layout::CODE32 + 11),
            len(0, 2),
            low(3, 0x5a5a),
            that("CR4.PAE", |r| r.gprs[1] & 0x20 != 0),
            ends_with_vmcall(),
            exits(2),
        ],
    );
    let code = code32(|a| {
        a.mov(eax, cr0)?;
        a.mov(ebx, dword_ptr(layout::GUEST_DATA))?;
        a.vmcall()
    });
    t.case(
        VmxCase::guest("32-bit L2 without paging (unrestricted guest)", |a, _| {
            a.ud2()
        })
        .setup(move |a, _| {
            poke(a, layout::GUEST_DATA, 0x6b6b)?;
            pae32(a, &code)?;
            unrestricted(a)?;
            vmw(a, F::GuestCr0, 0x31)
        }),
        vec![
            reason(0, 18),
            low(3, 0x6b6b),
            that("CR0.PG clear", |r| r.gprs[0] & 0x8000_0000 == 0),
        ],
    );
    for (name, far_call) in [
        ("task switch by JMP far", false),
        ("task switch by CALL far", true),
    ] {
        let code = code32(move |a| {
            if far_call {
                a.call_far(NEW_TSS, 0)
            } else {
                a.jmp_far(NEW_TSS, 0)
            }
        });
        let src = if far_call {
            TaskSwitchSource::Call
        } else {
            TaskSwitchSource::Jmp
        };
        t.case(
            VmxCase::guest(name, |a, _| a.ud2())
                .setup(move |a, _| pae32(a, &code))
                .on_exit(|a, rt| a.jmp(rt.finish.l)),
            vec![
                reason(0, 9),
                qual(0, qual::task_switch(NEW_TSS, src)),
                len(0, 7),
                field(0, "RIP", |e| e.rip, layout::CODE32),
                exits(1),
            ],
        );
    }
}

/// A PAE guest under EPT reloads its PDPTEs through EPT: L1 maps the
/// guest-physical page of L2's PDPT onto another page whose PDPTE 1 maps
/// VA 1 GiB, so only a PDPT load through EPT makes that address work.
fn pdptes_through_ept(t: &mut Table) {
    const REGION: u64 = 0x180_0000;
    const ALT_PDPT: u64 = 0x187_0000;
    const ALT_PD: u64 = 0x187_1000;
    let code = code32(|a| {
        a.mov(eax, cr3)?;
        a.mov(cr3, eax)?;
        a.mov(ebx, dword_ptr(0x4004_0000u64))?;
        a.vmcall()
    });
    t.case(
        VmxCase::guest("PAE guest: MOV CR3 loads PDPTEs through EPT", |a, _| {
            a.ud2()
        })
        .setup(move |a, _| {
            poke(a, layout::GUEST_DATA, 0x3c3c)?;
            pae32(a, &code)?;
            // 4-KiB EPT mappings for the 2-MiB region of the tables.
            let mut lp = a.label();
            a.mov(rdi, layout::EPT_PT)?;
            a.mov(rax, REGION | 0x37)?;
            a.mov(ecx, 512i32)?;
            a.set(&mut lp)?;
            a.mov(qword_ptr(rdi), rax)?;
            a.add(rdi, 8i32)?;
            a.add(rax, 0x1000i32)?;
            a.dec(ecx)?;
            a.jnz(lp.l)?;
            poke(a, layout::EPT_PD + 8 * (REGION >> 21), layout::EPT_PT | 7)?;
            poke(
                a,
                layout::EPT_PT + 8 * ((PDPT - REGION) >> 12),
                ALT_PDPT | 0x37,
            )?;
            poke(a, ALT_PDPT, PD | 1)?;
            poke(a, ALT_PDPT + 8, ALT_PD | 1)?;
            poke(a, ALT_PDPT + 16, 0)?;
            poke(a, ALT_PDPT + 24, 0)?;
            poke(a, ALT_PD, REGION | 0x83)?;
            // EPT on; VM entry itself takes the PDPTEs from these fields.
            vmor(
                a,
                F::SecondaryProcBasedControls,
                P2::ENABLE_EPT.bits() as u64,
            )?;
            vmw(a, F::EptPointer, layout::EPTP)?;
            vmw(a, F::GuestPdpte0, PD | 1)?;
            for f in [F::GuestPdpte1, F::GuestPdpte2, F::GuestPdpte3] {
                vmw(a, f, 0)?;
            }
            a.mov(edx, 2i32)?;
            a.invept(rdx, ptr((layout::SCRATCH + 0x10) as u32 as u64))
        }),
        vec![reason(0, 18), low(3, 0x3c3c), exits(1)],
    );
}

fn real(t: &mut Table) {
    let code = code16(|a| {
        a.mov(eax, 0x1234i32)?;
        a.cpuid()?;
        a.mov(bx, word_ptr(0x100))?;
        a.vmcall()
    });
    t.case(
        VmxCase::guest("real-mode L2 (unrestricted guest)", |a, _| a.ud2()).setup(move |a, _| {
            poke(a, layout::CODE16 + 0x100, 0x4242)?;
            real_mode(a, &code)
        }),
        vec![
            reason(0, 10),
            field(0, "RIP", |e| e.rip, 6),
            len(0, 2),
            that("CS base kept", |r| r.exits[0].rip < 0x10000),
            low(3, 0x4242),
            ends_with_vmcall(),
        ],
    );
    // The IVT entry of vector 22H points at 9000:0200, a handler that sets
    // DX and returns; the injected INT 22H returns past its 2 bytes.
    let main = code16(|a| {
        a.nop()?;
        a.nop()?;
        a.mov(cx, 0x99i32)?;
        a.vmcall()
    });
    let handler = code16(|a| {
        a.mov(dx, 0x7777i32)?;
        a.iret()
    });
    t.case(
        VmxCase::guest("real-mode L2: injected INT 22H through the IVT", |a, _| {
            a.ud2()
        })
        .setup(move |a, _| {
            real_mode(a, &main)?;
            place(a, layout::CODE16 + 0x200, &handler)?;
            a.mov(
                dword_ptr(0x22u64 * 4),
                ((layout::CODE16 >> 4) << 16 | 0x200) as i32,
            )?;
            vmw(a, F::EntryInterruptionInfo, 0x8000_0422)?;
            vmw(a, F::EntryInstructionLength, 2)
        }),
        vec![reason(0, 18), low(2, 0x7777), low(1, 0x99), exits(1)],
    );
}

/// The low 16 bits of L2 register `g` (16- and 32-bit guests leave the
/// upper bits as L1 had them).
fn low(g: usize, v: u64) -> Check {
    Box::new(move |r| {
        (r.gprs[g] & 0xffff == v)
            .then_some(())
            .ok_or_else(|| format!("L2 gpr{g} = {:#x}, expected low 16 bits {v:#x}", r.gprs[g]))
    })
}

fn rcx_as32() -> AsmRegister32 {
    ecx
}

#[test]
fn guests_outside_64_bit_mode() {
    let mut t = Table::default();
    protected(&mut t);
    pdptes_through_ept(&mut t);
    real(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx guest modes: {n} cases passed");
}
