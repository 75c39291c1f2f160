//! `scpc-node serve`: one request on standard input, one response on standard output
//! ([`crate::protocol`]), a blank line every second before it while the job runs.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::jobs::{self, Ctx};
use crate::protocol::{ErrorReport, Job, NodeInfo, Request, Response, PROTOCOL};

/// The largest request the node reads (bytes): a filter of 4096 instructions is 44 KiB in
/// base64.
pub const MAX_REQUEST: u64 = 4 << 20;

/// This node program and its machine.
pub fn node_info() -> NodeInfo {
    let uname = rustix::system::uname();
    NodeInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        arch: crate::run::host_arch().map_or_else(|| std::env::consts::ARCH.to_string(), |h| h.name.to_string()),
        machine: uname.machine().to_string_lossy().into_owned(),
        kernel: uname.release().to_string_lossy().into_owned(),
    }
}

/// The limit of a job's steps.
fn limit(job: &Job) -> Duration {
    let secs = match job {
        Job::Read { timeout, .. } | Job::Install { timeout, .. } | Job::Rollback { timeout, .. } | Job::Remove { timeout, .. } => *timeout,
    };
    Duration::from_secs(secs)
}

/// Reads a request from `input`, does it, writes the response to `output`; the exit status
/// (0 done, 1 refused as wrong, 2 failed).
pub fn serve(input: &mut dyn Read, output: Arc<Mutex<dyn Write + Send>>) -> u8 {
    let mut bytes = Vec::new();
    let read = input.take(MAX_REQUEST + 1).read_to_end(&mut bytes);
    let respond = |response: &Response| {
        if let Ok(mut out) = output.lock() {
            let mut text = serde_json::to_vec(response).unwrap_or_default();
            text.push(b'\n');
            // the session may be gone: the job is done all the same
            let _ = out.write_all(&text).and_then(|()| out.flush());
        }
    };
    let refuse = |code: &str, message: String| Response {
        protocol: PROTOCOL,
        node: node_info(),
        ok: false,
        result: None,
        error: Some(ErrorReport { code: code.into(), message }),
    };
    let request = match read {
        Err(e) => Err(format!("cannot read the request: {e}")),
        Ok(_) if bytes.len() as u64 > MAX_REQUEST => Err(format!("the request is larger than {MAX_REQUEST} bytes")),
        Ok(_) => Request::parse(&bytes).map_err(|e| e.to_string()),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            respond(&refuse("scpc::node::request", message));
            return 1;
        }
    };
    // a blank line a second while the job runs: the session reading the answer sees the node
    // alive however long a step takes
    let done = Arc::new(AtomicBool::new(false));
    let beat_output = Arc::clone(&output);
    let beating = Arc::clone(&done);
    let heart = std::thread::spawn(move || {
        let mut ticks = 0u32;
        while !beating.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            ticks += 1;
            if ticks.is_multiple_of(10) {
                if let Ok(mut out) = beat_output.lock() {
                    let _ = out.write_all(b"\n").and_then(|()| out.flush());
                }
            }
        }
    });
    let cx = Ctx { limit: limit(&request.job), beat: &|| {} };
    let result = jobs::run(&request.job, &cx);
    done.store(true, Ordering::SeqCst);
    let _ = heart.join();
    match result {
        Ok(result) => {
            respond(&Response { protocol: PROTOCOL, node: node_info(), ok: true, result: Some(result), error: None });
            0
        }
        Err(e) => {
            respond(&refuse(e.code(), e.to_string()));
            2
        }
    }
}
