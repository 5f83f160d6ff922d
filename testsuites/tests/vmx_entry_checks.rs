//! Every VM-entry check of SDM Vol. 3C 27.2-27.4, end to end: for each
//! `CheckId` of vmx-model's table, an L1 hypervisor writes the known-good
//! VMCS, breaks exactly that rule, executes VMLAUNCH, and records the
//! architectural outcome (VMfailValid(7) or (8) with ZF and the
//! VM-instruction error, or the VM-entry failure exit 33/34 with its
//! qualification). The host side then checks that outcome and that the
//! machine's diagnostic named that rule and that field, in order.
//!
//! Checks of features the default preset does not advertise (APIC
//! virtualization, posted interrupts, PML, VM functions, VMCS shadowing,
//! #VE) run under vmx-model's `everything` preset; the implementation-
//! specific NMI/STI rule under a preset that enables it; the rules about a
//! host outside IA-32e mode with a 32-bit L1.

mod vmx_common;

use guestkit::vmx::{layout, poke, vmclr, vmor, vmw, VmxCase};
use guestkit::{Asm, AsmResult};
use iced_x86::code_asm::*;
use mmu::msr;
use nestemu::MachineConfig;
use testsuites::config;
use vmx_common::*;
use vmx_model::controls::{EntryControls as En, ExitControls as Ex};
use vmx_model::entry::{CheckClass, CheckId as C};
use vmx_model::{Field as F, VmxFeatures};

#[path = "vmx_entry_checks/guest_recipes.rs"]
mod guest_recipes;
#[path = "vmx_entry_checks/recipes.rs"]
mod recipes;

use recipes::*;

fn emit(a: &mut Asm, ops: &[Op]) -> AsmResult {
    for op in ops {
        match *op {
            Set(f, v) => vmw(a, f, v)?,
            Or(f, v) => vmor(a, f, v)?,
            Clear(f, v) => vmclr(a, f, v)?,
            Mem(addr, v) => poke(a, addr, v)?,
            Fill(addr, n) => {
                let mut lp = a.label();
                a.mov(rdi, addr)?;
                a.xor(ecx, ecx)?;
                a.set(&mut lp)?;
                a.mov(dword_ptr(rdi), msr::IA32_TSC_AUX)?;
                a.mov(dword_ptr(rdi + 4), 0i32)?;
                a.mov(qword_ptr(rdi + 8), rcx)?;
                a.add(rdi, 16i32)?;
                a.inc(ecx)?;
                a.cmp(ecx, n as i32)?;
                a.jb(lp.l)?;
            }
        }
    }
    Ok(())
}

/// The architectural outcome a failed check produces.
fn outcome(id: C, msr_index: u64) -> Vec<Check> {
    match id.class() {
        CheckClass::Control | CheckClass::Host => {
            let n = id.class().error().map_or(0, |e| e.number() as u64);
            vec![
                that("VMfailValid: ZF set, CF clear", |r| {
                    r.launch_rflags & 0x41 == 0x40
                }),
                Box::new(move |r| {
                    (r.launch_error == n).then_some(()).ok_or_else(|| {
                        format!("VM-instruction error {}, expected {n}", r.launch_error)
                    })
                }),
                that("no exit", |r| r.exits.is_empty()),
            ]
        }
        CheckClass::Guest(q) => vec![reason(0, 0x8000_0021), qual(0, q as u64), exits(1)],
        CheckClass::MsrLoad => vec![reason(0, 0x8000_0022), qual(0, msr_index), exits(1)],
    }
}

fn config_for(p: Preset) -> MachineConfig {
    let mut cfg = config();
    cfg.model.vmx = match p {
        Preset::Default => None,
        Preset::Everything => Some(VmxFeatures::everything()),
        Preset::StrictNmi => {
            let mut f = VmxFeatures::intel();
            f.misc.nmi_injection_requires_no_sti_blocking = true;
            Some(f)
        }
    };
    cfg
}

