//! Property: whatever an L1 hypervisor puts in a VMCB, VMRUN either runs the
//! guest or exits with a defined exit code, and the machine never panics
//! (issue 5; DESIGN.md principle 2). A known-good VMCB has random fields
//! overwritten with random values; L1 runs it and records the exit.

mod svm_common;

use guestkit::svm::{l2_vmcb, SvmProgram, VMCB2};
use guestkit::{Built, Record};
use iced_x86::code_asm::*;
use nestemu::loader::multiboot;
use nestemu::{Machine, MachineConfig, Stop};
use proptest::prelude::*;
use svm_common::*;
use svm_model::{ExitCode, VmcbField};

fn program() -> (Built, usize) {
    let mut p = SvmProgram::new();
    p.case("random VMCB", |a, _| {
        a.mov(rax, VMCB2)?;
        a.vmrun()?;
        read_exit(a, VMCB2)
    });
    let idx = p.names.len() - 1;
    (p.finish().build().expect("assembles"), idx)
}

fn config() -> MachineConfig {
    MachineConfig {
        max_insns: Some(200_000),
        ..amd()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_vmcb_runs_or_exits_with_a_defined_code(
        fields in proptest::collection::vec((0..VmcbField::ALL.len(), any::<u64>()), 0..6),
        flips in proptest::collection::vec((0usize..0x700, 0u8..8), 0..6),
    ) {
        let (built, idx) = program();
        let mut img = l2_vmcb(0);
        // A guest that exits at once unless the dice say otherwise.
        img.set(VmcbField::Rip, 0x40_2f00);
        for (k, v) in &fields {
            img.set(VmcbField::ALL[*k], *v);
        }
        let mut bytes = *img.as_bytes();
        for (off, bit) in &flips {
            bytes[*off] ^= 1 << bit;
        }
        let mut m = Machine::new(config());
        multiboot::boot(&mut m, &built.image, "kit", &[]).expect("loads");
        m.load_phys(VMCB2, &bytes);
        // VMMCALL; HLT at the guest's RIP.
        m.load_phys(0x40_2f00, &[0x0f, 0x01, 0xd9, 0xf4]);
        let stop = m.run();
        prop_assert!(
            matches!(
                stop,
                Stop::DebugExit(_) | Stop::InstructionLimit | Stop::Shutdown(_) | Stop::HaltForever
            ) || matches!(&stop, Stop::Unimplemented { .. }),
            "stop {stop:?}"
        );
        if stop == Stop::DebugExit(0) {
            let mut b = vec![0u8; guestkit::layout::RECORD_SIZE as usize];
            m.peek_phys(
                guestkit::layout::RESULTS + idx as u64 * guestkit::layout::RECORD_SIZE,
                &mut b,
            );
            let r = Record::parse(&b);
            let code = ExitCode(r.gprs[reg::CODE]);
            prop_assert!(code.name().is_some(), "undefined exit code {:#x}", code.0);
        }
    }
}
