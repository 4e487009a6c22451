//! The Government Data Request Policy (`seeds/004_0d85058ac6fbc668.txt`),
//! item by item (issue 18, items 9-13): each test quotes the seed line it
//! enforces.

mod support;

use std::sync::Arc;

use residency_disclosure::{
    Adequacy, Consult, Consultation, Disclosures, Event, ExportOptions, Limit, LimitRaise, Limits,
    Period, Signer, State, UNATTRIBUTED,
};
use residency_policy::Ruleset;
use residency_store::{Backend, MemoryBackend};
use support::{approve_both, desk_on, get, keys, put, refused, request, rules, team};

struct World {
    desk: Disclosures,
    eu: Arc<dyn Backend>,
    us: Arc<dyn Backend>,
    out: tempfile::TempDir,
}

async fn world() -> World {
    let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
    let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
    for i in 0..5 {
        put(&eu, &format!("acme/tickets/{i}.json"), b"{\"t\":1}").await;
    }
    World {
        desk: desk_on(rules(), &eu, &us),
        eu,
        us,
        out: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn opts(&self, dir: &str, signer: &Signer) -> ExportOptions {
        ExportOptions {
            dir: self.out.path().join(dir),
            raises: vec![],
            reason: None,
            by: String::new(),
            signer: Some(signer.clone()),
        }
    }

    /// Exports `id` into `dir` as `signer`, which must be refused with a
    /// message containing `needle`.
    async fn export_refused(&self, id: &str, dir: &str, signer: &Signer, needle: &str) {
        refused(self.desk.export(id, &self.opts(dir, signer)).await, needle);
    }

    /// Opens a request of `acme` (EU locality) from an authority in
    /// `country`, notice legally prohibited so that no webhook is needed.
    async fn open(&self, country: &str, authority: &str, scope: &[&str]) -> String {
        let mut r = request("acme", keys(scope));
        r.country = country.into();
        r.authority = authority.into();
        r.notice_prohibited = Some("gag order, case 4711".into());
        self.desk.open(r, "intake", "").await.unwrap().request.id
    }
}

/// Seed 4.2.1: "If the Requesting Authority is in a country that does not
/// provide an adequate level of protection for the personal information in
/// accordance with applicable data protection laws, then Zendesk will also
/// put the request on hold to notify and consult with the competent data
/// protection authorities".
#[test]
fn the_adequacy_table_states_known_facts() {
    let t = Adequacy::builtin();
    // The EEA: the EU member states plus Iceland, Liechtenstein and Norway.
    assert_eq!(t.eea.len(), 30);
    for c in ["DE", "FR", "IE", "GR", "IS", "LI", "NO"] {
        assert!(t.is_eea(c), "{c} is in the EEA");
        assert!(!t.assess(c, true).consult, "{c}");
    }
    for c in [
        "CH", "GB", "JP", "KR", "NZ", "IL", "UY", "AR", "AD", "FO", "GG", "IM", "JE",
    ] {
        assert!(!t.is_eea(c), "{c} is not in the EEA");
        let a = t.assess(c, true);
        assert!(!a.consult, "{c} has a full adequacy decision: {a:?}");
        assert!(a.reason.contains("adequacy decision"), "{a:?}");
    }
    // Partial decisions do not cover an authority.
    let us = t.assess("us", true);
    assert!(
        us.consult && us.reason.contains("Data Privacy Framework"),
        "{us:?}"
    );
    let ca = t.assess("CA", true);
    assert!(ca.consult && ca.reason.contains("commercial"), "{ca:?}");
    for c in ["CN", "RU", "IN", "BR"] {
        let a = t.assess(c, true);
        assert!(
            a.consult && a.reason.contains("no EU adequacy decision"),
            "{a:?}"
        );
    }
    // Data hosted outside the EEA: the EU table does not apply.
    assert!(!t.assess("CN", false).consult);
}

#[tokio::test]
async fn a_request_from_a_country_without_adequacy_is_held_until_the_dpa_is_consulted() {
    let w = world().await;
    let (_, alice, bob) = team();
    // A US authority asks for an EU tenant's data: on hold from the start.
    let id = w.open("US", "FBI", &["tickets/1.json"]).await;
    let rec = w.desk.get(&id).await.unwrap();
    assert_eq!(rec.state, State::OnHold);
    assert!(rec.needs_consultation() && rec.held);
    assert!(rec.history[1].why.contains("4.2.1"), "{:?}", rec.history[1]);
    // Neither an approval nor (so) an export before the consultation.
    refused(
        w.desk.approve(&id, &alice, "ok").await,
        "held for consultation",
    );
    w.export_refused(&id, "early", &alice, "only an approved request")
        .await;
    let c = Consult::Consulted {
        authority: "Data Protection Commission (IE)".into(),
        reference: "DPC-2026-17".into(),
        summary: "no objection to disclosing the two named tickets".into(),
    };
    w.desk.consult(&id, c, "dpo", None).await.unwrap();
    approve_both(&w.desk, &id).await;
    let m = w.desk.export(&id, &w.opts("x", &alice)).await.unwrap();
    assert_eq!(m.total_objects, 1);
    let rec = w.desk.get(&id).await.unwrap();
    assert_eq!(rec.state, State::Fulfilled);
    assert!(matches!(rec.consultation, Consultation::Consulted { .. }));
    assert!(w.desk.verify("acme").await.unwrap().ok);

    // A German authority: no hold, no consultation needed.
    let de = w.open("DE", "BKA", &["tickets/2.json"]).await;
    assert_eq!(w.desk.get(&de).await.unwrap().state, State::Received);
    approve_both(&w.desk, &de).await;
    w.desk.export(&de, &w.opts("de", &bob)).await.unwrap();

    // A consultation is recorded while on hold only.
    let cn = w.open("CN", "MPS", &["tickets/3.json"]).await;
    w.desk
        .transition(&cn, State::Challenged, "counsel", "overbroad")
        .await
        .unwrap();
    let c = Consult::Consulted {
        authority: "DPC".into(),
        reference: String::new(),
        summary: "x".into(),
    };
    refused(w.desk.consult(&cn, c, "dpo", None).await, "on hold");
    // Seed 4.2.2: "Where Zendesk is prohibited from notifying the competent
    // data protection authorities and suspending the request, Zendesk will
    // use its best efforts ... Zendesk will maintain a written record of the
    // efforts it takes."
    let p = Consult::Prohibited {
        efforts: "asked the authority to waive the prohibition; refused in writing".into(),
    };
    let rec = w.desk.consult(&cn, p, "dpo", None).await.unwrap();
    assert!(matches!(rec.consultation, Consultation::Prohibited { .. }));
    approve_both(&w.desk, &cn).await;
    assert_eq!(w.desk.get(&cn).await.unwrap().state, State::Approved);
}

/// Seed 4.1.1: "If a request concerns personal information for which a
/// Customer is the controller, Zendesk will ordinarily ask the Requesting
/// Authority to make the Data Disclosure Request directly to the relevant
/// Customer."
#[tokio::test]
async fn redirected_is_an_outcome_counted_in_the_report() {
    let w = world().await;
    let id = w.open("DE", "BKA", &["tickets/1.json"]).await;
    w.desk
        .transition(
            &id,
            State::Redirected,
            "privacy",
            "the BKA agreed to ask acme directly",
        )
        .await
        .unwrap();
    let rec = w.desk.get(&id).await.unwrap();
    assert!(rec.state.is_final());
    refused(
        w.desk
            .transition(&id, State::OnHold, "privacy", "again")
            .await,
        "final",
    );
    let r = w.desk.report("2026H2".parse().unwrap()).await.unwrap();
    assert_eq!(r.by_outcome.get("redirected"), Some(&1));
    assert!(r.to_markdown().contains("| redirected | 1 |"));
    assert!(r.to_csv().contains(",DE,court_order,redirected,1"));
}

/// Seed 3.1: the request goes to "Zendesk’s Chief Privacy Officer and
/// Privacy Team (collectively, the “Privacy Team”)"; 3.3: "Zendesk’s
/// Privacy Team will carefully review each and every Data Disclosure
/// Request".
#[tokio::test]
async fn approvals_need_two_different_members_of_the_privacy_team() {
    let w = world().await;
    let (_, alice, bob) = team();
    let id = w.open("DE", "BKA", &["tickets/1.json"]).await;
    // Free text no longer decides.
    refused(
        w.desk
            .transition(&id, State::Approved, "general-counsel", "compelled")
            .await,
        "two different privacy team members",
    );
    // A key outside the team.
    let mallory = Signer::named("alice", &"cc".repeat(32)).unwrap();
    refused(
        w.desk.approve(&id, &mallory, "ok").await,
        "not in [[privacy_team]]",
    );
    let rec = w.desk.approve(&id, &alice, "compelled").await.unwrap();
    assert_eq!((rec.state, rec.approvals.len()), (State::Received, 1));
    refused(
        w.desk.approve(&id, &alice, "again").await,
        "already approved",
    );
    // One approval is not enough to export.
    w.export_refused(&id, "one", &alice, "only an approved request")
        .await;
    let rec = w.desk.approve(&id, &bob, "agreed").await.unwrap();
    assert_eq!(rec.state, State::Approved);
    let members: Vec<_> = rec.approvals.iter().map(|a| a.member.as_str()).collect();
    assert_eq!(members, ["alice", "bob"]);
    // The entries are signed and the signatures verify.
    let approvals: Vec<_> = rec
        .history
        .iter()
        .filter(|e| e.event == Event::Approval)
        .collect();
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0].signer(), Some("alice"));
    assert_eq!(approvals[1].signer(), Some("bob"));
    assert_eq!(approvals[1].v, residency_disclosure::LEDGER_VERSION);
    // An export needs a member's key.
    let mut o = w.opts("nokey", &alice);
    o.signer = None;
    refused(w.desk.export(&id, &o).await, "privacy team member's key");
    // Challenged after approval: the same two members approve again.
    w.desk
        .transition(&id, State::Challenged, "counsel", "overbroad")
        .await
        .unwrap();
    assert!(w.desk.get(&id).await.unwrap().approvals.is_empty());
    approve_both(&w.desk, &id).await;
    w.desk.export(&id, &w.opts("ok", &alice)).await.unwrap();

    // A signed entry edited, with the chain and the head rewritten to match,
    // is caught by its signature.
    let v = w.desk.verify("acme").await.unwrap();
    assert!(v.ok, "{v:?}");
    let key = format!("_disclosure/acme/ledger/{:010}.json", v.entries - 1);
    let text = String::from_utf8(get(&w.eu, &key).await).unwrap();
    assert!(text.contains("\"by\":\"alice\""), "{text}");
    let forged = text.replace("exported 1 object(s)", "exported 0 object(s)");
    assert_ne!(forged, text);
    put(&w.eu, &key, forged.as_bytes()).await;
    let head = format!(
        "{{\"entries\":{},\"sha256\":\"{}\"}}",
        v.entries,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(forged.as_bytes()))
    );
    put(&w.eu, "_disclosure/acme/head.json", head.as_bytes()).await;
    let v = w.desk.verify("acme").await.unwrap();
    assert!(!v.ok);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("signature of alice does not verify")),
        "{v:?}"
    );
}

