// The streaming read both benchmarks measure bandwidth with (tensor/bandwidth.h).
#pragma once
#include "tensor/bandwidth.h"

using h1bkv::stream_sum;
