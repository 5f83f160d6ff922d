//! Every mismatch the differential tester found, kept as an explicit
//! sequence with the outcome hardware gave. `tests/regressions.rs` checks
//! nestemu against these expectations on any host; `tests/hardware.rs` checks
//! them against the CPU too where `/dev/kvm` exists, so an expectation that
//! stops matching hardware is noticed.

use crate::compare::{Outcome, GPR_NAMES};
use crate::seq::Sequence;

/// What hardware did with a case.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    /// The exception taken: vector and error code; `None`: none.
    pub exception: Option<(u8, u64)>,
    /// CR2 at a #PF.
    pub cr2: Option<u64>,
    /// RFLAGS at the end, under a mask: (mask, value).
    pub rflags: Option<(u64, u64)>,
    /// The RFLAGS image the exception pushed.
    pub pushed_rflags: Option<u64>,
    /// Registers at the end.
    pub gprs: &'static [(&'static str, u64)],
}

/// One regression case.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// A short name.
    pub name: &'static str,
    /// What nestemu did wrong.
    pub was: &'static str,
    /// The instruction bytes, in hex.
    pub code: &'static str,
    /// Initial registers (`rflags` too); the rest are zero, RSP in the scratch
    /// window.
    pub sets: &'static [(&'static str, u64)],
    /// Hardware's outcome.
    pub expect: Expect,
    /// False where the PVM oracle cannot show the hardware outcome (see
    /// [`crate::compare::Artifact`]): the expectation then comes from the SDM
    /// and the hardware facts around it.
    pub oracle: bool,
}

impl Case {
    /// The case as a sequence.
    pub fn sequence(&self) -> Sequence {
        let bytes: Vec<u8> = (0..self.code.len() / 2)
            .map(|k| u8::from_str_radix(&self.code[2 * k..2 * k + 2], 16).expect("hex"))
            .collect();
        let sets: Vec<(String, u64)> = self.sets.iter().map(|(r, v)| (r.to_string(), *v)).collect();
        crate::explicit(&bytes, &sets).expect("a valid case")
    }

    /// Checks an outcome against the expectation.
    pub fn check(&self, o: &Outcome) -> Result<(), String> {
        let e = &self.expect;
        let got = o.exception.map(|x| (x.vector, x.error));
        if got != e.exception {
            return Err(format!("exception {got:x?}, expected {:x?}", e.exception));
        }
        if let (Some(cr2), Some(x)) = (e.cr2, o.exception) {
            if x.cr2 != cr2 {
                return Err(format!("cr2 {:#x}, expected {cr2:#x}", x.cr2));
            }
        }
        if let Some((mask, v)) = e.rflags {
            if o.rflags & mask != v {
                return Err(format!(
                    "rflags {:#x} & {mask:#x}, expected {v:#x}",
                    o.rflags
                ));
            }
        }
        if let (Some(p), Some(x)) = (e.pushed_rflags, o.exception) {
            if x.rflags != p {
                return Err(format!("pushed rflags {:#x}, expected {p:#x}", x.rflags));
            }
        }
        for (r, v) in e.gprs {
            let n = GPR_NAMES.iter().position(|g| g == r).expect("a register");
            if o.gprs[n] != *v {
                return Err(format!("{r} {:#x}, expected {v:#x}", o.gprs[n]));
            }
        }
        Ok(())
    }
}

/// #SS.
pub const SS: u8 = 12;
/// #GP.
pub const GP: u8 = 13;
/// #PF.
pub const PF: u8 = 14;
/// #AC.
pub const AC: u8 = 17;
/// #PF error code: present.
pub const P: u64 = 1;
/// #PF error code: write.
pub const W: u64 = 2;
/// #PF error code: user.
pub const U: u64 = 4;

/// The cases.
pub const CASES: &[Case] = &[Case {
    name: "rf-pushed-for-faults",
    was: "a fault pushed RFLAGS.RF = 0; SDM Vol. 3B 18.3.1.1 and hardware push 1",
    code: "0f0b", // ud2
    sets: &[],
    oracle: true,
    expect: Expect {
        exception: Some((6, 0)),
        pushed_rflags: Some(0x10202),
        ..NONE
    },
}];

/// Nothing expected: no exception, nothing else checked (the base for the
/// cases' expectations).
pub const NONE: Expect = Expect {
    exception: None,
    cr2: None,
    rflags: None,
    pushed_rflags: None,
    gprs: &[],
};
