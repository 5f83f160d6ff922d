//! The device bus: port I/O and MMIO dispatch to the machine's devices (`bus`), the
//! interrupt wiring between them, and modelled time.
//!
//! Devices are plain state machines owned by [`Devices`]; dispatch is a match
//! on the address, with no trait objects, so the whole set is one serde value.
//! Accesses no device claims read as all ones and are counted (SDM Vol. 1 18.3
//! leaves unclaimed I/O undefined; a PC's floating bus reads 0xFF).
//!
//! Interrupt wiring follows QEMU's `pc` machine: ISA interrupt lines 0-15 go
//! to the 8259 pair and lines 0-23 to the I/O APIC pins (line 0, the PIT, to
//! pin 2, as the MADT's interrupt source override says); the I/O APIC and the
//! local APICs exchange messages (interrupts, IPIs, EOI broadcasts) through
//! [`Devices::deliver`]; the 8259 reaches the processor through LINT0
//! (ExtINT) or directly while the local APIC is globally disabled.
//!
//! Time: every device clock derives from the cycle count ([`clock`]). Devices
//! compute their state from it when read and announce the next cycle at which
//! something happens by itself ([`Devices::next_event`]); [`Devices::sync`]
//! processes events up to the present. `check_at` is the one number the
//! machine compares its cycle count with at block boundaries.

pub mod acpi;
mod bus;
pub mod clock;
pub mod fw_cfg;
pub mod ioapic;
pub mod kbc;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod testdev;
pub mod uart;

use clock::{Clock, NEVER};
use serde::{Deserialize, Serialize};

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// QEMU's isa-debug-exit port.
pub const DEBUG_EXIT: u16 = 0xf4;
/// The I/O APIC's MMIO page.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// The Bochs/old-QEMU shutdown port (write the string "Shutdown").
pub const SHUTDOWN_PORT: u16 = 0x8900;

/// An isa-debug-exit device's port window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugExitPort {
    /// First port.
    pub base: u16,
    /// Number of ports.
    pub size: u16,
}

/// What the platform is built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformConfig {
    /// The modelled TSC frequency in Hz (cycles per second).
    pub tsc_hz: u64,
    /// The RTC's time at cycle 0, in seconds since 1970-01-01T00:00:00Z.
    pub rtc_start: i64,
    /// Number of logical processors (`-smp`, `--smp`): vCPUs, fw_cfg, the
    /// MADT, CMOS.
    pub cpus: u32,
    /// How the processors are arranged (APIC IDs, CPUID topology); `None`:
    /// `cpus` cores in one socket. When set, its product is `cpus`.
    #[serde(default)]
    pub topology: Option<crate::smp::topology::Topology>,
    /// The scheduling quantum of an SMP machine in modelled cycles: a vCPU
    /// runs until its quantum ends (at the next block boundary), halts or
    /// waits for a start-up IPI.
    #[serde(default = "default_quantum")]
    pub quantum: u64,
    /// COM1 is present.
    pub com1: bool,
    /// isa-debug-exit, if present.
    pub debug_exit: Option<DebugExitPort>,
    /// QEMU's pc-testdev is present.
    pub pc_testdev: bool,
    /// QEMU's pci-testdev is present.
    pub pci_testdev: bool,
    /// fw_cfg reports no graphics (QEMU `-nographic`).
    pub nographic: bool,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            tsc_hz: clock::DEFAULT_TSC_HZ,
            rtc_start: rtc::DEFAULT_START,
            cpus: 1,
            topology: None,
            quantum: DEFAULT_QUANTUM,
            com1: true,
            debug_exit: Some(DebugExitPort {
                base: DEBUG_EXIT,
                size: 4,
            }),
            pc_testdev: false,
            pci_testdev: false,
            nographic: false,
        }
    }
}

/// The default SMP scheduling quantum, in modelled cycles (5 us at the
/// default 2 GHz).
pub const DEFAULT_QUANTUM: u64 = 10_000;

