use clap::Parser;

/// mimalloc rather than glibc's malloc: loading and planning a 100 000-service graph makes
/// about a million small allocations, and with glibc a fifth of `meeseeks plan`'s time on
/// it went to first-touch page faults on memory the allocator had just returned to the
/// kernel (53 000 minor faults against ~350 with mimalloc, measured) and to malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the vendored mimalloc v3's `mi_option_t` (mimalloc.h; the Rust
/// crate has no constant for it). A test below checks it still names that option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// One-shot commands never give freed memory back to the kernel: by default mimalloc purges
/// (decommits) free memory, and `plan` of a 100 000-service graph frees the parsed TOML tree
/// (on another thread) and then allocates the plan and its JSON, so much of the same memory
/// was faulted in and zeroed twice — 0.44–0.46 s → 0.35–0.39 s wall on the issue-10 graph. Commands that
/// live long (runs, `serve`, `stub`, `preflight --every`) keep mimalloc's default, so that
/// memory they no longer need goes back to the system.
fn keep_freed_memory(cmd: &meeseeks::cli::Command) {
    use meeseeks::cli::Command as C;
    let long_lived = match cmd {
        C::Run(_) | C::Drill(_) | C::Resume(_) | C::Serve(_) | C::Stub(_) => true,
        C::Preflight(a) => a.every.is_some(),
        _ => false,
    };
    if !long_lived {
        // SAFETY: sets a process-wide allocator option before any other thread exists; the
        // option is read when mimalloc decides to purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() {
    let cli = meeseeks::cli::Cli::parse();
    keep_freed_memory(&cli.command);
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

#[cfg(test)]
mod tests {
    /// The option number is mimalloc's `mi_option_purge_delay`: its default in the vendored
    /// v3 is 1000 (ms, src/options.c), and the next option is `use_numa_nodes` (the crate's
    /// constant, 16). If the vendored mimalloc renumbers its options, this fails.
    #[test]
    fn purge_delay_is_option_15() {
        assert_eq!(
            libmimalloc_sys::mi_option_use_numa_nodes,
            super::MI_OPTION_PURGE_DELAY + 1
        );
        // SAFETY: reads an option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000, "mimalloc's default purge delay");
    }
}
