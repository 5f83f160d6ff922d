//! Shared by the VMX suites: running a [`VmxSuite`] and reading its records.
#![allow(dead_code)]

use guestkit::vmx::{layout, VmxRecord, VmxSuite};
use nestemu::MachineConfig;
use testsuites::{config, run, Outcome};

/// A finished run of a VMX suite.
pub struct VmxRun {
    /// The harness outcome (serial, stop, machine).
    pub outcome: Outcome,
    /// Case names and records, in order.
    pub records: Vec<(String, VmxRecord)>,
}

impl VmxRun {
    /// The record of case `name`.
    pub fn record(&self, name: &str) -> &VmxRecord {
        &self
            .records
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no VMX case named {name}"))
            .1
    }
}

/// Runs `suite` on a machine made from `cfg`.
pub fn run_suite_with(suite: VmxSuite, cfg: MachineConfig) -> VmxRun {
    let names = suite.names();
    let p = suite.into_program();
    let outcome = run(&p, cfg);
    let records = names
        .into_iter()
        .enumerate()
        .map(|(k, n)| {
            let mut b = vec![0u8; layout::RECORD_SIZE as usize];
            outcome
                .machine
                .peek_phys(layout::RECORDS + k as u64 * layout::RECORD_SIZE, &mut b);
            (n, VmxRecord::parse(&b))
        })
        .collect();
    VmxRun { outcome, records }
}

/// Runs `suite` on the default machine and checks that it ended cleanly.
pub fn run_suite(suite: VmxSuite) -> VmxRun {
    let r = run_suite_with(suite, config());
    assert!(
        r.outcome.passed(),
        "stop {:?}, serial:\n{}",
        r.outcome.stop,
        r.outcome.serial
    );
    r
}
