//! Hardware virtualization: the binding of `vmx-model` (VT-x) and `svm-model`
//! (AMD-V) to the interpreter.
//!
//! The processor is either in root operation / host mode, in VMX non-root
//! operation, or in SVM guest mode ([`GuestMode`]). While a guest runs, every
//! place where the architecture lets the hypervisor intercept (an instruction, an
//! exception, an interrupt, a nested page fault) calls [`Machine::intercept`] or
//! a sibling hook with an [`Intercept`] describing the event; the VMX or SVM
//! binding decides, with its model crate, whether that becomes a VM exit
//! ([`Event::GuestExit`]) or proceeds (possibly changed: shadowed control
//! registers, offset TSC).

pub mod svm;
pub mod vmx;

use crate::event::{Event, Flow};
use crate::machine::Machine;
use iced_x86::Instruction;
use serde::{Deserialize, Serialize};

/// Whether a guest runs, and under which extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestMode {
    /// Root operation (VMX) or host mode (SVM), or no virtualization at all.
    #[default]
    Host,
    /// VMX non-root operation.
    VmxNonRoot,
    /// SVM guest mode (after VMRUN, before #VMEXIT).
    SvmGuest,
}

/// A descriptor-table register an instruction reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableReg {
    /// GDTR (LGDT, SGDT).
    Gdtr,
    /// IDTR (LIDT, SIDT).
    Idtr,
    /// LDTR (LLDT, SLDT).
    Ldtr,
    /// TR (LTR, STR).
    Tr,
}

/// Something a guest does that its hypervisor may intercept (SDM Vol. 3C
/// 26.1-26.2, "Instructions That Cause VM Exits"; APM Vol. 2 15.7-15.14,
/// "Intercept operation" and the intercepts). The instruction itself is passed
/// alongside, for exit information that needs its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intercept {
    /// CPUID.
    Cpuid,
    /// HLT.
    Hlt,
    /// INVD.
    Invd,
    /// WBINVD.
    Wbinvd,
    /// INVLPG of a linear address.
    Invlpg {
        /// The linear address.
        la: u64,
    },
    /// RDPMC.
    Rdpmc,
    /// RDTSC.
    Rdtsc,
    /// RDTSCP.
    Rdtscp,
    /// RDRAND.
    Rdrand,
    /// RDSEED.
    Rdseed,
    /// PAUSE.
    Pause,
    /// MONITOR.
    Monitor,
    /// MWAIT (armed: a MONITOR is active).
    Mwait {
        /// Monitor hardware armed.
        armed: bool,
    },
    /// XSETBV.
    Xsetbv,
    /// XSAVES, with EDX:EAX & IA32_XSS.
    Xsaves {
        /// The requested supervisor components.
        mask: u64,
    },
    /// XRSTORS, with EDX:EAX & IA32_XSS.
    Xrstors {
        /// The requested supervisor components.
        mask: u64,
    },
    /// INVPCID.
    Invpcid,
    /// RDMSR of an index.
    Rdmsr {
        /// ECX.
        index: u32,
    },
    /// WRMSR of an index and value.
    Wrmsr {
        /// ECX.
        index: u32,
        /// EDX:EAX.
        value: u64,
    },
    /// IN, OUT, INS, OUTS.
    Io {
        /// The port.
        port: u16,
        /// Access size in bytes.
        size: u8,
        /// IN/INS.
        input: bool,
        /// INS/OUTS.
        string: bool,
        /// With a REP prefix.
        rep: bool,
    },
    /// MOV from CRn.
    CrRead {
        /// The control register number.
        cr: u8,
    },
    /// MOV to CRn.
    CrWrite {
        /// The control register number.
        cr: u8,
        /// The value written.
        value: u64,
    },
    /// CLTS.
    Clts,
    /// LMSW.
    Lmsw {
        /// The 16-bit source.
        value: u16,
    },
    /// MOV from DRn.
    DrRead {
        /// The debug register number.
        dr: u8,
    },
    /// MOV to DRn.
    DrWrite {
        /// The debug register number.
        dr: u8,
    },
    /// LGDT/LIDT/LLDT/LTR (write) or SGDT/SIDT/SLDT/STR (read).
    DescriptorTable {
        /// The register.
        reg: TableReg,
        /// A load.
        write: bool,
    },
    /// IRET.
    Iret,
    /// INT n.
    IntN {
        /// The vector.
        vector: u8,
    },
    /// INT1 (ICEBP).
    Icebp,
    /// PUSHF.
    Pushf,
    /// POPF.
    Popf,
    /// VMCALL (VMX) or VMMCALL (SVM).
    Hypercall,
    /// A waiting x87 instruction about to freeze on legacy FERR# error
    /// handling (APM Vol. 2 15.14; VT-x has no such exit).
    FerrFreeze,
    /// A task switch to the TSS `selector` (by CALL, JMP, IRET or a task
    /// gate): an unconditional VM exit in VMX non-root operation, the task-
    /// switch intercept in SVM.
    TaskSwitch {
        /// The new TSS selector.
        selector: u16,
        /// What started it (with the error code of an exception through a
        /// task gate).
        source: crate::interp::task::TaskSource,
    },
}

