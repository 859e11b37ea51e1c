//! `inject fragmentation`: allocate a churn of mixed sizes up to a share of the free memory,
//! free every other allocation, and measure the largest single block the allocator can still
//! hand out against the memory it has free — with cuMemAlloc, with a stream-ordered pool that
//! keeps what is freed (before and after cuMemPoolTrimTo), and with the virtual memory API
//! (physical pieces mapped into one reserved range). Everything is freed afterwards and memory
//! is checked back at its baseline.
//!
//! Plain device allocations only (never managed memory), and never more than the GPU has free:
//! the churn takes `fraction` of the free memory, and each search starts at what is free.
//! The churns and searches are tight loops: a step records each loop's outcome, and the calls
//! that matter (pool creation and trim, the reservation, the proof the block is usable) are
//! steps of their own.

use std::time::Instant;

use anyhow::Result;
use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    ATTR_RESERVED, ATTR_THRESHOLD, ATTR_USED, NON_BLOCKING, Steps, Target, new_stream, pool_attr,
    rc,
};
use crate::context::RunCtx;
use crate::facts::faults::{AllocatorFragmentation, FragmentationFacts, TrimmedPool};
use crate::probe::cuda::{CUresult, check, sys};
use crate::probe::kernels;
use crate::probe::memory;
use crate::units::format_bytes;

/// The allocators measured.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, JsonSchema, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Allocator {
    /// cuMemAlloc.
    #[default]
    Driver,
    /// cuMemAllocFromPoolAsync from a pool that keeps freed memory (release threshold: max).
    Pool,
    /// cuMemCreate + cuMemMap into one range reserved with cuMemAddressReserve.
    Vmm,
}

impl Allocator {
    pub const ALL: [Allocator; 3] = [Allocator::Driver, Allocator::Pool, Allocator::Vmm];

