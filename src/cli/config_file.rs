//! `--config FILE` (`ISSUER_CONFIG`): a TOML file holding any option under its flag's name as a
//! top-level key (`access-ttl = 600`, `cors-origin = ["https://a.example"]`). Its values become
//! the options' defaults before the command line is parsed, so a flag beats its environment
//! variable, which beats the file, which beats the built-in default. Each value goes through the
//! option's own parser first: an unknown key or a bad value is an error naming the key and the
//! file (exit status 2), before anything is written.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;

/// The flag and the variable naming the file.
pub const FLAG: &str = "config";
pub const ENV: &str = "ISSUER_CONFIG";

/// The file named on the command line (`--config FILE`, `--config=FILE`) or by `ISSUER_CONFIG`.
pub fn named(argv: &[OsString]) -> Option<PathBuf> {
    let long = format!("--{FLAG}");
    let with_eq = format!("--{FLAG}=");
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        }
        if text == long {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix(&with_eq) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `cmd` with the file's values as its options' defaults; the keys the file set. Exits with
/// status 2, naming the key, when the file cannot be read, is not TOML, or holds an unknown key
/// or a bad value.
pub fn apply(mut cmd: Command, path: &Path) -> (Command, BTreeSet<String>) {
    let fail = |cmd: &mut Command, message: String| -> ! {
        cmd.error(clap::error::ErrorKind::InvalidValue, message)
            .exit()
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => fail(
            &mut cmd,
            format!("--config {}: cannot read it: {e}", path.display()),
        ),
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => fail(
            &mut cmd,
            format!("--config {}: not TOML: {}", path.display(), e.message()),
        ),
    };
    let mut set = BTreeSet::new();
    for (key, value) in &table {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.is_global_set() && a.get_long() == Some(key.as_str()) && key != FLAG)
            .cloned()
        else {
            fail(
                &mut cmd,
                format!(
                    "--config {}: unknown key `{key}` (keys are the options' long names, e.g. `access-ttl`)",
                    path.display()
                ),
            )
        };
        let many = matches!(arg.get_action(), clap::ArgAction::Append)
            || arg.get_value_delimiter().is_some();
        let values: Vec<String> = match value {
            toml::Value::Array(items) if many => items.iter().filter_map(scalar).collect(),
            toml::Value::Array(_) => fail(
                &mut cmd,
                format!(
                    "--config {}: `{key}` takes one value, not a list",
                    path.display()
                ),
            ),
            other => scalar(other).into_iter().collect(),
        };
        let expected = match value {
            toml::Value::Array(items) => items.len(),
            _ => 1,
        };
        if values.len() != expected {
            fail(
                &mut cmd,
                format!(
                    "--config {}: `{key}` takes a string, a number or a boolean",
                    path.display()
                ),
            );
        }
        // Through the option's own parser, alone on a command line of its own.
        let alone = Command::new("jwt-issuer").arg(arg.clone().global(false).required(false));
        for v in &values {
            let line = [
                OsString::from("jwt-issuer"),
                format!("--{key}").into(),
                v.into(),
            ];
            if let Err(e) = alone.clone().try_get_matches_from(line) {
                let reason = e.render().to_string();
                let reason = reason.lines().next().unwrap_or_default();
                let reason = reason.trim_start_matches("error: ");
                fail(
                    &mut cmd,
                    format!(
                        "--config {}: bad value for `{key}`: {reason}",
                        path.display()
                    ),
                );
            }
        }
        let id = arg.get_id().clone();
        // `--help` shows no value from the file: it may hold a password (`database`).
        cmd = cmd.mut_arg(id, |a| {
            a.hide_default_value(true).default_values(
                values
                    .iter()
                    .map(|v| clap::builder::OsStr::from(clap::builder::Str::from(v.clone()))),
            )
        });
        set.insert(key.clone());
    }
    (cmd, set)
}

/// A TOML scalar as the text the command line would carry.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_by_the_flag_before_the_variable() {
        let argv = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            named(&argv(&["jwt-issuer", "serve", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            named(&argv(&["jwt-issuer", "--config=b.toml", "serve"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            named(&argv(&["jwt-issuer", "user", "add", "--", "--config"])),
            std::env::var_os(ENV).map(PathBuf::from)
        );
    }
}
