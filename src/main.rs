use clap::Parser;

/// mimalloc rather than glibc's malloc: loading and planning a 100 000-service graph makes
/// about a million small allocations, and with glibc a fifth of `meeseeks plan`'s time on
/// it went to first-touch page faults on memory the allocator had just returned to the
/// kernel (53 000 minor faults against ~350 with mimalloc, measured) and to malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
