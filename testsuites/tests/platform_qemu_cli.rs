//! The platform suites run through the QEMU-compatible command line with
//! the flags kvm-unit-tests' x86/run passes (in-process, the binary's code
//! path): the same kernels pass, with the same serial output as a direct
//! run. Set NESTEMU_DUMP_KERNELS=DIR to also write the images, to run them
//! under QEMU.

use nestemu::cli::qemu::{self, QemuCommand};
use std::path::PathBuf;
use testsuites::platform::{self, firmware, Verdicts};

fn image_file(name: &str, image: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nestemu-platform-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.bin"));
    std::fs::write(&p, image).unwrap();
    p
}

/// The command line of kvm-unit-tests' x86/run (with --no-reboot, as newer
/// versions pass it) for `kernel` on `cpus` vCPUs.
fn runner_args_smp(kernel: &str, cpus: u64) -> Vec<String> {
    format!(
        "--no-reboot -nodefaults -global kvm-pit.lost_tick_policy=discard \
         -device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4 \
         -vnc none -serial stdio -device pci-testdev -machine accel=tcg \
         -kernel {kernel} -smp {cpus} -cpu max -m 64"
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn run_qemu_style(kernel: &str) -> (i32, String) {
    run_qemu_style_smp(kernel, 1)
}

fn run_qemu_style_smp(kernel: &str, cpus: u64) -> (i32, String) {
    let QemuCommand::Run(q) =
        qemu::parse(&runner_args_smp(kernel, cpus)).expect("the runner's flags parse")
    else {
        panic!("not a run")
    };
    let (status, serial) = qemu::run_captured(&q);
    (status, String::from_utf8_lossy(&serial).into_owned())
}

#[test]
fn suites_pass_with_a_runner_command_line() {
    platform::dump_images();
    for (name, f) in platform::SUITES {
        let built = platform::build(&f());
        let path = image_file(name, &built.image);
        let (status, serial) = run_qemu_style(path.to_str().unwrap());
        let v = Verdicts::parse(&serial);
        assert_eq!(status, 1, "{name}: isa-debug-exit 0 is status 1\n{serial}");
        assert!(v.failed.is_empty() && !v.ok.is_empty(), "{name}:\n{serial}");
        let direct = testsuites::run_built(&built, platform::config());
        assert_eq!(
            direct.serial, serial,
            "{name}: the same serial output both ways"
        );
    }
}

/// The SMP suite through the runner's command line with `-smp N`: the same
/// kernel brings up N - 1 APs and passes, with the serial output of a
/// direct run on an N-vCPU machine.
#[test]
fn smp_suite_passes_with_a_runner_smp_flag() {
    for cpus in platform::SMP_DUMPS {
        let built = platform::build(&platform::smp::program(cpus));
        let path = image_file(&format!("smp{cpus}"), &built.image);
        let (status, serial) = run_qemu_style_smp(path.to_str().unwrap(), cpus);
        let v = Verdicts::parse(&serial);
        assert_eq!(
            status, 1,
            "smp {cpus}: isa-debug-exit 0 is status 1\n{serial}"
        );
        assert!(
            v.failed.is_empty() && v.ok.iter().any(|n| n == "every ap came online"),
            "smp {cpus}:\n{serial}"
        );
        let mut cfg = platform::config();
        cfg.platform.cpus = cpus as u32;
        let direct = testsuites::run_built(&built, cfg);
        assert_eq!(
            direct.serial, serial,
            "smp {cpus}: the same serial output both ways"
        );
    }
}

#[test]
fn power_paths_with_no_reboot_exit_0() {
    for (name, p, _) in firmware::exits() {
        let built = platform::build(&p);
        let path = image_file(name, &built.image);
        if let Ok(dir) = std::env::var("NESTEMU_DUMP_KERNELS") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(format!("{dir}/exit_{name}.bin"), &built.image).unwrap();
        }
        let (status, _) = run_qemu_style(path.to_str().unwrap());
        assert_eq!(status, 0, "{name}");
    }
}
