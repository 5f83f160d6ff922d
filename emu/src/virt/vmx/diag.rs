//! The VM-entry failure diagnostic: when VMLAUNCH or VMRESUME fails a check of
//! SDM Vol. 3C 27.2-27.4, `nestemu` says which rule failed, on which field and
//! with which value, and where the manual states it. Each distinct rule is
//! printed on stderr once; every failure is kept, in order, for `--stats`,
//! traces and tests.

use crate::machine::Machine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use vmx_model::entry::{CheckClass, CheckId, FailedCheck};
use vmx_model::{sdm, Field};

/// At most this many failures are kept (a hypervisor probing entries in a
/// loop must not grow memory without bound); the count goes on.
const KEEP: usize = 4096;

/// One failed VM entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFailure {
    /// The rule that failed.
    pub check: FailedCheck,
    /// The value of the field the rule concerns, if it names one.
    pub value: Option<u64>,
    /// The current-VMCS pointer.
    pub vmcs: u64,
    /// RIP of the VMLAUNCH or VMRESUME.
    pub rip: u64,
    /// The architectural outcome, e.g. "VMfailValid(7)" or "VM exit 33".
    pub outcome: String,
    /// More about the value that broke the rule (the MSR-load entry).
    pub detail: Option<String>,
}

impl EntryFailure {
    /// The diagnostic, several lines.
    pub fn describe(&self) -> String {
        let id = self.check.id;
        let mut s = format!(
            "VM entry failed at RIP {:#x} (VMCS {:#x}): {}\n  check: {id:?}\n  rule:  {}\n",
            self.rip,
            self.vmcs,
            self.outcome,
            id.describe()
        );
        if let Some(f) = self.check.field {
            s.push_str(&format!("  field: {f}"));
            if let Some(v) = self.value {
                s.push_str(&format!(" = {v:#x}"));
            }
            s.push('\n');
        }
        if let Some(d) = &self.detail {
            s.push_str(&format!("  entry: {d}\n"));
        }
        s.push_str(&format!("  see:   {}", sdm::cite(id.section())));
        s
    }
}

/// Every VM-entry failure of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Failures in order (the first [`KEEP`]).
    pub failures: Vec<EntryFailure>,
    /// Failures in total.
    pub count: u64,
    printed: BTreeSet<CheckId>,
}

impl Diagnostics {
    /// The last failure.
    pub fn last(&self) -> Option<&EntryFailure> {
        self.failures.last()
    }
}

/// The outcome a failed check produces.
pub fn outcome(check: &FailedCheck, qualification: u64) -> String {
    match check.id.class() {
        CheckClass::Control => "VMfailValid(7), VM entry with invalid control field(s)".into(),
        CheckClass::Host => "VMfailValid(8), VM entry with invalid host-state field(s)".into(),
        CheckClass::Guest(_) => format!(
            "VM exit 33 (VM-entry failure due to invalid guest state), qualification {qualification}"
        ),
        CheckClass::MsrLoad => format!(
            "VM exit 34 (VM-entry failure due to MSR loading), qualification {qualification}"
        ),
    }
}

/// Records a failed VM entry and prints it the first time its rule fails.
pub(super) fn report(m: &mut Machine, check: FailedCheck, qualification: u64) {
    let f = EntryFailure {
        check,
        value: field_value(m, check.field),
        vmcs: m.virt.vmx.state.current_ptr(),
        rip: m.cpu.rip,
        outcome: outcome(&check, qualification),
        detail: msr_entry(m, &check, qualification),
    };
    *m.stats
        .entry_failures
        .entry(format!("vmx:{:?}", check.id))
        .or_default() += 1;
    let d = &mut m.virt.vmx.diag;
    if d.printed.insert(check.id) {
        eprintln!("nestemu: {}", f.describe());
    }
    d.count += 1;
    if d.failures.len() < KEEP {
        d.failures.push(f);
    }
}

/// The value of `field` in the current VMCS.
fn field_value(m: &Machine, field: Option<Field>) -> Option<u64> {
    Some(m.virt.vmx.state.vmcs()?.get(field?))
}

/// For an MSR-load failure, the entry that failed: its number (the exit
/// qualification, from 1), MSR index, reserved bits and value.
fn msr_entry(m: &Machine, check: &FailedCheck, n: u64) -> Option<String> {
    if check.id.class() != CheckClass::MsrLoad || n == 0 {
        return None;
    }
    let base = m.virt.vmx.state.vmcs()?.get(Field::EntryMsrLoadAddress);
    let at = base.wrapping_add(16 * (n - 1));
    let mut b = [0u8; 16];
    m.peek_phys(at, &mut b);
    let head = u64::from_le_bytes(b[..8].try_into().ok()?);
    let value = u64::from_le_bytes(b[8..].try_into().ok()?);
    Some(format!(
        "number {n} at {at:#x}: MSR {:#x}, bits 63:32 {:#x}, value {value:#x}",
        head as u32,
        head >> 32
    ))
}