    pub fn name(self) -> &'static str {
        match self {
            Allocator::Driver => "driver",
            Allocator::Pool => "pool",
            Allocator::Vmm => "vmm",
        }
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The sizes allocated in turn: small and large mixed, so that freeing the odd ones (the large
/// ones) leaves holes between blocks still in use.
pub const PATTERN: [u64; 8] = [
    MIB,
    24 * MIB,
    3 * MIB,
    96 * MIB,
    512 * KIB,
    48 * MIB,
    6 * MIB,
    192 * MIB,
];

/// Each step of the descending search asks for this share of the last size that failed.
const LADDER: f64 = 0.96;
/// The VMM block is built of pieces of at most this size.
const VMM_PIECE: u64 = 1 << 30;

pub struct FragConfig {
    pub fraction: f64,
    pub allocators: Vec<Allocator>,
}

/// The largest size, a multiple of `g` up to `max`, that `fits` accepts: a ladder down from
/// `max` by [`LADDER`] to the first success, then (with `refine`, when a success leaves things
/// as they were) a bisection between it and the last failure to within `g`. `stop` ends the
/// search early (Ctrl-C). Returns (largest, tries).
pub fn largest_block(
    max: u64,
    g: u64,
    refine: bool,
    fits: &mut dyn FnMut(u64) -> bool,
    stop: &dyn Fn() -> bool,
) -> (u64, u32) {
    let g = g.max(1);
    let round = |b: u64| b / g * g;
    let mut size = round(max);
    let mut failed: Option<u64> = None;
    let mut tries = 0u32;
    while size >= g && !stop() {
        tries += 1;
        if fits(size) {
            let Some(mut hi) = failed.filter(|_| refine) else {
                return (size, tries);
            };
            let mut lo = size;
            while hi - lo > g && !stop() {
                let mid = round(lo + (hi - lo) / 2);
                if mid <= lo {
                    break;
                }
                tries += 1;
                if fits(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return (lo, tries);
        }
        failed = Some(size);
        let next = round((size as f64 * LADDER) as u64);
        size = if next >= size { size - g } else { next };
    }
    (0, tries)
}

/// The churn's target: `fraction` of `free`.
fn target(free: u64, fraction: f64) -> u64 {
    (free as f64 * fraction.clamp(0.0, 1.0)) as u64
}

/// Blocks of a churn with their sizes.
type Blocks<B> = Vec<(B, u64)>;

/// Allocates the pattern in turn with `alloc` until `target` bytes (or an answer other than
/// success): the blocks, the answer that stopped it early, and whether Ctrl-C did.
fn churn<B>(
    ctx: &RunCtx,
    target: u64,
    round: impl Fn(u64) -> u64,
    alloc: &mut dyn FnMut(u64) -> Result<B, CUresult>,
) -> (Blocks<B>, Option<CUresult>, bool) {
    let mut blocks = Vec::new();
    let mut held = 0u64;
    for i in 0.. {
        if ctx.interrupted() {
            return (blocks, None, true);
        }
        let size = round(PATTERN[i % PATTERN.len()]);
        if held + size > target {
            break;
        }
        match alloc(size) {
            Ok(b) => {
                blocks.push((b, size));
                held += size;
            }
            Err(r) => return (blocks, Some(r), false),
        }
    }
    (blocks, None, false)
}

/// The blocks at odd positions (the pattern's large sizes) and the rest.
fn split_odd<B>(blocks: Blocks<B>) -> (Blocks<B>, Blocks<B>) {
    let mut odd = Vec::new();
    let mut even = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 2 == 1 {
            odd.push(b);
        } else {
            even.push(b);
        }
    }
    (odd, even)
}

fn stopped_by(answer: Option<CUresult>, interrupted: bool) -> Option<String> {
    match (answer, interrupted) {
        (_, true) => Some("interrupted".into()),
        (Some(r), _) if r == rc::OOM => Some("oom".into()),
        (Some(r), _) => Some(format!("error {r:?}")),
        (None, false) => None,
    }
}

/// Records a tight loop's outcome as one step: its first unexpected answer, or success.
fn loop_step(
    steps: &Steps,
    name: &str,
    call: &str,
    answer: Option<CUresult>,
    at_ms: f64,
    t0: Instant,
    note: String,
) {
    let observed = answer.unwrap_or(rc::SUCCESS);
    steps.made(
        name,
        call,
        &[rc::SUCCESS, rc::OOM],
        observed,
        at_ms,
        t0.elapsed().as_secs_f64() * 1e3,
        Some(note),
    );
}

/// Records a pattern's allocation in `out` and as the step `what` (`call` answered `answer`;
/// `note` follows the count and bytes).
#[allow(clippy::too_many_arguments)]
fn record_pattern<B>(
    steps: &Steps,
    out: &mut AllocatorFragmentation,
    blocks: &Blocks<B>,
    (answer, interrupted): (Option<CUresult>, bool),
    what: &str,
    call: &str,
    (at_ms, t0): (f64, Instant),
    note: &str,
) {
    out.allocations = blocks.len() as u64;
    out.allocated_bytes = blocks.iter().map(|b| b.1).sum();
    out.stopped_by = stopped_by(answer, interrupted);
    let counted = format!(
        "{} allocation(s), {}{note}",
        out.allocations,
        format_bytes(out.allocated_bytes)
    );
    loop_step(steps, what, call, answer, at_ms, t0, counted);
}

/// Frees every other block of the pattern with `free`, counting it in `out`; the blocks kept.
fn free_odd<B>(
    out: &mut AllocatorFragmentation,
    blocks: Blocks<B>,
    mut free: impl FnMut(&B),
) -> Blocks<B> {
    let (odd, rest) = split_odd(blocks);
    for (p, size) in &odd {
        free(p);
        out.freed_allocations += 1;
        out.freed_bytes += size;
    }
    rest
}

pub fn run(
    ctx: &RunCtx,
    steps: &Steps,
    t: &Target,
    cfg: &FragConfig,
) -> Result<FragmentationFacts> {
    let (memory, watch) = memory::begin(ctx, &t.nvml, t.index);
    let mut facts = FragmentationFacts {
        device: t.index,
        fraction: cfg.fraction,
        pattern_bytes: PATTERN.to_vec(),
        memory,
        ..Default::default()
    };
    let mut cu_ctx: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: `cu_ctx` is a live out-pointer; `t.dev` came from cuDeviceGetByPCIBusId.
    let r = steps.call(
        "create a non-primary context",
        "cuCtxCreate_v2",
        &[rc::SUCCESS],
        || unsafe { sys::cuCtxCreate_v2(&mut cu_ctx, 0, t.dev) },
    );
    check(r, "cuCtxCreate_v2")?;
    let prop = allocation_prop(t.dev);
    let mut g = 0usize;
    steps.call(
        "allocation granularity of the device",
        "cuMemGetAllocationGranularity",
        &[rc::SUCCESS],
        // SAFETY: `g` is a live usize out-pointer and `prop` a complete CUmemAllocationProp.
        || unsafe {
            sys::cuMemGetAllocationGranularity(
                &mut g,
                &prop,
                sys::CUmemAllocationGranularity_flags::CU_MEM_ALLOC_GRANULARITY_RECOMMENDED,
            )
        },
    );
    facts.granularity_bytes = if g == 0 { 2 * MIB } else { g as u64 };
    let (free, total) = crate::probe::cuda::mem_get_info()?;
    facts.free_before_bytes = free;
    facts.total_bytes = total;
    facts.memory.cuda_free_before = Some(free);
    let g = facts.granularity_bytes;
    for a in &cfg.allocators {
        if ctx.interrupted() {
            break;
        }
        watch.mark();
        let measured = match a {
            Allocator::Driver => driver(ctx, steps, g, cfg.fraction)?,
            Allocator::Pool => pool(ctx, steps, t.dev, g, cfg.fraction)?,
            Allocator::Vmm => vmm(ctx, steps, t.dev, &prop, g, cfg.fraction)?,
        };
        facts.allocators.push(measured);
    }
    watch.mark();
    facts.memory.cuda_free_after = super::cuda_free();
    steps.call(
        "destroy the context",
        "cuCtxDestroy_v2",
        &[rc::SUCCESS],
        // SAFETY: `cu_ctx` was created above and is destroyed once, here; every allocation,
        // pool, stream and mapping made in it was released before.
        || unsafe { sys::cuCtxDestroy_v2(cu_ctx) },
    );
    memory::end(&mut facts.memory, watch, &t.nvml, t.index);
    Ok(facts)
}

fn allocation_prop(dev: sys::CUdevice) -> sys::CUmemAllocationProp {
    // SAFETY: a plain C struct of integers and pointers, for which all zeroes is valid.
    let mut prop: sys::CUmemAllocationProp = unsafe { std::mem::zeroed() };
    prop.type_ = sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type_ = sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = dev;
    prop
}

fn free_now() -> u64 {
    super::cuda_free().unwrap_or(0)
}

/// cuMemAlloc.
fn driver(ctx: &RunCtx, steps: &Steps, g: u64, fraction: f64) -> Result<AllocatorFragmentation> {
    let t0 = Instant::now();
    let mut out = AllocatorFragmentation {
        allocator: Allocator::Driver.name().into(),
        exact: true,
        ..Default::default()
    };
    let at = ctx.now_ms();
    let c0 = Instant::now();
    let (blocks, answer, interrupted) = churn(ctx, target(free_now(), fraction), |s| s, &mut |s| {
        let mut p: sys::CUdeviceptr = 0;
        // SAFETY: a live out-pointer; our context is current.
        match unsafe { sys::cuMemAlloc_v2(&mut p, s as usize) } {
            r if r == rc::SUCCESS => Ok(p),
            r => Err(r),
        }
    });
    record_pattern(
        steps,
        &mut out,
        &blocks,
        (answer, interrupted),
        "allocate the pattern with cuMemAlloc",
        "cuMemAlloc_v2",
        (at, c0),
        "",
    );
    let rest = free_odd(&mut out, blocks, |p| {
        // SAFETY: our allocation, freed once.
        unsafe { sys::cuMemFree_v2(*p) };
    });
    out.free_after_pattern_bytes = free_now();
    out.available_bytes = out.free_after_pattern_bytes;
    if !interrupted {
        let at = ctx.now_ms();
        let c0 = Instant::now();
        let (largest, tries) = largest_block(
            out.available_bytes,
            g,
            true,
            &mut |s| {
                let mut p: sys::CUdeviceptr = 0;
                // SAFETY: a live out-pointer; our context is current; freed at once.
                unsafe {
                    let ok = sys::cuMemAlloc_v2(&mut p, s as usize) == rc::SUCCESS;
                    if ok {
                        sys::cuMemFree_v2(p);
                    }
                    ok
                }
            },
            &|| ctx.interrupted(),
        );
        out.largest_block_bytes = largest;
        search_step(
            steps,
            "the largest block cuMemAlloc gives after the pattern",
            "cuMemAlloc_v2",
            (out.largest_block_bytes, out.available_bytes, tries),
            at,
            c0,
        );
    }
    for (p, _) in rest {
        // SAFETY: our allocation, freed once.
        unsafe { sys::cuMemFree_v2(p) };
    }
    out.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// Records a search for the largest block as the step `name`: success when it found one.
fn search_step(
    steps: &Steps,
    name: &str,
    call: &str,
    (largest, available, tries): (u64, u64, u32),
    at: f64,
    c0: Instant,
) {
    steps.made(
        name,
        call,
        &[rc::SUCCESS],
        if largest > 0 { rc::SUCCESS } else { rc::OOM },
        at,
        c0.elapsed().as_secs_f64() * 1e3,
        Some(format!(
            "{} of {} available, {tries} tries",
            format_bytes(largest),
            format_bytes(available)
        )),
    );
}

/// A stream-ordered pool of our own that keeps what is freed (as a framework's cache does).
fn pool(
    ctx: &RunCtx,
    steps: &Steps,
    dev: sys::CUdevice,
    g: u64,
    fraction: f64,
) -> Result<AllocatorFragmentation> {
    let t0 = Instant::now();
    let mut out = AllocatorFragmentation {
        allocator: Allocator::Pool.name().into(),
        exact: false,
        ..Default::default()
    };
    // SAFETY: a plain C struct of integers and pointers, for which all zeroes is valid.
    let mut props: sys::CUmemPoolProps = unsafe { std::mem::zeroed() };
    props.allocType = sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location.type_ = sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    props.location.id = dev;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let r = steps.call(
        "create a memory pool on the device",
        "cuMemPoolCreate",
        &[rc::SUCCESS],
        // SAFETY: `pool` is a live out-pointer and `props` a complete CUmemPoolProps.
        || unsafe { sys::cuMemPoolCreate(&mut pool, &props) },
    );
    check(r, "cuMemPoolCreate")?;
    let mut keep = u64::MAX;
    steps.call(
        "keep freed memory in the pool (release threshold = max)",
        "cuMemPoolSetAttribute",
        &[rc::SUCCESS],
        // SAFETY: our pool; RELEASE_THRESHOLD reads one cuuint64_t and `keep` is a live u64.
        || unsafe { sys::cuMemPoolSetAttribute(pool, ATTR_THRESHOLD, kernels::arg(&mut keep)) },
    );
    let stream = new_stream(NON_BLOCKING)?;
    // SAFETY: our stream, alive until the end of this function.
    let sync = || unsafe { sys::cuStreamSynchronize(stream) };
    let alloc = |s: u64| -> Result<sys::CUdeviceptr, CUresult> {
        let mut p: sys::CUdeviceptr = 0;
        // SAFETY: a live out-pointer; our pool and stream.
        match unsafe { sys::cuMemAllocFromPoolAsync(&mut p, s as usize, pool, stream) } {
            r if r == rc::SUCCESS => Ok(p),
            r => Err(r),
        }
    };
    // SAFETY: `p` came from our pool on our stream and is freed once.
    let free_async = |p: sys::CUdeviceptr| unsafe { sys::cuMemFreeAsync(p, stream) };
    let at = ctx.now_ms();
    let c0 = Instant::now();
    let (blocks, mut answer, interrupted) =
        churn(ctx, target(free_now(), fraction), |s| s, &mut |s| alloc(s));
    let r = sync();
    if answer.is_none() && r != rc::SUCCESS {
        answer = Some(r);
    }
    record_pattern(
        steps,
        &mut out,
        &blocks,
        (answer, interrupted),
        "allocate the pattern from the pool",
        "cuMemAllocFromPoolAsync",
        (at, c0),
        "",
    );
    let rest = free_odd(&mut out, blocks, |p| {
        free_async(*p);
    });
    sync();
    out.free_after_pattern_bytes = free_now();
    out.pool_reserved_bytes = pool_attr(pool, ATTR_RESERVED);
    out.pool_used_bytes = pool_attr(pool, ATTR_USED);
    let unused = |reserved: Option<u64>, used: Option<u64>| {
        reserved.unwrap_or(0).saturating_sub(used.unwrap_or(0))
    };
    out.available_bytes =
        out.free_after_pattern_bytes + unused(out.pool_reserved_bytes, out.pool_used_bytes);
    // A success leaves its block in the pool (that is the pool's point): the first success of
    // the ladder is the answer, within its step.
    let fits = &mut |s: u64| match alloc(s) {
        Ok(p) => {
            let ok = sync() == rc::SUCCESS;
            free_async(p);
            sync();
            ok
        }
        Err(_) => false,
    };
    if !interrupted {
        let at = ctx.now_ms();
        let c0 = Instant::now();
        let (largest, tries) =
            largest_block(out.available_bytes, g, false, fits, &|| ctx.interrupted());
        out.largest_block_bytes = largest;
        search_step(
            steps,
            "the largest block the pool gives after the pattern",
            "cuMemAllocFromPoolAsync",
            (out.largest_block_bytes, out.available_bytes, tries),
            at,
            c0,
        );
        // SAFETY: our pool; what is in use stays, what is unused goes back to the driver.
        let trim = || unsafe { sys::cuMemPoolTrimTo(pool, 0) };
        steps.call_noted(
            "trim the pool to 0 bytes",
            "cuMemPoolTrimTo",
            &[rc::SUCCESS],
            Some("returns the pool's unused memory to the driver"),
            trim,
        );
        let free = free_now();
        let reserved = pool_attr(pool, ATTR_RESERVED);
        let mut trimmed = TrimmedPool {
            free_bytes: free,
            pool_reserved_bytes: reserved,
            available_bytes: free + unused(reserved, pool_attr(pool, ATTR_USED)),
            largest_block_bytes: 0,
        };
        let at = ctx.now_ms();
        let c0 = Instant::now();
        // Trimmed again after each success: every try starts from the same state.
        let (largest, tries) = largest_block(
            trimmed.available_bytes,
            g,
            true,
            &mut |s| {
                let ok = fits(s);
                trim();
                ok
            },
            &|| ctx.interrupted(),
        );
        trimmed.largest_block_bytes = largest;
        search_step(
            steps,
            "the largest block the trimmed pool gives",
            "cuMemAllocFromPoolAsync",
            (largest, trimmed.available_bytes, tries),
            at,
            c0,
        );
        out.after_trim = Some(trimmed);
    }
    for (p, _) in rest {
        free_async(p);
    }
    sync();
    steps.call(
        "destroy the pool",
        "cuMemPoolDestroy",
        &[rc::SUCCESS],
        // SAFETY: our pool; every allocation from it was freed and synchronised above.
        || unsafe { sys::cuMemPoolDestroy(pool) },
    );
    // SAFETY: our stream, idle.
    unsafe { sys::cuStreamDestroy_v2(stream) };
    out.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// A mapped piece of the virtual memory API: address, size, handle.
struct Piece {
    va: sys::CUdeviceptr,
    size: u64,
    handle: sys::CUmemGenericAllocationHandle,
}

/// cuMemCreate + cuMemAddressReserve + cuMemMap for one block of `size`.
fn vmm_alloc(prop: &sys::CUmemAllocationProp, size: u64) -> Result<Piece, CUresult> {
    let mut handle: sys::CUmemGenericAllocationHandle = 0;
    // SAFETY: a live out-pointer and a complete prop; `size` is a multiple of the granularity.
    let r = unsafe { sys::cuMemCreate(&mut handle, size as usize, prop, 0) };
    if r != rc::SUCCESS {
        return Err(r);
    }
    let mut va: sys::CUdeviceptr = 0;
    // SAFETY: a live out-pointer; any address, default alignment.
    let r = unsafe { sys::cuMemAddressReserve(&mut va, size as usize, 0, 0, 0) };
    if r != rc::SUCCESS {
        // SAFETY: the handle just created, released once.
        unsafe { sys::cuMemRelease(handle) };
        return Err(r);
    }
    // SAFETY: the reserved range and the handle, both of `size` bytes.
    let r = unsafe { sys::cuMemMap(va, size as usize, 0, handle, 0) };
    if r != rc::SUCCESS {
        // SAFETY: our range and handle, released once.
        unsafe {
            sys::cuMemAddressFree(va, size as usize);
            sys::cuMemRelease(handle);
        }
        return Err(r);
    }
    Ok(Piece { va, size, handle })
}

fn vmm_free(p: &Piece) {
    // SAFETY: a piece made by vmm_alloc, unmapped, released and unreserved once.
    unsafe {
        sys::cuMemUnmap(p.va, p.size as usize);
        sys::cuMemRelease(p.handle);
        sys::cuMemAddressFree(p.va, p.size as usize);
    }
}

/// The virtual memory API: the churn as pieces, then one range as large as the free memory,
/// filled with physical pieces and used.
fn vmm(
    ctx: &RunCtx,
    steps: &Steps,
    dev: sys::CUdevice,
    prop: &sys::CUmemAllocationProp,
    g: u64,
    fraction: f64,
) -> Result<AllocatorFragmentation> {
    let t0 = Instant::now();
    let mut out = AllocatorFragmentation {
        allocator: Allocator::Vmm.name().into(),
        exact: true,
        ..Default::default()
    };
    let round_up = |s: u64| s.div_ceil(g) * g;
    let at = ctx.now_ms();
    let c0 = Instant::now();
    let (blocks, answer, interrupted) =
        churn(ctx, target(free_now(), fraction), round_up, &mut |s| {
            vmm_alloc(prop, s)
        });
    record_pattern(
        steps,
        &mut out,
        &blocks,
        (answer, interrupted),
        "allocate the pattern with cuMemCreate + cuMemMap",
        "cuMemCreate",
        (at, c0),
        &format!(" (sizes rounded up to {})", format_bytes(g)),
    );
    let rest = free_odd(&mut out, blocks, vmm_free);
    out.free_after_pattern_bytes = free_now();
    out.available_bytes = out.free_after_pattern_bytes;
    if !interrupted {
        out.largest_block_bytes = one_range(ctx, steps, dev, prop, g, out.available_bytes);
    }
    for (p, _) in &rest {
        vmm_free(p);
    }
    out.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(out)
}

/// Reserves one range of `available` bytes, maps physical pieces into it until it is full or
/// the GPU has no more, makes it accessible and writes it whole: the bytes of the usable block.
fn one_range(
    ctx: &RunCtx,
    steps: &Steps,
    dev: sys::CUdevice,
    prop: &sys::CUmemAllocationProp,
    g: u64,
    available: u64,
) -> u64 {
    let want = available / g * g;
    let mut va: sys::CUdeviceptr = 0;
    let r = steps.call(
        "reserve one address range as large as the free memory",
        "cuMemAddressReserve",
        &[rc::SUCCESS],
        // SAFETY: a live out-pointer; any address, default alignment.
        || unsafe { sys::cuMemAddressReserve(&mut va, want as usize, 0, 0, 0) },
    );
    if r != rc::SUCCESS || want == 0 {
        return 0;
    }
    let at = ctx.now_ms();
    let c0 = Instant::now();
    let mut pieces: Vec<(u64, sys::CUmemGenericAllocationHandle)> = Vec::new();
    let mut mapped = 0u64;
    let mut piece = VMM_PIECE.min(want) / g * g;
    let mut last = rc::SUCCESS;
    while mapped < want && piece >= g && !ctx.interrupted() {
        let size = piece.min(want - mapped);
        let mut handle: sys::CUmemGenericAllocationHandle = 0;
        // SAFETY: a live out-pointer and a complete prop; `size` is a multiple of `g`.
        let r = unsafe { sys::cuMemCreate(&mut handle, size as usize, prop, 0) };
        if r != rc::SUCCESS {
            last = r;
            piece = piece / 2 / g * g;
            continue;
        }
        // SAFETY: the range reserved above has room for `size` more bytes at `va + mapped`.
        let r = unsafe { sys::cuMemMap(va + mapped, size as usize, 0, handle, 0) };
        if r != rc::SUCCESS {
            // SAFETY: the handle just created, released once.
            unsafe { sys::cuMemRelease(handle) };
            last = r;
            break;
        }
        pieces.push((size, handle));
        mapped += size;
    }
    steps.made(
        "map physical pieces into the range until the GPU has no more",
        "cuMemCreate + cuMemMap",
        &[rc::SUCCESS, rc::OOM],
        last,
        at,
        c0.elapsed().as_secs_f64() * 1e3,
        Some(format!(
            "{} mapped of {} free in {} piece(s)",
            format_bytes(mapped),
            format_bytes(available),
            pieces.len()
        )),
    );
    let mut usable = 0;
    if mapped > 0 {
        let access = sys::CUmemAccessDesc {
            location: sys::CUmemLocation {
                type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
                id: dev,
            },
            flags: sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        let r = steps.call(
            "make the range readable and writable by the device",
            "cuMemSetAccess",
            &[rc::SUCCESS],
            // SAFETY: `mapped` bytes from `va` are mapped above; one access descriptor.
            || unsafe { sys::cuMemSetAccess(va, mapped as usize, &access, 1) },
        );
        let w = steps.call_noted(
            "write the whole range as one block",
            "cuMemsetD8_v2",
            &[rc::SUCCESS],
            Some("the block built of pieces is one usable allocation"),
            // SAFETY: `mapped` bytes from `va` are mapped and accessible (set just above).
            || unsafe { sys::cuMemsetD8_v2(va, 0, mapped as usize) },
        );
        let s = steps.call(
            "synchronize after the write",
            "cuCtxSynchronize",
            &[rc::SUCCESS],
            // SAFETY: no arguments; our context is current.
            || unsafe { sys::cuCtxSynchronize() },
        );
        if [r, w, s].iter().all(|&x| x == rc::SUCCESS) {
            usable = mapped;
        }
    }
    let mut off = 0u64;
    for (size, handle) in pieces {
        // SAFETY: each piece mapped at `va + off` above, unmapped and released once.
        unsafe {
            sys::cuMemUnmap(va + off, size as usize);
            sys::cuMemRelease(handle);
        }
        off += size;
    }
    // SAFETY: the range reserved above, now unmapped, freed once.
    unsafe { sys::cuMemAddressFree(va, want as usize) };
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 2 * MIB;

    /// A fake allocator whose largest block is `limit`.
    fn search(max: u64, limit: u64, refine: bool) -> (u64, u32) {
        largest_block(max, G, refine, &mut |s| s <= limit, &|| false)
    }

    #[test]
    fn the_search_finds_the_largest_block_within_the_granularity() {
        let (l, tries) = search(60 << 30, 60 << 30, true);
        assert_eq!((l, tries), (60 << 30, 1), "all of it at the first try");
        let (l, _) = search(60 << 30, 192 * MIB + 5, true);
        assert_eq!(l, 192 * MIB);
        let (l, tries) = search(60 << 30, 17 << 30, true);
        assert!(l <= 17 << 30 && (17 << 30) - l < G, "{l}");
        assert!(tries < 60, "{tries}");
        let (l, _) = search(60 << 30, 17 << 30, false);
        assert!(
            l <= 17 << 30 && l as f64 >= (17u64 << 30) as f64 * LADDER,
            "{l}"
        );
        assert_eq!(
            search(60 << 30, MIB, true).0,
            0,
            "nothing at the granularity"
        );
        assert_eq!(search(G - 1, G, true), (0, 0), "less than one granule");
        let stopped = largest_block(60 << 30, G, true, &mut |_| false, &|| true);
        assert_eq!(stopped, (0, 0));
    }

    #[test]
    fn the_pattern_frees_its_large_sizes() {
        let blocks: Vec<(usize, u64)> = PATTERN.iter().copied().enumerate().collect();
        let (odd, even) = split_odd(blocks);
        let freed: u64 = odd.iter().map(|b| b.1).sum();
        let kept: u64 = even.iter().map(|b| b.1).sum();
        assert_eq!(freed, 360 * MIB);
        assert!(kept < 11 * MIB, "{kept}");
        assert_eq!(target(1000, 0.85), 850);
    }
}
