//! Reading the service's answers on the lean path: errors, stored headers.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use crate::error::StoreError;
use crate::object::{Checksums, ObjectInfo, StoredHeaders};

pub(super) fn connect_error(bucket: &str, e: hyper_util::client::legacy::Error) -> StoreError {
    // A failure of the caller's own body stream (the client went away) is
    // not the service's.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(StoreError::IncompleteBody { expected, actual }) =
            s.downcast_ref::<StoreError>()
        {
            return StoreError::IncompleteBody {
                expected: *expected,
                actual: *actual,
            };
        }
        source = s.source();
    }
    let what = if e.is_connect() {
        "could not reach the service"
    } else {
        "the connection failed"
    };
    StoreError::Unavailable {
        message: format!("s3 bucket {bucket}: {what}: {}", error_chain(&e)),
        source: Some(Box::new(e)),
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        let _ = write!(s, ": {x}");
        source = x.source();
    }
    s
}

fn slot_of<'a>(
    current: Option<&'static str>,
    code: &'a mut Option<String>,
    message: &'a mut Option<String>,
) -> Option<&'a mut String> {
    match current? {
        "code" => Some(code.get_or_insert_with(String::new)),
        _ => Some(message.get_or_insert_with(String::new)),
    }
}

/// `(Code, Message)` of an S3 error document.
pub(super) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut code, mut message) = (None, None);
    let mut current: Option<&'static str> = None;
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                current = match (depth, e.name().as_ref()) {
                    (2, b"Code") => Some("code"),
                    (2, b"Message") => Some("message"),
                    _ => None,
                };
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            Ok(Event::Text(t)) => {
                if let Some(slot) = slot_of(current, &mut code, &mut message) {
                    slot.push_str(&t.decode().unwrap_or_default());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(slot) = slot_of(current, &mut code, &mut message) {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        slot.push(c);
                    } else if let Some(s) = r
                        .decode()
                        .ok()
                        .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                    {
                        slot.push_str(s);
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    (
        code.filter(|c| !c.is_empty()),
        message.filter(|m| !m.is_empty()),
    )
}

pub(super) fn header(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub(super) fn info_of(h: &http::HeaderMap, key: &str, size: u64) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size,
        etag: header(h, "etag").unwrap_or_default(),
        last_modified: header(h, "last-modified")
            .and_then(|v| httpdate::parse_http_date(&v).ok())
            .unwrap_or(UNIX_EPOCH),
        headers: StoredHeaders::from_http(h),
        checksums: Checksums::from_http(h),
        version_id: header(h, "x-amz-version-id"),
        sse: crate::SseReport::from_http(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The key &amp; more</Message><Resource>/b/k</Resource></Error>"#;
        assert_eq!(
            parse_error_body(body),
            (Some("NoSuchKey".into()), Some("The key & more".into()))
        );
        assert_eq!(parse_error_body(b""), (None, None));
        assert_eq!(parse_error_body(b"not xml <"), (None, None));
    }
}
