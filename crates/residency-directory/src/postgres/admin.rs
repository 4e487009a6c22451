//! What `residency tenants ...` does to the PostgreSQL directory: import the
//! tenants file, export it back, show a tenant, change its features, start and
//! finish a tenant's migration, re-seal every secret under a new key.
//!
//! Every write goes through the tables' triggers, so every replica's cache
//! drops what changed.

use std::collections::{BTreeSet, HashMap};

use residency_policy::{Policy, SecretRef, TenantRecord, Tenants};
use serde::Serialize;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::key::{open_with, DirectoryKey};
use super::{tenant_row, PgError, TENANT_COLUMNS};

/// What an [`import`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Tenants added.
    pub added: usize,
    /// Tenants whose record changed.
    pub changed: usize,
    /// Tenants already as the file says.
    pub unchanged: usize,
    /// Keys (tenant and service keys) added.
    pub keys_added: usize,
    /// Keys whose owner, tenants or secret changed.
    pub keys_changed: usize,
}

impl ImportReport {
    /// Whether the import changed nothing.
    pub fn is_unchanged(&self) -> bool {
        self.added == 0 && self.changed == 0 && self.keys_added == 0 && self.keys_changed == 0
    }
}

/// A tenant as `residency tenants show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDetails {
    /// The tenant's row.
    pub record: TenantRecord,
    /// Its own access keys.
    pub keys: Vec<String>,
    /// The service keys that may act for it.
    pub service_keys: Vec<String>,
    /// When the row last changed (PostgreSQL's text form).
    pub updated_at: String,
}

/// How `residency tenants set T` changes a tenant's features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureChange {
    /// `--features a,b`: exactly these.
    Replace(Vec<String>),
    /// `--add-feature a`: these too.
    Add(Vec<String>),
    /// `--remove-feature a`: not these.
    Remove(Vec<String>),
}

/// A migration [`begin_migration`] started (or [`finish_migration`] finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStart {
    /// The region the tenant's data moves away from.
    pub from: String,
    /// The tenant's new locality.
    pub to: String,
}

