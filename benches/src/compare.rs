//! Running the workloads' images on other emulators: QEMU (TCG) through its
//! Multiboot `-kernel` loader, Bochs from a disk image whose boot sector (the
//! project's own, [`bochs_disk`]) loads the Multiboot image as a Multiboot
//! loader would.
//!
//! Host seconds are the emulator process's wall time minus the time the same
//! emulator takes for an empty program (start-up, firmware, exit), measured
//! in the same run. Guest instruction and exit counts are nestemu's for the
//! same image: the programs are deterministic and take the same path on
//! every correct CPU.

use iced_x86::code_asm::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Where the boot sector reads the image to (real mode, below 640 KiB).
const STAGE: u64 = 0x1_0000;
/// Largest image the boot sector loads.
pub const MAX_IMAGE: usize = 0x8_0000;
/// Sectors read per BIOS call.
const CHUNK_SECTORS: u64 = 64;
/// Boot-sector data: disk address packet, GDT, GDTR, Multiboot info.
const DAP: u64 = 0x7d00;
const GDT: u64 = 0x7d20;
const GDTR: u64 = 0x7d40;
const PM32: u64 = 0x7d80;
const MBI: u64 = 0x7e00;

/// The a.out-kludge fields of a Multiboot v1 header.
#[derive(Clone, Copy, Debug)]
struct Header {
    offset: usize,
    header_addr: u32,
    load_addr: u32,
    load_end: u32,
    bss_end: u32,
    entry: u32,
}

fn header(image: &[u8]) -> Result<Header, String> {
    let word = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().expect("4 bytes"));
    let offset = (0..image.len().min(8192).saturating_sub(32))
        .step_by(4)
        .find(|&o| word(o) == 0x1bad_b002)
        .ok_or("no Multiboot header")?;
    if word(offset + 4) & (1 << 16) == 0 {
        return Err("the Multiboot header has no address fields".into());
    }
    Ok(Header {
        offset,
        header_addr: word(offset + 12),
        load_addr: word(offset + 16),
        load_end: word(offset + 20),
        bss_end: word(offset + 24),
        entry: word(offset + 28),
    })
}

/// A flat hard-disk image (16 heads, 63 sectors per track) for Bochs: a
/// boot sector that reads the Multiboot image with BIOS INT 13H extended
/// reads, enables A20, enters 32-bit protected mode with flat segments,
/// copies the image to its load address, clears its BSS and jumps to its
/// entry with EAX = 2BADB002H and EBX pointing at an empty Multiboot info
/// structure (Multiboot spec 0.6.96, 3.2 "Machine state"). Returns the image
/// and its cylinder count.
pub fn bochs_disk(image: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let h = header(image)?;
    let start = h.offset - (h.header_addr - h.load_addr) as usize;
    let load_len = if h.load_end == 0 {
        image.len() - start
    } else {
        (h.load_end - h.load_addr) as usize
    };
    let load_end = h.load_addr as u64 + load_len as u64;
    let bss_len = if h.bss_end == 0 {
        0
    } else {
        h.bss_end as u64 - load_end
    };
    if load_len > MAX_IMAGE {
        return Err(format!("image of {load_len} bytes is over {MAX_IMAGE}"));
    }
    let sectors = (load_len as u64).div_ceil(512);
    let chunks = sectors.div_ceil(CHUNK_SECTORS);
    let boot16 = boot16(chunks).map_err(|e| e.to_string())?;
    let pm32 = pm32(h.load_addr as u64, load_len as u64, bss_len, h.entry as u64)
        .map_err(|e| e.to_string())?;
    let mut sector = vec![0u8; 512];
    sector[..boot16.len()].copy_from_slice(&boot16);
    let put = |s: &mut Vec<u8>, at: u64, b: &[u8]| {
        let o = (at - 0x7c00) as usize;
        s[o..o + b.len()].copy_from_slice(b);
    };
    // Disk address packet: 16 bytes, CHUNK_SECTORS sectors to STAGE, LBA 1.
    let mut dap = vec![0x10u8, 0];
    dap.extend_from_slice(&(CHUNK_SECTORS as u16).to_le_bytes());
    dap.extend_from_slice(&0u16.to_le_bytes());
    dap.extend_from_slice(&((STAGE >> 4) as u16).to_le_bytes());
    dap.extend_from_slice(&1u64.to_le_bytes());
    put(&mut sector, DAP, &dap);
    let gdt: Vec<u8> = [0u64, 0x00cf_9a00_0000_ffff, 0x00cf_9200_0000_ffff]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    put(&mut sector, GDT, &gdt);
    let mut gdtr = 23u16.to_le_bytes().to_vec();
    gdtr.extend_from_slice(&(GDT as u32).to_le_bytes());
    put(&mut sector, GDTR, &gdtr);
    put(&mut sector, PM32, &pm32);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    let mut disk = sector;
    disk.extend_from_slice(&image[start..start + load_len]);
    let track = 16 * 63 * 512;
    let cylinders = (disk.len() as u64).div_ceil(track).max(1);
    disk.resize((cylinders * track) as usize, 0);
    Ok((disk, cylinders))
}

