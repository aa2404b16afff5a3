//! The posted messages, per channel, in id order; with a limit, only the latest of each channel
//! are kept (a long-running server, such as the soak run's, holds a bounded history).

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

#[derive(Default)]
pub(crate) struct History {
    channels: HashMap<String, VecDeque<Value>>,
    /// Messages kept per channel; `None`: all of them.
    limit: Option<usize>,
}

impl History {
    pub(crate) fn set_limit(&mut self, limit: Option<usize>) {
        self.limit = limit;
        if let Some(limit) = limit {
            for messages in self.channels.values_mut() {
                let excess = messages.len().saturating_sub(limit);
                messages.drain(..excess);
            }
        }
    }

    pub(crate) fn push(&mut self, channel: &str, message: Value) {
        let messages = match self.channels.get_mut(channel) {
            Some(m) => m,
            None => self.channels.entry(channel.to_owned()).or_default(),
        };
        messages.push_back(message);
        if self.limit.is_some_and(|limit| messages.len() > limit) {
            messages.pop_front();
        }
    }

    /// The channel's messages, oldest first.
    pub(crate) fn channel(&self, channel: &str) -> Vec<Value> {
        self.channels.get(channel).map(|m| m.iter().cloned().collect()).unwrap_or_default()
    }

    /// The channel's messages with an id above `after` (what a resuming client missed).
    pub(crate) fn after(&self, channel: &str, after: u64) -> Vec<Value> {
        let Some(messages) = self.channels.get(channel) else { return Vec::new() };
        messages.iter().filter(|m| m["id"].as_u64() > Some(after)).cloned().collect()
    }
}