fn sorted(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether two records say the same (features compared as sets).
fn same_record(a: &TenantRecord, b: &TenantRecord) -> bool {
    a.id == b.id
        && a.locality == b.locality
        && a.strict == b.strict
        && sorted(&a.features) == sorted(&b.features)
        && a.bucket() == b.bucket()
        && a.migrating_from == b.migrating_from
        && a.migrated_from == b.migrated_from
}

/// An existing `keys` row.
struct KeyRow {
    tenant_id: Option<String>,
    nonce: Vec<u8>,
    sealed: Vec<u8>,
    kek_id: String,
    tenants: Vec<String>,
}

/// Imports the tenants file into the directory, in one transaction.
///
/// Idempotent: a tenant or key already as the file says is left alone (the
/// secrets are compared decrypted), so a second import reports no change.
/// Tenants and keys in the database but not in the file are kept. Each
/// secret is read with `resolve_secret` and sealed under `key`.
///
/// # Errors
/// Nothing is written when: a secret cannot be read, or the file changes an
/// existing tenant's locality without showing a migration (`migrating_from`
/// or `migrated_from` naming the region it had: a change of locality goes
/// through `residency migrate`), or the database refuses a row.
pub async fn import(
    client: &mut Client,
    tenants: &Tenants,
    policy: &Policy,
    mut resolve_secret: impl FnMut(&SecretRef) -> Result<String, String>,
    key: &DirectoryKey,
) -> Result<ImportReport, PgError> {
    let tx = client.transaction().await?;
    // Buckets are checked at commit: the file may swap two tenants' buckets.
    tx.batch_execute("SET CONSTRAINTS tenants_bucket_key DEFERRED")
        .await?;
    let mut report = ImportReport::default();
    let mut errors = Vec::new();

    let ids: Vec<&str> = tenants.iter().map(|(_, t)| t.id()).collect();
    let existing: HashMap<String, TenantRecord> = tx
        .query(
            &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY($1) FOR UPDATE"),
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| {
            let (r, _) = tenant_row(row);
            (r.id.clone(), r)
        })
        .collect();

    // New tenants are inserted in batches after the loop, in file order (the
    // order their handles are numbered in).
    let mut added: Vec<TenantRecord> = Vec::new();
    for (_, t) in tenants.iter() {
        let rec = TenantRecord::of(t, policy);
        match existing.get(&rec.id) {
            None => {
                report.added += 1;
                added.push(rec);
            }
            Some(old) if same_record(old, &rec) => report.unchanged += 1,
            Some(old) => {
                if old.locality != rec.locality {
                    let default = policy.region(policy.default_region()).id();
                    let old_home = old.locality.as_deref().unwrap_or(default);
                    let shown = rec.migrating_from.as_deref() == Some(old_home)
                        || rec.migrated_from.as_deref() == Some(old_home);
                    if !shown {
                        errors.push(format!(
                            "tenant {:?}: the file changes its locality from {} to {}: a change of locality goes through `residency migrate` (or the file names the old region in `migrating_from`)",
                            rec.id,
                            old.locality.as_deref().unwrap_or("none"),
                            rec.locality.as_deref().unwrap_or("none"),
                        ));
                        continue;
                    }
                }
                tx.execute(
                    "UPDATE tenants SET locality = $2, strict = $3, features = $4, bucket = $5, \
                     migrating_from = $6, migrated_from = $7 WHERE id = $1",
                    &[
                        &rec.id,
                        &rec.locality,
                        &rec.strict,
                        &rec.features,
                        &rec.bucket(),
                        &rec.migrating_from,
                        &rec.migrated_from,
                    ],
                )
                .await?;
                report.changed += 1;
            }
        }
    }

    for chunk in added.chunks(IMPORT_BATCH) {
        insert_tenants(&tx, chunk).await?;
    }

    // Keys: (access key, owning tenant or the service key's tenants, secret).
    /// (access key, its tenant or the service key's tenants, secret, whose).
    type Wanted<'t> = (&'t str, Result<&'t str, Vec<String>>, &'t SecretRef, String);
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    for (_, t) in tenants.iter() {
        for k in t.keys() {
            wanted.push((
                &k.access_key,
                Ok(t.id()),
                &k.secret,
                format!("tenant {}: key", t.id()),
            ));
        }
    }
    for s in tenants.service_keys() {
        let mut ids: Vec<String> = s
            .tenants
            .iter()
            .map(|&t| tenants.tenant(t).id().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        wanted.push((&s.access_key, Err(ids), &s.secret, "service key".to_owned()));
    }
    let access_keys: Vec<&str> = wanted.iter().map(|w| w.0).collect();
    let old_keys: HashMap<String, KeyRow> = tx
        .query(
            "SELECT k.access_key, k.tenant_id, k.secret_nonce, k.secret_sealed, k.kek_id, \
             ARRAY(SELECT s.tenant_id FROM service_key_tenants s WHERE s.access_key = k.access_key ORDER BY s.tenant_id) \
             FROM keys k WHERE k.access_key = ANY($1) FOR UPDATE",
            &[&access_keys],
        )
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                KeyRow {
                    tenant_id: r.get(1),
                    nonce: r.get(2),
                    sealed: r.get(3),
                    kek_id: r.get(4),
                    tenants: r.get(5),
                },
            )
        })
        .collect();

    let mut new_keys: Vec<NewKey> = Vec::new();
    for (access_key, owner, secret_ref, whose) in wanted {
        let secret = match resolve_secret(secret_ref) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                errors.push(format!("{whose} {access_key}: the secret is empty"));
                continue;
            }
            Err(m) => {
                errors.push(format!("{whose} {access_key}: {m}"));
                continue;
            }
        };
        let (tenant_id, service_tenants) = match &owner {
            Ok(t) => (Some(*t), None),
            Err(ids) => (None, Some(ids)),
        };
        let old = old_keys.get(access_key);
        let same_secret = old.is_some_and(|o| {
            o.kek_id == key.id()
                && key.open(access_key, &o.nonce, &o.sealed).as_deref() == Ok(secret.as_str())
        });
        let same_owner = old.is_some_and(|o| {
            o.tenant_id.as_deref() == tenant_id
                && service_tenants.is_none_or(|ids| &o.tenants == ids)
        });
        if same_secret && same_owner {
            continue;
        }
        match old {
            None => report.keys_added += 1,
            Some(_) => report.keys_changed += 1,
        }
        let (nonce, sealed) = key.seal(access_key, &secret);
        if let (None, Some(tenant)) = (old, tenant_id) {
            // A new tenant key: inserted in batches below.
            new_keys.push((access_key.to_owned(), tenant.to_owned(), nonce, sealed));
            if new_keys.len() == IMPORT_BATCH {
                insert_keys(&tx, &std::mem::take(&mut new_keys), key.id()).await?;
            }
            continue;
        }
        let owner_changes = old.is_some() && !same_owner;
        if owner_changes {
            tx.execute(
                "DELETE FROM service_key_tenants WHERE access_key = $1",
                &[&access_key],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO keys (access_key, tenant_id, service, secret_nonce, secret_sealed, kek_id) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (access_key) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, service = EXCLUDED.service, \
             secret_nonce = EXCLUDED.secret_nonce, secret_sealed = EXCLUDED.secret_sealed, kek_id = EXCLUDED.kek_id",
            &[&access_key, &tenant_id, &tenant_id.is_none(), &nonce, &sealed, &key.id()],
        )
        .await?;
        if let Some(ids) = service_tenants {
            if old.is_none() || owner_changes {
                tx.execute(
                    "INSERT INTO service_key_tenants (access_key, tenant_id) SELECT $1, unnest($2::text[])",
                    &[&access_key, ids],
                )
                .await?;
            }
        }
    }

    insert_keys(&tx, &new_keys, key.id()).await?;

    if !errors.is_empty() {
        tx.rollback().await?;
        return Err(PgError::Invalid(errors));
    }
    tx.commit().await?;
    Ok(report)
}

