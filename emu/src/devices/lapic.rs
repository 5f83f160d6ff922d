//! The local APIC of one logical processor (SDM Vol. 3A chapter 11, "Advanced
//! Programmable Interrupt Controller"): xAPIC registers in the 4-KiB page at
//! IA32_APIC_BASE, x2APIC registers as MSRs 800H-8FFH (11.12), the IRR/ISR/TMR
//! arrays with priority from TPR and PPR (11.8.3), EOI (11.8.5), the ICR and
//! its delivery modes and shorthands (11.6), the LVT (11.5.1), the error
//! status register (11.5.3) and the timer in one-shot, periodic and
//! TSC-deadline modes (11.5.4).
//!
//! One `LocalApic` per CPU; the bus in [`super::Devices`] routes the messages
//! an APIC sends (IPIs, EOI broadcasts) to the others and to the I/O APIC.
//! Timer state is a start cycle, not a ticking counter, so the current count
//! is computed from the modelled clock when read.

use super::clock::{Clock, APIC_BUS_HZ, NEVER};
use serde::{Deserialize, Serialize};

/// IA32_APIC_BASE bit 8: this is the bootstrap processor.
pub const BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 10: x2APIC mode.
pub const BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE bit 11: APIC global enable.
pub const BASE_EN: u64 = 1 << 11;
/// The default APIC base address.
pub const DEFAULT_BASE: u64 = 0xfee0_0000;

/// The version register: version 14H (an integrated xAPIC), six LVT entries
/// (max LVT entry 5), no EOI-broadcast suppression; QEMU reports the same.
pub const VERSION: u32 = 0x0005_0014;

/// LVT entries, in register order from 320H.
pub mod lvt {
    /// Timer (320H).
    pub const TIMER: usize = 0;
    /// Thermal sensor (330H).
    pub const THERMAL: usize = 1;
    /// Performance counters (340H).
    pub const PERF: usize = 2;
    /// LINT0 (350H).
    pub const LINT0: usize = 3;
    /// LINT1 (360H).
    pub const LINT1: usize = 4;
    /// Error (370H).
    pub const ERROR: usize = 5;
}

const LVT_MASKED: u32 = 1 << 16;
/// Writable bits of each LVT entry (SDM Vol. 3A figure 11-8).
const LVT_WRITABLE: [u32; 6] = [
    0x0007_00ff, // timer: vector, mask, timer mode
    0x0001_07ff, // thermal: vector, delivery mode, mask
    0x0001_07ff, // performance: vector, delivery mode, mask
    0x0001_a7ff, // LINT0: vector, delivery mode, polarity, trigger, mask
    0x0001_a7ff, // LINT1
    0x0001_00ff, // error: vector, mask
];

/// Delivery modes (SDM Vol. 3A 11.6.1).
pub mod mode {
    /// Fixed.
    pub const FIXED: u8 = 0;
    /// Lowest priority.
    pub const LOWEST: u8 = 1;
    /// SMI.
    pub const SMI: u8 = 2;
    /// NMI.
    pub const NMI: u8 = 4;
    /// INIT.
    pub const INIT: u8 = 5;
    /// Start-up.
    pub const STARTUP: u8 = 6;
    /// ExtINT.
    pub const EXTINT: u8 = 7;
}

/// ESR bits (SDM Vol. 3A 11.5.3).
pub mod esr {
    /// Send illegal vector.
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    /// Receive illegal vector.
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
    /// Illegal register address.
    pub const ILLEGAL_REGISTER: u32 = 1 << 7;
}

/// Timer modes of LVT timer bits 18:17.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// One-shot.
    OneShot,
    /// Periodic.
    Periodic,
    /// TSC-deadline.
    TscDeadline,
}

/// An interprocessor interrupt the ICR sends (SDM Vol. 3A 11.6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    /// Vector.
    pub vector: u8,
    /// Delivery mode.
    pub delivery: u8,
    /// Logical destination mode.
    pub logical: bool,
    /// Level: assert (1) or de-assert (0).
    pub assert: bool,
    /// Level-triggered.
    pub level: bool,
    /// Destination shorthand: 0 none, 1 self, 2 all including self, 3 all
    /// excluding self.
    pub shorthand: u8,
    /// Destination: xAPIC ICR[63:56], or the x2APIC ICR[63:32].
    pub dest: u32,
    /// The destination is in x2APIC format (32 bits).
    pub x2apic: bool,
}

