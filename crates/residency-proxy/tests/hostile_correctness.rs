//! Data correctness (issue "Hardening", items 5, 6 and 8), with `aws-sdk-s3`
//! against the sidecar on the shared Garage pair; every region's bucket is
//! read directly to see which copies exist.
//!
//! - an overwrite that changes region (by label) leaves one copy: GET, HEAD
//!   and LIST show the new object, the old region holds nothing;
//! - a multipart upload created before a reload that makes the tenant strict
//!   is refused (403) at UploadPart and Complete, aborted, nothing in the US;
//! - a DELETE of an object the new rules hide removes it;
//! - a reload onto an empty tenants file is refused: the tenants keep working.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use support::*;

const TENANTS: &str = include_str!("../../../config/tenants.example.toml");

/// A sidecar whose tenants file is this test's own copy (so it can reload
/// it) and an ACME client; the buckets are held shared while it lives.
struct OwnTenants {
    acme: Client,
    tenants: PathBuf,
    _env: Env,
    _shared: tokio::sync::RwLockReadGuard<'static, ()>,
}

impl OwnTenants {
    async fn start() -> OwnTenants {
        let _shared = BUCKETS.read().await;
        let env = Env::start_with(&SidecarOptions {
            tenants: Some(TENANTS.to_string()),
            ..Default::default()
        })
        .await;
        OwnTenants {
            acme: env.client(ACME),
            tenants: env.dir.path().join("tenants.toml"),
            _env: env,
            _shared,
        }
    }
}

/// Rewrites the tenants file (with a later mtime: the sidecar polls every 2 s).
fn rewrite(path: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(1_100));
    std::fs::write(path, text).expect("rewrite tenants");
}

fn acme_strict() -> String {
    let t = TENANTS.replacen(
        "id = \"acme\"\nlocality = \"eu\"\nstrict = false",
        "id = \"acme\"\nlocality = \"eu\"\nstrict = true",
        1,
    );
    assert_ne!(t, TENANTS, "the example tenants file changed shape");
    t
}

async fn get_body(c: &Client, key: &str) -> String {
    String::from_utf8(get(c, "acme", key).await).expect("utf8")
}

async fn head_size(c: &Client, key: &str) -> i64 {
    within("head", c.head_object().bucket("acme").key(key).send())
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
        .content_length()
        .unwrap_or_default()
}

async fn list_sizes(c: &Client, prefix: &str) -> Vec<(String, i64)> {
    within(
        "list",
        c.list_objects_v2().bucket("acme").prefix(prefix).send(),
    )
    .await
    .expect("list")
    .contents()
    .iter()
    .map(|o| {
        (
            o.key().unwrap_or_default().to_string(),
            o.size().unwrap_or_default(),
        )
    })
    .collect()
}

