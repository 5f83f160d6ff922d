//! Symmetric multiprocessing: several logical processors (vCPUs) on one host
//! thread, interleaved deterministically.
//!
//! The [`Machine`]'s `cpu`, `mmu`, `tctx`, `virt` and `dbg` are always the
//! *running* vCPU's; the others are parked in [`Smp::parked`] and moved in
//! and out whole at a switch, so the interpreter's hot paths know nothing of
//! SMP. Each vCPU thus has its own registers, modelled TLBs and
//! paging-structure caches (a TLB shootdown needs an INVLPG on every
//! processor), its own VMX/SVM state and local APIC (`dev.lapics`, selected
//! by `dev.current_cpu`).
//!
//! Scheduling ([`Machine::smp_switch`]): the running vCPU keeps the host
//! thread until its quantum of modelled cycles ends, it halts with nothing
//! to take, or it enters the wait-for-SIPI state; the next vCPU in
//! round-robin order that can run takes over. Switches happen only at block
//! boundaries (instruction boundaries; a REP string instruction yields
//! between chunks the same way), so every instruction, and every LOCKed
//! read-modify-write in particular, is atomic with respect to the other
//! vCPUs. Time is the machine's one cycle counter: a vCPU's quantum advances
//! it, and when every vCPU is halted or waiting for a SIPI the machine skips
//! to the next device event. Nothing depends on the host, so a run is
//! reproducible; a different quantum gives a different, again reproducible,
//! interleaving.
//!
//! Bring-up follows the MP initialization protocol (SDM Vol. 3A 9.4,
//! "Multiple-Processor (MP) Initialization"; IPIs in 11.6, "Issuing
//! Interprocessor Interrupts"): application processors start in the
//! wait-for-SIPI state; a start-up IPI with vector VV starts one in real
//! mode at CS = VV00H (base VV000H), IP = 0. An INIT puts a running AP back
//! into the wait-for-SIPI state with the INIT register state (SDM Vol. 3A
//! 10.1.1, table 10-1). INIT is blocked in VMX root operation (SDM Vol. 3C
//! 24.8, "Restrictions on VMX Operation") and held while GIF = 0 (APM Vol. 2
//! 15.17); in VMX non-root operation it causes a VM exit (SDM Vol. 3C 26.2,
//! exit reason 3); in an SVM guest an intercepted INIT exits, and VM_CR.R_INIT
//! turns it into #SX (APM Vol. 2 15.21.8).

pub mod topology;

use crate::cpu::Cpu;
use crate::debug::DebugState;
use crate::devices::clock::NEVER;
use crate::event::Stop;
use crate::machine::Machine;
use crate::stats::Level;
use crate::virt::{GuestMode, Virt};
use serde::{Deserialize, Serialize};

/// A halted machine gives up after this many device events in a row that
/// woke no vCPU (as a single halted processor does).
const IDLE_EVENT_LIMIT: u32 = 1 << 20;

/// The state of a vCPU that is not running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VcpuState {
    /// Registers and event state.
    pub cpu: Cpu,
    /// TLBs, paging-structure caches and the MMU counters not yet handed to
    /// the level statistics.
    pub mmu: mmu::Mmu,
    /// The translation context of its registers.
    pub tctx: mmu::TranslationContext,
    /// VT-x and AMD-V state.
    pub virt: Virt,
    /// Decoded breakpoints.
    pub dbg: DebugState,
    /// The level (L1, or which L2) it runs at, for the level statistics.
    pub level: Level,
}

/// Per-vCPU counters (the machine's totals are the sums).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuCounters {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles while it ran.
    pub cycles: u64,
    /// Times it was switched in.
    pub scheduled: u64,
    /// INIT signals taken.
    pub inits: u64,
    /// Start-ups by SIPI.
    pub sipis: u64,
}

/// A vCPU found halted with nothing to take, at a point of the run: until an
/// instruction retires or time moves, it cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Idle {
    instructions: u64,
    cycles: u64,
    /// Some device event still to come could wake it.
    wake_possible: bool,
}

