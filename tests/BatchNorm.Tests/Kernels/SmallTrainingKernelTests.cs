using System;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// The small batch's training forward in one routine (<see cref="BatchNormKernels.SmallTrainingForward{T}"/>): the bits of
/// the separate kernels it replaces (statistics, per-channel steps, affine map) at every width, and the float64 reference
/// within float's rounding.
/// </summary>
[Trait("Category", "Kernels")]
public class SmallTrainingKernelTests
{
    /// <summary>
    /// Small channels-last batches of at least one vector of channels at the width. Written out at the edges: a whole
    /// vector and one channel fewer, the small batch's row limit and one row past it, and channels first.
    /// </summary>
    [Fact]
    public void Small_training_takes_small_batches_of_at_least_one_vector_of_channels()
    {
        (ChannelLayout Layout, VectorWidth Width, bool Float, bool Double)[] cases =
        [
            (new ChannelLayout(8, 16, 1), VectorWidth.Vector512, true, true),
            (new ChannelLayout(8, 15, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(8, 8, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(8, 7, 1), VectorWidth.Vector512, false, false),
            (new ChannelLayout(8, 8, 1), VectorWidth.Vector256, true, true),
            (new ChannelLayout(8, 3, 1), VectorWidth.Vector256, false, false),
            (new ChannelLayout(8, 4, 1), VectorWidth.Vector128, true, true),
            (new ChannelLayout(8, 1, 1), VectorWidth.Scalar, true, true),
            (new ChannelLayout(9, 16, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(17, 16, 1), VectorWidth.Vector512, false, false),
            (new ChannelLayout(2, 16, 8), VectorWidth.Vector512, false, false),
        ];
        foreach (var (layout, width, isFloat, isDouble) in cases)
        {
            BatchNormKernels.IsSmallTraining<float>(layout, width).Should().Be(isFloat, $"float {layout} {width}");
            BatchNormKernels.IsSmallTraining<double>(layout, width).Should().Be(isDouble, $"double {layout} {width}");
        }
    }

    /// <summary>
    /// Every row count of a small batch and channel counts around every width (so that the channels after the last whole
    /// vector go through each narrower width), with and without gamma and beta, in place and not: the outputs, both
    /// moving statistics, the batch statistics and what the backward pass keeps all have the bits of the separate scalar
    /// kernels, and the outputs and moving statistics are within float's rounding of the float64 reference.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Small_training_forward_has_the_bits_of_the_separate_kernels(int width)
    {
        int seed = 900;
        foreach (int channels in KernelTestData.SizesAroundWidths(40).Concat([64, 100, 256, 1024]))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                bool weights = seed % 2 == 0;
                bool inPlace = seed % 3 == 0;
                Check<float>((VectorWidth)width, rows, channels, seed, weights, inPlace, offset: 1e3, spread: 1);
                Check<double>((VectorWidth)width, rows, channels, seed++, weights, inPlace, offset: -3e4, spread: 0.5);
            }
        }
    }

    private static void Check<T>(VectorWidth width, int rows, int channels, int seed, bool weights, bool inPlace, double offset, double spread)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layout = new ChannelLayout(rows, channels, 1);
        if (!BatchNormKernels.IsSmallTraining<T>(layout, width))
        {
            return;
        }

        const double momentum = 0.9;
        const double epsilon = 1e-3;
        int[] shape = [rows, channels];
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(rows * channels, seed, offset, spread));
        T[] gamma = weights ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, seed + 1, offset: 0, spread: 3)) : [];
        T[] beta = weights ? Tolerance.FromDouble<T>(KernelTestData.Data(channels, seed + 2, offset: 0, spread: 5)) : [];
        T[] movingMean = Tolerance.FromDouble<T>(KernelTestData.Data(channels, seed + 3, offset: 1e3, spread: 900));
        T[] movingVariance = Tolerance.FromDouble<T>(KernelTestData.Data(channels, seed + 4, offset: 5, spread: 4));
        string what = $"{typeof(T).Name} {width} [{rows}, {channels}], weights {weights}, in place {inPlace}";

        // The separate kernels, one channel at a time.
        var expected = new Outputs<T>(x, movingMean, movingVariance);
        expected.Denominator = BatchNormKernels.BatchStatistics<T>(x, layout, [], expected.Mean, expected.Variance, VectorWidth.Scalar);
        BatchNormKernels.TrainingNormalize<T>(
            x, expected.Y, layout, expected.Mean, expected.Variance, gamma, beta, expected.MovingMean, expected.MovingVariance, momentum, epsilon,
            expected.EffectiveGamma, expected.InverseStddev, expected.Center, VectorWidth.Scalar);

        var actual = new Outputs<T>(x, movingMean, movingVariance);
        T[] input = inPlace ? actual.Y : x;
        actual.Denominator = BatchNormKernels.SmallTrainingForward<T>(
            input, actual.Y, layout, actual.Mean, actual.Variance, gamma, beta, actual.MovingMean, actual.MovingVariance, momentum, epsilon,
            actual.EffectiveGamma, actual.InverseStddev, actual.Center, width);

        Bits(actual.Y).Should().Equal(Bits(expected.Y), "outputs of " + what);
        Bits(actual.MovingMean).Should().Equal(Bits(expected.MovingMean), "moving mean of " + what);
        Bits(actual.MovingVariance).Should().Equal(Bits(expected.MovingVariance), "moving variance of " + what);
        actual.Mean.Should().Equal(expected.Mean, "mean of " + what);
        actual.Variance.Should().Equal(expected.Variance, "variance of " + what);
        actual.EffectiveGamma.Should().Equal(expected.EffectiveGamma, "effective gamma of " + what);
        actual.InverseStddev.Should().Equal(expected.InverseStddev, "inverse stddev of " + what);
        Bits(actual.Center).Should().Equal(Bits(expected.Center), "centre of " + what);
        actual.Denominator.Should().Be(rows, what);

        // The float64 reference: the outputs within the bound of an exact statistic and a T-rounded map, the moving
        // statistics within one rounding to T of the formula.
        double[] xd = Tolerance.ToDouble<T>(x);
        double[]? g = weights ? Tolerance.ToDouble<T>(gamma) : null;
        double[]? b = weights ? Tolerance.ToDouble<T>(beta) : null;
        var (mean, variance) = ReferenceBatchNorm.Moments(xd, shape, 1);
        double[] y = ReferenceBatchNorm.Normalize(xd, shape, 1, mean, variance, g, b, epsilon);
        var (scale, _) = ReferenceBatchNorm.Fold(mean, variance, g, b, epsilon);
        Tolerance.ShouldBeWithin(
            Tolerance.ToDouble<T>(actual.Y), y, Tolerance.OutputBound(xd, shape, 1, mean, variance, scale, y, 4 * Tolerance.Epsilon<T>()), "reference outputs of " + what);
        ShouldBeTheUpdate<T>(actual.MovingMean, movingMean, mean, momentum, "reference moving mean of " + what);
        ShouldBeTheUpdate<T>(actual.MovingVariance, movingVariance, variance, momentum, "reference moving variance of " + what);
    }

    /// <summary>
    /// <c>moving * momentum + batch * (1 - momentum)</c> within a rounding to T of the result and two of double of each
    /// term (the terms can cancel).
    /// </summary>
    private static void ShouldBeTheUpdate<T>(T[] actual, T[] moving, double[] batch, double momentum, string what)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double[] before = Tolerance.ToDouble<T>(moving);
        double[] expected = ReferenceBatchNorm.UpdateMoving(before, batch, momentum);
        double[] scale = [.. expected.Select((e, c) => Math.Abs(e) + Math.Abs(before[c] * momentum) + Math.Abs(batch[c] * (1 - momentum)))];
        Tolerance.ShouldBeClose(Tolerance.ToDouble<T>(actual), expected, scale, 2 * Tolerance.Epsilon<T>(), 0, what);
    }

    private static long[] Bits<T>(T[] values)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        [.. values.Select(v => BitConverter.DoubleToInt64Bits(double.CreateTruncating(v)))];

    /// <summary>What a training forward writes, starting from copies of the input and the moving statistics.</summary>
    private sealed class Outputs<T>(T[] x, T[] movingMean, T[] movingVariance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        public T[] Y { get; } = (T[])x.Clone();

        public T[] MovingMean { get; } = (T[])movingMean.Clone();

        public T[] MovingVariance { get; } = (T[])movingVariance.Clone();

        public double[] Mean { get; } = new double[movingMean.Length];

        public double[] Variance { get; } = new double[movingMean.Length];

        public double[] EffectiveGamma { get; } = new double[movingMean.Length];

        public double[] InverseStddev { get; } = new double[movingMean.Length];

        public T[] Center { get; } = new T[movingMean.Length];

        public double Denominator { get; set; }
    }
}
