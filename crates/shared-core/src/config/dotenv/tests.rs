use std::collections::HashMap;

use super::*;

/// The process environment of every case: A is set, NOPE is not.
fn process(name: &str) -> Option<String> {
    (name == "A").then(|| "fromenv".to_owned())
}

fn parsed(text: &str) -> HashMap<String, String> {
    parse(text, &process).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

fn value(text: &str, key: &str) -> String {
    parsed(text).remove(key).unwrap_or_else(|| panic!("{text:?}: no {key}"))
}

/// Each line with the value `docker compose --env-file <file> config
/// --environment` (Compose 2.40.3) printed for it, with A=fromenv in the
/// environment. Written as raw strings: what is in the file is what is here.
const COMPOSE_CASES: &[(&str, &str)] = &[
    // unquoted: to the end of the line, spaces included; " #" starts a comment
    (r"K=Full Stack FastAPI Project", "Full Stack FastAPI Project"),
    (r"K = spaced value  ", "spaced value"),
    (r"K=value # comment", "value"),
    (r"K=a #c #d", "a"),
    (r"K=value#nocomment", "value#nocomment"),
    ("K=x\t# tab comment", "x\t# tab comment"),
    (r"K= #x", "#x"),
    ("K=\ttab-lead", "tab-lead"),
    (r"K=", ""),
    (r"K=a\tb\\c", r"a\tb\\c"),
    (r#"K=a\"b"#, r#"a\"b"#),
    ("K=v\r", "v"),
    (r"export K=exported", "exported"),
    (r"export  K=2", "2"),
    (r"K: colon", "colon"),
    // single quotes: literal, only \' is an escape
    (r"K='single $A \n'", r"single $A \n"),
    (r"K='a\\b'", r"a\\b"),
    (r"K='a\$b'", r"a\$b"),
    (r#"K='a\"b'"#, r#"a\"b"#),
    (r"K='a\'b'", "a'b"),
    (r"K='${A}'", "${A}"),
    (r"K='a' # c", "a"),
    (r"K=  'lead'", "lead"),
    // double quotes: escapes, then interpolation
    (r#"K="double # quoted" # trailing"#, "double # quoted"),
    (r#"K="esc \n \t \\ \" \$A $A""#, "esc \n \t \\ \" $A fromenv"),
    (r#"K="a\nb""#, "a\nb"),
    (r#"K="a\$b""#, "a$b"),
    (r#"K="a\'b""#, r"a\'b"),
    (r#"K="a\xb""#, r"a\xb"),
    (r#"K="a\c""#, r"a\c"),
    (r#"K="a\a\b\f\v\r|""#, "a\u{07}\u{08}\u{0c}\u{0b}\r|"),
    (r#"K="\0101\x41\u0041""#, r"A\x41\u0041"),
    (r#"K="\0""#, r"\"),
    (r#"K="\01\012""#, r"\1\12"),
    (r#"K="a$""#, "a$"),
    (r#"K="$$""#, "$"),
    (r#"K="\\$A""#, r"\fromenv"),
    (r##"K="a"#c"##, "a"),
    (r#"K="""#, ""),
    ("K=\"multi\nline\"", "multi\nline"),
    ("K=\"a\\\nb\"", "a\\\nb"),
    // interpolation
    (r"K=${A:-x}-${NOPE:-def}-${NOPE-d2}-${A:+set}", "fromenv-def-d2-set"),
    (r"K=$$literal", "$literal"),
    (r"K=a$", "a$"),
    (r"K=a$1b", "a$1b"),
    (r"K=a $ b", "a $ b"),
    (r"K=$-", "$-"),
    (r"K=$A-x", "fromenv-x"),
    (r"K=${NOPE}", ""),
    (r"K=$NOPE_x", ""),
    (r"K=${NOPE:-${A:-n}}", "fromenv"),
    (r"K=${NOPE:-a b}", "a b"),
    (r"K=${a-b}", "b"),
    (r"K=${A:-}", "fromenv"),
    (r"K=${A:?}", "fromenv"),
    (r"K=\$A", r"\fromenv"),
    (r#"K="${A}""#, "fromenv"),
];

#[test]
fn every_value_is_what_compose_makes_of_it() {
    for (line, expected) in COMPOSE_CASES {
        assert_eq!(value(line, "K"), *expected, "{line}");
    }
}

#[test]
fn keys_as_compose_reads_them() {
    let env = parsed("T.dot=1\nU-dash=2\nexportX=3\n");
    assert_eq!(env["T.dot"], "1");
    assert_eq!(env["U-dash"], "2");
    assert_eq!(env["exportX"], "3");
    assert_eq!(value("\u{feff}K=bom", "K"), "bom", "a byte order mark is skipped");
}

#[test]
fn lines_above_are_variables_below_and_the_environment_wins() {
    assert_eq!(value("B=1\nK=${B}", "K"), "1");
    assert_eq!(value("K=${B}\nB=1", "K"), "", "a line below is not seen");
    assert_eq!(value("A=file\nK=$A", "K"), "fromenv", "the process environment comes first");
}

#[test]
fn comments_blank_lines_crlf_and_inherited_keys() {
    let env = parsed("# a comment\n\n   # indented comment\r\nK=v\r\nK2=w\r\nA\nNOPE\n");
    assert_eq!(env.get("K").map(String::as_str), Some("v"));
    assert_eq!(env.get("K2").map(String::as_str), Some("w"));
    assert_eq!(env.get("A").map(String::as_str), Some("fromenv"), "a key alone takes the environment's value");
    assert!(!env.contains_key("NOPE"), "a key alone that the environment lacks stays unset");
}

#[test]
fn trailing_text_after_a_quoted_value_is_ignored_as_compose_does() {
    assert_eq!(parsed("K='a'b"), HashMap::from([("K".to_owned(), "a".to_owned())]));
    assert_eq!(parsed("K=\"a\" junk\nL=1\n")["L"], "1");
}

#[test]
fn what_compose_refuses_is_refused_with_its_line() {
    for (text, line, message) in [
        ("OK=1\nMY KEY=1", 2, "key cannot contain a space"),
        ("K=\"unterminated", 1, "unterminated quoted value \"unterminated"),
        ("K=${", 1, "invalid template"),
        ("K=${A", 1, "invalid template"),
        ("K=${A/x/y}", 1, "invalid template"),
        ("\n\nK=${NOPE:?boom}", 3, "required variable NOPE is missing a value: boom"),
        ("K=${NOPE?}", 1, "required variable NOPE is missing a value"),
        ("K$=1", 1, "unexpected character '$' in variable name"),
    ] {
        let err = parse(text, &process).expect_err(text);
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.message.contains(message), "{text:?}: {err}");
    }
}

/// The repository's own example files, as shipped: every assignment in them
/// is read, with the value Compose gives it.
#[test]
fn the_example_env_files_are_read_whole() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for file in [".env.example", "compose/.env.example"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let env = parse(&text, &|_| None).unwrap_or_else(|err| panic!("{file}: {err}"));
        let assignments: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split_once('=')
                    .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()))
            })
            .collect();
        assert!(assignments.len() > 10, "{file}: only {} assignments", assignments.len());
        for line in assignments {
            let (key, raw) = line.split_once('=').unwrap();
            let expected = raw.split(" #").next().unwrap().trim_end();
            assert_eq!(env.get(key).map(String::as_str), Some(expected), "{file}: {line}");
        }
        assert_eq!(env["PROJECT_NAME"], "Full Stack FastAPI Project", "{file}");
    }
}
