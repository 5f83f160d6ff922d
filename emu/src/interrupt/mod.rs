//! Exception and interrupt delivery in every mode (SDM Vol. 3A chapter 6):
//! real-address mode through the IVT (20.1.4), protected and virtual-8086 mode
//! through 8-byte gates (6.12, 20.3), IA-32e mode through 16-byte gates
//! (6.14), with double-fault and triple-fault rules (6.15, table 6-5).

mod external;
mod long;
mod protected;
mod real;

use crate::event::{Event, SoftIntKind, Stop};
use crate::machine::Machine;
use mmu::{combine, ExceptionClass, PfErrorCode, SecondException, Vector};

/// Where an event comes from; decides privilege checks, EXT and the
/// double-fault class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// A processor-detected exception.
    Exception,
    /// INT n, INT3, INTO or INT1.
    Software(SoftIntKind),
    /// An external interrupt (maskable).
    External,
    /// An NMI.
    Nmi,
}

impl Source {
    /// The EXT bit of error codes for faults during delivery: set unless the
    /// event is a software interrupt (SDM Vol. 3A 6.13).
    pub fn ext(self) -> bool {
        !matches!(
            self,
            Source::Software(SoftIntKind::IntN | SoftIntKind::Int3 | SoftIntKind::Into)
        )
    }
    /// True if the gate-DPL check applies (INT n, INT3, INTO; SDM 6.12.1.1).
    pub fn checks_gate_dpl(self) -> bool {
        matches!(
            self,
            Source::Software(SoftIntKind::IntN | SoftIntKind::Int3 | SoftIntKind::Into)
        )
    }
}

/// One event to deliver.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// The vector.
    pub vector: u8,
    /// The error code to push, if any.
    pub error_code: Option<u32>,
    /// The source.
    pub source: Source,
    /// The return address pushed (the faulting or the next instruction).
    pub return_rip: u64,
    /// The exception's side payload, applied only when the event is actually
    /// delivered through the IDT: the faulting linear address of a #PF (loaded
    /// into CR2) or the DR6 bits of a #DB (merged into DR6). An exception a
    /// hypervisor intercepts leaves CR2 and DR6 alone and reports the payload
    /// in the exit information (SDM Vol. 3C 28.1; APM Vol. 2 15.12).
    pub payload: Option<u64>,
    /// Push RFLAGS.RF = 1: fault-class exceptions other than instruction
    /// breakpoints, and events between iterations of a REP string instruction
    /// (SDM Vol. 3B 18.3.1.1).
    pub push_rf: bool,
}

impl Delivery {
    /// The RFLAGS image to push.
    pub fn pushed_flags(&self, flags: u64) -> u64 {
        if self.push_rf {
            flags | mmu::Rflags::RF.bits()
        } else {
            flags
        }
    }

    /// The error code for an IDT-related fault while delivering this event.
    pub fn idt_code(&self) -> u32 {
        mmu::idt_error_code(self.vector, self.source.ext())
    }
}

impl Machine {
    /// Delivers an event raised by an instruction. Faults return to the
    /// faulting instruction (`cpu.rip`, not advanced); traps were retired by the
    /// loop first, so `cpu.rip` is the next instruction and `trap_rip` the
    /// trapping one.
    pub(crate) fn deliver_event(&mut self, ev: Event) -> Result<(), Stop> {
        let rip = self.cpu.rip;
        let d = match ev {
            Event::Exception(e) => Delivery {
                vector: e.vector.0,
                error_code: e.error_code,
                source: Source::Exception,
                return_rip: rip,
                push_rf: true,
                payload: None,
            },
            Event::PageFault { code, linear } => Delivery {
                vector: 14,
                error_code: Some(code.bits()),
                source: Source::Exception,
                return_rip: rip,
                push_rf: true,
                payload: Some(linear),
            },
            Event::SoftwareInterrupt { vector, kind } => Delivery {
                vector,
                error_code: None,
                source: Source::Software(kind),
                return_rip: rip,
                push_rf: false,
                payload: None,
            },
            Event::DebugTrap { dr6 } => Delivery {
                vector: 1,
                error_code: None,
                source: Source::Exception,
                return_rip: rip,
                push_rf: false,
                payload: Some(dr6),
            },
            Event::Stop(s) => return Err(*s),
            Event::GuestExit => return self.perform_guest_exit(),
            // Like HLT, but on the instruction: the interrupt that ends it
            // returns there.
            Event::Freeze => {
                self.cpu.events.halted = true;
                return Ok(());
            }
        };
        self.deliver(d)
    }

