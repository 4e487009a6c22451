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
    Date, DisclosureError, Disclosures, Event, ExportOptions, LimitRaise, NewRequest, Notice,
    Period, RequestRecord, RequestType, Scope, Settings, State, VerifyReport,
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
    /// received → on_hold → approved | challenged | refused; challenged →
    /// on_hold | approved | refused; approved → challenged | refused.
    /// `fulfilled` is recorded by `export` only.
    Transition {
        #[command(flatten)]
        files: Files,
        /// Request id (acme-1).
        #[arg(long)]
        id: String,
        /// The new state.
        #[arg(long, value_enum)]
        to: StateArg,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long)]
        why: String,
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
        /// Who exports.
        #[arg(long)]
        by: String,
        /// Raise one limit for this export: objects=N, bytes=N[KiB|MiB|GiB],
        /// categories=N. Repeatable; needs --reason. Recorded in the ledger.
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
    /// The transparency report of a half year, from every tenant's ledger:
    /// requests by authority country, type and outcome.
    Report {
        #[command(flatten)]
        files: Files,
        /// The half year: 2026H1 (January-June) or 2026H2 (July-December).
        #[arg(long)]
        period: Period,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
}

#[derive(Args, Debug)]
struct OpenArgs {
    #[command(flatten)]
    files: Files,
    /// Tenant whose data is asked for.
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
    /// Who records the request.
    #[arg(long)]
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
async fn setup(files: &Files) -> Result<(Disclosures, Settings), Failure> {
    let bad = |m: String| Failure(super::EXIT_CONFIG, m);
    let cfg = residency_proxy::Config::load(&files.config).map_err(|e| bad(e.to_string()))?;
    let (rules, _) = cfg.load_rules().map_err(|e| bad(e.to_string()))?;
    let settings = load_settings(files.settings.as_deref())?;
    let backends = cfg.open_backends().await.map_err(|e| bad(e.to_string()))?;
    let desk = Disclosures::new(rules, backends)?.with_limits(settings.limits);
    Ok((desk, settings))
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
            let (desk, _) = setup(&a.files).await?;
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
            let rec = desk.open(request, &a.by, &a.why).await?;
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
            let (desk, _) = setup(&files).await?;
            let before = desk.get(&id).await?.state;
            let rec = desk.transition(&id, to.into(), &by, &why).await?;
            println!("{id}: {before} -> {} (by {by}: {why})", rec.state);
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
            let (desk, settings) = setup(&files).await?;
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
            let (desk, _) = setup(&files).await?;
            let manifest = desk
                .export(
                    &id,
                    &ExportOptions {
                        dir: out.clone(),
                        raises: raise_limit,
                        reason,
                        by,
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
            let (desk, _) = setup(&files).await?;
            let rec = desk.get(&id).await?;
            if json {
                print_json(&rec);
            } else {
                print!("{}", record_text(&rec));
                println!("history:");
                for e in &rec.history {
                    println!(
                        "  #{} {} {} by {}: {}",
                        e.seq,
                        e.time,
                        event_text(&e.event),
                        e.by,
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
            let (desk, _) = setup(&files).await?;
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
            let (desk, _) = setup(&files).await?;
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
            format,
        } => {
            let (desk, _) = setup(&files).await?;
            let report = desk.report(period).await?;
            print!(
                "{}",
                match format {
                    ReportFormat::Markdown => report.to_markdown(),
                    ReportFormat::Json => report.to_json(),
                    ReportFormat::Csv => report.to_csv(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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
