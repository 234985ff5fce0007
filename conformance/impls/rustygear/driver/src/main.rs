// Driver for the rustygear crate's Client (crates.io rustygear), as its examples/client.rs and
// examples/worker.rs use it. The command-line contract: conformance/drivers/README.md.
//
// rustygear 0.15 submits only SUBMIT_JOB and SUBMIT_JOB_BG (Client::submit*, the priority
// kinds are not public: direct_submit is private), and cannot ask for OPTION_REQ exceptions.
// Its worker runs do_one_job in a loop (what Client::work does) until --count jobs have been
// answered; the callback cannot see the WORK_COMPLETE the library sends after it returns, so
// the driver ends with an ECHO round trip on the same connection before exiting.
mod args;

use args::Args;
use rustygear::client::{Client, WorkUpdate, WorkerJob};
use rustygear::constants::WORK_DATA;
use rustygear::util::new_req;
use std::io::{self, Write};
use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

fn main() {
    let args = Args::parse("rustygear_driver");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let code = runtime.block_on(async {
        let server = format!("{}:{}", args.get("host", ""), args.get("port", ""));
        if args.role == "client" {
            client(&args, &server).await
        } else {
            worker(&args, &server).await
        }
    });
    let _ = io::stdout().flush();
    exit(code);
}

async fn client(args: &Args, server: &str) -> i32 {
    let priority = args.get("priority", "normal");
    if priority != "normal" {
        eprintln!("unsupported: --priority {priority} (rustygear submits SUBMIT_JOB and SUBMIT_JOB_BG only)");
        return 5;
    }
    if args.flag("exceptions") {
        eprintln!("note: rustygear cannot ask for the exceptions option: WORK_EXCEPTION arrives as WORK_FAIL");
    }
    let timeout = args.seconds("timeout", 10.0);
    match tokio::time::timeout(timeout, run_client(args, server)).await {
        Ok(code) => code,
        Err(_) => {
            eprintln!("timed out after {}s", timeout.as_secs_f64());
            6
        }
    }
}

async fn run_client(args: &Args, server: &str) -> i32 {
    let mut client = match Client::new().add_server(server).connect().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("connection error: {e}");
            return 2;
        }
    };
    let function = args.get("function", "");
    let data = args.get("data", "").into_bytes();
    let unique = args.values.get("unique").map(|u| u.clone().into_bytes());
    let background = args.flag("background");
    let submitted = match (background, &unique) {
        (false, None) => client.submit(&function, &data).await,
        (false, Some(u)) => client.submit_unique(&function, u, &data).await,
        (true, None) => client.submit_background(&function, &data).await,
        (true, Some(u)) => client.submit_background_unique(&function, u, &data).await,
    };
    let mut job = match submitted {
        Ok(job) => job,
        Err(e) => {
            eprintln!("connection error: {e}");
            return 2;
        }
    };
    if background {
        println!("{}", String::from_utf8_lossy(job.handle().handle()));
        return 0;
    }
    loop {
        match job.response().await {
            Ok(WorkUpdate::Complete { payload, .. }) => {
                let _ = io::stdout().write_all(&payload);
                return 0;
            }
            Ok(WorkUpdate::Data { payload, .. }) => eprintln!("data: {}", String::from_utf8_lossy(&payload)),
            Ok(WorkUpdate::Warning { payload, .. }) => eprintln!("warning: {}", String::from_utf8_lossy(&payload)),
            Ok(WorkUpdate::Status { numerator, denominator, .. }) => eprintln!("status: {numerator}/{denominator}"),
            Ok(WorkUpdate::Exception { payload, .. }) => {
                eprintln!("exception: {}", String::from_utf8_lossy(&payload));
                return 4;
            }
            Ok(WorkUpdate::Fail(_)) => return 3,
            Err(e) => {
                eprintln!("connection error: {e}");
                return 2;
            }
        }
    }
}

async fn worker(args: &Args, server: &str) -> i32 {
    let count: Option<usize> = args.values.get("count").map(|c| match c.parse() {
        Ok(n) => n,
        Err(_) => args::usage("rustygear_driver", &format!("--count needs a number, not {c:?}")),
    });
    let timeout = args.seconds("timeout", 60.0);
    match tokio::time::timeout(timeout, run_worker(args, server, count)).await {
        Ok(code) => code,
        Err(_) => {
            eprintln!("timed out after {}s", timeout.as_secs_f64());
            6
        }
    }
}

/// The contract's job: "fail" fails, "status" streams then says "done", else the data reversed.
fn answer(job: &mut WorkerJob) -> Result<Vec<u8>, io::Error> {
    let data = job.payload().to_vec();
    if data == b"fail" {
        return Err(io::Error::new(io::ErrorKind::Other, "fail"));
    }
    if data == b"status" {
        // As WorkerJob::work_status's documentation shows: a runtime of the callback's own.
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        rt.block_on(job.work_status(1, 2))?;
        let mut payload = job.handle().to_vec();
        payload.push(0);
        payload.extend_from_slice(b"partial");
        rt.block_on(job.send_packet(new_req(WORK_DATA, payload.into())))?;
        return Ok(b"done".to_vec());
    }
    Ok(data.into_iter().rev().collect())
}

async fn run_worker(args: &Args, server: &str, count: Option<usize>) -> i32 {
    let function = args.get("function", "");
    let answered = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let seen = answered.clone();
    let connected = match Client::new().add_server(server).connect().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("connection error: {e}");
            return 2;
        }
    };
    let mut worker = match connected
        .can_do(&function, move |job| {
            let result = answer(job);
            let _ = done_tx.send(seen.fetch_add(1, Ordering::SeqCst) + 1);
            result
        })
        .await
    {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("connection error: {e}");
            return 2;
        }
    };
    let Some(count) = count else {
        return match worker.work().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("connection error: {e}");
                2
            }
        };
    };
    loop {
        tokio::select! {
            grabbed = worker.do_one_job() => {
                if let Err(e) = grabbed {
                    eprintln!("connection error: {e}");
                    return 2;
                }
            }
            Some(n) = done_rx.recv() => {
                if n >= count {
                    break;
                }
            }
        }
    }
    // The last WORK_COMPLETE goes out after the callback returns: an ECHO on the same
    // connection comes back only after it.
    if let Err(e) = worker.echo(b"gearspec").await {
        eprintln!("connection error: {e}");
        return 2;
    }
    0
}
