// Float dot products for the vector index, chosen once at run time for the CPU.
//
// The build targets baseline x86-64 (no -march=native, so one binary runs everywhere), which
// leaves the compiler with SSE2 and no licence to reorder a float reduction. Exact search and the
// HNSW distance are almost all dot products, so this file supplies an AVX2+FMA kernel compiled
// with a function-level target attribute and picks it when the CPU has those features.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <cstddef>

namespace kb::index_internal {

using DotProductFn = float (*)(const float* a, const float* b, size_t n);

// The fastest kernel this CPU supports (resolved once, then cached).
DotProductFn BestDotProduct();

// Portable kernel (eight independent accumulators so that it vectorises even without
// reassociation); also the reference the tests compare the SIMD kernel against.
float DotProductPortable(const float* a, const float* b, size_t n);

// Name of the kernel BestDotProduct() returns ("avx2-fma" or "portable"), for benchmarks.
const char* BestDotProductName();

}  // namespace kb::index_internal
