// fpgac stream kernels: the io_stream style, where layers pass pixels through hls::stream FIFOs.
//
// Hand-written, copied verbatim into every generated project built with `--io stream`. A tensor of logical
// shape (C, ...) travels as P = size / C beats of one `pixel`, its C channel values: beat p carries the
// elements c * P + p, i.e. channels-last (H, W, C) order for images, one beat for a vector. A
// channel-folded tensor (FINN's folding: L units per layer instead of C) carries each pixel in G = C / L
// beats of L channels, in channel order: `pixel<T, L>`, P * G beats. Convs compute from a line buffer as
// pixels arrive (pools scan theirs: fpgac_pool.h); layers that need the whole tensor
// (dense, softmax, reshape, ...) gather it into an array in logical order (read_tensor), run the same
// fpgac_kernels.h code as io_parallel, and stream the result out (write_tensor). The per-pixel arithmetic
// (conv_pixel) is the one io_parallel uses, so both styles give the same
// bits, which `fpgac verify` checks against the simulator. A concatenation over channels copies each
// input's beats of a pixel in turn (copy_beats, place_pixel) and a channel shuffle reorders each pixel
// (permute_stream): no tensor is gathered.
#ifndef FPGAC_STREAM_H
#define FPGAC_STREAM_H

#include "fpgac_kernels.h"
#include "fpgac_trace.h"
#include "hls_stream.h"

namespace fpgac {

// One beat: the C channel values of one pixel (a whole vector for 1-d tensors).
template <class T, int C>
struct pixel {
  T data[C];
};

// Gather a stream into x in logical order: P pixels of G beats of L channels (G = 1: one beat a pixel, all
// C = L channels), beat g of pixel p carrying channels g * L ... g * L + L - 1: x[(g * L + l) * P + p].
template <int P, int G = 1, class T, int L>
void read_tensor(hls::stream<pixel<T, L> >& s, T x[G * L * P]) {
  FPGAC_LOOP(read_beats)
  for (int b = 0; b < P * G; b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const pixel<T, L> px = s.read();
    FPGAC_LOOP(read_channels)
    for (int c = 0; c < L; c++) x[((b % G) * L + c) * P + b / G] = px.data[c];
  }
}

// Stream x (logical order) out as P pixels of G beats of L channels.
template <int P, int G = 1, class T, int L>
void write_tensor(const T x[G * L * P], hls::stream<pixel<T, L> >& s) {
  FPGAC_LOOP(write_beats)
  for (int b = 0; b < P * G; b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    pixel<T, L> px;
    FPGAC_LOOP(write_channels)
    for (int c = 0; c < L; c++) px.data[c] = x[((b % G) * L + c) * P + b / G];
    s.write(px);
  }
}

// A concatenation over channels streams, pixel by pixel, each input's share of the pixel in turn. Folded
// (every input and the output in beats of L channels): copy_beats moves input k's N = C_k / L beats of a
// pixel, cast to the output's type. Unfolded: place_pixel puts input k's one beat at its channels of the
// output pixel (OFFSET = the channels of the inputs before it). No tensor is held.
template <int N, class T, class U, int L>
void copy_beats(hls::stream<pixel<T, L> >& x, hls::stream<pixel<U, L> >& y) {
  FPGAC_LOOP(copy_beats)
  for (int g = 0; g < N; g++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const pixel<T, L> in = x.read();
    pixel<U, L> out;
    FPGAC_LOOP(copy_lanes)
    for (int c = 0; c < L; c++) out.data[c] = in.data[c];
    y.write(out);
  }
}

template <int OFFSET, class T, int C, class U, int CO>
void place_pixel(hls::stream<pixel<T, C> >& x, pixel<U, CO>& y) {
  FPGAC_PRAGMA(HLS INLINE)
  const pixel<T, C> in = x.read();
  FPGAC_LOOP(place_channels)
  for (int c = 0; c < C; c++) y.data[OFFSET + c] = in.data[c];
}

// A channel shuffle (a transpose that reorders the channels within each pixel): read a pixel's G = C / L
// beats into a register array, then write its G output beats, output channel k taking input channel
// src[k] (the generator's map). A pixel is held, never the tensor.
template <int P, int G, class T, class U, int L>
void permute_stream(hls::stream<pixel<T, L> >& x, hls::stream<pixel<U, L> >& y, const int src[G * L]) {
  T px[G * L];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=px complete)
  FPGAC_LOOP(permute_pixels)
  for (int p = 0; p < P; p++) {
    FPGAC_LOOP(permute_in)
    for (int g = 0; g < G; g++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      const pixel<T, L> in = x.read();
      FPGAC_LOOP(permute_in_lanes)
      for (int c = 0; c < L; c++) px[g * L + c] = in.data[c];
    }
    FPGAC_LOOP(permute_out)
    for (int g = 0; g < G; g++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      pixel<U, L> out;
      FPGAC_LOOP(permute_out_lanes)
      for (int c = 0; c < L; c++) out.data[c] = px[src[g * L + c]];
      y.write(out);
    }
  }
}

