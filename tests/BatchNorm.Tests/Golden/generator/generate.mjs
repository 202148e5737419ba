// Golden BatchNormalization cases from a real Keras implementation: @tensorflow/tfjs 4.22.0,
// `tf.layers.batchNormalization`, on the pure-JS `cpu` backend.
//
// Usage: npm ci && node generate.mjs ../data
//
// Writes three files into the given folder; every case is seeded (mulberry32), so the output is byte-for-byte
// reproducible, and CI regenerates it and diffs:
//  - keras_cases.json: each case sets random initial weights, runs several training-mode calls (recording the output
//    and the moving statistics after each), then an inference-mode call on a fresh input.
//  - keras_gradients.json: one training-mode call each, with the gradients of loss = sum(y * w) for x, gamma and beta
//    from tf.variableGrads (autodiff through the batch statistics).
//  - tfjs_model.json: model.toJSON() of a Sequential model holding BatchNormalization layers with varied arguments,
//    a real Keras-format model JSON (tfjs writes the tf.keras 2 layer format).
//
// Known tfjs 4.22 defects, seen on this machine, and how this generator works around them:
//  1. An axis other than the last gives WRONG outputs (its moving statistics are right). Workaround: transpose the
//     input so the channel axis is last, call a layer with axis=-1, transpose the output back.
//  2. Rank-5 input throws ("not implemented for array of rank 5"). Workaround: after the transpose, merge the two
//     leading dimensions (rank 4, same per-channel reduction), call, and reshape back. Rank 1 throws too and has
//     no such workaround (the batch axis is the channel axis), so rank-1 behaviour is tested against the float64
//     reference in the C# tests only.
//  3. `center=false` or `scale=false` throws in training. Workaround: run with center/scale true and beta fixed at 0 /
//     gamma fixed at 1, which is the same function; the case records the false flag and no such weight.
//  4. `trainable=false` is ignored. Workaround: Keras' rule is that a non-trainable layer always runs in inference
//     mode, so such a step is computed with training=false while the case records training=true.
//  5. There is no float64 in tfjs: every case is float32.
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';

await tf.setBackend('cpu');

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(rand) {
  const u1 = 1 - rand();
  const u2 = rand();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

const product = (dims) => dims.reduce((a, b) => a * b, 1);
const f32 = (values) => Array.from(Float32Array.from(values));

// Input whose channels have different offsets and scales, laid out row-major in the ORIGINAL shape.
function makeInput(rand, shape, axis, offsets, scales) {
  const n = product(shape);
  const inner = product(shape.slice(axis + 1));
  const channels = shape[axis];
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / inner) % channels;
    out[i] = offsets[c] + scales[c] * normal(rand);
  }
  return f32(out);
}

// The tfjs call layout for an input shape and channel axis (workarounds 1 and 2).
function layoutFor(shape, axisSpec) {
  const rank = shape.length;
  const axis = axisSpec < 0 ? axisSpec + rank : axisSpec;
  // Workaround 1: channel axis last.
  const perm = [...Array(rank).keys()].filter((d) => d !== axis).concat([axis]);
  const inversePerm = perm.map((_, i) => perm.indexOf(i));
  const transposedShape = perm.map((d) => shape[d]);
  // Workaround 2: rank 5 -> rank 4 by merging the two leading dimensions.
  const callShape = rank === 5
    ? [transposedShape[0] * transposedShape[1], ...transposedShape.slice(2)]
    : transposedShape;
  return { axis, channels: shape[axis], perm, inversePerm, transposedShape, callShape };
}

