// fpgac off-chip weight kernels: dense and conv layers whose weights live in external memory (DDR/HBM).
//
// Hand-written, copied verbatim into projects built with off-chip weights (`--weights offchip`, io stream).
// Such a layer's weights reach the top function through an m_axi port (bundle gmem_w) as the raw words of
// its weight type, in the layout of the build's weights.bin: [OUT][T], row o holding output o's T weights
// (dense: [OUT][IN]; conv: [OC][C/G * KH * KW]), the order the compute below consumes them. Each output's
// row is read in one burst into a local tile while the previous output is computed from the other tile
// (ping-pong), so only two rows sit on chip, and each row serves every position waiting for it: every
// row of a dense layer's input (one sweep of the block per sample), every pixel of a conv output row (one
// sweep per output row). A layer takes CFG::LANES weights a cycle, one memory word's worth (512 bits, see
// fpgac.analysis.estimate.offchip_lanes): the burst moves LANES words a cycle (the port is widened to
// 512 bits) and the compute makes LANES products a cycle, so the layer keeps up with its share of the
// bandwidth. The arithmetic is dense's and conv_pixel's in fpgac_kernels.h (acc_t(bias) + the products,
// one cast); acc_t is AP_WRAP and exact, so the order of the additions cannot change the bits.
#ifndef FPGAC_OFFCHIP_H
#define FPGAC_OFFCHIP_H

#include "fpgac_kernels.h"
#include "fpgac_stream.h"

namespace fpgac {

// Copy T consecutive raw weights from external memory, LANES a cycle: a pipelined loop over consecutive
// addresses, which HLS turns into one burst of wide words.
template <int T, int LANES, class raw_t>
void load_tile(const raw_t* src, raw_t tile[T]) {
  FPGAC_LOOP(offchip_burst)
  for (int t0 = 0; t0 < T; t0 += LANES) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    FPGAC_LOOP(offchip_burst_lanes)
    for (int l = 0; l < LANES; l++) {
      if (t0 + l < T) tile[t0 + l] = src[t0 + l];
    }
  }
}

// Output o at every position p < P: y[p * OUT + o] = acc_t(b[o]) + sum_t x[p * X + base + t] * tile[t],
// exact (acc_t is AP_WRAP and holds every product's fraction), as dense and conv_pixel accumulate it;
// CFG::LANES products a cycle.
template <class CFG, int P, int X, int OUT, int T, class in_t, class out_t, class raw_t, class b_t>
void tile_outputs(const in_t x[P * X], int base, const raw_t tile[T], const b_t b[], int o,
                  out_t y[P * OUT]) {
  FPGAC_LOOP(offchip_positions)
  for (int p = 0; p < P; p++) {
    typename CFG::acc_t acc = initial_acc<CFG>(b, o);
    FPGAC_LOOP(offchip_taps)
    for (int t0 = 0; t0 < T; t0 += CFG::LANES) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      FPGAC_LOOP(offchip_lanes)
      for (int l = 0; l < CFG::LANES; l++) {
        const int t = t0 + l;
        if (t < T) acc += x[p * X + base + t] * from_bits<typename CFG::weight_t>(tile[t]);
      }
    }
    y[p * OUT + o] = acc;
  }
}

// y [P][OUT] from inputs x [P][X] and the block at w ([OUT][T] raw words): output o reads x from (o /
// GROUP_OUT) * T within each position (its conv group; dense: GROUP_OUT = OUT, X = T). While output o is
// computed from one tile, the next output's row is burst into the other; the two calls share no buffer,
// so HLS runs them in parallel. Not inlined: kept as one instance with its own loops.
template <class CFG, int P, int X, int OUT, int T, int GROUP_OUT, class in_t, class out_t, class raw_t,
          class b_t>
void offchip_outputs(const in_t x[P * X], const raw_t* w, const b_t b[], out_t y[P * OUT]) {
  FPGAC_PRAGMA(HLS INLINE off)
  raw_t ping[T];
  raw_t pong[T];
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=ping cyclic factor=CFG::LANES)
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=pong cyclic factor=CFG::LANES)
  load_tile<T, CFG::LANES>(w, ping);
  FPGAC_LOOP(offchip_outputs)
  for (int o = 0; o < OUT; o++) {
    const int base = (o / GROUP_OUT) * T;
    const bool next = o + 1 < OUT;
    if (o % 2 == 0) {
      if (next) load_tile<T, CFG::LANES>(w + (o + 1) * T, pong);
      tile_outputs<CFG, P, X, OUT, T>(x, base, ping, b, o, y);
    } else {
      if (next) load_tile<T, CFG::LANES>(w + (o + 1) * T, ping);
      tile_outputs<CFG, P, X, OUT, T>(x, base, pong, b, o, y);
    }
  }
}

// dense (see fpgac_kernels.h) with w [OUT][IN] in external memory: one sweep of the block per sample.
template <class CFG, class in_t, class out_t, class raw_t, class b_t>
void dense_offchip(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const raw_t* w,
                   const b_t b[CFG::BIAS_SIZE]) {
  offchip_outputs<CFG, CFG::ROWS, CFG::IN, CFG::OUT, CFG::IN, CFG::OUT>(x, w, b, y);
}

// Output row oh of a conv (window_stream's window_row) with w [OC][C/G][KH][KW] in external memory: the
// windows of the row's OW pixels are copied from the line buffer into a memory LANES cells a cycle (no
// window registers: window_cell is gather_window's cell), every output channel is computed for all of them
// from one read of its weights into another memory, and the pixels leave in order, a beat of LO channels
// a cycle.
template <class CFG, class in_t, class out_t, class raw_t, class b_t, int LO>
void conv_row_offchip(in_t rows[][CFG::W][CFG::C], int oh, hls::stream<pixel<out_t, LO> >& y,
                      const raw_t* w, const b_t b[CFG::BIAS_SIZE]) {
  const int TAPS = CFG::KH * CFG::KW;
  const int WIN = CFG::C * TAPS;
  static in_t windows[CFG::OW * WIN];
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=windows cyclic factor=CFG::LANES)
  static out_t out[CFG::OW * CFG::OC];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=out cyclic factor=LO)
  FPGAC_LOOP(conv_offchip_gather)
  for (int ow = 0; ow < CFG::OW; ow++) {
    FPGAC_LOOP(conv_offchip_window)
    for (int i0 = 0; i0 < WIN; i0 += CFG::LANES) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      FPGAC_LOOP(conv_offchip_window_lanes)
      for (int l = 0; l < CFG::LANES; l++) {
        const int i = i0 + l;
        const int kh = (i % TAPS) / CFG::KW, kw = i % CFG::KW;
        const int ih = oh * CFG::SH - CFG::PH + kh * CFG::DH;
        const int iw = ow * CFG::SW - CFG::PW + kw * CFG::DW;
        const bool inside = ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W;
        if (i < WIN) windows[ow * WIN + i] = inside ? window_cell<CFG>(rows, i / TAPS, ih, iw) : in_t(0);
      }
    }
  }
  const int T = CFG::CG * CFG::KH * CFG::KW;
  offchip_outputs<CFG, CFG::OW, WIN, CFG::OC, T, CFG::OC / CFG::G>(windows, w, b, out);
  FPGAC_LOOP(conv_offchip_write)
  for (int k = 0; k < CFG::OW * (CFG::OC / LO); k++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    pixel<out_t, LO> px;
    FPGAC_LOOP(conv_offchip_channels)
    for (int c = 0; c < LO; c++) px.data[c] = out[k * LO + c];
    y.write(px);
  }
}

}  // namespace fpgac

#endif  // FPGAC_OFFCHIP_H
