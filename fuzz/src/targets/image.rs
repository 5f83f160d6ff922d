//! Decoding kernel images from an input: Multiboot a.out-kludge images,
//! ELF32 and ELF64 files with a Multiboot header, random bytes around a
//! header, or raw bytes. Fields are mostly plausible (so the loader gets
//! past its first checks) and sometimes hostile: sizes past the file,
//! segments past RAM or wrapping the address space, overlapping segments,
//! program-header tables out of bounds.

use crate::source::Source;

/// The Multiboot header magic.
pub const MAGIC: u32 = 0x1bad_b002;
/// The a.out kludge flag.
pub const AOUT: u32 = 1 << 16;

/// Code a loaded kernel may run: an exit, a halt, a loop, a string
/// operation, or random bytes.
pub fn code(src: &mut Source) -> Vec<u8> {
    match src.below(8) {
        // mov eax, imm; out 0xf4, eax
        0 => {
            let mut c = vec![0xb8];
            c.extend_from_slice(&(src.u8() as u32 % 8).to_le_bytes());
            c.extend_from_slice(&[0xe7, 0xf4]);
            c
        }
        1 => vec![0xf4],       // hlt
        2 => vec![0xfa, 0xf4], // cli; hlt
        3 => vec![0xeb, 0xfe], // jmp $
        4 => {
            // mov edi, imm; mov ecx, imm; rep stosb; jmp $
            let mut c = vec![0xbf];
            c.extend_from_slice(&src.u32().to_le_bytes());
            c.push(0xb9);
            c.extend_from_slice(&src.u32().to_le_bytes());
            c.extend_from_slice(&[0xf3, 0xaa, 0xeb, 0xfe]);
            c
        }
        5 => vec![0x8b, 0x03, 0x8b, 0x4b, 0x04, 0xcc], // read the info block, int3
        _ => {
            let n = src.below(64) as usize;
            src.bytes(n)
        }
    }
}

/// A 32-bit address for an image field: the usual 1 MiB, somewhere in
/// RAM, near its end, or hostile.
pub fn addr32(src: &mut Source, ram: u64) -> u32 {
    let ram = ram.clamp(1, u32::MAX as u64);
    match src.below(8) {
        0..=2 => 0x10_0000 + 0x1000 * src.below(16) as u32,
        3 => src.below(ram) as u32 & !0xfff,
        4 => (ram as u32).wrapping_sub(src.below(0x4000) as u32),
        5 => src.interesting_u64() as u32,
        _ => src.u32(),
    }
}

/// A length: small, page-sized, around RAM size, or hostile.
pub fn len(src: &mut Source, ram: u64) -> u64 {
    match src.below(8) {
        0..=3 => src.below(0x2000),
        4 => 0x1000 * src.below(64),
        5 => ram.wrapping_add(src.below(0x2000)).wrapping_sub(0x1000),
        _ => src.interesting_u64(),
    }
}

/// A Multiboot header: magic, flags, checksum (usually right), the a.out
/// fields when asked, and the video fields.
pub fn header(src: &mut Source, flags: u32, aout: Option<[u32; 5]>) -> Vec<u8> {
    let sum = if src.chance(1, 16) {
        src.u32()
    } else {
        0u32.wrapping_sub(MAGIC).wrapping_sub(flags)
    };
    let mut h = Vec::new();
    for w in [MAGIC, flags, sum] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    for w in aout.unwrap_or_default() {
        h.extend_from_slice(&w.to_le_bytes());
    }
    if src.chance(1, 4) {
        for _ in 0..4 {
            h.extend_from_slice(&src.u32().to_le_bytes());
        }
    }
    h
}

/// Flags: the a.out bit as asked, the supported low bits, rarely others.
fn flags(src: &mut Source, aout: bool) -> u32 {
    let mut f = src.u8() as u32 & 7;
    if aout {
        f |= AOUT;
    }
    if src.chance(1, 16) {
        f ^= 1 << src.below(32);
    }
    f
}

/// An a.out-kludge image.
fn aout(src: &mut Source, ram: u64) -> Vec<u8> {
    let offset = if src.chance(3, 4) {
        0
    } else {
        4 * src.below(2100) as usize
    };
    let load = addr32(src, ram);
    let header_addr = if src.chance(7, 8) {
        load.wrapping_add(offset as u32)
    } else {
        addr32(src, ram)
    };
    let body = code(src);
    let file_len = offset as u64 + 48 + body.len() as u64;
    let load_end = match src.below(4) {
        0 => 0,
        1 => load.wrapping_add(file_len as u32),
        _ => load.wrapping_add(len(src, ram) as u32),
    };
    let bss_end = match src.below(4) {
        0 | 1 => 0,
        2 => load_end.wrapping_add(len(src, ram) as u32),
        _ => addr32(src, ram),
    };
    let entry = match src.below(4) {
        0..=2 => header_addr.wrapping_add(48),
        _ => addr32(src, ram),
    };
    let f = flags(src, true);
    let mut img = vec![0u8; offset];
    let mut h = header(src, f, Some([header_addr, load, load_end, bss_end, entry]));
    h.resize(48, 0);
    img.extend(h);
    img.extend(body);
    if src.chance(1, 4) {
        let n = len(src, ram).min(1 << 20) as usize;
        img.resize(img.len() + n, 0);
    }
    img
}

