//! The copy race of docs/migration.md ("Concurrent tenant traffic"): a
//! tenant write lands in the destination region between the migrator's HEAD
//! of the destination (nothing there) and its PUT of the older bytes. The
//! migrator's copy is create-only, so the destination keeps the tenant's
//! write and the object counts as superseded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use residency_migrate::{MigrationOptions, Migrator, Phase, ProgressMode};
use residency_policy::Policy;
use residency_store::{
    Backend, BackendDescription, Body, CompletedPart, GetOutput, ListPage, ListRequest,
    MemoryBackend, ObjectInfo, PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput,
    StoreError, UploadInfo,
};

const RACED: &str = "acme/tickets/raced.json";
const TENANT_WRITE: &[u8] = b"{\"written\": \"by the tenant during the copy\"}";

/// The destination region, where the tenant's write of [`RACED`] lands just
/// before the migrator's own PUT of that key reaches the store.
struct TenantWritesFirst {
    inner: Arc<MemoryBackend>,
    raced: AtomicBool,
}

#[async_trait]
impl Backend for TenantWritesFirst {
    fn describe(&self) -> BackendDescription {
        self.inner.describe()
    }
    async fn put_object(
        &self,
        key: &str,
        body: Body,
        meta: PutMeta,
    ) -> Result<PutOutput, StoreError> {
        if key == RACED && !self.raced.swap(true, Ordering::SeqCst) {
            self.inner
                .put_object(
                    key,
                    Body::from(bytes::Bytes::from_static(TENANT_WRITE)),
                    PutMeta::default(),
                )
                .await?;
        }
        self.inner.put_object(key, body, meta).await
    }
    async fn get_object(
        &self,
        key: &str,
        range: Option<residency_store::ByteRange>,
    ) -> Result<GetOutput, StoreError> {
        self.inner.get_object(key, range).await
    }
    async fn head_object(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.inner.head_object(key).await
    }
    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete_object(key).await
    }
    async fn list_objects(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        self.inner.list_objects(request).await
    }
    async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        meta: Option<PutMeta>,
    ) -> Result<PutOutput, StoreError> {
        self.inner.copy_object(src_key, dst_key, meta).await
    }
    async fn create_multipart(&self, key: &str, meta: PutMeta) -> Result<String, StoreError> {
        self.inner.create_multipart(key, meta).await
    }
    async fn upload_part(&self, part: PartUpload<'_>) -> Result<PartInfo, StoreError> {
        self.inner.upload_part(part).await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<PutOutput, StoreError> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_parts(&self, query: PartsQuery<'_>) -> Result<PartsPage, StoreError> {
        self.inner.list_parts(query).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>, StoreError> {
        self.inner.list_multipart_uploads(prefix).await
    }
    async fn location(&self) -> Result<Option<String>, StoreError> {
        self.inner.location().await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}

async fn bytes(b: &dyn Backend, key: &str) -> Vec<u8> {
    let got = b.get_object(key, None).await.expect("get");
    got.body.collect().await.expect("read").to_vec()
}

#[tokio::test]
async fn a_tenant_write_during_the_copy_is_not_overwritten() {
    let policy = Policy::from_toml(
        r#"
        version = "1"
        default_region = "us"
        [regions.eu]
        jurisdiction = "EEA"
        [regions.us]
        jurisdiction = "US"
        [categories.ticket_data]
        allowed = ["eu", "us"]
        [[key_rules]]
        pattern = "tickets/**"
        category = "ticket_data"
        "#,
        "policy.toml",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, "[[tenants]]\nid = \"acme\"\n").unwrap();

    let eu_store = Arc::new(MemoryBackend::new("eu"));
    let eu: Arc<dyn Backend> = Arc::new(TenantWritesFirst {
        inner: eu_store.clone(),
        raced: AtomicBool::new(false),
    });
    let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
    us.put_object(RACED, Body::from("{\"old\": true}"), PutMeta::default())
        .await
        .unwrap();
    us.put_object(
        "acme/tickets/plain.json",
        Body::from("{\"plain\": true}"),
        PutMeta::default(),
    )
    .await
    .unwrap();

    let mut opts = MigrationOptions::new("acme", "eu");
    opts.assurance = Some(Duration::ZERO);
    opts.progress = ProgressMode::Quiet;
    let m = Migrator::new(
        policy,
        &tenants,
        vec![("eu".into(), eu.clone()), ("us".into(), us.clone())],
        opts,
    );
    let report = m.run().await.unwrap();
    assert_eq!(report.phase, Some(Phase::Finished), "{}", report.to_text());
    assert_eq!(
        (report.totals.verified, report.totals.superseded),
        (1, 1),
        "{}",
        report.to_text()
    );
    // The tenant's write is what the destination holds; the older bytes are
    // gone from the source, as for any superseded object.
    assert_eq!(bytes(&*eu_store, RACED).await, TENANT_WRITE);
    assert_eq!(
        bytes(&*eu_store, "acme/tickets/plain.json").await,
        b"{\"plain\": true}"
    );
    assert!(us.head_object(RACED).await.is_err());
}
