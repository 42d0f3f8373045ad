//! Process-wide settings for CPU inference, applied by `main` before any other thread starts.

/// Two fixes for the CPU path, both measured on the tiny demo request (docs/PERFORMANCE.md):
///
/// * candle asks for its thread count on every matmul and, unless `RAYON_NUM_THREADS` is set,
///   re-reads `/proc/cpuinfo` each time (`num_cpus::get_physical`): about 18,000 reads per
///   request. The variable is pinned to the count candle would compute, so nothing else changes.
/// * glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh mappings and
///   unmaps them on free, so every full-resolution activation of the video decoder page-faults
///   its memory in again (≈ 60,000 faults per request). Keeping large blocks on the heap and not
///   trimming it lets them be reused; the process keeps its peak heap, as a server does anyway.
///   Callers that set `MALLOC_MMAP_MAX_` / `GLIBC_TUNABLES` themselves are left alone.
pub fn tune_for_inference() {
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
