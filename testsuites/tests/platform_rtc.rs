//! RTC/CMOS suite: the date starts at the configured instant.

use nestemu::devices::rtc::DateTime;
use testsuites::platform::{config, rtc, Verdicts};

#[test]
fn rtc_reads_the_configured_start_and_interrupts() {
    let (_, v) = testsuites::platform::run_suite(&rtc::program());
    // The default start is 2024-01-01T00:00:00Z, a Monday; the suite waits
    // for an update first, so a second or two have passed.
    assert_eq!(v.info("rtc year"), 0x24);
    assert_eq!(v.info("rtc month"), 0x01);
    assert_eq!(v.info("rtc day of month"), 0x01);
    assert_eq!(v.info("rtc day of week"), 2);
    assert_eq!(v.info("rtc century"), 0x20);
    assert!(v.info("rtc seconds") <= 0x03);
    let periods = v.info("eight 1024 hz periods tsc delta");
    let want = 8 * 2_000_000_000 / 1024;
    assert!(
        periods.abs_diff(want) < 2 * 2_000_000_000 / 1024,
        "{periods}"
    );
}

#[test]
fn rtc_start_is_configurable() {
    let mut cfg = config();
    cfg.platform.rtc_start = DateTime::parse("1999-06-15T12:00:00").unwrap().to_unix();
    let o = testsuites::run(&rtc::program(), cfg);
    let v = Verdicts::parse(&o.serial);
    assert!(v.failed.is_empty(), "{}", o.serial);
    assert_eq!(v.info("rtc year"), 0x99);
    assert_eq!(v.info("rtc century"), 0x19);
}
