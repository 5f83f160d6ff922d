//! The processor topology of an SMP machine and the APIC IDs it gives each
//! logical processor.
//!
//! APIC IDs are packed the way Intel processors (and QEMU's `x86_topo_ids`)
//! number them: the thread in the low bits, then the core, then the socket,
//! each field as wide as the smallest power of two holding its count (SDM
//! Vol. 3A 9.9.1, "Hierarchical Mapping of Shared Resources"). CPUID leaf 0BH
//! reports those widths, leaf 01H the initial APIC ID, the MADT lists the
//! same IDs.

use serde::{Deserialize, Serialize};

/// Most logical processors a machine has: destination sets are 64-bit masks,
/// and every APIC ID must stay below the xAPIC broadcast ID FFH.
pub const MAX_CPUS: u32 = 64;

/// Sockets, cores per socket and threads per core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Sockets.
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Self::flat(1)
    }
}

/// The width of a field counting `n` things: ceil(log2(n)).
fn width(n: u32) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

impl Topology {
    /// `n` single-threaded cores in one socket (QEMU's choice for `-smp N`
    /// on current machine types).
    pub fn flat(n: u32) -> Self {
        Self {
            sockets: 1,
            cores: n.max(1),
            threads: 1,
        }
    }

    /// Logical processors.
    pub fn cpus(&self) -> u32 {
        self.sockets * self.cores * self.threads
    }

    /// Bits of the APIC ID that number the thread within its core.
    pub fn smt_bits(&self) -> u32 {
        width(self.threads)
    }

    /// Bits of the APIC ID that number the core within its socket.
    pub fn core_bits(&self) -> u32 {
        width(self.cores)
    }

    /// Logical processors per socket.
    pub fn per_socket(&self) -> u32 {
        self.cores * self.threads
    }

    /// The APIC ID of logical processor `index` (0 is the bootstrap
    /// processor).
    pub fn apic_id(&self, index: u32) -> u32 {
        let t = self.threads.max(1);
        let c = self.cores.max(1);
        let thread = index % t;
        let core = (index / t) % c;
        let socket = index / (t * c);
        socket << (self.core_bits() + self.smt_bits()) | core << self.smt_bits() | thread
    }

    /// Checks that the topology can be built; the error says why not.
    pub fn validate(&self) -> Result<(), String> {
        if self.sockets == 0 || self.cores == 0 || self.threads == 0 {
            return Err("sockets, cores and threads must be at least 1".into());
        }
        let n = self.sockets as u64 * self.cores as u64 * self.threads as u64;
        if n > MAX_CPUS as u64 {
            return Err(format!("{n} CPUs exceeds nestemu's maximum of {MAX_CPUS}"));
        }
        let top = self.apic_id(n as u32 - 1);
        if top >= 0xff {
            return Err(format!(
                "the topology needs APIC ID {top}, beyond the xAPIC's 254"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_ids_are_contiguous() {
        let t = Topology::flat(4);
        assert_eq!(
            (0..4).map(|i| t.apic_id(i)).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!((t.smt_bits(), t.core_bits()), (0, 2));
    }

    #[test]
    fn fields_round_up_to_powers_of_two() {
        // 2 sockets of 3 cores of 2 threads: thread bit 0, core bits 2:1,
        // socket from bit 3.
        let t = Topology {
            sockets: 2,
            cores: 3,
            threads: 2,
        };
        let ids: Vec<u32> = (0..t.cpus()).map(|i| t.apic_id(i)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
        assert!(t.validate().is_ok());
    }

    #[test]
    fn limits() {
        assert!(Topology::flat(64).validate().is_ok());
        assert!(Topology::flat(65)
            .validate()
            .unwrap_err()
            .contains("maximum of 64"));
        assert!(Topology {
            sockets: 0,
            cores: 1,
            threads: 1
        }
        .validate()
        .is_err());
    }
}
