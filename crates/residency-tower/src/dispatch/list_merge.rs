//! Listings across regions: every region the tenant may have data in is
//! listed and the pages merged in key order. Continuation tokens are ours
//! (the last key or common prefix returned), so they work across regions.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use residency_policy::{RegionId, RegionOrder};
use residency_store::{ListPage, ListRequest, ObjectSummary, Operation, Outcome};

use super::{strip_in_place, unexpected, RegionalDispatch, StorageResponse};
use crate::error::RoutingError;
use crate::one_copy;
use crate::request::Route;

impl RegionalDispatch {
    /// Lists every region of `order` and merges them in key order.
    pub(super) async fn list(
        &self,
        route: &Route,
        order: &RegionOrder,
        request: ListRequest,
        prefix: &str,
    ) -> Result<StorageResponse, RoutingError> {
        let max_keys = request.max_keys.clamp(1, 1000);
        let mut start_after = request.start_after.clone().unwrap_or_default();
        if let Some(t) = &request.continuation_token {
            let k = decode_token(t)?;
            if k > start_after {
                start_after = k;
            }
        }
        // A key found in two regions (a move that did not finish) is listed
        // once, as the copy GET serves.
        let mut entries: BTreeMap<String, Option<(RegionId, ObjectSummary)>> = BTreeMap::new();
        let mut more = false;
        let mut single_region = None;
        for r in order.iter() {
            let rb = self.region(route, r)?;
            let mut req =
                ListRequest::new(format!("{prefix}{}", request.prefix)).max_keys(max_keys);
            if let Some(d) = &request.delimiter {
                req = req.delimiter(d.clone());
            }
            if !start_after.is_empty() {
                req = req.start_after(format!("{prefix}{start_after}"));
            }
            let page: ListPage =
                match Self::call(route, rb, Operation::List { request: req }).await? {
                    Outcome::List(page) => page,
                    other => return Err(unexpected(rb, &other)),
                };
            more |= page.next_continuation_token.is_some();
            for mut o in page.objects {
                strip_in_place(&mut o.key, prefix);
                match entries.entry(o.key.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(Some((r, o)));
                    }
                    Entry::Occupied(mut e) => {
                        let kept = e.get().as_ref().map(|(region, _)| *region);
                        let keep_new = kept.is_some_and(|k| {
                            one_copy::preferred(route.rules.policy(), &route.tenant, e.key(), k, r)
                                == r
                        });
                        if keep_new {
                            e.insert(Some((r, o)));
                        }
                    }
                }
            }
            for mut p in page.common_prefixes {
                strip_in_place(&mut p, prefix);
                entries.entry(p).or_insert(None);
            }
            single_region = if order.len() == 1 {
                Some(rb.name.clone())
            } else {
                None
            };
        }
        if entries.len() > max_keys {
            more = true;
        }
        let mut page = ListPage::default();
        let mut last = None;
        for (k, v) in entries.into_iter().take(max_keys) {
            match v {
                Some((_, o)) => {
                    last = Some(k);
                    page.objects.push(o);
                }
                None => {
                    last = Some(past_prefix(&k));
                    page.common_prefixes.push(k);
                }
            }
        }
        if more {
            page.next_continuation_token = last.map(|l| encode_token(&l));
        }
        Ok(StorageResponse {
            outcome: Outcome::List(page),
            region: single_region,
        })
    }
}

/// The lexicographically greatest key that starts with `prefix`, for resuming
/// a delimited listing after a common prefix.
fn past_prefix(prefix: &str) -> String {
    let mut s = prefix.to_string();
    s.push(char::MAX);
    s
}

fn encode_token(start_after: &str) -> String {
    URL_SAFE_NO_PAD.encode(start_after.as_bytes())
}

/// The key a continuation token resumes after.
///
/// # Errors
/// [`RoutingError::InvalidArgument`] for a token this layer did not issue:
/// the client's error, not a region's.
fn decode_token(token: &str) -> Result<String, RoutingError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| RoutingError::InvalidArgument {
            message: "the continuation token is invalid".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_a_bad_one_is_the_clients_error() {
        assert_eq!(decode_token(&encode_token("a/b")).unwrap(), "a/b");
        let e = decode_token("not base64!").unwrap_err();
        assert!(matches!(e, RoutingError::InvalidArgument { .. }));
        assert_eq!((e.http_status(), e.s3_code()), (400, "InvalidArgument"));
    }
}
