// TEMPORARY stub, replaced by the .npy reader.
#include "hisa/workload.h"
