//! Random and mutated configuration files never panic and never hang: every
//! input ends in a resolved flavor or in diagnostics that render.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use regconf::config::{self, Env, Inherit, Source};
use regconf::diagnostics::report;

use crate::common::fixture;

fn samples() -> Vec<String> {
    ["style-0.9.yml", "style-0.6.yml", "style-seed.yml"]
        .iter()
        .map(|f| std::fs::read_to_string(fixture("samples").join(f)).unwrap())
        .collect()
}

/// Pieces that tend to break YAML and the resolver.
const PIECES: &[&str] = &[
    ":",
    ": ",
    "<<: *common",
    "&a ",
    "*a",
    "*nope",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "#",
    "\n",
    "\t",
    "  ",
    "_env:",
    "_env:X:",
    "!!python/object:os.system",
    "!!binary",
    "!!set",
    "---\n",
    "~",
    "0755",
    "1:30",
    "yes",
    "\u{1F433}",
    "\\/",
    "? ",
    "|\n",
    ">-\n",
    "%YAML 1.1\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..PIECES.len()).prop_map(|(at, p)| Edit::Insert(at, p)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match e {
            Edit::Insert(at, p) => {
                let at = floor_char(&s, *at);
                s.insert_str(at, PIECES[*p]);
            }
            Edit::Delete(at, n) => {
                let start = floor_char(&s, *at);
                let end = floor_char(&s, start + n).max(start);
                s.replace_range(start..end, "");
            }
            Edit::SwapLines(a, b) => {
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let (a, b) = (a % lines.len(), b % lines.len());
                    lines.swap(a, b);
                }
                s = lines.join("\n");
            }
        }
    }
    s
}

/// Runs `f` in a thread with the default 2 MiB stack (nothing may recurse
/// once per level of input), failing the test if it panics or does not
/// finish in time.
fn in_thread<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("resolution did not finish (hang)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("resolution panicked"),
    }
}

/// Loads flavor `flavor` of `text` with an empty environment.
fn load(
    text: String,
    flavor: &str,
) -> Result<config::Resolved, Vec<regconf::diagnostics::Diagnostic>> {
    config::load(
        Source::new("input.yml", text),
        flavor,
        Inherit::Auto,
        &Env::new(),
    )
}

/// One input ends in a resolved flavor that renders, or in diagnostics.
fn resolves_or_reports(text: String, flavor: String, env: Env) {
    in_thread(20, move || {
        match config::load(Source::new("fuzz.yml", text), &flavor, Inherit::Auto, &env) {
            Ok(r) => {
                let _ = config::render::map_to_json(&r.config);
                let _ = config::render::map_to_yaml(&r.config);
            }
            Err(diags) => {
                assert!(!diags.is_empty(), "an error without a diagnostic");
                let _ = report::human_all(&diags, report::Style::default());
            }
        }
    });
}

/// Values of the kinds where YAML readers part (issue 12): YAML 1.1 typing,
/// `_env:` forms, block scalars, odd anchors, flow corner cases, tags,
/// timestamps near the ends of the calendar, characters PyYAML treated
/// specially. The differential fuzzer (tests/fixtures/fuzz_reference.py)
/// compares such files with the reference; here they only must not panic
/// or hang.
const VALUES: &[&str] = &[
    "yes",
    "0755",
    "1:30",
    "1.5e+3",
    "~",
    "2001-12-14t21:59:43.10-05:00",
    "9999-12-31 23:30:00-01:00",
    "0001-01-01 00:30:00+01:00",
    "2001-02-30",
    "_env:FOO",
    "_env:FOO:a:b",
    "'_env:BAR:[1, 2]'",
    "_env:BAR:",
    "|\n    x\n    y",
    ">+\n    x\n\n    ",
    "\"docker\n  registry\"",
    "[GET, POST,\n  PUT]",
    "&x:y 1",
    "&x.y 1",
    "&x?y z",
    "*x",
    "*d",
    "[?q]",
    "{?q: 1}",
    "[?]",
    "[-]",
    "{o:[1]}",
    "[!!str, b]",
    "!!map {a: 1}",
    "!!bool \"y\"",
    "!!binary 4",
    "!!int 1.5",
    "a\tb",
    "a\u{7}b",
    "a\u{85}b",
    "\"a\u{85}b\"",
    "a\u{2028}b",
    "a\u{feff}b",
    "[x, :y]",
    "{: 1}",
];

