//! Swarm testing (`run --swarm`, after TigerBeetle's `options_swarm`): each seed also draws
//! which fault kinds are on and how often faults come, so a sweep covers many fault mixes
//! instead of one. The draws come from the seed, and are printed with it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{FaultKind, Nemesis, NemesisTargets, Scenario};
use crate::world::derive_seed;

/// Kinds a swarm draws from when the scenario has no `[nemesis]` of its own: the ones that
/// heal without data loss in Kafka's model, so a safe configuration should stay clean.
const DEFAULT_KINDS: &[FaultKind] = &[FaultKind::Crash, FaultKind::Partition, FaultKind::Isolate, FaultKind::Hold];

/// The scenario as this seed's swarm draw runs it, and a one-line description of the draw.
pub fn draw(s: &Scenario, seed: u64) -> (Scenario, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "swarm"));
    let base = s.nemesis.clone().unwrap_or(Nemesis {
        kinds: DEFAULT_KINDS.to_vec(),
        interval_ms: (2_000, 10_000),
        duration_ms: (1_000, 5_000),
        targets: NemesisTargets::Brokers,
    });
    let mut kinds: Vec<FaultKind> = base.kinds.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
    if kinds.is_empty() {
        kinds.push(base.kinds[rng.random_range(0..base.kinds.len())]);
    }
    // Between four times as frequent and twice as rare as the scenario says.
    let lo = rng.random_range((base.interval_ms.0 / 4).max(1)..=base.interval_ms.0 * 2);
    let hi = rng.random_range(lo..=(base.interval_ms.1 * 2).max(lo));
    let nemesis = Nemesis { kinds: kinds.clone(), interval_ms: (lo, hi), ..base };
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let description = format!("swarm kinds={names:?} interval_ms=[{lo}, {hi}]");
    (Scenario { nemesis: Some(nemesis), ..s.clone() }, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let text = "name = \"s\"\nduration_ms = 1000\n[expect]\noutcome = \"clean\"\n[cluster]\nbrokers = 3\n";
        Scenario::parse("s.toml", text).unwrap()
    }

    #[test]
    fn each_seed_draws_its_own_non_empty_mix_and_the_same_seed_the_same_one() {
        let s = scenario();
        let draws: Vec<String> = (0..20).map(|seed| draw(&s, seed).1).collect();
        assert_eq!(draw(&s, 3).1, draws[3]);
        let distinct: std::collections::BTreeSet<&String> = draws.iter().collect();
        assert!(distinct.len() > 5, "swarm draws hardly vary: {draws:?}");
        for seed in 0..20 {
            let (run, _) = draw(&s, seed);
            let n = run.nemesis.unwrap();
            assert!(!n.kinds.is_empty() && n.kinds.iter().all(|k| DEFAULT_KINDS.contains(k)));
            assert!(n.interval_ms.0 >= 1 && n.interval_ms.0 <= n.interval_ms.1);
        }
    }
}
