// fpgac: rank levels (run-time choice of the low-rank factors' rank; fpgac/ir/levels.py).
// Hand-written, copied verbatim into projects whose design has rank levels.
//
// A low-rank factor keeps its components at the largest level's rank, ordered so that each smaller level
// is a prefix. The level (the top function's `rank_level` register) picks a rank from the layer's ROM of
// ranks per level; a first factor (CFG::RANK_OUT) computes only its outputs k < rank (the others keep the
// accumulator's start, 0), a second factor reads only its inputs k < rank and starts from the level's
// bias. Accumulators are exact, so skipping a product equals multiplying a zero weight: the result is the
// static layer truncated to the rank, bit for bit (`fpgac sim --rank-level`).
//
// Components are processed UNROLL at a time: a step (a dense row, a conv pixel) is ceil(rank / UNROLL)
// groups, and one pipelined loop of STEP_II cycles an iteration runs every group of every step, its trip
// count set by the level's rank, so latency falls with the level (analysis/estimate.py counts
// steps * groups * STEP_II). At reuse 1, UNROLL is the whole rank: one group a step, and the unused
// components' products are gated by `k < rank`.
#ifndef FPGAC_LEVELS_H
#define FPGAC_LEVELS_H

#include "fpgac_kernels.h"

namespace fpgac {

// The level the register asks for, clamped to the design's levels (0 is the largest).
template <class CFG>
int level_index(int level) {
  return level < 0 ? 0 : (level >= CFG::LEVELS ? CFG::LEVELS - 1 : level);
}

// The step's accumulators at its start: the level's bias (0 without one).
template <class CFG, class b_t>
void start_step(const b_t b[], int level, typename CFG::acc_t acc[CFG::N_OUT]) {
  FPGAC_LOOP(ranked_init)
  for (int o = 0; o < CFG::N_OUT; o++) {
    acc[o] = 0;
    if (CFG::HAS_BIAS) acc[o] = from_bits<typename CFG::bias_t>(b[level * CFG::N_OUT + o]);
  }
}

// Group g of a step: components k = g * UNROLL + u < rank of a factor with N_OUT outputs; x holds the
// step's inputs (a dense row, or a conv window: TAPS cells per channel, channel-major).
template <class CFG, class in_t, class w_t>
void add_group(const in_t* x, const w_t w[], int g, int rank, typename CFG::acc_t acc[CFG::N_OUT]) {
  FPGAC_LOOP(rank_unrolled)
  for (int u = 0; u < CFG::UNROLL; u++) {
    const int k = g * CFG::UNROLL + u;
    if (k < rank && k < CFG::RANK) {
      if (CFG::RANK_OUT) {  // component k: output k from every input
        FPGAC_LOOP(component_inputs)
        for (int i = 0; i < CFG::N_IN; i++) {
          acc[k] += x[i] * from_bits<typename CFG::weight_t>(w[k * CFG::N_IN + i]);
        }
      } else {  // component k: input k into every output
        FPGAC_LOOP(component_outputs)
        for (int o = 0; o < CFG::N_OUT; o++) {
          acc[o] += x[k] * from_bits<typename CFG::weight_t>(w[o * CFG::RANK + k]);
        }
      }
    }
  }
}

template <class CFG>
int rank_groups(int rank) {
  return (rank + CFG::UNROLL - 1) / CFG::UNROLL;
}

// dense factor: x [ROWS][IN], y [ROWS][N_OUT]; one iteration per (row, group).
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void dense_ranked(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::N_OUT], const w_t w[],
                  const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
  const int groups = rank_groups<CFG>(rank);
  const int MULTS = CFG::MULTS;
  (void)MULTS;  // read by the pragma only
  typename CFG::acc_t acc[CFG::N_OUT];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  int r = 0, g = 0;
  FPGAC_LOOP(rank_groups)
  for (int it = 0; it < CFG::ROWS * groups; it++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::STEP_II)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    FPGAC_PRAGMA(HLS LOOP_TRIPCOUNT min=CFG::ROWS max=CFG::ROWS * CFG::GROUPS)
    if (g == 0) start_step<CFG>(b, level, acc);
    add_group<CFG>(&x[r * CFG::IN], w, g, rank, acc);
    if (g == groups - 1) {
      FPGAC_LOOP(dense_store)
      for (int o = 0; o < CFG::N_OUT; o++) y[r * CFG::N_OUT + o] = acc[o];
    }
    if (++g == groups) g = 0, r++;
  }
}