    /// Delivers `d`, applying the double- and triple-fault rules to exceptions
    /// detected during delivery.
    pub(crate) fn deliver(&mut self, d: Delivery) -> Result<(), Stop> {
        let fault_rip = match d.source {
            Source::Software(_) => self.trap_rip,
            _ => d.return_rip,
        };
        let mut cur = d;
        let mut first_class = class_of(&d);
        let mut vectoring: Option<Delivery> = None;
        loop {
            if self.in_guest() {
                if let Err(ev) = self.event_intercept(&cur, vectoring.as_ref()) {
                    return match ev {
                        Event::GuestExit => self.perform_guest_exit(),
                        Event::Stop(s) => Err(*s),
                        other => Err(Stop::Shutdown(format!(
                            "unexpected {other:?} from an event intercept"
                        ))),
                    };
                }
            }
            *self
                .stats
                .events
                .entry(vector_name(cur.vector))
                .or_default() += 1;
            let cost = match cur.source {
                Source::Exception => self.config.cost.exception,
                _ => self.config.cost.interrupt,
            };
            self.stats
                .charge(crate::cost::Category::Deliveries, cost as u64);
            if self.trace.wants(crate::trace::Kind::Fault)
                || self.trace.wants(crate::trace::Kind::Interrupt)
            {
                self.trace_delivery(&cur);
            }
            self.extra_steps += 1;
            self.apply_payload(&cur);
            self.virt.delivering = Some(cur);
            let delivered = self.deliver_once(&cur);
            self.virt.delivering = None;
            let second = match delivered {
                Ok(()) => {
                    self.stop_block = true;
                    return Ok(());
                }
                Err(e) => e,
            };
            let (vector, error_code, payload) = match second {
                Event::Exception(e) => (e.vector, e.error_code, None),
                Event::PageFault { code, linear } => (Vector::PF, Some(code.bits()), Some(linear)),
                Event::Stop(s) => return Err(*s),
                // A VM exit during delivery (an intercepted exception, an EPT
                // violation on the stack push): the binding records the event
                // being delivered as IDT-vectoring information.
                Event::GuestExit => return self.perform_guest_exit(),
                // A task switch through a task gate whose new TSS has T = 1:
                // the switch completed; the debug trap follows.
                Event::DebugTrap { dr6 } => (Vector::DB, None, Some(dr6)),
                other => {
                    return Err(Stop::Shutdown(format!(
                        "unexpected {other:?} during event delivery"
                    )))
                }
            };
            let outcome = if first_class == ExceptionClass::Benign {
                SecondException::Serial
            } else {
                combine(Vector(cur.vector), vector)
            };
            // The second exception is a fault on the original instruction.
            self.cpu.rip = fault_rip;
            if outcome != SecondException::Serial && self.in_guest() {
                // The hypervisor's exception intercepts see the second
                // exception before it is combined into a double (or triple)
                // fault: a fault during event delivery that its exception
                // bitmap or intercept vector selects exits, recording the
                // event being delivered (SDM Vol. 3C 28.2.4, "Information for
                // VM Exits During Event Delivery"; APM Vol. 2 15.7.2). A
                // shadow-paging hypervisor depends on it: the guest's stack
                // may be unmapped in its tables when it injects an event.
                let second = Delivery {
                    vector: vector.0,
                    error_code,
                    source: Source::Exception,
                    return_rip: fault_rip,
                    push_rf: true,
                    payload,
                };
                if let Err(ev) = self.event_intercept(&second, Some(&cur)) {
                    return match ev {
                        Event::GuestExit => self.perform_guest_exit(),
                        Event::Stop(s) => Err(*s),
                        other => Err(Stop::Shutdown(format!(
                            "unexpected {other:?} from an event intercept"
                        ))),
                    };
                }
            }
            if outcome != SecondException::Serial && vector == Vector::PF {
                // A #PF that becomes #DF (or a triple fault) still loads CR2.
                self.cpu.sys.cr2 = payload.unwrap_or(self.cpu.sys.cr2);
            }
            let being_delivered = cur;
            cur = match outcome {
                SecondException::Serial => Delivery {
                    vector: vector.0,
                    error_code,
                    source: Source::Exception,
                    return_rip: fault_rip,
                    // A #DB here is a debug trap (a task switch's T bit).
                    push_rf: vector != Vector::DB,
                    payload,
                },
                SecondException::DoubleFault => Delivery {
                    vector: 8,
                    error_code: Some(0),
                    source: Source::Exception,
                    return_rip: fault_rip,
                    push_rf: true,
                    payload: None,
                },
                SecondException::TripleFault => {
                    return self.shutdown(format!(
                        "triple fault ({:?} while delivering {:?})",
                        vector,
                        Vector(cur.vector)
                    ))
                }
            };
            vectoring = Some(being_delivered);
            first_class = class_of(&cur);
        }
    }

