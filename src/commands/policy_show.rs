//! `residency policy show`: the hosting table, rendered like the seed's, and
//! the placement matrix (`--format html|svg`): where each category goes for
//! each kind of tenant.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use residency::policy::{
    CategoryId, Classification, ClassifiedBy, Decision, DenyReason, HostingRule, Note, Policy,
    Ruleset, Tenants, DEFAULT_REGION_ASSUMPTION,
};
use serde_json::json;

use super::{load_policy, LoadError};
use crate::ShowFormat;

struct Row {
    category: String,
    allowed: String,
    follows: String,
    feature: String,
    description: String,
    /// Sub-processors holding their own copy: `Twilio (US)`, or `-`.
    also_hosted_by: String,
}

/// The lines under the table: the default-region assumption, the
/// sub-processors and the features that copy data when enabled.
pub(crate) fn notes(p: &Policy) -> Vec<String> {
    let mut out = vec![format!(
        "default region {}: {DEFAULT_REGION_ASSUMPTION}",
        p.region(p.default_region()).id()
    )];
    for s in p.sub_processors() {
        let cats: Vec<&str> = s.categories().iter().map(|c| p.category(*c).id()).collect();
        out.push(format!(
            "sub-processor {} also hosts {} in {} (a copy Residency does not store; a tenant whose locality is elsewhere gets a warning){}",
            s.name(),
            cats.join(", "),
            s.hosts_in().join(", "),
            s.seed().map(|q| format!(": \"{q}\"")).unwrap_or_default()
        ));
    }
    for e in p.feature_exports() {
        let cats: Vec<&str> = e.categories().iter().map(|c| p.category(*c).id()).collect();
        let to = p.region(e.to());
        out.push(format!(
            "feature {}: enabling it copies {} of {} to {} ({}) for every tenant, whatever its locality{}",
            p.feature_name(e.feature()),
            e.what().unwrap_or("data"),
            cats.join(", "),
            to.id(),
            to.jurisdiction(),
            e.seed().map(|q| format!(": \"{q}\"")).unwrap_or_default()
        ));
    }
    out
}

fn rows(p: &Policy) -> Vec<Row> {
    p.categories()
        .map(|(id, c)| {
            let allowed = match p.allowed_regions(id) {
                Some(set) => set
                    .iter()
                    .map(|r| format!("{} ({})", p.region(r).id(), p.region(r).jurisdiction()))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "tenant's selected region".to_string(),
            };
            let follows = match c.rule() {
                HostingRule::Allowed(_) => "-".to_string(),
                HostingRule::Follows(t) => p.category(*t).id().to_string(),
                HostingRule::FollowsLocality => "locality".to_string(),
            };
            let feature = c
                .feature()
                .map_or("-".to_string(), |f| p.feature_name(f).to_string());
            let also: Vec<String> = p
                .sub_processors_of(id)
                .map(|s| format!("{} ({})", s.name(), s.hosts_in().join(", ")))
                .collect();
            Row {
                also_hosted_by: if also.is_empty() {
                    "-".to_string()
                } else {
                    also.join(", ")
                },
                category: c.id().to_string(),
                allowed,
                follows,
                feature,
                description: c.description().unwrap_or("").to_string(),
            }
        })
        .collect()
}

