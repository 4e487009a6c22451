//! Many tenants: `residency-bench seed-directory` fills a PostgreSQL tenant
//! directory with N generated tenants (one access key each, the secret
//! sealed as `residency tenants import` seals it), and `run --tenants N
//! --zipf S` spreads requests over them with a Zipf law.
//!
//! The names are fixed so the two sides agree without sharing a file:
//! tenant `z0000042` (virtual bucket of the same name, locality `eu` for
//! even numbers, `us` for odd), access key `ZAK0000042`, secret
//! `zipf-bench-secret-0000042`. Bench data only: never for a real directory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures::pin_mut;
use rand::distr::Distribution as _;
use residency_directory::postgres::{connect_client, migrate, DirectoryKey};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

/// Tenant number `n`'s id (and virtual bucket).
pub(crate) fn tenant_id(n: u64) -> String {
    format!("z{n:07}")
}

/// Tenant number `n`'s access key.
pub(crate) fn access_key(n: u64) -> String {
    format!("ZAK{n:07}")
}

/// Tenant number `n`'s secret key.
pub(crate) fn secret_key(n: u64) -> String {
    format!("zipf-bench-secret-{n:07}")
}

/// Which tenant each request goes to: ranks drawn from Zipf(n, s), rank 1
/// the most requested; `n = 1` is the one-tenant baseline.
#[derive(Debug, Clone)]
pub(crate) struct Spread {
    zipf: rand_distr::Zipf<f64>,
}

impl Spread {
    pub(crate) fn new(tenants: u64, s: f64) -> Result<Self> {
        if tenants == 0 {
            bail!("--tenants must be at least 1");
        }
        let zipf = rand_distr::Zipf::new(tenants as f64, s)
            .with_context(|| format!("Zipf over {tenants} tenants with s = {s}"))?;
        Ok(Self { zipf })
    }

    /// The next tenant number (0-based).
    pub(crate) fn pick(&self, rng: &mut impl rand::Rng) -> u64 {
        (self.zipf.sample(rng) as u64).saturating_sub(1)
    }
}

/// Creates the directory schema in `url` and inserts tenants `0..n` with
/// their keys (sealed under `key`), in bulk: `generate_series` for the
/// tenants, binary `COPY` for the keys, the change notifications off while
/// it runs (no sidecar listens yet). Existing `z…` tenants are replaced.
pub(crate) async fn seed(url: &str, n: u64, key: &DirectoryKey) -> Result<()> {
    let started = Instant::now();
    let mut client = connect_client(url, Duration::from_secs(10))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    migrate(&mut client).await.context("directory schema")?;
    let tx = client.transaction().await?;
    tx.batch_execute(
        "ALTER TABLE tenants DISABLE TRIGGER USER; ALTER TABLE keys DISABLE TRIGGER USER; \
         DELETE FROM tenants WHERE id LIKE 'z%';",
    )
    .await?;
    tx.execute(
        "INSERT INTO tenants (id, locality, bucket) \
         SELECT 'z' || lpad(i::text, 7, '0'), CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, \
                'z' || lpad(i::text, 7, '0') \
         FROM generate_series(0, $1::bigint - 1) AS i",
        &[&(n as i64)],
    )
    .await?;
    eprintln!(
        "seed: {n} tenants inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let sink = tx
        .copy_in(
            "COPY keys (access_key, tenant_id, service, secret_nonce, secret_sealed, kek_id) \
             FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::BYTEA,
            Type::BYTEA,
            Type::TEXT,
        ],
    );
    pin_mut!(writer);
    let kek = key.id().to_owned();
    for i in 0..n {
        let ak = access_key(i);
        let (nonce, sealed) = key.seal(&ak, &secret_key(i));
        writer
            .as_mut()
            .write(&[&ak, &tenant_id(i), &false, &nonce, &sealed, &kek])
            .await?;
        if i > 0 && i % 200_000 == 0 {
            eprintln!("seed: {i} keys sealed and sent");
        }
    }
    writer.finish().await?;
    tx.batch_execute(
        "ALTER TABLE tenants ENABLE TRIGGER USER; ALTER TABLE keys ENABLE TRIGGER USER;",
    )
    .await?;
    tx.commit().await?;
    client
        .batch_execute("ANALYZE tenants; ANALYZE keys")
        .await?;
    eprintln!(
        "seed: {n} tenants and keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_is_always_tenant_zero_and_many_favour_the_first() {
        let mut rng = rand::rng();
        let one = Spread::new(1, 1.1).unwrap();
        assert!((0..1000).all(|_| one.pick(&mut rng) == 0));
        let many = Spread::new(1_000_000, 1.1).unwrap();
        let picks: Vec<u64> = (0..20_000).map(|_| many.pick(&mut rng)).collect();
        assert!(picks.iter().all(|&p| p < 1_000_000));
        let first = picks.iter().filter(|&&p| p == 0).count();
        let distinct: std::collections::HashSet<_> = picks.iter().collect();
        // Rank 1 carries ~1/zeta(1.1) of the draws (several percent), and
        // the tail still spreads over thousands of tenants.
        assert!(first > 500, "{first}");
        assert!(distinct.len() > 2_000, "{}", distinct.len());
    }

    #[test]
    fn names_match_what_the_sidecar_is_told() {
        assert_eq!(tenant_id(42), "z0000042");
        assert_eq!(access_key(42), "ZAK0000042");
        assert_eq!(secret_key(42), "zipf-bench-secret-0000042");
        assert!(Spread::new(0, 1.1).is_err());
    }
}
