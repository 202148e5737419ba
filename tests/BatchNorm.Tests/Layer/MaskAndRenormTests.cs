using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

public class MaskAndRenormTests
{
    public static IEnumerable<object[]> MaskLayouts() =>
    [
        [new[] { 6, 5 }, -1],
        [new[] { 3, 4, 5 }, -1],
        [new[] { 3, 4, 5 }, 1],
        [new[] { 2, 3, 4, 17 }, 1],
        [new[] { 2, 3, 2, 2, 7 }, 2],
        [new[] { 4, 20 }, 0],
        [new[] { 6, 16 }, -1], // a small batch, whose unmasked backward takes the one-routine path
    ];

    [Theory]
    [MemberData(nameof(MaskLayouts))]
    public void Masked_statistics_outputs_and_moving_updates_follow_keras_3(int[] shape, int axis)
    {
        Masked<float>(shape, axis, 1e-5);
        Masked<double>(shape, axis, 1e-12);
    }

    [Theory]
    [MemberData(nameof(MaskLayouts))]
    public void Masked_gradients_match_finite_differences(int[] shape, int axis)
    {
        var (layer, x, mask, w, reference, gamma, beta) = MaskedSetup<double>(shape, axis, 3);
        layer.Call(new NdArray<double>(x, shape), training: true, mask: mask);
        BatchNormalizationGradients<double> grads = layer.Backward(new NdArray<double>(w, shape));
        var (dx, dgamma, dbeta) = reference.FiniteDifferences(x, gamma, beta, w);
        BackwardTests.AssertGradients(grads, dx, dgamma, dbeta, 1e-7, $"masked [{string.Join(", ", shape)}] axis {axis}");
    }

    [Fact]
    public void A_fully_masked_batch_gives_zero_mean_and_variance()
    {
        var layer = new BatchNormalization<double>(momentum: 0.5);
        var x = new NdArray<double>([1, 2, 3, 4, 5, 6], new NdShape(3, 2));
        NdArray<double> y = layer.Call(x, training: true, mask: new NdArray<bool>(new NdShape(3)));
        layer.MovingMean.ToArray().Should().Equal(0.0, 0.0);
        layer.MovingVariance.ToArray().Should().Equal(0.5, 0.5);
        // mean 0, variance 0: y = x / sqrt(epsilon).
        y[2, 1].Should().BeApproximately(6 / Math.Sqrt(1e-3), 1e-9);
    }

    [Fact]
    public void A_mask_of_the_wrong_shape_is_rejected_without_touching_state()
    {
        var layer = new BatchNormalization(axis: 1);
        var x = new NdArray<float>(new NdShape(2, 3, 4));
        layer.Call(x, training: true);
        float[] before = layer.MovingMean.ToArray();
        Action last = () => layer.Call(x, training: true, mask: new NdArray<bool>(new NdShape(2, 3)));
        last.Should().Throw<ArgumentException>().Where(e => e.ParamName == "mask" && e.Message.Contains("[2, 4]") && e.Message.Contains("[2, 3]"));
        layer.MovingMean.ToArray().Should().Equal(before);
    }

    [Fact]
    public void Masks_do_not_change_inference()
    {
        var layer = new BatchNormalization();
        var x = new NdArray<float>([1f, 2f, 3f, 4f], new NdShape(2, 2));
        layer.Call(x, training: false, mask: new NdArray<bool>([true, false], new NdShape(2))).ToArray()
            .Should().Equal(layer.Call(x).ToArray());
    }

    [Theory]
    [InlineData(null, null, null)]
    [InlineData(1.5, 0.8, 0.5)]
    [InlineData(1.0, 1.0, 0.0)]
    public void Renorm_follows_the_keras_3_formulas_over_a_training_sequence(double? rmax, double? rmin, double? dmax)
    {
        Renorm<float>(new RenormClipping(rmax, rmin, dmax), [16, 6], -1, 2e-5);
        Renorm<double>(new RenormClipping(rmax, rmin, dmax), [16, 6], -1, 1e-12);
        Renorm<double>(new RenormClipping(rmax, rmin, dmax), [3, 5, 4, 2], 1, 1e-12);

        // Small batches, which without renorm take the one-routine training forward.
        Renorm<float>(new RenormClipping(rmax, rmin, dmax), [8, 16], -1, 2e-5);
        Renorm<double>(new RenormClipping(rmax, rmin, dmax), [8, 16], -1, 1e-12);
    }