/// The vCPUs and their scheduling.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Smp {
    /// The running vCPU (also `dev.current_cpu`).
    pub current: usize,
    /// Every vCPU's parked state; `None` for the running one.
    pub parked: Vec<Option<Box<VcpuState>>>,
    /// The quantum in modelled cycles.
    pub quantum: u64,
    /// The running vCPU yields at the first block boundary at or after this
    /// cycle ([`NEVER`] with one vCPU).
    pub switch_at: u64,
    /// Per-vCPU counters, up to the last switch.
    pub counters: Vec<VcpuCounters>,
    /// Cycles skipped while every vCPU was halted or waiting for a SIPI.
    pub idle_cycles: u64,
    mark_instructions: u64,
    mark_cycles: u64,
    idle: Vec<Option<Idle>>,
    idle_events: u32,
    idle_insns: u64,
}

impl Default for Smp {
    fn default() -> Self {
        Self {
            current: 0,
            parked: vec![None],
            quantum: crate::devices::DEFAULT_QUANTUM,
            switch_at: NEVER,
            counters: vec![VcpuCounters::default()],
            idle_cycles: 0,
            mark_instructions: 0,
            mark_cycles: 0,
            idle: vec![None],
            idle_events: 0,
            idle_insns: 0,
        }
    }
}

impl Smp {
    /// Number of vCPUs.
    pub fn count(&self) -> usize {
        self.parked.len()
    }

    /// True with more than one vCPU.
    #[inline]
    pub fn active(&self) -> bool {
        self.parked.len() > 1
    }
}

/// One vCPU in the `--stats` report.
#[derive(Clone, Debug, Serialize)]
pub struct VcpuReport {
    /// Its initial APIC ID.
    pub apic_id: u32,
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles while it ran.
    pub cycles: u64,
    /// Times it was switched in.
    pub scheduled: u64,
    /// INIT signals taken.
    pub inits: u64,
    /// Start-ups by SIPI.
    pub sipis: u64,
}

/// The SMP section of the `--stats` report (machines with more than one
/// vCPU): `instructions` add up to the total, `cycles` plus `idle_cycles`
/// too.
#[derive(Clone, Debug, Serialize)]
pub struct SmpReport {
    /// The quantum in modelled cycles.
    pub quantum: u64,
    /// Cycles skipped with every vCPU halted or waiting for a SIPI.
    pub idle_cycles: u64,
    /// Per vCPU, in processor order (0 is the bootstrap processor).
    pub vcpus: Vec<VcpuReport>,
}

impl Machine {
    /// Creates the application processors of an SMP configuration: each a
    /// copy of the bootstrap processor's power-up state, waiting for a SIPI.
    /// Called once the BSP is in its reset state.
    pub(crate) fn smp_setup(&mut self) {
        let n = self.dev.lapics.len();
        self.smp.quantum = self.config.platform.quantum.max(1);
        if n <= 1 {
            return;
        }
        let ap = VcpuState {
            cpu: self.cpu.clone(),
            mmu: self.mmu.clone(),
            tctx: self.tctx,
            virt: self.virt.clone(),
            dbg: self.dbg,
            level: Level::L1,
        };
        let mut parked = vec![None];
        parked.extend((1..n).map(|_| Some(Box::new(ap.clone()))));
        self.smp.parked = parked;
        self.smp.counters = vec![VcpuCounters::default(); n];
        self.smp.idle = vec![None; n];
        self.smp.switch_at = self.smp.quantum;
    }

    /// Hands the counters since the last switch to the running vCPU.
    fn smp_account(&mut self) {
        let s = &mut self.smp;
        let c = &mut s.counters[s.current];
        c.instructions += self.stats.instructions - s.mark_instructions;
        c.cycles += self.stats.cycles - s.mark_cycles;
        s.mark_instructions = self.stats.instructions;
        s.mark_cycles = self.stats.cycles;
    }

    /// True if vCPU `i` can make progress if switched in.
    fn smp_runnable(&self, i: usize) -> bool {
        let a = &self.dev.lapics[i];
        if a.wait_for_sipi && a.sipi.is_none() {
            return false;
        }
        !matches!(self.smp.idle[i], Some(m)
            if m.instructions == self.stats.instructions && m.cycles == self.stats.cycles)
    }