/// Seed 5.1: a Transparency Report "which reflects the number and type of
/// Data Disclosure Requests it has received for the preceding six months,
/// as may be limited by applicable law or court order"; 4.1.2: the
/// authority may not "know the customer’s identity".
#[tokio::test]
async fn unattributed_and_churned_tenants_requests_are_counted() {
    let w = world().await;
    // No known customer: recorded without a scope, never exported or notified.
    let mut r = request(UNATTRIBUTED, keys(&[]));
    r.country = "FR".into();
    let rec = w.desk.open(r, "intake", "").await.unwrap();
    assert_eq!(rec.request.id, "_unattributed-1");
    let (_, alice, _) = team();
    w.export_refused("_unattributed-1", "u", &alice, "no known customer")
        .await;
    // acme's request, then acme leaves the tenants file.
    w.open("DE", "BKA", &["tickets/1.json"]).await;
    let churned = Ruleset::from_toml(
        include_str!("../../../config/hosting-policy.toml"),
        "hosting-policy.toml",
        "[[tenants]]\nid = \"globex\"\nlocality = \"us\"\n",
        "tenants.toml",
    )
    .unwrap();
    let later = desk_on(churned, &w.eu, &w.us);
    let r = later.report("2026H2".parse().unwrap()).await.unwrap();
    assert_eq!(r.requests, 2, "{r:?}");
    assert_eq!(r.by_country.get("DE"), Some(&1));
    assert_eq!(r.by_country.get("FR"), Some(&1));
    assert_eq!(r.ledgers, 2);
    // The churned tenant's request can still be shown and verified.
    assert_eq!(later.get("acme-1").await.unwrap().state, State::Received);
    let all = later.verify_all().await.unwrap();
    assert!(all.iter().any(|v| v.tenant == "acme" && v.ok), "{all:?}");
    assert!(all.iter().any(|v| v.tenant == UNATTRIBUTED && v.ok));
}

