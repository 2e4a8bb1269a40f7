//! The `.env` file, read the way Docker Compose reads it.
//!
//! One `.env` serves both `docker compose` (which interpolates the compose
//! files with it) and the binaries run from the same directory, so every line
//! Compose accepts must mean the same here. The rules are those of Compose v2's
//! parser (compose-go `dotenv`), checked against `docker compose config
//! --environment` of Compose 2.40.3 (the cases in `tests.rs`):
//!
//! - `KEY=value`, `export KEY=value` and `KEY: value`; blank lines and lines
//!   starting with `#` are skipped; spaces around the key and before the value
//!   are ignored; a key is letters, digits, `_`, `.`, `-`, `[` and `]`.
//! - Unquoted values run to the end of the line, spaces included
//!   (`PROJECT_NAME=Full Stack FastAPI Project`); ` #` starts a comment;
//!   trailing whitespace is dropped; backslashes and quotes are literal.
//! - `'single quoted'` values are literal (only `\'` is an escape) and may
//!   span lines.
//! - `"double quoted"` values may span lines and understand `\n`, `\r`, `\t`,
//!   `\a`, `\b`, `\f`, `\v`, `\\`, `\"`, `\$` (a literal `$`) and octal `\0NNN`.
//! - Unquoted and double-quoted values are interpolated: `$VAR`, `${VAR}`,
//!   `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
//!   `${VAR:?error}`, `${VAR?error}`, `$$` for `$`; a variable is looked up in
//!   the process environment, then among the lines above. A `$` that starts
//!   no reference is kept as is.
//! - A line with a key alone (`KEY`) takes the value from the process
//!   environment, which wins over the file anyway.

use std::collections::HashMap;

#[cfg(test)]
mod tests;

/// A line Compose would refuse too; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// Parses `text`, looking variables up with `lookup` (the process
/// environment) before the values defined above them. Returns the entries in
/// file order; a key given twice keeps its last value.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<HashMap<String, String>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser { text, pos: 0, lookup, values: HashMap::new() };
    parser.run()?;
    Ok(parser.values)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    values: HashMap<String, String>,
}

