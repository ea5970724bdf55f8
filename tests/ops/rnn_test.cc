#include "ops/rnn.h"

#include <gtest/gtest.h>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

GruParams RandomGruParams(int64_t in, int64_t h, std::mt19937* rng) {
  return {RandomTensor({in, 3 * h}, rng), RandomTensor({h, 3 * h}, rng),
          RandomTensor({3 * h}, rng)};
}

struct GruCase {
  int64_t b, t, in, h;
  bool with_h0;
  bool augru;  // an attention input: AUGRU, or AGRU when `agru`
  bool fully_masked_row;
  bool agru = false;
  bool official = false;  // the authors' code's AUGRU (with augru)
};

class GruGradTest : public ::testing::TestWithParam<GruCase> {};

TEST_P(GruGradTest, MatchesFiniteDifferences) {
  const GruCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 100 + c.in * 10 + c.h));
  Tensor x = RandomTensor({c.b, c.t, c.in}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  if (c.fully_masked_row) testing::MaskOutRow(&mask, c.b - 1);
  Tensor h0 = c.with_h0 ? RandomTensor({c.b, c.h}, &rng) : Tensor();
  Tensor att = c.augru ? RandomTensor({c.b, c.t}, &rng, 0.0f, 1.0f) : Tensor();
  GruParams p = RandomGruParams(c.in, c.h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(c.b, c.t, c.in, c.h);

  std::vector<testing::NamedInput> inputs = {{"x", &x}, {"wx", &p.wx}, {"wh", &p.wh}, {"b", &p.b}};
  if (c.with_h0) inputs.push_back({"h0", &h0});
  if (c.augru) inputs.push_back({"attention", &att});
  auto forward = [&] {
    Tensor states = Tensor::Empty({c.b, c.t, c.h});
    if (c.agru) {
      AgruForward(x, mask, att, h0, p, &ws, &states);
    } else if (c.official) {
      AugruOfficialForward(x, mask, att, h0, p, &ws, &states);
    } else if (c.augru) {
      AugruForward(x, mask, att, h0, p, &ws, &states);
    } else {
      GruForward(x, mask, h0, p, &ws, &states);
    }
    return std::vector<Tensor>{states};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    GruParams grads{(*g)[1], (*g)[2], (*g)[3]};
    Tensor* dh0 = c.with_h0 ? &(*g)[4] : nullptr;
    if (c.augru) {
      Tensor* da = &(*g)[c.with_h0 ? 5 : 4];
      if (c.agru) {
        AgruBackward(x, mask, att, h0, p, dy[0], &ws, &(*g)[0], dh0, da, &grads);
      } else if (c.official) {
        AugruOfficialBackward(x, mask, att, h0, p, dy[0], &ws, &(*g)[0], dh0, da, &grads);
      } else {
        AugruBackward(x, mask, att, h0, p, dy[0], &ws, &(*g)[0], dh0, da, &grads);
      }
    } else {
      GruBackward(x, mask, h0, p, dy[0], &ws, &(*g)[0], dh0, &grads);
    }
  };
  EXPECT_TRUE(GradientsMatch(inputs, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GruGradTest,
    ::testing::Values(GruCase{1, 1, 1, 1, true, false, false},   // B = T = 1
                      GruCase{3, 5, 4, 7, true, false, false},   // odd sizes
                      GruCase{2, 4, 3, 5, false, false, false},  // h0 = zeros
                      GruCase{1, 6, 5, 3, true, false, false},   // B = 1
                      GruCase{4, 1, 3, 2, true, true, false},    // AUGRU, T = 1
                      GruCase{3, 5, 4, 3, true, false, true},    // fully masked row
                      GruCase{3, 6, 5, 4, true, true, true},     // AUGRU, fully masked row
                      GruCase{1, 1, 2, 3, false, true, false},
                      GruCase{3, 5, 4, 3, true, true, false, true},         // AGRU
                      GruCase{3, 6, 2, 4, false, true, true, true},         // AGRU, masked row
                      GruCase{3, 5, 4, 3, true, true, false, false, true},  // AUGRU (code's)
                      GruCase{2, 6, 3, 4, false, true, true, false, true}));

TEST(GruTest, HandComputedOneStep) {
  // I = H = 1, x = 1, h0 = 0.5: zu = 0.5 + 0.5 = 1, zr = -0.5 + 1 + 0.25 = 0.75,
  // zc = 1 + sigmoid(0.75) * (0.5 * -1) = 0.66041065; u = 0.73105858, c = tanh(zc) = 0.57863663,
  // h = (1 - u) * 0.5 + u * c = 0.55748799.
  Tensor x = Tensor::FromVector({1, 1, 1}, {1.0f});
  Tensor mask = Tensor::FromVector({1, 1}, {1.0f});
  Tensor h0 = Tensor::FromVector({1, 1}, {0.5f});
  GruParams p{Tensor::FromVector({1, 3}, {0.5f, -0.5f, 1.0f}),
              Tensor::FromVector({1, 3}, {1.0f, 2.0f, -1.0f}),
              Tensor::FromVector({3}, {0.0f, 0.25f, 0.0f})};
  GruWorkspace ws = GruWorkspace::Allocate(1, 1, 1, 1);
  Tensor states = Tensor::Empty({1, 1, 1});
  GruForward(x, mask, h0, p, &ws, &states);
  EXPECT_TRUE(AllClose(states, Tensor::FromVector({1, 1, 1}, {0.55748799f})));
  EXPECT_TRUE(
      AllClose(ws.gates, Tensor::FromVector({1, 1, 3}, {0.73105858f, 0.67917870f, 0.57863663f})));
  // AUGRU with a = 0.5: u' = 0.36552929, h = 0.5 + u' * (c - 0.5) = 0.52874399.
  Tensor att = Tensor::FromVector({1, 1}, {0.5f});
  AugruForward(x, mask, att, h0, p, &ws, &states);
  EXPECT_TRUE(AllClose(states, Tensor::FromVector({1, 1, 1}, {0.52874399f})));
}

TEST(GruTest, HandComputedTwoStepsKeepGateBlocksApart) {
  // I = 1, H = 2, T = 2; Wx columns [u0 u1 r0 r1 c0 c1]; reference numbers from a scalar Python
  // transcription of the equations in ops/rnn.h.
  Tensor x = Tensor::FromVector({1, 2, 1}, {1.0f, -2.0f});
  Tensor mask = Tensor::FromVector({1, 2}, {1.0f, 1.0f});
  Tensor h0 = Tensor::FromVector({1, 2}, {0.5f, -0.5f});
  GruParams p{Tensor::FromVector({1, 6}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}),
              Tensor::FromVector({2, 6}, {0.1f, 0, 0, 0.2f, -0.3f, 0, 0, -0.1f, 0.2f, 0, 0, 0.4f}),
              Tensor::FromVector({6}, {0, 0.1f, 0, -0.1f, 0.2f, 0})};
  GruWorkspace ws = GruWorkspace::Allocate(1, 2, 1, 2);
  Tensor states = Tensor::Empty({1, 2, 2});
  GruForward(x, mask, h0, p, &ws, &states);
  EXPECT_TRUE(AllClose(states, Tensor::FromVector({1, 2, 2}, {0.52655031f, 0.05520643f,
                                                              -0.03902366f, -0.32096176f})));
}

TEST(GruTest, StateFrozenPastSequenceLength) {
  std::mt19937 rng(11);
  const int64_t b = 4, t = 7, in = 3, h = 5;
  const int64_t lengths[b] = {7, 3, 1, 5};
  Tensor x = RandomTensor({b, t, in}, &rng);
  Tensor h0 = RandomTensor({b, h}, &rng);
  Tensor mask = Tensor::Zeros({b, t});
  for (int64_t r = 0; r < b; ++r)
    for (int64_t s = 0; s < lengths[r]; ++s) mask[r * t + s] = 1.0f;
  GruParams p = RandomGruParams(in, h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor states = Tensor::Empty({b, t, h});
  GruForward(x, mask, h0, p, &ws, &states);
  for (int64_t r = 0; r < b; ++r) {
    // The row alone, truncated to its length and unpadded, gives the same final state.
    const int64_t len = lengths[r];
    Tensor xr = Tensor::Empty({1, len, in});
    for (int64_t i = 0; i < len * in; ++i) xr[i] = x[r * t * in + i];
    Tensor h0r =
        Tensor::FromVector({1, h}, std::vector<float>(h0.data() + r * h, h0.data() + (r + 1) * h));
    GruWorkspace wsr = GruWorkspace::Allocate(1, len, in, h);
    Tensor sr = Tensor::Empty({1, len, h});
    GruForward(xr, Tensor::Filled({1, len}, 1.0f), h0r, p, &wsr, &sr);
    const Tensor last = sr.Reshaped({len, h}).Rows(len - 1, len);
    for (int64_t s = len - 1; s < t; ++s) {
      EXPECT_TRUE(AllClose(states.Reshaped({b * t, h}).Rows(r * t + s, r * t + s + 1), last))
          << "row " << r << " position " << s;
    }
  }
  // Gradients at padded positions pass straight to the last valid state: dx there is zero.
  Tensor d_states = RandomTensor({b, t, h}, &rng), dx = Tensor::Zeros({b, t, in});
  GruBackward(x, mask, h0, p, d_states, &ws, &dx, nullptr, nullptr);
  for (int64_t r = 0; r < b; ++r)
    for (int64_t s = lengths[r]; s < t; ++s)
      for (int64_t i = 0; i < in; ++i) EXPECT_EQ(dx[(r * t + s) * in + i], 0.0f);
}

TEST(GruTest, FullyMaskedRowKeepsInitialState) {
  std::mt19937 rng(12);
  const int64_t b = 2, t = 4, in = 3, h = 3;
  Tensor x = RandomTensor({b, t, in}, &rng), h0 = RandomTensor({b, h}, &rng);
  Tensor mask = Tensor::Zeros({b, t});
  for (int64_t s = 0; s < t; ++s) mask[s] = 1.0f;  // row 0 valid, row 1 fully masked
  GruParams p = RandomGruParams(in, h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor states = Tensor::Empty({b, t, h});
  GruForward(x, mask, h0, p, &ws, &states);
  for (int64_t s = 0; s < t; ++s)
    for (int64_t j = 0; j < h; ++j) EXPECT_EQ(states[(t + s) * h + j], h0[h + j]);
  // dh0 of the masked row is the sum of its state gradients; its dx is zero.
  Tensor d_states = RandomTensor({b, t, h}, &rng);
  Tensor dx = Tensor::Zeros({b, t, in}), dh0 = Tensor::Zeros({b, h});
  GruBackward(x, mask, h0, p, d_states, &ws, &dx, &dh0, nullptr);
  for (int64_t j = 0; j < h; ++j) {
    float sum = 0.0f;
    for (int64_t s = 0; s < t; ++s) sum += d_states[(t + s) * h + j];
    EXPECT_NEAR(dh0[h + j], sum, 1e-5f);
  }
  for (int64_t i = t * in; i < 2 * t * in; ++i) EXPECT_EQ(dx[i], 0.0f);
}

TEST(GruTest, BackwardAccumulatesIntoGradients) {
  std::mt19937 rng(13);
  const int64_t b = 2, t = 3, in = 2, h = 3;
  Tensor x = RandomTensor({b, t, in}, &rng), mask = Tensor::Filled({b, t}, 1.0f);
  GruParams p = RandomGruParams(in, h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor states = Tensor::Empty({b, t, h}), d_states = RandomTensor({b, t, h}, &rng);
  GruForward(x, mask, Tensor(), p, &ws, &states);
  GruParams once = GruParams::Zeros(in, h), twice = GruParams::Zeros(in, h);
  Tensor dx1 = Tensor::Zeros({b, t, in}), dx2 = Tensor::Zeros({b, t, in});
  GruBackward(x, mask, Tensor(), p, d_states, &ws, &dx1, nullptr, &once);
  GruBackward(x, mask, Tensor(), p, d_states, &ws, &dx2, nullptr, &twice);
  GruBackward(x, mask, Tensor(), p, d_states, &ws, &dx2, nullptr, &twice);
  for (int64_t i = 0; i < once.wh.numel(); ++i) once.wh[i] *= 2.0f;
  for (int64_t i = 0; i < dx1.numel(); ++i) dx1[i] *= 2.0f;
  EXPECT_TRUE(AllClose(twice.wh, once.wh));
  EXPECT_TRUE(AllClose(dx2, dx1));
}

TEST(AugruTest, UnitAttentionEqualsGru) {
  std::mt19937 rng(21);
  const int64_t b = 3, t = 5, in = 4, h = 6;
  Tensor x = RandomTensor({b, t, in}, &rng), h0 = RandomTensor({b, h}, &rng);
  Tensor mask = testing::RandomPrefixMask(b, t, &rng, 1);
  GruParams p = RandomGruParams(in, h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor gru = Tensor::Empty({b, t, h}), augru = Tensor::Empty({b, t, h});
  Tensor d_states = RandomTensor({b, t, h}, &rng);
  GruParams g_gru = GruParams::Zeros(in, h), g_augru = GruParams::Zeros(in, h);
  Tensor dx_gru = Tensor::Zeros({b, t, in}), dx_augru = Tensor::Zeros({b, t, in});
  GruForward(x, mask, h0, p, &ws, &gru);
  GruBackward(x, mask, h0, p, d_states, &ws, &dx_gru, nullptr, &g_gru);
  Tensor ones = Tensor::Filled({b, t}, 1.0f);
  AugruForward(x, mask, ones, h0, p, &ws, &augru);
  AugruBackward(x, mask, ones, h0, p, d_states, &ws, &dx_augru, nullptr, nullptr, &g_augru);
  EXPECT_TRUE(AllClose(augru, gru, 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(dx_augru, dx_gru, 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(g_augru.wh, g_gru.wh, 0.0f, 0.0f));
}

TEST(AugruTest, ZeroAttentionKeepsState) {
  std::mt19937 rng(22);
  const int64_t b = 2, t = 4, in = 3, h = 4;
  Tensor x = RandomTensor({b, t, in}, &rng), h0 = RandomTensor({b, h}, &rng);
  GruParams p = RandomGruParams(in, h, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor states = Tensor::Empty({b, t, h});
  AugruForward(x, Tensor::Filled({b, t}, 1.0f), Tensor::Zeros({b, t}), h0, p, &ws, &states);
  for (int64_t r = 0; r < b; ++r)
    for (int64_t s = 0; s < t; ++s)
      for (int64_t j = 0; j < h; ++j) EXPECT_EQ(states[(r * t + s) * h + j], h0[r * h + j]);
}

// With the update gate saturated open (u = 1 in float), AUGRU's u' = a * u is AGRU's u' = a.
// The authors' code's AUGRU is a plain GRU where the attention is 0.
TEST(AugruOfficialTest, IsThePlainGruWithoutAttention) {
  std::mt19937 rng(12);
  Tensor x = RandomTensor({3, 4, 2}, &rng);
  Tensor mask = testing::RandomPrefixMask(3, 4, &rng, 1);
  GruParams p = RandomGruParams(2, 3, &rng);
  GruWorkspace ws = GruWorkspace::Allocate(3, 4, 2, 3);
  Tensor gru = Tensor::Empty({3, 4, 3}), official = Tensor::Empty({3, 4, 3});
  GruForward(x, mask, Tensor(), p, &ws, &gru);
  AugruOfficialForward(x, mask, Tensor::Zeros({3, 4}), Tensor(), p, &ws, &official);
  EXPECT_TRUE(AllClose(official, gru, 1e-6f, 1e-6f));
}

TEST(AgruTest, EqualsAugruWhenTheUpdateGateIsOpen) {
  std::mt19937 rng(23);
  const int64_t b = 3, t = 5, in = 2, h = 3;
  Tensor x = RandomTensor({b, t, in}, &rng), h0 = RandomTensor({b, h}, &rng);
  Tensor mask = testing::RandomPrefixMask(b, t, &rng, 1);
  Tensor att = RandomTensor({b, t}, &rng, 0.0f, 1.0f);
  GruParams p = RandomGruParams(in, h, &rng);
  for (int64_t j = 0; j < h; ++j) p.b[j] = 60.0f;
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor agru = Tensor::Empty({b, t, h}), augru = Tensor::Empty({b, t, h});
  AgruForward(x, mask, att, h0, p, &ws, &agru);
  AugruForward(x, mask, att, h0, p, &ws, &augru);
  EXPECT_TRUE(AllClose(agru, augru, 0.0f, 0.0f));
}

TEST(GruDeathTest, GateColumnsMustBeThreeH) {
  const int64_t b = 2, t = 5, in = 4, h = 2;
  Tensor x = Tensor::Zeros({b, t, in}), mask = Tensor::Zeros({b, t});
  GruParams p{Tensor::Zeros({in, 8}), Tensor::Zeros({h, 8}), Tensor::Zeros({8})};
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor states = Tensor::Zeros({b, t, h});
  EXPECT_DEATH(GruForward(x, mask, Tensor(), p, &ws, &states),
               "gru_forward: requires wx and wh columns = 3 \\* H .*wx=\\[4, 8\\] wh=\\[2, 8\\]");
  p = GruParams::Zeros(in, h);
  EXPECT_DEATH(GruForward(x, Tensor::Zeros({b, t - 1}), Tensor(), p, &ws, &states),
               "gru_forward: mask dim 1 is 4, expected T=5 .*x=\\[2, 5, 4\\] mask=\\[2, 4\\]");
  EXPECT_DEATH(GruForward(x, mask, Tensor::Zeros({b, h + 1}), p, &ws, &states),
               "gru_forward: h0 dim 1 is 3, expected H=2");
}

TEST(GruDeathTest, AugruBackwardChecksAttentionAndGradients) {
  const int64_t b = 2, t = 3, in = 4, h = 2;
  Tensor x = Tensor::Zeros({b, t, in}), mask = Tensor::Zeros({b, t});
  GruParams p = GruParams::Zeros(in, h);
  GruWorkspace ws = GruWorkspace::Allocate(b, t, in, h);
  Tensor d_states = Tensor::Zeros({b, t, h});
  EXPECT_DEATH(AugruBackward(x, mask, Tensor::Zeros({b, t + 1}), Tensor(), p, d_states, &ws,
                             nullptr, nullptr, nullptr, nullptr),
               "augru_backward: attention dim 1 is 4, expected T=3");
  Tensor dx = Tensor::Zeros({b, t, in + 1});
  EXPECT_DEATH(AugruBackward(x, mask, Tensor::Zeros({b, t}), Tensor(), p, d_states, &ws, &dx,
                             nullptr, nullptr, nullptr),
               "augru_backward: dx must have shape \\[2, 3, 4\\]");
}

}  // namespace
}  // namespace attnps
