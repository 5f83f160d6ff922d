//! Expectations on case records: a table of cases, each with the checks its
//! record must pass, run together so a failure lists every broken case.

use guestkit::Record;

/// Status-flag bits.
pub mod fl {
    /// CF.
    pub const CF: u64 = 1;
    /// PF.
    pub const PF: u64 = 4;
    /// AF.
    pub const AF: u64 = 0x10;
    /// ZF.
    pub const ZF: u64 = 0x40;
    /// SF.
    pub const SF: u64 = 0x80;
    /// OF.
    pub const OF: u64 = 0x800;
    /// All six status flags.
    pub const ALL: u64 = CF | PF | AF | ZF | SF | OF;
}

/// One expectation.
pub type Check = Box<dyn Fn(&Record) -> Result<(), String>>;

/// GPR `n` (RAX = 0 ... R15 = 15) equals `v`.
pub fn gpr(n: usize, v: u64) -> Check {
    Box::new(move |r| {
        (r.gprs[n] == v)
            .then_some(())
            .ok_or_else(|| format!("gpr{n} = {:#x}, expected {v:#x}", r.gprs[n]))
    })
}

/// The status flags selected by `mask` equal `v`.
pub fn flags(mask: u64, v: u64) -> Check {
    Box::new(move |r| {
        (r.rflags & mask == v).then_some(()).ok_or_else(|| {
            format!(
                "rflags & {mask:#x} = {:#x}, expected {v:#x} (rflags {:#x})",
                r.rflags & mask,
                r.rflags
            )
        })
    })
}

/// No exception was taken.
pub fn no_exception() -> Check {
    Box::new(|r| match r.exception {
        None => Ok(()),
        Some(e) => Err(format!("unexpected exception {e:x?}")),
    })
}

/// Exception `vector` was taken, with `error` if given.
pub fn exception(vector: u8, error: Option<u64>) -> Check {
    Box::new(move |r| match r.exception {
        Some((v, e, _)) if v == vector && error.is_none_or(|x| x == e) => Ok(()),
        other => Err(format!(
            "exception {other:x?}, expected vector {vector} error {error:x?}"
        )),
    })
}

/// The exception's pushed RIP equals user slot `slot` (where the body stored
/// the expected address).
pub fn exc_rip_is_slot(slot: usize) -> Check {
    Box::new(move |r| match r.exception {
        Some((_, _, rip)) if rip == r.user[slot] => Ok(()),
        other => Err(format!(
            "exception {other:x?}, expected RIP {:#x}",
            r.user[slot]
        )),
    })
}

/// An arbitrary predicate.
pub fn that(what: &'static str, f: impl Fn(&Record) -> bool + 'static) -> Check {
    Box::new(move |r| {
        f(r).then_some(())
            .ok_or_else(|| format!("{what} does not hold: {r:x?}"))
    })
}

/// Runs every check of every case and panics listing all failures.
pub fn verify(outcome: &crate::Outcome, table: &[(String, Vec<Check>)]) {
    let mut failures = Vec::new();
    for (name, checks) in table {
        let r = outcome.record(name);
        if !r.done {
            failures.push(format!("{name}: did not finish ({r:x?})"));
            continue;
        }
        for c in checks {
            if let Err(e) = c(r) {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nserial:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n"),
        outcome.serial
    );
}
