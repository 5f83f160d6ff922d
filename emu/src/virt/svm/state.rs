//! Between the machine and the model: the physical memory VMRUN, #VMEXIT,
//! VMLOAD and VMSAVE read and write (with every access counted by its tag, and
//! writes keeping the decoded-code cache exact), and the processor state
//! handed in and out ([`svm_model::CpuState`]).

use crate::interp::cache::CodeCache;
use crate::machine::Machine;
use crate::memory::Ram;
use mmu::Rflags;
use std::collections::BTreeMap;
use svm_model::mem::{read_fields_each, write_fields_each};
use svm_model::vmcb::{load_fields, store_fields, FieldLayout};
use svm_model::{CpuState, PhysMem, SvmAccess, SvmConfig, VmcbCache};

/// Guest RAM as the model reaches it: by system-physical address.
pub(crate) struct SvmPhys<'a> {
    pub ram: &'a mut Ram,
    pub code: &'a mut CodeCache,
    pub stop_block: &'a mut bool,
    pub accesses: &'a mut AccessCounts,
}

/// Accesses to SVM structures in physical memory, by tag (DESIGN.md
/// principle 7: the cost model charges from tags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessCounts(pub [u64; ACCESS_TAGS.len()]);

/// Every tag with the name it is reported under.
pub const ACCESS_TAGS: [(SvmAccess, &str); 9] = [
    (SvmAccess::VmcbRead, "vmcb_read"),
    (SvmAccess::VmcbWrite, "vmcb_write"),
    (SvmAccess::HostSaveWrite, "host_save_write"),
    (SvmAccess::HostSaveRead, "host_save_read"),
    (SvmAccess::Iopm, "iopm"),
    (SvmAccess::Msrpm, "msrpm"),
    (SvmAccess::VmloadRead, "vmload_read"),
    (SvmAccess::VmsaveWrite, "vmsave_write"),
    (SvmAccess::Pdpte, "pdpte"),
];

impl AccessCounts {
    /// Counts one access.
    #[inline]
    pub fn count(&mut self, a: SvmAccess) {
        self.count_n(a, 1);
    }

    /// Counts `n` accesses with the same tag.
    #[inline]
    pub fn count_n(&mut self, a: SvmAccess, n: u64) {
        let k = match a {
            SvmAccess::VmcbRead => 0,
            SvmAccess::VmcbWrite => 1,
            SvmAccess::HostSaveWrite => 2,
            SvmAccess::HostSaveRead => 3,
            SvmAccess::Iopm => 4,
            SvmAccess::Msrpm => 5,
            SvmAccess::VmloadRead => 6,
            SvmAccess::VmsaveWrite => 7,
            SvmAccess::Pdpte => 8,
        };
        self.0[k] += n;
    }

    /// The counts by tag name.
    pub fn by_name(&self) -> BTreeMap<&'static str, u64> {
        ACCESS_TAGS
            .iter()
            .zip(self.0)
            .map(|((_, n), c)| (*n, c))
            .collect()
    }
}

impl PhysMem for SvmPhys<'_> {
    fn read(&mut self, pa: u64, buf: &mut [u8], access: SvmAccess) -> bool {
        self.accesses.count(access);
        match self.ram.offset(pa, buf.len() as u64) {
            Some(off) => {
                copy_field(buf, self.ram.slice(off, buf.len()));
                true
            }
            None => false,
        }
    }

    fn write(&mut self, pa: u64, data: &[u8], access: SvmAccess) -> bool {
        self.accesses.count(access);
        let Some(off) = self.ram.offset(pa, data.len() as u64) else {
            return false;
        };
        let last = pa + data.len() as u64 - 1;
        if self.code.written(pa, last) {
            *self.stop_block = true;
        }
        copy_field(self.ram.slice_mut(off, data.len()), data);
        true
    }

    /// One range check and translation for all the fields (their span is
    /// precomputed), and one look at the decoded-code cache, when they lie in
    /// RAM on at most two pages (every VMCB field does); each field is still
    /// one counted access.
    fn write_fields(
        &mut self,
        base: u64,
        layout: FieldLayout<'_>,
        values: &[u64],
        access: SvmAccess,
    ) {
        let Some((pa, off)) = self.span(base, &layout) else {
            return write_fields_each(self, base, layout, values, access);
        };
        let n = layout.fields.len().min(values.len());
        self.accesses.count_n(access, n as u64);
        let last = pa + layout.span - 1;
        if self.code.written(pa, last) {
            *self.stop_block = true;
        }
        store_fields(
            self.ram.slice_mut(off, layout.span as usize),
            layout,
            values,
        );
    }

    /// As [`SvmPhys::write_fields`], for reads.
    fn read_fields(
        &mut self,
        base: u64,
        layout: FieldLayout<'_>,
        values: &mut [u64],
        access: SvmAccess,
    ) {
        let Some((_, off)) = self.span(base, &layout) else {
            return read_fields_each(self, base, layout, values, access);
        };
        let n = layout.fields.len().min(values.len());
        self.accesses.count_n(access, n as u64);
        load_fields(self.ram.slice(off, layout.span as usize), layout, values);
    }
}

