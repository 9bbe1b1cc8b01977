// fpgac kernel library: the arithmetic of every fixed-point op, as fpgac/backends/sim/fixed_ops.py states it.
//
// Hand-written, copied verbatim into every generated project. Each kernel is a template over the layer's
// types and a config struct of compile-time sizes (generated per layer in parameters.h), so every loop bound
// is static: no dynamic allocation, no recursion. Tensors are flat arrays in logical (row-major, ONNX) order.
//
// Exactness rules the kernels rely on (see fixed_ops.py for the full contract):
//  * accumulators (CFG::acc_t) are AP_TRN/AP_WRAP and hold every product's fraction, so `acc += x * w` is a
//    sum modulo 2^W: the order of the additions cannot change the result;
//  * every value is cast once into its output type, by `out_t y = expr;` on an exact ap_fixed expression;
//  * table indices and the softmax division work on raw bits (ap_int / ap_uint), not on doubles.
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

// Index of x in a lookup table: clamp(floor(x / 2^SHIFT) + OFFSET, 0, SIZE - 1), where S = frac(x) + SHIFT
// (fixed_ops.table_index). Values beyond +-(SIZE + |OFFSET|) clamp to an end whatever the offset, so the
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

// ---------------------------------------------------------------------------------------------------------
// dense: y[r][o] = acc_t(bias[o]) + sum_i x[r][i] * w[o][i], then one cast. x is [ROWS][IN] (the last axis
// is the feature axis), w is [OUT][IN].
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void dense(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const w_t w[CFG::OUT * CFG::IN],
           const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(dense_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    FPGAC_LOOP(dense_outputs)
    for (int o = 0; o < CFG::OUT; o++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      typename CFG::acc_t acc = 0;
      if (CFG::HAS_BIAS) acc = b[o];
      FPGAC_LOOP(dense_taps)
      for (int i = 0; i < CFG::IN; i++) {
        acc += x[r * CFG::IN + i] * w[o * CFG::IN + i];
      }
      y[r * CFG::OUT + o] = acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// conv: grouped 2-d cross-correlation on x [C][H][W] with w [OC][C/G][KH][KW] into y [OC][OH][OW]; a 1-d
// convolution is the H = KH = OH = 1 case. Taps that fall into the zero padding are skipped (they add 0).
template <class CFG, class in_t, class out_t, class w_t, class b_t>
void conv2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW],
            const w_t w[CFG::OC * CFG::CG * CFG::KH * CFG::KW], const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(conv_channels)
  for (int oc = 0; oc < CFG::OC; oc++) {
    const int group = oc / (CFG::OC / CFG::G);
    FPGAC_LOOP(conv_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      FPGAC_LOOP(conv_cols)
      for (int ow = 0; ow < CFG::OW; ow++) {
        FPGAC_PRAGMA(HLS PIPELINE II=1)
        typename CFG::acc_t acc = 0;
        if (CFG::HAS_BIAS) acc = b[oc];
        FPGAC_LOOP(conv_in_channels)
        for (int ci = 0; ci < CFG::CG; ci++) {
          FPGAC_LOOP(conv_kernel_rows)
          for (int kh = 0; kh < CFG::KH; kh++) {
            FPGAC_LOOP(conv_kernel_cols)
            for (int kw = 0; kw < CFG::KW; kw++) {
              const int ih = oh * CFG::SH - CFG::PH + kh * CFG::DH;
              const int iw = ow * CFG::SW - CFG::PW + kw * CFG::DW;
              if (ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W) {
                const int c = group * CFG::CG + ci;
                acc += x[(c * CFG::H + ih) * CFG::W + iw] * w[((oc * CFG::CG + ci) * CFG::KH + kh) * CFG::KW + kw];
              }
            }
          }
        }
        y[(oc * CFG::OH + oh) * CFG::OW + ow] = acc;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// pooling on x [C][H][W] (1-d: H = 1). Cells outside the input never win a max and add nothing to a sum.

template <class CFG, class in_t, class out_t>
void max_pool2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::C * CFG::OH * CFG::OW]) {
  FPGAC_LOOP(max_pool_channels)
  for (int c = 0; c < CFG::C; c++) {
    FPGAC_LOOP(max_pool_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      FPGAC_LOOP(max_pool_cols)
      for (int ow = 0; ow < CFG::OW; ow++) {
        FPGAC_PRAGMA(HLS PIPELINE II=1)
        in_t best = 0;
        bool first = true;
        FPGAC_LOOP(max_pool_kernel_rows)
        for (int kh = 0; kh < CFG::KH; kh++) {
          FPGAC_LOOP(max_pool_kernel_cols)
          for (int kw = 0; kw < CFG::KW; kw++) {
            const int ih = oh * CFG::SH - CFG::PH + kh * CFG::DH;
            const int iw = ow * CFG::SW - CFG::PW + kw * CFG::DW;
            if (ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W) {
              const in_t v = x[(c * CFG::H + ih) * CFG::W + iw];
              if (first || v > best) best = v;
              first = false;
            }
          }
        }
        y[(c * CFG::OH + oh) * CFG::OW + ow] = best;
      }
    }
  }
}

// avg pooling: the window sum in acc_t (exact), times recip[count], one cast. count_h/count_w hold, per
// output row/column, how many cells count (fixed_ops / float_ops.divisor_1d); the count is their product.
template <class CFG, class in_t, class out_t, class r_t>
void avg_pool2d(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::C * CFG::OH * CFG::OW],
                const r_t recip[CFG::RECIP_SIZE], const int count_h[CFG::OH], const int count_w[CFG::OW]) {
  FPGAC_LOOP(avg_pool_channels)
  for (int c = 0; c < CFG::C; c++) {
    FPGAC_LOOP(avg_pool_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      FPGAC_LOOP(avg_pool_cols)
      for (int ow = 0; ow < CFG::OW; ow++) {
        FPGAC_PRAGMA(HLS PIPELINE II=1)
        typename CFG::acc_t acc = 0;
        FPGAC_LOOP(avg_pool_kernel_rows)
        for (int kh = 0; kh < CFG::KH; kh++) {
          FPGAC_LOOP(avg_pool_kernel_cols)
          for (int kw = 0; kw < CFG::KW; kw++) {
            const int ih = oh * CFG::SH - CFG::PH + kh;
            const int iw = ow * CFG::SW - CFG::PW + kw;
            if (ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W) acc += x[(c * CFG::H + ih) * CFG::W + iw];
          }
        }
        y[(c * CFG::OH + oh) * CFG::OW + ow] = acc * recip[count_h[oh] * count_w[ow]];
      }
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
    y[o] = acc * recip[0];
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
template <class CFG, class in_t, class out_t, class t_t>
void softmax(const in_t x[CFG::OUTER * CFG::N * CFG::INNER], out_t y[CFG::OUTER * CFG::N * CFG::INNER],
             const t_t table[CFG::TABLE_SIZE]) {
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
        e[i] = table[table_index<CFG::SHIFT, CFG::OFFSET, CFG::TABLE_SIZE>(d)];
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

}  // namespace fpgac

#endif  // FPGAC_KERNELS_H
