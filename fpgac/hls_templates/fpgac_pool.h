// fpgac pooling on a stream by scanning: max and average pools (not global ones) in io_stream.
//
// Hand-written, copied verbatim into every generated project built with `--io stream`. A pool does not
// gather its C x KH x KW window into registers: it scans its input one beat of L channels a cycle
// (L = gcd(LI, LO), the lanes its input and output streams both divide into), so what it instantiates
// scales with L, not with C x taps. Per channel group, the last SPW - 1 columns wait in delay lines;
// where a window's last column passes, the row's taps are reduced (max, or a sum in acc_t), and that
// partial is folded into the partial of each output row whose window holds this input row: row memories
// of OW x C partials, one per output row open between input rows, SLOTS of them (slot oh % SLOTS; LUT
// RAM: a read and a write every cycle, and the weights of a network take the block RAM), the window's
// last row giving the output. Rows
// and columns of end padding are scanned as virtual ones (no valid cell), SCAN_H x SCAN_W in all
// (fpgac/analysis/pool_scan.py computes them, the estimate counts the same cycles).
//
// The arithmetic is max_pool_pixel's and avg_pool_pixel's: a max over the window's valid cells (every
// window holds one: the generator checks), or the cells' sum in acc_t (AP_WRAP and at least the input's
// fraction, so the order of additions cannot change it), times recip[count_h[oh] * count_w[ow]], one
// cast.
#ifndef FPGAC_POOL_H
#define FPGAC_POOL_H

#include "fpgac_stream.h"

