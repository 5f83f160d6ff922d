//! The decoded-block cache (DESIGN.md, "Interpreter").
//!
//! Instructions are decoded once per physical address and decoder bitness, in
//! blocks that end at a control transfer, at the end of a 4-KiB page, or after
//! [`MAX_BLOCK`] instructions. Blocks live in a slab; a map from (physical
//! address, bitness) finds them, and a per-page list lets a write to a page that
//! holds code drop exactly the blocks decoded from it (self-modifying code,
//! loader and DMA writes).
//!
//! In front of the map sits a direct-mapped jump cache (physical address to
//! slot), so finding the next block costs two loads instead of a hash lookup.
//! Its entries are hints: a hit is checked against the slot's key and
//! liveness, so invalidation never has to visit it.
//!
//! Each block holds its instructions as [`Op`]s: the decoded iced-x86
//! `Instruction` with its handler, plus a pre-resolved form for the hot
//! instructions ([`super::fast`]). Branch targets and RIP-relative addresses
//! are used relative to the instruction's own IP, so one block serves every
//! linear address the physical page is mapped at.

use super::fast::Op;
use super::Handler;
use iced_x86::Instruction;
use rustc_hash::FxHashMap;
use std::rc::Rc;

/// The most instructions one block holds.
pub const MAX_BLOCK: usize = 64;

/// The most decoded instructions the cache holds. A guest can make every byte
/// of every page a block start; past this bound the cache starts afresh
/// (deterministically: it depends on the guest's execution only), so host
/// memory stays bounded (about 100 bytes per instruction).
pub const MAX_CACHED_INSNS: usize = 2 << 20;

/// Entries of the jump cache (a power of two).
const JUMP_CACHE: usize = 4096;

/// One decoded instruction with its pre-resolved handler.
#[derive(Clone, Copy)]
pub struct DecodedInsn {
    /// The semantics.
    pub handler: Handler,
    /// The decoded instruction.
    pub insn: Instruction,
    /// Modelled base cost in cycles.
    pub cost: u32,
}

/// A run of decoded instructions from one physical page.
#[derive(Clone)]
pub struct Block {
    /// The instructions in order.
    pub ops: Vec<Op>,
    /// Physical address of the first byte.
    pub start_pa: u64,
    /// Decoder bitness (16, 32 or 64).
    pub bits: u8,
}

impl Block {
    /// Bytes from the first instruction to the end of the last.
    pub fn bytes(&self) -> u64 {
        self.ops.iter().map(|o| o.insn.len() as u64).sum()
    }
}

/// A slab slot.
#[derive(Clone, Default)]
struct Slot {
    /// The instructions (shared with the run loop while they run: see
    /// [`CodeCache::ops`]), then, for a block of pure operations ending
    /// in a pair [`super::fast::fused::fuse`] fuses, the fused operation;
    /// empty when the slot is free.
    ops: Rc<[Op]>,
    /// Number of instructions.
    len: usize,
    /// The modelled cost of all its instructions (the sum of their
    /// [`Op::cost`]), counted at once when the whole block retires.
    cost: u64,
    /// Bytes the block covers.
    bytes: u64,
    /// [`key`] of the block; 0 when the slot is free.
    key: u64,
    /// Every instruction of the block runs a specialized function
    /// ([`Op::is_specialized`]): none of them changes what the run loop
    /// checks at block boundaries besides the clock and the instruction
    /// count (see `Machine::quick_slices`).
    fast: bool,
    /// Every instruction of the block is pure ([`Op::is_pure`]) and only
    /// the last may transfer control: the run loop counts them at the end
    /// of the block and tests the next RIP after the last only.
    pure: bool,
    /// The block that ran after this one last time (see [`Link`]).
    link: Link,
}

/// A remembered successor: the block [`CodeCache::lookup`] gave for the
/// fetch at `rip` after this block ran, in quick stretch `stretch` with the
/// fetch TLB at `generation`.
///
/// The run loop's quick path (`Machine::quick_slices`) opens a new stretch
/// whenever it runs a block that is not made of specialized operations
/// only, delivers an event, or starts; within a stretch only specialized
/// operations run, and they change none of what a fetch depends on besides
/// RIP, the fetch TLB (its generation) and the code cache: not the mode,
/// CS, CPL, RFLAGS.AC, CR0 or the translation context. Dropping blocks
/// (invalidation, a flush) also opens a new stretch, so the successor of a
/// link of the current stretch is still cached. So with the same stretch,
/// RIP and generation, the fetch gives that block again, as a first-level
/// TLB hit.
#[derive(Clone, Copy, Default)]
struct Link {
    /// The stretch it was made in (0: none; stretches count from 1).
    stretch: u64,
    /// RIP of the fetch.
    rip: u64,
    /// The first-level fetch TLB's generation then.
    generation: u64,
    /// The successor's slot.
    slot: u32,
}

