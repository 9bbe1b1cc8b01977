// fpgac trace hooks: with -DFPGAC_TRACE the top function dumps every layer's output (raw mantissas, one
// line per layer and sample) so `fpgac verify` can name the first layer that differs from the simulator.
// Without FPGAC_TRACE (synthesis, cosimulation) the hooks compile to nothing.
#ifndef FPGAC_TRACE_H
#define FPGAC_TRACE_H

#ifdef FPGAC_TRACE
#include <cstdio>

#include "fpgac_kernels.h"

namespace fpgac {

// Where trace lines go; the testbench sets it (null: tracing off).
inline FILE*& trace_file() {
  static FILE* file = 0;
  return file;
}

template <class T>
void trace(const char* name, const T* x, int n) {
  FILE* file = trace_file();
  if (!file) return;
  std::fprintf(file, "T %s", name);
  for (int i = 0; i < n; i++) std::fprintf(file, " %s", mantissa(x[i]).to_string(10).c_str());
  std::fprintf(file, "\n");
}

}  // namespace fpgac

#define FPGAC_TRACE_VALUE(name, x, n) fpgac::trace(name, x, n)
#else
#define FPGAC_TRACE_VALUE(name, x, n)
#endif

#endif  // FPGAC_TRACE_H
