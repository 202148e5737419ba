using System;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// The small batch's backward pass in one routine (<see cref="BatchNormKernels.SmallBackward{T}"/>): the bits of the
/// separate kernels it replaces (gradient sums, coefficients, input gradient) at every width, and the float64 gradient
/// formulas within float's rounding.
/// </summary>
[Trait("Category", "Kernels")]
public class SmallBackwardKernelTests
{
    /// <summary>
    /// Small gradient batches (<see cref="BatchNormKernels.IsSmallGradientBatch{T}"/>) of at least one vector of channels
    /// at the width, written out at the edges.
    /// </summary>
    [Fact]
    public void Small_backward_takes_small_gradient_batches_of_at_least_one_vector_of_channels()
    {
        (ChannelLayout Layout, VectorWidth Width, bool Float, bool Double)[] cases =
        [
            (new ChannelLayout(8, 16, 1), VectorWidth.Vector512, true, true),
            (new ChannelLayout(8, 15, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(8, 32, 1), VectorWidth.Vector512, true, true),
            (new ChannelLayout(8, 33, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(8, 8, 1), VectorWidth.Vector256, true, true),
            (new ChannelLayout(8, 7, 1), VectorWidth.Vector128, false, false),
            (new ChannelLayout(9, 16, 1), VectorWidth.Vector512, false, true),
            (new ChannelLayout(2, 16, 8), VectorWidth.Vector512, false, false),
        ];
        foreach (var (layout, width, isFloat, isDouble) in cases)
        {
            BatchNormKernels.IsSmallBackward<float>(layout, width).Should().Be(isFloat, $"float {layout} {width}");
            BatchNormKernels.IsSmallBackward<double>(layout, width).Should().Be(isDouble, $"double {layout} {width}");
        }
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
        int seed = 1300;
        foreach (int channels in KernelTestData.SizesAroundWidths(40).Concat([64, 100, 256]))
        {
            for (int rows = 1; rows <= 16; rows++)
            {
                bool renorm = seed % 2 == 0;
                bool inPlace = seed % 3 == 0;
                Check<float>((VectorWidth)width, rows, channels, seed, renorm, inPlace, offset: 1e3, spread: 1);
                Check<double>((VectorWidth)width, rows, channels, seed++, renorm, inPlace, offset: -3e4, spread: 0.5);
            }
        }
    }

    private static void Check<T>(VectorWidth width, int rows, int channels, int seed, bool renorm, bool inPlace, double offset, double spread)
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

        Bits(dx).Should().Equal(Bits(expectedDx), "dx of " + what);
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

    private static long[] Bits<T>(T[] values)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        [.. values.Select(v => BitConverter.DoubleToInt64Bits(double.CreateTruncating(v)))];
}