/// The real-mode part: read `chunks` chunks to STAGE, A20, protected mode.
fn boot16(chunks: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(16)?;
    let mut read = a.create_label();
    let mut hang = a.create_label();
    a.cli()?;
    a.xor(ax, ax)?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(ss, ax)?;
    a.mov(sp, 0x7c00u32)?;
    a.sti()?;
    a.mov(cx, chunks as u32)?;
    a.set_label(&mut read)?;
    a.push(cx)?;
    a.push(dx)?;
    a.mov(si, DAP as u32)?;
    a.mov(ah, 0x42u32)?;
    a.int(0x13u32)?;
    a.jc(hang)?;
    a.pop(dx)?;
    a.pop(cx)?;
    a.add(word_ptr(DAP + 6), (CHUNK_SECTORS * 512 / 16) as u32)?;
    a.add(dword_ptr(DAP + 8), CHUNK_SECTORS as u32)?;
    a.dec(cx)?;
    a.jnz(read)?;
    a.cli()?;
    a.in_(al, 0x92u32)?;
    a.or(al, 2u32)?;
    a.and(al, 0xfeu32)?;
    a.out(0x92u32, al)?;
    a.lgdt(ptr(GDTR))?;
    a.mov(eax, cr0)?;
    a.or(eax, 1u32)?;
    a.mov(cr0, eax)?;
    // JMP FAR 08H:PM32 with a 32-bit offset.
    a.db(&[0x66, 0xea])?;
    a.dd(&[PM32 as u32])?;
    a.dw(&[0x08])?;
    a.set_label(&mut hang)?;
    a.hlt()?;
    a.jmp(hang)?;
    a.assemble(0x7c00)
}

/// The protected-mode part: segments, copy, BSS, Multiboot entry.
fn pm32(load: u64, len: u64, bss: u64, entry: u64) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    a.mov(ax, 0x10u32)?;
    for s in [ds, es, ss, fs, gs] {
        a.mov(s, ax)?;
    }
    a.mov(esp, 0x7c00u32)?;
    a.cld()?;
    a.mov(esi, STAGE as u32)?;
    a.mov(edi, load as u32)?;
    a.mov(ecx, len as u32)?;
    a.rep().movsb()?;
    a.xor(eax, eax)?;
    a.mov(ecx, bss as u32)?;
    a.rep().stosb()?;
    a.mov(edi, MBI as u32)?;
    a.mov(ecx, 128u32)?;
    a.rep().stosb()?;
    a.mov(ebx, MBI as u32)?;
    a.mov(eax, 0x2bad_b002u32)?;
    a.mov(ecx, entry as u32)?;
    a.jmp(ecx)?;
    a.assemble(PM32)
}

/// An emulator run: the host CPU seconds (user and system, every thread) it
/// took, or why it did not run.
pub type Timed = Result<f64, String>;

/// Host CPU seconds (user and system) of the children this process has
/// waited for so far (POSIX `getrusage(RUSAGE_CHILDREN)`).
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed value it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The longest an emulator may run one workload.
const LIMIT_SECS: f64 = 60.0;

