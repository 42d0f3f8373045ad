//! Process-wide settings for CPU inference, applied by `main` before any other thread starts.

/// Three fixes for the CPU path, each measured on the tiny demo request (docs/PERFORMANCE.md):
///
/// * candle 0.11 runs large element-wise ops on its own "barrier pool": `CANDLE_NUM_THREADS − 1`
///   extra threads that spin (25,000 pauses) after every op before they sleep, next to the rayon
///   workers that run the matmuls and our conv kernels, and the caller spins until the slowest
///   pool thread is done. With a few cores, or other processes on them, the spinning threads take
///   the cores that the work needs: on the 2-core development VM the demo request ran 1.8-2.9 s
///   with the pool and 1.0-1.5 s without it (stage 2 and the audio decode 3x faster, element-wise
///   ops being memory-bound anyway). `CANDLE_NUM_THREADS=1` leaves the pool without threads, so
///   the element-wise ops run inline; matmuls still use every core through rayon.
/// * candle asks for its thread count on every matmul and, unless `RAYON_NUM_THREADS` is set,
///   re-reads `/proc/cpuinfo` each time (`num_cpus::get_physical`): 17,861 opens in one demo
///   request (strace), 1 with the pin. The variable is pinned to the count candle would compute,
///   so nothing else changes.
/// * glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh mappings and
///   unmaps them on free, so every full-resolution activation of the video decoder page-faults
///   its memory in again (perf stat, 4 demo requests: 1.38 M page faults, 79 K with this
///   setting). Keeping large blocks on the heap and not trimming it lets them be reused; the
///   process keeps its peak heap, as a server does anyway.
///   Callers that set `MALLOC_MMAP_MAX_` / `GLIBC_TUNABLES` themselves are left alone.
pub fn tune_for_inference() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_MAX_").is_none()
        && std::env::var_os("GLIBC_TUNABLES").is_none()
    {
        // SAFETY: mallopt only changes allocator parameters; no allocation is in flight.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
