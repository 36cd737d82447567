//! The `jwt-issuer` binary: parses the command line and hands over to the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use jwt_issuer::cli::commands as cli;
use jwt_issuer::cli::{Cli, Command, LogFormat};
use jwt_issuer::logs::{LogSink, lines};
use jwt_issuer::startup::Application;

fn main() -> ExitCode {
    // Bad options exit with status 2 and a message naming the option, before any I/O.
    let args = Cli::parse_args();
    let logs = init_logs(args.options.log_format);
    let result = match args.command {
        Command::Serve => serve(&args.options),
        Command::Migrate => cli::migrate(&args.options),
        Command::Healthcheck => cli::healthcheck(&args.options),
        Command::Config => {
            jwt_issuer::say!("{}", args.effective.join("\n"));
            Ok(())
        }
        Command::User(c) => cli::user(&args.options, c),
        Command::Key(c) => cli::key(&args.options, c),
        Command::Kek(c) => cli::kek(&args.options, c),
        Command::Client(c) => cli::client(&args.options, c),
        Command::Scope(c) => cli::scope(&args.options, c),
        Command::Audit { limit } => cli::audit(&args.options, limit),
    };
    logs.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr in batches ([`LogSink`]), filtered by `RUST_LOG` (default `info`). What
/// is still buffered is written when the command ends (the caller flushes) or panics.
fn init_logs(format: LogFormat) -> LogSink {
    let sink = LogSink::stderr();
    let on_panic = sink.clone();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.flush();
        report(info);
    }));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink.clone());
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(lines::Text)
            .init(),
        LogFormat::Json => logs.json().event_format(lines::Json::new()).init(),
    }
    sink
}

fn serve(options: &jwt_issuer::cli::Options) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(options)?;
        tracing::info!(port = app.port(), issuer = %app.state().issuer.settings.issuer, "serving");
        app.run_until_stopped().await?;
        Ok(())
    })
}
