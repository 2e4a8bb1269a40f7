//! Each service's environment as compose/compose.prod.yml gives it, read
//! from `docker compose config` (Compose v2 itself, with
//! compose/.env.example), so the stack runs with the production settings
//! and not with a copy of them. Only what must differ on one host is
//! changed, and the test prints what it changed.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::process::Env;

/// compose/compose.prod.yml rendered by Compose.
pub struct Compose(Value);

impl Compose {
    pub fn render(compose: &Path, root: &Path, home: &Path) -> Self {
        let output = Command::new(compose)
            .args(["-f", "compose/compose.prod.yml", "--env-file", "compose/.env.example"])
            .args(["--profile", "*", "config", "--format", "json"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .current_dir(root)
            .output()
            .unwrap_or_else(|err| panic!("{}: {err}", compose.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "docker compose config failed on compose/compose.prod.yml:\n{stderr}");
        Self(serde_json::from_slice(&output.stdout).unwrap())
    }

    /// `service`'s environment with the container's paths mapped into
    /// `data_dir` and `secrets_dir` and `overrides` applied; prints every
    /// value that is not compose's own.
    pub fn environment(&self, service: &str, data_dir: &Path, secrets_dir: &Path, overrides: &[(&str, String)]) -> Env {
        let rendered = self.0["services"][service]["environment"].as_object().cloned().unwrap_or_default();
        let mut env = Env::new();
        let mut changed = std::collections::BTreeMap::new();
        for (name, value) in &rendered {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            match mapped(&value, data_dir, secrets_dir) {
                Some(path) => {
                    changed.insert(name.clone(), format!("mapped     {name}={path}   (compose: {value:?})"));
                    env.insert(name.clone(), path);
                }
                None => {
                    env.insert(name.clone(), value);
                }
            }
        }
        for (name, value) in overrides {
            let how = match rendered.get(*name) {
                Some(was) => format!("overridden {name}={value}   (compose: {was})"),
                None => format!("added      {name}={value}"),
            };
            env.insert((*name).to_owned(), value.clone());
            changed.insert((*name).to_owned(), how);
        }
        println!("  {service}: {} variables, {} as compose renders them", env.len(), env.len() - changed.len());
        for line in changed.values() {
            println!("    {line}");
        }
        env
    }

    pub fn value(&self, service: &str, name: &str) -> String {
        self.0["services"][service]["environment"][name].as_str().unwrap_or_default().to_owned()
    }
}

/// A path of the container (a Docker secret, the /data volume) as the same
/// file under the test's directories.
fn mapped(value: &str, data_dir: &Path, secrets_dir: &Path) -> Option<String> {
    let under = |dir: &Path, rest: &str| format!("{}{rest}", dir.display());
    if let Some(secret) = value.strip_prefix("/run/secrets/") {
        return Some(under(secrets_dir, &format!("/{secret}")));
    }
    if value == "/data" || value.starts_with("/data/") {
        return Some(under(data_dir, &value["/data".len()..]));
    }
    value.strip_prefix("sqlite:///data").map(|rest| format!("sqlite://{}", under(data_dir, rest)))
}