// io parallel conv factor (groups 1; a second factor is 1 x 1, so its window is its input channels): one
// iteration per (output pixel, group), the window gathered from the whole input.
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv2d_ranked(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW], const w_t w[],
                   const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
  const int groups = rank_groups<CFG>(rank);
  const int MULTS = CFG::MULTS;
  (void)MULTS;  // read by the pragma only
  typename CFG::acc_t acc[CFG::N_OUT];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  int oh = 0, ow = 0, g = 0;
  FPGAC_LOOP(rank_groups)
  for (int it = 0; it < CFG::OH * CFG::OW * groups; it++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::STEP_II)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    FPGAC_PRAGMA(HLS LOOP_TRIPCOUNT min=CFG::OH * CFG::OW max=CFG::OH * CFG::OW * CFG::GROUPS)
    in_t win[CFG::C * CFG::KH * CFG::KW];
    bool valid[CFG::KH * CFG::KW];
    gather_window<CFG>(x, oh, ow, win, valid);
    if (g == 0) start_step<CFG>(b, level, acc);
    add_group<CFG>(win, w, g, rank, acc);
    if (g == groups - 1) {
      FPGAC_LOOP(conv_store)
      for (int oc = 0; oc < CFG::OC; oc++) y[(oc * CFG::OH + oh) * CFG::OW + ow] = acc[oc];
    }
    if (++g == groups) {
      g = 0;
      if (++ow == CFG::OW) ow = 0, oh++;
    }
  }
}

#ifdef FPGAC_STREAM_H
// io stream conv factor: window_stream's line buffer (fpgac_stream.h); each output row, once its input
// rows are in, by one iteration per (pixel, group).
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv_stream_ranked(hls::stream<pixel<in_t, CFG::C> >& x, hls::stream<pixel<out_t, CFG::OUT_C> >& y,
                        const w_t w[], const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
  const int groups = rank_groups<CFG>(rank);
  const int MULTS = CFG::MULTS;
  (void)MULTS;  // read by the pragma only
  typename CFG::acc_t acc[CFG::N_OUT];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  const int SPAN = (CFG::KH - 1) * CFG::DH + 1;
  static in_t rows[SPAN][CFG::W][CFG::C];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=rows complete dim=1)
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=rows complete dim=3)
  FPGAC_LOOP(window_input_rows)
  for (int h = 0; h < CFG::H; h++) {
    FPGAC_LOOP(window_fill)
    for (int iw = 0; iw < CFG::W; iw++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      const pixel<in_t, CFG::C> px = x.read();
      FPGAC_LOOP(window_fill_channels)
      for (int c = 0; c < CFG::C; c++) rows[h % SPAN][iw][c] = px.data[c];
    }
    FPGAC_LOOP(window_output_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      if (last_row<CFG>(oh) != h) continue;
      int ow = 0, g = 0;
      FPGAC_LOOP(rank_groups)
      for (int it = 0; it < CFG::OW * groups; it++) {
        FPGAC_PRAGMA(HLS PIPELINE II=CFG::STEP_II)
        FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
        FPGAC_PRAGMA(HLS LOOP_TRIPCOUNT min=CFG::OW max=CFG::OW * CFG::GROUPS)
        in_t win[CFG::C * CFG::KH * CFG::KW];
        bool valid[CFG::KH * CFG::KW];
        gather_window<CFG>(rows, oh, ow, win, valid);
        if (g == 0) start_step<CFG>(b, level, acc);
        add_group<CFG>(win, w, g, rank, acc);
        if (g == groups - 1) {
          pixel<out_t, CFG::OUT_C> out;
          FPGAC_LOOP(conv_store)
          for (int oc = 0; oc < CFG::OC; oc++) out.data[oc] = acc[oc];
          y.write(out);
        }
        if (++g == groups) g = 0, ow++;
      }
    }
  }
}
#endif

}  // namespace fpgac

#endif  // FPGAC_LEVELS_H
