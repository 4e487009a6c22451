//! [`Disclosures`]: the register of every tenant's disclosure requests, and
//! the guard in front of every export.

mod export;
mod reports;
mod requests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use residency_policy::{Ruleset, TenantId};
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
    rules: Ruleset,
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
    /// A register over `backends` (region id → backend), with the default limits.
    ///
    /// # Errors
    /// `Invalid` when a region of the policy has no backend.
    pub fn new(
        rules: Ruleset,
        backends: impl IntoIterator<Item = (String, Arc<dyn Backend>)>,
    ) -> Result<Disclosures, DisclosureError> {
        let backends: BTreeMap<_, _> = backends.into_iter().collect();
        for (_, r) in rules.policy().regions() {
            if !backends.contains_key(r.id()) {
                return Err(DisclosureError::Invalid(format!(
                    "policy region {:?} has no backend",
                    r.id()
                )));
            }
        }
        Ok(Disclosures {
            rules,
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

    fn tenant_id(&self, tenant: &str) -> Result<TenantId, DisclosureError> {
        self.rules
            .tenants()
            .get(tenant)
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
    /// `UnknownTenant`.
    pub fn ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        if tenant == UNATTRIBUTED {
            let policy = self.rules.policy();
            let region = policy.region(policy.default_region()).id();
            return Ok(Ledger::new(tenant, region, self.backends[region].clone()));
        }
        let id = self.tenant_id(tenant)?;
        let policy = self.rules.policy();
        let home = policy
            .region(self.rules.tenants().tenant(id).home_region(policy))
            .id();
        Ok(Ledger::new(tenant, home, self.backends[home].clone()))
    }

    /// The ledger of `tenant`, also when it is no longer in the tenants
    /// file (a churned tenant's ledger is found in the region holding it).
    ///
    /// # Errors
    /// `UnknownTenant` when no region holds a ledger for it.
    pub async fn find_ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        match self.ledger(tenant) {
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
    /// assumed so).
    fn eea_hosted(&self, tenant: &str) -> bool {
        if tenant == UNATTRIBUTED {
            return true;
        }
        match self.tenant_id(tenant) {
            Ok(id) => {
                let policy = self.rules.policy();
                let home = self.rules.tenants().tenant(id).home_region(policy);
                policy
                    .region(home)
                    .jurisdiction()
                    .eq_ignore_ascii_case("EEA")
            }
            Err(_) => true,
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
        let loaded = self.ledger(tenant)?.load().await?;
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