function runCase(spec) {
  const rand = mulberry32(spec.seed);
  const shape = spec.shape;
  const { axis, channels, perm, inversePerm, transposedShape, callShape } = layoutFor(shape, spec.axis);

  const gamma = spec.scale ? f32(Array.from({ length: channels }, () => 0.5 + rand())) : null;
  const beta = spec.center ? f32(Array.from({ length: channels }, () => normal(rand))) : null;
  const movingMean = f32(Array.from({ length: channels }, () => 0.5 * normal(rand)));
  const movingVariance = f32(Array.from({ length: channels }, () => 0.5 + rand()));
  const offsets = Array.from({ length: channels }, () => spec.offset * normal(rand));
  const scales = Array.from({ length: channels }, () => spec.spread * (0.25 + 2 * rand()));

  const layer = tf.layers.batchNormalization({
    axis: -1, momentum: spec.momentum, epsilon: spec.epsilon, center: true, scale: true,
  });
  layer.apply(tf.zeros(callShape), { training: false }); // build
  layer.setWeights([
    tf.tensor1d(gamma ?? new Array(channels).fill(1)), // workaround 3
    tf.tensor1d(beta ?? new Array(channels).fill(0)),
    tf.tensor1d(movingMean),
    tf.tensor1d(movingVariance),
  ]);

  const steps = [];
  for (const training of spec.steps) {
    const input = makeInput(rand, shape, axis, offsets, scales);
    const effectiveTraining = training && spec.trainable; // workaround 4
    const output = tf.tidy(() => {
      const x = tf.tensor(input, shape, 'float32').transpose(perm).reshape(callShape);
      const y = layer.apply(x, { training: effectiveTraining });
      return Array.from(y.reshape(transposedShape).transpose(inversePerm).dataSync());
    });
    const weights = layer.getWeights();
    steps.push({
      training,
      input,
      output,
      movingMean: Array.from(weights[2].dataSync()),
      movingVariance: Array.from(weights[3].dataSync()),
    });
  }

  return {
    name: spec.name,
    seed: spec.seed,
    dtype: 'float32',
    shape,
    axis: spec.axis,
    momentum: spec.momentum,
    epsilon: spec.epsilon,
    center: spec.center,
    scale: spec.scale,
    trainable: spec.trainable,
    initialWeights: { gamma, beta, movingMean, movingVariance },
    steps,
  };
}

// ---- The case list -------------------------------------------------------------------------------------------
const specs = [];
let seed = 1000;
function add(name, shape, axis, options = {}) {
  specs.push({
    name,
    seed: seed++,
    shape,
    axis,
    momentum: options.momentum ?? 0.99,
    epsilon: options.epsilon ?? 1e-3,
    center: options.center ?? true,
    scale: options.scale ?? true,
    trainable: options.trainable ?? true,
    offset: options.offset ?? 1,
    spread: options.spread ?? 1,
    steps: options.steps ?? [true, true, true, false],
  });
}

// Every channel count of the foundation issue, channels last, rank 2, momentum 0.5 so the updates are visible.
for (const c of [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100]) {
  add(`rank2_c${c}_last`, [c <= 17 ? 6 : 3, c], -1, { momentum: 0.5 });
}
// Batch size 1 (variance 0 per channel when nothing else is reduced) and 2.
add('rank2_batch1', [1, 7], -1, { momentum: 0.5 });
add('rank2_batch2', [2, 7], -1, { momentum: 0.5 });
add('rank4_batch1', [1, 3, 3, 5], -1, { momentum: 0.5 });
add('rank4_batch2', [2, 3, 3, 5], 1, { momentum: 0.5 });
// Ranks 2-5, axis first, middle, last, negative.
add('rank2_axis0', [5, 4], 0, { momentum: 0.5 });
add('rank3_axis0', [4, 3, 5], 0, { momentum: 0.5 });
add('rank3_axis1', [2, 17, 5], 1, { momentum: 0.5 });
add('rank3_axis-1', [2, 5, 17], -1, { momentum: 0.5 });
add('rank3_axis-2', [2, 16, 5], -2, { momentum: 0.5 });
add('rank4_axis0', [3, 2, 3, 4], 0, { momentum: 0.5 });
add('rank4_axis1_c3', [2, 3, 4, 5], 1, { momentum: 0.5 });
add('rank4_axis1_c33', [2, 33, 3, 3], 1, { momentum: 0.5 });
add('rank4_axis2', [2, 3, 7, 4], 2, { momentum: 0.5 });
add('rank4_axis-1_c64', [2, 2, 3, 64], -1, { momentum: 0.5 });
add('rank4_axis-3', [2, 8, 3, 5], -3, { momentum: 0.5 });
add('rank4_axis1_inner17', [2, 5, 1, 17], 1, { momentum: 0.5 });
add('rank5_axis-1', [2, 2, 3, 2, 5], -1, { momentum: 0.5 });
add('rank5_axis1', [2, 5, 2, 3, 2], 1, { momentum: 0.5 });
add('rank5_axis2', [2, 2, 15, 2, 2], 2, { momentum: 0.5 });
add('rank5_axis-4', [2, 7, 2, 2, 3], -4, { momentum: 0.5 });
add('rank5_axis0', [3, 2, 2, 2, 2], 0, { momentum: 0.5 });
// center/scale in all four combinations, channels last and channels first.
for (const [center, scale] of [[true, true], [true, false], [false, true], [false, false]]) {
  add(`center_${center}_scale_${scale}_last`, [4, 3, 9], -1, { center, scale, momentum: 0.5 });
  add(`center_${center}_scale_${scale}_axis1`, [3, 9, 2, 4], 1, { center, scale, momentum: 0.5 });
}
// Momentum 0, 0.5, 0.99, 1.
for (const momentum of [0, 0.5, 0.99, 1]) {
  add(`momentum_${momentum}_last`, [8, 5], -1, { momentum });
  add(`momentum_${momentum}_axis1`, [2, 5, 4, 4], 1, { momentum });
}
// Epsilon: PyTorch's default, Keras' default, a large one that dominates small variances.
for (const epsilon of [1e-5, 1e-3, 0.1]) {
  add(`epsilon_${epsilon}`, [6, 4, 5], -1, { epsilon, spread: 0.2, momentum: 0.5 });
}
// trainable=false: every call is inference, even with training=true.
add('trainable_false_last', [5, 6], -1, { trainable: false });
add('trainable_false_axis1', [2, 6, 3, 3], 1, { trainable: false });
// Longer training sequences then inference.
add('sequence_10_steps_last', [16, 8], -1, {
  momentum: 0.8, steps: [true, true, true, true, true, true, true, true, true, true, false],
});
add('sequence_8_steps_axis1', [4, 6, 3, 3], 1, {
  momentum: 0.7, steps: [true, true, true, true, true, true, true, true, false, false],
});
add('inference_first', [4, 5], -1, { steps: [false, true, false] });
// Offsets and scales away from the unit range.
add('offset_100', [16, 6], -1, { offset: 100, spread: 1, momentum: 0.5 });
add('offset_100_axis1', [4, 6, 4, 2], 1, { offset: 100, spread: 1, momentum: 0.5 });
add('spread_1e-2', [16, 6], -1, { offset: 1, spread: 1e-2, momentum: 0.5 });
add('spread_100', [16, 6], -1, { offset: 0, spread: 100, momentum: 0.5 });
add('wide_c100_rank3', [2, 3, 100], -1, { momentum: 0.9 });
add('conv_like_rank4_last', [2, 4, 4, 16], -1, { momentum: 0.9 });
add('conv_like_rank4_first', [2, 16, 4, 4], 1, { momentum: 0.9 });