namespace fpgac {

template <int A, int B>
struct gcd {
  static const int value = gcd<B, A % B>::value;
};

template <int A>
struct gcd<A, 0> {
  static const int value = A;
};

// The lowest value of a fixed-point type: where a running max starts.
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_fixed<W, I, Q, O, N> lowest(const ap_fixed<W, I, Q, O, N>&) {
  ap_fixed<W, I, Q, O, N> v = 0;
  v[W - 1] = 1;
  return v;
}

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_ufixed<W, I, Q, O, N> lowest(const ap_ufixed<W, I, Q, O, N>&) {
  return 0;
}

// Max pooling's partials: running maxima in the input's type.
template <class in_t>
struct max_scan {
  typedef in_t part_t;
  part_t empty() const { return lowest(in_t()); }
  template <class v_t>
  part_t add(const part_t& a, const v_t& b) const {
    return b > a ? part_t(b) : a;
  }
  template <int N, class out_t>
  void finish(const part_t acc[N], int, int, out_t y[N]) const {
    FPGAC_LOOP(max_scan_lanes)
    for (int l = 0; l < N; l++) y[l] = acc[l];
  }
};

// Average pooling's partials: sums in acc_t; the output is the sum times the reciprocal of its window's
// count, one cast.
template <class CFG, class r_t>
struct avg_scan {
  typedef typename CFG::acc_t part_t;
  const r_t* recip;
  const int* count_h;
  const int* count_w;
  part_t empty() const { return 0; }
  template <class v_t>
  part_t add(const part_t& a, const v_t& b) const {
    return a + b;
  }
  template <int N, class out_t>
  void finish(const part_t acc[N], int oh, int ow, out_t y[N]) const {
    const typename CFG::recip_t r = from_bits<typename CFG::recip_t>(recip[count_h[oh] * count_w[ow]]);
    FPGAC_LOOP(avg_scan_lanes)
    for (int l = 0; l < N; l++) y[l] = acc[l] * r;
  }
};

// The pool: SCAN_H x SCAN_W x C / L cycles, one input part of L channels in (while inside the input) and
// at most one output part out a cycle. `op` is a max_scan or avg_scan.
template <class CFG, class OP, class in_t, class out_t, int LI, int LO>
void pool_scan(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y, const OP& op) {
  typedef typename OP::part_t part_t;
  const int L = gcd<LI, LO>::value;
  const int G = CFG::C / L;
  const int SPH = (CFG::KH - 1) * CFG::DH + 1;
  const int SPW = (CFG::KW - 1) * CFG::DW + 1;
  const int DELAYS = SPW > 1 ? SPW - 1 : 1;
  static in_t delay[DELAYS][G][L];  // delay[k][g]: group g of the column k + 1 back
  static part_t rows[CFG::SLOTS][CFG::OW * G][L];  // the open output rows' partials, by column and group
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=delay complete dim=1)
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=delay complete dim=3)
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=rows complete dim=1)
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=rows complete dim=3)
  FPGAC_PRAGMA(HLS BIND_STORAGE variable=rows type=ram_s2p impl=lutram)
  pixel<in_t, LI> in;
  pixel<out_t, LO> out;
  FPGAC_LOOP(pool_scan_rows)
  for (int h = 0; h < CFG::SCAN_H; h++) {
    FPGAC_LOOP(pool_scan_parts)
    for (int t = 0; t < CFG::SCAN_W * G; t++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      const int iw = t / G, g = t % G;
      in_t v[L];
      if (h < CFG::H && iw < CFG::W && (g * L) % LI == 0) in = x.read();
      FPGAC_LOOP(pool_scan_in_lanes)
      for (int l = 0; l < L; l++) v[l] = in.data[(g * L) % LI + l];
      // The row of the window whose last column is iw (output column ow), over its valid columns.
      const int end = iw + CFG::PW - (SPW - 1);
      const int ow = end / CFG::SW;
      const bool ends = end >= 0 && end % CFG::SW == 0 && ow < CFG::OW;
      part_t across[L];
      FPGAC_LOOP(pool_scan_across)
      for (int l = 0; l < L; l++) across[l] = op.empty();
      FPGAC_LOOP(pool_scan_taps)
      for (int kw = 0; kw < CFG::KW; kw++) {
        const int col = iw - (SPW - 1) + kw * CFG::DW;
        const int back = (CFG::KW - 1 - kw) * CFG::DW;
        if (h >= CFG::H || col < 0 || col >= CFG::W) continue;
        FPGAC_LOOP(pool_scan_tap_lanes)
        for (int l = 0; l < L; l++) across[l] = op.add(across[l], back == 0 ? v[l] : delay[back - 1][g][l]);
      }
      FPGAC_LOOP(pool_scan_shift)
      for (int k = DELAYS - 1; k > 0; k--) {
        FPGAC_LOOP(pool_scan_shift_lanes)
        for (int l = 0; l < L; l++) delay[k][g][l] = delay[k - 1][g][l];
      }
      FPGAC_LOOP(pool_scan_delay_lanes)
      for (int l = 0; l < L; l++) delay[0][g][l] = v[l];
      if (!ends) continue;
      // Into each output row whose window holds row h. Slot s holds the open one with oh % SLOTS == s;
      // the row whose window ends here shares its slot with the one whose window starts here (SLOTS
      // rows apart): the older is read and leaves as the output before the newer is written.
      const int newest = (h + CFG::PH) / CFG::SH;
      FPGAC_LOOP(pool_scan_slots)
      for (int s = 0; s < CFG::SLOTS; s++) {
        FPGAC_LOOP(pool_scan_ages)
        for (int age = 1; age >= 0; age--) {
          const int oh = newest - (newest + CFG::SLOTS - s) % CFG::SLOTS - age * CFG::SLOTS;
          const int top = oh * CFG::SH - CFG::PH;
          const int tap = h - top;
          if (oh < 0 || oh >= CFG::OH || tap >= SPH || tap % CFG::DH != 0) continue;
          // The window's first row inside the input starts its partial; its last row is the output.
          const int first = top >= 0 ? 0 : (-top + CFG::DH - 1) / CFG::DH * CFG::DH;
          part_t acc[L];
          FPGAC_LOOP(pool_scan_slot_lanes)
          for (int l = 0; l < L; l++) {
            acc[l] = tap == first ? across[l] : op.add(rows[s][ow * G + g][l], across[l]);
            if (tap != SPH - 1) rows[s][ow * G + g][l] = acc[l];
          }
          if (tap != SPH - 1) continue;
          out_t result[L];
          op.template finish<L>(acc, oh, ow, result);
          FPGAC_LOOP(pool_scan_out_lanes)
          for (int l = 0; l < L; l++) out.data[(g * L) % LO + l] = result[l];
          if ((g * L) % LO + L == LO) y.write(out);
        }
      }
    }
  }
}

// The two pools' entries (the generator's calls).
template <class CFG, class in_t, class out_t, int LI, int LO>
void max_pool_scan(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y) {
  pool_scan<CFG>(x, y, max_scan<in_t>());
}

template <class CFG, class in_t, class out_t, int LI, int LO, class r_t>
void avg_pool_scan(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y,
                   const r_t recip[CFG::RECIP_SIZE], const int count_h[CFG::OH], const int count_w[CFG::OW]) {
  const avg_scan<CFG, r_t> op = {recip, count_h, count_w};
  pool_scan<CFG>(x, y, op);
}

}  // namespace fpgac

#endif  // FPGAC_POOL_H
