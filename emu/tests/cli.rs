//! The command-line contract, end to end through the `nestemu` binary: bad
//! input gets one clear line on stderr and exit status 2; guests' exit values
//! map to `(v << 1) | 1`; runs are deterministic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn nestemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestemu"))
        .args(args)
        .output()
        .expect("the nestemu binary runs")
}

fn tmp(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nestemu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Asserts status 2 and a single stderr line containing `needle`.
fn bad_input(args: &[&str], needle: &str) {
    let o = nestemu(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(
        err.contains(needle),
        "stderr {err:?} should mention {needle:?}"
    );
    assert!(o.stdout.is_empty(), "nothing on stdout for bad input");
}

/// A Multiboot header with the a.out kludge, loading the file at `load`.
fn aout_kernel(load: u32, code: &[u8]) -> Vec<u8> {
    let magic = 0x1bad_b002u32;
    let flags = 1u32 << 16;
    let mut v = Vec::new();
    for w in [
        magic,
        flags,
        0u32.wrapping_sub(magic).wrapping_sub(flags),
        load,
        load,
        0,
        0,
        load + 32,
    ] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(code);
    v
}

/// Writes EAX to port 0xf4: `mov eax, imm32; out 0xf4, eax`.
fn exit_code(v: u32) -> Vec<u8> {
    let mut c = vec![0xb8];
    c.extend_from_slice(&v.to_le_bytes());
    c.extend_from_slice(&[0xe7, 0xf4]);
    c
}

#[test]
fn missing_file() {
    bad_input(
        &["run", "--kernel", "/nonexistent/kernel.elf"],
        "cannot read kernel",
    );
}

#[test]
fn empty_file() {
    let p = tmp("empty.bin", b"");
    bad_input(&["run", "--kernel", p.to_str().unwrap()], "empty");
}

#[test]
fn no_multiboot_header() {
    let p = tmp("plain.bin", &[0x90; 4096]);
    bad_input(
        &["run", "--kernel", p.to_str().unwrap()],
        "no Multiboot header",
    );
}

#[test]
fn truncated_elf() {
    // A Multiboot header without the a.out flag, in an ELF cut after its header.
    let magic = 0x1bad_b002u32;
    let mut v = b"\x7fELF\x01\x01\x01\0".to_vec();
    v.resize(0x34, 0);
    v[18] = 3; // EM_386
    v[28..32].copy_from_slice(&0x1000u32.to_le_bytes()); // e_phoff beyond the end
    v[42] = 32; // e_phentsize
    v[44] = 1; // e_phnum
    for w in [magic, 0, 0u32.wrapping_sub(magic)] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    let p = tmp("truncated.elf", &v);
    bad_input(&["run", "--kernel", p.to_str().unwrap()], "truncated ELF");
}

#[test]
fn segments_outside_ram() {
    let p = tmp("high.bin", &aout_kernel(0x4000_0000, &exit_code(0)));
    bad_input(
        &["run", "--kernel", p.to_str().unwrap(), "--mem", "16"],
        "outside RAM",
    );
}

#[test]
fn zero_memory() {
    let p = tmp("k0.bin", &aout_kernel(0x10_0000, &exit_code(0)));
    bad_input(
        &["run", "--kernel", p.to_str().unwrap(), "--mem", "0"],
        "--mem",
    );
}

#[test]
fn unknown_flag() {
    bad_input(
        &["run", "--kernel", "k", "--frobnicate"],
        "unknown option '--frobnicate'",
    );
}

#[test]
fn unknown_cpu_and_bad_number() {
    bad_input(
        &["run", "--kernel", "k", "--cpu", "z80"],
        "unknown CPU model",
    );
    bad_input(
        &["run", "--kernel", "k", "--max-insns", "many"],
        "needs a number",
    );
}

#[test]
fn debug_exit_status() {
    for (v, status) in [(0u32, 1), (1, 3), (38, 77), (63, 127)] {
        let p = tmp(
            &format!("exit{v}.bin"),
            &aout_kernel(0x10_0000, &exit_code(v)),
        );
        let o = nestemu(&["run", "--kernel", p.to_str().unwrap(), "--mem", "8"]);
        assert_eq!(o.status.code(), Some(status), "value {v}");
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn instruction_limit_and_triple_fault() {
    // jmp $ forever: the limit ends it with 124.
    let p = tmp("spin.bin", &aout_kernel(0x10_0000, &[0xeb, 0xfe]));
    let o = nestemu(&[
        "run",
        "--kernel",
        p.to_str().unwrap(),
        "--mem",
        "8",
        "--max-insns",
        "1000",
    ]);
    assert_eq!(o.status.code(), Some(124));
    // lidt with a zero limit, then int3: #GP during delivery, #DF, triple fault.
    let mut code = vec![0x0f, 0x01, 0x1d]; // lidt [disp32]
    code.extend_from_slice(&0x10_0100u32.to_le_bytes());
    code.push(0xcc);
    let mut k = aout_kernel(0x10_0000, &code);
    k.resize(0x100 + 6, 0);
    let p = tmp("triple.bin", &k);
    let o = nestemu(&["run", "--kernel", p.to_str().unwrap(), "--mem", "8"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("triple fault"));
}

#[test]
fn serial_and_stats_files_deterministic() {
    // Print "hi" on COM1 then exit 0.
    let mut code = Vec::new();
    for b in *b"hi\n" {
        code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03, 0xb0, b, 0xee]); // mov dx,3f8; mov al,b; out dx,al
    }
    code.extend_from_slice(&exit_code(0));
    let p = tmp("hi.bin", &aout_kernel(0x10_0000, &code));
    let mut outs = Vec::new();
    for n in 0..2 {
        let serial = tmp(&format!("serial{n}.txt"), b"");
        let stats = tmp(&format!("stats{n}.json"), b"");
        let o = nestemu(&[
            "run",
            "--kernel",
            p.to_str().unwrap(),
            "--mem",
            "8",
            "--serial",
            serial.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        outs.push((
            std::fs::read(&serial).unwrap(),
            std::fs::read(&stats).unwrap(),
        ));
    }
    assert_eq!(outs[0].0, b"hi\n");
    assert_eq!(
        outs[0], outs[1],
        "two runs give identical serial output and stats"
    );
    let json: serde_json::Value = serde_json::from_slice(&outs[0].1).unwrap();
    assert!(json["instructions"].as_u64().unwrap() > 5);
    assert!(json["cycles"].as_u64().unwrap() >= json["instructions"].as_u64().unwrap());
}

#[test]
fn help_is_followable() {
    let o = nestemu(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "nestemu run --kernel FILE",
        "--mem",
        "--stats",
        "(v << 1) | 1",
        "124",
    ] {
        assert!(text.contains(needle), "help mentions {needle}");
    }
}

#[test]
fn explain_walk_counts_and_draws() {
    let o = nestemu(&["explain-walk", "--caches", "none"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("24 references: 4 guest, 20 nested"), "{text}");
    let svg = tmp("walk.svg", b"");
    let o = nestemu(&[
        "explain-walk",
        "--caches",
        "none",
        "--guest-levels",
        "5",
        "--nested-levels",
        "5",
        "--nested",
        "npt",
        "--address",
        "0x00ff123456789000",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("35 references: 5 guest, 30 nested"));
    let pic = std::fs::read_to_string(&svg).unwrap();
    assert!(pic.starts_with("<svg") && pic.contains(">35</text>"));
    let o = nestemu(&["explain-walk", "--warm"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Cache hits that spared references"), "{text}");
    bad_input(&["explain-walk", "--nested", "shadow"], "--nested must be");
    bad_input(
        &["explain-walk", "--address", "0x8000000000000"],
        "not canonical",
    );
}

/// An IDT whose every gate leads to UD2: an exception loop that retires no
/// instruction must still end at the instruction limit.
fn exception_loop_kernel() -> Vec<u8> {
    let mut code = vec![0x0f, 0x01, 0x1d]; // lidt [0x100030]
    code.extend_from_slice(&0x10_0030u32.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x0b]); // ud2
    let mut k = aout_kernel(0x10_0000, &code);
    k.resize(0x30, 0);
    k.extend_from_slice(&0x7ffu16.to_le_bytes());
    k.extend_from_slice(&0x10_1000u32.to_le_bytes());
    k.resize(0x40, 0);
    k.extend_from_slice(&[0x0f, 0x0b]); // the handler: ud2 again
    k.resize(0x1000, 0);
    for _ in 0..256 {
        let off = 0x10_0040u32;
        k.extend_from_slice(&(off as u16).to_le_bytes());
        k.extend_from_slice(&0x10u16.to_le_bytes());
        k.extend_from_slice(&[0, 0x8e]);
        k.extend_from_slice(&((off >> 16) as u16).to_le_bytes());
    }
    k
}

#[test]
fn hostile_guests_cannot_escape_the_instruction_limit() {
    let p = tmp("excloop.bin", &exception_loop_kernel());
    let o = nestemu(&[
        "run",
        "--kernel",
        p.to_str().unwrap(),
        "--mem",
        "8",
        "--max-insns",
        "5000",
    ]);
    assert_eq!(
        o.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // REP STOSB with ECX = FFFFFFFFH: 4096 iterations per step.
    let code = [
        0xbf, 0, 0, 0x20, 0, // mov edi, 0x200000
        0xb9, 0xff, 0xff, 0xff, 0xff, // mov ecx, -1
        0x31, 0xc0, // xor eax, eax
        0xf3, 0xaa, // rep stosb
        0xeb, 0xfe,
    ];
    let p = tmp("hugerep.bin", &aout_kernel(0x10_0000, &code));
    let o = nestemu(&[
        "run",
        "--kernel",
        p.to_str().unwrap(),
        "--mem",
        "8",
        "--max-insns",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(124));
}

#[test]
fn hostile_inputs_get_status_2() {
    let k = tmp("small.bin", &aout_kernel(0x10_0000, &exit_code(0)));
    // More RAM than the host can give.
    bad_input(
        &["run", "--kernel", k.to_str().unwrap(), "--mem", "1000000"],
        "cannot allocate",
    );
    // A kernel file bigger than guest RAM is refused before it is read.
    let big = tmp("big.bin", &vec![0u8; 3 << 20]);
    bad_input(
        &["run", "--kernel", big.to_str().unwrap(), "--mem", "2"],
        "more than the",
    );
    // A BSS reaching past RAM.
    let magic = 0x1bad_b002u32;
    let flags = 1u32 << 16;
    let mut v = Vec::new();
    for w in [
        magic,
        flags,
        0u32.wrapping_sub(magic).wrapping_sub(flags),
        0x10_0000,
        0x10_0000,
        0,
        0xffff_f000,
        0x10_0020,
    ] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(&exit_code(0));
    let p = tmp("hugebss.bin", &v);
    bad_input(
        &["run", "--kernel", p.to_str().unwrap(), "--mem", "8"],
        "outside RAM",
    );
}

/// Prints "a".."z" 400 times on COM1, then exits 0.
fn chatty_kernel() -> Vec<u8> {
    let code = [
        0x31, 0xc9, // xor ecx, ecx
        0x66, 0xba, 0xf8, 0x03, // mov dx, 3f8h
        // loop:
        0x89, 0xc8, // mov eax, ecx
        0x24, 0x0f, // and al, 0fh
        0x04, b'a', // add al, 'a'
        0xee, // out dx, al
        0x41, // inc ecx
        0x81, 0xf9, 0x28, 0x28, 0, 0, // cmp ecx, 10280
        0x75, 0xf0, // jne loop
    ];
    let mut c = code.to_vec();
    c.extend_from_slice(&exit_code(0));
    aout_kernel(0x10_0000, &c)
}

fn run_to_files(args: &[&str], tag: &str) -> (Output, Vec<u8>, serde_json::Value) {
    let serial = tmp(&format!("serial-{tag}.txt"), b"");
    let stats = tmp(&format!("stats-{tag}.json"), b"");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--serial",
        serial.to_str().unwrap(),
        "--stats",
        stats.to_str().unwrap(),
    ]);
    let o = nestemu(&all);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).unwrap_or_default()).unwrap_or_default();
    if let Some(m) = json.as_object_mut() {
        m.remove("code_cache");
    }
    (o, std::fs::read(&serial).unwrap(), json)
}

#[test]
fn snapshot_and_resume_continue_the_run_exactly() {
    let k = tmp("chatty.bin", &chatty_kernel());
    let k = k.to_str().unwrap();
    let snap = tmp("mid.snap", b"");
    let snap = snap.to_str().unwrap();
    let (whole, whole_serial, whole_stats) =
        run_to_files(&["run", "--kernel", k, "--mem", "8"], "whole");
    assert_eq!(whole.status.code(), Some(1));
    assert_eq!(whole_serial.len(), 10280);

    // A snapshot in the middle does not disturb the run.
    let (o, serial, stats) = run_to_files(
        &[
            "run",
            "--kernel",
            k,
            "--mem",
            "8",
            "--snapshot",
            snap,
            "--snapshot-at",
            "40000",
        ],
        "with-snapshot",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        (serial.as_slice(), &stats),
        (whole_serial.as_slice(), &whole_stats)
    );

    // Resuming it prints the rest and ends with the same counters.
    let (o, rest, stats) = run_to_files(&["run", "--resume", snap], "resumed");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!rest.is_empty() && rest.len() < whole_serial.len());
    assert_eq!(
        rest.as_slice(),
        &whole_serial[whole_serial.len() - rest.len()..]
    );
    assert_eq!(stats, whole_stats);

    // Stopped by the instruction limit, saved, resumed with no limit.
    let (o, head, _) = run_to_files(
        &[
            "run",
            "--kernel",
            k,
            "--mem",
            "8",
            "--max-insns",
            "25000",
            "--snapshot",
            snap,
        ],
        "limited",
    );
    assert_eq!(o.status.code(), Some(124));
    let (o, tail, stats) =
        run_to_files(&["run", "--resume", snap, "--max-insns", "1000000"], "rest");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!([head, tail].concat(), whole_serial);
    assert_eq!(stats, whole_stats);
}

#[test]
fn bad_snapshots_and_resume_options_get_status_2() {
    let junk = tmp("junk.snap", b"NESTEMU-SNAPSHOT\x01\x00\x00\x00garbage");
    bad_input(&["run", "--resume", junk.to_str().unwrap()], "snapshot");
    let not = tmp("not.snap", b"hello");
    bad_input(
        &["run", "--resume", not.to_str().unwrap()],
        "not a nestemu snapshot",
    );
    bad_input(
        &["run", "--resume", "/nonexistent/x.snap"],
        "cannot read snapshot",
    );
    bad_input(
        &["run", "--resume", not.to_str().unwrap(), "--cpu", "amd"],
        "--cpu cannot be given with --resume",
    );
    bad_input(
        &["run", "--kernel", "k", "--snapshot-at", "5"],
        "--snapshot-at needs --snapshot",
    );
}

/// Issue 8 (3): a guest cannot write outside its RAM into host memory.
/// Writes far past the 8 MiB of RAM, below and above 4 GiB (through a
/// flat 4-GiB segment and 32-bit wraparound), land nowhere: reading the
/// same addresses back does not return what was written, and the run ends
/// with the guest's own exit value.
#[test]
fn guest_writes_outside_ram_reach_no_host_memory() {
    let mut code = Vec::new();
    for addr in [0x0090_0000u32, 0x4000_0000, 0xffff_fff0] {
        code.extend_from_slice(&[0xc6, 0x05]); // mov byte [addr], 0x5a
        code.extend_from_slice(&addr.to_le_bytes());
        code.push(0x5a);
        code.extend_from_slice(&[0x80, 0x3d]); // cmp byte [addr], 0x5a
        code.extend_from_slice(&addr.to_le_bytes());
        code.push(0x5a);
        code.extend_from_slice(&[0x74, 0x07]); // je fail (over the exit below)
    }
    code.extend_from_slice(&exit_code(0)); // every write vanished: status 1
    let fail_at = code.len();
    code.extend_from_slice(&exit_code(1)); // a write stuck: status 3
                                           // Retarget each `je` to `fail_at`.
    let mut at = 0;
    while at + 1 < fail_at {
        if code[at] == 0x74 && code[at + 1] == 0x07 {
            code[at + 1] = (fail_at - (at + 2)) as u8;
            at += 2;
        } else {
            at += 1;
        }
    }
    let p = tmp("outside-ram.bin", &aout_kernel(0x10_0000, &code));
    let o = nestemu(&["run", "--kernel", p.to_str().unwrap(), "--mem", "8"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A change to a snapshot's machine state.
type Edit = dyn Fn(&mut serde_json::Value);

/// Issue 8 (3): a hostile snapshot, well framed (valid checksum) but with a
/// machine state no run produces, is bad input: status 2 and one line.
#[test]
fn hostile_snapshots_get_status_2() {
    let k = tmp("snap-src.bin", &aout_kernel(0x10_0000, &[0xeb, 0xfe]));
    let snap = tmp("good.snap", b"");
    let o = nestemu(&[
        "run",
        "--kernel",
        k.to_str().unwrap(),
        "--mem",
        "2",
        "--max-insns",
        "100",
        "--snapshot",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(124));
    let file = std::fs::read(&snap).unwrap();
    let len = u64::from_le_bytes(file[20..28].try_into().unwrap()) as usize;
    let reseal = |edit: &Edit| {
        let mut v: serde_json::Value = serde_json::from_slice(&file[28..28 + len]).unwrap();
        edit(&mut v);
        let json = serde_json::to_vec(&v).unwrap();
        let mut out = file[..20].to_vec();
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&file[28 + len..file.len() - 8]);
        let sum = out.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        out.extend_from_slice(&sum.to_le_bytes());
        out
    };
    let cases: [(&str, &Edit, &str); 4] = [
        (
            "mode.snap",
            &|v| v["cpu"]["mode"]["code_bits"] = 3.into(),
            "3-bit code",
        ),
        (
            "tlb.snap",
            &|v| v["mmu"]["stlb"]["small"]["ways"] = 0x8000_0000u64.into(),
            "set-associative array",
        ),
        (
            "cycles.snap",
            &|v| v["stats"]["cycles"] = u64::MAX.into(),
            "counter /stats",
        ),
        (
            "ram.snap",
            &|v| v["config"]["mem_bytes"] = (1u64 << 62).into(),
            "RAM",
        ),
    ];
    for (name, edit, needle) in cases {
        let p = tmp(name, &reseal(edit));
        bad_input(&["run", "--resume", p.to_str().unwrap()], needle);
    }
    // The intact file resumes.
    let o = nestemu(&[
        "run",
        "--resume",
        snap.to_str().unwrap(),
        "--max-insns",
        "200",
    ]);
    assert_eq!(o.status.code(), Some(124));
}
