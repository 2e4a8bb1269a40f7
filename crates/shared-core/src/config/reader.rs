use std::collections::HashMap;
use std::str::FromStr;

use super::vars::{self, Var};
use super::{ConfigProblem, Secret};

/// Reads typed values out of an environment map, collecting every problem
/// instead of stopping at the first, so an operator fixes them all in one go.
///
/// Defaults come from the declaration in [`vars`], nowhere else: a method
/// without a `default` argument parses the declared one. Each read also
/// records what is in force, as `config check` shows it ([`Reader::shown`]).
pub(super) struct Reader<'a> {
    env: &'a HashMap<String, String>,
    pub problems: Vec<ConfigProblem>,
    pub warnings: Vec<String>,
    /// (variable, value in force), secrets redacted, in the order of [`vars::VARS`].
    shown: Vec<(&'static str, String)>,
}

/// How an unset or empty value is shown.
const UNSET: &str = "unset";
const REDACTED: &str = "[redacted]";

impl<'a> Reader<'a> {
    pub fn new(env: &'a HashMap<String, String>) -> Self {
        Self { env, problems: Vec::new(), warnings: Vec::new(), shown: Vec::new() }
    }

    /// The default written in [`vars`] for `name`.
    pub fn declared_default(name: &str) -> &'static str {
        Self::declared(name).default
    }

    fn declared(name: &str) -> &'static Var {
        vars::find(name).unwrap_or_else(|| panic!("{name} is missing from config::vars::VARS"))
    }

    /// Records `value` as what is in force for `name` (a later call wins:
    /// a value worked out from others replaces the raw one).
    pub fn show(&mut self, name: &str, value: impl Into<String>) {
        let name = Self::declared(name).name;
        let value = value.into();
        let value = if value.is_empty() { UNSET.to_owned() } else { value };
        match self.shown.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.shown.push((name, value)),
        }
    }

    /// What was read, in declaration order.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let position = |name: &str| vars::VARS.iter().position(|v| v.name == name);
        let mut shown = self.shown.clone();
        shown.sort_by_key(|(name, _)| position(name));
        shown
    }

    pub fn problem(&mut self, var: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem { var: var.to_owned(), message: message.into() });
    }

    /// The raw value of `name`, from `name` or, for a secret, from the file
    /// named by `name_FILE`. Empty values count as unset, as in pydantic-settings.
    fn raw(&mut self, name: &str) -> Option<String> {
        let direct = self.env.get(name).filter(|v| !v.is_empty()).cloned();
        if !Self::declared(name).secret {
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

    /// The value, or the declared default.
    pub fn string(&mut self, name: &str) -> String {
        let value = self.raw(name).unwrap_or_else(|| Self::declared(name).default.to_owned());
        self.show(name, value.clone());
        value
    }

    /// The value, for a variable whose default is worked out in code (the
    /// caller shows what it settles on).
    pub fn optional(&mut self, name: &str) -> Option<String> {
        let value = self.raw(name);
        self.show(name, value.clone().unwrap_or_default());
        value
    }

    pub fn secret(&mut self, name: &str) -> Option<Secret> {
        let value = self.raw(name).map(Secret::new);
        self.show(name, if value.is_some() { REDACTED } else { UNSET });
        value
    }

    /// The value parsed, or the declared default parsed; `T::default()`
    /// only alongside a recorded problem (and then nothing starts).
    pub fn parse<T: FromStr + Default + ToString>(&mut self, name: &str, expected: &str) -> T {
        let default = Self::declared(name).default;
        let value = self.raw(name);
        let text = value.as_deref().unwrap_or(default);
        let parsed = match text.trim().parse() {
            Ok(parsed) => parsed,
            Err(_) if value.is_some() => {
                self.problem(name, format!("`{text}` is not {expected}"));
                T::default()
            }
            Err(_) => {
                self.problem(name, format!("the built-in default `{default}` is not {expected} (config::vars)"));
                T::default()
            }
        };
        self.show(name, parsed.to_string());
        parsed
    }

    /// Like [`Reader::parse`] for a variable whose default is worked out in code.
    pub fn parse_or<T: FromStr + ToString>(&mut self, name: &str, default: T, expected: &str) -> T {
        let parsed = match self.raw(name) {
            None => default,
            Some(value) => value.trim().parse().unwrap_or_else(|_| {
                self.problem(name, format!("`{value}` is not {expected}"));
                default
            }),
        };
        self.show(name, parsed.to_string());
        parsed
    }

    pub fn positive(&mut self, name: &str) -> u64 {
        let value: u64 = self.parse(name, "a positive whole number");
        if value == 0 && !self.problems.iter().any(|p| p.var == name) {
            self.problem(name, "must be at least 1");
        }
        value
    }

    /// A rate: a positive count per minute.
    pub fn per_minute(&mut self, name: &str) -> u32 {
        self.positive(name).min(u64::from(u32::MAX)) as u32
    }

    pub fn bool(&mut self, name: &str) -> bool {
        let value = self.raw(name);
        let text = value.as_deref().unwrap_or(Self::declared(name).default);
        let parsed = match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.problem(name, format!("`{text}` is not a boolean; use true or false"));
                false
            }
        };
        self.show(name, parsed.to_string());
        parsed
    }

    /// A comma-separated list, or a JSON list as pydantic-settings accepts.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        let list = match self.raw(name) {
            None => Vec::new(),
            Some(value) if value.trim().starts_with('[') => serde_json::from_str::<Vec<String>>(value.trim())
                .unwrap_or_else(|_| {
                    self.problem(name, "is not a JSON list of strings; use a,b,c or [\"a\",\"b\"]");
                    Vec::new()
                }),
            Some(value) => value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        };
        self.show(name, list.join(", "));
        list
    }
}