    /// Loads CR2 for a #PF, DR6 for a #DB, as the event is delivered.
    fn apply_payload(&mut self, d: &Delivery) {
        match (d.source, d.vector, d.payload) {
            (Source::Exception, 14, Some(linear)) => self.cpu.sys.cr2 = linear,
            (Source::Exception, 1, Some(dr6)) => {
                self.cpu.sys.dr6 = (self.cpu.sys.dr6 & !mmu::dr6::B_MASK) | dr6;
            }
            _ => {}
        }
    }

    fn deliver_once(&mut self, d: &Delivery) -> Result<(), Event> {
        if !self.cpu.sys.cr0.contains(mmu::Cr0::PE) {
            self.deliver_real(d)
        } else if self.cpu.sys.efer.contains(mmu::Efer::LMA) {
            self.deliver_long(d)
        } else {
            self.deliver_protected(d)
        }
    }
}

fn class_of(d: &Delivery) -> ExceptionClass {
    match d.source {
        Source::Exception => Vector(d.vector).class(),
        _ => ExceptionClass::Benign,
    }
}

/// The name of a vector for the statistics.
pub fn vector_name(v: u8) -> String {
    match Vector(v).mnemonic() {
        Some(m) => m.to_string(),
        None => format!("vector_{v}"),
    }
}

/// Page-fault error-code bits, re-exported for handlers.
pub type PfCode = PfErrorCode;

/// A stack being written during event delivery or a far transfer: pushes are
/// limit-checked against `ss` (not yet loaded) and made at `cpl`, and nothing
/// is committed until every push succeeded.
pub(crate) struct NewStack {
    /// The stack segment the pushes go to.
    pub ss: mmu::SegmentCache,
    /// The stack pointer after the pushes so far.
    pub sp: u64,
    /// 64-bit stack (IA-32e delivery): no limit checks, canonical checks.
    pub long: bool,
    /// The privilege level of the pushes.
    pub cpl: u8,
    /// Error code of a #SS on a limit violation.
    pub fault_code: u32,
}

impl NewStack {
    /// The current stack.
    pub fn current(m: &Machine, fault_code: u32) -> Self {
        Self {
            ss: *m.cpu.seg(mmu::SegReg::Ss),
            sp: m.cpu.gpr[4],
            long: m.cpu.long64(),
            cpl: m.cpu.cpl(),
            fault_code,
        }
    }

    fn sp_mask(&self) -> u64 {
        if self.long {
            u64::MAX
        } else if self.ss.attr.db() {
            0xffff_ffff
        } else {
            0xffff
        }
    }

    /// Pushes `size` bytes of `v`.
    pub fn push(&mut self, m: &mut Machine, v: u64, size: usize) -> Result<(), Event> {
        let mask = self.sp_mask();
        let sp = self.sp.wrapping_sub(size as u64) & mask;
        let la = if self.long {
            if !mmu::is_canonical(sp, m.canonical_bits()) {
                return Err(Event::ss(self.fault_code));
            }
            sp
        } else {
            let limit = self.ss.limit as u64;
            let last = sp + size as u64 - 1;
            let ok = if self.ss.attr.expand_down() {
                sp > limit && last <= mask
            } else {
                last <= limit
            };
            if !ok {
                return Err(Event::ss(self.fault_code));
            }
            self.ss.base.wrapping_add(sp) & 0xffff_ffff
        };
        m.write_linear(
            la,
            size,
            v,
            crate::memory::access::Privilege::AtCpl(self.cpl),
        )?;
        self.sp = sp;
        Ok(())
    }

    /// The new RSP value to commit, merged for a 16-bit stack.
    pub fn rsp(&self, old: u64) -> u64 {
        let mask = self.sp_mask();
        (old & !mask) | (self.sp & mask)
    }
}
