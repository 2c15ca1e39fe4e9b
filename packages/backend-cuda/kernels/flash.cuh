// (being written)
#pragma once
#include "mma.cuh"
