//! Encryption headers on the SDK path: what a request asks for
//! ([`crate::Sse`]) onto the SDK's builders, and what the service answers
//! into a [`crate::SseReport`].

/// Sets the destination encryption of a put, copy or multipart create:
/// SSE-S3 / SSE-KMS (with the KMS key id and context) and the SSE-C key.
macro_rules! with_sse {
    ($b:expr, $sse:expr) => {{
        let sse: &$crate::Sse = $sse;
        let (server_side, kms_key_id, kms_context) = match &sse.server_side {
            None => (None, None, None),
            Some($crate::ServerSide::S3) => (
                Some(aws_sdk_s3::types::ServerSideEncryption::Aes256),
                None,
                None,
            ),
            Some($crate::ServerSide::Kms { key_id, context }) => (
                Some(aws_sdk_s3::types::ServerSideEncryption::AwsKms),
                key_id.clone(),
                context.clone(),
            ),
        };
        let b = $b
            .set_server_side_encryption(server_side)
            .set_ssekms_key_id(kms_key_id)
            .set_ssekms_encryption_context(kms_context);
        with_customer_key!(b, sse)
    }};
}
pub(super) use with_sse;

/// Sets the SSE-C key of the object read or written (GET, HEAD, parts).
macro_rules! with_customer_key {
    ($b:expr, $sse:expr) => {{
        let key = $sse.customer.as_ref();
        $b.set_sse_customer_algorithm(key.map(|k| k.algorithm().to_owned()))
            .set_sse_customer_key(key.map(|k| k.key_base64().to_owned()))
            .set_sse_customer_key_md5(key.map(|k| k.key_md5().to_owned()))
    }};
}
pub(super) use with_customer_key;

/// Sets the SSE-C key of a copy's source.
macro_rules! with_copy_source_key {
    ($b:expr, $sse:expr) => {{
        let key = $sse.copy_source_customer.as_ref();
        $b.set_copy_source_sse_customer_algorithm(key.map(|k| k.algorithm().to_owned()))
            .set_copy_source_sse_customer_key(key.map(|k| k.key_base64().to_owned()))
            .set_copy_source_sse_customer_key_md5(key.map(|k| k.key_md5().to_owned()))
    }};
}
pub(super) use with_copy_source_key;

/// The encryption an SDK output reports.
macro_rules! sse_of_output {
    ($o:expr) => {
        $crate::SseReport {
            server_side: $o.server_side_encryption().map(|s| s.as_str().to_owned()),
            kms_key_id: $o.ssekms_key_id().map(str::to_owned),
            customer_algorithm: $o.sse_customer_algorithm().map(str::to_owned),
            customer_key_md5: $o.sse_customer_key_md5().map(str::to_owned),
        }
    };
}
pub(super) use sse_of_output;

#[cfg(test)]
mod tests {
    //! What a KMS-capable S3 region receives: no local server honours
    //! SSE-KMS (Garage ignores it), so a listener records the requests the
    //! S3 backend sends and answers as S3 would.

    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::{
        execute, Body, CustomerKey, Operation, Outcome, PutMeta, S3Backend, S3BackendConfig,
        ServerSide, Sse, SseSupport, StoreError,
    };

    type Seen = Arc<Mutex<Vec<String>>>;

    /// A one-request-per-connection HTTP server: records each request's
    /// head, answers 200 with the `x-amz-server-side-encryption*` headers of
    /// the request echoed (as S3 does).
    async fn recorder() -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let echo: String = head
                        .lines()
                        .filter(|l| l.starts_with("x-amz-server-side-encryption"))
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let is_copy = head.contains("x-amz-copy-source:");
                    let body = if is_copy {
                        "<CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>"
                    } else {
                        ""
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\netag: \"e\"\r\n{echo}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    s.lock().unwrap().push(head);
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        (url, seen)
    }

    fn backend(url: &str, sse: SseSupport) -> S3Backend {
        let config = S3BackendConfig::builder("bucket", "eu-west-1")
            .endpoint(url)
            .credentials("a", "s")
            .max_attempts(1)
            .sse(sse)
            .build()
            .unwrap();
        S3Backend::new(config).unwrap()
    }

    fn kms(key_id: Option<&str>) -> Sse {
        Sse {
            server_side: Some(ServerSide::Kms {
                key_id: key_id.map(str::to_owned),
                context: Some("e30=".into()),
            }),
            ..Sse::default()
        }
    }

