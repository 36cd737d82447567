//! The command line, the second front door beside `http`: its grammar ([`args`]) and the
//! subcommands other than `serve` ([`commands`]), which call the same services the handlers do.

pub mod args;
pub mod commands;
pub mod config_file;

pub use args::{Cli, Command, LogFormat, Options};

/// `println!` for what the CLI prints: a reader that stops early (`jwt-issuer audit | head`)
/// ends the command quietly (exit 0) where `println!` would panic on the broken pipe.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

/// Writes one line to stdout for [`say!`].
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}
