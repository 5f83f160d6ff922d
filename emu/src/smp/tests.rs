//! Scheduler and bring-up tests on hand-assembled code (the guest suite
//! `testsuites/tests/platform_smp.rs` covers the protocol from a kernel).

use super::*;
use crate::devices::lapic::mode;
use crate::event::Stop;
use crate::machine::MachineConfig;

fn machine(cpus: u32, quantum: u64) -> Machine {
    let mut cfg = MachineConfig {
        mem_bytes: 4 << 20,
        max_insns: Some(100_000),
        ..Default::default()
    };
    cfg.platform.cpus = cpus;
    cfg.platform.quantum = quantum;
    Machine::new(cfg)
}

/// The BSP spins in real mode at 1000H (`inc word [0x200]; jmp $-4`).
fn spin_bsp(m: &mut Machine) {
    m.load_phys(0x1000, &[0xff, 0x06, 0x00, 0x02, 0xeb, 0xfa]);
    m.enter_real(0x1000);
}

#[test]
fn one_vcpu_never_switches() {
    let m = machine(1, 100);
    assert_eq!(m.smp.switch_at, NEVER);
    assert!(!m.smp.active());
    assert!(m.smp_report().is_none());
}

#[test]
fn an_ap_waits_for_sipi_then_starts_at_the_vector() {
    let mut m = machine(2, 500);
    spin_bsp(&mut m);
    // AP code at 20000H: mov word [0x100], cs; inc word [0x102]; jmp $-4.
    m.load_phys(
        0x2_0000,
        &[0x8c, 0x0e, 0x00, 0x01, 0xff, 0x06, 0x02, 0x01, 0xeb, 0xfa],
    );
    for _ in 0..2000 {
        assert!(m.run_slice().is_none());
    }
    let mut b = [0u8; 4];
    m.peek_phys(0x100, &mut b);
    assert_eq!(b, [0; 4], "nothing runs the AP before a SIPI");
    // INIT (deliver to AP only), then SIPI vector 20H twice.
    m.dev.deliver(0b10, mode::INIT, 0, true, true);
    m.dev.deliver(0b10, mode::STARTUP, 0x20, false, true);
    m.dev.deliver(0b10, mode::STARTUP, 0x30, false, true);
    for _ in 0..2000 {
        assert!(m.run_slice().is_none());
    }
    m.peek_phys(0x100, &mut b);
    assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0x2000, "CS = vector << 8");
    assert!(u16::from_le_bytes([b[2], b[3]]) > 0, "the AP runs");
    let r = m.smp_report().unwrap();
    assert_eq!(r.vcpus[1].sipis, 1, "the second SIPI is dropped");
    let total: u64 = r.vcpus.iter().map(|v| v.instructions).sum();
    assert_eq!(total, m.stats.instructions);
    let cycles: u64 = r.vcpus.iter().map(|v| v.cycles).sum();
    assert_eq!(cycles + r.idle_cycles, m.stats.cycles);
}

#[test]
fn interleaving_depends_only_on_the_quantum() {
    let run = |q: u64| {
        let mut m = machine(2, q);
        spin_bsp(&mut m);
        m.load_phys(0x2_0000, &[0xff, 0x06, 0x02, 0x01, 0xeb, 0xfa]);
        m.dev.deliver(0b10, mode::STARTUP, 0x20, false, true);
        while m.run_slice().is_none() {}
        let mut b = [0u8; 4];
        m.peek_phys(0x100, &mut b);
        (b, m.smp_report().unwrap().vcpus[1].scheduled)
    };
    assert_eq!(run(300), run(300));
    assert_ne!(run(300), run(700));
}

#[test]
fn halted_vcpus_yield_and_time_skips_when_all_are_halted() {
    let mut m = machine(2, 1_000_000);
    // BSP: hlt with interrupts disabled; the AP the same: nothing can wake
    // either, so the machine stops instead of spinning.
    m.load_phys(0x1000, &[0xfa, 0xf4]);
    m.enter_real(0x1000);
    m.load_phys(0x2_0000, &[0xfa, 0xf4]);
    m.dev.deliver(0b10, mode::STARTUP, 0x20, false, true);
    let stop = loop {
        if let Some(s) = m.run_slice() {
            break s;
        }
    };
    assert_eq!(stop, Stop::HaltForever);
    assert_eq!(m.smp_report().unwrap().vcpus[1].sipis, 1);
    assert!(m.stats.instructions < 10);
}

#[test]
fn init_resets_a_running_ap_to_wait_for_sipi() {
    let mut m = machine(2, 400);
    spin_bsp(&mut m);
    m.load_phys(0x2_0000, &[0xff, 0x06, 0x02, 0x01, 0xeb, 0xfa]);
    m.dev.deliver(0b10, mode::STARTUP, 0x20, false, true);
    for _ in 0..1000 {
        m.run_slice();
    }
    m.dev.deliver(0b10, mode::INIT, 0, true, true);
    for _ in 0..1000 {
        m.run_slice();
    }
    assert!(m.dev.lapics[1].wait_for_sipi);
    let mut b = [0u8; 2];
    m.peek_phys(0x102, &mut b);
    let before = u16::from_le_bytes(b);
    for _ in 0..1000 {
        m.run_slice();
    }
    m.peek_phys(0x102, &mut b);
    assert_eq!(u16::from_le_bytes(b), before, "an INIT-ed AP runs nothing");
    assert_eq!(m.smp_report().unwrap().vcpus[1].inits, 1);
}