impl SvmPhys<'_> {
    /// The physical address and RAM offset of the bytes `layout` covers at
    /// `base`, if they are all RAM and span at most two pages (so the first
    /// and last byte name every page a field touches).
    #[inline]
    fn span(&self, base: u64, layout: &FieldLayout<'_>) -> Option<(u64, usize)> {
        let pa = base.checked_add(layout.lo)?;
        let len = layout.span;
        if len == 0 || len > 0x1000 || pa.checked_add(len).is_none() {
            return None;
        }
        let off = self.ram.offset(pa, len)?;
        Some((pa, off))
    }
}

/// Copies `src` to `dst` (equal lengths): the VMCB's field widths as
/// fixed-length moves, since the world switches copy one field at a time.
#[inline(always)]
fn copy_field(dst: &mut [u8], src: &[u8]) {
    match dst.len() {
        1 => dst[0] = src[0],
        2 => dst[..2].copy_from_slice(&src[..2]),
        4 => dst[..4].copy_from_slice(&src[..4]),
        8 => dst[..8].copy_from_slice(&src[..8]),
        _ => dst.copy_from_slice(src),
    }
}

/// Splits the machine into the model's memory, the SVM configuration and the
/// VMCB cache.
pub(crate) fn split(m: &mut Machine) -> (SvmPhys<'_>, &SvmConfig, &mut VmcbCache) {
    let (mem, cfg, cache, _) = split_world(m);
    (mem, cfg, cache)
}

/// [`split`], with the world-switch state ([`fill_world`]) as well.
pub(crate) fn split_world(
    m: &mut Machine,
) -> (SvmPhys<'_>, &SvmConfig, &mut VmcbCache, &mut CpuState) {
    let svm = &mut m.virt.svm;
    (
        SvmPhys {
            ram: &mut m.ram,
            code: &mut m.code,
            stop_block: &mut m.stop_block,
            accesses: &mut svm.accesses,
        },
        &svm.cfg,
        &mut svm.cache,
        &mut svm.world,
    )
}

/// Fills the world-switch state with the processor state as the model sees
/// it, with `rip` as RIP.
pub(crate) fn fill_world(m: &mut Machine, rip: u64) {
    let cpl = m.cpu.cpl();
    let (cpu, w) = (&m.cpu, &mut m.virt.svm.world);
    w.regs.clone_from(&cpu.sys);
    w.rip = rip;
    w.rsp = cpu.gpr[4];
    w.rax = cpu.gpr[0];
    w.rflags = Rflags::from_bits_retain(cpu.flags.get());
    w.cpl = cpl;
}

/// Loads the state the model left in the world-switch state: registers,
/// RIP (also as the next RIP, so a handler that returns normally continues
/// there), derived mode, and the translation context.
pub(crate) fn load_world(m: &mut Machine) {
    let (cpu, s) = (&mut m.cpu, &m.virt.svm.world);
    cpu.sys.clone_from(&s.regs);
    cpu.gpr[4] = s.rsp;
    cpu.gpr[0] = s.rax;
    cpu.flags.set(s.rflags.bits());
    cpu.rip = s.rip;
    m.next_rip = s.rip;
    m.cpu.update_mode();
    m.paging_changed();
    m.stop_block = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use svm_model::vmcb::FieldList;
    use svm_model::VmcbField;

    /// Runs `f` on a fresh 1-MiB memory; returns its bytes and counts.
    fn with_mem(f: impl FnOnce(&mut SvmPhys<'_>)) -> (Vec<u8>, AccessCounts) {
        let mut ram = Ram::new(1 << 20);
        let mut code = CodeCache::default();
        let (mut stop, mut accesses) = (false, AccessCounts::default());
        f(&mut SvmPhys {
            ram: &mut ram,
            code: &mut code,
            stop_block: &mut stop,
            accesses: &mut accesses,
        });
        (ram.as_slice().to_vec(), accesses)
    }

    /// Every field of the layout, as one list.
    static ALL: FieldList<{ VmcbField::ALL.len() }> = FieldList::new(&[VmcbField::ALL]);

    #[test]
    fn batched_fields_equal_one_access_per_field() {
        let values: Vec<u64> = (0..VmcbField::ALL.len())
            .map(|i| 0x0123_4567_89ab_cdefu64.rotate_left(i as u32))
            .collect();
        let layout = ALL.layout();
        // Page-aligned, unaligned, and running off the end of RAM (the
        // fields past it are dropped and read back as all-ones).
        for base in [0x5000, 0x5ff8, (1 << 20) - 0x200] {
            let batched = with_mem(|m| m.write_fields(base, layout, &values, SvmAccess::VmcbWrite));
            let each =
                with_mem(|m| write_fields_each(m, base, layout, &values, SvmAccess::VmcbWrite));
            assert!(batched.0 == each.0, "bytes at {base:#x}");
            assert_eq!(batched.1, each.1, "counts at {base:#x}");
            let read = |batch: bool| {
                let mut v = vec![0; values.len()];
                let (_, c) = with_mem(|m| {
                    m.write_fields(base, layout, &values, SvmAccess::VmcbWrite);
                    if batch {
                        m.read_fields(base, layout, &mut v, SvmAccess::HostSaveRead);
                    } else {
                        read_fields_each(m, base, layout, &mut v, SvmAccess::HostSaveRead);
                    }
                });
                (v, c)
            };
            assert_eq!(read(true), read(false), "reads at {base:#x}");
        }
    }
}
