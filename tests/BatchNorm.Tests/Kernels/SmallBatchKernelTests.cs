using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// Small batches' training forward and backward pass in one routine each (<see cref="BatchNormKernels.SmallTrainingForward{T}"/>,
/// <see cref="BatchNormKernels.SmallBackward{T}"/>): the bits of the separate kernels they replace at every width, and the
/// float64 formulas within float's rounding.
/// </summary>
[Trait("Category", "Kernels")]
public class SmallBatchKernelTests
{
    /// <summary>
    /// The training forward takes small batches (<see cref="BatchNormKernels.IsSmallBatch{T}"/>) of at least one vector of
    /// channels at the width; the backward takes small gradient batches (<see cref="BatchNormKernels.IsSmallGradientBatch{T}"/>:
    /// 8 channels or more, and at most 32 of float) of at least one vector of channels. Written out at the edges.
    /// </summary>
    [Fact]
    public void Small_batches_of_at_least_one_vector_of_channels_take_one_routine()
    {
        (ChannelLayout Layout, VectorWidth Width, bool Float, bool Double, bool FloatBackward, bool DoubleBackward)[] cases =
        [
            (new ChannelLayout(8, 16, 1), VectorWidth.Vector512, true, true, true, true),
            (new ChannelLayout(8, 15, 1), VectorWidth.Vector512, false, true, false, true),
            (new ChannelLayout(8, 8, 1), VectorWidth.Vector512, false, true, false, true),
            (new ChannelLayout(8, 7, 1), VectorWidth.Vector512, false, false, false, false),
            (new ChannelLayout(8, 32, 1), VectorWidth.Vector512, true, true, true, true),
            (new ChannelLayout(8, 33, 1), VectorWidth.Vector512, true, true, false, true),
            (new ChannelLayout(8, 8, 1), VectorWidth.Vector256, true, true, true, true),
            (new ChannelLayout(8, 3, 1), VectorWidth.Vector256, false, false, false, false),
            (new ChannelLayout(8, 4, 1), VectorWidth.Vector128, true, true, false, false),
            (new ChannelLayout(8, 7, 1), VectorWidth.Vector128, true, true, false, false),
            (new ChannelLayout(8, 1, 1), VectorWidth.Scalar, true, true, false, false),
            (new ChannelLayout(9, 16, 1), VectorWidth.Vector512, false, true, false, true),
            (new ChannelLayout(17, 16, 1), VectorWidth.Vector512, false, false, false, false),
            (new ChannelLayout(2, 16, 8), VectorWidth.Vector512, false, false, false, false),
        ];
        foreach (var (layout, width, isFloat, isDouble, isFloatBackward, isDoubleBackward) in cases)
        {
            BatchNormKernels.IsSmallTraining<float>(layout, width).Should().Be(isFloat, $"float {layout} {width}");
            BatchNormKernels.IsSmallTraining<double>(layout, width).Should().Be(isDouble, $"double {layout} {width}");
            BatchNormKernels.IsSmallBackward<float>(layout, width).Should().Be(isFloatBackward, $"float backward {layout} {width}");
            BatchNormKernels.IsSmallBackward<double>(layout, width).Should().Be(isDoubleBackward, $"double backward {layout} {width}");
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
        foreach (var (rows, channels, seed) in Cases(900, 1024))
        {
            // With gamma and beta on even seeds (scale and center), in place on every third.
            Training<float>((VectorWidth)width, rows, channels, seed, seed % 2 == 0, seed % 3 == 0, offset: 1e3, spread: 1);
            Training<double>((VectorWidth)width, rows, channels, seed, seed % 2 == 0, seed % 3 == 0, offset: -3e4, spread: 0.5);
        }
    }

    /// <summary>Every row count of a small batch for channel counts around every width and a few wider, each with its seed.</summary>
    private static IEnumerable<(int Rows, int Channels, int Seed)> Cases(int seed, int widest)
    {
        foreach (int channels in KernelTestData.SizesAroundWidths(40).Concat([64, 100, 256, widest]))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                yield return (rows, channels, seed++);
            }
        }
    }

    private static void Training<T>(VectorWidth width, int rows, int channels, int seed, bool weights, bool inPlace, double offset, double spread)
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

        KernelTestData.Bits(actual.Y).Should().Equal(KernelTestData.Bits(expected.Y), "outputs of " + what);
        KernelTestData.Bits(actual.MovingMean).Should().Equal(KernelTestData.Bits(expected.MovingMean), "moving mean of " + what);
        KernelTestData.Bits(actual.MovingVariance).Should().Equal(KernelTestData.Bits(expected.MovingVariance), "moving variance of " + what);
        actual.Mean.Should().Equal(expected.Mean, "mean of " + what);
        actual.Variance.Should().Equal(expected.Variance, "variance of " + what);
        actual.EffectiveGamma.Should().Equal(expected.EffectiveGamma, "effective gamma of " + what);
        actual.InverseStddev.Should().Equal(expected.InverseStddev, "inverse stddev of " + what);
        KernelTestData.Bits(actual.Center).Should().Equal(KernelTestData.Bits(expected.Center), "centre of " + what);
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

    /// <summary>
    /// Every row count of a small batch and channel counts around every width, in place and not, without and with
    /// renormalization's r and d: dx, dgamma and dbeta have the bits of the separate scalar kernels; without
    /// renormalization they are within float's rounding of the float64 formulas.
    /// </summary>
    [Theory]
    [MemberData(nameof(KernelTestData.Widths), MemberType = typeof(KernelTestData))]
    public void Small_backward_has_the_bits_of_the_separate_kernels(int width)
    {
        foreach (var (rows, channels, seed) in Cases(1300, 512))
        {
            // With renormalization's r and d on even seeds, in place on every third.
            Backward<float>((VectorWidth)width, rows, channels, seed, seed % 2 == 0, seed % 3 == 0, offset: 1e3, spread: 1);
            Backward<double>((VectorWidth)width, rows, channels, seed, seed % 2 == 0, seed % 3 == 0, offset: -3e4, spread: 0.5);
        }
    }

    private static void Backward<T>(VectorWidth width, int rows, int channels, int seed, bool renorm, bool inPlace, double offset, double spread)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var layout = new ChannelLayout(rows, channels, 1);
        if (!BatchNormKernels.IsSmallBackward<T>(layout, width))
        {
            return;
        }

        const double epsilon = 1e-3;
        int[] shape = [rows, channels];
        T[] x = Tolerance.FromDouble<T>(KernelTestData.Data(rows * channels, seed, offset, spread));
        T[] dy = Tolerance.FromDouble<T>(KernelTestData.Data(rows * channels, seed + 1, offset: 0.1, spread: 2));
        double[] gamma = Tolerance.ToDouble<T>(Tolerance.FromDouble<T>(KernelTestData.Data(channels, seed + 2, offset: 0, spread: 3)));
        double[] r = renorm ? KernelTestData.Data(channels, seed + 3, offset: 1, spread: 0.5) : [.. Enumerable.Repeat(1.0, channels)];
        double[] d = renorm ? KernelTestData.Data(channels, seed + 4, offset: 0, spread: 0.5) : new double[channels];

        // What the training forward keeps: the batch statistics, 1 / sqrt(v + eps) and the T-rounded mean.
        var mean = new double[channels];
        var variance = new double[channels];
        double denominator = BatchNormKernels.BatchStatistics<T>(x, layout, [], mean, variance, VectorWidth.Scalar);
        double[] inverseStddev = [.. variance.Select(v => 1.0 / Math.Sqrt(v + epsilon))];
        T[] center = [.. mean.Select(T.CreateTruncating)];
        string what = $"{typeof(T).Name} {width} [{rows}, {channels}], renorm {renorm}, in place {inPlace}";

        // The separate kernels, one channel at a time.
        var (sumDy, sumDyCentered) = (new double[channels], new double[channels]);
        var (expectedGamma, expectedBeta) = (new double[channels], new double[channels]);
        var (a, p, q) = (new T[channels], new T[channels], new T[channels]);
        var expectedDx = new T[x.Length];
        BatchNormKernels.GradientSums<T>(x, dy, layout, center, sumDy, sumDyCentered, VectorWidth.Scalar);
        BatchNormKernels.ChannelGradientCoefficients<T>(
            mean, inverseStddev, gamma, center, sumDy, sumDyCentered, r, d, 1.0 / denominator, 0.0, expectedGamma, expectedBeta, a, p, q);
        BatchNormKernels.InputGradient<T>(x, dy, expectedDx, layout, [], center, a, p, q, VectorWidth.Scalar);

        T[] dx = inPlace ? (T[])dy.Clone() : new T[x.Length];
        var (gammaGradient, betaGradient) = (new double[channels], new double[channels]);
        BatchNormKernels.SmallBackward<T>(
            x, inPlace ? dx : dy, dx, layout, center, mean, inverseStddev, gamma, r, d, 1.0 / denominator, new double[channels],
            gammaGradient, betaGradient, width);

        KernelTestData.Bits(dx).Should().Equal(KernelTestData.Bits(expectedDx), "dx of " + what);
        gammaGradient.Should().Equal(expectedGamma, "dgamma of " + what);
        betaGradient.Should().Equal(expectedBeta, "dbeta of " + what);
        if (renorm)
        {
            return;
        }

        // The float64 formulas: xhat = (x - mean) s, s = 1 / sqrt(v + eps); dbeta = sum(dy); dgamma = sum(dy xhat);
        // dx = gamma s (dy - dbeta / n - xhat dgamma / n).
        double[] xd = Tolerance.ToDouble<T>(x);
        double[] gd = Tolerance.ToDouble<T>(dy);
        var (exactMean, exactVariance) = ReferenceBatchNorm.Moments(xd, shape, 1);
        var (dgamma, dbeta, dgammaScale) = (new double[channels], new double[channels], new double[channels]);
        for (int i = 0; i < xd.Length; i++)
        {
            int c = i % channels;
            double xhat = (xd[i] - exactMean[c]) / Math.Sqrt(exactVariance[c] + epsilon);
            dbeta[c] += gd[i];
            dgamma[c] += gd[i] * xhat;
            dgammaScale[c] += Math.Abs(gd[i] * xhat) + Math.Abs(gd[i]);
        }

        var (referenceDx, bound) = (new double[xd.Length], new double[xd.Length]);
        for (int i = 0; i < xd.Length; i++)
        {
            int c = i % channels;
            double s = 1.0 / Math.Sqrt(exactVariance[c] + epsilon);
            double xhat = (xd[i] - exactMean[c]) * s;
            double scale = gamma[c] * s;
            referenceDx[i] = scale * (gd[i] - (dbeta[c] / rows) - (xhat * dgamma[c] / rows));

            // A few roundings to T of each term (a, p and q are T), double's rounding of the sums behind them, and the
            // mean held in double (an error of a few ulps of |mean| moves xhat by that times s).
            bound[i] = (8 * Tolerance.Epsilon<T>() * Math.Abs(scale) * (Math.Abs(gd[i]) + (dgammaScale[c] / rows) + Math.Abs(xhat * dgamma[c] / rows)))
                + (64 * Math.Pow(2, -52) * Math.Abs(scale) * (1 + Math.Abs(xhat)) * dgammaScale[c])
                + (16 * Math.Pow(2, -52) * Math.Abs(exactMean[c]) * s * Math.Abs(scale) * (Math.Abs(dgamma[c]) + Math.Abs(xhat * dbeta[c])) / rows);
        }

        Tolerance.ShouldBeWithin(Tolerance.ToDouble<T>(dx), referenceDx, bound, "reference dx of " + what);
        double[] sumsBound = [.. dgammaScale.Select(v => 64 * Math.Pow(2, -52) * (v + 1))];
        Tolerance.ShouldBeWithin(betaGradient, dbeta, sumsBound, "reference dbeta of " + what);

        // dgamma moves by s sum(dy) per unit of error in the mean.
        double[] gammaBound = [.. sumsBound.Select((b, c) => b + (16 * Math.Pow(2, -52) * Math.Abs(exactMean[c] * dbeta[c]) / Math.Sqrt(exactVariance[c] + epsilon)))];
        Tolerance.ShouldBeWithin(gammaGradient, dgamma, gammaBound, "reference dgamma of " + what);
    }

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