/// Runs the recipes of one preset and checks outcomes and diagnostics.
fn run_preset(p: Preset, recipes: &[&Recipe]) -> usize {
    let mut t = Table::default();
    let mut expected = Vec::new();
    for (k, x) in recipes.iter().enumerate() {
        let ops = x.ops.clone();
        let name = format!("{k:03} {:?}", x.id);
        t.case(
            VmxCase::guest(&name, |a, _| a.nop()).setup(move |a, _| emit(a, &ops)),
            outcome(x.id, x.msr_index),
        );
        expected.push((x.id, x.field.or(x.id.field())));
    }
    let run = t.run_with(config_for(p));
    let got: Vec<_> = run
        .outcome
        .machine
        .virt
        .vmx
        .diag
        .failures
        .iter()
        .map(|f| (f.check.id, f.check.field))
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .zip(
            got.iter()
                .chain(core::iter::repeat(&(C::PinBasedReserved, None))),
        )
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("expected {e:?}, diagnosed {g:?}"))
        .collect();
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "{p:?}: {} failures diagnosed for {} cases; mismatches:\n{}",
        got.len(),
        expected.len(),
        wrong.join("\n")
    );
    expected.len()
}

#[test]
fn every_entry_check_violated_alone_fails_with_its_outcome_and_names_itself() {
    let all = recipes();
    let mut n = 0;
    for p in [Preset::Default, Preset::Everything, Preset::StrictNmi] {
        let these: Vec<&Recipe> = all.iter().filter(|x| x.preset == p).collect();
        n += run_preset(p, &these);
    }
    eprintln!("vmx entry checks: {n} cases passed");
}

