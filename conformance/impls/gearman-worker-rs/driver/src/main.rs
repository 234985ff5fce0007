// Driver for the gearman-worker crate (crates.io gearman-worker, a worker only), as its
// README shows: WorkerBuilder::new(id, addr).build(), connect(), register_function(), run().
// The command-line contract: conformance/drivers/README.md.
//
// Worker::run never returns on success, so --count is counted in the callback (see main).
// A callback returns Result<Vec<u8>, Option<Vec<u8>>>: Ok sends WORK_COMPLETE, Err(Some)
// WORK_FAIL and Err(None) WORK_EXCEPTION (lib.rs Job::send_response). The crate cannot send
// WORK_STATUS or WORK_DATA (README "Known issues"), so the "status" job is failed with
// `unsupported:` on stderr, as the contract asks of a worker that cannot stream.
#[path = "../../../rustygear/driver/src/args.rs"]
mod args;

use args::Args;
use gearman_worker::WorkerBuilder;
use std::net::ToSocketAddrs;
use std::process::exit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;

fn main() {
    let args = Args::parse("gearman_worker_driver");
    if args.role != "worker" {
        eprintln!("unsupported: client (the gearman-worker crate has workers only)");
        exit(5);
    }
    let count: Option<u32> = args.values.get("count").map(|c| match c.parse() {
        Ok(n) => n,
        Err(_) => args::usage("gearman_worker_driver", &format!("--count needs a number, not {c:?}")),
    });
    let timeout = args.seconds("timeout", 60.0);
    let server = format!("{}:{}", args.get("host", ""), args.get("port", ""));
    let addr = match server.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(addr) => addr,
        None => {
            eprintln!("connection error: cannot resolve {server}");
            exit(2);
        }
    };
    let function = args.get("function", "");
    // The library blocks in read() with no timeout of its own: --timeout is watched here.
    let (tx, rx) = mpsc::channel();
    let answered = tx.clone();
    let worker = thread::spawn(move || {
        let _ = tx.send(work(addr, &function, count, answered));
    });
    let code = match rx.recv_timeout(timeout) {
        Ok(code) => {
            if code == 0 && !worker.is_finished() {
                // The --count-th callback has returned its answer; Worker::run writes it
                // (a blocking write) right after, then asks for the next job. run() cannot
                // be stopped, so the driver gives that write a moment before exiting.
                thread::sleep(std::time::Duration::from_millis(100));
            }
            code
        }
        Err(_) => {
            eprintln!("timed out after {}s", timeout.as_secs_f64());
            6
        }
    };
    exit(code);
}

fn work(addr: std::net::SocketAddr, function: &str, count: Option<u32>, answered: mpsc::Sender<i32>) -> i32 {
    let mut worker = WorkerBuilder::new(format!("gearspec-{}", std::process::id()), addr).build();
    if let Err(e) = worker.connect() {
        eprintln!("connection error: {e}");
        return 2;
    }
    let seen = AtomicU32::new(0);
    let registered = worker.register_function(function, move |input| {
        let result = match input {
            b"fail" => Err(Some(Vec::new())),
            b"status" => {
                eprintln!("unsupported: WORK_STATUS and WORK_DATA (gearman-worker cannot send them)");
                Err(Some(Vec::new()))
            }
            data => Ok(data.iter().rev().copied().collect()),
        };
        if count.is_some_and(|c| seen.fetch_add(1, Ordering::SeqCst) + 1 >= c) {
            let _ = answered.send(0);
        }
        result
    });
    if let Err(e) = registered {
        eprintln!("connection error: {e}");
        return 2;
    }
    // Worker::run as the README shows: it answers each job before grabbing the next, and
    // sleeps (PRE_SLEEP, NOOP) when there is none. It returns only on an error.
    match worker.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("connection error: {e}");
            2
        }
    }
}
