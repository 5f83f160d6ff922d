//! 8254 suite.

use testsuites::platform::{pit, run_suite};

#[test]
fn pit_modes_latches_and_channel2() {
    let (o1, v) = run_suite(&pit::program());
    let delta = v.info("mode 2: five periods of 800h tsc delta");
    let want = 5 * 0x800 * 2_000_000_000 / 1_193_182;
    assert!(delta.abs_diff(want) < 20_000, "{delta} vs {want}");
    let (o2, v2) = run_suite(&pit::program());
    assert_eq!(o1.serial, o2.serial);
    assert_eq!(v, v2);
}
