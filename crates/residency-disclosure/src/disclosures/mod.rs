//! [`Disclosures`]: the register of every tenant's disclosure requests, and
//! the guard in front of every export.

mod export;
mod reports;
mod requests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use residency_directory::{Directory, FileDirectory};
use residency_policy::{Policy, Ruleset, Tenant};
use residency_store::{Backend, ListRequest};

use crate::adequacy::Adequacy;
use crate::error::DisclosureError;
use crate::export::Limits;
use crate::ledger::{Ledger, Loaded};
use crate::record::RequestRecord;
use crate::request::{parse_request_id, UNATTRIBUTED};
use crate::signing::{Member, Signer};

/// The register of disclosure requests over the regions' backends.
///
/// Each tenant's ledger lives in its home region (its locality, else the
/// policy's default region); exports read the tenant's objects at
/// `<tenant>/<key>` in every region it may have data in.
pub struct Disclosures {
    policy: Policy,
    directory: Arc<dyn Directory>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    limits: Limits,
    adequacy: Adequacy,
    team: Vec<Member>,
    bands: Vec<u64>,
}

impl std::fmt::Debug for Disclosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disclosures")
            .field("regions", &self.backends.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where frozen reports are kept: `_disclosure/_reports/<period>.json` in
/// the policy's default region.
const REPORTS: &str = "_reports";

/// What [`Disclosures::consult`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consult {
    /// The competent data protection authority was consulted.
    Consulted {
        /// The authority.
        authority: String,
        /// Its reference (letter, case number).
        reference: String,
        /// Its answer, summarised.
        summary: String,
    },
    /// Notifying it and suspending the request is legally prohibited (or an
    /// imminent risk of serious harm forbids it): the efforts made.
    Prohibited {
        /// The written record of the efforts (seed 4.2.2).
        efforts: String,
    },
}

/// Region ids with their backends, in the order to look in.
type RegionBackends = Vec<(String, Arc<dyn Backend>)>;

/// One object selected by a scope.
struct Selected {
    key: String,
    region: String,
    size: u64,
    last_modified: SystemTime,
    category: String,
}

impl Disclosures {
    /// A register over `backends` (region id → backend) for the tenants of
    /// `rules` (the tenants file), with the default limits.
    ///
    /// # Errors
    /// `Invalid` when a region of the policy has no backend.
    pub fn new(
        rules: Ruleset,
        backends: impl IntoIterator<Item = (String, Arc<dyn Backend>)>,
    ) -> Result<Disclosures, DisclosureError> {
        let directory = Arc::new(FileDirectory::without_keys(rules.tenants_shared().clone()));
        Disclosures::with_directory(rules.policy().clone(), directory, backends)
    }

    /// A register over `backends` whose tenants are looked up in
    /// `directory` (the tenants file or the PostgreSQL tenant directory),
    /// validated against `policy`.
    ///
    /// # Errors
    /// `Invalid` when a region of the policy has no backend.
    pub fn with_directory(
        policy: Policy,
        directory: Arc<dyn Directory>,
        backends: impl IntoIterator<Item = (String, Arc<dyn Backend>)>,
    ) -> Result<Disclosures, DisclosureError> {
        let backends: BTreeMap<_, _> = backends.into_iter().collect();
        for (_, r) in policy.regions() {
            if !backends.contains_key(r.id()) {
                return Err(DisclosureError::Invalid(format!(
                    "policy region {:?} has no backend",
                    r.id()
                )));
            }
        }
        Ok(Disclosures {
            policy,
            directory,
            backends,
            limits: Limits::default(),
            adequacy: Adequacy::builtin(),
            team: Vec::new(),
            bands: Vec::new(),
        })
    }

    /// Sets the adequacy table (default: the shipped one).
    #[must_use]
    pub fn with_adequacy(mut self, adequacy: Adequacy) -> Self {
        self.adequacy = adequacy;
        self
    }

    /// Sets the privacy team whose signed approvals count.
    #[must_use]
    pub fn with_team(mut self, team: Vec<Member>) -> Self {
        self.team = team;
        self
    }

    /// Sets the bands small counts of the report are published in.
    #[must_use]
    pub fn with_bands(mut self, bands: Vec<u64>) -> Self {
        self.bands = bands;
        self
    }

    /// The adequacy table.
    pub fn adequacy(&self) -> &Adequacy {
        &self.adequacy
    }

    /// Checks that `signer` is a member of the configured team (by name and key).
    fn member(&self, signer: &Signer, what: &str) -> Result<(), DisclosureError> {
        let ok = self.team.iter().any(|m| {
            m.name == signer.member() && m.public_key.eq_ignore_ascii_case(&signer.public_key())
        });
        if ok {
            Ok(())
        } else {
            Err(DisclosureError::Refused(format!(
                "{what} needs a privacy team member's key: {} (key {}) is not in [[privacy_team]]",
                signer.member(),
                signer.public_key()
            )))
        }
    }