fn default_quantum() -> u64 {
    DEFAULT_QUANTUM
}

impl PlatformConfig {
    /// The processor topology.
    pub fn topology(&self) -> crate::smp::topology::Topology {
        self.topology
            .unwrap_or_else(|| crate::smp::topology::Topology::flat(self.cpus))
    }
}

/// What an I/O or MMIO write asks the machine to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoEffect {
    /// Nothing beyond the device's own state change.
    None,
    /// isa-debug-exit: end the run with status `(value << 1) | 1`.
    DebugExit(u32),
    /// The guest powered the machine off (ACPI S5, the 8900H string).
    PowerOff,
    /// The guest asked for a reset (the named path).
    Reset(&'static str),
    /// The guest asked for ACPI sleep state SLP_TYP n, which is not modelled.
    Sleep(u8),
}

/// Counters for accesses no device claimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnclaimedCounts {
    /// Port reads.
    pub port_reads: u64,
    /// Port writes.
    pub port_writes: u64,
    /// MMIO reads.
    pub mmio_reads: u64,
    /// MMIO writes.
    pub mmio_writes: u64,
}

/// The present, as devices need it: cycles and the TSC offset (TSC =
/// cycles + offset, for the TSC-deadline timer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Modelled cycles.
    pub cycles: u64,
    /// IA32_TIME_STAMP_COUNTER minus cycles.
    pub tsc_offset: i64,
}

/// Who drives an interrupt line (lines are the OR of their sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IrqSource {
    /// 8254 channel 0.
    Pit = 1 << 0,
    /// COM1.
    Com1 = 1 << 1,
    /// The RTC.
    Rtc = 1 << 2,
    /// The ACPI SCI.
    Sci = 1 << 3,
    /// pc-testdev's IRQ ports.
    Testdev = 1 << 4,
    /// The processor's FERR# output (legacy x87 error reporting, IRQ 13).
    Ferr = 1 << 5,
}

/// Legacy x87 error reporting on the PC platform (SDM Vol. 1 8.7 and
/// appendix D, "Guidelines for Writing x87 FPU Exception Handlers"; APM
/// Vol. 1 6.4.6 "x87 Floating-Point Exception Causes", the FERR#/IGNNE#
/// legacy mode): with CR0.NE = 0 the processor signals an unmasked x87
/// exception on its FERR# output, which the chipset routes to IRQ 13 (the
/// slave 8259's IR5). A write to port F0H (any value) clears that request
/// and asserts IGNNE#, which lets the processor ignore the error until FERR#
/// goes inactive (the handler clears ES with FNCLEX or FNINIT). One latch
/// for the platform: the FERR# outputs of several processors are wired
/// together, as on PC boards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ferr {
    /// FERR# is asserted.
    pub asserted: bool,
    /// IGNNE# is asserted (port F0H was written while FERR# was).
    pub ignne: bool,
}

/// Number of interrupt lines (ISA 0-15 and PCI/GSI up to the I/O APIC's 24).
pub const LINES: usize = 24;

/// Most device events one [`Devices::sync`] processes.
const SYNC_EVENT_LIMIT: u32 = 1 << 20;

