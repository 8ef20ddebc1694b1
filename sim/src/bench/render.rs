//! The bench as a person reads it: one table of per-engine numbers, then each scaling series
//! with its fitted exponent. The JSON form is `BenchReport` serialized.

use std::fmt::Write;

use super::summary::{BenchReport, EngineReport, Series, Summary};

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn exponent(k: Option<f64>) -> String {
    k.map_or_else(|| "n/a".to_string(), |k| format!("{k:.2}"))
}

fn memory(mb: Option<f64>) -> String {
    mb.map_or_else(|| "n/a".to_string(), |mb| format!("{mb:.0} MB"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
}

fn times(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}x"))
}

fn engine_row(out: &mut String, e: &EngineReport) {
    let (Some(s), Some(t)) = (&e.standard, &e.throughput) else {
        let _ = writeln!(out, "{:<8} {}", e.engine, e.status);
        return;
    };
    let _ = writeln!(
        out,
        "{:<8} {:>8.1}x {:>11} {:>11} {:>10.1} {:>9} {:>9.0} {:>10} {:>9} {:>8}",
        e.engine,
        s.sim_s_per_wall_s,
        thousands(s.events_per_wall_s),
        thousands(s.frames_per_wall_s),
        t.seeds_per_min,
        memory(s.peak_rss_mb),
        s.wall_ms_per_seed,
        ms(s.bare_engine_wall_ms_per_seed),
        times(s.bare_engine_sim_s_per_wall_s),
        times(s.ratio_to_bare_engine),
    );
}

fn anomalies(out: &mut String, s: &Summary, engine: &str) {
    for (seed, kinds) in &s.seeds_with_anomalies {
        let _ = writeln!(out, "  note: {engine} seed {seed} (brokers {}, messages x{}) showed {}", s.variant.brokers, s.variant.rate_x, kinds.join(", "));
    }
}

fn series(out: &mut String, engine: &str, s: &Series) {
    let label = if s.dimension == "messages" { "messages" } else { "brokers" };
    let what = if s.dimension == "messages" { " (every producer's rate times x)" } else { "" };
    let _ = writeln!(out, "\n{engine}: wall time against {label}{what}");
    let _ = writeln!(out, "  {:<9} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10} {:>10} {:>8}", label, "seeds", "acked", "frames", "events", "peak mem", "wall ms", "bare ms", "vs bare");
    for (x, p) in &s.points {
        let name = if s.dimension == "messages" { format!("x{x}") } else { x.to_string() };
        let _ = writeln!(
            out,
            "  {:<9} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10.0} {:>10} {:>8}",
            name,
            p.seeds.len(),
            thousands(p.acked_sends_per_seed),
            thousands(p.frames_per_seed),
            thousands(p.events_per_seed),
            memory(p.peak_rss_mb),
            p.wall_ms_per_seed,
            ms(p.bare_engine_wall_ms_per_seed),
            times(p.ratio_to_bare_engine)
        );
    }
    let _ = writeln!(
        out,
        "  fitted exponent: wall ~ {label}^{} (against frames carried: ^{}; bare engine: ^{})",
        exponent(s.exponent),
        exponent(s.exponent_vs_frames),
        exponent(s.bare_engine_exponent)
    );
    for (_, p) in &s.points {
        anomalies(out, p, engine);
    }
}

/// The human table.
pub fn human(r: &BenchReport) -> String {
    let s = &r.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stormlog bench: {} ({} brokers, {} controller(s), {} partitions RF={}, {} producers at {}/s, {} consumers, {} s chaos + {} s heal)",
        s.name,
        s.brokers,
        s.controllers,
        s.partitions,
        s.replication_factor,
        s.producers,
        s.producer_rate_per_sec,
        s.consumers,
        s.duration_ms / 1000,
        s.heal_ms / 1000
    );
    let _ = writeln!(out, "command: {}", r.command);
    let jobs = r.engines.iter().find_map(|e| e.throughput.as_ref().map(|t| t.jobs)).unwrap_or(2);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:>9} {:>11} {:>11} {:>10} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "engine", "sim/wall", "events/s", "frames/s", "seeds/min", "peak mem", "wall ms", "bare ms", "bare sim/", "vs bare"
    );
    let _ = writeln!(out, "{:<8} {:>9} {:>11} {:>11} {:>10} {:>9} {:>9} {:>10} {:>9} {:>8}", "", "", "", "", format!("--jobs {jobs}"), "per sim", "per seed", "per seed", "wall", "");
    for e in &r.engines {
        engine_row(&mut out, e);
    }
    for e in &r.engines {
        if let Some(s) = &e.standard {
            let _ = writeln!(
                out,
                "  {}: seeds {:?}: {} events, {} frames, {} acknowledged sends per seed; {:.1} seeds/min one at a time; bare engine with no traffic {} ms per seed",
                e.engine,
                s.seeds,
                thousands(s.events_per_seed),
                thousands(s.frames_per_seed),
                thousands(s.acked_sends_per_seed),
                e.throughput.as_ref().map_or(0.0, |t| t.seeds_per_min_one_job),
                ms(s.idle_bare_engine_wall_ms_per_seed)
            );
            anomalies(&mut out, s, &e.engine);
        }
    }
    for e in &r.engines {
        for s in &e.scaling {
            series(&mut out, &e.engine, s);
        }
    }
    let _ = writeln!(out);
    for (k, v) in &r.definitions {
        let _ = writeln!(out, "{k}: {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
