//! The machine: the running vCPU (the others parked in `smp`), RAM,
//! devices, the decoded-code cache and the counters, and the loop that runs
//! them (DESIGN.md, "The machine").

use crate::cost::CostModel;
use crate::cpu::cpuid::CpuModel;
use crate::cpu::Cpu;
use crate::devices::Devices;
use crate::event::{Event, Stop};
use crate::interp::cache::CodeCache;
use crate::interp::BlockRef;
use crate::memory::Ram;
use crate::stats::Stats;
use mmu::Rflags;

mod chain;
#[cfg(test)]
mod tests;

/// What a machine is built from.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// The CPU model (`--cpu`).
    pub model: CpuModel,
    /// RAM in bytes (`--mem`).
    pub mem_bytes: u64,
    /// Stop after this many instructions (`--max-insns`).
    pub max_insns: Option<u64>,
    /// Seed of the deterministic RDRAND/RDSEED source.
    pub rng_seed: u64,
    /// The cost model.
    pub cost: CostModel,
    /// TLB and paging-structure-cache sizes (`--caches`); `None` takes the
    /// vendor's preset.
    pub tlb: Option<mmu::TlbConfig>,
    /// The PC platform: clocks, which optional devices exist.
    pub platform: crate::devices::PlatformConfig,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            model: CpuModel::intel(),
            mem_bytes: 256 << 20,
            max_insns: None,
            rng_seed: 0x6e65_7374_656d_7521,
            cost: CostModel::default(),
            tlb: None,
            platform: crate::devices::PlatformConfig::default(),
        }
    }
}

/// The emulated machine.
pub struct Machine {
    /// The processor.
    pub cpu: Cpu,
    /// RAM.
    pub ram: Ram,
    /// Devices.
    pub dev: Devices,
    /// Decoded blocks.
    pub code: CodeCache,
    /// Configuration.
    pub config: MachineConfig,
    /// Counters and modelled cycles.
    pub stats: Stats,
    /// Address of the instruction after the current one; handlers that
    /// transfer control set it.
    pub(crate) next_rip: u64,
    /// Set by handlers to end the current block after this instruction (mode or
    /// paging changes, self-modifying code, interrupt-flag changes).
    pub(crate) stop_block: bool,
    /// State of the deterministic random-number source (xorshift64*).
    pub(crate) rng: u64,
    /// RIP of the instruction that raised the trap being delivered (a fault
    /// during its delivery is reported on it).
    pub(crate) trap_rip: u64,
    /// The modelled MMU: TLBs, paging-structure caches, walk counters.
    pub mmu: mmu::Mmu,
    /// The translation context of the current register state.
    pub(crate) tctx: mmu::TranslationContext,
    /// VT-x and AMD-V state.
    pub virt: crate::virt::Virt,
    /// Events delivered and REP chunks yielded: counted by [`Machine::steps`].
    pub(crate) extra_steps: u64,
    /// Decoded breakpoints and pending data/I/O breakpoint hits.
    pub(crate) dbg: crate::debug::DebugState,
    /// The event trace (`--trace`), off by default.
    pub trace: crate::trace::Trace,
    /// The memory fast path's page cache (host-side, not modelled state).
    pub(crate) pages: crate::memory::fast::PageCache,
    /// The event of the last [`crate::interp::fast::Exec`] that raised one,
    /// until the run loop takes it (always `None` between instructions).
    pub(crate) raised: Option<Event>,
    /// The other vCPUs and their scheduling (`cpu`, `mmu`, `tctx`, `virt`,
    /// `dbg` and `dev.current_cpu` are the running vCPU's).
    pub smp: crate::smp::Smp,
}

impl core::fmt::Debug for Machine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Machine")
            .field("rip", &self.cpu.rip)
            .field("ram", &self.ram)
            .finish()
    }
}