/// The machine's devices.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Devices {
    /// What the platform was built from.
    pub config: PlatformConfig,
    /// The time base.
    pub clock: Clock,
    /// COM1.
    pub com1: uart::Uart16550,
    /// One local APIC per processor.
    pub lapics: Vec<lapic::LocalApic>,
    /// The processor whose accesses reach the bus (its local APIC answers
    /// at the APIC base).
    pub current_cpu: usize,
    /// The I/O APIC.
    pub ioapic: ioapic::IoApic,
    /// The 8259 pair.
    pub pic: pic::PicPair,
    /// The 8254 and port 61H.
    pub pit: pit::Pit,
    /// The RTC and CMOS RAM.
    pub rtc: rtc::Rtc,
    /// PCI bus 0.
    pub pci: pci::PciBus,
    /// pci-testdev.
    pub pci_testdev: testdev::PciTestdev,
    /// pc-testdev.
    pub pc_testdev: testdev::PcTestdev,
    /// fw_cfg.
    pub fw_cfg: fw_cfg::FwCfg,
    /// ACPI PM1/GPE0 hardware.
    pub pm: acpi::AcpiPm,
    /// The 8042.
    pub kbc: kbc::Kbc,
    /// The PIIX reset control register (CF9H).
    pub reset_control: u8,
    /// Bytes of "Shutdown" matched so far at port 8900H.
    shutdown_matched: u8,
    /// FERR#, IGNNE# and IRQ 13.
    #[serde(default)]
    pub ferr: Ferr,
    /// Sources driving each interrupt line.
    line_sources: [u8; LINES],
    /// The cycle up to which device events have been processed.
    pub(crate) time: u64,
    /// The earliest cycle at which a device changes state by itself.
    pub next_event: u64,
    /// The machine re-examines interrupts when its cycle count reaches this
    /// (0: at the next block boundary).
    pub check_at: u64,
    /// Accesses no device claimed.
    pub unclaimed: UnclaimedCounts,
}

impl Devices {
    /// The devices of a machine with `ram_low` bytes of RAM below 4 GiB and
    /// `ram_high` above, whose CPU model has x2APIC and TSC-deadline support
    /// as given.
    pub fn new(
        config: &PlatformConfig,
        ram_low: u64,
        ram_high: u64,
        x2apic: bool,
        tsc_deadline: bool,
    ) -> Self {
        // Destination sets are 64-bit masks: at most 64 local APICs.
        let cpus = config.cpus.clamp(1, crate::smp::topology::MAX_CPUS);
        let topo = config.topology();
        let mut d = Self {
            clock: Clock {
                tsc_hz: config.tsc_hz.max(1),
            },
            com1: uart::Uart16550::default(),
            // Application processors wait for a start-up IPI from power-up
            // (SDM Vol. 3A 9.4.2): QEMU's firmware parks them again with
            // an INIT before it starts the kernel.
            lapics: (0..cpus)
                .map(|i| {
                    let mut a = lapic::LocalApic::new(topo.apic_id(i), x2apic, tsc_deadline);
                    a.wait_for_sipi = i != 0;
                    a
                })
                .collect(),
            current_cpu: 0,
            ioapic: ioapic::IoApic::default(),
            pic: pic::PicPair::default(),
            pit: pit::Pit::default(),
            rtc: rtc::Rtc::new(config.rtc_start, ram_low, ram_high, cpus),
            pci: pci::PciBus::new(config.pci_testdev),
            pci_testdev: testdev::PciTestdev::default(),
            pc_testdev: testdev::PcTestdev::default(),
            fw_cfg: fw_cfg::FwCfg::new(ram_low + ram_high, cpus as u16, config.nographic),
            pm: acpi::AcpiPm::default(),
            kbc: kbc::Kbc::default(),
            reset_control: 0,
            shutdown_matched: 0,
            ferr: Ferr::default(),
            line_sources: [0; LINES],
            time: 0,
            next_event: NEVER,
            check_at: 0,
            unclaimed: UnclaimedCounts::default(),
            config: config.clone(),
        };
        d.firmware_handoff();
        d
    }