/// Rows per statement when an import inserts new tenants and keys (one
/// round trip each instead of one per row: 10^5 tenants in seconds).
const IMPORT_BATCH: usize = 5_000;

/// A new tenant key: access key, tenant, nonce, sealed secret.
type NewKey = (String, String, Vec<u8>, Vec<u8>);

/// Inserts new tenants in one statement, in the order given (their handles
/// are numbered in that order).
async fn insert_tenants(tx: &Transaction<'_>, rows: &[TenantRecord]) -> Result<(), PgError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let localities: Vec<Option<&str>> = rows.iter().map(|r| r.locality.as_deref()).collect();
    let strict: Vec<bool> = rows.iter().map(|r| r.strict).collect();
    // Feature ids never contain a comma (the policy's ids are checked).
    let features: Vec<String> = rows.iter().map(|r| r.features.join(",")).collect();
    let buckets: Vec<&str> = rows.iter().map(TenantRecord::bucket).collect();
    let from: Vec<Option<&str>> = rows.iter().map(|r| r.migrating_from.as_deref()).collect();
    let moved: Vec<Option<&str>> = rows.iter().map(|r| r.migrated_from.as_deref()).collect();
    tx.execute(
        "INSERT INTO tenants (id, locality, strict, features, bucket, migrating_from, migrated_from) \
         SELECT id, loc, st, CASE WHEN f = '' THEN '{}'::text[] ELSE string_to_array(f, ',') END, b, mf, md \
         FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[], $7::text[]) \
              WITH ORDINALITY AS u(id, loc, st, f, b, mf, md, n) \
         ORDER BY n",
        &[&ids, &localities, &strict, &features, &buckets, &from, &moved],
    )
    .await?;
    Ok(())
}

/// Inserts new tenant keys in one statement.
async fn insert_keys(tx: &Transaction<'_>, rows: &[NewKey], kek_id: &str) -> Result<(), PgError> {
    if rows.is_empty() {
        return Ok(());
    }
    let access: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let tenants: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let nonces: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
    let sealed: Vec<&[u8]> = rows.iter().map(|r| r.3.as_slice()).collect();
    tx.execute(
        "INSERT INTO keys (access_key, tenant_id, service, secret_nonce, secret_sealed, kek_id) \
         SELECT a, t, false, n, s, $5 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[]) AS u(a, t, n, s)",
        &[&access, &tenants, &nonces, &sealed, &kek_id],
    )
    .await?;
    Ok(())
}

#[derive(Serialize)]
struct OutFile {
    tenants: Vec<OutTenant>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    service_keys: Vec<OutServiceKey>,
}

#[derive(Serialize)]
struct OutTenant {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    locality: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    strict: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    features: Vec<String>,
    bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrating_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrated_from: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<OutKey>,
}

#[derive(Serialize)]
struct OutKey {
    access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<String>,
}

#[derive(Serialize)]
struct OutServiceKey {
    access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<String>,
    tenants: Vec<String>,
}

