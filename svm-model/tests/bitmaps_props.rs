//! The permission-map lookups against naive bit-by-bit reference lookups.

use proptest::prelude::*;
use svm_model::bitmaps::{iopm_intercepts, msrpm_intercepts};
use svm_model::PageMem;

const BASE: u64 = 0x40_0000;

fn bit(map: &[u8], n: u64) -> bool {
    map.get((n / 8) as usize)
        .is_some_and(|b| b >> (n % 8) & 1 == 1)
}

proptest! {
    #[test]
    fn iopm_matches_a_per_port_reference(
        map in prop::collection::vec(any::<u8>(), 0x3000),
        port in any::<u16>(),
        size in prop::sample::select(vec![1u8, 2, 4]),
    ) {
        let mut mem = PageMem::new();
        mem.poke(BASE, &map);
        let want = (0..u64::from(size)).any(|i| bit(&map, u64::from(port) + i));
        prop_assert_eq!(iopm_intercepts(&mut mem, BASE, port, size), want);
    }

    #[test]
    fn msrpm_matches_the_range_table(
        map in prop::collection::vec(any::<u8>(), 0x2000),
        range in 0usize..4,
        index in 0u32..0x2000,
        write in any::<bool>(),
    ) {
        let mut mem = PageMem::new();
        mem.poke(BASE, &map);
        let (msr, vector) = match range {
            0 => (index, Some(0u64)),
            1 => (0xc000_0000 + index, Some(1)),
            2 => (0xc001_0000 + index, Some(2)),
            _ => (0x4000_0000 + index, None),
        };
        let want = match vector {
            None => true,
            Some(v) => bit(&map, v * 0x4000 + u64::from(index) * 2 + u64::from(write)),
        };
        prop_assert_eq!(msrpm_intercepts(&mut mem, BASE, msr, write), want);
    }
}
