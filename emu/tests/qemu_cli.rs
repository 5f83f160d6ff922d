//! The QEMU-compatible command line through the `nestemu` binary: the probes
//! runners make (`--help`, `-h`, `-device '?'`), the command line
//! kvm-unit-tests' x86/run builds, and each option, accepted or refused.
//! Kernels are kit programs written to temporary files.

use guestkit::checks::print;
use guestkit::platform::{cpuid, fw_cfg_read, inp, out};
use guestkit::{Asm, AsmResult, Program, Rt64};
use iced_x86::code_asm::*;
use std::path::PathBuf;
use std::process::{Command, Output};

fn nestemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestemu"))
        .args(args)
        .output()
        .expect("the nestemu binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nestemu-qemu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A kernel whose 64-bit code is `body`, ending with isa-debug-exit of EDI.
fn kernel(name: &str, body: impl Fn(&mut Asm, &Rt64) -> AsmResult + 'static) -> String {
    let mut p = Program::new();
    p.body64(move |a, rt| {
        body(a, rt)?;
        a.jmp(rt.exit.l)
    });
    let built = p.build().expect("the kernel builds");
    let path = tmp(name);
    std::fs::write(&path, &built.image).unwrap();
    path.to_str().unwrap().to_string()
}

/// A kernel that exits with EAX computed by `value`.
fn exits_with(name: &str, value: impl Fn(&mut Asm) -> AsmResult + 'static) -> String {
    kernel(name, move |a, _| {
        value(a)?;
        a.mov(edi, eax)
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// kvm-unit-tests' x86/run flags (with --no-reboot) for `kernel`.
fn runner(kernel: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--no-reboot",
        "-nodefaults",
        "-global",
        "kvm-pit.lost_tick_policy=discard",
        "-device",
        "pc-testdev",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x4",
        "-vnc",
        "none",
        "-serial",
        "stdio",
        "-device",
        "pci-testdev",
        "-machine",
        "accel=tcg",
        "-kernel",
        kernel,
    ];
    args.extend_from_slice(extra);
    nestemu(&args)
}

/// Status 2 with one stderr line containing `needle`, nothing on stdout.
fn refused(args: &[&str], needle: &str) {
    let o = nestemu(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err:?}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should name {needle:?}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn help_probe_finds_qemu() {
    let o = nestemu(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("QEMU"));
}

#[test]
fn version_probe_parses() {
    for flag in ["-h", "-version", "--version"] {
        let o = nestemu(&[flag]);
        let out = stdout(&o);
        let first = out.lines().next().unwrap_or_default();
        // Runners split the first line on spaces and dots.
        let words: Vec<&str> = first.split(' ').collect();
        assert_eq!(
            &words[..3],
            ["QEMU", "emulator", "version"],
            "{flag}: {first}"
        );
        let v: Vec<u32> = words[3].split('.').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 3, "{first}");
        assert!(first.contains("(nestemu "), "{first}");
    }
}

#[test]
fn device_probe_lists_the_test_devices() {
    for q in ["?", "help"] {
        let o = nestemu(&["-device", q]);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        for line in [
            "name \"isa-debug-exit\", bus ISA",
            "name \"pc-testdev\", bus ISA",
            "name \"pci-testdev\", bus PCI",
        ] {
            assert!(out.contains(line), "{out}");
        }
    }
    let cpus = stdout(&nestemu(&["-cpu", "help"]));
    for m in ["max", "qemu64", "IvyBridge", "Skylake-Server", "x2apic"] {
        assert!(cpus.contains(m), "{cpus}");
    }
    assert!(stdout(&nestemu(&["-machine", "help"])).contains("pc "));
}

#[test]
fn missing_kernel_reads_as_qemu_says_it() {
    // run_tests.sh's premature_failure greps for this wording.
    let o = runner("_NO_FILE_4Uhere_", &["-smp", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("could not load kernel '_NO_FILE_4Uhere_'"));
}

#[test]
fn a_runner_command_line_runs_a_kernel() {
    // Print, use both test devices and fw_cfg, exit with 0.
    let k = kernel("runner.bin", |a, rt| {
        print(a, rt, "hello from the guest\n")?;
        out(a, 0xe0, 4, 0x5a5a_1234)?;
        inp(a, 0xe0, 4)?;
        a.mov(r12, rax)?;
        fw_cfg_read(a, 0x05, 2)?;
        a.shl(rax, 32)?;
        a.or(r12, rax)?;
        guestkit::platform::pci_read32(a, 0x10, 0)?;
        a.cmp(eax, 0x0005_1b36u32)?;
        a.mov(edi, 1u32)?;
        a.jne(rt.exit.l)?;
        a.mov(rax, 0x1_5a5a_1234u64)?;
        a.cmp(r12, rax)?;
        a.mov(edi, 2u32)?;
        a.jne(rt.exit.l)?;
        a.xor(edi, edi)
    });
    let o = runner(
        &k,
        &["-smp", "1", "-cpu", "max", "-m", "256", "-append", "x y"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // run_qemu treats any stderr line without "warning" as a QEMU failure.
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert!(stdout(&o).contains("hello from the guest"));
}

#[test]
fn append_and_initrd_reach_the_kernel() {
    // Print the Multiboot command line and the module's first bytes.
    let k = kernel("cmdline.bin", |a, rt| {
        let mbi = guestkit::layout::VARS + guestkit::layout::var::MBI;
        a.mov(rbx, qword_ptr(mbi))?;
        a.mov(esi, dword_ptr(rbx + 16u32))?;
        a.call(rt.puts.l)?;
        print(a, rt, "|")?;
        a.mov(rbx, qword_ptr(mbi))?;
        a.mov(eax, dword_ptr(rbx + 20u32))?;
        a.add(al, b'0' as u32)?;
        a.call(rt.putc.l)?;
        print(a, rt, "|")?;
        a.mov(esi, dword_ptr(rbx + 24u32))?;
        a.mov(esi, dword_ptr(rsi))?;
        a.call(rt.puts.l)?;
        a.xor(edi, edi)
    });
    let env = tmp("env");
    std::fs::write(&env, b"NR_CPUS=1\0").unwrap();
    let o = runner(
        &k,
        &["-append", "test_a test_b", "-initrd", env.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // QEMU passes "<kernel> <append>" and the initrd as the one module.
    assert_eq!(stdout(&o), format!("{k} test_a test_b|1|NR_CPUS=1"));
}

#[test]
fn memory_size_reaches_fw_cfg() {
    // Exit with the RAM size in 64-MiB units.
    let k = exits_with("mem.bin", |a| {
        fw_cfg_read(a, 0x03, 8)?;
        a.shr(rax, 26)
    });
    for (m, units) in [("64", 1), ("128M", 2), ("1G", 16), ("size=512M", 8)] {
        let o = runner(&k, &["-m", m]);
        assert_eq!(o.status.code(), Some(units << 1 | 1), "-m {m}");
    }
    // QEMU's default is 128 MiB.
    assert_eq!(runner(&k, &[]).status.code(), Some(5));
}

#[test]
fn cpu_models_and_features_reach_cpuid() {
    // Exit with CPUID.1:ECX bit 21 (x2APIC) and bit 24 (TSC-deadline),
    // and bit 2 when the vendor is AMD.
    let k = exits_with("cpu.bin", |a| {
        cpuid(a, 0, 1)?;
        a.mov(r12d, eax)?;
        cpuid(a, 1, 2)?;
        a.mov(ebx, eax)?;
        a.shr(eax, 21)?;
        a.and(eax, 1)?;
        a.shr(ebx, 23)?;
        a.and(ebx, 2)?;
        a.or(eax, ebx)?;
        a.cmp(r12d, u32::from_le_bytes(*b"Auth"))?;
        a.sete(bl)?;
        a.movzx(ebx, bl)?;
        a.shl(ebx, 2)?;
        a.or(eax, ebx)
    });
    let status = |cpu: &str| {
        let o = runner(&k, &["-cpu", cpu]);
        assert!(o.stderr.is_empty(), "{cpu}: {}", stderr(&o));
        (o.status.code().unwrap() >> 1) & 7
    };
    assert_eq!(status("max"), 3);
    assert_eq!(status("qemu64"), 4, "AMD, neither bit");
    assert_eq!(status("qemu64,+x2apic,+tsc-deadline"), 7);
    assert_eq!(status("max,-x2apic"), 2);
    assert_eq!(status("Skylake-Server,host-phys-bits"), 3);
    assert_eq!(status("IvyBridge,x2apic=off"), 2);
    // MAXPHYADDR follows phys-bits.
    let k = exits_with("physbits.bin", |a| {
        cpuid(a, 0x8000_0008, 0)?;
        a.and(eax, 0xff)
    });
    let o = runner(&k, &["-cpu", "IvyBridge,phys-bits=36"]);
    assert_eq!(o.status.code(), Some((36 << 1 | 1) & 0xff));
}

#[test]
fn rtc_base_sets_the_date() {
    let k = exits_with("rtc.bin", |a| {
        out(a, 0x70, 1, 0x09)?;
        inp(a, 0x71, 1)
    });
    let o = runner(&k, &["-rtc", "base=2020-02-02T10:00:00"]);
    assert_eq!(o.status.code(), Some((0x20 << 1 | 1) & 0xff));
}

#[test]
fn serial_destinations() {
    let k = kernel("serial.bin", |a, rt| {
        print(a, rt, "line\n")?;
        a.xor(edi, edi)
    });
    let dbg = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x4"];
    let run = |extra: &[&str]| {
        let mut args = vec!["-kernel", k.as_str()];
        args.extend_from_slice(&dbg);
        args.extend_from_slice(extra);
        nestemu(&args)
    };
    assert!(stdout(&run(&["-serial", "stdio"])).contains("line"));
    assert!(stdout(&run(&["-nographic"])).contains("line"));
    assert!(run(&["-serial", "null"]).stdout.is_empty());
    assert!(
        run(&[]).stdout.is_empty(),
        "the default console shows nothing"
    );
    let o = run(&["-nodefaults"]);
    assert_eq!(o.status.code(), Some(1), "no COM1 at all, still exits");
    assert!(o.stdout.is_empty());
    let f = tmp("serial.txt");
    let arg = format!("file:{}", f.to_str().unwrap());
    let o = run(&["-serial", &arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(std::fs::read_to_string(&f).unwrap().contains("line"));
}

#[test]
fn accepted_options_change_nothing() {
    let k = exits_with("quiet.bin", |a| a.xor(eax, eax));
    for extra in [
        &["-display", "none"][..],
        &["-vnc", "none"],
        &["-name", "guest"],
        &["-accel", "tcg"],
        &["-machine", "pc,accel=tcg"],
        &["-smp", "1"],
        &["-smp", "cpus=1,sockets=1,cores=1,threads=1"],
        &["-no-hpet"],
        &["-vga", "none"],
        &["-monitor", "none"],
        &["-no-reboot"],
    ] {
        let o = runner(&k, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{extra:?}: {}", stderr(&o));
    }
    // KVM-only settings are accepted with a warning line.
    for extra in [
        &["-machine", "accel=kvm"][..],
        &["-enable-kvm"],
        &["-machine", "kernel_irqchip=split"],
    ] {
        let o = runner(&k, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        let err = stderr(&o);
        assert!(
            !err.is_empty() && err.lines().all(|l| l.contains("warning")),
            "{err}"
        );
    }
}

#[test]
fn test_devices_exist_only_when_asked_for() {
    // Without -device pc-testdev the scratch port floats; without
    // isa-debug-exit the write to F4H does nothing and the kernel halts.
    let k = exits_with("scratch.bin", |a| {
        out(a, 0xe0, 4, 0)?;
        inp(a, 0xe0, 4)?;
        a.and(eax, 1)
    });
    let o = nestemu(&[
        "-kernel",
        &k,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x4",
    ]);
    assert_eq!(o.status.code(), Some(3), "floating bus reads ones");
    let o = nestemu(&[
        "-kernel",
        &k,
        "-device",
        "isa-debug-exit,iobase=0x501,iosize=2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("halted"));
}

#[test]
fn reset_reboots_unless_no_reboot() {
    let k = kernel("reset.bin", |a, rt| {
        print(a, rt, "boot\n")?;
        out(a, 0xcf9, 1, 6)
    });
    let o = runner(&k, &[]);
    assert_eq!(o.status.code(), Some(0), "--no-reboot: a reset ends with 0");
    assert_eq!(stdout(&o).matches("boot").count(), 1);
    let o = nestemu(&["-kernel", &k, "-serial", "stdio", "--max-insns", "300000"]);
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert!(stdout(&o).matches("boot").count() > 1, "rebooted");
}

#[test]
fn triple_fault_with_no_reboot_exits_0() {
    let k = kernel("triple.bin", |a, _| {
        a.mov(qword_ptr(0u64), 0)?;
        a.lidt(ptr(0u64))?;
        a.int3()
    });
    let o = runner(&k, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("triple fault"), "{}", stderr(&o));
}

#[test]
fn stats_extension() {
    let k = exits_with("stats.bin", |a| a.xor(eax, eax));
    let s = tmp("stats.json");
    let o = runner(&k, &["--stats", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap();
    assert!(json["instructions"].as_u64().unwrap() > 10);
    assert_eq!(json["exit_status"], 1);
}

#[test]
fn smp_reaches_fw_cfg_cpuid_and_cmos() {
    let fw_cfg = exits_with("smp-fw-cfg.bin", |a| fw_cfg_read(a, 5, 2));
    let cmos = exits_with("smp-cmos.bin", |a| {
        out(a, 0x70, 1, 0x5f)?;
        inp(a, 0x71, 1)
    });
    let leaf_0b = exits_with("smp-cpuid.bin", |a| {
        a.mov(eax, 0xbu32)?;
        a.mov(ecx, 1u32)?;
        a.cpuid()?;
        a.movzx(eax, bx)
    });
    let status = |k: &str, args: &[&str]| {
        let o = runner(k, args);
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
        o.status.code().unwrap() >> 1
    };
    for (args, n) in [
        (&["-smp", "4"][..], 4),
        (&["-smp", "cpus=6,sockets=2,cores=3"], 6),
        (&["-smp", "1"], 1),
    ] {
        assert_eq!(status(&fw_cfg, args), n, "{args:?}: fw_cfg");
        assert_eq!(status(&cmos, args), n - 1, "{args:?}: CMOS 5FH");
    }
    // Leaf 0BH exists with x2APIC (-cpu max; qemu64 has neither).
    assert_eq!(status(&leaf_0b, &["-smp", "4", "-cpu", "max"]), 4);
    assert_eq!(
        status(&leaf_0b, &["-smp", "6,sockets=2", "-cpu", "max"]),
        3,
        "per package"
    );
    let o = nestemu(&[
        "run",
        "--kernel",
        &fw_cfg,
        "--smp",
        "4",
        "--quantum",
        "2000",
    ]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
}

#[test]
fn unsupported_options_are_refused_by_name() {
    let k = "k.bin";
    refused(
        &["-kernel", k, "-smp", "300"],
        "exceeds nestemu's maximum of 64",
    );
    refused(&["-kernel", k, "-smp", "2,maxcpus=4"], "hotplug");
    refused(&["-kernel", k, "-smp", "3,sockets=2"], "maxcpus is 3");
    refused(&["-kernel", k, "-smp", "2,dies=2"], "dies");
    refused(&["run", "--kernel", k, "--smp", "300"], "maximum of 64");
    refused(&["run", "--kernel", k, "--quantum", "0"], "--quantum");
    refused(&["-kernel", k, "-hda", "disk.img"], "-hda");
    refused(&["disk.img"], "disk.img");
    refused(&["-kernel", k, "-device", "e1000"], "e1000");
    refused(&["-kernel", k, "-device", "pc-testdev,foo=1"], "foo");
    refused(&["-kernel", k, "-S"], "-S");
    refused(&["-kernel", k, "-gdb", "tcp::1234"], "-gdb");
    refused(&["-kernel", k, "-cpu", "max,+avx512f"], "avx512f");
    refused(&["-kernel", k, "-cpu", "max,+frob"], "frob");
    refused(&["-kernel", k, "-cpu", "pentium9"], "pentium9");
    refused(&["-kernel", k, "-machine", "q35"], "q35");
    refused(&["-kernel", k, "-serial", "tcp::4444"], "-serial");
    refused(&["-kernel", k, "-global", "e1000.mac=x"], "-global");
    refused(&["-kernel", k, "-rtc", "base=localtime"], "base=localtime");
    refused(&["-kernel", k, "-m", "lots"], "-m lots");
    refused(&["-nodefaults"], "-kernel");
    refused(&["-kernel"], "-kernel needs a value");
}
