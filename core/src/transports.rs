//! The built-in stream source: each entry's stream runs on the transport its config names
//! (`stream.transport`, T4). The engine never looks at the transport; only this choice does.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::Transport;
use crate::sse::SseStreamSource;
use crate::transport::{StreamControl, StreamMember, StreamRequest, StreamSink, StreamSource};
use crate::ws::WsStreamSource;

#[derive(Default)]
pub struct BuiltinStreamSource {
    pub ws: WsStreamSource,
    pub sse: SseStreamSource,
}

impl StreamSource for BuiltinStreamSource {
    fn run(&self, request: StreamRequest, sink: Arc<dyn StreamSink>, control: StreamControl) -> BoxFuture<'static, ()> {
        match request.config.transport {
            Transport::WebSocket => self.ws.run(request, sink, control),
            Transport::Sse => self.sse.run(request, sink, control),
        }
    }

    fn join(&self, request: &StreamRequest, sink: &Arc<dyn StreamSink>) -> Option<Box<dyn StreamMember>> {
        match request.config.transport {
            Transport::WebSocket => self.ws.join(request, sink),
            Transport::Sse => self.sse.join(request, sink),
        }
    }
}
