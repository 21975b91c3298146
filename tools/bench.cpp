// `descent bench`: steady-state train-step speed of the compiled model against
// the FMA peak of this machine, measured on the spot.
#include "tools/commands.h"

#include <stdexcept>

namespace descent {

int runBench(const CommonArgs&) { throw std::runtime_error("descent bench is not built yet"); }

} // namespace descent
