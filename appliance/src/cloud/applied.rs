//! The applied-actions record: every worklist action this gateway applied, by action id, with a
//! digest of what it asked ([`Action::content_digest`]) and the reply it got. A repeat of the
//! same action (a retry whose reply was lost, or a captured copy replayed) is answered with the
//! recorded reply and changes nothing; the same id with other content is refused. Each record
//! is kept until the action could no longer be admitted ([`super::admission`]), then purged, so
//! the table stays as small as the actions of one validity window.
//!
//! Lookup, apply and record happen in one redb write transaction, so two concurrent deliveries
//! of one action cannot both apply it.
//!
//! [`Action::content_digest`]: shared::wire::action::Action::content_digest

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use shared::wire::action::ActionReply;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{self, Database, DbError, APPLIED_ACTIONS, APPLIED_ACTIONS_BY_EXPIRY};
use crate::storage::now_rfc3339;

/// One applied action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// [`shared::wire::action::Action::content_digest`] of the action as applied.
    pub digest: String,
    /// The reply it was given, given again to every repeat.
    pub reply: ActionReply,
    pub applied_at: String,
    /// Unix milliseconds after which the record may be purged.
    pub keep_until_ms: u64,
}

/// What the record says about an action about to be applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// Not applied yet.
    New,
    /// Applied with the same content: answer this reply again.
    Same(ActionReply),
    /// The id was applied with other content.
    Different,
}

/// Looks an action up in the caller's transaction.
pub fn lookup(txn: &WriteTransaction, id: Uuid, digest: &str) -> Result<Prior, DbError> {
    let table = txn.open_table(APPLIED_ACTIONS)?;
    Ok(
        match db::get_json::<Applied, _>(&table, "applied_actions", &id.to_string())? {
            None => Prior::New,
            Some(applied) if applied.digest == digest => Prior::Same(applied.reply),
            Some(_) => Prior::Different,
        },
    )
}

/// Records an applied action in the caller's transaction (the one that applied it).
pub fn record(
    txn: &WriteTransaction,
    id: Uuid,
    digest: &str,
    reply: &ActionReply,
    keep_until: OffsetDateTime,
) -> Result<(), DbError> {
    let id = id.to_string();
    let keep_until_ms = unix_ms(keep_until);
    let applied = Applied {
        digest: digest.to_string(),
        reply: reply.clone(),
        applied_at: now_rfc3339(),
        keep_until_ms,
    };
    db::put_json(&mut txn.open_table(APPLIED_ACTIONS)?, &id, &applied)?;
    txn.open_table(APPLIED_ACTIONS_BY_EXPIRY)?
        .insert((keep_until_ms, id.as_str()), ())?;
    Ok(())
}

/// Forgets every action whose record is due by `now`; returns how many.
pub fn purge(txn: &WriteTransaction, now: OffsetDateTime) -> Result<usize, DbError> {
    let mut index = txn.open_table(APPLIED_ACTIONS_BY_EXPIRY)?;
    let mut due: Vec<(u64, String)> = Vec::new();
    for row in index.range(..(unix_ms(now), ""))? {
        let (key, _) = row?;
        let (ms, id) = key.value();
        due.push((ms, id.to_string()));
    }
    let mut records = txn.open_table(APPLIED_ACTIONS)?;
    for (ms, id) in &due {
        index.remove((*ms, id.as_str()))?;
        records.remove(id.as_str())?;
    }
    Ok(due.len())
}

/// Reads one record from a snapshot.
pub fn get(db: &Database, id: Uuid) -> Result<Option<Applied>, DbError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(APPLIED_ACTIONS)?;
    db::get_json(&table, "applied_actions", &id.to_string())
}

fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::wire::action::Outcome;
    use time::Duration;

    #[test]
    fn a_record_answers_the_same_content_refuses_other_content_and_is_purged_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("state.redb")).unwrap();
        let now = OffsetDateTime::now_utc();
        let (early, late) = (Uuid::new_v4(), Uuid::new_v4());
        let reply = |id| ActionReply::new(id, Outcome::Created);
        db.write(|txn| {
            assert_eq!(lookup(txn, early, "d1")?, Prior::New);
            record(txn, early, "d1", &reply(early), now + Duration::minutes(10))?;
            record(txn, late, "d2", &reply(late), now + Duration::hours(2))?;
            assert_eq!(lookup(txn, early, "d1")?, Prior::Same(reply(early)));
            assert_eq!(lookup(txn, early, "d2")?, Prior::Different);
            Ok::<_, DbError>(())
        })
        .unwrap();

        // Nothing is due yet; then the earlier record is, and only it goes.
        let purged = |at| db.write(|txn| purge(txn, at)).unwrap();
        assert_eq!(purged(now), 0);
        assert_eq!(purged(now + Duration::minutes(11)), 1);
        assert_eq!(get(&db, early).unwrap(), None);
        assert_eq!(get(&db, late).unwrap().map(|a| a.digest), Some("d2".into()));
        db.write(|txn| {
            assert_eq!(lookup(txn, early, "d1")?, Prior::New, "forgotten once due");
            Ok::<_, DbError>(())
        })
        .unwrap();
        assert_eq!(purged(now + Duration::hours(3)), 1);
        assert_eq!(get(&db, late).unwrap(), None);
    }
}
