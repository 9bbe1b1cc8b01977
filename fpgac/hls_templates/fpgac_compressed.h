// fpgac compressed-weight kernels: pruned (sparse), weight-shared (codebook + indices) and Huffman-coded
// dense and conv layers, as fpgac/backends/vitis/weights.py emits them. Hand-written, copied verbatim.
//
// Storage (io parallel; io stream at the end of this file):
//  * the layer's kept weights are a list of *taps* (output, input position, stored entry): a pruned weight
//    has no tap, so no multiplier exists for it; the tap lists are compile-time constants (the datapath's
//    wiring), and the loop over taps is unrolled inside the pipelined row / pixel loop;
//  * a plain pruned layer stores one value per tap (w[k]);
//  * a shared layer stores a codebook ROM (the quantized centroids) and one index per stored entry, either
//    packed B bits each or as a canonical Huffman bitstream; both are decoded ONCE, on the first call, into
//    an on-chip index memory (static), and every tap then reads w = codebook[index[entry]].
//
// Exactness: accumulators are exact and wrap (see fpgac_kernels.h), so summing the taps in list order gives
// the same bits as the simulator's dense sum over all weights (a pruned weight adds exactly 0).
#ifndef FPGAC_COMPRESSED_H
#define FPGAC_COMPRESSED_H

#include "ap_fixed.h"
#include "ap_int.h"
#include "fpgac_kernels.h"

