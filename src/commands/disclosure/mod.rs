//! `residency disclosure`: government data requests, recorded and bounded.
//!
//! A thin layer over `residency_disclosure`: it reads the sidecar's
//! configuration (regions' backends, policy, tenants) and the disclosure
//! settings, runs one operation and prints its outcome. Exit codes: 0 done,
//! 2 bad input (arguments, files, unknown tenant or request), 1 refused or
//! failed (an invalid transition, a bulk or un-notified export, a damaged
//! ledger, an unreachable webhook or region).

mod run;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use residency_disclosure::{Date, DisclosureError, LimitRaise, Period, RequestType, State};

/// Arguments of `residency disclosure`.
#[derive(Args, Debug)]
pub(crate) struct DisclosureArgs {
    #[command(subcommand)]
    command: DisclosureCommand,
}

/// Where the configuration comes from.
#[derive(Args, Debug, Clone)]
struct Files {
    /// The sidecar's configuration: regions' backends, policy and tenants files.
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    config: PathBuf,
    /// Disclosure settings: export limits, customer webhook
    /// [default: config/disclosure.toml when it exists, else built-in defaults].
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The private key of the privacy team member running the command (a
    /// file holding the 64-hex-digit seed written by `keygen`). The
    /// environment variable RESIDENCY_DISCLOSURE_KEY may hold the seed itself.
    #[arg(long, value_name = "FILE", env = "RESIDENCY_DISCLOSURE_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DisclosureCommand {
    /// Record a request received from an authority (state `received`).
    ///
    /// The scope is specific object keys (--key, repeatable), or a narrow
    /// prefix with a time range (--prefix --from --to), or --whole-tenant
    /// (recorded as asked, never exported). Prints the new request id.
    Open(OpenArgs),
    /// Move a request to another state, recording who and why.
    ///
    /// received → on_hold | challenged | refused | redirected; on_hold →
    /// challenged | refused | redirected; challenged → on_hold | refused;
    /// approved → challenged | refused. `approved` is reached by two
    /// members' `approve`, `fulfilled` by `export` only. `redirected`: the
    /// authority agreed to ask the customer directly (final). With a key,
    /// the entry is signed and recorded as the member's.
    Transition {
        #[command(flatten)]
        files: Files,
        /// Request id (acme-1).
        #[arg(long)]
        id: String,
        /// The new state.
        #[arg(long, value_enum)]
        to: StateArg,
        /// Who decides (ignored with a key: the member's name is recorded).
        #[arg(long, default_value = "")]
        by: String,
        /// Why.
        #[arg(long)]
        why: String,
    },
    /// Approve a request with your privacy team key (signed). The second
    /// approval by a different member approves it. With --raise-limit,
    /// approve raising a limit for its export instead (the exporter's
    /// raise needs this second approver).
    Approve {
        #[command(flatten)]
        files: Files,
        /// Request id.
        #[arg(long)]
        id: String,
        /// Why (the legal obligation, the assessment).
        #[arg(long)]
        why: Option<String>,
        /// Approve raising a limit: objects=N, bytes=N[KiB|MiB|GiB],
        /// categories=N, authority_objects=N, authority_bytes=N.
        #[arg(long = "raise-limit", value_name = "LIMIT=N")]
        raise_limit: Vec<LimitRaise>,
        /// Why the limit is raised.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record the consultation of the competent data protection authority
    /// (the request must be on hold), or with --prohibited, the record of
    /// the efforts made when consulting it and suspending the request is
    /// legally prohibited.
    Consult {
        #[command(flatten)]
        files: Files,
        /// Request id.
        #[arg(long)]
        id: String,
        /// The data protection authority consulted.
        #[arg(long, required_unless_present = "prohibited")]
        dpa: Option<String>,
        /// Its reference (letter, case number).
        #[arg(long, default_value = "")]
        reference: String,
        /// Consultation is legally prohibited (or an imminent risk of
        /// serious harm forbids it).
        #[arg(long)]
        prohibited: bool,
        /// The authority's answer, or the efforts made.
        #[arg(long)]
        why: String,
        /// Who records it (ignored with a key).
        #[arg(long, default_value = "")]
        by: String,
    },
    /// Make a privacy team member's Ed25519 key: writes the private seed to
    /// --out (mode 0600) and prints the [[privacy_team]] entry to add to
    /// the disclosure settings.
    Keygen {
        #[command(flatten)]
        files: Files,
        /// The member's name.
        #[arg(long)]
        name: String,
        /// Where to write the private key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Notify the customer: a signed JSON POST to its webhook, retried with
    /// backoff. With --prohibited, record instead that the law prohibits
    /// notice (--reason required).
    Notify {
        #[command(flatten)]
        files: Files,
        /// Request id.
        #[arg(long)]
        id: String,
        /// Who sends it.
        #[arg(long)]
        by: String,
        /// The webhook URL (default: the settings' tenant or default webhook).
        #[arg(long, value_name = "URL")]
        webhook_url: Option<String>,
        /// Environment variable holding the HMAC secret (default: the settings').
        #[arg(long, value_name = "VAR")]
        webhook_secret_env: Option<String>,
        /// Notice is legally prohibited: record it, send nothing.
        #[arg(long, requires = "reason")]
        prohibited: bool,
        /// Why notice is prohibited (the order, the statute).
        #[arg(long, requires = "prohibited")]
        reason: Option<String>,
    },
    /// Export exactly the objects in scope, with manifest.json, and mark the
    /// request fulfilled. Only for an approved request whose customer was
    /// notified (or notice is prohibited with a reason); bulk scopes are refused.
    Export {
        #[command(flatten)]
        files: Files,
        /// Request id.
        #[arg(long)]
        id: String,
        /// The export directory (created; must be empty if it exists).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Who exports (ignored: the key's member is recorded).
        #[arg(long, default_value = "")]
        by: String,
        /// Raise one limit for this export: objects=N, bytes=N[KiB|MiB|GiB],
        /// categories=N, authority_objects=N, authority_bytes=N. Repeatable;
        /// needs --reason; takes effect once a second privacy team member
        /// approves the same raise (`approve --raise-limit`). Recorded, signed.
        #[arg(long = "raise-limit", value_name = "LIMIT=N")]
        raise_limit: Vec<LimitRaise>,
        /// Why the limits are raised.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print a request: what was asked, its state, notice and history.
    Show {
        #[command(flatten)]
        files: Files,
        /// Request id.
        #[arg(long)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's requests.
    List {
        #[command(flatten)]
        files: Files,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify ledgers (a tenant's, or every tenant's): edited, removed or
    /// reordered entries are reported. Exit 0 when intact, 1 otherwise.
    Verify {
        #[command(flatten)]
        files: Files,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The transparency report of a half year, from every ledger in every
    /// region: requests by authority country, type and outcome. A frozen
    /// period shows its frozen report and, separately, later changes.
    Report {
        #[command(flatten)]
        files: Files,
        /// The half year: 2026H1 (January-June) or 2026H2 (July-December).
        #[arg(long)]
        period: Period,
        /// Freeze and sign the report of an ended half year (needs a key).
        #[arg(long)]
        freeze: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
}

#[derive(Args, Debug)]
struct OpenArgs {
    #[command(flatten)]
    files: Files,
    /// Tenant whose data is asked for; `_unattributed` when the customer
    /// is not known (the scope may then be empty).
    #[arg(long)]
    tenant: String,
    /// The requesting authority.
    #[arg(long)]
    authority: String,
    /// The authority's country (ISO 3166-1 alpha-2: DE, US).
    #[arg(long)]
    country: String,
    /// The legal basis cited.
    #[arg(long)]
    legal_basis: String,
    /// When the request was received (YYYY-MM-DD; default today, UTC).
    #[arg(long, value_name = "DATE")]
    received: Option<Date>,
    /// The kind of instrument.
    #[arg(long = "type", value_enum)]
    request_type: TypeArg,
    /// An object key in scope (relative to the tenant; repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// A key prefix in scope (needs --from and --to).
    #[arg(long, conflicts_with = "keys")]
    prefix: Option<String>,
    /// First day of the objects' last-modified range (YYYY-MM-DD, inclusive).
    #[arg(long, value_name = "DATE")]
    from: Option<Date>,
    /// Last day of the range (inclusive).
    #[arg(long, value_name = "DATE")]
    to: Option<Date>,
    /// The authority asks for everything the tenant holds (recorded; never exported).
    #[arg(long)]
    whole_tenant: bool,
    /// The law prohibits notifying the customer (needs --notice-prohibited-reason).
    #[arg(long)]
    notice_prohibited: bool,
    /// Why notice is prohibited.
    #[arg(long, value_name = "TEXT", requires = "notice_prohibited")]
    notice_prohibited_reason: Option<String>,
    /// Who records the request (ignored with a key).
    #[arg(long, default_value = "")]
    by: String,
    /// A note (default "received").
    #[arg(long, default_value = "")]
    why: String,
    /// Print the record as JSON.
    #[arg(long)]
    json: bool,
}

/// A state on the command line.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum StateArg {
    OnHold,
    Approved,
    Challenged,
    Refused,
    Fulfilled,
    Received,
    Redirected,
}

impl From<StateArg> for State {
    fn from(s: StateArg) -> State {
        match s {
            StateArg::Received => State::Received,
            StateArg::OnHold => State::OnHold,
            StateArg::Approved => State::Approved,
            StateArg::Challenged => State::Challenged,
            StateArg::Refused => State::Refused,
            StateArg::Fulfilled => State::Fulfilled,
            StateArg::Redirected => State::Redirected,
        }
    }
}

/// A request type on the command line.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum TypeArg {
    Subpoena,
    CourtOrder,
    SearchWarrant,
    Emergency,
    NationalSecurity,
    Other,
}

impl From<TypeArg> for RequestType {
    fn from(t: TypeArg) -> RequestType {
        match t {
            TypeArg::Subpoena => RequestType::Subpoena,
            TypeArg::CourtOrder => RequestType::CourtOrder,
            TypeArg::SearchWarrant => RequestType::SearchWarrant,
            TypeArg::Emergency => RequestType::Emergency,
            TypeArg::NationalSecurity => RequestType::NationalSecurity,
            TypeArg::Other => RequestType::Other,
        }
    }
}

/// How `report` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ReportFormat {
    Markdown,
    Json,
    Csv,
}

/// A failure with its exit code.
struct Failure(u8, String);

impl From<DisclosureError> for Failure {
    fn from(e: DisclosureError) -> Self {
        Failure(e.exit_code(), e.to_string())
    }
}

pub(crate) fn run(args: DisclosureArgs) -> ExitCode {
    let runtime = match super::runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(run::dispatch(args.command)) {
        Ok(code) => code,
        Err(Failure(code, message)) => {
            eprintln!("residency disclosure: {message}");
            ExitCode::from(code)
        }
    }
}
