// fpgac OOD monitor kernels (fpgac/passes/ood.py): the energies of the patches of a layer's input, exact.
//
// Copied into projects whose graph has a monitor. A patch is a conv layer's zero-padded window (taps in the
// order of a weight row: channel, then kernel row, then column) or a dense layer's input row. The monitor's
// score is num / den with num = sum_p ||V_k^T h_p||^2 and den = sum_p ||h_p||^2; both are computed here as
// exact fixed-point numbers (CFG::acc_t holds every projection, out_t every sum), and the flag compares
// num < tau * den without a divider (layers.h). See fixed_kernels.patch_energy for the contract.
#ifndef FPGAC_OOD_H
#define FPGAC_OOD_H

#include "fpgac_kernels.h"

namespace fpgac {

// The flat input index of tap t of patch p, or -1 where the tap falls into the zero padding.
template <class CFG>
int patch_index(int p, int t) {
  if (CFG::ROWS) return p * CFG::TAPS + t;  // a dense layer's input: patch p is row p
  const int c = t / (CFG::KH * CFG::KW), kh = (t / CFG::KW) % CFG::KH, kw = t % CFG::KW;
  const int h = (p / CFG::OW) * CFG::SH - CFG::PH + kh * CFG::DH;
  const int w = (p % CFG::OW) * CFG::SW - CFG::PW + kw * CFG::DW;
  if (h < 0 || h >= CFG::H || w < 0 || w >= CFG::W) return -1;
  return (c * CFG::H + h) * CFG::W + w;
}

// y = sum over patches of ||h_p||^2, every square and sum exact in out_t. One patch a cycle: its TAPS
// squares in parallel (the estimate counts TAPS multipliers and PATCHES steps).
template <class CFG, class in_t, class out_t>
void patch_energy(const in_t x[CFG::IN_SIZE], out_t y[1]) {
  out_t total = 0;
  FPGAC_LOOP(energy_patches)
  for (int p = 0; p < CFG::PATCHES; p++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    FPGAC_LOOP(energy_taps)
    for (int t = 0; t < CFG::TAPS; t++) {
      const int i = patch_index<CFG>(p, t);
      if (i >= 0) total += x[i] * x[i];
    }
  }
  y[0] = total;
}

// y = sum over patches p and directions j of (sum_t basis[j][t] * h_p[t])^2: each projection exact in acc_t,
// its square and the sum exact in out_t. One direction of one patch a cycle: TAPS products in parallel, the
// basis reshaped so that a row is one word (the estimate counts PATCHES * K steps).
template <class CFG, class in_t, class out_t, class bits_t>
void patch_energy_projected(const in_t x[CFG::IN_SIZE], out_t y[1], const bits_t basis[CFG::K * CFG::TAPS]) {
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=basis cyclic factor=CFG::TAPS)
  out_t total = 0;
  FPGAC_LOOP(energy_patches)
  for (int p = 0; p < CFG::PATCHES; p++) {
    FPGAC_LOOP(energy_directions)
    for (int j = 0; j < CFG::K; j++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      typename CFG::acc_t s = 0;
      FPGAC_LOOP(energy_taps)
      for (int t = 0; t < CFG::TAPS; t++) {
        const int i = patch_index<CFG>(p, t);
        if (i >= 0) s += x[i] * from_bits<typename CFG::basis_t>(basis[j * CFG::TAPS + t]);
      }
      total += s * s;
    }
  }
  y[0] = total;
}

}  // namespace fpgac

#endif  // FPGAC_OOD_H
