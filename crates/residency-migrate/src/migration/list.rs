//! Listing a region page by page, and the retry of one store call.

use super::*;

pub(super) async fn with_retry<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Err(e) if e.is_unavailable() && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            r => return r,
        }
    }
}

/// Lists one region's objects under a prefix, page by page, from a key.
pub(super) struct Lister {
    backend: Arc<dyn Backend>,
    region: String,
    prefix: String,
    start_after: Option<String>,
    token: Option<String>,
    pub(super) done: bool,
}

impl Lister {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        region: &str,
        prefix: &str,
        start_after: Option<String>,
    ) -> Self {
        Lister {
            backend,
            region: region.to_owned(),
            prefix: prefix.to_owned(),
            start_after,
            token: None,
            done: false,
        }
    }

    pub(super) async fn next_page(&mut self) -> Result<Vec<ObjectSummary>, MigrateError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut req = ListRequest::new(self.prefix.clone()).max_keys(1000);
        if let Some(t) = &self.token {
            req = req.continuation_token(Some(t.clone()));
        } else if let Some(s) = &self.start_after {
            req = req.start_after(s.clone());
        }
        let page = with_retry(|| self.backend.list_objects(req.clone()))
            .await
            .map_err(|e| MigrateError::store(&self.region, e))?;
        self.token = page.next_continuation_token;
        if self.token.is_none() {
            self.done = true;
        }
        Ok(page.objects)
    }
}

pub(super) fn record(obj: &ObjectSummary, outcome: Outcome) -> Record {
    Record {
        key: obj.key.clone(),
        size: obj.size,
        etag: obj.etag.clone(),
        outcome,
        copied: false,
        earlier_run: false,
        sha256: None,
        dest_etag: None,
        category: None,
        detail: None,
    }
}
