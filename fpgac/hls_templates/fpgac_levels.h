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
// Components are processed UNROLL at a time by a pipelined loop of STEP_II cycles an iteration that stops
// at the level's rank, so a step (a dense row, a conv pixel) takes ceil(rank / UNROLL) * STEP_II cycles
// and latency falls with the level. At reuse 1, UNROLL is the whole rank: one iteration, and the unused
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

// One step's accumulators over the components k < rank of a factor with N_OUT outputs and N_IN inputs per
// component: x holds the step's inputs (a dense row, or a conv window of TAPS cells per channel).
template <class CFG, class in_t, class w_t, class b_t>
void ranked_step(const in_t* x, const w_t w[], const b_t b[], int level, int rank,
                 typename CFG::acc_t acc[CFG::N_OUT]) {
  FPGAC_PRAGMA(HLS INLINE)
  const int MULTS = CFG::MULTS;
  (void)MULTS;  // read by the pragma only
  FPGAC_LOOP(ranked_init)
  for (int o = 0; o < CFG::N_OUT; o++) {
    acc[o] = 0;
    if (CFG::HAS_BIAS) acc[o] = from_bits<typename CFG::bias_t>(b[level * CFG::N_OUT + o]);
  }
  FPGAC_LOOP(rank_components)
  for (int k0 = 0; k0 < CFG::RANK; k0 += CFG::UNROLL) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::STEP_II)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    FPGAC_PRAGMA(HLS LOOP_TRIPCOUNT min=1 max=CFG::RANK / CFG::UNROLL)
    if (k0 >= rank) break;
    FPGAC_LOOP(rank_unrolled)
    for (int u = 0; u < CFG::UNROLL; u++) {
      const int k = k0 + u;
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
}

// dense factor: x [ROWS][N_IN or RANK], y [ROWS][N_OUT].
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void dense_ranked(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::N_OUT], const w_t w[],
                  const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
  FPGAC_LOOP(dense_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    typename CFG::acc_t acc[CFG::N_OUT];
    FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
    ranked_step<CFG>(&x[r * CFG::IN], w, b, level, rank, acc);
    FPGAC_LOOP(dense_store)
    for (int o = 0; o < CFG::N_OUT; o++) y[r * CFG::N_OUT + o] = acc[o];
  }
}

// conv factor (groups 1; a second factor is 1 x 1, so its window is its input channels): one output pixel.
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv_pixel_ranked(const in_t win[CFG::C * CFG::KH * CFG::KW], const w_t w[], const b_t b[], int level,
                       int rank, out_t y[CFG::OC]) {
  typename CFG::acc_t acc[CFG::N_OUT];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
  ranked_step<CFG>(win, w, b, level, rank, acc);
  FPGAC_LOOP(conv_store)
  for (int oc = 0; oc < CFG::OC; oc++) y[oc] = acc[oc];
}

// io parallel conv factor: every output pixel from the whole input.
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv2d_ranked(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW], const w_t w[],
                   const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
  FPGAC_LOOP(conv_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(conv_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      in_t win[CFG::C * CFG::KH * CFG::KW];
      bool valid[CFG::KH * CFG::KW];
      gather_window<CFG>(x, oh, ow, win, valid);
      out_t pixel[CFG::OC];
      conv_pixel_ranked<CFG>(win, w, b, level, rank, pixel);
      FPGAC_LOOP(conv_store)
      for (int oc = 0; oc < CFG::OC; oc++) y[(oc * CFG::OH + oh) * CFG::OW + ow] = pixel[oc];
    }
  }
}

#ifdef FPGAC_STREAM_H
// io stream conv factor: window_stream's line buffer (fpgac_stream.h), each completed output row computed
// pixel by pixel at the level's rank.
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv_stream_ranked(hls::stream<pixel<in_t, CFG::C> >& x, hls::stream<pixel<out_t, CFG::OUT_C> >& y,
                        const w_t w[], const b_t b[], const int ranks[CFG::LEVELS], int rank_level) {
  const int level = level_index<CFG>(rank_level);
  const int rank = ranks[level];
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
      FPGAC_LOOP(window_output_cols)
      for (int ow = 0; ow < CFG::OW; ow++) {
        in_t win[CFG::C * CFG::KH * CFG::KW];
        bool valid[CFG::KH * CFG::KW];
        gather_window<CFG>(rows, oh, ow, win, valid);
        pixel<out_t, CFG::OUT_C> out;
        conv_pixel_ranked<CFG>(win, w, b, level, rank, out.data);
        y.write(out);
      }
    }
  }
}
#endif

}  // namespace fpgac

#endif  // FPGAC_LEVELS_H
