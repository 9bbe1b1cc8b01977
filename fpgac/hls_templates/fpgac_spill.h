// fpgac spilled FIFOs: a deep fork FIFO kept in external memory (DDR/HBM) instead of block RAM.
//
// Hand-written, copied verbatim into io-stream projects whose fitting spilled a fork FIFO
// (fpgac.analysis.fifos, "Spilling"). A FIFO between a residual or concatenation fork and its join must
// hold what the other branch swallows before its first output reaches the join: up to a good part of a
// frame, hundreds of block RAMs in a ResNet, for bits that pass through it once. Here the fork's beats go
// to a region of external memory instead: spill_write stores each beat's L channels as raw words (the
// mantissas, in the C integer type of the value, as the weight image stores weights) in chunks of CHUNK
// beats (one burst at most, and at most half the shallowest spilled FIFO's depth: see
// fpgac.backends.vitis.stream), and after each chunk writes a token; spill_read waits for a chunk's token,
// reads the chunk back in one burst and sends its beats on. A value's spilled uses share one writer: it
// writes each chunk once and a token to every reader (READERS of them), each reading the region through its
// own port. A reader's token FIFO holds a frame's chunks, so the writer never waits for a reader within a
// frame, and the region holds two frames, alternate frames in alternate halves, so a writer a frame ahead
// never overwrites what is still to be read. The values pass through unchanged (mantissa in, from_bits
// out): C-simulation, which runs the processes one after the other, is bit-exact with the simulator
// whatever the depths.
//
// ID tells the spill processes apart (each keeps its own frame parity); BEATS is the beats
// of a frame, the region's words are [2][BEATS][L].
#ifndef FPGAC_SPILL_H
#define FPGAC_SPILL_H

#include "fpgac_kernels.h"
#include "fpgac_stream.h"

namespace fpgac {

template <int ID, int BEATS, int CHUNK, int READERS, class T, int L, class raw_t>
void spill_write(hls::stream<pixel<T, L> >& x, raw_t* region, hls::stream<bool> landed[READERS]) {
  static bool odd = false;  // which half of the region this frame goes to
  raw_t* half = region + (odd ? BEATS * L : 0);
  odd = !odd;
  FPGAC_LOOP(spill_write_chunks)
  for (int c0 = 0; c0 < BEATS; c0 += CHUNK) {
    FPGAC_LOOP(spill_write_beats)
    for (int p = c0; p < c0 + CHUNK && p < BEATS; p++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      const pixel<T, L> v = x.read();
      FPGAC_LOOP(spill_write_lanes)
      for (int l = 0; l < L; l++) half[p * L + l] = static_cast<raw_t>(mantissa(v.data[l]).to_int64());
    }
    FPGAC_LOOP(spill_write_tokens)
    for (int k = 0; k < READERS; k++) landed[k].write(true);
  }
}

template <int ID, int BEATS, int CHUNK, class raw_t, class T, int L>
void spill_read(const raw_t* region, hls::stream<bool>& landed, hls::stream<pixel<T, L> >& y) {
  static bool odd = false;  // which half of the region this frame comes from
  const raw_t* half = region + (odd ? BEATS * L : 0);
  odd = !odd;
  FPGAC_LOOP(spill_read_chunks)
  for (int c0 = 0; c0 < BEATS; c0 += CHUNK) {
    landed.read();
    FPGAC_LOOP(spill_read_beats)
    for (int p = c0; p < c0 + CHUNK && p < BEATS; p++) {
      FPGAC_PRAGMA(HLS PIPELINE II=1)
      pixel<T, L> v;
      FPGAC_LOOP(spill_read_lanes)
      for (int l = 0; l < L; l++) v.data[l] = from_bits<T>(half[p * L + l]);
      y.write(v);
    }
  }
}

}  // namespace fpgac

#endif  // FPGAC_SPILL_H
