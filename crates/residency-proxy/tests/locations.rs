//! The startup location check with more than two regions (issue 18, item 1).
//!
//! Seed: "Ticket Data — Available to be Hosted in the European Economic Area
//! (EEA) or the United States (US)". A region is a jurisdiction of member
//! countries; a bucket whose GetBucketLocation is not one of its region's
//! locations is refused, with the country it is in. The policy here adds a
//! third region `uk` (country GB, location eu-west-2) to `eu` and `us`.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use residency_proxy::{ServeOptions, Sidecar};
use residency_testkit::RegionInfo;
use support::*;

const POLICY: &str = r#"
version = "three-regions"
default_region = "us"
backup_prefixes = ["backups/", "logs/"]
[jurisdictions.UK]
countries = ["GB"]
[regions.eu]
jurisdiction = "EEA"
locations = ["eu-west-1"]
[regions.us]
jurisdiction = "US"
locations = ["us-east-1"]
[regions.uk]
jurisdiction = "UK"
locations = ["eu-west-2"]
[categories.ticket_data]
allowed = ["eu", "us", "uk"]
[categories.chat_content]
allowed = ["eu"]
[[key_rules]]
pattern = "tickets/**"
category = "ticket_data"
[[key_rules]]
pattern = "chat/**"
category = "chat_content"
"#;

const TENANTS: &str = r#"
[[tenants]]
id = "brit"
locality = "uk"
[[tenants.keys]]
access_key = "BRITEXAMPLEKEY"
secret_key = "brit-example-secret-key-change-me"
"#;

const BRIT: (&str, &str) = ("BRITEXAMPLEKEY", "brit-example-secret-key-change-me");

fn s3_region(id: &str, r: &RegionInfo) -> String {
    format!(
        "[regions.{id}]\nkind = \"s3\"\nendpoint = {:?}\nbucket = {:?}\nregion = {:?}\naccess_key = {:?}\nsecret_key = {:?}\ntimeout_secs = 5\nmax_attempts = 1\n\n",
        r.endpoint, r.bucket, r.region, r.access_key, r.secret_key
    )
}

/// Writes the policy, tenants and sidecar config; `uk` is the given table.
fn write(dir: &std::path::Path, uk: &str) -> std::path::PathBuf {
    let c = cluster();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    std::fs::write(dir.join("tenants.toml"), TENANTS).unwrap();
    let mut s = format!(
        "listen = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\npolicy = {:?}\ntenants = {:?}\n\n",
        dir.join("policy.toml").display().to_string(),
        dir.join("tenants.toml").display().to_string()
    );
    s.push_str(&s3_region("eu", c.eu()));
    s.push_str(&s3_region("us", c.us()));
    s.push_str(uk);
    s.push_str("[limits]\nshutdown_grace_secs = 1\n\n[audit]\nenabled = false\n");
    let path = dir.join("residency.toml");
    std::fs::write(&path, s).unwrap();
    path
}

/// A `uk` region whose bucket is in Ireland (eu-west-1) is refused at
/// startup: the message names the location, its country and the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uk_region_whose_bucket_is_in_ireland_is_refused_at_startup() {
    bounded("uk in ireland", async {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), &s3_region("uk", cluster().eu()));
        let err = within(
            "Sidecar::build",
            Sidecar::build(&config, &ServeOptions::default()),
        )
        .await
        .err()
        .expect("the sidecar must refuse to start")
        .to_string();
        assert!(
            err.contains("region uk")
                && err.contains("\"eu-west-1\"")
                && err.contains("IE, not a member of UK"),
            "{err}"
        );
    })
    .await;
}

/// With the `uk` region on a local directory (no location to check) and eu/us
/// on Garage, the sidecar starts: a UK tenant's ticket lands in `uk`, its
/// EEA-only chat in `eu` (out of locality), nothing in `us`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_start_and_place_by_the_policy() {
    bounded("three regions", async {
        let dir = tempfile::tempdir().unwrap();
        let uk_dir = dir.path().join("uk");
        let config = write(
            dir.path(),
            &format!(
                "[regions.uk]\nkind = \"dir\"\npath = {:?}\n\n",
                uk_dir.display().to_string()
            ),
        );
        let sidecar = start_sidecar(&config).await;
        let c = proxy_client(&sidecar.endpoint, BRIT.0, BRIT.1, None);
        for key in ["tickets/1.json", "chat/1.json"] {
            within(
                "put",
                c.put_object()
                    .bucket("brit")
                    .key(key)
                    .body(ByteStream::from_static(b"three regions"))
                    .send(),
            )
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        }
        assert!(uk_dir.join("brit/tickets/1.json").is_file());
        assert!(regions_holding("brit", "tickets/1.json").await.is_empty());
        assert!(!uk_dir.join("brit/chat/1.json").exists());
        assert_placed("brit", "chat/1.json", "eu").await;
        within(
            "delete",
            c.delete_object().bucket("brit").key("chat/1.json").send(),
        )
        .await
        .expect("delete chat");
    })
    .await;
}