    /// The end of the running vCPU's turn: switches to the next vCPU that
    /// can run (round-robin, the running one last), skipping time while none
    /// can. Called at a block boundary.
    #[cold]
    pub(crate) fn smp_switch(&mut self) -> Result<(), Stop> {
        let n = self.smp.count();
        if n <= 1 {
            self.smp.switch_at = NEVER;
            return Ok(());
        }
        self.smp_account();
        let cur = self.smp.current;
        let next = loop {
            if let Some(i) = (1..=n)
                .map(|k| (cur + k) % n)
                .find(|&i| self.smp_runnable(i))
            {
                break i;
            }
            self.smp_skip_time()?;
        };
        if next != cur {
            self.smp_swap(next);
        }
        self.smp.counters[next].scheduled += 1;
        self.smp.switch_at = self.stats.cycles.saturating_add(self.smp.quantum);
        self.dev.touch();
        let a = &mut self.dev.lapics[next];
        if a.wait_for_sipi {
            let vector = a
                .sipi
                .take()
                .expect("a runnable vCPU waiting for SIPI has one");
            a.wait_for_sipi = false;
            if a.sipi_exits {
                return self.sipi_exit(vector);
            }
            self.smp_start(vector);
        }
        Ok(())
    }

    /// The running vCPU is a VMX guest in the wait-for-SIPI activity state:
    /// NMIs, interrupts, INIT and the VMX-preemption timer are blocked there
    /// (SDM Vol. 3C 26.2, 26.5.1), so it yields to the other vCPUs until a
    /// SIPI arrives; with one vCPU nothing can ever send one.
    #[cold]
    pub(crate) fn vmx_sipi_wait(&mut self) -> Result<(), Stop> {
        if !self.smp.active() {
            return Err(Stop::HaltForever);
        }
        self.smp.switch_at = 0;
        Ok(())
    }

    /// A SIPI reaches the running vCPU, a VMX guest waiting for one: a VM
    /// exit with the vector as exit qualification, which changes no
    /// register of the guest (SDM Vol. 3C 26.2, 28.2.1).
    fn sipi_exit(&mut self, vector: u8) -> Result<(), Stop> {
        let cpu = self.smp.current;
        self.smp.counters[cpu].sipis += 1;
        let info =
            vmx_model::decide::sipi_exit(vmx_model::event::ActivityState::WaitForSipi, vector)
                .expect("a guest waiting for a SIPI exits on one");
        // The exit saves the activity state while the flag still says so.
        let r = crate::virt::vmx::perform_exit(self, crate::virt::vmx::PendingExit::new(info));
        self.dev.lapics[cpu].sipi_exits = false;
        r
    }

    /// Every vCPU is halted or waiting for a SIPI: time moves to the next
    /// device event, or the machine stops if none can wake any vCPU.
    fn smp_skip_time(&mut self) -> Result<(), Stop> {
        if self.stats.instructions != self.smp.idle_insns {
            // Instructions ran since the last skip: a new idle stretch.
            self.smp.idle_events = 0;
            self.smp.idle_insns = self.stats.instructions;
        }
        let next = self.dev.next_event;
        let wake = self.smp.idle.iter().flatten().any(|m| m.wake_possible);
        if next == NEVER || !wake || self.smp.idle_events >= IDLE_EVENT_LIMIT {
            return Err(Stop::HaltForever);
        }
        self.smp.idle_events += 1;
        if next > self.stats.cycles {
            self.smp.idle_cycles += next - self.stats.cycles;
            self.stats.cycles = next;
            self.smp.mark_cycles = next;
        }
        for m in &mut self.smp.idle {
            *m = None;
        }
        Ok(())
    }

    /// Parks the running vCPU and brings in vCPU `next`.
    fn smp_swap(&mut self, next: usize) {
        let cur = self.smp.current;
        let incoming = *self.smp.parked[next]
            .take()
            .expect("a vCPU that is not running is parked");
        // The level statistics take the outgoing MMU's counters first.
        let left = self.handover_level(incoming.level);
        self.dev.lapics[cur].parked_tsc_offset = self.cpu.msr.tsc_offset;
        let outgoing = VcpuState {
            cpu: std::mem::replace(&mut self.cpu, incoming.cpu),
            mmu: std::mem::replace(&mut self.mmu, incoming.mmu),
            tctx: std::mem::replace(&mut self.tctx, incoming.tctx),
            virt: std::mem::replace(&mut self.virt, incoming.virt),
            dbg: std::mem::replace(&mut self.dbg, incoming.dbg),
            level: left,
        };
        self.smp.parked[cur] = Some(Box::new(outgoing));
        self.smp.current = next;
        self.dev.current_cpu = next;
        // The host-side page cache holds the outgoing vCPU's translations.
        self.pages.new_context();
    }

