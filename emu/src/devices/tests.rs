//! Unit tests of the device set.

use super::*;

fn devices() -> Devices {
    let cfg = PlatformConfig {
        pc_testdev: true,
        pci_testdev: true,
        ..PlatformConfig::default()
    };
    Devices::new(&cfg, 64 << 20, 0, true, true)
}

const T0: Now = Now {
    cycles: 0,
    tsc_offset: 0,
};

fn ioapic_redir(d: &mut Devices, pin: u32, lo: u32) {
    d.mmio_write(IOAPIC_BASE, 4, 0x10 + 2 * pin as u64, T0);
    d.mmio_write(IOAPIC_BASE + 0x10, 4, lo as u64, T0);
    d.mmio_write(IOAPIC_BASE, 4, 0x11 + 2 * pin as u64, T0);
    d.mmio_write(IOAPIC_BASE + 0x10, 4, 0, T0);
}

#[test]
fn firmware_handoff_leaves_seabios_8259_state() {
    let mut d = devices();
    assert_eq!(d.port_read(0x21, 1, T0), 0xb8, "master IMR");
    assert_eq!(d.port_read(0xa1, 1, T0), 0x8e, "slave IMR");
    assert_eq!(d.port_read(0x4d0, 1, T0), 0x00, "master ELCR");
    assert_eq!(d.port_read(0x4d1, 1, T0), 0x0c, "slave ELCR");
    assert!(!d.pic.masked(0), "IRQ 0 open: the PIT reaches LINT0");
    assert!(d.pic.masked(4), "IRQ 4 (COM1) masked");
}

#[test]
fn testdev_line_through_ioapic_to_lapic() {
    let mut d = devices();
    // The firmware leaves IRQ 14 open at the 8259 too, which would also
    // request it through LINT0: mask the 8259s first, as a kernel routing
    // through the I/O APIC does.
    d.port_write(0x21, 1, 0xff, T0);
    d.port_write(0xa1, 1, 0xff, T0);
    d.mmio_write(0xfee0_00f0, 4, 0x1ff, T0);
    ioapic_redir(&mut d, 14, 0x76);
    d.port_write(0x200e, 1, 1, T0);
    assert!(d.interrupt_pending(0));
    assert_eq!(d.acknowledge(0), Some(0x76));
    d.mmio_write(0xfee0_00b0, 4, 0, T0);
    assert!(!d.interrupt_pending(0));
}

#[test]
fn pic_reaches_cpu_only_through_lint0_extint() {
    let mut d = devices();
    // Undo the firmware's virtual-wire LINT0.
    d.mmio_write(0xfee0_0350, 4, 0x1_0000, T0);
    for (p, v) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 4),
        (0x21, 1),
        (0x21, 0xfe),
    ] {
        d.port_write(p, 1, v, T0);
    }
    // PIT channel 0, mode 2, count 100.
    d.port_write(0x43, 1, 0x34, T0);
    d.port_write(0x40, 1, 100, T0);
    d.port_write(0x40, 1, 0, T0);
    let t = d.next_event;
    d.sync(Now {
        cycles: t + clock::Clock::default().cycles_for(100, clock::PIT_HZ),
        tsc_offset: 0,
    });
    assert!(d.pic.intr());
    assert!(!d.interrupt_pending(0), "LINT0 masked");
    d.mmio_write(0xfee0_00f0, 4, 0x1ff, T0);
    d.mmio_write(0xfee0_0350, 4, 0x700, T0);
    assert_eq!(d.acknowledge(0), Some(0x20));
}

#[test]
fn unclaimed_and_shutdown_string() {
    let mut d = devices();
    assert_eq!(d.port_read(0x1234, 2, T0), 0xffff);
    assert_eq!(d.unclaimed.port_reads, 1);
    let mut last = IoEffect::None;
    for b in b"Shutdown" {
        last = d.port_write(SHUTDOWN_PORT, 1, *b as u32, T0);
    }
    assert_eq!(last, IoEffect::PowerOff);
    assert_eq!(
        d.port_write(0xcf9, 1, 6, T0),
        IoEffect::Reset("reset control register (port CF9H)")
    );
    assert_eq!(d.port_write(0xf4, 4, 5, T0), IoEffect::DebugExit(5));
}

/// Ports and addresses the devices decode, for the fuzz test.
fn interesting_port(k: u16) -> u16 {
    const PORTS: [u16; 16] = [
        0x20, 0x40, 0x60, 0x70, 0x92, 0xa0, 0xe0, 0x3f8, 0x4d0, 0x510, 0x600, 0xcf8, 0xcfc, 0x2000,
        0xafe0, 0xc000,
    ];
    PORTS[(k % 16) as usize].wrapping_add(k >> 12)
}

proptest::proptest! {
    /// No sequence of guest accesses panics or hangs the devices, and
    /// time can always move on.
    #[test]
    fn guest_accesses_never_panic(ops in proptest::collection::vec(
        (0u8..6, proptest::prelude::any::<u16>(), 0u8..3, proptest::prelude::any::<u64>(), 0u64..5_000_000),
        1..200,
    )) {
        let mut d = devices();
        let mut now = 0u64;
        for (op, k, sz, v, dt) in ops {
            now += dt;
            let t = Now { cycles: now, tsc_offset: (v >> 40) as i64 };
            let size = 1u8 << sz;
            match op {
                0 => { d.port_write(interesting_port(k), size, v as u32, t); }
                1 => { d.port_read(interesting_port(k), size, t); }
                2 => { d.mmio_write(0xfee0_0000 + (k as u64 & 0xffc), 4, v, t); }
                3 => { d.mmio_write(IOAPIC_BASE + (k as u64 & 0x1c), 4, v, t); }
                4 => {
                    let _ = d.write_x2apic(0x800 + (k as u32 & 0xff), v, t);
                    let _ = d.write_apic_base(v & 0xffff_f000 | 0x800, (1 << 46) - 1);
                    d.write_tsc_deadline(v >> 20, t);
                }
                _ => { d.mmio_read(0xfee0_0000 + (k as u64 & 0xfff), size, t); }
            }
            d.sync(t);
            let _ = d.acknowledge(0);
            let _ = d.wake_possible(0, true, t.tsc_offset);
        }
    }
}

#[test]
fn self_ipi_and_x2apic_broadcast() {
    let mut d = devices();
    d.mmio_write(0xfee0_00f0, 4, 0x1ff, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4_00f1, T0);
    assert_eq!(d.acknowledge(0), Some(0xf1));
    let base = d.lapic().base;
    d.write_apic_base(base | lapic::BASE_EXTD, (1 << 46) - 1)
        .unwrap();
    d.write_x2apic(0x80b, 0, T0).unwrap();
    d.write_x2apic(0x830, 0xffff_ffff_0000_00cf, T0).unwrap();
    assert_eq!(d.acknowledge(0), Some(0xcf), "physical broadcast");
    d.write_x2apic(0x830, 0x000c_0500, T0).unwrap();
    assert!(
        !d.lapic().init_pending,
        "INIT to all-but-self reaches no one"
    );
}