pub(crate) fn run(path: &Path, format: ShowFormat) -> Result<ExitCode, LoadError> {
    let p = load_policy(path)?;
    let rows = rows(&p);
    match format {
        ShowFormat::Json => {
            let v = json!({
                "version": p.version(),
                "default_region": p.region(p.default_region()).id(),
                "default_region_basis": "assumption",
                "default_region_assumption": DEFAULT_REGION_ASSUMPTION,
                "regions": p.regions().map(|(_, r)| json!({
                    "id": r.id(), "jurisdiction": r.jurisdiction(), "locations": r.locations(),
                    "countries": r.locations().iter().map(|l| r.location_place(l)).collect::<Vec<_>>(),
                    "members": r.members(),
                })).collect::<Vec<_>>(),
                "categories": rows.iter().map(|r| json!({
                    "category": r.category,
                    "allowed": r.allowed,
                    "follows": r.follows,
                    "feature": r.feature,
                    "description": r.description,
                    "also_hosted_by": r.also_hosted_by,
                })).collect::<Vec<_>>(),
                "sub_processors": p.sub_processors().iter().map(|s| json!({
                    "name": s.name(),
                    "hosts_in": s.hosts_in(),
                    "categories": s.categories().iter().map(|c| p.category(*c).id()).collect::<Vec<_>>(),
                    "seed": s.seed(),
                })).collect::<Vec<_>>(),
                "feature_exports": p.feature_exports().iter().map(|e| json!({
                    "feature": p.feature_name(e.feature()),
                    "to": p.region(e.to()).id(),
                    "categories": e.categories().iter().map(|c| p.category(*c).id()).collect::<Vec<_>>(),
                    "what": e.what(),
                    "seed": e.seed(),
                })).collect::<Vec<_>>(),
                "notes": notes(&p),
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        ShowFormat::Markdown => {
            println!("| category | may be hosted in | follows | feature gate | also hosted by | description |");
            println!("|---|---|---|---|---|---|");
            for r in &rows {
                println!(
                    "| `{}` | {} | {} | {} | {} | {} |",
                    r.category, r.allowed, r.follows, r.feature, r.also_hosted_by, r.description
                );
            }
            println!();
            for n in notes(&p) {
                println!("- {n}");
            }
        }
        ShowFormat::Html => print!("{}", html(&p, &rows, &matrix(&p)?)),
        ShowFormat::Svg => print!("{}", svg(&p, &rows, &matrix(&p)?)),
        ShowFormat::Text => {
            println!(
                "hosting policy {} (default region {})",
                p.version(),
                p.region(p.default_region()).id()
            );
            let w = |f: fn(&Row) -> &str, h: &str| {
                rows.iter()
                    .map(|r| f(r).len())
                    .max()
                    .unwrap_or(0)
                    .max(h.len())
            };
            let (w1, w2, w3) = (
                w(|r| &r.category, "CATEGORY"),
                w(|r| &r.allowed, "MAY BE HOSTED IN"),
                w(|r| &r.follows, "FOLLOWS"),
            );
            let w4 = w(|r| &r.feature, "FEATURE");
            println!(
                "{:w1$}  {:w2$}  {:w3$}  {:w4$}  ALSO HOSTED BY",
                "CATEGORY", "MAY BE HOSTED IN", "FOLLOWS", "FEATURE"
            );
            for r in &rows {
                println!(
                    "{:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
                    r.category, r.allowed, r.follows, r.feature, r.also_hosted_by
                );
            }
            println!();
            for n in notes(&p) {
                println!("note: {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One column of the placement matrix: a kind of tenant.
struct TenantKind {
    label: String,
    title: String,
}

/// What happens to one category for one kind of tenant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CellKind {
    /// Stored in the tenant's locality (or the default region without add-on).
    Allowed,
    /// Stored, outside the tenant's locality (recorded as out of locality).
    OutOfLocality,
    /// Refused.
    Denied,
}

impl CellKind {
    fn class(self) -> &'static str {
        match self {
            CellKind::Allowed => "allowed",
            CellKind::OutOfLocality => "ool",
            CellKind::Denied => "denied",
        }
    }

    fn colors(self) -> (&'static str, &'static str) {
        match self {
            CellKind::Allowed => ("#d9f2d9", "#1e5e1e"),
            CellKind::OutOfLocality => ("#ffe7b3", "#7a4b00"),
            CellKind::Denied => ("#f7d0d0", "#8a1c1c"),
        }
    }
}

struct Cell {
    kind: CellKind,
    text: String,
    reason: &'static str,
    /// Copies outside this tenant kind's locality (`Twilio copy in US`).
    marks: Vec<String>,
}

struct Matrix {
    kinds: Vec<TenantKind>,
    /// `cells[category][kind]`, in the policy's category order.
    cells: Vec<Vec<Cell>>,
}

/// Decides every category for synthetic tenants: one with each region as its
/// locality, one without the add-on, and a strict one per region. Every
/// optional feature is enabled, so a gated cell shows where the data goes once
/// the tenant enables the feature (the feature column says which).
fn matrix(p: &Policy) -> Result<Matrix, LoadError> {
    let features = p
        .features()
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut kinds = Vec::new();
    let mut toml = String::new();
    let mut add = |label: String, title: String, locality: Option<&str>, strict: bool| {
        let n = kinds.len();
        let _ = writeln!(
            toml,
            "[[tenants]]\nid = \"matrix-{n}\"\nbucket = \"matrix-{n}\"\nfeatures = [{features}]\nstrict = {strict}"
        );
        if let Some(l) = locality {
            let _ = writeln!(toml, "locality = {l:?}");
        }
        kinds.push(TenantKind { label, title });
    };
    for (_, r) in p.regions() {
        add(
            format!("{} locality", r.id()),
            format!("Data locality {} ({})", r.id(), r.jurisdiction()),
            Some(r.id()),
            false,
        );
    }
    add(
        "no add-on".to_string(),
        format!(
            "No locality add-on (default region {})",
            p.region(p.default_region()).id()
        ),
        None,
        false,
    );
    for (_, r) in p.regions() {
        add(
            format!("strict {}", r.id()),
            format!(
                "Strict {}: never hosted outside {}",
                r.id(),
                r.jurisdiction()
            ),
            Some(r.id()),
            true,
        );
    }
    let tenants =
        Tenants::from_toml(&toml, "<placement matrix tenants>", p).map_err(LoadError::Invalid)?;
    let ids: Vec<_> = tenants.iter().map(|(id, _)| id).collect();
    let rules = Ruleset::new(p.clone(), tenants);
    let cells = p
        .categories()
        .map(|(c, _)| ids.iter().map(|&t| cell(&rules, t, c)).collect())
        .collect();
    Ok(Matrix { kinds, cells })
}

fn cell(rules: &Ruleset, tenant: residency::policy::TenantId, c: CategoryId) -> Cell {
    let d = rules.place(
        tenant,
        Classification {
            category: c,
            by: ClassifiedBy::Explicit,
        },
    );
    let p = rules.policy();
    let marks: Vec<String> = rules
        .notes(tenant, Some(c))
        .iter()
        .filter_map(|n| match n {
            Note::SubProcessorCopy { sub_processor, .. } => Some(format!(
                "{} copy in {}",
                sub_processor.name(),
                sub_processor.hosts_in().join(", ")
            )),
            Note::FeatureExport { export, .. } => Some(format!(
                "{} copy in {}",
                p.feature_name(export.feature()),
                p.region(export.to()).id()
            )),
            Note::DefaultRegionAssumption { .. } => None,
        })
        .collect();
    match d {
        Decision::Allow(pl) => Cell {
            marks,
            kind: if pl.out_of_locality {
                CellKind::OutOfLocality
            } else {
                CellKind::Allowed
            },
            text: rules.policy().region(pl.region).id().to_string(),
            reason: d.reason_str(),
        },
        Decision::Deny(r) => Cell {
            marks,
            kind: CellKind::Denied,
            text: match r {
                DenyReason::OutOfLocality { .. } => "denied".to_string(),
                _ => format!("denied ({})", r.as_str()),
            },
            reason: d.reason_str(),
        },
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cell_label(c: &Cell) -> String {
    let label = match c.kind {
        CellKind::OutOfLocality => format!("{} (out of locality)", c.text),
        _ => c.text.clone(),
    };
    if c.marks.is_empty() {
        label
    } else {
        format!("{label} + {}", c.marks.join(", "))
    }
}

fn html(p: &Policy, rows: &[Row], m: &Matrix) -> String {
    let mut o = String::new();
    let title = format!("Residency placement matrix: hosting policy {}", p.version());
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }}
h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }}
p.meta {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #bbb; padding: .35rem .6rem; text-align: left; vertical-align: top; }}
th {{ background: #eef1f5; white-space: nowrap; }}
td.cat code {{ font-weight: 600; }}
td.desc {{ color: #555; font-size: .85rem; max-width: 22rem; }}
td.allowed {{ background: #d9f2d9; color: #1e5e1e; }}
td.ool {{ background: #ffe7b3; color: #7a4b00; }}
td.denied {{ background: #f7d0d0; color: #8a1c1c; }}
td.allowed, td.ool, td.denied {{ text-align: center; vertical-align: middle; font-weight: 600; white-space: nowrap; }}
td.gated::after {{ content: " *"; }}
.legend span {{ display: inline-block; padding: .15rem .5rem; margin-right: .6rem; border: 1px solid #bbb; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">Default region for tenants without the locality add-on: <code>{default}</code>. Explicit category contradicting a key rule: <code>{conflict}</code>.</p>
<p class="legend"><span style="background:#d9f2d9">allowed: in the tenant's region</span><span style="background:#ffe7b3">allowed, out of locality (audited)</span><span style="background:#f7d0d0">denied</span></p>
<table>
<thead><tr><th>category</th>"#,
        title = esc(&title),
        default = esc(p.region(p.default_region()).id()),
        conflict = esc(p.on_conflict().as_str()),
    );
    for k in &m.kinds {
        let _ = write!(o, r#"<th title="{}">{}</th>"#, esc(&k.title), esc(&k.label));
    }
    o.push_str("<th>may be hosted in</th><th>follows</th><th>feature gate</th><th>description</th></tr></thead>\n<tbody>\n");
    for (r, cells) in rows.iter().zip(&m.cells) {
        let gated = r.feature != "-";
        let _ = write!(
            o,
            r#"<tr><td class="cat"><code>{}</code></td>"#,
            esc(&r.category)
        );
        for c in cells {
            let _ = write!(
                o,
                r#"<td class="{}{}" title="{}">{}</td>"#,
                c.kind.class(),
                if gated { " gated" } else { "" },
                esc(c.reason),
                esc(&cell_label(c))
            );
        }
        let _ = writeln!(
            o,
            r#"<td>{}</td><td>{}</td><td>{}</td><td class="desc">{}</td></tr>"#,
            esc(&r.allowed),
            esc(&r.follows),
            esc(&r.feature),
            esc(&r.description)
        );
    }
    o.push_str("</tbody>\n</table>\n");
    o.push_str("<p>* only once the tenant enables the feature named in the feature gate column; until then every write of the category is denied (<code>feature_disabled</code>), in every region.</p>\n");
    o.push_str("<h2 style=\"font-size:1.1rem\">Regions</h2>\n<table>\n<thead><tr><th>region</th><th>jurisdiction</th><th>provider locations</th></tr></thead>\n<tbody>\n");
    for (_, reg) in p.regions() {
        let _ = writeln!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(reg.id()),
            esc(reg.jurisdiction()),
            esc(&reg.locations().join(", "))
        );
    }
    o.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    o
}

/// Generous rendered width of `s` in pixels at 13px (bold or monospace),
/// padding included: SVG text does not wrap, so a cell must fit its text.
fn text_width(s: &str) -> usize {
    s.chars().count() * 8 + 22
}

fn svg(p: &Policy, rows: &[Row], m: &Matrix) -> String {
    const ROW_H: usize = 26;
    const TOP: usize = 56;
    let headers: Vec<String> = std::iter::once("category".to_string())
        .chain(m.kinds.iter().map(|k| k.label.clone()))
        .chain(["follows".to_string(), "feature gate".to_string()])
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| text_width(h)).collect();
    for (r, cells) in rows.iter().zip(&m.cells) {
        widths[0] = widths[0].max(text_width(&r.category));
        for (i, c) in cells.iter().enumerate() {
            widths[i + 1] = widths[i + 1].max(text_width(&cell_label(c)));
        }
        let n = widths.len();
        widths[n - 2] = widths[n - 2].max(text_width(&r.follows));
        widths[n - 1] = widths[n - 1].max(text_width(&r.feature));
    }
    let table_w: usize = widths.iter().sum();
    let width = table_w.max(760) + 20;
    let height = TOP + ROW_H * (rows.len() + 1) + 72;
    let mut o = String::new();
    let title = format!("Residency placement matrix: hosting policy {}", p.version());
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13">"#
    );
    let _ = writeln!(o, "<title>{}</title>", esc(&title));
    let _ = writeln!(
        o,
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="24" font-size="16" font-weight="bold" fill="#222">{}</text>"##,
        esc(&title)
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="44" fill="#555">default region (no add-on): {}; every optional feature assumed enabled (* = gated)</text>"##,
        esc(p.region(p.default_region()).id())
    );
    let mut y = TOP;
    // Header row.
    let mut x = 10;
    for (h, w) in headers.iter().zip(&widths) {
        let _ = writeln!(
            o,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{ROW_H}" fill="#eef1f5" stroke="#bbbbbb"/><text x="{}" y="{}" font-weight="bold" fill="#222">{}</text>"##,
            x + 8,
            y + 17,
            esc(h)
        );
        x += w;
    }
    y += ROW_H;
    for (r, cells) in rows.iter().zip(&m.cells) {
        let gated = r.feature != "-";
        let mut x = 10;
        let _ = writeln!(
            o,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{ROW_H}" fill="#ffffff" stroke="#bbbbbb"/><text x="{}" y="{}" font-family="ui-monospace, monospace" fill="#222">{}</text>"##,
            x + 8,
            y + 17,
            esc(&r.category),
            w = widths[0]
        );
        x += widths[0];
        for (c, w) in cells.iter().zip(&widths[1..]) {
            let (bg, fg) = c.kind.colors();
            let label = if gated {
                format!("{} *", cell_label(c))
            } else {
                cell_label(c)
            };
            let _ = writeln!(
                o,
                r##"<g><title>{reason}</title><rect x="{x}" y="{y}" width="{w}" height="{ROW_H}" fill="{bg}" stroke="#bbbbbb"/><text x="{tx}" y="{ty}" text-anchor="middle" font-weight="bold" fill="{fg}">{label}</text></g>"##,
                reason = esc(c.reason),
                tx = x + w / 2,
                ty = y + 17,
                label = esc(&label)
            );
            x += w;
        }
        let n = widths.len();
        for (t, w) in [(&r.follows, widths[n - 2]), (&r.feature, widths[n - 1])] {
            let _ = writeln!(
                o,
                r##"<rect x="{x}" y="{y}" width="{w}" height="{ROW_H}" fill="#ffffff" stroke="#bbbbbb"/><text x="{}" y="{}" fill="#222">{}</text>"##,
                x + 8,
                y + 17,
                esc(t)
            );
            x += w;
        }
        y += ROW_H;
    }
    // Legend.
    y += 14;
    let mut x = 10;
    for (kind, label) in [
        (CellKind::Allowed, "allowed: in the tenant's region"),
        (
            CellKind::OutOfLocality,
            "allowed, out of locality (audited)",
        ),
        (CellKind::Denied, "denied"),
    ] {
        let (bg, fg) = kind.colors();
        let w = text_width(label);
        let _ = writeln!(
            o,
            r##"<rect x="{x}" y="{y}" width="{w}" height="22" fill="{bg}" stroke="#bbbbbb"/><text x="{}" y="{}" fill="{fg}">{}</text>"##,
            x + 8,
            y + 15,
            esc(label)
        );
        x += w + 10;
    }
    let _ = writeln!(
        o,
        r##"<text x="10" y="{}" fill="#555">* only once the tenant enables the gating feature; until then denied (feature_disabled) in every region</text>"##,
        y + 40
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Policy {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hosting-policy.toml");
        super::super::load_policy(&path).expect("the shipped policy loads")
    }

    fn cell_of<'a>(p: &Policy, m: &'a Matrix, category: &str, kind: &str) -> &'a Cell {
        let row = p
            .categories()
            .position(|(_, c)| c.id() == category)
            .expect("category");
        let col = m
            .kinds
            .iter()
            .position(|k| k.label == kind)
            .expect("tenant kind");
        &m.cells[row][col]
    }

    #[test]
    fn the_matrix_follows_the_seed_table_for_each_kind_of_tenant() {
        let p = shipped();
        let m = matrix(&p).expect("matrix");
        let labels: Vec<&str> = m.kinds.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "eu locality",
                "us locality",
                "no add-on",
                "strict eu",
                "strict us"
            ]
        );
        let c = cell_of(&p, &m, "ticket_data", "eu locality");
        assert!(c.kind == CellKind::Allowed && c.text == "eu");
        // "Call Recordings: ... in the US only"
        let c = cell_of(&p, &m, "call_recordings", "eu locality");
        assert!(c.kind == CellKind::OutOfLocality && c.text == "us");
        assert!(cell_of(&p, &m, "call_recordings", "strict eu").kind == CellKind::Denied);
        // "Chat Content: Available to be Hosted in the EEA only"
        let c = cell_of(&p, &m, "chat_content", "no add-on");
        assert!(c.kind == CellKind::Allowed && c.text == "eu");
        assert!(cell_of(&p, &m, "chat_content", "strict us").kind == CellKind::Denied);
        let c = cell_of(&p, &m, "backups_and_logs", "strict eu");
        assert!(c.kind == CellKind::Allowed && c.text == "eu");
    }

    #[test]
    fn html_and_svg_show_every_category_and_escape_text() {
        let p = shipped();
        let m = matrix(&p).expect("matrix");
        let rows = rows(&p);
        let page = html(&p, &rows, &m);
        let image = svg(&p, &rows, &m);
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert!(image.starts_with("<svg ") && image.trim_end().ends_with("</svg>"));
        for (_, c) in p.categories() {
            assert!(
                page.contains(&format!("<code>{}</code>", c.id())),
                "{}",
                c.id()
            );
            assert!(image.contains(&format!(">{}</text>", c.id())), "{}", c.id());
        }
        // Policy text is escaped (backups_and_logs: "tenant's selected region").
        assert!(page.contains("tenant&#39;s selected region"));
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        // Balanced markup: every <g> closed.
        assert_eq!(image.matches("<g>").count(), image.matches("</g>").count());
    }
}
