//! Reports derived from the tables: the VMCS field table, the VM-entry checks, the
//! exit reasons and the VM-instruction errors as Markdown, for docs and for users
//! who want to see what a CPU preset implements.

use crate::caps::VmxCaps;
use crate::entry::{CheckClass, CheckId};
use crate::error::VmInstructionError;
use crate::exit::ExitReason;
use crate::sdm;
use crate::vmcs::{Feature, Kind, Width, FIELDS};
use core::fmt::Write;

fn names<F: bitflags::Flags>(f: F) -> String {
    let v: Vec<&str> = f.iter_names().map(|(n, _)| n).collect();
    v.join(" | ")
}

fn feature(f: Feature) -> String {
    match f {
        Feature::Always => "always".into(),
        Feature::Pin(c) => format!("pin-based {}", names(c)),
        Feature::Proc(c) => format!("primary {}", names(c)),
        Feature::Proc2(c) => format!("secondary {}", names(c)),
        Feature::Exit(c) => format!("exit {}", names(c)),
        Feature::Entry(c) => format!("entry {}", names(c)),
        Feature::EntryOrExit(n, x) => format!("entry {} or exit {}", names(n), names(x)),
        Feature::VmFunc(c) => format!("VM function {}", names(c)),
        Feature::Unmodelled(s) => format!("not modelled: {s}"),
    }
}

/// The VMCS field table; with `caps`, a column says whether each field exists.
pub fn vmcs_fields(caps: Option<&VmxCaps>) -> String {
    let mut s = String::from("| field | encoding | width | type | exists if | SDM |");
    if caps.is_some() {
        s.push_str(" supported |");
    }
    s.push('\n');
    s.push_str("|---|---|---|---|---|---|");
    s.push_str(if caps.is_some() { "---|\n" } else { "\n" });
    for i in FIELDS {
        let width = match i.width {
            Width::W16 => "16",
            Width::W32 => "32",
            Width::W64 => "64",
            Width::Natural => "natural",
        };
        let kind = match i.kind {
            Kind::Control => "control",
            Kind::ExitInfo => "VM-exit information",
            Kind::Guest => "guest state",
            Kind::Host => "host state",
        };
        let _ = write!(
            s,
            "| {} | {:#06x} | {width} | {kind} | {} | {} |",
            i.name,
            i.encoding,
            feature(i.feature),
            sdm::cite(i.section)
        );
        if let Some(c) = caps {
            s.push_str(if c.field_exists(i.field) {
                " yes |"
            } else {
                " no |"
            });
        }
        s.push('\n');
    }
    s
}

/// Every VM-entry check in the order VM entry performs them.
pub fn entry_checks() -> String {
    let mut s =
        String::from("| # | check | outcome | field | rule | SDM |\n|---|---|---|---|---|---|\n");
    for (n, id) in CheckId::ALL.iter().enumerate() {
        let outcome = match id.class() {
            CheckClass::Control => "VMfailValid(7)".to_string(),
            CheckClass::Host => "VMfailValid(8)".to_string(),
            CheckClass::Guest(q) => format!("exit 33, qualification {q}"),
            CheckClass::MsrLoad => "exit 34, qualification = entry index".to_string(),
        };
        let field = id.field().map_or(String::new(), |f| f.name().to_string());
        let _ = writeln!(
            s,
            "| {} | `{id:?}` | {outcome} | {field} | {} | {} |",
            n + 1,
            id.describe(),
            sdm::cite(id.section())
        );
    }
    s
}

/// The exit reasons and VM-instruction errors.
pub fn exit_reasons_and_errors() -> String {
    let mut s = String::from("| exit reason | name | kind |\n|---|---|---|\n");
    for r in ExitReason::ALL {
        let _ = writeln!(s, "| {} | {} | {:?} |", r.number(), r.name(), r.timing());
    }
    s.push_str("\n| VM-instruction error | description |\n|---|---|\n");
    for e in VmInstructionError::ALL {
        let _ = writeln!(s, "| {} | {} |", e.number(), e.describe());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_list_every_row() {
        let caps = VmxCaps::default();
        let f = vmcs_fields(Some(&caps));
        assert_eq!(f.lines().count(), FIELDS.len() + 2);
        assert!(f.contains("| Guest RIP | 0x681e | natural | guest state | always |"));
        assert!(f.contains("| PML address | 0x200e | 64 | control | secondary ENABLE_PML |"));
        let c = entry_checks();
        assert_eq!(c.lines().count(), CheckId::ALL.len() + 2);
        assert!(c.contains("`GuestCsAccessRightsTypeWithUnrestrictedGuest`"));
        let e = exit_reasons_and_errors();
        assert!(e.contains("| 48 | EPT violation | Fault |"));
        assert!(e.contains("| 26 | VM entry with events blocked by MOV SS |"));
    }
}