/// A #GP(0) the access raises (reserved bits, a forbidden mode transition,
/// a read-only or absent register).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// What a register access asks the bus to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// An EOI of a level-triggered vector to broadcast to the I/O APIC.
    pub eoi: Option<u8>,
    /// An IPI to route.
    pub ipi: Option<Ipi>,
}

/// A 256-bit interrupt register (ISR, TMR, IRR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bits256(pub [u32; 8]);

impl Bits256 {
    fn set(&mut self, v: u8) {
        self.0[v as usize / 32] |= 1 << (v % 32);
    }
    fn clear(&mut self, v: u8) {
        self.0[v as usize / 32] &= !(1 << (v % 32));
    }
    /// True if bit `v` is set.
    pub fn get(&self, v: u8) -> bool {
        self.0[v as usize / 32] & (1 << (v % 32)) != 0
    }
    /// The highest set bit.
    pub fn highest(&self) -> Option<u8> {
        (0..8).rev().find_map(|w| {
            let x = self.0[w];
            (x != 0).then(|| (w * 32 + 31 - x.leading_zeros() as usize) as u8)
        })
    }
}

/// One local APIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalApic {
    /// The initial APIC ID (from the processor's position; 0 for the BSP).
    pub initial_id: u32,
    /// IA32_APIC_BASE.
    pub base: u64,
    /// The xAPIC ID (bits 7:0 of the register's 31:24).
    id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: Bits256,
    tmr: Bits256,
    irr: Bits256,
    /// ESR as last latched by a write.
    esr: u32,
    /// Errors detected since the last ESR write.
    esr_pending: u32,
    icr: u64,
    lvt: [u32; 6],
    timer_initial: u32,
    timer_divide: u32,
    /// Cycle at which the current count equalled the initial count.
    timer_start: u64,
    timer_running: bool,
    /// IA32_TSC_DEADLINE (0: disarmed).
    tsc_deadline: u64,
    /// An NMI was accepted and not yet taken by the processor.
    pub nmi_pending: bool,
    /// An INIT was accepted for this processor and not yet taken.
    pub init_pending: bool,
    /// The processor is in the wait-for-SIPI state (SDM Vol. 3A 9.4.2): it
    /// runs nothing until a start-up IPI arrives.
    #[serde(default)]
    pub wait_for_sipi: bool,
    /// The vector of the start-up IPI accepted and not yet acted on.
    #[serde(default)]
    pub sipi: Option<u8>,
    /// The processor waits for a SIPI as a VMX guest (guest activity state
    /// wait-for-SIPI, SDM Vol. 3C 25.4.2): INIT is blocked (it stays
    /// pending) and a SIPI causes a VM exit instead of starting the
    /// processor (26.2, "Other Causes of VM Exits").
    #[serde(default)]
    pub sipi_exits: bool,
    /// IA32_TIME_STAMP_COUNTER minus cycles of this APIC's processor while
    /// it is parked (SMP; the running processor's comes with each call):
    /// the TSC-deadline timer compares against its own processor's TSC.
    #[serde(default)]
    pub parked_tsc_offset: i64,
    /// An ExtINT message arrived: the processor takes the 8259's vector.
    pub extint_pending: bool,
    /// An SMI was accepted and not yet taken by the processor (GIF = 0
    /// holds it; under AMD-V the SMI intercept exits and leaves it pending,
    /// APM Vol. 2 15.13.3 and table 15-14).
    #[serde(default)]
    pub smi_pending: bool,
    /// SMIs the processor took. SMM is not modelled: a taken SMI is counted
    /// and dropped, and the processor goes on as if the SMI handler had
    /// returned at once with RSM.
    pub smi_count: u64,
    /// x2APIC mode may be entered (CPUID advertises it).
    pub x2apic_supported: bool,
    /// The TSC-deadline timer mode exists (CPUID advertises it).
    pub tsc_deadline_supported: bool,
}

