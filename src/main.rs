use clap::Parser;

fn main() {
    let cli = meeseeks::cli::Cli::parse();
    meeseeks::cli::init_tracing(&cli.global);
    let code = match meeseeks::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            if matches!(e, meeseeks::Error::Invalid(_)) {
                // Already rendered diagnostics, ending with the count line.
                eprint!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
