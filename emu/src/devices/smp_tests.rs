//! Interrupt messages between several local APICs: logical cluster and
//! x2APIC destinations, lowest priority, INIT and start-up IPIs (SDM Vol. 3A
//! 11.6).

use super::*;

const T0: Now = Now {
    cycles: 0,
    tsc_offset: 0,
};

fn smp_devices(cpus: u32) -> Devices {
    let cfg = PlatformConfig {
        cpus,
        ..PlatformConfig::default()
    };
    let mut d = Devices::new(&cfg, 64 << 20, 0, true, true);
    for i in 0..cpus as usize {
        d.current_cpu = i;
        d.mmio_write(0xfee0_00f0, 4, 0x1ff, T0);
    }
    d.current_cpu = 0;
    d
}

/// Which processors have `vector` pending.
fn pending(d: &Devices, vector: u8) -> Vec<usize> {
    (0..d.lapics.len())
        .filter(|&i| d.lapics[i].deliverable() == Some(vector))
        .collect()
}

#[test]
fn logical_cluster_and_lowest_priority_destinations() {
    let mut d = smp_devices(4);
    // Cluster model: APICs 0, 1 in cluster 1 (members 1, 2), APICs 2, 3
    // in cluster 2 (members 1, 2).
    for (i, ldr) in [0x11u32, 0x12, 0x21, 0x22].iter().enumerate() {
        d.current_cpu = i;
        d.mmio_write(0xfee0_00e0, 4, 0x0fff_ffff, T0);
        d.mmio_write(0xfee0_00d0, 4, (ldr << 24) as u64, T0);
    }
    d.current_cpu = 0;
    d.mmio_write(0xfee0_0310, 4, 0x23 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4850, T0);
    assert_eq!(pending(&d, 0x50), [2, 3], "cluster 2, members 1 and 2");
    // Lowest priority among cluster 1 and 2 member 1: APIC 2 has the
    // lower TPR; with equal priorities the lowest index wins.
    d.lapics[0].set_cr8(3);
    d.mmio_write(0xfee0_0310, 4, 0x11 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4960, T0);
    assert_eq!(pending(&d, 0x60), [0], "one target");
    d.lapics[1].set_cr8(2);
    d.lapics[0].set_cr8(1);
    d.mmio_write(0xfee0_0310, 4, 0x13 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4961, T0);
    assert_eq!(pending(&d, 0x61), [0], "lower TPR of cluster 1");
    d.lapics[0].set_cr8(2);
    d.mmio_write(0xfee0_0300, 4, 0x4962, T0);
    assert_eq!(pending(&d, 0x62), [0], "a tie goes to the lower index");
}

#[test]
fn x2apic_physical_and_cluster_destinations() {
    let mut d = smp_devices(4);
    for i in 0..4 {
        d.current_cpu = i;
        let base = d.lapic().base;
        d.write_apic_base(base | lapic::BASE_EXTD, (1 << 46) - 1)
            .unwrap();
    }
    d.current_cpu = 1;
    // Physical x2APIC ID 3.
    d.write_x2apic(0x830, 3 << 32 | 0x4070, T0).unwrap();
    assert_eq!(pending(&d, 0x70), [3]);
    // Logical: cluster 0, members 0 and 2 (x2APIC LDR = 1 << id).
    d.write_x2apic(0x830, 0b101 << 32 | 0x4871, T0).unwrap();
    assert_eq!(pending(&d, 0x71), [0, 2]);
}

#[test]
fn start_up_ipis_reach_only_processors_waiting_for_them() {
    let mut d = smp_devices(3);
    assert!(d.lapics[1].wait_for_sipi && !d.lapics[0].wait_for_sipi);
    // SIPI to all but self: APs record the first vector only.
    d.mmio_write(0xfee0_0300, 4, 0xc_4620, T0);
    d.mmio_write(0xfee0_0300, 4, 0xc_4630, T0);
    assert_eq!(
        (d.lapics[1].sipi, d.lapics[2].sipi),
        (Some(0x20), Some(0x20))
    );
    assert_eq!(d.lapics[0].sipi, None);
    // INIT to a waiting processor resets its APIC and drops the SIPI.
    d.mmio_write(0xfee0_0310, 4, 2 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4500, T0);
    assert_eq!(d.lapics[2].sipi, None);
    assert!(!d.lapics[2].init_pending && !d.lapics[2].sw_enabled());
    // INIT to a running processor is latched for it to take; a SIPI
    // sent meanwhile waits for the INIT.
    d.lapics[1].wait_for_sipi = false;
    d.lapics[1].sipi = None;
    d.mmio_write(0xfee0_0310, 4, 1 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4500, T0);
    d.mmio_write(0xfee0_0300, 4, 0x4640, T0);
    assert!(d.lapics[1].init_pending);
    assert_eq!(d.lapics[1].sipi, Some(0x40));
    // INIT level de-assert does nothing.
    d.mmio_write(0xfee0_0310, 4, 2 << 24, T0);
    d.mmio_write(0xfee0_0300, 4, 0x8500, T0);
    assert!(!d.lapics[2].init_pending);
}
