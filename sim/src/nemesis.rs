//! The random nemesis (`[nemesis]`): during the chaos phase it draws faults from its own
//! seeded stream (which kind, which nodes, how long) at intervals drawn from the scenario's
//! range, heals each after its drawn duration, and lets faults overlap. Every fault and heal
//! is a trace event (the world's fault verbs record them).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{FaultKind, FaultSpec, Nemesis, NemesisTargets, Peer, Target};
use crate::world::{derive_seed, Role, World};

/// A drawn fault waiting for its heal.
struct Active {
    heal_at_ms: u64,
    kind: FaultKind,
    sides: (Vec<String>, Vec<String>),
}

pub struct NemesisPlayer {
    spec: Nemesis,
    rng: ChaCha8Rng,
    next_at_ms: u64,
    active: Vec<Active>,
    /// Every fault drawn so far, as a scripted fault with the nodes it hit: the explicit
    /// schedule that `shrink` starts from.
    pub drawn: Vec<FaultSpec>,
}

impl NemesisPlayer {
    pub fn new(spec: &Nemesis, seed: u64) -> NemesisPlayer {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "nemesis"));
        let first = rng.random_range(spec.interval_ms.0..=spec.interval_ms.1);
        NemesisPlayer { spec: spec.clone(), rng, next_at_ms: first, active: Vec::new(), drawn: Vec::new() }
    }

    /// Heals what is due and starts a new fault when its time has come.
    pub fn apply_due(&mut self, now_ms: u64, world: &mut World<'_>) {
        let (due, rest): (Vec<Active>, Vec<Active>) = self.active.drain(..).partition(|a| a.heal_at_ms <= now_ms);
        self.active = rest;
        for a in due {
            heal(a.kind, &a.sides, world);
        }
        if now_ms < self.next_at_ms {
            return;
        }
        self.next_at_ms = now_ms + self.rng.random_range(self.spec.interval_ms.0..=self.spec.interval_ms.1);
        let kind = self.spec.kinds[self.rng.random_range(0..self.spec.kinds.len())];
        let Some(sides) = self.draw_sides(kind, world) else { return };
        start(kind, &sides, world);
        let lasts = self.rng.random_range(self.spec.duration_ms.0..=self.spec.duration_ms.1);
        self.drawn.push(scripted(now_ms, kind, &sides, lasts));
        self.active.push(Active { heal_at_ms: now_ms + lasts, kind, sides });
    }

    /// The nodes a fault of `kind` hits: for `partition`, two random non-empty sides of the
    /// servers (clients keep reaching both), unless the targets are clients; for `isolate`,
    /// one target against every other node; otherwise one target.
    fn draw_sides(&mut self, kind: FaultKind, world: &World<'_>) -> Option<(Vec<String>, Vec<String>)> {
        let pool = self.pool(world);
        if pool.is_empty() {
            return None;
        }
        let everyone = world.node_names();
        match kind {
            FaultKind::Partition if !matches!(self.spec.targets, NemesisTargets::Producers | NemesisTargets::Consumers) => {
                let servers: Vec<String> = everyone.iter().filter(|n| is_server(n)).cloned().collect();
                let mut a: Vec<String> = Vec::new();
                let mut b: Vec<String> = Vec::new();
                for s in servers {
                    if self.rng.random_bool(0.5) { a.push(s) } else { b.push(s) }
                }
                if a.is_empty() || b.is_empty() {
                    let moved = if a.is_empty() { b.pop() } else { a.pop() };
                    if a.is_empty() { a.extend(moved) } else { b.extend(moved) }
                }
                (!a.is_empty() && !b.is_empty()).then_some((a, b))
            }
            _ => {
                let target = pool[self.rng.random_range(0..pool.len())].clone();
                let others = everyone.into_iter().filter(|n| *n != target).collect();
                Some((vec![target], others))
            }
        }
    }

    fn pool(&self, world: &World<'_>) -> Vec<String> {
        match self.spec.targets {
            NemesisTargets::Brokers => world.nodes_with_role(Role::Broker),
            NemesisTargets::Controllers => world.nodes_with_role(Role::Controller),
            NemesisTargets::Producers => world.nodes_with_role(Role::Producer),
            NemesisTargets::Consumers => world.nodes_with_role(Role::Consumer),
            NemesisTargets::Leaders => world.current_leaders(),
            NemesisTargets::Any => world.node_names(),
        }
    }
}

/// A drawn fault as the scripted fault that does the same to the same nodes: a partition
/// names both sides; isolate and hold cut the target from every other node, which is what a
/// scripted fault without `peer` means.
fn scripted(at_ms: u64, kind: FaultKind, (a, b): &(Vec<String>, Vec<String>), lasts_ms: u64) -> FaultSpec {
    let targets = |nodes: &[String]| -> Vec<Target> { nodes.iter().map(|n| Target::parse(n).expect("node names are targets")).collect() };
    let peer = kind.takes_peer().then(|| Peer::Targets(targets(b)));
    FaultSpec { at_ms, action: kind, target: targets(a), peer, duration_ms: Some(lasts_ms), by_ms: None, api: None }
}

fn is_server(name: &str) -> bool {
    name.starts_with("broker-") || name.starts_with("controller-")
}

fn start(kind: FaultKind, (a, b): &(Vec<String>, Vec<String>), world: &mut World<'_>) {
    match kind {
        FaultKind::Crash => a.iter().for_each(|n| world.crash(n)),
        FaultKind::Kill => a.iter().for_each(|n| world.kill(n)),
        FaultKind::Partition | FaultKind::Isolate => world.partition(a, b),
        FaultKind::PartitionOneway => world.partition_oneway(a, b),
        FaultKind::Hold => world.hold(a, b),
        FaultKind::Pause => a.iter().for_each(|n| world.pause(n)),
        // `support::check_supported` refuses the other kinds for the nemesis.
        other => unreachable!("nemesis kind {} passed the support check", other.name()),
    }
}

fn heal(kind: FaultKind, (a, b): &(Vec<String>, Vec<String>), world: &mut World<'_>) {
    match kind {
        FaultKind::Crash | FaultKind::Kill => a.iter().for_each(|n| world.restart(n)),
        FaultKind::Partition | FaultKind::Isolate | FaultKind::PartitionOneway => world.repair(a, b),
        FaultKind::Hold => world.release(a, b),
        FaultKind::Pause => a.iter().for_each(|n| world.resume(n)),
        other => unreachable!("nemesis kind {} passed the support check", other.name()),
    }
}
