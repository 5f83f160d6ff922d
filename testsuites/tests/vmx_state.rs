//! Guest and host state across VM entries and exits: the VM-entry MSR-load,
//! VM-exit MSR-store and VM-exit MSR-load areas, saving and loading PAT,
//! saving segment registers and the activity state, a VMX abort, and the
//! `--stats` report of a run with VM exits.

mod vmx_common;

use guestkit::vmx::{at, layout, poke, store_user, vmor, vmr, vmw, VmxCase};
use guestkit::Asm;
use iced_x86::code_asm::*;
use mmu::msr;
use testsuites::config;
use vmx_common::*;
use vmx_model::controls::{ExitControls as Ex, ProcControls as P1};
use vmx_model::Field as F;

fn wrmsr(a: &mut Asm, index: u32, value: u64) -> guestkit::AsmResult {
    a.mov(ecx, index)?;
    a.mov(eax, value as u32)?;
    a.mov(edx, (value >> 32) as u32)?;
    a.wrmsr()
}

fn msr_areas(t: &mut Table) {
    t.case(
        VmxCase::guest(
            "MSR areas: load at entry, store and load at exit",
            |a, _| {
                a.mov(ecx, msr::IA32_TSC_AUX)?;
                a.rdmsr()?;
                a.mov(r8, rax)?;
                wrmsr(a, msr::IA32_TSC_AUX, 0x66)
            },
        )
        .setup(|a, _| {
            wrmsr(a, msr::IA32_TSC_AUX, 0x11)?;
            vmor(
                a,
                F::PrimaryProcBasedControls,
                P1::USE_MSR_BITMAPS.bits() as u64,
            )?;
            let (load, store, back) = (
                layout::ENTRY_MSR_LOAD,
                layout::EXIT_MSR_STORE,
                layout::EXIT_MSR_LOAD,
            );
            for (area, v) in [(load, 0x55), (store, 0), (back, 0x11)] {
                poke(a, area, msr::IA32_TSC_AUX as u64)?;
                poke(a, area + 8, v)?;
            }
            vmw(a, F::EntryMsrLoadAddress, load)?;
            vmw(a, F::EntryMsrLoadCount, 1)?;
            vmw(a, F::ExitMsrStoreAddress, store)?;
            vmw(a, F::ExitMsrStoreCount, 1)?;
            vmw(a, F::ExitMsrLoadAddress, back)?;
            vmw(a, F::ExitMsrLoadCount, 1)
        })
        .on_exit(|a, rt| {
            a.mov(ecx, msr::IA32_TSC_AUX)?;
            a.rdmsr()?;
            store_user(a, 0, rax)?;
            a.mov(rax, at(layout::EXIT_MSR_STORE + 8))?;
            store_user(a, 1, rax)?;
            a.jmp(rt.finish.l)
        }),
        vec![reason(0, 18), gpr(8, 0x55), user(0, 0x11), user(1, 0x66)],
    );
    t.case(
        VmxCase::guest("save guest PAT, load host PAT", |a, _| {
            wrmsr(a, msr::IA32_PAT, 0x0606_0606_0606_0606)
        })
        .setup(|a, _| {
            vmor(
                a,
                F::PrimaryProcBasedControls,
                P1::USE_MSR_BITMAPS.bits() as u64,
            )?;
            vmor(
                a,
                F::ExitControls,
                (Ex::SAVE_PAT | Ex::LOAD_PAT).bits() as u64,
            )
        })
        .on_exit(|a, rt| {
            vmr(a, rax, F::GuestPat)?;
            store_user(a, 0, rax)?;
            a.mov(ecx, msr::IA32_PAT)?;
            a.rdmsr()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            store_user(a, 1, rax)?;
            a.jmp(rt.finish.l)
        }),
        vec![
            user(0, 0x0606_0606_0606_0606),
            user(1, 0x0007_0406_0007_0406),
        ],
    );
}

