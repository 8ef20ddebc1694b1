//! The scripted faults of a scenario (`[[faults]]`): each starts at `at_ms`, its targets are
//! resolved to nodes when it starts, and it is healed after `duration_ms` with the same nodes.

use crate::scenario::{FaultKind, FaultSpec, Peer, Scenario, Target};
use crate::world::{broker_name, controller_name, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Heal,
}

/// Plays the scripted faults against a world as simulated time passes.
pub struct FaultPlayer {
    faults: Vec<FaultSpec>,
    /// (time, fault index, phase), in time order; ties keep file order, starts before heals.
    events: Vec<(u64, usize, Phase)>,
    next: usize,
    /// The nodes each started fault hit: (target side, peer side).
    resolved: Vec<Option<(Vec<String>, Vec<String>)>>,
}

impl FaultPlayer {
    pub fn new(s: &Scenario) -> FaultPlayer {
        let mut events = Vec::new();
        for (i, f) in s.faults.iter().enumerate() {
            events.push((f.at_ms, i, Phase::Start));
            if let Some(d) = f.duration_ms {
                events.push((f.at_ms + d, i, Phase::Heal));
            }
        }
        events.sort_by_key(|(t, i, p)| (*t, *p == Phase::Heal, *i));
        FaultPlayer { faults: s.faults.clone(), events, next: 0, resolved: vec![None; s.faults.len()] }
    }

    /// Applies every event due at or before `now_ms`.
    pub fn apply_due(&mut self, now_ms: u64, world: &mut World<'_>) {
        while let Some(&(at, i, phase)) = self.events.get(self.next) {
            if at > now_ms {
                return;
            }
            self.next += 1;
            match phase {
                Phase::Start => {
                    let sides = resolve(&self.faults[i], world);
                    apply(&self.faults[i], self.faults[i].action, &sides, world);
                    self.resolved[i] = Some(sides);
                }
                Phase::Heal => match (&self.resolved[i], self.faults[i].action) {
                    // A skew heals by moving the clocks back by as much.
                    (Some((targets, _)), FaultKind::Skew) => world.skew(targets, -self.faults[i].by_ms.unwrap_or(0), true),
                    (Some(sides), action) => {
                        if let Some(heal) = action.healed_by() {
                            apply(&self.faults[i], heal, sides, world);
                        }
                    }
                    (None, _) => {}
                },
            }
        }
    }
}

fn apply(f: &FaultSpec, action: FaultKind, (targets, peers): &(Vec<String>, Vec<String>), world: &mut World<'_>) {
    match action {
        FaultKind::Crash => targets.iter().for_each(|n| world.crash(n)),
        FaultKind::Kill => targets.iter().for_each(|n| world.kill(n)),
        FaultKind::Restart => targets.iter().for_each(|n| world.restart(n)),
        FaultKind::Partition | FaultKind::Isolate => world.partition(targets, peers),
        FaultKind::PartitionOneway => world.partition_oneway(targets, peers),
        FaultKind::Repair => world.repair(targets, peers),
        FaultKind::Hold => world.hold(targets, peers),
        FaultKind::DiskLoss => targets.iter().for_each(|n| world.disk_loss(n)),
        FaultKind::Release => world.release(targets, peers),
        FaultKind::Pause => targets.iter().for_each(|n| world.pause(n)),
        FaultKind::Resume => targets.iter().for_each(|n| world.resume(n)),
        FaultKind::Skew => world.skew(targets, f.by_ms.expect("validated: skew has by_ms"), false),
        FaultKind::HoldRequest => world.hold_request(targets, peers, f.api.as_deref().expect("validated: hold-request has an api")),
        FaultKind::ReleaseRequest => world.release_requests(targets),
    }
}

fn resolve(f: &FaultSpec, world: &World<'_>) -> (Vec<String>, Vec<String>) {
    let mut targets: Vec<String> = f.target.iter().flat_map(|t| resolve_target(t, world)).collect();
    targets.sort();
    targets.dedup();
    let others = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        world.node_names().into_iter().filter(|n| !targets.contains(n) && keep(n)).collect()
    };
    let peers = match &f.peer {
        Some(Peer::Targets(ts)) => ts.iter().flat_map(|t| resolve_target(t, world)).collect(),
        Some(Peer::Servers) => others(&|n| n.starts_with("broker-") || n.starts_with("controller-")),
        Some(Peer::All) | None => others(&|_| true),
    };
    (targets, peers)
}

/// The nodes a target names now: a partition's leader is whichever running broker leads it
/// in the highest epoch at this moment.
fn resolve_target(t: &Target, world: &World<'_>) -> Vec<String> {
    match t {
        Target::Broker(n) => vec![broker_name(*n)],
        Target::Controller(n) => vec![controller_name(*n)],
        Target::ControllerLeader => world.active_controller().into_iter().collect(),
        Target::Client { name, index } => vec![format!("{name}-{index}")],
        Target::Leader { topic, partition } => world.current_leader(topic, *partition as i32).into_iter().collect(),
        Target::Followers { topic, partition } => world.current_followers(topic, *partition as i32),
        Target::Coordinator { group } => world.current_coordinator(group).into_iter().collect(),
        Target::TxnCoordinator { producer, index } => world.current_txn_coordinator(&format!("{producer}-{index}")).into_iter().collect(),
    }
}
