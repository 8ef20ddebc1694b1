//! `QuorumStateStore`: the durable `quorum-state` file (epoch, voted-for, leader).
//!
//! Kafka's `FileQuorumStateStore`: the whole state is rewritten to `quorum-state.tmp`, fsynced,
//! renamed over `quorum-state` and the directory synced, so a crash leaves either the old or
//! the new state, never a mix. A vote is only granted after this returns.

use std::io;
use std::rc::Rc;

use super::message::NodeId;
use crate::seam::Storage;

/// The directory holding the metadata partition, as in Kafka.
pub(crate) const DIR: &str = "__cluster_metadata-0";
const PATH: &str = "__cluster_metadata-0/quorum-state";
const TMP_PATH: &str = "__cluster_metadata-0/quorum-state.tmp";
const VERSION: u8 = 0;
/// version + epoch + voted + leader + crc.
const ENCODED_LEN: usize = 1 + 4 + 4 + 4 + 4;
const NONE_ID: i32 = -1;

/// What must survive a crash for the election rules to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuorumState {
    pub epoch: i32,
    pub voted_for: Option<NodeId>,
    pub leader: Option<NodeId>,
}

pub(crate) struct QuorumStateStore {
    storage: Rc<dyn Storage>,
}

impl QuorumStateStore {
    pub fn new(storage: Rc<dyn Storage>) -> QuorumStateStore {
        QuorumStateStore { storage }
    }

    /// The last saved state; the default (epoch 0, nothing known) on a fresh disk.
    pub fn load(&self) -> io::Result<QuorumState> {
        if !self.storage.exists(PATH) {
            return Ok(QuorumState::default());
        }
        let bytes = self.storage.read_at(PATH, 0, ENCODED_LEN + 1)?;
        decode(&bytes).ok_or_else(|| {
            // The file is only ever replaced whole by rename, so damage is not a torn write.
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt {PATH}: {bytes:?}"),
            )
        })
    }

    /// Replaces the state durably: tmp file, fsync, rename, sync_dir.
    pub fn save(&self, state: &QuorumState) -> io::Result<()> {
        let bytes = encode(state);
        self.storage.create(TMP_PATH)?;
        self.storage.append(TMP_PATH, &bytes)?;
        self.storage.fsync(TMP_PATH)?;
        self.storage.rename(TMP_PATH, PATH)?;
        self.storage.sync_dir(DIR)?;
        Ok(())
    }
}

fn id_to_wire(id: Option<NodeId>) -> i32 {
    assert!(
        id != Some(NONE_ID),
        "node id {NONE_ID} is reserved for 'none'"
    );
    id.unwrap_or(NONE_ID)
}

fn id_from_wire(raw: i32) -> Option<NodeId> {
    (raw != NONE_ID).then_some(raw)
}

fn encode(state: &QuorumState) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ENCODED_LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&state.epoch.to_be_bytes());
    bytes.extend_from_slice(&id_to_wire(state.voted_for).to_be_bytes());
    bytes.extend_from_slice(&id_to_wire(state.leader).to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes.len(), ENCODED_LEN);
    bytes
}

fn decode(bytes: &[u8]) -> Option<QuorumState> {
    if bytes.len() != ENCODED_LEN || bytes[0] != VERSION {
        return None;
    }
    let (body, crc) = bytes.split_at(ENCODED_LEN - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let int_at = |at: usize| i32::from_be_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    Some(QuorumState {
        epoch: int_at(1),
        voted_for: id_from_wire(int_at(5)),
        leader: id_from_wire(int_at(9)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::MemStorage;

    #[test]
    fn a_fresh_disk_has_epoch_zero_and_no_vote() {
        let store = QuorumStateStore::new(Rc::new(MemStorage::new()));
        assert_eq!(store.load().unwrap(), QuorumState::default());
    }

    #[test]
    fn a_saved_state_survives_a_machine_crash() {
        let disk = MemStorage::new();
        let store = QuorumStateStore::new(Rc::new(disk.clone()));
        let state = QuorumState {
            epoch: 7,
            voted_for: Some(2),
            leader: Some(3),
        };
        store.save(&state).unwrap();
        disk.crash(Some(1));
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn a_crash_keeps_either_the_old_or_the_new_state() {
        let disk = MemStorage::new();
        let store = QuorumStateStore::new(Rc::new(disk.clone()));
        let old = QuorumState {
            epoch: 1,
            voted_for: Some(1),
            leader: None,
        };
        store.save(&old).unwrap();
        // A save cut short after the tmp file was written but before the rename.
        disk.create(TMP_PATH).unwrap();
        disk.append(TMP_PATH, &encode(&QuorumState { epoch: 2, ..old }))
            .unwrap();
        disk.crash(Some(9));
        assert_eq!(store.load().unwrap(), old);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_default() {
        let disk = MemStorage::new();
        let store = QuorumStateStore::new(Rc::new(disk.clone()));
        store
            .save(&QuorumState {
                epoch: 4,
                voted_for: None,
                leader: None,
            })
            .unwrap();
        disk.truncate(PATH, 3).unwrap();
        let err = store.load().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