fn controls_for_state(t: &mut Table) {
    t.case(
        VmxCase::guest(
            "save IA32_EFER: the guest's EFER.SCE change is saved",
            |a, _| {
                a.mov(ecx, msr::IA32_EFER)?;
                a.rdmsr()?;
                a.xor(eax, 1i32)?;
                a.wrmsr()
            },
        )
        .setup(|a, _| {
            vmor(
                a,
                F::PrimaryProcBasedControls,
                P1::USE_MSR_BITMAPS.bits() as u64,
            )?;
            a.mov(ecx, msr::IA32_EFER)?;
            a.rdmsr()?;
            store_user(a, 1, rax)
        })
        .on_exit(|a, rt| {
            vmr(a, rax, F::GuestEfer)?;
            store_user(a, 0, rax)?;
            a.jmp(rt.finish.l)
        }),
        vec![that("SCE flipped in the saved EFER", |r| {
            (r.user[0] ^ r.user[1]) & 0xfff == 1
        })],
    );
    t.case(
        VmxCase::guest("load debug controls: DR7 from the VMCS", |a, _| {
            a.mov(r8, dr7)
        })
        .setup(|a, _| {
            vmor(
                a,
                F::EntryControls,
                vmx_model::controls::EntryControls::LOAD_DEBUG_CONTROLS.bits() as u64,
            )?;
            vmw(a, F::GuestDr7, 0x403)
        }),
        vec![gpr(8, 0x403)],
    );
    t.case(
        VmxCase::guest("TSC scaling: half speed plus the offset", |a, _| {
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            a.mov(r8, rax)
        })
        .setup(|a, _| {
            vmor(
                a,
                F::PrimaryProcBasedControls,
                (P1::USE_TSC_OFFSETTING | P1::ACTIVATE_SECONDARY_CONTROLS).bits() as u64,
            )?;
            vmor(
                a,
                F::SecondaryProcBasedControls,
                vmx_model::controls::Proc2Controls::USE_TSC_SCALING.bits() as u64,
            )?;
            vmw(a, F::TscMultiplier, 1 << 47)?;
            vmw(a, F::TscOffset, 1 << 40)?;
            a.rdtsc()?;
            a.shl(rdx, 32i32)?;
            a.or(rax, rdx)?;
            store_user(a, 0, rax)
        }),
        vec![that("L2's TSC = L1's / 2 + 2^40", |r| {
            let l2 = r.gprs[8].wrapping_sub(1 << 40);
            let half = r.user[0] / 2;
            l2 >= half && l2 < half + 10_000
        })],
    );
}

fn saved_state(t: &mut Table) {
    t.case(
        VmxCase::guest("segment registers and RFLAGS are saved", |a, _| {
            a.mov(eax, guestkit::layout::sel::DATA16 as i32)?;
            a.mov(es, ax)?;
            a.stc()?;
            a.std()
        })
        .on_exit(|a, rt| {
            vmr(a, rax, F::GuestEsSelector)?;
            store_user(a, 0, rax)?;
            vmr(a, rax, F::GuestEsLimit)?;
            store_user(a, 1, rax)?;
            vmr(a, rax, F::GuestEsAccessRights)?;
            store_user(a, 2, rax)?;
            a.jmp(rt.finish.l)
        }),
        vec![
            user(0, guestkit::layout::sel::DATA16 as u64),
            user(1, 0xffff),
            user(2, 0x93),
            field(0, "RFLAGS", |e| e.rflags & 0x401, 0x401),
        ],
    );
    let iw = P1::INTERRUPT_WINDOW_EXITING.bits() as u64;
    t.case(
        VmxCase::guest(
            "an interrupt window wakes HLT; the HLT state is saved",
            |a, _| {
                a.sti()?;
                a.hlt()
            },
        )
        .setup(move |a, _| vmor(a, F::PrimaryProcBasedControls, iw))
        .on_exit(|a, rt| a.jmp(rt.finish.l)),
        vec![
            reason(0, 7),
            field(0, "activity state", |e| e.activity, 1),
            exits(1),
        ],
    );
    t.case(
        VmxCase::guest(
            "blocking by STI is saved with the exit after STI",
            |a, _| {
                a.sti()?;
                a.cpuid()
            },
        ),
        vec![
            reason(0, 10),
            field(0, "interruptibility", |e| e.interruptibility, 1),
        ],
    );
}

