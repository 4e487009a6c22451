//! Running one `residency disclosure` command: setup, then the operation.

use std::path::Path;
use std::process::ExitCode;

use residency_disclosure::{
    Consult, Date, Disclosures, Event, ExportOptions, NewRequest, Scope, Settings, Signer,
};

use super::text::*;
use super::*;

/// Loads the sidecar configuration, the rules and the settings, and opens
/// the regions' backends.
pub(super) async fn setup(
    files: &Files,
) -> Result<(Disclosures, Settings, Option<Signer>), Failure> {
    let bad = |m: String| Failure(crate::commands::EXIT_CONFIG, m);
    let cfg = residency_proxy::Config::load(&files.config).map_err(|e| bad(e.to_string()))?;
    let (rules, _) = cfg.load_rules().map_err(|e| bad(e.to_string()))?;
    let settings = load_settings(files.settings.as_deref())?;
    let signer = load_signer(files, &settings)?;
    let backends = cfg.open_backends().await.map_err(|e| bad(e.to_string()))?;
    let desk = match &cfg.directory {
        None => Disclosures::new(rules, backends)?,
        // Tenants are read from the PostgreSQL directory; no secret is.
        Some(d) => {
            let directory = d
                .open(false)
                .await
                .map_err(|e| Failure(1, format!("tenant directory {}: {e}", d.redacted_url())))?;
            Disclosures::with_directory(rules.policy().clone(), directory, backends)?
        }
    }
    .with_limits(settings.limits)
    .with_team(settings.privacy_team.clone())
    .with_bands(settings.report.bands.clone());
    Ok((desk, settings, signer))
}

/// The member's key: --key-file (or RESIDENCY_DISCLOSURE_KEY_FILE), else
/// the seed in RESIDENCY_DISCLOSURE_KEY; none when neither is set.
pub(super) fn load_signer(files: &Files, settings: &Settings) -> Result<Option<Signer>, Failure> {
    let secret = match &files.key_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Failure(
                crate::commands::EXIT_CONFIG,
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

pub(super) fn need_key(signer: Option<Signer>, what: &str) -> Result<Signer, Failure> {
    signer.ok_or_else(|| {
        Failure(
            crate::commands::EXIT_CONFIG,
            format!(
                "{what} needs your privacy team key: --key-file FILE (or \
                 RESIDENCY_DISCLOSURE_KEY_FILE / RESIDENCY_DISCLOSURE_KEY)"
            ),
        )
    })
}

pub(super) fn load_settings(path: Option<&Path>) -> Result<Settings, Failure> {
    let default = Path::new("config/disclosure.toml");
    let path = match path {
        Some(p) => p,
        None if default.exists() => default,
        None => return Ok(Settings::default()),
    };
    let src = std::fs::read_to_string(path).map_err(|e| {
        Failure(
            crate::commands::EXIT_CONFIG,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(Settings::from_toml(&src, &path.display().to_string())?)
}

pub(super) fn print_json<T: serde::Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("values serialize")
    );
}

pub(super) async fn dispatch(command: DisclosureCommand) -> Result<ExitCode, Failure> {
    match command {
        DisclosureCommand::Open(a) => {
            let (desk, _, signer) = setup(&a.files).await?;
            if a.notice_prohibited && a.notice_prohibited_reason.is_none() {
                return Err(Failure(
                    crate::commands::EXIT_CONFIG,
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
                let ledger = desk.ledger(&rec.request.request.tenant).await?;
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

/// Writes a private key file that must not exist, readable by its owner only.
pub(super) fn write_private(path: &Path, secret: &str) -> Result<(), Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        Failure(
            crate::commands::EXIT_CONFIG,
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    std::io::Write::write_all(&mut f, format!("{secret}\n").as_bytes()).map_err(|e| {
        Failure(
            crate::commands::EXIT_CONFIG,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}