// Top-level ports carry narrower beats than the layers' (at most 64 elements or 1024 bits; K divides C,
// chosen by the generator): an internal beat of C channels crosses a port as C / K beats of K channels,
// in channel order. narrow() feeds an output port, widen() reads an input port.
template <int P, class T, int C, int K>
void narrow(hls::stream<pixel<T, C> >& wide, hls::stream<pixel<T, K> >& port) {
  pixel<T, C> px;
  FPGAC_LOOP(narrow_beats)
  for (int b = 0; b < P * (C / K); b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const int j = b % (C / K);
    if (j == 0) px = wide.read();
    pixel<T, K> out;
    FPGAC_LOOP(narrow_channels)
    for (int c = 0; c < K; c++) out.data[c] = px.data[j * K + c];
    port.write(out);
  }
}

template <int P, class T, int C, int K>
void widen(hls::stream<pixel<T, K> >& port, hls::stream<pixel<T, C> >& wide) {
  pixel<T, C> px;
  FPGAC_LOOP(widen_beats)
  for (int b = 0; b < P * (C / K); b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const int j = b % (C / K);
    const pixel<T, K> in = port.read();
    FPGAC_LOOP(widen_channels)
    for (int c = 0; c < K; c++) px.data[j * K + c] = in.data[c];
    if (j == C / K - 1) wide.write(px);
  }
}

// The testbench's side of a port: a tensor of P pixels of C channels (logical order, x[c * P + p]) as the
// port's P * C / K beats of K channels, and back.
template <int P, int C, class T, int K>
void write_port(const T x[C * P], hls::stream<pixel<T, K> >& s) {
  for (int p = 0; p < P; p++) {
    for (int j = 0; j < C / K; j++) {
      pixel<T, K> px;
      for (int c = 0; c < K; c++) px.data[c] = x[(j * K + c) * P + p];
      s.write(px);
    }
  }
}

template <int P, int C, class T, int K>
void read_port(hls::stream<pixel<T, K> >& s, T x[C * P]) {
  for (int p = 0; p < P; p++) {
    for (int j = 0; j < C / K; j++) {
      const pixel<T, K> px = s.read();
      for (int c = 0; c < K; c++) x[(j * K + c) * P + p] = px.data[c];
    }
  }
}

// The input row after which output row oh can be computed: the last row its window touches, clamped to
// the input (a window reaching into the bottom padding waits for the last row, one in the top padding
// only needs the first).
template <class CFG>
int last_row(int oh) {
  const int last = oh * CFG::SH - CFG::PH + (CFG::KH - 1) * CFG::DH;
  return last < 0 ? 0 : (last > CFG::H - 1 ? CFG::H - 1 : last);
}

// One pixel of C channels onto a stream of L-channel beats: itself when L = C, else C / L beats in channel
// order.
template <class T, int C>
void write_pixel(const pixel<T, C>& px, hls::stream<pixel<T, C> >& y) {
  y.write(px);
}

template <class T, int C, int L>
void write_pixel(const pixel<T, C>& px, hls::stream<pixel<T, L> >& y) {
  FPGAC_LOOP(pixel_beats)
  for (int g = 0; g < C / L; g++) {
    pixel<T, L> beat;
    FPGAC_LOOP(beat_channels)
    for (int c = 0; c < L; c++) beat.data[c] = px.data[g * L + c];
    y.write(beat);
  }
}

// How a window layer reads its windows (fpgac.analysis.estimate.line_buffer decides, the generator passes
// it on): copied into registers first (gather_window), or read where they lie in the line buffer
// (line_window), each cell when a product uses it: no window registers, for a layer folded enough that
// its line buffer's memories serve every product's read in the pixel's cycles.
template <bool IN_PLACE>
struct window_reads {};

// The window of output pixel (oh, ow) in the line buffer: win[i] is gather_window's cell i (0 in the
// padding), read from `rows` when it is used.
template <class CFG, class in_t>
struct line_window {
  in_t (*rows)[CFG::W][CFG::C];
  int oh, ow;

  in_t operator[](int i) const {
    const int taps = CFG::KH * CFG::KW;
    const int ih = oh * CFG::SH - CFG::PH + ((i % taps) / CFG::KW) * CFG::DH;
    const int iw = ow * CFG::SW - CFG::PW + (i % CFG::KW) * CFG::DW;
    const bool inside = ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W;
    return inside ? window_cell<CFG>(rows, i / taps, ih, iw) : in_t(0);
  }
};