const ENV_VALUES: &[&str] = &[
    "",
    "...",
    "a\tb",
    "|\n  x",
    "k: _env:FOO",
    "k: _env:BAR",
    "[a, ?q]",
    "&x:y 1",
    "\u{feff}x",
    "a\u{85}b",
    ": 1",
    "a: 1\na: 2001-02-30",
];

/// A flavor file: flavors with anchors and merge keys, keys with values
/// from [`VALUES`], sometimes duplicated, and the end of the file cut.
fn flavor_file() -> impl Strategy<Value = String> {
    let entry = (
        prop::sample::select(vec!["a", "b", "storage", "loglevel", "", "<<"]),
        0..VALUES.len(),
    );
    let flavor = (
        prop::sample::select(vec!["dev", "prod", "common", "d"]),
        any::<bool>(),
        prop::collection::vec(entry, 0..5),
    );
    (
        prop::collection::vec(flavor, 1..4),
        prop::sample::select(vec!["\n", "", "\n  ", "\n...\n"]),
    )
        .prop_map(|(flavors, end)| {
            let mut text = String::new();
            for (name, anchored, entries) in flavors {
                text.push_str(name);
                text.push(':');
                if anchored {
                    text.push_str(" &");
                    text.push_str(name);
                }
                text.push('\n');
                for (key, value) in entries {
                    if key == "<<" {
                        text.push_str("  <<: *d\n");
                    } else {
                        text.push_str(&format!("  {key}: {}\n", VALUES[value]));
                    }
                }
            }
            text.pop();
            text.push_str(end);
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_flavor_files_never_panic_or_hang(
        text in flavor_file(),
        foo in prop::sample::select(ENV_VALUES.to_vec()),
        bar in prop::sample::select(ENV_VALUES.to_vec()),
        flavor in prop::sample::select(vec!["dev", "prod", "d"]),
    ) {
        let env = Env::new().with("FOO", foo).with("BAR", bar);
        resolves_or_reports(text, flavor.to_owned(), env);
    }

    #[test]
    fn mutated_samples_never_panic_or_hang(
        which in 0usize..3,
        edits in prop::collection::vec(edit(), 1..6),
        flavor in prop::sample::select(vec!["dev", "prod", "common", "local", "test", "s3", "x"]),
        value in prop::sample::select(vec!["", " ", "[", "{a: 1}", "- a\n- b", "---", "~", "yes", "\u{1F433}", "_env:X", "a: b: c"]),
    ) {
        let text = apply(&samples()[which], &edits);
        let env = Env::new().with("LOGLEVEL", value).with("STORAGE_PATH", value).with("X", value);
        resolves_or_reports(text, flavor.to_owned(), env);
    }

    #[test]
    fn random_text_never_panics_or_hangs(text in "\\PC{0,400}", flavor in "[a-z]{0,6}") {
        resolves_or_reports(text, flavor, Env::new());
    }
}

#[test]
fn alias_bombs_end_in_a_diagnostic() {
    // "billion laughs": nine levels of nine aliases each.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    text.push_str("dev:\n  bomb: *a9\n");
    let err = in_thread(60, move || {
        load(text, "dev").expect_err("an alias bomb is refused")
    });
    assert_eq!(err[0].code, "regconf::yaml::too_large");
}

#[test]
fn deep_nesting_ends_in_a_diagnostic() {
    // saphyr stops deep flow collections itself ...
    let text = format!(
        "dev:\n  deep: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = in_thread(60, move || load(text, "dev").expect_err("too deep"));
    assert!(
        err[0].is_error() && err[0].code.starts_with("regconf::yaml::"),
        "{err:?}"
    );
    // ... and regconf stops deep block ones
    let mut text = String::from("dev:\n");
    for depth in 1..2000 {
        text.push_str(&" ".repeat(depth));
        text.push_str("k:\n");
    }
    let err = in_thread(60, move || load(text, "dev").expect_err("too deep"));
    assert_eq!(err[0].code, "regconf::yaml::too_deep");
}

#[test]
fn a_chain_of_100000_flavors_resolves() {
    let mut text = String::from("f0: &f0\n  storage: local\n  loglevel: info\n");
    for i in 1..100_000 {
        text.push_str(&format!(
            "f{i}: &f{i}\n  <<: *f{}\n  storage_path: /p{i}\n",
            i - 1
        ));
    }
    let json = in_thread(120, move || {
        config::render::map_to_json(&load(text, "f99999").expect("resolves").config)
    });
    assert_eq!(
        json,
        r#"{"flavor":"f99999","loglevel":"info","storage":"local","storage_path":"/p99999"}"#
    );
}
