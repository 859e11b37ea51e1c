//! Copy-bandwidth measurement with NVIDIA's method (nvbandwidth, cuda-samples): a spin kernel
//! holds the stream while a batch of copies is enqueued, CUDA events bracket the batch, then
//! the host releases the spin flag; warm-up copies first, several samples. Returns raw samples
//! (bytes, seconds per sample, verified); rates and verdicts are for `analyze::bandwidth`.
//!
//! Set-up and tear-down calls are recorded as steps; the copies themselves are not (hundreds of
//! them), except one that fails, which is recorded as a failed step and ends that phase.
//! Everything allocated is freed (device and host memory, streams, events, module, the primary
//! context reference), also after an error or Ctrl-C.
//!
//! Files:
//! - `gpu`: one device's context and the handles created in it, all freed by `release`;
//! - `host`: host buffers (pattern fill and check), NUMA placement of the measuring thread;
//! - `sampler`: the timing of one path (spin kernel + CUDA events, or the host clock);
//! - `device`: the host↔device and device-local paths of one GPU;
//! - `peer`: the paths between GPUs.
//!
//! This file: the entry points and the recorded-call helpers every path uses.

mod device;
mod gpu;
pub mod host;
mod peer;
mod sampler;

use anyhow::{Result, anyhow};
use indicatif::ProgressBar;

use crate::error::{self, exit};
use crate::facts::bandwidth::{DeviceRun, PeerRun};
use crate::probe::cuda::{CUresult, Steps, attribute, sys};

use device::device_paths;
use gpu::Gpu;
use host::place_thread;
use peer::peer_paths;

const OK: CUresult = CUresult::CUDA_SUCCESS;

/// How much to copy and how often.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Buffer size in bytes (a multiple of 16).
    pub size: usize,
    /// Copies per sample (pinned, device-local and peer paths).
    pub copies: u32,
    pub samples: u32,
    /// Untimed copies before the first sample.
    pub warmup: u32,
    /// Measure pageable host memory too.
    pub pageable: bool,
    /// Copies per sample for the slow paths (pageable, peer staged through host).
    pub slow_copies: u32,
    /// Measure peer paths when two or more devices are given.
    pub p2p: bool,
    /// The ordered pairs (positions in the device list) whose peer paths are measured; None:
    /// every pair. Bidirectional copies run for a pair when either direction is chosen.
    pub pairs: Option<Vec<(usize, usize)>>,
    /// Upper bound of the spin kernel, in GPU clock cycles (it normally ends on the flag).
    pub spin_cycles: u64,
}

impl Plan {
    /// Whether the peer paths of `i` → `j` are measured.
    pub fn measures(&self, i: usize, j: usize) -> bool {
        self.pairs.as_ref().is_none_or(|p| p.contains(&(i, j)))
    }

    pub const LATENCY_BYTES: usize = 4;
    pub const LATENCY_COPIES: u32 = 100;
}

/// One GPU to measure.
#[derive(Debug, Clone)]
pub struct Target {
    /// NVML index (what the report names devices by).
    pub index: u32,
    pub cuda: sys::CUdevice,
    /// CPUs close to the GPU (cpulist) and its NUMA node, from the topology facts.
    pub cpus: Option<String>,
    pub numa_node: Option<u32>,
}

/// Callbacks into the caller: progress, and a read of the PCIe link while copies run.
pub struct Hooks<'a> {
    pub progress: &'a ProgressBar,
    /// Returns (generation, width) of the device's PCIe link now; called while H2D copies run.
    pub link_now: &'a (dyn Fn(u32) -> (Option<u32>, Option<u32>) + Sync),
}

/// Marker error: Ctrl-C was pressed.
#[derive(Debug)]
struct Interrupted;
impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}
impl std::error::Error for Interrupted {}

/// Free device memory a GPU needs: two buffers of `plan.size` and 64 MiB of headroom.
fn device_need(plan: &Plan) -> u64 {
    2 * plan.size as u64 + (64 << 20)
}

/// Progress units of a device run with this plan.
pub fn device_units(plan: &Plan) -> u64 {
    if plan.pageable { 7 } else { 5 }
}

/// Progress units of the peer phase for `n` devices.
pub fn peer_units(n: usize) -> u64 {
    let ordered = (n * n.saturating_sub(1)) as u64;
    // staged + peer + latency per ordered pair, bidirectional per unordered pair.
    3 * ordered + ordered / 2
}

/// [`peer_units`] for the pairs `plan` measures among `n` GPUs.
pub fn planned_peer_units(plan: &Plan, n: usize) -> u64 {
    match &plan.pairs {
        None => peer_units(n),
        Some(p) => {
            let unordered = (0..n)
                .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
                .filter(|&(i, j)| plan.measures(i, j) || plan.measures(j, i))
                .count();
            3 * p.len() as u64 + unordered as u64
        }
    }
}

/// A hot call (a copy, an event record): not a step unless it fails.
fn hot(rec: &Steps, name: &str, call: &str, rc: CUresult) -> Result<()> {
    if rc == OK {
        return Ok(());
    }
    let note = "a copy-path call failed; the rest of this phase was skipped";
    rec.call_noted(name, call, &[OK], Some(note), || rc);
    Err(anyhow!("{name}: {call} answered {rc:?}"))
}

