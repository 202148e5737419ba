using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.Intrinsics.X86;
using BatchNorm.Kernels;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>Large inputs are split across threads; results must be the same bits for any thread count, and correct.</summary>
[Trait("Category", "Kernels")]
public class ParallelismTests
{
    public static IEnumerable<object[]> LargeShapes() =>
    [
        [new[] { 4096, 64 }, -1],          // narrow channels-last rows, exactly the threshold
        [new[] { 300, 1000 }, -1],         // wide rows with a vector tail
        [new[] { 2, 64, 64, 40 }, 1],      // channels first, split by outer index
        [new[] { 64, 128, 7, 7 }, 1],      // channels first, short runs: statistics channel by channel
        [new[] { 120, 128, 12, 12 }, 1],   // short runs over the prefetch thresholds: in memory order, two blocks
        [new[] { 1, 8, 200, 200 }, 1],     // one outer index: split by channel
        [new[] { 70000, 5 }, -1],          // rows narrower than a vector
        [new[] { 16400, 64 }, -1],         // over the prefetch thresholds in double only (x and y 16 MiB): narrow rows
        [new[] { 32800, 64 }, -1],         // over them in float too
        [new[] { 520, 2050 }, -1],         // over them in double: wide rows with a vector tail
        [new[] { 1024, 2050 }, -1],        // over them in float
        [new[] { 2, 64, 8200 }, 1],        // over them in double: channels first
        [new[] { 2, 64, 16400 }, 1],       // over them in float
        [new[] { 3200, 1024 }, -1],        // above the streaming-store threshold (12 MiB of float): wide rows
        [new[] { 2, 64, 25000 }, 1],       // above it: channels first, runs at every alignment
        [new[] { 5200, 1024 }, -1],        // over 20 MiB of float (statistics at 256 bits on 512-bit machines): wide rows
    ];

    [Theory]
    [MemberData(nameof(LargeShapes))]
    public void Results_are_bitwise_identical_for_any_thread_count(int[] shape, int axis)
    {
        Run<float>(shape, axis);
        Run<double>(shape, axis);
    }

    [Theory]
    [MemberData(nameof(LargeShapes))]
    public void Large_inputs_match_the_float64_reference(int[] shape, int axis)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        int channels = shape[axis < 0 ? axis + shape.Length : axis];
        var random = new Random(3);
        double[] x = LayerHarness.RoundTrip<float>(Enumerable.Range(0, n).Select(_ => 5 + (3 * random.NextDouble())).ToArray());
        var layer = new BatchNormalization(axis, momentum: 0.5) { MaxDegreeOfParallelism = 2 };
        NdArray<float> y = layer.Call(new NdArray<float>(Tolerance.FromDouble<float>(x), shape), training: true);

