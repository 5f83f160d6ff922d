//! Unit tests of the local APIC.

use super::*;

const C: Clock = Clock {
    tsc_hz: super::super::clock::DEFAULT_TSC_HZ,
};

fn enabled() -> LocalApic {
    let mut a = LocalApic::new(0, true, true);
    a.write(0xf0, 0x1ff, &C, 0);
    a
}

#[test]
fn init_reset_keeps_id_base_and_x2apic_mode() {
    let mut a = LocalApic::new(3, true, true);
    a.write(0xf0, 0x1ff, &C, 0);
    a.write(0x20, 7 << 24, &C, 0);
    a.write(0x80, 0x40, &C, 0);
    a.accept(0x55, false);
    a.nmi_pending = true;
    a.init_reset();
    assert_eq!(a.read(0x20, &C, 0), 7 << 24, "APIC ID unchanged");
    assert_eq!(a.read(0x80, &C, 0), 0, "TPR cleared");
    assert_eq!(a.read(0xf0, &C, 0), 0xff, "software-disabled");
    assert_eq!(a.deliverable(), None, "IRR cleared");
    assert!(!a.nmi_pending);
    assert!(a.hw_enabled());
    a.set_base(DEFAULT_BASE | BASE_EN | BASE_EXTD, (1 << 46) - 1)
        .unwrap();
    a.init_reset();
    assert!(a.x2apic(), "x2APIC mode survives INIT");
    assert_eq!(a.read_msr(0x80d, &C, 0).unwrap(), 1 << 3, "derived LDR");
}

#[test]
fn power_up_state() {
    let mut a = LocalApic::new(0, true, true);
    assert_eq!(a.read(0x30, &C, 0), VERSION);
    assert_eq!(a.read(0xe0, &C, 0), 0xffff_ffff);
    assert_eq!(a.read(0xf0, &C, 0), 0xff);
    assert_eq!(a.read(0x350, &C, 0), LVT_MASKED);
    assert_eq!(a.base, 0xfee0_0900);
}

#[test]
fn priority_ack_and_eoi() {
    let mut a = enabled();
    a.accept(0x51, false);
    a.accept(0x42, true);
    assert_eq!(a.deliverable(), Some(0x51));
    a.acknowledge(0x51);
    assert_eq!(a.ppr(), 0x50);
    assert_eq!(a.deliverable(), None, "0x42 is below the in-service class");
    assert_eq!(a.write(0xb0, 0, &C, 0).eoi, None, "edge: no EOI broadcast");
    assert_eq!(a.deliverable(), Some(0x42));
    a.acknowledge(0x42);
    assert_eq!(a.write(0xb0, 0, &C, 0).eoi, Some(0x42), "level: broadcast");
    a.set_cr8(5);
    a.accept(0x55, false);
    assert_eq!(a.read(0x80, &C, 0), 0x50);
    assert_eq!(a.deliverable(), None, "class 5 is not above TPR 5");
    a.set_cr8(4);
    assert_eq!(a.deliverable(), Some(0x55));
}

#[test]
fn illegal_vectors_set_esr() {
    let mut a = enabled();
    a.write(0x370, 0xe3, &C, 0); // error LVT, vector E3H
    a.write(0x300, 0x4_0005, &C, 0); // self IPI, vector 5
    a.write(0x280, 0, &C, 0);
    assert_eq!(a.read(0x280, &C, 0), esr::SEND_ILLEGAL_VECTOR);
    assert_eq!(a.deliverable(), Some(0xe3));
}

#[test]
fn base_transitions() {
    let mut a = enabled();
    let mask = (1u64 << 46) - 1;
    let base = a.base;
    assert!(
        a.set_base(base | BASE_EXTD, mask).is_ok(),
        "xAPIC to x2APIC"
    );
    assert!(a.set_base(base, mask).is_err(), "x2APIC to xAPIC");
    assert!(
        a.set_base((base | BASE_EXTD) & !BASE_EN, mask).is_err(),
        "invalid"
    );
    assert!(a.set_base(base & !BASE_EN, mask).is_ok(), "to disabled");
    assert!(
        a.set_base(base | BASE_EXTD, mask).is_err(),
        "disabled to x2APIC"
    );
    assert!(a.set_base(base, mask).is_ok(), "disabled to xAPIC");
    assert_eq!(a.read(0xf0, &C, 0), 0xff, "re-enabled in the reset state");
    assert!(a.set_base(base | 1, mask).is_err(), "reserved low bits");
    assert!(
        a.set_base(base | 1 << 46, mask).is_err(),
        "beyond MAXPHYADDR"
    );
}

