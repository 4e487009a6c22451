//! Key ranges of a tenant migration (`migration_ranges`): the key space of
//! a large tenant split so that several workers, on several machines, copy
//! it at once. The coordinator (the run holding the tenant's lease) plans
//! ranges as it lists; workers lease a pending range with `FOR UPDATE SKIP
//! LOCKED`, renew it while they work, and mark it done. A dead worker's
//! range expires and another takes it over.

use std::time::Duration;

use tokio_postgres::{GenericClient, Row};

use super::PgError;

/// One key range of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRange {
    /// The tenant.
    pub tenant: String,
    /// The migration id (as in its journal).
    pub migration_id: String,
    /// The source region whose keys it covers.
    pub region: String,
    /// Its number in the region's key order (0, 1, ...).
    pub range_no: i32,
    /// Keys after this one (exclusive; empty for the first range).
    pub start_after: String,
    /// Up to this one (inclusive); `None` for the last range.
    pub end_key: Option<String>,
    /// Marked done.
    pub done: bool,
    /// Who leases it (or last leased it).
    pub holder: Option<String>,
    /// Who finished it.
    pub done_by: Option<String>,
    /// Objects with an outcome (once done).
    pub objects: Option<i64>,
    /// Objects whose bytes the finishing worker's runs copied (once done).
    pub copied: Option<i64>,
}

/// How a migration's ranges stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeCounts {
    /// Ranges planned.
    pub planned: i64,
    /// Ranges done.
    pub done: i64,
    /// Pending ranges leased by a holder whose lease has not expired.
    pub leased: i64,
    /// Source regions whose plan is complete (their last range, with no
    /// end, is planned).
    pub complete_regions: Vec<String>,
    /// A migrator holds the tenant's lease (`migration_leases`) and has not
    /// let it expire: the coordinator, which plans the ranges, is alive.
    pub coordinator_live: bool,
}

const COLUMNS: &str =
    "tenant_id, migration_id, region, range_no, start_after, end_key, state, holder, done_by, objects, copied";

fn range(r: &Row) -> MigrationRange {
    MigrationRange {
        tenant: r.get(0),
        migration_id: r.get(1),
        region: r.get(2),
        range_no: r.get(3),
        start_after: r.get(4),
        end_key: r.get(5),
        done: r.get::<_, String>(6) == "done",
        holder: r.get(7),
        done_by: r.get(8),
        objects: r.get(9),
        copied: r.get(10),
    }
}

fn millis(ttl: Duration) -> f64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1) as f64
}

/// Plans range `range_no` of `region` (nothing when it is already planned:
/// a resumed coordinator plans again from its last range).
///
/// # Errors
/// A database error.
pub async fn plan_range(
    client: &impl GenericClient,
    tenant: &str,
    migration_id: &str,
    region: &str,
    range_no: i32,
    start_after: &str,
    end_key: Option<&str>,
) -> Result<(), PgError> {
    client
        .execute(
            "INSERT INTO migration_ranges (tenant_id, migration_id, region, range_no, start_after, end_key) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&tenant, &migration_id, &region, &range_no, &start_after, &end_key],
        )
        .await?;
    Ok(())
}

/// The region's last planned range, if any (where a resumed plan goes on).
///
/// # Errors
/// A database error.
pub async fn last_range(
    client: &impl GenericClient,
    tenant: &str,
    migration_id: &str,
    region: &str,
) -> Result<Option<MigrationRange>, PgError> {
    let r = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM migration_ranges WHERE tenant_id = $1 AND migration_id = $2 \
                 AND region = $3 ORDER BY range_no DESC LIMIT 1"
            ),
            &[&tenant, &migration_id, &region],
        )
        .await?;
    Ok(r.as_ref().map(range))
}

