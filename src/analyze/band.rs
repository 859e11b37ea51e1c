//! How far a metric may move in its bad direction before `compare` calls it a regression,
//! from the evidence: a floor per kind, the spread of the samples on both sides, and with
//! several baselines how far their runs were apart (docs/compare.md, "The band").

use serde::Serialize;

use crate::report::{Better, Metric, MetricKind, Spread};

/// Bands are this many combined standard deviations wide.
pub const SIGMAS: f64 = 3.0;

/// The least band of a kind, as a fraction. single_shot and volatile metrics are information
/// (see [`gates`]): their floor only decides when they are listed as having moved.
pub fn floor(kind: MetricKind) -> f64 {
    match kind {
        // Pinned, device-local and NVLink rates repeat within ~1 % on one box.
        MetricKind::Throughput => 0.05,
        // Sizes move by an allocator granule at most; any count change is beyond it.
        MetricKind::Exact => 0.001,
        // Reruns of one box moved pageable copies by 25 %.
        MetricKind::Volatile => 0.30,
        // … and one-off timings by 45 %.
        MetricKind::SingleShot => 1.0,
    }
}

/// Whether a move beyond the band is a regression by default (`--tol NAME=…` makes any
/// metric one).
pub fn gates(kind: MetricKind) -> bool {
    matches!(kind, MetricKind::Throughput | MetricKind::Exact)
}

/// What set a metric's band.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BandSource {
    /// `--tol NAME=PCT` names the metric.
    Tol,
    /// `--tolerance PCT` for every metric.
    Tolerance,
    /// The kind's floor: the evidence asks for less.
    Floor,
    /// The spread of the samples behind the values.
    Spread,
    /// How far the baseline runs were apart.
    History,
}

impl BandSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BandSource::Tol => "--tol",
            BandSource::Tolerance => "--tolerance",
            BandSource::Floor => "floor",
            BandSource::Spread => "spread",
            BandSource::History => "history",
        }
    }
}

/// A metric's band and what it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Fraction of the baseline value.
    pub tolerance: f64,
    pub source: BandSource,
    /// Combined relative standard deviation of the difference; None without any spread.
    pub noise: Option<f64>,
}

/// Median of values (0 for none).
pub fn median(values: &[f64]) -> f64 {
    Spread::of(values).map(|s| s.median).unwrap_or(0.0)
}

