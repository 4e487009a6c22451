//! A lease per tenant migration (`migration_leases`): one `residency
//! migrate` at a time per tenant, on any machine. The holder renews it while
//! it runs and releases it at the end; a dead holder's lease expires and the
//! next run takes it over.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::PgError;

/// Who holds a tenant's migration lease (when [`take_lease`] is refused).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseHolder {
    /// The tenant.
    pub tenant: String,
    /// The holder's name (host, process id, random suffix).
    pub holder: String,
    /// When the lease expires unless renewed (PostgreSQL's text form, UTC).
    pub expires_at: String,
    /// Seconds from now until it expires (by the database's clock).
    pub expires_in_secs: f64,
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Takes tenant `tenant`'s migration lease for `holder` for `ttl`: inserts
/// it, or takes it over when it has expired (or `holder` already holds it).
/// Answers `Ok(None)` when taken, `Ok(Some(holder))` when another holder's
/// lease is still valid (nothing changed).
///
/// # Errors
/// A database error.
pub async fn take_lease(
    client: &impl GenericClient,
    tenant: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<LeaseHolder>, PgError> {
    // The lease may be released between the two statements: try again.
    for _ in 0..3 {
        let taken = client
            .query_opt(
                "INSERT INTO migration_leases (tenant_id, holder, expires_at) \
                 VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond') \
                 ON CONFLICT (tenant_id) DO UPDATE SET holder = EXCLUDED.holder, \
                 taken_at = now(), expires_at = EXCLUDED.expires_at \
                 WHERE migration_leases.expires_at < now() OR migration_leases.holder = EXCLUDED.holder \
                 RETURNING holder",
                &[&tenant, &holder, &(millis(ttl) as f64)],
            )
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let held = client
            .query_opt(
                "SELECT holder, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                 EXTRACT(EPOCH FROM (expires_at - now()))::float8 \
                 FROM migration_leases WHERE tenant_id = $1",
                &[&tenant],
            )
            .await?;
        if let Some(r) = held {
            return Ok(Some(LeaseHolder {
                tenant: tenant.to_owned(),
                holder: r.get(0),
                expires_at: r.get(1),
                expires_in_secs: r.get::<_, f64>(2).max(0.0),
            }));
        }
    }
    Err(PgError::Invalid(vec![format!(
        "the migration lease of tenant {tenant:?} changes hands too fast to be taken"
    )]))
}

/// Extends `holder`'s lease on `tenant` to `ttl` from now. Answers whether
/// `holder` still held it (`false`: it expired and another run took it over,
/// or it was released).
///
/// # Errors
/// A database error.
pub async fn renew_lease(
    client: &impl GenericClient,
    tenant: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, PgError> {
    let n = client
        .execute(
            "UPDATE migration_leases SET expires_at = now() + $3::float8 * interval '1 millisecond' \
             WHERE tenant_id = $1 AND holder = $2",
            &[&tenant, &holder, &(millis(ttl) as f64)],
        )
        .await?;
    Ok(n == 1)
}

/// Releases `holder`'s lease on `tenant` (nothing when another holds it).
///
/// # Errors
/// A database error.
pub async fn release_lease(
    client: &impl GenericClient,
    tenant: &str,
    holder: &str,
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM migration_leases WHERE tenant_id = $1 AND holder = $2",
            &[&tenant, &holder],
        )
        .await?;
    Ok(())
}