namespace fpgac {

// Bit `pos` of a bitstream stored MSB-first in 32-bit words.
inline unsigned stream_bit(const unsigned int words[], int pos) {
  return (words[pos >> 5] >> (31 - (pos & 31))) & 1u;
}

// COUNT fixed-width B-bit indices, packed MSB-first, into the index memory.
template <int COUNT, int B, class idx_t>
void unpack_indices(const unsigned int words[], idx_t out[]) {
  FPGAC_LOOP(unpack_entries)
  for (int k = 0; k < COUNT; k++) {
    unsigned v = 0;
    FPGAC_LOOP(unpack_bits)
    for (int b = 0; b < B; b++) {
      v = (v << 1) | stream_bit(words, k * B + b);
    }
    out[k] = v;
  }
}

// COUNT symbols of a canonical Huffman bitstream into the index memory. The code is described by
// counts[L] (codes of length L, L = 1..MAXLEN) and the symbols in canonical order (length, then symbol):
// zlib's `puff` decoder, one bit per step, no tree. MAXLEN = 0 is the zero-bit code of a constant stream.
template <int COUNT, int MAXLEN, class idx_t>
void huffman_decode(const unsigned int words[], const int counts[], const idx_t symbols[], idx_t out[]) {
  static_assert(MAXLEN <= 24, "Huffman codes are limited to 24 bits");
  int pos = 0;
  FPGAC_LOOP(huffman_symbols)
  for (int k = 0; k < COUNT; k++) {
    if (MAXLEN == 0) {
      out[k] = symbols[0];
      continue;
    }
    int code = 0, first = 0, index = 0;
    FPGAC_LOOP(huffman_bits)
    for (int len = 1; len <= MAXLEN; len++) {
      code |= (int)stream_bit(words, pos++);
      const int n = counts[len];
      if (code - n < first) {
        out[k] = symbols[index + code - first];
        break;
      }
      index += n;
      first = (first + n) << 1;
      code <<= 1;
    }
  }
}

// The weight of tap k: its own stored value, or the codebook entry its stored index names (ROMs hold raw
// bits, read through from_bits as in fpgac_kernels.h).
template <bool SHARED>
struct tap_weight;

template <>
struct tap_weight<true> {
  template <class w_t, class bits_t, class idx_t>
  static w_t get(const bits_t w[], const idx_t idx[], int entry, int) {
    return from_bits<w_t>(w[idx[entry]]);
  }
};

template <>
struct tap_weight<false> {
  template <class w_t, class bits_t, class idx_t>
  static w_t get(const bits_t w[], const idx_t[], int, int k) { return from_bits<w_t>(w[k]); }
};

// dense over taps: y[r][o] = acc_t(bias[o]) + sum over the taps of row o of x[r][tap_i] * weight(tap).
template <class CFG, class in_t, class out_t, class w_t, class idx_t, class b_t>
void dense_taps(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const w_t w[],
                const idx_t idx[], const int tap_o[], const int tap_i[], const int tap_e[],
                const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(dense_taps_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    FPGAC_PRAGMA(HLS PIPELINE II=1)
    typename CFG::acc_t acc[CFG::OUT];
    FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
    FPGAC_LOOP(dense_taps_init)
    for (int o = 0; o < CFG::OUT; o++) {
      acc[o] = initial_acc<CFG>(b, o);
    }
    FPGAC_LOOP(dense_taps_taps)
    for (int k = 0; k < CFG::TAPS; k++) {
      typedef typename CFG::weight_t weight_t;
      acc[tap_o[k]] += x[r * CFG::IN + tap_i[k]] * tap_weight<CFG::SHARED>::template get<weight_t>(w, idx, tap_e[k], k);
    }
    FPGAC_LOOP(dense_taps_outputs)
    for (int o = 0; o < CFG::OUT; o++) {
      y[r * CFG::OUT + o] = acc[o];
    }
  }
}

// conv over taps (tap = output channel, absolute input channel, kernel row and column): every output
// channel of one pixel at once; taps falling into the zero padding are skipped, as in fpgac::conv2d.
template <class CFG, class in_t, class out_t, class w_t, class idx_t, class b_t>
void conv2d_taps(const in_t x[CFG::C * CFG::H * CFG::W], out_t y[CFG::OC * CFG::OH * CFG::OW], const w_t w[],
                 const idx_t idx[], const int tap_oc[], const int tap_c[], const int tap_kh[],
                 const int tap_kw[], const int tap_e[], const b_t b[CFG::BIAS_SIZE]) {
  FPGAC_LOOP(conv_taps_rows)
  for (int oh = 0; oh < CFG::OH; oh++) {
    FPGAC_LOOP(conv_taps_cols)
    for (int ow = 0; ow < CFG::OW; ow++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      typename CFG::acc_t acc[CFG::OC];
      FPGAC_PRAGMA(HLS ARRAY_PARTITION variable=acc complete)
      FPGAC_LOOP(conv_taps_init)
      for (int oc = 0; oc < CFG::OC; oc++) {
        acc[oc] = initial_acc<CFG>(b, oc);
      }
      FPGAC_LOOP(conv_taps_taps)
      for (int k = 0; k < CFG::TAPS; k++) {
        const int ih = oh * CFG::SH - CFG::PH + tap_kh[k] * CFG::DH;
        const int iw = ow * CFG::SW - CFG::PW + tap_kw[k] * CFG::DW;
        if (ih >= 0 && ih < CFG::H && iw >= 0 && iw < CFG::W) {
          typedef typename CFG::weight_t weight_t;
          acc[tap_oc[k]] += x[(tap_c[k] * CFG::H + ih) * CFG::W + iw] *
                            tap_weight<CFG::SHARED>::template get<weight_t>(w, idx, tap_e[k], k);
        }
      }
      FPGAC_LOOP(conv_taps_outputs)
      for (int oc = 0; oc < CFG::OC; oc++) {
        y[(oc * CFG::OH + oh) * CFG::OW + ow] = acc[oc];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// io stream: a compressed layer walks Deep Compression's stored form in storage order. Entry e lies gap[e]
// zeros after the previous entry (SPARSE; else it is the next weight), its weight is w[e] or, SHARED, the
// codebook entry w[idx[e]]; a filler entry (bridging a run of zeros longer than a gap can say) holds a zero
// weight and adds exactly nothing to the exact accumulator. Only the entries are stored and read.

template <class CFG, class gap_t>
int next_position(int pos, const gap_t gap[], int e) {
  return pos + (CFG::SPARSE ? (int)gap[e] : 0) + 1;
}

// dense over the stored entries: position p is weight (p / IN, p % IN).
template <class CFG, class in_t, class out_t, class w_t, class idx_t, class gap_t, class b_t>
void dense_entries(const in_t x[CFG::ROWS * CFG::IN], out_t y[CFG::ROWS * CFG::OUT], const w_t w[],
                   const idx_t idx[], const gap_t gap[], const b_t b[CFG::BIAS_SIZE]) {
  typedef typename CFG::weight_t weight_t;
  FPGAC_LOOP(dense_entries_rows)
  for (int r = 0; r < CFG::ROWS; r++) {
    typename CFG::acc_t acc[CFG::OUT];
    FPGAC_LOOP(dense_entries_init)
    for (int o = 0; o < CFG::OUT; o++) {
      acc[o] = initial_acc<CFG>(b, o);
    }
    int pos = -1;
    FPGAC_LOOP(dense_entries_walk)
    for (int e = 0; e < CFG::ENTRIES; e++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      pos = next_position<CFG>(pos, gap, e);
      acc[pos / CFG::IN] += x[r * CFG::IN + pos % CFG::IN] * tap_weight<CFG::SHARED>::template get<weight_t>(w, idx, e, e);
    }
    FPGAC_LOOP(dense_entries_outputs)
    for (int o = 0; o < CFG::OUT; o++) y[r * CFG::OUT + o] = acc[o];
  }
}

// One output pixel of a conv from its window (as conv_pixel) over the stored entries: position p is
// weight (p / TAPS_PER_OC, p % TAPS_PER_OC) of [OC][CG * KH * KW].
template <class CFG, class in_t, class out_t, class w_t, class idx_t, class gap_t, class b_t>
void conv_entries_pixel(const in_t win[CFG::C * CFG::KH * CFG::KW], const w_t w[], const idx_t idx[],
                        const gap_t gap[], const b_t b[CFG::BIAS_SIZE], out_t y[CFG::OC]) {
  typedef typename CFG::weight_t weight_t;
  const int K = CFG::CG * CFG::KH * CFG::KW;
  typename CFG::acc_t acc[CFG::OC];
  FPGAC_LOOP(conv_entries_init)
  for (int oc = 0; oc < CFG::OC; oc++) {
    acc[oc] = initial_acc<CFG>(b, oc);
  }
  int pos = -1;
  FPGAC_LOOP(conv_entries_walk)
  for (int e = 0; e < CFG::ENTRIES; e++) {
    pos = next_position<CFG>(pos, gap, e);
    const int oc = pos / K;
    const int group = oc / (CFG::OC / CFG::G);
    acc[oc] += win[group * K + pos % K] * tap_weight<CFG::SHARED>::template get<weight_t>(w, idx, e, e);
  }
  FPGAC_LOOP(conv_entries_outputs)
  for (int oc = 0; oc < CFG::OC; oc++) y[oc] = acc[oc];
}

}  // namespace fpgac

#endif  // FPGAC_COMPRESSED_H
