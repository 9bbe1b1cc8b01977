// fpgac kernel library: the arithmetic of every fixed-point op, as fpgac/interp/fixed_kernels.py states it.
//
// Hand-written, copied verbatim into every generated project. Each kernel is a template over the layer's
// types and a config struct of compile-time sizes (generated per layer in layers.h), so every loop bound
// is static: no dynamic allocation, no recursion. Tensors are flat arrays in logical (row-major, ONNX) order.
//
// Exactness rules the kernels rely on (see fpgac/interp/fixed_kernels.py for the full contract):
//  * accumulators (CFG::acc_t) are AP_TRN/AP_WRAP and hold every product's fraction, so `acc += x * w` is a
//    sum modulo 2^W: the order of the additions cannot change the result;
//  * every value is cast once into its output type, by `out_t y = expr;` on an exact ap_fixed expression;
//  * table indices and the softmax division work on raw bits (ap_int / ap_uint), not on doubles;
//  * constant arrays hold raw bits (see from_bits); CFG names their types (weight_t, bias_t, ...).
#ifndef FPGAC_KERNELS_H
#define FPGAC_KERNELS_H

#include "ap_fixed.h"
#include "ap_int.h"

// HLS pragmas through _Pragma, only when synthesizing: g++ C-simulation then compiles with -Wall without
// "unknown pragma" noise, and Vitis HLS (which defines __SYNTHESIS__) sees every directive.
// Loop labels likewise (they name loops in HLS reports; g++ -Wall would call them unused).
#ifdef __SYNTHESIS__
#define FPGAC_PRAGMA(x) _Pragma(#x)
#define FPGAC_LOOP(name) name:
#else
#define FPGAC_PRAGMA(x)
#define FPGAC_LOOP(name)
#endif

