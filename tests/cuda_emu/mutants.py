"""Hand-made breakages of the CUDA sources that the emulator's checks must catch.

Each entry maps a path under csrc/ to (old, new) text replacements (build.build(mutations=...)).
KERNEL_MUTANTS are caught by the emulated case set compared with the CPU ops
(tests/test_cuda_emu.py::test_kernel_mutant_is_caught); REVERTED_FIXES put back the three low
findings of the 2026-12-07 review, each caught by the sanitizer named beside it (sanitize.py).
docs/testing.md lists both with the case that catches each.
"""

from __future__ import annotations

# name -> (what breaks, mutations, the emulated cases that must catch it: a test-module case-set name)
KERNEL_MUTANTS = {
    "resample_missing_syncwarp": (
        "barrier: resample.cu drops the __syncwarp between the lanes' weight writes and lane 0's cumsum",
        {"cuda/resample.cu": [(
            "  for (int64_t k = lane; k < N; k += 32) w[k] = exp(weight_exponent(load64(lw, k), m));\n  __syncwarp();\n",
            "  for (int64_t k = lane; k < N; k += 32) w[k] = exp(weight_exponent(load64(lw, k), m));\n",
        )]},
        "resample",
    ),
    "fused_tail_overrun": (
        "tail: elementwise.cu stores the element one past the end (<= numel)",
        {"cuda/elementwise.cu": [("      if (e0 + l < numel) out[e0 + l] = res.v[l];", "      if (e0 + l <= numel) out[e0 + l] = res.v[l];")]},
        "fused",
    ),
    "fused_last_sample_coefficients": (
        "index: elementwise.cu computes the coefficients of one sample too few per tile",
        {"cuda/elementwise.cu": [("const Idx n_samples = tile_last / inner - b_first + 1;", "const Idx n_samples = tile_last / inner - b_first;")]},
        "fused",
    ),
    "grad_norm_missing_syncthreads": (
        "barrier: elementwise.cu's gradient-norm kernel sums the warp partials before every warp wrote its own",
        {"cuda/elementwise.cu": [(
            "  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;\n  __syncthreads();\n",
            "  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;\n",
        )]},
        "grad_norm",
    ),
    "normalize_partial_inf_count": (
        "reduction: weights.cu counts a row's +inf entries per lane instead of over the warp",
        {"cuda/weights.cu": [("    n_inf = warp_sum(n_inf);\n", "")]},
        "weights",
    ),
    "tempering_short_butterfly": (
        "reduction: tempering.cu's butterfly stops one stage early (lanes 16 apart never combine)",
        {"cuda/tempering.cu": [(
            "    for (int o = 16; o > 0; o >>= 1) {\n      a = a + __shfl_xor_sync(kFullMask, a, o);",
            "    for (int o = 8; o > 0; o >>= 1) {\n      a = a + __shfl_xor_sync(kFullMask, a, o);",
        )]},
        "tempering",
    ),
}

# name -> (the finding, mutations that put it back, sanitizer that must flag it, driver filter)
REVERTED_FIXES = {
    "N1_shuffle_is_no_barrier": (
        "resample.cu: lane 0 reads w[k] while the other lanes overwrite it with only a __shfl_sync between",
        {"cuda/resample.cu": [(
            "  __syncwarp();  // lane 0's reads of w above come before the lanes overwrite it: a shuffle orders no memory\n",
            "",
        )]},
        "thread",
        "resample/residual/N33",
    ),
    "E13_tail_reads_unwritten_coefficients": (
        "elementwise.cu: tail lanes read coefficient slots nobody wrote",
        {"cuda/elementwise.cu": [(
            "    if (e0 + l >= numel) break;  // past the end: no sample, and no coefficient slot was written for it\n",
            "",
        )]},
        "memcheck",
        "fused/renoise/f16/3x5",
    ),
    "E14_unaligned_dynamic_smem": (
        "elementwise.cu: dynamic shared memory used as double* declared without 16-byte alignment",
        {"cuda/elementwise.cu": [(
            "extern __shared__ __align__(16) unsigned char smem_raw[];",
            "extern __shared__ unsigned char smem_raw[];",
        )]},
        "address",
        "fused/renoise/f64/3x5",
    ),
}
