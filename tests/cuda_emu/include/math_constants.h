// Stand-in for CUDA's math_constants.h under the emulator.
#pragma once

#include <limits>

#define CUDART_NAN (std::numeric_limits<double>::quiet_NaN())
#define CUDART_INF (std::numeric_limits<double>::infinity())
#define CUDART_NAN_F (std::numeric_limits<float>::quiet_NaN())
#define CUDART_INF_F (std::numeric_limits<float>::infinity())
