//! The generator and the harness on nestemu alone (any host).

use difftest::{gen, image, Plan};

fn plan(groups: Vec<&'static str>, seed: u64) -> Plan {
    Plan {
        seed,
        count: 0,
        groups,
        max_items: gen::DEFAULT_MAX_ITEMS,
        batch: 1000,
    }
}

#[test]
fn a_seed_always_gives_the_same_sequences() {
    let p = plan(gen::INT_GROUPS.to_vec(), 42);
    for k in [0, 1, 17, 999] {
        assert_eq!(p.sequence(k), p.sequence(k));
    }
    assert_ne!(
        p.sequence(3),
        plan(gen::INT_GROUPS.to_vec(), 43).sequence(3)
    );
}

#[test]
fn every_group_generates_valid_sequences() {
    for g in gen::group_names() {
        let p = plan(vec![g], 7);
        for k in 0..300 {
            let s = p.sequence(k);
            assert!(!s.is_empty(), "{g} {k}: empty");
            let a = s.flag_analysis();
            assert_eq!(a.bad_read, None, "{g} {k}: reads an undefined flag");
            assert!(
                s.encode(difftest::layout::CODE, 0x40_0000).is_ok(),
                "{g} {k}"
            );
        }
    }
}

#[test]
fn nestemu_runs_every_group_through_the_harness() {
    let p = plan(gen::group_names(), 9);
    let seqs: Vec<_> = (0..2200).map(|k| p.sequence(k)).collect();
    for chunk in seqs.chunks(1100) {
        let img = image::build(chunk).expect("the batch builds");
        let r = difftest::emu::run(&img);
        assert_eq!(r.failed, None, "nestemu stopped in the batch");
        for k in 0..chunk.len() {
            let o = difftest::compare::Outcome::parse(image::output_record(&r.out, k));
            assert!(o.done, "sequence {k} stored no state");
        }
    }
}
