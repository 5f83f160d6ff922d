//! Every mismatch the differential tester found against hardware, replayed on
//! nestemu alone (any host): the outcome must be the one hardware gave.

use difftest::regress::CASES;

#[test]
fn nestemu_matches_the_recorded_hardware_outcomes() {
    let mut failures = Vec::new();
    for c in CASES {
        match difftest::emu_outcome(&c.sequence()).0 {
            Ok(o) => {
                if let Err(e) = c.check(&o) {
                    failures.push(format!("{}: {e} (was: {})", c.name, c.was));
                }
            }
            Err(e) => failures.push(format!("{}: nestemu stopped: {e}", c.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