/// A VM exit on its way: the binding built it; the machine performs it after
/// the current instruction was abandoned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// A VMX exit.
    Vmx(vmx::PendingExit),
    /// An SVM #VMEXIT.
    Svm(svm::PendingExit),
}

/// Virtualization state of the processor.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Virt {
    /// Host or which guest.
    pub mode: GuestMode,
    /// VT-x state.
    pub vmx: vmx::VmxCpu,
    /// AMD-V state.
    pub svm: svm::SvmCpu,
    /// The event being delivered through the guest's IDT, while it is: a VM
    /// exit in the middle (an EPT violation on the stack push) records it as
    /// IDT-vectoring information / EXITINTINFO.
    pub delivering: Option<crate::interrupt::Delivery>,
    /// The VM exit an [`Event::GuestExit`] on its way stands for, from the
    /// moment it is raised until the machine performs it (within one step:
    /// never in a snapshot).
    #[serde(skip)]
    pub(crate) exit: Option<GuestExit>,
}

impl Virt {
    /// The virtualization state of a processor of `model` after reset.
    pub fn new(model: &crate::cpu::cpuid::CpuModel) -> Self {
        Self {
            vmx: vmx::VmxCpu::new(model),
            ..Self::default()
        }
    }
}

impl Machine {
    /// True while a guest (VMX non-root or SVM guest mode) runs.
    #[inline(always)]
    pub fn in_guest(&self) -> bool {
        self.virt.mode != GuestMode::Host
    }

    /// Asks the hypervisor whether `what` (done by instruction `i`) is
    /// intercepted; a VM exit comes back as `Err(Event::GuestExit)`.
    #[inline(always)]
    pub fn intercept(&mut self, i: &Instruction, what: Intercept) -> Flow {
        if !self.in_guest() {
            return Ok(());
        }
        self.intercept_guest(i, what)
    }

    #[cold]
    fn intercept_guest(&mut self, i: &Instruction, what: Intercept) -> Flow {
        match self.virt.mode {
            GuestMode::VmxNonRoot => vmx::intercept(self, i, what),
            GuestMode::SvmGuest => svm::intercept(self, i, what),
            GuestMode::Host => Ok(()),
        }
    }

    /// Raises the VM exit `e`: it waits in the machine, and the event that
    /// stands for it travels up to where the machine performs it.
    #[cold]
    pub(crate) fn guest_exit(&mut self, e: GuestExit) -> Event {
        self.virt.exit = Some(e);
        Event::GuestExit
    }

    /// Performs the VM exit the current instruction or event raised (the one
    /// an [`Event::GuestExit`] stands for).
    pub(crate) fn perform_guest_exit(&mut self) -> Result<(), crate::event::Stop> {
        match self.virt.exit.take() {
            Some(GuestExit::Vmx(e)) => vmx::perform_exit(self, e),
            Some(GuestExit::Svm(e)) => svm::perform_exit(self, e),
            None => Err(crate::event::Stop::Shutdown(
                "internal error: a VM exit event without its exit".to_string(),
            )),
        }
    }
}

/// The handler of a VMX or SVM instruction (VMXON ... VMFUNC; VMRUN ...
/// SKINIT, VMMCALL), or `None` for other instructions.
pub fn handler_for(
    m: &Machine,
    i: &Instruction,
) -> Option<(crate::interp::Handler, crate::cost::InsnClass)> {
    vmx::handler_for(m, i).or_else(|| svm::handler_for(m, i))
}

impl Machine {
    /// Asks the hypervisor whether an event about to be delivered through the
    /// guest's IDT (exception, software interrupt, external interrupt, NMI) is
    /// intercepted. `vectoring` is the event whose delivery raised it, for the
    /// IDT-vectoring information / EXITINTINFO.
    pub(crate) fn event_intercept(
        &mut self,
        d: &crate::interrupt::Delivery,
        vectoring: Option<&crate::interrupt::Delivery>,
    ) -> Flow {
        match self.virt.mode {
            GuestMode::VmxNonRoot => vmx::event_intercept(self, d, vectoring),
            GuestMode::SvmGuest => svm::event_intercept(self, d, vectoring),
            GuestMode::Host => Ok(()),
        }
    }

