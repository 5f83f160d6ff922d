//! Local APIC suites: registers, IPIs, priorities, NMIs and relocation; the
//! timer in every mode; x2APIC. Timers are checked to give the same counts
//! (and cycles) on every run.

use testsuites::platform::{lapic, run_suite};

#[test]
fn lapic_registers_ipis_and_nmis() {
    let (_, v) = run_suite(&lapic::program());
    assert!(v.ok.len() >= 40, "{:?}", v.ok);
}

#[test]
fn lapic_timer_modes_are_deterministic() {
    let (o1, v1) = run_suite(&lapic::timer_program());
    let (o2, v2) = run_suite(&lapic::timer_program());
    assert_eq!(o1.serial, o2.serial, "same serial output twice");
    assert_eq!(o1.machine.stats.cycles, o2.machine.stats.cycles);
    assert_eq!(o1.machine.stats.instructions, o2.machine.stats.instructions);
    assert_eq!(v1, v2);
    // The APIC timer ticks at 1 GHz, the TSC at 2 GHz: 10000h ticks at
    // divide-by-1 take at least 20000h TSC; ten periods of 1000h ticks at
    // divide-by-16 take 10 * 10000h * 2 cycles, within a few blocks.
    let one_shot = v1.info("one-shot tsc delta");
    assert!(
        (0x2_0000..0x2_0000 + 2000).contains(&one_shot),
        "{one_shot:#x}"
    );
    let periodic = v1.info("ten periods tsc delta");
    let want = 10 * 0x1_0000 * 2;
    assert!((want..want + 5000).contains(&periodic), "{periodic:#x}");
}

#[test]
fn x2apic_mode() {
    run_suite(&lapic::x2apic_program());
}
