//! ACPI: the static tables firmware would leave (ACPI 6.x chapter 5: RSDP,
//! RSDT, XSDT, FADT, FACS, MADT and a minimal DSDT) and the PM1 fixed
//! hardware behind them (4.8: PM1 event and control blocks, the PM timer,
//! GPE0), at the I/O addresses QEMU's PIIX4 uses (600H, 604H, 608H, AFE0H).
//!
//! The tables live in the BIOS area at E0000H, where kernels scan for the
//! RSDP (5.2.5.1: on 16-byte boundaries of E0000H-FFFFFH). The FADT's PM1
//! control block is the power-off path: writing SLP_EN with SLP_TYP 0 (the
//! DSDT's \_S5) ends the run as QEMU ends it, with status 0. The FADT's reset
//! register is port CF9H with value 06H.

use super::clock::{Clock, NEVER, PM_TIMER_HZ};
use serde::{Deserialize, Serialize};

/// Where the tables go (the RSDP first).
pub const TABLES_BASE: u64 = 0xe_0000;
/// PM1a event block (status at +0, enable at +2).
pub const PM1_EVT: u16 = 0x600;
/// PM1a control block.
pub const PM1_CNT: u16 = 0x604;
/// The PM timer.
pub const PM_TMR: u16 = 0x608;
/// GPE0 block (status at +0, enable at +2).
pub const GPE0: u16 = 0xafe0;
/// The SCI's interrupt (ISA IRQ 9, level, active high).
pub const SCI_IRQ: u8 = 9;
/// The APIC addresses the MADT reports.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// The I/O APIC's address.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;

const OEM_ID: &[u8; 6] = b"NESTEM";
const OEM_TABLE_ID: &[u8; 8] = b"NESTEMU ";

/// Offsets of each table from [`TABLES_BASE`].
mod at {
    pub const RSDP: u64 = 0x000;
    pub const RSDT: u64 = 0x040;
    pub const XSDT: u64 = 0x080;
    pub const FADT: u64 = 0x100;
    pub const FACS: u64 = 0x200;
    pub const MADT: u64 = 0x240;
    pub const DSDT: u64 = 0x300;
}

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// A system description table: header (5.2.6) plus `body`.
fn table(sig: &[u8; 4], rev: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(rev);
    t.push(0);
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"NEMU");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure (5.2.3.2) in system I/O space.
fn gas_io(bits: u8, access: u8, addr: u64) -> [u8; 12] {
    let mut g = [0u8; 12];
    if addr != 0 {
        g[0] = 1;
        g[1] = bits;
        g[3] = access;
        g[4..].copy_from_slice(&addr.to_le_bytes());
    }
    g
}

/// The FADT (5.2.9), revision 3 (ACPI 2.0 layout, 244 bytes).
fn fadt(facs: u32, dsdt: u32) -> Vec<u8> {
    let mut b = vec![0u8; 244 - 36];
    let mut put =
        |off: usize, bytes: &[u8]| b[off - 36..off - 36 + bytes.len()].copy_from_slice(bytes);
    put(36, &facs.to_le_bytes());
    put(40, &dsdt.to_le_bytes());
    put(46, &(SCI_IRQ as u16).to_le_bytes());
    put(56, &(PM1_EVT as u32).to_le_bytes());
    put(64, &(PM1_CNT as u32).to_le_bytes());
    put(76, &(PM_TMR as u32).to_le_bytes());
    put(80, &(GPE0 as u32).to_le_bytes());
    put(88, &[4, 2, 0, 4, 4, 0, 0, 0]);
    // C2/C3 latencies above the limits: not supported.
    put(96, &0x0fffu16.to_le_bytes());
    put(98, &0x0fffu16.to_le_bytes());
    put(108, &[super::rtc::reg::CENTURY]);
    // IAPC_BOOT_ARCH: legacy devices, 8042.
    put(109, &3u16.to_le_bytes());
    // Flags: WBINVD, PROC_C1, SLP_BUTTON, FIX_RTC, RESET_REG_SUP.
    put(112, &0x0000_0465u32.to_le_bytes());
    put(116, &gas_io(8, 1, 0xcf9));
    put(128, &[0x06]);
    put(140, &(dsdt as u64).to_le_bytes());
    put(148, &gas_io(32, 2, PM1_EVT as u64));
    put(172, &gas_io(16, 2, PM1_CNT as u64));
    put(208, &gas_io(32, 3, PM_TMR as u64));
    put(220, &gas_io(32, 1, GPE0 as u64));
    table(b"FACP", 3, &b)
}

