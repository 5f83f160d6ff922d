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
    /// The instructions; empty while the block runs (see
    /// [`CodeCache::take_ops`]) or when the slot is free.
    ops: Vec<Op>,
    /// Number of instructions (kept while `ops` is taken).
    len: usize,
    /// Bytes the block covers.
    bytes: u64,
    /// [`key`] of the block; 0 when the slot is free.
    key: u64,
    /// Changes each time the slot gets a new block.
    serial: u64,
    /// Every instruction of the block runs a specialized function
    /// ([`Op::is_specialized`]): none of them changes what the run loop
    /// checks at block boundaries besides the clock and the instruction
    /// count (see `Machine::quick_slices`).
    fast: bool,
    /// Every instruction of the block is pure ([`Op::is_pure`]): the run
    /// loop counts them at the end of the block.
    pure: bool,
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
    /// Source of [`Slot::serial`].
    serials: u64,
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
            serials: 0,
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

    /// The first instruction of the block in slot `idx`.
    pub fn first(&self, idx: u32) -> Op {
        self.slots[idx as usize].ops[0]
    }

    /// Takes the operations of slot `idx` out to run them (the machine runs
    /// them while it mutates itself, the cache included); give them back
    /// with [`CodeCache::restore_ops`]. Returns them with the slot's serial.
    #[inline(always)]
    pub fn take_ops(&mut self, idx: u32) -> (Vec<Op>, u64) {
        let s = &mut self.slots[idx as usize];
        (core::mem::take(&mut s.ops), s.serial)
    }

    /// True if every instruction of the block in slot `idx` runs a
    /// specialized function.
    #[inline(always)]
    pub fn is_fast(&self, idx: u32) -> bool {
        self.slots[idx as usize].fast
    }

    /// True if every instruction of the block in slot `idx` is pure
    /// ([`Op::is_pure`]).
    #[inline(always)]
    pub fn is_pure(&self, idx: u32) -> bool {
        self.slots[idx as usize].pure
    }

    /// Gives back operations taken by [`CodeCache::take_ops`], unless the
    /// block was invalidated (or the cache flushed) meanwhile.
    #[inline(always)]
    pub fn restore_ops(&mut self, idx: u32, serial: u64, ops: Vec<Op>) {
        if let Some(s) = self.slots.get_mut(idx as usize) {
            if s.serial == serial && s.key != 0 {
                s.ops = ops;
            }
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
        self.serials += 1;
        let slot = Slot {
            len,
            fast: block.ops.iter().all(Op::is_specialized),
            pure: block.ops.iter().all(Op::is_pure),
            bytes: block.bytes(),
            key: key(block.start_pa, block.bits),
            serial: self.serials,
            ops: block.ops,
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
                    *s = Slot {
                        serial: s.serial,
                        ..Slot::default()
                    };
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
            serials: self.serials,
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

    /// Operations taken out to run are not given back to a slot that was
    /// invalidated and reused meanwhile.
    #[test]
    fn taken_ops_return_only_to_their_block() {
        let mut c = CodeCache::default();
        let a = c.insert(block(0x1000, 3));
        let (ops, serial) = c.take_ops(a);
        c.invalidate_page(0x1000);
        let b = c.insert(block(0x2000, 2));
        assert_eq!(a, b, "the slot is reused");
        c.restore_ops(a, serial, ops);
        assert_eq!(c.take_ops(b).0.len(), 2);
    }
}
