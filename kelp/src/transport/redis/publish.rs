//! Publishing: where a message goes (routed by the PUBLISH script, pushed
//! onto queues, or published on a fanout channel), and the writer that
//! sends publishes in order, pipelined, settling each one's confirmation
//! with Redis's answer.

use std::sync::{Arc, Weak};

use super::keys::{self, Keys};
use super::route::Route;
use super::shared::{PublishJob, Settle, Shared, lock};
use super::{envelope, scripts};
use crate::transport::types::OutgoingMessage;
use crate::content::exchange::ExchangeKind;
use crate::error::reply_code::NO_ROUTE;
use crate::content::message::ReturnedMessage;
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// Send publishes in order, everything queued at once in one pipeline (one
/// round trip for many publishes), and answer each with whether it was
/// routed: publishing does not wait a round trip per message, and a
/// producer's messages keep their order.
pub(super) async fn publish_writer(shared: Weak<Shared>, mut jobs: tokio::sync::mpsc::UnboundedReceiver<PublishJob>) {
    const MOST: usize = 512;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else { return };
        // The commands move into the pipeline (a publish's payload is not
        // copied); a retry takes them from there.
        let mut pipe = redis::pipe();
        let mut firsts = Vec::with_capacity(batch.len());
        let mut at = 0;
        for job in &mut batch {
            firsts.push(at);
            at += job.cmds.len();
            for cmd in job.cmds.drain(..) {
                pipe.add_command(cmd);
            }
        }
        // "Confirmed means replicated": the batch's writes count once the
        // replicas have them (one WAIT for the whole pipeline).
        let replicas = shared.options.confirm_replicas;
        if replicas > 0 {
            let timeout_ms = shared.options.confirm_replicas_timeout.as_millis() as u64;
            pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        }
        let mut conn = match shared.conn() {
            Ok(conn) => conn,
            Err(e) => {
                for job in batch {
                    job.settle.answer(&shared, Err(e.clone_for_waiters()));
                }
                continue;
            }
        };
        match pipe.query_async::<Vec<redis::Value>>(&mut conn).await {
            Ok(values) => {
                let short = replicated(&shared, replicas, values.last());
                for (job, at) in batch.into_iter().zip(firsts) {
                    let routed = matches!(values.get(at), Some(redis::Value::Int(n)) if *n > 0);
                    job.settle.answer(
                        &shared,
                        match &short {
                            None => Ok(routed),
                            Some(error) => Err(error.clone_for_waiters()),
                        },
                    );
                }
            }
            Err(e) => answer_failed_batch(&shared, batch, &pipe, &firsts, e).await,
        }
    }
}

/// With `confirm_replicas`, the error for a batch fewer replicas took than
/// asked (Redis answers `WAIT` with how many acknowledged in time). The
/// master has the messages; whether they survive its death is not known:
/// the publish is not confirmed.
fn replicated(shared: &Shared, wanted: u32, answer: Option<&redis::Value>) -> Option<Error> {
    if wanted == 0 {
        return None;
    }
    let got = match answer {
        Some(redis::Value::Int(n)) => *n,
        _ => -1,
    };
    (got < i64::from(wanted)).then(|| {
        Error::new(
            ErrorKind::Nacked,
            format!(
                "{} has the message, but only {} of {wanted} replicas within {:?} (confirm_replicas): \
                 not confirmed, as losing the master now could lose it",
                shared.broker,
                got.max(0),
                shared.options.confirm_replicas_timeout
            ),
        )
    })
}

/// Some commands of a publish pipeline failed: those publishes get the
/// error (after loading the publish script and trying again, when Redis
/// had lost it), the others succeeded.
async fn answer_failed_batch(shared: &Arc<Shared>, batch: Vec<PublishJob>, sent: &redis::Pipeline, firsts: &[usize], e: redis::RedisError) {
    let Some(failures) = e.clone().into_server_errors() else {
        let error = shared.error(e, "publishing");
        for job in batch {
            job.settle.answer(shared, Err(error.clone_for_waiters()));
        }
        return;
    };
    let noscript = failures.iter().any(|(_, f)| f.code() == "NOSCRIPT");
    if noscript {
        let _: Result<String> = shared.query(redis::cmd("SCRIPT").arg("LOAD").arg(scripts::PUBLISH_SOURCE), "loading the publish script").await;
    }
    for (i, job) in batch.into_iter().enumerate() {
        let start = firsts[i];
        let end = firsts.get(i + 1).copied().unwrap_or(usize::MAX);
        let failed = failures.iter().find(|(at, _)| (start..end).contains(at));
        let answer = match failed {
            None => Ok(true),
            Some((_, f)) if f.code() == "NOSCRIPT" => {
                let mut pipe = redis::pipe();
                for cmd in sent.cmd_iter().take(end).skip(start) {
                    pipe.add_command(cmd.clone());
                }
                shared
                    .pipe::<Vec<redis::Value>>(&pipe, "publishing")
                    .await
                    .map(|values| matches!(values.first(), Some(redis::Value::Int(n)) if *n > 0))
            }
            Some((_, f)) => Err(Error::new(ErrorKind::Protocol, format!("Redis at {} refused a publish: {f:?}", shared.broker))),
        };
        job.settle.answer(shared, answer);
    }
}