/// The jump-cache and slot key of (physical address, bitness); never 0.
#[inline(always)]
fn key(pa: u64, bits: u8) -> u64 {
    (pa << 2) | (bits as u64 >> 4).min(3)
}

/// The cache.
pub struct CodeCache {
    slots: Vec<Slot>,
    free: Vec<u32>,
    map: FxHashMap<(u64, u8), u32>,
    by_page: FxHashMap<u64, Vec<u32>>,
    /// Direct-mapped hints: slot of the block last found for a key.
    jump: Vec<u32>,
    /// One bit per 4-KiB physical page below 4 GiB + RAM: set when the page
    /// holds decoded code.
    code_bits: Vec<u64>,
    /// Instructions held by live blocks.
    cached_insns: usize,
    /// The current quick stretch (see [`Link`]).
    stretch: u64,
    /// Build blocks with pre-resolved operations (true), or run every
    /// instruction through its generic handler (the reference semantics,
    /// for differential tests).
    pub specialize: bool,
    /// Blocks decoded (misses).
    pub decoded_blocks: u64,
    /// Times the cache was emptied for reaching [`MAX_CACHED_INSNS`].
    pub overflow_flushes: u64,
    /// Blocks invalidated by writes.
    pub invalidated_blocks: u64,
}

impl Default for CodeCache {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            map: FxHashMap::default(),
            by_page: FxHashMap::default(),
            jump: vec![u32::MAX; JUMP_CACHE],
            code_bits: Vec::new(),
            cached_insns: 0,
            stretch: 1,
            specialize: true,
            decoded_blocks: 0,
            overflow_flushes: 0,
            invalidated_blocks: 0,
        }
    }
}

impl core::fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CodeCache")
            .field("blocks", &self.map.len())
            .finish()
    }
}

impl CodeCache {
    /// Finds the block starting at `pa` for `bits`.
    #[inline(always)]
    pub fn lookup(&mut self, pa: u64, bits: u8) -> Option<u32> {
        let k = key(pa, bits);
        let h = ((pa ^ (pa >> 12)) as usize) & (JUMP_CACHE - 1);
        let idx = self.jump[h];
        if let Some(s) = self.slots.get(idx as usize) {
            if s.key == k {
                return Some(idx);
            }
        }
        self.lookup_map(pa, bits, h)
    }

    #[inline(never)]
    fn lookup_map(&mut self, pa: u64, bits: u8, h: usize) -> Option<u32> {
        let idx = self.map.get(&(pa, bits)).copied()?;
        self.jump[h] = idx;
        Some(idx)
    }

    /// Number of instructions of the block in slot `idx`.
    #[inline(always)]
    pub fn len(&self, idx: u32) -> usize {
        self.slots[idx as usize].len
    }

    /// Bytes covered by the block in slot `idx`.
    #[inline(always)]
    pub fn bytes(&self, idx: u32) -> u64 {
        self.slots[idx as usize].bytes
    }

    /// The modelled cost of all the instructions of the block in slot
    /// `idx`: what they retire when the whole block runs.
    #[inline(always)]
    pub fn cost(&self, idx: u32) -> u64 {
        self.slots[idx as usize].cost
    }

    /// The first instruction of the block in slot `idx`.
    pub fn first(&self, idx: u32) -> Op {
        self.slots[idx as usize].ops[0]
    }

    /// The operations of slot `idx` (its [`CodeCache::len`] instructions,
    /// then its fused operation if it has one), to run them: the machine runs them
    /// while it mutates itself, the cache included, and a block invalidated
    /// meanwhile (self-modifying code) keeps its operations until the run
    /// drops them.
    #[inline(always)]
    pub fn ops(&self, idx: u32) -> Rc<[Op]> {
        self.slots[idx as usize].ops.clone()
    }

    /// True if every instruction of the block in slot `idx` runs a
    /// specialized function.
    #[inline(always)]
    pub fn is_fast(&self, idx: u32) -> bool {
        self.slots[idx as usize].fast
    }

