//! `residency-testkit up --env-file PATH`: starts the `eu`/`us` Garage pair for the
//! script-driven (Python, CLI) tests, writes their connection info as shell
//! `export` lines to PATH, prints `ready`, and runs until SIGTERM/SIGINT/SIGHUP
//! (or, with `--exit-on-stdin-eof`, until stdin closes), then stops everything.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use nix::sys::signal::{SigSet, Signal};
use residency_testkit::GarageCluster;

const USAGE: &str =
    "usage: residency-testkit up --env-file PATH [--extra-bucket NAME]... [--postgres] [--exit-on-stdin-eof]

Starts two Garage S3 servers on 127.0.0.1 (eu: eu-west-1/residency-eu,
us: us-east-1/residency-us), writes RESIDENCY_TEST_{EU,US}_{ENDPOINT,REGION,BUCKET,
ACCESS_KEY,SECRET_KEY} as `export` lines to PATH, prints `ready` and runs until
SIGTERM/SIGINT/SIGHUP (or stdin EOF with --exit-on-stdin-eof; not the default,
since a backgrounded job in a script reads /dev/null). The env file is removed on exit.
With --postgres it also starts a throw-away PostgreSQL cluster on 127.0.0.1 and
writes RESIDENCY_TEST_PG_URL (database `residency`; binaries from RESIDENCY_PG_BIN
or PATH).
The garage binary comes from GARAGE_BIN, PATH or $RESIDENCY_TOOLS/bin.";

struct Args {
    env_file: PathBuf,
    extra_buckets: Vec<String>,
    postgres: bool,
    exit_on_stdin_eof: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("up") => {}
        Some("-h" | "--help" | "help") => return Err(String::new()),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".into()),
    }
    let mut env_file = None;
    let mut extra_buckets = Vec::new();
    let mut exit_on_stdin_eof = false;
    let mut postgres = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env-file" => env_file = Some(args.next().ok_or("--env-file needs a value")?),
            "--extra-bucket" => {
                extra_buckets.push(args.next().ok_or("--extra-bucket needs a value")?)
            }
            "--exit-on-stdin-eof" => exit_on_stdin_eof = true,
            "--postgres" => postgres = true,
            "-h" | "--help" => return Err(String::new()),
            other => {
                if let Some(v) = other.strip_prefix("--env-file=") {
                    env_file = Some(v.to_string());
                } else if let Some(v) = other.strip_prefix("--extra-bucket=") {
                    extra_buckets.push(v.to_string());
                } else {
                    return Err(format!("unknown argument {other:?}"));
                }
            }
        }
    }
    Ok(Args {
        env_file: PathBuf::from(env_file.ok_or("--env-file is required")?),
        extra_buckets,
        postgres,
        exit_on_stdin_eof,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("residency-testkit: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // Block the stop signals in every thread (threads inherit the mask) and take
    // them synchronously in one waiting thread. Children get a clean mask from std.
    let mut stop_signals = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop_signals.add(sig);
    }
    if let Err(e) = stop_signals.thread_block() {
        eprintln!("residency-testkit: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }

    let cluster = match GarageCluster::builder()
        .extra_buckets(args.extra_buckets)
        .start()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("residency-testkit: cannot start garage: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = cluster.write_env_file(&args.env_file) {
        eprintln!(
            "residency-testkit: cannot write {}: {e}",
            args.env_file.display()
        );
        return ExitCode::FAILURE;
    }
    let pg = if args.postgres {
        let started = residency_testkit::PostgresCluster::start()
            .and_then(|pg| pg.create_database("residency").map(|()| pg));
        match started {
            Ok(pg) => {
                let line = format!("export RESIDENCY_TEST_PG_URL={}\n", pg.url("residency"));
                let appended = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&args.env_file)
                    .and_then(|mut f| f.write_all(line.as_bytes()));
                if let Err(e) = appended {
                    eprintln!(
                        "residency-testkit: cannot write {}: {e}",
                        args.env_file.display()
                    );
                    return ExitCode::FAILURE;
                }
                eprintln!(
                    "residency-testkit: postgresql {} log={}",
                    pg.url("residency"),
                    pg.log_path().display()
                );
                Some(pg)
            }
            Err(e) => {
                eprintln!("residency-testkit: cannot start postgresql: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    for r in cluster.regions() {
        eprintln!(
            "residency-testkit: {} {} region={} bucket={} log={}",
            r.name,
            r.endpoint,
            r.region,
            r.bucket,
            r.log_path.display()
        );
    }
    eprintln!(
        "residency-testkit: started in {:.2?}; env in {}",
        cluster.startup_time(),
        args.env_file.display()
    );
    println!("ready");
    let _ = std::io::stdout().flush();

    let (tx, rx) = mpsc::channel::<String>();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let why = match stop_signals.wait() {
                Ok(sig) => format!("received {sig}"),
                Err(e) => format!("sigwait failed: {e}"),
            };
            let _ = tx.send(why);
        });
    }
    if args.exit_on_stdin_eof {
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send("stdin closed".into());
        });
    }
    let why = rx.recv().unwrap_or_else(|_| "no more stop sources".into());
    eprintln!("residency-testkit: {why}; stopping garage");
    let _ = std::fs::remove_file(&args.env_file);
    drop(pg);
    drop(cluster);
    ExitCode::SUCCESS
}
