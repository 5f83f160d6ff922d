//! PCI and test-device suite.

use testsuites::platform::{pci, run_suite};

#[test]
fn pci_bus_testdev_and_pc_testdev() {
    run_suite(&pci::program());
}
