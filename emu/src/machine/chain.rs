//! The run loop's chain of linked pure blocks: the iterations of
//! [`Machine::quick_slices`] that follow a block of pure operations while
//! the next block is linked to it ([`CodeCache::linked`]) and pure too,
//! with the tests that cannot change between them hoisted out.
//!
//! Pure operations ([`crate::interp::fast::Op::is_pure`]) reach nothing
//! but the general-purpose registers, the status flags and the next RIP.
//! So between two blocks of them nothing changes that the quick path
//! tests besides RIP, the instruction count and the clock: not the
//! deadline the clock is tested against (`smp.switch_at`,
//! `dev.check_at`), not the instruction limit or the events the limit
//! counts besides instructions, not the fetch TLB's generation, the quick
//! stretch or the code cache (they write no memory), not the mode, the
//! boundary state or the guest state. The chain therefore computes once
//! how many instructions and cycles may retire before a test would stop
//! the quick path, and counts down; it counts the instructions it retires
//! once, when it ends, before anything reads the counters.
//!
//! [`CodeCache::linked`]: crate::interp::cache::CodeCache::linked
//! [`Machine::quick_slices`]: super::Machine

use super::{ip_mask, Machine};
use crate::event::Event;
use crate::interp::fast::Op;
use crate::stats::Stats;
use std::rc::Rc;

impl Machine {
    /// Runs, after the block in slot `from` (pure, run in a quiet quick
    /// stretch with the first-level TLB free, nothing raised or pending),
    /// the blocks [`Machine::quick_slices`] would run next while each is
    /// the pure block linked to the last and the whole block fits both
    /// the instruction limit and the cycles left before the next deadline
    /// at its start: exactly those iterations of its loop, each counted
    /// in `left` and leaving its slot in `from`. Returns the event the
    /// last block raised, if one did; else the quick path's own tests
    /// decide what comes next. The counters are up to date on return.
    #[inline(always)]
    pub(super) fn run_chain(&mut self, from: &mut u32, left: &mut u64) -> Result<(), Event> {
        // What the quick path's tests would find before each block,
        // counted down from their values now.
        let mut insn_room = match self.config.max_insns {
            Some(n) => n.saturating_sub(self.steps()),
            None => u64::MAX,
        };
        let deadline = self.smp.switch_at.min(self.dev.check_at);
        let cycle_room = deadline.saturating_sub(self.stats.cycles);
        let generation = self.mmu.l1_generation(true);
        let ip_mask = ip_mask(self.cpu.mode.code_bits);
        // The operations of the block run last, held while its successor
        // is itself (a loop of one block takes them once).
        let mut held = *from;
        let mut ops: Rc<[Op]> = self.code.ops(held);
        let room = insn_room;
        let blocks = *left;
        // The clock's advance so far: the chain's cost (one cycle per
        // instruction in the `uncounted` build).
        let mut spent = 0u64;
        let result = loop {
            if spent >= cycle_room || *left == 0 {
                break Ok(());
            }
            let Some((idx, len, c)) = self.code.linked_pure(*from, self.cpu.rip, generation) else {
                break Ok(());
            };
            if len > insn_room {
                break Ok(());
            }
            *from = idx;
            *left -= 1;
            if idx != held {
                held = idx;
                ops = self.code.ops(idx);
            }
            if let Err(e) = self.run_pure_whole(&ops, len as usize, ip_mask) {
                break Err(e);
            }
            insn_room -= len;
            spent += Stats::clock_advance(len, c);
            if self.dbg.pending != 0 {
                break Ok(());
            }
        };
        // Each block's fetch was a first-level hit (cache::Link).
        self.mmu.count_l1_hits(true, blocks - *left);
        self.stats.retire_many(room - insn_room, spent);
        result
    }
}
