//! Tests of `topology`.

use super::*;
use crate::content::exchange::ExchangeKind;
use crate::content::value::FieldTable;

fn exchange(name: &str, durable: bool, auto_delete: bool) -> ExchangeDeclare {
    ExchangeDeclare {
        name: name.into(),
        kind: ExchangeKind::Direct,
        passive: false,
        durable,
        auto_delete,
        internal: false,
        arguments: FieldTable::new(),
    }
}

fn queue(name: &str) -> QueueDeclare {
    QueueDeclare {
        name: name.into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: FieldTable::new(),
    }
}

fn binding(source: &str, queue: &str) -> RecordedBinding {
    RecordedBinding {
        to_queue: true,
        args: BindArgs {
            destination: queue.into(),
            source: source.into(),
            routing_key: "k".into(),
            arguments: FieldTable::new(),
        },
    }
}

#[test]
fn records_replace_duplicates_and_forget_deletions() {
    let mut t = Topology::default();
    t.record_exchange(exchange("ex", true, false));
    t.record_exchange(exchange("ex", false, false));
    assert_eq!(t.exchanges.len(), 1);
    assert!(!t.exchanges[0].durable, "the latest declaration wins");
    t.record_queue(queue("q"), false);
    t.record_binding(binding("ex", "q"));
    t.record_binding(binding("ex", "q"));
    assert_eq!(t.bindings.len(), 1);
    t.forget_queue("q");
    assert!(t.queues.is_empty() && t.bindings.is_empty());
    t.forget_exchange("ex");
    assert!(t.exchanges.is_empty() && t.queues.is_empty() && t.bindings.is_empty());
}

#[test]
fn auto_delete_exchanges_go_with_their_last_binding() {
    let mut t = Topology::default();
    t.record_exchange(exchange("auto", true, true));
    t.record_binding(binding("auto", "a"));
    t.record_binding(binding("auto", "b"));
    t.forget_binding(&binding("auto", "a"));
    assert_eq!(t.exchanges.len(), 1);
    t.forget_binding(&binding("auto", "b"));
    assert!(t.exchanges.is_empty());
}

#[test]
fn server_named_queues_are_followed_to_their_new_name() {
    let mut t = Topology::default();
    t.record_queue(queue("amq.gen-1"), true);
    t.record_binding(binding("ex", "amq.gen-1"));
    assert!(t.queues[0].server_named);
    t.rename_queue("amq.gen-1", "amq.gen-2");
    assert_eq!(t.queues[0].name(), "amq.gen-2");
    assert_eq!(t.bindings[0].args.destination, "amq.gen-2");
}