    /// Leaves the devices as QEMU's firmware (SeaBIOS) leaves them when it
    /// starts a `-kernel`: the BSP's local APIC software-enabled in virtual
    /// wire mode (LINT0 ExtINT, LINT1 NMI, both level), PIT channel 0 in
    /// mode 3 with count 65536 (the 18.2 Hz tick), both 8259s initialized to
    /// vectors 08H/70H with the masks SeaBIOS leaves (master B8H: IRQ 0, 1,
    /// 2 and 6 open for its timer, keyboard, cascade and floppy handlers;
    /// slave 8EH: IRQ 8, 12, 13 and 14 open for the RTC, mouse, FPU and
    /// disk), and the ELCR making IRQ 10 and 11 (SeaBIOS's PCI interrupt
    /// lines) level-triggered. The masks and ELCR were read with QEMU 7.2's
    /// `info pic` from a `-kernel` guest.
    fn firmware_handoff(&mut self) {
        self.pic.write(0x21, 0xb8);
        self.pic.write(0xa1, 0x8e);
        self.pic.write(0x4d1, 0x0c);
        let c = self.clock;
        let a = &mut self.lapics[0];
        a.write(0xf0, 0x1ff, &c, 0);
        a.write(0x350, 0x8700, &c, 0);
        a.write(0x360, 0x8400, &c, 0);
        self.pit.write(&c, 0, 0x43, 0x36);
        self.pit.write(&c, 0, 0x40, 0);
        self.pit.write(&c, 0, 0x40, 0);
        self.refresh_lines(0);
        self.recompute(Now::default());
        self.check_at = 0;
    }

    /// The local APIC of the processor on the bus.
    pub fn lapic(&self) -> &lapic::LocalApic {
        &self.lapics[self.current_cpu]
    }

    /// The local APIC of the processor on the bus, mutably.
    pub fn lapic_mut(&mut self) -> &mut lapic::LocalApic {
        &mut self.lapics[self.current_cpu]
    }

    /// Something that may change what interrupts are pending happened: the
    /// machine looks again at the next block boundary.
    #[inline]
    pub fn touch(&mut self) {
        self.check_at = 0;
    }

    // ---- interrupt wiring ----

    /// Drives interrupt line `line` from `src` to `level`.
    pub fn set_line(&mut self, line: u8, src: IrqSource, level: bool) {
        let l = line as usize;
        let old = self.line_sources[l] != 0;
        if level {
            self.line_sources[l] |= src as u8;
        } else {
            self.line_sources[l] &= !(src as u8);
        }
        let new = self.line_sources[l] != 0;
        if old == new {
            return;
        }
        if line < 16 {
            self.pic.set_irq(line, new);
        }
        // ISA IRQ 0 is wired to I/O APIC pin 2 (sharing it with line 2).
        let pin = if line == 0 { 2 } else { l };
        let pin_level = if pin == 2 {
            self.line_sources[0] != 0 || self.line_sources[2] != 0
        } else {
            new
        };
        let mut msgs = Vec::new();
        self.ioapic.set_pin(pin, pin_level, &mut msgs);
        self.route_ioapic(msgs);
        self.touch();
    }

    /// The processor drives FERR# to `level`: IRQ 13 follows it unless
    /// IGNNE# is asserted; IGNNE# ends when FERR# goes inactive.
    pub fn set_ferr(&mut self, level: bool) {
        if level == self.ferr.asserted {
            return;
        }
        self.ferr.asserted = level;
        if !level {
            self.ferr.ignne = false;
        }
        self.set_line(13, IrqSource::Ferr, level && !self.ferr.ignne);
    }

    /// A write to port F0H: clears the IRQ 13 request and, while FERR# is
    /// asserted, asserts IGNNE# (the "clear FPU busy" latch of the PC/AT).
    fn clear_fpu_busy(&mut self) {
        if self.ferr.asserted {
            self.ferr.ignne = true;
        }
        self.set_line(13, IrqSource::Ferr, false);
    }

    /// The level of interrupt line `line`.
    pub fn line(&self, line: u8) -> bool {
        self.line_sources[line as usize] != 0
    }

    fn route_ioapic(&mut self, msgs: Vec<ioapic::Message>) {
        for m in msgs {
            let targets = self.targets(m.dest as u32, m.logical, false);
            if targets == 0 {
                self.ioapic.not_accepted(m.pin as usize);
            }
            self.deliver(targets, m.delivery, m.vector, m.level, true);
        }
    }