#[test]
fn x2apic_msrs() {
    let mut a = enabled();
    assert!(a.read_msr(0x802, &C, 0).is_err(), "#GP outside x2APIC mode");
    a.set_base(a.base | BASE_EXTD, (1 << 46) - 1).unwrap();
    assert_eq!(a.read_msr(0x802, &C, 0), Ok(0));
    assert_eq!(a.read_msr(0x80d, &C, 0), Ok(1));
    assert!(a.write_msr(0x802, 1, &C, 0).is_err(), "ID is read-only");
    assert!(a.write_msr(0x80b, 1, &C, 0).is_err(), "EOI must be 0");
    assert!(a.read_msr(0x83f, &C, 0).is_err(), "SELF IPI is write-only");
    let fx = a.write_msr(0x83f, 0xf1, &C, 0).unwrap();
    let ipi = fx.ipi.unwrap();
    assert_eq!((ipi.vector, ipi.shorthand), (0xf1, 1));
    assert_eq!(a.mmio_base(), None, "no MMIO in x2APIC mode");
}

#[test]
fn timer_one_shot_periodic_and_mode_change() {
    let mut a = enabled();
    a.write(0x3e0, 0xb, &C, 0); // divide by 1
    a.write(0x320, 0xee, &C, 0); // one-shot
    a.write(0x380, 1000, &C, 0);
    assert_eq!(a.next_timer_event(&C, 0), 2000);
    assert_eq!(a.read(0x390, &C, 1000), 500);
    assert!(!a.timer_expired(&C, 1999, 0));
    assert!(a.timer_expired(&C, 2000, 0));
    assert_eq!(a.deliverable(), Some(0xee));
    assert_eq!(a.read(0x390, &C, 3000), 0);
    // Periodic: reloads.
    a.write(0x320, 0x2_00ee, &C, 3000);
    assert_eq!(
        a.read(0x390, &C, 3000),
        0,
        "stays at zero after one-shot expiry"
    );
    a.write(0x380, 1000, &C, 3000);
    assert!(a.timer_expired(&C, 5000, 0));
    assert_eq!(a.read(0x390, &C, 5500), 750);
    // Switching to one-shot keeps counting from where it was.
    a.write(0x320, 0xee, &C, 5500);
    assert_eq!(a.read(0x390, &C, 5500), 750);
    // Divide by 2 halves the rate.
    a.write(0x3e0, 0x0, &C, 5500);
    assert_eq!(a.read(0x390, &C, 5500 + 4 * 100), 650);
}

#[test]
fn tsc_deadline() {
    let mut a = enabled();
    a.write(0x380, 1000, &C, 0);
    a.write(0x320, 0x4_00ef, &C, 0);
    assert_eq!(
        a.read(0x380, &C, 0),
        0,
        "entering TSC-deadline mode disarms"
    );
    a.write_tsc_deadline(5000);
    assert_eq!(a.next_timer_event(&C, 1000), 4000);
    assert!(a.timer_expired(&C, 4000, 1000));
    assert_eq!(a.read_tsc_deadline(), 0, "cleared when it fires");
    assert_eq!(a.deliverable(), Some(0xef));
}

#[test]
fn logical_destinations() {
    let mut a = enabled();
    a.write(0xd0, 0x0200_0000, &C, 0);
    assert!(a.matches(0x02, true, false));
    assert!(!a.matches(0x01, true, false));
    a.write(0xe0, 0x0fff_ffff, &C, 0); // cluster model
    a.write(0xd0, 0x3100_0000, &C, 0);
    assert!(a.matches(0x33, true, false));
    assert!(!a.matches(0x21, true, false));
    assert!(a.matches(0xff, false, false), "physical broadcast");
}
