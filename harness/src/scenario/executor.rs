//! Load models (k6's executors): what each is, how long it runs, how it describes
//! and shortens itself, and, for the open ones, the arrival-rate segments that
//! `schedule.rs` turns into intended start times. A new load model is a variant
//! here and its keys in the scenario parser; the engine needs no change.

use std::time::Duration;

use super::format_duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub target: f64,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// Open model: `rate` iterations per second for `duration`.
    ConstantArrivalRate { rate: f64, duration: Duration },
    /// Open model: the rate moves linearly from stage to stage.
    RampingArrivalRate { start_rate: f64, stages: Vec<Stage> },
    /// Closed model: `vus` loops, each starting its next iteration when the last ends.
    ConstantVus { vus: u32, duration: Duration },
    /// Closed model: `vus` loops sharing `iterations` iterations.
    Iterations { vus: u32, iterations: u64, max_duration: Duration },
    /// Fresh isolates: `starts` times per arm, the target's runtime is restarted
    /// and one iteration (the steps in order) is its first traffic. Only
    /// `harness bench` runs it: it owns the local runtime it restarts.
    ColdStart { starts: u64 },
}

/// What one cold start costs on a 2-core machine (stop, `wrangler dev` start,
/// readiness): for the duration estimate only.
pub const COLD_START_COST: Duration = Duration::from_secs(3);

/// A stretch of an open model's schedule: from `start` (seconds since the run
/// began, warm-up included) for `duration` seconds, the arrival rate moving
/// linearly from `rate_from` to `rate_to` iterations per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub duration: f64,
    pub rate_from: f64,
    pub rate_to: f64,
}

impl Segment {
    /// Iterations these segments schedule in the first `t` seconds of the run:
    /// the area under the rate.
    pub fn arrivals_until(segments: &[Segment], t: f64) -> f64 {
        let mut n = 0.0;
        for &Segment { start, duration: dur, rate_from: r0, rate_to: r1 } in segments {
            let x = (t - start).clamp(0.0, dur);
            if dur > 0.0 {
                n += r0 * x + (r1 - r0) / (2.0 * dur) * x * x;
            }
        }
        n
    }
}

