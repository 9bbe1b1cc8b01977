// fpgac off-chip weight kernels: dense and conv layers whose weights live in external memory (DDR/HBM).
//
// Hand-written, copied verbatim into projects built with off-chip weights (`--weights offchip`, io stream).
// Such a layer's weights reach the top function through an m_axi port (bundle gmem_w) as the raw words of
// its weight type, in the layout of the build's weights.bin: [OUT][T], row o holding output o's T weights
// (dense: [OUT][IN]; conv: [OC][C/G * KH * KW], or [OC][KH * KW * C/G] for a conv that reads its line
// buffer, conv_offchip_stream), the order the compute below consumes them. Each output's
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

// Output o at every position p < P: y[p * OUT + o] = acc_t(b[o]) + sum_t x[p * X + group * T + t] * tile[t],
// exact (acc_t is AP_WRAP and holds every product's fraction), as dense and conv_pixel accumulate it;
// CFG::LANES products a cycle.
template <class CFG, int P, int X, int OUT, int T, class in_t, class out_t, class raw_t, class b_t>
void tile_outputs(const in_t x[P * X], int group, const raw_t tile[T], const b_t b[], int o,
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
        if (t < T) acc += x[p * X + group * T + t] * from_bits<typename CFG::weight_t>(tile[t]);
      }
    }
    y[p * OUT + o] = acc;
  }
}

// Output row oh of a conv read straight from its line buffer (conv_offchip_stream below).
template <class CFG, class in_t>
struct line_rows {
  in_t (*rows)[CFG::W][CFG::C];
  int oh;
};

// Output o at every pixel ow of row oh, its tile in [KH][KW][C/G] order: the LANES weights of a cycle are
// LANES consecutive channels of one tap (LANES divides C/G), so their inputs are one word of the line
// buffer, read where the window would have copied it from. A padding tap reads 0: its products add
// nothing to the exact accumulator, whose sum does not depend on the order of its terms.
template <class CFG, int P, int X, int OUT, int T, class in_t, class out_t, class raw_t, class b_t>
void tile_outputs(line_rows<CFG, in_t> x, int group, const raw_t tile[T], const b_t b[], int o,
                  out_t y[P * OUT]) {
  const int SPAN = (CFG::KH - 1) * CFG::DH + 1;
  FPGAC_LOOP(offchip_row_pixels)
  for (int ow = 0; ow < CFG::OW; ow++) {
    typename CFG::acc_t acc = initial_acc<CFG>(b, o);
    FPGAC_LOOP(offchip_row_words)
    for (int t0 = 0; t0 < T; t0 += CFG::LANES) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      const int tap = t0 / CFG::CG, c0 = group * CFG::CG + t0 % CFG::CG;
      const int ih = x.oh * CFG::SH - CFG::PH + (tap / CFG::KW) * CFG::DH;
      const int iw = ow * CFG::SW - CFG::PW + (tap % CFG::KW) * CFG::DW;
      const bool inside = ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W;
      FPGAC_LOOP(offchip_row_lanes)
      for (int l = 0; l < CFG::LANES; l++) {
        const in_t v = inside ? x.rows[ih % SPAN][iw][c0 + l] : in_t(0);
        acc += v * from_bits<typename CFG::weight_t>(tile[t0 + l]);
      }
    }
    y[ow * OUT + o] = acc;
  }
}

// y [P][OUT] from inputs x (src_t: an array [P][X], or a conv's line_rows) and the block at w ([OUT][T] raw
// words): output o reads its group o / GROUP_OUT of x, T inputs a position (dense: GROUP_OUT = OUT, X = T). While output o is
// computed from one tile, the next output's row is burst into the other; the two calls share no buffer,
// so HLS runs them in parallel. Not inlined: kept as one instance with its own loops.
template <class CFG, int P, int X, int OUT, int T, int GROUP_OUT, class src_t, class out_t, class raw_t,
          class b_t>
