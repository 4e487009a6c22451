//! `residency disclosure`: government data requests, recorded and bounded.
//!
//! A thin layer over `residency_disclosure`: it reads the sidecar's
//! configuration (regions' backends, policy, tenants) and the disclosure
//! settings, runs one operation and prints its outcome. Exit codes: 0 done,
//! 2 bad input (arguments, files, unknown tenant or request), 1 refused or
//! failed (an invalid transition, a bulk or un-notified export, a damaged
//! ledger, an unreachable webhook or region).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use residency_disclosure::{
    Consult, Consultation, Date, DisclosureError, Disclosures, Event, ExportOptions, LimitRaise,
    NewRequest, Notice, Period, RequestRecord, RequestType, Scope, Settings, Signer, State,
    VerifyReport,
};

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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("residency: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(args.command)) {
        Ok(code) => code,
        Err(Failure(code, message)) => {
            eprintln!("residency disclosure: {message}");
            ExitCode::from(code)
        }
    }
}

/// Loads the sidecar configuration, the rules and the settings, and opens
/// the regions' backends.
async fn setup(files: &Files) -> Result<(Disclosures, Settings, Option<Signer>), Failure> {
    let bad = |m: String| Failure(super::EXIT_CONFIG, m);
    let cfg = residency_proxy::Config::load(&files.config).map_err(|e| bad(e.to_string()))?;
    let (rules, _) = cfg.load_rules().map_err(|e| bad(e.to_string()))?;
    let settings = load_settings(files.settings.as_deref())?;
    let signer = load_signer(files, &settings)?;
    let backends = cfg.open_backends().await.map_err(|e| bad(e.to_string()))?;
    let desk = Disclosures::new(rules, backends)?
        .with_limits(settings.limits)
        .with_team(settings.privacy_team.clone())
        .with_bands(settings.report.bands.clone());
    Ok((desk, settings, signer))
}

/// The member's key: --key-file (or RESIDENCY_DISCLOSURE_KEY_FILE), else
/// the seed in RESIDENCY_DISCLOSURE_KEY; none when neither is set.
fn load_signer(files: &Files, settings: &Settings) -> Result<Option<Signer>, Failure> {
    let secret = match &files.key_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Failure(
                super::EXIT_CONFIG,
                format!("cannot read the key file {}: {e}", path.display()),
            )
        })?,
        None => match std::env::var("RESIDENCY_DISCLOSURE_KEY") {
            Ok(s) if !s.trim().is_empty() => s,
            _ => return Ok(None),
        },
    };
    Ok(Some(settings.signer(&secret)?))
}

fn need_key(signer: Option<Signer>, what: &str) -> Result<Signer, Failure> {
    signer.ok_or_else(|| {
        Failure(
            super::EXIT_CONFIG,
            format!(
                "{what} needs your privacy team key: --key-file FILE (or \
                 RESIDENCY_DISCLOSURE_KEY_FILE / RESIDENCY_DISCLOSURE_KEY)"
            ),
        )
    })
}