/// Whitespace within a line (Go's `isSpace` in compose-go: no line break).
fn is_inline_space(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn line(&self) -> usize {
        self.line_at(self.pos)
    }

    fn line_at(&self, pos: usize) -> usize {
        self.text[..pos].matches('\n').count() + 1
    }

    fn error(&self, line: usize, message: impl Into<String>) -> DotenvError {
        DotenvError { line, message: message.into() }
    }

    fn run(&mut self) -> Result<(), DotenvError> {
        while self.statement_start() {
            let line = self.line();
            let Some((key, inherited)) = self.key()? else {
                // A fragment with nothing after it (trailing text behind a
                // quoted value, at the end of the file): Compose ignores it.
                self.pos = self.text.len();
                break;
            };
            if key.contains(' ') {
                return Err(self.error(line, "key cannot contain a space"));
            }
            if inherited {
                if let Some(value) = (self.lookup)(&key) {
                    self.values.insert(key, value);
                }
                continue;
            }
            let value = self.value(line)?;
            self.values.insert(key, value);
        }
        Ok(())
    }

    /// Skips whitespace and comment lines; false at the end of the text.
    fn statement_start(&mut self) -> bool {
        loop {
            let rest = self.rest();
            let Some(offset) = rest.find(|c: char| !c.is_whitespace()) else {
                self.pos = self.text.len();
                return false;
            };
            self.pos += offset;
            if !self.rest().starts_with('#') {
                return true;
            }
            match self.rest().find('\n') {
                Some(newline) => self.pos += newline,
                None => {
                    self.pos = self.text.len();
                    return false;
                }
            }
        }
    }

    /// The key and whether it stands alone (inherited from the environment).
    /// None for a key-less fragment at the end of the text.
    fn key(&mut self) -> Result<Option<(String, bool)>, DotenvError> {
        let line = self.line();
        let mut rest = self.rest();
        if let Some(after) = rest.strip_prefix("export")
            && after.starts_with(is_inline_space)
        {
            rest = after.trim_start_matches(is_inline_space);
        }
        let start = self.text.len() - rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    let key = rest[..i].trim_end().to_owned();
                    let after = &rest[i + 1..];
                    let after = if c == '\n' { after } else { after.trim_start_matches(is_inline_space) };
                    self.pos = self.text.len() - after.len();
                    return Ok(Some((key, c == '\n')));
                }
                c if is_inline_space(c) || is_key_char(c) => {}
                c => {
                    let near = rest.lines().next().unwrap_or_default();
                    return Err(self.error(line, format!("unexpected character {c:?} in variable name {near:?}")));
                }
            }
        }
        self.pos = start;
        Ok(None)
    }

    fn value(&mut self, line: usize) -> Result<String, DotenvError> {
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let (raw, len) = match rest.find('\n') {
                    Some(end) => (&rest[..end], end + 1),
                    None => (rest, rest.len()),
                };
                let raw = raw.split(" #").next().unwrap_or_default().trim_end();
                let value = self.interpolate(raw, line)?;
                self.pos += len;
                return Ok(value);
            }
        };
        let mut chars = String::new();
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            if c != quote {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push('\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            self.pos += i + 1;
            return if quote == '"' { self.interpolate(&unescape(&chars), line) } else { Ok(chars) };
        }
        let first_line = rest.lines().next().unwrap_or_default();
        Err(self.error(line, format!("unterminated quoted value {first_line}")))
    }

    fn resolve(&self, name: &str) -> Option<String> {
        (self.lookup)(name).or_else(|| self.values.get(name).cloned())
    }

    /// `$VAR`, `${VAR...}` and `$$`, as Compose's template engine does them.
    fn interpolate(&self, raw: &str, line: usize) -> Result<String, DotenvError> {
        let invalid = || self.error(line, format!("invalid template: {raw:?}"));
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(braced) = after.strip_prefix('{') {
                let close = closing_brace(braced).ok_or_else(invalid)?;
                out.push_str(&self.braced(&braced[..close], line).ok_or_else(invalid)??);
                rest = &braced[close + 1..];
            } else {
                let len = name_len(after);
                if len == 0 {
                    out.push('$');
                } else {
                    out.push_str(&self.resolve(&after[..len]).unwrap_or_default());
                }
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The inside of `${...}`; None when it is not a valid reference.
    fn braced(&self, inner: &str, line: usize) -> Option<Result<String, DotenvError>> {
        let len = name_len(inner);
        if len == 0 {
            return None;
        }
        let (name, modifier) = inner.split_at(len);
        let value = self.resolve(name);
        let (colon, modifier) = match modifier.strip_prefix(':') {
            Some(m) => (true, m),
            None => (false, modifier),
        };
        // With a colon, an empty value counts as unset.
        let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
        let Some(op) = modifier.chars().next() else {
            return (!colon).then(|| Ok(value.unwrap_or_default()));
        };
        let word = &modifier[1..];
        let expand = |word: &str| self.interpolate(word, line);
        Some(match op {
            '-' if set => Ok(value.unwrap_or_default()),
            '-' => expand(word),
            '+' if set => expand(word),
            '+' => Ok(String::new()),
            '?' if set => Ok(value.unwrap_or_default()),
            '?' => {
                let detail = expand(word).unwrap_or_else(|_| word.to_owned());
                let message = if detail.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {detail}")
                };
                Err(self.error(line, message))
            }
            _ => return None,
        })
    }
}

/// Length of the variable name at the start of `s` (`[_A-Za-z][_A-Za-z0-9]*`).
fn name_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return 0,
    }
    chars.find(|(_, c)| !(*c == '_' || c.is_ascii_alphanumeric())).map_or(s.len(), |(i, _)| i)
}

/// Index of the `}` closing a `${`, nested references counted.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut prev = '\0';
    for (i, c) in s.char_indices() {
        match c {
            '{' if prev == '$' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
        prev = c;
    }
    None
}

/// The escapes of a double-quoted value. `\$` becomes `$$`, which the
/// interpolation then turns into a literal `$`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let after = &rest[backslash + 1..];
        let Some(c) = after.chars().next() else {
            out.push('\\');
            rest = after;
            break;
        };
        let simple = match c {
            'a' => Some("\u{07}"),
            'b' => Some("\u{08}"),
            'f' => Some("\u{0c}"),
            'n' => Some("\n"),
            'r' => Some("\r"),
            't' => Some("\t"),
            'v' => Some("\u{0b}"),
            '\\' => Some("\\"),
            '"' => Some("\""),
            '$' => Some("$$"),
            _ => None,
        };
        if let Some(replacement) = simple {
            out.push_str(replacement);
            rest = &after[1..];
        } else if c == '0' {
            // Compose rewrites `\0NNN` to Go's `\NNN`: three octal digits make
            // one character; anything else stays as rewritten (`\0` -> `\`).
            let digits = after[1..].chars().take(3).take_while(char::is_ascii_digit).count();
            let octal = &after[1..1 + digits];
            match u32::from_str_radix(octal, 8).ok().filter(|v| digits == 3 && *v <= 0xff).and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => {
                    out.push('\\');
                    out.push_str(octal);
                }
            }
            rest = &after[1 + digits..];
        } else {
            out.push('\\');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Reads `path` when it exists: Ok(None) when there is no such file.
pub fn read(
    path: &std::path::Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<HashMap<String, String>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, lookup).map(Some).map_err(|err| err.to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}