/// The band of a metric compared between `baselines` (every baseline run that has it, at
/// least one) and `current`, with `reference` the baseline value it is compared against.
///
/// σ² = (median relative σ of the baselines' samples)² + (the current's)² + (relative σ
/// between the baseline runs' values)², each σ = 1.4826 × MAD / |median|; the band is the
/// largest of the kind's floor, [`SIGMAS`] × σ, and the furthest a baseline run already sat
/// from the reference in the bad direction.
pub fn evidence(
    kind: MetricKind,
    better: Better,
    baselines: &[&Metric],
    current: &Metric,
    reference: f64,
) -> Band {
    let sq = |x: f64| x * x;
    let within: Vec<f64> = baselines
        .iter()
        .filter_map(|m| m.spread.as_ref())
        .map(Spread::relative_sigma)
        .collect();
    let within_base = (!within.is_empty()).then(|| median(&within));
    let within_cur = current.spread.as_ref().map(Spread::relative_sigma);
    let values: Vec<f64> = baselines.iter().map(|m| m.value).collect();
    let between = (values.len() > 1)
        .then(|| Spread::of(&values))
        .flatten()
        .map(|s| s.relative_sigma());
    let parts = [within_base, within_cur, between];
    let noise = parts
        .iter()
        .any(Option::is_some)
        .then(|| parts.iter().flatten().map(|&x| sq(x)).sum::<f64>().sqrt());
    let spread_band = noise.map_or(0.0, |n| SIGMAS * n);
    let excursion = if reference == 0.0 || !reference.is_finite() {
        0.0
    } else {
        values
            .iter()
            .map(|v| match better {
                Better::Higher => (reference - v) / reference.abs(),
                Better::Lower => (v - reference) / reference.abs(),
            })
            .fold(0.0, f64::max)
    };
    // A spread band that only the spread between runs widened is history's doing.
    let history_only = between.unwrap_or(0.0) > 0.0
        && SIGMAS * (sq(within_base.unwrap_or(0.0)) + sq(within_cur.unwrap_or(0.0))).sqrt()
            <= floor(kind);
    let mut band = Band {
        tolerance: floor(kind),
        source: BandSource::Floor,
        noise,
    };
    if spread_band > band.tolerance {
        band.tolerance = spread_band;
        band.source = if history_only {
            BandSource::History
        } else {
            BandSource::Spread
        };
    }
    if excursion > band.tolerance {
        band.tolerance = excursion;
        band.source = BandSource::History;
    }
    band
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(values: &[f64]) -> Metric {
        let s = Spread::of(values).unwrap();
        Metric::new(s.median, "GB/s", Better::Higher)
            .kind(MetricKind::Throughput)
            .spread(Some(s))
    }

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn a_steady_path_gets_the_floor() {
        let b = sampled(&[55.0, 55.1, 54.9]);
        let c = sampled(&[54.8, 54.9, 55.0]);
        let band = evidence(MetricKind::Throughput, Better::Higher, &[&b], &c, b.value);
        assert_eq!(band.tolerance, 0.05);
        assert_eq!(band.source, BandSource::Floor);
        assert!(band.noise.unwrap() < 0.01);
    }

    #[test]
    fn a_noisy_path_widens_its_band_by_its_spread() {
        // One of three samples far off does not move MAD; two of three do.
        let b = sampled(&[41.2, 50.6, 55.2]);
        let c = sampled(&[54.4, 54.5, 54.3]);
        let band = evidence(MetricKind::Throughput, Better::Higher, &[&b], &c, b.value);
        let sigma_b = 1.4826 * 4.6 / 50.6;
        assert_eq!(band.source, BandSource::Spread);
        assert!(
            (band.tolerance - SIGMAS * sigma_b).abs() < 0.002,
            "{band:?}"
        );
    }

    #[test]
    fn old_metrics_without_spread_have_only_the_floor() {
        let b = Metric::new(50.0, "ms", Better::Lower);
        let band = evidence(MetricKind::SingleShot, Better::Lower, &[&b], &b, 50.0);
        assert_eq!(
            (band.tolerance, band.source, band.noise),
            (1.0, BandSource::Floor, None)
        );
        assert_eq!(
            evidence(MetricKind::Exact, Better::Lower, &[&b], &b, 50.0).tolerance,
            0.001
        );
    }

    #[test]
    fn history_covers_every_baseline_run() {
        // Five runs, one of them 8 % below the median: a current run as low is within.
        let runs: Vec<Metric> = [55.0, 55.2, 54.9, 50.6, 55.1]
            .iter()
            .map(|&v| Metric::new(v, "GB/s", Better::Higher))
            .collect();
        let refs: Vec<&Metric> = runs.iter().collect();
        let reference = median(&runs.iter().map(|m| m.value).collect::<Vec<_>>());
        assert_eq!(reference, 55.0);
        let band = evidence(
            MetricKind::Throughput,
            Better::Higher,
            &refs,
            &runs[3],
            reference,
        );
        assert_eq!(band.source, BandSource::History);
        assert!((band.tolerance - 4.4 / 55.0).abs() < 1e-9, "{band:?}");
        // Runs that agree leave the floor in place.
        let tight: Vec<Metric> = [55.0, 55.1, 54.9]
            .iter()
            .map(|&v| Metric::new(v, "GB/s", Better::Higher))
            .collect();
        let refs: Vec<&Metric> = tight.iter().collect();
        let band = evidence(
            MetricKind::Throughput,
            Better::Higher,
            &refs,
            &tight[0],
            55.0,
        );
        assert_eq!((band.tolerance, band.source), (0.05, BandSource::Floor));
    }

    #[test]
    fn only_throughput_and_exact_gate() {
        let gating: Vec<MetricKind> = MetricKind::ALL.into_iter().filter(|&k| gates(k)).collect();
        assert_eq!(gating, vec![MetricKind::Throughput, MetricKind::Exact]);
    }
}
