//! Bytes off a socket, as a broker and a controller take them: split into frames, each decoded
//! as a request against both nodes' API tables, then handled by a broker core with no
//! partitions (decode -> handle -> encode). Nothing may panic, abort or allocate what the
//! input only claims. The first byte picks how the input is cut into socket reads.

#![no_main]

use std::rc::Rc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use stormlog::broker::{BrokerConfig, BrokerCore};
use stormlog::ids::BrokerId;
use stormlog::observe::Tracer;
use stormlog::protocol::{decode_request, decode_request_for, FrameDecoder, CONTROLLER_APIS, REQUEST_BYTES_MAX};
use stormlog::seam::MemStorage;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut core = BrokerCore::open(BrokerId(0), BrokerConfig::default(), Rc::new(MemStorage::new()), Tracer::off(), 0);
    let mut decoder = FrameDecoder::new(REQUEST_BYTES_MAX);
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => handle(&mut core, frame),
                Ok(None) => break,
                // The connection is closed: nothing after it is read.
                Err(_) => return,
            }
        }
    }
});

fn handle(core: &mut BrokerCore, frame: Bytes) {
    let _ = decode_request(frame.clone());
    let _ = decode_request_for(frame.clone(), CONTROLLER_APIS);
    let _ = core.handle_frame(0, frame);
}