    /// The local APICs a destination selects, as a bit mask.
    fn targets(&self, dest: u32, logical: bool, x2apic_format: bool) -> u64 {
        self.lapics
            .iter()
            .enumerate()
            .filter(|(_, a)| a.hw_enabled() && a.matches(dest, logical, x2apic_format))
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Delivers an interrupt message to `targets` (SDM Vol. 3A 11.6.1 delivery
    /// modes). Lowest priority goes to the target with the lowest processor
    /// priority (ties: lowest index), deterministically.
    pub fn deliver(&mut self, targets: u64, delivery: u8, vector: u8, level: bool, assert: bool) {
        use lapic::mode;
        let mut targets = targets;
        if delivery == mode::LOWEST && targets != 0 {
            let pick = (0..self.lapics.len())
                .filter(|i| targets & (1 << i) != 0)
                .min_by_key(|&i| (self.lapics[i].ppr(), i))
                .unwrap_or(0);
            targets = 1 << pick;
        }
        for i in 0..self.lapics.len() {
            if targets & (1 << i) == 0 {
                continue;
            }
            let a = &mut self.lapics[i];
            match delivery {
                mode::FIXED | mode::LOWEST => a.accept(vector, level),
                // Taken (or held, or turned into a #VMEXIT) by the
                // processor at an instruction boundary.
                mode::SMI => a.smi_pending = true,
                mode::NMI => a.nmi_pending = true,
                // INIT level de-assert only resynchronizes arbitration IDs
                // (SDM Vol. 3A 11.6.1). A processor already waiting for a
                // SIPI has no state left to reset but its APIC's, and a
                // start-up not yet acted on is undone.
                mode::INIT if (assert || !level) && a.wait_for_sipi && !a.sipi_exits => {
                    a.init_reset();
                    a.sipi = None;
                }
                mode::INIT if assert || !level => a.init_pending = true,
                // A start-up IPI reaches only a processor in the
                // wait-for-SIPI state (or about to enter it: its INIT is
                // still to be taken); elsewhere it is dropped, as is a
                // second one before the first started the processor (SDM
                // Vol. 3A 9.4.4.1 sends two for that reason).
                mode::STARTUP if a.wait_for_sipi || a.init_pending => {
                    a.sipi.get_or_insert(vector);
                }
                mode::EXTINT => a.extint_pending = true,
                _ => {}
            }
        }
        self.touch();
    }

    /// Sends an IPI from processor `from` (SDM Vol. 3A 11.6.1: shorthands
    /// self, all including self, all excluding self).
    fn route_ipi(&mut self, from: usize, ipi: lapic::Ipi) {
        let all = u64::MAX >> (64 - self.lapics.len());
        let targets = match ipi.shorthand {
            1 => 1 << from,
            2 => all,
            3 => all & !(1 << from),
            _ => self.targets(ipi.dest, ipi.logical, ipi.x2apic),
        };
        // INIT and SIPI with the self shorthand are invalid (11.6.1).
        if ipi.shorthand == 1 && matches!(ipi.delivery, lapic::mode::INIT | lapic::mode::STARTUP) {
            return;
        }
        self.deliver(targets, ipi.delivery, ipi.vector, ipi.level, ipi.assert);
    }

    /// Acts on a local APIC register write's effects.
    fn lapic_effect(&mut self, from: usize, fx: lapic::Effect) {
        if let Some(v) = fx.eoi {
            let mut msgs = Vec::new();
            self.ioapic.eoi(v, &mut msgs);
            self.route_ioapic(msgs);
        }
        if let Some(ipi) = fx.ipi {
            self.route_ipi(from, ipi);
        }
        self.touch();
    }

    /// True if processor `cpu` has a maskable interrupt to take (from its
    /// local APIC, or from the 8259 through LINT0/ExtINT).
    pub fn interrupt_pending(&self, cpu: usize) -> bool {
        let a = &self.lapics[cpu];
        a.deliverable().is_some() || ((a.accepts_pic() || a.extint_pending) && self.pic.intr())
    }

    /// The interrupt-acknowledge cycle of processor `cpu`: the vector it
    /// takes, moved to in-service, or `None`.
    pub fn acknowledge(&mut self, cpu: usize) -> Option<u8> {
        let a = &mut self.lapics[cpu];
        if let Some(v) = a.deliverable() {
            a.acknowledge(v);
            self.touch();
            return Some(v);
        }
        if (a.accepts_pic() || a.extint_pending) && self.pic.intr() {
            a.extint_pending = false;
            let v = self.pic.acknowledge();
            self.touch();
            return Some(v);
        }
        None
    }

    /// Takes processor `cpu`'s pending NMI, if any.
    pub fn take_nmi(&mut self, cpu: usize) -> bool {
        std::mem::take(&mut self.lapics[cpu].nmi_pending)
    }

    // ---- time ----

    /// The cycle at which the earliest device event happens.
    fn earliest_event(&self, tsc_offset: i64) -> u64 {
        let c = &self.clock;
        let mut t = self.pit.next_event(c, self.time);
        t = t.min(self.rtc.next_event());
        t = t.min(self.pm.next_event(c, self.time));
        for (i, a) in self.lapics.iter().enumerate() {
            t = t.min(a.next_timer_event(c, self.tsc_offset_of(i, tsc_offset)));
        }
        t
    }

    /// The TSC offset of processor `i`, `running` being the running one's.
    #[inline]
    fn tsc_offset_of(&self, i: usize, running: i64) -> i64 {
        if i == self.current_cpu {
            running
        } else {
            self.lapics[i].parked_tsc_offset
        }
    }

    /// Processes every device event due at or before `now`.
    pub fn sync(&mut self, now: Now) {
        if now.cycles < self.next_event {
            return;
        }
        // Each pass handles the earliest event and moves it past its time;
        // the bound only guards against a device that would not.
        for _ in 0..SYNC_EVENT_LIMIT {
            let t = self.earliest_event(now.tsc_offset);
            if t > now.cycles {
                break;
            }
            self.process_events(t, now.tsc_offset);
        }
        self.recompute(now);
    }

    /// Processes the events due at cycle `t`.
    fn process_events(&mut self, t: u64, tsc_offset: i64) {
        let c = self.clock;
        let pit_due = self.pit.next_event(&c, self.time) <= t;
        let pm_due = self.pm.next_event(&c, self.time) <= t;
        self.time = self.time.max(t);
        if pit_due {
            let level = self.pit.irq0(&c, t);
            self.set_line(0, IrqSource::Pit, level);
        }
        if self.rtc.next_event() <= t && self.rtc.advance(&c, t) {
            self.set_line(8, IrqSource::Rtc, true);
        }
        if pm_due {
            let sci = self.pm.sci(&c, t);
            self.set_line(acpi::SCI_IRQ, IrqSource::Sci, sci);
        }
        for i in 0..self.lapics.len() {
            let offset = self.tsc_offset_of(i, tsc_offset);
            if self.lapics[i].timer_expired(&c, t, offset) {
                self.touch();
            }
        }
    }

    /// Recomputes the next event after a state change at `now`.
    fn recompute(&mut self, now: Now) {
        self.time = self.time.max(now.cycles);
        self.next_event = self.earliest_event(now.tsc_offset).max(now.cycles);
        self.check_at = self.check_at.min(self.next_event);
    }

    /// Brings IRQ 0 and the SCI up to date after a write at `now` changed
    /// their devices.
    fn refresh_lines(&mut self, now: u64) {
        let c = self.clock;
        self.time = self.time.max(now);
        let level = self.pit.irq0(&c, now);
        self.set_line(0, IrqSource::Pit, level);
        let sci = self.pm.sci(&c, now);
        self.set_line(acpi::SCI_IRQ, IrqSource::Sci, sci);
        let com1 = self.config.com1 && self.com1.irq();
        self.set_line(4, IrqSource::Com1, com1);
    }

    /// True if, with interrupts enabled as `if_flag` says, some device event
    /// still to come could interrupt halted processor `cpu`: a timer whose
    /// path to it is unmasked. A halted processor with none never wakes.
    pub fn wake_possible(&self, cpu: usize, if_flag: bool, tsc_offset: i64) -> bool {
        let c = &self.clock;
        let a = &self.lapics[cpu];
        if a.next_timer_event(c, tsc_offset) != NEVER && if_flag && a.timer_can_interrupt() {
            return true;
        }
        let sources = [
            (self.pit.next_event(c, self.time), 0u8),
            (self.rtc.next_event(), 8),
            (self.pm.next_event(c, self.time), acpi::SCI_IRQ),
        ];
        sources
            .iter()
            .any(|&(t, line)| t != NEVER && self.line_reaches(cpu, line, if_flag))
    }

    /// True if a signal on `line` would reach processor `cpu` as something it
    /// can take.
    fn line_reaches(&self, cpu: usize, line: u8, if_flag: bool) -> bool {
        let a = &self.lapics[cpu];
        if line < 16 && if_flag && !self.pic.masked(line) && a.accepts_pic() {
            return true;
        }
        let pin = if line == 0 { 2 } else { line as usize };
        if !self.ioapic.unmasked(pin) {
            return false;
        }
        let e = self.ioapic.entry(pin);
        match e.delivery {
            lapic::mode::FIXED | lapic::mode::LOWEST => {
                if_flag && a.sw_enabled() && e.vector >> 4 > a.ppr() >> 4
            }
            lapic::mode::EXTINT => if_flag && !self.pic.masked(line),
            lapic::mode::NMI | lapic::mode::INIT => true,
            _ => false,
        }
    }

    // ---- MSRs of the local APIC ----

    /// WRMSR IA32_APIC_BASE for the current processor; `Err` is #GP.
    pub fn write_apic_base(
        &mut self,
        v: u64,
        phys_mask: u64,
    ) -> Result<(), lapic::GeneralProtection> {
        self.lapic_mut().set_base(v, phys_mask)?;
        self.touch();
        Ok(())
    }

    /// RDMSR of an x2APIC register (800H-8FFH); `Err` is #GP.
    pub fn read_x2apic(&self, msr: u32, now: Now) -> Result<u64, lapic::GeneralProtection> {
        self.lapic().read_msr(msr, &self.clock, now.cycles)
    }

    /// WRMSR of an x2APIC register; `Err` is #GP.
    pub fn write_x2apic(
        &mut self,
        msr: u32,
        v: u64,
        now: Now,
    ) -> Result<(), lapic::GeneralProtection> {
        self.sync(now);
        let c = self.clock;
        let cpu = self.current_cpu;
        let fx = self.lapics[cpu].write_msr(msr, v, &c, now.cycles)?;
        self.lapic_effect(cpu, fx);
        self.recompute(now);
        Ok(())
    }

    /// WRMSR IA32_TSC_DEADLINE.
    pub fn write_tsc_deadline(&mut self, v: u64, now: Now) {
        self.sync(now);
        self.lapic_mut().write_tsc_deadline(v);
        self.touch();
        self.recompute(now);
    }

    /// MOV to CR8.
    pub fn write_cr8(&mut self, v: u64) {
        self.lapic_mut().set_cr8(v);
        self.touch();
    }

    /// Copies the ACPI tables into RAM through `load` (address, bytes).
    /// The MADT lists the processors modelled (see [`Devices::new`]), not a
    /// configured count the model does not reach.
    pub fn acpi_tables(&self) -> Vec<(u64, Vec<u8>)> {
        let ids: Vec<u32> = self.lapics.iter().map(|a| a.initial_id).collect();
        acpi::tables(&ids)
    }
}

#[inline]
fn ones(size: u8) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1u32 << (size * 8)) - 1
    }
}

#[cfg(test)]
mod smp_tests;

#[cfg(test)]
mod tests;
