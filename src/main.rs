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
    if matches!(cmd, C::Run(_) | C::Drill(_) | C::Resume(_)) {
        no_huge_pages();
    }
}

/// `mi_option_allow_thp` in the vendored mimalloc v3's `mi_option_t` (checked by a test).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// A run's heap does without transparent huge pages. mimalloc asks for them (`madvise`) on
/// the arena it reserves, so the first touch of each 2 MiB region zeroes 2 MiB; a run
/// allocates a little on many threads (workers, journal writer, planner), and on 2 000 x
/// `true` page faults were 14–22 % of meeseeks' own CPU samples with them, 4–6 % with 4 KiB
/// pages (perf). Done here rather than with `MIMALLOC_ALLOW_THP=0`, whose
/// `prctl(PR_SET_THP_DISABLE)` every step's process (a database a drill starts) would
/// inherit. `plan` keeps them: on the 100 000-service graph they save more faults than they
/// cost.
fn no_huge_pages() {
    // SAFETY: sets an allocator option, read when mimalloc reserves an arena (from now on,
    // without the madvise); nothing else runs yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    // The arena reserved before `main` already has the advice: take it back on the mapping
    // that holds a fresh allocation.
    let probe = Box::new(0u8);
    let addr = &*probe as *const u8 as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let range = maps
        .lines()
        .filter_map(mapping_range)
        .find(|&(start, end)| start <= addr && addr < end);
    if let Some((start, end)) = range {
        // SAFETY: advice only (no data is changed) on a mapping of our own heap.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_NOHUGEPAGE,
            )
        };
    }
}

/// The address range a line of `/proc/self/maps` (or a mapping's first line in `smaps`)
/// starts with: `start-end perms ...`, in hex.
fn mapping_range(line: &str) -> Option<(usize, usize)> {
    let (start, end) = line.split(' ').next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    Some((start, end))
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
    // Whatever mimalloc still holds goes back to the kernel with the process: without this
    // its exit hook would first give it back page run by page run (a run of 2 000 steps made
    // ~235 `madvise` calls, 3–7 ms, between its summary and its exit).
    // SAFETY: sets an allocator option; the other threads are idle or gone.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    /// Option 43 is `allow_thp` (default 1): after `no_huge_pages` it reads 0, and the heap's
    /// mapping no longer asks for huge pages (`nh` among its flags in smaps).
    #[test]
    fn a_runs_heap_asks_for_no_huge_pages() {
        // SAFETY: reads an option.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ALLOW_THP) },
            1
        );
        super::no_huge_pages();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ALLOW_THP) },
            0
        );
        let probe = Box::new(0u8);
        let addr = &*probe as *const u8 as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for l in smaps.lines() {
            if let Some((start, end)) = super::mapping_range(l) {
                inside = start <= addr && addr < end;
            }
            if inside && l.starts_with("VmFlags:") {
                assert!(
                    l.contains(" nh"),
                    "heap mapping still asks for huge pages: {l}"
                );
                return;
            }
        }
        panic!("no mapping holds the heap address {addr:x}");
    }

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
