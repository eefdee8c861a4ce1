//! Tests of `confirm`.

use super::*;
use crate::content::message::{Content, Properties};
use crate::content::text::SharedStr;
use bytes::Bytes;

fn message(body: &'static [u8], mandatory: bool) -> OutgoingMessage {
    OutgoingMessage {
        exchange: SharedStr::from("ex"),
        routing_key: SharedStr::from("rk"),
        mandatory,
        content: Arc::new(Content {
            properties: Properties::default(),
            body: Bytes::from_static(body),
        }),
    }
}

fn attached() -> SharedConfirms {
    let confirms = SharedConfirms::default();
    lock(&confirms).attach(1);
    confirms
}

fn poll(p: &mut PendingConfirm) -> Poll<Result<()>> {
    let waker = std::task::Waker::noop();
    Pin::new(p).poll(&mut Context::from_waker(waker))
}

#[test]
fn acks_with_multiple_resolve_in_order_and_nacks_fail() {
    let confirms = attached();
    let mut pending: Vec<PendingConfirm> = (0..4)
        .map(|_| {
            let seq = lock(&confirms).track(1, message(b"x", false)).unwrap();
            PendingConfirm::new(confirms.clone(), seq)
        })
        .collect();
    assert!(poll(&mut pending[0]).is_pending());
    lock(&confirms).ack(1, 2, true);
    assert!(matches!(poll(&mut pending[0]), Poll::Ready(Ok(()))));
    assert!(matches!(poll(&mut pending[1]), Poll::Ready(Ok(()))));
    assert!(poll(&mut pending[2]).is_pending());
    lock(&confirms).nack(1, 3, false);
    lock(&confirms).ack(1, 4, false);
    assert!(matches!(poll(&mut pending[2]), Poll::Ready(Err(e)) if e.is_nacked()));
    assert!(matches!(poll(&mut pending[3]), Poll::Ready(Ok(()))));
    assert_eq!(lock(&confirms).slots.len(), 0, "settled slots are compacted");
}

#[test]
fn returns_attach_to_their_publish_and_fail_it() {
    let confirms = attached();
    let routed = lock(&confirms).track(1, message(b"one", true)).unwrap();
    let lost = lock(&confirms).track(1, message(b"two", true)).unwrap();
    let mut routed = PendingConfirm::new(confirms.clone(), routed);
    let mut lost = PendingConfirm::new(confirms.clone(), lost);
    let back = ReturnedMessage {
        reply_code: 312,
        reply_text: SharedStr::from("NO_ROUTE"),
        exchange: SharedStr::from("ex"),
        routing_key: SharedStr::from("rk"),
        properties: Properties::default(),
        body: Bytes::from_static(b"two"),
    };
    assert!(lock(&confirms).returned(1, back).is_none());
    lock(&confirms).ack(1, 2, true);
    assert!(matches!(poll(&mut routed), Poll::Ready(Ok(()))));
    let Poll::Ready(Err(e)) = poll(&mut lost) else { panic!("returned") };
    assert!(e.is_unroutable());
    assert_eq!(e.returned_message().unwrap().body, Bytes::from_static(b"two"));
}

#[test]
fn unconfirmed_publishes_survive_a_new_channel_with_new_tags() {
    let confirms = attached();
    let tickets: Vec<u64> = (0..4).map(|_| lock(&confirms).track(1, message(b"x", false)).unwrap()).collect();
    let mut pending: Vec<PendingConfirm> =
        tickets.iter().map(|t| PendingConfirm::new(confirms.clone(), *t)).collect();
    lock(&confirms).ack(1, 2, true); // the first two made it
    lock(&confirms).attach(2); // the connection died; channel 2 took over
    let unsent = lock(&confirms).unsent();
    assert_eq!(unsent.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [tickets[2], tickets[3]]);
    for (ticket, _) in &unsent {
        lock(&confirms).resent(*ticket); // wire tags 1 and 2 on channel 2
    }
    let later = lock(&confirms).track(2, message(b"y", false)).unwrap(); // wire tag 3
    let mut later = PendingConfirm::new(confirms.clone(), later);
    lock(&confirms).ack(2, 1, false);
    assert!(matches!(poll(&mut pending[0]), Poll::Ready(Ok(()))));
    assert!(matches!(poll(&mut pending[2]), Poll::Ready(Ok(()))));
    assert!(poll(&mut pending[3]).is_pending());
    lock(&confirms).ack(2, 3, true);
    assert!(matches!(poll(&mut pending[3]), Poll::Ready(Ok(()))));
    assert!(matches!(poll(&mut later), Poll::Ready(Ok(()))));
    assert_eq!(lock(&confirms).waiting(), 0);
}