/// Ends the current phase when Ctrl-C was pressed.
fn check_interrupt(rec: &Steps) -> Result<()> {
    if rec.ctx.interrupted() {
        Err(anyhow::Error::new(Interrupted))
    } else {
        Ok(())
    }
}

/// Zeroes a destination buffer of the current context, then waits: the memset runs on the
/// legacy stream, which the non-blocking streams of the copies would not wait for.
fn poison(rec: &Steps, p: sys::CUdeviceptr, bytes: usize) -> Result<()> {
    // SAFETY: `bytes` of device memory of the current context.
    hot(rec, "poison destination", "cuMemsetD8_v2", unsafe {
        sys::cuMemsetD8_v2(p, 0, bytes)
    })?;
    // SAFETY: plain synchronisation of the current context.
    hot(rec, "poison destination", "cuCtxSynchronize", unsafe {
        sys::cuCtxSynchronize()
    })
}

/// A recorded set-up call that must succeed for the run to go on.
fn step(rec: &Steps, name: &str, call: &str, f: impl FnOnce() -> CUresult) -> Result<()> {
    let rc = rec.call(name, call, &[OK], f);
    if rc == OK {
        Ok(())
    } else {
        Err(anyhow!("{name}: {call} answered {rc:?}"))
    }
}

/// Measures every host↔device and device-local path of one GPU on the calling thread.
/// A CUDA failure ends the run early (recorded as a failed step and in `error`); a `--size`
/// that does not fit the free memory is an input error. Everything is freed either way.
pub fn measure_device(
    rec: &Steps,
    t: &Target,
    plan: &Plan,
    host_nodes: u32,
    hooks: &Hooks,
) -> Result<DeviceRun> {
    let mut run = DeviceRun {
        index: t.index,
        cuda_ordinal: t.cuda,
        cuda_memory_bus_width_bits: attribute(
            t.cuda,
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
        ),
        cuda_memory_clock_khz: attribute(
            t.cuda,
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
        ),
        placement: place_thread(t.cpus.as_deref(), t.numa_node, host_nodes),
        ..Default::default()
    };
    let mut gpu = Gpu::new(t.index, t.cuda);
    let mut pageable: (Vec<u64>, Vec<u64>) = (vec![], vec![]);
    let r = device_paths(rec, &mut gpu, plan, hooks, &mut run, &mut pageable);
    run.memory_free_after = gpu.release(rec);
    drop(pageable);
    match r {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => run.interrupted = true,
        Err(e) if error::exit_code_of(&e) == exit::USAGE => return Err(e),
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    Ok(run)
}

/// Measures every ordered pair of `targets`: staged through the host (peer access off), then
/// with peer access on (uni- and bidirectional), and latency of small peer copies.
pub fn measure_peers(rec: &Steps, targets: &[Target], plan: &Plan, hooks: &Hooks) -> PeerRun {
    let mut run = PeerRun::default();
    let mut gpus: Vec<Gpu> = targets.iter().map(|t| Gpu::new(t.index, t.cuda)).collect();
    let mut bufs: Vec<(sys::CUdeviceptr, sys::CUdeviceptr)> = vec![];
    let mut enabled: Vec<(usize, usize)> = vec![];
    let r = peer_paths(
        rec,
        &mut gpus,
        &mut bufs,
        &mut enabled,
        plan,
        hooks,
        &mut run,
    );
    for &(i, j) in enabled.iter().rev() {
        let peer = gpus[j].ctx;
        if gpus[i].make_current(rec).is_ok() {
            let name = format!(
                "GPU{}: disable peer access to GPU{}",
                gpus[i].index, gpus[j].index
            );
            // SAFETY: a peer context this probe enabled.
            rec.call(&name, "cuCtxDisablePeerAccess", &[OK], || unsafe {
                sys::cuCtxDisablePeerAccess(peer)
            });
        }
    }
    for g in gpus.iter_mut().rev() {
        g.release(rec);
    }
    match r {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => run.interrupted = true,
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_units() {
        let plan = Plan {
            size: 1 << 20,
            copies: 1,
            samples: 1,
            warmup: 0,
            pageable: false,
            slow_copies: 1,
            p2p: true,
            pairs: None,
            spin_cycles: 1,
        };
        assert_eq!(device_units(&plan), 5);
        assert_eq!(peer_units(1), 0);
        // 2 GPUs: 2 ordered pairs × 3 + 1 bidirectional.
        assert_eq!(peer_units(2), 7);
        assert_eq!(peer_units(4), 3 * 12 + 6);
        assert_eq!(planned_peer_units(&plan, 4), peer_units(4));
        // One ring through 4 GPUs: 4 ordered pairs, 4 unordered (0-1, 1-2, 2-3, 0-3).
        let ring = Plan {
            pairs: Some(vec![(0, 1), (1, 2), (2, 3), (3, 0)]),
            ..plan
        };
        assert_eq!(planned_peer_units(&ring, 4), 3 * 4 + 4);
        assert!(ring.measures(3, 0) && !ring.measures(0, 3));
    }
}