    /// Starts the running vCPU at a SIPI's vector: real mode, CS = vector <<
    /// 8 with base vector << 12, IP = 0 (SDM Vol. 3A 9.4.4.1, 11.6.1 "Start-Up").
    fn smp_start(&mut self, vector: u8) {
        let cs = self.cpu.sys.seg_mut(mmu::SegReg::Cs);
        cs.selector = mmu::Selector((vector as u16) << 8);
        cs.base = (vector as u64) << 12;
        cs.limit = 0xffff;
        self.cpu.rip = 0;
        self.cpu.events.halted = false;
        self.cpu.update_mode();
        self.paging_changed();
        self.smp.counters[self.smp.current].sipis += 1;
    }

    /// The running vCPU is halted with nothing it can take: it gives up the
    /// rest of its quantum (noting whether a device event could wake it).
    pub(crate) fn smp_idle(&mut self, cpu: usize) {
        let wake_possible =
            self.dev
                .wake_possible(cpu, self.intr_enabled(), self.cpu.msr.tsc_offset);
        self.smp.idle[cpu] = Some(Idle {
            instructions: self.stats.instructions,
            cycles: self.stats.cycles,
            wake_possible,
        });
        self.smp.switch_at = 0;
    }

    /// Takes the INIT pending for the running vCPU, if the processor's state
    /// lets it through: `None` while it is held (VMX root operation, GIF =
    /// 0), else what taking it did. Under AMD-V the routing is APM Vol. 2
    /// 15.21.8 and table 15-12: an intercepted INIT exits (and stays pending
    /// for the host, where GIF = 0 holds it); VM_CR.R_INIT turns it into #SX.
    pub(crate) fn take_init(&mut self) -> Option<Result<(), Stop>> {
        use svm_model::interrupts::Routing;
        let cpu = self.smp.current;
        if self.dev.lapics[cpu].sipi_exits {
            // Blocked in the wait-for-SIPI state; no VM exit (SDM Vol. 3C
            // 26.2).
            return None;
        }
        if self.virt.mode == GuestMode::VmxNonRoot {
            self.dev.lapics[cpu].init_pending = false;
            self.dev.lapics[cpu].sipi = None;
            let info = vmx_model::exit::ExitInfo::new(vmx_model::exit::ExitReason::InitSignal, 0);
            return Some(crate::virt::vmx::perform_exit(
                self,
                crate::virt::vmx::PendingExit::new(info),
            ));
        }
        if self.virt.vmx.state.in_vmx_operation() {
            // Blocked: it stays pending; a SIPI cannot start a processor
            // that never entered the wait-for-SIPI state.
            self.dev.lapics[cpu].sipi = None;
            return None;
        }
        let ctl = match self.virt.mode {
            GuestMode::SvmGuest => self.virt.svm.controls(),
            _ => None,
        };
        let routing = svm_model::interrupts::init(ctl, self.virt.svm.gif, self.virt.svm.msrs.vm_cr);
        match routing {
            Routing::HeldPending | Routing::Discarded => {
                self.dev.lapics[cpu].sipi = None;
                return None;
            }
            Routing::Exit(info) => {
                return Some(crate::virt::svm::perform_exit(
                    self,
                    crate::virt::svm::PendingExit { info, rip: None },
                ));
            }
            Routing::Redirect(exc) => {
                self.dev.lapics[cpu].init_pending = false;
                self.dev.lapics[cpu].sipi = None;
                let r = self.deliver(crate::interrupt::Delivery {
                    vector: exc.vector.0,
                    error_code: exc.error_code,
                    source: crate::interrupt::Source::Exception,
                    return_rip: self.cpu.rip,
                    payload: None,
                    push_rf: false,
                });
                self.cpu.events.halted = false;
                return Some(r);
            }
            Routing::Deliver => {}
        }
        if self.virt.mode == GuestMode::SvmGuest {
            return Some(Err(Stop::Unimplemented {
                what: "an INIT taken in SVM guest mode without the INIT intercept (a processor INIT in the middle of a guest)".into(),
                address: self.cpu.rip,
            }));
        }
        if self.dev.lapics[cpu].base & crate::devices::lapic::BASE_BSP != 0 {
            return Some(Err(Stop::Unimplemented {
                what: "an INIT to the bootstrap processor (it would run the firmware at the reset vector, which nestemu does not have)".into(),
                address: self.cpu.rip,
            }));
        }
        self.dev.lapics[cpu].init_pending = false;
        self.init_reset();
        Some(Ok(()))
    }

