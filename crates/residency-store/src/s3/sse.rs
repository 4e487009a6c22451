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