    [Fact]
    public void Renorm_adds_three_non_trainable_weights_in_keras_order()
    {
        var layer = new BatchNormalization(renorm: true, movingVarianceInitializer: new Initializers.Constant(4));
        layer.Build(new NdShape(2, 3));
        layer.Weights.Should().HaveCount(7);
        layer.NonTrainableWeights.Should().HaveCount(5);
        layer.MovingStddev!.ToArray().Should().Equal(2f, 2f, 2f);
        layer.RenormStddev!.ToArray().Should().Equal(2f, 2f, 2f);
        layer.RenormMean!.ToArray().Should().Equal(0f, 0f, 0f);
        layer.RenormClipping.Should().Be(new RenormClipping());
        Action count = () => layer.SetWeights(new float[3], new float[3], new float[3], new float[3]);
        count.Should().Throw<ArgumentException>().WithMessage("*7 weights [gamma, beta, moving_mean, moving_variance, moving_stddev, renorm_mean, renorm_stddev]*");
        new BatchNormalization().Invoking(l => l.Build(new NdShape(2, 3))).Should().NotThrow();
    }

    [Fact]
    public void Renorm_arguments_are_validated()
    {
        Action order = () => _ = new RenormClipping(rmax: 0.5, rmin: 1);
        order.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("rmax");
        Action negative = () => _ = new RenormClipping(dmax: -1);
        negative.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dmax");
        Action nan = () => _ = new RenormClipping(rmin: double.NaN);
        nan.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("rmin");
        Action momentum = () => _ = new BatchNormalization(renorm: true, renormMomentum: 1.5);
        momentum.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("renormMomentum");
    }