void offchip_outputs(src_t x, const raw_t* w, const b_t b[], out_t y[P * OUT]) {
  FPGAC_PRAGMA(HLS INLINE off)
  raw_t ping[T];
  raw_t pong[T];
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=ping cyclic factor=CFG::LANES)
  FPGAC_PRAGMA(HLS ARRAY_RESHAPE variable=pong cyclic factor=CFG::LANES)
  load_tile<T, CFG::LANES>(w, ping);
  FPGAC_LOOP(offchip_outputs)
  for (int o = 0; o < OUT; o++) {
    const int group = o / GROUP_OUT;
    const bool next = o + 1 < OUT;
    if (o % 2 == 0) {
      if (next) load_tile<T, CFG::LANES>(w + (o + 1) * T, pong);
      tile_outputs<CFG, P, X, OUT, T>(x, group, ping, b, o, y);
    } else {
      if (next) load_tile<T, CFG::LANES>(w + (o + 1) * T, ping);
      tile_outputs<CFG, P, X, OUT, T>(x, group, pong, b, o, y);
    }
  }
}

// dense (see fpgac_kernels.h) with w [OUT][IN] in external memory: one sweep of the block per sample.
template <class CFG, class in_t, class out_t, class raw_t, class b_t>
void dense_offchip(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const raw_t* w,
                   const b_t b[CFG::BIAS_SIZE]) {
  offchip_outputs<CFG, CFG::ROWS, CFG::IN, CFG::OUT, CFG::IN, CFG::OUT>(x, w, b, y);
}

// A conv output row computed output by output (out [OW][OC]) leaves pixel by pixel, in order: a beat of LO
// channels a cycle.
template <class CFG, class out_t, int LO>
void write_row(const out_t out[CFG::OW * CFG::OC], hls::stream<pixel<out_t, LO> >& y) {
  FPGAC_LOOP(conv_offchip_write)
  for (int k = 0; k < CFG::OW * (CFG::OC / LO); k++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    pixel<out_t, LO> px;
    FPGAC_LOOP(conv_offchip_channels)
    for (int c = 0; c < LO; c++) px.data[c] = out[k * LO + c];
    y.write(px);
  }
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
  write_row<CFG>(out, y);
}

// A conv whose weights live in external memory as [OC][KH][KW][C/G] raw words and whose groups fill whole
// LANES-wide words (CFG::LANES divides C/G; fpgac.analysis.estimate.direct_lanes): its line buffer `rows`
// keeps LANES channels a word, and each output row is computed from it where it lies (line_rows), no
// window copied: a word of LANES inputs a cycle against a word of weights, each weight read serving the
// row's OW pixels, into the output row `out`. The layer declares both memories (SPAN = (KH - 1) * DH + 1
// rows; one reshaped memory each, in block RAM or URAM: fpgac.analysis.estimate.direct_row_memories).
template <class CFG, class in_t, class out_t, int LI, int LO, class raw_t, class b_t>
void conv_offchip_stream(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y, const raw_t* w,
                         const b_t b[CFG::BIAS_SIZE], in_t rows[][CFG::W][CFG::C], out_t out[CFG::OW * CFG::OC]) {
  const int SPAN = (CFG::KH - 1) * CFG::DH + 1;
  FPGAC_LOOP(conv_offchip_input_rows)
  for (int h = 0; h < CFG::H; h++) {
    fill_row<CFG, SPAN>(x, rows, h);
    FPGAC_LOOP(conv_offchip_output_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      if (last_row<CFG>(oh) != h) continue;
      const line_rows<CFG, in_t> src = {rows, oh};
      offchip_outputs<CFG, CFG::OW, 0, CFG::OC, CFG::KH * CFG::KW * CFG::CG, CFG::OC / CFG::G>(src, w, b, out);
      write_row<CFG>(out, y);
    }
  }
}

}  // namespace fpgac

#endif  // FPGAC_OFFCHIP_H