/// The MADT (5.2.12) for processors with APIC IDs `apic_ids` (processor UID
/// = position), all enabled.
fn madt(apic_ids: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: 8259s present
    for (uid, &id) in apic_ids.iter().enumerate() {
        b.extend_from_slice(&[0, 8, uid as u8, id as u8]);
        b.extend_from_slice(&1u32.to_le_bytes());
    }
    b.extend_from_slice(&[1, 12, 0, 0]);
    b.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // Interrupt source overrides: IRQ 0 -> GSI 2; IRQ 9 (SCI) level, high.
    for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (SCI_IRQ, SCI_IRQ as u32, 0x000d)] {
        b.extend_from_slice(&[2, 10, 0, irq]);
        b.extend_from_slice(&gsi.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
    }
    // Local APIC NMI: all processors, LINT1.
    b.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    table(b"APIC", 3, &b)
}

/// A DSDT whose only object is \_S5 (SLP_TYP 0 is soft-off, as QEMU's).
fn dsdt() -> Vec<u8> {
    // NameOp "_S5_" PackageOp PkgLength(6) NumElements(4) Zero Zero Zero Zero.
    let aml = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0];
    table(b"DSDT", 2, &aml)
}

/// The FACS (5.2.10), version 1.
fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 1;
    f
}

/// The RSDP (5.2.5.3), revision 2.
fn rsdp(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(36);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(OEM_ID);
    r.push(2);
    r.extend_from_slice(&rsdt.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// The tables as (physical address, bytes) for a machine whose processors
/// have APIC IDs `apic_ids`.
pub fn tables(apic_ids: &[u32]) -> Vec<(u64, Vec<u8>)> {
    let a = |o: u64| TABLES_BASE + o;
    let fadt_addr = a(at::FADT) as u32;
    let madt_addr = a(at::MADT) as u32;
    let mut rsdt_body = Vec::new();
    let mut xsdt_body = Vec::new();
    for t in [fadt_addr, madt_addr] {
        rsdt_body.extend_from_slice(&t.to_le_bytes());
        xsdt_body.extend_from_slice(&(t as u64).to_le_bytes());
    }
    vec![
        (a(at::RSDP), rsdp(a(at::RSDT) as u32, a(at::XSDT))),
        (a(at::RSDT), table(b"RSDT", 1, &rsdt_body)),
        (a(at::XSDT), table(b"XSDT", 1, &xsdt_body)),
        (a(at::FADT), fadt(a(at::FACS) as u32, a(at::DSDT) as u32)),
        (a(at::FACS), facs()),
        (a(at::MADT), madt(apic_ids)),
        (a(at::DSDT), dsdt()),
    ]
}

const PM1_TMR_STS: u16 = 1 << 0;
const PM1_TMR_EN: u16 = 1 << 0;
const PM1_CNT_SCI_EN: u16 = 1 << 0;
const PM1_CNT_SLP_EN: u16 = 1 << 13;

/// What a PM register write asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmEffect {
    /// Nothing more.
    None,
    /// SLP_EN with SLP_TYP 0: soft-off (S5).
    PowerOff,
    /// SLP_EN with another SLP_TYP: a sleep state nestemu does not model.
    Sleep(u8),
}

/// The PM1 and GPE0 fixed hardware.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcpiPm {
    /// PM1 status bits other than TMR_STS.
    pm1_sts: u16,
    /// PM1 enable.
    pub pm1_en: u16,
    /// PM1 control (SLP_TYP; SCI_EN always reads 1).
    pm1_cnt: u16,
    /// Bit 23 of the timer when TMR_STS was last cleared.
    tmr_epoch: u64,
    /// GPE0 status and enable bytes.
    gpe: [u8; 4],
}

