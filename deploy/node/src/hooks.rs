//! Running a step of a job: a service's own `reload` or `health` command (`/bin/sh -c`), or a
//! fixed program such as `systemctl` with checked arguments. Each runs in its own process
//! group with standard input and output on `/dev/null` (so that a background child it leaves
//! can hold neither the node's output nor the SSH session open), under a time limit from its
//! own start: past it the whole group is killed. What comes back is its exit status and the
//! end of its standard error, bounded; the command line is never repeated.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::{StepFailure, StepStatus, STDERR_EXCERPT};

/// The end of a step's standard error kept while it runs (bytes).
const KEEP: usize = 4096;

/// The most standard output a captured step keeps (bytes).
const CAPTURE: usize = 1 << 16;

/// Reads `from` in a thread of its own into a buffer that keeps its first or last `keep`
/// bytes. The thread may outlive the step: a background child can keep the pipe open.
fn drain(mut from: impl Read + Send + 'static, keep: usize, first: bool) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let buffer = Arc::clone(&out);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = buffer.lock() {
                if first {
                    let room = keep.saturating_sub(t.len()).min(n);
                    t.extend_from_slice(&buf[..room]);
                } else {
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > keep {
                        let cut = t.len() - keep;
                        t.drain(..cut);
                    }
                }
            }
        }
    });
    out
}

/// Runs `program args` as step `step` with `env`, for at most `limit`; `beat` is called while
/// it runs. `Ok` when it exits 0.
pub fn run(step: &str, program: &str, args: &[&str], env: &[(&str, &str)], limit: Duration, beat: &dyn Fn()) -> Result<(), StepFailure> {
    run_step(step, program, args, env, limit, beat, false).map(drop)
}

/// [`run`], returning what the step printed on its standard output (its first 64 KiB).
pub fn capture(step: &str, program: &str, args: &[&str], limit: Duration, beat: &dyn Fn()) -> Result<Vec<u8>, StepFailure> {
    run_step(step, program, args, &[], limit, beat, true)
}

fn run_step(
    step: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
    beat: &dyn Fn(),
    capture: bool,
) -> Result<Vec<u8>, StepFailure> {
    let fail = |status, stderr: String| StepFailure { step: step.to_string(), status, stderr };
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env.iter().copied()).current_dir("/").stdin(Stdio::null()).stderr(Stdio::piped());
    cmd.stdout(if capture { Stdio::piped() } else { Stdio::null() });
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Err(fail(StepStatus::Failed, format!("cannot start {program}: {e}"))),
    };
    let tail = match child.stderr.take() {
        Some(err) => drain(err, KEEP, false),
        None => Arc::default(),
    };
    let stdout = match child.stdout.take() {
        Some(out) => drain(out, CAPTURE, true),
        None => Arc::default(),
    };
    let started = Instant::now();
    let pgid = rustix::process::Pid::from_raw(child.id() as i32);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limit => {
                if let Some(pgid) = pgid {
                    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                beat();
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(fail(StepStatus::Failed, format!("waiting for {step}: {e}"))),
        }
    };
    // what the step wrote before it ended (a writer left behind is not waited for long)
    let settle = Instant::now();
    while Arc::strong_count(&tail) + Arc::strong_count(&stdout) > 2 && settle.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let stderr = tail.lock().map(|t| excerpt(&t)).unwrap_or_default();
    match status {
        None => Err(fail(StepStatus::TimedOut(limit.as_secs()), stderr)),
        Some(s) if s.success() => Ok(stdout.lock().map(|o| o.clone()).unwrap_or_default()),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Err(fail(StepStatus::Exited(code), stderr)),
            (None, Some(sig)) => Err(fail(StepStatus::Signal(sig), stderr)),
            (None, None) => Err(fail(StepStatus::Failed, stderr)),
        },
    }
}

/// Runs a service's own command with `/bin/sh -c`, `SCPC_FILTER` set to its install path.
pub fn shell(step: &str, command: &str, filter: &str, limit: Duration, beat: &dyn Fn()) -> Result<(), StepFailure> {
    run(step, "/bin/sh", &["-c", command], &[("SCPC_FILTER", filter)], limit, beat)
}

/// The last [`STDERR_EXCERPT`] bytes of `bytes`, as text with control characters (but
/// newlines) replaced, trimmed.
pub fn excerpt(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_EXCERPT);
    let text = String::from_utf8_lossy(&bytes[start..]);
    text.chars().map(|c| if c.is_control() && c != '\n' { '?' } else { c }).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(cmd: &str, secs: u64) -> Result<(), StepFailure> {
        shell("health", cmd, "/etc/scpc/x.bpf", Duration::from_secs(secs), &|| {})
    }

    #[test]
    fn exit_status_and_stderr_but_never_the_command() {
        assert!(quick("test \"$SCPC_FILTER\" = /etc/scpc/x.bpf", 5).is_ok());
        let e = quick("curl -H 'Authorization: Bearer s3cr3t' http://x 2>/dev/null; echo 'not healthy' >&2; exit 3", 5).expect_err("fails");
        assert_eq!(e.step, "health");
        assert_eq!(e.status, StepStatus::Exited(3));
        assert_eq!(e.stderr, "not healthy");
        assert!(!format!("{e:?}").contains("s3cr3t"));
        let e = quick("kill -9 $$", 5).expect_err("killed");
        assert_eq!(e.status, StepStatus::Signal(9));
    }

    #[test]
    fn a_step_past_its_limit_is_killed_with_its_children() {
        let t = Instant::now();
        let e = quick("sleep 30 & sleep 30", 1).expect_err("times out");
        assert_eq!(e.status, StepStatus::TimedOut(1));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        // a background child that keeps the step's stderr open does not hold the step
        let t = Instant::now();
        assert!(quick("sleep 30 & exit 0", 5).is_ok());
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(capture("echo", "/bin/echo", &["hi"], Duration::from_secs(5), &|| {}).expect("runs"), b"hi\n");
        let long = "x".repeat(5000);
        let e = quick(&format!("echo {long} >&2; exit 1"), 5).expect_err("fails");
        assert!(e.stderr.len() <= STDERR_EXCERPT, "{}", e.stderr.len());
    }
}