impl LocalApic {
    /// The power-up state of the APIC with `initial_id` (SDM Vol. 3A 11.4.7.1,
    /// "Local APIC State After Power-Up or Reset"), enabled in xAPIC mode at
    /// the default base; the BSP flag set for ID 0.
    pub fn new(initial_id: u32, x2apic_supported: bool, tsc_deadline_supported: bool) -> Self {
        let bsp = if initial_id == 0 { BASE_BSP } else { 0 };
        let mut a = Self {
            initial_id,
            base: DEFAULT_BASE | BASE_EN | bsp,
            id: 0,
            tpr: 0,
            ldr: 0,
            dfr: 0,
            svr: 0,
            isr: Bits256::default(),
            tmr: Bits256::default(),
            irr: Bits256::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; 6],
            timer_initial: 0,
            timer_divide: 0,
            timer_start: 0,
            timer_running: false,
            tsc_deadline: 0,
            nmi_pending: false,
            init_pending: false,
            wait_for_sipi: false,
            sipi: None,
            sipi_exits: false,
            parked_tsc_offset: 0,
            extint_pending: false,
            smi_pending: false,
            smi_count: 0,
            x2apic_supported,
            tsc_deadline_supported,
        };
        a.reset();
        a
    }

    /// Resets the registers to their power-up values (the base MSR and the
    /// pending NMI/INIT latches are left alone).
    pub fn reset(&mut self) {
        self.id = self.initial_id as u8;
        self.tpr = 0;
        self.ldr = 0;
        self.dfr = 0xffff_ffff;
        self.svr = 0xff;
        self.isr = Bits256::default();
        self.tmr = Bits256::default();
        self.irr = Bits256::default();
        self.esr = 0;
        self.esr_pending = 0;
        self.icr = 0;
        self.lvt = [LVT_MASKED; 6];
        self.timer_initial = 0;
        self.timer_divide = 0;
        self.timer_running = false;
        self.tsc_deadline = 0;
    }

    /// The local APIC's part of an INIT reset (SDM Vol. 3A 11.4.7.3, "Local
    /// APIC State After an INIT Reset"): the registers return to their
    /// power-up values except the APIC ID; IA32_APIC_BASE, and with it
    /// x2APIC mode and the logical ID x2APIC derives, stays; latched NMI and
    /// ExtINT messages are dropped (KVM's `kvm_lapic_reset` for an INIT
    /// event does the same).
    pub fn init_reset(&mut self) {
        let id = self.id;
        self.reset();
        self.id = id;
        if self.x2apic() {
            self.ldr = (self.initial_id >> 4) << 16 | 1 << (self.initial_id & 0xf);
        }
        self.nmi_pending = false;
        self.extint_pending = false;
    }

    /// IA32_APIC_BASE.EN.
    #[inline]
    pub fn hw_enabled(&self) -> bool {
        self.base & BASE_EN != 0
    }

    /// x2APIC mode (EN and EXTD).
    #[inline]
    pub fn x2apic(&self) -> bool {
        self.base & (BASE_EN | BASE_EXTD) == BASE_EN | BASE_EXTD
    }

    /// SVR bit 8: software enable.
    #[inline]
    pub fn sw_enabled(&self) -> bool {
        self.svr & 0x100 != 0
    }

    /// The physical address of the xAPIC page while it is decoded (enabled
    /// and not in x2APIC mode).
    pub fn mmio_base(&self) -> Option<u64> {
        (self.hw_enabled() && !self.x2apic()).then_some(self.base & !0xfff)
    }

    /// The APIC ID as destinations compare it: the x2APIC ID in x2APIC mode,
    /// the 8-bit xAPIC ID otherwise.
    pub fn apic_id(&self) -> u32 {
        if self.x2apic() {
            self.initial_id
        } else {
            self.id as u32
        }
    }

    /// Writes IA32_APIC_BASE; `Err` is #GP (reserved bits, or a transition
    /// SDM Vol. 3A 11.12.5 forbids: to EXTD without EN, x2APIC to xAPIC,
    /// disabled to x2APIC).
    pub fn set_base(&mut self, v: u64, phys_mask: u64) -> Result<(), GeneralProtection> {
        let mut reserved = !(phys_mask & !0xfff) & !(BASE_BSP | BASE_EXTD | BASE_EN) | 0x2ff;
        if !self.x2apic_supported {
            reserved |= BASE_EXTD;
        }
        if v & reserved != 0 {
            return Err(GeneralProtection);
        }
        let en = v & BASE_EN != 0;
        let extd = v & BASE_EXTD != 0;
        let was_x2 = self.x2apic();
        let was_en = self.hw_enabled();
        match (en, extd) {
            (false, true) => return Err(GeneralProtection),
            (true, false) if was_x2 => return Err(GeneralProtection),
            (true, true) if !was_en => return Err(GeneralProtection),
            _ => {}
        }
        self.base = v;
        if !en && was_en {
            // Entering the disabled state resets the APIC (11.4.3; 11.12.5).
            self.reset();
        }
        if en && extd && !was_x2 {
            // Entering x2APIC mode: the ID is the x2APIC ID and the logical
            // ID derives from it (11.12.10.2).
            self.ldr = (self.initial_id >> 4) << 16 | 1 << (self.initial_id & 0xf);
        }
        Ok(())
    }

    /// The processor-priority register (11.8.3.1).
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    /// The arbitration-priority register (11.6.2.4), as Pentium 4 and Xeon
    /// processors compute it.
    fn apr(&self) -> u8 {
        let irrv = self.irr.highest().unwrap_or(0);
        let isrv = self.isr.highest().unwrap_or(0);
        let top = irrv.max(isrv);
        if self.tpr >> 4 >= top >> 4 {
            self.tpr
        } else {
            top & 0xf0
        }
    }

    /// CR8 (TPR bits 7:4, SDM Vol. 3A 11.8.6.1).
    pub fn cr8(&self) -> u64 {
        (self.tpr >> 4) as u64
    }

    /// MOV to CR8.
    pub fn set_cr8(&mut self, v: u64) {
        self.tpr = ((v & 0xf) << 4) as u8;
    }

    /// Accepts a fixed interrupt into the IRR (11.8.4); the TMR bit records
    /// its trigger mode.
    pub fn accept(&mut self, vector: u8, level: bool) {
        if vector < 16 {
            self.error(esr::RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
    }

    /// Records an error and raises the error LVT.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let e = self.lvt[lvt::ERROR];
        if e & LVT_MASKED == 0 && self.sw_enabled() && (e as u8) >= 16 {
            let v = e as u8;
            self.irr.set(v);
            self.tmr.clear(v);
        }
    }

    /// The vector the APIC would deliver to the processor now (11.8.3.1:
    /// the highest IRR vector whose class is above PPR's), if any.
    pub fn deliverable(&self) -> Option<u8> {
        if !self.hw_enabled() || !self.sw_enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The processor acknowledges `vector`: IRR to ISR.
    pub fn acknowledge(&mut self, vector: u8) {
        self.irr.clear(vector);
        self.isr.set(vector);
    }

    /// EOI: retires the highest in-service vector; returns it if it was
    /// level-triggered (the EOI goes to the I/O APIC, 11.8.5).
    fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.tmr.get(v).then_some(v)
    }

    /// True if the PIC's INTR reaches the processor through LINT0: the APIC
    /// is globally disabled (LINT0 is then the INTR pin, 11.4.3), or LINT0 is
    /// an unmasked ExtINT entry.
    pub fn accepts_pic(&self) -> bool {
        if !self.hw_enabled() {
            return true;
        }
        let l = self.lvt[lvt::LINT0];
        self.sw_enabled() && l & LVT_MASKED == 0 && ((l >> 8) & 7) as u8 == mode::EXTINT
    }

    /// LINT0's delivery mode if it is unmasked (for the wake analysis).
    pub fn lint0_mode(&self) -> Option<u8> {
        let l = self.lvt[lvt::LINT0];
        (self.hw_enabled() && self.sw_enabled() && l & LVT_MASKED == 0)
            .then_some(((l >> 8) & 7) as u8)
    }

    // ---- the timer (11.5.4) ----

    /// The divide configuration as a divisor (1-128).
    fn divisor(&self) -> u64 {
        let d = self.timer_divide;
        let code = (d & 3) | (d & 8) >> 1;
        if code == 7 {
            1
        } else {
            2 << code
        }
    }

    /// The timer mode in LVT timer bits 18:17.
    pub fn timer_mode(&self) -> TimerMode {
        match (self.lvt[lvt::TIMER] >> 17) & 3 {
            1 => TimerMode::Periodic,
            2 if self.tsc_deadline_supported => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }

    /// Cycles one full count takes.
    fn period_cycles(&self, clock: &Clock) -> u64 {
        let ticks = self.timer_initial as u64 * self.divisor();
        clock.cycles_for(ticks, APIC_BUS_HZ).max(1)
    }

    /// The current-count register at `now`.
    pub fn current_count(&self, clock: &Clock, now: u64) -> u32 {
        if !self.timer_running || self.timer_mode() == TimerMode::TscDeadline {
            return 0;
        }
        let elapsed =
            clock.ticks(now.saturating_sub(self.timer_start), APIC_BUS_HZ) / self.divisor();
        let n = self.timer_initial as u64;
        if elapsed >= n {
            // Expiry not processed yet: one-shot reads 0; periodic wraps.
            return match self.timer_mode() {
                TimerMode::Periodic => (n - elapsed % n) as u32,
                _ => 0,
            };
        }
        (n - elapsed) as u32
    }

    /// The cycle at which the timer next fires, given the TSC offset
    /// (TSC = cycles + offset).
    pub fn next_timer_event(&self, clock: &Clock, tsc_offset: i64) -> u64 {
        match self.timer_mode() {
            TimerMode::TscDeadline => {
                if self.tsc_deadline == 0 || !self.hw_enabled() {
                    return NEVER;
                }
                let c = self.tsc_deadline as i128 - tsc_offset as i128;
                c.clamp(0, NEVER as i128 - 1) as u64
            }
            _ if self.timer_running => self.timer_start.saturating_add(self.period_cycles(clock)),
            _ => NEVER,
        }
    }

    /// Processes a timer expiry due at or before `now`; returns true if it
    /// fired.
    pub fn timer_expired(&mut self, clock: &Clock, now: u64, tsc_offset: i64) -> bool {
        let due = self.next_timer_event(clock, tsc_offset);
        if due > now {
            return false;
        }
        match self.timer_mode() {
            TimerMode::TscDeadline => self.tsc_deadline = 0,
            TimerMode::OneShot => self.timer_running = false,
            TimerMode::Periodic => {
                // Advance by whole periods; missed periods coalesce into one
                // interrupt (the IRR holds one request per vector).
                let p = self.period_cycles(clock);
                let periods = (now - self.timer_start) / p;
                self.timer_start += periods * p;
            }
        }
        let l = self.lvt[lvt::TIMER];
        if l & LVT_MASKED == 0 && self.sw_enabled() {
            self.accept(l as u8, false);
        }
        true
    }

    /// True if a timer expiry would reach the processor as an interrupt it
    /// can take (unmasked, enabled, vector above the current PPR).
    pub fn timer_can_interrupt(&self) -> bool {
        let l = self.lvt[lvt::TIMER];
        self.hw_enabled()
            && self.sw_enabled()
            && l & LVT_MASKED == 0
            && (l as u8) >> 4 > self.ppr() >> 4
    }

    /// RDMSR IA32_TSC_DEADLINE: 0 unless in TSC-deadline mode.
    pub fn read_tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE: arms (or with 0 disarms) the timer in
    /// TSC-deadline mode; ignored in the other modes (11.5.4.1).
    pub fn write_tsc_deadline(&mut self, v: u64) {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.tsc_deadline = v;
        }
    }

    fn write_lvt(&mut self, n: usize, v: u32) {
        let mut v = v & LVT_WRITABLE[n];
        if !self.sw_enabled() {
            v |= LVT_MASKED;
        }
        // Keep the read-only remote IRR of LINT0/1.
        v |= self.lvt[n] & !LVT_WRITABLE[n] & (1 << 14);
        if n == lvt::TIMER {
            let old = self.timer_mode();
            self.lvt[n] = v;
            let new = self.timer_mode();
            if (old == TimerMode::TscDeadline) != (new == TimerMode::TscDeadline) {
                // Switching to or from TSC-deadline mode disarms the timer.
                self.timer_running = false;
                self.timer_initial = 0;
                self.tsc_deadline = 0;
            }
        } else {
            self.lvt[n] = v;
        }
    }

    fn write_initial_count(&mut self, v: u32, now: u64) {
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        self.timer_initial = v;
        self.timer_start = now;
        self.timer_running = v != 0;
    }

    fn write_divide(&mut self, v: u32, clock: &Clock, now: u64) {
        // Keep the current count across a divisor change.
        let cur = self.current_count(clock, now) as u64;
        self.timer_divide = v & 0xb;
        if self.timer_running {
            let done = self.timer_initial as u64 - cur;
            let ticks = done * self.divisor();
            self.timer_start = now.saturating_sub(clock.cycles_for(ticks, APIC_BUS_HZ));
        }
    }

    fn write_svr(&mut self, v: u32) {
        self.svr = v & 0x3ff;
        if !self.sw_enabled() {
            for l in &mut self.lvt {
                *l |= LVT_MASKED;
            }
        }
    }

    /// Sends the ICR's IPI (11.6.1), or records the send error.
    fn send_icr(&mut self, x2apic: bool) -> Option<Ipi> {
        let lo = self.icr as u32;
        let delivery = ((lo >> 8) & 7) as u8;
        let vector = lo as u8;
        if matches!(delivery, mode::FIXED | mode::LOWEST) && vector < 16 {
            self.error(esr::SEND_ILLEGAL_VECTOR);
            return None;
        }
        Some(Ipi {
            vector,
            delivery,
            logical: lo & (1 << 11) != 0,
            assert: lo & (1 << 14) != 0,
            level: lo & (1 << 15) != 0,
            shorthand: ((lo >> 18) & 3) as u8,
            dest: if x2apic {
                (self.icr >> 32) as u32
            } else {
                (self.icr >> 56) as u32
            },
            x2apic,
        })
    }

    // ---- xAPIC MMIO (11.4.1, table 11-1) ----

    /// Reads the 32-bit register at `offset` in the xAPIC page.
    pub fn read(&mut self, offset: u64, clock: &Clock, now: u64) -> u32 {
        let r = offset & 0xff0;
        match r {
            0x020 => (self.id as u32) << 24,
            0x030 => VERSION,
            0x080 => self.tpr as u32,
            0x090 => self.apr() as u32,
            0x0a0 => self.ppr() as u32,
            0x0d0 => self.ldr,
            0x0e0 => self.dfr,
            0x0f0 => self.svr,
            0x100..=0x170 => self.isr.0[(r as usize - 0x100) >> 4],
            0x180..=0x1f0 => self.tmr.0[(r as usize - 0x180) >> 4],
            0x200..=0x270 => self.irr.0[(r as usize - 0x200) >> 4],
            0x280 => self.esr,
            0x300 => self.icr as u32,
            0x310 => (self.icr >> 32) as u32,
            0x320..=0x370 => self.lvt[(r as usize - 0x320) >> 4],
            0x380 => self.timer_initial,
            0x390 => self.current_count(clock, now),
            0x3e0 => self.timer_divide,
            _ => 0,
        }
    }

    /// Writes the 32-bit register at `offset` in the xAPIC page.
    pub fn write(&mut self, offset: u64, v: u32, clock: &Clock, now: u64) -> Effect {
        let mut fx = Effect::default();
        let r = offset & 0xff0;
        match r {
            0x020 => self.id = (v >> 24) as u8,
            0x080 => self.tpr = v as u8,
            0x0b0 => fx.eoi = self.eoi(),
            0x0d0 => self.ldr = v & 0xff00_0000,
            0x0e0 => self.dfr = v | 0x0fff_ffff,
            0x0f0 => self.write_svr(v),
            0x280 => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            0x300 => {
                self.icr = (self.icr & !0xffff_ffff) | (v & 0x000c_cfff) as u64;
                fx.ipi = self.send_icr(false);
            }
            0x310 => self.icr = (self.icr & 0xffff_ffff) | ((v & 0xff00_0000) as u64) << 32,
            0x320..=0x370 => self.write_lvt((r as usize - 0x320) >> 4, v),
            0x380 => self.write_initial_count(v, now),
            0x3e0 => self.write_divide(v, clock, now),
            // Read-only and reserved registers ignore writes.
            _ => {}
        }
        fx
    }

    // ---- x2APIC MSRs (11.12.1.2, table 11-6) ----

    /// RDMSR of x2APIC register MSR `msr` (800H-8FFH); `Err` is #GP.
    pub fn read_msr(&self, msr: u32, clock: &Clock, now: u64) -> Result<u64, GeneralProtection> {
        if !self.x2apic() {
            return Err(GeneralProtection);
        }
        Ok(match msr {
            0x802 => self.initial_id as u64,
            0x803 => VERSION as u64,
            0x808 => self.tpr as u64,
            0x80a => self.ppr() as u64,
            0x80d => self.ldr as u64,
            0x80f => self.svr as u64,
            0x810..=0x817 => self.isr.0[(msr - 0x810) as usize] as u64,
            0x818..=0x81f => self.tmr.0[(msr - 0x818) as usize] as u64,
            0x820..=0x827 => self.irr.0[(msr - 0x820) as usize] as u64,
            0x828 => self.esr as u64,
            0x830 => self.icr & !(1 << 12),
            0x832..=0x837 => self.lvt[(msr - 0x832) as usize] as u64,
            0x838 => self.timer_initial as u64,
            0x839 => self.current_count(clock, now) as u64,
            0x83e => self.timer_divide as u64,
            _ => return Err(GeneralProtection),
        })
    }

    /// WRMSR of x2APIC register MSR `msr`; `Err` is #GP (read-only registers,
    /// reserved bits, non-zero EOI/ESR writes).
    pub fn write_msr(
        &mut self,
        msr: u32,
        v: u64,
        clock: &Clock,
        now: u64,
    ) -> Result<Effect, GeneralProtection> {
        if !self.x2apic() {
            return Err(GeneralProtection);
        }
        if msr != 0x830 && v >> 32 != 0 {
            return Err(GeneralProtection);
        }
        let v32 = v as u32;
        let mut fx = Effect::default();
        match msr {
            0x808 if v32 & !0xff == 0 => self.tpr = v32 as u8,
            0x80b if v32 == 0 => fx.eoi = self.eoi(),
            0x80f if v32 & !0x3ff == 0 => self.write_svr(v32),
            0x828 if v32 == 0 => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            0x830 if v & 0x0000_0000_fff3_2000 == 0 => {
                self.icr = v & !(1 << 12);
                fx.ipi = self.send_icr(true);
            }
            0x832..=0x837 => {
                let n = (msr - 0x832) as usize;
                if v32 & !LVT_WRITABLE[n] & !(1 << 12 | 1 << 14) != 0 {
                    return Err(GeneralProtection);
                }
                self.write_lvt(n, v32);
            }
            0x838 => self.write_initial_count(v32, now),
            0x83e if v32 & !0xb == 0 => self.write_divide(v32, clock, now),
            0x83f if v32 & !0xff == 0 => {
                // SELF IPI: fixed, edge, to this APIC (11.12.11).
                self.icr = (self.icr & !0xffff_ffff) | (0x4_0000 | v32) as u64;
                fx.ipi = self.send_icr(true);
            }
            _ => return Err(GeneralProtection),
        }
        Ok(fx)
    }

    /// True if this APIC is a target of a destination (11.6.2): physical ID
    /// match or broadcast, or a logical match against LDR/DFR.
    pub fn matches(&self, dest: u32, logical: bool, x2apic_format: bool) -> bool {
        if self.x2apic() {
            let dest = if x2apic_format {
                dest
            } else if dest == 0xff {
                0xffff_ffff
            } else {
                dest
            };
            if dest == 0xffff_ffff {
                return true;
            }
            if !logical {
                return dest == self.initial_id;
            }
            return dest >> 16 == self.ldr >> 16 && dest & self.ldr & 0xffff != 0;
        }
        let dest = dest as u8;
        if !logical {
            return dest == 0xff || dest == self.id;
        }
        if dest == 0xff {
            return true;
        }
        let ldr = (self.ldr >> 24) as u8;
        if self.dfr >> 28 == 0xf {
            // Flat model.
            dest & ldr != 0
        } else {
            // Cluster model: cluster in bits 7:4, members in 3:0.
            dest >> 4 == ldr >> 4 && dest & ldr & 0xf != 0
        }
    }
}

#[cfg(test)]
#[path = "lapic_tests.rs"]
mod tests;
