//! fw_cfg, ACPI tables, PM timer, and the power-off and reset paths.

use testsuites::platform::{config, firmware, run_suite};

#[test]
fn fw_cfg_and_acpi_tables() {
    let (_, v) = run_suite(&firmware::program());
    assert_eq!(v.info("rsdp revision"), 2);
}

#[test]
fn power_off_and_reset_paths_end_the_run() {
    for (name, p, stop) in firmware::exits() {
        let o = testsuites::run(&p, config());
        assert_eq!(o.stop, stop, "{name}: serial {}", o.serial);
    }
}