// ---- Gradients ------------------------------------------------------------------------------------------------
// Same workarounds as above: channel last by transposing (the gradient flows back through the transpose), rank 5
// merged to rank 4, center/scale=false run with beta 0 / gamma 1 (their gradients are then not recorded).
function runGradientCase(spec) {
  const rand = mulberry32(spec.seed);
  const shape = spec.shape;
  const { axis, channels, perm, inversePerm, transposedShape, callShape } = layoutFor(shape, spec.axis);

  const gamma = spec.scale ? f32(Array.from({ length: channels }, () => 0.5 + rand())) : null;
  const beta = spec.center ? f32(Array.from({ length: channels }, () => normal(rand))) : null;
  const offsets = Array.from({ length: channels }, () => spec.offset * normal(rand));
  const scales = Array.from({ length: channels }, () => spec.spread * (0.25 + 2 * rand()));
  const input = makeInput(rand, shape, axis, offsets, scales);
  const w = f32(Array.from({ length: product(shape) }, () => normal(rand)));

  const layer = tf.layers.batchNormalization({
    axis: -1, momentum: 0.9, epsilon: spec.epsilon, center: true, scale: true,
  });
  layer.apply(tf.zeros(callShape), { training: false });
  layer.setWeights([
    tf.tensor1d(gamma ?? new Array(channels).fill(1)),
    tf.tensor1d(beta ?? new Array(channels).fill(0)),
    tf.zeros([channels]),
    tf.ones([channels]),
  ]);
  const x = tf.variable(tf.tensor(input, shape, 'float32'), true, `x_${spec.name}`);
  const wt = tf.tensor(w, shape, 'float32');
  const [gammaVar, betaVar] = layer.trainableWeights.map((v) => v.val);
  const { value, grads } = tf.variableGrads(() => {
    const y = layer.apply(x.transpose(perm).reshape(callShape), { training: true });
    return y.reshape(transposedShape).transpose(inversePerm).mul(wt).sum();
  }, [x, gammaVar, betaVar]);
  return {
    name: spec.name,
    seed: spec.seed,
    shape,
    axis: spec.axis,
    epsilon: spec.epsilon,
    center: spec.center,
    scale: spec.scale,
    gamma,
    beta,
    input,
    outputWeights: w,
    loss: value.dataSync()[0],
    inputGradient: Array.from(grads[x.name].dataSync()),
    gammaGradient: spec.scale ? Array.from(grads[gammaVar.name].dataSync()) : null,
    betaGradient: spec.center ? Array.from(grads[betaVar.name].dataSync()) : null,
  };
}