fn load_settings(path: Option<&Path>) -> Result<Settings, Failure> {
    let default = Path::new("config/disclosure.toml");
    let path = match path {
        Some(p) => p,
        None if default.exists() => default,
        None => return Ok(Settings::default()),
    };
    let src = std::fs::read_to_string(path).map_err(|e| {
        Failure(
            super::EXIT_CONFIG,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(Settings::from_toml(&src, &path.display().to_string())?)
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("values serialize")
    );
}

async fn dispatch(command: DisclosureCommand) -> Result<ExitCode, Failure> {
    match command {
        DisclosureCommand::Open(a) => {
            let (desk, _, signer) = setup(&a.files).await?;
            if a.notice_prohibited && a.notice_prohibited_reason.is_none() {
                return Err(Failure(
                    super::EXIT_CONFIG,
                    "a request that legally prohibits notice must carry the reason: \
                     --notice-prohibited-reason TEXT"
                        .to_owned(),
                ));
            }
            let request = NewRequest {
                tenant: a.tenant,
                authority: a.authority,
                country: a.country,
                legal_basis: a.legal_basis,
                received: a.received.unwrap_or_else(Date::today),
                request_type: a.request_type.into(),
                scope: Scope {
                    keys: a.keys,
                    prefix: a.prefix,
                    whole_tenant: a.whole_tenant,
                    from: a.from,
                    to: a.to,
                },
                notice_prohibited: a.notice_prohibited_reason.filter(|_| a.notice_prohibited),
            };
            let rec = desk
                .open_as(request, &a.by, &a.why, signer.as_ref())
                .await?;
            if a.json {
                print_json(&rec);
            } else {
                let ledger = desk.ledger(&rec.request.request.tenant)?;
                print!("{}", record_text(&rec));
                println!(
                    "ledger: _disclosure/{}/ in region {}",
                    ledger.tenant(),
                    ledger.region()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Transition {
            files,
            id,
            to,
            by,
            why,
        } => {
            let (desk, _, signer) = setup(&files).await?;
            let before = desk.get(&id).await?.state;
            let rec = desk
                .transition_as(&id, to.into(), &by, &why, signer.as_ref())
                .await?;
            let by = signer.as_ref().map_or(by.as_str(), Signer::member);
            println!("{id}: {before} -> {} (by {by}: {why})", rec.state);
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Approve {
            files,
            id,
            why,
            raise_limit,
            reason,
        } => {
            let (desk, _, signer) = setup(&files).await?;
            let signer = need_key(signer, "an approval")?;
            if !raise_limit.is_empty() {
                let reason = reason.unwrap_or_default();
                for r in &raise_limit {
                    let rec = desk.approve_raise(&id, r, &reason, &signer).await?;
                    let voters = rec.raise_voters(&r.limit.to_string(), r.to);
                    println!(
                        "{id}: raise {}={} approved by {} ({})",
                        r.limit,
                        r.to,
                        signer.member(),
                        if voters.len() >= 2 {
                            "in effect: two members"
                        } else {
                            "needs a second member"
                        }
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let why = why.unwrap_or_default();
            let rec = desk.approve(&id, &signer, &why).await?;
            println!(
                "{id}: approved by {} ({} of 2 approvals); now {}",
                signer.member(),
                rec.approvals.len(),
                rec.state
            );
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Consult {
            files,
            id,
            dpa,
            reference,
            prohibited,
            why,
            by,
        } => {
            let (desk, _, signer) = setup(&files).await?;
            let what = if prohibited {
                Consult::Prohibited { efforts: why }
            } else {
                Consult::Consulted {
                    authority: dpa.unwrap_or_default(),
                    reference,
                    summary: why,
                }
            };
            let rec = desk.consult(&id, what, &by, signer.as_ref()).await?;
            println!("{id}: {}", consultation_text(&rec.consultation));
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Keygen { name, out, .. } => {
            let signer = Signer::generate(&name)?;
            write_private(&out, &signer.secret_hex())?;
            println!(
                "private key written to {} (keep it to yourself)\n\nAdd to the disclosure settings:\n\n\
                 [[privacy_team]]\nname = {:?}\npublic_key = {:?}",
                out.display(),
                name,
                signer.public_key()
            );
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Notify {
            files,
            id,
            by,
            webhook_url,
            webhook_secret_env,
            prohibited,
            reason,
        } => {
            let (desk, settings, _) = setup(&files).await?;
            if prohibited {
                let reason = reason.unwrap_or_default();
                desk.prohibit_notice(&id, &reason, &by).await?;
                println!("{id}: notice legally prohibited ({reason}); nothing sent");
                return Ok(ExitCode::SUCCESS);
            }
            let (tenant, _) = residency_disclosure::parse_request_id(&id)?;
            let webhook = settings.webhook_for(
                tenant,
                webhook_url.as_deref(),
                webhook_secret_env.as_deref(),
            )?;
            let rec = desk.notify(&id, &webhook, &by).await?;
            let attempts = rec
                .history
                .iter()
                .rev()
                .find_map(|e| match &e.event {
                    Event::Notified {
                        status, attempts, ..
                    } => Some(format!("HTTP {status}, {attempts} attempt(s)")),
                    _ => None,
                })
                .unwrap_or_default();
            println!("{id}: customer notified at {} ({attempts})", webhook.url());
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Export {
            files,
            id,
            out,
            by,
            raise_limit,
            reason,
        } => {
            let (desk, _, signer) = setup(&files).await?;
            let signer = need_key(signer, "an export")?;
            let manifest = desk
                .export(
                    &id,
                    &ExportOptions {
                        dir: out.clone(),
                        raises: raise_limit,
                        reason,
                        by,
                        signer: Some(signer),
                    },
                )
                .await?;
            println!(
                "{id}: exported {} object(s), {} byte(s), categories [{}] to {}",
                manifest.total_objects,
                manifest.total_bytes,
                manifest.categories.join(", "),
                out.display()
            );
            for o in &manifest.objects {
                println!("  {} {:>10} {} ({})", o.sha256, o.size, o.key, o.region);
            }
            for k in &manifest.missing {
                println!("  missing: {k} (in no region)");
            }
            println!("manifest: {}", out.join("manifest.json").display());
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Show { files, id, json } => {
            let (desk, _, _) = setup(&files).await?;
            let rec = desk.get(&id).await?;
            if json {
                print_json(&rec);
            } else {
                print!("{}", record_text(&rec));
                println!("history:");
                for e in &rec.history {
                    println!(
                        "  #{} {} {} by {}{}: {}",
                        e.seq,
                        e.time,
                        event_text(&e.event),
                        e.by,
                        if e.signer().is_some() {
                            " (signed)"
                        } else {
                            ""
                        },
                        e.why
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::List {
            files,
            tenant,
            json,
        } => {
            let (desk, _, _) = setup(&files).await?;
            let list = desk.list(&tenant).await?;
            if json {
                print_json(&list);
            } else if list.is_empty() {
                println!("tenant {tenant}: no disclosure requests");
            } else {
                for r in &list {
                    let q = &r.request.request;
                    println!(
                        "{} {} {} {} {} ({}) notice {}",
                        r.request.id,
                        q.received,
                        r.state,
                        q.request_type,
                        q.authority,
                        q.country,
                        notice_text(&r.notice)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DisclosureCommand::Verify {
            files,
            tenant,
            json,
        } => {
            let (desk, _, _) = setup(&files).await?;
            let reports = match tenant {
                Some(t) => vec![desk.verify(&t).await?],
                None => desk.verify_all().await?,
            };
            if json {
                print_json(&reports);
            } else {
                print!("{}", verify_text(&reports));
            }
            Ok(if reports.iter().all(|r| r.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DisclosureCommand::Report {
            files,
            period,
            freeze,
            format,
        } => {
            let (desk, _, signer) = setup(&files).await?;
            let view = if freeze {
                let signer = need_key(signer, "freezing a report")?;
                desk.freeze_report(period, &signer).await?
            } else {
                desk.report_view(period).await?
            };
            print!(
                "{}",
                match format {
                    ReportFormat::Markdown => view.to_markdown(),
                    ReportFormat::Json => view.to_json(),
                    ReportFormat::Csv => view.report.to_csv(),
                }
            );
            if format == ReportFormat::Csv && !view.changes_since_frozen.is_empty() {
                eprintln!(
                    "{period} is frozen; {} change(s) recorded after it are not in these rows \
                     (see --format markdown or json)",
                    view.changes_since_frozen.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn consultation_text(c: &Consultation) -> String {
    match c {
        Consultation::None => "not recorded".to_owned(),
        Consultation::Consulted {
            authority,
            reference,
            at,
            summary,
        } => format!("{authority} consulted ({reference}) at {at}: {summary}"),
        Consultation::Prohibited { efforts } => {
            format!("consultation legally prohibited; efforts: {efforts}")
        }
    }
}

/// Writes a private key file that must not exist, readable by its owner only.
fn write_private(path: &Path, secret: &str) -> Result<(), Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        Failure(
            super::EXIT_CONFIG,
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    std::io::Write::write_all(&mut f, format!("{secret}\n").as_bytes()).map_err(|e| {
        Failure(
            super::EXIT_CONFIG,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

fn notice_text(n: &Notice) -> String {
    match n {
        Notice::Pending => "pending".to_owned(),
        Notice::Sent { at, .. } => format!("sent {at}"),
        Notice::Prohibited { reason } => format!("prohibited ({reason})"),
    }
}

fn record_text(r: &RequestRecord) -> String {
    let q = &r.request.request;
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", r.request.id, r.state);
    let _ = writeln!(out, "  tenant:      {}", q.tenant);
    let _ = writeln!(out, "  authority:   {} ({})", q.authority, q.country);
    let _ = writeln!(out, "  legal basis: {}", q.legal_basis);
    let _ = writeln!(out, "  type:        {}", q.request_type);
    let _ = writeln!(out, "  received:    {}", q.received);
    let _ = writeln!(out, "  scope:       {}", q.scope);
    let _ = writeln!(out, "  notice:      {}", notice_text(&r.notice));
    if let Some(a) = &r.assessment {
        let _ = writeln!(
            out,
            "  adequacy:    {}{}",
            if a.consult { "HOLD: " } else { "" },
            a.reason
        );
    }
    let _ = writeln!(out, "  consulted:   {}", consultation_text(&r.consultation));
    let approvals: Vec<String> = r
        .approvals
        .iter()
        .map(|a| format!("{} ({})", a.member, a.at))
        .collect();
    let _ = writeln!(
        out,
        "  approvals:   {}",
        if approvals.is_empty() {
            "none".to_owned()
        } else {
            approvals.join(", ")
        }
    );
    for (l, v) in &r.raised_limits {
        let _ = writeln!(out, "  raised:      {l} = {v}");
    }
    if let Some(e) = &r.export {
        let _ = writeln!(
            out,
            "  exported:    {} object(s), {} byte(s) to {} at {}",
            e.objects, e.bytes, e.location, e.at
        );
    }
    out
}

fn event_text(e: &Event) -> String {
    match e {
        Event::Opened { .. } => "opened".to_owned(),
        Event::Approval => "approval".to_owned(),
        Event::Consulted {
            authority,
            reference,
        } => format!("consulted {authority} ({reference})"),
        Event::ConsultationProhibited => "consultation legally prohibited".to_owned(),
        Event::Transition { from, to } => format!("{from} -> {to}"),
        Event::NoticeProhibited => "notice prohibited".to_owned(),
        Event::Notified {
            url,
            status,
            attempts,
            ..
        } => format!("notified {url} (HTTP {status}, {attempts} attempt(s))"),
        Event::NotifyFailed {
            url,
            attempts,
            error,
        } => format!("notice failed {url} after {attempts} attempt(s): {error}"),
        Event::LimitRaised { limit, from, to } => format!("limit {limit} raised {from} -> {to}"),
        Event::ExportRefused => "export refused".to_owned(),
        Event::Exported { objects, bytes, .. } => {
            format!("exported {objects} object(s), {bytes} byte(s)")
        }
    }
}

fn verify_text(reports: &[VerifyReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "tenant {} (region {}): {} entr{}, {} request(s), head {}: {}",
            r.tenant,
            r.region,
            r.entries,
            if r.entries == 1 { "y" } else { "ies" },
            r.requests,
            r.head.as_deref().unwrap_or("none"),
            if r.ok { "ok" } else { "DAMAGED" }
        );
        for p in &r.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if reports.iter().all(|r| r.ok) {
            "disclosure ledgers intact"
        } else {
            "DISCLOSURE LEDGER DAMAGED"
        }
    );
    out
}