#[tokio::test]
async fn a_frozen_report_stays_and_later_changes_show_separately() {
    let w = world().await;
    let (_, alice, bob) = team();
    let h1: Period = "2026H1".parse().unwrap();
    let open_h1 = |day: &'static str, key: &'static str| {
        let mut r = request("acme", keys(&[key]));
        r.received = day.parse().unwrap();
        r
    };
    w.desk
        .open(open_h1("2026-02-01", "tickets/1.json"), "intake", "")
        .await
        .unwrap();
    w.desk
        .open(open_h1("2026-03-01", "tickets/2.json"), "intake", "")
        .await
        .unwrap();
    refused(
        w.desk
            .freeze_report("2099H1".parse().unwrap(), &alice)
            .await,
        "has not ended",
    );
    let frozen = w.desk.freeze_report(h1, &alice).await.unwrap();
    assert_eq!(frozen.report.requests, 2);
    refused(w.desk.freeze_report(h1, &bob).await, "never replaced");

    // Later: a request received in H1 is recorded late, another is refused.
    w.desk
        .open(open_h1("2026-06-30", "tickets/3.json"), "intake", "")
        .await
        .unwrap();
    w.desk
        .transition("acme-1", State::Refused, "counsel", "no legal obligation")
        .await
        .unwrap();
    let view = w.desk.report_view(h1).await.unwrap();
    assert_eq!(view.report.requests, 2, "the frozen report does not change");
    assert_eq!(view.report.by_outcome.get("pending"), Some(&2));
    let f = view.frozen.as_ref().unwrap();
    assert!(f.signature_ok);
    assert_eq!(f.by, "alice");
    assert_eq!(view.changes_since_frozen.len(), 2, "{view:?}");
    let md = view.to_markdown();
    assert!(md.contains("signature verified"), "{md}");
    assert!(
        md.contains("| DE | court_order | (recorded later) | pending |"),
        "{md}"
    );
    assert!(
        md.contains("| DE | court_order | pending | refused |"),
        "{md}"
    );
    // The live report does change.
    assert_eq!(w.desk.report(h1).await.unwrap().requests, 3);

    // An edited frozen report no longer verifies.
    let key = "_disclosure/_reports/2026H1.json";
    let text = String::from_utf8(get(&w.us, key).await).unwrap();
    put(
        &w.us,
        key,
        text.replace("\\\"requests\\\":2", "\\\"requests\\\":1")
            .as_bytes(),
    )
    .await;
    let view = w.desk.report_view(h1).await.unwrap();
    assert_eq!(view.report.requests, 1);
    assert!(!view.frozen.unwrap().signature_ok);
}