    /// Adds the guest's nested paging (EPT/NPT) and VPID/ASID tag to a
    /// translation context built from the registers.
    pub(crate) fn guest_translation_context(
        &self,
        ctx: mmu::TranslationContext,
    ) -> mmu::TranslationContext {
        match self.virt.mode {
            GuestMode::VmxNonRoot => vmx::translation_context(self, ctx),
            GuestMode::SvmGuest => svm::translation_context(self, ctx),
            GuestMode::Host => ctx,
        }
    }

    /// Turns a nested-paging fault (EPT violation or misconfiguration, #NPF)
    /// into the VM exit to perform.
    pub(crate) fn nested_fault_exit(&mut self, f: mmu::TranslateFault) -> Event {
        match self.virt.mode {
            GuestMode::VmxNonRoot => vmx::nested_fault(self, f),
            GuestMode::SvmGuest => svm::nested_fault(self, f),
            GuestMode::Host => Event::stop(crate::event::Stop::Shutdown(format!(
                "nested-paging fault {f:?} outside a guest"
            ))),
        }
    }
}

impl Machine {
    /// True if [`Machine::guest_boundary`] would do nothing and return
    /// `Ok(false)` (no guest-mode event or exit is due), given no interrupt
    /// shadow: always in host mode.
    #[inline]
    pub(crate) fn guest_boundary_quiet(&self) -> bool {
        match self.virt.mode {
            GuestMode::SvmGuest => svm::events::boundary_quiet(self),
            GuestMode::VmxNonRoot => vmx::boundary_quiet(self),
            GuestMode::Host => true,
        }
    }

    /// Work at an instruction boundary while a guest runs, before the halt
    /// check: pending virtual interrupts and NMIs, exits that wait for a
    /// boundary (monitor trap flag, preemption timer, interrupt and NMI
    /// windows). Returns true if the next slice must be one instruction.
    #[inline]
    pub(crate) fn guest_boundary(&mut self) -> Result<bool, crate::event::Stop> {
        match self.virt.mode {
            GuestMode::SvmGuest => svm::events::boundary(self).map(|()| false),
            GuestMode::VmxNonRoot => vmx::boundary(self),
            GuestMode::Host => Ok(false),
        }
    }

    /// Where a pending physical maskable interrupt (INTR) goes at this
    /// boundary. SVM: GIF holds it in any mode; in guest mode V_INTR_MASKING
    /// and the INTR intercept decide (APM Vol. 2 15.21.1, table 15-12, via
    /// `svm_model::interrupts::intr`). Otherwise RFLAGS.IF and the interrupt
    /// shadow decide; the VMX binding refines this for non-root operation.
    pub(crate) fn intr_gate(&self) -> EventGate {
        if self.virt.mode == GuestMode::VmxNonRoot {
            return vmx::intr_gate(self);
        }
        let ev = &self.cpu.events;
        let shadow = ev.sti_blocking || ev.movss_blocking;
        let iflag = self.cpu.flags.iflag();
        let ctl = match self.virt.mode {
            GuestMode::SvmGuest => self.virt.svm.controls(),
            _ => None,
        };
        EventGate::from(svm_model::interrupts::intr(
            ctl,
            self.virt.svm.gif,
            iflag,
            shadow,
        ))
    }

    /// Where a pending physical NMI goes at this boundary outside SVM guest
    /// mode (there the SVM boundary routes it): held by GIF = 0, by NMI
    /// blocking or an interrupt shadow, else taken.
    pub(crate) fn nmi_gate(&self) -> EventGate {
        match self.virt.mode {
            GuestMode::SvmGuest => return EventGate::Hold,
            GuestMode::VmxNonRoot => return vmx::nmi_gate(self),
            GuestMode::Host => {}
        }
        let ev = &self.cpu.events;
        let blocked = ev.nmi_blocked || ev.sti_blocking || ev.movss_blocking;
        EventGate::from(svm_model::interrupts::nmi(None, self.virt.svm.gif, blocked))
    }

    /// True if a maskable interrupt could be taken (or exit) once pending, as
    /// far as the processor's state is concerned: what a halted processor's
    /// wake-up depends on.
    pub(crate) fn intr_enabled(&self) -> bool {
        if self.virt.mode == GuestMode::VmxNonRoot {
            return vmx::intr_enabled(self);
        }
        if !self.virt.svm.gif {
            return false;
        }
        match self.virt.svm.controls() {
            Some(ctl) if self.virt.mode == GuestMode::SvmGuest && ctl.vintr.v_intr_masking => {
                ctl.host_if
            }
            _ => self.cpu.flags.iflag(),
        }
    }