impl AcpiPm {
    /// The PM timer (24 bits, 3.579545 MHz) at `now`.
    pub fn timer(&self, clock: &Clock, now: u64) -> u32 {
        (clock.ticks(now, PM_TIMER_HZ) & 0xff_ffff) as u32
    }

    fn tmr_sts(&self, clock: &Clock, now: u64) -> bool {
        clock.ticks(now, PM_TIMER_HZ) >> 23 != self.tmr_epoch
    }

    fn reg16(&self, clock: &Clock, now: u64, off: u16) -> u16 {
        match off {
            0 => {
                self.pm1_sts
                    | if self.tmr_sts(clock, now) {
                        PM1_TMR_STS
                    } else {
                        0
                    }
            }
            2 => self.pm1_en,
            4 => self.pm1_cnt | PM1_CNT_SCI_EN,
            _ => 0,
        }
    }

    /// Reads `size` bytes at `port` (PM1 block 600H-60BH or GPE0).
    pub fn read(&self, clock: &Clock, now: u64, port: u16, size: u8) -> u32 {
        let mut v = 0u32;
        for k in 0..size as u16 {
            let p = port + k;
            let b = match p {
                PM1_EVT..=0x605 => {
                    let off = p - PM1_EVT;
                    (self.reg16(clock, now, off & !1) >> (8 * (off & 1))) as u8
                }
                PM_TMR..=0x60b => (self.timer(clock, now) >> (8 * (p - PM_TMR))) as u8,
                GPE0..=0xafe3 => self.gpe[(p - GPE0) as usize],
                _ => 0xff,
            };
            v |= (b as u32) << (8 * k);
        }
        v
    }

    /// Writes `size` bytes at `port`.
    pub fn write(&mut self, clock: &Clock, now: u64, port: u16, size: u8, v: u32) -> PmEffect {
        let mut fx = PmEffect::None;
        for k in 0..size as u16 {
            let p = port + k;
            let b = (v >> (8 * k)) as u8;
            match p {
                // PM1_STS: write 1 to clear.
                0x600 | 0x601 => {
                    let bits = (b as u16) << (8 * (p - 0x600));
                    if bits & PM1_TMR_STS != 0 {
                        self.tmr_epoch = clock.ticks(now, PM_TIMER_HZ) >> 23;
                    }
                    self.pm1_sts &= !bits;
                }
                0x602 | 0x603 => {
                    let sh = 8 * (p - 0x602);
                    self.pm1_en = (self.pm1_en & !(0xff << sh)) | (b as u16) << sh;
                    self.pm1_en &= 0x0521;
                }
                0x604 | 0x605 => {
                    let sh = 8 * (p - 0x604);
                    let new = (self.pm1_cnt & !(0xff << sh)) | (b as u16) << sh;
                    if new & PM1_CNT_SLP_EN != 0 {
                        let typ = ((new >> 10) & 7) as u8;
                        fx = if typ == 0 {
                            PmEffect::PowerOff
                        } else {
                            PmEffect::Sleep(typ)
                        };
                    }
                    self.pm1_cnt = new & !PM1_CNT_SLP_EN & 0x1c06;
                }
                0xafe0 | 0xafe1 => self.gpe[(p - GPE0) as usize] &= !b,
                0xafe2 | 0xafe3 => self.gpe[(p - GPE0) as usize] = b,
                _ => {}
            }
        }
        fx
    }