// Output row oh of a window layer from the line buffer, pixel by pixel, each pixel's MULTS products over
// REUSE cycles. What a pixel computes is the layer's PIXEL::compute, a static function the generator writes
// per layer (conv_pixel or a compressed conv's entry walk, over the
// layer's own ROMs), from the window gathered into registers (window_reads<false>) or read in place
// (window_reads<true>: conv_pixel only, which reads no `valid`). A pixel leaves as OUT_C / LO beats of LO
// channels (channel-folded stream; one beat when LO = OUT_C), so a pixel takes at least that many cycles.
template <class CFG, class PIXEL, class in_t, class out_t, int LO>
void window_row(in_t rows[][CFG::W][CFG::C], int oh, hls::stream<pixel<out_t, LO> >& y, window_reads<false>) {
  FPGAC_PRAGMA(HLS INLINE)
  const int MULTS = (CFG::OUT_C * CFG::TAPS + CFG::REUSE - 1) / CFG::REUSE;
  (void)MULTS;  // read by the pragma only
  FPGAC_LOOP(window_output_cols)
  for (int ow = 0; ow < CFG::OW; ow++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    in_t win[CFG::C * CFG::KH * CFG::KW];
    bool valid[CFG::KH * CFG::KW];
    gather_window<CFG>(rows, oh, ow, win, valid);
    pixel<out_t, CFG::OUT_C> out;
    PIXEL::compute(win, valid, oh, ow, out.data);
    write_pixel(out, y);
  }
}

template <class CFG, class PIXEL, class in_t, class out_t, int LO>
void window_row(in_t rows[][CFG::W][CFG::C], int oh, hls::stream<pixel<out_t, LO> >& y, window_reads<true>) {
  FPGAC_PRAGMA(HLS INLINE)
  const int MULTS = (CFG::OUT_C * CFG::TAPS + CFG::REUSE - 1) / CFG::REUSE;
  (void)MULTS;  // read by the pragma only
  FPGAC_LOOP(window_output_cols)
  for (int ow = 0; ow < CFG::OW; ow++) {
    FPGAC_PRAGMA(HLS PIPELINE II=CFG::REUSE)
    FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
    const line_window<CFG, in_t> win = {rows, oh, ow};
    pixel<out_t, CFG::OUT_C> out;
    PIXEL::compute(win, (const bool*)0, oh, ow, out.data);
    write_pixel(out, y);
  }
}

// Output row oh of a layer whose weights live in external memory (`memory`, its m_axi port): the whole row
// at once by PIXEL::row (conv_row_offchip in fpgac_offchip.h), so each weight read serves every pixel.
template <class CFG, class PIXEL, class in_t, class out_t, int LO, class m_t>
void window_row(in_t rows[][CFG::W][CFG::C], int oh, hls::stream<pixel<out_t, LO> >& y, window_reads<false>,
                const m_t* memory) {
  PIXEL::row(rows, oh, y, memory);
}

// Store input row h of a window layer in the line buffer (row h % SPAN): W pixels of C / LI beats of LI
// channels (one beat a pixel when LI = C), each beat at its channels.
template <class CFG, int SPAN, class in_t, int LI>
void fill_row(hls::stream<pixel<in_t, LI> >& x, in_t rows[SPAN][CFG::W][CFG::C], int h) {
  FPGAC_PRAGMA(HLS INLINE)
  const int G = CFG::C / LI;
  FPGAC_LOOP(window_fill)
  for (int b = 0; b < CFG::W * G; b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const pixel<in_t, LI> px = x.read();
    FPGAC_LOOP(window_fill_channels)
    for (int c = 0; c < LI; c++) rows[h % SPAN][b / G][(b % G) * LI + c] = px.data[c];
  }
}

// A sliding-window layer on a stream: store each input row in the line buffer `rows` (SPAN = (KH - 1) *
// DH + 1 rows, the window's height with dilation), then compute every output row that row completes
// (window_row). The layer declares `rows` (static): each row is split over its channels into as few
// memories as the window's reads in REUSE cycles allow, in block RAM or LUT RAM
// (fpgac.analysis.estimate.line_buffer). `memory` is the layer's external-memory port (off-chip
// weights), none for constants on chip.
template <class CFG, class PIXEL, bool IN_PLACE, class in_t, class out_t, int LI, int LO, class... M>
void window_stream(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y, in_t rows[][CFG::W][CFG::C],
                   const M*... memory) {
  const int SPAN = (CFG::KH - 1) * CFG::DH + 1;
  FPGAC_LOOP(window_input_rows)
  for (int h = 0; h < CFG::H; h++) {
    fill_row<CFG, SPAN>(x, rows, h);
    FPGAC_LOOP(window_output_rows)
    for (int oh = 0; oh < CFG::OH; oh++) {
      if (last_row<CFG>(oh) != h) continue;
      window_row<CFG, PIXEL>(rows, oh, y, window_reads<IN_PLACE>(), memory...);
    }
  }
}

