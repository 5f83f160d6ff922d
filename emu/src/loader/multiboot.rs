//! Multiboot v1 (the Multiboot Specification 0.6.96), entered as QEMU's
//! `-kernel` does: ELF32 or ELF64 program headers loaded at their physical
//! addresses, or the a.out kludge of header flag 16; then the information
//! block (memory map, command line, modules) placed above the kernel, as QEMU
//! places it (hw/i386/multiboot.c), and EAX = 2BADB002H, EBX = its address.

use super::elf;
use super::{check_ram, LoadError};
use crate::machine::Machine;
use crate::memory::HIGH_RAM_BASE;

/// The header magic (spec 3.1.2).
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// The value in EAX at entry (spec 3.2).
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;

const FLAG_PAGE_ALIGN: u32 = 1 << 0;
const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO_MODE: u32 = 1 << 2;
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// A Multiboot header found in an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// File offset of the header.
    pub offset: usize,
    /// Flags.
    pub flags: u32,
    /// a.out kludge fields: header, load, load end, bss end, entry.
    pub aout: Option<[u32; 5]>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

/// Finds the header in the first 8192 bytes, 4-byte aligned (spec 3.1.1).
pub fn find_header(image: &[u8]) -> Option<Header> {
    let limit = image.len().min(8192);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let magic = u32_at(image, off)?;
        let flags = u32_at(image, off + 4)?;
        let sum = u32_at(image, off + 8)?;
        if magic != HEADER_MAGIC || magic.wrapping_add(flags).wrapping_add(sum) != 0 {
            return None;
        }
        let aout = if flags & FLAG_AOUT_KLUDGE != 0 {
            let mut a = [0u32; 5];
            for (k, v) in a.iter_mut().enumerate() {
                *v = u32_at(image, off + 12 + 4 * k)?;
            }
            Some(a)
        } else {
            None
        };
        Some(Header {
            offset: off,
            flags,
            aout,
        })
    })
}

/// A module to pass: its command-line string and contents.
#[derive(Clone, Debug)]
pub struct Module {
    /// The module string.
    pub string: String,
    /// The contents.
    pub data: Vec<u8>,
}

/// Where the kernel went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Entry point (physical).
    pub entry: u64,
    /// The lowest address loaded.
    pub start: u64,
    /// The first free address above the kernel image and its BSS.
    pub end: u64,
}

/// Loads the kernel image (not the information block).
pub fn load_kernel(m: &mut Machine, image: &[u8]) -> Result<Loaded, LoadError> {
    if image.is_empty() {
        return Err(LoadError("the kernel file is empty".into()));
    }
    let h = find_header(image).ok_or_else(|| {
        LoadError(
            "no Multiboot header (magic 1BADB002H with a valid checksum) in the first 8192 bytes"
                .into(),
        )
    })?;
    let unsupported = h.flags & 0xffff & !(FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE);
    if unsupported != 0 {
        return Err(LoadError(format!(
            "Multiboot header requires flags {unsupported:#x} this loader does not support"
        )));
    }
    if let Some([header_addr, load_addr, load_end, bss_end, entry]) = h.aout {
        let (header_addr, load_addr) = (header_addr as u64, load_addr as u64);
        if load_addr > header_addr || header_addr - load_addr > h.offset as u64 {
            return Err(LoadError(
                "Multiboot a.out fields put the load address after the header".into(),
            ));
        }
        let file_start = h.offset as u64 - (header_addr - load_addr);
        let len = if load_end == 0 {
            image.len() as u64 - file_start
        } else {
            (load_end as u64)
                .checked_sub(load_addr)
                .ok_or_else(|| LoadError("Multiboot load_end_addr is below load_addr".into()))?
        };
        if file_start + len > image.len() as u64 {
            return Err(LoadError(format!(
                "Multiboot a.out image wants {len:#x} bytes but the file holds {:#x} after the load start",
                image.len() as u64 - file_start
            )));
        }
        let end = if bss_end != 0 {
            (bss_end as u64).max(load_addr + len)
        } else {
            load_addr + len
        };
        check_ram(m, load_addr, end - load_addr, "the kernel image")?;
        m.load_phys(
            load_addr,
            &image[file_start as usize..(file_start + len) as usize],
        );
        m.zero_phys(load_addr + len, end - load_addr - len);
        return Ok(Loaded {
            entry: entry as u64,
            start: load_addr,
            end,
        });
    }
    if !elf::is_elf(image) {
        return Err(LoadError(
            "the Multiboot header does not set the a.out kludge flag and the file is not ELF"
                .into(),
        ));
    }
    let e = elf::parse(image)?;
    let mut end = 0;
    let mut start = u64::MAX;
    for s in &e.segments {
        check_ram(m, s.paddr, s.memsz, "an ELF segment")?;
        start = start.min(s.paddr);
    }
    for s in &e.segments {
        let data = &image[s.offset as usize..(s.offset + s.filesz) as usize];
        m.load_phys(s.paddr, data);
        m.zero_phys(s.paddr + s.filesz, s.memsz - s.filesz);
        end = end.max(s.paddr + s.memsz);
    }
    // An entry given as a virtual address inside a segment moves with it.
    // (Virtual ranges are unchecked and may wrap: compare by offset.)
    let within = |base: u64, len: u64| e.entry.wrapping_sub(base) < len && e.entry >= base;
    let in_phys = e.segments.iter().any(|s| within(s.paddr, s.memsz));
    let entry = if in_phys {
        e.entry
    } else {
        e.segments
            .iter()
            .find(|s| within(s.vaddr, s.memsz))
            .map_or(e.entry, |s| e.entry - s.vaddr + s.paddr)
    };
    if entry > u32::MAX as u64 {
        return Err(LoadError(format!(
            "the entry point {entry:#x} is above 4 GiB; Multiboot enters in 32-bit mode"
        )));
    }
    Ok(Loaded {
        entry,
        start: start.min(end),
        end,
    })
}