impl Machine {
    /// A machine in its reset state with zeroed RAM. Panics if the host cannot
    /// allocate the RAM; see [`Machine::try_new`].
    pub fn new(config: MachineConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A machine in its reset state, or why the host cannot provide one.
    pub fn try_new(config: MachineConfig) -> Result<Self, String> {
        config
            .model
            .widths
            .validate()
            .map_err(|e| format!("CPU model '{}': {e}", config.model.name))?;
        let ram = Ram::try_new(config.mem_bytes)?;
        let rng = config.rng_seed | 1;
        let tlb = match (&config.tlb, config.model.vendor) {
            (Some(t), _) => t.clone(),
            (None, crate::cpu::cpuid::Vendor::Intel) => mmu::TlbConfig::intel(),
            (None, crate::cpu::cpuid::Vendor::Amd) => mmu::TlbConfig::amd(),
        };
        let mut mmu = mmu::Mmu::new(tlb).unwrap_or_else(|_| {
            mmu::Mmu::new(mmu::TlbConfig::none()).expect("no caches is a valid configuration")
        });
        mmu.set_costs(config.cost.mmu_costs());
        let cpu = Cpu::reset();
        let model = &config.model;
        let dev = Devices::new(
            &config.platform,
            ram.map.low,
            ram.map.high,
            model.has(crate::cpu::cpuid::Feature::X2apic),
            model.has(crate::cpu::cpuid::Feature::TscDeadline),
        );
        let mut m = Self {
            cpu,
            ram,
            dev,
            code: CodeCache::default(),
            stats: Stats::default(),
            next_rip: 0,
            stop_block: false,
            rng,
            trap_rip: 0,
            mmu,
            tctx: Self::reset_context(),
            virt: crate::virt::Virt::new(&config.model),
            extra_steps: 0,
            dbg: crate::debug::DebugState::default(),
            trace: crate::trace::Trace::default(),
            pages: crate::memory::fast::PageCache::default(),
            smp: crate::smp::Smp::default(),
            raised: None,
            config,
        };
        m.virt.svm = crate::virt::svm::SvmCpu::with_config(crate::virt::svm::discovery::config(&m));
        m.paging_changed();
        m.install_firmware_tables();
        m.smp_setup();
        Ok(m)
    }

    /// Leaves in RAM what firmware would: the ACPI tables in the BIOS area
    /// (when RAM reaches that far).
    fn install_firmware_tables(&mut self) {
        for (addr, bytes) in self.dev.acpi_tables() {
            if self.ram.offset(addr, bytes.len() as u64).is_some() {
                self.load_phys(addr, &bytes);
            }
        }
    }

    /// A placeholder context, replaced from the registers in [`Machine::new`].
    fn reset_context() -> mmu::TranslationContext {
        mmu::TranslationContext::new(
            mmu::PagingRegs::new(mmu::Cr0::empty(), 0, mmu::Cr4::empty(), mmu::Efer::empty()),
            mmu::AddressWidths::default(),
            mmu::PagingFeatures::default(),
        )
    }

    /// Runs until the machine stops.
    pub fn run(&mut self) -> Stop {
        loop {
            if let Some(stop) = self.run_slices(u64::MAX) {
                return stop;
            }
        }
    }

    /// Runs up to `n` slices: exactly [`Machine::run_slice`] called `n`
    /// times, stopping at the first stop.
    ///
    /// Most slices find nothing due at their boundary and their block cached
    /// with its fetch in the page cache; those run through
    /// [`Machine::quick_slices`] in this loop, which returns nothing large
    /// per block. The others take [`Machine::run_slice`].
    pub fn run_slices(&mut self, n: u64) -> Option<Stop> {
        let mut left = n;
        while left > 0 {
            match self.quick_slices(&mut left) {
                Some(None) => {}
                Some(Some(stop)) => return Some(*stop),
                None => {
                    left -= 1;
                    if let Some(stop) = self.run_slice() {
                        return Some(stop);
                    }
                }
            }
        }
        None
    }

    /// Runs slices while nothing is due at their boundaries and their
    /// blocks are cached and fetched through the page cache: what
    /// [`Machine::run_slice`] does then, with its boundary checks folded
    /// into one test and nothing done before they pass. Counts each slice
    /// run in `left` (at least one is left on entry; it stops at none).
    /// Returns `None`, having changed nothing modelled since the last slice
    /// it ran, when the next slice needs the full path; else whether the
    /// machine stopped.
    ///
    /// After a block whose instructions all ran specialized functions
    /// ([`CodeCache::is_fast`]) the next boundary tests only the clock and
    /// the instruction count: those functions change registers, status
    /// flags and memory, never the event state, RFLAGS.TF/RF, the debug
    /// registers or the VMX/SVM mode the other tests look at, and a device
    /// they reach through memory that changes what is due moves
    /// `dev.check_at`, which the clock test reads.
    ///
    /// A block's successor is remembered in its slot ([`CodeCache::link`])
    /// and, while only such blocks run, taken from there without the page
    /// cache and jump cache lookups of [`Machine::quick_fetch`].
    #[inline(always)]
    fn quick_slices(&mut self, left: &mut u64) -> Option<Option<Box<Stop>>> {
        let mut ran = false;
        let mut quiet = false;
        // The slot of the block run last (u32::MAX: none yet).
        let mut from = u32::MAX;
        let l1_free = self.config.cost.tlb_l1_hit == 0;
        loop {
            let budget = match self.config.max_insns {
                Some(n) if self.steps() >= n => return ran.then_some(None),
                Some(n) => n - self.steps(),
                None => u64::MAX,
            };
            // Everything run_block looks at before fetching: the SMP switch,
            // the boundary work of service_boundary (SIPI wait, guest
            // boundary, device events, HLT), interrupt shadows, single-step,
            // resume flag and debug registers. With all of them clear it
            // does nothing before the fetch and runs the whole block.
            if self.stats.cycles >= self.smp.switch_at.min(self.dev.check_at)
                || !(quiet || self.boundary_quiet())
            {
                return ran.then_some(None);
            }
            if !quiet {
                self.code.new_stretch();
            }
            // The successor linked to the last block, as quick_fetch would
            // find it (see cache::Link), or quick_fetch.
            let rip = self.cpu.rip;
            let generation = self.mmu.l1_generation(true);
            let idx = match self.code.linked(from, rip, generation) {
                Some(idx) => {
                    self.mmu.count_l1_hit(true);
                    idx
                }
                None => {
                    let Some(idx) = self.quick_fetch() else {
                        return ran.then_some(None);
                    };
                    self.code.link(from, rip, idx, generation);
                    idx
                }
            };
            from = idx;
            *left -= 1;
            ran = true;
            // A block of pure operations that raised nothing changes no
            // costed MMU counter when the first level of the TLB is free
            // (its fetch counts a first-level hit; they access no memory),
            // so after a block of this loop (which charged, or had nothing
            // to charge) there is nothing to charge.
            let mut charge = !(quiet && l1_free && self.code.is_pure(idx));
            // In a guest, a specialized operation's memory write can make
            // an exit due (a pending exit): test every boundary there.
            quiet = self.code.is_fast(idx) && !self.in_guest();
            let mut result = self.run_cached(idx, budget);
            // The next iterations would run linked blocks of pure
            // operations with nothing but the clock and the instruction
            // count to test: run_chain runs them with those tests hoisted.
            if quiet
                && l1_free
                && result.is_ok()
                && self.dbg.pending == 0
                && *left > 0
                && self.code.is_pure(idx)
            {
                if charge {
                    self.charge_mmu();
                    charge = false;
                }
                result = self.run_chain(&mut from, left);
            }
            let stop = match result {
                Ok(()) => {
                    let dr6 = std::mem::take(&mut self.dbg.pending);
                    if dr6 != 0 {
                        quiet = false;
                        charge = true;
                        self.raise_boxed(Event::DebugTrap { dr6 })
                    } else {
                        None
                    }
                }
                Err(ev) => {
                    self.dbg.pending = 0;
                    quiet = false;
                    charge = true;
                    self.raise_boxed(ev)
                }
            };
            if charge {
                self.charge_mmu();
            }
            if stop.is_some() || *left == 0 {
                return Some(stop);
            }
        }
    }

    /// The boundary state [`Machine::quick_slices`] needs besides the clock:
    /// not halted, no interrupt shadow, no guest-mode event or exit due
    /// ([`Machine::guest_boundary_quiet`]), no TF or RF, no debug
    /// register armed, no SIPI wait.
    #[inline(always)]
    fn boundary_quiet(&self) -> bool {
        let ev = &self.cpu.events;
        !(ev.halted
            || ev.sti_blocking
            || ev.movss_blocking
            || !self.guest_boundary_quiet()
            || self.cpu.flags.has(Rflags::TF | Rflags::RF)
            || self.dbg.any()
            || self.dev.lapics[self.dev.current_cpu].sipi_exits)
    }

    /// [`Machine::execute`] of a cached block.
    #[inline(always)]
    fn run_cached(&mut self, idx: u32, budget: u64) -> Result<(), Event> {
        let ip_mask = ip_mask(self.cpu.mode.code_bits);
        // The operations run while the machine (the code cache included)
        // changes under them: the run holds them for the duration.
        let pure = self.code.is_pure(idx);
        let len = self.code.len(idx);
        let ops = self.code.ops(idx);
        let n = (len as u64).min(budget) as usize;
        // A stop_block set before the block (by an event or VM exit the
        // guest boundary took, `service_boundary`) ends the block after its
        // first instruction in run_ops, so the next boundary comes at once;
        // pure operations never set it, so their loops, which test it
        // after the last only, leave that case to run_ops.
        if pure && !self.stop_block {
            if n == len {
                let cost = self.code.cost(idx);
                self.run_pure_whole(&ops, len, ip_mask)?;
                self.stats.retire_many(len as u64, cost);
            } else {
                self.run_pure_seq(&ops[..n], ip_mask, (0, 0))?;
                let cost = crate::interp::fast::Op::total_cost(&ops[..n]);
                self.stats.retire_many(n as u64, cost);
            }
            Ok(())
        } else {
            self.run_ops(&ops[..n], ip_mask)
        }
    }

    /// [`Machine::raise`] with the stop boxed (the quick path returns it in
    /// a register).
    #[cold]
    #[inline(never)]
    fn raise_boxed(&mut self, ev: Event) -> Option<Box<Stop>> {
        self.raise(ev).map(Box::new)
    }

    /// Runs one block (or one instruction when single-stepping or in an
    /// interrupt shadow). Returns why the machine stopped, if it did. The
    /// block's MMU work is charged to the clock at its end.
    pub fn run_slice(&mut self) -> Option<Stop> {
        let stop = self.run_block();
        self.charge_mmu();
        stop
    }

    fn run_block(&mut self) -> Option<Stop> {
        let mut budget = match self.config.max_insns {
            Some(n) if self.steps() >= n => return Some(Stop::InstructionLimit),
            Some(n) => n - self.steps(),
            None => u64::MAX,
        };
        // SMP: the running vCPU's turn ends (never with one vCPU).
        if self.stats.cycles >= self.smp.switch_at {
            if let Err(stop) = self.smp_switch() {
                return Some(stop);
            }
        }
        let guest_step = match self.service_boundary() {
            Ok(step) => step,
            Err(stop) => return Some(stop),
        };
        if self.cpu.events.halted {
            return None;
        }
        let ev = &self.cpu.events;
        let shadow = ev.sti_blocking || ev.movss_blocking;
        let single_step = self.cpu.flags.has(Rflags::TF);
        let resume = self.cpu.flags.has(Rflags::RF);
        if shadow || single_step || resume || guest_step || self.dbg.any() {
            budget = 1;
            if let Some(stop) = self.before_single_instruction(resume) {
                return stop;
            }
        }
        let block = match self.fetch_block() {
            Ok(b) => b,
            Err(ev) => return self.raise(ev),
        };
        let world = self.virt.mode;
        let result = self.execute(block, budget);
        // The shadow covers exactly one instruction (SDM Vol. 3A 6.8.3). A VM
        // exit the instruction causes saves it as guest interruptibility state
        // (SDM Vol. 3C 28.3.4, APM Vol. 2 15.6); a VM entry loaded the
        // guest's own.
        let exiting = matches!(result, Err(Event::GuestExit));
        if shadow && !exiting && self.virt.mode == world {
            self.cpu.events.sti_blocking = false;
            self.cpu.events.movss_blocking = false;
        }
        match result {
            Ok(()) => {
                let mut dr6 = std::mem::take(&mut self.dbg.pending);
                // SDM Vol. 3B 18.3.1.4: a single-step trap follows every
                // instruction that began with TF = 1. An instruction that
                // entered a guest (VMRUN) traps when it completes, after the
                // VM exit back to the host (APM Vol. 2 15.5.1).
                if single_step && !self.cpu.events.movss_blocking && self.virt.mode == world {
                    dr6 |= mmu::dr6::BS;
                }
                if dr6 != 0 {
                    return self.raise(Event::DebugTrap { dr6 });
                }
                None
            }
            Err(ev) => {
                self.dbg.pending = 0;
                self.raise(ev)
            }
        }
    }

    /// Executes up to `budget` instructions of `block`.
    #[inline]
    fn execute(&mut self, block: BlockRef, budget: u64) -> Result<(), Event> {
        let ip_mask = ip_mask(self.cpu.mode.code_bits);
        match block {
            BlockRef::Cached(idx) => self.run_cached(idx, budget),
            BlockRef::Transient(op) => {
                self.next_rip = self.cpu.rip.wrapping_add(op.len as u64) & ip_mask;
                if let Err(e) = op.run(self) {
                    return Err(self.on_event(e, op.cost));
                }
                self.retire(op.cost);
                self.stop_block = false;
                Ok(())
            }
        }
    }

    /// Runs `ops` in order until one raises an event or ends the block.
    ///
    /// Each instruction's RIP and next RIP come from the block's first RIP
    /// and the instruction's offset (the same values as adding the lengths
    /// one by one), so no instruction waits for the previous one's RIP.
    /// An instruction that sets a next RIP other than the sequential one
    /// ends the block like `stop_block` does.
    #[inline(always)]
    fn run_ops(&mut self, ops: &[crate::interp::fast::Op], ip_mask: u64) -> Result<(), Event> {
        let base = self.cpu.rip;
        for op in ops {
            let here = base.wrapping_add(op.start as u64);
            let next = here.wrapping_add(op.len as u64) & ip_mask;
            self.cpu.rip = here & ip_mask;
            self.next_rip = next;
            if (op.exec)(self, op).is_err() {
                let e = self.take_raised();
                return Err(self.on_event(e, op.cost));
            }
            self.stats.retire(op.cost);
            if self.stop_block || self.next_rip != next {
                self.stop_block = false;
                break;
            }
        }
        self.cpu.rip = self.next_rip;
        Ok(())
    }

    /// The whole block of pure operations `ops` ([`CodeCache::is_pure`]):
    /// its `len` instructions, then its fused operation if it has one
    /// ([`CodeCache::ops`]). Counts nothing when the block completes: the
    /// caller counts its `len` instructions and their cost
    /// ([`CodeCache::cost`]), at once, before anything reads the counters.
    /// Pure operations read neither the counters nor the clock nor the
    /// current RIP; if one raises an event, the instructions before it
    /// are counted first ([`Machine::pure_raised_after`]), so what anything
    /// outside the block sees is the same as with [`Machine::run_ops`].
    #[inline(always)]
    fn run_pure_whole(
        &mut self,
        ops: &[crate::interp::fast::Op],
        len: usize,
        ip_mask: u64,
    ) -> Result<(), Event> {
        match ops.get(len) {
            Some(fused) if len >= 2 => self.run_fused_ops(&ops[..len], fused, ip_mask),
            _ => self.run_pure_seq(&ops[..len], ip_mask, (0, 0)),
        }
    }

    /// Runs `ops`, pure operations of the block whose first RIP is the
    /// current RIP, of which only the last may transfer control, without
    /// counting them (see [`Machine::run_pure_whole`]); `done` is the
    /// (instructions, cost) of the block that ran before them, uncounted
    /// too, for an event. Only after the last can the next RIP differ
    /// from the sequential one; RIP is written at the end only.
    #[inline(always)]
    fn run_pure_seq(
        &mut self,
        ops: &[crate::interp::fast::Op],
        ip_mask: u64,
        done: (u64, u64),
    ) -> Result<(), Event> {
        let base = self.cpu.rip;
        let Some((last, body)) = ops.split_last() else {
            return Ok(());
        };
        self.run_pure_body(body, base, ip_mask, done)?;
        let here = base.wrapping_add(last.start as u64);
        let next = here.wrapping_add(last.len as u64) & ip_mask;
        self.next_rip = next;
        if (last.exec)(self, last).is_err() {
            return Err(self.pure_raised_after(done, body, here & ip_mask, last.cost));
        }
        // Specialized operations never set stop_block; a branch ends the
        // block by itself.
        self.stop_block = false;
        self.cpu.rip = self.next_rip;
        Ok(())
    }

    /// [`Machine::run_pure_seq`] of a whole block whose last two
    /// operations run as `fused` ([`crate::interp::fast::fused`]); if the
    /// fused operation declines (its branch would fault), the pair runs
    /// unfused.
    #[inline(always)]
    fn run_fused_ops(
        &mut self,
        ops: &[crate::interp::fast::Op],
        fused: &crate::interp::fast::Op,
        ip_mask: u64,
    ) -> Result<(), Event> {
        let base = self.cpu.rip;
        let (body, pair) = ops.split_at(ops.len() - 2);
        self.run_pure_body(body, base, ip_mask, (0, 0))?;
        let here = base.wrapping_add(fused.start as u64);
        self.next_rip = here.wrapping_add(fused.len as u64) & ip_mask;
        if (fused.exec)(self, fused).is_err() {
            if self.raised.is_some() {
                // The first instruction raised (a register operation never
                // does; kept exact all the same): the Jcc did not run.
                return Err(self.pure_raised_after((0, 0), body, here & ip_mask, pair[0].cost));
            }
            // Declined: nothing ran; the pair runs unfused (RIP is still
            // the block's).
            let done = (body.len() as u64, crate::interp::fast::Op::total_cost(body));
            return self.run_pure_seq(pair, ip_mask, done);
        }
        self.stop_block = false;
        self.cpu.rip = self.next_rip;
        Ok(())
    }

    /// Runs `body`, pure operations of the block whose first RIP is `base`
    /// that do not transfer control, without counting them (`done` as in
    /// [`Machine::run_pure_seq`]): the event one raised, with those before
    /// it counted.
    #[inline(always)]
    fn run_pure_body(
        &mut self,
        body: &[crate::interp::fast::Op],
        base: u64,
        ip_mask: u64,
        done: (u64, u64),
    ) -> Result<(), Event> {
        for (k, op) in body.iter().enumerate() {
            let here = base.wrapping_add(op.start as u64);
            self.next_rip = here.wrapping_add(op.len as u64) & ip_mask;
            if (op.exec)(self, op).is_err() {
                return Err(self.pure_raised_after(done, &body[..k], here & ip_mask, op.cost));
            }
        }
        Ok(())
    }

    /// A pure operation at `rip` costing `cost` raised an event after the
    /// uncounted `done` (instructions, cost) and the operations `before`
    /// of its block ran: those are counted, then the event is handled.
    #[cold]
    #[inline(never)]
    fn pure_raised_after(
        &mut self,
        done: (u64, u64),
        before: &[crate::interp::fast::Op],
        rip: u64,
        cost: u32,
    ) -> Event {
        let retired = done.0 + before.len() as u64;
        self.stats.retire_many(
            retired,
            done.1 + crate::interp::fast::Op::total_cost(before),
        );
        self.cpu.rip = rip;
        let e = self.take_raised();
        self.on_event(e, cost)
    }

    /// An instruction raised an event: traps (software interrupts, debug traps)
    /// complete the instruction first, so delivery pushes the next RIP.
    #[cold]
    fn on_event(&mut self, e: Event, cost: u32) -> Event {
        if matches!(e, Event::SoftwareInterrupt { .. } | Event::DebugTrap { .. }) {
            self.trap_rip = self.cpu.rip;
            self.retire(cost);
        }
        e
    }

    /// Before an instruction executed alone: the instruction-breakpoint check
    /// (a fault, suppressed by RF), then RF is cleared (SDM Vol. 3B 18.3.1.1:
    /// "the RF flag is cleared at the start of the instruction after the check
    /// for code breakpoint").
    #[cold]
    fn before_single_instruction(&mut self, resume: bool) -> Option<Option<Stop>> {
        if self.dbg.exec_armed && !resume {
            let la = self
                .cpu
                .seg(mmu::SegReg::Cs)
                .base
                .wrapping_add(self.cpu.rip);
            let hits = self.exec_breakpoints(self.wrap_linear(la));
            if hits != 0 {
                self.cpu.sys.dr6 = (self.cpu.sys.dr6 & !mmu::dr6::B_MASK) | hits;
                let d = crate::interrupt::Delivery {
                    vector: 1,
                    error_code: None,
                    source: crate::interrupt::Source::Exception,
                    return_rip: self.cpu.rip,
                    payload: None,
                    push_rf: false,
                };
                return Some(self.deliver(d).err());
            }
        }
        if resume {
            self.cpu.flags.assign(Rflags::RF, false);
        }
        None
    }

    /// Completes an instruction: RIP advances, counters move.
    #[inline(always)]
    fn retire(&mut self, cost: u32) {
        self.cpu.rip = self.next_rip;
        self.stats.retire(cost);
    }

    /// Work at an instruction boundary: the exits a guest takes there, device
    /// events, pending NMIs and interrupts, waking from HLT. One comparison
    /// when nothing is due. Returns true if the next slice must be a single
    /// instruction (monitor trap flag).
    #[inline(always)]
    fn service_boundary(&mut self) -> Result<bool, Stop> {
        if self.dev.lapics[self.dev.current_cpu].sipi_exits {
            // A VMX guest waiting for a SIPI takes no other event.
            self.vmx_sipi_wait()?;
            return Ok(false);
        }
        let mut step = false;
        if self.in_guest() {
            self.stop_block = false;
            step = self.guest_boundary()?;
            if self.stop_block {
                // The guest boundary delivered an event or exited: one event
                // per boundary.
                return Ok(false);
            }
        }
        if self.stats.cycles < self.dev.check_at && !self.cpu.events.halted {
            return Ok(step);
        }
        self.service_interrupts()?;
        Ok(step)
    }

    /// Delivers an event raised by an instruction; returns a stop if the machine
    /// cannot continue.
    ///
    /// The event ended the block that raised it. Delivering it (or the VM
    /// exit it is) sets `stop_block` as an instruction that changes the
    /// control flow would; that is cleared again here, so the block the
    /// event leads to (the handler's, the host's after a VM exit) runs whole
    /// rather than ending after its first instruction. The boundary before
    /// that block is still checked in full ([`Machine::run_slice`]).
    pub(crate) fn raise(&mut self, ev: Event) -> Option<Stop> {
        let stop = match ev {
            Event::Stop(s) => Some(*s),
            Event::GuestExit => self.perform_guest_exit().err(),
            other => self.deliver_event(other).err(),
        };
        self.stop_block = false;
        stop
    }

    /// Work done, as the instruction limit counts it: instructions retired,
    /// plus events delivered and partial executions of REP string
    /// instructions, which retire nothing but must not escape the limit (an
    /// exception whose handler faults forever, a REP with a huge count).
    #[inline(always)]
    pub fn steps(&self) -> u64 {
        self.stats.instructions + self.extra_steps
    }

    /// Takes the serial output produced so far.
    pub fn take_serial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.dev.com1.output)
    }

    /// The next value of the deterministic random source (RDRAND/RDSEED).
    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64* (Vigna, "An experimental exploration of Marsaglia's
        // xorshift generators, scrambled"), seeded from the configuration.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The instruction-pointer mask for a code-segment size.
#[inline(always)]
pub(crate) fn ip_mask(code_bits: u8) -> u64 {
    match code_bits {
        16 => 0xffff,
        32 => 0xffff_ffff,
        _ => u64::MAX,
    }
}
