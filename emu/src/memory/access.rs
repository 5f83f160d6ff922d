//! Linear and physical memory access for instructions: segmentation
//! (SDM Vol. 3A 3.4 and 5.3), alignment checking (Vol. 3A 6.15 "#AC"),
//! translation through the paging model, and the physical accessor that routes
//! to RAM or devices and keeps the decoded-code cache exact.

use crate::event::Event;
use crate::interp::operand::size_mask;
use crate::machine::Machine;
use mmu::{Cr0, Rflags, SegReg};

/// The kind of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Execute,
}

/// Who makes the access (SDM Vol. 3A 4.6, "Access rights").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// An explicit access at the current privilege level.
    Current,
    /// An explicit access at a given CPL (stack pushes during a privilege
    /// change, before CPL itself changes).
    AtCpl(u8),
    /// An implicit supervisor-mode access: descriptor tables, the IDT, the TSS.
    System,
}

impl Machine {
    /// The linear-address width canonical checks of accesses use: 57 with
    /// 5-level paging (CR4.LA57), else 48 (SDM Vol. 3A 3.3.7.1, 4.5.1).
    /// Loads of bases into MSRs and descriptor-table registers check against
    /// the processor's width instead ([`mmu::AddressWidths::linear_bits`]).
    #[inline(always)]
    pub fn canonical_bits(&self) -> u8 {
        if self.cpu.sys.cr4.contains(mmu::Cr4::LA57) {
            57
        } else {
            48
        }
    }

    /// Applies segmentation to `off` for an access of `size` bytes and returns
    /// the linear address, or #GP(0) / #SS(0) (SDM Vol. 3A 5.3 limit checks,
    /// 5.4.1 type checks, 3.3.7.1 canonical addresses in 64-bit mode).
    #[inline(always)]
    pub fn linear(&self, seg: SegReg, off: u64, size: usize, write: bool) -> Result<u64, Event> {
        let s = &self.cpu.sys.segs[seg as usize];
        let fault = || {
            if seg == SegReg::Ss {
                Event::ss(0)
            } else {
                Event::gp0()
            }
        };
        if self.cpu.long64() {
            let base = if matches!(seg, SegReg::Fs | SegReg::Gs) {
                s.base
            } else {
                0
            };
            let la = off.wrapping_add(base);
            let bits = self.canonical_bits();
            let last = la.wrapping_add(size as u64 - 1);
            if !mmu::is_canonical(la, bits) || !mmu::is_canonical(last, bits) {
                return Err(fault());
            }
            return Ok(la);
        }
        let protected = self.cpu.mode.mode == mmu::CpuMode::Protected
            || self.cpu.mode.mode == mmu::CpuMode::Compatibility;
        let attr = s.attr;
        if protected {
            if attr.unusable() {
                return Err(fault());
            }
            if write && !attr.writable() {
                return Err(fault());
            }
            if !write && attr.is_code() && !attr.readable() {
                return Err(fault());
            }
        }
        let last = off.wrapping_add(size as u64 - 1);
        let limit = s.limit as u64;
        let ok = if attr.expand_down() {
            let upper = if attr.db() { 0xffff_ffff } else { 0xffff };
            off > limit && last <= upper && last >= off
        } else {
            last <= limit && last >= off
        };
        if !ok {
            return Err(fault());
        }
        Ok(s.base.wrapping_add(off) & 0xffff_ffff)
    }

    /// True if an access of `size` at `la` must raise #AC (CR0.AM, RFLAGS.AC,
    /// CPL 3, misaligned; SDM Vol. 3A 6.15 "Interrupt 17").
    #[inline(always)]
    pub(crate) fn misaligned(&self, la: u64, size: usize) -> bool {
        size > 1
            && la & (size as u64 - 1) != 0
            && self.cpu.mode.cpl == 3
            && self.cpu.sys.cr0.contains(Cr0::AM)
            && self.cpu.flags.has(Rflags::AC)
    }

    /// Reads `size` (1, 2, 4 or 8) bytes at `seg:off`.
    #[inline(always)]
    pub fn read_mem(&mut self, seg: SegReg, off: u64, size: usize) -> Result<u64, Event> {
        let la = self.linear(seg, off, size, false)?;
        self.read_linear(la, size, Privilege::Current)
    }