impl Executor {
    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::Iterations { .. } => "iterations",
            Executor::ColdStart { .. } => "cold-start",
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. })
    }

    /// Length of the measured part of the run (after warm-up); for `iterations`,
    /// the upper bound.
    pub fn duration(&self) -> Duration {
        match self {
            Executor::ConstantArrivalRate { duration, .. } | Executor::ConstantVus { duration, .. } => *duration,
            Executor::RampingArrivalRate { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            Executor::Iterations { max_duration, .. } => *max_duration,
            // Both arms, one start each per pair.
            Executor::ColdStart { starts } => COLD_START_COST * (*starts as u32) * 2,
        }
    }

    /// The arrival-rate segments of an open model, warm-up first (at the rate the
    /// measured part begins with: for a ramp, the first stage's target); `None`
    /// for the closed models.
    pub fn segments(&self, warmup: Duration) -> Option<Vec<Segment>> {
        let w = warmup.as_secs_f64();
        let mut segments = Vec::new();
        match self {
            Executor::ConstantArrivalRate { rate, duration } => {
                segments.push(Segment {
                    start: 0.0,
                    duration: w + duration.as_secs_f64(),
                    rate_from: *rate,
                    rate_to: *rate,
                });
            }
            Executor::RampingArrivalRate { start_rate, stages } => {
                let mut t = 0.0;
                if w > 0.0 {
                    let r = stages.first().map_or(*start_rate, |s| s.target);
                    segments.push(Segment { start: 0.0, duration: w, rate_from: r, rate_to: r });
                    t = w;
                }
                let mut from = *start_rate;
                for s in stages {
                    let d = s.duration.as_secs_f64();
                    segments.push(Segment { start: t, duration: d, rate_from: from, rate_to: s.target });
                    t += d;
                    from = s.target;
                }
            }
            Executor::ConstantVus { .. } | Executor::Iterations { .. } | Executor::ColdStart { .. } => return None,
        }
        Some(segments)
    }

    /// A closed model's virtual users and, for `iterations`, the iteration budget
    /// they share; `None` for the open models (they have [`Executor::segments`]).
    pub fn virtual_users(&self) -> Option<(u32, Option<u64>)> {
        match self {
            Executor::ConstantVus { vus, .. } => Some((*vus, None)),
            Executor::Iterations { vus, iterations, .. } => Some((*vus, Some(*iterations))),
            Executor::ColdStart { starts } => Some((1, Some(*starts))),
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. } => None,
        }
    }

    /// The iterations planned for the measured part: the schedule's count for the
    /// open models, the budget for `iterations`, unknown for `constant-vus`.
    pub fn planned_iterations(&self, warmup: Duration) -> Option<f64> {
        match self {
            Executor::Iterations { iterations, .. } => Some(*iterations as f64),
            Executor::ColdStart { starts } => Some(*starts as f64),
            _ => {
                let segments = self.segments(warmup)?;
                let w = warmup.as_secs_f64();
                let until = |t| Segment::arrivals_until(&segments, t);
                Some(until(w + self.duration().as_secs_f64()) - until(w))
            }
        }
    }

    /// At most `measured` of measured load, keeping the model's shape (a ramp is
    /// scaled to fit).
    pub fn shorten(&mut self, measured: Duration) {
        match self {
            Executor::ConstantArrivalRate { duration, .. } | Executor::ConstantVus { duration, .. } => {
                *duration = (*duration).min(measured)
            }
            Executor::Iterations { max_duration, .. } => *max_duration = (*max_duration).min(measured),
            Executor::ColdStart { starts } => {
                let fit = (measured.as_secs_f64() / (COLD_START_COST.as_secs_f64() * 2.0)).floor() as u64;
                *starts = (*starts).min(fit.max(2));
            }
            Executor::RampingArrivalRate { stages, .. } => {
                let total: Duration = stages.iter().map(|s| s.duration).sum();
                if total > measured {
                    let k = measured.as_secs_f64() / total.as_secs_f64();
                    for s in stages.iter_mut() {
                        s.duration = s.duration.mul_f64(k);
                    }
                }
            }
        }
    }

    /// Run an open model at `rate` iterations per second at its peak (a ramp keeps
    /// its shape, scaled). A closed model has no rate to set: its VUs pace it.
    pub fn set_rate(&mut self, rate: f64) -> Result<(), String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("a rate of {rate} iterations per second: give a positive number"));
        }
        match self {
            Executor::ConstantArrivalRate { rate: r, .. } => *r = rate,
            Executor::RampingArrivalRate { start_rate, stages } => {
                let peak = stages.iter().map(|s| s.target).fold(*start_rate, f64::max);
                if peak <= 0.0 {
                    return Err("the ramp never rises above 0 iterations per second: there is no rate to scale".into());
                }
                let k = rate / peak;
                *start_rate *= k;
                stages.iter_mut().for_each(|s| s.target *= k);
            }
            Executor::ConstantVus { .. } | Executor::Iterations { .. } | Executor::ColdStart { .. } => {
                return Err(format!(
                    "{} is a closed model paced by its VUs, not by a rate: use a scenario with an arrival-rate executor",
                    self.name()
                ))
            }
        }
        Ok(())
    }

    /// The model in plain words (`harness validate`); `warm` describes the warm-up.
    pub fn describe(&self, warm: &str, think_time: Duration) -> String {
        let planned = |w| self.planned_iterations(w).unwrap_or(0.0).round();
        match self {
            Executor::ConstantArrivalRate { rate, duration } => format!(
                "open model, constant arrival rate: {rate} iterations/s for {}{warm}; {} measured iterations planned",
                format_duration(*duration),
                planned(Duration::ZERO)
            ),
            Executor::RampingArrivalRate { start_rate, stages } => {
                let s: Vec<String> =
                    stages.iter().map(|s| format!("{} /s over {}", s.target, format_duration(s.duration))).collect();
                format!(
                    "open model, ramping arrival rate from {start_rate} /s: {}{warm}; {} measured iterations planned",
                    s.join(", then "),
                    planned(Duration::ZERO)
                )
            }
            Executor::ConstantVus { vus, duration } => format!(
                "closed model: {vus} virtual users looping for {}{warm}, think time {}",
                format_duration(*duration),
                format_duration(think_time)
            ),
            Executor::Iterations { vus, iterations, max_duration } => format!(
                "closed model: {vus} virtual users share {iterations} iterations (at most {}){warm}, think time {}",
                format_duration(*max_duration),
                format_duration(think_time)
            ),
            Executor::ColdStart { starts } => format!(
                "cold starts: {starts} fresh isolates per arm, each serving one iteration (the steps in order) as \
                 its first traffic; `harness bench` restarts the local runtime before each"
            ),
        }
    }

    /// The model's own parameters for the result file's `metadata.load`.
    pub fn parameters(&self, into: &mut serde_json::Value) {
        match self {
            Executor::ConstantArrivalRate { rate, .. } => into["rate"] = (*rate).into(),
            Executor::RampingArrivalRate { start_rate, stages } => {
                into["start_rate"] = (*start_rate).into();
                into["stages"] = stages
                    .iter()
                    .map(|s| serde_json::json!({"target": s.target, "duration_s": s.duration.as_secs_f64()}))
                    .collect();
            }
            Executor::ConstantVus { vus, .. } => into["vus"] = (*vus).into(),
            Executor::Iterations { vus, iterations, .. } => {
                into["vus"] = (*vus).into();
                into["iterations"] = (*iterations).into();
            }
            Executor::ColdStart { starts } => into["starts"] = (*starts).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_replaces_a_constant_rate_and_scales_a_ramp_to_its_peak() {
        let mut c = Executor::ConstantArrivalRate { rate: 100.0, duration: Duration::from_secs(30) };
        c.set_rate(40.0).unwrap();
        assert_eq!(c, Executor::ConstantArrivalRate { rate: 40.0, duration: Duration::from_secs(30) });
        let stage = |target| Stage { target, duration: Duration::from_secs(10) };
        let mut r = Executor::RampingArrivalRate { start_rate: 10.0, stages: vec![stage(200.0), stage(50.0)] };
        r.set_rate(100.0).unwrap();
        assert_eq!(r, Executor::RampingArrivalRate { start_rate: 5.0, stages: vec![stage(100.0), stage(25.0)] });
    }

    #[test]
    fn a_closed_model_or_a_rate_that_is_not_one_is_refused() {
        let mut v = Executor::ConstantVus { vus: 4, duration: Duration::from_secs(5) };
        assert!(v.set_rate(10.0).unwrap_err().contains("closed model"));
        let mut c = Executor::ConstantArrivalRate { rate: 100.0, duration: Duration::from_secs(30) };
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(c.set_rate(bad).is_err(), "{bad}");
        }
        let mut flat = Executor::RampingArrivalRate { start_rate: 0.0, stages: vec![] };
        assert!(flat.set_rate(10.0).is_err());
    }
}