    /// An INIT reset of the running application processor (SDM Vol. 3A
    /// 10.1.1, table 10-1, "INIT" column): registers as after RESET, except
    /// that the x87/SSE state, the MSRs (IA32_PAT, the SYSCALL/SYSENTER
    /// MSRs, the TSC among them) and XCR0 are unchanged; TLBs and
    /// paging-structure caches are flushed; the local APIC is reset
    /// (11.4.7.3); the processor then waits for a SIPI.
    fn init_reset(&mut self) {
        // Cpu::default() is the RESET state.
        let old = std::mem::take(&mut self.cpu);
        let c = &mut self.cpu;
        c.fpu = old.fpu;
        c.msr = old.msr;
        c.pkru = old.pkru;
        let (o, n) = (&old.sys, &mut c.sys);
        n.pat = o.pat;
        n.xcr0 = o.xcr0;
        n.sysenter_cs = o.sysenter_cs;
        n.sysenter_esp = o.sysenter_esp;
        n.sysenter_eip = o.sysenter_eip;
        n.star = o.star;
        n.lstar = o.lstar;
        n.cstar = o.cstar;
        n.sfmask = o.sfmask;
        n.kernel_gs_base = o.kernel_gs_base;
        c.events.halted = true;
        self.dbg = DebugState::default();
        self.mmu.flush_all();
        self.paging_changed();
        let cpu = self.smp.current;
        let a = &mut self.dev.lapics[cpu];
        a.init_reset();
        a.wait_for_sipi = true;
        self.smp.counters[cpu].inits += 1;
        self.smp.switch_at = 0;
        self.dev.touch();
    }

    /// The SMP section of the report, with the running vCPU's current
    /// stretch included; `None` with one vCPU.
    pub fn smp_report(&self) -> Option<SmpReport> {
        if !self.smp.active() {
            return None;
        }
        let s = &self.smp;
        let vcpus = s
            .counters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (di, dc) = if i == s.current {
                    (
                        self.stats.instructions - s.mark_instructions,
                        self.stats.cycles - s.mark_cycles,
                    )
                } else {
                    (0, 0)
                };
                VcpuReport {
                    apic_id: self.dev.lapics[i].initial_id,
                    instructions: c.instructions + di,
                    cycles: c.cycles + dc,
                    scheduled: c.scheduled,
                    inits: c.inits,
                    sipis: c.sipis,
                }
            })
            .collect();
        Some(SmpReport {
            quantum: s.quantum,
            idle_cycles: s.idle_cycles,
            vcpus,
        })
    }

    /// Runs `f` on every vCPU's state in turn (the running one in place, the
    /// parked ones swapped in and out again); the running vCPU is unchanged
    /// afterwards. For set-up and restore work, not for running.
    pub(crate) fn for_each_vcpu(&mut self, mut f: impl FnMut(&mut Machine)) {
        f(self);
        for i in 0..self.smp.count() {
            let Some(mut p) = self.smp.parked[i].take() else {
                continue;
            };
            std::mem::swap(&mut self.cpu, &mut p.cpu);
            std::mem::swap(&mut self.mmu, &mut p.mmu);
            std::mem::swap(&mut self.tctx, &mut p.tctx);
            std::mem::swap(&mut self.virt, &mut p.virt);
            std::mem::swap(&mut self.dbg, &mut p.dbg);
            self.pages.new_context();
            f(self);
            std::mem::swap(&mut self.cpu, &mut p.cpu);
            std::mem::swap(&mut self.mmu, &mut p.mmu);
            std::mem::swap(&mut self.tctx, &mut p.tctx);
            std::mem::swap(&mut self.virt, &mut p.virt);
            std::mem::swap(&mut self.dbg, &mut p.dbg);
            self.pages.new_context();
            self.smp.parked[i] = Some(p);
        }
    }
}

#[cfg(test)]
mod tests;