/// One program header: type, offset, vaddr, paddr, filesz, memsz.
type Ph = [u64; 6];

/// An ELF32 or ELF64 image with a Multiboot header after the tables.
fn elf(src: &mut Source, ram: u64, is64: bool) -> Vec<u8> {
    let (ehsize, phsize) = if is64 { (64u64, 56u64) } else { (52, 32) };
    let phnum = match src.below(8) {
        0 => 0,
        1..=5 => 1 + src.below(3),
        6 => src.below(64),
        _ => src.u16() as u64,
    };
    let shown_phnum = phnum.min(64);
    let body = code(src);
    let data_off = ehsize + phsize * shown_phnum + 48;
    let mut phs: Vec<Ph> = Vec::new();
    for _ in 0..shown_phnum {
        let typ = if src.chance(7, 8) {
            1
        } else {
            src.u32() as u64
        };
        let paddr = if is64 && src.chance(1, 8) {
            src.interesting_u64()
        } else {
            addr32(src, ram) as u64
        };
        let vaddr = match src.below(4) {
            0 => paddr.wrapping_add(0xffff_8000_0000_0000),
            1 => src.interesting_u64(),
            _ => paddr,
        };
        let (offset, filesz) = match src.below(4) {
            0 | 1 => (data_off, body.len() as u64),
            2 => (0, data_off + body.len() as u64),
            _ => (len(src, ram), len(src, ram)),
        };
        let memsz = match src.below(4) {
            0 | 1 => filesz,
            2 => filesz.wrapping_add(len(src, ram)),
            _ => len(src, ram),
        };
        phs.push([typ, offset, vaddr, paddr, filesz, memsz]);
    }
    let entry = match (src.below(4), phs.first()) {
        (0 | 1, Some(p)) => p[2].wrapping_add(src.below(16)),
        (2, Some(p)) => p[3],
        _ => src.interesting_u64(),
    };
    let phoff = if src.chance(7, 8) {
        ehsize
    } else {
        len(src, ram)
    };
    let phentsize = if src.chance(7, 8) {
        phsize
    } else {
        src.u16() as u64
    };
    let mut img = Vec::new();
    img.extend_from_slice(b"\x7fELF");
    img.push(if is64 { 2 } else { 1 });
    img.push(if src.chance(15, 16) { 1 } else { 2 });
    img.push(1);
    img.resize(16, 0);
    let machine: u16 = if src.chance(15, 16) {
        if is64 {
            62
        } else {
            3
        }
    } else {
        src.u16()
    };
    let put = |img: &mut Vec<u8>, v: u64, n: usize| img.extend_from_slice(&v.to_le_bytes()[..n]);
    let w = if is64 { 8 } else { 4 };
    put(&mut img, 2, 2); // e_type EXEC
    put(&mut img, machine as u64, 2);
    put(&mut img, 1, 4);
    put(&mut img, entry, w);
    put(&mut img, phoff, w);
    put(&mut img, 0, w); // e_shoff
    put(&mut img, 0, 4); // e_flags
    put(&mut img, ehsize, 2);
    put(&mut img, phentsize, 2);
    put(&mut img, phnum, 2);
    put(&mut img, 0, 6);
    img.resize(ehsize as usize, 0);
    for p in &phs {
        let [typ, offset, vaddr, paddr, filesz, memsz] = *p;
        put(&mut img, typ, 4);
        if is64 {
            put(&mut img, 7, 4); // p_flags
            for v in [offset, vaddr, paddr, filesz, memsz, 0x1000] {
                put(&mut img, v, 8);
            }
        } else {
            for v in [offset, vaddr, paddr, filesz, memsz, 7, 0x1000] {
                put(&mut img, v, 4);
            }
        }
    }
    let with_aout = src.chance(1, 16);
    let f = flags(src, with_aout);
    let aout_fields = if f & AOUT != 0 {
        Some([src.u32(), src.u32(), src.u32(), src.u32(), src.u32()])
    } else {
        None
    };
    let mut h = header(src, f, aout_fields);
    h.resize(48, 0);
    img.extend(h);
    img.extend(body);
    if src.chance(1, 4) {
        let n = len(src, ram).min(1 << 20) as usize;
        img.resize(img.len() + n, 0);
    }
    img
}

/// Random bytes with a Multiboot header at a random aligned offset.
fn noise(src: &mut Source) -> Vec<u8> {
    let n = src.below(9000) as usize;
    let mut img = src.bytes(n);
    img.resize(n, 0);
    let off = (4 * src.below(2100) as usize).min(img.len());
    let f = src.u32();
    let aout = (f & AOUT != 0).then(|| [src.u32(), src.u32(), src.u32(), src.u32(), src.u32()]);
    let h = header(src, f, aout);
    let end = (off + h.len()).min(img.len());
    img[off..end].copy_from_slice(&h[..end - off]);
    img
}

/// Decodes a kernel image for a machine of `ram` bytes.
pub fn decode(src: &mut Source, ram: u64) -> Vec<u8> {
    match src.below(16) {
        0..=5 => aout(src, ram),
        6..=9 => elf(src, ram, false),
        10..=12 => elf(src, ram, true),
        13 | 14 => noise(src),
        _ => {
            let n = src.below(4096) as usize;
            src.bytes(n)
        }
    }
}