/// Writes the information block at `at` and returns its address.
fn write_info(
    m: &mut Machine,
    at: u64,
    cmdline: &str,
    modules: &[Module],
) -> Result<(u64, u64), LoadError> {
    let mut pos = at;
    // Modules, page-aligned (flag 0 asks for it; aligning always is allowed).
    let mut mods = Vec::new();
    for md in modules {
        pos = (pos + 0xfff) & !0xfff;
        check_ram(m, pos, md.data.len() as u64, "a Multiboot module")?;
        m.load_phys(pos, &md.data);
        mods.push((pos, pos + md.data.len() as u64));
        pos += md.data.len() as u64;
    }
    pos = (pos + 0xfff) & !0xfff;
    let base = pos;
    let mut blob: Vec<u8> = Vec::new();
    let put_str = |blob: &mut Vec<u8>, s: &str| -> u64 {
        let addr = base + blob.len() as u64;
        blob.extend_from_slice(s.as_bytes());
        blob.push(0);
        addr
    };
    // The boot GDT first (32 bytes), then strings, module list, map, info.
    blob.extend_from_slice(&[0u8; 32]);
    let cmd_addr = put_str(&mut blob, cmdline);
    let name_addr = put_str(&mut blob, "nestemu");
    let mod_strings: Vec<u64> = modules
        .iter()
        .map(|md| put_str(&mut blob, &md.string))
        .collect();
    while !blob.len().is_multiple_of(8) {
        blob.push(0);
    }
    let mods_addr = base + blob.len() as u64;
    for (k, (s, e)) in mods.iter().enumerate() {
        for v in [*s as u32, *e as u32, mod_strings[k] as u32, 0] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
    }
    let map = m.ram.map;
    let mut regions: Vec<(u64, u64, u32)> = vec![
        (0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0xf0000, 0x10000, 2),
        (0x10_0000, map.low.saturating_sub(0x10_0000), 1),
    ];
    if map.high > 0 {
        regions.push((HIGH_RAM_BASE, map.high, 1));
    }
    let mmap_addr = base + blob.len() as u64;
    for (b, l, t) in &regions {
        blob.extend_from_slice(&20u32.to_le_bytes());
        blob.extend_from_slice(&b.to_le_bytes());
        blob.extend_from_slice(&l.to_le_bytes());
        blob.extend_from_slice(&t.to_le_bytes());
    }
    let mmap_len = base + blob.len() as u64 - mmap_addr;
    while !blob.len().is_multiple_of(8) {
        blob.push(0);
    }
    let info_addr = base + blob.len() as u64;
    let mut info = [0u32; 22];
    info[0] = 1 | 1 << 2 | 1 << 3 | 1 << 6 | 1 << 9;
    info[1] = 639;
    info[2] = (map.low.saturating_sub(0x10_0000) / 1024) as u32;
    info[4] = cmd_addr as u32;
    info[5] = modules.len() as u32;
    info[6] = mods_addr as u32;
    info[11] = mmap_len as u32;
    info[12] = mmap_addr as u32;
    info[16] = name_addr as u32;
    for v in info {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    check_ram(
        m,
        base,
        blob.len() as u64,
        "the Multiboot information block",
    )?;
    if base + blob.len() as u64 > u32::MAX as u64 {
        return Err(LoadError(
            "the Multiboot information block would lie above 4 GiB".into(),
        ));
    }
    m.load_phys(base, &blob);
    Ok((info_addr, base))
}

/// Hands the loaded image to fw_cfg as QEMU's Multiboot loader does (the
/// kernel address, size, entry and data items; hw/i386/multiboot.c). The
/// image's trailing zeros (BSS) are not stored, only counted.
fn record_kernel(m: &mut Machine, k: &Loaded) {
    let len = k.end.saturating_sub(k.start);
    let mut data = vec![0u8; len.min(64 << 20) as usize];
    m.peek_phys(k.start, &mut data);
    let used = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    data.truncate(used);
    m.dev
        .fw_cfg
        .set_kernel(k.start as u32, k.entry as u32, &data, len);
}

/// Loads a Multiboot kernel with its command line and modules and puts the CPU
/// at its entry. `cmdline` is the whole command line ("<kernel> <append>").
pub fn boot(
    m: &mut Machine,
    image: &[u8],
    cmdline: &str,
    modules: &[Module],
) -> Result<Loaded, LoadError> {
    let k = load_kernel(m, image)?;
    record_kernel(m, &k);
    let (info, gdt) = write_info(m, k.end, cmdline, modules)?;
    m.enter_protected_flat(k.entry, gdt);
    m.cpu.gpr[0] = BOOTLOADER_MAGIC as u64;
    m.cpu.gpr[3] = info;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&(0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags)).to_le_bytes());
        v
    }

    #[test]
    fn finds_aligned_header_only() {
        let mut img = vec![0u8; 64];
        img.extend(header(0));
        assert_eq!(find_header(&img).map(|h| h.offset), Some(64));
        let mut bad = vec![0u8; 2];
        bad.extend(header(0));
        assert_eq!(find_header(&bad), None);
    }

    #[test]
    fn aout_kludge_loads_and_zeroes_bss() {
        let mut img = header(FLAG_AOUT_KLUDGE);
        for v in [0x10_0000u32, 0x10_0000, 0, 0x10_2000, 0x10_0020] {
            img.extend_from_slice(&v.to_le_bytes());
        }
        img.resize(0x40, 0x90);
        let mut m = Machine::new(crate::machine::MachineConfig {
            mem_bytes: 4 << 20,
            ..Default::default()
        });
        m.load_phys(0x10_1000, &[0xaa; 16]);
        let k = load_kernel(&mut m, &img).expect("loads");
        assert_eq!(k.entry, 0x10_0020);
        assert_eq!(k.end, 0x10_2000);
        let mut b = [0u8; 1];
        m.peek_phys(0x10_1000, &mut b);
        assert_eq!(b[0], 0, "BSS is zeroed");
        m.peek_phys(0x10_0030, &mut b);
        assert_eq!(b[0], 0x90);
    }

    /// An ELF64 Multiboot kernel with one PT_LOAD segment of `code` at
    /// `paddr`, linked at `vaddr`, entered at `entry`.
    fn elf64(paddr: u64, vaddr: u64, memsz: u64, entry: u64, code: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 0x200];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = 2; // ELFCLASS64
        v[5] = 1; // little-endian
        v[6] = 1;
        let put = |v: &mut Vec<u8>, at: usize, x: u64, n: usize| {
            v[at..at + n].copy_from_slice(&x.to_le_bytes()[..n]);
        };
        put(&mut v, 16, 2, 2); // ET_EXEC
        put(&mut v, 18, 0x3e, 2); // x86-64
        put(&mut v, 20, 1, 4);
        put(&mut v, 24, entry, 8);
        put(&mut v, 32, 64, 8); // e_phoff
        put(&mut v, 52, 64, 2);
        put(&mut v, 54, 56, 2);
        put(&mut v, 56, 1, 2);
        put(&mut v, 64, 1, 4); // PT_LOAD
        put(&mut v, 64 + 8, 0x200, 8); // p_offset
        put(&mut v, 64 + 16, vaddr, 8);
        put(&mut v, 64 + 24, paddr, 8);
        put(&mut v, 64 + 32, code.len() as u64, 8);
        put(&mut v, 64 + 40, memsz, 8);
        v[0x100..0x10c].copy_from_slice(&header(0));
        v.extend_from_slice(code);
        v
    }

    /// Found by the `cli` fuzz target: a segment linked at the top of the
    /// 64-bit address space overflowed the entry-point lookup.
    #[test]
    fn a_segment_linked_at_the_top_of_the_address_space_loads() {
        let img = elf64(0x10_0000, u64::MAX - 0xfff, 0x2000, 0x5000, &[0xf4]);
        let mut m = Machine::new(crate::machine::MachineConfig {
            mem_bytes: 4 << 20,
            ..Default::default()
        });
        let k = load_kernel(&mut m, &img).expect("loads");
        assert_eq!(k.entry, 0x5000, "an entry in no segment stays as given");
        // Linked high, entered through its virtual address.
        let img = elf64(
            0x10_0000,
            u64::MAX - 0xfff,
            0x1000,
            u64::MAX - 0xff,
            &[0xf4],
        );
        let k = load_kernel(&mut m, &img).expect("loads");
        assert_eq!(k.entry, 0x10_0f00);
    }

    /// Found by the `cli` fuzz target: a program-header offset near the
    /// top of the address space overflowed the header reads.
    #[test]
    fn a_program_header_offset_past_the_file_is_an_error() {
        let mut img = elf64(0x10_0000, 0x10_0000, 0x1000, 0x10_0000, &[0xf4]);
        img[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        let mut m = Machine::new(crate::machine::MachineConfig {
            mem_bytes: 4 << 20,
            ..Default::default()
        });
        let e = load_kernel(&mut m, &img).expect_err("refused");
        assert!(e.0.contains("truncated ELF"), "{}", e.0);
    }

    #[test]
    fn boot_builds_info() {
        let mut img = header(FLAG_AOUT_KLUDGE);
        for v in [0x10_0000u32, 0x10_0000, 0, 0, 0x10_0000] {
            img.extend_from_slice(&v.to_le_bytes());
        }
        let mut m = Machine::new(crate::machine::MachineConfig {
            mem_bytes: 8 << 20,
            ..Default::default()
        });
        let mods = [Module {
            string: "env".into(),
            data: b"A=1\n".to_vec(),
        }];
        boot(&mut m, &img, "kernel.elf arg", &mods).expect("boots");
        assert_eq!(m.cpu.gpr[0], BOOTLOADER_MAGIC as u64);
        let info = m.cpu.gpr[3];
        let mut w = [0u8; 4];
        let rd = |m: &Machine, a: u64| {
            let mut b = [0u8; 4];
            m.peek_phys(a, &mut b);
            u32::from_le_bytes(b)
        };
        m.peek_phys(info, &mut w);
        assert_eq!(u32::from_le_bytes(w) & (1 << 6), 1 << 6);
        assert_eq!(rd(&m, info + 8), (8 << 10) - 1024);
        assert_eq!(rd(&m, info + 20), 1);
        let mods_addr = rd(&m, info + 24) as u64;
        let start = rd(&m, mods_addr) as u64;
        let mut data = [0u8; 4];
        m.peek_phys(start, &mut data);
        assert_eq!(&data, b"A=1\n");
        let cmd = rd(&m, info + 16) as u64;
        let mut s = [0u8; 14];
        m.peek_phys(cmd, &mut s);
        assert_eq!(&s, b"kernel.elf arg");
    }
}
