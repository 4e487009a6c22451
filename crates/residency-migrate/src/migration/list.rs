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

/// Lists one region's objects under a prefix, page by page, from a key
/// (up to an end key, for a key range).
pub(super) struct Lister {
    backend: Arc<dyn Backend>,
    region: String,
    prefix: String,
    start_after: Option<String>,
    /// The last key to list (inclusive).
    end_key: Option<String>,
    page_size: usize,
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
            end_key: None,
            page_size: 1000,
            token: None,
            done: false,
        }
    }

    /// Stops after `end_key` (inclusive), with pages of `page_size` keys.
    pub(super) fn range(mut self, end_key: Option<String>, page_size: usize) -> Self {
        self.end_key = end_key;
        self.page_size = page_size.clamp(1, 1000);
        self
    }

    pub(super) async fn next_page(&mut self) -> Result<Vec<ObjectSummary>, MigrateError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut req = ListRequest::new(self.prefix.clone()).max_keys(self.page_size);
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
        let mut objects = page.objects;
        if let Some(end) = &self.end_key {
            let past = objects.partition_point(|o| o.key <= *end);
            if past < objects.len() || objects.last().is_some_and(|o| o.key == *end) {
                objects.truncate(past);
                self.done = true;
            }
        }
        Ok(objects)
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
