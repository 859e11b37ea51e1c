//! The CUDA shim's configuration, written by gpu-doctor and read by the shim: one
//! line in `GPU_DOCTOR_SHIM_CONFIG`, `key=value` pairs separated by `;`. Pure Rust, no
//! allocation-sensitive code, unit-tested without CUDA.
//!
//! Keys: `limit=BYTES` (per-device memory cap), `trace=1` (context trace), `leaks=1` (every
//! allocation and free as an event, with a native backtrace of `frames=N` frames: `leak-check`),
//! and one failpoint: `call=BASE_NAME;code=N;nth=N;every=N;prob=P;seed=S;times=N;delay_us=N`.

/// Environment variable holding the configuration line.
pub const ENV_CONFIG: &str = "GPU_DOCTOR_SHIM_CONFIG";
/// Environment variable holding the events file path (JSON lines, opened O_APPEND).
pub const ENV_EVENTS: &str = "GPU_DOCTOR_SHIM_EVENTS";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Per-device cap on the bytes the program may hold.
    pub limit: Option<u64>,
    /// Record context operations.
    pub trace: bool,
    /// Record every allocation and free with its call site (`leak-check`).
    pub leaks: bool,
    /// Frames of each allocation's backtrace (leaks only; 0: [`DEFAULT_FRAMES`]).
    pub frames: u32,
    pub fail: Option<Failpoint>,
}

/// Frames kept per allocation when `frames` is not given: enough to reach the program's own code
/// through a runtime (cudaMalloc → cudart → the caller) and a framework's allocator.
pub const DEFAULT_FRAMES: u32 = 8;
/// The most frames the shim keeps per allocation.
pub const MAX_FRAMES: u32 = 24;

impl Config {
    /// Backtrace depth in force: `frames`, or the default.
    pub fn frames(&self) -> u32 {
        if self.frames == 0 {
            DEFAULT_FRAMES
        } else {
            self.frames.min(MAX_FRAMES)
        }
    }
}

/// One failpoint: which calls fail, with which CUresult, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Failpoint {
    /// Base name of the driver call (`cuLaunchKernel`, `cuMemAlloc`): every variant
    /// (`_v2`, `_ptsz`, `_ptds`) counts and can fire.
    pub call: String,
    /// CUresult to return; 0 means "delay only, then make the real call".
    pub code: u32,
    pub schedule: Schedule,
    /// Sleep this long before the call when the schedule fires (synchronising calls).
    pub delay_us: u64,
}

/// When a failpoint fires, as a function of the 1-based call index: deterministic, so the
/// same program with the same options fails at the same calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// First call that may fire (1 = the first call).
    pub nth: u64,
    /// After `nth`, fire every `every` calls (0: only at `nth`).
    pub every: u64,
    /// Fire each call from `nth` on with this probability, reproducibly from `seed`.
    pub probability: Option<f64>,
    pub seed: u64,
    /// At most this many firings (0: no cap).
    pub times: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            nth: 1,
            every: 0,
            probability: None,
            seed: 0,
            times: 0,
        }
    }
}

