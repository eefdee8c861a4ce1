//! Tests of `failover`.

use super::*;

fn urls(n: usize) -> Vec<BrokerUrl> {
    (0..n)
        .map(|i| BrokerUrl::parse(&format!("amqp://host{i}:5672//")).unwrap())
        .collect()
}

#[test]
fn round_robin_starts_after_the_last_broker() {
    let u = urls(3);
    assert_eq!(FailoverStrategy::RoundRobin.cycle(&u, None), [0, 1, 2]);
    assert_eq!(FailoverStrategy::RoundRobin.cycle(&u, Some(0)), [1, 2, 0]);
    assert_eq!(FailoverStrategy::RoundRobin.cycle(&u, Some(2)), [0, 1, 2]);
}

#[test]
fn priority_starts_at_the_first_unless_it_just_failed() {
    let u = urls(3);
    assert_eq!(FailoverStrategy::PriorityOrder.cycle(&u, None), [0, 1, 2]);
    assert_eq!(FailoverStrategy::PriorityOrder.cycle(&u, Some(1)), [0, 2, 1]);
    assert_eq!(FailoverStrategy::PriorityOrder.cycle(&u, Some(0)), [1, 2, 0]);
}

#[test]
fn shuffle_never_repeats_within_a_cycle() {
    let u = urls(5);
    for _ in 0..100 {
        let mut order = FailoverStrategy::Shuffle.cycle(&u, Some(3));
        assert_eq!(order.last(), Some(&3));
        order.sort_unstable();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}

#[test]
fn custom_choices_come_first_and_every_broker_is_tried() {
    let u = urls(3);
    let always_last = FailoverStrategy::custom(|urls, _| urls.len() - 1);
    assert_eq!(always_last.cycle(&u, None), [2, 0, 1]);
    let backwards = FailoverStrategy::custom(|urls, last| match last {
        Some(0) | None => urls.len() - 1,
        Some(i) => i - 1,
    });
    assert_eq!(backwards.cycle(&u, Some(0)), [2, 1, 0]);
}

#[test]
fn names() {
    assert!(matches!(FailoverStrategy::from_name("shuffle"), Ok(FailoverStrategy::Shuffle)));
    assert!(FailoverStrategy::from_name("random").unwrap_err().is_config());
}