namespace fpgac {

// ---------------------------------------------------------------------------------------------------------
// raw bits

// The mantissa (stored integer) of a fixed-point value, as a signed / unsigned integer of the same width.
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_int<W> mantissa(const ap_fixed<W, I, Q, O, N>& x) {
  ap_int<W> m = 0;
  m.range(W - 1, 0) = x.range(W - 1, 0);
  return m;
}

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_uint<W> mantissa(const ap_ufixed<W, I, Q, O, N>& x) {
  ap_uint<W> m = 0;
  m.range(W - 1, 0) = x.range(W - 1, 0);
  return m;
}

// A constant stored as its raw bits: constants (weights, tables) are integer arrays of the mantissas, which
// C++ initializes at compile time (an ap_fixed array needs a constructor call per element: g++ takes
// minutes on a million weights), read through this: pure wiring in hardware.
template <class T, class B>
T from_bits(B bits) {
  T value;
  value.range(T::width - 1, 0) = bits;
  return value;
}

// Index of x in a lookup table: clamp(floor(x / 2^SHIFT) + OFFSET, 0, SIZE - 1), where S = frac(x) + SHIFT
// (fixed_kernels.table_index). Values beyond +-(SIZE + |OFFSET|) clamp to an end whatever the offset, so the
// mantissa is limited to that first; every intermediate then fits in 64 bits for any input width.
template <int S, int OFFSET, int SIZE, class T>
int table_index(const T& x) {
  static_assert(SIZE + (OFFSET < 0 ? -OFFSET : OFFSET) < (1 << 23), "table index out of range");
  const long long limit = SIZE + (OFFSET < 0 ? -OFFSET : OFFSET);
  const ap_int<T::width + 1> m = mantissa(x);  // one more bit: an unsigned mantissa stays non-negative
  long long q;
  if (S >= 0) {
    // Arithmetic right shift = floor division by 2^S; from S = width on, only the sign remains.
    const ap_int<T::width + 1> shifted = m >> (S < 0 ? 0 : (S > T::width ? T::width : S));
    q = shifted < -limit ? -limit : (shifted > limit ? limit : shifted.to_int64());
  } else {
    // A left shift: |c| <= limit < 2^23, and any nonzero c shifted by 24 or more lies beyond the limit.
    const long long c = m < -limit ? -limit : (m > limit ? limit : m.to_int64());
    q = c * (1LL << (-S < 24 ? -S : 24));
    q = q < -limit ? -limit : (q > limit ? limit : q);
  }
  const long long idx = q + OFFSET;
  return idx < 0 ? 0 : (idx > SIZE - 1 ? SIZE - 1 : (int)idx);
}

// Weights in UltraRAM: the bitstream cannot initialise URAM, so such a layer's weights are in the weight
// image (weights.bin, read through the layer's m_axi port as off-chip weights are) and copied into its
// on-chip memory once, on its first call; later calls find `ready` set and only read the memory.
template <int N, class raw_t>
void preload(const raw_t* src, raw_t dst[N], bool& ready) {
  if (ready) return;
  FPGAC_LOOP(preload_words)
  for (int i = 0; i < N; i++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    dst[i] = src[i];
  }
  ready = true;
}

// The accumulator's start for output o: its bias (exact in acc_t), or 0 for a layer without one.
template <class CFG, class b_t>
typename CFG::acc_t initial_acc(const b_t b[], int o) {
  typename CFG::acc_t acc = 0;
  if (CFG::HAS_BIAS) acc = from_bits<typename CFG::bias_t>(b[o]);
  return acc;
}

// One product into the accumulator. SIGNS: binary/ternary weights (fpgac/ir/sign_weights.py), every weight
// -s, 0 or +s with s the 2-bit weight_t's LSB: x * s is x with its binary point moved (wiring), so the
// product is a conditional add or subtract and needs no multiplier. Exact either way.
template <bool SIGNS, class CFG, class in_t>
void mac(typename CFG::acc_t& acc, in_t x, typename CFG::weight_t w) {
  if (SIGNS) {
    const typename CFG::weight_t s = from_bits<typename CFG::weight_t>(1);
    if (w > 0) acc += x * s;
    else if (w < 0) acc -= x * s;
  } else {
    acc += x * w;
  }
}

// ---------------------------------------------------------------------------------------------------------
// dense: y[r][o] = acc_t(bias[o]) + sum_i x[r][i] * w[o][i], then one cast. x is [ROWS][IN] (the last axis
// is the feature axis), w is [OUT][IN]. One row per step: the OUT x IN products of a row are spread over
// CFG::REUSE cycles on MULTS multipliers (II = REUSE), as the estimate (analysis/estimate.py) counts them.
template <class CFG, bool SIGNS = false, class in_t, class out_t, class w_t, class b_t>
void dense(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const w_t w[CFG::OUT * CFG::IN],
           const b_t b[CFG::BIAS_SIZE]) {
  const int MULTS = (CFG::OUT * CFG::IN + CFG::REUSE - 1) / CFG::REUSE;
  (void)MULTS;  // read by the pragma only
  FPGAC_LOOP(dense_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    FPGAC_LOOP(dense_outputs)
    for (int o = 0; o < CFG::OUT; o++) {
      typename CFG::acc_t acc = initial_acc<CFG>(b, o);
      FPGAC_LOOP(dense_taps)
      for (int i = 0; i < CFG::IN; i++) {
        mac<SIGNS, CFG>(acc, x[r * CFG::IN + i], from_bits<typename CFG::weight_t>(w[o * CFG::IN + i]));
      }
      y[r * CFG::OUT + o] = acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sliding windows (conv, pooling) are computed one output pixel at a time from a window: the C x KH x KW
// input cells under the kernel, with `valid[k]` false (and the cell 0) where the tap falls into padding.
// gather_window takes them from the whole input array (io_parallel) or from a line buffer (io_stream,
// fpgac_stream.h); both styles then run the same per-pixel code below, so the arithmetic is one.

// Input cell (c, ih, iw) of a window, from the whole input x [C][H][W] (io parallel) or from a line buffer
// holding the last SPAN input rows, row ih at ih % SPAN, channels last (io stream, fpgac_stream.h).
template <class CFG, class in_t>
in_t window_cell(const in_t* x, int c, int ih, int iw) {
  return x[(c * CFG::H + ih) * CFG::W + iw];
}

template <class CFG, class in_t>
in_t window_cell(in_t (*rows)[CFG::W][CFG::C], int c, int ih, int iw) {
  return rows[ih % ((CFG::KH - 1) * CFG::DH + 1)][iw][c];
}

// The window of output pixel (oh, ow) from src (either source above).
template <class CFG, class src_t, class in_t>
void gather_window(src_t src, int oh, int ow, in_t win[CFG::C * CFG::KH * CFG::KW],
                   bool valid[CFG::KH * CFG::KW]) {
  FPGAC_LOOP(window_rows)
  for (int kh = 0; kh < CFG::KH; kh++) {
    FPGAC_LOOP(window_cols)
    for (int kw = 0; kw < CFG::KW; kw++) {
      const int ih = oh * CFG::SH - CFG::PH + kh * CFG::DH;
      const int iw = ow * CFG::SW - CFG::PW + kw * CFG::DW;
      const bool inside = ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W;
      valid[kh * CFG::KW + kw] = inside;
      FPGAC_LOOP(window_channels)
      for (int c = 0; c < CFG::C; c++) {
        win[(c * CFG::KH + kh) * CFG::KW + kw] = inside ? window_cell<CFG>(src, c, ih, iw) : in_t(0);
      }
    }
  }
}

// conv: grouped 2-d cross-correlation with w [OC][C/G][KH][KW]; a 1-d convolution is the H = KH = OH = 1
// case. A padding cell is 0 in the window, so its product adds exactly nothing to the exact accumulator.
// One output pixel (all OC channels) per step: its products on MULTS multipliers over REUSE cycles.
// `win` is the window array, or a line buffer's window read where it lies (fpgac_stream.h's line_window).
template <class CFG, bool SIGNS = false, class win_t, class out_t, class w_t, class b_t>
void conv_pixel(const win_t& win, const w_t w[CFG::OC * CFG::CG * CFG::KH * CFG::KW],
                const b_t b[CFG::BIAS_SIZE], out_t y[CFG::OC]) {
  FPGAC_LOOP(conv_channels)
  for (int oc = 0; oc < CFG::OC; oc++) {
    const int group = oc / (CFG::OC / CFG::G);
    typename CFG::acc_t acc = initial_acc<CFG>(b, oc);
    FPGAC_LOOP(conv_taps)
    for (int t = 0; t < CFG::CG * CFG::KH * CFG::KW; t++) {
      const int tap = group * CFG::CG * CFG::KH * CFG::KW + t;
      mac<SIGNS, CFG>(acc, win[tap], from_bits<typename CFG::weight_t>(w[oc * CFG::CG * CFG::KH * CFG::KW + t]));
    }
    y[oc] = acc;
  }
}

template <class CFG, bool SIGNS = false, class in_t, class out_t, class w_t, class b_t>
void conv2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW],
            const w_t w[CFG::OC * CFG::CG * CFG::KH * CFG::KW], const b_t b[CFG::BIAS_SIZE]) {
  const int MULTS = (CFG::OC * CFG::CG * CFG::KH * CFG::KW + CFG::REUSE - 1) / CFG::REUSE;
  (void)MULTS;  // read by the pragma only
  FPGAC_LOOP(conv_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(conv_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
      FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
      in_t win[CFG::C * CFG::KH * CFG::KW];
      bool valid[CFG::KH * CFG::KW];
      gather_window<CFG>(x, oh, ow, win, valid);
      out_t pixel[CFG::OC];
      conv_pixel<CFG, SIGNS>(win, w, b, pixel);
      FPGAC_LOOP(conv_store)
      for (int oc = 0; oc < CFG::OC; oc++) y[(oc * CFG::OH + oh) * CFG::OW + ow] = pixel[oc];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// XNOR-popcount (fpgac/ir/bipolar.py): binary weights +-s_w on a bipolar input +-s_x. Every product is
// +-s_x * s_w, positive where the signs agree, so a sum over n taps is s_x * s_w * (2 * popcount(XNOR) - n):
// no multiplier and no adder per product, one XNOR and a popcount tree. The weights are stored as sign bits
// (bool w: 1 for +s_w), 1 bit each; the input's bit is its sign bit inverted. CFG::COUNT_BITS holds the
// largest tap count, unsigned. Exact, as the multiply-accumulate kernels.

// 1 for +s_x, 0 for -s_x.
template <class in_t>
bool sign_bit(const in_t& x) {
  return !x.is_neg();
}

// s_x * s_w * (2 * agree - n) in the accumulator (both scales are the LSBs of their 2-bit types): the sum of
// n products of which `agree` are positive, exact in acc_t like every product.
template <class CFG, class in_t>
typename CFG::acc_t xnor_sum(ap_uint<CFG::COUNT_BITS> agree, ap_uint<CFG::COUNT_BITS> n) {
  const ap_int<CFG::COUNT_BITS + 2> count = 2 * agree - n;
  return count * (from_bits<in_t>(1) * from_bits<typename CFG::weight_t>(1));
}

// dense with a bipolar x: the structure of dense, each output's sum a popcount over its IN taps.
template <class CFG, class in_t, class out_t, class b_t>
void dense_xnor(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const bool w[CFG::OUT * CFG::IN],
                const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(dense_xnor_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
    FPGAC_LOOP(dense_xnor_outputs)
    for (int o = 0; o < CFG::OUT; o++) {
      ap_uint<CFG::COUNT_BITS> agree = 0;
      FPGAC_LOOP(dense_xnor_taps)
      for (int i = 0; i < CFG::IN; i++) agree += sign_bit(x[r * CFG::IN + i]) == w[o * CFG::IN + i];
      typename CFG::acc_t acc = initial_acc<CFG>(b, o);
      acc += xnor_sum<CFG, in_t>(agree, CFG::IN);
      y[r * CFG::OUT + o] = acc;
    }
  }
}

// conv_pixel with a bipolar window: a padding cell (valid false) is no tap, as its product with 0 adds
// nothing; n counts the taps inside the input.
template <class CFG, class in_t, class out_t, class b_t>
void conv_xnor_pixel(const in_t win[CFG::C * CFG::KH * CFG::KW], const bool valid[CFG::KH * CFG::KW],
                     const bool w[CFG::OC * CFG::CG * CFG::KH * CFG::KW], const b_t b[CFG::BIAS_SIZE], out_t y[CFG::OC]) {
  ap_uint<CFG::COUNT_BITS> inside = 0;
  FPGAC_LOOP(conv_xnor_valid)
  for (int k = 0; k < CFG::KH * CFG::KW; k++) inside += valid[k];
  const ap_uint<CFG::COUNT_BITS> n = inside * CFG::CG;
  FPGAC_LOOP(conv_xnor_channels)
  for (int oc = 0; oc < CFG::OC; oc++) {
    const int group = oc / (CFG::OC / CFG::G);
    ap_uint<CFG::COUNT_BITS> agree = 0;
    FPGAC_LOOP(conv_xnor_taps)
    for (int t = 0; t < CFG::CG * CFG::KH * CFG::KW; t++) {
      const int tap = group * CFG::CG * CFG::KH * CFG::KW + t;
      agree += valid[t % (CFG::KH * CFG::KW)] && sign_bit(win[tap]) == w[oc * CFG::CG * CFG::KH * CFG::KW + t];
    }
    typename CFG::acc_t acc = initial_acc<CFG>(b, oc);
    acc += xnor_sum<CFG, in_t>(agree, n);
    y[oc] = acc;
  }
}

// conv2d with a bipolar input (io parallel): conv2d's loops around conv_xnor_pixel.
template <class CFG, class in_t, class out_t, class b_t>
void conv2d_xnor(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW],
                 const bool w[CFG::OC * CFG::CG * CFG::KH * CFG::KW], const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(conv_xnor_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(conv_xnor_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
      in_t win[CFG::C * CFG::KH * CFG::KW];
      bool valid[CFG::KH * CFG::KW];
      gather_window<CFG>(x, oh, ow, win, valid);
      out_t pixel[CFG::OC];
      conv_xnor_pixel<CFG>(win, valid, w, b, pixel);
      FPGAC_LOOP(conv_xnor_store)
      for (int oc = 0; oc < CFG::OC; oc++) y[(oc * CFG::OH + oh) * CFG::OW + ow] = pixel[oc];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// pooling (1-d: H = 1). Cells outside the input never win a max and add nothing to a sum.

template <class CFG, class in_t, class out_t>
void max_pool_pixel(const in_t win[CFG::C * CFG::KH * CFG::KW], const bool valid[CFG::KH * CFG::KW],
                    out_t y[CFG::C]) {
  FPGAC_LOOP(max_pool_channels)
  for (int c = 0; c < CFG::C; c++) {
    in_t best = 0;
    bool first = true;
    FPGAC_LOOP(max_pool_taps)
    for (int k = 0; k < CFG::KH * CFG::KW; k++) {
      const in_t v = win[c * CFG::KH * CFG::KW + k];
      if (valid[k] && (first || v > best)) {
        best = v;
        first = false;
      }
    }
    y[c] = best;
  }
}

// avg pooling: the window sum in acc_t (exact), times recip[count], one cast. count_h/count_w hold, per
// output row/column, how many cells count (float_kernels.divisor_1d); the count is their product.
template <class CFG, class in_t, class out_t, class r_t>
void avg_pool_pixel(const in_t win[CFG::C * CFG::KH * CFG::KW], const r_t recip[CFG::RECIP_SIZE], int count,
                    out_t y[CFG::C]) {
  FPGAC_LOOP(avg_pool_channels)
  for (int c = 0; c < CFG::C; c++) {
    typename CFG::acc_t acc = 0;
    FPGAC_LOOP(avg_pool_taps)
    for (int k = 0; k < CFG::KH * CFG::KW; k++) acc += win[c * CFG::KH * CFG::KW + k];
    y[c] = acc * from_bits<typename CFG::recip_t>(recip[count]);
  }
}

template <class CFG, class in_t, class out_t>
void max_pool2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::C * CFG::OH * CFG::OW]) {
  FPGAC_LOOP(max_pool_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(max_pool_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      in_t win[CFG::C * CFG::KH * CFG::KW];
      bool valid[CFG::KH * CFG::KW];
      gather_window<CFG>(x, oh, ow, win, valid);
      out_t pixel[CFG::C];
      max_pool_pixel<CFG>(win, valid, pixel);
      FPGAC_LOOP(max_pool_store)
      for (int c = 0; c < CFG::C; c++) y[(c * CFG::OH + oh) * CFG::OW + ow] = pixel[c];
    }
  }
}

template <class CFG, class in_t, class out_t, class r_t>
void avg_pool2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::C * CFG::OH * CFG::OW],
                const r_t recip[CFG::RECIP_SIZE], const int count_h[CFG::OH], const int count_w[CFG::OW]) {
  FPGAC_LOOP(avg_pool_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(avg_pool_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
      in_t win[CFG::C * CFG::KH * CFG::KW];
      bool valid[CFG::KH * CFG::KW];
      gather_window<CFG>(x, oh, ow, win, valid);
      out_t pixel[CFG::C];
      avg_pool_pixel<CFG>(win, recip, count_h[oh] * count_w[ow], pixel);
      FPGAC_LOOP(avg_pool_store)
      for (int c = 0; c < CFG::C; c++) y[(c * CFG::OH + oh) * CFG::OW + ow] = pixel[c];
    }
  }
}

// reduce over axes: cells[o * R + k] is the k-th input cell of output o (a ROM made by the generator).
template <class CFG, class in_t, class out_t, class r_t>
void reduce_mean(const in_t x[CFG::IN_SIZE], out_t y[CFG::OUT_SIZE], const r_t recip[1], const int cells[]) {
  FPGAC_LOOP(reduce_outputs)
  for (int o = 0; o < CFG::OUT_SIZE; o++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    typename CFG::acc_t acc = 0;
    FPGAC_LOOP(reduce_cells)
    for (int k = 0; k < CFG::R; k++) acc += x[cells[o * CFG::R + k]];
    y[o] = acc * from_bits<typename CFG::recip_t>(recip[0]);
  }
}

template <class CFG, class in_t, class out_t>
void reduce_max(const in_t x[CFG::IN_SIZE], out_t y[CFG::OUT_SIZE], const int cells[]) {
  FPGAC_LOOP(reduce_outputs)
  for (int o = 0; o < CFG::OUT_SIZE; o++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    in_t best = x[cells[o * CFG::R]];
    FPGAC_LOOP(reduce_cells)
    for (int k = 1; k < CFG::R; k++) {
      const in_t v = x[cells[o * CFG::R + k]];
      if (v > best) best = v;
    }
    y[o] = best;
  }
}

// ---------------------------------------------------------------------------------------------------------
// softmax over `AXIS` of a [OUTER][N][INNER] view: d = x - max (exact, <= 0), e = exp_table[d], s = sum(e) in
// acc_t, p = floor(e * 2^F / s) by integer division of raw bits (e and s share their fraction), one cast.
template <class CFG, class in_t, class out_t, class bits_t>
void softmax(const in_t x[CFG::OUTER * CFG::N * CFG::INNER], out_t y[CFG::OUTER * CFG::N * CFG::INNER],
             const bits_t table[CFG::TABLE_SIZE]) {
  typedef typename CFG::table_t t_t;
  typedef typename CFG::diff_t diff_t;
  typedef typename CFG::acc_t acc_t;
  typedef ap_ufixed<CFG::F + 2, 2> quotient_t;  // p <= 1: two integer bits hold it, unsigned
  FPGAC_LOOP(softmax_outer)
  for (int a = 0; a < CFG::OUTER; a++) {
    FPGAC_LOOP(softmax_inner)
    for (int b = 0; b < CFG::INNER; b++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      in_t best = x[a * CFG::N * CFG::INNER + b];
      FPGAC_LOOP(softmax_max)
      for (int i = 1; i < CFG::N; i++) {
        const in_t v = x[(a * CFG::N + i) * CFG::INNER + b];
        if (v > best) best = v;
      }
      t_t e[CFG::N];
      acc_t sum = 0;
      FPGAC_LOOP(softmax_exp)
      for (int i = 0; i < CFG::N; i++) {
        const diff_t d = x[(a * CFG::N + i) * CFG::INNER + b] - best;
        e[i] = from_bits<t_t>(table[table_index<CFG::SHIFT, CFG::OFFSET, CFG::TABLE_SIZE>(d)]);
        sum += e[i];
      }
      const ap_uint<acc_t::width> s = mantissa(sum);
      FPGAC_LOOP(softmax_divide)
      for (int i = 0; i < CFG::N; i++) {
        const ap_uint<t_t::width + CFG::F> num = ap_uint<t_t::width + CFG::F>(mantissa(e[i])) << CFG::F;
        quotient_t p = 0;
        p.range(CFG::F + 1, 0) = ap_uint<CFG::F + 2>(num / s);
        y[(a * CFG::N + i) * CFG::INNER + b] = p;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// lrn over the channels of a [C][INNER] view: s = sum of x[c']^2 over the SIZE channels from c - BEFORE
// (exact in acc_t; channels past the ends add nothing), f = table[s] = (bias + alpha / size * s)^-beta at
// the bin's centre, y = x * f (an exact product), one cast.
template <class CFG, class in_t, class out_t, class bits_t>
void lrn(const in_t x[CFG::C * CFG::INNER], out_t y[CFG::C * CFG::INNER], const bits_t table[CFG::TABLE_SIZE]) {
  typedef typename CFG::table_t t_t;
  FPGAC_LOOP(lrn_channels)
  for (int c = 0; c < CFG::C; c++) {
    FPGAC_LOOP(lrn_inner)
    for (int i = 0; i < CFG::INNER; i++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      typename CFG::acc_t s = 0;
      FPGAC_LOOP(lrn_window)
      for (int k = 0; k < CFG::SIZE; k++) {
        const int cc = c - CFG::BEFORE + k;
        if (cc >= 0 && cc < CFG::C) {
          const in_t v = x[cc * CFG::INNER + i];
          s += v * v;
        }
      }
      const t_t f = from_bits<t_t>(table[table_index<CFG::SHIFT, CFG::OFFSET, CFG::TABLE_SIZE>(s)]);
      y[c * CFG::INNER + i] = x[c * CFG::INNER + i] * f;
    }
  }
}

}  // namespace fpgac

#endif  // FPGAC_KERNELS_H
