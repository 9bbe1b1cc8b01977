// fpgac off-chip weight kernels: dense and conv layers whose weights live in external memory (DDR/HBM).
//
// Hand-written, copied verbatim into projects built with off-chip weights (`--weights offchip`, io stream).
// Such a layer's weights reach the top function through an m_axi port (bundle gmem_w) as the raw words of
// its weight type, in the layout of the build's weights.bin: [OUT][T], row o holding output o's T weights
// (dense: [OUT][IN]; conv: [OC][C/G * KH * KW]), the order the compute below consumes them. Each output
// reads its row in one burst into a local tile while the previous output is computed from the other tile
// (ping-pong), so only two rows sit on chip. Every pixel (conv) or row (dense) sweeps the whole block
// again: the layer trades on-chip memory for external bandwidth. The arithmetic is dense's and
// conv_pixel's in fpgac_kernels.h (acc_t(bias) + the products, one cast), so the bits do not change.
#ifndef FPGAC_OFFCHIP_H
#define FPGAC_OFFCHIP_H

#include "fpgac_kernels.h"

namespace fpgac {

// Copy T consecutive raw weights from external memory: a pipelined loop over consecutive addresses, which
// HLS turns into one burst.
template <int T, class raw_t>
void load_tile(const raw_t* src, raw_t tile[T]) {
  FPGAC_LOOP(offchip_burst)
  for (int t = 0; t < T; t++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    tile[t] = src[t];
  }
}

// Output o's accumulator: acc_t(b[o]) + sum_t x[base + t] * w[t], exact (acc_t is AP_WRAP and holds every
// product's fraction), as dense and conv_pixel accumulate it.
template <class CFG, int T, class in_t, class raw_t, class b_t>
typename CFG::acc_t tile_sum(const in_t x[], int base, const raw_t tile[T], const b_t b[], int o) {
  typename CFG::acc_t acc = initial_acc<CFG>(b, o);
  FPGAC_LOOP(offchip_taps)
  for (int t = 0; t < T; t++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    acc += x[base + t] * from_bits<typename CFG::weight_t>(tile[t]);
  }
  return acc;
}

// y[y0 + o] for o < OUT from the block at w ([OUT][T] raw words): output o reads x from x0 + (o /
// GROUP_OUT) * T (its conv group; dense: GROUP_OUT = OUT). While output o is computed from one tile, the
// next output's row is burst into the other; the two calls share no buffer, so HLS runs them in parallel.
// Not inlined: a conv's pixel loop is pipelined (window_stream), which would unroll these loops; kept as
// one instance, each pixel waits for its sweep, the rate the external memory allows anyway.
template <class CFG, int OUT, int T, int GROUP_OUT, class in_t, class out_t, class raw_t, class b_t>
void offchip_outputs(const in_t x[], int x0, const raw_t* w, const b_t b[], out_t y[], int y0) {
  FPGAC_PRAGMA(HLS INLINE off)
  raw_t ping[T];
  raw_t pong[T];
  load_tile<T>(w, ping);
  FPGAC_LOOP(offchip_outputs)
  for (int o = 0; o < OUT; o++) {
    const int base = x0 + (o / GROUP_OUT) * T;
    const bool next = o + 1 < OUT;
    if (o % 2 == 0) {
      if (next) load_tile<T>(w + (o + 1) * T, pong);
      y[y0 + o] = tile_sum<CFG, T>(x, base, ping, b, o);
    } else {
      if (next) load_tile<T>(w + (o + 1) * T, ping);
      y[y0 + o] = tile_sum<CFG, T>(x, base, pong, b, o);
    }
  }
}

// dense (see fpgac_kernels.h) with w [OUT][IN] in external memory: every row sweeps the block once.
template <class CFG, class in_t, class out_t, class raw_t, class b_t>
void dense_offchip(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const raw_t* w,
                   const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(dense_offchip_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    offchip_outputs<CFG, CFG::OUT, CFG::IN, CFG::OUT>(x, r * CFG::IN, w, b, y, r * CFG::OUT);
  }
}

// conv_pixel (see fpgac_kernels.h) with w [OC][C/G][KH][KW] in external memory: one sweep per pixel.
template <class CFG, class in_t, class out_t, class raw_t, class b_t>
void conv_pixel_offchip(const in_t win[CFG::C * CFG::KH * CFG::KW], const raw_t* w,
                        const b_t b[CFG::BIAS_SIZE], out_t y[CFG::OC]) {
  offchip_outputs<CFG, CFG::OC, CFG::CG * CFG::KH * CFG::KW, CFG::OC / CFG::G>(win, 0, w, b, y, 0);
}

}  // namespace fpgac

#endif  // FPGAC_OFFCHIP_H