#[tokio::test]
async fn small_counts_are_published_in_bands() {
    let mut w = world().await;
    w.desk = desk_on(rules(), &w.eu, &w.us).with_bands(vec![0, 1, 250]);
    for _ in 0..3 {
        w.open("DE", "BKA", &["tickets/1.json"]).await;
    }
    let r = w.desk.report("2026H2".parse().unwrap()).await.unwrap();
    assert_eq!(r.requests, 3);
    let md = r.to_markdown();
    assert!(md.contains("**1-249**"), "{md}");
    assert!(md.contains("| DE | 1-249 |"), "{md}");
    assert!(!md.contains("| DE | 3 |"), "{md}");
    assert!(r.to_csv().contains(",DE,court_order,pending,1-249"));
    let v = r.to_value();
    assert_eq!(v["requests"], "1-249");
    assert_eq!(v["by_country"]["DE"], "1-249");
}

/// Seed 6.1: "In no event will any Group Member transfer Personal
/// Information to a Requesting Authority in a massive, disproportionate, and
/// indiscriminate manner that goes beyond what is necessary in a democratic
/// society."
#[tokio::test]
async fn one_authority_is_capped_per_half_year_and_raises_need_a_second_approver() {
    let mut w = world().await;
    w.desk = desk_on(rules(), &w.eu, &w.us).with_limits(Limits {
        max_authority_objects: 3,
        ..Limits::default()
    });
    let (_, alice, bob) = team();
    let a = w
        .open(
            "DE",
            "Bundeskriminalamt",
            &["tickets/1.json", "tickets/2.json"],
        )
        .await;
    approve_both(&w.desk, &a).await;
    w.desk.export(&a, &w.opts("a", &alice)).await.unwrap();
    // The same authority (spelled differently), another narrow request.
    let b = w
        .open(
            "DE",
            "bundeskriminalamt ",
            &["tickets/3.json", "tickets/4.json"],
        )
        .await;
    approve_both(&w.desk, &b).await;
    w.export_refused(&b, "b", &alice, "4 authority_objects")
        .await;
    // The exporter alone cannot lift the cap.
    let raise = LimitRaise {
        limit: Limit::AuthorityObjects,
        to: 4,
    };
    let raised = |dir: &str| ExportOptions {
        raises: vec![raise],
        reason: Some("a second, separate investigation".into()),
        ..w.opts(dir, &alice)
    };
    refused(w.desk.export(&b, &raised("b2")).await, "second approver");
    // The same member approving their own raise does not count twice.
    w.desk
        .approve_raise(&b, &raise, "again", &alice)
        .await
        .unwrap();
    refused(w.desk.export(&b, &raised("b3")).await, "second approver");
    w.desk
        .approve_raise(&b, &raise, "agreed", &bob)
        .await
        .unwrap();
    let m = w.desk.export(&b, &raised("b4")).await.unwrap();
    assert_eq!(m.limits.max_authority_objects, 4);
    let rec = w.desk.get(&b).await.unwrap();
    assert_eq!(rec.raised_limits.get("authority_objects"), Some(&4));
    // Another authority is not affected by the cap.
    let c = w.open("FR", "Police nationale", &["tickets/1.json"]).await;
    approve_both(&w.desk, &c).await;
    w.desk.export(&c, &w.opts("c", &bob)).await.unwrap();
}

