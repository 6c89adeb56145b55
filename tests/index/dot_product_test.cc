// The runtime-selected dot kernel must agree with the portable one on every length (the SIMD
// path has a 32-wide body, an 8-wide loop and a scalar tail).
#include "index/dot_product.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace kb::index_internal {
namespace {

TEST(IndexDotProductTest, BestKernelMatchesPortableOnAllLengths) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t n = 0; n <= 100; ++n) {
    std::vector<float> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      a[i] = u(rng);
      b[i] = u(rng);
    }
    double exact = 0;
    for (size_t i = 0; i < n; ++i) exact += static_cast<double>(a[i]) * b[i];
    EXPECT_NEAR(BestDotProduct()(a.data(), b.data(), n), exact, 1e-4) << "n=" << n;
    EXPECT_NEAR(DotProductPortable(a.data(), b.data(), n), exact, 1e-4) << "n=" << n;
  }
}

}  // namespace
}  // namespace kb::index_internal