    /// Performs the VM exit an [`EventGate::Exit`] asks for.
    pub(crate) fn gate_exit(&mut self, exit: GateExit) -> Result<(), crate::event::Stop> {
        match exit {
            GateExit::Svm(info) => svm::perform_exit(self, svm::PendingExit { info, rip: None }),
            GateExit::Vmx(info) => vmx::perform_exit(self, vmx::PendingExit::new(info)),
        }
    }

    /// A shutdown condition (triple fault): a VM exit if a guest runs and its
    /// hypervisor gets it (always for VMX, SDM Vol. 3C 26.2; by intercept for
    /// SVM), else the machine stops.
    pub(crate) fn shutdown(&mut self, why: String) -> Result<(), crate::event::Stop> {
        match self.virt.mode {
            GuestMode::SvmGuest => svm::events::shutdown(self, why),
            GuestMode::VmxNonRoot => vmx::triple_fault(self),
            GuestMode::Host => Err(crate::event::Stop::Shutdown(why)),
        }
    }

    /// The time-stamp counter as the running context reads it, from the
    /// host's value (TSC offsetting and scaling in a guest).
    #[inline]
    pub fn context_tsc(&self, host_tsc: u64) -> u64 {
        match self.virt.mode {
            GuestMode::SvmGuest => svm::discovery::tsc(self, host_tsc),
            GuestMode::VmxNonRoot => vmx::guest_tsc(self, host_tsc),
            GuestMode::Host => host_tsc,
        }
    }
}

/// The value MOV from CR0/CR4 and SMSW return (read shadows in VMX non-root
/// operation).
#[inline]
pub fn cr_read(m: &Machine, cr: u8, real: u64) -> u64 {
    match m.virt.mode {
        GuestMode::VmxNonRoot => vmx::cr_read(m, cr, real),
        _ => real,
    }
}

/// The value MOV to CR0/CR4, LMSW and CLTS load (guest/host masks, VMX-fixed
/// bits), or the fault.
#[inline]
pub fn cr_write(m: &Machine, cr: u8, value: u64) -> Result<u64, Event> {
    vmx::cr_write(m, cr, value)
}

/// MOV from CR8 when the hypervisor virtualizes it (TPR shadow), else `None`.
pub fn cr8_read(m: &mut Machine) -> Option<u64> {
    match m.virt.mode {
        GuestMode::VmxNonRoot => vmx::cr8_read(m),
        _ => None,
    }
}

/// MOV to CR8 when the hypervisor virtualizes it (TPR shadow), else `None`.
pub fn cr8_write(m: &mut Machine, v: u64) -> Option<Flow> {
    match m.virt.mode {
        GuestMode::VmxNonRoot => vmx::cr8_write(m, v),
        _ => None,
    }
}

/// The VM exit a pending physical event causes without being acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GateExit {
    /// #VMEXIT(INTR/NMI).
    Svm(svm_model::ExitInfo),
    /// An external-interrupt exit without "acknowledge interrupt on exit".
    Vmx(vmx_model::exit::ExitInfo),
}

/// What happens to a pending physical interrupt or NMI at a boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EventGate {
    /// It stays pending.
    Hold,
    /// It is taken through the current IDT.
    Take,
    /// A VM exit (#VMEXIT), the event staying pending for the host.
    Exit(GateExit),
}

impl From<svm_model::interrupts::Routing> for EventGate {
    fn from(r: svm_model::interrupts::Routing) -> Self {
        use svm_model::interrupts::Routing;
        match r {
            Routing::Deliver => EventGate::Take,
            Routing::Exit(info) => EventGate::Exit(GateExit::Svm(info)),
            _ => EventGate::Hold,
        }
    }
}

/// The MSRs of VT-x and AMD-V: `Some(None)` for one of theirs that does not
/// exist on this model (#GP), `None` for any other MSR.
pub fn read_msr(m: &Machine, idx: u32) -> Option<Option<u64>> {
    vmx::read_msr(m, idx).or_else(|| svm::read_msr(m, idx))
}

/// Writes an MSR of VT-x or AMD-V; `None` for any other MSR.
pub fn write_msr(m: &mut Machine, idx: u32, v: u64) -> Option<Flow> {
    if let Some(r) = vmx::write_msr(m, idx, v) {
        return Some(r);
    }
    svm::write_msr(m, idx, v)
}

/// CPUID leaves the extensions own (the SVM leaf 8000_000AH, and the VMX or
/// SVM feature bits of leaves 1 and 8000_0001H), or `None`.
pub fn cpuid(m: &Machine, leaf: u32, sub: u32) -> Option<[u32; 4]> {
    vmx::cpuid(m, leaf, sub).or_else(|| svm::cpuid(m, leaf, sub))
}
