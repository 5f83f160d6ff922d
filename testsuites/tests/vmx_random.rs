//! Random VMCS contents from a guest never panic the machine: an L1 writes
//! random values to random VMCS fields of the known-good VMCS and executes
//! VMLAUNCH, many times per run; whatever happens (VMfail, entry failure,
//! exits, a guest running wild until the preemption timer stops it), the
//! machine ends with a defined stop and a consistent VMX state.
//!
//! Host-state fields and the VM-exit MSR areas are left alone: they govern
//! what the *L1* runs after an exit, and an L1 that breaks itself ends the
//! run early (still without a panic, but testing less).

mod vmx_common;

use guestkit::vmx::{vmor, vmw, VmxCase, VmxSuite};
use iced_x86::code_asm::*;
use nestemu::virt::GuestMode;
use proptest::prelude::*;
use testsuites::config;
use vmx_common::run_suite_with;
use vmx_model::controls::PinControls as Pin;
use vmx_model::vmcs::{Kind, FIELDS};
use vmx_model::Field;

/// Fields an L1 may scramble without breaking itself.
fn mutable_fields() -> Vec<Field> {
    FIELDS
        .iter()
        .map(|i| i.field)
        .filter(|f| {
            !matches!(f.kind(), Kind::Host | Kind::ExitInfo)
                && !matches!(
                    f,
                    Field::ExitMsrStoreAddress
                        | Field::ExitMsrStoreCount
                        | Field::ExitMsrLoadAddress
                        | Field::ExitMsrLoadCount
                        | Field::ExitControls
                        | Field::GuestCr3
                        | Field::GuestRsp
                        | Field::GuestRip
                        | Field::EptPointer
                        | Field::VirtualApicAddress
                        | Field::PmlAddress
                )
        })
        .collect()
}

/// A field write: a field, a value, and how to combine it (0 set, 1 XOR
/// one bit, 2 set a small value).
type Write = (usize, u64, u8);

fn suite(cases: &[Vec<Write>]) -> VmxSuite {
    let fields = mutable_fields();
    let mut s = VmxSuite::new();
    for (k, writes) in cases.iter().enumerate() {
        let w: Vec<(Field, u64, u8)> = writes
            .iter()
            .map(|&(i, v, how)| (fields[i % fields.len()], v, how))
            .collect();
        s.push(
            VmxCase::guest(&format!("random {k}"), |a, _| {
                a.nop()?;
                a.cpuid()?;
                a.mov(rax, cr0)?;
                a.vmcall()
            })
            .setup(move |a, _| {
                for &(f, v, how) in &w {
                    match how {
                        0 => vmw(a, f, v)?,
                        1 => {
                            guestkit::vmx::vmr(a, rax, f)?;
                            a.mov(rcx, 1u64 << (v % 64))?;
                            a.xor(rax, rcx)?;
                            guestkit::vmx::vmw_reg(a, f, rax)?;
                        }
                        _ => vmw(a, f, v & 0xff)?,
                    }
                }
                // Whatever the guest does, the timer ends it.
                vmor(
                    a,
                    Field::PinBasedControls,
                    Pin::ACTIVATE_PREEMPTION_TIMER.bits() as u64,
                )?;
                vmw(a, Field::PreemptionTimerValue, 500)
            })
            .max_exits(8),
        );
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_vmcs_fields_never_panic_the_machine(
        cases in prop::collection::vec(
            prop::collection::vec((0usize..200, any::<u64>(), 0u8..3), 1..12),
            30..40,
        )
    ) {
        let n = cases.len();
        let mut cfg = config();
        cfg.max_insns = Some(20_000_000);
        let run = run_suite_with(suite(&cases), cfg);
        let m = &run.outcome.machine;
        // A defined end, and the VMX state agrees with the machine's mode.
        prop_assert_eq!(
            m.virt.mode == GuestMode::VmxNonRoot,
            m.virt.vmx.state.non_root
        );
        let finished = run.records.iter().filter(|(_, r)| r.status != 0).count();
        // Most runs finish every case; any that stopped did so on purpose.
        prop_assert!(finished > 0 || !run.outcome.passed(), "{n} cases, none finished");
    }
}
