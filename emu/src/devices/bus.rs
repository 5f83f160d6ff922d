//! Port I/O and MMIO dispatch: a match on the address to the device that
//! claims it (the ports and pages of QEMU's `pc` machine), unclaimed
//! accesses read as all ones and counted, and the effects on the machine
//! that a write may have (debug exit, reset, power-off).

use super::clock::Clock;
use super::*;

impl Devices {
    // ---- port I/O ----

    /// An IN of `size` bytes (1, 2 or 4) from `port`.
    pub fn port_read(&mut self, port: u16, size: u8, now: Now) -> u32 {
        self.sync(now);
        let c = self.clock;
        let t = now.cycles;
        match self.read_port(port, size, &c, t) {
            Some(v) => v & ones(size),
            None => {
                self.unclaimed.port_reads += 1;
                ones(size)
            }
        }
    }

    fn read_port(&mut self, port: u16, size: u8, c: &Clock, t: u64) -> Option<u32> {
        let byte = size == 1;
        Some(match port {
            COM1..=0x3ff if self.config.com1 && byte => {
                let v = self.com1.read(port - COM1) as u32;
                let irq = self.com1.irq();
                self.set_line(4, IrqSource::Com1, irq);
                v
            }
            0x20 | 0x21 | 0xa0 | 0xa1 | 0x4d0 | 0x4d1 if byte => {
                let v = self.pic.read(port) as u32;
                self.touch();
                v
            }
            0x40..=0x43 if byte => self.pit.read(c, t, port) as u32,
            0x61 if byte => self.pit.read_port61(c, t) as u32,
            0x60 | 0x64 if byte => self.kbc.read(port) as u32,
            0x70 if byte => 0xff,
            0x71 if byte => {
                let (v, lower) = self.rtc.read(c, t);
                if lower {
                    self.set_line(8, IrqSource::Rtc, false);
                }
                v as u32
            }
            // System control port A: A20 is always enabled.
            0x92 if byte => 0x02,
            0xcf9 if byte => self.reset_control as u32,
            p if pci::PciBus::claims(p, size) => self.pci.read(p, size),
            fw_cfg::PORT_SELECTOR | fw_cfg::PORT_DATA => self.fw_cfg.io(false, size, 0)?,
            acpi::PM1_EVT..=0x60b | acpi::GPE0..=0xafe3 => self.pm.read(c, t, port, size),
            0xe0..=0xe3 | 0xe8..=0xeb if self.config.pc_testdev => {
                self.pc_testdev.read_scratch(port, size)
            }
            p if self.debug_exit_claims(p) => 0,
            p => match self.testdev_pio(p) {
                Some(off) => self.pci_testdev.read(off, size) as u32,
                None => return None,
            },
        })
    }

    fn debug_exit_claims(&self, port: u16) -> bool {
        self.config
            .debug_exit
            .is_some_and(|d| port >= d.base && (port as u32) < d.base as u32 + d.size as u32)
    }

    /// The offset of `port` in pci-testdev's I/O BAR, if it falls there.
    fn testdev_pio(&self, port: u16) -> Option<u64> {
        let (base, size) = self.pci.testdev_bar(1)?;
        let p = port as u64;
        (p >= base && p < base + size).then(|| p - base)
    }

    /// An OUT of `size` bytes (1, 2 or 4) to `port`.
    pub fn port_write(&mut self, port: u16, size: u8, value: u32, now: Now) -> IoEffect {
        self.sync(now);
        let c = self.clock;
        let t = now.cycles;
        let value = value & ones(size);
        let fx = self.write_port(port, size, value, &c, t);
        self.recompute(now);
        fx
    }

    fn write_port(&mut self, port: u16, size: u8, v: u32, c: &Clock, t: u64) -> IoEffect {
        let byte = size == 1;
        match port {
            COM1..=0x3ff if self.config.com1 => {
                self.com1.write(port - COM1, v as u8);
                let irq = self.com1.irq();
                self.set_line(4, IrqSource::Com1, irq);
            }
            // isa-debug-exit takes the written value as is (QEMU
            // hw/misc/debugexit.c).
            p if self.debug_exit_claims(p) => return IoEffect::DebugExit(v),
            0x20 | 0x21 | 0xa0 | 0xa1 | 0x4d0 | 0x4d1 if byte => {
                self.pic.write(port, v as u8);
                self.touch();
            }
            0x40..=0x43 if byte => {
                self.pit.write(c, t, port, v as u8);
                self.refresh_lines(t);
            }
            0x61 if byte => self.pit.write_port61(c, t, v as u8),
            0x60 | 0x64 if byte => {
                if self.kbc.write(port, v as u8) == kbc::KbcEffect::Reset {
                    return IoEffect::Reset("keyboard controller reset (port 64H)");
                }
            }
            0x70 if byte => {
                self.rtc.index = v as u8 & 0x7f;
                self.rtc.nmi_disabled = v & 0x80 != 0;
            }
            0x71 if byte => {
                self.rtc.write(c, t, v as u8);
                self.touch();
            }
            0x92 if byte && v & 1 != 0 => return IoEffect::Reset("fast reset (port 92H)"),
            0xf0 if byte => self.clear_fpu_busy(),
            0x92 if byte => {}
            // PIIX reset control: RST_CPU (bit 2) resets.
            0xcf9 if byte => {
                if v & 4 != 0 {
                    return IoEffect::Reset("reset control register (port CF9H)");
                }
                self.reset_control = v as u8 & 2;
            }
            p if pci::PciBus::claims(p, size) => self.pci.write(p, size, v),
            fw_cfg::PORT_SELECTOR | fw_cfg::PORT_DATA
                if self.fw_cfg.io(true, size, v).is_some() => {}
            acpi::PM1_EVT..=0x60b | acpi::GPE0..=0xafe3 => {
                let fx = self.pm.write(c, t, port, size, v);
                self.refresh_lines(t);
                match fx {
                    acpi::PmEffect::None => {}
                    acpi::PmEffect::PowerOff => return IoEffect::PowerOff,
                    acpi::PmEffect::Sleep(n) => return IoEffect::Sleep(n),
                }
            }
            SHUTDOWN_PORT if byte => return self.shutdown_byte(v as u8),
            p => return self.write_testdev_port(p, size, v),
        }
        IoEffect::None
    }

