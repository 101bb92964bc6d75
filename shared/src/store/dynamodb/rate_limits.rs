//! Token buckets: `RATE#<kind>#<id>` / `RATE` with `tat` (microseconds) and the TTL attribute
//! `expires_at`; taken in one transaction with the notify claim (`CLAIM#notify#…`).

use async_trait::async_trait;

use super::{
    DynamoStore,
    claims::{claimable, in_progress_item, live_record},
    item::{Item, n, opt_n},
    keys,
    tx::{Expr, Tx, TxError, absent, attempt_id, retry_on_conflict},
};
use crate::{
    store::{Admission, Bucket, ClaimKey, ClaimLease, ClaimTimes, RateLimits, StoreError},
    time::UnixTime,
};

/// How long an idle bucket item is kept after its `tat` (DynamoDB TTL deletes it late; a
/// `tat` in the past is an idle bucket either way).
const BUCKET_RETAIN_SECS: u64 = 3_600;

/// The bucket's item with `tat`, conditioned on the `tat` that was read (`None`: no item).
fn put_bucket(tx: &mut Tx<'_>, bucket: &Bucket, read: Option<u64>, tat: u64) {
    let item = keys::bucket(&bucket.key).item([
        ("tat", n(tat)),
        ("expires_at", n(tat / 1_000_000 + BUCKET_RETAIN_SECS)),
    ]);
    let condition = match read {
        None => absent(),
        Some(old) => Expr::new("tat = :old").value(":old", n(old)),
    };
    tx.put(item, condition);
}

fn tat_of(item: Option<&Item>) -> Result<Option<u64>, StoreError> {
    match item {
        Some(item) => opt_n(item, "tat"),
        None => Ok(None),
    }
}

impl DynamoStore {
    async fn admit_once(
        &self,
        claim: &ClaimKey,
        digest: &str,
        times: ClaimTimes,
        chat: &Bucket,
        bot: &Bucket,
        now: UnixTime,
    ) -> Result<Admission, TxError> {
        let [claim_item, chat_item, bot_item] = self
            .read_together([
                keys::claim(claim),
                keys::bucket(&chat.key),
                keys::bucket(&bot.key),
            ])
            .await?;
        if let Some(item) = &claim_item
            && let Some(record) = live_record(item, now)?
        {
            return Ok(Admission::Claimed(record));
        }
        let (chat_read, bot_read) = (tat_of(chat_item.as_ref())?, tat_of(bot_item.as_ref())?);
        let (chat_tat, bot_tat) = match (chat.take(chat_read, now), bot.take(bot_read, now)) {
            (Ok(c), Ok(b)) => (c, b),
            (c, b) => {
                let wait = c.err().unwrap_or(0).max(b.err().unwrap_or(0));
                return Ok(Admission::RateLimited {
                    retry_after_secs: wait,
                });
            }
        };
        let attempt = attempt_id();
        let until = now.plus_secs(times.in_progress_secs);
        let mut tx = Tx::new(self);
        tx.put(
            in_progress_item(
                claim,
                until,
                now.plus_secs(times.retain_secs),
                &attempt,
                digest,
            ),
            claimable(now, &attempt),
        );
        put_bucket(&mut tx, chat, chat_read, chat_tat);
        put_bucket(&mut tx, bot, bot_read, bot_tat);
        // A failed condition means another instance wrote meanwhile: read again.
        tx.run().await?;
        Ok(Admission::Admitted(ClaimLease {
            key: claim.clone(),
            in_progress_until: until,
        }))
    }
}

#[async_trait]
impl RateLimits for DynamoStore {
    async fn admit(
        &self,
        claim: &ClaimKey,
        digest: &str,
        times: ClaimTimes,
        chat: &Bucket,
        bot: &Bucket,
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        retry_on_conflict(move || self.admit_once(claim, digest, times, chat, bot, now)).await
    }
}
