#include <gtest/gtest.h>

#include "hisa/hisa.h"

TEST(Smoke, Links) { EXPECT_TRUE(hisa::BackendAvailable(hisa::Backend::kReference)); }