    /// True if every instruction of the block in slot `idx` is pure
    /// ([`Op::is_pure`]) and only the last may transfer control.
    #[inline(always)]
    pub fn is_pure(&self, idx: u32) -> bool {
        self.slots[idx as usize].pure
    }

    /// Starts a new quick stretch: every [`Link`] made so far is stale.
    #[inline(always)]
    pub fn new_stretch(&mut self) {
        self.stretch += 1;
    }

    /// The block linked as the successor of slot `from` (any index) for a
    /// fetch at `rip` with the fetch TLB at `generation`, if the link was
    /// made in the current stretch and its block is still cached: the
    /// block [`CodeCache::lookup`] would give (see [`Link`]).
    #[inline(always)]
    pub fn linked(&self, from: u32, rip: u64, generation: u64) -> Option<u32> {
        let l = &self.slots.get(from as usize)?.link;
        (l.stretch == self.stretch && l.rip == rip && l.generation == generation).then_some(l.slot)
    }

    /// [`CodeCache::linked`] when the successor is a block of pure
    /// operations ([`CodeCache::is_pure`]): its slot, instruction count
    /// and cost ([`CodeCache::cost`]). `None` when there is no link or
    /// the block is not pure.
    #[inline(always)]
    pub fn linked_pure(&self, from: u32, rip: u64, generation: u64) -> Option<(u32, u64, u64)> {
        let to = self.linked(from, rip, generation)?;
        let t = &self.slots[to as usize];
        t.pure.then_some((to, t.len as u64, t.cost))
    }

    /// Links `to`, found by a fetch at `rip` with the fetch TLB at
    /// `generation` in the current stretch, as the successor of slot
    /// `from` (nothing if `from` is no slot).
    #[inline(always)]
    pub fn link(&mut self, from: u32, rip: u64, to: u32, generation: u64) {
        let stretch = self.stretch;
        if let Some(s) = self.slots.get_mut(from as usize) {
            s.link = Link {
                stretch,
                rip,
                generation,
                slot: to,
            };
        }
    }

    /// True if the page of `pa` holds decoded code.
    #[inline(always)]
    pub fn is_code_page(&self, pa: u64) -> bool {
        let pfn = (pa >> 12) as usize;
        match self.code_bits.get(pfn >> 6) {
            Some(w) => w & (1 << (pfn & 63)) != 0,
            None => false,
        }
    }

    /// Before a write to the physical bytes `first..=last` (on at most two
    /// pages): drops the blocks decoded from their pages. True if there
    /// were any, and so the write must end the block running now.
    #[inline(always)]
    pub fn written(&mut self, first: u64, last: u64) -> bool {
        if self.is_code_page(first) || self.is_code_page(last) {
            self.invalidate_page(first);
            self.invalidate_page(last);
            return true;
        }
        false
    }