    fn write_testdev_port(&mut self, port: u16, size: u8, v: u32) -> IoEffect {
        let pc = self.config.pc_testdev;
        match port {
            0xe0..=0xe3 | 0xe8..=0xeb if pc => self.pc_testdev.write_scratch(port, size, v),
            // The flush-page port: nothing is cached, so nothing to flush.
            0xe4..=0xe7 if pc && size == 4 => {}
            p if pc
                && size == 1
                && (testdev::IRQ_PORT_BASE..testdev::IRQ_PORT_BASE + testdev::IRQ_LINES)
                    .contains(&p) =>
            {
                self.set_line(
                    (p - testdev::IRQ_PORT_BASE) as u8,
                    IrqSource::Testdev,
                    v != 0,
                );
            }
            p => match self.testdev_pio(p) {
                Some(off) => self
                    .pci_testdev
                    .write(testdev::Kind::Portio, off, size, v as u64),
                None => self.unclaimed.port_writes += 1,
            },
        }
        IoEffect::None
    }

    /// Port 8900H: writing the bytes of "Shutdown" in order powers off (the
    /// Bochs BIOS convention test kernels fall back to).
    fn shutdown_byte(&mut self, b: u8) -> IoEffect {
        const WORD: &[u8] = b"Shutdown";
        if b == WORD[self.shutdown_matched as usize] {
            self.shutdown_matched += 1;
            if self.shutdown_matched as usize == WORD.len() {
                self.shutdown_matched = 0;
                return IoEffect::PowerOff;
            }
        } else {
            self.shutdown_matched = (b == WORD[0]) as u8;
        }
        IoEffect::None
    }

    // ---- MMIO ----

    /// The offset of `pa` in the current local APIC's xAPIC page.
    fn lapic_offset(&self, pa: u64) -> Option<u64> {
        let base = self.lapic().mmio_base()?;
        (pa & !0xfff == base).then_some(pa & 0xfff)
    }

    /// An MMIO read of `size` bytes from physical address `pa`.
    pub fn mmio_read(&mut self, pa: u64, size: u8, now: Now) -> u64 {
        self.sync(now);
        let c = self.clock;
        let t = now.cycles;
        if let Some(off) = self.lapic_offset(pa) {
            let cpu = self.current_cpu;
            let reg = self.lapics[cpu].read(off & !3, &c, t) as u64;
            return reg >> (8 * (off & 3));
        }
        if pa & !0xfff == IOAPIC_BASE {
            let off = pa & 0xff;
            return (self.ioapic.read(off & !3) as u64) >> (8 * (off & 3));
        }
        if self.config.pc_testdev
            && pa.wrapping_sub(testdev::IOMEM_BASE) < testdev::IOMEM_LEN as u64
        {
            let off = (pa - testdev::IOMEM_BASE) as usize;
            return self.pc_testdev.read_iomem(off, size as usize);
        }
        if let Some((base, len)) = self.pci.testdev_bar(0) {
            if pa.wrapping_sub(base) < len {
                return self.pci_testdev.read(pa - base, size);
            }
        }
        self.unclaimed.mmio_reads += 1;
        if size >= 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        }
    }

    /// An MMIO write of `size` bytes to physical address `pa`.
    pub fn mmio_write(&mut self, pa: u64, size: u8, value: u64, now: Now) -> IoEffect {
        self.sync(now);
        let c = self.clock;
        let t = now.cycles;
        if let Some(off) = self.lapic_offset(pa) {
            // The local APIC takes aligned 32-bit writes only (SDM Vol. 3A
            // 11.4.1); others are dropped.
            if size == 4 && off & 0xf == 0 {
                let cpu = self.current_cpu;
                let fx = self.lapics[cpu].write(off, value as u32, &c, t);
                self.lapic_effect(cpu, fx);
            }
        } else if pa & !0xfff == IOAPIC_BASE {
            let off = pa & 0xff;
            if size == 4 || off == 0 {
                let mut msgs = Vec::new();
                self.ioapic.write(off, value as u32, &mut msgs);
                self.route_ioapic(msgs);
            }
        } else if self.config.pc_testdev
            && pa.wrapping_sub(testdev::IOMEM_BASE) < testdev::IOMEM_LEN as u64
        {
            let off = (pa - testdev::IOMEM_BASE) as usize;
            self.pc_testdev.write_iomem(off, size as usize, value);
        } else if let Some(off) = self.testdev_mmio(pa) {
            self.pci_testdev
                .write(testdev::Kind::Mmio, off, size, value);
        } else {
            self.unclaimed.mmio_writes += 1;
            return IoEffect::None;
        }
        self.touch();
        self.recompute(now);
        IoEffect::None
    }

    fn testdev_mmio(&self, pa: u64) -> Option<u64> {
        let (base, len) = self.pci.testdev_bar(0)?;
        (pa.wrapping_sub(base) < len).then(|| pa - base)
    }
}
