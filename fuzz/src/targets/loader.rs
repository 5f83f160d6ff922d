//! `loader`: Multiboot images through `multiboot::boot` on machines of
//! random RAM sizes, with random command lines and modules; images that
//! load run a bounded number of instructions. Defined: a `LoadError`, or
//! the machine's `Stop`.

use super::{image, stop_outcome};
use crate::source::Source;
use crate::{Outcome, Target, Verdict};
use nestemu::loader::multiboot::{self, Module};
use nestemu::{Machine, MachineConfig};

/// Instructions a loaded kernel may run.
const MAX_INSNS: u64 = 20_000;

/// The loader target.
#[derive(Debug)]
pub struct Loader;

/// A RAM size: usually a few MiB, sometimes an odd byte count, tiny, or
/// reaching past the PCI hole into high memory.
pub fn ram_size(src: &mut Source) -> u64 {
    match src.below(16) {
        0..=9 => (1 + src.below(64)) << 20,
        10 | 11 => src.range(0x1000, 64 << 20),
        12 => src.below(0x2_0000),
        13 => src.pick(&[0, 1, 0xfff, 0x9_fc00, 0x10_0000, 0x10_0fff]),
        // Past 3.5 GiB RAM continues at 4 GiB; committed lazily.
        _ => 0xe000_0000 + src.below(8 << 20),
    }
}

/// Modules: usually none or a few, rarely thousands.
fn modules(src: &mut Source, ram: u64) -> Vec<Module> {
    let n = match src.below(16) {
        0..=7 => 0,
        8..=14 => 1 + src.below(4),
        _ => src.below(5000),
    };
    (0..n)
        .map(|_| {
            let string = src.string(16);
            // Large modules only when there are few (the fuzzer's own
            // memory stays bounded): up to RAM size, at most 32 MiB.
            let big = n <= 4;
            let data = match src.below(8) {
                0 if big => vec![0; (ram / 2 + src.below(ram / 2 + 1)).min(32 << 20) as usize],
                1 if big => vec![0xaa; src.below(1 << 20) as usize],
                _ => {
                    let k = src.below(64) as usize;
                    src.bytes(k)
                }
            };
            Module { string, data }
        })
        .collect()
}

fn cmdline(src: &mut Source) -> String {
    if src.chance(1, 32) {
        "a".repeat(src.below(1 << 20) as usize)
    } else {
        src.string(64)
    }
}

impl Target for Loader {
    fn name(&self) -> &'static str {
        "loader"
    }

    fn max_len(&self) -> usize {
        4096
    }

    fn run(&self, input: &[u8]) -> Verdict {
        let mut src = Source::new(input);
        let ram = ram_size(&mut src);
        let cmd = cmdline(&mut src);
        let mods = modules(&mut src, ram);
        let img = image::decode(&mut src, ram);
        let cfg = MachineConfig {
            mem_bytes: ram,
            max_insns: Some(MAX_INSNS),
            ..Default::default()
        };
        let mut m = match Machine::try_new(cfg) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Outcome::new(format!(
                    "no machine: {}",
                    crate::normalize(&e)
                )))
            }
        };
        match multiboot::boot(&mut m, &img, &cmd, &mods) {
            // The machine's RAM was allocated before the image was refused.
            Err(e) => {
                Ok(Outcome::new(format!("LoadError: {}", crate::normalize(&e.0))).with_ram(ram))
            }
            Ok(k) => {
                if m.cpu.rip != k.entry {
                    return Err(format!(
                        "booted at {:#x}, not the entry {:#x}",
                        m.cpu.rip, k.entry
                    ));
                }
                let stop = super::run_bounded(&mut m);
                let mut o = stop_outcome(&m, stop.as_ref());
                o.label = format!("loaded, {}", o.label);
                Ok(o.with_ram(ram))
            }
        }
    }
}