#[test]
fn snapshot_restores_every_vcpu() {
    let mut m = machine(3, 300);
    spin_bsp(&mut m);
    m.load_phys(0x2_0000, &[0xff, 0x06, 0x02, 0x01, 0xeb, 0xfa]);
    m.dev.deliver(0b110, mode::STARTUP, 0x20, false, true);
    for _ in 0..777 {
        m.run_slice();
    }
    let bytes = m.save_snapshot();
    let mut r = Machine::from_snapshot(&bytes).unwrap();
    same(&r.save_snapshot(), &bytes);
    for _ in 0..1000 {
        m.run_slice();
        r.run_slice();
    }
    same(&r.save_snapshot(), &m.save_snapshot());
}

/// Asserts that two snapshots are equal, naming the first differing part
/// of the machine state.
fn same(a: &[u8], b: &[u8]) {
    if a == b {
        return;
    }
    let json = |s: &[u8]| -> serde_json::Value {
        let len = u64::from_le_bytes(s[20..28].try_into().unwrap()) as usize;
        serde_json::from_slice(&s[28..28 + len]).unwrap()
    };
    fn diff(path: &str, x: &serde_json::Value, y: &serde_json::Value) -> Option<String> {
        use serde_json::Value::*;
        match (x, y) {
            // Rebuilt on restore: the decoded-code cache starts empty.
            (Object(p), Object(q)) => p
                .iter()
                .filter(|(k, _)| *k != "decoded_blocks")
                .find_map(|(k, v)| diff(&format!("{path}.{k}"), v, q.get(k).unwrap_or(&Null))),
            (Array(p), Array(q)) if p.len() == q.len() => p
                .iter()
                .zip(q)
                .enumerate()
                .find_map(|(i, (v, w))| diff(&format!("{path}[{i}]"), v, w)),
            _ => (x != y).then(|| format!("{path}: {x} vs {y}")),
        }
    }
    let (x, y) = (json(a), json(b));
    if let Some(d) = diff("", &x, &y) {
        panic!("snapshots differ: {d}");
    }
    let ram = |s: &[u8]| {
        s[28 + u64::from_le_bytes(s[20..28].try_into().unwrap()) as usize..s.len() - 8].to_vec()
    };
    assert!(ram(a) == ram(b), "snapshots differ in RAM");
}

/// A 2-vCPU machine of `model` whose AP runs `inc word [0x102]; jmp $-4`
/// from SIPI vector 20H, with an IVT entry for #SX (vector 30) at 3000H
/// that stores 5858H at 104H and halts.
fn running_ap(model: crate::cpu::cpuid::CpuModel) -> Machine {
    let mut cfg = MachineConfig {
        model,
        mem_bytes: 4 << 20,
        max_insns: Some(100_000),
        ..Default::default()
    };
    cfg.platform.cpus = 2;
    cfg.platform.quantum = 400;
    let mut m = Machine::new(cfg);
    spin_bsp(&mut m);
    m.load_phys(0x2_0000, &[0xff, 0x06, 0x02, 0x01, 0xeb, 0xfa]);
    m.load_phys(0x3000, &[0xc7, 0x06, 0x04, 0x01, 0x58, 0x58, 0xf4]);
    m.load_phys(30 * 4, &[0x00, 0x30, 0x00, 0x00]);
    m.dev.deliver(0b10, mode::STARTUP, 0x20, false, true);
    for _ in 0..500 {
        m.run_slice();
    }
    m
}

fn ap_counter(m: &Machine) -> u16 {
    let mut b = [0u8; 2];
    m.peek_phys(0x102, &mut b);
    u16::from_le_bytes(b)
}

/// The AP's parked state (the BSP must be the running vCPU).
fn parked_ap(m: &mut Machine) -> &mut VcpuState {
    assert_eq!(m.smp.current, 0, "the BSP runs");
    m.smp.parked[1].as_mut().unwrap()
}

#[test]
fn init_is_blocked_in_vmx_operation() {
    let mut m = running_ap(crate::cpu::cpuid::CpuModel::intel());
    while m.smp.current != 0 {
        m.run_slice();
    }
    parked_ap(&mut m).virt.vmx.state.vmxon_ptr = Some(0x5000);
    m.dev.deliver(0b10, mode::INIT, 0, true, true);
    let before = ap_counter(&m);
    for _ in 0..2000 {
        m.run_slice();
    }
    assert!(ap_counter(&m) > before, "the AP runs on");
    assert!(m.dev.lapics[1].init_pending, "the INIT stays pending");
    assert!(!m.dev.lapics[1].wait_for_sipi);
}

#[test]
fn amd_gif_holds_init_and_r_init_redirects_it_to_sx() {
    let mut m = running_ap(crate::cpu::cpuid::CpuModel::amd());
    while m.smp.current != 0 {
        m.run_slice();
    }
    parked_ap(&mut m).virt.svm.gif = false;
    m.dev.deliver(0b10, mode::INIT, 0, true, true);
    for _ in 0..2000 {
        m.run_slice();
    }
    assert!(m.dev.lapics[1].init_pending, "held while GIF = 0");
    while m.smp.current != 0 {
        m.run_slice();
    }
    let ap = parked_ap(&mut m);
    ap.virt.svm.gif = true;
    ap.virt.svm.msrs.vm_cr |= svm_model::msr::VmCr::R_INIT;
    for _ in 0..2000 {
        m.run_slice();
    }
    let mut b = [0u8; 2];
    m.peek_phys(0x104, &mut b);
    assert_eq!(u16::from_le_bytes(b), 0x5858, "#SX handler ran");
    assert!(!m.dev.lapics[1].init_pending && !m.dev.lapics[1].wait_for_sipi);
    assert_eq!(m.smp_report().unwrap().vcpus[1].inits, 0);
}
