use std::collections::HashMap;
use std::str::FromStr;

use super::vars;
use super::{ConfigProblem, Secret};

/// Reads typed values out of an environment map, collecting every problem
/// instead of stopping at the first, so an operator fixes them all in one go.
pub(super) struct Reader<'a> {
    env: &'a HashMap<String, String>,
    pub problems: Vec<ConfigProblem>,
    pub warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a HashMap<String, String>) -> Self {
        Self { env, problems: Vec::new(), warnings: Vec::new() }
    }

    pub fn problem(&mut self, var: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem { var: var.to_owned(), message: message.into() });
    }

    /// The raw value of `name`, from `name` or, for a secret, from the file
    /// named by `name_FILE`. Empty values count as unset, as in pydantic-settings.
    pub fn raw(&mut self, name: &str) -> Option<String> {
        let declared = vars::find(name);
        debug_assert!(declared.is_some(), "{name} is missing from config::vars::VARS");
        let direct = self.env.get(name).filter(|v| !v.is_empty()).cloned();
        if !declared.is_some_and(|v| v.secret) {
            return direct;
        }
        let file_var = format!("{name}_FILE");
        let Some(path) = self.env.get(&file_var).filter(|v| !v.is_empty()).cloned() else {
            return direct;
        };
        if direct.is_some() {
            self.problem(name, format!("both {name} and {file_var} are set; keep only one"));
            return direct;
        }
        match std::fs::read_to_string(&path) {
            // A trailing newline is an artefact of how the file was written.
            Ok(contents) => Some(contents.trim_end_matches(['\r', '\n']).to_owned()),
            Err(err) => {
                self.problem(&file_var, format!("cannot read {path}: {err}; point it at a readable file"));
                None
            }
        }
    }

    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.raw(name)
    }

    pub fn secret(&mut self, name: &str) -> Option<Secret> {
        self.raw(name).map(Secret::new)
    }

    pub fn parse<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(value) => value.trim().parse().unwrap_or_else(|_| {
                self.problem(name, format!("`{value}` is not {expected}"));
                default
            }),
        }
    }

    pub fn positive(&mut self, name: &str, default: u64) -> u64 {
        let value = self.parse(name, default, "a positive whole number");
        if value == 0 {
            self.problem(name, "must be at least 1");
            return default;
        }
        value
    }

    /// A rate: a positive count per minute.
    pub fn per_minute(&mut self, name: &str, default: u32) -> u32 {
        self.positive(name, u64::from(default)).min(u64::from(u32::MAX)) as u32
    }

    pub fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name) {
            None => default,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    self.problem(name, format!("`{value}` is not a boolean; use true or false"));
                    default
                }
            },
        }
    }

    /// A comma-separated list, or a JSON list as pydantic-settings accepts.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        let Some(value) = self.raw(name) else { return Vec::new() };
        let trimmed = value.trim();
        if trimmed.starts_with('[') {
            return serde_json::from_str::<Vec<String>>(trimmed).unwrap_or_else(|_| {
                self.problem(name, "is not a JSON list of strings; use a,b,c or [\"a\",\"b\"]");
                Vec::new()
            });
        }
        trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}
