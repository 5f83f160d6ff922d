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

/// Seed 0x2026, sequence 15848: a sequence whose return address leads into
/// another sequence of the batch is seen to end through that sequence's end,
/// and its flags (left undefined by the foreign code) are then not compared;
/// a flag difference in a sequence that ended normally still is.
#[test]
fn a_sequence_that_leaves_through_another_compares_no_flags() {
    use difftest::compare::{compare, Artifact, Outcome};
    use difftest::image;
    let seqs = difftest::regress::left_sequence_batch();
    let img = image::build(&seqs).expect("the batch builds");
    assert_eq!(
        img.code[1].base,
        difftest::layout::CODE + 0x20,
        "B where A returns"
    );
    let r = difftest::emu::run(&img);
    assert!(r.failed.is_none(), "{:?}", r.failed);
    let a = Outcome::parse(image::output_record(&r.out, 0));
    let b = Outcome::parse(image::output_record(&r.out, 1));
    assert_eq!(a.ended, img.code[1].base as u32, "A ended through B's end");
    assert_eq!(b.ended, img.code[1].base as u32, "B ended through its own");
    // Another machine whose undefined MUL flags came out differently.
    let mut other = a.clone();
    other.rflags ^= 0xd4; // SF ZF AF PF
    let c = compare(&seqs[0], &img.code[0], &seqs[0].flag_analysis(), &other, &a);
    assert!(c.diffs.is_empty(), "{:?}", c.diffs);
    assert_eq!(c.artifacts, vec![Artifact::LeftSequence]);
    // The same difference after a normal end is a mismatch.
    let mut b_other = b.clone();
    b_other.rflags ^= 0x01; // CF, defined by MUL
    let c = compare(
        &seqs[1],
        &img.code[1],
        &seqs[1].flag_analysis(),
        &b_other,
        &b,
    );
    assert_eq!(c.diffs.len(), 1, "{:?}", c.diffs);
}
