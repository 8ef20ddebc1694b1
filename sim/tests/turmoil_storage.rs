//! The turmoil `Storage` adapter is real code: the log runs over it, and a machine crash keeps
//! exactly what was fsynced.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use sim::engine::TurmoilStorage;
use stormlog::log::{build_test_batch, Log, LogConfig};
use stormlog::seam::Storage;

#[test]
fn a_crash_keeps_only_the_fsynced_part_of_the_log() {
    let mut sim = turmoil::Builder::new().epoch(std::time::UNIX_EPOCH).simulation_duration(Duration::from_secs(10)).build();
    // (incarnation, LEO seen at start)
    let seen: Rc<Cell<(u32, i64)>> = Rc::new(Cell::new((0, -1)));
    let probe = seen.clone();
    sim.host("node", move || {
        let seen = probe.clone();
        async move {
            let storage: Rc<dyn Storage> = Rc::new(TurmoilStorage);
            let mut log = Log::open(storage, "orders-0", LogConfig::default()).expect("open");
            let (n, _) = seen.get();
            seen.set((n + 1, log.log_end_offset()));
            if log.log_end_offset() == 0 {
                for _ in 0..3 {
                    log.append_as_leader(&build_test_batch(0, &[b"kept"]), 0).unwrap();
                }
                log.flush().unwrap();
                log.append_as_leader(&build_test_batch(0, &[b"lost"]), 0).unwrap();
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    for _ in 0..10 {
        sim.step().unwrap();
    }
    assert_eq!(seen.get(), (1, 0));
    sim.crash("node");
    sim.bounce("node");
    for _ in 0..10 {
        sim.step().unwrap();
    }
    assert_eq!(seen.get(), (2, 3), "the fsynced 3 records survive, the unsynced one does not");
}
