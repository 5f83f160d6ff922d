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
    // The exits the suite produced, by name (`--nocapture` shows them: the
    // coverage table of exit reasons).
    eprintln!(
        "vmx exits by reason: {:?}",
        outcome.machine.stats.vmexits.by_reason
    );
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

/// One expectation on a record.
pub type Check = Box<dyn Fn(&VmxRecord) -> Result<(), String>>;

/// A suite with the expectations of each case.
#[derive(Default)]
pub struct Table {
    /// The cases.
    pub suite: VmxSuite,
    /// Expectations per case name.
    pub checks: Vec<(String, Vec<Check>)>,
}

impl Table {
    /// Adds a case and its expectations.
    pub fn case(&mut self, c: guestkit::vmx::VmxCase, checks: Vec<Check>) {
        self.checks.push((c.name.clone(), checks));
        self.suite.push(c);
    }

    /// Runs the suite and checks every case; panics listing every failure.
    pub fn run(self) -> VmxRun {
        self.run_with(config())
    }

    /// As [`Table::run`] on a machine made from `cfg`.
    pub fn run_with(self, cfg: MachineConfig) -> VmxRun {
        let checks = self.checks;
        let r = run_suite_with(self.suite, cfg);
        assert!(
            r.outcome.passed(),
            "stop {:?}, serial:\n{}",
            r.outcome.stop,
            r.outcome.serial
        );
        let mut failures = Vec::new();
        for (name, cs) in &checks {
            let rec = r.record(name);
            for c in cs {
                if let Err(e) = c(rec) {
                    failures.push(format!("{name}: {e}\n    record: {}", brief(rec)));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            checks.len(),
            failures.join("\n")
        );
        r
    }
}

/// A one-line summary of a record for failure messages.
pub fn brief(r: &VmxRecord) -> String {
    let exits: Vec<String> = r
        .exits
        .iter()
        .map(|e| {
            format!(
                "[reason {:#x} qual {:#x} len {} info {:#x} intr {:#x} idt {:#x} rip {:#x} gla {:#x} gpa {:#x}]",
                e.reason,
                e.qualification,
                e.insn_len,
                e.insn_info,
                e.intr_info,
                e.idt_info,
                e.rip,
                e.guest_linear,
                e.guest_physical
            )
        })
        .collect();
    format!(
        "status {} launch rflags {:#x} error {} l1 exception {:x?} exits {}",
        r.status,
        r.launch_rflags,
        r.launch_error,
        r.l1_exception,
        exits.join(" ")
    )
}

fn exit_at(r: &VmxRecord, n: usize) -> Result<&guestkit::vmx::Exit, String> {
    r.exits
        .get(n)
        .ok_or_else(|| format!("exit {n} missing ({} exits)", r.exits.len()))
}

/// Exit `n` has basic reason `reason` (bit 31 clear).
pub fn reason(n: usize, reason: u64) -> Check {
    Box::new(move |r| {
        let e = exit_at(r, n)?;
        (e.reason == reason)
            .then_some(())
            .ok_or_else(|| format!("exit {n} reason {:#x}, expected {reason}", e.reason))
    })
}

/// A field of exit `n` has a value.
pub fn field(
    n: usize,
    what: &'static str,
    get: fn(&guestkit::vmx::Exit) -> u64,
    want: u64,
) -> Check {
    Box::new(move |r| {
        let v = get(exit_at(r, n)?);
        (v == want)
            .then_some(())
            .ok_or_else(|| format!("exit {n} {what} {v:#x}, expected {want:#x}"))
    })
}

/// Exit `n` has qualification `q`.
pub fn qual(n: usize, q: u64) -> Check {
    field(n, "qualification", |e| e.qualification, q)
}

/// Exit `n` has instruction length `l`.
pub fn len(n: usize, l: u64) -> Check {
    field(n, "instruction length", |e| e.insn_len, l)
}

/// Exit `n` has instruction information `i`.
pub fn info(n: usize, i: u64) -> Check {
    field(n, "instruction information", |e| e.insn_info, i)
}

/// Exit `n` has interruption information `i`.
pub fn intr(n: usize, i: u64) -> Check {
    field(n, "interruption information", |e| e.intr_info, i)
}

/// Exit `n` saved guest RIP = L2's R13 at the last exit (the `mark` idiom).
pub fn rip_marked(n: usize) -> Check {
    Box::new(move |r| {
        let e = exit_at(r, n)?;
        (e.rip == r.gprs[13])
            .then_some(())
            .ok_or_else(|| format!("exit {n} RIP {:#x}, expected {:#x}", e.rip, r.gprs[13]))
    })
}

/// L2 register `g` at the last exit.
pub fn gpr(g: usize, v: u64) -> Check {
    Box::new(move |r| {
        (r.gprs[g] == v)
            .then_some(())
            .ok_or_else(|| format!("L2 gpr{g} = {:#x}, expected {v:#x}", r.gprs[g]))
    })
}

/// User slot `s`.
pub fn user(s: usize, v: u64) -> Check {
    Box::new(move |r| {
        (r.user[s] == v)
            .then_some(())
            .ok_or_else(|| format!("user slot {s} = {:#x}, expected {v:#x}", r.user[s]))
    })
}

/// Exactly `n` exits, the case finished normally.
pub fn exits(n: usize) -> Check {
    Box::new(move |r| {
        (r.exits.len() == n && r.status == 1)
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "{} exits status {}, expected {n} and 1",
                    r.exits.len(),
                    r.status
                )
            })
    })
}

/// The last exit is the guest's final VMCALL.
pub fn ends_with_vmcall() -> Check {
    Box::new(|r| match r.last() {
        Some(e) if e.reason == 18 => Ok(()),
        other => Err(format!("last exit {other:x?}, expected VMCALL")),
    })
}

/// An arbitrary predicate.
pub fn that(what: &'static str, f: impl Fn(&VmxRecord) -> bool + 'static) -> Check {
    Box::new(move |r| f(r).then_some(()).ok_or_else(|| format!("expected {what}")))
}

/// Marks the next instruction: R13 = its address (for [`rip_marked`]).
pub fn mark(a: &mut guestkit::Asm) -> guestkit::AsmResult {
    use iced_x86::code_asm::*;
    let mut l = a.label();
    a.lea(r13, ptr(l.l))?;
    a.set(&mut l)
}