/// The environment variable an exported key's secret is read from:
/// `RESIDENCY_SECRET_<ACCESS_KEY>` (upper case, other than letters and digits
/// as `_`).
pub fn secret_env_name(access_key: &str) -> String {
    let mut name = String::from("RESIDENCY_SECRET_");
    name.extend(access_key.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name
}

/// The directory as a tenants file (what [`Tenants::from_toml`] parses),
/// tenants in the order they were added.
///
/// Secrets are exported as `secret_env = "RESIDENCY_SECRET_<ACCESS_KEY>"`
/// placeholders, or in plain text (`secret_key`) when `secrets` gives the
/// key-encryption keys to open them with.
///
/// # Errors
/// A database error, or a secret that does not open under `secrets`.
pub async fn export(
    client: &impl GenericClient,
    secrets: Option<&[DirectoryKey]>,
) -> Result<String, PgError> {
    let rows = client
        .query(
            &format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY handle, id"),
            &[],
        )
        .await?;
    let mut out = OutFile {
        tenants: Vec::new(),
        service_keys: Vec::new(),
    };
    let mut index = HashMap::new();
    for row in &rows {
        let (r, _) = tenant_row(row);
        index.insert(r.id.clone(), out.tenants.len());
        out.tenants.push(OutTenant {
            bucket: r.bucket().to_owned(),
            id: r.id,
            locality: r.locality,
            strict: r.strict,
            features: r.features,
            migrating_from: r.migrating_from,
            migrated_from: r.migrated_from,
            keys: Vec::new(),
        });
    }
    let secret = |access_key: &str, nonce: &[u8], sealed: &[u8], kek_id: &str| {
        Ok::<_, PgError>(match secrets {
            Some(keys) => (
                Some(open_with(keys, access_key, kek_id, nonce, sealed)?),
                None,
            ),
            None => (None, Some(secret_env_name(access_key))),
        })
    };
    let keys = client
        .query(
            "SELECT k.access_key, k.tenant_id, k.secret_nonce, k.secret_sealed, k.kek_id, \
             ARRAY(SELECT s.tenant_id FROM service_key_tenants s WHERE s.access_key = k.access_key ORDER BY s.tenant_id) \
             FROM keys k ORDER BY k.access_key",
            &[],
        )
        .await?;
    for k in &keys {
        let access_key: String = k.get(0);
        let tenant: Option<String> = k.get(1);
        let (secret_key, secret_env) = secret(&access_key, k.get(2), k.get(3), k.get(4))?;
        match tenant {
            Some(t) => {
                if let Some(&i) = index.get(&t) {
                    out.tenants[i].keys.push(OutKey {
                        access_key,
                        secret_key,
                        secret_env,
                    });
                }
            }
            None => out.service_keys.push(OutServiceKey {
                access_key,
                secret_key,
                secret_env,
                tenants: k.get(5),
            }),
        }
    }
    toml::to_string(&out).map_err(|e| PgError::Invalid(vec![format!("cannot write TOML: {e}")]))
}

/// A tenant's row, its keys and the service keys that may act for it.
///
/// # Errors
/// A database error.
pub async fn show(client: &impl GenericClient, id: &str) -> Result<Option<TenantDetails>, PgError> {
    let Some(row) = client
        .query_opt(
            &format!("SELECT {TENANT_COLUMNS}, updated_at::text FROM tenants WHERE id = $1"),
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (record, _) = tenant_row(&row);
    let keys = client
        .query(
            "SELECT access_key FROM keys WHERE tenant_id = $1 ORDER BY access_key",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let service_keys = client
        .query(
            "SELECT access_key FROM service_key_tenants WHERE tenant_id = $1 ORDER BY access_key",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(TenantDetails {
        record,
        keys,
        service_keys,
        updated_at: row.get(8),
    }))
}

/// Changes a tenant's features (one transaction); answers the features
/// before and after (after: in the policy's order).
///
/// # Errors
/// No such tenant, or the result names a feature the policy does not
/// declare (nothing is written).
pub async fn set_features(
    client: &mut Client,
    id: &str,
    change: FeatureChange,
    policy: &Policy,
) -> Result<(Vec<String>, Vec<String>), PgError> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT features FROM tenants WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Err(PgError::NotFound(id.to_owned()));
    };
    let before: Vec<String> = row.get(0);
    let mut set: BTreeSet<String> = before.iter().cloned().collect();
    match change {
        FeatureChange::Replace(v) => set = v.into_iter().collect(),
        FeatureChange::Add(v) => set.extend(v),
        FeatureChange::Remove(v) => {
            for f in v {
                set.remove(&f);
            }
        }
    }
    let undeclared: Vec<String> = set
        .iter()
        .filter(|f| policy.feature_by_id(f).is_none())
        .map(|f| format!("tenant {id:?}: feature {f:?} is not declared by the policy"))
        .collect();
    if !undeclared.is_empty() {
        return Err(PgError::Invalid(undeclared));
    }
    let after: Vec<String> = policy
        .features()
        .iter()
        .filter(|f| set.contains(*f))
        .cloned()
        .collect();
    if before != after {
        tx.execute(
            "UPDATE tenants SET features = $2 WHERE id = $1",
            &[&id, &after],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((before, after))
}

/// Starts moving tenant `id` to region `to` inside the caller's transaction:
/// `locality = to`, `migrating_from` = the region it had (its locality, or
/// the policy's default region).
///
/// # Errors
/// No such tenant, `to` is not a region of the policy, the tenant is
/// already there, or a migration is already in progress.
pub async fn begin_migration(
    tx: &Transaction<'_>,
    policy: &Policy,
    id: &str,
    to: &str,
) -> Result<MigrationStart, PgError> {
    if policy.region_by_id(to).is_none() {
        return Err(PgError::Invalid(vec![format!(
            "{to:?} is not a region of the policy"
        )]));
    }
    let Some(row) = tx
        .query_opt(
            "SELECT locality, migrating_from FROM tenants WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Err(PgError::NotFound(id.to_owned()));
    };
    let locality: Option<String> = row.get(0);
    let migrating: Option<String> = row.get(1);
    if let Some(m) = migrating {
        return Err(PgError::Invalid(vec![format!(
            "tenant {id:?} is already migrating from {m} to {}: finish that migration first",
            locality.as_deref().unwrap_or("none")
        )]));
    }
    let from = locality
        .clone()
        .unwrap_or_else(|| policy.region(policy.default_region()).id().to_owned());
    if locality.as_deref() == Some(to) {
        return Err(PgError::Invalid(vec![format!(
            "tenant {id:?} already has locality {to}"
        )]));
    }
    tx.execute(
        "UPDATE tenants SET locality = $2, migrating_from = $3 WHERE id = $1",
        &[&id, &to, &from],
    )
    .await?;
    Ok(MigrationStart {
        from,
        to: to.to_owned(),
    })
}

/// Finishes tenant `id`'s migration: `migrated_from` = `migrating_from`,
/// `migrating_from` cleared.
///
/// # Errors
/// No such tenant, or it is not migrating.
pub async fn finish_migration(
    client: &impl GenericClient,
    id: &str,
) -> Result<MigrationStart, PgError> {
    let row = client
        .query_opt(
            "UPDATE tenants SET migrated_from = migrating_from, migrating_from = NULL \
             WHERE id = $1 AND migrating_from IS NOT NULL RETURNING migrated_from, locality",
            &[&id],
        )
        .await?;
    match row {
        Some(r) => Ok(MigrationStart {
            from: r.get(0),
            to: r.get::<_, Option<String>>(1).unwrap_or_default(),
        }),
        None => {
            let exists = client
                .query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&id])
                .await?
                .is_some();
            Err(if exists {
                PgError::Invalid(vec![format!("tenant {id:?} is not migrating")])
            } else {
                PgError::NotFound(id.to_owned())
            })
        }
    }
}

/// Rows re-sealed per transaction by [`rotate_key`].
const ROTATE_BATCH: i64 = 500;

/// Re-seals every secret under `new` (`residency tenants rotate-key`), in
/// batches of one transaction each; resumable (rows already under `new` are
/// skipped). Directories opened with both keys answer throughout. Answers
/// how many secrets it re-sealed.
///
/// # Errors
/// A database error, or a row sealed under neither key (that batch is not
/// written; the batches before it stay).
pub async fn rotate_key(
    client: &mut Client,
    old: &DirectoryKey,
    new: &DirectoryKey,
) -> Result<u64, PgError> {
    let keys = [new.clone(), old.clone()];
    let mut count = 0u64;
    loop {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT access_key, secret_nonce, secret_sealed, kek_id FROM keys \
                 WHERE kek_id <> $1 ORDER BY access_key LIMIT $2 FOR UPDATE",
                &[&new.id(), &ROTATE_BATCH],
            )
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(count);
        }
        for row in &rows {
            let access_key: &str = row.get(0);
            let secret = open_with(&keys, access_key, row.get(3), row.get(1), row.get(2))?;
            let (nonce, sealed) = new.seal(access_key, &secret);
            tx.execute(
                "UPDATE keys SET secret_nonce = $2, secret_sealed = $3, kek_id = $4 WHERE access_key = $1",
                &[&access_key, &nonce, &sealed, &new.id()],
            )
            .await?;
        }
        tx.commit().await?;
        count += rows.len() as u64;
        tracing::info!(
            resealed = count,
            "tenant directory: rotating the key-encryption key"
        );
    }
}