fn timed(mut c: Command, ok: impl Fn(&str) -> bool) -> Timed {
    let dir = std::env::temp_dir();
    let log = dir.join(format!("nestemu-compare-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    c.stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file);
    let start = Instant::now();
    let cpu_before = children_cpu_seconds();
    let mut child = c.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if start.elapsed().as_secs_f64() > LIMIT_SECS {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    // Host CPU time, not wall time: the machine the comparison runs on may
    // be shared, and wall time then moves by 3x between runs while CPU
    // time stays within a few percent. The child has been waited for, so
    // its time is in the children's total.
    let secs = children_cpu_seconds() - cpu_before;
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match status {
        None => Err(format!("no end within {LIMIT_SECS} s")),
        Some(s) if ok(&format!("status {:?}\n{out}", s.code())) => Ok(secs),
        Some(s) => {
            let tail: Vec<&str> = out.lines().rev().take(2).collect();
            Err(format!("status {:?}: {}", s.code(), tail.join(" | ")))
        }
    }
}

/// Runs a Multiboot image on QEMU TCG (`svm` selects a CPU with AMD-V).
pub fn qemu(qemu: &Path, image: &Path, svm: bool) -> Timed {
    let mut c = Command::new(qemu);
    c.args([
        "-accel",
        "tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-no-reboot",
    ]);
    c.args(["-serial", "null", "-monitor", "none"]);
    c.args([
        "-cpu",
        if svm {
            "EPYC,+svm,+npt,+nrip-save"
        } else {
            "max"
        },
    ]);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    c.arg("-kernel").arg(image);
    // isa-debug-exit status 1: the guest wrote 0.
    timed(c, |o| o.starts_with("status Some(1)\n"))
}

/// Runs a disk image made by [`bochs_disk`] on Bochs (`svm`: an AMD model
/// with AMD-V, else an Intel model with VT-x and EPT).
///
/// Debian's Bochs 2.7 has no `nogui` display and stops in its debugger
/// before the first instruction: the `rfb` display with no connection
/// timeout runs headless, and the debugger's command file says `c`
/// (continue). The workloads end by writing "Shutdown" to port 8900H, which
/// Bochs' unmapped-port device turns into a panic ("Shutdown port: shutdown
/// requested") that ends the simulation; the log file is where Bochs says so.
pub fn bochs(bochs: &Path, dir: &Path, disk: &Path, cylinders: u64, svm: bool) -> Timed {
    let rc = dir.join("bochsrc.txt");
    let log = dir.join("bochs.log");
    let _ = std::fs::remove_file(&log);
    let model = if svm { "ryzen" } else { "corei7_skylake_x" };
    let text = format!(
        "megs: 256\n\
         cpu: model={model}, count=1, reset_on_triple_fault=0\n\
         romimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
         vgaromimage: file=/usr/share/vgabios/vgabios.bin\n\
         ata0-master: type=disk, path=\"{}\", mode=flat, cylinders={cylinders}, heads=16, spt=63\n\
         boot: disk\n\
         clock: sync=none\n\
         display_library: rfb, options=\"timeout=0\"\n\
         log: {}\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=report\n\
         debug: action=ignore\n",
        disk.display(),
        log.display()
    );
    std::fs::write(&rc, text).map_err(|e| e.to_string())?;
    let cmds = dir.join("bochs-commands.txt");
    std::fs::write(&cmds, "c\nquit\n").map_err(|e| e.to_string())?;
    let mut c = Command::new(bochs);
    c.arg("-q").arg("-f").arg(&rc).arg("-rc").arg(&cmds);
    // Bochs ends through its shutdown port; a triple fault or a hang is a
    // failure.
    let t = timed(c, |_| true)?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if text.contains("Shutdown port: shutdown requested") {
        Ok(t)
    } else {
        let tail: Vec<&str> = text.lines().rev().take(2).collect();
        Err(format!("no shutdown: {}", tail.join(" | ")))
    }
}

/// The number of instructions Bochs reports at its shutdown (the tick count
/// of the panic line; one tick per instruction with Bochs' defaults), from
/// the log [`bochs`] leaves in `dir`: a check that Bochs ran the same path.
pub fn bochs_ticks(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("bochs.log")).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains(">>PANIC<< Shutdown port"))?;
    line.get(..11)?.parse().ok()
}
