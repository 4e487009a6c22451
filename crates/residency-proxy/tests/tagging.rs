//! Object tagging with `aws-sdk-s3` through the sidecar on the shared Garage
//! pair (which lacks tagging: the sidecar keeps an object's tags as a
//! reserved metadata entry of the object, in the object's region).

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use support::*;

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let mut t = Tagging::builder();
    for (k, v) in pairs {
        t = t.tag_set(Tag::builder().key(*k).value(*v).build().unwrap());
    }
    t.build().unwrap()
}

async fn tags_of(c: &aws_sdk_s3::Client, key: &str) -> Vec<(String, String)> {
    let out = succeeds(
        "get tagging",
        c.get_object_tagging().bucket("acme").key(key).send(),
    )
    .await;
    out.tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_set_read_replaced_and_removed_in_the_objects_region() {
    bounded("tagging", async {
        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let c = env.client(ACME);
        let key = "talk/recordings/tagging-sdk/call.wav";
        succeeds(
            "put with tags",
            c.put_object()
                .bucket("acme")
                .key(key)
                .content_type("audio/wav")
                .metadata("kept", "yes")
                .tagging("case=1&who=sdk%20test")
                .body(ByteStream::from_static(b"recording"))
                .send(),
        )
        .await;
        assert_eq!(regions_holding("acme", key).await, vec!["us"]);
        assert_eq!(
            tags_of(&c, key).await,
            vec![
                ("case".to_string(), "1".to_string()),
                ("who".to_string(), "sdk test".to_string())
            ]
        );
        let got = succeeds("get", c.get_object().bucket("acme").key(key).send()).await;
        assert_eq!(got.tag_count(), Some(2));
        assert_eq!(
            got.metadata().cloned().unwrap_or_default(),
            [("kept".to_string(), "yes".to_string())].into()
        );
        let etag = got.e_tag().map(str::to_string);

        succeeds(
            "put tagging",
            c.put_object_tagging()
                .bucket("acme")
                .key(key)
                .tagging(tagging(&[("stage", "reviewed")]))
                .send(),
        )
        .await;
        assert_eq!(
            tags_of(&c, key).await,
            vec![("stage".to_string(), "reviewed".to_string())]
        );
        let head = succeeds("head", c.head_object().bucket("acme").key(key).send()).await;
        assert_eq!(head.e_tag().map(str::to_string), etag);
        assert_eq!(head.content_type(), Some("audio/wav"));
        assert_eq!(
            head.metadata().cloned().unwrap_or_default(),
            [("kept".to_string(), "yes".to_string())].into()
        );
        assert_eq!(backend_bytes("us", "acme", key).await, b"recording");
        assert_eq!(regions_holding("acme", key).await, vec!["us"]);

        let bad = c
            .put_object_tagging()
            .bucket("acme")
            .key(key)
            .tagging(tagging(&[("a", "1"), ("a", "2")]))
            .send()
            .await;
        expect_s3_error("duplicate keys", bad, 400, "InvalidTag");
        assert_eq!(tags_of(&c, key).await.len(), 1);

        succeeds(
            "delete tagging",
            c.delete_object_tagging().bucket("acme").key(key).send(),
        )
        .await;
        assert!(tags_of(&c, key).await.is_empty());
        let got = succeeds("get", c.get_object().bucket("acme").key(key).send()).await;
        assert_eq!(got.tag_count(), None);
        succeeds("delete", c.delete_object().bucket("acme").key(key).send()).await;
    })
    .await;
}
