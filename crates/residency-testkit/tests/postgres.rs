//! The throw-away PostgreSQL cluster serves real clients, survives a stop and
//! a restart on its port, and leaves nothing behind.

use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use residency_testkit::PostgresCluster;
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

#[tokio::test]
async fn a_cluster_serves_stops_restarts_and_cleans_up() {
    let pg = PostgresCluster::start().expect("start PostgreSQL");
    pg.create_database("directory").unwrap();
    let url = pg.url("directory");
    let client = connect(&url).await.expect("connect");
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    client
        .batch_execute(
            "CREATE TABLE tenants (id text PRIMARY KEY); INSERT INTO tenants VALUES ('acme')",
        )
        .await
        .unwrap();
    assert!(
        pg.create_database("bad name; DROP").is_err(),
        "names are checked before createdb runs"
    );

    // An outage: the port stops answering, the data stays.
    pg.stop();
    assert!(client.query_one("SELECT 1", &[]).await.is_err());
    assert!(connect(&url).await.is_err());
    pg.restart().expect("restart");
    let client = connect(&url).await.expect("connect after the restart");
    let row = client
        .query_one("SELECT id FROM tenants", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "acme");

    let port = pg.port();
    let dir = pg.log_path().parent().unwrap().to_path_buf();
    drop(client);
    drop(pg);
    assert!(!dir.exists(), "the cluster's directory is removed");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the server is gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn listen_and_notify_reach_a_dedicated_connection() {
    // What the directory's cache invalidation will rely on.
    use futures_util::StreamExt;
    let pg = PostgresCluster::start().expect("start PostgreSQL");
    let url = pg.url("postgres");
    let (listener, mut conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener.batch_execute("LISTEN tenants").await.unwrap();
    let writer = connect(&url).await.unwrap();
    writer
        .batch_execute("NOTIFY tenants, 'acme'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    assert_eq!(got, ("tenants".to_string(), "acme".to_string()));
}
