//! Starts a real Garage pair and talks to it with `aws-sdk-s3`.

use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use residency_testkit::{GarageCluster, RegionInfo};

fn client(r: &RegionInfo, secret: &str) -> Client {
    client_with_timeout(r, secret, Duration::from_secs(30))
}

fn client_with_timeout(r: &RegionInfo, secret: &str, timeout: Duration) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(&r.endpoint)
        .region(Region::new(r.region.clone()))
        .credentials_provider(Credentials::new(
            &r.access_key,
            secret,
            None,
            None,
            "residency-testkit",
        ))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

async fn put_get_list(r: &RegionInfo, bucket: &str) {
    let c = client(r, &r.secret_key);
    let key = format!("hello/{}.txt", r.name);
    let body = format!("data kept in {}", r.region);
    c.put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from(body.clone().into_bytes()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: put: {e:?}", r.name));
    let got = c
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: get: {e:?}", r.name));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), body.as_bytes());
    let listed = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix("hello/")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: list: {e:?}", r.name));
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_pair_serves_each_region() {
    let t = Instant::now();
    let cluster = GarageCluster::builder()
        .extra_bucket("residency-extra")
        .start()
        .expect("start garage pair");
    eprintln!("cluster started in {:.2?}", t.elapsed());
    assert_eq!(cluster.eu().region, "eu-west-1");
    assert_eq!(cluster.us().region, "us-east-1");
    assert_ne!(cluster.eu().endpoint, cluster.us().endpoint);

    for r in cluster.regions() {
        put_get_list(r, &r.bucket).await;
        put_get_list(r, "residency-extra").await;

        let c = client(r, &r.secret_key);
        let loc = c
            .get_bucket_location()
            .bucket(&r.bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: location: {e:?}", r.name));
        let constraint = loc.location_constraint().map(|c| c.as_str().to_string());
        assert_eq!(constraint.as_deref(), Some(r.region.as_str()), "{}", r.name);

        // A wrong secret is refused with 403.
        let bad = client(r, &"0".repeat(64));
        let err = bad
            .get_object()
            .bucket(&r.bucket)
            .key(format!("hello/{}.txt", r.name))
            .send()
            .await
            .expect_err("wrong secret must fail");
        let status = err.raw_response().map(|resp| resp.status().as_u16());
        assert_eq!(status, Some(403), "{}: {err:?}", r.name);
        assert!(err.code().is_some(), "{}: {err:?}", r.name);
    }

    // The other region's bucket does not exist here: no silent cross-region writes.
    let eu = cluster.eu();
    let err = client(eu, &eu.secret_key)
        .put_object()
        .bucket(&cluster.us().bucket)
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("us bucket must not exist in eu");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(404), "{err:?}");

    // Env file round trip.
    let env = cluster.env_file_contents();
    assert!(env.contains(&format!(
        "export RESIDENCY_TEST_EU_ENDPOINT='{}'",
        eu.endpoint
    )));
    assert!(env.contains("export RESIDENCY_TEST_US_REGION='us-east-1'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_helpers_stop_pause_resume_restart() {
    let cluster = GarageCluster::start().expect("start garage pair");
    let eu = cluster.eu().clone();
    put_get_list(&eu, &eu.bucket).await;

    // Paused: the request hangs (times out) instead of answering.
    cluster.pause_region("eu").unwrap();
    let c = client(&eu, &eu.secret_key);
    let t = Instant::now();
    let impatient = client_with_timeout(&eu, &eu.secret_key, Duration::from_millis(500));
    let hung = impatient.head_bucket().bucket(&eu.bucket).send().await;
    eprintln!("paused region: request failed after {:.2?}", t.elapsed());
    assert!(hung.is_err(), "paused server answered: {hung:?}");
    cluster.resume_region("eu").unwrap();
    c.head_bucket().bucket(&eu.bucket).send().await.unwrap();

    // Stopped: connection refused; the other region is unaffected.
    cluster.stop_region("eu").unwrap();
    assert!(!cluster.is_running("eu").unwrap());
    assert!(c.head_bucket().bucket(&eu.bucket).send().await.is_err());
    let us = cluster.us();
    client(us, &us.secret_key)
        .head_bucket()
        .bucket(&us.bucket)
        .send()
        .await
        .unwrap();

    // Restarted: same endpoint, same data.
    let t = Instant::now();
    cluster.restart_region("eu").unwrap();
    eprintln!("eu restarted in {:.2?}", t.elapsed());
    assert_eq!(cluster.eu().endpoint, eu.endpoint);
    let got = c
        .get_object()
        .bucket(&eu.bucket)
        .key("hello/eu.txt")
        .send()
        .await
        .expect("object survives a restart");
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), b"data kept in eu-west-1");

    // Graceful stop, then restart again. Garage drains open connections for up to
    // 10 s on SIGTERM: drop the clients (and their keep-alive pools) first.
    drop(c);
    drop(impatient);
    let t = Instant::now();
    cluster.terminate_region("eu").unwrap();
    eprintln!("eu terminated (SIGTERM) in {:.2?}", t.elapsed());
    cluster.restart_region("eu").unwrap();
    let c = client(&eu, &eu.secret_key);
    c.head_bucket().bucket(&eu.bucket).send().await.unwrap();

    assert!(cluster.stop_region("mars").is_err());
}

#[test]
fn start_from_a_plain_test_and_drop_cleans_up() {
    let cluster = GarageCluster::start().expect("start garage pair");
    let dir = cluster.eu().dir.clone();
    assert!(dir.join("garage.log").exists());
    drop(cluster);
    if std::env::var_os("RESIDENCY_TESTKIT_KEEP_DIRS").is_none() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