// A pointwise conv (1 x 1 kernel, no padding; any stride) on a stream needs no line buffer: each input
// pixel's C / LI beats are stored in a pixel buffer `px` (the layer declares it, static: split over its
// channels into memories, or registers), and each pixel the strides keep is computed from it where it
// lies (px is the window conv_pixel reads) on MULTS multipliers, and leaves as OUT_C / LO beats. One
// pipelined iteration a pixel, max(REUSE, G, OUT_C / LO) cycles apart (a beat read or written a cycle),
// as the estimate counts it: storing a pixel overlaps computing the one before.
template <class CFG, class PIXEL, class in_t, class out_t, int LI, int LO>
void pointwise_stream(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y, in_t px[CFG::C]) {
  const int G = CFG::C / LI;
  const int MULTS = (CFG::OUT_C * CFG::TAPS + CFG::REUSE - 1) / CFG::REUSE;
  const int BEATS = G > CFG::OUT_C / LO ? G : CFG::OUT_C / LO;
  const int PIXEL_II = CFG::REUSE > BEATS ? CFG::REUSE : BEATS;
  (void)MULTS, (void)PIXEL_II;  // read by the pragmas only
  FPGAC_PRAGMA(HLS ALLOCATION operation instances=mul limit=MULTS)
  FPGAC_LOOP(pointwise_pixels)
  for (int p = 0; p < CFG::H * CFG::W; p++) {
    FPGAC_PRAGMA(HLS PIPELINE II=PIXEL_II)
    FPGAC_LOOP(pointwise_fill)
    for (int g = 0; g < G; g++) {
      const pixel<in_t, LI> in = x.read();
      FPGAC_LOOP(pointwise_fill_channels)
      for (int c = 0; c < LI; c++) px[g * LI + c] = in.data[c];
    }
    const int h = p / CFG::W, w = p % CFG::W;
    if (h % CFG::SH || w % CFG::SW || h / CFG::SH >= CFG::OH || w / CFG::SW >= CFG::OW) continue;
    pixel<out_t, CFG::OUT_C> out;
    PIXEL::compute(px, (const bool*)0, h / CFG::SH, w / CFG::SW, out.data);
    write_pixel(out, y);
  }
}

// Average pooling whose window is the whole input (a global average pool written as AveragePool): a line
// buffer and window would hold the whole tensor in registers, so each channel's sum lives in an array
// instead (acc_t, partitioned LI ways: the LI sums one beat updates; a memory G = C / LI deep each). Sums
// run in arrival order, the window's tap order; then one product by recip[count] and one cast per
// channel, LO channels a cycle: the arithmetic of avg_pool_pixel.
template <class CFG, class in_t, class out_t, int LI, int LO, class r_t>
void global_avg_stream(hls::stream<pixel<in_t, LI> >& x, hls::stream<pixel<out_t, LO> >& y,
                       const r_t recip[CFG::RECIP_SIZE], int count) {
  const int G = CFG::C / LI;
  typename CFG::acc_t acc[CFG::C];
  FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc cyclic factor=LI)
  FPGAC_LOOP(global_pool_beats)
  for (int b = 0; b < CFG::H * CFG::W * G; b++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    const pixel<in_t, LI> px = x.read();
    FPGAC_LOOP(global_pool_lanes)
    for (int c = 0; c < LI; c++) {
      const int k = (b % G) * LI + c;
      acc[k] = (b < G ? typename CFG::acc_t(0) : acc[k]) + px.data[c];
    }
  }
  FPGAC_LOOP(global_pool_out)
  for (int g = 0; g < CFG::C / LO; g++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    pixel<out_t, LO> out;
    FPGAC_LOOP(global_pool_out_lanes)
    for (int c = 0; c < LO; c++) {
      out.data[c] = acc[g * LO + c] * from_bits<typename CFG::recip_t>(recip[count]);
    }
    y.write(out);
  }
}

#ifdef FPGAC_TRACE
// C-simulation only: a dataflow region runs its processes one after the other, so after a layer returns
// its output FIFO holds the whole tensor: trace it and put it back for the consumer. P pixels of G beats.
template <int P, int G = 1, class T, int L>
void trace_stream(const char* name, hls::stream<pixel<T, L> >& s) {
  static T x[G * L * P];
  read_tensor<P, G>(s, x);
  trace(name, x, G * L * P);
  write_tensor<P, G>(x, s);
}
#define FPGAC_TRACE_STREAM(name, s, ...) fpgac::trace_stream<__VA_ARGS__>(name, s)
#else
#define FPGAC_TRACE_STREAM(name, s, ...)
#endif

}  // namespace fpgac

#endif  // FPGAC_STREAM_H
