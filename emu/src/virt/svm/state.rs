//! Between the machine and the model: the physical memory VMRUN, #VMEXIT,
//! VMLOAD and VMSAVE read and write (with every access counted by its tag, and
//! writes keeping the decoded-code cache exact), and the processor state
//! handed in and out ([`svm_model::CpuState`]).

use crate::interp::cache::CodeCache;
use crate::machine::Machine;
use crate::memory::Ram;
use mmu::Rflags;
use std::collections::BTreeMap;
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
        self.0[k] += 1;
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
        if self.code.is_code_page(pa) || self.code.is_code_page(last) {
            self.code.invalidate_page(pa);
            self.code.invalidate_page(last);
            *self.stop_block = true;
        }
        copy_field(self.ram.slice_mut(off, data.len()), data);
        true
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
    )
}

/// The processor state as the model sees it, with `rip` as RIP.
pub(crate) fn cpu_state(m: &Machine, rip: u64) -> CpuState {
    CpuState {
        regs: m.cpu.sys.clone(),
        rip,
        rsp: m.cpu.gpr[4],
        rax: m.cpu.gpr[0],
        rflags: Rflags::from_bits_retain(m.cpu.flags.get()),
        cpl: m.cpu.cpl(),
    }
}

/// Loads a state the model returned: registers, RIP (also as the next RIP,
/// so a handler that returns normally continues there), derived mode, and
/// the translation context.
pub(crate) fn load_state(m: &mut Machine, s: &CpuState) {
    m.cpu.sys = s.regs.clone();
    m.cpu.gpr[4] = s.rsp;
    m.cpu.gpr[0] = s.rax;
    m.cpu.flags.set(s.rflags.bits());
    m.cpu.rip = s.rip;
    m.next_rip = s.rip;
    m.cpu.update_mode();
    m.paging_changed();
    m.stop_block = true;
}
