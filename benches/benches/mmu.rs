//! Criterion benches of the MMU's hot and cold paths: a TLB hit (the
//! interpreter's memory fast path) and a cold two-dimensional walk.

use criterion::{criterion_group, criterion_main, Criterion};
use mmu::paging::mem::SparseMemory;
use mmu::{Access, LinearAddr, Mmu, TlbConfig, TranslationContext};
use std::hint::black_box;

const LA: u64 = 0x0000_7f12_3456_7000;

/// The explain-walk scenario's tables, reused: a 4-level guest over 4-level
/// EPT mapping `LA`.
fn scenario(nested: bool) -> (SparseMemory, TranslationContext) {
    let s = nestemu::explain::Scenario {
        tlb: TlbConfig::none(),
        nested: if nested {
            nestemu::explain::NestedKind::Ept
        } else {
            nestemu::explain::NestedKind::None
        },
        ..Default::default()
    };
    nestemu::explain::tables(&s).expect("the scenario builds")
}

fn tlb_hit(c: &mut Criterion) {
    let (mut mem, ctx) = scenario(false);
    let mut m = Mmu::new(TlbConfig::intel()).unwrap();
    m.translate(&ctx, LinearAddr(LA), Access::read(false), &mut mem, &mut ())
        .unwrap();
    c.bench_function("tlb hit (intel preset)", |b| {
        b.iter(|| {
            m.translate(
                &ctx,
                LinearAddr(black_box(LA + 8)),
                Access::read(false),
                &mut mem,
                &mut (),
            )
            .unwrap()
        })
    });
}

fn cold_2d_walk(c: &mut Criterion) {
    let (mut mem, ctx) = scenario(true);
    c.bench_function("cold 4-over-4 EPT walk (no caches)", |b| {
        let mut m = Mmu::new(TlbConfig::none()).unwrap();
        b.iter(|| {
            m.translate(
                &ctx,
                LinearAddr(black_box(LA)),
                Access::read(false),
                &mut mem,
                &mut (),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, tlb_hit, cold_2d_walk);
criterion_main!(benches);