    [Fact]
    public void Renorm_gradients_treat_r_and_d_as_constants()
    {
        int[] shape = [12, 4];
        var random = new Random(8);
        var layer = new BatchNormalization<double>(renorm: true, renormClipping: new RenormClipping(1.4, 0.7, 0.6), momentum: 0.5, renormMomentum: 0.5);
        layer.Build(shape);
        double[] gamma = [1.5, 0.5, 1.0, 2.0];
        double[] beta = [0.1, -0.2, 0.3, 0.0];
        layer.SetWeights(gamma, beta, [0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], [1, 1.5, 1.7, 2], [0.5, -0.5, 0.2, 0.1], [0.8, 1.3, 2.5, 0.9]);
        double[] renormMean = layer.RenormMean!.ToArray();
        double[] renormStddev = layer.RenormStddev!.ToArray();
        double[] x = Enumerable.Range(0, 48).Select(_ => (3 * random.NextDouble()) - 1).ToArray();
        double[] w = Enumerable.Range(0, 48).Select(_ => random.NextDouble() - 0.5).ToArray();

        layer.Call(new NdArray<double>(x, shape), training: true);
        BatchNormalizationGradients<double> grads = layer.Backward(new NdArray<double>(w, shape));

        var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, -1);
        var (r, d) = RenormCorrections(mean, variance, renormMean, renormStddev, 1e-3, new RenormClipping(1.4, 0.7, 0.6));
        var reference = new ReferenceForward(shape, -1, 1e-3) { R = r, D = d };
        var (dx, dgamma, dbeta) = reference.FiniteDifferences(x, gamma, beta, w);
        BackwardTests.AssertGradients(grads, dx, dgamma, dbeta, 1e-7, "renorm");
    }

    private static void Masked<T>(int[] shape, int axis, double tolerance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (layer, x, mask, _, reference, _, _) = MaskedSetup<T>(shape, axis, 1);
        double[] movingMean = Tolerance.ToDouble<T>(layer.MovingMean.ReadOnlySpan);
        double[] movingVariance = Tolerance.ToDouble<T>(layer.MovingVariance.ReadOnlySpan);
        double[]? gamma = layer.Gamma is null ? null : Tolerance.ToDouble<T>(layer.Gamma.ReadOnlySpan);
        double[]? beta = layer.Beta is null ? null : Tolerance.ToDouble<T>(layer.Beta.ReadOnlySpan);

        NdArray<T> y = layer.Call(new NdArray<T>(Tolerance.FromDouble<T>(x), shape), training: true, mask: mask);

        var (mean, variance) = reference.Statistics(x);
        double[] expected = reference.Apply(x, gamma, beta);
        string what = $"{typeof(T).Name} [{string.Join(", ", shape)}] axis {axis}";
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(y.ReadOnlySpan), expected, tolerance, tolerance, "output of " + what);
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.MovingMean.ReadOnlySpan), ReferenceBatchNorm.UpdateMoving(movingMean, mean, 0.5), tolerance, tolerance, "moving_mean of " + what);
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.MovingVariance.ReadOnlySpan), ReferenceBatchNorm.UpdateMoving(movingVariance, variance, 0.5), tolerance, tolerance, "moving_variance of " + what);
    }

    private static (BatchNormalization<T> Layer, double[] X, NdArray<bool> Mask, double[] W, ReferenceForward Reference, double[] Gamma, double[] Beta) MaskedSetup<T>(int[] shape, int axis, int seed)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        int n = shape.Aggregate(1, (a, b) => a * b);
        int channels = shape[ReferenceBatchNorm.NormalizeAxis(axis, shape.Length)];
        int[] maskShape = shape.Where((_, i) => i != ReferenceBatchNorm.NormalizeAxis(axis, shape.Length)).ToArray();
        bool[] maskValues = Enumerable.Range(0, n / channels).Select(i => i == 0 || random.NextDouble() < 0.6).ToArray();
        double[] x = LayerHarness.RoundTrip<T>(Enumerable.Range(0, n).Select(_ => (4 * random.NextDouble()) - 1).ToArray());
        double[] w = Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5).ToArray();
        double[] gamma = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => 0.5 + random.NextDouble()).ToArray());
        double[] beta = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => random.NextDouble() - 0.5).ToArray());
        var layer = new BatchNormalization<T>(axis, momentum: 0.5);
        layer.Build(shape);
        layer.SetWeights(Tolerance.FromDouble<T>(gamma), Tolerance.FromDouble<T>(beta),
            Tolerance.FromDouble<T>(Enumerable.Repeat(0.25, channels).ToArray()), Tolerance.FromDouble<T>(Enumerable.Repeat(2.0, channels).ToArray()));
        var reference = new ReferenceForward(shape, axis, 1e-3) { Mask = maskValues };
        return (layer, x, new NdArray<bool>(maskValues, maskShape), w, reference, gamma, beta);
    }

    private static void Renorm<T>(RenormClipping clipping, int[] shape, int axis, double tolerance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        const double Momentum = 0.9;
        const double RenormMomentum = 0.7;
        const double Epsilon = 1e-3;
        var random = new Random(11);
        int n = shape.Aggregate(1, (a, b) => a * b);
        int channels = shape[ReferenceBatchNorm.NormalizeAxis(axis, shape.Length)];
        var layer = new BatchNormalization<T>(axis, Momentum, Epsilon, renorm: true, renormClipping: clipping, renormMomentum: RenormMomentum);
        layer.Build(shape);
        double[] gamma = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => 0.5 + random.NextDouble()).ToArray());
        double[] beta = LayerHarness.RoundTrip<T>(Enumerable.Range(0, channels).Select(_ => random.NextDouble() - 0.5).ToArray());
        layer.SetWeights(Tolerance.FromDouble<T>(gamma), Tolerance.FromDouble<T>(beta),
            new T[channels], Tolerance.FromDouble<T>(Enumerable.Repeat(1.0, channels).ToArray()), Tolerance.FromDouble<T>(Enumerable.Repeat(1.0, channels).ToArray()),
            new T[channels], Tolerance.FromDouble<T>(Enumerable.Repeat(1.0, channels).ToArray()));

        // The float64 Keras 3 state.
        double[] movingMean = new double[channels];
        double[] movingStddev = Enumerable.Repeat(1.0, channels).ToArray();
        double[] movingVariance = Enumerable.Repeat(1.0, channels).ToArray();
        double[] renormMean = new double[channels];
        double[] renormStddev = Enumerable.Repeat(1.0, channels).ToArray();
        for (int step = 0; step < 6; step++)
        {
            double offset = 3 * step;
            double[] x = LayerHarness.RoundTrip<T>(Enumerable.Range(0, n).Select(_ => offset + (2 * random.NextDouble())).ToArray());
            bool training = step < 5;
            NdArray<T> y = layer.Call(new NdArray<T>(Tolerance.FromDouble<T>(x), shape), training);
            double[] expected;
            if (training)
            {
                var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, axis);
                var (r, d) = RenormCorrections(mean, variance, renormMean, renormStddev, Epsilon, clipping);
                expected = new ReferenceForward(shape, axis, Epsilon) { R = r, D = d }.Apply(x, gamma, beta);
                for (int c = 0; c < channels; c++)
                {
                    double stddev = Math.Sqrt(variance[c] + Epsilon);
                    renormMean[c] = (renormMean[c] * RenormMomentum) + (mean[c] * (1 - RenormMomentum));
                    renormStddev[c] = (renormStddev[c] * RenormMomentum) + (stddev * (1 - RenormMomentum));
                    movingMean[c] = (movingMean[c] * Momentum) + (mean[c] * (1 - Momentum));
                    movingStddev[c] = (movingStddev[c] * Momentum) + (stddev * (1 - Momentum));
                    movingVariance[c] = Math.Max((movingStddev[c] * movingStddev[c]) - Epsilon, 0);
                }
            }
            else
            {
                expected = ReferenceBatchNorm.Normalize(x, shape, axis, movingMean, movingVariance, gamma, beta, Epsilon);
            }

            string what = $"{typeof(T).Name} renorm {clipping} step {step}";
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(y.ReadOnlySpan), expected, tolerance, tolerance, "output of " + what);
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.MovingMean.ReadOnlySpan), movingMean, tolerance, tolerance, "moving_mean of " + what);
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.MovingVariance.ReadOnlySpan), movingVariance, tolerance, tolerance, "moving_variance of " + what);
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.MovingStddev!.ReadOnlySpan), movingStddev, tolerance, tolerance, "moving_stddev of " + what);
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.RenormMean!.ReadOnlySpan), renormMean, tolerance, tolerance, "renorm_mean of " + what);
            Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<T>(layer.RenormStddev!.ReadOnlySpan), renormStddev, tolerance, tolerance, "renorm_stddev of " + what);
        }
    }

    /// <summary>Keras 3: r = clip(stddev / s), d = clip((mean - renorm_mean) / s), s = max(renorm_stddev, sqrt(eps)).</summary>
    private static (double[] R, double[] D) RenormCorrections(double[] mean, double[] variance, double[] renormMean, double[] renormStddev, double epsilon, RenormClipping clipping)
    {
        var r = new double[mean.Length];
        var d = new double[mean.Length];
        for (int c = 0; c < mean.Length; c++)
        {
            double s = Math.Max(renormStddev[c], Math.Sqrt(epsilon));
            r[c] = Math.Sqrt(variance[c] + epsilon) / s;
            d[c] = (mean[c] - renormMean[c]) / s;
            if (clipping.Rmin is double lo)
            {
                r[c] = Math.Max(r[c], lo);
            }

            if (clipping.Rmax is double hi)
            {
                r[c] = Math.Min(r[c], hi);
            }

            if (clipping.Dmax is double m)
            {
                d[c] = Math.Clamp(d[c], -m, m);
            }
        }

        return (r, d);
    }
}
