//! Form uploads (POST object, `multipart/form-data`): the fields before the
//! file are read, with a cap, and the upload is refused before a byte of the
//! file is read unless the form is signed. (s3s would read the whole file
//! before its access check, so an anonymous client could make the sidecar
//! buffer an upload it then refuses.)

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

/// The fields of a form read so far.
#[derive(Debug)]
pub(crate) enum FormFields {
    /// The fields up to the file's part header, and whether they carry a
    /// signature (`x-amz-signature` or `signature`).
    Read { prefix: Bytes, signed: bool },
    /// The fields before the file are larger than the cap.
    TooLarge,
    /// The body ended or failed before the file part: what was read is handed
    /// on as it is (s3s reports what is wrong with it).
    Incomplete { prefix: Bytes },
}

/// The `boundary` of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// What the part headers in `buf` say so far: `Some((signed, end))` once the
/// file's part header is complete (`end`: where it ends), `None` while it is
/// not.
fn scan(buf: &[u8], boundary: &[u8]) -> Option<(bool, usize)> {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let mut signed = false;
    let mut at = 0;
    while let Some(p) = find(&buf[at..], &delim) {
        let head_start = at + p + delim.len();
        let end = find(&buf[head_start..], b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[head_start..head_start + end]).to_ascii_lowercase();
        let disposition = head
            .lines()
            .find(|l| l.trim_start().starts_with("content-disposition:"))
            .unwrap_or("");
        let name = disposition
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_string())
            .unwrap_or_default();
        if disposition.contains("filename=") || name == "file" {
            return Some((signed, head_start + end + 4));
        }
        if name == "x-amz-signature" || name == "signature" {
            signed = true;
        }
        at = head_start + end + 4;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads `body` up to the end of its file part's header, at most `cap` bytes.
pub(crate) async fn read_fields<B>(body: &mut B, boundary: &str, cap: usize) -> FormFields
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    loop {
        if let Some((signed, end)) = scan(&buf, boundary.as_bytes()) {
            if end > cap {
                return FormFields::TooLarge;
            }
            return FormFields::Read {
                prefix: buf.freeze(),
                signed,
            };
        }
        if buf.len() > cap {
            return FormFields::TooLarge;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(_)) | None => {
                return FormFields::Incomplete {
                    prefix: buf.freeze(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, v) in fields {
            b.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        b.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA",
        );
        b
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/xml"), None);
    }

    #[test]
    fn signed_and_unsigned_forms_are_told_apart_before_the_file() {
        let signed = form(&[("key", "a"), ("X-Amz-Signature", "abc"), ("policy", "p")]);
        assert_eq!(scan(&signed, b"XyZ").map(|s| s.0), Some(true));
        let anonymous = form(&[("key", "a"), ("acl", "public-read")]);
        assert_eq!(scan(&anonymous, b"XyZ"), Some((false, anonymous.len() - 4)));
        // The file's header not complete yet: keep reading.
        assert_eq!(scan(&anonymous[..anonymous.len() - 30], b"XyZ"), None);
    }

    #[tokio::test]
    async fn fields_over_the_cap_are_refused() {
        let big = "v".repeat(4096);
        let b = form(&[("key", "a"), ("x", &big)]);
        let mut body = http_body_util::Full::new(Bytes::from(b));
        assert!(matches!(
            read_fields(&mut body, "XyZ", 1024).await,
            FormFields::TooLarge
        ));
    }
}