/// The checks of SDM Vol. 3C 27.2.4 that need the processor outside IA-32e
/// mode: a 32-bit L1 (protected mode with 4-MiB pages) runs VMXON and breaks
/// each rule on a VMCS whose controls and host state are otherwise valid
/// (the guest state is never reached). 32-bit VMWRITE cannot set bits 63:32
/// of a natural-width field, so for the host RIP the case writes the high
/// half into the VMCS region before VMPTRLD, using nestemu's region layout.
#[test]
fn host_outside_ia32e_mode() {
    use guestkit::layout::sel;
    use guestkit::Program;
    use testsuites::check::{gpr as kgpr, no_exception, verify};
    const PD: u64 = 0x190_0000;
    let ptr32 = |v: u64| dword_ptr(v as u32 as u64);
    let mut p = Program::new();
    p.no_long_mode = true;
    p.prot_case("32-bit L1: paging and VMXON", move |a| {
        let mut fill = a.label();
        a.mov(edi, PD as i32)?;
        a.mov(eax, 0x83i32)?;
        a.mov(ecx, 1024i32)?;
        a.set(&mut fill)?;
        a.mov(dword_ptr(edi), eax)?;
        a.add(eax, 0x40_0000i32)?;
        a.add(edi, 4i32)?;
        a.dec(ecx)?;
        a.jnz(fill.l)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x2010i32)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PD as i32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0020u32 as i32)?;
        a.mov(cr0, eax)?;
        a.mov(ecx, msr::IA32_FEATURE_CONTROL)?;
        a.mov(eax, 5i32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(ecx, msr::IA32_VMX_BASIC)?;
        a.rdmsr()?;
        a.and(eax, 0x7fff_ffffi32)?;
        a.mov(ptr32(layout::VMXON), eax)?;
        a.mov(ptr32(layout::VMCS), eax)?;
        a.mov(ptr32(layout::SCRATCH), layout::VMXON as i32)?;
        a.mov(ptr32(layout::SCRATCH + 4), 0i32)?;
        a.vmxon(qword_ptr(layout::SCRATCH as u32 as u64))?;
        a.pushfd()?;
        a.pop(ebx)
    });
    for id in HOST32 {
        p.prot_case(&format!("{id:?}"), move |a| {
            let vmcs = qword_ptr(layout::SCRATCH as u32 as u64);
            a.mov(ptr32(layout::SCRATCH), layout::VMCS as i32)?;
            a.vmclear(vmcs)?;
            if id == C::Host32RipHigh {
                let off = vmx_model::vmcs::Region::field_offset(F::HostRip);
                a.mov(ptr32(layout::VMCS + off + 4), 1i32)?;
            }
            a.vmptrld(vmcs)?;
            let w = |a: &mut Asm, f: F, v: u64| -> AsmResult {
                a.mov(ecx, v as u32)?;
                a.mov(eax, f.encoding())?;
                a.vmwrite(eax, ecx)
            };
            let mut entry = 0u64;
            let mut exit = 0u64;
            if id == C::OutsideIa32eWithIa32eGuest {
                entry = En::IA32E_MODE_GUEST.bits() as u64;
            }
            if id == C::OutsideIa32eWithHostAddressSpaceSize {
                exit = Ex::HOST_ADDRESS_SPACE_SIZE.bits() as u64;
            }
            for (cap, f, want) in [
                (msr::IA32_VMX_TRUE_PINBASED_CTLS, F::PinBasedControls, 0),
                (
                    msr::IA32_VMX_TRUE_PROCBASED_CTLS,
                    F::PrimaryProcBasedControls,
                    0,
                ),
                (msr::IA32_VMX_TRUE_EXIT_CTLS, F::ExitControls, exit),
                (msr::IA32_VMX_TRUE_ENTRY_CTLS, F::EntryControls, entry),
            ] {
                a.mov(ecx, cap)?;
                a.rdmsr()?;
                a.mov(ecx, want as u32)?;
                a.or(ecx, eax)?;
                a.and(ecx, edx)?;
                a.mov(eax, f.encoding())?;
                a.vmwrite(eax, ecx)?;
            }
            a.mov(ecx, cr0)?;
            a.mov(eax, F::HostCr0.encoding())?;
            a.vmwrite(eax, ecx)?;
            a.mov(ecx, cr3)?;
            a.mov(eax, F::HostCr3.encoding())?;
            a.vmwrite(eax, ecx)?;
            a.mov(ecx, cr4)?;
            if id == C::Host32Pcide {
                a.or(ecx, 1 << 17)?;
            }
            a.mov(eax, F::HostCr4.encoding())?;
            a.vmwrite(eax, ecx)?;
            for (f, v) in [
                (F::HostCsSelector, sel::CODE32 as u64),
                (F::HostSsSelector, sel::DATA as u64),
                (F::HostDsSelector, sel::DATA as u64),
                (F::HostEsSelector, sel::DATA as u64),
                (F::HostFsSelector, sel::DATA as u64),
                (F::HostGsSelector, sel::DATA as u64),
                (F::HostTrSelector, sel::TSS32 as u64),
                (F::HostRsp, layout::HOST_STACK_TOP),
                (F::VmcsLinkPointer, u64::MAX),
            ] {
                w(a, f, v)?;
            }
            if id != C::Host32RipHigh {
                w(a, F::HostRip, 0x10_0000)?;
            }
            a.vmlaunch()?;
            a.pushfd()?;
            a.pop(ebx)?;
            a.mov(eax, F::VmInstructionError.encoding())?;
            a.vmread(ecx, eax)
        });
    }
    p.prot_case("32-bit L1: VMXOFF", |a| a.vmxoff());
    let mut cfg = config_for(Preset::Everything);
    cfg.max_insns = Some(10_000_000);
    let o = testsuites::run(&p, cfg);
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    let mut table = vec![(
        "32-bit L1: paging and VMXON".to_string(),
        vec![
            no_exception(),
            testsuites::check::that("VMsucceed", |r| r.gprs[3] & 0x41 == 0),
        ],
    )];
    for id in HOST32 {
        table.push((
            format!("{id:?}"),
            vec![
                no_exception(),
                testsuites::check::that("VMfailValid", |r| r.gprs[3] & 0x41 == 0x40),
                kgpr(1, 8),
            ],
        ));
    }
    verify(&o, &table);
    let got: Vec<_> = o
        .machine
        .virt
        .vmx
        .diag
        .failures
        .iter()
        .map(|f| f.check.id)
        .collect();
    assert_eq!(got, HOST32.to_vec(), "diagnosed rules");
}

#[test]
fn every_check_of_the_table_has_a_case() {
    let all = recipes();
    let missing: Vec<_> = C::ALL
        .iter()
        .filter(|id| !all.iter().any(|x| x.id == **id) && !HOST32.contains(*id))
        .collect();
    assert!(missing.is_empty(), "checks without a case: {missing:?}");
}