/// Waits until a labelled Insights write by acme is refused: the strict reload
/// is in force.
async fn wait_strict(c: &Client) {
    let start = Instant::now();
    loop {
        let r = c
            .put_object()
            .bucket("acme")
            .key("probe/strict")
            .metadata("residency-category", "insights")
            .body(ByteStream::from_static(b"p"))
            .send()
            .await;
        if r.is_err() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the reload never happened"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overwrite_that_changes_region_leaves_one_copy_both_ways() {
    bounded("overwrite", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let c = env.client(ACME);
        // EU → US: ticket_data stays in acme's EU locality, Insights are US-only.
        put_labelled(&c, "moves/o", "ticket_data", "the old EU body").await;
        assert_placed("acme", "moves/o", "eu").await;
        put_labelled(&c, "moves/o", "insights", "new US").await;
        assert_placed("acme", "moves/o", "us").await;
        assert_eq!(backend_bytes("us", "acme", "moves/o").await, b"new US");
        assert_eq!(get_body(&c, "moves/o").await, "new US");
        assert_eq!(head_size(&c, "moves/o").await, 6);
        assert_eq!(list_sizes(&c, "moves/").await, [("moves/o".to_string(), 6)]);
        // US → EU.
        put_labelled(&c, "moves/o", "ticket_data", "back in the EU").await;
        assert_placed("acme", "moves/o", "eu").await;
        assert_eq!(get_body(&c, "moves/o").await, "back in the EU");
        assert_eq!(head_size(&c, "moves/o").await, 14);
        assert_eq!(
            list_sizes(&c, "moves/").await,
            [("moves/o".to_string(), 14)]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_created_before_a_strict_reload_is_refused_and_aborted() {
    bounded("multipart after reload", async {
        let t = OwnTenants::start().await;
        let key = "reports/mp-after-reload.bin";
        let up = within(
            "create",
            t.acme
                .create_multipart_upload()
                .bucket("acme")
                .key(key)
                .metadata("residency-category", "insights")
                .send(),
        )
        .await
        .expect("create multipart");
        let id = up.upload_id().expect("upload id").to_string();
        let part1 = within(
            "part 1",
            t.acme
                .upload_part()
                .bucket("acme")
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from(vec![7u8; 5 * 1024 * 1024]))
                .send(),
        )
        .await
        .expect("part 1 before the reload");
        rewrite(&t.tenants, &acme_strict());
        wait_strict(&t.acme).await;
        let f = expect_s3_error(
            "part 2",
            within(
                "part 2",
                t.acme
                    .upload_part()
                    .bucket("acme")
                    .key(key)
                    .upload_id(&id)
                    .part_number(2)
                    .body(ByteStream::from_static(b"tail"))
                    .send(),
            )
            .await,
            403,
            "AccessDenied",
        );
        assert!(f.message.contains("placement changed"), "{f:?}");
        let done = CompletedMultipartUpload::builder()
            .parts(
                CompletedPart::builder()
                    .part_number(1)
                    .set_e_tag(part1.e_tag().map(str::to_string))
                    .build(),
            )
            .build();
        let f = failure(
            "complete",
            within(
                "complete",
                t.acme
                    .complete_multipart_upload()
                    .bucket("acme")
                    .key(key)
                    .upload_id(&id)
                    .multipart_upload(done)
                    .send(),
            )
            .await,
        );
        assert_eq!(f.status, 403, "{f:?}");
        assert!(
            regions_holding("acme", key).await.is_empty(),
            "nothing stored"
        );
        let snap = snapshot().await;
        assert!(
            !snap
                .keys()
                .any(|k| k.contains(&format!("upload:acme/{key}"))),
            "the upload was aborted in the backend: {snap:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_removes_an_object_the_new_rules_hide() {
    bounded("delete hidden", async {
        let t = OwnTenants::start().await;
        put_labelled(&t.acme, "hidden/h", "insights", "in the US").await;
        assert_placed("acme", "hidden/h", "us").await;
        rewrite(&t.tenants, &acme_strict());
        wait_strict(&t.acme).await;
        within(
            "delete",
            t.acme.delete_object().bucket("acme").key("hidden/h").send(),
        )
        .await
        .expect("delete");
        assert!(
            regions_holding("acme", "hidden/h").await.is_empty(),
            "still on disk"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_onto_an_empty_tenants_file_is_refused() {
    bounded("empty tenants", async {
        let t = OwnTenants::start().await;
        rewrite(&t.tenants, "# emptied by mistake\n");
        // Two poll periods of the watcher.
        tokio::time::sleep(Duration::from_secs(5)).await;
        put_labelled(&t.acme, "still/here", "ticket_data", "served").await;
        assert_eq!(get_body(&t.acme, "still/here").await, "served");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_eu_down_a_label_write_that_could_leave_a_copy_there_fails_closed() {
    bounded("eu down", async {
        let _shared = BUCKETS.read().await;
        let eu: std::net::SocketAddr = cluster()
            .eu()
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("eu endpoint");
        let relay = support::faultproxy::FaultProxy::start(eu).await;
        let env = Env::start_with(&SidecarOptions {
            eu_endpoint: Some(relay.endpoint()),
            backend_timeout_secs: 1,
            max_attempts: 1,
            limits: "circuit_failures = 0".into(),
            ..Default::default()
        })
        .await;
        let c = env.client(ACME);
        put_labelled(&c, "eudown/o", "insights", "the US copy").await;
        relay.set(support::faultproxy::Fault::Http503);
        // acme's insights could have an older ticket_data copy in the EU.
        let f = failure(
            "put while eu down",
            within(
                "put",
                c.put_object()
                    .bucket("acme")
                    .key("eudown/o")
                    .metadata("residency-category", "insights")
                    .body(ByteStream::from_static(b"new"))
                    .send(),
            )
            .await,
        );
        assert_eq!(
            (f.status, f.code.as_str()),
            (503, "ServiceUnavailable"),
            "{f:?}"
        );
        assert!(f.message.contains("may hold an older copy"), "{f:?}");
        assert_eq!(
            backend_bytes("us", "acme", "eudown/o").await,
            b"the US copy",
            "nothing changed"
        );
        // A key-rule write in the US does not look at the EU.
        put(&c, "acme", "insights/eudown.json", b"{}").await;
    })
    .await;
}
