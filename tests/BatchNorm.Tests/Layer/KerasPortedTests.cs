using System;
using System.Linq;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>Keras' own BatchNormalization tests (keras/src/layers/normalization/batch_normalization_test.py), ported.</summary>
public class KerasPortedTests
{
    [Theory]
    [InlineData(true, true, 2, 2)]
    [InlineData(true, false, 1, 2)]
    [InlineData(false, true, 1, 2)]
    [InlineData(false, false, 0, 2)]
    public void Weight_counts_follow_center_and_scale(bool center, bool scale, int trainable, int nonTrainable)
    {
        var layer = new BatchNormalization(center: center, scale: scale);
        layer.Weights.Should().BeEmpty("weights are created on build");
        layer.Build(new NdShape(2, 3));

        layer.TrainableWeights.Should().HaveCount(trainable);
        layer.NonTrainableWeights.Should().HaveCount(nonTrainable);
        layer.Weights.Should().HaveCount(trainable + nonTrainable);
        layer.GetWeights().Should().HaveCount(trainable + nonTrainable);
        (layer.Gamma is not null).Should().Be(scale);
        (layer.Beta is not null).Should().Be(center);
        var expectedShape = new NdShape(3);
        layer.Weights.Should().OnlyContain(w => w.Shape == expectedShape);

        layer.Trainable = false;
        layer.TrainableWeights.Should().BeEmpty();
        layer.NonTrainableWeights.Should().HaveCount(trainable + nonTrainable);
    }

