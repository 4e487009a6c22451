//! The buckets tenants create, in the `buckets` table: looked up through
//! the same bounded cache as tenants (dropped on notification), created and
//! deleted with one statement each.

use futures::future::BoxFuture;

use super::shared::CreatedEntry;
use super::*;
use crate::{BucketError, BucketRecord};

const BUCKET_COLUMNS: &str = "name, tenant_id, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
     location, default_category, cors";

fn bucket_row(row: &Row) -> BucketRecord {
    BucketRecord {
        name: row.get(0),
        tenant: row.get(1),
        created: row.get(2),
        location: row.get(3),
        default_category: row.get(4),
        cors: row.get(5),
    }
}

impl PgDirectory {
    async fn fetch_bucket(&self, name: &str) -> Answer<Arc<BucketRecord>> {
        metrics::counter!(METRIC_CACHE_MISSES).increment(1);
        let changes = self.shared.changes.load(Ordering::Acquire);
        let stamp = self.shared.stamp();
        let sql = format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = $1");
        let record = self
            .query_opt(&sql, &[&name])
            .await?
            .map(|r| Arc::new(bucket_row(&r)));
        let s = &self.shared;
        s.created.insert(
            name.to_owned(),
            CreatedEntry {
                record: record.clone(),
                stamp,
            },
        );
        if s.changes.load(Ordering::Acquire) != changes {
            s.created.invalidate(name);
        }
        Ok(record)
    }

    /// One statement on a pooled connection, bounded by the fetch timeout.
    async fn change(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Result<tokio_postgres::Error, String>> {
        let run = async {
            let client = self.pooled().await.map_err(Err)?;
            client.execute(sql, params).await.map_err(Ok)
        };
        match tokio::time::timeout(self.fetch_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Err(format!(
                "PostgreSQL did not answer within {:?}",
                self.fetch_timeout
            ))),
        }
    }

    /// Who owns the name `name` now (a created or a configured bucket).
    async fn owner(&self, name: &str) -> Result<Option<String>, BucketError> {
        let row = self
            .query_opt(
                "SELECT tenant_id FROM buckets WHERE name = $1 \
                 UNION ALL SELECT id FROM tenants WHERE bucket = $1 LIMIT 1",
                &[&name],
            )
            .await
            .map_err(|e| BucketError::Unavailable(e.to_string()))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn create(&self, record: BucketRecord) -> Result<(), BucketError> {
        let r = self
            .change(
                "INSERT INTO buckets (name, tenant_id, location, default_category) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &record.name,
                    &record.tenant,
                    &record.location,
                    &record.default_category,
                ],
            )
            .await;
        match r {
            Ok(_) => {
                self.shared.created.invalidate(&record.name);
                Ok(())
            }
            Err(Ok(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                let owner = self.owner(&record.name).await?;
                Err(BucketError::Taken {
                    by_you: owner.as_deref() == Some(record.tenant.as_str()),
                    name: record.name,
                })
            }
            Err(Ok(e)) => Err(BucketError::Unavailable(format!("PostgreSQL: {e}"))),
            Err(Err(e)) => Err(BucketError::Unavailable(e)),
        }
    }

    async fn delete(&self, name: &str, tenant: &str) -> Result<(), BucketError> {
        self.change_one(
            name,
            "DELETE FROM buckets WHERE name = $1 AND tenant_id = $2",
            &[&name, &tenant],
        )
        .await
    }

    async fn set_cors(
        &self,
        name: &str,
        tenant: &str,
        cors: Option<String>,
    ) -> Result<(), BucketError> {
        self.change_one(
            name,
            "UPDATE buckets SET cors = $3 WHERE name = $1 AND tenant_id = $2",
            &[&name, &tenant, &cors],
        )
        .await
    }

    /// A statement that changes the row of the created bucket `name` (of
    /// the tenant it names): none changed is `NotFound`.
    async fn change_one(
        &self,
        name: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), BucketError> {
        match self.change(sql, params).await {
            Ok(0) => Err(BucketError::NotFound(name.to_owned())),
            Ok(_) => {
                self.shared.created.invalidate(name);
                Ok(())
            }
            Err(Ok(e)) => Err(BucketError::Unavailable(format!("PostgreSQL: {e}"))),
            Err(Err(e)) => Err(BucketError::Unavailable(e)),
        }
    }

    pub(super) fn set_bucket_cors_row<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
        cors: Option<String>,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        Box::pin(self.set_cors(name, tenant, cors))
    }

    async fn of(&self, tenant: &str) -> Result<Vec<BucketRecord>, DirectoryError> {
        let sql =
            format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE tenant_id = $1 ORDER BY name");
        let ask = async {
            let client = self.pooled().await?;
            client
                .query(&sql, &[&tenant])
                .await
                .map_err(|e| format!("PostgreSQL: {e}"))
        };
        match tokio::time::timeout(self.fetch_timeout, ask).await {
            Ok(Ok(rows)) => Ok(rows.iter().map(bucket_row).collect()),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "PostgreSQL did not answer within {:?}",
                self.fetch_timeout
            ))),
        }
    }

    pub(super) fn bucket_lookup<'a>(&'a self, name: &'a str) -> Lookup<'a, Arc<BucketRecord>> {
        if let Some(e) = self.shared.created.get(name) {
            if self.shared.fresh(&e.stamp) {
                return Self::hit(Ok(e.record));
            }
        }
        Lookup::pending(self.fetch_bucket(name))
    }

    pub(super) fn buckets_of_tenant<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BucketRecord>, DirectoryError>> {
        Box::pin(self.of(tenant))
    }

    pub(super) fn create_bucket_row(
        &self,
        record: BucketRecord,
    ) -> BoxFuture<'_, Result<(), BucketError>> {
        Box::pin(self.create(record))
    }

    pub(super) fn delete_bucket_row<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<(), BucketError>> {
        Box::pin(self.delete(name, tenant))
    }
}