impl Shared {
    /// Decide where a publish goes; every lookup is awaited here, so that
    /// sending is then a single command and publishes leave in order.
    pub(super) async fn plan_publish(&self, message: &OutgoingMessage) -> Result<PublishPlan> {
        if let Some(mode) = self.scripted_route(&message.exchange).await? {
            return Ok(PublishPlan::Script(mode));
        }
        Ok(match self.route(&message.exchange, &message.routing_key).await? {
            Route::Fanout(channel) => PublishPlan::Fanout(channel),
            Route::Queues(queues) if queues.is_empty() => PublishPlan::Nowhere,
            Route::Queues(queues) => PublishPlan::Push(queues),
        })
    }

    /// The commands of a planned publish (the first one's reply says
    /// whether a queue, or a fanout subscriber, got the message).
    fn publish_commands(&self, message: &OutgoingMessage, plan: PublishPlan) -> Vec<redis::Cmd> {
        let content = &message.content;
        let tag = crate::content::ids::uuid4();
        let payload = envelope::encode(content, &message.exchange, &message.routing_key, &tag);
        let step = self.keys.step_of(envelope::priority_of(content));
        match plan {
            PublishPlan::Script(mode) => {
                // Route and push inside Redis (EVALSHA: the script was
                // loaded at connect).
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(scripts::PUBLISH.get_hash())
                    .arg(1)
                    .arg(self.keys.binding(&message.exchange))
                    .arg(message.routing_key.as_str())
                    .arg(payload)
                    .arg(mode)
                    .arg(self.keys.prefix())
                    .arg(Keys::bucket_suffix(step))
                    .arg(keys::SEP);
                vec![cmd]
            }
            PublishPlan::Push(queues) => {
                let expires = lock(&self.expires);
                let mut cmds = Vec::with_capacity(queues.len());
                for queue in &queues {
                    let mut lpush = redis::cmd("LPUSH");
                    lpush.arg(self.keys.bucket(queue, step)).arg(&payload);
                    cmds.push(lpush);
                    if let Some(ms) = expires.get(queue) {
                        for key in self.keys.buckets(queue) {
                            let mut pexpire = redis::cmd("PEXPIRE");
                            pexpire.arg(key).arg(*ms);
                            cmds.push(pexpire);
                        }
                    }
                }
                cmds
            }
            PublishPlan::Fanout(channel) => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(channel).arg(payload);
                vec![cmd]
            }
            PublishPlan::Nowhere => Vec::new(),
        }
    }

    /// Hand a publish to the writer, whose answer settles `settle`.
    pub(super) fn send_publish(&self, message: &OutgoingMessage, plan: PublishPlan, settle: Settle) {
        let cmds = self.publish_commands(message, plan);
        if cmds.is_empty() {
            // Bound nowhere: nothing to write.
            settle.answer(self, Ok(false));
            return;
        }
        // A writer gone with its connection: the channel's stop settles (or
        // keeps) the publish.
        let _ = self.writer.send(PublishJob { cmds, settle });
    }

    /// Whether a publish to `exchange` can be routed by the PUBLISH script,
    /// and how: not for the default exchange, fanout exchanges, or while
    /// this connection knows queues with `x-expires` (their expiry is
    /// refreshed on every put, which needs the target list).
    async fn scripted_route(&self, exchange: &str) -> Result<Option<&'static str>> {
        if exchange.is_empty() || !lock(&self.expires).is_empty() {
            return Ok(None);
        }
        Ok(match self.exchange_kind(exchange).await? {
            Some(ExchangeKind::Fanout) => None,
            Some(ExchangeKind::Topic) => Some("topic"),
            Some(_) => Some("direct"),
            None => Some("auto"),
        })
    }

    /// An unroutable mandatory message comes back as an `Unroutable` error.
    pub(super) fn returned_if_unroutable(&self, message: &OutgoingMessage, routed: bool) -> Result<()> {
        let content = &message.content;
        if !routed && message.mandatory {
            let returned = ReturnedMessage {
                reply_code: NO_ROUTE,
                reply_text: SharedStr::from_static("NO_ROUTE"),
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
                properties: content.properties.clone(),
                body: content.body.clone(),
            };
            return Err(Error::new(
                ErrorKind::Unroutable,
                format!(
                    "no queue is bound to exchange '{}' with routing key '{}'",
                    message.exchange, message.routing_key
                ),
            )
            .with_reply(NO_ROUTE, "NO_ROUTE")
            .with_returned(returned));
        }
        Ok(())
    }
}

/// Where a publish goes, decided before it is sent.
pub(super) enum PublishPlan {
    /// Routed by the PUBLISH script (`direct`, `topic` or `auto`).
    Script(&'static str),
    /// LPUSH onto these queues.
    Push(Vec<String>),
    /// PUBLISH on this fanout channel.
    Fanout(String),
    /// No queue is bound.
    Nowhere,
}
