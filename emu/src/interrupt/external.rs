//! Taking external interrupts and NMIs at instruction boundaries (SDM Vol. 3A
//! 6.8 "Enabling and Disabling Interrupts", 6.7.1 "Handling Multiple NMIs",
//! 6.9 "Priority Among Concurrent Exceptions and Interrupts"), waking from
//! HLT, and letting modelled time pass while the processor is halted.
//!
//! [`Machine::service_interrupts`] is the slow path of the machine's
//! boundary check; it runs when the devices asked for attention
//! (`dev.check_at`) or the processor is halted. Whether a pending NMI or
//! maskable interrupt is taken, held or turned into a VM exit is decided by
//! the gates in `virt` (RFLAGS.IF, the STI/MOV SS shadow, NMI blocking, and
//! under AMD-V GIF, V_INTR_MASKING and the INTR intercept). Taken events go
//! through [`Machine::deliver`], so a running guest's hypervisor still sees
//! them through `event_intercept`.

use crate::devices::clock::NEVER;
use crate::devices::Now;
use crate::event::Stop;
use crate::interrupt::{Delivery, Source};
use crate::machine::Machine;
use crate::virt::EventGate;

/// A halted processor gives up after this many device events in a row that
/// did not wake it (a periodic timer whose interrupts can never be taken,
/// e.g. blocked by an in-service vector of higher priority).
const HALT_EVENT_LIMIT: u32 = 1 << 20;

impl Machine {
    /// The present, for devices.
    #[inline]
    pub fn now(&self) -> Now {
        Now {
            cycles: self.cycles(),
            tsc_offset: self.cpu.msr.tsc_offset,
        }
    }

    /// The processor on the device bus.
    #[inline]
    fn cpu_index(&self) -> usize {
        self.dev.current_cpu
    }

    /// The boundary slow path: processes device events, takes a pending NMI
    /// or interrupt (or exits to a hypervisor that intercepts it), and while
    /// halted lets time pass to the next device event. Returns a stop if the
    /// processor can never run again.
    #[cold]
    pub(crate) fn service_interrupts(&mut self) -> Result<(), Stop> {
        let cpu = self.cpu_index();
        let mut idle_events = 0u32;
        loop {
            self.dev.check_at = NEVER;
            self.dev.sync(self.now());
            if self.dev.take_nmi(cpu) {
                self.cpu.events.nmi_pending = true;
            }
            // SMI before INIT (APM Vol. 2 8.5 "Event Priorities": external
            // hardware interventions, SMI first).
            if self.dev.lapics[cpu].smi_pending {
                if let Some(taken) = self.take_smi(cpu) {
                    return taken;
                }
            }
            if self.dev.lapics[cpu].init_pending {
                if let Some(taken) = self.take_init() {
                    return taken;
                }
            }
            if idle_events > 0 && self.in_guest() {
                // Time passed while halted: the guest's own boundary work
                // (a virtual interrupt, a physical NMI's routing) comes first.
                self.guest_boundary()?;
                if !self.cpu.events.halted {
                    return Ok(());
                }
            }
            if self.cpu.events.nmi_pending && self.nmi_gate() == EventGate::Take {
                return self.take_nmi();
            }
            if self.dev.interrupt_pending(cpu) {
                match self.intr_gate() {
                    EventGate::Take => {
                        if let Some(vector) = self.dev.acknowledge(cpu) {
                            return self.take_interrupt(vector);
                        }
                    }
                    EventGate::Exit(info) => {
                        // The exit saves the activity state (HLT) and leaves
                        // the host running.
                        self.dev.touch();
                        return self.gate_exit(info);
                    }
                    EventGate::Hold => {}
                }
            }
            // Something is pending but held by the processor's own state:
            // look again at every boundary until it can be taken.
            let held = self.cpu.events.nmi_pending
                || self.dev.interrupt_pending(cpu)
                || self.dev.lapics[cpu].init_pending
                || self.dev.lapics[cpu].smi_pending;
            if !self.cpu.events.halted {
                self.dev.check_at = if held { 0 } else { self.dev.next_event };
                return Ok(());
            }
            if self.smp.active() {
                // Other vCPUs run while this one is halted.
                self.smp_idle(cpu);
                return Ok(());
            }
            self.idle_until_next_event(cpu, &mut idle_events)?;
        }
    }

    /// Halted with nothing to take: advances modelled time to the next device
    /// event, or stops if nothing can ever wake the processor.
    fn idle_until_next_event(&mut self, cpu: usize, idle_events: &mut u32) -> Result<(), Stop> {
        let enabled = self.intr_enabled();
        let next = self.dev.next_event;
        if next == NEVER
            || !self
                .dev
                .wake_possible(cpu, enabled, self.cpu.msr.tsc_offset)
            || *idle_events >= HALT_EVENT_LIMIT
        {
            return Err(Stop::HaltForever);
        }
        *idle_events += 1;
        self.stats.cycles = self.stats.cycles.max(next);
        Ok(())
    }

    /// The pending SMI of processor `cpu` (an external SMI: an IPI or I/O
    /// APIC message of delivery mode SMI), routed as APM Vol. 2 table 15-14
    /// says: held while GIF = 0; in an SVM guest with the SMI intercept a
    /// #VMEXIT(SMI) with EXITINFO1 bit 0 set (external, 15.13.3), the SMI
    /// staying pending for the host, where the GIF = 0 the exit leaves holds
    /// it until STGI or the next VMRUN; otherwise taken. SMM is not modelled:
    /// a taken SMI is counted (`LocalApic::smi_count`) and dropped, as if its
    /// handler had returned at once. `None` when nothing happened that ends
    /// the boundary work.
    fn take_smi(&mut self, cpu: usize) -> Option<Result<(), Stop>> {
        use svm_model::interrupts::Routing;
        let ctl = match self.virt.mode {
            crate::virt::GuestMode::SvmGuest => self.virt.svm.controls(),
            _ => None,
        };
        match svm_model::interrupts::smi(ctl, self.virt.svm.gif, true) {
            Routing::HeldPending => None,
            Routing::Exit(info) => Some(crate::virt::svm::perform_exit(
                self,
                crate::virt::svm::PendingExit { info, rip: None },
            )),
            Routing::Deliver => {
                let a = &mut self.dev.lapics[cpu];
                a.smi_pending = false;
                a.smi_count += 1;
                None
            }
            // Only internal SMIs are discarded, and INIT alone redirects.
            Routing::Discarded | Routing::Redirect(_) => {
                self.dev.lapics[cpu].smi_pending = false;
                None
            }
        }
    }

    /// Takes the pending NMI. HLT ends once it is delivered; a VM exit its
    /// delivery causes instead saves the guest as halted (SDM Vol. 3C 28.3.4,
    /// activity state) and leaves the host running.
    fn take_nmi(&mut self) -> Result<(), Stop> {
        self.cpu.events.nmi_pending = false;
        self.cpu.events.nmi_blocked = true;
        self.dev.touch();
        let r = self.deliver(Delivery {
            vector: 2,
            error_code: None,
            source: Source::Nmi,
            return_rip: self.cpu.rip,
            payload: None,
            push_rf: false,
        });
        self.cpu.events.halted = false;
        r
    }

    /// Takes an acknowledged interrupt (HLT ends as for [`Self::take_nmi`]).
    fn take_interrupt(&mut self, vector: u8) -> Result<(), Stop> {
        self.dev.touch();
        let r = self.deliver(Delivery {
            vector,
            error_code: None,
            source: Source::External,
            return_rip: self.cpu.rip,
            payload: None,
            push_rf: false,
        });
        self.cpu.events.halted = false;
        r
    }
}