const gradientSpecs = [];
let gradientSeed = 5000;
function addGradient(name, shape, axis, options = {}) {
  gradientSpecs.push({
    name, seed: gradientSeed++, shape, axis,
    epsilon: options.epsilon ?? 1e-3,
    center: options.center ?? true,
    scale: options.scale ?? true,
    offset: options.offset ?? 1,
    spread: options.spread ?? 1,
  });
}
addGradient('grad_rank2_last', [8, 5], -1);
addGradient('grad_rank2_axis0', [5, 8], 0);
addGradient('grad_rank3_axis1', [3, 7, 4], 1);
addGradient('grad_rank3_last_c17', [2, 3, 17], -1);
addGradient('grad_rank4_last', [2, 3, 3, 8], -1);
addGradient('grad_rank4_axis1', [2, 8, 3, 3], 1);
addGradient('grad_rank4_axis2', [2, 3, 5, 4], 2);
addGradient('grad_rank5_last', [2, 2, 2, 3, 4], -1);
addGradient('grad_rank5_axis1', [2, 4, 2, 3, 2], 1);
addGradient('grad_batch1', [1, 6], -1);
addGradient('grad_batch2', [2, 6], -1);
addGradient('grad_batch64', [64, 3], -1);
addGradient('grad_no_center', [6, 4], -1, { center: false });
addGradient('grad_no_scale', [6, 4], -1, { scale: false });
addGradient('grad_neither', [2, 4, 3], 1, { center: false, scale: false });
addGradient('grad_offset_100', [16, 4], -1, { offset: 100 });
addGradient('grad_spread_0.01', [16, 4], -1, { spread: 0.01 });
addGradient('grad_epsilon_1e-5', [10, 4], -1, { epsilon: 1e-5 });
addGradient('grad_conv_like', [2, 4, 4, 16], -1);
addGradient('grad_conv_like_first', [2, 16, 4, 4], 1);

// ---- A real Keras-format model JSON -----------------------------------------------------------------------------
function modelJson() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, inputShape: [4] }),
      tf.layers.batchNormalization({ name: 'bn_defaults' }),
      tf.layers.dense({ units: 8 }),
      tf.layers.batchNormalization({
        name: 'bn_custom', momentum: 0.9, epsilon: 1e-5, center: false,
        gammaInitializer: tf.initializers.randomNormal({ mean: 1, stddev: 0.02, seed: 7 }),
        movingVarianceInitializer: tf.initializers.constant({ value: 2 }),
        gammaRegularizer: tf.regularizers.l2({ l2: 0.001 }),
        betaRegularizer: tf.regularizers.l1({ l1: 0.01 }),
        gammaConstraint: tf.constraints.maxNorm({ maxValue: 3, axis: 0 }),
        betaConstraint: 'nonNeg',
      }),
      tf.layers.reshape({ targetShape: [2, 4] }),
      tf.layers.batchNormalization({ name: 'bn_axis1', axis: 1, scale: false, trainable: false }),
    ],
  });
  return model.toJSON(null, false);
}

const outDir = process.argv[2] ?? '../data';
const cases = specs.map(runCase);
writeFileSync(`${outDir}/keras_cases.json`, JSON.stringify({
  generator: 'tests/BatchNorm.Tests/Golden/generator/generate.mjs',
  source: `@tensorflow/tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`,
  cases,
}) + '\n');
const gradients = gradientSpecs.map(runGradientCase);
writeFileSync(`${outDir}/keras_gradients.json`, JSON.stringify({
  generator: 'tests/BatchNorm.Tests/Golden/generator/generate.mjs',
  source: `@tensorflow/tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, tf.variableGrads of sum(y * w), training mode`,
  cases: gradients,
}) + '\n');
writeFileSync(`${outDir}/tfjs_model.json`, JSON.stringify(modelJson(), null, 2) + '\n');
console.log(`wrote ${cases.length} cases, ${gradients.length} gradient cases and a model JSON to ${outDir}`);
