//! I/O APIC suite: edge and level delivery, Remote IRR and EOI, masking,
//! TMR, destinations, and the PIT, RTC and SCI pins.

use testsuites::platform::{ioapic, run_suite};

#[test]
fn ioapic_delivery_semantics() {
    let (o1, v) = run_suite(&ioapic::program());
    // Five PIT periods of 1000H ticks at 1.193182 MHz and 2 GHz.
    let delta = v.info("five pit periods tsc delta");
    let want = 5 * 0x1000 * 2_000_000_000 / 1_193_182;
    assert!(delta.abs_diff(want) < 20_000, "{delta} vs {want}");
    let (o2, _) = run_suite(&ioapic::program());
    assert_eq!(o1.machine.stats.cycles, o2.machine.stats.cycles);
}