/// Leases a pending range nobody holds (or whose holder's lease expired)
/// for `holder` until `ttl` from now: the first in key order that no other
/// worker is taking at the same moment (`FOR UPDATE SKIP LOCKED`).
///
/// # Errors
/// A database error.
pub async fn claim_range(
    client: &impl GenericClient,
    tenant: &str,
    migration_id: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<MigrationRange>, PgError> {
    let r = client
        .query_opt(
            &format!(
                "UPDATE migration_ranges SET holder = $3, \
                 expires_at = now() + $4::float8 * interval '1 millisecond' \
                 WHERE (tenant_id, migration_id, region, range_no) = ( \
                   SELECT tenant_id, migration_id, region, range_no FROM migration_ranges \
                   WHERE tenant_id = $1 AND migration_id = $2 AND state = 'pending' \
                   AND (holder IS NULL OR expires_at < now()) \
                   ORDER BY region, range_no LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING {COLUMNS}"
            ),
            &[&tenant, &migration_id, &holder, &millis(ttl)],
        )
        .await?;
    Ok(r.as_ref().map(range))
}

/// Extends `holder`'s lease on a range to `ttl` from now. Answers whether
/// `holder` still held it (`false`: it expired and another worker took it
/// over, or it is done).
///
/// # Errors
/// A database error.
pub async fn renew_range(
    client: &impl GenericClient,
    r: &MigrationRange,
    holder: &str,
    ttl: Duration,
) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE migration_ranges SET expires_at = now() + $6::float8 * interval '1 millisecond' \
             WHERE tenant_id = $1 AND migration_id = $2 AND region = $3 AND range_no = $4 \
             AND holder = $5 AND state = 'pending'",
            &[&r.tenant, &r.migration_id, &r.region, &r.range_no, &holder, &millis(ttl)],
        )
        .await?;
    Ok(n == 1)
}

/// Gives a range back (pending, no holder): the worker stopped with an
/// error and another may take it at once.
///
/// # Errors
/// A database error.
pub async fn release_range(
    client: &impl GenericClient,
    r: &MigrationRange,
    holder: &str,
) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE migration_ranges SET holder = NULL, expires_at = NULL \
             WHERE tenant_id = $1 AND migration_id = $2 AND region = $3 AND range_no = $4 \
             AND holder = $5 AND state = 'pending'",
            &[&r.tenant, &r.migration_id, &r.region, &r.range_no, &holder],
        )
        .await?;
    Ok(())
}

/// Marks a range done by `holder`, with what it did. Answers whether
/// `holder` still held it (`false`: another worker took it over).
///
/// # Errors
/// A database error.
pub async fn finish_range(
    client: &impl GenericClient,
    r: &MigrationRange,
    holder: &str,
    objects: i64,
    copied: i64,
) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE migration_ranges SET state = 'done', done_by = holder, done_at = now(), \
             holder = NULL, expires_at = NULL, objects = $6, copied = $7 \
             WHERE tenant_id = $1 AND migration_id = $2 AND region = $3 AND range_no = $4 \
             AND holder = $5 AND state = 'pending'",
            &[
                &r.tenant,
                &r.migration_id,
                &r.region,
                &r.range_no,
                &holder,
                &objects,
                &copied,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// How the migration's ranges stand.
///
/// # Errors
/// A database error.
pub async fn range_counts(
    client: &impl GenericClient,
    tenant: &str,
    migration_id: &str,
) -> Result<RangeCounts, PgError> {
    let r = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state = 'done'), \
             count(*) FILTER (WHERE state = 'pending' AND holder IS NOT NULL AND expires_at >= now()), \
             coalesce(array_agg(region ORDER BY region) FILTER (WHERE end_key IS NULL), '{}'), \
             EXISTS (SELECT 1 FROM migration_leases l WHERE l.tenant_id = $1 AND l.expires_at >= now()) \
             FROM migration_ranges WHERE tenant_id = $1 AND migration_id = $2",
            &[&tenant, &migration_id],
        )
        .await?;
    Ok(RangeCounts {
        planned: r.get(0),
        done: r.get(1),
        leased: r.get(2),
        complete_regions: r.get(3),
        coordinator_live: r.get(4),
    })
}

/// Every range of the migration, by region and number.
///
/// # Errors
/// A database error.
pub async fn list_ranges(
    client: &impl GenericClient,
    tenant: &str,
    migration_id: &str,
) -> Result<Vec<MigrationRange>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM migration_ranges WHERE tenant_id = $1 AND migration_id = $2 \
                 ORDER BY region, range_no"
            ),
            &[&tenant, &migration_id],
        )
        .await?;
    Ok(rows.iter().map(range).collect())
}

/// The id of the most recent migration of `tenant` with planned ranges
/// (what `residency migrate --join` works on), if any.
///
/// # Errors
/// A database error.
pub async fn ranged_migration(
    client: &impl GenericClient,
    tenant: &str,
) -> Result<Option<String>, PgError> {
    let r = client
        .query_opt(
            "SELECT migration_id FROM migration_ranges WHERE tenant_id = $1 \
             ORDER BY migration_id DESC LIMIT 1",
            &[&tenant],
        )
        .await?;
    Ok(r.map(|r| r.get(0)))
}