    /// Adds a block and returns its slot.
    pub fn insert(&mut self, block: Block) -> u32 {
        let len = block.ops.len();
        if self.cached_insns + len > MAX_CACHED_INSNS {
            let flushes = self.overflow_flushes + 1;
            self.clear();
            self.overflow_flushes = flushes;
        }
        self.cached_insns += len;
        let page = block.start_pa >> 12;
        let pure = block.ops.iter().all(Op::is_pure)
            && block
                .ops
                .iter()
                .rev()
                .skip(1)
                .all(|o| o.insn.flow_control() == iced_x86::FlowControl::Next);
        let bytes = block.bytes();
        let cost = Op::total_cost(&block.ops);
        let mut ops = block.ops;
        let fast = ops.iter().all(Op::is_specialized);
        // A block of pure operations ending in a fusable pair carries the
        // fused operation after its instructions (see fast::fused).
        if pure && len >= 2 {
            if let Some(f) = super::fast::fused::fuse(&ops[len - 2], &ops[len - 1]) {
                ops.push(f);
            }
        }
        let slot = Slot {
            len,
            cost,
            fast,
            pure,
            bytes,
            key: key(block.start_pa, block.bits),
            ops: ops.into(),
            link: Link::default(),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert((block.start_pa, block.bits), idx);
        self.by_page.entry(page).or_default().push(idx);
        let pfn = page as usize;
        if self.code_bits.len() <= pfn >> 6 {
            self.code_bits.resize((pfn >> 6) + 1, 0);
        }
        self.code_bits[pfn >> 6] |= 1 << (pfn & 63);
        self.decoded_blocks += 1;
        idx
    }

    /// Drops every block decoded from the page of `pa`.
    #[cold]
    pub fn invalidate_page(&mut self, pa: u64) {
        // Links may name the blocks dropped here.
        self.new_stretch();
        let page = pa >> 12;
        let pfn = page as usize;
        if let Some(w) = self.code_bits.get_mut(pfn >> 6) {
            *w &= !(1 << (pfn & 63));
        }
        if let Some(list) = self.by_page.remove(&page) {
            for idx in list {
                let s = &mut self.slots[idx as usize];
                if s.key != 0 {
                    self.cached_insns -= s.len;
                    let (pa, bits) = (s.key >> 2, [0, 16, 32, 64][(s.key & 3) as usize]);
                    self.map.remove(&(pa, bits));
                    *s = Slot::default();
                    self.free.push(idx);
                    self.invalidated_blocks += 1;
                }
            }
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        *self = CodeCache {
            decoded_blocks: self.decoded_blocks,
            invalidated_blocks: self.invalidated_blocks,
            overflow_flushes: self.overflow_flushes,
            // Links name slots that no longer exist.
            stretch: self.stretch + 1,
            specialize: self.specialize,
            ..CodeCache::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pa: u64, n: usize) -> Block {
        let d = DecodedInsn {
            handler: crate::interp::invalid_opcode,
            insn: iced_x86::Instruction::default(),
            cost: 1,
        };
        Block {
            ops: vec![Op::generic(d); n],
            start_pa: pa,
            bits: 64,
        }
    }

    /// A guest that makes a block of every byte cannot grow the cache past
    /// its bound: the cache starts afresh.
    #[test]
    fn bounded_by_instruction_count() {
        let mut c = CodeCache::default();
        let per = MAX_BLOCK;
        let blocks = MAX_CACHED_INSNS / per + 10;
        for k in 0..blocks {
            c.insert(block(k as u64, per));
        }
        assert_eq!(c.overflow_flushes, 1);
        assert!(c.cached_insns <= MAX_CACHED_INSNS);
        assert_eq!(c.lookup(0, 64), None, "flushed");
        assert!(c.lookup((blocks - 1) as u64, 64).is_some());
    }

    #[test]
    fn invalidation_releases_instructions() {
        let mut c = CodeCache::default();
        c.insert(block(0x1000, 10));
        c.insert(block(0x1010, 5));
        assert_eq!(c.cached_insns, 15);
        assert!(c.lookup(0x1010, 64).is_some());
        c.invalidate_page(0x1000);
        assert_eq!(c.cached_insns, 0);
        assert!(!c.is_code_page(0x1000));
        assert_eq!(c.lookup(0x1010, 64), None, "the jump cache checks the slot");
    }

    /// Operations being run outlive their block's invalidation and the
    /// reuse of its slot.
    #[test]
    fn running_ops_outlive_their_block() {
        let mut c = CodeCache::default();
        let a = c.insert(block(0x1000, 3));
        let ops = c.ops(a);
        c.invalidate_page(0x1000);
        let b = c.insert(block(0x2000, 2));
        assert_eq!(a, b, "the slot is reused");
        assert_eq!(ops.len(), 3);
        assert_eq!(c.ops(b).len(), 2);
    }

    /// A link holds within its stretch, for its RIP and TLB generation
    /// only; a new stretch, an invalidation or a flush ends it.
    #[test]
    fn links_hold_within_their_stretch() {
        let mut c = CodeCache::default();
        let a = c.insert(block(0x1000, 3));
        let b = c.insert(block(0x2000, 2));
        c.link(a, 0x7000, b, 5);
        assert_eq!(c.linked(a, 0x7000, 5), Some(b));
        assert_eq!(c.linked(a, 0x7001, 5), None, "another RIP");
        assert_eq!(c.linked(a, 0x7000, 6), None, "another TLB generation");
        assert_eq!(c.linked(u32::MAX, 0x7000, 5), None, "no block");
        c.new_stretch();
        assert_eq!(c.linked(a, 0x7000, 5), None, "a new stretch");
        c.link(a, 0x7000, b, 5);
        c.invalidate_page(0x2000);
        assert_eq!(c.linked(a, 0x7000, 5), None, "the successor was dropped");
        let b = c.insert(block(0x2000, 2));
        c.link(a, 0x7000, b, 5);
        c.clear();
        assert_eq!(c.linked(a, 0x7000, 5), None, "flushed");
    }
}