    fn put(sse: Sse) -> Operation {
        Operation::Put {
            key: "t/k".into(),
            body: Body::from("x"),
            meta: Box::new(PutMeta {
                sse,
                ..PutMeta::default()
            }),
        }
    }

    fn last(seen: &Seen) -> String {
        seen.lock().unwrap().last().cloned().unwrap_or_default()
    }

    const KEY: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";

    #[tokio::test]
    async fn a_kms_region_receives_its_key_and_reports_it() {
        let (url, seen) = recorder().await;
        let eu = backend(
            &url,
            SseSupport {
                customer: true,
                s3: true,
                kms_key_ids: vec!["eu-key-1".into(), "eu-key-2".into()],
            },
        );
        // aws:kms without a key id: the region's first key.
        let Outcome::Put(out) = execute(&eu, put(kms(None))).await.unwrap() else {
            panic!("not a put")
        };
        let head = last(&seen);
        assert!(head.starts_with("put /bucket/t/k"), "{head}");
        assert!(
            head.contains("x-amz-server-side-encryption: aws:kms\r\n"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-server-side-encryption-aws-kms-key-id: eu-key-1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-server-side-encryption-context: e30=\r\n"),
            "{head}"
        );
        assert_eq!(out.sse.server_side.as_deref(), Some("aws:kms"));
        assert_eq!(out.sse.kms_key_id.as_deref(), Some("eu-key-1"));
        // An explicit key of the region is sent as given.
        execute(&eu, put(kms(Some("eu-key-2")))).await.unwrap();
        assert!(last(&seen).contains("kms-key-id: eu-key-2\r\n"));
        // SSE-S3.
        let s3 = Sse {
            server_side: Some(ServerSide::S3),
            ..Sse::default()
        };
        execute(&eu, put(s3)).await.unwrap();
        assert!(last(&seen).contains("x-amz-server-side-encryption: aes256\r\n"));
        // Another region's key: refused before anything is sent.
        let before = seen.lock().unwrap().len();
        let e = execute(&eu, put(kms(Some("us-key-1")))).await.unwrap_err();
        assert!(matches!(e, StoreError::EncryptionDenied { .. }), "{e:?}");
        assert_eq!(seen.lock().unwrap().len(), before);
    }

    #[tokio::test]
    async fn sse_c_keys_go_to_the_region_with_their_md5_and_copies_carry_both() {
        let (url, seen) = recorder().await;
        let eu = backend(
            &url,
            SseSupport {
                customer: true,
                ..SseSupport::default()
            },
        );
        let key = CustomerKey::parse("AES256", KEY, None, "x").unwrap();
        let c = Sse {
            customer: Some(key.clone()),
            ..Sse::default()
        };
        execute(
            &eu,
            Operation::Head {
                key: "t/k".into(),
                sse: Some(Box::new(c.clone())),
            },
        )
        .await
        .unwrap();
        let head = last(&seen);
        assert!(head.starts_with("head /bucket/t/k"), "{head}");
        assert!(head.contains("x-amz-server-side-encryption-customer-algorithm: aes256\r\n"));
        assert!(head.contains(&format!(
            "x-amz-server-side-encryption-customer-key: {}\r\n",
            KEY.to_lowercase()
        )));
        assert!(head.contains(&format!(
            "x-amz-server-side-encryption-customer-key-md5: {}\r\n",
            key.key_md5().to_lowercase()
        )));
        let copy = Operation::Copy {
            src_key: "t/a".into(),
            dst_key: "t/b".into(),
            meta: None,
            sse: Some(Box::new(Sse {
                copy_source_customer: Some(key),
                ..kms(None)
            })),
        };
        // This region names no KMS key: SSE-KMS is refused, nothing sent.
        let before = seen.lock().unwrap().len();
        let e = execute(&eu, copy).await.unwrap_err();
        assert!(
            matches!(e, StoreError::EncryptionUnsupported { .. }),
            "{e:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), before);
        let copy = Operation::Copy {
            src_key: "t/a".into(),
            dst_key: "t/b".into(),
            meta: None,
            sse: Some(Box::new(Sse {
                copy_source_customer: c.customer.clone(),
                ..c
            })),
        };
        execute(&eu, copy).await.unwrap();
        let head = last(&seen);
        assert!(
            head.contains("x-amz-copy-source-server-side-encryption-customer-key: "),
            "{head}"
        );
        assert!(
            head.contains("x-amz-server-side-encryption-customer-key: "),
            "{head}"
        );
    }
}
