//! The tenants file: every tenant, virtual bucket and key, parsed whole and
//! validated against a policy (the embedded default tenant directory).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::category::FeatureSet;
use crate::error::{ConfigErrors, Diagnostics};
use crate::lookup::TenantLookup;
use crate::policy::Policy;
use crate::region::RegionOrder;
use crate::tenant::{KeyOwner, SecretRef, ServiceKey, Tenant, TenantId, TenantKey};

/// Lookups by id on the hot path: a fast hasher (keys come from config files).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The tenants file, validated against a policy.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    tenants: Vec<Arc<Tenant>>,
    service_keys: Vec<ServiceKey>,
    by_id: FastMap<String, TenantId>,
    by_bucket: FastMap<String, TenantId>,
    by_access_key: FastMap<String, KeyOwner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenants {
    #[serde(default)]
    tenants: Vec<Spanned<RawTenant>>,
    #[serde(default)]
    service_keys: Vec<Spanned<RawServiceKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Spanned<String>,
    locality: Option<Spanned<String>>,
    strict: Option<Spanned<bool>>,
    #[serde(default)]
    features: Vec<Spanned<String>>,
    bucket: Option<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<RawKey>>,
    migrating_from: Option<Spanned<String>>,
    migrated_from: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    access_key: Spanned<String>,
    secret_key: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceKey {
    access_key: Spanned<String>,
    secret_key: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
    tenants: Vec<Spanned<String>>,
}

/// Whether `name` is a valid S3 bucket name (3-63 of a-z 0-9 . -, starting and
/// ending with a letter or digit).
pub fn valid_bucket(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// Gives `access_key` to `owner`; a key declared twice is an error.
fn claim_key(
    by_access_key: &mut FastMap<String, KeyOwner>,
    access_key: &Spanned<String>,
    owner: KeyOwner,
    diag: &mut Diagnostics<'_>,
) {
    let key = access_key.get_ref();
    if by_access_key.insert(key.clone(), owner).is_some() {
        diag.push(
            Some(access_key.span()),
            format!("access key {key:?} is declared twice"),
        );
    }
}

fn secret_ref(
    span: std::ops::Range<usize>,
    inline: &Option<String>,
    env: &Option<String>,
    file: &Option<String>,
    diag: &mut Diagnostics<'_>,
) -> Option<SecretRef> {
    match (inline, env, file) {
        (Some(s), None, None) => Some(SecretRef::Inline(s.clone())),
        (None, Some(v), None) => Some(SecretRef::Env(v.clone())),
        (None, None, Some(p)) => Some(SecretRef::File(p.clone())),
        _ => {
            diag.push(
                Some(span),
                "a key needs exactly one of secret_key, secret_env or secret_file",
            );
            None
        }
    }
}

impl Tenants {
    /// Parses and validates a tenants file against `policy`.
    ///
    /// # Errors
    /// Every problem found, each with its line: duplicate tenant ids, buckets or
    /// access keys, an undeclared locality or feature, `strict` without a
    /// locality, a key with no or several secret sources, a service key naming
    /// an unknown tenant.
    pub fn from_toml(source: &str, file: &str, policy: &Policy) -> Result<Tenants, ConfigErrors> {
        let mut diag = Diagnostics::new(file, source);
        let raw: RawTenants = match toml::from_str(source) {
            Ok(r) => r,
            Err(e) => {
                diag.push_toml(&e);
                return Err(diag.finish().unwrap_err());
            }
        };
        let mut tenants = Vec::new();
        let mut by_id = FastMap::default();
        let mut by_bucket = FastMap::default();
        let mut by_access_key = FastMap::default();
        for t in &raw.tenants {
            let t = t.get_ref();
            let id = t.id.get_ref();
            let tid = TenantId(tenants.len() as u32);
            let id_ok = {
                let mut b = id.bytes();
                matches!(b.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
                    && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
                    && id.len() <= 63
            };
            if !id_ok {
                diag.push(
                    Some(t.id.span()),
                    format!("tenant id {id:?} must be 1-63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"),
                );
            }
            if by_id.insert(id.clone(), tid).is_some() {
                diag.push(
                    Some(t.id.span()),
                    format!("tenant {id:?} is declared twice"),
                );
            }
            let locality = t.locality.as_ref().and_then(|l| {
                let r = policy.region_by_id(l.get_ref());
                if r.is_none() {
                    diag.push(
                        Some(l.span()),
                        format!(
                            "tenant {id:?} has locality {:?}, which is not a region of the policy",
                            l.get_ref()
                        ),
                    );
                }
                r
            });
            let strict = t.strict.as_ref().is_some_and(|s| *s.get_ref());
            if strict && t.locality.is_none() {
                diag.push(
                    t.strict.as_ref().map(|s| s.span()),
                    format!("tenant {id:?} is strict but has no locality: strict means never outside the locality, so set `locality`"),
                );
            }
            let mut features = FeatureSet::default();
            for f in &t.features {
                match policy.feature_by_id(f.get_ref()) {
                    Some(fid) => features = features.with(fid),
                    None => diag.push(
                        Some(f.span()),
                        format!(
                            "tenant {id:?} enables feature {:?}, which the policy does not declare",
                            f.get_ref()
                        ),
                    ),
                }
            }
            let (bucket, bucket_span) = match &t.bucket {
                Some(b) => (b.get_ref().clone(), b.span()),
                None => (id.clone(), t.id.span()),
            };
            if !valid_bucket(&bucket) {
                diag.push(
                    Some(bucket_span.clone()),
                    format!("tenant {id:?} has bucket {bucket:?}, which is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-'); set `bucket`"),
                );
            }
            if by_bucket.insert(bucket.clone(), tid).is_some() {
                diag.push(
                    Some(bucket_span),
                    format!("bucket {bucket:?} belongs to two tenants"),
                );
            }
            let mut keys = Vec::new();
            for k in &t.keys {
                let span = k.span();
                let k = k.get_ref();
                claim_key(
                    &mut by_access_key,
                    &k.access_key,
                    KeyOwner::Tenant(tid),
                    &mut diag,
                );
                if let Some(secret) = secret_ref(
                    span,
                    &k.secret_key,
                    &k.secret_env,
                    &k.secret_file,
                    &mut diag,
                ) {
                    keys.push(TenantKey {
                        access_key: k.access_key.get_ref().clone(),
                        secret,
                    });
                }
            }
            let migrating_from = t.migrating_from.as_ref().and_then(|m| {
                let r = policy.region_by_id(m.get_ref());
                if r.is_none() {
                    diag.push(
                        Some(m.span()),
                        format!("tenant {id:?} is migrating from {:?}, which is not a region of the policy", m.get_ref()),
                    );
                }
                r
            });
            let migrated_from = t.migrated_from.as_ref().and_then(|m| {
                let r = policy.region_by_id(m.get_ref());
                if r.is_none() {
                    diag.push(
                        Some(m.span()),
                        format!("tenant {id:?} was migrated from {:?}, which is not a region of the policy (remove `migrated_from`)", m.get_ref()),
                    );
                }
                r
            });
            tenants.push(Arc::new(Tenant {
                handle: tid,
                id: id.clone(),
                locality,
                strict,
                features,
                bucket,
                keys,
                migrating_from,
                migrated_from,
            }));
        }
        let mut service_keys = Vec::new();
        for s in &raw.service_keys {
            let span = s.span();
            let s = s.get_ref();
            let idx = service_keys.len();
            claim_key(
                &mut by_access_key,
                &s.access_key,
                KeyOwner::Service(idx),
                &mut diag,
            );
            let mut ids = Vec::new();
            for t in &s.tenants {
                match by_id.get(t.get_ref()) {
                    Some(&tid) => ids.push(tid),
                    None => diag.push(
                        Some(t.span()),
                        format!(
                            "service key {:?} names tenant {:?}, which is not declared",
                            s.access_key.get_ref(),
                            t.get_ref()
                        ),
                    ),
                }
            }
            let secret = secret_ref(
                span,
                &s.secret_key,
                &s.secret_env,
                &s.secret_file,
                &mut diag,
            );
            service_keys.push(ServiceKey {
                access_key: s.access_key.get_ref().clone(),
                secret: secret.unwrap_or(SecretRef::Inline(String::new())),
                tenants: ids,
            });
        }
        diag.finish()?;
        Ok(Tenants {
            tenants,
            service_keys,
            by_id,
            by_bucket,
            by_access_key,
        })
    }

    /// Builds a directory from tenants already validated (for tests and
    /// library users who keep tenants elsewhere).
    ///
    /// # Errors
    /// Duplicate ids, buckets, or `strict` without locality.
    pub fn from_tenants(mut list: Vec<Tenant>) -> Result<Tenants, String> {
        let mut by_id = FastMap::default();
        let mut by_bucket = FastMap::default();
        let mut by_access_key = FastMap::default();
        for (i, t) in list.iter_mut().enumerate() {
            let tid = TenantId(i as u32);
            t.handle = tid;
            if t.strict && t.locality.is_none() {
                return Err(format!("tenant {:?} is strict without a locality", t.id));
            }
            if by_id.insert(t.id.clone(), tid).is_some() {
                return Err(format!("tenant {:?} is declared twice", t.id));
            }
            if by_bucket.insert(t.bucket.clone(), tid).is_some() {
                return Err(format!("bucket {:?} belongs to two tenants", t.bucket));
            }
            for k in &t.keys {
                if by_access_key
                    .insert(k.access_key.clone(), KeyOwner::Tenant(tid))
                    .is_some()
                {
                    return Err(format!("access key {:?} is declared twice", k.access_key));
                }
            }
        }
        Ok(Tenants {
            tenants: list.into_iter().map(Arc::new).collect(),
            service_keys: Vec::new(),
            by_id,
            by_bucket,
            by_access_key,
        })
    }

    /// Looks a tenant up by id (no allocation).
    pub fn get(&self, id: &str) -> Option<TenantId> {
        self.by_id.get(id).copied()
    }

    /// Looks a tenant up by its virtual bucket.
    pub fn by_bucket(&self, bucket: &str) -> Option<TenantId> {
        self.by_bucket.get(bucket).copied()
    }

    /// Who an access key belongs to.
    pub fn key_owner(&self, access_key: &str) -> Option<KeyOwner> {
        self.by_access_key.get(access_key).copied()
    }

    /// A tenant's details.
    pub fn tenant(&self, id: TenantId) -> &Tenant {
        &self.tenants[id.index()]
    }

    /// A tenant, shared (what a directory hands out).
    pub fn shared(&self, id: TenantId) -> &Arc<Tenant> {
        &self.tenants[id.index()]
    }

    /// Every tenant, in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (TenantId, &Tenant)> {
        self.tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (TenantId(i as u32), &**t))
    }

    /// Number of tenants.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// Whether there are no tenants.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The service keys, in file order.
    pub fn service_keys(&self) -> &[ServiceKey] {
        &self.service_keys
    }

    /// Whether `owner` may act for `tenant`.
    pub fn may_act_for(&self, owner: KeyOwner, tenant: TenantId) -> bool {
        match owner {
            KeyOwner::Tenant(t) => t == tenant,
            KeyOwner::Service(i) => self.service_keys[i].tenants.contains(&tenant),
        }
    }

    /// Every region where a tenant may have data, in the order reads try them;
    /// see [`Policy::read_order`].
    pub fn read_order(&self, policy: &Policy, id: TenantId) -> RegionOrder {
        policy.read_order(self.tenant(id))
    }
}

impl TenantLookup for Tenants {
    fn by_tenant_id(&self, id: &str) -> Option<&Tenant> {
        self.get(id).map(|t| self.tenant(t))
    }

    fn by_virtual_bucket(&self, bucket: &str) -> Option<&Tenant> {
        self.by_bucket(bucket).map(|t| self.tenant(t))
    }

    fn by_access_key(&self, access_key: &str) -> Option<KeyOwner> {
        self.key_owner(access_key)
    }

    fn key_may_act_for(&self, owner: KeyOwner, tenant: &Tenant) -> bool {
        self.may_act_for(owner, tenant.handle())
    }
}