    /// The SCI level (IRQ 9): an enabled status bit is set.
    pub fn sci(&self, clock: &Clock, now: u64) -> bool {
        let pm1 = self.reg16(clock, now, 0) & self.pm1_en;
        let gpe = (self.gpe[0] & self.gpe[2]) | (self.gpe[1] & self.gpe[3]);
        pm1 != 0 || gpe != 0
    }

    /// The next cycle at which the SCI can change by itself (the timer's
    /// bit 23 toggling while TMR_EN is set).
    pub fn next_event(&self, clock: &Clock, now: u64) -> u64 {
        if self.pm1_en & PM1_TMR_EN == 0 || self.tmr_sts(clock, now) {
            return NEVER;
        }
        let next = ((clock.ticks(now, PM_TIMER_HZ) >> 23) + 1) << 23;
        clock.cycles_for(next, PM_TIMER_HZ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_checksum_and_link() {
        let t = tables(&[0]);
        let at = |addr: u64| &t.iter().find(|(a, _)| *a == addr).unwrap().1;
        let rsdp = at(TABLES_BASE);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(checksum(&rsdp[..20]), 0);
        assert_eq!(checksum(rsdp), 0);
        for (addr, bytes) in &t {
            if &bytes[..4] != b"RSD " && &bytes[..4] != b"FACS" {
                assert_eq!(checksum(bytes), 0, "{:?} at {addr:#x}", &bytes[..4]);
                let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
                assert_eq!(len as usize, bytes.len());
            }
        }
        let fadt = at(TABLES_BASE + at::FADT);
        assert_eq!(fadt.len(), 244);
        assert_eq!(u32::from_le_bytes(fadt[76..80].try_into().unwrap()), 0x608);
        let madt = at(TABLES_BASE + at::MADT);
        assert_eq!(madt[44], 0, "first entry is a processor local APIC");
    }

    #[test]
    fn madt_lists_every_processor_with_its_apic_id() {
        let t = tables(&[0, 1, 2, 4]);
        let madt = &t
            .iter()
            .find(|(a, _)| *a == TABLES_BASE + at::MADT)
            .unwrap()
            .1;
        let mut at = 44;
        let mut cpus = Vec::new();
        while at < madt.len() {
            let (kind, len) = (madt[at], madt[at + 1] as usize);
            if kind == 0 {
                let flags = u32::from_le_bytes(madt[at + 4..at + 8].try_into().unwrap());
                cpus.push((madt[at + 2], madt[at + 3], flags));
            }
            at += len;
        }
        assert_eq!(cpus, [(0, 0, 1), (1, 1, 1), (2, 2, 1), (3, 4, 1)]);
        assert_eq!(checksum(madt), 0);
    }

    #[test]
    fn pm_timer_and_power_off() {
        let c = Clock::default();
        let mut pm = AcpiPm::default();
        assert_eq!(
            pm.read(&c, 2_000_000_000, PM_TMR, 4),
            PM_TIMER_HZ as u32 & 0xff_ffff
        );
        assert_eq!(pm.read(&c, 0, PM1_CNT, 2) & 1, 1, "SCI_EN");
        assert_eq!(
            pm.write(&c, 0, PM1_CNT, 2, 1 << 10 | 1 << 13),
            PmEffect::Sleep(1)
        );
        assert_eq!(pm.write(&c, 0, PM1_CNT, 2, 1 << 13), PmEffect::PowerOff);
        // TMR_STS sets when bit 23 toggles and raises the SCI if enabled.
        pm.write(&c, 0, PM1_EVT + 2, 2, 1);
        let t = pm.next_event(&c, 0);
        assert!(!pm.sci(&c, t - 1));
        assert!(pm.sci(&c, t));
        pm.write(&c, t, PM1_EVT, 2, 1);
        assert!(!pm.sci(&c, t));
    }
}
