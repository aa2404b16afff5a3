//! Server-Sent Events parsing (T4, SPEC §9): the decoder the SSE driver uses (`sse-core`, bounded
//! by `maxMessageBytes`) yields the same events whether the body arrives in one read or split at
//! any points, and an oversized event is an error, never a panic or an unbounded buffer.
//! Input: a byte choosing the limit, a byte seeding the split points, then the body.
#![no_main]

use std::num::NonZeroUsize;

use libfuzzer_sys::fuzz_target;
use sse_core::{SseDecoder, SseEvent};

#[derive(Debug, PartialEq)]
enum Seen {
    Event(SseEvent),
    TooLarge,
}

fuzz_target!(|data: &[u8]| {
    let [limit, seed, body @ ..] = data else { return };
    let limit = NonZeroUsize::new(usize::from(*limit) * 4 + 1).unwrap();
    let whole = decode(limit, &[body]);
    let mut chunks = Vec::new();
    let (mut rest, mut step) = (body, usize::from(*seed));
    while !rest.is_empty() {
        // Lengths 1..=16, varied by the seed: 1-byte reads, CR and LF apart, split UTF-8.
        step = (step * 31 + 7) % 251;
        let n = (step % 16 + 1).min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    let split = decode(limit, &chunks);
    assert_eq!(whole, split, "the same events in one read and in {} reads", chunks.len());
});

/// The events of `chunks` fed in turn, up to and including the first oversized one (the driver
/// drops the connection there).
fn decode(limit: NonZeroUsize, chunks: &[&[u8]]) -> Vec<Seen> {
    let mut decoder = SseDecoder::with_limit(limit);
    let mut seen = Vec::new();
    for chunk in chunks {
        let mut buf: &[u8] = chunk;
        while let Some(event) = decoder.next(&mut buf) {
            match event {
                Ok(SseEvent::Message(m)) => {
                    // The limit counts the body's bytes; invalid UTF-8 in them becomes U+FFFD (3
                    // bytes each), so an event's text is at most 3 times the limit (the engine
                    // then checks maxMessageBytes on the text, E3).
                    assert!(m.data.len() <= 3 * limit.get(), "an event within the limit");
                    seen.push(Seen::Event(SseEvent::Message(m)));
                }
                Ok(other) => seen.push(Seen::Event(other)),
                Err(_) => {
                    seen.push(Seen::TooLarge);
                    return seen;
                }
            }
        }
    }
    seen
}