#[test]
fn the_dead_channel_can_neither_take_nor_settle_the_new_channels_tags() {
    let confirms = attached();
    let first = lock(&confirms).track(1, message(b"a", false)).unwrap();
    let mut first = PendingConfirm::new(confirms.clone(), first);
    lock(&confirms).attach(2);
    let unsent = lock(&confirms).unsent();
    for (ticket, _) in unsent {
        lock(&confirms).resent(ticket); // tag 1 on channel 2
    }
    // A publisher still holding channel 1 is refused: its frames would go
    // to a dead socket while taking tag 2 of channel 2.
    assert!(lock(&confirms).track(1, message(b"late", false)).is_none());
    // Channel 1's late cleanup and stray acks change nothing.
    lock(&confirms).detach_from(1);
    assert!(lock(&confirms).fail_wired(1, &Error::connection("gone")).is_empty());
    lock(&confirms).ack(1, 5, true);
    assert!(poll(&mut first).is_pending());
    let next = lock(&confirms).track(2, message(b"b", false)).unwrap();
    let mut next = PendingConfirm::new(confirms.clone(), next);
    lock(&confirms).ack(2, 1, false);
    assert!(matches!(poll(&mut first), Poll::Ready(Ok(()))));
    assert!(poll(&mut next).is_pending(), "tag 2 is the next publish, not the refused one");
    lock(&confirms).ack(2, 2, false);
    assert!(matches!(poll(&mut next), Poll::Ready(Ok(()))));
}

#[test]
fn dropped_confirmations_do_not_leak_and_failures_hand_back_messages() {
    let confirms = attached();
    for _ in 0..3 {
        let seq = lock(&confirms).track(1, message(b"x", false)).unwrap();
        drop(PendingConfirm::new(confirms.clone(), seq));
    }
    lock(&confirms).ack(1, 3, true);
    assert_eq!(lock(&confirms).slots.len(), 0);
    let seq = lock(&confirms).track(1, message(b"y", false)).unwrap();
    let mut p = PendingConfirm::new(confirms.clone(), seq);
    let unknown = lock(&confirms).fail_all(&Error::connection("lost"));
    assert_eq!(unknown.len(), 1);
    assert!(matches!(poll(&mut p), Poll::Ready(Err(e)) if e.is_connection()));
}

/// The watchdog's probe follows the oldest waiting publish: confirms of
/// later ones (a quorum queue trickling a confirm now and then) do not make
/// it younger; only its own confirm does, and a publish sent again is
/// measured from its new write.
#[test]
fn the_stall_probe_ages_with_the_oldest_waiting_publish() {
    let confirms = attached();
    assert_eq!(lock(&confirms).stall_probe(1), None, "nothing waits");
    for _ in 0..3 {
        lock(&confirms).track(1, message(b"x", false)).unwrap();
    }
    let pause = std::time::Duration::from_millis(200);
    std::thread::sleep(pause);
    // The second and third are confirmed, not the first.
    lock(&confirms).ack(1, 2, false);
    lock(&confirms).ack(1, 3, false);
    let age = lock(&confirms).stall_probe(1).expect("the first still waits");
    assert!(age >= pause, "the oldest publish's age is {age:?}, less than the {pause:?} since it was written");
    assert_eq!(lock(&confirms).stall_probe(2), None, "another channel's publishes are not this one's");
    lock(&confirms).ack(1, 1, false);
    assert_eq!(lock(&confirms).stall_probe(1), None, "all confirmed");

    // Detached (its connection lost), a publish waits unwritten: no stall
    // until it is written again, and then from that write.
    lock(&confirms).track(1, message(b"y", false)).unwrap();
    std::thread::sleep(pause);
    lock(&confirms).attach(2);
    assert_eq!(lock(&confirms).stall_probe(2), None, "unwritten on the new channel");
    let unsent = lock(&confirms).unsent();
    assert_eq!(unsent.len(), 1);
    lock(&confirms).resent(unsent[0].0);
    let age = lock(&confirms).stall_probe(2).expect("written again, waiting");
    assert!(age < pause, "measured from the new write: {age:?}");
}
