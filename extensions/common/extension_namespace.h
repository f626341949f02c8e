// Helper code shared by extensions lives in `inline namespace SLUICE_SDK_NS`: the null runtime's
// plugins are all linked into one binary, and the per-extension namespace the SDK build defines
// (sluice_add_extension) keeps each one's copy apart. Builds outside the SDK (the fuzz targets)
// get a default.
#pragma once

#ifndef SLUICE_SDK_NS
#define SLUICE_SDK_NS wasm
#endif
