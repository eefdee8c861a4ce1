//! The topology record: what a connection declared, kept as the plain
//! transport arguments it was declared with, so that every transport
//! recovers the same way and this layer needs nothing from the model.
//!
//! After a reconnect the supervisor replays it in order — exchanges, queues
//! (following server-named queues to their new names), bindings. Entities
//! the application deleted are forgotten, and so are auto-delete entities
//! that went away with their last consumer or binding.

use crate::transport::{BindArgs, ExchangeDeclare, QueueDeclare};

/// A declared queue.
#[derive(Clone, Debug)]
pub(crate) struct RecordedQueue {
    /// How it was declared, under its current name (the broker's, for
    /// server-named queues).
    pub(crate) declare: QueueDeclare,
    /// The broker chose the name: on recovery it chooses a new one.
    pub(crate) server_named: bool,
}

impl RecordedQueue {
    pub(crate) fn name(&self) -> &str {
        &self.declare.name
    }
}

/// A binding, to a queue or to an exchange.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordedBinding {
    pub(crate) to_queue: bool,
    pub(crate) args: BindArgs,
}

/// Declarations to replay, in the order they were made.
#[derive(Default, Debug)]
pub(crate) struct Topology {
    pub(crate) exchanges: Vec<ExchangeDeclare>,
    pub(crate) queues: Vec<RecordedQueue>,
    pub(crate) bindings: Vec<RecordedBinding>,
}

impl Topology {
    /// Record an exchange declaration; a later one of the same name wins.
    pub(crate) fn record_exchange(&mut self, exchange: ExchangeDeclare) {
        match self.exchanges.iter_mut().find(|e| e.name == exchange.name) {
            Some(existing) => *existing = exchange,
            None => self.exchanges.push(exchange),
        }
    }

    pub(crate) fn forget_exchange(&mut self, name: &str) {
        self.exchanges.retain(|e| e.name != name);
        self.bindings
            .retain(|b| b.args.source != name && (b.to_queue || b.args.destination != name));
    }

    /// Record a queue declaration, `declare.name` being the name the broker
    /// gave it (which differs from the asked one for server-named queues).
    pub(crate) fn record_queue(&mut self, declare: QueueDeclare, server_named: bool) {
        let recorded = RecordedQueue { declare, server_named };
        match self.queues.iter_mut().find(|q| q.name() == recorded.name()) {
            Some(existing) => *existing = recorded,
            None => self.queues.push(recorded),
        }
    }

    pub(crate) fn forget_queue(&mut self, name: &str) {
        self.queues.retain(|q| q.name() != name);
        self.bindings.retain(|b| !(b.to_queue && b.args.destination == name));
    }

    /// Is `name` a queue the broker deletes when its last consumer goes?
    pub(crate) fn is_auto_delete_queue(&self, name: &str) -> bool {
        self.queues.iter().any(|q| q.name() == name && q.declare.auto_delete)
    }

    pub(crate) fn record_binding(&mut self, binding: RecordedBinding) {
        if !self.bindings.contains(&binding) {
            self.bindings.push(binding);
        }
    }

    pub(crate) fn forget_binding(&mut self, binding: &RecordedBinding) {
        self.bindings.retain(|b| b != binding);
        // An auto-delete exchange goes away with its last binding.
        let source = &binding.args.source;
        let still_bound = self.bindings.iter().any(|b| &b.args.source == source);
        if !still_bound {
            self.exchanges.retain(|e| !(e.name == *source && e.auto_delete));
        }
    }

    /// A server-named queue came back under a new name.
    pub(crate) fn rename_queue(&mut self, old: &str, new: &str) {
        for q in &mut self.queues {
            if q.declare.name == old {
                new.clone_into(&mut q.declare.name);
            }
        }
        for b in &mut self.bindings {
            if b.to_queue && b.args.destination == old {
                new.clone_into(&mut b.args.destination);
            }
        }
    }
}

#[cfg(test)]
mod tests;