/// Version 1 ledgers (written before signatures) still read, verify and
/// take new entries.
#[tokio::test]
async fn a_version_1_ledger_still_reads() {
    let w = world().await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-v1/acme");
    put(
        &w.eu,
        "_disclosure/acme/head.json",
        &std::fs::read(dir.join("head.json")).unwrap(),
    )
    .await;
    for e in std::fs::read_dir(dir.join("ledger")).unwrap() {
        let e = e.unwrap();
        put(
            &w.eu,
            &format!(
                "_disclosure/acme/ledger/{}",
                e.file_name().to_str().unwrap()
            ),
            &std::fs::read(e.path()).unwrap(),
        )
        .await;
    }
    let v = w.desk.verify("acme").await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.entries, v.requests), (9, 3));
    let list = w.desk.list("acme").await.unwrap();
    let states: Vec<_> = list.iter().map(|r| r.state).collect();
    assert_eq!(states, [State::Fulfilled, State::Approved, State::Refused]);
    assert!(list.iter().all(|r| r.history.iter().all(|e| e.v == 1)));
    // acme-2 was approved by free text (v1), from a US authority: it cannot
    // be exported until consulted and approved by two members.
    let (_, alice, _) = team();
    w.export_refused("acme-2", "legacy", &alice, "signed approval")
        .await;
    refused(w.desk.approve("acme-2", &alice, "ok").await, "put on hold");
    // New entries are version 2 and the mixed ledger verifies.
    w.desk
        .transition_as(
            "acme-2",
            State::Challenged,
            "",
            "no consultation yet",
            Some(&alice),
        )
        .await
        .unwrap();
    let v = w.desk.verify("acme").await.unwrap();
    assert!(v.ok, "{v:?}");
    let rec = w.desk.get("acme-2").await.unwrap();
    let last = rec.history.last().unwrap();
    assert_eq!((last.v, last.signer()), (2, Some("alice")));
    let r = w.desk.report("2026H1".parse().unwrap()).await.unwrap();
    assert_eq!(r.requests, 3);
}