impl Schedule {
    /// Whether call number `index` (1-based) fires, before the `times` cap.
    pub fn fires(&self, index: u64) -> bool {
        if index < self.nth.max(1) {
            return false;
        }
        if let Some(p) = self.probability {
            return unit_interval(splitmix64(self.seed ^ index.wrapping_mul(GOLDEN))) < p;
        }
        if self.every == 0 {
            index == self.nth.max(1)
        } else {
            (index - self.nth.max(1)).is_multiple_of(self.every)
        }
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64 (Steele, Lea, Flood 2014): a counter-based hash, so call `i`'s decision does not
/// depend on the order threads make their calls in.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a u64 to [0, 1) with 53 bits of precision.
pub fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Config {
    /// Parses the configuration line. Unknown keys and bad values are errors (the shim then
    /// does nothing but report the error).
    pub fn parse(line: &str) -> Result<Config, String> {
        let mut cfg = Config::default();
        let mut call: Option<String> = None;
        let mut sched = Schedule::default();
        let mut code: Option<u32> = None;
        let mut delay_us = 0u64;
        let mut fp_keys = false;
        for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: '{v}' is not a non-negative integer"))
            };
            match k {
                "limit" => cfg.limit = Some(num(v)?),
                "trace" => cfg.trace = v == "1" || v == "true",
                "leaks" => cfg.leaks = v == "1" || v == "true",
                "frames" => {
                    let n = num(v)?;
                    if n == 0 || n > u64::from(MAX_FRAMES) {
                        return Err(format!("frames: {n} is not in 1..={MAX_FRAMES}"));
                    }
                    cfg.frames = n as u32;
                }
                "call" => {
                    if v.is_empty() || !v.starts_with("cu") {
                        return Err(format!("call: '{v}' is not a driver entry point"));
                    }
                    call = Some(v.to_string())
                }
                "code" => {
                    code = Some(
                        u32::try_from(num(v)?).map_err(|_| format!("code: {v} is too large"))?,
                    );
                    fp_keys = true;
                }
                "nth" => {
                    sched.nth = num(v)?;
                    if sched.nth == 0 {
                        return Err("nth: calls are counted from 1".into());
                    }
                    fp_keys = true;
                }
                "every" => {
                    sched.every = num(v)?;
                    fp_keys = true;
                }
                "prob" => {
                    let p: f64 = v
                        .parse()
                        .map_err(|_| format!("prob: '{v}' is not a number"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(format!("prob: {p} is not in [0, 1]"));
                    }
                    sched.probability = Some(p);
                    fp_keys = true;
                }
                "seed" => {
                    sched.seed = num(v)?;
                    fp_keys = true;
                }
                "times" => {
                    sched.times = num(v)?;
                    fp_keys = true;
                }
                "delay_us" => {
                    delay_us = num(v)?;
                    fp_keys = true;
                }
                _ => return Err(format!("unknown key '{k}'")),
            }
        }
        match call {
            Some(call) => {
                let code = code.unwrap_or(0);
                if code == 0 && delay_us == 0 {
                    return Err(format!("call={call}: needs a code or a delay"));
                }
                cfg.fail = Some(Failpoint {
                    call,
                    code,
                    schedule: sched,
                    delay_us,
                });
            }
            None if fp_keys => return Err("failpoint keys without call=".into()),
            None => {}
        }
        Ok(cfg)
    }

    /// The configuration line [`Config::parse`] reads back.
    pub fn encode(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(l) = self.limit {
            parts.push(format!("limit={l}"));
        }
        if self.trace {
            parts.push("trace=1".into());
        }
        if self.leaks {
            parts.push("leaks=1".into());
        }
        if self.frames > 0 {
            parts.push(format!("frames={}", self.frames));
        }
        if let Some(f) = &self.fail {
            parts.push(format!("call={}", f.call));
            parts.push(format!("code={}", f.code));
            parts.push(format!("nth={}", f.schedule.nth.max(1)));
            parts.push(format!("every={}", f.schedule.every));
            if let Some(p) = f.schedule.probability {
                parts.push(format!("prob={p}"));
            }
            parts.push(format!("seed={}", f.schedule.seed));
            parts.push(format!("times={}", f.schedule.times));
            parts.push(format!("delay_us={}", f.delay_us));
        }
        parts.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(nth: u64, every: u64) -> Schedule {
        Schedule {
            nth,
            every,
            ..Schedule::default()
        }
    }

    fn fired(s: &Schedule, upto: u64) -> Vec<u64> {
        (1..=upto).filter(|i| s.fires(*i)).collect()
    }

    #[test]
    fn nth_fires_once() {
        assert_eq!(fired(&sched(3, 0), 20), vec![3]);
        assert_eq!(fired(&sched(1, 0), 5), vec![1]);
    }

    #[test]
    fn every_fires_from_nth_on() {
        assert_eq!(fired(&sched(3, 4), 20), vec![3, 7, 11, 15, 19]);
        assert_eq!(fired(&sched(1, 1), 4), vec![1, 2, 3, 4]);
    }

    #[test]
    fn probability_is_reproducible_and_close_to_p() {
        let s = Schedule {
            nth: 10,
            probability: Some(0.25),
            seed: 42,
            ..Schedule::default()
        };
        let a = fired(&s, 20_000);
        let b = fired(&s, 20_000);
        assert_eq!(a, b, "same seed, same calls");
        assert!(a.iter().all(|i| *i >= 10));
        let rate = a.len() as f64 / 19_991.0;
        assert!((rate - 0.25).abs() < 0.02, "rate {rate}");
        let other = Schedule { seed: 43, ..s };
        assert_ne!(a, fired(&other, 20_000), "another seed, other calls");
        let never = Schedule {
            probability: Some(0.0),
            ..s
        };
        assert!(fired(&never, 1000).is_empty());
        let always = Schedule {
            probability: Some(1.0),
            ..s
        };
        assert_eq!(fired(&always, 100).len(), 91);
    }

    #[test]
    fn splitmix_known_value() {
        // First output of splitmix64 seeded with 0 (reference implementation).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn encode_parse_round_trip() {
        let cfg = Config {
            limit: Some(4 << 30),
            trace: true,
            leaks: true,
            frames: 12,
            fail: Some(Failpoint {
                call: "cuLaunchKernel".into(),
                code: 719,
                schedule: Schedule {
                    nth: 100,
                    every: 7,
                    probability: Some(0.5),
                    seed: 9,
                    times: 3,
                },
                delay_us: 1500,
            }),
        };
        assert_eq!(Config::parse(&cfg.encode()).unwrap(), cfg);
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(
            Config::parse("limit=1024").unwrap().limit,
            Some(1024),
            "oom only"
        );
        let leaks = Config::parse("leaks=1").unwrap();
        assert!(leaks.leaks && leaks.limit.is_none());
        assert_eq!(leaks.frames(), DEFAULT_FRAMES);
    }

    #[test]
    fn bad_lines_are_rejected() {
        for bad in [
            "limit=x",
            "limit",
            "colour=red",
            "code=2",
            "call=cuMemAlloc",
            "call=malloc;code=2",
            "call=cuMemAlloc;code=2;nth=0",
            "call=cuMemAlloc;code=2;prob=1.5",
            "frames=0",
            "frames=99",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad} must be rejected");
        }
    }
}
