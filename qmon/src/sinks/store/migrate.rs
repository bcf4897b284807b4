//! Schema migrations, embedded from `schema/migrations/` and applied at open.
//!
//! The schema version is `PRAGMA user_version`: version N means the first N
//! migrations have been applied. Each migration runs in its own immediate
//! transaction together with the version bump, so a crash mid-way leaves the
//! database at the previous version and the next open retries.

use rusqlite::{Connection, TransactionBehavior};
use tracing::info;

use super::StoreError;

/// Every migration, in order. Never edit a released one: add a new file.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../../../schema/migrations/0001_init.sql"),
    include_str!("../../../../schema/migrations/0002_loss_counters.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database up to [`SCHEMA_VERSION`]; returns the version found.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    apply(conn, MIGRATIONS)
}

pub(crate) fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

pub(crate) fn apply(conn: &mut Connection, migrations: &[&str]) -> Result<u32, StoreError> {
    let supported = migrations.len() as u32;
    let found = user_version(conn)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        if user_version(&tx)? >= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migrate { version, source })?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        info!(version, "applied schema migration");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn fresh_database_gets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("a.db")).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let t = tables(&conn);
        for want in ["call_records", "calls", "processes", "recorder_status"] {
            assert!(t.iter().any(|n| n == want), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn reopen_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        migrate(&mut Connection::open(&path).unwrap()).unwrap();
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn older_version_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let v2 = "ALTER TABLE call_records ADD COLUMN extra TEXT;";
        {
            let mut conn = Connection::open(&path).unwrap();
            apply(&mut conn, &MIGRATIONS[..1]).unwrap();
            conn.execute_batch(
                "INSERT INTO processes(pid, comm, first_seen_ns) VALUES (1, 'x', 0)",
            )
            .unwrap();
        }
        let mut all = MIGRATIONS.to_vec();
        all.push(v2);
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(apply(&mut conn, &all).unwrap(), 1);
        // Every migration after the first, then `v2`.
        assert_eq!(user_version(&conn).unwrap(), all.len() as u32);
        conn.execute_batch("SELECT extra FROM call_records")
            .unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM processes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "data survives the upgrade");
    }

    #[test]
    fn newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("a.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }

    #[test]
    fn failed_migration_leaves_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("a.db")).unwrap();
        let bad = ["CREATE TABLE t(x);", "CREATE TABLE u(x); THIS IS NOT SQL;"];
        assert!(matches!(
            apply(&mut conn, &bad),
            Err(StoreError::Migrate { version: 2, .. })
        ));
        assert_eq!(user_version(&conn).unwrap(), 1);
        assert!(!tables(&conn).iter().any(|t| t == "u"));
    }
}
