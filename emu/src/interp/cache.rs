//! The decoded-block cache (DESIGN.md, "Interpreter").
//!
//! Instructions are decoded once per physical address and decoder bitness, in
//! blocks that end at a control transfer, at the end of a 4-KiB page, or after
//! [`MAX_BLOCK`] instructions. Blocks live in a slab; a map from (physical
//! address, bitness) finds them, and a per-page list lets a write to a page that
//! holds code drop exactly the blocks decoded from it (self-modifying code,
//! loader and DMA writes).
//!
//! Decoded instructions keep iced-x86's `Instruction`; branch targets and
//! RIP-relative addresses are used relative to the instruction's own IP, so one
//! block serves every linear address the physical page is mapped at.

use super::Handler;
use iced_x86::Instruction;
use rustc_hash::FxHashMap;

/// The most instructions one block holds.
pub const MAX_BLOCK: usize = 64;

/// The most decoded instructions the cache holds. A guest can make every byte
/// of every page a block start; past this bound the cache starts afresh
/// (deterministically: it depends on the guest's execution only), so host
/// memory stays bounded (about 60 bytes per instruction).
pub const MAX_CACHED_INSNS: usize = 2 << 20;

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
    pub insns: Vec<DecodedInsn>,
    /// Physical address of the first byte.
    pub start_pa: u64,
    /// Decoder bitness (16, 32 or 64).
    pub bits: u8,
    /// False once invalidated; the slot is then free.
    pub live: bool,
}

/// The cache.
#[derive(Default)]
pub struct CodeCache {
    blocks: Vec<Block>,
    free: Vec<u32>,
    map: FxHashMap<(u64, u8), u32>,
    by_page: FxHashMap<u64, Vec<u32>>,
    /// One bit per 4-KiB physical page below 4 GiB + RAM: set when the page
    /// holds decoded code.
    code_bits: Vec<u64>,
    /// Instructions held by live blocks.
    cached_insns: usize,
    /// Blocks decoded (misses).
    pub decoded_blocks: u64,
    /// Times the cache was emptied for reaching [`MAX_CACHED_INSNS`].
    pub overflow_flushes: u64,
    /// Blocks invalidated by writes.
    pub invalidated_blocks: u64,
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
    pub fn lookup(&self, pa: u64, bits: u8) -> Option<u32> {
        self.map.get(&(pa, bits)).copied()
    }

    /// The block in slot `idx`.
    #[inline(always)]
    pub fn block(&self, idx: u32) -> &Block {
        &self.blocks[idx as usize]
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
        if self.cached_insns + block.insns.len() > MAX_CACHED_INSNS {
            let flushes = self.overflow_flushes + 1;
            self.clear();
            self.overflow_flushes = flushes;
        }
        self.cached_insns += block.insns.len();
        let key = (block.start_pa, block.bits);
        let page = block.start_pa >> 12;
        let idx = match self.free.pop() {
            Some(i) => {
                self.blocks[i as usize] = block;
                i
            }
            None => {
                self.blocks.push(block);
                (self.blocks.len() - 1) as u32
            }
        };
        self.map.insert(key, idx);
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
                let b = &mut self.blocks[idx as usize];
                if b.live {
                    b.live = false;
                    self.cached_insns -= b.insns.len();
                    self.map.remove(&(b.start_pa, b.bits));
                    b.insns = Vec::new();
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
            insns: vec![d; n],
            start_pa: pa,
            bits: 64,
            live: true,
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
        c.invalidate_page(0x1000);
        assert_eq!(c.cached_insns, 0);
        assert!(!c.is_code_page(0x1000));
    }
}