    /// Reads the destination of a read-modify-write instruction: the access
    /// is checked as a write (segment writability, page write permission, the
    /// W bit of a page-fault error code, both pages of a page-crossing
    /// operand) before anything is read, as the processor does for the read
    /// part of an RMW operand. The differential tests against hardware
    /// observe this: `ADD [m], r` to a read-only page faults with error code
    /// P|W|U, and one crossing from a read-only into a not-present page
    /// faults on the read-only page.
    #[inline(always)]
    pub fn read_mem_rmw(&mut self, seg: SegReg, off: u64, size: usize) -> Result<u64, Event> {
        let la = self.linear(seg, off, size, true)?;
        if self.misaligned(la, size) {
            return Err(Event::Exception(mmu::Exception::ac()));
        }
        let pages = self.translate_range(la, size, AccessKind::Write, Privilege::Current)?;
        let mut buf = [0u8; 16];
        let mut done = 0;
        for (pa, n) in pages.into_iter().flatten() {
            if n == size {
                return Ok(self.phys_read(pa, size));
            }
            for k in 0..n {
                buf[done + k] = self.phys_read(pa + k as u64, 1) as u8;
            }
            done += n;
        }
        Ok(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")))
    }

    /// Checks that `size` bytes at `seg:off` could be written (segmentation,
    /// alignment, paging), without accessing them: the write-intent check of a
    /// read-modify-write operand wider than 8 bytes (CMPXCHG16B).
    pub fn probe_write(&mut self, seg: SegReg, off: u64, size: usize) -> Result<(), Event> {
        let la = self.linear(seg, off, size, true)?;
        if self.misaligned(la, size.min(8)) {
            return Err(Event::Exception(mmu::Exception::ac()));
        }
        self.translate_range(la, size, AccessKind::Write, Privilege::Current)?;
        Ok(())
    }

    /// Writes the low `size` (1, 2, 4 or 8) bytes of `v` at `seg:off`.
    #[inline(always)]
    pub fn write_mem(&mut self, seg: SegReg, off: u64, size: usize, v: u64) -> Result<(), Event> {
        let la = self.linear(seg, off, size, true)?;
        self.write_linear(la, size, v, Privilege::Current)
    }

    /// Reads `size` (1..=8) bytes at linear address `la`.
    #[inline(always)]
    pub fn read_linear(&mut self, la: u64, size: usize, who: Privilege) -> Result<u64, Event> {
        if who == Privilege::Current && self.misaligned(la, size) {
            return Err(Event::Exception(mmu::Exception::ac()));
        }
        if self.dbg.data_armed && who != Privilege::System {
            self.check_data_breakpoints(la, size, false);
        }
        if (la & 0xfff) as usize + size <= 0x1000 {
            let pa = self.translate(la, AccessKind::Read, who)?;
            return Ok(self.phys_read(pa, size));
        }
        let mut buf = [0u8; 8];
        self.read_linear_bytes(la, &mut buf[..size], who)?;
        Ok(u64::from_le_bytes(buf))
    }

    /// Writes `size` (1..=8) bytes at linear address `la`.
    #[inline(always)]
    pub fn write_linear(
        &mut self,
        la: u64,
        size: usize,
        v: u64,
        who: Privilege,
    ) -> Result<(), Event> {
        if who == Privilege::Current && self.misaligned(la, size) {
            return Err(Event::Exception(mmu::Exception::ac()));
        }
        if self.dbg.data_armed && who != Privilege::System {
            self.check_data_breakpoints(la, size, true);
        }
        if (la & 0xfff) as usize + size <= 0x1000 {
            let pa = self.translate(la, AccessKind::Write, who)?;
            return self.phys_write(pa, size, v);
        }
        self.write_linear_bytes(la, &v.to_le_bytes()[..size], who)
    }

    /// Reads bytes at a linear address, page by page; all translations succeed
    /// before any byte is returned.
    pub fn read_linear_bytes(
        &mut self,
        la: u64,
        buf: &mut [u8],
        who: Privilege,
    ) -> Result<(), Event> {
        if self.dbg.data_armed && who != Privilege::System {
            self.check_data_breakpoints(la, buf.len(), false);
        }
        let pages = self.translate_range(la, buf.len(), AccessKind::Read, who)?;
        let mut done = 0;
        for (pa, n) in pages.into_iter().flatten() {
            for k in 0..n {
                buf[done + k] = self.phys_read(pa + k as u64, 1) as u8;
            }
            done += n;
        }
        Ok(())
    }

    /// Writes bytes at a linear address; both pages of a page-crossing write
    /// are translated (and may fault) before anything is written
    /// (SDM Vol. 3A 4.10.? "page-crossing accesses" behave as one access).
    pub fn write_linear_bytes(
        &mut self,
        la: u64,
        data: &[u8],
        who: Privilege,
    ) -> Result<(), Event> {
        if self.dbg.data_armed && who != Privilege::System {
            self.check_data_breakpoints(la, data.len(), true);
        }
        let pages = self.translate_range(la, data.len(), AccessKind::Write, who)?;
        let mut done = 0;
        for (pa, n) in pages.into_iter().flatten() {
            for k in 0..n {
                self.phys_write(pa + k as u64, 1, data[done + k] as u64)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Translates `len` (<= 4096) bytes at `la` into at most two physical runs.
    fn translate_range(
        &mut self,
        la: u64,
        len: usize,
        kind: AccessKind,
        who: Privilege,
    ) -> Result<[Option<(u64, usize)>; 2], Event> {
        let first = (0x1000 - (la & 0xfff) as usize).min(len);
        let pa0 = self.translate(la, kind, who)?;
        if first == len {
            return Ok([Some((pa0, len)), None]);
        }
        let la1 = self.wrap_linear(la.wrapping_add(first as u64));
        let pa1 = self.translate(la1, kind, who)?;
        Ok([Some((pa0, first)), Some((pa1, len - first))])
    }

    /// Wraps a linear address to the linear-address width of the current mode.
    #[inline(always)]
    pub fn wrap_linear(&self, la: u64) -> u64 {
        if self.cpu.long64() {
            la
        } else {
            la & 0xffff_ffff
        }
    }

    /// Reads `size` bytes of physical memory (RAM or a device).
    #[inline(always)]
    pub fn phys_read(&mut self, pa: u64, size: usize) -> u64 {
        if let Some(off) = self.ram.offset(pa, size as u64) {
            return self.ram.read_sized(off, size);
        }
        self.phys_read_slow(pa, size)
    }

    #[cold]
    fn phys_read_slow(&mut self, pa: u64, size: usize) -> u64 {
        // Split accesses that straddle RAM and something else byte by byte.
        if (0..size as u64).any(|k| self.ram.offset(pa + k, 1).is_some()) {
            let mut v = 0u64;
            for k in 0..size {
                v |= self.phys_read(pa + k as u64, 1) << (8 * k);
            }
            return v;
        }
        let now = self.now();
        let v = self.dev.mmio_read(pa, size as u8, now) & size_mask(size);
        self.after_device_access();
        v
    }

    /// Writes `size` bytes of physical memory; a write to a page holding
    /// decoded code drops its blocks and ends the current block.
    #[inline(always)]
    pub fn phys_write(&mut self, pa: u64, size: usize, v: u64) -> Result<(), Event> {
        if let Some(off) = self.ram.offset(pa, size as u64) {
            if self.code.written(pa, pa + size as u64 - 1) {
                self.stop_block = true;
            }
            self.ram.write_sized(off, size, v);
            return Ok(());
        }
        self.phys_write_slow(pa, size, v)
    }

    #[cold]
    fn phys_write_slow(&mut self, pa: u64, size: usize, v: u64) -> Result<(), Event> {
        if (0..size as u64).any(|k| self.ram.offset(pa + k, 1).is_some()) {
            for k in 0..size {
                self.phys_write(pa + k as u64, 1, v >> (8 * k))?;
            }
            return Ok(());
        }
        let now = self.now();
        let fx = self
            .dev
            .mmio_write(pa, size as u8, v & size_mask(size), now);
        self.after_device_access();
        self.device_effect(fx)
    }

    /// Copies bytes into physical memory (loaders, DMA), keeping the code cache
    /// exact. Bytes outside RAM are dropped and counted as unclaimed.
    pub fn load_phys(&mut self, pa: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let a = pa + done as u64;
            let n = ((0x1000 - (a & 0xfff)) as usize).min(data.len() - done);
            if self.code.is_code_page(a) {
                self.code.invalidate_page(a);
            }
            match self.ram.offset(a, n as u64) {
                Some(off) => self
                    .ram
                    .slice_mut(off, n)
                    .copy_from_slice(&data[done..done + n]),
                None => self.dev.unclaimed.mmio_writes += 1,
            }
            done += n;
        }
    }

    /// Zeroes `len` bytes of physical memory (loaders: BSS), page by page,
    /// without allocating.
    pub fn zero_phys(&mut self, pa: u64, len: u64) {
        const ZERO: [u8; 4096] = [0; 4096];
        let mut done = 0u64;
        while done < len {
            let a = pa + done;
            let n = (0x1000 - (a & 0xfff)).min(len - done);
            self.load_phys(a, &ZERO[..n as usize]);
            done += n;
        }
    }

    /// Reads bytes of physical memory (RAM only; other bytes read as 0xFF).
    pub fn peek_phys(&self, pa: u64, buf: &mut [u8]) {
        for (k, b) in buf.iter_mut().enumerate() {
            *b = match self.ram.offset(pa + k as u64, 1) {
                Some(off) => self.ram.slice(off, 1)[0],
                None => 0xff,
            };
        }
    }
}
