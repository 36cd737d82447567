//! The command line, the second front door beside `http`: its grammar ([`args`]) and the
//! subcommands other than `serve` ([`commands`]), which call the same services the handlers do.

pub mod args;
pub mod commands;
pub mod config_file;

pub use args::{Cli, Command, LogFormat, Options};
