//! The kit's guest-side checks and interrupt handling, checked themselves: a
//! wrong expectation prints FAIL and fails the run; interrupt modes count,
//! log and EOI.

use guestkit::checks::{eq, range};
use guestkit::irq::{load_count, set_mode, COUNT, EOI_XAPIC};
use guestkit::platform::lapic_write;
use guestkit::Program;
use iced_x86::code_asm::*;
use nestemu::Stop;
use testsuites::platform::{config, Verdicts};

#[test]
fn failed_checks_are_reported() {
    let mut p = Program::new();
    p.body64(|a, rt| {
        a.mov(eax, 5u32)?;
        eq(a, rt, "five is five", 5)?;
        eq(a, rt, "five is six", 6)?;
        range(a, rt, "five in 1..=4", 1, 4)
    });
    let o = testsuites::run(&p, config());
    let v = Verdicts::parse(&o.serial);
    assert_eq!(v.ok, ["five is five"]);
    assert_eq!(v.failed.len(), 2, "{}", o.serial);
    assert!(v.failed[0].contains("got 0000000000000005 want 0000000000000006"));
    assert_eq!(o.stop, Stop::DebugExit(1));
}

#[test]
fn interrupt_modes_count_and_return() {
    let mut p = Program::new();
    p.body64(|a, rt| {
        set_mode(a, 0x90, COUNT | EOI_XAPIC)?;
        a.sti()?;
        for _ in 0..3 {
            lapic_write(a, 0x300, 0x4_0090)?;
        }
        a.cli()?;
        load_count(a, 0x90)?;
        eq(a, rt, "three self ipis counted", 3)
    });
    let o = testsuites::run(&p, config());
    assert!(o.passed(), "{}", o.serial);
    let log = o.irq_log();
    assert_eq!(log, [0x90, 0x90, 0x90]);
}
