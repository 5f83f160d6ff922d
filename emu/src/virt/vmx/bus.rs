//! The machine as `vmx-model` sees it: physical memory ([`PhysMem`]) and the
//! MSR file ([`MsrOracle`]), both reached through one shared borrow of the
//! machine so the model can hold them at the same time, and the state a VMX
//! instruction looks at ([`InsnCtx`]).
//!
//! VMX structures are addressed physically (SDM Vol. 3C 25.11.1); for the
//! hypervisor in root operation that is the machine's physical address space.

use crate::event::Event;
use crate::machine::Machine;
use core::cell::{Cell, RefCell};
use mmu::{Exception, SegReg};
use vmx_model::caps::FeatureControl;
use vmx_model::insn::InsnCtx;
use vmx_model::{Access, MsrOracle, PhysMem};

/// The machine, lent to the model for one call.
pub(super) struct Bus<'a> {
    m: RefCell<&'a mut Machine>,
    /// The event a memory operand access raised, if any: the model receives a
    /// placeholder [`Exception`], the machine delivers this one (a #PF with
    /// its linear address, or a VM exit for an EPT violation).
    fault: Cell<Option<Event>>,
}

impl<'a> Bus<'a> {
    pub fn new(m: &'a mut Machine) -> Self {
        Self {
            m: RefCell::new(m),
            fault: Cell::new(None),
        }
    }

    /// Physical memory.
    pub fn mem(&self) -> Mem<'_, 'a> {
        Mem(self)
    }

    /// The MSR file.
    pub fn msrs(&self) -> Msrs<'_, 'a> {
        Msrs(self)
    }

    /// Reads `size` bytes at `seg:off` as the instruction's memory operand.
    pub fn read(&self, seg: SegReg, off: u64, size: usize) -> Result<u64, Exception> {
        let r = self.m.borrow_mut().read_mem(seg, off, size);
        r.map_err(|e| self.failed(e))
    }

    /// Reads a 128-bit descriptor (INVEPT, INVVPID): (bits 63:0, bits 127:64).
    pub fn read128(&self, seg: SegReg, off: u64) -> Result<(u64, u64), Exception> {
        let mut m = self.m.borrow_mut();
        // The whole operand is checked before either half is used.
        let r = m
            .linear(seg, off, 16, false)
            .and_then(|_| Ok((m.read_mem(seg, off, 8)?, m.read_mem(seg, off + 8, 8)?)));
        drop(m);
        r.map_err(|e| self.failed(e))
    }

    fn failed(&self, e: Event) -> Exception {
        let placeholder = match &e {
            Event::Exception(x) => *x,
            _ => Exception::gp0(),
        };
        self.fault.set(Some(e));
        placeholder
    }

    /// The event a faulting operand access raised.
    pub fn take_fault(&self) -> Option<Event> {
        self.fault.take()
    }
}

/// Physical memory through the bus.
pub(super) struct Mem<'b, 'a>(&'b Bus<'a>);

impl PhysMem for Mem<'_, '_> {
    fn read(&mut self, pa: u64, buf: &mut [u8], _why: Access) -> bool {
        let m = self.0.m.borrow();
        match m.ram.offset(pa, buf.len() as u64) {
            Some(off) => {
                buf.copy_from_slice(m.ram.slice(off, buf.len()));
                true
            }
            None => false,
        }
    }

    fn write(&mut self, pa: u64, data: &[u8], _why: Access) -> bool {
        let mut m = self.0.m.borrow_mut();
        if m.ram.offset(pa, data.len() as u64).is_none() {
            return false;
        }
        m.load_phys(pa, data);
        true
    }
}

/// The MSR file through the bus: RDMSR and WRMSR at CPL 0, asked without
/// lasting effect.
pub(super) struct Msrs<'b, 'a>(&'b Bus<'a>);

impl MsrOracle for Msrs<'_, '_> {
    fn read(&mut self, index: u32) -> Option<u64> {
        self.0.m.borrow().read_msr(index)
    }

    fn can_write(&mut self, index: u32, value: u64) -> bool {
        let mut m = self.0.m.borrow_mut();
        let saved = m.cpu.clone();
        let ok = m.write_msr(index, value).is_ok();
        m.cpu = saved;
        m.paging_changed();
        ok
    }
}

/// The processor state a VMX instruction looks at.
pub(super) fn insn_ctx(m: &Machine) -> InsnCtx {
    InsnCtx {
        cpl: m.cpu.cpl(),
        mode: m.cpu.mode.mode,
        cr0: m.cpu.sys.cr0,
        cr4: m.cpu.sys.cr4,
        efer: m.cpu.sys.efer,
        feature_control: FeatureControl(m.cpu.msr.feature_control),
        a20m: false,
        blocked_by_mov_ss: m.cpu.events.movss_blocking,
    }
}
