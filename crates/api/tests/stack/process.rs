//! The stack's programs as child processes: started with exactly the
//! environment given (as a container gets only what compose sets), logged to
//! a file each, stopped with SIGTERM and judged by their exit status.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

pub type Env = BTreeMap<String, String>;

pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program args` in `dir/cwd` with only `env`, appending its
    /// output to `dir/<name>.log`. The working directory is empty: the
    /// binaries also read ./.env, which must add nothing here.
    pub fn start(name: &str, dir: &Path, env: &Env, program: &Path, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = command(dir, env, program, args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| panic!("{name}: cannot start {}: {err}", program.display()));
        Self { name: name.to_owned(), child, log }
    }

    /// Runs a one-off command (migrate, healthcheck) the same way.
    pub fn run_once(dir: &Path, env: &Env, program: &Path, args: &[&str]) -> Output {
        command(dir, env, program, args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The last `lines` lines of its log, for a failure's message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then the exit status; a process still running after
    /// `within` fails the test (and is killed on drop).
    pub fn stop(mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {within:?} of SIGTERM:\n{}",
                self.name,
                self.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn command(dir: &Path, env: &Env, program: &Path, args: &[&str]) -> Command {
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut command = Command::new(program);
    command.args(args).env_clear().envs(env).current_dir(cwd);
    command
}