#[test]
fn state_across_entries_and_exits() {
    let mut t = Table::default();
    msr_areas(&mut t);
    controls_for_state(&mut t);
    saved_state(&mut t);
    t.run();
}

/// An exit whose VM-exit MSR-load area cannot be loaded is a VMX abort
/// (SDM Vol. 3C 28.7): indicator 4 in the VMCS region, then shutdown.
#[test]
fn vmx_abort_on_a_bad_exit_msr_load() {
    let mut t = Table::default();
    t.case(
        VmxCase::guest("VMX abort", |a, _| a.nop()).setup(|a, _| {
            poke(a, layout::EXIT_MSR_LOAD, msr::IA32_FS_BASE as u64)?;
            vmw(a, F::ExitMsrLoadAddress, layout::EXIT_MSR_LOAD)?;
            vmw(a, F::ExitMsrLoadCount, 1)
        }),
        vec![],
    );
    let run = run_suite_with(t.suite, config());
    let stop = run.outcome.stop.describe();
    assert!(stop.contains("VMX abort, indicator 4"), "{stop}");
    let mut b = [0u8; 4];
    run.outcome.machine.peek_phys(layout::VMCS + 4, &mut b);
    assert_eq!(u32::from_le_bytes(b), 4, "the VMX-abort indicator");
}

/// `--stats` of a run with VM exits: exits by reason, per-level work and
/// walks, totals that are the sum of the levels, the last entry failure.
#[test]
fn stats_report_of_a_hypervisor_run() {
    let mut t = Table::default();
    t.case(
        VmxCase::guest("exits for the report", |a, _| {
            a.cpuid()?;
            a.cpuid()
        }),
        vec![exits(3)],
    );
    t.case(
        VmxCase::root("an entry failure for the report", |a, _| {
            vmw(a, F::GuestRflags, 0x8002)?;
            a.vmlaunch()
        }),
        vec![],
    );
    let run = t.run();
    let path = std::env::temp_dir().join(format!("nestemu-vmx-stats-{}.json", std::process::id()));
    let path = path.to_string_lossy().into_owned();
    nestemu::cli::write_stats(&run.outcome.machine, &run.outcome.stop, &path).expect("stats");
    let text = std::fs::read_to_string(&path).expect("read stats");
    let _ = std::fs::remove_file(&path);
    let j: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(j["vmexits"]["by_reason"]["CPUID"], 2, "{text}");
    assert_eq!(j["vmexits"]["by_reason"]["VMCALL"], 1);
    assert_eq!(
        j["vmexits"]["by_reason"]["VM-entry failure due to invalid guest state"],
        1
    );
    assert_eq!(j["vmexits"]["total"], 4);
    let n = |v: &serde_json::Value| v.as_u64().expect("a number");
    let levels = &j["levels"];
    assert_eq!(
        n(&levels["L1"]["instructions"]) + n(&levels["L2"]["instructions"]),
        n(&j["instructions"])
    );
    assert_eq!(
        n(&levels["L1"]["cycles"]) + n(&levels["L2"]["cycles"]),
        n(&j["cycles"])
    );
    let guests = levels["L2"]["by_control"]
        .as_object()
        .expect("guests by VMCS");
    assert!(
        guests.contains_key(&format!("{:#x}", layout::VMCS)),
        "{text}"
    );
    assert_eq!(levels["L2"]["entries"], 3, "VMLAUNCH and two VMRESUMEs");
    assert!(n(&j["walks"]["count"]) >= n(&levels["L2"]["walks"]["count"]));
    assert_eq!(j["vmx"]["entry_failures"], 1);
    assert_eq!(j["entry_failures"]["vmx:GuestRflagsReserved"], 1, "{text}");
    assert_eq!(
        j["vmx"]["last_entry_failure"]["check"]["id"],
        "GuestRflagsReserved"
    );
}