    /// The tenant, from the directory: `UnknownTenant` when it knows none,
    /// `Directory` when it cannot answer (never a guess).
    async fn tenant(&self, tenant: &str) -> Result<Arc<Tenant>, DisclosureError> {
        self.directory
            .tenant(&self.policy, tenant)
            .await?
            .ok_or_else(|| DisclosureError::UnknownTenant(tenant.to_owned()))
    }

    /// Sets the export limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The export limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The ledger of `tenant`, in its home region ([`UNATTRIBUTED`]: the
    /// policy's default region).
    ///
    /// # Errors
    /// `UnknownTenant`; `Directory` when the tenant directory cannot answer.
    pub async fn ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        if tenant == UNATTRIBUTED {
            let region = self.policy.region(self.policy.default_region()).id();
            return Ok(Ledger::new(tenant, region, self.backends[region].clone()));
        }
        let t = self.tenant(tenant).await?;
        Ok(self.ledger_of(&t))
    }

    /// The ledger of a tenant the directory answered for.
    fn ledger_of(&self, tenant: &Tenant) -> Ledger {
        let home = self.policy.region(tenant.home_region(&self.policy)).id();
        Ledger::new(tenant.id(), home, self.backends[home].clone())
    }

    /// The ledger of `tenant`, also when it is no longer in the tenants
    /// file (a churned tenant's ledger is found in the region holding it).
    ///
    /// # Errors
    /// `UnknownTenant` when no region holds a ledger for it.
    pub async fn find_ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        match self.ledger(tenant).await {
            Err(DisclosureError::UnknownTenant(_)) => {}
            other => return other,
        }
        for l in self.all_ledgers().await? {
            if l.tenant() == tenant {
                return Ok(l);
            }
        }
        Err(DisclosureError::UnknownTenant(tenant.to_owned()))
    }

    /// Every ledger in every region: each `_disclosure/<tenant>/` found,
    /// whether or not the tenant is still in the tenants file.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn all_ledgers(&self) -> Result<Vec<Ledger>, DisclosureError> {
        let mut found = BTreeSet::new();
        for (region, backend) in &self.backends {
            let mut token = None;
            loop {
                let page = backend
                    .list_objects(ListRequest::new("_disclosure/").continuation_token(token))
                    .await?;
                for o in page.objects {
                    let mut parts = o.key["_disclosure/".len()..].splitn(2, '/');
                    if let (Some(t), Some(rest)) = (parts.next(), parts.next()) {
                        if !t.is_empty()
                            && t != REPORTS
                            && (rest == "head.json" || rest.starts_with("ledger/"))
                        {
                            found.insert((t.to_owned(), region.clone()));
                        }
                    }
                }
                token = page.next_continuation_token;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(t, r)| {
                let b = self.backends[&r].clone();
                Ledger::new(t, r, b)
            })
            .collect())
    }

    async fn load_request(&self, id: &str) -> Result<(Ledger, Loaded), DisclosureError> {
        let (tenant, _) = parse_request_id(id)?;
        let ledger = self.find_ledger(tenant).await?;
        let loaded = ledger.load().await?;
        if !loaded.records.contains_key(id) {
            return Err(DisclosureError::UnknownRequest(id.to_owned()));
        }
        Ok((ledger, loaded))
    }

    /// Whether the tenant's data is hosted in the EEA: its home region's
    /// jurisdiction (unknown for [`UNATTRIBUTED`] and churned tenants:
    /// assumed so, the stricter answer).
    ///
    /// # Errors
    /// `Directory` when the tenant directory cannot answer.
    async fn eea_hosted(&self, tenant: &str) -> Result<bool, DisclosureError> {
        if tenant == UNATTRIBUTED {
            return Ok(true);
        }
        match self.tenant(tenant).await {
            Ok(t) => Ok(self
                .policy
                .region(t.home_region(&self.policy))
                .jurisdiction()
                .eq_ignore_ascii_case("EEA")),
            Err(DisclosureError::UnknownTenant(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// A request and where it stands.
    ///
    /// # Errors
    /// `Invalid` (a malformed id), `UnknownTenant`, `UnknownRequest`, `Damaged`.
    pub async fn get(&self, id: &str) -> Result<RequestRecord, DisclosureError> {
        let (_, mut loaded) = self.load_request(id).await?;
        Ok(loaded.records.remove(id).expect("checked"))
    }

    /// Every request of `tenant`, by id.
    ///
    /// # Errors
    /// `UnknownTenant`, `Damaged`, storage failures.
    pub async fn list(&self, tenant: &str) -> Result<Vec<RequestRecord>, DisclosureError> {
        let loaded = self.ledger(tenant).await?.load().await?;
        let mut v: Vec<_> = loaded.records.into_values().collect();
        v.sort_by_key(|r| parse_request_id(&r.request.id).map_or(0, |(_, n)| n));
        Ok(v)
    }
}

fn require(value: &str, what: &str) -> Result<(), DisclosureError> {
    if value.trim().is_empty() {
        Err(DisclosureError::Invalid(format!("{what} is required")))
    } else {
        Ok(())
    }
}
