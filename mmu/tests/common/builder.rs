//! Building small explicit page tables in [`SparseMemory`].

use mmu::paging::SparseMemory;

/// Guest intermediate entries: P, R/W, U/S, A.
pub const TABLE: u64 = 0x27;
/// Guest leaf flags: P, R/W, U/S, A, D.
pub const LEAF: u64 = 0x67;
/// EPT intermediate entries: R, W, X, accessed.
pub const EPT_TABLE: u64 = 0x107;
/// EPT leaf: R, W, X, memory type WB, accessed, dirty.
pub const EPT_LEAF: u64 = 0x337;

/// Allocates zeroed table frames from a bump pointer and maps addresses.
pub struct Builder {
    pub mem: SparseMemory,
    pub next: u64,
}

impl Builder {
    /// Tables are allocated upward from `first_frame`.
    pub fn new(first_frame: u64) -> Self {
        Self {
            mem: SparseMemory::new(),
            next: first_frame,
        }
    }

    /// A fresh zeroed 4-KiB frame.
    pub fn alloc(&mut self) -> u64 {
        let f = self.next;
        self.next += 0x1000;
        // Touch it so it exists (reads would be zero anyway).
        self.mem.write_u64(f, 0);
        f
    }

    /// Maps `addr` -> `frame` in 64-bit tables of `levels` levels rooted at
    /// `root`, with a leaf at `leaf_level` (1 = 4K, 2 = 2M, 3 = 1G). `table`
    /// flags go in new intermediate entries, `leaf` in the leaf (PS added for
    /// large leaves). Returns the address of the leaf entry.
    #[allow(clippy::too_many_arguments)]
    pub fn map(
        &mut self,
        root: u64,
        levels: u8,
        addr: u64,
        frame: u64,
        leaf_level: u8,
        table: u64,
        leaf: u64,
    ) -> u64 {
        let mut t = root;
        let mut level = levels;
        loop {
            let idx = (addr >> (12 + 9 * (level as u32 - 1))) & 0x1ff;
            let ea = t + idx * 8;
            if level == leaf_level {
                let ps = if leaf_level > 1 { 0x80 } else { 0 };
                self.mem.write_u64(ea, frame | leaf | ps);
                return ea;
            }
            let e = self.mem.read_u64(ea);
            t = if e & 7 != 0 {
                e & 0x000f_ffff_ffff_f000
            } else {
                let n = self.alloc();
                self.mem.write_u64(ea, n | table);
                n
            };
            level -= 1;
        }
    }

    /// Address of the entry at `level` for `addr` (the tables must exist).
    pub fn entry_addr(&self, root: u64, levels: u8, addr: u64, level: u8) -> u64 {
        let mut t = root;
        let mut l = levels;
        loop {
            let ea = t + ((addr >> (12 + 9 * (l as u32 - 1))) & 0x1ff) * 8;
            if l == level {
                return ea;
            }
            t = self.mem.read_u64(ea) & 0x000f_ffff_ffff_f000;
            l -= 1;
        }
    }

    /// Maps `la` -> `frame` with 32-bit paging (4-KiB page).
    pub fn map32(&mut self, root: u64, la: u64, frame: u64, flags: u32) -> u64 {
        let pde_a = root + ((la >> 22) & 0x3ff) * 4;
        let pde = self.mem.read_u32(pde_a);
        let pt = if pde & 1 != 0 {
            (pde & 0xffff_f000) as u64
        } else {
            let n = self.alloc();
            self.mem.write_u32(pde_a, n as u32 | 0x27);
            n
        };
        let pte_a = pt + ((la >> 12) & 0x3ff) * 4;
        self.mem.write_u32(pte_a, frame as u32 | flags);
        pte_a
    }
}
