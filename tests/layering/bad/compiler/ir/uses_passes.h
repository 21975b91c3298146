// Fixture for the layering test: an ir header that includes a passes header,
// which tests/layering/check_layers.cmake must reject.
#pragma once

#include "compiler/passes/fixture.h"