    [Fact]
    public void Default_weights_are_ones_zeros_zeros_ones_in_keras_order()
    {
        var layer = new BatchNormalization();
        layer.Build(new NdShape(4, 3));
        NdArray<float>[] w = layer.GetWeights();
        w[0].ToArray().Should().Equal(1f, 1f, 1f);
        w[1].ToArray().Should().Equal(0f, 0f, 0f);
        w[2].ToArray().Should().Equal(0f, 0f, 0f);
        w[3].ToArray().Should().Equal(1f, 1f, 1f);
        layer.Momentum.Should().Be(0.99);
        layer.Epsilon.Should().Be(1e-3);
        layer.Axis.Should().Be(-1);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    public void Training_then_inference_normalizes_to_mean_zero_and_std_one(int axis)
    {
        // Keras test_correctness: train on N(5, 10) data with momentum 0.8, then in inference mode
        // (out - beta) / gamma has per-channel mean ~0 and std ~1.
        var random = new Random(3);
        int[] shape = axis == -1 ? [200, 4, 4, 3] : [200, 3, 4, 4];
        var layer = new BatchNormalization(axis: axis, momentum: 0.8, gammaInitializer: new Constant(2.0), betaInitializer: new Constant(0.5));
        for (int step = 0; step < 30; step++)
        {
            layer.Call(Normal(random, shape, 5, 10), training: true);
        }

        NdArray<float> output = layer.Call(Normal(random, shape, 5, 10), training: false);
        double[] y = output.ReadOnlySpan.ToArray().Select(v => (v - 0.5) / 2.0).ToArray();
        var (mean, variance) = ReferenceBatchNorm.Moments(y, shape, axis);
        mean.Should().OnlyContain(m => Math.Abs(m) < 0.1);
        variance.Select(Math.Sqrt).Should().OnlyContain(s => Math.Abs(s - 1) < 0.1);
    }

    [Fact]
    public void Momentum_zero_makes_inference_equal_training_on_the_same_batch()
    {
        var random = new Random(4);
        NdArray<float> x = Normal(random, [16, 5, 6], 3, 2);
        foreach (int axis in new[] { -1, 1 })
        {
            var layer = new BatchNormalization(axis: axis, momentum: 0.0);
            NdArray<float> training = layer.Call(x, training: true);
            NdArray<float> inference = layer.Call(x, training: false);
            for (int i = 0; i < x.Length; i++)
            {
                inference.ReadOnlySpan[i].Should().BeApproximately(training.ReadOnlySpan[i], 1e-5f);
            }
        }
    }

    [Fact]
    public void Trainable_false_uses_moving_statistics_and_leaves_them_unchanged()
    {
        var layer = new BatchNormalization(trainable: false);
        var x = new NdArray<float>([1f, 2f, 3f, 10f, 20f, 30f], new NdShape(2, 3));
        NdArray<float> y = layer.Call(x, training: true);

        // moving_mean 0, moving_variance 1: y = x / sqrt(1 + 1e-3).
        for (int i = 0; i < 6; i++)
        {
            y.ReadOnlySpan[i].Should().BeApproximately((float)(x.ReadOnlySpan[i] / Math.Sqrt(1.001)), 1e-5f);
        }

        layer.MovingMean.ToArray().Should().Equal(0f, 0f, 0f);
        layer.MovingVariance.ToArray().Should().Equal(1f, 1f, 1f);
    }

    [Fact]
    public void A_batch_of_one_gives_zero_variance_and_outputs_beta()
    {
        var layer = new BatchNormalization(betaInitializer: new Constant(0.25), momentum: 0.5);
        NdArray<float> y = layer.Call(new NdArray<float>([3f, -7f, 1e4f], new NdShape(1, 3)), training: true);
        y.ToArray().Should().Equal(0.25f, 0.25f, 0.25f);
        layer.MovingMean.ToArray().Should().Equal(1.5f, -3.5f, 5000f);
        layer.MovingVariance.ToArray().Should().Equal(0.5f, 0.5f, 0.5f);
    }

    [Fact]
    public void Config_preserves_every_constructor_argument_and_round_trips()
    {
        var layer = new BatchNormalization(
            axis: 1, momentum: 0.9, epsilon: 1e-5, center: false, scale: true,
            betaInitializer: "ones", gammaInitializer: new RandomNormal(1.0, 0.1, seed: 7),
            movingMeanInitializer: new Constant(0.5), movingVarianceInitializer: "random_uniform",
            betaRegularizer: new L1(0.2), gammaRegularizer: "l2", betaConstraint: "non_neg", gammaConstraint: new MaxNorm(3),
            trainable: false, name: "bn_1");

        BatchNormalizationConfig config = layer.GetConfig();
        config.Axis.Should().Be(1);
        config.Momentum.Should().Be(0.9);
        config.Epsilon.Should().Be(1e-5);
        config.Center.Should().BeFalse();
        config.Scale.Should().BeTrue();
        config.Trainable.Should().BeFalse();
        config.Name.Should().Be("bn_1");
        config.DType.Should().Be("float32");
        config.BetaInitializer.Should().BeOfType<Ones>();
        config.GammaInitializer.Should().BeOfType<RandomNormal>().Which.Seed.Should().Be(7);
        config.MovingMeanInitializer.Should().BeOfType<Constant>().Which.Value.Should().Be(0.5);
        config.MovingVarianceInitializer.Should().BeOfType<RandomUniform>();
        config.BetaRegularizer.Should().BeOfType<L1>().Which.Factor.Should().Be(0.2);
        config.GammaRegularizer.Should().BeOfType<L2>().Which.Factor.Should().Be(0.01);
        config.BetaConstraint.Should().BeOfType<NonNeg>();
        config.GammaConstraint.Should().BeOfType<MaxNorm>().Which.MaxValue.Should().Be(3);

        BatchNormalization<float> rebuilt = BatchNormalization<float>.FromConfig(config);
        rebuilt.GetConfig().Should().Be(config);
    }

    [Fact]
    public void Float64_layers_report_float64_and_reject_a_float32_config()
    {
        var layer = new BatchNormalization<double>();
        layer.DType.Should().Be("float64");
        Action act = () => BatchNormalization<double>.FromConfig(new BatchNormalization().GetConfig());
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("config");
    }

    internal static NdArray<float> Normal(Random random, int[] shape, double mean, double std)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var data = new float[n];
        for (int i = 0; i < n; i++)
        {
            double z = Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * Math.Cos(2.0 * Math.PI * random.NextDouble());
            data[i] = (float)(mean + (std * z));
        }

        return new NdArray<float>(data, shape);
    }
}