        var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, axis);
        double[] expected = ReferenceBatchNorm.Normalize(x, shape, axis, mean, variance, null, null, 1e-3);
        var (a, _) = ReferenceBatchNorm.Fold(mean, variance, null, null, 1e-3);
        double k = (16 + (4 * Math.Sqrt(n / channels))) * Tolerance.Epsilon<float>();
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<float>(y.ReadOnlySpan), expected, Tolerance.OutputBound(x, shape, axis, mean, variance, a, expected, k), "output");
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<float>(layer.MovingMean.ReadOnlySpan), ReferenceBatchNorm.UpdateMoving(new double[channels], mean, 0.5), k, 0, "moving_mean");
        Tolerance.ShouldBeRelativelyClose(
            Tolerance.ToDouble<float>(layer.MovingVariance.ReadOnlySpan), ReferenceBatchNorm.UpdateMoving(Enumerable.Repeat(1.0, channels).ToArray(), variance, 0.5),
            k, 0, "moving_variance");
    }

    /// <summary>
    /// The backward pass on large inputs (the partitioned and prefetching paths) against the closed form in float64,
    /// written plainly: with xh = (x - mean) / s, s = sqrt(variance + eps), dbeta = sum(dy), dgamma = sum(dy * xh) and
    /// dx = (dy - dbeta / n - xh * dgamma / n) / s (gamma = 1). The closed form itself is checked against finite
    /// differences on small shapes in BackwardTests.
    /// </summary>
    [Theory]
    [MemberData(nameof(LargeShapes))]
    public void Large_gradients_match_the_float64_closed_form(int[] shape, int axis)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(5);
        double[] x = Enumerable.Range(0, n).Select(_ => 5 + (3 * random.NextDouble())).ToArray();
        double[] dy = Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.3).ToArray();
        GradientsMatchClosedForm(shape, axis, x, dy, meanOverStddevFactor: true);
    }

    /// <summary>
    /// Small shapes (one to four vectors per row, a scalar tail, channels first) with mean 1e4 and standard deviation 1:
    /// the float32 gradients stay within a bound that has NO mean/stddev factor. That holds only because the backward
    /// pass carries the part of the mean that rounding to float dropped (<c>mean - center</c>, up to 5e-4 here) into
    /// its coefficients; without it dx is off by |p| (mean - center), tens of times this bound.
    /// </summary>
    [Theory]
    [InlineData(new[] { 64, 16 }, -1)]
    [InlineData(new[] { 64, 5 }, -1)]
    [InlineData(new[] { 33, 40 }, -1)]
    [InlineData(new[] { 4, 7, 30 }, 1)]
    public void Gradients_far_from_zero_need_no_mean_over_stddev_slack(int[] shape, int axis)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(6);
        double[] x = Enumerable.Range(0, n).Select(_ => 1e4 + ((random.NextDouble() * 2) - 1)).ToArray();
        double[] dy = Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.3).ToArray();
        GradientsMatchClosedForm(shape, axis, x, dy, meanOverStddevFactor: false);
    }

    private static void GradientsMatchClosedForm(int[] shape, int axis, double[] xValues, double[] dyValues, bool meanOverStddevFactor)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        int ax = axis < 0 ? axis + shape.Length : axis;
        int channels = shape[ax];
        double count = n / channels;
        double[] x = LayerHarness.RoundTrip<float>(xValues);
        double[] dy = LayerHarness.RoundTrip<float>(dyValues);
        var layer = new BatchNormalization(axis) { MaxDegreeOfParallelism = 2 };
        layer.Call(new NdArray<float>(Tolerance.FromDouble<float>(x), shape), training: true);
        BatchNormalizationGradients<float> grads = layer.Backward(new NdArray<float>(Tolerance.FromDouble<float>(dy), shape));

        var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, axis);
        double[] s = variance.Select(v => Math.Sqrt(v + 1e-3)).ToArray();
        var dbeta = new double[channels];
        var dgamma = new double[channels];
        var absDy = new double[channels];
        var absDyXh = new double[channels];
        var xh = new double[n];
        var channelOf = new int[n];
        for (int i = 0; i < n; i++)
        {
            int c = channelOf[i] = ReferenceBatchNorm.ChannelOf(i, shape, ax);
            xh[i] = (x[i] - mean[c]) / s[c];
            dbeta[c] += dy[i];
            dgamma[c] += dy[i] * xh[i];
            absDy[c] += Math.Abs(dy[i]);
            absDyXh[c] += Math.Abs(dy[i] * xh[i]);
        }

        var dx = new double[n];
        var dxBound = new double[n];
        double k = (16 + (4 * Math.Sqrt(count))) * Tolerance.Epsilon<float>();
        double[] magnitude = mean.Select((m, c) => meanOverStddevFactor ? 1 + (Math.Abs(m) / s[c]) : 1).ToArray();
        for (int i = 0; i < n; i++)
        {
            int c = channelOf[i];
            dx[i] = (dy[i] - (dbeta[c] / count) - (xh[i] * dgamma[c] / count)) / s[c];
            dxBound[i] = k * magnitude[c] * (Math.Abs(dy[i]) + (absDy[c] / count) + (Math.Abs(xh[i]) * absDyXh[c] / count)) / s[c];
        }

        double[] dgammaBound = absDyXh.Select((v, c) => k * (v + absDy[c]) * magnitude[c]).ToArray();
        double[] dbetaBound = absDy.Select(v => k * v).ToArray();
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<float>(grads.InputGradient.ReadOnlySpan), dx, dxBound, "dx");
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<float>(grads.GammaGradient!.ReadOnlySpan), dgamma, dgammaBound, "dgamma");
        Tolerance.ShouldBeWithin(Tolerance.ToDouble<float>(grads.BetaGradient!.ReadOnlySpan), dbeta, dbetaBound, "dbeta");
    }

    /// <summary>
    /// Wide rows from memory (x, dy and dx together 16 MiB or more, checked; more channels than one 4 KiB tile) are
    /// walked a tile of channels at a time down the rows, with the last C mod width channels one by one. dx may be dy:
    /// computed in place it must be the same bits as into a separate buffer, with and without a mask (masked rows get
    /// only the direct term), and the parameter gradients must not change.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Wide_rows_from_memory_give_the_same_gradient_in_place(bool masked)
    {
        Prefetch.IsWorthIt<float>(700 * 2050, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        Prefetch.IsWorthIt<double>(350 * 2050, Prefetch.BackwardTensors).Should().Be(Sse.IsSupported);
        InPlaceMatches<float>([700, 2050], masked);
        InPlaceMatches<double>([350, 2050], masked);
    }

    private static void InPlaceMatches<T>(int[] shape, bool masked)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = shape[0] * shape[1];
        var random = new Random(11);
        T[] x = Enumerable.Range(0, n).Select(_ => T.CreateTruncating((random.NextDouble() * 4) - 1)).ToArray();
        T[] dy = Enumerable.Range(0, n).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5)).ToArray();
        NdArray<bool>? mask = masked ? new NdArray<bool>(Enumerable.Range(0, shape[0]).Select(i => i % 3 != 1).ToArray(), new NdShape(shape[0])) : null;
        var layer = new BatchNormalization<T>() { MaxDegreeOfParallelism = 1 };
        layer.Call(new NdArray<T>(x, shape), training: true, mask);

        var dx = new T[n];
        var (gamma1, beta1, gamma2, beta2) = (new T[shape[1]], new T[shape[1]], new T[shape[1]], new T[shape[1]]);
        layer.Backward(dy, dx, gamma1, beta1);
        T[] inPlace = (T[])dy.Clone();
        layer.Backward(inPlace, inPlace, gamma2, beta2);

        inPlace.Should().Equal(dx, $"{typeof(T).Name} masked {masked}");
        gamma2.Should().Equal(gamma1);
        beta2.Should().Equal(beta1);
        dx.Should().NotEqual(dy);
    }

    [Fact]
    public void The_degree_of_parallelism_is_validated()
    {
        var layer = new BatchNormalization();
        layer.MaxDegreeOfParallelism.Should().Be(-1);
        layer.MaxDegreeOfParallelism = 1;
        Action zero = () => layer.MaxDegreeOfParallelism = 0;
        zero.Should().Throw<ArgumentOutOfRangeException>();
        Action negative = () => layer.MaxDegreeOfParallelism = -2;
        negative.Should().Throw<ArgumentOutOfRangeException>();
    }

    private static void Run<T>(int[] shape, int axis)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(shape.Sum());
        T[] x = Enumerable.Range(0, n).Select(_ => T.CreateTruncating((random.NextDouble() * 4) - 1)).ToArray();
        T[] dy = Enumerable.Range(0, n).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5)).ToArray();
        T[][]? reference = null;
        foreach (int degree in new[] { 1, 2, 3, 8 })
        {
            var layer = new BatchNormalization<T>(axis, momentum: 0.5) { MaxDegreeOfParallelism = degree };
            var input = new NdArray<T>(x, shape);
            T[] training = layer.Call(input, training: true).ToArray();
            BatchNormalizationGradients<T> grads = layer.Backward(new NdArray<T>(dy, shape));
            T[] inference = layer.Call(input).ToArray();
            BatchNormalizationGradients<T> affine = layer.Backward(new NdArray<T>(dy, shape));
            T[][] results =
            [
                training, inference, layer.MovingMean.ToArray(), layer.MovingVariance.ToArray(),
                grads.InputGradient.ToArray(), grads.GammaGradient!.ToArray(), grads.BetaGradient!.ToArray(),
                affine.InputGradient.ToArray(), affine.GammaGradient!.ToArray(),
            ];
            if (reference is null)
            {
                reference = results;
                continue;
            }

            for (int i = 0; i < results.Length; i++)
            {
                results[i].Should().Equal(reference[i], $"result {i} of {typeof(T).Name} [{string.Join(", ", shape)}] with {degree} threads");
            }
        }
    }
}
